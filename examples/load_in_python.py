#!/usr/bin/env python3
"""Loads the checkpoint export_for_python wrote, with json and numpy only (a
ckpt checkpoint saved with the "raw" codec is a plain safetensors file), checks
the model against the output C++ computed, then loads it into PyTorch if
installed. (Compressed checkpoints: convert them first with `ckpt convert`.)

    python3 load_in_python.py model.safetensors
"""
import json
import sys

import numpy as np

# safetensors dtype -> numpy. numpy has no bfloat16: BF16 arrives as raw 16-bit words.
NUMPY_DTYPES = {"BOOL": "?", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "U32": "<u4", "I32": "<i4",
                "U64": "<u8", "I64": "<i8", "F16": "<f2", "BF16": "<u2", "F32": "<f4", "F64": "<f8"}


def load_safetensors(path):
    """Returns {name: numpy array} and the __metadata__ map of a safetensors file."""
    with open(path, "rb") as file:
        data = bytearray(file.read())  # writable, so torch.from_numpy can share it
    header_size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_size])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = np.dtype(NUMPY_DTYPES[entry["dtype"]])
        tensors[name] = np.frombuffer(data, dtype, (end - begin) // dtype.itemsize,
                                      8 + header_size + begin).reshape(entry["shape"])
    return tensors, metadata


def main(path):
    tensors, _ = load_safetensors(path)
    for name, array in sorted(tensors.items()):
        print(f"{name:13} {str(array.dtype):8} {list(array.shape)}")

    hidden = np.maximum(tensors["probe/input"] @ tensors["fc1.weight"].T + tensors["fc1.bias"], 0)
    output = hidden @ tensors["fc2.weight"].T + tensors["fc2.bias"]
    if not np.allclose(output, tensors["probe/output"], rtol=1e-6, atol=1e-6):
        sys.exit(f"numpy computes {output.tolist()}, C++ computed {tensors['probe/output'].tolist()}")
    print("numpy: same output as C++")

    try:
        import torch
    except ImportError:
        print("torch: not installed, skipped")
        return
    model = torch.nn.ModuleDict({"fc1": torch.nn.Linear(3, 4), "fc2": torch.nn.Linear(4, 2)})
    model.load_state_dict({name: torch.from_numpy(array) for name, array in tensors.items() if name.startswith("fc")})
    with torch.no_grad():
        output = model["fc2"](torch.relu(model["fc1"](torch.from_numpy(tensors["probe/input"]))))
    if not torch.allclose(output, torch.from_numpy(tensors["probe/output"]), rtol=1e-6, atol=1e-6):
        sys.exit(f"torch computes {output.tolist()}, C++ computed {tensors['probe/output'].tolist()}")
    print("torch: same output as C++")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "model.safetensors")
