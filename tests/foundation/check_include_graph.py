"""Checks the shape of include/ckpt that docs/architecture.md describes.

Reads the #include lines of every header and fails (exit 1, one line per
problem) when:
  - folders include each other in a cycle (each top-level header counts as a
    node of its own, each folder as one node);
  - a vocabulary header includes more than the standard library and the
    std-only helpers of ckpt/detail/;
  - <ckpt/ckpt.hpp> does not reach every public header that needs no optional
    dependency, except distributed checkpoints, which <ckpt/distributed.hpp>
    reaches instead (of ckpt/distributed/, <ckpt/ckpt.hpp> reaches only the
    shard descriptors that describe() names: what most programs never run
    stays out of the include most programs use);
  - a forwarding header (kept at an old path) does more than include the new one;
  - zstd is named outside the two headers that own it, or <mpi.h> included
    outside the MPI adapter;
  - a public header outside adapters/ holds more than a few lines of
    `namespace detail` (machinery belongs under ckpt/detail/).

Usage: python3 check_include_graph.py INCLUDE_DIR
"""

import os
import re
import sys

VOCABULARY = ["ckpt/version.hpp", "ckpt/error.hpp", "ckpt/dtype.hpp", "ckpt/tensor.hpp", "ckpt/names.hpp",
              "ckpt/codecs/codec.hpp"]
# Headers that bring a dependency of their own: the umbrella leaves them out.
OPTIONAL = re.compile(r"^ckpt/(adapters/|interop/(npz|hdf5)\.hpp|detail/interop/(npz|hdf5)_)")
FORWARDERS = {"ckpt/npz.hpp": "ckpt/interop/npz.hpp", "ckpt/hdf5.hpp": "ckpt/interop/hdf5.hpp",
              "ckpt/tensor_set.hpp": "ckpt/interop/tensor_set.hpp", "ckpt/eigen.hpp": "ckpt/adapters/eigen.hpp",
              "ckpt/torch.hpp": "ckpt/adapters/torch.hpp"}
ZSTD_MACRO_OWNER = "ckpt/codecs/registry.hpp"
ZSTD_HEADER_OWNER = "ckpt/codecs/zstd.hpp"
MPI_HEADER_OWNER = "ckpt/adapters/mpi.hpp"
DISTRIBUTED_UMBRELLA = "ckpt/distributed.hpp"
DISTRIBUTED_IN_CORE = "ckpt/distributed/sharding.hpp"
MAX_DETAIL_LINES_IN_PUBLIC_HEADER = 80

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.MULTILINE)


def read_headers(include_dir):
    headers = {}
    for root, _, files in os.walk(os.path.join(include_dir, "ckpt")):
        for name in files:
            if name.endswith(".hpp"):
                path = os.path.join(root, name)
                headers[os.path.relpath(path, include_dir)] = open(path, encoding="utf-8").read()
    return headers


def node_of(header):
    folder = os.path.dirname(header)
    return header if folder == "ckpt" else folder + "/"


def find_cycle(graph):
    """A list of nodes forming a cycle, or None (iterative three-colour DFS)."""
    colour = {node: 0 for node in graph}
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, successors = stack[-1]
            advanced = False
            for successor in successors:
                if colour.get(successor, 2) == 1:
                    return path[path.index(successor):] + [successor]
                if colour.get(successor, 2) == 0:
                    colour[successor] = 1
                    path.append(successor)
                    stack.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
            if not advanced:
                colour[node] = 2
                path.pop()
                stack.pop()
    return None


def detail_lines(text):
    count, start = 0, None
    for number, line in enumerate(text.split("\n")):
        if re.match(r"\s*namespace (ckpt::)?detail \{", line):
            start = number
        elif start is not None and re.match(r"\s*\}\s*// namespace (ckpt::)?detail", line):
            count += number - start
            start = None
    return count


