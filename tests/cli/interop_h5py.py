"""h5py reads every HDF5 file the ckpt tool writes, and ckpt reads what h5py
writes (groups, other byte orders, gzip, attributes); values bit-exact."""

import json
import os

import h5py
import numpy as np

from interop_common import (DTYPE_OF_NUMPY, check_against_samples, check_round_trip, expect, run, run_checks,
                            sample_tensors, write_safetensors)


def h5py_reads_ckpt_h5(tool, directory):
    samples = sample_tensors()
    source = os.path.join(directory, "source.safetensors")
    write_safetensors(source, samples, {"note": "from python", "epoch": "3"})
    for codec in ("raw", "deflate:4"):
        target = os.path.join(directory, "ckpt-%s.h5" % codec.split(":")[0])
        run(tool, "convert", source, target, "--codec", codec)
        with h5py.File(target, "r") as f:
            datasets = {}
            f.visititems(lambda name, item: datasets.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
            expect(sorted(datasets) == sorted(samples),
                   "datasets differ: %s" % sorted(set(datasets) ^ set(samples)))
            for name, (dtype, bits) in samples.items():
                array = np.asarray(datasets[name])
                expect(array.dtype == bits.dtype, "%s: %s, expected %s" % (name, array.dtype, bits.dtype))
                expect(array.shape == bits.shape, "%s: shape %s, expected %s" % (name, array.shape, bits.shape))
                expect(array.tobytes() == bits.tobytes(), "%s: bits differ" % name)
                real = f[name].attrs.get("__ckpt_dtype__")
                wanted = dtype if dtype in ("BF16", "F8_E4M3", "F8_E5M2") else None
                expect(real == wanted, "%s: __ckpt_dtype__ %r, expected %r" % (name, real, wanted))
            if codec != "raw":
                compression = f["encoder/layer0/weight"].compression
                expect(compression == "gzip", "compression %r, expected 'gzip'" % compression)
            expect(f.attrs["note"] == "from python" and f.attrs["epoch"] == "3", "attributes %s" % dict(f.attrs))
        print("h5py reads ckpt's HDF5 (%s): ok" % codec)


def ckpt_reads_h5py_files(tool, directory):
    rng = np.random.default_rng(11)
    arrays = {
        "model/layer/weight": rng.standard_normal((4, 6)).astype(np.float32),
        "model/layer/big_endian": rng.integers(-1000, 1000, (3, 2)).astype(">i4"),
        "model/compressed": rng.standard_normal((64, 33)),
        "half": rng.standard_normal(5).astype(np.float16),
        "flags": rng.integers(0, 2, 7).astype(bool),
        "scalar": np.float64(3.25),
        "empty": np.zeros((2, 0), np.float32),
    }
    source = os.path.join(directory, "h5py.h5")
    with h5py.File(source, "w") as f:
        for name, array in arrays.items():
            if name == "model/compressed":
                f.create_dataset(name, data=array, compression="gzip", chunks=(16, 33), shuffle=True)
            else:
                f[name] = array
        f.attrs["epoch"] = 4
        f.attrs["lr"] = 0.5
        f.attrs["run"] = "alpha"
    target = os.path.join(directory, "from-h5py.safetensors")
    run(tool, "convert", source, target)
    expected = {}
    for name, array in arrays.items():
        little = np.asarray(array).astype(np.asarray(array).dtype.newbyteorder("<"))
        expected[name] = (DTYPE_OF_NUMPY[little.dtype.str], little)
    check_against_samples(target, expected)
    info = json.loads(run(tool, "info", source, "--json"))
    expect(info["metadata"] == {"epoch": 4, "lr": 0.5, "run": "alpha"}, "metadata %s" % info["metadata"])
    print("ckpt reads h5py's files: ok")


if __name__ == "__main__":
    run_checks(h5py_reads_ckpt_h5, ckpt_reads_h5py_files,
               lambda tool, directory: check_round_trip(tool, directory, ".h5", "raw"))
