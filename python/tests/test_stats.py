"""Trajectories equal the statistics numpy computes directly on each
checkpoint's tensors, and say NaN where there is nothing to compute."""
import numpy as np
import pytest

import ckpt
from ckpt import stats


def numpy_statistics(run, name):
    """Each statistic of ``name`` at each step, straight from numpy on whole tensors."""
    expected = {stat: [] for stat in ckpt.STATS}
    first = previous = None
    for entry in run:
        tensors = ckpt.load(entry.path, as_float32=True)
        if name not in tensors:
            for values in expected.values():
                values.append(np.nan)
            continue
        x = tensors[name].astype(np.float64)
        first = first if first is not None else x
        stored = ckpt.load(entry.path)[name]
        bits = stored.reshape(-1).view(f"u{stored.itemsize}")
        expected["norm"].append(np.linalg.norm(x))
        expected["mean"].append(x.mean())
        expected["std"].append(x.std())
        expected["max_abs"].append(np.abs(x).max())
        expected["dist_first"].append(np.linalg.norm(x - first))
        expected["dist_prev"].append(np.linalg.norm(x - previous[0]) if previous is not None else np.nan)
        expected["changed"].append(np.mean(bits != previous[1]) if previous is not None else np.nan)
        previous = (x, bits)
    return expected


@pytest.mark.parametrize("name", ["model/weight", "model/frozen", "model/half", "counts", "late"])
def test_trajectories_equal_numpy_on_each_checkpoint(fixtures, name):
    run = ckpt.open_run(fixtures / "run")
    computed = stats.trajectories(run, [name], list(ckpt.STATS))
    expected = numpy_statistics(run, name)
    for stat, trajectory in computed.items():
        assert trajectory.steps.tolist() == run.steps.tolist()
        np.testing.assert_allclose(trajectory[name], expected[stat], rtol=1e-12, err_msg=f"{name} {stat}")


def test_what_the_fixture_run_makes_visible(fixtures):
    run = ckpt.open_run(fixtures / "run")
    changed = stats.trajectories(run, ["model/*", "late"], ["changed"])["changed"]
    assert changed["model/frozen"][1:].tolist() == [0.0] * 5, "a frozen tensor never changes"
    assert np.isnan(changed["late"][:3]).all(), "absent, then first seen at step 30: nothing to compare"
    assert changed["late"][3:].tolist() == [1.0, 1.0, 1.0]
    assert changed["model/weight"][1:3].tolist() == [1.0, 0.75], "the last row moves every 20 steps only"


def test_the_run_method_is_the_one_statistic_view(fixtures):
    run = ckpt.open_run(fixtures / "run")
    trajectory = run.trajectory("model/*", stat="dist_first")
    assert trajectory.names() == ["model/frozen", "model/half", "model/weight"] and trajectory.stat == "dist_first"
    assert trajectory["model/weight"][0] == 0.0 and trajectory["model/weight"][-1] > 0


def test_a_statistic_that_does_not_exist_is_an_argument_error(fixtures):
    with pytest.raises(ckpt.ArgumentError) as caught:
        ckpt.open_run(fixtures / "run").trajectory("model/*", stat="variance")
    assert caught.value.id == ckpt.ErrorId.argument_invalid and "found variance" in str(caught.value)


def test_blocks_merge_to_the_whole_tensors_statistics(monkeypatch):
    """Large tensors are reduced in blocks; merging them loses nothing, even
    when the mean dwarfs the spread (where sum of squares minus square of sums fails)."""
    monkeypatch.setattr(stats, "_BLOCK", 7)
    values = (1e6 + np.random.default_rng(3).standard_normal(1000)).astype(np.float64)
    moments = stats._moments(values)
    np.testing.assert_allclose([moments["mean"], moments["std"], moments["norm"], moments["max_abs"]],
                               [values.mean(), values.std(), np.linalg.norm(values), np.abs(values).max()],
                               rtol=1e-10)  # summed in another order than numpy