def main(include_dir):
    headers = read_headers(include_dir)
    includes = {header: INCLUDE.findall(text) for header, text in headers.items()}
    ckpt_includes = {header: [i for i in found if i.startswith("ckpt/")] for header, found in includes.items()}
    problems = []

    for header, found in ckpt_includes.items():
        for included in found:
            if included not in headers:
                problems.append(f"{header} includes {included}, which does not exist")

    graph = {}
    for header, found in ckpt_includes.items():
        node = node_of(header)
        graph.setdefault(node, set())
        for included in found:
            if node_of(included) != node:
                graph[node].add(node_of(included))
    cycle = find_cycle(graph)
    if cycle:
        problems.append("folders include each other in a cycle: " + " -> ".join(cycle))

    for header in VOCABULARY:
        if header not in headers:
            problems.append(f"vocabulary header {header} is missing")
            continue
        for included in includes[header]:
            allowed = ("/" not in included and "." not in included) or included in VOCABULARY or \
                included == "ckpt/detail/text.hpp"
            if not allowed:
                problems.append(f"vocabulary header {header} includes {included}")

    def reached_from(umbrella):
        reached, pending = set(), [umbrella]
        while pending:
            header = pending.pop()
            if header not in reached:
                reached.add(header)
                pending.extend(ckpt_includes.get(header, []))
        return reached

    reached = reached_from("ckpt/ckpt.hpp")
    reached_by_distributed = reached_from(DISTRIBUTED_UMBRELLA)
    for header in sorted(headers):
        public = not header.startswith("ckpt/detail/") and header not in FORWARDERS
        distributed = header == DISTRIBUTED_UMBRELLA or header.startswith("ckpt/distributed/")
        if public and not OPTIONAL.match(header) and header not in reached:
            if not distributed:
                problems.append(f"<ckpt/ckpt.hpp> does not reach {header}")
            elif header not in reached_by_distributed:
                problems.append(f"<{DISTRIBUTED_UMBRELLA}> does not reach {header}")
        if distributed and header in reached and header != DISTRIBUTED_IN_CORE:
            problems.append(f"<ckpt/ckpt.hpp> reaches {header}, which belongs to <{DISTRIBUTED_UMBRELLA}> alone")
        if header in reached and OPTIONAL.match(header):
            problems.append(f"<ckpt/ckpt.hpp> reaches {header}, which needs an optional dependency")

    for old, new in FORWARDERS.items():
        if old not in headers:
            problems.append(f"{old} is gone; code written for it no longer compiles")
            continue
        code = [line for line in headers[old].split("\n") if line.strip() and not line.startswith("//")]
        if code != ["#pragma once", f'#include "{new}"']:
            problems.append(f"forwarding header {old} should only include {new}")

    for header, text in headers.items():
        if "CKPT_WITH_ZSTD" in re.sub(r"//[^\n]*", "", text) and header != ZSTD_MACRO_OWNER:
            problems.append(f"{header} tests CKPT_WITH_ZSTD; only {ZSTD_MACRO_OWNER} may")
        if "zstd.h" in includes[header] and header != ZSTD_HEADER_OWNER:
            problems.append(f"{header} includes <zstd.h>; only {ZSTD_HEADER_OWNER} may")
        if "mpi.h" in includes[header] and header != MPI_HEADER_OWNER:
            problems.append(f"{header} includes <mpi.h>; only {MPI_HEADER_OWNER} may")
        public = not header.startswith("ckpt/detail/") and not header.startswith("ckpt/adapters/")
        lines = detail_lines(text)
        if public and lines > MAX_DETAIL_LINES_IN_PUBLIC_HEADER:
            problems.append(f"{header} holds {lines} lines of namespace detail (at most "
                            f"{MAX_DETAIL_LINES_IN_PUBLIC_HEADER}); move them under ckpt/detail/")

    for problem in problems:
        print(problem)
    print(f"{len(headers)} headers, {len(graph)} nodes: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
