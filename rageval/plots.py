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


def plot_scale(result: dict, out: Path) -> list[str]:
    """`rag bench --scale`: latency and memory against the number of chunks, embedded and server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["by_size"]
    xs = [r["chunks"] for r in rows]
    fig, (lat, mem) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, colour in (("embedded", "tab:blue"), ("server", "tab:orange")):
        have = [(x, r[mode]) for x, r in zip(xs, rows) if r.get(mode)]
        if not have:
            continue
        mx = [x for x, _ in have]
        lat.plot(mx, [m["query_ms_p50"] for _, m in have], "o-", color=colour, label=f"{mode} p50")
        lat.plot(mx, [m["query_ms_p95"] for _, m in have], "s--", color=colour, label=f"{mode} p95")
        mem.plot(mx, [m["peak_rss_mb"] / 1024 for _, m in have], "o-", color=colour,
                 label=f"{mode}: app process peak")
        if mode == "server":
            mem.plot(mx, [m["server_peak_rss_mb"] / 1024 for _, m in have], "^:", color=colour,
                     label="server: chroma run peak")
    mem.plot(xs, [r["chroma_disk_mb"] / 1024 for r in rows], "x-.", color="tab:gray", label="Chroma on disk")
    t = result["targets"]
    lat.axhline(t["query_ms_p50"], color="tab:green", lw=0.8, ls=":", label="target p50")
    lat.axhline(t["query_ms_p95"], color="tab:red", lw=0.8, ls=":", label="target p95")
    mem.axhline(t["peak_rss_mb"] / 1024, color="tab:red", lw=0.8, ls=":", label="target peak RSS")
    lat.set_ylabel("RAG.retrieve latency (ms, warm)")
    mem.set_ylabel("GB")
    for ax, title in ((lat, "Hybrid retrieval latency"), (mem, "Memory and disk")):
        ax.set_xscale("log")
        ax.set_xlabel("chunks in the store (generated vectors)")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "scale_vs_chunks.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [str(path)]
