"""Distributed checkpoint directories (docs/distributed.md) written by the C++
library with 1 to 6 ranks on threads (tests/python/write_fixtures.cpp): read
bit for bit as a single C++ process loads them, lazily, and refused when
damaged with the error id the C++ load throws for the same directory."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import ckpt
from ckpt.distributed import Piece
from support import Dump, expect_same_as_cpp, run_module

INDEX = "model.safetensors.index.json"
DIRECTORIES = {"world-1": (1, 11, "raw"), "world-3": (3, 12, "raw"), "world-4": (4, 13, "raw"),
               "world-6": (6, 14, "raw"), "world-3-zstd": (3, 15, "zstd"),
               "world-4-shuffle_zstd": (4, 16, "shuffle+zstd")}
NUMPY = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "U8": "u1", "BF16": "<u2", "I64": "<i8"}


def sample(name, dtype, shape):
    """tests/distributed/sample_state.hpp's content: byte k of element i is
    (i * 131 + k * 17 + sum of the name's bytes) mod 256; BOOL is i % 3 == 0."""
    count = int(np.prod(shape, dtype=np.int64))
    index = np.arange(count, dtype=np.uint64)
    if dtype == "BOOL":
        return (index % 3 == 0).reshape(shape)
    width = np.dtype(NUMPY[dtype]).itemsize
    byte = np.arange(width, dtype=np.uint64)
    bytes_ = ((index[:, None] * 131 + byte[None, :] * 17 + sum(name.encode())) & 0xFF).astype(np.uint8)
    return bytes_.reshape(-1).view(NUMPY[dtype]).reshape(shape)


@pytest.mark.parametrize("name", DIRECTORIES)
def test_every_tensor_reads_as_one_cpp_process_loads_it(fixtures, name):
    world, step, codec = DIRECTORIES[name]
    directory = fixtures / "distributed" / name
    with ckpt.open(directory) as checkpoint:
        assert (checkpoint.step, checkpoint.world_size, checkpoint.format_version) == (step, world, 1)
        expect_same_as_cpp(checkpoint, Dump(directory))  # the dump is what DistributedCheckpoint::load read
        assert checkpoint.metadata == {"step": step, "note": f"saved by {world} ranks"}
        for tensor in checkpoint.tensors:
            assert tensor.codec == codec, tensor.name
            expected = sample(tensor.name, tensor.dtype, tensor.shape)
            assert checkpoint.tensor(tensor.name).tobytes() == expected.tobytes(), tensor.name


def test_the_fixtures_hold_every_kind_of_piece(fixtures):
    """Each split the spec names is read above: this keeps the fixtures honest."""
    with ckpt.open(fixtures / "distributed" / "world-4") as checkpoint:
        def kinds(name):
            return [("flat", p.flat) if p.flat is not None else (p.offsets, p.extents) for p in checkpoint.pieces(name)]
        assert kinds("layers/0/rows") == [((0, 0), (4, 7)), ((4, 0), (3, 7)), ((7, 0), (3, 7)), ((10, 0), (3, 7))]
        assert kinds("layers/0/columns") == [((0, 0), (6, 3)), ((0, 3), (6, 3)), ((0, 6), (6, 3)), ((0, 9), (6, 2))]
        assert kinds("layers/1/blocks") == [((0, 0), (5, 5)), ((0, 5), (5, 4)), ((5, 0), (5, 5)), ((5, 5), (5, 4))]
        assert kinds("optimizer/zero") == [("flat", (0, 27)), ("flat", (27, 53)), ("flat", (53, 79)),
                                           ("flat", (79, 105))]
        # Replicated on every rank, stored once, whole, under its own name.
        assert [(p.name, p.offsets, p.extents) for p in checkpoint.pieces("embedding/replicated")] == [
            ("embedding/replicated", (0, 0), (4, 4))]
        # Two row groups, each replicated on two ranks: two pieces.
        assert kinds("head/mixed") == [((0, 0), (4, 6)), ((4, 0), (4, 6))]
        assert len({p.file for p in checkpoint.pieces("layers/0/rows")}) == 4
        # Rank r holds a share proportional to r + 1.
        assert [p.extents[0] for p in checkpoint.pieces("layers/1/uneven")] == [1, 4, 5, 7]


def test_load_returns_every_tensor_and_raw_whole_tensors_are_views(fixtures):
    directory = fixtures / "distributed" / "world-3"
    tensors = ckpt.load(directory)
    with ckpt.open(directory) as checkpoint:
        assert list(tensors) == checkpoint.names()
        assert tensors["head/mask"].dtype == np.bool_ and tensors["scalar"].shape == ()
        replicated = checkpoint.tensor("embedding/replicated")
        assert not replicated.flags.writeable and not replicated.flags.owndata  # the file's mapping
        assert checkpoint.tensor("layers/0/rows").flags.writeable  # assembled into memory of its own
        values = checkpoint.tensor("embedding/replicated", as_float32=True)
    assert values.dtype == np.float32 and values.shape == (4, 4)
    assert np.array_equal(values.view(np.uint32) >> 16, replicated.astype(np.uint32))


def _requests(shape):
    """Pieces of every kind a loading rank may ask for: rows, columns, an inner
    box and flat ranges (3 parts each, uneven), as (offsets, extents, flat)."""
    count = int(np.prod(shape, dtype=np.int64))
    cuts = [(count * part // 3, count * (part + 1) // 3) for part in range(3)]
    requests = [(None, None, cut) for cut in cuts]
    for dimension in range(min(len(shape), 2)):
        for part in range(3):
            begin, end = shape[dimension] * part // 3, shape[dimension] * (part + 1) // 3
            offsets = [0] * len(shape)
            extents = list(shape)
            offsets[dimension], extents[dimension] = begin, end - begin
            requests.append((offsets, extents, None))
    if all(extent > 2 for extent in shape):
        requests.append(([1] * len(shape), [extent - 2 for extent in shape], None))
    return requests


@pytest.mark.parametrize("name", ["world-1", "world-4", "world-6", "world-3-zstd"])
def test_any_split_reads_as_the_sample_holds_it(fixtures, name):
    with ckpt.open(fixtures / "distributed" / name) as checkpoint:
        for tensor in checkpoint.tensors:
            whole = sample(tensor.name, tensor.dtype, tensor.shape)
            for offsets, extents, flat in _requests(tensor.shape):
                if flat is not None:
                    expected = whole.reshape(-1)[flat[0]:flat[1]]
                    found = checkpoint.read(tensor.name, flat=flat)
                else:
                    expected = whole[tuple(slice(o, o + e) for o, e in zip(offsets, extents))]
                    found = checkpoint.read(tensor.name, offsets=offsets, extents=extents)
                where = f"{tensor.name} {offsets} {extents} {flat}"
                assert (found.dtype, found.shape) == (expected.dtype, expected.shape), where
                assert found.tobytes() == expected.tobytes(), where


def test_a_piece_reads_only_the_files_it_overlaps(fixtures, tmp_path):
    directory = _copy(fixtures, tmp_path, "world-4")
    with ckpt.open(directory) as checkpoint:
        rows = checkpoint.pieces("layers/0/rows")  # 4, 3, 3, 3 rows
        zero = checkpoint.pieces("optimizer/zero")  # 27, 26, 26, 26 elements
    for name in os.listdir(directory):
        if name.startswith("model-") and name not in (rows[1].file, zero[2].file):
            os.unlink(directory / name)
    with ckpt.open(directory) as checkpoint:
        found = checkpoint.read("layers/0/rows", offsets=[4, 2], extents=[3, 5])
        assert found.tobytes() == sample("layers/0/rows", "F32", (13, 7))[4:7, 2:7].tobytes()
        found = checkpoint.read("optimizer/zero", flat=(60, 70))
        assert found.tobytes() == sample("optimizer/zero", "F32", (5, 7, 3)).reshape(-1)[60:70].tobytes()
        with pytest.raises(ckpt.IoError):
            checkpoint.read("layers/0/rows", offsets=[3, 0], extents=[2, 7])  # row 3 is in the missing first file


@pytest.mark.parametrize("request_, expected", [
    ({"offsets": [0, 0], "extents": [14, 7]}, "expected a box within the global shape [13, 7], found offsets "
                                              "[0, 0], extents [14, 7] (dimension 0)"),
    ({"flat": (0, 92)}, "expected a flat range within the 91 elements of [13, 7], found [0, 0 + 92)"),
    ({}, "expected offsets and extents (a box) or flat (a range), found neither"),
])
def test_a_piece_outside_the_tensor_is_an_argument_error(fixtures, request_, expected):
    with ckpt.open(fixtures / "distributed" / "world-3") as checkpoint, pytest.raises(ckpt.ArgumentError) as caught:
        checkpoint.read("layers/0/rows", **request_)
    assert (caught.value.id, caught.value.tensor, caught.value.what) == (ckpt.ErrorId.argument_invalid,
                                                                         "layers/0/rows", expected)


def _copy(fixtures, tmp_path, name="world-3"):
    target = tmp_path / name
    shutil.copytree(fixtures / "distributed" / name, target)
    return target


def _cpp_refusal(fixture_writer, directory, tmp_path):
    """The message of the error one C++ process throws loading ``directory``,
    without the "rank 0 of 1: " a distributed load puts before its text."""
    result = subprocess.run([fixture_writer, "--dump", str(directory), str(tmp_path / "refused")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("write_fixtures: "), result.stderr
    return result.stderr[len("write_fixtures: "):].rstrip("\n").replace("rank 0 of 1: ", "", 1)


def _expect_refused(fixture_writer, directory, tmp_path, error_class, error_id, file, tensor="", read=None,
                    json_problem=False):
    """Opening ``directory`` and reading tensor ``read`` (or verifying all)
    raises this error, with the message the C++ load throws; but for
    ``json_problem``, where the JSON parsers word the syntax error their own
    way, the same up to the parser's words."""
    with pytest.raises(error_class) as caught:
        with ckpt.open(directory) as checkpoint:
            checkpoint.tensor(read) if read else checkpoint.verify()
    error = caught.value
    assert (error.id, error.file) == (error_id, str(file)), str(error)
    if tensor is not None:  # None: any tensor
        assert error.tensor == tensor, str(error)
    assert str(error).startswith(f"[ckpt.{error.kind}.{int(error_id)}] file '{file}': ")
    cpp = _cpp_refusal(fixture_writer, directory, tmp_path)
    if json_problem:
        prefix = "expected the index to be JSON: "
        assert cpp.split(prefix)[0] == str(error).split(prefix)[0] and prefix in cpp, cpp
    else:
        assert cpp == str(error), "the C++ load's error"
    return error


def test_an_uncommitted_directory_is_refused(fixtures, fixture_writer, tmp_path):
    directory = _copy(fixtures, tmp_path)
    (directory / INDEX).unlink()
    error = _expect_refused(fixture_writer, directory, tmp_path, ckpt.StateError, ckpt.ErrorId.state_uncommitted,
                            directory)
    assert "never committed" in error.what


def test_a_rank_file_replaced_after_the_commit_is_refused(fixtures, fixture_writer, tmp_path):
    directory = _copy(fixtures, tmp_path)
    # Same name, same writer, another checkpoint's file: only the index can tell.
    rank_file = directory / "model-00002-of-00003.safetensors"
    shutil.copyfile(fixtures / "distributed" / "world-3-zstd" / rank_file.name, rank_file)
    error = _expect_refused(fixture_writer, directory, tmp_path, ckpt.IntegrityError,
                            ckpt.ErrorId.integrity_header_checksum, rank_file)
    assert "the file was replaced after the commit" in error.what


def test_a_missing_or_truncated_rank_file_is_refused(fixtures, fixture_writer, tmp_path):
    directory = _copy(fixtures, tmp_path)
    rank_file = directory / "model-00003-of-00003.safetensors"
    data = rank_file.read_bytes()
    rank_file.write_bytes(data[:-5])
    _expect_refused(fixture_writer, directory, tmp_path, ckpt.FormatError, ckpt.ErrorId.format_truncated, rank_file,
                    tensor=None)
    rank_file.unlink()
    _expect_refused(fixture_writer, directory, tmp_path, ckpt.IoError, ckpt.ErrorId.io_open, rank_file)


def test_a_damaged_piece_fails_its_checksum(fixtures, fixture_writer, tmp_path):
    directory = _copy(fixtures, tmp_path)
    with ckpt.open(directory) as checkpoint:
        piece = checkpoint.pieces("layers/0/columns")[1]
        with ckpt.open(directory / piece.file) as file:
            offset = file.info(piece.name).file_offset
    rank_file = directory / piece.file
    data = bytearray(rank_file.read_bytes())
    data[offset] ^= 0x01
    rank_file.write_bytes(bytes(data))
    _expect_refused(fixture_writer, directory, tmp_path, ckpt.IntegrityError, ckpt.ErrorId.integrity_tensor_checksum,
                    rank_file, piece.name, read="layers/0/columns")


def _edit_index(directory, edit):
    path = directory / INDEX
    index = json.loads(path.read_text())
    edit(index)
    path.write_text(json.dumps(index))


@pytest.mark.parametrize("damage, expected", [
    ("missing", "the pieces do not tile [13, 7]: elements [5, 0] to [8, 6] are held by no piece"),
    ("overlap", "the pieces do not tile [13, 7]: piece 'layers/0/rows#0' and piece 'layers/0/rows#1' both hold "
                "element [3, 0]"),
    ("outside", "expected a box within the global shape [13, 7], found offsets [5, 0], extents [4, 8] "
                "(dimension 1)"),
    # Two columns of 10^12 rows: runs counted, never built (they would need tens of terabytes).
    ("too many runs", "expected the pieces to form at most 4194304 runs of consecutive elements (a box forms one "
                      "per row it does not span whole), found 2000000000000"),
])
def test_an_index_that_does_not_tile_a_tensor_is_refused(fixtures, fixture_writer, tmp_path, damage, expected):
    directory = _copy(fixtures, tmp_path)

    def edit(index):
        pieces = index["metadata"]["ckpt.tensors"]["layers/0/rows"]["pieces"]
        if damage == "missing":
            del index["weight_map"][pieces.pop(1)["name"]]
        elif damage == "overlap":
            pieces[1]["offsets"] = [3, 0]
        elif damage == "too many runs":
            rows = 10 ** 12
            index["metadata"]["ckpt.tensors"]["layers/0/rows"]["shape"] = [rows, 7]
            for dropped in pieces[2:]:
                del index["weight_map"][dropped["name"]]
            pieces[2:] = []
            pieces[0]["offsets"], pieces[0]["extents"] = [0, 0], [rows, 3]
            pieces[1]["offsets"], pieces[1]["extents"] = [0, 3], [rows, 4]
        else:
            pieces[1]["extents"] = [4, 8]
    _edit_index(directory, edit)
    error = _expect_refused(fixture_writer, directory, tmp_path, ckpt.FormatError, ckpt.ErrorId.format_metadata,
                            directory / INDEX, "layers/0/rows")
    assert error.what == expected


@pytest.mark.parametrize("piece, shape", [
    (Piece("f", "p", "raw", 0, offsets=(1, 0), extents=(2, 8)), (4, 8)),  # rows: one run
    (Piece("f", "p", "raw", 0, offsets=(0, 2), extents=(3, 2)), (3, 5)),  # columns: one per row
    (Piece("f", "p", "raw", 0, offsets=(1, 2, 1), extents=(1, 2, 2)), (2, 4, 3)),
    (Piece("f", "p", "raw", 0, flat=(5, 12)), (3, 4)),
    (Piece("f", "p", "raw", 0, offsets=(), extents=()), ()),  # a scalar
    (Piece("f", "p", "raw", 0, offsets=(0, 3), extents=(4, 0)), (4, 3)),  # empty: none
])
def test_runs_are_counted_without_building_them_as_many_as_built(piece, shape):
    begins, ends = piece.runs(shape)
    assert piece.run_count(shape) == len(begins) == len(ends), (piece.text(), shape)


def _rows(index):
    return index["metadata"]["ckpt.tensors"]["layers/0/rows"]


def _set(mapping, key, value):
    mapping[key] = value


# Damaged indexes: what is edited, the error class and id, the tensor named.
INDEX_DAMAGE = {
    "no format version": (lambda index: index["metadata"].pop("ckpt.format_version"), ckpt.ErrorId.format_metadata, ""),
    "a file name with '/'": (lambda index: _set(index["metadata"]["ckpt.files"], "../x.safetensors",
                                                {"bytes": 1, "header_xxh3": "0" * 16}),
                             ckpt.ErrorId.format_metadata, ""),
    "a weight_map entry of no piece": (lambda index: _set(index["weight_map"], "stray", "model-00001-of-00003.st"),
                                       ckpt.ErrorId.format_metadata, "stray"),
    "a piece in no listed file": (lambda index: _set(_rows(index)["pieces"][0], "file", "other.safetensors"),
                                  ckpt.ErrorId.format_metadata, "layers/0/rows"),
    "an unknown dtype": (lambda index: _set(_rows(index), "dtype", "F24"), ckpt.ErrorId.format_metadata,
                         "layers/0/rows"),
    "a checksum not in hex": (lambda index: _set(_rows(index)["pieces"][2], "xxh3", "XYZ"),
                              ckpt.ErrorId.format_metadata, "layers/0/rows"),
    "metadata not an object": (lambda index: _set(index["metadata"], "ckpt.metadata", [1]),
                               ckpt.ErrorId.format_metadata, ""),
    "a flat range backwards": (lambda index: _set(index["metadata"]["ckpt.tensors"]["optimizer/zero"]["pieces"][0],
                                                  "flat", [9, 3]), ckpt.ErrorId.format_metadata, "optimizer/zero"),
}


@pytest.mark.parametrize("damage", INDEX_DAMAGE)
def test_a_damaged_index_is_refused_as_cpp_refuses_it(fixtures, fixture_writer, tmp_path, damage):
    directory = _copy(fixtures, tmp_path)
    edit, error_id, tensor = INDEX_DAMAGE[damage]
    _edit_index(directory, edit)
    _expect_refused(fixture_writer, directory, tmp_path, ckpt.FormatError, error_id, directory / INDEX, tensor)


def test_an_index_that_is_not_json_is_refused(fixtures, fixture_writer, tmp_path):
    directory = _copy(fixtures, tmp_path)
    (directory / INDEX).write_text('{"metadata": ')
    _expect_refused(fixture_writer, directory, tmp_path, ckpt.FormatError, ckpt.ErrorId.format_header_json,
                    directory / INDEX, json_problem=True)


@pytest.mark.parametrize("field, value", [("codec", "zstd"), ("dtype", "I32")])
def test_a_piece_stored_otherwise_than_the_index_says_is_refused(fixtures, fixture_writer, tmp_path, field, value):
    directory = _copy(fixtures, tmp_path)
    with ckpt.open(directory) as checkpoint:
        piece = checkpoint.pieces("layers/0/rows")[0]
    _edit_index(directory, lambda index: _set(_rows(index)["pieces"][0] if field == "codec" else _rows(index),
                                              field, value))
    error = _expect_refused(fixture_writer, directory, tmp_path, ckpt.FormatError, ckpt.ErrorId.format_metadata,
                            directory / piece.file, piece.name, read="layers/0/rows")
    assert error.what.startswith("the index stores a piece of 'layers/0/rows' here: expected ")


def test_a_rank_file_of_another_size_than_committed_is_refused(fixtures, fixture_writer, tmp_path):
    directory = _copy(fixtures, tmp_path)
    name = "model-00001-of-00003.safetensors"
    _edit_index(directory, lambda index: index["metadata"]["ckpt.files"][name].update(bytes=12))
    _expect_refused(fixture_writer, directory, tmp_path, ckpt.IntegrityError, ckpt.ErrorId.integrity_header_checksum,
                    directory / name)


def test_a_newer_index_is_refused(fixtures, fixture_writer, tmp_path):
    directory = _copy(fixtures, tmp_path)
    _edit_index(directory, lambda index: index["metadata"].update({"ckpt.format_version": 3}))
    _expect_refused(fixture_writer, directory, tmp_path, ckpt.FormatError, ckpt.ErrorId.format_newer_version,
                    directory / INDEX)


def test_a_tensor_reads_only_the_files_of_its_pieces(fixtures, tmp_path):
    directory = _copy(fixtures, tmp_path)
    with ckpt.open(directory) as checkpoint:
        holders = {p.file for p in checkpoint.pieces("embedding/replicated")}
    assert len(holders) == 1
    for name in os.listdir(directory):
        if name.startswith("model-") and name not in holders:
            os.unlink(directory / name)
    with ckpt.open(directory) as checkpoint:
        expected = sample("embedding/replicated", "BF16", (4, 4))
        assert checkpoint.tensor("embedding/replicated").tobytes() == expected.tobytes()
        with pytest.raises(ckpt.IoError) as caught:
            checkpoint.tensor("layers/0/rows")
        assert caught.value.id == ckpt.ErrorId.io_open


def test_a_run_of_distributed_checkpoints(fixtures):
    parent = fixtures / "distributed-run"
    run = ckpt.open_run(parent)
    assert run.steps.tolist() == [10, 20, 30]
    assert [entry.world_size for entry in run] == [2, 3, 2]
    for entry in run:
        # Its files and its index, as the C++ manager counts a step's bytes.
        assert entry.bytes == sum(os.path.getsize(os.path.join(entry.path, name)) for name in os.listdir(entry.path))
        assert entry.metrics == {}  # a DistributedCheckpoint alone records no metrics (docs/python.md)
    assert run.tensor_names("layers/*") == ["layers/0/columns", "layers/0/rows", "layers/1/blocks", "layers/1/uneven"]
    norms = run.trajectory("layers/1/*", stat="norm")  # integers: the float tensors' sample bits hold NaNs
    for index, step in enumerate(run.steps):
        with run.open(step) as checkpoint:
            for name in ("layers/1/blocks", "layers/1/uneven"):
                values = checkpoint.tensor(name).astype(np.float64)
                assert norms[name][index] == pytest.approx(np.linalg.norm(values), rel=1e-12)
    # The sample content is the same at every step: nothing moved.
    assert run.trajectory("layers/1/blocks", stat="dist_prev")["layers/1/blocks"].tolist()[1:] == [0.0, 0.0]


def test_a_distributed_manager_run_is_listed_as_the_cpp_manager_lists_it(fixtures):
    """A DistributedCheckpointManager's directory, with what a killed job leaves
    (a step renamed for deletion with its index, a step never committed): the
    steps, sizes, times, epochs, metrics and pins the C++ manager lists, and
    each step opens and reads."""
    parent = fixtures / "distributed-manager-run"
    expected = json.loads((fixtures / "distributed-manager-run.json").read_text())
    assert [entry["step"] for entry in expected] == [10, 30, 40]  # 20 deleted by retention, 10 pinned
    assert {".step-00000020.removing", "step-00000050"} <= set(os.listdir(parent))
    for template in ("step-{step:08}", "ckpt-{step:08}.safetensors"):  # the steps are listed whatever the template
        run = ckpt.open_run(parent, template)
        listed = [{"step": entry.step, "path": entry.path, "bytes": entry.bytes, "time": entry.time,
                   "epoch": entry.epoch, "metrics": entry.metrics, "pinned": entry.pinned} for entry in run]
        assert listed == expected
        assert [entry.world_size for entry in run] == [2, 2, 2]
    assert run.metric("loss").tolist() == [1 / 10, 1 / 30, 1 / 40]
    for step in run.steps:
        with run.open(step) as checkpoint:
            assert checkpoint.step == step
            assert checkpoint.tensor("head/mask").tobytes() == sample("head/mask", "BOOL", (9,)).tobytes()


def test_a_step_whose_index_is_damaged_is_listed_by_its_name_and_refused_when_opened(fixtures, tmp_path):
    """As the C++ manager lists it: the name of the template still names the
    step, so that opening it (or a restore) says what is wrong; without the
    template nothing names it."""
    parent = tmp_path / "run"
    shutil.copytree(fixtures / "distributed-manager-run", parent)
    index = parent / "step-00000030" / INDEX
    index.write_text("not json")
    run = ckpt.open_run(parent, "step-{step:08}")
    assert run.steps.tolist() == [10, 30, 40]
    damaged = run.checkpoint(30)
    assert (damaged.bytes, damaged.world_size, damaged.metrics) == (len("not json"), None, {})
    with pytest.raises(ckpt.FormatError) as caught:
        run.open(30)
    assert (caught.value.id, caught.value.file) == (ckpt.ErrorId.format_header_json, str(index))
    assert "expected the index to be JSON" in caught.value.what
    assert ckpt.open_run(parent).steps.tolist() == [10, 40]


def test_python_m_ckpt_info_shows_a_directory(fixtures):
    directory = fixtures / "distributed" / "world-4"
    shown = run_module("info", directory, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    index = json.loads((directory / INDEX).read_text())["metadata"]
    assert (report["step"], report["world_size"], report["stored_bytes"]) == (13, 4, index["total_size"])
    assert [f["name"] for f in report["files"]] == sorted(index["ckpt.files"])
    rows = {t["name"]: t for t in report["tensors"]}
    assert rows["layers/0/rows"] == {"name": "layers/0/rows", "dtype": "F32", "shape": [13, 7], "bytes": 13 * 7 * 4,
                                     "pieces": 4, "files": 4}
    assert report["metadata"] == {"step": 13, "note": "saved by 4 ranks"}
    text = run_module("info", directory)
    assert text.returncode == 0 and "step:      13, saved by 4 ranks into 4 files" in text.stdout


def test_only_a_directory_a_distributed_save_wrote_is_a_checkpoint(fixtures, tmp_path):
    """As for the C++ tool: the index or a rank file (or a temp file of one) makes one."""
    uncommitted = _copy(fixtures, tmp_path)
    (uncommitted / INDEX).unlink()
    for name in os.listdir(uncommitted):
        os.rename(uncommitted / name, uncommitted / f".{name}.tmp-12-0-345")  # as a killed save leaves them
    refused = run_module("info", uncommitted)
    assert refused.returncode == 1 and f"[ckpt.state_error.704] file '{uncommitted}': " in refused.stderr
    with pytest.raises(ckpt.IoError) as caught:  # a run's parent directory is not a checkpoint
        ckpt.open(fixtures / "distributed-run")
    assert caught.value.id == ckpt.ErrorId.io_open and "expected a regular file" in caught.value.what
