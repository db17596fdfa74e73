"""The bottom layer: the internal request, the events of a generation, and decoding constraints.

Nothing here touches llama.cpp, so formats, dialects and the runtime can all depend on it.
"""
