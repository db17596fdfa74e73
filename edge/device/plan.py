"""The memory budget of serving a model: what llama.cpp will allocate, term by term, before it allocates it.

Every term follows the vendored llama.cpp (llama-cpp-python 0.3.36, ``vendor/llama.cpp/src``):

- **KV cache** (llama-kv-cache.cpp, llama-kv-cache-iswa.cpp): one stream of ``ctx_size`` cells (padded to
  256, llama-context.cpp) per sequence, ``parallel`` streams. Each layer that owns a cache stores K and V rows of
  ``n_head_kv x head_dim`` elements per cell at ``--kv-type``; KV-shared layers (Gemma 4's last
  ``shared_kv_layers``) own none. Sliding-window layers are full size when ``swa_full`` is on (edge's default:
  a cached prefix can then be trimmed and reused); off, llama.cpp sizes each stream's to
  ``pad256(min(ctx_size, n_swa + n_ubatch))``. Without flash attention V is stored transposed and
  padded to the widest layer.
- **Output buffer** (llama_context::output_reserve): ``n_vocab x max(outputs, n_seq_max) x 4`` bytes of
  logits on the host; a serving step has one output per sequence, so it is ``n_vocab x parallel x 4``.
- **Compute buffers** (sched_reserve): the worst-case graph is reserved for ``n_ubatch`` tokens with one
  output per token, so its logits tensor alone is ``n_vocab x n_ubatch x 4`` bytes (512 MiB for Gemma's
  262,144-token vocabulary at batch 512). A GPU commits that reservation; on the CPU the buffer is plain
  ``malloc`` and only the pages a real step touches become resident: the attention masks
  (``n_kv x n_ubatch`` at f16) and one layer's activations at a full batch, plus one logits row per
  sequence. Both figures are reported; the verdict uses the committed one on a GPU and the resident one
  on the CPU.
- **Weights**: the tensor table's bytes per layer; the input embeddings (and the PLE table) stay on the CPU
  whatever ``--n-gpu-layers`` says (llama-model.cpp: "there is very little benefit to offloading the input
  layer"), layers ``n_layer - n_gpu_layers + 1 ..`` and then the output head go to the GPU, and a tied
  output head is duplicated there. On the CPU, weight types the backend repacks (``CPU_REPACK``) are
  copied once more; the memory-mapped originals stay resident.
- **Runtime**: the measured resident size of the Python process with edge, its server and llama.cpp's
  CPU backend loaded and no model, and the vocabulary's in-memory tables (measured per token).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edge.device.shape import Layer, ModelShape

MIB = 1024 * 1024
GIB = 1024 * MIB

# llama.cpp pads the context (and the SWA cache) to 256 cells
CELL_PADDING = 256
# bytes per element of each KV type (q8_0: 34-byte blocks of 32)
KV_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "q8_0": 34 / 32}

# Measured on this project's machines (x86-64, llama-cpp-python 0.3.36 CPU build, Python 3.11):
# `benchmarks/bench_plan.py --baseline` — peak RSS of `edge serve`'s imports, server and llama.cpp's CPU
# backend without a model (median of 5 runs).
RUNTIME_BASELINE_BYTES = 90 * MIB
# resident bytes per vocabulary entry once llama.cpp has loaded the vocabulary (token text, score, type,
# the text->id map): the demo model's 262,144 entries added 41.6 MiB of anonymous memory with weight
# repacking off, the tiny test model's 2,684 entries 0.7 MiB.
VOCAB_BYTES_PER_TOKEN = 166
# host bytes per image pixel while images are prepared and encoded (Pillow's decoded and fitted RGB
# copies, mtmd's bitmap, clip's normalised f32 image, and what the allocator keeps of them on each worker
# thread): `benchmarks/bench_plan.py --image-baseline` on the test model, the peak after 6 image requests
# less the vision graph's own buffer (24 after the first request; 32.3 after 6 and 32.5 after 12)
IMAGE_BYTES_PER_PIXEL = 32
# floats per token alive at a layer's peak during a full batch (residual, norm, FFN gate/up/product and
# the quantized-input work buffer), plus the per-layer embedding inputs that live through every layer
_ACTIVATION_EMBD = 3
_ACTIVATION_FF = 4
_ACTIVATION_PER_LAYER = 2


@dataclass(frozen=True)
class PlanConfig:
    """The settings the plan depends on; every one is a parameter of ``edge serve`` (see Settings)."""

    ctx_size: int = 8192
    parallel: int = 1
    batch_size: int = 512
    kv_type: str = "f16"
    swa_full: bool = True
    n_gpu_layers: int = 0
    flash_attn: bool = True  # llama.cpp's "auto" resolves to on for the CPU, CUDA, Metal and Vulkan backends
    repack_types: frozenset[str] = frozenset()  # ggml types the CPU backend repacks; empty when off
    image_tokens: int = 0  # largest image budget served (0: text only, or no projector)
    mmap: bool = True  # weights memory-mapped: clean file pages the kernel may drop and re-read
    cache_ram_mib: int = 0  # --cache-ram: conversations that lost their slot, kept in host memory (at most)

    @classmethod
    def from_settings(cls, settings, repack_types: frozenset[str] = frozenset(),
                      with_images: bool = True) -> PlanConfig:
        return cls(ctx_size=settings.ctx_size, parallel=getattr(settings, "parallel", 1),
                   batch_size=settings.batch_size, kv_type=settings.kv_type,
                   swa_full=getattr(settings, "swa_full", True), n_gpu_layers=settings.n_gpu_layers,
                   repack_types=repack_types, mmap=getattr(settings, "mmap", True),
                   cache_ram_mib=getattr(settings, "cache_ram", 0),
                   image_tokens=settings.image_high_tokens if with_images else 0)

    @property
    def n_cells(self) -> int:
        return _pad(self.ctx_size, CELL_PADDING) * self.parallel

    @property
    def n_ubatch(self) -> int:
        # llama.cpp: n_batch = min(n_ctx, n_batch) for causal models; edge sets n_ubatch = n_batch
        return min(self.batch_size, self.n_cells)


@dataclass(frozen=True)
class Term:
    name: str
    host: int = 0  # bytes in system memory
    device: int = 0  # bytes in GPU memory (a discrete GPU; on unified memory it is the same pool)
    detail: str = ""
    reclaimable: int = 0  # part of ``host`` that is clean file-backed pages the kernel may drop at will


@dataclass(frozen=True)
class MemoryPlan:
    model: str
    source: str
    config: PlanConfig
    terms: tuple[Term, ...]
    kv_cells: int
    swa_cells: int
    gpu_layers: int  # layers really on the GPU (the output head counts as one)
    n_ctx_train: int
    notes: tuple[str, ...] = ()

    @property
    def host(self) -> int:
        return sum(term.host for term in self.terms)

    @property
    def device(self) -> int:
        return sum(term.device for term in self.terms)

    @property
    def total(self) -> int:
        return self.host + self.device

    @property
    def needed(self) -> int:
        """Host bytes that must stay in memory: resident minus pages the kernel can drop and re-read."""
        return self.host - sum(term.reclaimable for term in self.terms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "source": self.source,
            "config": {**self.config.__dict__, "repack_types": sorted(self.config.repack_types),
                       "n_cells": self.config.n_cells, "n_ubatch": self.config.n_ubatch},
            "kv_cells": self.kv_cells, "swa_cells": self.swa_cells, "gpu_layers": self.gpu_layers,
            "n_ctx_train": self.n_ctx_train,
            "terms": [term.__dict__ for term in self.terms],
            "host_bytes": self.host, "device_bytes": self.device, "total_bytes": self.total,
            "host_needed_bytes": self.needed,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Budget:
    """Memory a plan may use: this machine's available memory, or a profile's device."""

    name: str
    host: int
    device: int | None = None  # a discrete GPU's free memory; None without one
    unified: bool = False  # host and GPU share one pool (Apple Silicon, Jetson)


@dataclass(frozen=True)
class Verdict:
    fits: bool
    budget: Budget
    used: int  # bytes of the tightest pool
    limit: int
    pool: str  # "system memory", "GPU memory" or "unified memory"
    largest_ctx: int | None = None  # the largest ctx_size that fits with the other settings unchanged
    host_used: int = 0
    device_used: int = 0

    @property
    def summary(self) -> str:
        if self.budget.device is not None and self.device_used:
            return (f"{self.device_used / GIB:.1f} GiB of {self.budget.device / GIB:.1f} GiB GPU memory and "
                    f"{self.host_used / GIB:.1f} GiB of {self.budget.host / GIB:.1f} GiB system memory")
        return f"{self.used / GIB:.1f} GiB of {self.limit / GIB:.1f} GiB {self.pool}"

    def to_dict(self) -> dict[str, Any]:
        return {"fits": self.fits, "budget": self.budget.__dict__, "used_bytes": self.used,
                "limit_bytes": self.limit, "pool": self.pool, "largest_ctx_size": self.largest_ctx,
                "summary": self.summary}


# ------------------------------------------------------------------------------------------------ terms

def plan_memory(shape: ModelShape, config: PlanConfig) -> MemoryPlan:
    on_gpu = _layers_on_gpu(shape.n_layer, config.n_gpu_layers)
    output_on_gpu = config.n_gpu_layers > shape.n_layer
    full_cells, swa_cells = kv_cells(shape, config)
    terms = (
        _weights_term(shape, config, on_gpu, output_on_gpu),
        _repack_term(shape, config, on_gpu),
        *_projector_terms(shape, config),
        _kv_term(shape, config, on_gpu, full_cells, swa_cells),
        _compute_term(shape, config, on_gpu, output_on_gpu, full_cells, swa_cells),
        Term("output (logits) buffer", host=shape.n_vocab * config.parallel * 4,
             detail=f"{shape.n_vocab:,} logits x {config.parallel} sequence(s) x 4 bytes"),
        Term("vocabulary tables", host=shape.n_vocab * VOCAB_BYTES_PER_TOKEN,
             detail=f"{shape.n_vocab:,} tokens x {VOCAB_BYTES_PER_TOKEN} bytes (measured)"),
        Term("runtime (Python, edge, llama.cpp)", host=RUNTIME_BASELINE_BYTES, detail="measured, no model loaded"),
        Term("conversations kept in host memory", host=config.cache_ram_mib * MIB,
             detail="--cache-ram, at most: it fills only as conversations lose their slot"),
    )
    notes = []
    if config.n_gpu_layers:
        notes.append("the GPU driver's own context (CUDA/Metal runtime, cuBLAS workspace) is not included")
    return MemoryPlan(shape.name, shape.source, config, tuple(term for term in terms if term.host or term.device),
                      full_cells, swa_cells, sum(on_gpu) + int(output_on_gpu), shape.n_ctx_train, tuple(notes))


def kv_cells(shape: ModelShape, config: PlanConfig) -> tuple[int, int]:
    """(cells of the full-attention cache, cells of the sliding-window cache)."""
    full = config.n_cells
    if config.swa_full or not shape.n_swa:
        return full, full
    # llama_kv_cache_iswa, one stream per sequence: the window plus one micro-batch, padded to 256
    per_stream = _pad(min(_pad(config.ctx_size, CELL_PADDING), shape.n_swa + config.n_ubatch), CELL_PADDING)
    return full, per_stream * config.parallel


def _layers_on_gpu(n_layer: int, n_gpu_layers: int) -> list[bool]:
    # llama-model.cpp: i_gpu_start = max(n_layer + 1 - n_gpu_layers, 0); layer il is offloaded from there
    first = max(n_layer + 1 - n_gpu_layers, 0)
    return [il >= first for il in range(n_layer)]


def _weights_term(shape: ModelShape, config: PlanConfig, on_gpu: list[bool], output_on_gpu: bool) -> Term:
    weights = shape.weights
    gpu_layers = sum(size for size, gpu in zip(weights.layers, on_gpu) if gpu)
    cpu_layers = sum(weights.layers) - gpu_layers
    output_device = weights.output + weights.tied_output if output_on_gpu else 0
    detail = f"{_mib(weights.total)} MiB of tensors"
    if weights.per_layer_table:
        detail += f", of which the per-layer embedding table {_mib(weights.per_layer_table)} MiB (on the CPU)"
    if output_on_gpu and weights.tied_output:
        detail += f"; the tied output head is copied to the GPU ({_mib(weights.tied_output)} MiB)"
    # a lookup table read one row per token: memory-mapped on the CPU, its pages may be dropped and read
    # back on demand (llama.cpp's lazy-read mode exists for exactly this table)
    droppable = weights.per_layer_table if config.mmap and not any(on_gpu) else 0
    return Term("weights", host=weights.input + cpu_layers + (0 if output_on_gpu else weights.output),
                device=gpu_layers + output_device, detail=detail, reclaimable=droppable)


def _repack_term(shape: ModelShape, config: PlanConfig, on_gpu: list[bool]) -> Term:
    repackable = sum(size for type_name, size in shape.weights.repackable.items()
                     if type_name in config.repack_types)
    layer_total = sum(shape.weights.layers) or 1
    cpu_share = sum(size for size, gpu in zip(shape.weights.layers, on_gpu) if not gpu) / layer_total
    # memory-mapped, the originals stay resident beside the copy but are never read again: the kernel may
    # drop them, so they count in RSS and not against the budget. Read without mmap, the copy replaces them.
    size = int(repackable * cpu_share) if config.mmap else 0
    types = ", ".join(sorted(config.repack_types & set(shape.weights.repackable))) or "none"
    return Term("repacked weight copies (CPU_REPACK)", host=size, reclaimable=size,
                detail=f"types repacked here: {types}; their mapped originals may be dropped")


def _projector_terms(shape: ModelShape, config: PlanConfig) -> tuple[Term, ...]:
    projector = shape.projector
    if projector is None:
        return ()
    # mtmd runs the vision tower on the GPU whenever the build has one and layers are offloaded
    on_gpu = config.n_gpu_layers > 0
    weights = Term("vision projector weights", host=0 if on_gpu else projector.weights,
                   device=projector.weights if on_gpu else 0, detail="mmproj tensors, loaded (not mapped)")
    if not config.image_tokens or not projector.hidden:
        return (weights,)
    patches = config.image_tokens * projector.merge * projector.merge
    pixels = patches * projector.patch_size * projector.patch_size
    # clip's graph: the f32 image as its input tensor, then per patch the residual, norms, Q/K/V and
    # attention output and the FFN pair (flash attention: no patches x patches score matrix)
    compute = patches * (projector.patch_size ** 2 * 3 * 4 + (6 * projector.hidden + 2 * projector.ff) * 4)
    return (weights,
            Term("vision encoder compute", host=0 if on_gpu else compute, device=compute if on_gpu else 0,
                 detail=f"{config.image_tokens} soft tokens = {patches:,} patches, flash attention"),
            Term("image buffers", host=pixels * IMAGE_BYTES_PER_PIXEL,
                 detail=f"{pixels:,} pixels decoded, fitted and normalised x {IMAGE_BYTES_PER_PIXEL} bytes (measured)"))


def _kv_term(shape: ModelShape, config: PlanConfig, on_gpu: list[bool], full_cells: int, swa_cells: int) -> Term:
    element = KV_TYPE_BYTES[config.kv_type]
    kv_layers = [layer for layer in shape.layers if layer.has_kv]
    widest_v = max((layer.v_width for layer in kv_layers), default=0)
    host = device = 0
    for layer, gpu in zip(shape.layers, on_gpu):
        if not layer.has_kv:
            continue
        cells = swa_cells if layer.sliding else full_cells
        # without flash attention V is stored transposed and padded to the widest layer (TAG_V_CACHE_VARIABLE)
        v_width = layer.v_width if config.flash_attn else widest_v
        size = int(cells * (layer.k_width + v_width) * element)
        device += size if gpu else 0
        host += 0 if gpu else size
    shared = shape.n_layer - len(kv_layers)
    sliding = sum(layer.sliding for layer in kv_layers)
    detail = (f"{full_cells:,} cells ({config.ctx_size:,} x {config.parallel}), {len(kv_layers)} layers "
              f"({sliding} sliding at {swa_cells:,} cells), {shared} KV-shared layers own none, {config.kv_type}")
    return Term("KV cache", host=host, device=device, detail=detail)


def _compute_term(shape: ModelShape, config: PlanConfig, on_gpu: list[bool], output_on_gpu: bool,
                  full_cells: int, swa_cells: int) -> Term:
    reserved_layers = layer_phase_bytes(shape, config, full_cells, swa_cells)
    logits_reserved = shape.n_vocab * config.n_ubatch * 4 + shape.n_embd * config.n_ubatch * 4 * 2
    logits_serving = shape.n_vocab * config.parallel * 4
    if not any(on_gpu):
        reserved = max(reserved_layers, logits_reserved)
        resident = reserved_layers + logits_serving
        return Term("compute buffers", host=resident,
                    detail=f"touched at a full batch; {_mib(reserved)} MiB reserved (logits for "
                           f"{config.n_ubatch} rows: {_mib(logits_reserved)} MiB), never all resident on a CPU")
    device = max(reserved_layers, logits_reserved if output_on_gpu else 0)
    # the host keeps the input embeddings' output and, with the head on the CPU, the logits
    host = shape.n_embd * config.n_ubatch * 4 * 2 + (0 if output_on_gpu else logits_reserved)
    return Term("compute buffers", host=host, device=device,
                detail=f"reserved for {config.n_ubatch} tokens (the GPU commits the reservation)")


def layer_phase_bytes(shape: ModelShape, config: PlanConfig, full_cells: int, swa_cells: int) -> int:
    """The graph's peak while the layers run: masks, one layer's activations, attention scores without FA."""
    n_ubatch = config.n_ubatch
    mask_element = 2 if config.flash_attn else 4
    has_swa = any(layer.sliding for layer in shape.layers)
    masks = (full_cells + (swa_cells if has_swa else 0)) * n_ubatch * mask_element
    per_token = max(_activation_floats(shape, layer) for layer in shape.layers) if shape.layers else 0
    scores = 0 if config.flash_attn else max(
        (2 * (swa_cells if layer.sliding else full_cells) * n_ubatch * layer.n_head * 4 for layer in shape.layers),
        default=0)
    return masks + per_token * n_ubatch * 4 + scores


def _activation_floats(shape: ModelShape, layer: Layer) -> int:
    return (_ACTIVATION_EMBD * shape.n_embd + _ACTIVATION_FF * layer.n_ff
            + _ACTIVATION_PER_LAYER * shape.n_embd_per_layer * shape.n_layer)


# ----------------------------------------------------------------------------------------------- verdict

def verdict(shape: ModelShape, config: PlanConfig, budget: Budget) -> Verdict:
    plan = plan_memory(shape, config)
    fits, used, limit, pool = _fits(plan, budget)
    return Verdict(fits, budget, used, limit, pool, largest_context(shape, config, budget), plan.needed, plan.device)


def _fits(plan: MemoryPlan, budget: Budget) -> tuple[bool, int, int, str]:
    if budget.unified or (plan.device and budget.device is None):
        used = plan.needed + plan.device
        pool = "unified memory" if budget.unified else "system memory (no GPU here: GPU terms counted in it)"
        return used <= budget.host, used, budget.host, pool
    if plan.device and budget.device is not None and plan.device > budget.device:
        return False, plan.device, budget.device, "GPU memory"
    return plan.needed <= budget.host, plan.needed, budget.host, "system memory"


def largest_context(shape: ModelShape, config: PlanConfig, budget: Budget) -> int | None:
    """Binary search over ctx_size (multiples of 256, up to the trained context) holding the rest fixed."""
    def fits(ctx: int) -> bool:
        return _fits(plan_memory(shape, replace(config, ctx_size=ctx)), budget)[0]

    low, high = 1, max(1, shape.n_ctx_train // CELL_PADDING)
    if not fits(low * CELL_PADDING):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle * CELL_PADDING) else (low, middle - 1)
    return low * CELL_PADDING


# ---------------------------------------------------------------------------------------------- helpers

def _pad(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def _mib(size: int) -> str:
    return f"{size / MIB:,.1f}"


def format_plan(plan: MemoryPlan, result: Verdict | None = None) -> str:
    config = plan.config
    lines = [f"edge plan: {plan.model} ({plan.source})",
             f"  ctx {config.ctx_size:,} x {config.parallel} sequence(s), batch {config.batch_size}, "
             f"KV {config.kv_type}, SWA {'full' if config.swa_full else 'window'}, "
             f"{plan.gpu_layers} layer(s) on the GPU, flash attention {'on' if config.flash_attn else 'off'}",
             "", f"  {'term':<38} {'host MiB':>10} {'GPU MiB':>10}  detail"]
    for term in plan.terms:
        lines.append(f"  {term.name:<38} {_mib(term.host):>10} {_mib(term.device):>10}  {term.detail}")
    lines.append(f"  {'total':<38} {_mib(plan.host):>10} {_mib(plan.device):>10}  = {plan.total / GIB:.2f} GiB")
    if plan.needed != plan.host:
        lines.append(f"  {'host memory needed':<38} {_mib(plan.needed):>10} {'':>10}  resident minus droppable pages")
    lines += [f"  note: {note}" for note in plan.notes]
    if result is not None:
        lines.append("")
        state = "fits" if result.fits else "does NOT fit"
        lines.append(f"verdict for {result.budget.name}: {state} — {result.summary}")
        if result.largest_ctx is None:
            lines.append("  no context fits with these settings")
        else:
            lines.append(f"  largest ctx-size that fits with these settings: {result.largest_ctx:,}"
                         + (" (the trained context)" if result.largest_ctx >= plan.n_ctx_train else ""))
    return "\n".join(lines)
