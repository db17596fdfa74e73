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


def _chat_history_default() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "edge" / "chat_history"


@dataclass(frozen=True)
class Settings:
    model: str | None = None  # GGUF path, folder, or Hugging Face repo id[:quant]; None: the demo model
    mmproj: str | None = None
    # more ids clients may send as "model", besides the GGUF's file stem (the first is the one reported)
    model_alias: tuple[str, ...] = ()
    any_model: bool = False  # serve any "model" name with the one model (front ends that send fixed names)
    host: str = "127.0.0.1"
    port: int = 8080
    ctx_size: int = 8192
    batch_size: int = 512
    threads: int = 0  # 0: every CPU this process may run on
    n_gpu_layers: int = 0
    extra_bufts: ExtraBuffers = ExtraBuffers.AUTO
    kv_type: str = "f16"
    prefix_cache: bool = True
    parallel: int = 4  # sequences decoded together, each with its own ctx_size window of the KV cache
    swa_full: bool = True  # sliding-window layers keep every position (prefix reuse after long turns)
    persist_cache: bool = False  # save the cached conversations at shutdown, restore them at start
    # MiB of host memory for conversations that lost their slot to another one; restoring one is a memory
    # copy where evaluating it again is a prefill (about 4 conversations of 4K tokens on Gemma 4 E4B)
    cache_ram: int = 1024
    mmap: bool = True  # memory-map the GGUF (pages load on demand and can be shared)
    mlock: bool = False  # lock the weights in RAM so the OS never pages them out
    profile: str | None = None  # the device profile under flags and environment (edge/device/profiles)
    max_body_bytes: int = 32 * 1024 * 1024  # a 20 MiB image is ~27 MiB of base64 JSON
    api_key: str | None = None
    api_key_file: Path | None = None  # name=key lines; keeps keys out of `ps`; reloaded on SIGHUP
    cors_origins: tuple[str, ...] = ()
    ui: bool = True  # the chat page at /
    cache_dir: Path = _cache_dir_default()
    chat_history: Path = _chat_history_default()  # the lines typed into `edge chat`, for Up and Ctrl-R
    log_level: str = "info"
    log_format: str = "text"  # text or json (one JSON object per line)
    # backpressure and limits (edge/server/lifecycle.py, edge/server/guard.py)
    # waiting requests beyond the running ones: at ~15 s per answer on a laptop CPU the last of 8 waits
    # about 2 minutes, well inside the SDKs' 10-minute timeout; past that a quick 429 serves clients better
    max_queue: int = 8
    request_timeout: float = 600.0  # a request's wall time, s (0: none); the SDKs give up after 600 s
    shutdown_grace: float = 8.0  # s for running generations at SIGTERM; + 2 s fits `docker stop`'s 10 s
    header_timeout: float = 10.0  # s from a request's first byte to the end of its headers
    body_timeout: float = 60.0  # s to receive a body (32 MiB at ~4 Mbit/s)
    idle_timeout: float = 30.0  # s an idle keep-alive connection stays open; longer than clients' 5 s pools
    max_connections: int = 256  # open connections; well under the usual 1024 file descriptors
    # images (edge/runtime/images.py documents each limit)
    image_max_bytes: int = 20 * 1024 * 1024
    image_max_pixels: int = 50_000_000
    image_max_count: int = 16
    image_dirs: tuple[Path, ...] = ()  # file:// URLs are refused unless inside one of these
    remote_images: bool = False  # http(s) image URLs are refused unless this is on
    image_fetch_timeout: float = 10.0
    image_auto_tokens: int = 280
    image_high_tokens: int = 1120
    # lets image URLs reach loopback/LAN addresses: only for tests or a trusted private network
    remote_images_allow_private: bool = False

    def image_policy(self):
        from edge.runtime.images import ImagePolicy

        return ImagePolicy(max_bytes=self.image_max_bytes, max_pixels=self.image_max_pixels,
                           max_images=self.image_max_count, allowed_dirs=self.image_dirs,
                           remote_fetch=self.remote_images, fetch_timeout_s=self.image_fetch_timeout,
                           remote_max_bytes=self.image_max_bytes, auto_tokens=self.image_auto_tokens,
                           high_tokens=self.image_high_tokens,
                           allow_private_networks=self.remote_images_allow_private)

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


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(Path(part) for part in text.split(os.pathsep) if part.strip())


