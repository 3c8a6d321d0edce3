"""torch loads the tensors of a raw checkpoint the ckpt tool writes, through
a json + numpy parse of the file (torch.from_numpy, and torch.frombuffer for
bfloat16, which numpy lacks); values compared bit-exact with the originals."""

import os

import numpy as np
import torch

from interop_common import expect, read_safetensors, run, run_checks, write_safetensors

TORCH_DTYPES = {
    "F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
NUMPY_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "|i1",
                "U8": "|u1", "BOOL": "|b1"}
# A torch dtype's bits as an integer tensor of the same width, for bit-exact comparison.
BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def torch_samples():
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(6, 5, generator=generator)
    return {
        "model/weight": weight,
        "model/weight_bf16": weight.to(torch.bfloat16),
        "model/bias_f16": torch.randn(5, generator=generator).to(torch.float16),
        "optimizer/step": torch.tensor(1234, dtype=torch.int64),
        "optimizer/exp_avg": torch.randn(6, 5, generator=generator, dtype=torch.float64),
        "mask": torch.rand(8, generator=generator) > 0.5,
        "tokens": torch.randint(-128, 127, (4, 3), generator=generator, dtype=torch.int8),
        "ids": torch.randint(0, 2**31 - 1, (3,), generator=generator, dtype=torch.int32),
        "empty": torch.zeros(0, 2),
    }


def bits_of(tensor):
    if tensor.dtype == torch.bool:
        return tensor.to(torch.uint8)
    return tensor.contiguous().view(BITS[tensor.element_size()])


def dtype_name(tensor):
    return next(name for name, dtype in TORCH_DTYPES.items() if dtype == tensor.dtype)


def load_with_torch(path):
    """The raw checkpoint's tensors as torch tensors, parsed with json + numpy."""
    tensors, _ = read_safetensors(path)
    loaded = {}
    for name, (dtype, shape, data) in tensors.items():
        if dtype == "BF16":
            tensor = torch.frombuffer(bytearray(data), dtype=torch.bfloat16) if data else torch.empty(0, dtype=torch.bfloat16)
        else:
            tensor = torch.from_numpy(np.frombuffer(data, dtype=NUMPY_DTYPES[dtype]).copy())
        loaded[name] = tensor.reshape(shape)
    return loaded


def torch_loads_raw_checkpoint(tool, directory):
    samples = torch_samples()
    source = os.path.join(directory, "torch.safetensors")
    write_safetensors(source, {name: (dtype_name(t), bits_of(t).numpy()) for name, t in samples.items()},
                      {"format": "pt"})
    # Through ckpt's compressed format and back to a raw checkpoint.
    packed = os.path.join(directory, "packed.safetensors")
    raw = os.path.join(directory, "raw.safetensors")
    run(tool, "convert", source, packed, "--codec", "shuffle+zstd")
    run(tool, "convert", packed, raw)
    loaded = load_with_torch(raw)
    expect(sorted(loaded) == sorted(samples), "tensors differ: %s" % sorted(set(loaded) ^ set(samples)))
    for name, expected in samples.items():
        found = loaded[name]
        expect(found.dtype == expected.dtype, "%s: %s, expected %s" % (name, found.dtype, expected.dtype))
        expect(found.shape == expected.shape, "%s: %s, expected %s" % (name, found.shape, expected.shape))
        expect(torch.equal(bits_of(found), bits_of(expected)), "%s: bits differ" % name)
    expect(torch.equal(loaded["model/weight_bf16"].float(), samples["model/weight"].to(torch.bfloat16).float()),
           "model/weight_bf16: expected model/weight rounded to bfloat16")
    print("torch loads ckpt's raw checkpoint: ok")


if __name__ == "__main__":
    run_checks(torch_loads_raw_checkpoint)
