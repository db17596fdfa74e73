"""``edge bench``: the quantization ladder, serving latency and the memory-bandwidth roofline, in one harness.

- ``ladder.run_quant_ladder``: quantize a source model to each type, measure size / load / RSS / speed in a
  fresh subprocess per run (``probe``), and quality against the unquantized model (``quality``).
- ``serve.run_serve_bench``: streaming chat load against any OpenAI-compatible server(s).
- ``bandwidth.measure_bandwidth`` + ``gguf_info.bytes_per_token``: the physical decode limit.
- ``report``: JSON (validated by ``schema.json``), markdown tables; ``plots``: PNG figures.
"""

from edge.bench.errors import BenchError

__all__ = ["BenchError"]
