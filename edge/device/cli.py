"""``edge doctor | plan | pull | list``: each a core function, a ``configure`` and a ``run``."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from edge.device.plan import Budget, PlanConfig, format_plan, plan_memory, verdict


def add_device_commands(commands: argparse._SubParsersAction, model_arguments) -> None:
    doctor = commands.add_parser("doctor", help="this machine as llama.cpp sees it, and what to run on it")
    doctor.add_argument("--json", action="store_true", help="print JSON")
    doctor.add_argument("--no-bandwidth", dest="bandwidth", action="store_false",
                        help="skip the ~1 s memory-bandwidth measurement")
    doctor.set_defaults(handler=run_doctor)

    plan = commands.add_parser("plan", help="the memory budget of serving a model, before loading it")
    model_arguments(plan)
    _add_layout_arguments(plan)
    plan.add_argument("--no-images", dest="images", action="store_false",
                      help="leave out the vision encoder's compute buffer (text-only serving)")
    plan.add_argument("--json", action="store_true", help="print JSON")
    plan.set_defaults(handler=run_plan)

    pull = commands.add_parser("pull", help="download a model by name (gemma-4-e4b[:QUANT]) into the hub cache")
    pull.add_argument("name", help="a name from `edge list --known`, or a Hugging Face owner/repo[:QUANT]")
    pull.set_defaults(handler=run_pull)

    listing = commands.add_parser("list", help="GGUF models in the Hugging Face cache")
    listing.add_argument("--known", action="store_true", help="also list the models edge knows by name")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=run_list)


def _add_layout_arguments(parser: argparse.ArgumentParser) -> None:
    """``--parallel`` and ``--swa-full`` shape the KV cache; added here unless the shared model arguments
    (which ``edge serve`` also uses) already define them."""
    if "--parallel" not in parser._option_string_actions:
        parser.add_argument("--parallel", type=int, help="sequences decoded together; the KV cache holds "
                                                         "ctx-size x parallel cells (default 1)")
    if "--swa-full" not in parser._option_string_actions:
        parser.add_argument("--swa-full", action=argparse.BooleanOptionalAction, default=None,
                            help="full-size sliding-window KV cache, needed for prefix reuse (default on)")


# --------------------------------------------------------------------------------------------- doctor

def run_doctor(args: argparse.Namespace) -> int:
    from edge.device.doctor import build_report, format_report

    report = build_report(bandwidth=args.bandwidth)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0


# ----------------------------------------------------------------------------------------------- plan

def run_plan(args: argparse.Namespace) -> int:
    from edge.settings import settings_from

    settings = settings_from(args)
    if settings.model is None and settings.profile:
        from edge.device.profiles import load_profile

        settings = replace(settings, model=load_profile(settings.profile).model)
    shape = model_shape(settings.model, settings.mmproj, settings.cache_dir, with_projector=args.images)
    config, budget, notes = _plan_target(settings, args.images)
    plan = plan_memory(shape, config)
    plan = replace(plan, notes=plan.notes + notes)
    result = verdict(shape, config, budget)
    if args.json:
        print(json.dumps({**plan.to_dict(), "verdict": result.to_dict()}, indent=2))
    else:
        print(format_plan(plan, result))
    return 0


def _plan_target(settings, with_images: bool) -> tuple[PlanConfig, Budget, tuple[str, ...]]:
    """A named profile plans for its device; otherwise the plan is for this machine and its build."""
    from edge.device.detect import repack_types_for

    if settings.profile:
        from edge.device.profiles import load_profile

        profile = load_profile(settings.profile)
        repacking = settings.extra_bufts.value != "off"
        config = PlanConfig.from_settings(settings, repack_types_for(profile.device.cpu_features, repacking),
                                          with_images)
        budget = Budget(f"profile {profile.name} ({profile.description})", host=profile.device.budget_bytes,
                        unified=profile.device.unified_memory)
        return config, budget, ()
    from edge.device.detect import detect_machine, ggml_library, read_backend_devices
    from edge.device.doctor import machine_budget, repack_types_here

    devices = read_backend_devices(ggml_library())
    config = PlanConfig.from_settings(settings, repack_types_here(settings.extra_bufts), with_images)
    notes: tuple[str, ...] = ()
    if config.n_gpu_layers and not any(device.type in ("GPU", "IGPU") for device in devices):
        config = replace(config, n_gpu_layers=0)
        notes = ("this llama.cpp build has no GPU backend, so every layer stays on the CPU "
                 "(scripts/install.sh --backend cuda|metal|vulkan|jetson; or plan another device with --profile)",)
    return config, machine_budget(detect_machine(), devices), notes


def model_shape(spec: str | None, mmproj: str | None, cache_dir: Path, with_projector: bool = True):
    """The shape of what ``--model`` names, without downloading: a file, a folder, a cached hub repo, a
    catalogue name (its cached file when pulled, else its known architecture) or the demo model."""
    from edge.device.catalogue import CatalogueError, is_catalogue_name, lookup
    from edge.device.shape import KNOWN_ARCHITECTURES, shape_from_gguf
    from edge.runtime.sources import ModelSourceError, cached_from_hub, resolve_model

    projector = mmproj if with_projector else None
    if is_catalogue_name(spec):
        try:
            named = lookup(spec)
        except CatalogueError as exc:
            raise ModelSourceError(str(exc)) from None
        cached = cached_from_hub(named.entry.repo, named.quant)
        if cached is not None:
            return shape_from_gguf(cached.model, projector or (cached.mmproj if with_projector else None))
        if named.entry.architecture in KNOWN_ARCHITECTURES:
            return KNOWN_ARCHITECTURES[named.entry.architecture](named.quant, with_projector=with_projector,
                                                                 name=named.spec)
        raise ModelSourceError(f"{named.spec} is not in the Hugging Face cache and its architecture is not "
                               f"built in: edge pull {named.spec} first")
    if spec and "/" in spec and not Path(spec).expanduser().exists():
        repo, _, tag = spec.partition(":")
        cached = cached_from_hub(repo, tag or None)
        if cached is None:
            raise ModelSourceError(f"{spec} is not in the Hugging Face cache: edge pull {spec} first, "
                                   "or plan a local GGUF")
        return shape_from_gguf(cached.model, projector or (cached.mmproj if with_projector else None))
    files = resolve_model(spec, mmproj, cache_dir)
    return shape_from_gguf(files.model, files.mmproj if with_projector else None)


# ----------------------------------------------------------------------------------------- pull, list

def run_pull(args: argparse.Namespace) -> int:
    import logging

    from edge.device.pull import pull

    announce = logging.StreamHandler()
    announce.setFormatter(logging.Formatter("edge: %(message)s"))
    logging.getLogger("edge.runtime").addHandler(announce)  # one line per file; huggingface-hub draws the bar
    logging.getLogger("edge.runtime").setLevel(logging.INFO)
    files = pull(args.name)
    print(f"edge: {args.name} is in the Hugging Face cache:\n  model   {files.model}"
          + (f"\n  mmproj  {files.mmproj}" if files.mmproj else "\n  (no vision projector in the repo)")
          + f"\nserve it with: edge serve --model {args.name}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from edge.device.catalogue import CATALOGUE
    from edge.device.pull import cached_ggufs, format_listing, names_for

    files = cached_ggufs()
    if args.json:
        by_repo: dict[str, list] = {}
        for cached in files:
            by_repo.setdefault(cached.repo, []).append(cached)
        print(json.dumps({
            "cached": [{"repo": repo, "names": names_for(repo, [entry.name for entry in entries]),
                        "files": [{"name": entry.name, "size_bytes": entry.size, "path": str(entry.path),
                                   "projector": entry.projector} for entry in entries]}
                       for repo, entries in by_repo.items()],
            "known": [{"name": entry.name, "repo": entry.repo, "quants": list(entry.quants),
                       "description": entry.description} for entry in CATALOGUE.values()] if args.known else []},
            indent=2))
    else:
        print(format_listing(files, args.known))
    return 0
