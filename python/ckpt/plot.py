"""One figure of a run: the metrics recorded at each save and statistics of
selected tensors over the steps (``python3 -m ckpt plot``).

matplotlib draws through its Agg canvas directly, so no display is needed and
the user's pyplot backend is left alone.
"""
import math
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .reader import open as open_checkpoint
from .stats import STATS, trajectories

DEFAULT_STATS = ("norm", "dist_first", "dist_prev")
MAX_DEFAULT_TENSORS = 8
# Figure geometry: two panels a row; the PNG is WIDTH x (ROW_HEIGHT * rows +
# LEGEND_HEIGHT * legend rows) inches at DPI. Quarters of an inch are exact in
# binary, so the pixel size is exactly that, never a pixel less.
COLUMNS = 2
WIDTH = 12.0
ROW_HEIGHT = 3.75
LEGEND_HEIGHT = 0.5  # per row of the tensors' legend, below the panels
DPI = 100


def default_tensors(run):
    """The floating-point tensors of the newest checkpoint, the largest first,
    at most MAX_DEFAULT_TENSORS of them: what a figure can show legibly."""
    if not run.checkpoints:
        return []
    with open_checkpoint(run.checkpoints[-1].path) as file:
        floats = [info for info in file.tensors if info.dtype.startswith(("F", "BF"))]
    floats.sort(key=lambda info: (-math.prod(info.shape), info.name))
    return sorted(info.name for info in floats[:MAX_DEFAULT_TENSORS])


def _legend_rows(count):
    return math.ceil(count / 4) if count else 0


def figure_size(panels, tensor_count):
    """(width, height) in pixels of the figure of ``panels`` panels whose
    tensor panels show ``tensor_count`` tensors."""
    rows = math.ceil(panels / COLUMNS)
    height = ROW_HEIGHT * rows + LEGEND_HEIGHT * _legend_rows(tensor_count)
    return round(WIDTH * DPI), round(height * DPI)


def _log_scale_fits(series):
    """A log axis when every value is positive and they span more than a decade."""
    values = np.concatenate([s[np.isfinite(s)] for s in series]) if series else np.array([])
    return values.size > 0 and values.min() > 0 and values.max() / values.min() > 10


def _finish_axes(axes, title, series):
    axes.set_title(title, fontsize=11)
    axes.set_xlabel("step")
    axes.grid(True, alpha=0.3)
    if _log_scale_fits(series):
        axes.set_yscale("log")


def draw(run, output, tensors=None, stats=DEFAULT_STATS):
    """Draws the figure of ``run`` into ``output`` (PNG) and returns the
    tensors shown. ``tensors``: globs (default: ``default_tensors``)."""
    steps = run.steps
    metric_names = run.metric_names()
    patterns = list(tensors) if tensors else default_tensors(run)
    curves = trajectories(run, patterns, stats) if patterns else {}
    names = sorted({name for trajectory in curves.values() for name in trajectory.values})
    panel_count = max((1 if metric_names else 0) + (len(stats) if names else 0), 1)  # 1: the "nothing" note
    width, height = figure_size(panel_count, len(names))
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    rows = math.ceil(panel_count / COLUMNS)
    legend_inches = LEGEND_HEIGHT * _legend_rows(len(names))
    figure.subplots_adjust(left=0.07, right=0.98, top=1 - 0.75 / (height / DPI), hspace=0.45, wspace=0.2,
                           bottom=(legend_inches + 0.55) / (height / DPI))
    span = f"steps {steps[0]} to {steps[-1]}" if len(steps) else "no checkpoints"
    name = os.path.basename(os.path.abspath(run.directory))
    figure.suptitle(f"run {name}: {len(steps)} checkpoints, {span}", fontsize=13)

    panel = 0
    if metric_names:
        axes = figure.add_subplot(rows, COLUMNS, 1)
        series = [run.metric(name) for name in metric_names]
        for name, values in zip(metric_names, series):
            shown = np.isfinite(values)
            axes.plot(steps[shown], values[shown], marker="o", markersize=3, label=name)
        _finish_axes(axes, "metrics recorded at each save", series)
        axes.legend(fontsize="small", loc="best")
        panel = 1
    lines = []
    for stat in stats if names else ():
        panel += 1
        axes = figure.add_subplot(rows, COLUMNS, panel)
        values = curves[stat].values
        lines = [axes.plot(steps, values[name], marker=".", markersize=4, label=name)[0] for name in names]
        _finish_axes(axes, STATS[stat], [values[name] for name in names])
    if lines:  # one legend for every tensor panel, below them, so it hides no data
        figure.legend(lines, names, loc="lower center", ncol=min(len(names), 4), fontsize="small",
                      frameon=False, bbox_to_anchor=(0.5, 0.0), title="tensors", title_fontsize="small")
    if panel == 0:
        axes = figure.add_subplot(1, 1, 1)
        axes.text(0.5, 0.5, "nothing to plot: no metrics and no tensors matched", ha="center", va="center")
        axes.set_axis_off()
    figure.savefig(output, format="png", dpi=DPI)
    return names
