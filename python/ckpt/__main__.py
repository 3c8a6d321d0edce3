"""python3 -m ckpt: look at a run or a file from the shell.

    python3 -m ckpt plot RUN -o run.png [--tensor GLOB ...] [--stat STAT ...] [--html report.html]
    python3 -m ckpt info FILE|DIR [--json]

Exit status: 0 on success, 1 when ckpt refuses a file or a run, 2 on a usage error.
"""
import argparse
import json
import sys

from . import distributed
from . import reader
from .errors import Error
from .format import byte_size
from .naming import DEFAULT_TEMPLATE
from .run import open_run
from .stats import STATS


def _plot(arguments):
    from . import report
    run = open_run(arguments.run, arguments.template)
    shown = run.plot(arguments.output, arguments.tensor, arguments.stat)
    print(f"wrote {arguments.output}: {len(run.checkpoints)} checkpoints, {len(run.metric_names())} metrics, "
          f"{len(shown)} tensors")
    if arguments.html:
        report.write(run, arguments.output, arguments.html)
        print(f"wrote {arguments.html}")


def _info_directory(arguments):
    """A distributed checkpoint's index, in the C++ tool's `ckpt info DIR` shape."""
    with distributed.Directory(arguments.file, verify_checksums=False) as checkpoint:
        index = checkpoint.index
        tensors = [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "bytes": byte_size(t.dtype, t.shape),
                    "pieces": len(t.pieces), "files": len({piece.file for piece in t.pieces})}
                   for t in index.tensors.values()]
        report = {"directory": checkpoint.path, "format": "ckpt distributed", "format_version": index.format_version,
                  "step": index.step, "world_size": index.world_size, "stored_bytes": index.total_size,
                  "files": [{"name": name, "bytes": size} for name, (size, _) in sorted(index.files.items())],
                  "tensors": tensors, "metadata": index.metadata}
    if arguments.json:
        print(json.dumps(report, indent=2))
        return
    print(f"directory: {report['directory']} (ckpt distributed checkpoint, format {index.format_version})\n"
          f"step:      {index.step}, saved by {index.world_size} ranks into {len(index.files)} files of "
          f"{checkpoint.file_size} bytes\n"
          f"tensors:   {len(tensors)}, {sum(t['bytes'] for t in tensors)} bytes in "
          f"{sum(t['pieces'] for t in tensors)} pieces\n")
    _print_table(["NAME", "DTYPE", "SHAPE", "BYTES", "PIECES", "FILES"],
                 [[t["name"], t["dtype"], str(t["shape"]), str(t["bytes"]), str(t["pieces"]), str(t["files"])]
                  for t in tensors])
    print("\nmetadata: " + json.dumps(index.metadata, indent=2))


def _print_table(header, rows):
    rows = [header] + rows
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _info(arguments):
    if distributed.is_checkpoint_directory(arguments.file):
        return _info_directory(arguments)
    with reader.File(arguments.file, verify_checksums=False) as file:
        tensors = [{"name": info.name, "dtype": info.dtype, "shape": list(info.shape), "codec": info.codec,
                    "bytes": info.nbytes, "stored_bytes": info.stored_bytes} for info in file.tensors]
        if arguments.json:
            print(json.dumps({"file": file.path, "format_version": file.format_version, "tensors": tensors,
                              "metadata": file.metadata if file.written_by_ckpt else file.raw_metadata}, indent=2))
            return
        kind = f"ckpt format {file.format_version}" if file.written_by_ckpt else "safetensors"
        print(f"file:     {file.path} ({kind})\ntensors:  {len(tensors)}\n")
        _print_table(["NAME", "DTYPE", "SHAPE", "BYTES", "STORED", "CODEC"],
                     [[t["name"], t["dtype"], str(t["shape"]), str(t["bytes"]), str(t["stored_bytes"]), t["codec"]]
                      for t in tensors])
        print("\nmetadata: " + json.dumps(file.metadata if file.written_by_ckpt else file.raw_metadata, indent=2))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m ckpt", description="Look at ckpt checkpoints and runs.")
    commands = parser.add_subparsers(dest="command", required=True)
    plot = commands.add_parser("plot", help="draw a run's metrics and tensor statistics over the steps")
    plot.add_argument("run", help="a CheckpointManager's directory")
    plot.add_argument("-o", "--output", required=True, help="the PNG to write")
    plot.add_argument("--tensor", action="append", metavar="GLOB",
                      help="tensors to draw ('*' matches '/' too); repeat for more. Default: the largest "
                           "floating-point tensors of the newest checkpoint, at most 8")
    plot.add_argument("--stat", action="append", choices=list(STATS),
                      help="statistics to draw, one panel each (default: norm, dist_first, dist_prev)")
    plot.add_argument("--template", default=DEFAULT_TEMPLATE, help="the manager's name_template")
    plot.add_argument("--html", metavar="REPORT", help="also write an HTML report with the figure and tables")
    plot.set_defaults(handler=_plot)
    info = commands.add_parser("info", help="a file's tensors and metadata (the header only), or a distributed "
                                            "checkpoint directory's (its index)")
    info.add_argument("file", help="a checkpoint file, or a distributed checkpoint directory")
    info.add_argument("--json", action="store_true", help="one JSON object")
    info.set_defaults(handler=_info)
    arguments = parser.parse_args(argv)
    try:
        arguments.handler(arguments)
    except Error as error:
        print(f"python3 -m ckpt {arguments.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
