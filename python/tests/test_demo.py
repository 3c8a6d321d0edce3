"""The demo's run (examples/train_mlp), as a user studies it: read bit for
bit as the C++ reader reads it, with its metrics and shaped optimizer state,
and drawn by ``python3 -m ckpt plot``."""
import json
import os
import re
import struct

import pytest

import ckpt
from support import SOURCE, expect_same_as_cpp, run_module, run_python


@pytest.mark.parametrize("codec", ["raw", "shuffle+zstd"])
def test_every_checkpoint_of_the_demo_reads_as_the_cpp_reader_reads_it(demo_runs, dump, codec):
    run = ckpt.open_run(demo_runs[codec])
    assert run.steps.tolist() == [50, 100, 150, 200, 250, 300]
    for entry in run:
        with ckpt.open(entry.path) as file:
            expect_same_as_cpp(file, dump(entry.path))
            assert {info.codec for info in file.tensors} == {codec}


def test_the_demo_records_its_losses_and_epoch_at_each_save(demo_runs):
    run = ckpt.open_run(demo_runs["raw"])
    assert run.metric_names() == ["loss", "val_loss"]
    for entry in run:
        assert entry.epoch == (entry.step * 16 - 1) // 512, "16 samples a step, 512 an epoch"
        assert 0 < entry.metrics["loss"] < 1 and 0 < entry.metrics["val_loss"] < 1
    loss = run.metric("val_loss")
    assert loss[-1] < 0.75 * loss[0], "the demo learns"


def test_adams_moments_have_their_weights_shapes(demo_runs):
    with ckpt.open(ckpt.open_run(demo_runs["raw"]).checkpoints[-1].path) as file:
        for weight in ["w1", "b1", "w2", "b2"]:
            shape = file.info(f"model/{weight}").shape
            assert file.info(f"optimizer/exp_avg/{weight}").shape == shape
            assert file.info(f"optimizer/exp_avg_sq/{weight}").shape == shape


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def plot(*arguments):
    result = run_module("plot", *arguments)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_plot_draws_the_demo_run_into_a_png_of_the_expected_size(demo_runs, tmp_path):
    png, report = tmp_path / "run.png", tmp_path / "report.html"
    output = plot(demo_runs["raw"], "-o", png, "--tensor", "model/*", "--html", report)
    assert "6 checkpoints, 2 metrics, 4 tensors" in output
    # Metrics and three statistics: 2 rows of 3.75 in, one legend row of 0.5 in, 12 in wide at 100 dpi.
    assert png_size(png) == (1200, 800)
    page = report.read_text()
    assert page.count("<tr>") == 1 + 6 + 1 + 13, "a header and 6 checkpoints; a header and 13 tensors"
    assert "data:image/png;base64," in page and "val_loss" in page


def test_plot_chooses_tensors_and_statistics_on_request(demo_runs, tmp_path):
    png = tmp_path / "run.png"
    assert "8 tensors" in plot(demo_runs["shuffle+zstd"], "-o", png), "the 8 largest float tensors by default"
    assert png_size(png) == (1200, 850)
    plot(demo_runs["raw"], "-o", png, "--tensor", "model/w1", "--stat", "changed")
    assert png_size(png) == (1200, 425)


def test_plot_of_a_directory_that_does_not_exist_fails_with_the_error(tmp_path):
    result = run_module("plot", tmp_path / "none", "-o", tmp_path / "x.png")
    assert result.returncode == 1 and "[ckpt.io_error.101]" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_the_readmes_three_lines_draw_the_demo_run(demo_runs, tmp_path):
    readme = (SOURCE.parent / "README.md").read_text()
    code = re.search(r"make_readme_figure.sh runs the next block.*?\n```python\n(.*?)```", readme, re.DOTALL).group(1)
    assert len(code.splitlines()) == 3
    os.symlink(demo_runs["raw"], tmp_path / "train_mlp")
    result = run_python("-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert png_size(tmp_path / "train_mlp_run.png") == (1200, 800)


def test_info_prints_a_checkpoints_tensors(demo_runs):
    path = ckpt.open_run(demo_runs["shuffle+zstd"]).checkpoints[-1].path
    result = run_module("info", path, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["format_version"] == 2 and len(info["tensors"]) == 13
    w1 = next(tensor for tensor in info["tensors"] if tensor["name"] == "model/w1")
    assert (w1["dtype"], w1["shape"], w1["codec"], w1["bytes"]) == ("F32", [32, 8], "shuffle+zstd", 1024)
    assert info["metadata"]["ckpt.manager"]["step"] == 300
