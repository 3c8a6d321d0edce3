#!/usr/bin/python3
"""A strict safetensors reader written from docs/format.md with json and numpy only.

Library use:   header, metadata, tensors = read_safetensors(path)
Test use:      safetensors_reader.py --check-samples FORMAT_TESTS_EXECUTABLE with-zstd|without-zstd
    runs the C++ test that writes sample checkpoints, then reads them here and
    compares every value bit-exact with the patterns the C++ side generated.
    The build says whether it has the zstd codecs: with them, the compressed
    sample must have been written (a missing one fails, never skips); without
    them, it must not have been.

It enforces the reference reader's rules (header size, UTF-8, no duplicate
keys, entries with exactly dtype/shape/data_offsets, contiguous offsets from
0 with no gap, overlap or trailing byte) and maps BF16 and the F8 types, which
numpy lacks, to unsigned integer views of the same width.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

MAX_HEADER_BYTES = 100_000_000
DATA_ALIGNMENT = 64
DTYPES = {
    "BOOL": np.dtype("?"), "U8": np.dtype("<u1"), "I8": np.dtype("<i1"), "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"), "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"), "F8_E4M3": np.dtype("<u1"), "F8_E5M2": np.dtype("<u1"),
}
ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


class FormatError(Exception):
    pass


def _unique_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise FormatError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _is_u64(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def read_safetensors(path):
    """Returns (header entries, __metadata__, {name: numpy array}) or raises FormatError."""
    with open(path, "rb") as file:
        data = file.read()
    if len(data) < 8:
        raise FormatError(f"{len(data)} bytes: no header size")
    header_size = int.from_bytes(data[:8], "little")
    if header_size > MAX_HEADER_BYTES:
        raise FormatError(f"header size {header_size} over the limit")
    if 8 + header_size > len(data):
        raise FormatError(f"header size {header_size} beyond the file of {len(data)} bytes")
    try:
        text = data[8:8 + header_size].decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError(f"header is not UTF-8: {error}") from None
    if not text.startswith("{"):
        raise FormatError("header does not start with '{'")
    try:
        header = json.loads(text, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as error:
        raise FormatError(f"header is not JSON: {error}") from None

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError("__metadata__ is not a map of strings")

    buffer = memoryview(data)[8 + header_size:]
    entries = []
    for name, entry in header.items():
        if not name or "\0" in name or name.startswith("/") or name.endswith("/") or ".." in name.split("/"):
            raise FormatError(f"bad tensor name {name!r}")
        if not isinstance(entry, dict) or set(entry) != ENTRY_KEYS:
            raise FormatError(f"{name}: entry keys {sorted(entry) if isinstance(entry, dict) else entry}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            raise FormatError(f"{name}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_u64(extent) for extent in shape):
            raise FormatError(f"{name}: bad shape {shape!r}")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_u64(o) for o in offsets):
            raise FormatError(f"{name}: bad data_offsets {offsets!r}")
        count = 1
        for extent in shape:
            count *= extent
            if count >= 2**64:
                raise FormatError(f"{name}: shape {shape} overflows")
        nbytes = count * DTYPES[dtype].itemsize
        begin, end = offsets
        if nbytes >= 2**64 or begin > end or end - begin != nbytes:
            raise FormatError(f"{name}: {nbytes} bytes for {dtype} {shape}, offsets [{begin}, {end}]")
        entries.append((begin, end, name, dtype, shape))

    entries.sort()
    expected = 0
    for begin, end, name, _, _ in entries:
        if begin != expected:
            raise FormatError(f"{name}: begins at {begin}, expected {expected} (gap or overlap)")
        expected = end
    if expected != len(buffer):
        raise FormatError(f"data buffer holds {len(buffer)} bytes, tensors cover {expected}")

    tensors = {}
    for begin, end, name, dtype, shape in entries:
        array = np.frombuffer(buffer[begin:end], dtype=DTYPES[dtype]) if end > begin else np.zeros(0, DTYPES[dtype])
        tensors[name] = array.reshape(shape)
    return header, metadata, tensors


# ---------------------------------------------------------------- self-check

PATTERN = {1: (7, 3), 2: (2654, 11), 4: (2654435761, 17), 8: (11400714819323198485, 29)}


def pattern(dtype, shape):
    """The C++ test's pattern: element i has bits (i * A + B) mod 2^(8 * width); BOOL is i % 3 == 0."""
    count = int(np.prod(shape, dtype=np.uint64)) if shape else 1
    index = np.arange(count, dtype=np.uint64)
    if dtype == "BOOL":
        return (index % np.uint64(3) == 0).reshape(shape)
    width = DTYPES[dtype].itemsize
    factor, offset = PATTERN[width]
    with np.errstate(over="ignore"):
        bits = index * np.uint64(factor) + np.uint64(offset)
    return bits.astype(np.dtype(f"<u{width}")).view(DTYPES[dtype]).reshape(shape)


