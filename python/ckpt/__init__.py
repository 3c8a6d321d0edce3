"""Read ckpt checkpoints and study training runs from Python.

    import ckpt
    tensors = ckpt.load("model.safetensors")          # {name: numpy array}, checksums verified
    with ckpt.open("model.safetensors") as file:      # lazy: the header now, tensors on access
        w = file.tensor("model/w1", as_float32=True)
    sharded = ckpt.load("run/step-00000300")          # a distributed checkpoint directory: tensors whole
    run = ckpt.open_run("runs/exp1")                  # a CheckpointManager's directory
    norms = run.trajectory("model/*", stat="norm")    # per-step statistics, one file at a time

See docs/python.md.
"""
from .errors import (ArgumentError, CodecError, Error, ErrorId, FormatError, IntegrityError, IoError, MismatchError,
                     StateError)
from .format import FORMAT_VERSION
from .reader import File, TensorInfo, load, open
from .run import CheckpointEntry, Run, open_run
from .stats import STATS, Trajectory

__version__ = "0.1.0"  # include/ckpt/version.hpp's; a test keeps them equal

__all__ = ["ArgumentError", "CheckpointEntry", "CodecError", "Error", "ErrorId", "FORMAT_VERSION", "File",
           "FormatError", "IntegrityError", "IoError", "MismatchError", "Run", "STATS", "StateError", "TensorInfo",
           "Trajectory", "load", "open", "open_run"]
