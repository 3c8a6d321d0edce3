"""`ckpt trajectory`'s CSV, loaded as a Python user loads it (the csv module
and float()), agrees with the Python package's trajectories of the same run:
the same rows and steps, the metrics, and every statistic of every tensor to
1e-12 relative, NaN where the package says NaN.

usage: PYTHONPATH=python trajectory_python.py RUN CSV   (exit 0 when they agree)"""
import csv
import sys

import numpy as np

import ckpt
from ckpt import stats

run_directory, csv_path = sys.argv[1], sys.argv[2]
with open(csv_path, newline="", encoding="utf-8") as file:
    header, *rows = list(csv.reader(file))
columns = {name: np.array([float(row[index]) for row in rows]) for index, name in enumerate(header)}

run = ckpt.open_run(run_directory)
np.testing.assert_array_equal(columns["step"], run.steps, err_msg="one row per checkpoint, oldest first")
np.testing.assert_array_equal(columns["epoch"], [np.nan if entry.epoch is None else entry.epoch for entry in run])
np.testing.assert_array_equal(columns["time"], [entry.time for entry in run])
for metric in run.metric_names():
    np.testing.assert_array_equal(columns[metric], run.metric(metric), err_msg=metric)

tensor_columns = [name for name in header if ":" in name]
wanted = list(dict.fromkeys(name.rsplit(":", 1)[1] for name in tensor_columns))
computed = stats.trajectories(run, ["*"], wanted)
expected_columns = [f"{tensor}:{stat}" for tensor in run.tensor_names() for stat in wanted]
if tensor_columns != expected_columns:
    sys.exit(f"columns {tensor_columns}, expected {expected_columns}")
for name in tensor_columns:
    tensor, stat = name.rsplit(":", 1)
    np.testing.assert_allclose(columns[name], computed[stat][tensor], rtol=1e-12, atol=0, equal_nan=True,
                               err_msg=name)
print(f"{len(rows)} rows, {len(tensor_columns)} statistics agree")
