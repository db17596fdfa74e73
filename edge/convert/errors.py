"""Typed errors of the offline tools: each names the file or setting at fault."""

from __future__ import annotations


class ConversionError(Exception):
    """A checkpoint could not become a GGUF: missing file, unsupported architecture or dtype, bad data."""


class QuantizationError(Exception):
    """A GGUF could not be quantized: unknown type, unreadable input, or llama.cpp refused it."""
