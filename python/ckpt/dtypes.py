"""The dtypes of docs/format.md, section 2, as numpy sees them.

numpy has no bfloat16 or float8: BF16, F8_E4M3 and F8_E5M2 tensors come back as
unsigned integers holding their bits, and ``to_float32`` converts them (and
F16) exactly, since float32 holds every value of those formats.
"""
import numpy as np

# The numpy type that holds each dtype's stored elements (little-endian).
NUMPY = {
    "BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"), "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"), "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"), "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"), "F8_E4M3": np.dtype("u1"), "F8_E5M2": np.dtype("u1"),
}
NAMES = tuple(NUMPY)  # in include/ckpt/dtype.hpp's order, for messages

# Floating-point formats numpy lacks or that are narrower than float32.
NARROW_FLOATS = ("F16", "BF16", "F8_E4M3", "F8_E5M2")


def size(name):
    return NUMPY[name].itemsize


def _e4m3_table():
    # F8_E4M3 is the "fn" variant (as torch.float8_e4m3fn and the OCP spec):
    # bias 7, no infinities, NaN only at exponent and mantissa all ones.
    code = np.arange(256)
    sign = np.where(code & 0x80, -1.0, 1.0)
    exponent = (code >> 3) & 0xF
    mantissa = code & 0x7
    magnitude = np.where(exponent == 0, mantissa / 8.0 * 2.0 ** -6, (1 + mantissa / 8.0) * 2.0 ** (exponent - 7.0))
    magnitude[(exponent == 15) & (mantissa == 7)] = np.nan
    return (sign * magnitude).astype(np.float32)


_E4M3 = _e4m3_table()


def to_float32(array, name):
    """``array`` holding dtype ``name`` (as ``NUMPY[name]``) as float32 values;
    dtypes other than ``NARROW_FLOATS`` are returned unchanged."""
    if name not in NARROW_FLOATS:
        return array
    flat = array.reshape(-1)  # 1-D, so that a scalar tensor stays an array
    if name == "BF16":  # the upper half of a float32
        converted = (flat.astype(np.uint32) << 16).view(np.float32)
    elif name == "F16":
        converted = flat.astype(np.float32)
    elif name == "F8_E5M2":  # the upper byte of a float16
        converted = (flat.astype(np.uint16) << 8).view(np.float16).astype(np.float32)
    else:
        converted = _E4M3[flat]
    return converted.reshape(array.shape)
