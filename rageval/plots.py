"""The two PNGs of `rag bench`: query latency against store size, and where index time goes."""

from __future__ import annotations

from pathlib import Path


# ---- plots --------------------------------------------------------------------------------------
def plot(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    sizes = result["by_size"]
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["chunks"] for r in sizes]
    ax.plot(xs, [r["query_ms_p50"] for r in sizes], "o-", label="p50")
    ax.plot(xs, [r["query_ms_p95"] for r in sizes], "s--", label="p95")
    ax.set_xscale("log")
    ax.set_xlabel("chunks in the store")
    ax.set_ylabel("retrieval latency (ms, warm)")
    ax.set_title("Hybrid retrieval latency against corpus size")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out / "latency_vs_size.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(str(path))

    breakdown = {k: v for k, v in result["index_breakdown_s"].items() if k != "total"}
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(breakdown)
    ax.barh(names, [breakdown[n] for n in names], color="tab:blue")
    for i, n in enumerate(names):
        ax.text(breakdown[n], i, f" {breakdown[n]:.2f} s", va="center")
    ax.set_xlabel("seconds")
    ax.set_title(f"Index time breakdown ({result['throughput_chunks']} chunks, "
                 f"{result['index_breakdown_s']['total']:.1f} s)")
    ax.set_xlim(0, max(breakdown.values()) * 1.3 or 1)
    fig.tight_layout()
    path = out / "index_breakdown.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(str(path))
    return files
