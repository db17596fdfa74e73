"""PNG figures with matplotlib's Agg backend (no display needed): small files fit to commit.

- ``size_vs_kld.png``: file size against mean KL divergence, one point per type (the trade-off curve);
- ``decode_tok_s.png``: decode tok/s per type (median, range as error bars) with the bandwidth limit;
- ``serve_latency.png``: TTFT and inter-token latency p50/p95 per server and concurrency.
"""

from __future__ import annotations

from pathlib import Path

_DPI = 80


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def quant_plots(report: dict, out_dir: Path) -> list[Path]:
    rows = [row for row in report["results"] if row["status"] == "ok"]
    out_dir.mkdir(parents=True, exist_ok=True)
    name = report["model"]["name"]
    paths = [_decode_speed(rows, out_dir / "decode_tok_s.png", name)]
    if any(not row["is_reference"] for row in rows):  # nothing to trade off with --types none
        paths.insert(0, _size_vs_kld(rows, out_dir / "size_vs_kld.png", name))
    return paths


def _size_vs_kld(rows: list[dict], path: Path, title: str) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    quantized = sorted((row for row in rows if not row["is_reference"]), key=lambda row: row["size_bytes"])
    sizes = [row["size_bytes"] / 2**20 for row in quantized]
    klds = [max(row["quality"]["kld_mean"], 1e-6) for row in quantized]
    axes.plot(sizes, klds, "o-", color="tab:blue")
    for row, x, y in zip(quantized, sizes, klds):
        axes.annotate(row["type"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_yscale("log")
    axes.set_xlabel("file size (MiB)")
    axes.set_ylabel("mean KL divergence vs reference (nats)")
    axes.set_title(f"{title}: size vs quality")
    axes.grid(True, alpha=0.3)
    return _save(figure, path)


def _decode_speed(rows: list[dict], path: Path, title: str) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    names = [row["type"] for row in rows]
    stats = [row["speed"]["tg_tok_s"] for row in rows]
    medians = [stat["median"] for stat in stats]
    errors = [[m - s["min"] for m, s in zip(medians, stats)], [s["max"] - m for m, s in zip(medians, stats)]]
    axes.bar(names, medians, yerr=errors, capsize=3, color="tab:green", label="decode tok/s (median, range)")
    limits = [row["roofline"]["limit_tok_s"] for row in rows]
    axes.plot(names, limits, "k_", markersize=22, markeredgewidth=2, label="bandwidth / bytes per token")
    axes.set_ylabel("tokens / s")
    axes.set_title(f"{title}: decode speed vs memory limit")
    axes.legend(fontsize=8)
    axes.grid(True, axis="y", alpha=0.3)
    return _save(figure, path)


def serve_plots(report: dict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    figure, (ttft_axes, itl_axes) = plt.subplots(1, 2, figsize=(9, 4))
    for target in report["targets"]:
        levels = [level["concurrency"] for level in target["levels"]]
        label = f"{target['model']} @ {target['url'].split('//')[-1]}"
        for axes, key in ((ttft_axes, "ttft_ms"), (itl_axes, "itl_ms")):
            line, = axes.plot(levels, [lv[key]["p50"] for lv in target["levels"]], "o-", label=f"{label} p50")
            axes.plot(levels, [lv[key]["p95"] for lv in target["levels"]], "s--", color=line.get_color(),
                      label=f"{label} p95")
    for axes, name in ((ttft_axes, "time to first token (ms)"), (itl_axes, "inter-token latency (ms)")):
        axes.set_xlabel("concurrent requests")
        axes.set_ylabel(name)
        axes.set_xticks(report["settings"]["concurrency"])
        axes.grid(True, alpha=0.3)
    ttft_axes.legend(fontsize=7)
    figure.suptitle("serving latency percentiles")
    return [_save(figure, out_dir / "serve_latency.png")]


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path
