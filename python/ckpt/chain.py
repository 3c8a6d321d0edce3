"""The metadata of incremental checkpoints: docs/format.md, section 8.

``ckpt.xxh128`` holds the content hash of each tensor a file stores;
``ckpt.chain`` the parent a file was saved against, the files holding the
bytes it references (its sources), the references and the bases of its
xor-delta tensors. Parsed as strictly as the C++ reader
(include/ckpt/detail/format/chain.hpp) and refused with the same messages.
"""
import re
from typing import NamedTuple

import xxhash

from . import dtypes
from . import strict_json
from .checksum import from_hex
from .errors import ErrorId, FormatError

FIRST_CHAIN_VERSION = 3  # the first format version with references
XOR_DELTA_CODEC = "xor-delta"  # chunks are shuffle+zstd frames of the tensor XOR its base
CONTENT_HASHES_KEY = "ckpt.xxh128"
CHAIN_KEY = "ckpt.chain"

_CONTENT_HASH = re.compile(r"[0-9a-f]{32}")


def content_hash(buffer):
    """XXH3-128 of a tensor's decoded bytes, as 32 hex digits, high 64 bits first."""
    return xxhash.xxh3_128_hexdigest(buffer)


def _content_hash_member(value):
    return value if isinstance(value, str) and _CONTENT_HASH.fullmatch(value) else None


class ChainFile(NamedTuple):
    file: str  # relative to the directory of the file naming it
    header_xxh3: int


class Reference(NamedTuple):
    name: str
    dtype: str
    shape: tuple
    xxh128: str
    source: int  # index into Chain.sources
    tensor: str  # its name in that source, which stores it


class DeltaBase(NamedTuple):
    name: str
    source: int
    tensor: str
    xxh128: str


class Chain(NamedTuple):
    parent: ChainFile
    depth: int
    chain_bytes: int
    sources: list
    references: dict  # name -> Reference, by name
    deltas: dict  # name -> DeltaBase, by name


def _member(value, key):
    """value[key], or None when value is no object or lacks the key (as C++'s member())."""
    return value.get(key) if isinstance(value, dict) else None


class ChainParser:
    """Reads ``ckpt.chain`` (parsed JSON) of ``file``; every problem is format_metadata."""

    def __init__(self, file, tensor_name_problem, byte_size):
        self.file = file
        self.tensor_name_problem = tensor_name_problem
        self.byte_size = byte_size

    def fail(self, tensor, what):
        raise FormatError(ErrorId.format_metadata, self.file, tensor, what)

    def parse(self, json):
        if not isinstance(json, dict) or len(json) != 6:
            self.fail("", "expected ckpt.chain to be an object of exactly parent, depth, chain_bytes, sources, "
                      "references and deltas, found " + strict_json.excerpt(strict_json.dump(json)))
        parent = self.file_of(_member(json, "parent"), "parent")
        depth = _member(json, "depth")
        chain_bytes = _member(json, "chain_bytes")
        if not strict_json.is_u64(depth) or depth == 0 or not strict_json.is_u64(chain_bytes):
            self.fail("", "expected ckpt.chain depth, a positive integer, and chain_bytes, an integer, found " +
                      strict_json.excerpt(strict_json.dump(json), 200))
        sources = _member(json, "sources")
        if not isinstance(sources, list):
            self.fail("", "expected ckpt.chain sources to be an array, found " +
                      strict_json.excerpt(strict_json.dump(sources)))
        sources = [self.file_of(source, "source") for source in sources]
        references = _member(json, "references")
        if not isinstance(references, dict):
            self.fail("", "expected ckpt.chain references to be an object, found " +
                      strict_json.excerpt(strict_json.dump(references)))
        # In byte order of the names, as the C++ reader (nlohmann's sorted objects) meets them.
        references = {name: self.reference_of(name, references[name], len(sources)) for name in sorted(references)}
        deltas = _member(json, "deltas")
        if not isinstance(deltas, dict):
            self.fail("", "expected ckpt.chain deltas to be an object, found " +
                      strict_json.excerpt(strict_json.dump(deltas)))
        deltas = {name: self.delta_of(name, deltas[name], len(sources)) for name in sorted(deltas)}
        return Chain(parent, depth, chain_bytes, sources, references, deltas)

    def file_of(self, json, role):
        name = _member(json, "file")
        checksum = _member(json, "header_xxh3")
        value = from_hex(checksum) if isinstance(checksum, str) else None
        # A relative name: a chain moves with its directory.
        if (not isinstance(json, dict) or len(json) != 2 or not isinstance(name, str) or not name
                or name.startswith("/") or "\0" in name or value is None):
            self.fail("", f"expected the ckpt.chain {role} to be {{\"file\": a relative file name, \"header_xxh3\": "
                      "16 lowercase hex digits}, found " + strict_json.excerpt(strict_json.dump(json)))
        return ChainFile(name, value)

    def reference_of(self, name, json, source_count):
        problem = self.tensor_name_problem(name)
        if problem:
            self.fail(strict_json.excerpt(name).replace("\0", "\\0"), problem)
        dtype = _member(json, "dtype")
        shape = strict_json.as_shape(_member(json, "shape"))
        xxh128 = _content_hash_member(_member(json, "xxh128"))
        source = _member(json, "source")
        tensor = _member(json, "tensor")
        if (not isinstance(json, dict) or len(json) != 5 or not isinstance(dtype, str) or dtype not in dtypes.NUMPY
                or shape is None or self.byte_size(dtype, shape) is None or xxh128 is None
                or not strict_json.is_u64(source) or source >= source_count or not isinstance(tensor, str)
                or self.tensor_name_problem(tensor)):
            self.fail(name, "expected a reference {dtype, shape, xxh128 (32 lowercase hex digits), source (an index "
                      f"below {source_count}), tensor (a tensor name)}} in ckpt.chain, found " +
                      strict_json.excerpt(strict_json.dump(json)))
        return Reference(name, dtype, shape, xxh128, source, tensor)

    def delta_of(self, name, json, source_count):
        source = _member(json, "source")
        tensor = _member(json, "tensor")
        xxh128 = _content_hash_member(_member(json, "xxh128"))
        if (not isinstance(json, dict) or len(json) != 3 or not strict_json.is_u64(source) or source >= source_count
                or not isinstance(tensor, str) or self.tensor_name_problem(tensor) or xxh128 is None):
            self.fail(name, f"expected a delta base {{source (an index below {source_count}), tensor (a tensor "
                      "name), xxh128 (32 lowercase hex digits)} in ckpt.chain, found " +
                      strict_json.excerpt(strict_json.dump(json)))
        return DeltaBase(name, source, tensor, xxh128)


def parse_content_hashes(json, records, file):
    """``ckpt.xxh128`` of a file whose header holds ``records``: {name: 32 hex digits}."""
    hashes = {}
    if isinstance(json, dict) and len(json) == len(records):
        for record in records:
            value = _content_hash_member(json.get(record.name))
            if value is None:
                break
            hashes[record.name] = value
    if len(hashes) != len(records):
        raise FormatError(ErrorId.format_metadata, file, "", "expected ckpt.xxh128 to hold a hash of 32 lowercase "
                          f"hex digits for each of the {len(records)} tensors of the header, found " +
                          strict_json.excerpt(strict_json.dump(json)))
    return hashes
