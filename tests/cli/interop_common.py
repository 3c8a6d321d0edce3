"""Shared by the interop tests: run the ckpt tool, and read and write
safetensors files with json + numpy only, from the format's rules."""

import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

# safetensors dtype -> numpy dtype of the bits (BF16 and F8 have no numpy type)
NUMPY_BITS = {
    "BOOL": "|b1", "U8": "|u1", "I8": "|i1", "U16": "<u2", "I16": "<i2", "U32": "<u4", "I32": "<i4",
    "U64": "<u8", "I64": "<i8", "F16": "<f2", "BF16": "<u2", "F32": "<f4", "F64": "<f8",
    "F8_E4M3": "|u1", "F8_E5M2": "|u1",
}
DTYPE_OF_NUMPY = {np.dtype(v).str: k for k, v in NUMPY_BITS.items() if k not in ("BF16", "F8_E4M3", "F8_E5M2")}


def expect(condition, message):
    """An explicit failure: unlike assert, not removed when Python runs with -O."""
    if not condition:
        raise AssertionError(message)


def run_checks(*checks):
    """Runs each check(tool, directory) with the tool named on the command line, in a fresh directory."""
    if len(sys.argv) != 2:
        sys.exit("usage: %s PATH_TO_CKPT_TOOL" % sys.argv[0])
    for check in checks:
        with tempfile.TemporaryDirectory() as directory:
            check(sys.argv[1], directory)


def run(tool, *args):
    result = subprocess.run([tool, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError("ckpt %s failed (%d): %s" % (" ".join(args), result.returncode, result.stderr))
    return result.stdout


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: (dtype, numpy array of the bits)}; written in the given order."""
    header, offset, blobs = {}, 0, []
    for name, (dtype, array) in tensors.items():
        data = np.asarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    """Returns ({name: (dtype, shape, bytes)}, __metadata__), checking the reference reader's rules."""
    with open(path, "rb") as f:
        content = f.read()
    (size,) = struct.unpack("<Q", content[:8])
    expect(8 + size <= len(content) and size <= 100_000_000, "header size out of bounds")
    header = json.loads(content[8:8 + size])
    metadata = header.pop("__metadata__", {})
    expect(all(isinstance(v, str) for v in metadata.values()), "__metadata__ must map strings to strings")
    data = content[8 + size:]
    tensors, end = {}, 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        expect(set(entry) == {"dtype", "shape", "data_offsets"}, "extra fields in " + name)
        begin, stop = entry["data_offsets"]
        expect(begin == end, "offsets of %s are not contiguous" % name)
        count = int(np.prod(entry["shape"], dtype=np.uint64))
        expect(stop - begin == count * np.dtype(NUMPY_BITS[entry["dtype"]]).itemsize, "size of " + name)
        tensors[name] = (entry["dtype"], tuple(entry["shape"]), data[begin:stop])
        end = stop
    expect(end == len(data), "trailing bytes after the last tensor")
    return tensors, metadata


def sample_tensors(seed=1):
    """Every dtype ckpt stores, as {name: (dtype, bits)}; hierarchical names included."""
    rng = np.random.default_rng(seed)
    return {
        "encoder/layer0/weight": ("F32", rng.standard_normal((5, 7)).astype("<f4")),
        "encoder/layer0/bias": ("F64", np.array([np.inf, -np.inf, np.nan, -0.0, 1e-310], "<f8")),
        "encoder/half": ("F16", rng.standard_normal(9).astype("<f2")),
        "bf16": ("BF16", rng.integers(0, 2**16, (3, 4), dtype="<u2")),
        "fp8_e4m3": ("F8_E4M3", rng.integers(0, 256, 6, dtype="u1")),
        "fp8_e5m2": ("F8_E5M2", rng.integers(0, 256, 6, dtype="u1")),
        "mask": ("BOOL", rng.integers(0, 2, 10).astype("|b1")),
        "u8": ("U8", rng.integers(0, 256, 4, dtype="u1")),
        "i8": ("I8", rng.integers(-128, 128, 4, dtype="i1")),
        "u16": ("U16", rng.integers(0, 2**16, 4, dtype="<u2")),
        "i16": ("I16", rng.integers(-2**15, 2**15, 4, dtype="<i2")),
        "u32": ("U32", rng.integers(0, 2**32, 4, dtype="<u4")),
        "i32": ("I32", rng.integers(-2**31, 2**31, 4, dtype="<i4")),
        "u64": ("U64", np.array([0, 2**64 - 1], "<u8")),
        "i64": ("I64", np.array([-2**63, 2**63 - 1, 5], "<i8")),
        "scalar": ("F32", np.array(2.5, "<f4")),
        "empty": ("F32", np.zeros((0, 3), "<f4")),
    }


def assert_bits_equal(name, expected, found_bytes):
    expect(np.asarray(expected).tobytes() == found_bytes, "%s: bits differ" % name)


def check_against_samples(path, samples, metadata_check=None):
    """The safetensors file at `path` holds exactly `samples`, bit for bit."""
    tensors, metadata = read_safetensors(path)
    expect(set(tensors) == set(samples), "tensor names differ: %s" % sorted(set(tensors) ^ set(samples)))
    for name, (dtype, array) in samples.items():
        found_dtype, shape, data = tensors[name]
        expect(found_dtype == dtype, "%s: dtype %s, expected %s" % (name, found_dtype, dtype))
        expect(shape == array.shape, "%s: shape %s, expected %s" % (name, shape, array.shape))
        assert_bits_equal(name, array, data)
    if metadata_check:
        metadata_check(metadata)
    return tensors, metadata


def check_round_trip(tool, directory, extension, codec):
    """safetensors -> `extension` -> safetensors gives back every tensor with its real dtype."""
    samples = sample_tensors(seed=5)
    source = os.path.join(directory, "rt.safetensors")
    middle = os.path.join(directory, "rt" + extension)
    back = os.path.join(directory, "back.safetensors")
    write_safetensors(source, samples)
    run(tool, "convert", source, middle, "--codec", codec)
    run(tool, "convert", middle, back)
    check_against_samples(back, samples)
    print("%s round trip keeps BF16/F8: ok" % extension)
