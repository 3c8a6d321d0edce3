"""Distributed checkpoint directories (docs/distributed.md): ``ckpt.open(dir)``.

A directory holds one ckpt file per writing rank and ``model.safetensors.index.json``,
whose appearance is the commit. The index lists, per global tensor, the pieces
(boxes or flat ranges) it was saved in, each stored whole as one tensor of one
file. A ``Directory`` reads the index when opened and each tensor on access,
opening only the files that hold its pieces; each file is checked to be the one
the index committed (its size and header checksum) before any of its bytes are
used, and each piece's checksum when it is read, with the C++ library's errors.
"""
import os
import re

import numpy as np

from . import dtypes
from . import reader
from . import strict_json
from .checksum import from_hex, to_hex
from .errors import ArgumentError, ErrorId, FormatError, IntegrityError, IoError, MismatchError, StateError
from .format import MAX_HEADER_ARRAY, MAX_METADATA_DEPTH, _json_type, byte_size, shape_text, tensor_name_problem

INDEX_FILE = "model.safetensors.index.json"
INDEX_FORMAT_VERSION = 2  # the newest index layout this reader knows (detail/distributed/index.hpp)
FIRST_CHAIN_INDEX_VERSION = 2  # incremental checkpoints: referenced pieces and ckpt.chain
REFERENCE_CODEC = "reference"  # a piece its file references (its bytes are in an earlier checkpoint's file)
HEADER_CHECKSUM_KEY = "ckpt.header_xxh3"
# The most runs of consecutive elements the pieces of one tensor may form, as
# geometry.hpp's max_tensor_runs: the tiling check holds each in memory.
MAX_TENSOR_RUNS = 1 << 22
_U64_MAX = (1 << 64) - 1


_RANK_FILE = re.compile(r"model-[0-9]{5,}-of-[0-9]{5,}\.safetensors")
TEMP_MARKER = ".tmp-"


def _is_checkpoint_file_name(name):
    """The index, a rank file, or the temp file of either (detail/distributed/file_names.hpp)."""
    marker = name.rfind(TEMP_MARKER)
    if name.startswith(".") and 1 < marker and marker + len(TEMP_MARKER) < len(name):
        name = name[1:marker]
    return name == INDEX_FILE or _RANK_FILE.fullmatch(name) is not None


def is_checkpoint_directory(path):
    """True for a directory a distributed save wrote, committed or not (as the
    C++ tool decides): ``ckpt.open`` reads it as one, and refuses it when
    uncommitted; any other directory is not a checkpoint."""
    try:
        return any(map(_is_checkpoint_file_name, os.listdir(path)))
    except OSError:  # not a directory, or unreadable: the file reader says what is wrong
        return False


