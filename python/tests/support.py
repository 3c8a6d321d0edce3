"""Helpers the tests share (fixtures are in conftest.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

from ckpt.checksum import header_checksum
from ckpt.format import CHECKSUM_OFFSET

SOURCE = Path(__file__).resolve().parents[1]  # python/, the package's sources


def run_python(*arguments, cwd=None):
    """``python3 ARGUMENTS`` seeing the package under test; the CompletedProcess."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, *map(str, arguments)], capture_output=True, text=True, env=environment,
                          cwd=cwd)


def run_module(*arguments):
    """``python3 -m ckpt ARGUMENTS``."""
    return run_python("-m", "ckpt", *arguments)


class Dump:
    """What the C++ Reader read from a file (write_fixtures --dump)."""

    def __init__(self, prefix):
        with open(f"{prefix}.json") as file:
            manifest = json.load(file)
        with open(f"{prefix}.bin", "rb") as file:
            blob = file.read()
        self.metadata = manifest["metadata"]
        self.tensors = {t["name"]: (t, blob[t["offset"]:t["offset"] + t["nbytes"]]) for t in manifest["tensors"]}


def expect_same_as_cpp(file, dump):
    """Every tensor of ``file`` (a ckpt.File) equals, bit for bit, what the C++ reader read."""
    assert file.names() == list(dump.tensors), "same tensors, in file order"
    for name, (entry, expected) in dump.tensors.items():
        array = file.tensor(name)
        info = file.info(name)
        assert (info.dtype, list(info.shape), info.codec) == (entry["dtype"], entry["shape"], entry["codec"]), name
        assert array.shape == tuple(entry["shape"]), name
        assert array.tobytes() == expected, f"{name}: bytes differ from the C++ reader's"
    assert file.metadata == dump.metadata


def resign(path, edit):
    """Rewrites a ckpt file's header through ``edit`` (of the parsed header)
    and recomputes its header checksum, as an attacker could."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((64 - (8 + len(text)) % 64) % 64)
    rebuilt = bytearray(len(text).to_bytes(8, "little") + text)
    checksum = header_checksum(rebuilt, len(rebuilt), CHECKSUM_OFFSET)
    rebuilt[CHECKSUM_OFFSET:CHECKSUM_OFFSET + 16] = f"{checksum:016x}".encode()
    path.write_bytes(bytes(rebuilt) + data[8 + size:])
