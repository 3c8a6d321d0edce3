"""The header of a checkpoint, read and validated as docs/format.md specifies.

``parse_header`` follows the spec's section 7 step by step and raises the error
ids the C++ reader raises for each step, so both refuse a file the same way.
Only the header is read here; tensor bytes are the reader's business.
"""
from dataclasses import dataclass, field

from . import chain as chain_metadata
from . import dtypes
from . import strict_json
from .checksum import from_hex, header_checksum, to_hex
from .errors import ErrorId, FormatError, IntegrityError

FORMAT_VERSION = 3  # the newest layout this reader knows (include/ckpt/detail/format/layout.hpp)
FIRST_BLOCK_VERSION = 2  # the first with block checksums (section 4)

# Section 1 and 7: limits that keep a hostile file from making a reader allocate.
MAX_HEADER_BYTES = 100_000_000
MAX_HEADER_DEPTH = 8
MAX_METADATA_DEPTH = 256
MAX_HEADER_ARRAY = 1024
MAX_CHUNK_BYTES = 2**30
MAX_BLOCK_BYTES = 2**30
MAX_EXPANSION = 65536  # a chunk decodes to at most this many times its stored size

METADATA_KEY = "__metadata__"
RAW_CODEC = "raw"
# Section 4: the header checksum's value always sits at bytes [45, 61).
CHECKSUM_PREFIX = b'{"__metadata__":{"ckpt.header_xxh3":"'
CHECKSUM_OFFSET = 8 + len(CHECKSUM_PREFIX)
CHECKSUM_DIGITS = 16
ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


@dataclass
class TensorRecord:
    """One tensor as the header describes it. For a raw tensor the stored dtype
    and shape are the logical ones; an encoded tensor is stored as U8 [bytes]."""

    name: str
    dtype: str
    shape: tuple
    begin: int  # offsets in the data buffer, end exclusive
    end: int
    codec: str = RAW_CODEC
    checksummed: bool = False
    stored_xxh3: int = 0
    raw_xxh3: int = 0  # encoded tensors: of the decoded bytes
    chunk_bytes: int = 0
    chunk_sizes: tuple = ()
    # Format version 2: the checksum of each block of the stored bytes, and
    # where each block begins (then the stored size).
    block_checksummed: bool = False
    block_xxh3: tuple = ()
    block_starts: tuple = ()

    def block_span(self, index):
        """Stored bytes [begin, end) of block ``index``, relative to the tensor's first stored byte."""
        return self.block_starts[index], self.block_starts[index + 1]

    @property
    def stored_bytes(self):
        return self.end - self.begin

    @property
    def encoded(self):
        return self.codec != RAW_CODEC


@dataclass
class Header:
    data_start: int
    tensors: list  # TensorRecords by ascending offset
    raw_metadata: dict = field(default_factory=dict)  # __metadata__ verbatim
    user_metadata: dict = field(default_factory=dict)  # ckpt.metadata
    format_version: int = 0  # 0: not written by ckpt
    header_xxh3: int = 0  # ckpt files: the header checksum (section 4)
    # Incremental checkpoints (section 8): the content hash of each stored
    # tensor (when the save recorded them) and the chain of a file with references.
    content_hashes: dict = field(default_factory=dict)
    chain: object = None  # a chain.Chain


def byte_size(dtype, shape):
    """dtype x shape in bytes, or None when the element count or the byte size
    overflows 64 bits, checked extent by extent (an overflowing prefix counts
    even when a later extent is 0, as in the reference reader)."""
    count = 1
    for extent in shape:
        count *= extent
        if count > strict_json.U64_MAX:
            return None
    size = count * dtypes.size(dtype)
    return size if size <= strict_json.U64_MAX else None


def chunk_decoded_bytes(raw_bytes, chunk_bytes, index):
    return min(chunk_bytes, raw_bytes - index * chunk_bytes)


def shape_text(shape):
    return "[" + ", ".join(str(extent) for extent in shape) + "]"


def tensor_name_problem(name):
    """What is wrong with a tensor name, or None (docs/format.md, section 2)."""
    if not name:
        return "expected a non-empty tensor name, found an empty one"
    if "\0" in name:
        return "expected a tensor name without NUL, found one"
    if name == METADATA_KEY:
        return "the name '__metadata__' is reserved by safetensors"
    if name.startswith("/") or name.endswith("/"):
        return "expected a name without '/' at its ends, found one"
    if "/../" in f"/{name}/":
        return "expected a name without a '..' component, found one"
    return None


