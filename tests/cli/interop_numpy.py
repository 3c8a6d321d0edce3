"""numpy reads every .npz the ckpt tool writes, and ckpt reads what
np.savez and np.savez_compressed write; all values compared bit-exact."""

import json
import os
import zipfile

import numpy as np

from interop_common import (DTYPE_OF_NUMPY, check_against_samples, check_round_trip, expect, run, run_checks,
                            sample_tensors, write_safetensors)


def numpy_reads_ckpt_npz(tool, directory):
    samples = sample_tensors()
    source = os.path.join(directory, "source.safetensors")
    write_safetensors(source, samples, {"note": "from python"})
    for codec, method in (("raw", zipfile.ZIP_STORED), ("deflate:6", zipfile.ZIP_DEFLATED)):
        target = os.path.join(directory, "ckpt-%s.npz" % codec.split(":")[0])
        run(tool, "convert", source, target, "--codec", codec)
        with zipfile.ZipFile(target) as archive:
            expect(archive.testzip() is None, "CRC-32 mismatch")
            methods = {info.compress_type for info in archive.infolist()}
            expect(methods == {method}, "compression methods %s, expected {%s}" % (methods, method))
        with np.load(target, allow_pickle=False) as npz:
            sidecar = json.loads(npz["__ckpt__.json"])
            expect(sidecar["metadata"] == {"note": "from python"}, "sidecar %s" % sidecar)
            expect(sidecar["dtypes"] == {"bf16": "BF16", "fp8_e4m3": "F8_E4M3", "fp8_e5m2": "F8_E5M2"},
                   "sidecar %s" % sidecar)
            names = sorted(k for k in npz.files if k != "__ckpt__.json")
            expect(names == sorted(samples), "arrays differ: %s" % sorted(set(names) ^ set(samples)))
            for name, (dtype, bits) in samples.items():
                array = npz[name]
                expect(array.dtype == bits.dtype, "%s: %s, expected %s" % (name, array.dtype, bits.dtype))
                expect(array.shape == bits.shape, "%s: shape %s, expected %s" % (name, array.shape, bits.shape))
                expect(array.tobytes() == bits.tobytes(), "%s: bits differ" % name)
        print("numpy reads ckpt's npz (%s): ok" % codec)


def ckpt_reads_numpy_npz(tool, directory):
    rng = np.random.default_rng(7)
    arrays = {
        "weight": rng.standard_normal((4, 6)).astype(np.float32),
        "fortran": np.asfortranarray(rng.standard_normal((3, 5, 2))),
        "half": rng.standard_normal(5).astype(np.float16),
        "counts": rng.integers(-1000, 1000, (2, 2, 2), dtype=np.int64),
        "flags": rng.integers(0, 2, 7).astype(bool),
        "bytes": rng.integers(0, 256, 3, dtype=np.uint8),
        "scalar": np.float64(3.25),
        "empty": np.zeros((2, 0)),
        "big": rng.standard_normal(300_000).astype(np.float32),
    }
    for save in (np.savez, np.savez_compressed):
        source = os.path.join(directory, "numpy-%s.npz" % save.__name__)
        save(source, **arrays)
        target = os.path.join(directory, "from-%s.safetensors" % save.__name__)
        run(tool, "convert", source, target)
        expected = {name: (DTYPE_OF_NUMPY[np.asarray(a).dtype.str], np.asarray(a)) for name, a in arrays.items()}
        check_against_samples(target, expected)
        print("ckpt reads %s: ok" % save.__name__)


if __name__ == "__main__":
    run_checks(numpy_reads_ckpt_npz, ckpt_reads_numpy_npz,
               lambda tool, directory: check_round_trip(tool, directory, ".npz", "deflate"))
