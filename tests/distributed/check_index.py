#!/usr/bin/python3
"""Reads a distributed checkpoint directory as docs/distributed.md specifies it,
with json and numpy alone, the way tools that read Hugging Face's sharded
safetensors do, and checks it against the sample state the C++ tests save
(tests/distributed/sample_state.hpp: byte k of element i of tensor NAME is
(i * 131 + k * 17 + sum of NAME's bytes) mod 256; BOOL elements are i % 3 == 0).

Usage: check_index.py DIRECTORY...   (exit 0 when every check passes)
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "format"))
from safetensors_reader import DTYPES, read_safetensors  # noqa: E402  (json + numpy, from docs/format.md)

INDEX = "model.safetensors.index.json"


def expect(condition, message):
    """An explicit failure: unlike assert, not removed when Python runs with -O."""
    if not condition:
        raise SystemExit(f"check_index: {message}")


def sample_bytes(name, dtype, count):
    """The sample content of `count` elements of tensor `name`, as bytes."""
    index = np.arange(count, dtype=np.uint64)
    if dtype == "BOOL":
        return (index % 3 == 0).astype(np.uint8)
    width = DTYPES[dtype].itemsize
    salt = sum(name.encode())
    byte = np.arange(width, dtype=np.uint64)
    return ((index[:, None] * 131 + byte[None, :] * 17 + salt) & 0xFF).astype(np.uint8).reshape(-1)


def check(directory):
    with open(os.path.join(directory, INDEX), encoding="utf-8") as file:
        index = json.load(file)
    expect(set(index) == {"metadata", "weight_map"}, f"top-level keys {sorted(index)}")
    weight_map = index["weight_map"]
    metadata = index["metadata"]

    # Hugging Face's convention: every name of weight_map is in the file it maps to.
    files = {}
    total_size = 0
    for name, file_name in weight_map.items():
        if file_name not in files:
            files[file_name] = read_safetensors(os.path.join(directory, file_name))[2]
        expect(name in files[file_name], f"{name} is not in {file_name}")
        total_size += files[file_name][name].nbytes
    expect(total_size == metadata["total_size"], f"total_size {metadata['total_size']}, tensors hold {total_size}")
    names_in_files = {name for tensors in files.values() for name in tensors}
    expect(names_in_files == set(weight_map), "the files hold tensors weight_map does not list")

    whole = 0
    for name, entry in metadata["ckpt.tensors"].items():
        dtype, shape = entry["dtype"], tuple(entry["shape"])
        full = np.zeros(shape, dtype=DTYPES[dtype])
        covered = np.zeros(shape, dtype=np.int64)
        for piece in entry["pieces"]:
            stored = files[piece["file"]][piece["name"]]
            if "flat" in piece:
                begin, end = piece["flat"]
                full.reshape(-1)[begin:end] = stored.reshape(-1)
                covered.reshape(-1)[begin:end] += 1
            else:
                where = tuple(slice(o, o + e) for o, e in zip(piece["offsets"], piece["extents"]))
                full[where] = stored
                covered[where] += 1
            if len(entry["pieces"]) == 1 and stored.shape == shape:
                # A tensor stored whole: under its own name, readable as it is.
                expect(piece["name"] == name and weight_map[name] == piece["file"], name)
                whole += 1
        expect((covered == 1).all(), f"{name}: pieces do not tile the tensor")
        expected = sample_bytes(name, dtype, full.size)
        expect(np.array_equal(full.reshape(-1).view(np.uint8), expected), f"{name}: content differs")
    expect(whole > 0, "no tensor was stored whole")
    print(f"ok: {directory}: {len(metadata['ckpt.tensors'])} tensors, {len(files)} files, "
          f"{whole} stored whole, step {metadata['ckpt.step']}, {metadata['ckpt.world_size']} ranks")


if __name__ == "__main__":
    for path in sys.argv[1:]:
        check(path)