class _Parser:
    """One parse of one file's header; ``data`` is the file's bytes (a mapping)."""

    def __init__(self, file, data, file_size):
        self.file = file
        self.data = data
        self.file_size = file_size
        self.checksum_ok = None  # None: the header carries no checksum
        self.checksum_mismatch = ""

    def fail(self, id, what, tensor="", kind=FormatError):
        raise kind(id, self.file, tensor, what)

    def fail_header_checksum(self):
        self.fail(ErrorId.integrity_header_checksum,
                  f"header checksum mismatch (the header changed after it was written): {self.checksum_mismatch}",
                  kind=IntegrityError)

    def fail_json(self, what):
        # Damage, not syntax, is the news when a checksummed header does not parse.
        if self.checksum_ok is False:
            self.fail_header_checksum()
        self.fail(ErrorId.format_header_json, what)

    def parse(self):
        data_start = self.read_header_size() + 8
        self.check_header_checksum_if_present(data_start)
        try:
            text = bytes(self.data[8:data_start]).decode("utf-8")
        except UnicodeDecodeError as problem:
            self.fail_json(f"invalid JSON: invalid UTF-8 at byte {8 + problem.start}")
        if not text.startswith("{"):
            self.fail_json("expected the JSON header to start with '{', found " +
                           (f"'{text[:1]}'" if text else "an empty header"))
        try:
            root = strict_json.parse(text, MAX_HEADER_DEPTH, MAX_HEADER_ARRAY)
        except strict_json.JsonProblem as problem:
            self.fail_json(str(problem))

        header = Header(data_start, [])
        try:
            self.read_metadata(root, header)
            self.check_version(header)  # before the checksum: a newer version may checksum differently
        except FormatError as problem:
            if self.checksum_ok is False and problem.id != ErrorId.format_newer_version:
                self.fail_header_checksum()
            raise
        # Any one of ckpt's marks makes a ckpt file, so that damage to some of
        # them cannot pass it off as an unchecksummed foreign file.
        ckpt_file = self.checksum_ok is not None or any(key.startswith("ckpt.") for key in header.raw_metadata)
        if ckpt_file:
            if self.checksum_ok is None:
                self.fail(ErrorId.format_metadata, "expected the header to begin with " +
                          CHECKSUM_PREFIX.decode() + " (a ckpt file's header checksum), found another start")
            if not self.checksum_ok:
                self.fail_header_checksum()
            if header.format_version == 0:
                self.fail(ErrorId.format_metadata, "expected the __metadata__ key ckpt.format_version, found none")

        # In byte order of the names, as the C++ reader meets them.
        header.tensors = [self.read_entry(name, root[name]) for name in sorted(root) if name != METADATA_KEY]
        self.check_offsets(header)
        if ckpt_file:
            self.read_ckpt_metadata(header)
        return header

    def read_header_size(self):
        if self.file_size < 8:
            self.fail(ErrorId.format_truncated,
                      f"expected at least 8 bytes (the header size), found {self.file_size}")
        size = int.from_bytes(self.data[:8], "little")
        if size > MAX_HEADER_BYTES:
            self.fail(ErrorId.format_header_size,
                      f"expected a header size of at most {MAX_HEADER_BYTES} bytes, found {size}")
        if size > self.file_size - 8:
            self.fail(ErrorId.format_truncated, f"expected a header of {size} bytes after the 8-byte size, "
                      f"found a file of {self.file_size} bytes")
        return size

    def check_header_checksum_if_present(self, data_start):
        after = CHECKSUM_OFFSET + CHECKSUM_DIGITS
        if data_start < after + 1 or bytes(self.data[8:CHECKSUM_OFFSET]) != CHECKSUM_PREFIX:
            return
        stored = bytes(self.data[CHECKSUM_OFFSET:after]).decode("latin-1")
        computed = header_checksum(self.data, data_start, CHECKSUM_OFFSET)
        self.checksum_ok = from_hex(stored) == computed
        self.checksum_mismatch = f"expected xxh3 '{stored}', found {to_hex(computed)}"

    def read_metadata(self, root, header):
        if METADATA_KEY not in root:
            return
        metadata = root[METADATA_KEY]
        if not isinstance(metadata, dict):
            self.fail(ErrorId.format_metadata,
                      f"expected __metadata__ to be an object of strings, found {_json_type(metadata)}")
        for key, value in metadata.items():
            if not isinstance(value, str):
                self.fail(ErrorId.format_metadata, f"expected __metadata__ value of "
                          f"'{strict_json.excerpt(key)}' to be a string, found {_json_type(value)}")
        header.raw_metadata = metadata

    def check_version(self, header):
        text = header.raw_metadata.get("ckpt.format_version")
        if text is None:
            return
        if not (0 < len(text) <= 9 and text.isascii() and text.isdigit() and text[0] != "0"):
            self.fail(ErrorId.format_metadata, "expected ckpt.format_version to be a positive integer, "
                      f"found '{strict_json.excerpt(text)}'")
        header.format_version = int(text)
        if header.format_version > FORMAT_VERSION:
            self.fail(ErrorId.format_newer_version, f"written by a newer ckpt: format version {text}, this build "
                      f"reads versions up to {FORMAT_VERSION}; upgrade ckpt to read it")

    def fail_entry(self, name, entry, expected):
        self.fail(ErrorId.format_tensor_entry,
                  f"expected {expected}, found {strict_json.excerpt(strict_json.dump(entry))}", name)

    def read_entry(self, name, entry):
        problem = tensor_name_problem(name)
        if problem:
            self.fail(ErrorId.format_tensor_entry, problem, name.replace("\0", "\\0"))
        if not isinstance(entry, dict) or set(entry) != ENTRY_KEYS:
            self.fail_entry(name, entry, "an object with exactly the keys dtype, shape and data_offsets")
        dtype = entry["dtype"]
        if not isinstance(dtype, str) or dtype not in dtypes.NUMPY:
            self.fail_entry(name, entry, "a dtype among " + ", ".join(dtypes.NAMES))
        shape = strict_json.as_shape(entry["shape"])
        if shape is None:
            self.fail_entry(name, entry, "a shape of non-negative integers")
        offsets = entry["data_offsets"]
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(strict_json.is_u64, offsets))):
            self.fail_entry(name, entry, "data_offsets [BEGIN, END] of two non-negative integers")
        begin, end = offsets
        if begin > end:
            self.fail(ErrorId.format_offsets, f"expected data_offsets BEGIN <= END, found [{begin}, {end}]", name)
        size = byte_size(dtype, shape)
        if size is None:
            self.fail(ErrorId.format_byte_size, f"shape {shape_text(shape)} overflows 64 bits", name)
        if size != end - begin:
            self.fail(ErrorId.format_byte_size, f"expected {size} bytes for {dtype} {shape_text(shape)}, "
                      f"found data_offsets spanning {end - begin}", name)
        return TensorRecord(name, dtype, shape, begin, end)

    def check_offsets(self, header):
        """Sorted by offset, the tensors must tile the data buffer exactly."""
        header.tensors.sort(key=lambda record: (record.begin, record.end, record.name))
        data_size = self.file_size - header.data_start
        expected = 0
        previous = None
        for record in header.tensors:
            if record.begin != expected:
                where = f" where tensor '{strict_json.excerpt(previous.name)}' ends" if previous else " (the start)"
                how = " (overlapping)" if record.begin < expected else " (a gap)"
                self.fail(ErrorId.format_offsets,
                          f"expected data to begin at offset {expected}{where}, found {record.begin}{how}",
                          record.name)
            if record.end > data_size:
                self.fail(ErrorId.format_truncated, f"expected the data buffer to hold offset {record.end}, "
                          f"found {data_size} bytes of data (file truncated?)", record.name)
            expected = record.end
            previous = record
        if expected != data_size:
            self.fail(ErrorId.format_trailing_bytes, f"expected the file to end at byte "
                      f"{header.data_start + expected}, found {data_size - expected} trailing bytes")

    def metadata_json(self, header, key, max_depth):
        """The JSON held in the string __metadata__[key], or None when absent."""
        text = header.raw_metadata.get(key)
        if text is None:
            return None
        # As in C++: array lengths bounded so that what a reader builds stays
        # proportional to the file's size.
        try:
            return strict_json.parse(text, max_depth, max(MAX_HEADER_ARRAY, self.file_size // 32))
        except strict_json.JsonProblem as problem:
            self.fail(ErrorId.format_metadata, f"{key}: {problem}")

    def read_ckpt_metadata(self, header):
        user_metadata = self.metadata_json(header, "ckpt.metadata", MAX_METADATA_DEPTH)
        if user_metadata is not None:
            if not isinstance(user_metadata, dict):
                self.fail(ErrorId.format_metadata,
                          f"expected ckpt.metadata to hold a JSON object, found {_json_type(user_metadata)}")
            header.user_metadata = user_metadata
        infos = self.metadata_json(header, "ckpt.tensors", MAX_HEADER_DEPTH)
        if infos is None:
            self.fail(ErrorId.format_metadata, "expected the __metadata__ key ckpt.tensors, found none")
        if not isinstance(infos, dict) or len(infos) != len(header.tensors):
            self.fail(ErrorId.format_metadata, f"expected ckpt.tensors to describe the {len(header.tensors)} "
                      f"tensors of the header, found {strict_json.excerpt(strict_json.dump(infos))}")
        for record in header.tensors:
            if record.name not in infos:
                self.fail(ErrorId.format_metadata, "expected an entry in ckpt.tensors, found none", record.name)
            self.read_tensor_info(infos[record.name], record, header.format_version >= FIRST_BLOCK_VERSION)
        header.header_xxh3 = from_hex(header.raw_metadata["ckpt.header_xxh3"]) or 0
        self.read_chain_metadata(header)

    def read_chain_metadata(self, header):
        """ckpt.xxh128 and ckpt.chain (section 8). A chain in a file of an
        earlier version is refused: that version's readers ignore it."""
        hashes = self.metadata_json(header, chain_metadata.CONTENT_HASHES_KEY, MAX_HEADER_DEPTH)
        if hashes is not None:
            header.content_hashes = chain_metadata.parse_content_hashes(hashes, header.tensors, self.file)
        chain = self.metadata_json(header, chain_metadata.CHAIN_KEY, MAX_HEADER_DEPTH)
        deltas = sorted(record.name for record in header.tensors if record.codec == chain_metadata.XOR_DELTA_CODEC)
        if chain is None:
            if deltas:
                self.fail_missing_delta_base(deltas[0])
            return
        if header.format_version < chain_metadata.FIRST_CHAIN_VERSION:
            self.fail(ErrorId.format_metadata, f"expected no ckpt.chain in a file of format version "
                      f"{header.format_version} (references need version {chain_metadata.FIRST_CHAIN_VERSION}), "
                      "found one")
        header.chain = chain_metadata.ChainParser(self.file, tensor_name_problem, byte_size).parse(chain)
        for name in header.chain.deltas:
            if name not in deltas:
                self.fail(ErrorId.format_metadata, "expected a delta base in ckpt.chain only for a stored tensor "
                          "of codec xor-delta, found one for another", name)
        for name in deltas:
            if name not in header.chain.deltas:
                self.fail_missing_delta_base(name)
        stored = {record.name for record in header.tensors}
        for name in header.chain.references:
            if name in stored:
                self.fail(ErrorId.format_metadata, "expected a tensor either stored or referenced, found it both "
                          "in the header and in ckpt.chain", name)

    def fail_missing_delta_base(self, name):
        self.fail(ErrorId.format_metadata, "expected a delta base in ckpt.chain for this xor-delta tensor, found none",
                  name)

    def fail_info(self, record, info, expected):
        self.fail(ErrorId.format_metadata, f"expected {expected} in ckpt.tensors, "
                  f"found {strict_json.excerpt(strict_json.dump(info))}", record.name)

    def read_tensor_info(self, info, record, blocks):
        codec = info.get("codec") if isinstance(info, dict) else None
        if not isinstance(codec, str) or not codec or ":" in codec:
            self.fail_info(record, info, "an object with a codec name (without ':')")
        stored_xxh3 = _checksum_member(info, "xxh3")
        if stored_xxh3 is None:
            self.fail_info(record, info, "an xxh3 checksum of 16 lowercase hex digits")
        record.codec = codec
        record.stored_xxh3 = stored_xxh3
        record.checksummed = True
        version = " (format version 2)" if blocks else " (format version 1)"
        if not record.encoded:
            if len(info) != (4 if blocks else 2):
                keys = "codec, xxh3, block_bytes and blocks" if blocks else "codec and xxh3"
                self.fail_info(record, info, f"exactly the keys {keys} for a raw tensor{version}")
            if blocks:
                self.read_blocks(info, record)
            return
        if len(info) != (8 if blocks else 7):
            self.fail_info(record, info, "exactly the keys codec, xxh3, dtype, shape, chunk_bytes, chunks, raw_xxh3" +
                           (", blocks" if blocks else "") + version)
        if record.dtype != "U8" or len(record.shape) != 1:
            self.fail_info(record, info, "an encoded tensor stored as U8 [bytes]")
        dtype = info.get("dtype")
        shape = strict_json.as_shape(info.get("shape"))
        if not isinstance(dtype, str) or dtype not in dtypes.NUMPY or shape is None:
            self.fail_info(record, info, "a dtype among " + ", ".join(dtypes.NAMES) + " and a shape")
        raw_bytes = byte_size(dtype, shape)
        if raw_bytes is None:
            self.fail_info(record, info, "a shape whose byte size fits 64 bits")
        chunk_bytes = info.get("chunk_bytes")
        element = dtypes.size(dtype)
        if not strict_json.is_u64(chunk_bytes) or not 0 < chunk_bytes <= MAX_CHUNK_BYTES or chunk_bytes % element:
            self.fail_info(record, info, f"chunk_bytes, a positive multiple of the element size {element} "
                           "of at most 2^30")
        chunks = strict_json.as_shape(info.get("chunks"))
        expected_chunks = -(-raw_bytes // chunk_bytes)
        if chunks is None or len(chunks) != expected_chunks:
            self.fail_info(record, info, f"{expected_chunks} chunk sizes for {raw_bytes} bytes in chunks of "
                           f"{chunk_bytes}")
        if sum(chunks) != record.stored_bytes:
            self.fail_info(record, info, f"chunk sizes adding up to the {record.stored_bytes} stored bytes")
        for index, stored in enumerate(chunks):
            decoded = chunk_decoded_bytes(raw_bytes, chunk_bytes, index)
            if -(-decoded // MAX_EXPANSION) > stored:
                self.fail_info(record, info, f"chunks of at least 1/65536 of their {decoded} decoded bytes")
        raw_xxh3 = _checksum_member(info, "raw_xxh3")
        if raw_xxh3 is None:
            self.fail_info(record, info, "a raw_xxh3 checksum of 16 lowercase hex digits")
        record.dtype = dtype
        record.shape = shape
        record.chunk_bytes = chunk_bytes
        record.chunk_sizes = chunks
        record.raw_xxh3 = raw_xxh3
        if blocks:
            self.read_blocks(info, record)

    def read_blocks(self, info, record):
        """``block_bytes`` (raw tensors) and ``blocks`` of a format version 2 entry."""
        if record.encoded:
            starts = [0]
            for size in record.chunk_sizes:
                starts.append(starts[-1] + size)
            what = "one per chunk"
        else:
            block_bytes = info.get("block_bytes")
            if not strict_json.is_u64(block_bytes) or not 0 < block_bytes <= MAX_BLOCK_BYTES:
                self.fail_info(record, info, f"block_bytes, an integer from 1 to {MAX_BLOCK_BYTES},")
            starts = list(range(0, record.stored_bytes, block_bytes)) + [record.stored_bytes]
            if record.stored_bytes == 0:
                starts = [0]
            what = f"one per {block_bytes} stored bytes"
        expected = len(starts) - 1
        expected_text = (f"expected {expected} block checksums ({what}, each of 16 lowercase hex digits), found ")
        blocks = info.get("blocks")
        if not isinstance(blocks, list):
            self.fail(ErrorId.format_metadata, expected_text + ("no blocks member" if blocks is None else
                      strict_json.excerpt(strict_json.dump(blocks))), record.name)
        if len(blocks) != expected:
            self.fail(ErrorId.format_metadata, expected_text + str(len(blocks)), record.name)
        values = []
        for index, block in enumerate(blocks):
            value = from_hex(block) if isinstance(block, str) else None
            if value is None:
                self.fail(ErrorId.format_metadata, expected_text +
                          f"block {index} {strict_json.excerpt(strict_json.dump(block))}", record.name)
            values.append(value)
        record.block_checksummed = True
        record.block_xxh3 = tuple(values)
        record.block_starts = tuple(starts)


def _checksum_member(info, key):
    value = info.get(key)
    return from_hex(value) if isinstance(value, str) else None


def _json_type(value):
    """nlohmann's type_name() of a parsed value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def parse_header(file, data, file_size):
    """Validates the header of ``data`` (the whole file: bytes or a mapping of
    ``file_size`` bytes) and returns a Header; raises FormatError or
    IntegrityError with the ids of docs/format.md's section 7."""
    return _Parser(file, data, file_size).parse()
