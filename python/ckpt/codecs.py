"""Decoding encoded tensors: docs/format.md, section 5, and docs/codecs.md.

An encoded tensor's stored bytes are its chunks' encodings back to back; each
chunk is one zstd frame that states its content size, of the chunk's bytes
(``zstd``) or of their byte planes (``shuffle+zstd``). Decoding is as strict as
the C++ reader's: a frame must state and decode to exactly its chunk's size,
with no byte after it. Chunks decode on several threads: zstandard and numpy's
copies release the GIL.
"""
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import dtypes
from .errors import CodecError, ErrorId
from .format import byte_size, chunk_decoded_bytes

try:
    import zstandard
except ImportError:  # only compressed tensors need it
    zstandard = None

CODECS = ("zstd", "shuffle+zstd", "xor-delta")
# An xor-delta tensor's chunks are shuffle+zstd frames of its bytes XOR its
# base's (docs/format.md, section 8); the reader applies the base.
_FRAMES_OF = {"xor-delta": "shuffle+zstd"}


class _Problem(Exception):
    """Why one chunk did not decode; becomes a CodecError naming file, tensor and chunk."""


_local = threading.local()


def _decompressor():
    # A decompression context is not shareable between threads; one per thread is reused.
    if not hasattr(_local, "decompressor"):
        _local.decompressor = zstandard.ZstdDecompressor()
    return _local.decompressor


def _zstd_frame(frame, expected):
    """The decoded bytes of one zstd frame that must hold exactly ``expected`` bytes."""
    try:
        content_size = zstandard.frame_content_size(frame)
    except zstandard.ZstdError:
        raise _Problem(f"zstd: not a zstd frame ({len(frame)} bytes, bad magic or truncated header)") from None
    if content_size != expected:
        # ckpt's writer always records the size (docs/format.md, section 5), and
        # trusting it bounds what decoding may produce.
        found = "no content size" if content_size == zstandard.CONTENTSIZE_UNKNOWN else f"{content_size} bytes"
        raise _Problem(f"zstd: frame holds {found}, expected {expected} bytes")
    stream = _decompressor().decompressobj()
    try:
        decoded = stream.decompress(frame)
    except zstandard.ZstdError as problem:
        raise _Problem(f"zstd: corrupt frame: {problem}") from None
    if not stream.eof:
        raise _Problem(f"zstd: truncated frame: {len(frame)} bytes decoded to {len(decoded)} of {expected} bytes")
    if stream.unused_data:
        raise _Problem(f"zstd: {len(stream.unused_data)} unexpected bytes after the "
                       f"{len(frame) - len(stream.unused_data)}-byte frame")
    if len(decoded) != expected:
        raise _Problem(f"zstd: frame decoded to {len(decoded)} bytes, expected {expected}")
    return decoded


def _unshuffle_into(planes, width, out):
    """Byte k of element e sits at k * n + e in ``planes``; ``out`` gets the elements."""
    elements = out.reshape(-1, width)
    count = elements.shape[0]
    # One strided copy per plane beats transposing the (width, n) matrix by 4x.
    for k in range(width):
        elements[:, k] = planes[k * count:(k + 1) * count]


def check_known(codec, file, tensor):
    """Raises CodecError 401 when ``codec`` cannot be decoded here."""
    if codec not in CODECS:
        raise CodecError(ErrorId.codec_unknown, file, tensor,
                         f"unknown codec '{codec}'; this reader decodes raw, " + ", ".join(CODECS))
    if zstandard is None:
        raise CodecError(ErrorId.codec_unknown, file, tensor, f"codec '{codec}' needs the zstandard module "
                         "(Debian: apt-get install python3-zstandard; pip: ckpt[zstd])")


def decode(record, stored, file, threads):
    """The decoded bytes of an encoded tensor as a new uint8 array; ``stored``
    is a memoryview of its stored bytes (already checksummed when asked).
    An xor-delta tensor comes back as the XOR, before its base is applied."""
    check_known(record.codec, file, record.name)
    raw_bytes = byte_size(record.dtype, record.shape)
    frames = _FRAMES_OF.get(record.codec, record.codec)
    width = dtypes.size(record.dtype) if frames == "shuffle+zstd" else 1
    out = np.empty(raw_bytes, np.uint8)
    starts = [0, *itertools.accumulate(record.chunk_sizes)]
    count = len(record.chunk_sizes)

    def chunk(index):
        begin = index * record.chunk_bytes
        expected = chunk_decoded_bytes(raw_bytes, record.chunk_bytes, index)
        try:
            decoded = _zstd_frame(stored[starts[index]:starts[index + 1]], expected)
        except _Problem as problem:
            raise CodecError(ErrorId.codec_decode, file, record.name,
                             f"codec '{record.codec}', chunk {index} of {count}: {problem}") from None
        target = out[begin:begin + expected]
        if width > 1:
            _unshuffle_into(np.frombuffer(decoded, np.uint8), width, target)
        else:
            target[:] = np.frombuffer(decoded, np.uint8)

    if threads > 1 and count > 1:
        with ThreadPoolExecutor(min(threads, count)) as pool:
            list(pool.map(chunk, range(count)))  # list(): re-raises a chunk's error here
    else:
        for index in range(count):
            chunk(index)
    return out
