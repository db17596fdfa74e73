"""What an operator watches, in Prometheus' text format at ``/metrics`` (prometheus-client).

Each app has its own registry, so several servers in one process (tests) never share counters.
Key labels are the key's *name* from the keys file, never the key.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# first tokens on a CPU arrive in tens of milliseconds (short prompt) to minutes (full context, busy queue)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)
# a decode step takes ~5 ms (a GPU) to ~300 ms (E4B on a Raspberry Pi)
ITL_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, queue_depth: Callable[[], float], running: Callable[[], float],
                 cache_ram_bytes: Callable[[], float]):
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter("edge_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=registry)
        self.errors = Counter("edge_errors", "Error answers and stream error events, by error type",
                              ["type"], registry=registry)
        self.prompt_tokens = Counter("edge_prompt_tokens", "Prompt tokens of finished generations",
                                     ["route"], registry=registry)
        self.cached_tokens = Counter("edge_cached_prompt_tokens", "Prompt tokens reused from the KV cache",
                                     ["route"], registry=registry)
        self.completion_tokens = Counter("edge_completion_tokens", "Generated tokens of finished generations",
                                         ["route"], registry=registry)
        self.ttft = Histogram("edge_time_to_first_token_seconds",
                              "From the request's arrival to its first generated event", ["route"],
                              buckets=TTFT_BUCKETS, registry=registry)
        self.itl = Histogram("edge_inter_token_latency_seconds",
                             "Mean time between generated tokens, one observation per generation", ["route"],
                             buckets=ITL_BUCKETS, registry=registry)
        self.key_messages = Counter("edge_key_messages", "Successful messages, by API key name",
                                    ["key"], registry=registry)
        self.key_prompt_tokens = Counter("edge_key_prompt_tokens", "Prompt tokens of successful messages, by key name",
                                         ["key"], registry=registry)
        self.key_completion_tokens = Counter("edge_key_completion_tokens",
                                             "Completion tokens of successful messages, by key name",
                                             ["key"], registry=registry)
        Gauge("edge_queue_depth", "Admitted requests not decoding yet", registry=registry).set_function(queue_depth)
        Gauge("edge_running_sequences", "Sequences decoding now", registry=registry).set_function(running)
        Gauge("edge_cache_ram_bytes", "Host memory held by conversations that lost their slot (--cache-ram)",
              registry=registry).set_function(cache_ram_bytes)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
