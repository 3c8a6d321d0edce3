"""ckpt.open_run lists a manager's directory as the C++ manager does: from
its index, or without it from the files themselves."""
import json
import os
import shutil

import numpy as np
import pytest

import ckpt
from support import expect_same_as_cpp

STEPS = [10, 20, 30, 40, 50, 60]


def expect_run_facts(run):
    """What write_fixtures' run recorded: fake-clock times, epochs, metrics."""
    assert run.steps.tolist() == STEPS
    for entry in run:
        assert entry.time == 1.7e9 + entry.step
        assert entry.epoch == entry.step // 20
        assert entry.metrics == {"loss": 1 / entry.step, "val_loss": 2 / entry.step}
        assert entry.bytes == os.path.getsize(entry.path) and not entry.pinned
    np.testing.assert_array_equal(run.metric("loss"), [1 / step for step in STEPS])
    assert run.metric_names() == ["loss", "val_loss"]


def test_a_run_is_listed_from_its_index(fixtures):
    run = ckpt.open_run(fixtures / "run")
    expect_run_facts(run)
    assert [os.path.basename(entry.path) for entry in run] == [f"ckpt-{step:08}.safetensors" for step in STEPS]


def test_without_its_index_a_run_is_listed_from_the_files_and_foreign_names_are_ignored(fixtures, tmp_path):
    directory = shutil.copytree(fixtures / "run", tmp_path / "run")
    os.remove(directory / ".ckpt-index.json")
    for foreign in ["ckpt-5.safetensors", "ckpt-000000070.safetensors", "notes.txt", ".ckpt-00000080.safetensors"]:
        (directory / foreign).write_bytes(b"not a checkpoint")
    os.mkdir(directory / "ckpt-00000090.safetensors")  # not a regular file
    expect_run_facts(ckpt.open_run(directory))


def test_the_index_is_trusted_only_for_a_file_of_the_size_it_records(fixtures, tmp_path):
    directory = shutil.copytree(fixtures / "run", tmp_path / "run")
    index_path = directory / ".ckpt-index.json"
    index = json.loads(index_path.read_text())
    first = index["checkpoints"][0]
    first["metrics"]["loss"] = 99.0
    index_path.write_text(json.dumps(index))
    assert ckpt.open_run(directory).checkpoint(10).metrics["loss"] == 99.0, "the index is read when it matches"

    first["bytes"] += 1
    index_path.write_text(json.dumps(index))
    assert ckpt.open_run(directory).checkpoint(10).metrics["loss"] == 0.1, "else the file's own record"

    path = directory / "ckpt-00000010.safetensors"
    with open(path, "ab") as file:
        file.write(b"\0\0")  # unreadable, and of neither size: what its name and the file system say
    entry = ckpt.open_run(directory).checkpoint(10)
    assert (entry.metrics, entry.epoch, entry.time) == ({}, None, float(int(os.path.getmtime(path))))


def test_a_template_with_epoch_and_metric_fields(fixtures):
    run = ckpt.open_run(fixtures / "run-template", "run-e{epoch:03}-{step:08}-{val_loss:.4f}.safetensors")
    assert run.steps.tolist() == [10, 20, 30]
    assert [entry.epoch for entry in run] == [0, 1, 1]
    assert ckpt.open_run(fixtures / "run-template").steps.tolist() == [], "the default template matches none"


@pytest.mark.parametrize("template, expected", [
    ("ckpt-{epoch}.safetensors", "expected a {step} field"),
    (".ckpt-{step}", "expected a file name that does not start with '.'"),
    ("ckpt-{step:x}", "expected ':08' after step/epoch or ':.4f' after a metric"),
    ("ckpt-{step", "expected a '}' closing every '{'"),
])
def test_a_bad_template_is_an_argument_error(fixtures, template, expected):
    with pytest.raises(ckpt.ArgumentError) as caught:
        ckpt.open_run(fixtures / "run", template)
    assert caught.value.id == ckpt.ErrorId.argument_invalid and expected in str(caught.value)


def test_checkpoints_open_by_step_and_read_as_the_cpp_reader_reads_them(fixtures, dump):
    run = ckpt.open_run(fixtures / "run")
    for step in STEPS:
        with run.open(step) as file:
            expect_same_as_cpp(file, dump(run.checkpoint(step).path))
    with pytest.raises(ckpt.StateError) as caught:
        run.checkpoint(15)
    assert caught.value.id == ckpt.ErrorId.state_not_found and "step 15" in str(caught.value)


def test_tensor_names_are_the_union_over_the_run(fixtures):
    run = ckpt.open_run(fixtures / "run")
    assert run.tensor_names("model/*", "late") == ["late", "model/frozen", "model/half", "model/weight"]
    assert run.tensor_names("model/?eight") == ["model/weight"]


def test_a_missing_directory_is_an_io_error(tmp_path):
    with pytest.raises(ckpt.IoError) as caught:
        ckpt.open_run(tmp_path / "nothing")
    assert caught.value.id == ckpt.ErrorId.io_open
