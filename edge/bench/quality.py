"""Quality of a quantized model against the unquantized one on the same text, the way llama-perplexity
does it: the corpus is cut into windows of ``ctx`` tokens (each starting with BOS); only the second half
of each window is scored, so every scored token has at least ``ctx/2`` tokens of context.

The reference pass runs once and stores its log-probabilities for the scored positions in a float32
``.npy`` file (vocabulary x scored tokens x 4 bytes: 1 MiB per scored token for Gemma's 262,144 tokens),
memory-mapped so a large vocabulary does not need the RAM. Each quantized model is then compared
position by position: perplexity, KL divergence (mean and p99) and top-1 agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edge.bench.errors import BenchError

_BLOCK = 32  # scored rows compared at a time


@dataclass(frozen=True)
class Windows:
    """Token windows and which of their positions are scored (logits at i predict token i + 1)."""

    windows: list[list[int]]
    first_scored: int

    @property
    def scored_per_window(self) -> int:
        return len(self.windows[0]) - 1 - self.first_scored

    @property
    def n_scored(self) -> int:
        return self.scored_per_window * len(self.windows)


def make_windows(tokens: list[int], bos: int, ctx: int, chunks: int) -> Windows:
    """Up to ``chunks`` consecutive windows of ``ctx`` tokens; BOS + ``ctx - 1`` corpus tokens each."""
    if ctx < 8:
        raise BenchError(f"--ctx {ctx}: too short to score anything (at least 8)")
    body = ctx - 1
    available = len(tokens) // body
    if available < 1:
        raise BenchError(f"the corpus has {len(tokens)} tokens, fewer than one window of --ctx {ctx}")
    count = min(chunks, available)
    windows = [[bos] + tokens[i * body:(i + 1) * body] for i in range(count)]
    return Windows(windows, ctx // 2)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def scored_logprobs(model_path: Path, windows: Windows, threads: int, progress: bool,
                    label: str) -> Iterator[np.ndarray]:
    """Per window: log-probabilities (scored positions x vocab) from one model, loaded once."""
    from edge.runtime import llama

    from edge.bench.progress import bar

    model = llama.load_model(model_path)
    ctx = len(windows.windows[0])
    context = llama.new_context(model, llama.ContextOptions(n_ctx=ctx, n_batch=min(ctx, 512), n_threads=threads))
    try:
        for window in bar(windows.windows, progress, f"{label} logits", unit="window"):
            logits = llama.prompt_logits(model, context, window, n_batch=min(ctx, 512))
            yield log_softmax(logits[windows.first_scored:-1])
    finally:
        context.close()
        model.close()


def reference_pass(model_path: Path, windows: Windows, store: Path | None, threads: int, progress: bool) -> dict:
    """The reference's own perplexity; its log-probs go to ``store`` unless None (nothing to compare)."""
    rows = windows.scored_per_window
    stored = None
    nll = []
    for index, logprobs in enumerate(scored_logprobs(model_path, windows, threads, progress, "reference")):
        if store is not None:
            if stored is None:
                stored = np.lib.format.open_memmap(store, mode="w+", dtype=np.float32,
                                                   shape=(windows.n_scored, logprobs.shape[1]))
            stored[index * rows:(index + 1) * rows] = logprobs
        nll.append(-logprobs[np.arange(rows), _targets(windows, index)].astype(np.float64))
    if stored is not None:
        stored.flush()
        del stored
    return {"perplexity": float(np.exp(np.concatenate(nll).mean())), "scored_tokens": windows.n_scored}


def compare_pass(model_path: Path, windows: Windows, store: Path, threads: int, progress: bool,
                 label: str) -> dict:
    """Perplexity, KL(reference || model) mean and p99, top-1 agreement of one model vs the stored reference."""
    reference = np.load(store, mmap_mode="r")
    rows = windows.scored_per_window
    kld, nll, agree = [], [], []
    for index, logprobs in enumerate(scored_logprobs(model_path, windows, threads, progress, label)):
        if logprobs.shape[1] != reference.shape[1]:
            raise BenchError(f"{model_path}: vocabulary differs from the reference ({logprobs.shape[1]} vs "
                             f"{reference.shape[1]}): not a quantization of the same model")
        for start in range(0, rows, _BLOCK):  # blocks of rows bound the float64 copies for a 262k vocabulary
            ref = np.asarray(reference[index * rows + start:index * rows + min(start + _BLOCK, rows)], np.float64)
            mine = logprobs[start:start + _BLOCK].astype(np.float64)
            kld.append(np.maximum((np.exp(ref) * (ref - mine)).sum(axis=1), 0.0))
            agree.append(ref.argmax(axis=1) == mine.argmax(axis=1))
        nll.append(-logprobs[np.arange(rows), _targets(windows, index)].astype(np.float64))
    kld_all = np.concatenate(kld)
    return {"perplexity": float(np.exp(np.concatenate(nll).mean())), "kld_mean": float(kld_all.mean()),
            "kld_p99": float(np.percentile(kld_all, 99)), "top1_agreement": float(np.concatenate(agree).mean()),
            "scored_tokens": int(kld_all.size)}


def _targets(windows: Windows, index: int) -> np.ndarray:
    """The tokens the scored positions predict."""
    window = windows.windows[index]
    return np.asarray(window[windows.first_scored + 1:], dtype=np.int64)
