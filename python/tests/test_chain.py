"""Incremental checkpoints (docs/format.md, section 8): a chain the C++
library wrote (write_fixtures, DIR/chain: step-0 full, steps 1-4 each against
the one before, with xor-delta) read bit for bit as the C++ Reader reads it,
and every damaged, replaced or missing file of the chain refused with the
C++ reader's error: the same id and the same message."""
import json
import shutil
import subprocess

import pytest

import ckpt
from support import Dump, expect_same_as_cpp, resign

STEPS = range(5)


def step_file(directory, step):
    return directory / f"step-{step}.safetensors"


@pytest.mark.parametrize("step", STEPS)
def test_every_file_of_the_chain_reads_as_the_cpp_reader_reads_it(fixtures, step):
    path = step_file(fixtures / "chain", step)
    with ckpt.open(path) as file:
        expect_same_as_cpp(file, Dump(fixtures / "chain" / f"step-{step}"))
        file.verify()
        assert file.chain_depth == step
        assert file.format_version == (3 if step else 2)


def test_the_chain_holds_references_renames_and_xor_deltas(fixtures):
    """What the fixture is meant to exercise, so that the comparison above covers it."""
    with ckpt.open(step_file(fixtures / "chain", 4)) as file:
        assert file.parent_file == "step-3.safetensors"
        assert file.names() == ["half", "weight", "bias", "frozen", "tok/embedding"]
        assert [file.info(name).codec for name in ("half", "weight")] == ["xor-delta"] * 2
        # Frozen since step 0 and renamed at step 2: both still read from step-0.
        for name in ("frozen", "tok/embedding"):
            assert (file.info(name).codec, file.info(name).stored_in) == ("reference", "step-0.safetensors")
        # Unchanged since step 3, where it is an xor-delta over step-2's xor-delta over step-1's reference.
        assert (file.info("bias").codec, file.info("bias").stored_in) == ("reference", "step-3.safetensors")
    with ckpt.open(step_file(fixtures / "chain", 3)) as file:
        assert file.info("bias").codec == "xor-delta"
        assert "tok/embedding" in file and "embedding" not in file
        loaded = ckpt.load(step_file(fixtures / "chain", 4))
        assert sorted(loaded) == sorted(file.names())


@pytest.fixture
def chain(fixtures, tmp_path):
    """A copy of the chain to damage."""
    return shutil.copytree(fixtures / "chain", tmp_path / "chain")


def cpp_refusal(fixture_writer, path, tmp_path):
    """The message of the error the C++ Reader raises reading every tensor of ``path``."""
    result = subprocess.run([fixture_writer, "--dump", str(path), str(tmp_path / "refused")], capture_output=True,
                            text=True)
    assert result.returncode == 1, f"the C++ reader read {path}"
    return result.stderr.strip().removeprefix("write_fixtures: ")


def python_refusal(path):
    """The error the package raises reading every tensor of ``path``, in the C++ dump's order."""
    with pytest.raises(ckpt.Error) as caught:
        with ckpt.open(path) as file:
            for name in file.names():
                file.tensor(name)
    return caught.value


def expect_refused_as_cpp(fixture_writer, tmp_path, path, id, file, *parts):
    error = python_refusal(path)
    assert error.id == id, str(error)
    assert error.file == str(file), str(error)
    for part in parts:
        assert part in str(error)
    assert str(error) == cpp_refusal(fixture_writer, path, tmp_path)
    return error


def flip_byte_of(path, tensor, at=0):
    with ckpt.open(path, verify_checksums=False) as file:
        offset = file.info(tensor).file_offset + at
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_damaged_referenced_tensor_is_refused_naming_the_file_storing_it(chain, fixture_writer, tmp_path):
    flip_byte_of(step_file(chain, 0), "frozen", 3)
    expect_refused_as_cpp(fixture_writer, tmp_path, step_file(chain, 4), ckpt.ErrorId.integrity_tensor_checksum,
                          step_file(chain, 0), "tensor 'frozen'", "checksum mismatch")


def test_a_damaged_xor_delta_base_is_refused_naming_the_file_storing_it(chain, fixture_writer, tmp_path):
    flip_byte_of(step_file(chain, 3), "weight")  # the base of step-4's weight
    expect_refused_as_cpp(fixture_writer, tmp_path, step_file(chain, 4), ckpt.ErrorId.integrity_tensor_checksum,
                          step_file(chain, 3), "tensor 'weight'", "checksum mismatch")


