"""Opening a checkpoint (or any safetensors file): ``ckpt.open`` and ``ckpt.load``.

Opening maps the file read-only and validates the header only, so it is fast
at any size. A raw tensor is a read-only numpy view of the mapping (no copy);
an encoded one is decoded into a new array. Each tensor's checksum is verified
on its first access, as the C++ reader does: in a format version 2 file, the
checksum of each block of its stored bytes (docs/format.md, section 4).

An incremental checkpoint (format version 3, section 8) references tensors
stored in other files of its chain: they are read from those files, opened on
first use and checked to be the files and tensors the reference recorded
(header checksum, name, dtype, shape, content hash), and verified like the
file's own. An xor-delta tensor is XORed with its base, read the same way.
"""
import mmap
import os
import stat
import threading
from typing import NamedTuple

import numpy as np

from . import codecs
from . import dtypes
from .chain import XOR_DELTA_CODEC, content_hash
from .checksum import to_hex, xxh3
from .errors import ErrorId, IntegrityError, IoError, MismatchError
from .format import byte_size, parse_header, shape_text

# Whole reads of at least this many bytes are announced to the kernel, so a
# cold file streams in at the disk's speed instead of a few pages per fault.
_READ_AHEAD_BYTES = 1 << 20


class TensorInfo(NamedTuple):
    name: str
    dtype: str  # the logical dtype, e.g. "BF16" (whose values come back as uint16 bits)
    shape: tuple
    codec: str  # "raw" when stored as is
    stored_bytes: int  # bytes in the file
    file_offset: int  # where the stored bytes start in the file
    checksummed: bool  # False for safetensors files not written by ckpt
    # A referenced tensor of an incremental checkpoint: the file storing its
    # bytes, relative to this file's directory (codec "reference", stored_bytes
    # and file_offset 0). Empty for a tensor this file stores.
    stored_in: str = ""

    @property
    def nbytes(self):
        return byte_size(self.dtype, self.shape)


