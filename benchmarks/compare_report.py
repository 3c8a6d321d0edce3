"""Turns the measurements of benchmarks/compare.sh (JSON lines, one or more
state sizes) into tables on stdout (one per size, with each save's peak extra
memory, then peak memory across sizes), results.json, results.csv, a chart
(chart.png, matplotlib) and the issue's targets marked met or missed.

    python3 compare_report.py --input measurements.jsonl --out DIR [--filesystem ext4] [--load load.txt]
"""

import argparse
import csv
import json
import os
import platform

LIMITS = ("raw write+fsync", "raw read", "memcpy of the state")

# Who made each figure, in the order and colour every panel of the chart uses:
# ckpt's codecs in blues, each peer in a colour of its own.
SYSTEMS = (
    ("ckpt raw", "#08306b"),
    ("ckpt zstd", "#2171b5"),
    ("ckpt shuffle+zstd", "#6baed6"),
    ("numpy savez", "#ff7f0e"),
    ("torch.save", "#d62728"),
    ("libtorch torch::save", "#9467bd"),
    ("h5py", "#2ca02c"),
)

# The figure of each system in each timed panel of the chart. The peers have
# no asynchronous save: the training loop waits for their whole save.
PANEL_FIGURES = {
    "save": {"ckpt raw": ("ckpt save raw", ""), "ckpt zstd": ("ckpt save zstd", ""),
             "ckpt shuffle+zstd": ("ckpt save shuffle+zstd", ""), "numpy savez": ("numpy savez save", ""),
             "torch.save": ("torch.save save", ""), "libtorch torch::save": ("libtorch torch::save", ""),
             "h5py": ("h5py save", "")},
    "load": {"ckpt raw": ("ckpt load raw", None), "ckpt zstd": ("ckpt load zstd", None),
             "ckpt shuffle+zstd": ("ckpt load shuffle+zstd", None), "numpy savez": ("numpy savez load", None),
             "torch.save": ("torch.save load", None), "libtorch torch::save": ("libtorch torch::load", None),
             "h5py": ("h5py load", None)},
    "stall": {"ckpt raw": ("ckpt async raw stall", ""), "ckpt zstd": ("ckpt async zstd stall", ""),
              "ckpt shuffle+zstd": ("ckpt async shuffle+zstd stall", ""), "numpy savez": ("numpy savez save", ""),
              "torch.save": ("torch.save save", ""), "libtorch torch::save": ("libtorch torch::save", ""),
              "h5py": ("h5py save", "")},
}


def machine(filesystem):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 2**20, 1),
            "filesystem": filesystem, "kernel": platform.release()}


def limit_of(row, by_key):
    """The measurement this row is compared with (same size, same run), or None."""
    size, kind = row["state_mib"], row["kind"]
    if kind in ("save", "codec"):
        return by_key.get((size, "raw write+fsync", ""))
    if kind == "load":
        return by_key.get((size, "raw read", row["cache"]))
    if kind == "stall":
        return by_key.get((size, "memcpy of the state", ""))
    return None


def derive(rows):
    by_key = {(r["state_mib"], r["name"], r["cache"]): r for r in rows if r["dtype"] == "float32"}
    for row in rows:
        row["gb_per_s"] = row["bytes"] / row["seconds"] / 1e9
        limit = limit_of(row, by_key)
        # Speed relative to the limit, on logical bytes per second: 1.0 is at the limit.
        row["vs_limit"] = (limit["seconds"] / limit["bytes"]) / (row["seconds"] / row["bytes"]) if limit else None
        row["ratio"] = row["bytes"] / row["file_bytes"] if row["file_bytes"] else None
        row.setdefault("peak_extra_bytes", None)
    return rows


def find(rows, size, name, cache="", dtype="float32"):
    for row in rows:
        if row["state_mib"] == size and row["name"] == name and row["cache"] == cache and row["dtype"] == dtype:
            return row
    return None


