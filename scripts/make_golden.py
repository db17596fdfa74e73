"""Reference outputs of the tiny Gemma 4 test model from Hugging Face transformers (golden files).

CI has no torch, so the parity tests compare llama.cpp against these committed files. Regenerate them
(after changing the test model) with exactly:

    python3 -m venv /work/refvenv
    /work/refvenv/bin/pip install torch==2.13.0 "transformers>=5" safetensors numpy pillow tokenizers
    /work/refvenv/bin/python scripts/make_golden.py --out tests/gemma4/golden

It builds the tiny checkpoint with ``edge.convert.test_model`` (numpy only), runs transformers in float32
with eager attention, and writes:
  text_logits.npz   token ids of each prompt, the top-1 token at every position, and full logits rows
                    at every 4th position and the last one
  vision.npz        the projected image embeddings (soft tokens x text hidden) of ``sample_image()``
  tokenizer.json    strings and their ids from transformers' tokenizer (AutoTokenizer)
  meta.json         versions, the image's sha256, the command above
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.convert.test_model import make_test_model, sample_image  # noqa: E402

PROMPTS = [
    "<bos><|turn>user\nWhat is the weather in Paris today? Answer in one word.<turn|>\n<|turn>model\n",
    "<bos>def main(argv: list[str]) -> int:\n    for index, value in enumerate(argv):\n        print(value)\n"
    "    return 0\n",
    "<bos><|turn>system\n<|think|>\n<|tool>declaration:get_weather{description:<|\"|>Weather<|\"|>}<tool|>"
    "<turn|>\n<|turn>user\nWeather in Paris?<turn|>\n<|turn>model\n<|tool_call>call:get_weather{city:"
    "<|\"|>Paris<|\"|>}<tool_call|><|tool_response>response:get_weather{value:<|\"|>sunny<|\"|>}"
    "<tool_response|>It is sunny.<turn|>\n",
    "<bos>The quick brown fox jumps over the lazy dog. Ceci est une phrase en français. これは日本語の文です。"
    " 😀 1234 + 5678 = ?",
]
TOKENIZER_STRINGS = PROMPTS + [
    "Hello   world\t\ttabs  and    spaces   ",
    "emoji 😀🎉👍🏽 and ünïcödé Ωμέγα Привет 中文",
    "def f(x):\n\n\n    return {'a': [1, 2, 3]}  # comment\r\n",
    "<|image|><|audio|><|video|><|image><image|><|channel>thought\n<channel|><eos><pad>",
    "",
    " leading space",
]
ROW_STRIDE = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    import torch
    import transformers
    from transformers import AutoTokenizer, Gemma4ForConditionalGeneration

    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_test_model(Path(tmp) / "tiny", "tiny")
        model = Gemma4ForConditionalGeneration.from_pretrained(folder, torch_dtype=torch.float32,
                                                               attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        _write_tokenizer_golden(args.out, tokenizer)
        _write_text_golden(args.out, model, tokenizer)
        image_sha = _write_vision_golden(args.out, model)
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "image_sha256": image_sha, "row_stride": ROW_STRIDE,
            "command": "/work/refvenv/bin/python scripts/make_golden.py --out tests/gemma4/golden"}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return 0


def _write_tokenizer_golden(out: Path, tokenizer) -> None:
    cases = [{"text": text, "ids": tokenizer.encode(text, add_special_tokens=False)} for text in TOKENIZER_STRINGS]
    (out / "tokenizer.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_text_golden(out: Path, model, tokenizer) -> None:
    import torch

    arrays = {}
    for index, prompt in enumerate(PROMPTS):
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
        rows = sorted(set(range(0, len(ids), ROW_STRIDE)) | {len(ids) - 1})
        arrays[f"ids_{index}"] = np.array(ids, dtype=np.int32)
        arrays[f"top1_{index}"] = logits.argmax(-1).astype(np.int32)
        arrays[f"rows_{index}"] = np.array(rows, dtype=np.int32)
        arrays[f"logits_{index}"] = logits[rows].astype(np.float32)
    np.savez_compressed(out / "text_logits.npz", **arrays)


def _write_vision_golden(out: Path, model) -> str:
    """Feed patches we make ourselves (Gemma4Processor needs torchvision): row-major 16x16 patches
    flattened as (row, col, channel), pixel values in [0, 1], positions (x, y)."""
    import torch

    image = sample_image()
    patch = model.config.vision_config.patch_size
    height, width, _ = image.shape
    rows, cols = height // patch, width // patch
    pixels = image.astype(np.float32) / 255.0
    patches = pixels.reshape(rows, patch, cols, patch, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, -1)
    positions = np.stack(np.meshgrid(np.arange(cols), np.arange(rows)), axis=-1).reshape(-1, 2)
    with torch.no_grad():
        features = model.model.get_image_features(
            pixel_values=torch.from_numpy(patches)[None], image_position_ids=torch.from_numpy(positions)[None])
    embeddings = torch.cat(list(features.pooler_output)).float().numpy()
    np.savez_compressed(out / "vision.npz", embeddings=embeddings.astype(np.float32),
                        image_shape=np.array(image.shape, dtype=np.int32))
    return hashlib.sha256(image.tobytes()).hexdigest()


if __name__ == "__main__":
    raise SystemExit(main())
