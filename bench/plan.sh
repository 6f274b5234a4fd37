#!/usr/bin/env bash
# Times `flow plan --json` on a generated 5,000-workstream workflow against `ninja -n` on the
# equivalent build.ninja (same graph, ~10,000 edges), in the same run, and prints the ratio.
# Installs ninja and hyperfine with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-5000}
need() { command -v "$1" >/dev/null 2>&1 || { echo "installing $2"; (apt-get update -qq && apt-get install -y -qq "$2") >/dev/null; }; }
need ninja ninja-build
need hyperfine hyperfine
cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 bench/gen_graph.py "$N" 2 "$dir"
flow="$PWD/target/release/flow"
(cd "$dir" && ninja -n >/dev/null)   # warm up and check the file
hyperfine --warmup 3 --runs 20 --export-json "$dir/times.json" \
    -n "flow plan --json" "$flow plan $dir/parallel.kdl --json > /dev/null" \
    -n "ninja -n" "cd $dir && ninja -n > /dev/null"
python3 - "$dir/times.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
f, n = r["flow plan --json"]["mean"], r["ninja -n"]["mean"]
print(f"flow plan --json: {f*1000:.1f} ms, ninja -n: {n*1000:.1f} ms, ratio {f/n:.2f} (target <= 1.0)")
PY