def targets(rows, size):
    """(target, figure, met) for each target of the issue measured at this size."""
    results = []

    def check(text, row, value, met, unit=""):
        if row is not None:
            results.append((text, f"{value:.3g}{unit}", met))

    save = find(rows, size, "ckpt save raw")
    check("ckpt raw save >= 0.97x raw write+fsync", save, save and save["vs_limit"], save and save["vs_limit"] >= 0.97,
          "x")
    for cache in ("warm", "cold"):
        load = find(rows, size, "ckpt load raw", cache)
        check(f"full load >= 0.9x raw read ({cache})", load, load and load["vs_limit"],
              load and load["vs_limit"] >= 0.9, "x")
    for name in ("ckpt open + first tensor", "ckpt open + first tensor, verified"):
        for cache in ("warm", "cold"):
            row = find(rows, size, name, cache)
            check(f"{name[5:]} < 1 ms ({cache})", row, row and row["seconds"] * 1e3, row and row["seconds"] < 1e-3,
                  " ms")
    stall = find(rows, size, "ckpt async raw stall")
    memcpy = find(rows, size, "memcpy of the state")
    if stall and memcpy:
        times = stall["seconds"] / memcpy["seconds"]
        check("async stall <= 1.5x memcpy (raw)", stall, times, times <= 1.5, "x memcpy")
    raw = find(rows, size, "ckpt save raw")
    for dtype, wanted in (("float32", 1.15), ("bfloat16", 1.4)):
        row = find(rows, size, "ckpt save shuffle+zstd", dtype=dtype)
        check(f"shuffle+zstd ratio >= {wanted} on {dtype}", row, row and row["ratio"], row and row["ratio"] >= wanted)
        encode = find(rows, size, "shuffle+zstd encode, 2 threads", dtype=dtype)
        check(f"shuffle+zstd encode (2 threads) >= disk write speed, {dtype}", encode, encode and encode["vs_limit"],
              encode and encode["vs_limit"] >= 1.0, "x disk")
    for codec in ("zstd", "shuffle+zstd"):
        load = find(rows, size, f"ckpt load {codec}", "cold")
        check(f"{codec} cold load (decoding) >= 1.0x raw read (cold)", load, load and load["vs_limit"],
              load and load["vs_limit"] >= 1.0, "x")
    zstd = find(rows, size, "ckpt save shuffle+zstd")
    if raw and zstd and zstd["ratio"] >= 1.15:
        times = raw["seconds"] / zstd["seconds"]
        check("shuffle+zstd save >= 1.0x raw save's speed (ratio >= 1.15)", zstd, times, times >= 1.0, "x")
    return results


def memory_target(rows, sizes):
    """Peak extra memory of a compressed save at the largest size no larger than at the smallest."""
    if len(sizes) < 2:
        return []
    small = find(rows, sizes[0], "ckpt save shuffle+zstd")
    large = find(rows, sizes[-1], "ckpt save shuffle+zstd")
    if not small or not large or small["peak_extra_bytes"] is None or large["peak_extra_bytes"] is None:
        return []
    text = f"shuffle+zstd save's peak extra memory at {sizes[-1]} MiB <= at {sizes[0]} MiB"
    value = f"{mib(large['peak_extra_bytes'])} vs {mib(small['peak_extra_bytes'])} MiB"
    return [(text, value, large["peak_extra_bytes"] <= small["peak_extra_bytes"])]


def mib(count):
    return f"{count / 2**20:.1f}"


def label(row):
    suffix = f" ({row['cache']})" if row["cache"] else ""
    return row["name"] + suffix + (" [bf16]" if row["dtype"] == "bfloat16" else "")


def seconds_text(seconds):
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms"


def size_label(size):
    return f"{size // 1024} GiB" if size % 1024 == 0 else f"{size} MiB"


