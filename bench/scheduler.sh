#!/usr/bin/env bash
# The scheduler against ninja, on the same generated graphs (bench/gen_graph.py), in the same run.
#
# (a) 10,000 no-op workstreams (`isolation "none"`, a shell agent running `true`, ~20,000
#     edges): wall time and peak memory (/usr/bin/time -f "%e %M") of
#     `flow run -j 2 --progress quiet` against `ninja -j2`. Targets: wall <= 1.0x, memory <= 4x.
# (b) 120 `sleep` tasks of random durations (1..1000 ms, ~240 edges):
#     - the makespan of `flow run -j 1000` against the graph's critical path (computed here
#       from graph.json: durations and edges), target <= 1.02x; `ninja -j1000` is shown too;
#     - `flow run -j 8` against `ninja -j8`, target flow <= ninja.
# Each measurement is taken RUNS times (default 3), flow and ninja alternating, and the median
# is reported. Between runs `.flow`, `stamp/` and `.ninja_log` are removed from the graph's
# folder: moved to a trash folder that is deleted at the end, because on ext4 creating files
# within a minute or more of deleting many is several times slower in the kernel (new inodes
# skip recently deleted ones), which would charge each run for the previous one's clean-up.
# Installs ninja (and GNU time) with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
N=${N:-10000}
SLEEP_N=${SLEEP_N:-120}
SLEEP_MAX=${SLEEP_MAX:-1000}
# The workstreams' `sandbox`: "off" (the default) compares scheduling with ninja, which confines
# nothing; "on" adds the cost of starting each step in the Landlock sandbox.
SANDBOX=${SANDBOX:-off}
need() { command -v "$1" >/dev/null 2>&1 || { echo "installing $2"; (apt-get update -qq && apt-get install -y -qq "$2") >/dev/null; }; }
need ninja ninja-build
[ -x /usr/bin/time ] || { echo "installing time"; (apt-get update -qq && apt-get install -y -qq time) >/dev/null; }
# FLOW=/path/to/flow measures another build (an older one, to compare) instead of this tree's.
if [ -z "${FLOW:-}" ]; then cargo build --release --quiet --workspace --bins; fi
flow="${FLOW:-$PWD/target/release/flow}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
results="$dir/results.txt"
: >"$results"

mkdir "$dir/trash"
clean() {
    local t
    t=$(mktemp -d "$dir/trash/XXXXXX")
    for f in .flow stamp .ninja_log .ninja_deps; do [ ! -e "$1/$f" ] || mv "$1/$f" "$t/"; done
}

# measure LABEL DIR COMMAND...: runs COMMAND in DIR (from a clean state), appends
# "LABEL SECONDS MAX_RSS_KB USER_SECONDS SYSTEM_SECONDS" to the results (CPU times include
# the children: the agents, ninja's commands).
measure() {
    local label=$1 d=$2
    shift 2
    clean "$d"
    (cd "$d" && /usr/bin/time -f "%e %M %U %S" -o "$dir/time.txt" "$@" >/dev/null) ||
        { echo "$label failed" >&2; exit 1; }
    echo "$label $(cat "$dir/time.txt")" >>"$results"
    clean "$d"
}

echo "# machine: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# (a) 10,000 no-op workstreams.
python3 bench/gen_graph.py "$N" 2 "$dir/a" --sandbox "$SANDBOX"
for _ in $(seq "$RUNS"); do
    measure "a.flow" "$dir/a" "$flow" run -j 2 --progress quiet
    measure "a.ninja" "$dir/a" ninja -j2
done

# (b) 120 sleep tasks.
python3 bench/gen_graph.py "$SLEEP_N" 2 "$dir/b" --sleep "$SLEEP_MAX" --json --sandbox "$SANDBOX"
for _ in $(seq "$RUNS"); do
    measure "b.flow-j1000" "$dir/b" "$flow" run -j 1000 --progress quiet
    measure "b.ninja-j1000" "$dir/b" ninja -j1000
    measure "b.flow-j8" "$dir/b" "$flow" run -j 8 --progress quiet
    measure "b.ninja-j8" "$dir/b" ninja -j8
done

echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" "$dir/b/graph.json" "$N" "$SLEEP_N" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, secs, kb, user, system = line.split()
    rows.setdefault(label, []).append((float(secs), int(kb), float(user) + float(system)))
def med(label, i):
    return statistics.median(r[i] for r in rows[label])
def runs(label):
    return ", ".join(f"{r[0]:.2f}" for r in rows[label])
count = len(rows["a.flow"])
print(f"(median of {count} runs)")

# (a)
fw, nw = med("a.flow", 0), med("a.ninja", 0)
fm, nm = med("a.flow", 1), med("a.ninja", 1)
print(f"(a) {sys.argv[3]} no-op tasks, -j2:")
print(f"    wall:   flow {fw:.2f} s, ninja {nw:.2f} s, ratio {fw/nw:.2f} (target <= 1.0); runs: flow {runs('a.flow')}, ninja {runs('a.ninja')}")
print(f"    CPU (user+system, with children): flow {med('a.flow', 2):.2f} s, ninja {med('a.ninja', 2):.2f} s")
print(f"    memory: flow {fm/1024:.1f} MB, ninja {nm/1024:.1f} MB, ratio {fm/nm:.2f} (target <= 4)")

# (b): the critical path from the generated durations and edges.
tasks = json.load(open(sys.argv[2]))["tasks"]
finish, prev = {}, {}
for t in tasks:  # tasks come in topological order (each depends on earlier ones)
    start = max((finish[d] for d in t["deps"]), default=0)
    prev[t["name"]] = max(t["deps"], key=lambda d: finish[d]) if t["deps"] else None
    finish[t["name"]] = start + t["ms"]
end = max(finish, key=finish.get)
cp, chain = finish[end] / 1000, []
while end:
    chain.append(end)
    end = prev[end]
work = sum(t["ms"] for t in tasks) / 1000
f1, n1 = med("b.flow-j1000", 0), med("b.ninja-j1000", 0)
f8, n8 = med("b.flow-j8", 0), med("b.ninja-j8", 0)
print(f"(b) {sys.argv[4]} sleep tasks: critical path {cp:.2f} s over {len(chain)} tasks, total work {work:.1f} s")
print(f"    -j1000: flow {f1:.2f} s ({f1/cp:.3f}x the critical path, target <= 1.02), ninja {n1:.2f} s ({n1/cp:.3f}x); runs: flow {runs('b.flow-j1000')}")
print(f"    -j8:    flow {f8:.2f} s, ninja {n8:.2f} s, ratio {f8/n8:.2f} (target <= 1.0); runs: flow {runs('b.flow-j8')}, ninja {runs('b.ninja-j8')}")
print(f"            lower bound max(critical path, work/8) = {max(cp, work/8):.2f} s")
PY
