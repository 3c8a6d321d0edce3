"""The C++ library's exceptions, with the same stable ids (README.md, "Errors").

Every error carries ``id`` (an ``ErrorId``), ``file`` and ``tensor`` (empty when
there is none) and a message built like the C++ one::

    [ckpt.format_error.205] file 'a.safetensors': tensor 'w': expected ...
"""
import enum


class ErrorId(enum.IntEnum):
    """The ids of include/ckpt/error.hpp, under the same names. The hundreds
    digit is the kind, which is the exception class."""

    io_open = 101
    io_write = 102
    io_no_space = 103
    io_sync = 104
    io_rename = 105
    io_read = 106
    io_map = 107
    io_remove = 108
    format_truncated = 201
    format_header_size = 202
    format_header_json = 203
    format_tensor_entry = 204
    format_offsets = 205
    format_byte_size = 206
    format_trailing_bytes = 207
    format_metadata = 208
    format_newer_version = 209
    integrity_tensor_checksum = 301
    integrity_header_checksum = 302
    integrity_reference = 303  # a file of an incremental checkpoint's chain is not the one it recorded
    codec_unknown = 401
    codec_decode = 402
    codec_encode = 403
    mismatch_state = 501
    mismatch_missing_tensor = 502
    argument_invalid = 601
    argument_name = 602
    argument_duplicate_name = 603
    state_locked = 701
    state_not_found = 702
    state_async_failed = 703  # deprecated in C++: a failed async save is thrown with its own class and id
    state_uncommitted = 704  # a checkpoint directory without its index: its save never committed
    state_rank_failed = 705
    state_exists = 706


class Error(Exception):
    """Base of every exception ckpt raises."""

    kind = "error"

    def __init__(self, id, file="", tensor="", what=""):
        self.id = ErrorId(id)
        self.file = str(file)
        self.tensor = tensor
        self.what = what
        message = f"[ckpt.{self.kind}.{int(self.id)}] "
        if self.file:
            message += f"file '{self.file}': "
        if tensor:
            message += f"tensor '{tensor}': "
        super().__init__(message + what)


class IoError(Error):
    """The operating system refused an operation (open, map, read)."""

    kind = "io_error"


class FormatError(Error):
    """The file is not a well-formed checkpoint / safetensors file."""

    kind = "format_error"


class IntegrityError(Error):
    """A checksum does not match: the bytes changed after they were written."""

    kind = "integrity_error"


class CodecError(Error):
    """A codec is unknown (or its module missing), or refused to decode."""

    kind = "codec_error"


class MismatchError(Error):
    """The file is fine but does not hold what was asked for."""

    kind = "mismatch_error"


class ArgumentError(Error):
    """A caller passed something invalid."""

    kind = "argument_error"


class StateError(Error):
    """A lifecycle problem, e.g. a run holds no checkpoint of the step asked for."""

    kind = "state_error"


_CLASSES = {1: IoError, 2: FormatError, 3: IntegrityError, 4: CodecError, 5: MismatchError, 6: ArgumentError,
            7: StateError}


def error(id, file="", tensor="", what=""):
    """The exception of the class that ``id``'s kind names."""
    return _CLASSES[int(id) // 100](id, file, tensor, what)
