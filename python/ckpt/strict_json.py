"""JSON that may be hostile, read as include/ckpt/detail/strict_json.hpp reads it.

Bounded nesting (checked before parsing, so a deep document cannot exhaust the
stack), bounded array lengths, unique keys, no NUL byte, no NaN or infinity and
no lone surrogate. ``-0`` and other negative integers stay distinguishable from
unsigned ones, because the format wants non-negative integers where the C++
reader wants nlohmann's "unsigned" numbers.
"""
import json
import re

import numpy as np

U64_MAX = 2**64 - 1


class JsonProblem(ValueError):
    """Why a JSON text was refused; the caller turns it into a ckpt error."""


class NegativeInt(int):
    """An integer written with a minus sign, ``-0`` included."""


def _integer(text):
    return NegativeInt(int(text)) if text.startswith("-") else int(text)


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise JsonProblem(f"invalid JSON: number overflow parsing '{excerpt(text)}'")
    return value


def _no_constants(name):
    raise JsonProblem(f"invalid JSON: '{name}' is not JSON")


def _unique_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise JsonProblem(f"expected unique keys, found '{excerpt(key)}' twice")
        result[key] = value
    return result


# A JSON string literal; what is left once they are removed holds every bracket that nests.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def excerpt(text, limit=120):
    """Error messages quote hostile text; long text is cut so they stay readable."""
    return text if len(text) <= limit else text[:limit] + "..."


def _nesting_depth(text):
    skeleton = np.frombuffer(_STRING.sub("", text).encode("utf-8", "surrogatepass"), np.uint8)
    opening = (skeleton == ord("[")) | (skeleton == ord("{"))
    closing = (skeleton == ord("]")) | (skeleton == ord("}"))
    depth = np.cumsum(opening.astype(np.int64) - closing.astype(np.int64))
    return int(depth.max()) if depth.size else 0


def _check_values(value, max_elements):
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise JsonProblem("invalid JSON: a string holds a lone surrogate escape") from None
    elif isinstance(value, list):
        if len(value) > max_elements:
            raise JsonProblem(f"expected arrays of at most {max_elements} elements, found a longer one")
        for item in value:
            _check_values(item, max_elements)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key, max_elements)
            _check_values(item, max_elements)


def parse(text, max_depth, max_elements):
    """The value of ``text`` (a str); raises JsonProblem saying why not."""
    nul = text.find("\0")
    if nul >= 0:
        raise JsonProblem(f"expected JSON text without NUL bytes, found one at byte {len(text[:nul].encode())}")
    if _nesting_depth(text) > max_depth:
        raise JsonProblem(f"expected JSON nested at most {max_depth} levels deep, found deeper")
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_integer, parse_float=_finite_float,
                           parse_constant=_no_constants)
    except JsonProblem:
        raise
    except (ValueError, RecursionError) as problem:
        raise JsonProblem(f"invalid JSON: {problem}") from None
    _check_values(value, max_elements)
    return value


def is_u64(value):
    """An unsigned 64-bit integer, as the format requires for sizes and offsets."""
    return type(value) is int and 0 <= value <= U64_MAX


def as_shape(value):
    """A list of unsigned integers as a tuple, or None."""
    if not isinstance(value, list) or not all(is_u64(extent) for extent in value):
        return None
    return tuple(value)


def dump(value):
    """Compact JSON, as nlohmann's dump() writes it in messages."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
