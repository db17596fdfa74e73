"""The one settings object, built from CLI flags over environment variables over defaults.

Every environment variable the runtime reads is listed in ``ENVIRONMENT`` below, and nowhere else.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from edge.runtime.hardware import ExtraBuffers, default_thread_count


def _cache_dir_default() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge"


@dataclass(frozen=True)
class Settings:
    model: str | None = None  # GGUF path, folder, or Hugging Face repo id[:quant]; None: the demo model
    mmproj: str | None = None
    model_alias: str | None = None  # the id clients send as "model"; defaults to the GGUF's file stem
    host: str = "127.0.0.1"
    port: int = 8080
    ctx_size: int = 8192
    batch_size: int = 512
    threads: int = 0  # 0: every CPU this process may run on
    n_gpu_layers: int = 0
    extra_bufts: ExtraBuffers = ExtraBuffers.AUTO
    kv_type: str = "f16"
    prefix_cache: bool = True
    max_body_bytes: int = 8 * 1024 * 1024
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    cache_dir: Path = _cache_dir_default()
    log_level: str = "info"

    @property
    def thread_count(self) -> int:
        return self.threads or default_thread_count()


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected a boolean (1/0, true/false, on/off), got {text!r}")


def _origins(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# environment variable -> (settings field, parser); the complete list of variables edge reads
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "EDGE_MODEL": ("model", str),
    "EDGE_MMPROJ": ("mmproj", str),
    "EDGE_MODEL_ALIAS": ("model_alias", str),
    "EDGE_HOST": ("host", str),
    "EDGE_PORT": ("port", int),
    "EDGE_CTX_SIZE": ("ctx_size", int),
    "EDGE_BATCH_SIZE": ("batch_size", int),
    "EDGE_THREADS": ("threads", int),
    "EDGE_N_GPU_LAYERS": ("n_gpu_layers", int),
    "EDGE_EXTRA_BUFTS": ("extra_bufts", ExtraBuffers),
    "EDGE_KV_TYPE": ("kv_type", str),
    "EDGE_PREFIX_CACHE": ("prefix_cache", _bool),
    "EDGE_MAX_BODY_BYTES": ("max_body_bytes", int),
    "EDGE_API_KEY": ("api_key", str),
    "EDGE_CORS_ORIGINS": ("cors_origins", _origins),
    "EDGE_CACHE_DIR": ("cache_dir", Path),
    "EDGE_LOG_LEVEL": ("log_level", str),
}


class SettingsError(ValueError):
    pass


def settings_from(args: argparse.Namespace | None = None,
                  environ: Mapping[str, str] = os.environ) -> Settings:
    """CLI flags (non-None attributes named like the fields) win over the environment."""
    values: dict[str, Any] = {}
    for variable, (field_name, parse) in ENVIRONMENT.items():
        if variable in environ and environ[variable] != "":
            try:
                values[field_name] = parse(environ[variable])
            except ValueError as exc:
                raise SettingsError(f"{variable}: {exc}") from exc
    for field in fields(Settings):
        flag_value = getattr(args, field.name, None) if args is not None else None
        if flag_value is not None:
            values[field.name] = flag_value
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    from edge.runtime.llama import KV_CACHE_TYPES

    if settings.ctx_size < 256:
        raise SettingsError(f"ctx_size must be at least 256, got {settings.ctx_size}")
    if settings.batch_size < 1:
        raise SettingsError(f"batch_size must be positive, got {settings.batch_size}")
    if settings.threads < 0:
        raise SettingsError(f"threads must be 0 (all) or positive, got {settings.threads}")
    if settings.kv_type not in KV_CACHE_TYPES:
        raise SettingsError(f"kv_type must be one of {', '.join(KV_CACHE_TYPES)}, got {settings.kv_type!r}")
    if not 0 < settings.port < 65536:
        raise SettingsError(f"port must be 1-65535, got {settings.port}")
