"""Hugging Face Gemma 4 checkpoints -> GGUF (text + mmproj), quantization recipes, the tiny test model."""

from edge.convert.errors import ConversionError, QuantizationError

__all__ = ["ConversionError", "QuantizationError"]
