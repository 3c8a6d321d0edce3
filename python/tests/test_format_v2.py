"""Format version 2 (docs/format.md, section 4): block checksums read and
verified, malformed block members refused as the C++ reader refuses them,
and the committed format version 1 file still read bit for bit."""
import json
import pathlib

import numpy as np
import pytest

import ckpt
from support import resign

V1_FIXTURE = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "format_v1.ckpt"


def v1_fixture_values():
    """The tensors tests/format/v1_fixture_values.hpp defines, by the same formulas."""
    i = np.arange(300)
    return {
        "raw_f32": (np.arange(256, dtype=np.float32) * np.float32(0.25) - np.float32(7)).reshape(16, 16),
        "raw_i64": np.arange(8, dtype=np.int64) * 1000000000007 - 3,
        "zstd_f32": ((np.arange(256) % 13).astype(np.float32) * np.float32(0.5)).reshape(32, 8),
        "shuffled_f64": ((i * i) % 97).astype(np.float64) * 0.125,
        "empty_f32": np.zeros(0, np.float32),
    }


def test_the_v1_fixture_reads_bit_for_bit_and_verifies():
    with ckpt.open(V1_FIXTURE) as file:
        assert file.format_version == 1
        assert file.metadata == {"fixture": "format v1", "step": 7}
        expected = v1_fixture_values()
        assert sorted(file.names()) == sorted(expected)
        for name, values in expected.items():
            array = file.tensor(name)
            assert array.dtype == values.dtype and array.shape == values.shape, name
            assert array.tobytes() == values.tobytes(), name
        file.verify()


def stored_infos(path):
    with ckpt.open(path, verify_checksums=False) as file:
        return json.loads(file.raw_metadata["ckpt.tensors"])


@pytest.mark.parametrize("name", ["dtypes-raw", "dtypes-shuffle_zstd"])
def test_files_of_this_build_carry_a_checksum_per_block(fixtures, name):
    path = fixtures / f"{name}.safetensors"
    with ckpt.open(path) as file:
        assert file.format_version == 2
        file.verify()
    for info in stored_infos(path).values():
        assert all(len(block) == 16 for block in info["blocks"])
        if info["codec"] == "raw":
            assert info["block_bytes"] >= 1
        else:
            assert len(info["blocks"]) == len(info["chunks"]) and "block_bytes" not in info


@pytest.fixture
def copy(fixtures, tmp_path):
    def make(name):
        path = tmp_path / name
        path.write_bytes((fixtures / name).read_bytes())
        return path
    return make


@pytest.mark.parametrize("name", ["dtypes-raw.safetensors", "dtypes-shuffle_zstd.safetensors"])
def test_a_damaged_block_is_named_with_its_stored_range(copy, name):
    path = copy(name)
    with ckpt.open(path) as file:
        target = file.info("F32/rank3")
    data = bytearray(path.read_bytes())
    data[target.file_offset + target.stored_bytes - 1] ^= 0x04  # the last block
    path.write_bytes(data)
    blocks = stored_infos(path)["F32/rank3"]["blocks"]
    with ckpt.open(path) as file:
        file.tensor("F64/rank1")  # other tensors read fine
        with pytest.raises(ckpt.IntegrityError) as caught:
            file.tensor("F32/rank3")
    error = caught.value
    assert error.id == ckpt.ErrorId.integrity_tensor_checksum and error.tensor == "F32/rank3"
    last = len(blocks) - 1
    assert f"tensor 'F32/rank3': checksum mismatch in block {last} of {len(blocks)} (stored bytes [" in str(error)
    assert f", {target.stored_bytes})): expected xxh3 {blocks[last]}, found " in str(error)


def test_verify_checks_the_whole_checksum_beside_the_blocks(copy):
    path = copy("dtypes-raw.safetensors")
    with ckpt.open(path) as file:
        target = file.info("I32/rank2")
    data = bytearray(path.read_bytes())
    data[target.file_offset] ^= 0x01
    path.write_bytes(data)
    from ckpt.checksum import to_hex, xxh3
    block_bytes = stored_infos(path)["I32/rank2"]["block_bytes"]
    first = to_hex(xxh3(bytes(data[target.file_offset:target.file_offset + min(block_bytes, target.stored_bytes)])))

    def reseal(header):
        infos = json.loads(header["__metadata__"]["ckpt.tensors"])
        infos["I32/rank2"]["blocks"][0] = first
        header["__metadata__"]["ckpt.tensors"] = json.dumps(infos, separators=(",", ":"))
    resign(path, reseal)
    with ckpt.open(path) as file:
        file.tensor("I32/rank2")  # its blocks match
        with pytest.raises(ckpt.IntegrityError) as caught:
            file.verify()
    assert caught.value.tensor == "I32/rank2" and "stored bytes, found" in str(caught.value)


MALFORMED = [
    ("no blocks", lambda info: info.pop("blocks"), "exactly the keys codec, xxh3, block_bytes and blocks"),
    ("blocks not an array", lambda info: info.update(blocks="00"), "block checksums (one per"),
    ("one block too few", lambda info: info["blocks"].pop(), "found 0"),
    ("an upper-case block", lambda info: info["blocks"].__setitem__(0, "0123456789ABCDEF"),
     'found block 0 "0123456789ABCDEF"'),
    ("block_bytes 0", lambda info: info.update(block_bytes=0), "block_bytes, an integer from 1 to 1073741824"),
    ("block_bytes past 2^30", lambda info: info.update(block_bytes=2**30 + 1), "block_bytes, an integer from 1"),
]


@pytest.mark.parametrize("label, change, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_block_members_are_format_metadata_errors(copy, label, change, message):
    path = copy("dtypes-raw.safetensors")

    def edit(header):
        infos = json.loads(header["__metadata__"]["ckpt.tensors"])
        change(infos["U8/rank0"])  # one byte: one block
        header["__metadata__"]["ckpt.tensors"] = json.dumps(infos, separators=(",", ":"))
    resign(path, edit)
    with pytest.raises(ckpt.FormatError) as caught:
        ckpt.open(path)
    assert caught.value.id == ckpt.ErrorId.format_metadata and caught.value.tensor == "U8/rank0"
    assert message in str(caught.value), str(caught.value)


def test_a_v1_entry_with_block_checksums_is_refused(tmp_path):
    path = tmp_path / "v1.ckpt"
    path.write_bytes(V1_FIXTURE.read_bytes())

    def edit(header):
        infos = json.loads(header["__metadata__"]["ckpt.tensors"])
        infos["raw_f32"].update(block_bytes=1024, blocks=[infos["raw_f32"]["xxh3"]])
        header["__metadata__"]["ckpt.tensors"] = json.dumps(infos, separators=(",", ":"))
    resign(path, edit)
    with pytest.raises(ckpt.FormatError) as caught:
        ckpt.open(path)
    assert caught.value.id == ckpt.ErrorId.format_metadata and caught.value.tensor == "raw_f32"
    assert "exactly the keys codec and xxh3 for a raw tensor (format version 1)" in str(caught.value)
