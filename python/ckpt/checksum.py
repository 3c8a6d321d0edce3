"""XXH3-64 with seed 0, the checksum of docs/format.md, section 4.

It comes from the xxhash module (Debian: python3-xxhash, xxHash 0.8's own C
code), which hashes at several GB/s and releases the GIL on large buffers.
"""
import re

import xxhash

_HEX = re.compile(r"[0-9a-f]{16}")


def xxh3(buffer):
    """The checksum of a bytes-like object (a memoryview of a mapping is not copied)."""
    return xxhash.xxh3_64_intdigest(buffer)


def to_hex(value):
    return f"{value:016x}"


def from_hex(text):
    """The value of exactly 16 lowercase hex digits, or None."""
    return int(text, 16) if _HEX.fullmatch(text) else None


def header_checksum(data, data_start, value_offset):
    """The checksum of bytes [0, data_start) of ``data`` with the 16 digits at
    ``value_offset`` read as ASCII '0'."""
    stream = xxhash.xxh3_64()
    with memoryview(data) as view:  # released at once: a mapping with exported views cannot close
        stream.update(view[:value_offset])
        stream.update(b"0" * 16)
        stream.update(view[value_offset + 16:data_start])
    return stream.intdigest()
