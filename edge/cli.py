"""``edge serve | chat | info | convert | quantize | bench | doctor | plan | pull | list``.

Flags override environment variables (edge/settings.py lists them all), which override defaults.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from edge import __version__
from edge.runtime.hardware import ExtraBuffers


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", "-m", help="GGUF file, folder, model name (gemma-4-e4b[:QUANT], see edge list "
                                             "--known) or Hugging Face repo id[:QUANT] (default: the embedded demo model)")
    group.add_argument("--mmproj", help="vision projector GGUF (default: found beside the model)")
    group.add_argument("--model-alias", action="append",
                       help="another id the model answers to, besides its GGUF file name (and gemma-4-e4b/e2b for "
                            "those models); repeatable (default: none)")
    group.add_argument("--ctx-size", "-c", type=int, help="context window in tokens (default 8192)")
    group.add_argument("--batch-size", "-b", type=int, help="prompt tokens per llama.cpp batch (default 512)")
    group.add_argument("--threads", "-t", type=int, help="CPU threads (default: all available CPUs)")
    group.add_argument("--n-gpu-layers", "-ngl", type=int, help="layers to offload to a GPU (default 0)")
    group.add_argument("--kv-type", choices=["f32", "f16", "q8_0"], help="KV cache type (default f16)")
    group.add_argument("--parallel", "-np", type=int,
                       help="sequences decoded together; the KV cache holds parallel x ctx-size tokens (default 4)")
    group.add_argument("--swa-full", dest="swa_full", action=argparse.BooleanOptionalAction, default=None,
                       help="keep every position in the sliding-window layers, so a cached prefix can be "
                            "reused after long turns (default on; off saves memory)")
    group.add_argument("--persist-cache", dest="persist_cache", action="store_const", const=True,
                       help="save the cached conversations in --cache-dir at shutdown and restore them at start, "
                            "so a restarted server skips re-reading its system prompt (default off)")
    group.add_argument("--cache-ram", type=int, metavar="MIB",
                       help="host memory for conversations that lost their slot to another, restored instead "
                            "of evaluated again when they continue; 0: off (default 1024)")
    group.add_argument("--extra-bufts", type=ExtraBuffers, choices=[choice.value for choice in ExtraBuffers],
                       help="llama.cpp weight repacking: auto turns it off where AMX kernels would crash (default auto)")
    group.add_argument("--profile", help="device profile under the flags and environment: laptop-cpu, "
                                         "apple-silicon-16gb, jetson-orin-nano-8gb, ... (default: none)")
    group.add_argument("--no-mmap", dest="mmap", action="store_const", const=False,
                       help="read the weights into memory instead of memory-mapping the GGUF")
    group.add_argument("--mlock", action="store_const", const=True, help="lock the weights in RAM")
    group.add_argument("--cache-dir", type=Path, help="where the demo model is assembled (default ~/.cache/edge)")
    group.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="(default info)")
    group.add_argument("--log-format", choices=["text", "json"], help="log lines as text or JSON objects (default text)")


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8080)")
    parser.add_argument("--api-key", help="require this key (Authorization: Bearer or x-api-key); visible in ps: "
                                          "prefer --api-key-file or EDGE_API_KEY (default: none)")
    parser.add_argument("--api-key-file", type=Path,
                        help="named keys, one name=key per line; reloaded on SIGHUP (default: none)")
    parser.add_argument("--any-model", action="store_const", const=True,
                        help="serve every model name with the served model (default: unknown names are 404)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-queue", type=int, help="requests waiting beyond the running ones; more get 429 "
                                                       "(default 8)")
    limits.add_argument("--request-timeout", type=float, help="wall-time limit of a request in s, 0: none (default 600 s)")
    limits.add_argument("--shutdown-grace", type=float,
                        help="s running generations may finish after SIGTERM/SIGINT (default 8 s)")
    limits.add_argument("--header-timeout", type=float, help="s to send the request headers (default 10 s)")
    limits.add_argument("--body-timeout", type=float, help="s to send the request body (default 60 s)")
    limits.add_argument("--idle-timeout", type=float, help="s an idle keep-alive connection stays open (default 30 s)")
    limits.add_argument("--max-connections", type=int, help="open connections; more are refused (default 256)")
    parser.add_argument("--max-body-bytes", type=int, help="largest request body accepted (default 32 MiB)")
    parser.add_argument("--cors-origins", type=lambda text: tuple(text.split(",")),
                        help="comma-separated origins allowed by CORS (default: none)")
    parser.add_argument("--no-ui", dest="ui", action="store_const", const=False,
                        help="do not serve the chat page at /")
    parser.add_argument("--no-prefix-cache", dest="prefix_cache", action="store_const", const=False,
                        help="evaluate every prompt from scratch instead of reusing a shared prefix")
    images = parser.add_argument_group("images")
    images.add_argument("--image-dirs", type=lambda text: tuple(Path(p) for p in text.split(os.pathsep)),
                        help=f"{os.pathsep}-separated directories file:// image URLs may read (default: none)")
    images.add_argument("--remote-images", action="store_const", const=True,
                        help="fetch http(s) image URLs (public addresses only, no redirects)")
    images.add_argument("--image-max-bytes", type=int, help="largest image in bytes (default 20 MiB)")
    images.add_argument("--image-max-pixels", type=int, help="largest image in pixels (default 50,000,000)")
    images.add_argument("--image-max-count", type=int, help="images per request (default 16)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description="Gemma on the device, over the hosted APIs.")
    parser.add_argument("--version", action="version", version=f"edge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the OpenAI and Anthropic HTTP APIs")
    _model_arguments(serve)
    _serve_arguments(serve)
    serve.set_defaults(handler=run_serve)

    chat = commands.add_parser("chat", help="chat with the model in this terminal (/help inside lists commands)")
    _model_arguments(chat)
    chat.add_argument("--url", help="chat with a running server (e.g. http://127.0.0.1:8080) instead of "
                                    "loading the model; --model-alias picks one of its models")
    chat.add_argument("--api-key", help="the key of the server given by --url")
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--temperature", type=float, default=0.7)
    chat.add_argument("--max-tokens", type=int, default=512)
    chat.add_argument("--seed", type=int, help="sampling seed (default: random)")
    chat.add_argument("--no-think", dest="think", action="store_false", help="start with thinking off")
    chat.add_argument("--extra-body", type=_json_object, default={},
                      help='more request fields, as JSON (e.g. \'{"top_k": 40, "stop": ["END"]}\')')
    chat.set_defaults(handler=run_chat)

    info = commands.add_parser("info", help="model metadata, hardware and llama.cpp build features")
    _model_arguments(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=run_info)

    usage = commands.add_parser("usage", help="successful messages and tokens per API key and day")
    usage.add_argument("--cache-dir", type=Path, help="where the ledger lives (default ~/.cache/edge)")
    usage.add_argument("--since", help="first day to show, YYYY-MM-DD (UTC)")
    usage.add_argument("--json", action="store_true", help="print JSON")
    usage.set_defaults(handler=run_usage)

    from edge.convert.cli import add_convert_command, add_quantize_command

    add_convert_command(commands)
    add_quantize_command(commands)
    _add_bench_command(commands)
    from edge.device.cli import add_device_commands

    add_device_commands(commands, _model_arguments)
    return parser


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _add_bench_command(commands: argparse._SubParsersAction) -> None:
    try:
        from edge.bench.cli import add_bench_command
    except ModuleNotFoundError as missing:
        if missing.name and missing.name.startswith("edge.bench"):
            return  # the benchmarking harness is not part of this install
        raise
    add_bench_command(commands)


def _configure_logging(level: str, log_format: str = "text") -> None:
    from edge.server.access import configure_logging

    configure_logging(level, log_format)


def _load_engine(settings):
    from edge.runtime.engine import Engine, EngineConfig
    from edge.runtime.llama import LoadOptions
    from edge.runtime.sources import resolve_model

    # the hub client logs every retry as a warning, through handlers of its own; the one error line
    # edge prints at the end says it all, so warnings are off while the model is found
    logging.disable(logging.WARNING)
    try:
        files = resolve_model(settings.model, settings.mmproj, settings.cache_dir)
    finally:
        logging.disable(logging.NOTSET)
    config = EngineConfig(
        ctx_size=settings.ctx_size, batch_size=settings.batch_size, threads=settings.thread_count,
        kv_type=settings.kv_type, prefix_cache=settings.prefix_cache, parallel=settings.parallel,
        swa_full=settings.swa_full, persist_cache=settings.cache_dir if settings.persist_cache else None,
        cache_ram_mib=settings.cache_ram,
        load=LoadOptions(n_gpu_layers=settings.n_gpu_layers, extra_buffers=settings.extra_bufts,
                         use_mmap=settings.mmap, use_mlock=settings.mlock))
    return Engine.load(files, config, settings.model_alias[0] if settings.model_alias else None)


def run_serve(args: argparse.Namespace) -> int:
    """Every fault that can be found before loading the model is found first: the keys, the cache
    folder, the address. Each is one line and a non-zero exit."""
    from edge.server.app import create_app
    from edge.server.metering import load_keys
    from edge.server.serve import bind_socket, serve
    from edge.settings import settings_from

    settings = settings_from(args)
    _configure_logging(settings.log_level, settings.log_format)
    if args.api_key is not None:
        logging.getLogger("edge").warning("--api-key is visible to every user of this machine in ps; "
                                          "use --api-key-file or EDGE_API_KEY instead")
    keys = load_keys(settings.api_key, settings.api_key_file)
    _check_writable(settings.cache_dir)
    listener = bind_socket(settings.host, settings.port)
    try:
        engine = _load_engine(settings)
        app = create_app(settings, engine, keys)
        profile = f" with profile {settings.profile}" if settings.profile else ""
        print(f"edge: serving {engine.info.id!r}{profile} on http://{settings.host}:{settings.port}/v1 "
              "(stays in the foreground; Ctrl-C stops it)", flush=True)
        serve(app, settings, listener)
    finally:
        listener.close()
    return 0


def _check_writable(folder: Path) -> None:
    """The cache folder holds the demo model and the usage ledger: it must be a folder we can write."""
    import tempfile

    from edge.server.serve import StartupError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise StartupError(f"the cache folder {folder} is not writable ({error.strerror or error}); "
                           "pass --cache-dir or set EDGE_CACHE_DIR") from None


def run_usage(args: argparse.Namespace) -> int:
    from edge.usage import print_usage
    from edge.settings import settings_from

    settings = settings_from(argparse.Namespace(cache_dir=args.cache_dir))
    return print_usage(settings.cache_dir, args.since, args.json)


def run_chat(args: argparse.Namespace) -> int:
    from edge.chat import ChatError, LocalBackend, Options, RemoteBackend, chat_loop
    from edge.settings import settings_from

    settings = settings_from(args)
    _configure_logging("warning" if settings.log_level == "info" else settings.log_level)
    options = Options(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed,
                      extra=args.extra_body)
    session = {"system": args.system, "options": options, "thinking": args.think,
               "history_file": settings.chat_history}
    if args.url:
        try:
            backend = RemoteBackend(args.url, settings.api_key, settings.model_alias)
        except ChatError as error:
            print(f"edge: error: {error}", file=sys.stderr)
            return 2
        return chat_loop(backend, **session)
    engine = _load_engine(settings)
    try:
        return chat_loop(LocalBackend(engine, settings.image_policy()), **session)
    finally:
        engine.close()


def run_info(args: argparse.Namespace) -> int:
    from edge.info import describe, format_description
    from edge.settings import settings_from

    settings = settings_from(args)
    _configure_logging("warning" if settings.log_level == "info" else settings.log_level)
    engine = _load_engine(settings)
    try:
        description = describe(engine)
    finally:
        engine.close()
    print(json.dumps(description, indent=2) if args.json else format_description(description))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from edge.device.catalogue import CatalogueError
    from edge.device.profiles import ProfileError
    from edge.device.shape import ShapeError
    from edge.errors import EdgeError
    from edge.formats import UnsupportedModelError
    from edge.runtime.engine import ContextTooLargeError
    from edge.runtime.llama import ModelLoadError
    from edge.runtime.sources import ModelSourceError
    from edge.runtime.vision import VisionError
    from edge.server.metering import KeysFileError
    from edge.server.serve import StartupError
    from edge.settings import SettingsError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ModelSourceError, ModelLoadError, SettingsError, UnsupportedModelError,
            ContextTooLargeError, VisionError, EdgeError, KeysFileError, StartupError,
            ShapeError, ProfileError, CatalogueError) as error:
        print(f"edge: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
