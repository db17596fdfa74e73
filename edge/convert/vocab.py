"""The tokenizer as llama.cpp's ``gemma4`` tokenizer wants it, read from tokenizer.json without transformers.

Gemma 4's tokenizer is a BPE over UTF-8 with ``▁`` for spaces and ``<0xXX>`` byte fallback. llama.cpp
needs the piece list, the merges, a type per piece and the special ids. Control tokens that the chat
parser must see in the output (channel, tool-call, tool-response and string-escape markers) are typed
USER_DEFINED so that llama.cpp renders them as text (as llama.cpp's own converter does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import gguf

from edge.convert.checkpoint import Checkpoint, _read_json
from edge.convert.errors import ConversionError

VISIBLE_CONTROL_TOKENS = frozenset({"<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>",
                                    "<|tool_response>", "<tool_response|>", '<|"|>'})
_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")
_SPECIAL_ROLES = {"bos": "<bos>", "eos": "<eos>", "unk": "<unk>", "pad": "<pad>", "mask": "<mask>"}


@dataclass(frozen=True)
class GGUFVocabulary:
    pieces: list[str]
    types: list[int]
    merges: list[str]
    special_ids: dict[str, int]
    chat_template: str | None


def read_vocabulary(checkpoint: Checkpoint, n_vocab: int) -> GGUFVocabulary:
    """Pieces in id order (base vocab, then added tokens), checked against the model's vocab size."""
    tokenizer = _read_json(checkpoint.folder / "tokenizer.json")
    model = tokenizer.get("model", {})
    if model.get("type") != "BPE" or not model.get("byte_fallback"):
        raise ConversionError("tokenizer.json: expected a BPE tokenizer with byte fallback (Gemma 4's)")
    by_id = {index: piece for piece, index in model["vocab"].items()}
    special_added = {}
    for added in tokenizer.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        special_added[added["content"]] = bool(added.get("special"))
    if sorted(by_id) != list(range(len(by_id))):
        raise ConversionError("tokenizer.json: token ids are not contiguous")
    if len(by_id) > n_vocab:
        raise ConversionError(f"tokenizer.json has {len(by_id)} tokens, the embedding only {n_vocab} rows")
    pieces = [by_id[index] for index in range(len(by_id))]
    # Padding rows of the embedding (real Gemma pads to a multiple) get placeholder pieces.
    pieces += [f"<unused_pad_{index}>" for index in range(len(pieces), n_vocab)]
    types = [_piece_type(piece, special_added) for piece in pieces]
    merges = [" ".join(pair) if isinstance(pair, list) else pair for pair in model.get("merges", [])]
    ids = {piece: index for index, piece in enumerate(pieces)}
    special_ids = {role: ids[text] for role, text in _SPECIAL_ROLES.items() if text in ids}
    if "bos" not in special_ids or "eos" not in special_ids:
        raise ConversionError("tokenizer.json: <bos> and <eos> must be in the vocabulary")
    return GGUFVocabulary(pieces, types, merges, special_ids, _chat_template(checkpoint))


def _piece_type(piece: str, special_added: dict[str, bool]) -> int:
    if _BYTE_PIECE.fullmatch(piece):
        return gguf.TokenType.BYTE
    if piece in VISIBLE_CONTROL_TOKENS:
        return gguf.TokenType.USER_DEFINED
    if piece.startswith("<unused_pad_"):
        return gguf.TokenType.UNUSED
    if piece in special_added:
        return gguf.TokenType.CONTROL if special_added[piece] else gguf.TokenType.USER_DEFINED
    return gguf.TokenType.NORMAL


def _chat_template(checkpoint: Checkpoint) -> str | None:
    """chat_template.jinja (newer checkpoints) wins over tokenizer_config.json's field; else ours."""
    jinja = checkpoint.folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = checkpoint.json_file("tokenizer_config.json") or {}
    template = config.get("chat_template")
    if isinstance(template, str):
        return template
    from edge.formats.gemma4_template import GEMMA4_CHAT_TEMPLATE

    return GEMMA4_CHAT_TEMPLATE


def write_vocabulary(writer: gguf.GGUFWriter, vocab: GGUFVocabulary) -> None:
    writer.add_tokenizer_model("gemma4")
    writer.add_token_list(vocab.pieces)
    writer.add_token_scores([-1000.0] * len(vocab.pieces))  # BPE: merge ranks decide, scores are unused
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    writer.add_bos_token_id(vocab.special_ids["bos"])
    writer.add_eos_token_id(vocab.special_ids["eos"])
    for role in ("unk", "pad", "mask"):
        if role in vocab.special_ids:
            getattr(writer, f"add_{role}_token_id")(vocab.special_ids[role])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