def test_a_missing_source_is_an_open_error_naming_it(chain, fixture_writer, tmp_path):
    step_file(chain, 0).unlink()
    expect_refused_as_cpp(fixture_writer, tmp_path, step_file(chain, 4), ckpt.ErrorId.io_open, step_file(chain, 0))


def test_a_rewritten_source_is_a_reference_error_with_both_header_checksums(chain, fixture_writer, tmp_path):
    resign(step_file(chain, 0), lambda header: header["__metadata__"].update({"ckpt.metadata": '{"step":9}'}))
    error = expect_refused_as_cpp(fixture_writer, tmp_path, step_file(chain, 4), ckpt.ErrorId.integrity_reference,
                                  step_file(chain, 0), "(the file was replaced or rewritten since)")
    assert isinstance(error, ckpt.IntegrityError)


def edit_chain(edit):
    """A header edit of ckpt.chain through ``edit`` (of the parsed chain)."""
    def apply(header):
        chain = json.loads(header["__metadata__"]["ckpt.chain"])
        edit(chain)
        header["__metadata__"]["ckpt.chain"] = json.dumps(chain, separators=(",", ":"))
    return apply


def set_member(section, name, key, value):
    return edit_chain(lambda chain: chain[section][name].update({key: value}))


OTHER_HASH = "0123456789abcdef" * 2


@pytest.mark.parametrize("edit, id, parts", [
    # The header checksum matches, the content recorded does not: a reference to other content.
    (set_member("references", "frozen", "xxh128", OTHER_HASH), ckpt.ErrorId.integrity_reference,
     ["found no stored tensor of that name, dtype, shape and content"]),
    (set_member("references", "frozen", "shape", [5, 4]), ckpt.ErrorId.integrity_reference,
     ["F32 [5, 4]"]),
    (set_member("references", "frozen", "tensor", "weight"), ckpt.ErrorId.integrity_reference,
     ["tensor 'weight'"]),
    (set_member("deltas", "weight", "xxh128", OTHER_HASH), ckpt.ErrorId.integrity_reference,
     ["expected the base of xor-delta tensor 'weight'"]),
    # Malformed chain metadata: refused on open.
    (set_member("references", "frozen", "source", 7), ckpt.ErrorId.format_metadata, ["an index below"]),
    (edit_chain(lambda chain: chain["deltas"].pop("weight")), ckpt.ErrorId.format_metadata,
     ["expected a delta base in ckpt.chain for this xor-delta tensor, found none"]),
    (edit_chain(lambda chain: chain["references"].update({"weight": chain["references"]["frozen"]})),
     ckpt.ErrorId.format_metadata, ["found it both in the header and in ckpt.chain"]),
    (edit_chain(lambda chain: chain.update({"depth": 0})), ckpt.ErrorId.format_metadata,
     ["depth, a positive integer"]),
    (edit_chain(lambda chain: chain["parent"].update({"file": "/abs.safetensors"})), ckpt.ErrorId.format_metadata,
     ["a relative file name"]),
    (lambda header: header["__metadata__"].update({"ckpt.format_version": "2"}), ckpt.ErrorId.format_metadata,
     ["expected no ckpt.chain in a file of format version 2"]),
], ids=["other-content", "other-shape", "other-tensor", "other-base", "source-index", "no-delta-base",
        "stored-and-referenced", "depth-0", "absolute-parent", "chain-in-v2"])
def test_chain_metadata_is_checked_as_the_cpp_reader_checks_it(chain, fixture_writer, tmp_path, edit, id, parts):
    child = step_file(chain, 4)
    resign(child, edit)
    expected_file = child if id == ckpt.ErrorId.format_metadata else None
    error = python_refusal(child)
    assert error.id == id, str(error)
    if expected_file:
        assert error.file == str(expected_file)
    for part in parts:
        assert part in str(error)
    assert str(error) == cpp_refusal(fixture_writer, child, tmp_path)


def test_verify_checks_every_referenced_tensor_in_its_source(chain):
    """verify() checks the whole chain the file needs, the renamed tensor's
    bytes in step-0 included."""
    flip_byte_of(step_file(chain, 0), "embedding", 40)
    with ckpt.open(step_file(chain, 4)) as file:
        with pytest.raises(ckpt.IntegrityError) as caught:
            file.verify()
    assert caught.value.id == ckpt.ErrorId.integrity_tensor_checksum
    assert caught.value.file == str(step_file(chain, 0)) and caught.value.tensor == "embedding"
