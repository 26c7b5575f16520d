#!/usr/bin/env bash
# The link graph of sparcol's library targets, generated (never drawn by hand) from `cmake --graphviz`
# of a scratch configure of this source tree: libraries only (no tests, programs or benchmarks),
# sparcol's own targets only, as a Mermaid flowchart. docs/architecture.md holds the committed one
# between the link-graph markers; the CTest test layers_link_graph regenerates and compares it.
#
# Usage: scripts/link-graph.sh [--write FILE | --check FILE] [cmake -D options...]
#   (no mode)      print the graph block
#   --write FILE   replace the block between the markers in FILE
#   --check FILE   fail (exit 1, with a diff) when FILE's block differs; exit 77 (skipped) when FILE
#                  was generated with other optional targets (CUDA, NCCL, OpenBLAS) than this
#                  configure finds, since the graph then cannot match
# The cmake options go to the scratch configure, e.g. -DSPARCOL_ENABLE_CUDA=OFF.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=print
file=
case "${1:-}" in
  --write | --check) mode=${1#--}; file=$2; shift 2 ;;
esac

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cat >"$scratch/CMakeGraphVizOptions.cmake" <<'OPTS'
set(GRAPHVIZ_EXECUTABLES FALSE)
set(GRAPHVIZ_EXTERNAL_LIBS FALSE)
set(GRAPHVIZ_GENERATE_PER_TARGET FALSE)
set(GRAPHVIZ_GENERATE_DEPENDERS FALSE)
OPTS
if ! cmake -S "$root" -B "$scratch" --graphviz="$scratch/sparcol.dot" -DSPARCOL_BUILD_TESTS=OFF \
     -DSPARCOL_BUILD_BENCH=OFF -DSPARCOL_BUILD_APPS=OFF "$@" >"$scratch/configure.log" 2>&1; then
  cat "$scratch/configure.log" >&2
  echo "link-graph: the scratch configure failed" >&2
  exit 1
fi

python3 - "$scratch/sparcol.dot" "$mode" "$file" <<'PY'
import re, sys

dot, mode, path = sys.argv[1], sys.argv[2], sys.argv[3]
begin, end = "<!-- link-graph:begin -->", "<!-- link-graph:end -->"
optional = ["sparcol_cuda", "sparcol_nccl", "sparcol_train"]

nodes, edges = {}, set()
for line in open(dot):
    m = re.match(r'\s*"(node\d+)" \[ label = "([^"\\]+)', line)
    if m:
        nodes[m.group(1)] = m.group(2)
        continue
    m = re.match(r'\s*"(node\d+)" -> "(node\d+)"(?: \[ style = (\w+) \])?', line)
    if m:
        edges.add((m.group(1), m.group(2), m.group(3) or "solid"))

def ours(name):  # sparcol's libraries; sparcol_warnings is a compile-option bundle, not a layer
    return re.fullmatch(r"sparcol(_[a-z]+)?", name) is not None and name != "sparcol_warnings"

kind = {"solid": "-->", "dashed": "-->", "dotted": "-.->"}
lines = sorted(f"  {nodes[a]} {kind[s]} {nodes[b]}" for a, b, s in edges
               if ours(nodes[a]) and ours(nodes[b]))
have = sorted(t for t in optional if t in nodes.values())
block = "\n".join([
    begin,
    f"Optional targets in this graph: {', '.join(have) if have else 'none'}.",
    "",
    "```mermaid",
    "flowchart TD",
    *lines,
    "```",
    end,
])

if mode == "print":
    print(block)
    sys.exit(0)
text = open(path).read()
if begin not in text or end not in text:
    sys.exit(f"link-graph: {path} has no {begin} ... {end} block")
head, rest = text.split(begin, 1)
old, tail = rest.split(end, 1)
old = begin + old + end
if mode == "write":
    open(path, "w").write(head + block + tail)
    sys.exit(0)
if old == block:
    print(f"link-graph: {path} matches the build")
    sys.exit(0)
old_have = re.search(r"Optional targets in this graph: ([^.]*)\.", old)
if old_have and old_have.group(1) != (", ".join(have) if have else "none"):
    print(f"link-graph: skipped: {path} shows a build with {old_have.group(1)}; this configure has "
          f"{', '.join(have) if have else 'none'}")
    sys.exit(77)
import difflib
sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), block.splitlines(True),
                                           f"{path} (committed)", "generated"))
print(f"\nlink-graph: {path} is stale: run scripts/link-graph.sh --write {path}")
sys.exit(1)
PY
