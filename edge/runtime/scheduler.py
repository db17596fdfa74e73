"""Continuous batching: one thread owns llama_decode and steps every running sequence together.

Each step evaluates, in one llama_decode, the last sampled token of every decoding sequence plus a chunk
of the prompt being prefilled (the batch's remaining room), so a long prompt delays the other streams by
at most one chunk. A request joins at the next step and a finished or cancelled one leaves at once.

Slots and the cache. There are ``parallel`` sequence ids, each with its own stream of ``ctx_size`` KV
cells, so a request admitted always has room to finish. A finished sequence keeps its tokens there; a new
request goes to the free slot whose cached tokens share its longest prefix (least recently used first on
ties), and when another slot — running or idle — shares a longer prefix (a system prompt common to several
conversations, or choice 0 of the same request), that slot's keys/values are copied (llama_memory_seq_cp
copies the stream, in one buffer copy) and trimmed to the shared prefix instead of evaluating it again.

Seeds. Measured on llama.cpp's CPU kernels: a sequence's logits change with what else shares its batch
(up to 1.5 in logit units on the demo model), and with repacked weights (CPU_REPACK) also with how its
prompt was chunked; evaluated alone in its own stream, they are bit-identical whatever the other streams
hold. So a seeded request is always evaluated in calls of its own (one extra llama_decode per step while
it runs). It reuses
a cached prefix only if that prefix was computed the same way (alone) and the weights are not repacked;
with repacked weights it evaluates its prompt from position 0, in chunks aligned to the batch size.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.events import Finish, Usage
from edge.errors import EngineError
from edge.runtime import llama
from edge.runtime.kv_files import load_sequence, save_sequence
from edge.runtime.nucleus import NucleusKernel
from edge.runtime.prompt_store import PromptStore, StoredPrompt
from edge.runtime.sampling import Grammar, NoTokenAllowedError, TokenSampler
from edge.runtime.sequence import END, Job, Sequence
from edge.runtime.vision import VisionError

log = logging.getLogger("edge.runtime")


@dataclass(eq=False)  # compared by identity
class Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens whose keys/values are cached, by position
    pure: bool = True  # every cached position was computed in llama_decode calls holding only this sequence
    last_used: int = 0
    sequence: Sequence | None = None
    kernel: NucleusKernel | None = None  # the sampling kernel's scratch memory, reused by each sequence

    @property
    def idle(self) -> bool:
        return self.sequence is None


def common_prefix(cached: list[int], tokens: tuple[int, ...]) -> int:
    """Length of the longest common prefix, comparing slices in C rather than token by token."""
    n = min(len(cached), len(tokens))
    if tuple(cached[:n]) == tokens[:n]:
        return n
    low, high = 0, n  # cached[:low] == tokens[:low], and they differ before high
    while high - low > 1:
        middle = (low + high) // 2
        if tuple(cached[low:middle]) == tokens[low:middle]:
            low = middle
        else:
            high = middle
    return low


class Scheduler:
    def __init__(self, engine, parallel: int, batch_size: int, repacked: bool,
                 prefix_cache: bool = True, trimmed_window: int = 0, store: PromptStore | None = None):
        self.engine = engine
        self.prefix_cache = prefix_cache
        self.store = store if prefix_cache else None  # conversations that lost their slot (--cache-ram)
        # slots whose cells a cross-stream copy reads at the next llama_decode: nothing may be written
        # into them before then (llama.cpp copies the buffers when the next batch starts)
        self._copy_sources: set[int] = set()
        # with --no-swa-full the sliding-window layers keep only about this many of a stream's last
        # positions, so a cached prefix may have lost part of the window its next token attends to
        self.trimmed_window = trimmed_window
        self.slots = [Slot(seq_id, kernel=NucleusKernel(engine.n_vocab)) for seq_id in range(parallel)]
        self.batch_size = batch_size
        self.repacked = repacked
        self._batch = llama.TokenBatch(batch_size, parallel)
        self._waiting: deque[Job] = deque()
        self._condition = threading.Condition()
        self._clock = itertools.count(1)
        self._closing = False
        self._thread: threading.Thread | None = None
        self._remaining_choices: dict[int, int] = {}  # id(prepared) -> choices not finished yet

    # -- the public surface (any thread) ----------------------------------------------------------

    def submit(self, jobs: list[Job]) -> None:
        with self._condition:
            if self._closing:
                raise EngineError("the engine is shutting down")
            self._remaining_choices[id(jobs[0].prepared)] = len(jobs)
            self._waiting.extend(jobs)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="edge-scheduler", daemon=True)
                self._thread.start()
            self._condition.notify()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return sum(not slot.idle for slot in self.slots)

    @property
    def kept_bytes(self) -> int:
        """Host memory the conversations that lost their slot take now."""
        return self.store.size if self.store is not None else 0

    def wake(self) -> None:
        """A job was cancelled: let the loop see it even if it is idle."""
        with self._condition:
            self._condition.notify()

    def close(self) -> None:
        with self._condition:
            self._closing = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._batch.close()

    def save_caches(self, directory: Path) -> int:
        """Writes every slot's cached tokens and keys/values, and the conversations kept in host memory
        (the loop must be stopped); returns bytes."""
        written = self.store.write(directory) if self.store is not None else 0
        for slot in self.slots:
            path = directory / f"slot-{slot.seq_id}.bin"
            if slot.cached:
                written += save_sequence(self.engine.context, path, slot.seq_id, slot.cached)
            else:
                path.unlink(missing_ok=True)
        return written

    def load_caches(self, directory: Path) -> int:
        """Restores the slots saved by ``save_caches`` (before the loop starts); returns tokens restored.
        Restored keys/values were computed who knows beside what, so seeded requests do not reuse them."""
        restored = 0
        for slot in self.slots:
            path = directory / f"slot-{slot.seq_id}.bin"
            if path.is_file():
                slot.cached = load_sequence(self.engine.context, path, slot.seq_id)
                slot.pure = not slot.cached
                slot.last_used = next(self._clock)
                restored += len(slot.cached)
        if self.store is not None:
            restored += self.store.read(directory)
        return restored

    # -- the loop (scheduler thread only) ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._closing and not self._waiting and self.running == 0:
                    self._condition.wait()
                if self._closing:
                    break
            try:
                self._step()
            except Exception as error:  # noqa: BLE001 - a bug must not kill the loop for everyone
                log.exception("scheduler step failed")
                for slot in self.slots:
                    if slot.sequence is not None:
                        self._fail(slot, error)
        self._shut_down()

    def _shut_down(self) -> None:
        for slot in self.slots:
            if slot.sequence is not None:
                slot.sequence.cancel()
                self._release(slot)
        with self._condition:
            waiting, self._waiting = list(self._waiting), deque()
        for job in waiting:
            job.emit(EngineError("the engine shut down before this request started"))
            job.emit(END)

    def _step(self) -> None:
        self._drop_cancelled_waiting()
        self._admit()
        self._end_cancelled()
        for slot in self._running_slots():
            self._evaluate_image_if_next(slot)
        shared = [slot for slot in self._running_slots() if not slot.sequence.job.deterministic]
        if shared:
            self._evaluate(shared)
        for slot in self._running_slots():
            if slot.sequence.job.deterministic:
                self._evaluate([slot])

    def _running_slots(self) -> list[Slot]:
        return [slot for slot in self.slots if slot.sequence is not None]

    # -- admission --------------------------------------------------------------------------------

    def _drop_cancelled_waiting(self) -> None:
        with self._condition:
            cancelled = [job for job in self._waiting if job.cancelled.is_set()]
            for job in cancelled:
                self._waiting.remove(job)
        for job in cancelled:  # cancelled while waiting: it ends without having evaluated anything
            job.emit(Finish("cancelled", Usage(len(job.prepared.tokens), 0)))
            job.emit(END)
            self._choice_done(job)

    def _admit(self) -> None:
        """Starts waiting jobs in arrival order while slots and cells allow (a follower waits for its
        leader's prompt, whose keys/values it copies)."""
        with self._condition:
            waiting = list(self._waiting)
        for job in waiting:
            if job.leader is not None and self._still_prefilling(job.leader):
                continue
            if not self._place(job):
                break
            with self._condition:
                self._waiting.remove(job)

    def _still_prefilling(self, leader: Job) -> bool:
        if leader in self._waiting:
            return True
        return any(slot.sequence is not None and slot.sequence.job is leader and slot.sequence.prefilling
                   for slot in self.slots)

    def _place(self, job: Job) -> bool:
        free = [slot for slot in self.slots if slot.idle]
        if not free:
            return False
        target, own = self._target(job, free)
        own = self._usable_prefix(job, own, self._oldest(target))
        source, shared = self._best_source(job, target, own)
        stored, kept = self._best_stored(job, target, shared if source is not None else own)
        self._keep_in_store(target, job)
        if stored is not None:
            start = self._restore(stored, target, kept)
        elif source is not None:
            self._copy_prefix(source, target, shared)
            start = shared
        else:
            self._trim(target, own)
            start = own
        self._start(job, target, start)
        return True

    def _target(self, job: Job, free: list[Slot]) -> tuple[Slot, int]:
        """The slot this job runs in, and how much of its own cache it keeps.

        A slot whose whole cache is a prefix of the prompt (the conversation's previous turn) is taken as
        it is: nothing is lost. Otherwise an empty slot, or the least recently used one, so that another
        conversation's cache is not overwritten for a few shared tokens (those are copied instead)."""
        tokens = job.prepared.tokens
        reusable = self._reusable_by(job)
        shared = {id(slot): common_prefix(slot.cached, tokens) if reusable(slot) else 0 for slot in free}
        continuing = [slot for slot in free if slot.cached and shared[id(slot)] == len(slot.cached)]
        if continuing:
            target = max(continuing, key=lambda slot: shared[id(slot)])
        else:
            target = min(free, key=lambda slot: (bool(slot.cached), slot.last_used))
        return target, shared[id(target)]

    def _reusable_by(self, job: Job):
        """Whether a slot's cached keys/values may serve this job's prompt."""
        if not self.prefix_cache:
            return lambda slot: False
        if job.deterministic:
            return lambda slot: slot.pure and not self.repacked
        return lambda slot: True

    def _best_source(self, job: Job, target: Slot, own: int) -> tuple[Slot | None, int]:
        """Another slot (running or idle) sharing a longer prefix, whose cells can be shared. Without the
        prefix cache, only a follower copies, and only from its own leader."""
        if job.deterministic and (self.repacked or not self.prefix_cache):
            return None, 0
        best, best_length = None, own
        for slot in self.slots:
            if slot is target or (job.deterministic and not slot.pure):
                continue
            if not self.prefix_cache and (slot.sequence is None or slot.sequence.job is not job.leader):
                continue
            length = self._usable_prefix(job, common_prefix(slot.cached, job.prepared.tokens), self._oldest(slot))
            if length > best_length:
                best, best_length = slot, length
        return best, best_length

    def _best_stored(self, job: Job, target: Slot, best: int) -> tuple[StoredPrompt | None, int]:
        """A conversation kept in host memory that shares a longer usable prefix than any slot."""
        if self.store is None or job.deterministic or target.seq_id in self._copy_sources:
            return None, 0
        found, found_length = None, best
        for entry in self.store.entries:
            length = self._usable_prefix(job, common_prefix(entry.tokens, job.prepared.tokens), entry.oldest)
            if length > found_length:
                found, found_length = entry, length
        return found, found_length

    def _usable_prefix(self, job: Job, common: int, oldest: int) -> int:
        """How much of ``common``, a prefix some cache shares with the prompt, can be kept. The last
        prompt token is always evaluated again, for its logits; an image is all or nothing; and the
        sliding window before the first new token must still be cached (``oldest`` is the cache's oldest
        position), else nothing is: a shorter prefix needs older positions still."""
        common = min(common, len(job.prepared.tokens) - 1)
        for span in job.prepared.images:
            if span.start < common < span.start + span.n_tokens:
                common = span.start
        if common and self.trimmed_window and oldest > max(0, common - self.trimmed_window):
            return 0
        return common

    def _oldest(self, slot: Slot) -> int:
        return llama.oldest_position(self.engine.context, slot.seq_id) if self.trimmed_window else 0

    def _keep_in_store(self, slot: Slot, job: Job) -> None:
        """Before ``slot`` takes this job, whose prompt may cut or replace its cache: keep that cache in host
        memory, unless the prompt starts with all of it (the slot then ends up holding more than now)."""
        if self.store is None or not slot.cached:
            return
        if common_prefix(slot.cached, job.prepared.tokens) == len(slot.cached):
            return
        self.store.save(self.engine.context, slot.seq_id, slot.cached)

    def _restore(self, entry: StoredPrompt, target: Slot, length: int) -> int:
        """Copies a kept conversation into ``target`` and cuts it to ``length``; returns what is kept.
        Its keys/values were computed beside who knows what, so seeded requests do not reuse them."""
        if not self.store.restore(self.engine.context, entry, target.seq_id):
            target.cached, target.pure = [], True
            return 0
        target.cached, target.pure = list(entry.tokens), False
        self._trim(target, length)
        return len(target.cached)

    def _trim(self, slot: Slot, keep: int) -> None:
        context = self.engine.context
        if keep < len(slot.cached) and not context.kv_cache_seq_rm(slot.seq_id, keep, -1):
            context.kv_cache_seq_rm(slot.seq_id, 0, -1)
            keep = 0
        del slot.cached[keep:]
        if not slot.cached:
            slot.pure = True

    def _copy_prefix(self, source: Slot, target: Slot, length: int) -> None:
        """Between streams llama.cpp copies whole sequences (at the start of the next llama_decode, before
        that batch writes anything); the copy keeps each cell's place, then loses what is not shared."""
        context = self.engine.context
        context.kv_cache_seq_rm(target.seq_id, 0, -1)
        if length:
            context.kv_cache_seq_cp(source.seq_id, target.seq_id, -1, -1)
            context.kv_cache_seq_rm(target.seq_id, length, -1)
        target.cached = source.cached[:length]
        target.pure = source.pure
        self._copy_sources.add(source.seq_id)

    def _start(self, job: Job, slot: Slot, start: int) -> None:
        prepared = job.prepared
        if job.deterministic and self.repacked:
            self._trim(slot, 0)
            start = 0
        grammar = prepared.take_grammar() if job.choice == 0 else None
        if grammar is None and prepared.constraint is not None:
            grammar = Grammar(self.engine.model, prepared.constraint)
        sampler = TokenSampler(slot.kernel, prepared.request.sampling, prepared.seed, job.choice,
                               prepared.banned_tokens, self.engine.utf8_guard.new_state(), grammar)
        slot.sequence = Sequence(self.engine, job, slot.seq_id, start, sampler)

    # -- evaluation -------------------------------------------------------------------------------

    def _end_cancelled(self) -> None:
        for slot in self._running_slots():
            if slot.sequence.job.cancelled.is_set():
                slot.sequence.cancel()
                self._release(slot)

    def _evaluate_image_if_next(self, slot: Slot) -> None:
        """An image is encoded and decoded through mtmd, in calls of its own for this sequence."""
        sequence = slot.sequence
        span = sequence.next_image() if sequence.prefilling else None
        if span is None:
            return
        engine = self.engine
        try:
            with engine.vision_lock:
                end = engine.vision.evaluate_chunk(engine.context, span.chunks, span.index, span.start,
                                                   self.batch_size, seq_id=slot.seq_id)
            if end != span.start + span.n_tokens:
                raise VisionError(f"an image took {end - span.start} positions, expected {span.n_tokens}")
        except VisionError as error:
            self._fail(slot, error)
            return
        slot.cached.extend(sequence.prepared.tokens[span.start:end])
        sequence.advance(end - span.start)

    def _evaluate(self, slots: list[Slot]) -> None:
        """One llama_decode: the next token of each decoding sequence, then prompt chunks in the room left."""
        batch = self._batch
        batch.clear()
        rows: list[tuple[Slot, int]] = []
        added: dict[int, list[int]] = {}
        for slot in slots:
            sequence = slot.sequence
            if sequence.next_token is not None:
                rows.append((slot, batch.add(sequence.next_token, sequence.position, slot.seq_id, True)))
                added[slot.seq_id] = [sequence.next_token]
        for slot in slots:
            room = self.batch_size - batch.size
            sequence = slot.sequence
            if room <= 0 or not sequence.prefilling or sequence.next_image() is not None:
                continue
            if sequence.job.deterministic:
                room = min(room, self.batch_size - sequence.position % self.batch_size)  # aligned chunks
            run = sequence.prompt_run(room)
            if not run:
                continue
            last = sequence.position + len(run) == len(sequence.prepared.tokens)
            for offset, token in enumerate(run):
                row = batch.add(token, sequence.position + offset, slot.seq_id, last and offset == len(run) - 1)
            if last:
                rows.append((slot, row))
            added[slot.seq_id] = run
        if not batch.size:
            return
        try:
            batch.decode(self.engine.context)
        except llama.DecodeError as error:
            for slot in slots:
                self._fail(slot, error)
            return
        self._copy_sources.clear()  # the decode began by doing the pending copies
        self._after_decode(slots, rows, added)

    def _after_decode(self, slots: list[Slot], rows: list[tuple[Slot, int]], added: dict[int, list[int]]) -> None:
        mixed = len(added) > 1
        for slot in slots:
            tokens = added.get(slot.seq_id)
            if not tokens:
                continue
            slot.cached.extend(tokens)
            slot.pure = slot.pure and not mixed
            sequence = slot.sequence
            if sequence.next_token is not None:
                sequence.evaluated_next_token()
            else:
                sequence.advance(len(tokens))
        n_vocab = self.engine.n_vocab
        for slot, row in rows:
            try:
                slot.sequence.on_logits(llama.logits_row(self.engine.context, n_vocab, row))
            except NoTokenAllowedError as error:
                self._fail(slot, error)
                continue
            if slot.sequence.finished:
                self._release(slot)

    # -- leaving ----------------------------------------------------------------------------------

    def _release(self, slot: Slot) -> None:
        sequence = slot.sequence
        slot.sequence = None
        slot.last_used = next(self._clock)
        sequence.close()
        sequence.job.emit(END)
        self._choice_done(sequence.job)

    def _choice_done(self, job: Job) -> None:
        key = id(job.prepared)
        left = self._remaining_choices.get(key, 1) - 1
        if left <= 0:
            self._remaining_choices.pop(key, None)
            job.prepared.close()
        else:
            self._remaining_choices[key] = left

    def _fail(self, slot: Slot, error: Exception) -> None:
        """The sequence ends with an error event; its cache is dropped, since it may be half written."""
        sequence = slot.sequence
        if sequence is None:
            return
        job = sequence.job
        if job.context is not None:
            job.context.run(log.error, "generation failed: %s", error)
        else:
            log.error("generation failed: %s", error)
        self._trim(slot, 0)
        slot.sequence = None
        sequence.close()
        sequence.job.emit(EngineError(f"llama.cpp failed during generation: {error}"))
        sequence.job.emit(END)
        self._choice_done(sequence.job)


