"""Know the machine and plan the memory: ``edge doctor``, ``edge plan``, profiles, ``edge pull`` / ``edge list``.

Nothing here loads a model into llama.cpp: the plan reads a GGUF's metadata and tensor table (or a known
architecture), the doctor reads what the operating system and llama.cpp's backend registry report.
"""
