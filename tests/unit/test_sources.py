"""Model resolution against real files and a real (offline) Hugging Face cache layout."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.runtime.sources import ModelSourceError, choose_gguf, resolve_model


def fake_gguf(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def test_gguf_file_is_served_as_is(tmp_path):
    model = fake_gguf(tmp_path / "m.gguf")
    assert resolve_model(str(model), None, tmp_path).model == model


def test_non_gguf_file_is_refused(tmp_path):
    bogus = tmp_path / "weights.gguf"
    bogus.write_text("not a model")
    with pytest.raises(ModelSourceError, match="not a GGUF"):
        resolve_model(str(bogus), None, tmp_path)


def test_folder_pairs_model_with_its_projector(tmp_path):
    fake_gguf(tmp_path / "gemma-4-e4b-Q4_K_M.gguf")
    fake_gguf(tmp_path / "mmproj-gemma-4-e4b-f16.gguf")
    files = resolve_model(str(tmp_path), None, tmp_path)
    assert files.model.name == "gemma-4-e4b-Q4_K_M.gguf"
    assert files.mmproj.name == "mmproj-gemma-4-e4b-f16.gguf"


def test_explicit_mmproj_overrides_the_folder(tmp_path):
    fake_gguf(tmp_path / "model" / "m.gguf")
    projector = fake_gguf(tmp_path / "elsewhere" / "proj.gguf")
    files = resolve_model(str(tmp_path / "model"), str(projector), tmp_path)
    assert files.mmproj == projector


def test_several_models_need_a_choice():
    with pytest.raises(ModelSourceError, match="several model GGUFs"):
        choose_gguf(["first.gguf", "second.gguf"], None, "folder x")
    names = ["a-Q8_0.gguf", "a-Q6_K.gguf"]
    assert choose_gguf(names, "q8_0", "folder x") == ("a-Q8_0.gguf", None)
    assert choose_gguf(names, None, "folder x") == ("a-Q6_K.gguf", None)  # preference order
    assert choose_gguf(names + ["a-Q4_K_M.gguf"], None, "x")[0] == "a-Q4_K_M.gguf"


def test_empty_folder_and_missing_path_are_clear_errors(tmp_path):
    with pytest.raises(ModelSourceError, match="no model GGUF"):
        resolve_model(str(tmp_path), None, tmp_path)
    with pytest.raises(ModelSourceError, match="neither a GGUF file, a folder, a model name"):
        resolve_model("./missing.gguf", None, tmp_path)


def write_hub_cache(cache: Path, repo_id: str, files: list[str]) -> None:
    """The layout huggingface-hub itself writes: blobs, a snapshot of symlinks, and refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    for index, name in enumerate(files):
        blob = fake_gguf(repo / "blobs" / f"blob{index}")
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


RESOLVE_IN_SUBPROCESS = """
import sys
from pathlib import Path
from edge.runtime.sources import resolve_model, ModelSourceError
try:
    files = resolve_model(sys.argv[1], None, Path("."))
    print("MODEL", files.model.name, "MMPROJ", files.mmproj.name if files.mmproj else None)
except ModelSourceError as error:
    print("ERROR", error)
"""


def resolve_offline(cache: Path, spec: str) -> str:
    # huggingface-hub reads HF_HUB_OFFLINE and the cache location at import: use a fresh interpreter
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent)}
    result = subprocess.run([sys.executable, "-c", RESOLVE_IN_SUBPROCESS, spec], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_hub_repo_resolves_offline_from_the_local_cache(tmp_path):
    cache = tmp_path / "hub"
    write_hub_cache(cache, "google/gemma-4-E4B-it-GGUF",
                    ["gemma-4-E4B-it-Q4_K_M.gguf", "gemma-4-E4B-it-Q8_0.gguf", "mmproj-F16.gguf"])
    assert resolve_offline(cache, "google/gemma-4-E4B-it-GGUF") == \
        "MODEL gemma-4-E4B-it-Q4_K_M.gguf MMPROJ mmproj-F16.gguf"
    assert resolve_offline(cache, "google/gemma-4-E4B-it-GGUF:Q8_0") == \
        "MODEL gemma-4-E4B-it-Q8_0.gguf MMPROJ mmproj-F16.gguf"


def test_hub_repo_not_cached_while_offline_is_a_clear_error(tmp_path):
    output = resolve_offline(tmp_path / "hub", "someone/not-cached")
    assert output.startswith("ERROR someone/not-cached is not in the local Hugging Face cache")
    assert "HF_HUB_OFFLINE=1" in output
