#!/usr/bin/python3
"""Measures how fast the Python package reads checkpoints (docs/python.md, "Speed").

    /usr/bin/python3 python/scripts/measure_speed.py CKPT_TOOL [MIB]

Writes MIB (default 256) MiB of float32 weights N(0, 0.02) in 8 tensors as a
.npz, has the C++ tool (`ckpt convert`, built with libzip) turn it into raw,
zstd and shuffle+zstd checkpoints in a temporary directory, then times, warm
(the files were just written, so they are in the page cache), best of 5:
np.fromfile of the raw file, ckpt.load with checksums verified (and without,
copying every tensor), each compressed file on 1 and on all threads, and XXH3
alone. Prints a Markdown table: wall-clock speed, and speed per CPU-second,
which a machine shared with other work disturbs less. Speeds count the tensor
bytes (logical, decoded).
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import ckpt  # noqa: E402 - the package of this checkout
from ckpt.checksum import xxh3  # noqa: E402


def best_of(repeats, action):
    """(wall seconds, CPU seconds of all threads) of the fastest of ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return min(times)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    tool, mib = sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 256
    with tempfile.TemporaryDirectory() as directory:
        rng = np.random.default_rng(0)
        count = mib * (1 << 20) // 4 // 8
        weights = {f"layer{i}/weight": (rng.standard_normal(count, dtype=np.float32) * 0.02) for i in range(8)}
        np.savez(os.path.join(directory, "weights.npz"), **weights)
        paths = {}
        for codec in ("raw", "zstd", "shuffle+zstd"):
            paths[codec] = os.path.join(directory, f"{codec.replace('+', '_')}.safetensors")
            subprocess.run([tool, "convert", os.path.join(directory, "weights.npz"), paths[codec], "--codec", codec],
                           check=True, stdout=subprocess.DEVNULL)
        size = sum(array.nbytes for array in weights.values())
        rows = []

        def row(what, path, seconds):
            wall, cpu = seconds
            rows.append((what, os.path.getsize(path) / (1 << 20), wall, size / wall / 1e9, size / max(cpu, 1e-9) / 1e9))

        row("np.fromfile of the raw file (baseline)", paths["raw"],
            best_of(5, lambda: np.fromfile(paths["raw"], np.uint8)))
        row("ckpt.open (the header only)", paths["raw"], best_of(5, lambda: ckpt.open(paths["raw"]).close()))
        row("ckpt.load raw, checksums verified (zero-copy views)", paths["raw"],
            best_of(5, lambda: ckpt.load(paths["raw"])))
        row("ckpt.load raw, unverified, each tensor copied", paths["raw"],
            best_of(5, lambda: [np.array(a) for a in ckpt.load(paths["raw"], verify_checksums=False).values()]))
        for codec in ("zstd", "shuffle+zstd"):
            for threads in (1, os.cpu_count()):
                row(f"ckpt.load {codec}, verified, {threads} thread{'s' if threads > 1 else ''}", paths[codec],
                    best_of(5, lambda: ckpt.load(paths[codec], threads=threads)))
        in_memory = np.fromfile(paths["raw"], np.uint8)
        row("XXH3 of the raw file's bytes, in memory", paths["raw"], best_of(5, lambda: xxh3(in_memory)))
    print(f"{mib} MiB of float32 in 8 tensors, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the end\n")
    print("| what | file MiB | ms | GB/s | GB per CPU-second |\n| --- | ---: | ---: | ---: | ---: |")
    for what, file_mib, seconds, speed, cpu_speed in rows:
        speeds = "| - | - |" if what.startswith("ckpt.open") else f"| {speed:.2f} | {cpu_speed:.2f} |"
        print(f"| {what} | {file_mib:.1f} | {seconds * 1e3:.1f} {speeds}")


if __name__ == "__main__":
    main()
