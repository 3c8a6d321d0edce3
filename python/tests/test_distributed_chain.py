"""Incremental distributed checkpoints (docs/distributed.md, "Incremental
checkpoints") written by the C++ library with 3 ranks on threads
(tests/python/write_fixtures.cpp, distributed-chain/): step-2 references
step-1's unchanged boxes, step-3 references step-1's and step-2's. Read bit
for bit as one C++ process loads them, whatever split is asked, and a damaged
parent is refused naming the parent's file."""
import shutil

import numpy as np
import pytest

import ckpt
from support import Dump


def _chain(fixtures):
    return fixtures / "distributed-chain"


@pytest.mark.parametrize("step", [1, 2, 3])
def test_every_step_reads_as_one_cpp_process_loads_it(fixtures, step):
    directory = _chain(fixtures) / f"step-{step}"
    dump = Dump(directory)
    with ckpt.open(directory) as checkpoint:
        assert checkpoint.step == step
        assert checkpoint.names() == list(dump.tensors)
        for name, (entry, expected) in dump.tensors.items():
            assert checkpoint.tensor(name).tobytes() == expected, name
        assert checkpoint.metadata == dump.metadata
        checkpoint.verify()


def test_the_index_records_the_chain_and_the_referenced_pieces(fixtures):
    with ckpt.open(_chain(fixtures) / "step-1") as first:
        assert (first.format_version, first.chain) == (1, None)
    with ckpt.open(_chain(fixtures) / "step-2") as second:
        assert second.format_version == 2
        assert (second.chain.parent, second.chain.depth, second.chain.sources) == ("../step-1", 1, ["../step-1"])
        rows = second.pieces("layers/0/rows")
        # Rank 0's box changed; the other two are referenced.
        assert [piece.codec for piece in rows] == ["raw", "reference", "reference"]
        assert all(len(piece.xxh128) == 32 for piece in rows[1:])
    with ckpt.open(_chain(fixtures) / "step-3") as third:
        assert (third.chain.depth, third.chain.sources) == (2, ["../step-1", "../step-2"])
        assert {piece.codec for name in third.names() for piece in third.pieces(name)} == {"reference"}


def test_a_box_in_another_split_reads_across_the_chain(fixtures):
    with ckpt.open(_chain(fixtures) / "step-3") as third, ckpt.open(_chain(fixtures) / "step-2") as second:
        whole = second.tensor("layers/0/rows")
        box = third.read("layers/0/rows", offsets=(3, 2), extents=(9, 4))
        assert np.array_equal(box.view(np.uint8), whole[3:12, 2:6].view(np.uint8))


def test_a_damaged_parent_is_refused_naming_the_parent_file(fixtures, tmp_path):
    shutil.copytree(_chain(fixtures), tmp_path / "chain")
    with ckpt.open(tmp_path / "chain" / "step-1") as first:
        piece = first.pieces("layers/0/columns")[1]
        with ckpt.open(tmp_path / "chain" / "step-1" / piece.file) as file:
            offset = file.info(piece.name).file_offset
    parent_file = tmp_path / "chain" / "step-1" / piece.file
    data = bytearray(parent_file.read_bytes())
    data[offset] ^= 0x01
    parent_file.write_bytes(bytes(data))
    with ckpt.open(tmp_path / "chain" / "step-2") as second, pytest.raises(ckpt.IntegrityError) as caught:
        second.tensor("layers/0/columns")
    assert caught.value.id == ckpt.ErrorId.integrity_tensor_checksum
    assert caught.value.file.endswith(f"step-1/{piece.file}"), str(caught.value)
    assert caught.value.tensor == piece.name