class Piece:
    """One piece of a global tensor: a box (``offsets``, ``extents``) or a
    flat range (``flat`` = (begin, end)), stored as ``name`` in ``file``."""

    def __init__(self, file, name, codec, xxh3, offsets=None, extents=None, flat=None):
        self.file, self.name, self.codec, self.xxh3 = file, name, codec, xxh3
        self.xxh128 = None  # a referenced piece's content hash (codec "reference"; xxh3 is then None)
        self.offsets, self.extents, self.flat = offsets, extents, flat

    def element_count(self):
        if self.flat is not None:
            return self.flat[1] - self.flat[0]
        return int(np.prod(self.extents, dtype=object))

    def stored_shape(self, shape):
        """The global shape when the piece is the whole tensor, else the box's
        extents or the flat range's length (docs/distributed.md, section 3)."""
        total = int(np.prod(shape, dtype=object))
        if self.flat is not None:
            return tuple(shape) if self.flat == (0, total) else (self.flat[1] - self.flat[0],)
        return tuple(shape) if tuple(self.extents) == tuple(shape) else tuple(self.extents)

    def text(self):
        if self.flat is not None:
            return f"flat elements [{self.flat[0]}, {self.flat[1]})"
        return f"offsets {shape_text(self.offsets)}, extents {shape_text(self.extents)}"

    def _split_dimension(self, shape):
        """The dimension a box's runs are cut at: those after it are taken whole."""
        split = len(shape) - 1
        while split > 0 and self.offsets[split] == 0 and self.extents[split] == shape[split]:
            split -= 1
        return split

    def run_count(self, shape):
        """How many runs ``runs`` returns, counted without building them."""
        if self.element_count() == 0:
            return 0
        if self.flat is not None or not shape:
            return 1
        return int(np.prod(self.extents[:self._split_dimension(shape)], dtype=object))

    def runs(self, shape):
        """(begins, ends) of the global row-major runs the piece covers, in
        increasing order, as numpy int64 arrays (section 4's "Reading a tensor")."""
        if self.element_count() == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        if self.flat is not None:
            return np.array([self.flat[0]], np.int64), np.array([self.flat[1]], np.int64)
        if not shape:  # a scalar
            return np.array([0], np.int64), np.array([1], np.int64)
        strides = [1] * len(shape)
        for d in range(len(shape) - 1, 0, -1):
            strides[d - 1] = strides[d] * shape[d]
        split = self._split_dimension(shape)  # dimensions after it are taken whole: each run spans them
        begins = np.array([self.offsets[split] * strides[split]], np.int64)
        for d in range(split - 1, -1, -1):  # the outer dimensions, the last one fastest
            starts = (self.offsets[d] + np.arange(self.extents[d], dtype=np.int64)) * strides[d]
            begins = (starts[:, None] + begins[None, :]).reshape(-1)
        return begins, begins + self.extents[split] * strides[split]


class Chain:
    """An incremental checkpoint's ``ckpt.chain``: the ``parent`` directory it
    was saved against and the ``sources`` its files read referenced bytes
    from (relative to its directory), its ``depth`` and ``chain_bytes``."""

    def __init__(self, parent, depth, chain_bytes, sources):
        self.parent, self.depth, self.chain_bytes, self.sources = parent, depth, chain_bytes, sources


class Tensor:
    """A global tensor of the index: dtype, shape and its pieces in index order."""

    def __init__(self, name, dtype, shape, pieces):
        self.name, self.dtype, self.shape, self.pieces = name, dtype, shape, pieces


