"""Turns the measurements of benchmarks/compare.sh (JSON lines) into a table on
stdout, results.json, results.csv, a gnuplot chart (chart.png) and the issue's
targets marked met or missed.

    python3 compare_report.py --input measurements.jsonl --out DIR [--filesystem ext4] [--cache-note TEXT]
"""

import argparse
import csv
import json
import os
import platform
import subprocess


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
    """The measurement this row is compared with, or None."""
    kind = row["kind"]
    if kind in ("save", "codec"):
        return by_key.get(("raw write+fsync", ""))
    if kind == "load":
        return by_key.get(("raw read", row["cache"]))
    if kind == "stall":
        return by_key.get(("memcpy of the state", ""))
    return None


def derive(rows):
    by_key = {(r["name"], r["cache"]): r for r in rows if r["dtype"] == "float32"}
    for row in rows:
        row["gb_per_s"] = row["bytes"] / row["seconds"] / 1e9
        limit = limit_of(row, by_key)
        # Speed relative to the limit, on logical bytes per second: 1.0 is at the limit.
        row["vs_limit"] = (limit["seconds"] / limit["bytes"]) / (row["seconds"] / row["bytes"]) if limit else None
        row["ratio"] = row["bytes"] / row["file_bytes"] if row["file_bytes"] else None
    return rows


def find(rows, name, cache="", dtype="float32"):
    for row in rows:
        if row["name"] == name and row["cache"] == cache and row["dtype"] == dtype:
            return row
    return None


def targets(rows):
    """(target, figure, met) for each target of the issue that was measured."""
    results = []

    def check(text, row, value, met, unit=""):
        if row is not None:
            results.append((text, f"{value:.3g}{unit}", met))

    save = find(rows, "ckpt save raw")
    check("ckpt raw save >= 0.95x raw write+fsync", save, save and save["vs_limit"], save and save["vs_limit"] >= 0.95, "x")
    for cache in ("warm", "cold"):
        load = find(rows, "ckpt load raw", cache)
        check(f"full load >= 0.9x raw read ({cache})", load, load and load["vs_limit"],
              load and load["vs_limit"] >= 0.9, "x")
    for name in ("ckpt open + first tensor", "ckpt open + first tensor, verified"):
        for cache in ("warm", "cold"):
            row = find(rows, name, cache)
            check(f"{name[5:]} < 1 ms ({cache})", row, row and row["seconds"] * 1e3, row and row["seconds"] < 1e-3, " ms")
    stall = find(rows, "ckpt async raw stall")
    memcpy = find(rows, "memcpy of the state")
    if stall and memcpy:
        times = stall["seconds"] / memcpy["seconds"]
        check("async stall <= 1.5x memcpy (raw)", stall, times, times <= 1.5, "x memcpy")
    for dtype, wanted in (("float32", 1.15), ("bfloat16", 1.4)):
        row = find(rows, "ckpt save shuffle+zstd", dtype=dtype)
        check(f"shuffle+zstd ratio >= {wanted} on {dtype}", row, row and row["ratio"], row and row["ratio"] >= wanted)
        encode = find(rows, "shuffle+zstd encode, 2 threads", dtype=dtype)
        check(f"shuffle+zstd encode (2 threads) >= disk write speed, {dtype}", encode, encode and encode["vs_limit"],
              encode and encode["vs_limit"] >= 1.0, "x disk")
    return results


def label(row):
    suffix = f" ({row['cache']})" if row["cache"] else ""
    return row["name"] + suffix + (" [bf16]" if row["dtype"] == "bfloat16" else "")


def table(rows):
    lines = ["| figure | time | GB/s | speed vs limit | file MiB | ratio |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        seconds = row["seconds"]
        time = f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"
        vs = f"{row['vs_limit']:.2f}" if row["vs_limit"] is not None else ""
        mib = f"{row['file_bytes'] / 2**20:.1f}" if row["file_bytes"] else ""
        ratio = f"{row['ratio']:.3f}" if row["ratio"] else ""
        gbs = f"{row['gb_per_s']:.3g}" if row["kind"] != "open" else ""
        lines.append(f"| {label(row)} | {time} | {gbs} | {vs} | {mib} | {ratio} |")
    return "\n".join(lines)


def chart(rows, out):
    """Speed relative to the limit of every save, load and stall figure (log scale)."""
    data = os.path.join(out, "chart.dat")
    plotted = [r for r in rows if r["vs_limit"] is not None and r["name"] not in ("raw write+fsync", "raw read",
                                                                                   "memcpy of the state")]
    colors = {"save": 1, "codec": 1, "load": 2, "stall": 3}
    with open(data, "w") as f:
        for i, row in enumerate(plotted):
            f.write(f'{i} {row["vs_limit"]:.6g} {colors[row["kind"]]} "{label(row)}"\n')
    script = f"""
set terminal pngcairo size 1400,700 font ",10" noenhanced
set output "{os.path.join(out, 'chart.png')}"
set title "Speed relative to the limit (1 = raw write+fsync for saves, raw read for loads, memcpy for stalls); higher is better"
set logscale y
set yrange [0.03:*]
set grid ytics
set xtics rotate by -50 left
set style fill solid 0.8
set boxwidth 0.7
set key off
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 2 lc rgb "black"
set palette defined (1 "#1f77b4", 2 "#2ca02c", 3 "#d62728")
unset colorbox
set bmargin 14
set rmargin 10
plot "{data}" using 1:2:3:xtic(4) with boxes lc palette
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"gnuplot failed, no chart: {error}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--filesystem", default="unknown")
    args = parser.parse_args()
    with open(args.input) as f:
        rows = derive([json.loads(line) for line in f if line.startswith("{")])
    info = machine(args.filesystem)
    met = targets(rows)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": info, "results": rows,
                   "targets": [{"target": t, "measured": v, "met": bool(m)} for t, v, m in met]}, f, indent=1)
    with open(os.path.join(args.out, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    chart(rows, args.out)
    print(f"machine: {info['nproc']} cores, {info['cpu']}, {info['memory_gib']} GiB, {info['filesystem']}, "
          f"Linux {info['kernel']}")
    print("loads: 'warm' = from the page cache (file just written); 'cold' = pages evicted with "
          "posix_fadvise(DONTNEED) first\n")
    print(table(rows))
    print("\n| target | measured | |\n|---|---:|---|")
    for text, value, ok in met:
        print(f"| {text} | {value} | {'met' if ok else 'MISSED'} |")


if __name__ == "__main__":
    main()
