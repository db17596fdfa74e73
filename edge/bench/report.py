"""Reports as files: the JSON (checked against schema.json) and markdown tables a person reads."""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("schema.json")


def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate(report: dict) -> None:
    """Raise jsonschema.ValidationError when the report does not match its documented schema."""
    import jsonschema

    jsonschema.validate(report, load_schema())


def write_json(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return path


def _mib(size: float) -> str:
    return f"{size / 2**20:.1f}"


def _spread(stat: dict, digits: int = 1) -> str:
    """``median (min-max)`` or just the median for a single run."""
    if stat["n"] <= 1:
        return f"{stat['median']:.{digits}f}"
    return f"{stat['median']:.{digits}f} ({stat['min']:.{digits}f}-{stat['max']:.{digits}f})"


def quant_markdown(report: dict) -> str:
    """One row per type: size, speed (median and range), quality, share of the bandwidth limit."""
    settings, bandwidth = report["settings"], report["hardware"]["memory_bandwidth"]
    lines = [f"Model `{report['model']['name']}` ({report['model']['architecture']}, reference "
             f"{report['model']['file_type']}); {settings['threads']} threads; median (min-max) of "
             f"{settings['repeats']} fresh-process runs; prompt {settings['prompt_tokens']} tokens, decode "
             f"{settings['gen_tokens']} tokens; quality on {report['corpus']['scored_tokens']} scored tokens "
             f"(ctx {settings['ctx']}); memory bandwidth {bandwidth['bytes_per_s']['median'] / 1e9:.1f} GB/s "
             f"({bandwidth['threads']} threads).", "",
             "| type | size MiB | bpw | load s | peak RSS MiB | pp tok/s | decode tok/s | TTFT ms | PPL | "
             "KLD mean | KLD p99 | top-1 | MB/token | decode / limit |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in report["results"]:
        lines.append(_quant_row(row))
    return "\n".join(lines)


def _quant_row(row: dict) -> str:
    name = f"{row['type']} (ref)" if row["is_reference"] else row["type"]
    if row["status"] != "ok":
        return f"| {name} | skipped: {row.get('reason', '')[:80]} |" + " |" * 12
    speed, quality, roof = row["speed"], row["quality"], row["roofline"]
    rss = {key: speed["peak_rss_bytes"][key] / 2**20 for key in ("median", "min", "max")}
    return (f"| {name} | {_mib(row['size_bytes'])} | {row['bits_per_weight']:.2f} | {_spread(speed['load_s'], 2)} | "
            f"{_spread({**rss, 'n': speed['peak_rss_bytes']['n']}, 0)} | {_spread(speed['pp_tok_s'], 0)} | "
            f"{_spread(speed['tg_tok_s'])} | {_spread(speed['ttft_ms'], 0)} | {quality['perplexity']:.4g} | "
            f"{quality['kld_mean']:.4f} | {quality['kld_p99']:.4f} | {quality['top1_agreement']:.3f} | "
            f"{row['bytes_per_token']['total'] / 1e6:.2f} | {roof['fraction']:.0%} of {roof['limit_tok_s']:.0f} |")


def serve_markdown(report: dict) -> str:
    """One row per server and concurrency level."""
    settings = report["settings"]
    lines = [f"{settings['requests']} streaming requests per level and repeat ({settings['repeats']} repeats), "
             f"max_tokens {settings['max_tokens']}, temperature 0; TTFT and inter-token latency percentiles over "
             "all requests; aggregate tok/s median (min-max) over repeats.", "",
             "| server | model | concurrency | ok / errors | TTFT p50 ms | TTFT p95 ms | ITL p50 ms | ITL p95 ms | "
             "aggregate tok/s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for target in report["targets"]:
        for level in target["levels"]:
            ttft, itl = level["ttft_ms"], level["itl_ms"]
            lines.append(f"| {target['url']} | {target['model']} | {level['concurrency']} | "
                         f"{level['completed']} / {level['errors']} | {ttft['p50']:.0f} | {ttft['p95']:.0f} | "
                         f"{itl['p50']:.1f} | {itl['p95']:.1f} | {_spread(level['aggregate_tok_s'])} |")
    return "\n".join(lines)
