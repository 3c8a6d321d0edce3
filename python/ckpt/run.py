"""A CheckpointManager's directory as a run: ``ckpt.open_run``.

The checkpoints are listed as the C++ manager lists them
(include/ckpt/detail/checkpoint_catalog.hpp): a checkpoint is a regular file
whose name parses with the template; its step comes from the name, and its
epoch, time, metrics and pin from the index ``.ckpt-index.json`` when the index
records the file at its current size, else from the file's own record (the
``ckpt.manager`` key of its metadata) and its modification time. Each
subdirectory holding a committed distributed checkpoint (docs/distributed.md,
one directory per step, as a DistributedCheckpointManager keeps them:
include/ckpt/detail/distributed/manager_catalog.hpp) is a checkpoint too, its
step from its index, its pin from the manager's index; a dotted directory is a
step being deleted and is not listed.
Nothing is locked or written: a run can be studied while training writes to it.
"""
import json
import os
import stat
from dataclasses import dataclass, field

import numpy as np

from . import distributed
from . import reader
from .errors import Error, ErrorId, IoError, StateError
from .naming import DEFAULT_TEMPLATE, Naming
from .stats import matcher, trajectories
from .strict_json import is_u64

INDEX_FILE = ".ckpt-index.json"
MANAGER_METADATA_KEY = "ckpt.manager"


@dataclass
class CheckpointEntry:
    step: int
    path: str
    bytes: int
    time: float = 0.0  # seconds since the Unix epoch, when the save was requested
    epoch: int = None
    metrics: dict = field(default_factory=dict)
    pinned: bool = False
    world_size: int = None  # the ranks that saved a distributed checkpoint directory; None for a file


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _apply_record(record, entry):
    """Takes the fields of a manager record that are present and well-typed; a
    damaged record must not make the directory unlistable."""
    if not isinstance(record, dict):
        return
    if _is_number(record.get("time")):
        entry.time = float(record["time"])
    if is_u64(record.get("epoch")):
        entry.epoch = record["epoch"]
    if isinstance(record.get("metrics"), dict):
        entry.metrics.update({name: float(value) for name, value in record["metrics"].items() if _is_number(value)})


def _read_index(directory):
    """Index entries by file name; {} when the index is missing or unreadable."""
    try:
        with open(os.path.join(directory, INDEX_FILE), "rb") as file:
            index = json.loads(file.read())
    except (OSError, ValueError):
        return {}
    checkpoints = index.get("checkpoints") if isinstance(index, dict) else None
    entries = {}
    for item in checkpoints if isinstance(checkpoints, list) else ():
        if not isinstance(item, dict) or not isinstance(item.get("file"), str) or not is_u64(item.get("bytes")):
            continue
        entry = CheckpointEntry(0, "", item["bytes"], pinned=item.get("pinned") is True)
        _apply_record(item, entry)
        entries[item["file"]] = entry
    return entries


def _facts_from_file(entry):
    try:
        with reader.File(entry.path, verify_checksums=False) as file:
            _apply_record(file.metadata.get(MANAGER_METADATA_KEY), entry)
    except Error:
        pass  # an unreadable checkpoint is listed by name; reading it will say what is wrong


def _distributed_entry(path, parsed):
    """The entry of a committed distributed checkpoint directory, as the C++
    manager lists it: its step from its name (``parsed``) when the name is the
    template's, else from its index; its time the manager's record
    (``ckpt.manager`` in the index's metadata) or else the commit's (the index's
    modification), its bytes those of its files and its index. An unreadable
    index still names a step when the directory's name (``parsed``) does, so
    that opening it says what is wrong; else None."""
    index_path = os.path.join(path, distributed.INDEX_FILE)
    try:
        committed = os.stat(index_path)
    except OSError:
        return None
    entry = CheckpointEntry(0, path, committed.st_size, float(int(committed.st_mtime)))
    try:
        index = distributed.read_index(path)
    except Error:
        if parsed is None:
            return None
    else:
        entry.step, entry.world_size = index.step, index.world_size
        entry.bytes += sum(size for size, _ in index.files.values())
        _apply_record(index.metadata.get(MANAGER_METADATA_KEY), entry)
    if parsed is not None:  # what the name records, where the record does not
        entry.step = parsed.step
        entry.epoch = parsed.epoch if entry.epoch is None else entry.epoch
        entry.metrics = entry.metrics or dict(parsed.metrics)
    return entry