def table(rows):
    lines = ["| figure | time | GB/s | speed vs limit | file MiB | ratio | peak extra MiB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        seconds = row["seconds"]
        time = f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"
        vs = f"{row['vs_limit']:.2f}" if row["vs_limit"] is not None else ""
        file_mib = mib(row["file_bytes"]) if row["file_bytes"] else ""
        ratio = f"{row['ratio']:.3f}" if row["ratio"] else ""
        gbs = f"{row['gb_per_s']:.3g}" if row["kind"] != "open" else ""
        peak = mib(row["peak_extra_bytes"]) if row["peak_extra_bytes"] is not None else ""
        lines.append(f"| {label(row)} | {time} | {gbs} | {vs} | {file_mib} | {ratio} | {peak} |")
    return "\n".join(lines)


def memory_table(rows, sizes):
    """Peak extra memory of every save (float32) at every size: a row per save."""
    names = []
    for row in rows:
        if row["peak_extra_bytes"] is not None and row["dtype"] == "float32" and row["name"] not in names:
            names.append(row["name"])
    lines = ["| save | " + " | ".join(f"{size_label(s)} state" for s in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for name in names:
        cells = []
        for size in sizes:
            row = find(rows, size, name)
            cells.append(f"{mib(row['peak_extra_bytes'])} MiB" if row and row["peak_extra_bytes"] is not None else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def panel_bars(rows, size, panel, cache=""):
    """(system, colour, seconds, whole save) for each system measured in a timed panel."""
    bars = []
    for system, colour in SYSTEMS:
        name, figure_cache = PANEL_FIGURES[panel][system]
        row = find(rows, size, name, cache if figure_cache is None else figure_cache)
        if row is not None:
            bars.append((system, colour, row["seconds"], panel == "stall" and not system.startswith("ckpt")))
    return bars


def chart(rows, sizes, out, load_lines):
    """One figure, five panels: save, warm load, cold load and training-loop
    stall at the largest size (seconds, the limit dashed), then each save's peak
    extra memory at every size. Every system has one colour in every panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    size = sizes[-1]
    reps_note = "median of the run's repetitions"
    panels = (("Save (durable, fsync)", "save", "", "raw write+fsync", "", "the disk, raw write+fsync"),
              ("Load, warm (page cache)", "load", "warm", "raw read", "warm", "raw read"),
              ("Load, cold (pages evicted)", "load", "cold", "raw read", "cold", "raw read"),
              ("Training-loop stall per save", "stall", "", "memcpy of the state", "", "memcpy of the state"))
    figure, axes = plt.subplots(1, 5, figsize=(24, 6.8), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.35]})
    for axis, (title, panel, cache, limit_name, limit_cache, limit_text) in zip(axes, panels):
        bars = panel_bars(rows, size, panel, cache)
        positions = range(len(bars))
        drawn = axis.bar(positions, [b[2] for b in bars], color=[b[1] for b in bars],
                         hatch=None, edgecolor="white")
        for patch, bar in zip(drawn, bars):
            if bar[3]:
                patch.set_hatch("//")
        axis.bar_label(drawn, labels=[seconds_text(b[2]) for b in bars], fontsize=8, padding=2)
        limit = find(rows, size, limit_name, limit_cache)
        if limit is not None:
            axis.axhline(limit["seconds"], color="black", linestyle="--", linewidth=1.5)
            title += f"\ndashed: {limit_text}, {seconds_text(limit['seconds'])}"
        axis.set_title(title, fontsize=11)
        axis.set_xticks(list(positions), [b[0].replace("ckpt ", "ckpt\n") for b in bars], fontsize=8, rotation=35,
                        ha="right")
        axis.set_ylabel("seconds (lower is better)")
        axis.set_ylim(0, max([b[2] for b in bars] + [limit["seconds"] if limit else 0]) * 1.18)
        axis.grid(axis="y", alpha=0.3)
    axes[3].text(0.99, 0.98, "hatched: no async save,\nthe loop waits for the whole save", transform=axes[3].transAxes,
                 ha="right", va="top", fontsize=8)

    memory = axes[4]
    width = 0.8 / len(sizes)
    systems = [(s, c) for s, c in SYSTEMS if any(find(rows, z, PANEL_FIGURES["save"][s][0]) for z in sizes)]
    top = 0
    for index, size_mib in enumerate(sizes):
        values = []
        for system, _ in systems:
            row = find(rows, size_mib, PANEL_FIGURES["save"][system][0])
            values.append(row["peak_extra_bytes"] / 2**20 if row and row["peak_extra_bytes"] is not None else 0)
        top = max([top] + values)
        offsets = [i - 0.4 + width * (index + 0.5) for i in range(len(systems))]
        drawn = memory.bar(offsets, values, width=width * 0.92, color=[c for _, c in systems],
                           alpha=0.45 + 0.55 * (index + 1) / len(sizes), edgecolor="white")
        memory.bar_label(drawn, labels=[f"{v:.0f}" if v >= 10 else f"{v:.1f}" for v in values], fontsize=7,
                         padding=1)
    memory.set_xticks(range(len(systems)), [s.replace("ckpt ", "ckpt\n") for s, _ in systems], fontsize=8, rotation=35,
                      ha="right")
    memory.set_ylim(0, top * 1.2 + 1)
    memory.set_ylabel("MiB above the resident set before the save")
    memory.set_title("Peak extra memory of a save, by state size\n(lower is better; 0 = no copy of the state)",
                     fontsize=11)
    memory.text(0.01, 0.98, "bars left to right: " + ", ".join(size_label(s) for s in sizes) + " of state",
                transform=memory.transAxes, ha="left", va="top", fontsize=8)
    staged = [find(rows, z, "ckpt async raw total") for z in sizes]
    if all(row and row["peak_extra_bytes"] is not None for row in staged):
        memory.text(0.01, 0.92, "not drawn: ckpt's async save keeps a staging copy of the state (" +
                    ", ".join(f"{mib(row['peak_extra_bytes'])}" for row in staged) + " MiB)",
                    transform=memory.transAxes, ha="left", va="top", fontsize=8)
    memory.grid(axis="y", alpha=0.3)

    figure.suptitle(f"ckpt and its peers saving and loading one {size_label(size)} float32 state ({reps_note}); "
                    "dashed: the limit measured in the same run", fontsize=13, fontweight="bold", y=0.99)
    figure.legend(handles=[Patch(color=c, label=s) for s, c in SYSTEMS], loc="upper center", ncol=len(SYSTEMS),
                  fontsize=11, frameon=False, bbox_to_anchor=(0.5, 0.95))
    if load_lines:
        figure.text(0.5, 0.005, "Machine load (2 shared cores): " + "; ".join(load_lines), ha="center", fontsize=9)
    figure.tight_layout(rect=(0, 0.03, 1, 0.91))
    figure.savefig(os.path.join(out, "chart.png"), dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--filesystem", default="unknown")
    parser.add_argument("--load", help="the machine's load during each size, a line per size (compare.sh writes it)")
    args = parser.parse_args()
    with open(args.input) as f:
        rows = derive([json.loads(line) for line in f if line.startswith("{")])
    load_lines = []
    if args.load:
        with open(args.load) as f:
            load_lines = [line.strip() for line in f if line.strip()]
    sizes = sorted({row["state_mib"] for row in rows})
    info = machine(args.filesystem)
    met = {size: targets(rows, size) for size in sizes}
    flat = memory_target(rows, sizes)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": info, "load": load_lines, "results": rows,
                   "targets": [{"state_mib": size, "target": t, "measured": v, "met": bool(m)}
                               for size in sizes for t, v, m in met[size]] +
                              [{"target": t, "measured": v, "met": bool(m)} for t, v, m in flat]}, f, indent=1)
    with open(os.path.join(args.out, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    chart(rows, sizes, args.out, load_lines)
    print(f"machine: {info['nproc']} cores, {info['cpu']}, {info['memory_gib']} GiB, {info['filesystem']}, "
          f"Linux {info['kernel']}")
    for line in load_lines:
        print(f"load: {line}")
    print("loads: 'warm' = from the page cache (file just written); 'cold' = pages evicted with "
          "posix_fadvise(DONTNEED) first; peak extra = peak resident set of a save in a child process minus "
          "its resident set before the save")
    for size in sizes:
        print(f"\n### {size_label(size)} state\n")
        print(table([row for row in rows if row["state_mib"] == size]))
        print("\n| target | measured | |\n|---|---:|---|")
        for text, value, ok in met[size]:
            print(f"| {text} | {value} | {'met' if ok else 'MISSED'} |")
    print("\n### Peak extra memory of each save\n")
    print(memory_table(rows, sizes))
    for text, value, ok in flat:
        print(f"\n| target | measured | |\n|---|---:|---|\n| {text} | {value} | {'met' if ok else 'MISSED'} |")


if __name__ == "__main__":
    main()