class Index:
    """model.safetensors.index.json, read as strictly as the C++ IndexParser reads it."""

    def __init__(self, path, text):
        self.path = path
        try:
            # The index's own three levels around the user's metadata, as in C++.
            root = strict_json.parse(text, MAX_METADATA_DEPTH + 4, max(MAX_HEADER_ARRAY, len(text) // 4))
        except strict_json.JsonProblem as problem:
            raise FormatError(ErrorId.format_header_json, path, "", f"expected the index to be JSON: {problem}") \
                from None
        if not isinstance(root, dict):
            self._fail("", f"expected a JSON object, found {_json_type(root)}")
        metadata = self._object(root, "metadata")
        if metadata.get("ckpt.format_version") is None:
            self._fail("", "expected metadata.ckpt.format_version, found none: not written by ckpt (a Hugging "
                       "Face index alone does not say how tensors are split)")
        self.format_version = self._number(metadata, "ckpt.format_version")
        if self.format_version == 0 or self.format_version > INDEX_FORMAT_VERSION:
            raise FormatError(ErrorId.format_newer_version, path, "",
                              f"expected an index of format version {INDEX_FORMAT_VERSION} or older, found version "
                              f"{self.format_version}: written by a newer ckpt; upgrade ckpt to read it")
        self.step = self._number(metadata, "ckpt.step")
        self.world_size = self._number(metadata, "ckpt.world_size")
        self.total_size = self._number(metadata, "total_size")
        self.files = {}  # name: (bytes, header_xxh3)
        for name, entry in self._object(metadata, "ckpt.files").items():
            if name in ("", ".", "..") or "/" in name or "\0" in name:
                self._fail("", f"expected file names without '/', found '{name}'")
            if not isinstance(entry, dict):
                self._fail("", f"file '{name}': expected an object")
            self.files[name] = (self._number(entry, "bytes"), self._checksum(entry, "header_xxh3"))
        weight_map = {}
        for name, file in self._object(root, "weight_map").items():
            if not isinstance(file, str):
                self._fail(name, "expected weight_map values to be file names")
            weight_map[name] = file
        # By name, as the C++ index's std::map holds them.
        self.tensors = {name: self._tensor(name, entry, weight_map)
                        for name, entry in sorted(self._object(metadata, "ckpt.tensors").items())}
        if weight_map:
            self._fail(min(weight_map), "expected every weight_map entry to be a piece of ckpt.tensors, found one "
                       "that is not")
        user = metadata.get("ckpt.metadata")
        if user is not None and not isinstance(user, dict):
            self._fail("", "expected ckpt.metadata to be a JSON object")
        self.metadata = user if user is not None else {}
        chain = metadata.get("ckpt.chain")
        self.chain = None if chain is None else self._chain(chain)

    def _chain(self, chain):
        if (self.format_version < FIRST_CHAIN_INDEX_VERSION or not isinstance(chain, dict)
                or set(chain) != {"parent", "depth", "chain_bytes", "sources"}):
            self._fail("", f"expected ckpt.chain, in an index of version {FIRST_CHAIN_INDEX_VERSION}, to be an object "
                       f"of exactly parent, depth, chain_bytes and sources, found {chain!r:.200} in version "
                       f"{self.format_version}")
        names = [chain["parent"]] + (chain["sources"] if isinstance(chain["sources"], list) else [None])
        if any(not isinstance(name, str) or not name or name.startswith("/") or "\0" in name for name in names):
            self._fail("", f"expected ckpt.chain to name directories by relative names, found {chain!r:.200}")
        depth, chain_bytes = self._number(chain, "depth"), self._number(chain, "chain_bytes")
        if depth == 0:
            self._fail("", f"expected ckpt.chain depth >= 1 and sources, an array, found {chain!r:.200}")
        return Chain(chain["parent"], depth, chain_bytes, list(chain["sources"]))

    def _fail(self, tensor, what):
        raise FormatError(ErrorId.format_metadata, self.path, tensor, what)

    def _object(self, value, key, tensor=""):
        member = value.get(key)
        if not isinstance(member, dict):
            self._fail(tensor, f"expected '{key}' to be a JSON object")
        return member

    def _number(self, value, key, tensor=""):
        member = value.get(key)
        if not strict_json.is_u64(member):
            self._fail(tensor, f"expected '{key}' to be a non-negative integer")
        return member

    def _text(self, value, key, tensor=""):
        member = value.get(key)
        if not isinstance(member, str):
            self._fail(tensor, f"expected '{key}' to be a string")
        return member

    def _checksum(self, value, key, tensor=""):
        checksum = from_hex(self._text(value, key, tensor))
        if checksum is None:
            self._fail(tensor, f"expected '{key}' to be 16 lowercase hexadecimal digits")
        return checksum

    def _shape(self, value, key, tensor):
        shape = strict_json.as_shape(value.get(key))
        if shape is None:
            self._fail(tensor, f"expected '{key}' to be an array of non-negative integers")
        return tuple(shape)

    def _tensor(self, name, entry, weight_map):
        problem = tensor_name_problem(name)
        if problem:
            self._fail(name.replace("\0", "\\0"), problem)
        if not isinstance(entry, dict):
            self._fail(name, "expected an object")
        dtype = self._text(entry, "dtype", name)
        if dtype not in dtypes.NUMPY:
            self._fail(name, "expected dtype to be one of " + ", ".join(dtypes.NAMES))
        shape = self._shape(entry, "shape", name)
        items = entry.get("pieces")
        if not isinstance(items, list):
            self._fail(name, "expected 'pieces' to be an array")
        pieces = []
        for item in items:
            if not isinstance(item, dict):
                self._fail(name, "expected each piece to be an object")
            if "flat" in item:
                bounds = self._shape(item, "flat", name)
                if len(bounds) != 2 or bounds[0] > bounds[1]:
                    self._fail(name, "expected 'flat' to be [BEGIN, END] with BEGIN <= END")
                geometry = {"flat": bounds}
            else:
                geometry = {"offsets": self._shape(item, "offsets", name),
                            "extents": self._shape(item, "extents", name)}
            file = self._text(item, "file", name)
            stored_name = self._text(item, "name", name)
            piece = Piece(file, stored_name, None, None, **geometry)
            problem = _geometry_problem(piece, shape)
            if problem:
                self._fail(name, problem)
            if file not in self.files:
                self._fail(name, f"a piece names file '{file}', which ckpt.files lacks")
            problem = tensor_name_problem(stored_name)
            if problem:
                self._fail(name, f"a piece's name: {problem}")
            piece.codec = self._text(item, "codec", name)
            if piece.codec == REFERENCE_CODEC:
                # Not in weight_map: the file holds a reference, not the bytes.
                piece.xxh128 = self._text(item, "xxh128", name)
                if re.fullmatch("[0-9a-f]{32}", piece.xxh128) is None:
                    self._fail(name, "expected a referenced piece's 'xxh128' to be 32 lowercase hexadecimal digits")
                pieces.append(piece)
                continue
            if weight_map.get(stored_name) != file:
                self._fail(name, f"expected weight_map to map '{stored_name}' to '{file}'")
            del weight_map[stored_name]
            piece.xxh3 = self._checksum(item, "xxh3", name)
            if "raw_xxh3" in item:
                self._checksum(item, "raw_xxh3", name)  # the file's own record is what decoding checks
            pieces.append(piece)
        # Counted before the tiling check builds them: a few bytes of index can declare 10^12 runs.
        problem = _run_count_problem(pieces, shape)
        if problem:
            self._fail(name, problem)
        problem = _tiling_problem(pieces, shape)
        if problem:
            self._fail(name, f"the pieces do not tile {shape_text(shape)}: {problem}")
        return Tensor(name, dtype, shape, pieces)


def _geometry_problem(piece, shape):
    """What makes ``piece`` unusable for a tensor of ``shape``, or None (geometry.hpp's geometry_problem)."""
    total = byte_size("U8", shape)
    if total is None:
        return f"the global shape {shape_text(shape)} overflows 64 bits"
    if piece.flat is not None:
        begin, end = piece.flat
        if end > total:
            return (f"expected a flat range within the {total} elements of {shape_text(shape)}, found "
                    f"[{begin}, {begin} + {end - begin})")
        return None
    if len(piece.offsets) != len(shape) or len(piece.extents) != len(shape):
        return (f"expected offsets and extents of {len(shape)} dimensions (the global shape {shape_text(shape)}), "
                f"found {shape_text(piece.offsets)} and {shape_text(piece.extents)}")
    for d, extent in enumerate(shape):
        if piece.offsets[d] > extent or piece.extents[d] > extent - piece.offsets[d]:
            return f"expected a box within the global shape {shape_text(shape)}, found {piece.text()} (dimension {d})"
    return None


def _index_text(index, shape):
    """"[3, 7]": the multi-index of linear element ``index`` of a tensor of ``shape``."""
    coordinates = [0] * len(shape)
    for d in range(len(shape) - 1, -1, -1):
        if shape[d] == 0:
            break
        coordinates[d] = index % shape[d]
        index //= shape[d]
    return shape_text(coordinates)


def _run_count_problem(pieces, shape):
    """How ``pieces`` form more than MAX_TENSOR_RUNS runs, or None (geometry.hpp's run_count_problem)."""
    total = min(sum(piece.run_count(shape) for piece in pieces), _U64_MAX)  # C++ saturates at 2^64 - 1
    if total <= MAX_TENSOR_RUNS:
        return None
    return (f"expected the pieces to form at most {MAX_TENSOR_RUNS} runs of consecutive elements (a box forms one "
            f"per row it does not span whole), found {total}")


def _tiling_problem(pieces, shape):
    """How ``pieces`` fail to hold every element of ``shape`` exactly once, or
    None (geometry.hpp's tiling_problem, with its messages), in O(runs log runs)."""
    runs = [piece.runs(shape) for piece in pieces]
    begins = np.concatenate([b for b, _ in runs] or [np.empty(0, np.int64)])
    ends = np.concatenate([e for _, e in runs] or [np.empty(0, np.int64)])
    owners = np.concatenate([np.full(len(b), i) for i, (b, _) in enumerate(runs)] or [np.empty(0, np.int64)])
    order = np.argsort(begins, kind="stable")
    begins, ends, owners = begins[order], ends[order], owners[order]
    total = int(np.prod(shape, dtype=object))
    covered = np.concatenate([[0], ends[:-1]]) if len(ends) else ends  # what runs before each run end at
    wrong = np.nonzero(begins != covered)[0]
    if len(wrong):
        i = int(wrong[0])
        if begins[i] > covered[i]:
            return (f"elements {_index_text(int(covered[i]), shape)} to {_index_text(int(begins[i]) - 1, shape)} "
                    "are held by no piece")
        return (f"piece '{pieces[owners[i - 1]].name}' and piece '{pieces[owners[i]].name}' both hold element "
                f"{_index_text(int(begins[i]), shape)}")
    end = int(ends[-1]) if len(ends) else 0
    if end < total:
        return f"elements {_index_text(end, shape)} to {_index_text(total - 1, shape)} are held by no piece"
    return None


def _linear_indices(piece, shape):
    """The global row-major index of each element of ``piece``, in its own order."""
    if piece.flat is not None:
        return np.arange(piece.flat[0], piece.flat[1], dtype=np.int64)
    indices = np.zeros((), np.int64)
    stride = 1
    for d in range(len(shape) - 1, -1, -1):
        along = (piece.offsets[d] + np.arange(piece.extents[d], dtype=np.int64)) * stride
        indices = along.reshape((-1,) + (1,) * indices.ndim) + indices
        stride *= shape[d]
    return indices.reshape(-1)


def _copy_overlap(piece, wanted, shape, out, stored):
    """Copies the elements ``piece`` and ``wanted`` share from the piece's
    stored array (``stored()``, called only when they share any) into ``out``,
    the wanted elements in their row-major order."""
    if piece.flat is None and wanted.flat is None:  # two boxes: their intersection, by slicing
        low = [max(p, w) for p, w in zip(piece.offsets, wanted.offsets)]
        high = [min(p + e, w + f) for p, e, w, f in zip(piece.offsets, piece.extents, wanted.offsets, wanted.extents)]
        if any(lo >= hi for lo, hi in zip(low, high)):
            return
        source = stored().reshape(piece.extents)
        out[tuple(slice(lo - w, hi - w) for lo, hi, w in zip(low, high, wanted.offsets))] = \
            source[tuple(slice(lo - p, hi - p) for lo, hi, p in zip(low, high, piece.offsets))]
        return
    if piece.flat is not None and tuple(wanted.extents or ()) == tuple(shape) and wanted.flat is None:
        held = slice(piece.flat[0], piece.flat[1])  # a flat piece of the whole tensor: one slice
        if held.start < held.stop:
            out.reshape(-1)[held] = stored().reshape(-1)
        return
    # A flat range on either side: through the global index of each wanted element.
    indices = _linear_indices(wanted, shape)
    if piece.flat is not None:
        held = (indices >= piece.flat[0]) & (indices < piece.flat[1])
        local = indices[held] - piece.flat[0]
    elif tuple(piece.extents) == tuple(shape):  # the whole tensor (a scalar's only piece too)
        held = np.ones(indices.shape, bool)
        local = indices
    else:
        coordinates = np.unravel_index(indices, shape)
        held = np.ones(indices.shape, bool)
        for coordinate, offset, extent in zip(coordinates, piece.offsets, piece.extents):
            held &= (coordinate >= offset) & (coordinate < offset + extent)
        local = np.ravel_multi_index([c[held] - o for c, o in zip(coordinates, piece.offsets)], piece.extents) \
            if held.any() else None
    if held.any():
        out.reshape(-1)[held] = stored().reshape(-1)[local]


def read_index(directory):
    """The Index of the committed checkpoint in ``directory``; StateError
    state_not_found / state_uncommitted as read_distributed_index throws them."""
    if not os.path.isdir(directory):
        raise StateError(ErrorId.state_not_found, directory, "", "expected a checkpoint directory, found none")
    path = os.path.join(directory, INDEX_FILE)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise StateError(ErrorId.state_uncommitted, directory, "",
                         f"expected {INDEX_FILE}, found none: the save that wrote this directory never committed "
                         "(it failed or was killed); the next save to this directory removes what it left") from None
    except OSError as problem:
        raise IoError(ErrorId.io_read, path, "", f"read failed: {problem.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise FormatError(ErrorId.format_header_json, path, "",
                          f"expected the index to be JSON: invalid UTF-8 at byte {problem.start}") from None
    return Index(path, text)


class Directory:
    """An open distributed checkpoint, with the interface of ``ckpt.File``:
    ``names()``, ``tensors``, ``info(name)``, ``tensor(name)``, ``metadata``
    (the state's metadata, as the C++ load reads it), ``verify()``."""

    def __init__(self, path, *, verify_checksums=True, threads=None):
        self.path = os.fspath(path).rstrip("/") or "/"
        self._verify = verify_checksums
        self._threads = threads
        self.index = read_index(self.path)
        self.format_version = self.index.format_version
        self.step = self.index.step
        self.world_size = self.index.world_size
        self.metadata = self.index.metadata
        self.chain = self.index.chain  # a Chain for an incremental checkpoint, else None
        # The rank files' bytes, as the index records them.
        self.file_size = sum(size for size, _ in self.index.files.values())
        self.tensors = [self._tensor_info(tensor) for tensor in self.index.tensors.values()]
        self._infos = {info.name: info for info in self.tensors}
        self._files = {}  # file name: open reader.File, opened on first use

    written_by_ckpt = True

    @staticmethod
    def _tensor_info(tensor):
        codecs = {piece.codec for piece in tensor.pieces}
        codec = codecs.pop() if len(codecs) == 1 else ("raw" if not codecs else "mixed")
        return reader.TensorInfo(tensor.name, tensor.dtype, tensor.shape, codec, None, None, True)

    def names(self):
        return list(self.index.tensors)

    def __contains__(self, name):
        return name in self.index.tensors

    def __iter__(self):
        return iter(self.names())

    def __len__(self):
        return len(self.index.tensors)

    def __getitem__(self, name):
        return self.tensor(name)

    def info(self, name):
        self._entry(name)
        return self._infos[name]

    def pieces(self, name):
        """The pieces tensor ``name`` was saved in (``Piece``: file, name, codec,
        offsets and extents or flat)."""
        return list(self._entry(name).pieces)

    def tensor(self, name, *, as_float32=False):
        """The global tensor assembled from its pieces, reading only their files.
        A tensor stored whole and raw is a read-only view of its file's mapping,
        as ``ckpt.File.tensor`` returns it; see there for BF16, F8 and BOOL."""
        entry = self._entry(name)
        if len(entry.pieces) == 1 and entry.pieces[0].stored_shape(entry.shape) == entry.shape:
            array = self._stored(entry, entry.pieces[0])
            return dtypes.to_float32(array, entry.dtype) if as_float32 else array
        return self.read(name, offsets=(0,) * len(entry.shape), extents=entry.shape, as_float32=as_float32)

    def read(self, name, *, offsets=None, extents=None, flat=None, as_float32=False):
        """A piece of tensor ``name`` in any split, as a rank loading with that
        split gets it: the box of ``extents`` elements from ``offsets`` (an
        array of shape ``extents``) or the flat range ``flat`` = (begin, end) of
        the row-major flattened tensor (an array of end - begin elements).
        Only the stored pieces it overlaps are read."""
        entry = self._entry(name)
        if (flat is None) == (offsets is None or extents is None):
            raise ArgumentError(ErrorId.argument_invalid, self.path, name,
                                "expected offsets and extents (a box) or flat (a range), found "
                                + ("both" if flat is not None else "neither"))
        wanted = (Piece(None, None, None, None, flat=tuple(flat)) if flat is not None else
                  Piece(None, None, None, None, offsets=tuple(offsets), extents=tuple(extents)))
        problem = _geometry_problem(wanted, entry.shape)
        if problem:
            raise ArgumentError(ErrorId.argument_invalid, self.path, name, problem)
        out = np.empty(wanted.stored_shape(entry.shape) if wanted.flat is None else (wanted.element_count(),),
                       np.bool_ if entry.dtype == "BOOL" else dtypes.NUMPY[entry.dtype])
        if wanted.element_count():
            for piece in entry.pieces:
                _copy_overlap(piece, wanted, entry.shape, out, lambda piece=piece: self._stored(entry, piece))
        return dtypes.to_float32(out, entry.dtype) if as_float32 else out

    def verify(self):
        """What ``ckpt verify DIR`` checks: every file the index lists is the one
        it committed, every tensor's checksum in it, every encoded tensor
        decoded, and every piece in its file as the index records it."""
        for file_name in self.index.files:
            self._file(file_name).verify()
        for entry in self.index.tensors.values():
            for piece in entry.pieces:
                self._check_stored(entry, piece)

    def close(self):
        for file in self._files.values():
            file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()

    def _entry(self, name):
        entry = self.index.tensors.get(name)
        if entry is None:
            raise MismatchError(ErrorId.mismatch_missing_tensor, self.path, name,
                                f"expected a tensor of this name, found none among the {len(self.index.tensors)} "
                                "tensors of the checkpoint")
        return entry

    def _file(self, file_name):
        """A rank file, opened once and checked to be the file the index
        committed: its header checksum covers every tensor checksum in it."""
        file = self._files.get(file_name)
        if file is not None:
            return file
        path = os.path.join(self.path, file_name)
        file = reader.File(path, verify_checksums=self._verify, threads=self._threads)
        expected_bytes, expected_xxh3 = self.index.files[file_name]
        found = file.raw_metadata.get(HEADER_CHECKSUM_KEY, "none (not a ckpt file)")
        if found != to_hex(expected_xxh3) or file.file_size != expected_bytes:
            file.close()
            raise IntegrityError(ErrorId.integrity_header_checksum, path, "",
                                 f"expected the file the index committed, of {expected_bytes} bytes with header xxh3 "
                                 f"{to_hex(expected_xxh3)}, found {file.file_size} bytes with header xxh3 {found}: "
                                 "the file was replaced after the commit")
        self._files[file_name] = file
        return file

    def _check_stored(self, entry, piece):
        file = self._file(piece.file)
        expected = piece.stored_shape(entry.shape)
        info = file.info(piece.name) if piece.name in file else None
        if info is None or (info.dtype, tuple(info.shape), info.codec) != (entry.dtype, expected, piece.codec):
            found = "no such tensor" if info is None else f"{info.dtype} {shape_text(info.shape)} (codec {info.codec})"
            raise FormatError(ErrorId.format_metadata, file.path, piece.name,
                              f"the index stores a piece of '{entry.name}' here: expected {entry.dtype} "
                              f"{shape_text(expected)} (codec {piece.codec}), found {found}")
        return file

    def _stored(self, entry, piece):
        """The piece's stored tensor (its checksum verified when asked)."""
        return self._check_stored(entry, piece).tensor(piece.name)
