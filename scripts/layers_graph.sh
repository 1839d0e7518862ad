#!/usr/bin/env bash
# docs/layers.svg: the picture of rnnkit's layers, drawn from the CMake targets themselves
# (cmake --graphviz, then Debian's graphviz): each library and program and the targets it links.
# External libraries, tests, benchmarks, fuzzers and interface-only targets are left out.
#   scripts/layers_graph.sh [OUTPUT.svg]     (default docs/layers.svg)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$src/docs/layers.svg}
command -v dot > /dev/null || { echo "layers_graph: dot is missing (scripts/setup.sh installs graphviz)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/CMakeGraphVizOptions.cmake" <<'CMAKE'
set(GRAPHVIZ_GRAPH_NAME "rnnkit")
set(GRAPHVIZ_EXTERNAL_LIBS FALSE)
set(GRAPHVIZ_INTERFACE_LIBS FALSE)
set(GRAPHVIZ_GENERATE_PER_TARGET FALSE)
set(GRAPHVIZ_GENERATE_DEPENDERS FALSE)
set(GRAPHVIZ_IGNORE_TARGETS "_tests$;^fuzz_;_bench$;^rnnkit_test_;_dist_worker$;_python_reference$;^rnnkit_warnings$")
CMAKE
# A configure of its own (the graph needs no build); the options file is read from its folder.
cmake -S "$src" -B "$work" -G Ninja -DCMAKE_BUILD_TYPE=Release --graphviz="$work/rnnkit.dot" \
  > "$work/configure.log" 2>&1 || { cat "$work/configure.log" >&2; exit 1; }
# Top to bottom, as docs/architecture.md lists the layers: programs above what they link.
sed -i 's/^digraph "rnnkit" {/digraph "rnnkit" {\n  rankdir = BT;\n  node [fontname = "sans-serif", fontsize = 11];/' \
  "$work/rnnkit.dot"
# cmake 3.25 adds a legend of node shapes, and draws the Python module linking itself: the
# picture keeps only the targets and their links to others.
awk '/^subgraph clusterLegend/ {skip = 1} skip && /^}/ {skip = 0; next} $1 == $3 && $2 == "->" {next} !skip' "$work/rnnkit.dot" > "$work/graph.dot"
dot -T"${out##*.}" "$work/graph.dot" -o "$out"
echo "layers_graph: wrote $out ($(grep -c -- '->' "$work/graph.dot") links)" >&2