def list_checkpoints(directory, naming):
    """The checkpoints of ``naming`` in ``directory``, sorted by step."""
    try:
        names = os.listdir(directory)
    except OSError as problem:
        raise IoError(ErrorId.io_open, directory, "", f"cannot list the run's directory: {problem.strerror}") from None
    known = _read_index(directory)
    checkpoints = []
    for name in names:
        parsed = naming.parse(name)
        path = os.path.join(directory, name)
        try:
            status = os.stat(path)
        except OSError:
            continue  # deleted by a rotation since the listing
        if stat.S_ISDIR(status.st_mode):
            # A dotted directory is a step being deleted (renamed out of the
            # listing first); any other committed one is a step, whatever the template.
            entry = None if name.startswith(".") else _distributed_entry(path, parsed)
            if entry is not None:
                entry.pinned = name in known and known[name].pinned
                checkpoints.append(entry)
            continue
        if parsed is None or not stat.S_ISREG(status.st_mode):
            continue
        entry = known.get(name)
        if entry is None or entry.bytes != status.st_size:
            entry = CheckpointEntry(parsed.step, path, status.st_size, float(int(status.st_mtime)), parsed.epoch,
                                    dict(parsed.metrics))
            _facts_from_file(entry)
        entry.step, entry.path, entry.bytes = parsed.step, path, status.st_size
        checkpoints.append(entry)
    checkpoints.sort(key=lambda entry: (entry.step, entry.path))  # as committed_checkpoints() orders directories
    return checkpoints


class Run:
    """The checkpoints of one manager's directory, oldest first."""

    def __init__(self, directory, template=DEFAULT_TEMPLATE):
        self.directory = os.fspath(directory)
        self.template = template
        self.checkpoints = list_checkpoints(self.directory, Naming(template))

    def __len__(self):
        return len(self.checkpoints)

    def __iter__(self):
        return iter(self.checkpoints)

    @property
    def steps(self):
        return np.array([entry.step for entry in self.checkpoints], dtype=np.int64)

    def checkpoint(self, step):
        for entry in self.checkpoints:
            if entry.step == step:
                return entry
        raise StateError(ErrorId.state_not_found, self.directory, "",
                         f"expected a checkpoint of step {step}, found steps {self.steps.tolist()}")

    def open(self, step, **options):
        """``ckpt.open`` of the checkpoint of ``step``."""
        return reader.open(self.checkpoint(step).path, **options)

    def metric_names(self):
        return sorted({name for entry in self.checkpoints for name in entry.metrics})

    def metric(self, name):
        """The metric at each checkpoint (aligned with ``steps``), NaN where it was not recorded."""
        return np.array([entry.metrics.get(name, np.nan) for entry in self.checkpoints], dtype=np.float64)

    def tensor_names(self, *patterns):
        """The tensors of any checkpoint whose names match a glob of ``patterns``
        (default: all), sorted. Reads every checkpoint's header."""
        matches = matcher(patterns or ("*",))
        names = set()
        for entry in self.checkpoints:
            with reader.open(entry.path) as file:
                names.update(name for name in file.names() if matches(name))
        return sorted(names)

    def trajectory(self, name_or_glob, stat="norm"):
        """Per-step statistic ``stat`` (see ``ckpt.STATS``) of every tensor matching
        ``name_or_glob``, reading one checkpoint at a time."""
        return trajectories(self, [name_or_glob], [stat])[stat]

    def plot(self, output, tensors=None, stats=None):
        """Draws the run's metrics and, for the tensors matching the globs
        ``tensors``, each statistic of ``stats`` over the steps into the PNG
        ``output`` (needs matplotlib); returns the tensors drawn."""
        from . import plot  # matplotlib is needed for plots only
        return plot.draw(self, output, tensors, stats or plot.DEFAULT_STATS)


def open_run(directory, template=DEFAULT_TEMPLATE):
    """The run in a CheckpointManager's ``directory`` (its ``name_template`` when not the default)."""
    return Run(directory, template)
