"""ckpt.open and ckpt.load on files the C++ library wrote: every dtype with
every codec, read bit for bit as the C++ reader reads them."""
import json
import math
import struct

import numpy as np
import pytest

import ckpt
from ckpt import dtypes
from support import expect_same_as_cpp

CODEC_FILES = {"raw": "dtypes-raw", "zstd": "dtypes-zstd", "shuffle+zstd": "dtypes-shuffle_zstd"}


@pytest.mark.parametrize("codec", CODEC_FILES)
def test_every_dtype_reads_as_the_cpp_reader_reads_it(fixtures, dump, codec):
    path = fixtures / f"{CODEC_FILES[codec]}.safetensors"
    with ckpt.open(path) as file:
        assert file.written_by_ckpt and file.format_version == 2
        assert {info.dtype for info in file.tensors} == set(dtypes.NAMES)
        assert {info.codec for info in file.tensors} == {codec}
        expect_same_as_cpp(file, dump(path))
        assert file.metadata == {"codec": codec, "nested": {"a": [1, 2, 3]}}


def test_load_returns_every_tensor_with_its_numpy_type(fixtures):
    tensors = ckpt.load(fixtures / "dtypes-zstd.safetensors")
    assert len(tensors) == 15 * 5
    assert tensors["F32/rank3"].dtype == np.float32 and tensors["F32/rank3"].shape == (2, 3, 50)
    assert tensors["BF16/rank1"].dtype == np.uint16  # bits: numpy has no bfloat16
    assert tensors["F8_E4M3/rank2"].dtype == np.uint8
    assert tensors["BOOL/rank1"].dtype == np.bool_
    assert tensors["F64/rank0"].shape == () and tensors["I32/rank2-empty"].shape == (0, 4)


def test_raw_tensors_are_read_only_views_of_the_mapping(fixtures):
    with ckpt.open(fixtures / "dtypes-raw.safetensors") as file:
        weights = file.tensor("F32/rank3")
        info = file.info("F32/rank3")
    assert not weights.flags.writeable and not weights.flags.owndata
    stored = np.fromfile(fixtures / "dtypes-raw.safetensors", np.uint8)[info.file_offset:][:info.stored_bytes]
    assert weights.tobytes() == stored.tobytes(), "the mapping outlives close() while arrays view it"
    with ckpt.open(fixtures / "dtypes-zstd.safetensors") as file:
        assert file.tensor("F32/rank3").flags.writeable  # decoded into memory of its own


def _e4m3(code):
    """F8_E4M3 ("fn": bias 7, no infinity, NaN at S.1111.111) from its definition."""
    sign = -1.0 if code & 0x80 else 1.0
    exponent, mantissa = (code >> 3) & 0xF, code & 0x7
    if exponent == 15 and mantissa == 7:
        return math.nan
    if exponent == 0:
        return sign * math.ldexp(mantissa, -9)
    return sign * math.ldexp(8 + mantissa, exponent - 10)


def _e5m2(code):
    """F8_E5M2 (IEEE-like: bias 15, infinities and NaNs) from its definition."""
    sign = -1.0 if code & 0x80 else 1.0
    exponent, mantissa = (code >> 2) & 0x1F, code & 0x3
    if exponent == 31:
        return sign * math.inf if mantissa == 0 else math.nan
    if exponent == 0:
        return sign * math.ldexp(mantissa, -16)
    return sign * math.ldexp(4 + mantissa, exponent - 17)


def _bf16(bits):
    return float(np.array([bits << 16], np.uint32).view(np.float32)[0])


@pytest.mark.parametrize("dtype, definition", [("F8_E4M3", _e4m3), ("F8_E5M2", _e5m2), ("BF16", _bf16)])
def test_narrow_floats_convert_to_float32_by_their_definition(fixtures, dtype, definition):
    with ckpt.open(fixtures / "dtypes-shuffle_zstd.safetensors") as file:
        bits = file.tensor(f"{dtype}/rank3")
        values = file.tensor(f"{dtype}/rank3", as_float32=True)
    assert values.dtype == np.float32 and values.shape == bits.shape
    expected = np.array([definition(int(code)) for code in bits.reshape(-1)], np.float32).reshape(bits.shape)
    np.testing.assert_array_equal(values, expected)  # NaN where NaN
    every_code = np.arange(256, dtype=np.uint8)
    if dtype != "BF16":
        np.testing.assert_array_equal(dtypes.to_float32(every_code, dtype),
                                      np.array([definition(code) for code in range(256)], np.float32))


def test_f16_converts_and_wide_types_stay_as_stored(fixtures):
    with ckpt.open(fixtures / "dtypes-raw.safetensors") as file:
        np.testing.assert_array_equal(file.tensor("F16/rank2", as_float32=True),
                                      file.tensor("F16/rank2").astype(np.float32))
        assert file.tensor("F64/rank1", as_float32=True).dtype == np.float64
        assert file.tensor("I16/rank1", as_float32=True).dtype == np.int16
        scalar = file.tensor("BF16/rank0", as_float32=True)
        assert scalar.shape == () and scalar.dtype == np.float32


def test_verify_checks_every_tensor_without_checksums_on_access(fixtures, tmp_path):
    damaged = tmp_path / "damaged.safetensors"
    data = bytearray((fixtures / "dtypes-shuffle_zstd.safetensors").read_bytes())
    with ckpt.open(fixtures / "dtypes-shuffle_zstd.safetensors") as file:
        target = file.info("F32/rank3")
    data[target.file_offset + target.stored_bytes // 2] ^= 0x01
    damaged.write_bytes(data)
    with ckpt.open(damaged, verify_checksums=False) as file:
        file.tensor("F64/rank1")  # other tensors read fine
        with pytest.raises(ckpt.IntegrityError) as error:
            file.verify()
    assert error.value.id == ckpt.ErrorId.integrity_tensor_checksum and error.value.tensor == "F32/rank3"


def test_threads_do_not_change_what_is_decoded(fixtures):
    one = ckpt.load(fixtures / "dtypes-shuffle_zstd.safetensors", threads=1)
    two = ckpt.load(fixtures / "dtypes-shuffle_zstd.safetensors", threads=4)
    assert all(one[name].tobytes() == two[name].tobytes() for name in one)


def test_a_foreign_safetensors_file_reads_without_checksums(tmp_path):
    """Any safetensors file opens: written from the spec here, as another tool would."""
    header = json.dumps({"__metadata__": {"format": "pt", "source": "elsewhere"},
                         "b": {"dtype": "I16", "shape": [3], "data_offsets": [8, 14]},
                         "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "foreign.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<2f3h", 1.5, -2.0, 7, -8, 9))
    with ckpt.open(path) as file:
        assert not file.written_by_ckpt and file.format_version == 0
        assert file.names() == ["a", "b"], "in file order"
        assert not any(info.checksummed for info in file.tensors)
        assert file.raw_metadata == {"format": "pt", "source": "elsewhere"} and file.metadata == {}
        assert file["a"].tolist() == [1.5, -2.0] and file["b"].tolist() == [7, -8, 9]
