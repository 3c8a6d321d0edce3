"""The checksum is the C++ library's XXH3-64: equal values at every input
length class the algorithm treats differently."""
import json

from ckpt.checksum import from_hex, to_hex, xxh3


def test_xxh3_equals_the_cpp_librarys_at_every_length(fixtures):
    data = (fixtures / "xxh3.bin").read_bytes()
    expected = json.loads((fixtures / "xxh3.json").read_text())
    assert len(expected) == 16
    for size, value in expected.items():
        assert to_hex(xxh3(memoryview(data)[:int(size)])) == value, f"{size} bytes"


def test_hex_checksums_are_exactly_16_lowercase_digits():
    assert from_hex("0123456789abcdef") == 0x0123456789ABCDEF
    for text in ["0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "0123456789abcdeg", " 123456789abcdef"]:
        assert from_hex(text) is None, text
