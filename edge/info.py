"""``edge info``: what is loaded and what this machine's llama.cpp can do."""

from __future__ import annotations

from typing import Any

from edge import __version__
from edge.runtime.engine import Engine
from edge.runtime.hardware import describe_machine, extra_buffers_decision

# metadata keys worth showing; the rest (tokenizer tables, templates) are long and internal
_METADATA_KEYS = ("general.architecture", "general.name", "general.file_type", "general.quantization_version",
                  "general.size_label", "general.basename")


def describe(engine: Engine) -> dict[str, Any]:
    info = engine.info
    import llama_cpp

    repack = extra_buffers_decision(engine.config.load.extra_buffers)
    return {
        "edge_version": __version__,
        "llama_cpp_python_version": llama_cpp.__version__,
        "model": {
            "id": info.id, "path": str(info.path), "mmproj": str(info.mmproj) if info.mmproj else None,
            "origin": info.origin, "architecture": info.architecture, "description": info.description,
            "chat_format": info.chat_format, "parameters": info.n_params, "size_bytes": info.size_bytes,
            "context_trained": info.n_ctx_train, "context_served": info.n_ctx,
            "has_chat_template": "tokenizer.chat_template" in info.metadata,
            "weight_buffers_mib": info.weight_buffers,
            "metadata": {key: info.metadata[key] for key in _METADATA_KEYS if key in info.metadata},
        },
        "runtime": {"threads": engine.config.threads, "batch_size": engine.config.batch_size,
                    "parallel": engine.config.parallel, "kv_type": engine.config.kv_type,
                    "kv_cells": engine.config.kv_cells, "kv_swa_full": engine.config.swa_full,
                    "kv_cache_mib": round(info.kv_cache_mib, 2),
                    "kv_cache_mib_per_slot": round(info.kv_cache_mib / engine.config.parallel, 2),
                    "cache_ram_mib": engine.config.cache_ram_mib,
                    "weight_repacking": repack.enabled, "weight_repacking_reason": repack.reason},
        "hardware": describe_machine(),
    }


def format_description(description: dict[str, Any], indent: str = "") -> str:
    lines = []
    for key, value in description.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(format_description(value, indent + "  "))
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(lines)