# environment variable -> (settings field, parser); the complete list of variables edge reads
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "EDGE_MODEL": ("model", str),
    "EDGE_MMPROJ": ("mmproj", str),
    "EDGE_MODEL_ALIAS": ("model_alias", _names),
    "EDGE_ANY_MODEL": ("any_model", _bool),
    "EDGE_HOST": ("host", str),
    "EDGE_PORT": ("port", int),
    "EDGE_CTX_SIZE": ("ctx_size", int),
    "EDGE_BATCH_SIZE": ("batch_size", int),
    "EDGE_THREADS": ("threads", int),
    "EDGE_N_GPU_LAYERS": ("n_gpu_layers", int),
    "EDGE_EXTRA_BUFTS": ("extra_bufts", ExtraBuffers),
    "EDGE_KV_TYPE": ("kv_type", str),
    "EDGE_PREFIX_CACHE": ("prefix_cache", _bool),
    "EDGE_PARALLEL": ("parallel", int),
    "EDGE_SWA_FULL": ("swa_full", _bool),
    "EDGE_PERSIST_CACHE": ("persist_cache", _bool),
    "EDGE_CACHE_RAM": ("cache_ram", int),
    "EDGE_PROFILE": ("profile", str),
    "EDGE_MMAP": ("mmap", _bool),
    "EDGE_MLOCK": ("mlock", _bool),
    "EDGE_MAX_BODY_BYTES": ("max_body_bytes", int),
    "EDGE_API_KEY": ("api_key", str),
    "EDGE_API_KEY_FILE": ("api_key_file", Path),
    "EDGE_CORS_ORIGINS": ("cors_origins", _origins),
    "EDGE_UI": ("ui", _bool),
    "EDGE_CACHE_DIR": ("cache_dir", Path),
    "EDGE_CHAT_HISTORY": ("chat_history", Path),
    "EDGE_LOG_LEVEL": ("log_level", str),
    "EDGE_LOG_FORMAT": ("log_format", str),
    "EDGE_MAX_QUEUE": ("max_queue", int),
    "EDGE_REQUEST_TIMEOUT": ("request_timeout", float),
    "EDGE_SHUTDOWN_GRACE": ("shutdown_grace", float),
    "EDGE_HEADER_TIMEOUT": ("header_timeout", float),
    "EDGE_BODY_TIMEOUT": ("body_timeout", float),
    "EDGE_IDLE_TIMEOUT": ("idle_timeout", float),
    "EDGE_MAX_CONNECTIONS": ("max_connections", int),
    "EDGE_IMAGE_MAX_BYTES": ("image_max_bytes", int),
    "EDGE_IMAGE_MAX_PIXELS": ("image_max_pixels", int),
    "EDGE_IMAGE_MAX_COUNT": ("image_max_count", int),
    "EDGE_IMAGE_DIRS": ("image_dirs", _paths),
    "EDGE_REMOTE_IMAGES": ("remote_images", _bool),
    "EDGE_IMAGE_FETCH_TIMEOUT": ("image_fetch_timeout", float),
    "EDGE_IMAGE_AUTO_TOKENS": ("image_auto_tokens", int),
    "EDGE_IMAGE_HIGH_TOKENS": ("image_high_tokens", int),
    "EDGE_REMOTE_IMAGES_ALLOW_PRIVATE": ("remote_images_allow_private", _bool),
}


class SettingsError(ValueError):
    pass


def settings_from(args: argparse.Namespace | None = None,
                  environ: Mapping[str, str] = os.environ) -> Settings:
    """CLI flags (non-None attributes named like the fields) win over the environment, which wins over a
    device profile (``--profile`` / ``EDGE_PROFILE``), which wins over the defaults."""
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
            values[field.name] = tuple(flag_value) if isinstance(flag_value, list) else flag_value
    if values.get("profile"):
        values = {**_profile_values(values["profile"]), **values}
    settings = Settings(**values)
    _check(settings)
    return settings


def _profile_values(name: str) -> dict[str, Any]:
    from edge.device.profiles import ProfileError, load_profile

    try:
        return dict(load_profile(name).settings)
    except ProfileError as exc:
        raise SettingsError(str(exc)) from exc


def _check(settings: Settings) -> None:
    from edge.runtime.llama import KV_CACHE_TYPES

    if settings.ctx_size < 256:
        raise SettingsError(f"ctx_size must be at least 256, got {settings.ctx_size}")
    if settings.batch_size < 1:
        raise SettingsError(f"batch_size must be positive, got {settings.batch_size}")
    if not 1 <= settings.parallel <= 64:
        raise SettingsError(f"parallel must be 1-64, got {settings.parallel}")
    if settings.cache_ram < 0:
        raise SettingsError(f"cache_ram must be 0 (off) or more MiB, got {settings.cache_ram}")
    if settings.threads < 0:
        raise SettingsError(f"threads must be 0 (all) or positive, got {settings.threads}")
    if settings.kv_type not in KV_CACHE_TYPES:
        raise SettingsError(f"kv_type must be one of {', '.join(KV_CACHE_TYPES)}, got {settings.kv_type!r}")
    if not 0 < settings.port < 65536:
        raise SettingsError(f"port must be 1-65535, got {settings.port}")
    _check_serving(settings)
    try:
        settings.image_policy()
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc


def _check_serving(settings: Settings) -> None:
    if settings.max_queue < 0:
        raise SettingsError(f"max_queue must be 0 or more, got {settings.max_queue}")
    if settings.max_connections < 1:
        raise SettingsError(f"max_connections must be positive, got {settings.max_connections}")
    if settings.request_timeout < 0 or settings.shutdown_grace < 0:
        raise SettingsError("request_timeout and shutdown_grace must be 0 or more")
    for name in ("header_timeout", "body_timeout", "idle_timeout"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive, got {getattr(settings, name)}")
    if settings.log_format not in ("text", "json"):
        raise SettingsError(f"log_format must be text or json, got {settings.log_format!r}")
    if any(not alias for alias in settings.model_alias):
        raise SettingsError("a model alias must not be empty")
