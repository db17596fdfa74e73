"""The memory plan's terms, from a known architecture and from real GGUF metadata (no llama.cpp load here;
tests/integration/test_plan_llama.py checks the same terms against what llama.cpp allocates)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edge.device.plan import (GIB, MIB, Budget, PlanConfig, kv_cells, largest_context, plan_memory,
                              verdict)
from edge.device.shape import gemma4_e4b_parameters, gemma4_e4b_shape, shape_from_gguf

E4B = gemma4_e4b_shape("Q4_K_M")


def term(plan, name):
    return next(item for item in plan.terms if item.name == name)


def test_e4b_architecture_matches_its_published_facts():
    assert gemma4_e4b_parameters() == 7_517_503_488  # the "8 B with embeddings" (7.52 B) model
    assert E4B.n_layer == 42 and E4B.n_vocab == 262_144 and E4B.n_ctx_train == 131_072
    assert [il for il, layer in enumerate(E4B.layers) if not layer.sliding] == [5, 11, 17, 23, 29, 35, 41]
    assert [il for il, layer in enumerate(E4B.layers) if not layer.has_kv] == list(range(24, 42))
    # llama.cpp needs the last layer with a cache to be global and the one before it sliding
    assert (E4B.layers[23].sliding, E4B.layers[22].sliding) == (False, True)
    assert {(layer.k_width, layer.head_dim) for layer in E4B.layers} == {(512, 256), (1024, 512)}
    assert E4B.weights.total / GIB == pytest.approx(5.0, abs=0.05)  # the published Q4_K_M file size
    assert gemma4_e4b_shape("Q4_0").weights.total / 1e9 == pytest.approx(4.27, abs=0.02)
    assert gemma4_e4b_shape("Q8_0").weights.total / 1e9 == pytest.approx(8.0, abs=0.05)


def test_kv_cache_counts_only_layers_that_own_one():
    plan = plan_memory(E4B, PlanConfig(ctx_size=8192))
    # 20 sliding layers x (512 K + 512 V) + 4 global layers x (1024 + 1024), 2 bytes each, per cell
    assert term(plan, "KV cache").host == 8192 * (20 * 1024 + 4 * 2048) * 2 == 448 * MIB
    q8 = plan_memory(E4B, PlanConfig(ctx_size=8192, kv_type="q8_0"))
    assert term(q8, "KV cache").host == int(8192 * 28672 * 34 / 32)


def test_parallel_sequences_share_one_unified_cache_of_ctx_times_parallel_cells():
    one = plan_memory(E4B, PlanConfig(ctx_size=8192))
    four = plan_memory(E4B, PlanConfig(ctx_size=8192, parallel=4))
    assert four.kv_cells == 4 * 8192
    assert term(four, "KV cache").host == 4 * term(one, "KV cache").host
    assert term(four, "output (logits) buffer").host == 4 * 262_144 * 4


def test_sliding_window_layers_shrink_to_the_window_when_swa_full_is_off():
    config = PlanConfig(ctx_size=32768, swa_full=False)
    # llama_kv_cache_iswa, one stream per sequence: pad256(min(ctx_size, n_swa + n_ubatch)) per stream
    assert kv_cells(E4B, config) == (32768, 1024)
    assert kv_cells(E4B, replace(config, parallel=4)) == (131072, 4 * 1024)
    assert kv_cells(E4B, replace(config, ctx_size=1000)) == (1024, 1024)  # padded context, capped window
    windowed = term(plan_memory(E4B, config), "KV cache").host
    assert windowed == 1024 * 20 * 1024 * 2 + 32768 * 4 * 2048 * 2


def test_cells_are_padded_to_256_and_batch_is_capped_by_the_context():
    config = PlanConfig(ctx_size=1000, batch_size=2048)
    assert (config.n_cells, config.n_ubatch) == (1024, 1024)


def test_compute_buffer_reserves_a_logits_row_per_batch_token_but_a_cpu_touches_one_per_sequence():
    plan = plan_memory(E4B, PlanConfig(ctx_size=8192, batch_size=512))
    compute = term(plan, "compute buffers")
    assert "reserved (logits for 512 rows: 522.0 MiB)" in compute.detail  # 262,144 x 512 x 4 + two norms
    assert compute.host < 300 * MIB
    small_batch = term(plan_memory(E4B, PlanConfig(ctx_size=8192, batch_size=128)), "compute buffers")
    assert small_batch.host < compute.host


def test_gpu_layers_follow_llama_cpps_assignment():
    total_layers = sum(E4B.weights.layers)
    ten = plan_memory(E4B, PlanConfig(ctx_size=4096, n_gpu_layers=10))
    # i_gpu_start = n_layer + 1 - n_gpu_layers = 33: layers 33..41 offloaded, the output head not
    assert ten.gpu_layers == 9
    assert term(ten, "weights").device == sum(E4B.weights.layers[33:])
    full = plan_memory(E4B, PlanConfig(ctx_size=4096, n_gpu_layers=99))
    weights = term(full, "weights")
    assert full.gpu_layers == 43
    assert weights.device == total_layers + E4B.weights.output + E4B.weights.tied_output  # tied head copied
    assert weights.host == E4B.weights.input  # the embeddings and the PLE table stay on the CPU
    assert term(full, "KV cache").host == 0 and term(full, "KV cache").device > 0
    assert term(full, "compute buffers").device >= 262_144 * 512 * 4  # a GPU commits the reservation


def test_without_flash_attention_v_is_padded_to_the_widest_layer():
    with_fa = term(plan_memory(E4B, PlanConfig(ctx_size=4096)), "KV cache").host
    without = term(plan_memory(E4B, PlanConfig(ctx_size=4096, flash_attn=False)), "KV cache").host
    assert without - with_fa == 4096 * 20 * (1024 - 512) * 2


def test_repacked_copies_count_in_rss_but_not_against_the_budget():
    plan = plan_memory(E4B, PlanConfig(ctx_size=4096, repack_types=frozenset({"Q4_K", "Q4_0"})))
    copies = term(plan, "repacked weight copies (CPU_REPACK)")
    assert copies.host == copies.reclaimable > 0
    assert plan.needed == plan.host - copies.reclaimable - term(plan, "weights").reclaimable
    assert term(plan, "weights").reclaimable == E4B.weights.per_layer_table  # mapped lookup table
    none = plan_memory(E4B, PlanConfig(ctx_size=4096, mmap=False))
    assert none.needed == none.host


def test_images_add_the_encoder_and_pixel_buffers_only_when_served():
    text = plan_memory(E4B, PlanConfig(ctx_size=4096))
    images = plan_memory(E4B, PlanConfig(ctx_size=4096, image_tokens=1120))
    names = {item.name for item in images.terms} - {item.name for item in text.terms}
    assert names == {"vision encoder compute", "image buffers"}
    assert "10,080 patches" in term(images, "vision encoder compute").detail
    assert term(text, "vision projector weights").host == 987_000_000


def test_largest_context_is_the_edge_of_the_budget():
    budget = Budget("small", host=6 * GIB)
    config = PlanConfig(ctx_size=4096)
    best = largest_context(E4B, config, budget)
    assert best is not None and best % 256 == 0
    assert verdict(E4B, replace(config, ctx_size=best), budget).fits
    assert not verdict(E4B, replace(config, ctx_size=best + 256), budget).fits
    assert largest_context(E4B, config, Budget("tiny", host=GIB)) is None
    assert largest_context(E4B, config, Budget("huge", host=1 << 50)) == 131_072


def test_verdict_checks_the_right_pool():
    config = PlanConfig(ctx_size=8192, n_gpu_layers=99)
    plan = plan_memory(E4B, config)
    small_gpu = verdict(E4B, config, Budget("4 GB card", host=64 * GIB, device=4 * GIB))
    assert not small_gpu.fits and small_gpu.pool == "GPU memory" and small_gpu.used == plan.device
    unified = verdict(E4B, config, Budget("8 GB board", host=8 * GIB, unified=True))
    assert unified.used == plan.needed + plan.device and unified.pool == "unified memory"
    assert "GiB GPU memory and" in verdict(E4B, config, Budget("24 GB card", 64 * GIB, 24 * GIB)).summary


def test_a_gguf_shape_reads_layers_vocabulary_and_tensor_bytes(demo_model_path):
    demo = shape_from_gguf(demo_model_path)
    assert (demo.architecture, demo.n_layer, demo.n_vocab, demo.n_swa) == ("gemma3", 18, 262_144, 512)
    assert [il for il, layer in enumerate(demo.layers) if not layer.sliding] == [5, 11, 17]  # every 6th
    assert all(layer.has_kv and layer.k_width == 256 for layer in demo.layers)
    assert demo.weights.tied_output == demo.weights.input  # no output.weight: the embedding is the head
    assert demo.weights.repackable["Q4_K"] == 13_271_040  # the 12.66 MiB llama.cpp reports as CPU_REPACK
    plan = plan_memory(demo, PlanConfig(ctx_size=2048))
    assert json.loads(json.dumps(plan.to_dict()))["kv_cells"] == 2048


def test_the_conversation_cache_is_planned_at_its_limit_and_absent_when_off():
    kept = plan_memory(E4B, PlanConfig(cache_ram_mib=1024))
    assert term(kept, "conversations kept in host memory").host == 1024 * MIB
    off = plan_memory(E4B, PlanConfig(cache_ram_mib=0))
    assert all(item.name != "conversations kept in host memory" for item in off.terms)
    assert kept.needed - off.needed == 1024 * MIB