def unshuffle(planes, width):
    return planes.reshape(width, -1).T.reshape(-1) if width > 1 else planes


def decode(info, stored):
    """Decodes an encoded tensor as docs/format.md describes (needs python3-zstandard)."""
    import zstandard
    dtype = DTYPES[info["dtype"]]
    parts, position = [], 0
    for size in info["chunks"]:
        raw = np.frombuffer(zstandard.ZstdDecompressor().decompress(stored[position:position + size].tobytes()),
                            dtype=np.uint8)
        parts.append(unshuffle(raw, dtype.itemsize) if info["codec"] == "shuffle+zstd" else raw)
        position += size
    joined = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    return joined.view(dtype).reshape(info["shape"])


def expect(condition, what):
    if not condition:
        raise AssertionError(what)


def check_layout(path, header, metadata):
    data = open(path, "rb").read()
    data_start = 8 + int.from_bytes(data[:8], "little")
    expect(data_start % DATA_ALIGNMENT == 0, f"data starts at {data_start}")
    prefix = b'{"__metadata__":{"ckpt.header_xxh3":"'
    expect(data[8:8 + len(prefix)] == prefix, "the header checksum comes first")
    checksum = data[8 + len(prefix):8 + len(prefix) + 16]
    expect(all(c in b"0123456789abcdef" for c in checksum), "header checksum is 16 lowercase hex digits")
    order = sorted(header, key=lambda name: header[name]["data_offsets"][0])
    expected_order = sorted(header, key=lambda name: (-DTYPES[header[name]["dtype"]].itemsize, name.encode()))
    expect(order == expected_order, "tensors ordered by element size, then name")
    for name, entry in header.items():
        expect((data_start + entry["data_offsets"][0]) % DTYPES[entry["dtype"]].itemsize == 0, f"{name} aligned")
    expect(metadata["format"] == "pt", "format pt")
    expect(metadata["ckpt.format_version"] == "2", "format version 2")
    expect(json.loads(metadata["ckpt.metadata"]) == {"step": 42, "name": "sample"}, "user metadata")
    infos = json.loads(metadata["ckpt.tensors"])
    for name, info in infos.items():
        begin, end = header[name]["data_offsets"]
        if info["codec"] == "raw":  # section 4: ceil(stored / block_bytes) block checksums
            expect(1 <= info["block_bytes"] <= 2**30, f"{name} block_bytes")
            count = -(-(end - begin) // info["block_bytes"])
        else:  # one per chunk
            expect("block_bytes" not in info, f"{name} encoded without block_bytes")
            count = len(info["chunks"])
        expect(len(info["blocks"]) == count, f"{name}: {count} block checksums")
        expect(all(len(b) == 16 and all(c in "0123456789abcdef" for c in b) for b in info["blocks"]),
               f"{name} block checksums are hex")
    return infos


def check_values(name, array, decoded_name=None):
    if name.startswith("pattern/"):
        _, dtype, _ = name.split("/")
        wanted = pattern(dtype, list(array.shape))
        expect(array.dtype == wanted.dtype and array.tobytes() == wanted.tobytes(), f"{name} bit-exact")
    elif name == "values/f32" or name == "values/f64":
        wanted = (np.arange(24, dtype=array.dtype) - 10) / 4
        expect(np.array_equal(array.reshape(-1), wanted), f"{name} values")
    elif name == "values/scalar":
        expect(array.shape == () and array[()] == 6.5, "scalar")
    elif name == "values/empty":
        expect(array.shape == (0, 5) and array.dtype == np.dtype("<i4"), "empty")


def check_rejects(path):
    """The reader is strict: small departures from the rules are refused."""
    good = open(path, "rb").read()
    size = int.from_bytes(good[:8], "little")
    header = good[8:8 + size]
    mutants = {
        "trailing byte": good + b"\0",
        "truncated": good[:-1],
        "header size past the end": (len(good)).to_bytes(8, "little") + good[8:],
        "not JSON": good[:8] + b"[" + header[1:] + good[8 + size:],
        "duplicate key": good[:8] + header.replace(b'"__metadata__"', b'"values/f64"', 1) + good[8 + size:],
    }
    for label, bytes_ in mutants.items():
        with tempfile.NamedTemporaryFile(suffix=".safetensors") as file:
            file.write(bytes_)
            file.flush()
            try:
                read_safetensors(file.name)
            except FormatError:
                continue
            raise AssertionError(f"the reader accepted a file with a {label}")


def check_samples(executable, zstd_built):
    with tempfile.TemporaryDirectory() as directory:
        env = dict(os.environ, CKPT_FORMAT_SAMPLE_DIR=directory)
        subprocess.run([executable, "--gtest_filter=PythonSamples.*"], env=env, check=True, stdout=subprocess.DEVNULL)

        raw = os.path.join(directory, "raw.safetensors")
        header, metadata, tensors = read_safetensors(raw)
        infos = check_layout(raw, header, metadata)
        expect(set(infos) == set(tensors), "every tensor described in ckpt.tensors")
        for name, array in tensors.items():
            info = infos[name]
            expect(info["codec"] == "raw", f"{name} raw")
            blocks = -(-array.nbytes // info["block_bytes"])
            expect(len(info["blocks"]) == blocks, f"{name}: {blocks} block checksums")
            check_values(name, array)
        expect(len(tensors) == 15 * 3 + 4, f"{len(tensors)} tensors")
        check_rejects(raw)
        checked = len(tensors)

        compressed = os.path.join(directory, "compressed.safetensors")
        written = os.path.exists(compressed)
        expect(written == zstd_built, f"compressed.safetensors {'missing' if zstd_built else 'written'}, expected it "
               f"{'written by a build with' if zstd_built else 'absent from a build without'} the zstd codecs")
        if written:
            header, metadata, tensors = read_safetensors(compressed)  # still valid safetensors
            infos = check_layout(compressed, header, metadata)
            for name, stored in tensors.items():
                info = infos[name]
                if info["codec"] == "raw":
                    check_values(name, stored)
                    continue
                expect(header[name]["dtype"] == "U8" and stored.ndim == 1, f"{name} stored as U8 bytes")
                expect(len(info["blocks"]) == len(info["chunks"]), f"{name}: a block checksum per chunk")
                check_values(name, decode(info, stored))
                checked += 1
    print(f"safetensors_reader: {checked} tensors read and compared bit-exact")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--check-samples" and sys.argv[3] in ("with-zstd", "without-zstd"):
        check_samples(sys.argv[2], sys.argv[3] == "with-zstd")
    elif len(sys.argv) == 2:
        _, meta, arrays = read_safetensors(sys.argv[1])
        print(json.dumps(meta, indent=2))
        for tensor_name, tensor in arrays.items():
            print(tensor_name, tensor.dtype, tensor.shape)
    else:
        sys.exit(__doc__)
