"""Owns llama.cpp: model loading, the generation core, sampling and (later) images."""
