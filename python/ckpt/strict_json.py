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
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonProblem(f"expected unique keys, found '{excerpt(key)}' twice")
            seen.add(key)
    return result


# A JSON string literal; what is left once they are removed holds every bracket that nests.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def excerpt(text, limit=120):
    """Error messages quote hostile text; long text is cut so they stay readable."""
    return text if len(text) <= limit else text[:limit] + "..."


def _nesting_depth(skeleton):
    """The deepest nesting of containers in ``skeleton``, JSON text without its strings."""
    characters = np.frombuffer(skeleton.encode("utf-8", "surrogatepass"), np.uint8)
    opening = (characters == ord("[")) | (characters == ord("{"))
    closing = (characters == ord("]")) | (characters == ord("}"))
    depth = np.cumsum(opening.astype(np.int64) - closing.astype(np.int64))
    return int(depth.max()) if depth.size else 0


# A \u escape of a UTF-16 surrogate: without one, no string can hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _is_container(value):
    return isinstance(value, (list, dict))


def _check_containers(root, max_elements, strings):
    """Checks array lengths everywhere in ``root`` and, when ``strings``, that no
    string or key holds a lone surrogate (which Python's json lets through).
    Returns the number of keys of all objects."""
    pending = [root] if _is_container(root) else []
    keys = 0
    try:
        if strings and isinstance(root, str):
            root.encode("utf-8")
        while pending:
            container = pending.pop()
            if isinstance(container, dict):
                keys += len(container)
                items = container.values()
            elif len(container) > max_elements:
                raise JsonProblem(f"expected arrays of at most {max_elements} elements, found a longer one")
            else:
                items = container
            if strings:
                for item in (*container, *items) if isinstance(container, dict) else items:
                    if isinstance(item, str):
                        item.encode("utf-8")
            pending.extend(filter(_is_container, items))
    except UnicodeEncodeError:
        raise JsonProblem("invalid JSON: a string holds a lone surrogate escape") from None
    return keys


def parse(text, max_depth, max_elements):
    """The value of ``text`` (a str); raises JsonProblem saying why not."""
    nul = text.find("\0")
    if nul >= 0:
        raise JsonProblem(f"expected JSON text without NUL bytes, found one at byte {len(text[:nul].encode())}")
    skeleton = _STRING.sub("", text)
    if _nesting_depth(skeleton) > max_depth:
        raise JsonProblem(f"expected JSON nested at most {max_depth} levels deep, found deeper")
    # Hooks cost a Python call per integer or object: they run only where the
    # skeleton shows they can matter (a minus sign; more keys than survived).
    hooks = {"parse_int": _integer} if "-" in skeleton else {}
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constants, **hooks)
        keys = _check_containers(value, max_elements, strings=_SURROGATE_ESCAPE.search(text) is not None)
        if keys != skeleton.count(":"):  # outside strings, a ':' ends a key: a duplicate collapsed into one
            json.loads(text, object_pairs_hook=_unique_keys)  # raises, naming the key
    except JsonProblem:
        raise
    except (ValueError, RecursionError) as problem:
        raise JsonProblem(f"invalid JSON: {problem}") from None
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
    """Compact JSON, as nlohmann's dump() writes it in messages (objects by key: nlohmann keeps them in a std::map)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
