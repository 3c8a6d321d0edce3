"""The Python half of benchmarks/compare.sh: numpy savez/load, torch.save/load
and HDF5 (h5py) on the state ckpt_compare wrote. The raw ckpt file is read
with json + numpy, so every peer saves exactly the bytes ckpt saved. Saves end
with an fsync of the file, like ckpt's durable saves. Each figure is the median
of --reps runs, printed as one JSON object per line (the format ckpt_compare uses).
Each save's peak extra memory is measured once more in a child process, as
ckpt_compare measures ckpt's (benchmarks/peak_memory.hpp).

    python3 compare_peers.py --dir DIR --state FILE --size-mib N [--reps 3]
"""

import argparse
import ctypes
import json
import os
import statistics
import struct
import sys
import time

import numpy as np

DTYPES = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    """Every tensor of a raw (uncompressed) safetensors/ckpt file, as numpy arrays."""
    with open(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_size))
        data = f.read()
    arrays = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        arrays[name] = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"]).copy()
    return arrays


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def evict(path):
    """Drops the file's pages from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def status_bytes(field):
    """A field of /proc/self/status in bytes ("VmRSS", "VmHWM")."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) << 10
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_extra_bytes_in_child(body):
    """How far the resident set of a forked child rose above its level before
    body(): the child first returns the allocator's free memory (malloc_trim),
    then resets its peak (VmHWM) through /proc/self/clear_refs."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(reader)
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            before = status_bytes("VmRSS")
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
            body()
            os.write(writer, str(max(0, status_bytes("VmHWM") - before)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader) as f:
        sent = f.read()
    _, status = os.waitpid(child, 0)
    if status != 0 or not sent:
        raise RuntimeError("the measuring child process failed")
    return int(sent)


def median_seconds(reps, prepare, body):
    times = []
    for _ in range(reps):
        prepare()
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def emit(name, kind, cache, logical, seconds, file_bytes, state_mib, peak_extra_bytes=None):
    line = {"name": name, "kind": kind, "cache": cache, "dtype": "float32", "bytes": logical,
            "seconds": seconds, "file_bytes": file_bytes, "state_mib": state_mib}
    if peak_extra_bytes is not None:
        line["peak_extra_bytes"] = peak_extra_bytes
    print(json.dumps(line), flush=True)
    label = name + (f" ({cache})" if cache else "")
    print(f"  {label:<40} {seconds:10.4f} s", file=sys.stderr)


def measure_peer(name, path, save, load, arrays, reps, state_mib):
    """Times save(path) + fsync and measures its peak extra memory, then times
    load(path) from the page cache and from the disk."""
    logical = sum(a.nbytes for a in arrays.values())

    def remove():
        if os.path.exists(path):
            os.remove(path)

    def durable_save():
        save(path)
        fsync_path(path)

    seconds = median_seconds(reps, remove, durable_save)
    remove()
    peak = peak_extra_bytes_in_child(durable_save)
    emit(name + " save", "save", "", logical, seconds, os.path.getsize(path), state_mib, peak)
    for cache in ("warm", "cold"):
        prepare = (lambda: evict(path)) if cache == "cold" else (lambda: None)
        emit(name + " load", "load", cache, logical, median_seconds(reps, prepare, lambda: load(path)),
             os.path.getsize(path), state_mib)
    remove()


def numpy_peer(arrays):
    def save(path):
        np.savez(path, **arrays)

    def load(path):
        with np.load(path) as archive:
            return {key: archive[key] for key in archive.files}

    return "numpy savez", "state.npz", save, load


def torch_peer(arrays):
    import torch

    tensors = {key: torch.from_numpy(value) for key, value in arrays.items()}

    def save(path):
        torch.save(tensors, path)

    def load(path):
        return torch.load(path)

    return "torch.save", "state.pt", save, load


def h5py_peer(arrays):
    import h5py

    def save(path):
        with h5py.File(path, "w") as f:
            for key, value in arrays.items():
                f.create_dataset(key, data=value)

    def load(path):
        with h5py.File(path, "r") as f:
            return {key: f[key][()] for key in arrays}

    return "h5py", "state.h5", save, load


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--state", required=True, help="the raw ckpt file ckpt_compare left")
    parser.add_argument("--size-mib", type=int, required=True, help="the state's size, recorded in every line")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    arrays = read_safetensors(args.state)
    for make_peer in (numpy_peer, torch_peer, h5py_peer):
        try:
            name, file_name, save, load = make_peer(arrays)
        except ImportError as error:
            print(f"  skipping {make_peer.__name__}: {error}", file=sys.stderr)
            continue
        measure_peer(name, os.path.join(args.dir, file_name), save, load, arrays, args.reps, args.size_mib)


if __name__ == "__main__":
    main()
