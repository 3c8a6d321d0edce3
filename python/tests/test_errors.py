"""Refusals: the reliability suite's hostile files, damaged files and misuse,
each with the C++ library's error id, class and a message naming the file
(and the tensor when there is one)."""
import json
import tracemalloc

import pytest

import ckpt
from ckpt import codecs
from support import resign

KINDS = {1: ckpt.IoError, 2: ckpt.FormatError, 3: ckpt.IntegrityError, 4: ckpt.CodecError, 5: ckpt.MismatchError}


def read_everything(path):
    """Opens, verifies and reads each tensor: a reader may refuse at any of these steps."""
    with ckpt.open(path) as file:
        file.verify()
        for name in file.names():
            file.tensor(name)


def expect_refusal(error, id, path, tensor=None):
    assert error.id == id, str(error)
    assert isinstance(error, KINDS[int(id) // 100]), type(error)
    assert error.file == str(path)
    prefix = f"[ckpt.{error.kind}.{int(id)}] file '{path}': "
    if tensor is not None:
        prefix += f"tensor '{tensor}': "
    assert str(error).startswith(prefix), str(error)


def hostile_files(fixtures):
    return json.loads((fixtures / "hostile.json").read_text())


def test_every_hostile_file_is_refused_as_the_cpp_reader_refuses_it_in_bounded_memory(fixtures):
    refused = 0
    for hostile in hostile_files(fixtures):
        path = fixtures / hostile["file"]
        tracemalloc.start()
        with pytest.raises(ckpt.Error) as caught:
            read_everything(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        error = caught.value
        assert int(error.id) in hostile["expected"], f"{hostile['what']}: {error}"
        expect_refusal(error, error.id, path, error.tensor or None)
        # What the C++ suite allows (4 MiB + 64 x the file), whatever size the file declares.
        assert peak <= (4 << 20) + 64 * path.stat().st_size, f"{hostile['what']}: {peak} bytes at the peak"
        refused += 1
    assert refused == 49, "the 49 hostile files of the reliability suite (README, Reliability)"


@pytest.fixture
def copy(fixtures, tmp_path):
    """copy(name) -> a copy of a fixture file that a test may damage."""
    def make(name):
        path = tmp_path / name
        path.write_bytes((fixtures / name).read_bytes())
        return path
    return make


def test_a_damaged_tensor_is_refused_on_access_not_on_open(copy):
    path = copy("dtypes-raw.safetensors")
    with ckpt.open(path) as file:
        info = file.info("I64/rank1")
    data = bytearray(path.read_bytes())
    data[info.file_offset + 3] ^= 0x40
    path.write_bytes(data)
    with ckpt.open(path) as file:
        file.tensor("I64/rank2")
        with pytest.raises(ckpt.IntegrityError) as caught:
            file.tensor("I64/rank1")
    expect_refusal(caught.value, ckpt.ErrorId.integrity_tensor_checksum, path, "I64/rank1")
    assert "checksum mismatch in block 0 of " in str(caught.value)  # the damaged byte is in the first block
    assert "): expected xxh3" in str(caught.value)


def test_a_damaged_compressed_stream_is_a_checksum_error_then_a_codec_error(copy):
    path = copy("dtypes-zstd.safetensors")
    with ckpt.open(path) as file:
        info = file.info("F64/rank3")
    data = bytearray(path.read_bytes())
    data[info.file_offset] ^= 0xFF  # the first chunk's zstd magic
    path.write_bytes(data)
    with pytest.raises(ckpt.IntegrityError) as caught:
        read_everything(path)
    expect_refusal(caught.value, ckpt.ErrorId.integrity_tensor_checksum, path, "F64/rank3")
    with ckpt.open(path, verify_checksums=False) as file, pytest.raises(ckpt.CodecError) as caught:
        file.tensor("F64/rank3")
    expect_refusal(caught.value, ckpt.ErrorId.codec_decode, path, "F64/rank3")
    assert "codec 'zstd', chunk 0 of " in str(caught.value) and "not a zstd frame" in str(caught.value)


def test_a_damaged_header_is_a_header_checksum_error(copy):
    path = copy("dtypes-raw.safetensors")
    data = bytearray(path.read_bytes())
    data[data.index(b'"U8/rank1"') + 1] = ord("V")  # still valid JSON and a valid name
    path.write_bytes(data)
    with pytest.raises(ckpt.IntegrityError) as caught:
        ckpt.open(path)
    expect_refusal(caught.value, ckpt.ErrorId.integrity_header_checksum, path)


def test_a_truncated_file_names_the_tensor_past_the_end(copy):
    path = copy("dtypes-raw.safetensors")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ckpt.FormatError) as caught:
        ckpt.open(path)
    expect_refusal(caught.value, ckpt.ErrorId.format_truncated, path, caught.value.tensor)
    assert caught.value.tensor and "file truncated?" in str(caught.value)


def test_a_file_of_a_newer_format_version_says_so(copy):
    path = copy("dtypes-raw.safetensors")
    resign(path, lambda header: header["__metadata__"].update({"ckpt.format_version": "4"}))
    with pytest.raises(ckpt.FormatError) as caught:
        ckpt.open(path)
    expect_refusal(caught.value, ckpt.ErrorId.format_newer_version, path)
    assert "written by a newer ckpt: format version 4, this build reads versions up to 3" in str(caught.value)


def test_an_unknown_codec_spoils_its_tensor_only(copy):
    path = copy("dtypes-zstd.safetensors")

    def rename_codec(header):
        infos = json.loads(header["__metadata__"]["ckpt.tensors"])
        infos["U16/rank2"]["codec"] = "lz4"
        header["__metadata__"]["ckpt.tensors"] = json.dumps(infos)
    resign(path, rename_codec)
    with ckpt.open(path) as file:
        assert file.info("U16/rank2").codec == "lz4"
        file.tensor("U16/rank1")
        with pytest.raises(ckpt.CodecError) as caught:
            file.tensor("U16/rank2")
    expect_refusal(caught.value, ckpt.ErrorId.codec_unknown, path, "U16/rank2")
    assert "unknown codec 'lz4'" in str(caught.value)


def test_without_zstandard_compressed_tensors_say_what_to_install(fixtures, monkeypatch):
    monkeypatch.setattr(codecs, "zstandard", None)
    path = fixtures / "dtypes-shuffle_zstd.safetensors"
    with ckpt.open(path) as file, pytest.raises(ckpt.CodecError) as caught:
        file.tensor("F32/rank1")
    expect_refusal(caught.value, ckpt.ErrorId.codec_unknown, path, "F32/rank1")
    assert "python3-zstandard" in str(caught.value)


def test_a_missing_tensor_is_a_mismatch_error(fixtures):
    path = fixtures / "dtypes-raw.safetensors"
    with ckpt.open(path) as file, pytest.raises(ckpt.MismatchError) as caught:
        file.tensor("model/w")
    expect_refusal(caught.value, ckpt.ErrorId.mismatch_missing_tensor, path, "model/w")


@pytest.mark.parametrize("what", ["missing", "directory"])
def test_what_is_not_a_readable_file_is_an_io_error(tmp_path, what):
    path = tmp_path / "nothing.safetensors" if what == "missing" else tmp_path
    with pytest.raises(ckpt.IoError) as caught:
        ckpt.open(path)
    expect_refusal(caught.value, ckpt.ErrorId.io_open, path)


def foreign_file(path, header_text, data=b"\0" * 4):
    header = header_text.encode() + b" " * (-len(header_text.encode()) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    return path


ENTRY = '"dtype":"F32","shape":[1],"data_offsets":'


@pytest.mark.parametrize("what, header, id", [
    ("-0 is not a non-negative integer (format.md, conventions)", '{"t":{' + ENTRY + '[-0,4]}}', 204),
    ("4.0 neither", '{"t":{' + ENTRY + '[0,4.0]}}', 204),
    ("NaN is not JSON", '{"__metadata__":{"k":NaN}}', 203),
    ("a duplicate key in a nested object", '{"t":{' + ENTRY + '[0,4],"dtype":"F32"}}', 203),
    ("an array longer than 1024", '{"t":{"dtype":"F32","shape":[' + ",".join(["1"] * 1025) + '],'
                                   '"data_offsets":[0,4]}}', 203),
])
def test_json_the_cpp_reader_refuses_is_refused(tmp_path, what, header, id):
    path = foreign_file(tmp_path / "file.safetensors", header)
    with pytest.raises(ckpt.FormatError) as caught:
        ckpt.open(path)
    assert caught.value.id == id, f"{what}: {caught.value}"


def test_colons_and_escapes_inside_strings_are_only_text(tmp_path):
    header = '{"__metadata__":{"a:b":"c:d","e":"\\ud83d\\ude00 [{"},"t:1":{' + ENTRY + '[0,4]}}'
    with ckpt.open(foreign_file(tmp_path / "file.safetensors", header)) as file:
        assert file.names() == ["t:1"] and file.raw_metadata == {"a:b": "c:d", "e": "\U0001F600 [{"}