def _map(path):
    """(mapping or b"" for an empty file, size) of a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as problem:
        raise IoError(ErrorId.io_open, path, "", f"open failed: {problem.strerror}") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise IoError(ErrorId.io_open, path, "", "expected a regular file, found another kind of file")
        if status.st_size == 0:
            return b"", 0
        try:
            return mmap.mmap(fd, status.st_size, access=mmap.ACCESS_READ), status.st_size
        except (OSError, ValueError) as problem:
            raise IoError(ErrorId.io_map, path, "", f"mmap failed: {problem}") from None
    finally:
        os.close(fd)  # the mapping stays valid without the descriptor


class File:
    """An open checkpoint. ``verify_checksums`` checks each tensor on its first
    access; ``threads`` decode chunks of compressed tensors (default: all cores)."""

    def __init__(self, path, *, verify_checksums=True, threads=None):
        self.path = os.fspath(path)
        self._verify = verify_checksums
        self._threads = threads or os.cpu_count() or 1
        self._data, self.file_size = _map(self.path)
        try:
            header = parse_header(self.path, self._data, self.file_size)
        except Exception:
            self.close()  # a refused file is not left mapped until the collector comes by
            raise
        self._data_start = header.data_start
        self.format_version = header.format_version
        self.metadata = header.user_metadata  # what the writer was given ({} when none)
        self.raw_metadata = header.raw_metadata  # __metadata__ verbatim
        self._records = {record.name: record for record in header.tensors}
        self._verified = set()
        self._header_xxh3 = header.header_xxh3
        self._content_hashes = header.content_hashes
        self._chain = header.chain
        self._references = header.chain.references if header.chain else {}
        self._sources = {}  # source index -> File, or the error opening it raised
        self._sources_lock = threading.Lock()
        # In file order, then the referenced tensors by name.
        self.tensors = [TensorInfo(r.name, r.dtype, r.shape, r.codec, r.stored_bytes, header.data_start + r.begin,
                                   r.checksummed) for r in header.tensors]
        self.tensors += [TensorInfo(r.name, r.dtype, r.shape, "reference", 0, 0, True,
                                    header.chain.sources[r.source].file) for r in self._references.values()]
        self._infos = {info.name: info for info in self.tensors}

    @property
    def written_by_ckpt(self):
        return self.format_version != 0

    def names(self):
        return [info.name for info in self.tensors]

    @property
    def parent_file(self):
        """The checkpoint an incremental one was saved against, relative to this
        file's directory; "" for a full checkpoint."""
        return self._chain.parent.file if self._chain else ""

    @property
    def chain_depth(self):
        """Saves since the last full checkpoint (0 for a full one)."""
        return self._chain.depth if self._chain else 0

    @property
    def source_files(self):
        """The files an incremental checkpoint's referenced tensors are read from."""
        return [source.file for source in self._chain.sources] if self._chain else []

    def __contains__(self, name):
        return name in self._infos

    def __iter__(self):
        return iter(self.names())

    def __len__(self):
        return len(self.tensors)

    def __getitem__(self, name):
        return self.tensor(name)

    def info(self, name):
        if name not in self._references:
            self._record(name)
        return self._infos[name]

    def tensor(self, name, *, as_float32=False):
        """The tensor as a numpy array of its shape. BF16 and F8 values come as
        their bits (uint16, uint8) unless ``as_float32``, which converts them
        and F16 to float32. A raw tensor is a read-only view of the file's
        mapping; BOOL tensors excepted, which are copied so that any byte
        other than 0 reads True, as the C++ library loads them."""
        reference = self._references.get(name)
        if reference is not None:
            return self._source_of(reference).tensor(reference.tensor, as_float32=as_float32)
        record = self._record(name)
        array = self._bytes(record).view(dtypes.NUMPY[record.dtype]).reshape(record.shape)
        if record.dtype == "BOOL":
            array = array.view(np.uint8) != 0
        if as_float32:
            array = dtypes.to_float32(array, record.dtype)
        return array

    def verify(self):
        """Checks every checksum (even with verify_checksums off): every block, each
        tensor's whole stored and decoded checksums; decodes every encoded tensor.
        In an incremental checkpoint, the same for each referenced tensor in the
        file storing it, and its content hash: the whole chain it needs.
        Raises IntegrityError or CodecError naming the tensor, IoError naming a
        missing file of the chain."""
        for record in self._records.values():
            self._verify_record(record)
        for reference in self._references.values():
            source = self._source_of(reference)
            record = source._record(reference.tensor)
            source._verify_record(record)
            found = content_hash(source._bytes(record))
            if found != reference.xxh128:
                raise IntegrityError(ErrorId.integrity_reference, source.path, reference.tensor,
                                     f"expected the content '{self.path}' references as tensor '{reference.name}', "
                                     f"xxh128 {reference.xxh128}, found {found}")

    def close(self):
        """Unmaps the file, and the files of its chain it opened, unless arrays
        still view them (they keep them mapped)."""
        for source in getattr(self, "_sources", {}).values():
            if isinstance(source, File):
                source.close()
        if isinstance(self._data, mmap.mmap):
            try:
                self._data.close()
            except BufferError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()

    def _verify_record(self, record):
        stored = self._stored(record, True)
        if record.block_checksummed:  # reads check the blocks; the whole checksum is verify()'s
            self._check_whole(record, stored)
        if record.encoded:
            self._decoded(record, True)

    def _bytes(self, record):
        """The decoded bytes of a tensor this file stores, as a flat uint8 array
        (a view of the mapping for a raw tensor), verified when the File verifies."""
        if record.encoded:
            return self._decoded(record, self._verify)
        if not record.stored_bytes:
            return np.empty(0, np.uint8)
        return np.frombuffer(self._stored(record, self._verify), np.uint8)

    def _named_bytes(self, name):
        """The decoded bytes of a tensor this file stores or references."""
        reference = self._references.get(name)
        if reference is not None:
            source = self._source_of(reference)
            return source._bytes(source._record(reference.tensor))
        return self._bytes(self._record(name))

    def _content_hash_of(self, name):
        """The content hash this file records for a tensor it stores or references, or None."""
        reference = self._references.get(name)
        return reference.xxh128 if reference is not None else self._content_hashes.get(name)

    def _source_of(self, reference):
        """The open file storing a referenced tensor, checked to be the file and
        tensor the reference means: name, dtype, shape and content hash."""
        source = self._open_source(reference.source)
        record = source._records.get(reference.tensor)
        if (record is None or source._content_hashes.get(reference.tensor) != reference.xxh128
                or record.dtype != reference.dtype or record.shape != reference.shape):
            raise IntegrityError(ErrorId.integrity_reference, source.path, reference.tensor,
                                 f"expected the tensor '{self.path}' references as '{reference.name}', "
                                 f"{reference.dtype} {shape_text(reference.shape)} of xxh128 {reference.xxh128}, "
                                 "found no stored tensor of that name, dtype, shape and content")
        return source

    def _open_source(self, number):
        """A file of the chain, checked to be the one this file was saved with
        (its header checksum). Opened once; a failure to open is raised again
        on every read that needs the file."""
        with self._sources_lock:
            if number not in self._sources:
                expected = self._chain.sources[number]
                path = os.path.join(os.path.dirname(self.path), expected.file)
                try:
                    source = File(path, verify_checksums=self._verify, threads=self._threads)
                    if source._header_xxh3 != expected.header_xxh3:
                        source.close()
                        raise IntegrityError(ErrorId.integrity_reference, path, "",
                                             f"expected the file '{self.path}' references, with header xxh3 "
                                             f"{to_hex(expected.header_xxh3)}, found header xxh3 "
                                             f"{to_hex(source._header_xxh3)} (the file was replaced or rewritten "
                                             "since)")
                    self._sources[number] = source
                except Exception as problem:  # noqa: BLE001 - kept and raised again, as the C++ reader does
                    self._sources[number] = problem
            found = self._sources[number]
        if isinstance(found, Exception):
            raise found
        return found

    def _apply_delta_base(self, record, decoded):
        """XORs an xor-delta tensor's decoded XOR with its base, read (verified)
        from the file of the chain holding it (section 8)."""
        delta = self._chain.deltas[record.name]  # the header parser saw to it that every one has its base
        source = self._open_source(delta.source)
        base = source._infos.get(delta.tensor)
        if (base is None or source._content_hash_of(delta.tensor) != delta.xxh128
                or base.dtype != record.dtype or base.shape != record.shape):
            raise IntegrityError(ErrorId.integrity_reference, source.path, delta.tensor,
                                 f"expected the base of xor-delta tensor '{record.name}' of '{self.path}', "
                                 f"{record.dtype} {shape_text(record.shape)} of xxh128 {delta.xxh128}, "
                                 "found no tensor of that name, dtype, shape and content")
        np.bitwise_xor(decoded, source._named_bytes(delta.tensor), out=decoded)

    def _record(self, name):
        record = self._records.get(name)
        if record is None:
            raise MismatchError(ErrorId.mismatch_missing_tensor, self.path, name,
                                f"expected a tensor of this name, found none among the {len(self._records)} "
                                "tensors of the file")
        return record

    def _stored(self, record, verify):
        """A memoryview of the tensor's stored bytes, checksum-verified once per File when ``verify``."""
        begin = self._data_start + record.begin
        if record.stored_bytes >= _READ_AHEAD_BYTES:
            page = begin - begin % mmap.PAGESIZE
            self._data.madvise(mmap.MADV_WILLNEED, page, begin + record.stored_bytes - page)
        stored = memoryview(self._data)[begin:begin + record.stored_bytes]
        if verify and record.checksummed and record.name not in self._verified:
            if record.block_checksummed:
                self._check_blocks(record, stored)
            else:
                self._check_whole(record, stored)
            self._verified.add(record.name)
        return stored

    def _check_whole(self, record, stored):
        found = xxh3(stored)
        if found != record.stored_xxh3:
            raise IntegrityError(ErrorId.integrity_tensor_checksum, self.path, record.name,
                                 f"checksum mismatch: expected xxh3 {to_hex(record.stored_xxh3)} of the "
                                 f"{record.stored_bytes} stored bytes, found {to_hex(found)}")

    def _check_blocks(self, record, stored):
        """Each block's checksum, as the C++ reader words a mismatch. The
        package reads whole tensors, so it checks every block of one."""
        count = len(record.block_xxh3)
        for index, expected in enumerate(record.block_xxh3):
            begin, end = record.block_span(index)
            found = xxh3(stored[begin:end])
            if found != expected:
                raise IntegrityError(ErrorId.integrity_tensor_checksum, self.path, record.name,
                                     f"checksum mismatch in block {index} of {count} (stored bytes [{begin}, "
                                     f"{end})): expected xxh3 {to_hex(expected)}, found {to_hex(found)}")

    def _decoded(self, record, verify):
        decoded = codecs.decode(record, self._stored(record, verify), self.path, self._threads)
        if record.codec == XOR_DELTA_CODEC:
            self._apply_delta_base(record, decoded)
        if verify:
            found = xxh3(decoded)
            if found != record.raw_xxh3:
                raise IntegrityError(ErrorId.integrity_tensor_checksum, self.path, record.name,
                                     f"checksum mismatch after decoding with codec '{record.codec}': expected "
                                     f"xxh3 {to_hex(record.raw_xxh3)} of the {decoded.size} decoded bytes, "
                                     f"found {to_hex(found)}")
        return decoded


def open(path, *, verify_checksums=True, threads=None):  # noqa: A001 - the package's verb, as in ckpt.open
    """Opens a checkpoint lazily: the header now, each tensor when asked for.
    A directory a distributed save wrote is one checkpoint (ckpt.distributed.Directory)."""
    from . import distributed  # which imports this module
    if distributed.is_checkpoint_directory(path):
        return distributed.Directory(path, verify_checksums=verify_checksums, threads=threads)
    return File(path, verify_checksums=verify_checksums, threads=threads)


def load(path, *, as_float32=False, verify_checksums=True, threads=None):
    """Every tensor of a checkpoint as {name: numpy array}, checksums verified.
    Raw tensors stay views of the file's mapping; see File.tensor."""
    file = open(path, verify_checksums=verify_checksums, threads=threads)
    return {name: file.tensor(name, as_float32=as_float32) for name in file.names()}
