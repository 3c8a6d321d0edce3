"""An HTML page of a run: the figure of plot.py and a table of the checkpoints
(``python3 -m ckpt plot RUN -o run.png --html report.html``). One file: the
figure is embedded, so the page can be mailed or archived as it is."""
import base64
import datetime
import html

from .reader import open as open_checkpoint


def _utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _human_bytes(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def _table(header, rows):
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write(run, png_path, output):
    """Writes the report of ``run`` with the figure at ``png_path`` to ``output``."""
    with open(png_path, "rb") as png:
        image = base64.b64encode(png.read()).decode("ascii")
    metric_names = run.metric_names()
    checkpoints = _table(
        ["step", "epoch", "time (UTC)", "size", *metric_names, "file"],
        [[entry.step, "-" if entry.epoch is None else entry.epoch, _utc(entry.time), _human_bytes(entry.bytes),
          *(f"{entry.metrics[name]:.6g}" if name in entry.metrics else "-" for name in metric_names),
          entry.path] for entry in run.checkpoints])
    sections = [f"<h2>Checkpoints ({len(run.checkpoints)})</h2>", checkpoints]
    if run.checkpoints:
        newest = run.checkpoints[-1]
        with open_checkpoint(newest.path) as file:
            # A distributed checkpoint's index does not record each tensor's stored bytes: "-".
            rows = [[info.name, info.dtype, "[" + ", ".join(map(str, info.shape)) + "]", info.codec,
                     _human_bytes(info.nbytes), "-" if info.stored_bytes is None else _human_bytes(info.stored_bytes)]
                    for info in file.tensors]
        sections += [f"<h2>Tensors of step {newest.step}</h2>",
                     _table(["name", "dtype", "shape", "codec", "bytes", "stored"], rows)]
    title = html.escape(f"ckpt run {run.directory}")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>{title}</h1>
<img alt="metrics and tensor statistics over the steps" src="data:image/png;base64,{image}">
{"".join(sections)}
</body></html>
"""
    with open(output, "w", encoding="utf-8") as file:
        file.write(page)
