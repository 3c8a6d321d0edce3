"""Statistics of tensors over the checkpoints of a run: ``Run.trajectory``.

One checkpoint is open at a time and tensors are reduced in blocks of float64,
so a run far larger than memory can be studied. Only the comparisons keep
earlier tensors: the first appearance of each tensor (``dist_first``) and its
previous one (``dist_prev``, ``changed``); raw tensors stay views of their
file's mapping, which costs page cache, not memory.
"""
import re
from dataclasses import dataclass

import numpy as np

from . import dtypes
from . import reader
from .errors import ArgumentError, ErrorId

# Every statistic, with the label plots give it.
STATS = {
    "norm": "L2 norm",
    "mean": "mean",
    "std": "standard deviation",
    "max_abs": "max |x|",
    "dist_first": "L2 distance to the tensor at the first checkpoint",
    "dist_prev": "L2 distance to the tensor at the previous checkpoint",
    "changed": "fraction of elements changed since the previous checkpoint",
}
_NEEDS_FIRST = {"dist_first"}
_NEEDS_PREVIOUS = {"dist_prev", "changed"}
_BLOCK = 1 << 20  # elements reduced at once: 8 MiB of float64


@dataclass
class Trajectory:
    """One statistic of each tensor at each checkpoint. ``values[name]`` is
    aligned with ``steps``; NaN where the checkpoint lacks the tensor, or where
    a comparison has nothing to compare with: no previous checkpoint holding
    the tensor, or another shape or dtype than the tensor it compares with.
    "The first checkpoint" of a tensor is the first that holds it, and
    ``dist_first`` is 0 there."""

    stat: str
    steps: np.ndarray
    values: dict

    def __getitem__(self, name):
        return self.values[name]

    def names(self):
        return sorted(self.values)


def matcher(patterns):
    """A predicate on names: does one of the globs match? ``*`` matches any run
    of characters, '/' included, and ``?`` one character, as in CodecPolicy."""
    expressions = ["".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
                   for pattern in patterns]
    compiled = re.compile("|".join(f"(?:{expression})" for expression in expressions), re.DOTALL)
    return lambda name: compiled.fullmatch(name) is not None


@dataclass
class _Seen:
    """A tensor as the statistics see it, and comparisons with it later."""

    dtype: str
    shape: tuple
    values: np.ndarray  # flat, in float32 for the narrow float formats
    bits: np.ndarray  # flat, the stored elements as unsigned integers of their width


def _seen(file, name):
    info = file.info(name)
    stored = file.tensor(name).reshape(-1)  # read (or decoded) once
    return _Seen(info.dtype, info.shape, dtypes.to_float32(stored, info.dtype), stored.view(f"u{stored.itemsize}"))


def _blocks(*arrays):
    """The flat arrays cut into aligned blocks."""
    for start in range(0, arrays[0].size, _BLOCK):
        yield [array[start:start + _BLOCK] for array in arrays]


def _moments(values):
    """norm, mean, std and max_abs of flat ``values``, in float64."""
    count, mean, m2, sum_squares, max_abs = 0, 0.0, 0.0, 0.0, -np.inf
    for (block,) in _blocks(values):
        block = block.astype(np.float64)
        # Mean and variance merged block by block (Chan et al.): no cancellation
        # even when the mean is far larger than the spread.
        block_mean = block.mean()
        merged = count + block.size
        delta = block_mean - mean
        mean += delta * block.size / merged
        m2 += np.square(block - block_mean).sum() + delta * delta * count * block.size / merged
        count = merged
        sum_squares += np.square(block).sum()
        max_abs = np.maximum(max_abs, np.abs(block).max())  # NaN wins, as in numpy's max
    if count == 0:
        return {"norm": 0.0, "mean": np.nan, "std": np.nan, "max_abs": np.nan}
    return {"norm": np.sqrt(sum_squares), "mean": mean, "std": np.sqrt(m2 / count), "max_abs": max_abs}


def _distance(values, reference):
    return np.sqrt(sum(np.square(a.astype(np.float64) - b.astype(np.float64)).sum()
                       for a, b in _blocks(values, reference)))


def _changed(bits, reference):
    if bits.size == 0:
        return np.nan
    return sum(np.count_nonzero(a != b) for a, b in _blocks(bits, reference)) / bits.size


def _reduce(current, first, previous, wanted):
    """The statistics ``wanted`` of ``current`` (a _Seen) against earlier ones (or None)."""
    def comparable(earlier):
        return earlier is not None and (earlier.dtype, earlier.shape) == (current.dtype, current.shape)

    results = {}
    if {"norm", "mean", "std", "max_abs"} & set(wanted):
        results.update(_moments(current.values))
    if "dist_first" in wanted:
        results["dist_first"] = _distance(current.values, first.values) if comparable(first) else np.nan
    if "dist_prev" in wanted:
        results["dist_prev"] = _distance(current.values, previous.values) if comparable(previous) else np.nan
    if "changed" in wanted:
        results["changed"] = _changed(current.bits, previous.bits) if comparable(previous) else np.nan
    return {stat: float(results[stat]) for stat in wanted}


def trajectories(run, patterns, stats):
    """{stat: Trajectory} of every tensor of ``run`` matching one of the globs
    ``patterns``, for each statistic of ``stats`` (names from ``STATS``), in one
    pass over the run."""
    unknown = [stat for stat in stats if stat not in STATS]
    if unknown:
        raise ArgumentError(ErrorId.argument_invalid, run.directory, "",
                            f"expected statistics among {', '.join(STATS)}, found {', '.join(unknown)}")
    matches = matcher(patterns)
    steps = run.steps
    values = {stat: {} for stat in stats}
    first, previous = {}, {}
    for index, entry in enumerate(run.checkpoints):
        with reader.open(entry.path) as file:
            for name in filter(matches, file.names()):
                current = _seen(file, name)
                if _NEEDS_FIRST & set(stats):
                    first.setdefault(name, current)
                for stat, value in _reduce(current, first.get(name), previous.get(name), stats).items():
                    values[stat].setdefault(name, np.full(len(steps), np.nan))[index] = value
                if _NEEDS_PREVIOUS & set(stats):
                    previous[name] = current
    return {stat: Trajectory(stat, steps, values[stat]) for stat in stats}
