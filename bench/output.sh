#!/usr/bin/env bash
# flow with an agent that prints as fast as it can, against `cat > file` of the same bytes, in
# the same run.
#
# One workflow, one shell agent (`isolation "none"`) printing SIZE bytes (default 300 MB):
#   lines: many lines of 88 bytes (`yes ... | head -c SIZE`);
#   line:  one line of SIZE bytes (`head -c SIZE /dev/zero | tr '\0' a`);
#   nul:   SIZE NUL bytes, one line (`head -c SIZE /dev/zero`).
# Each case runs `flow run --progress quiet` under `/usr/bin/time -f "%e %M"`: flow's wall time
# and peak memory (target: under 100 MB in every case). The same generator piped into
# `cat > file` is the reference: how fast the output goes to a file when nothing but a copy
# stands in between. Speeds are SIZE / wall time, so flow's include its start and its end
# (the log assembled from its head and its tail). The size of flow's log is shown too (64 MiB
# at most with the default cap). Each measurement is taken RUNS times (default 3), the two
# sides alternating, and the median is reported.
# Installs GNU time with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SIZE=${SIZE:-300000000}
[ -x /usr/bin/time ] || { echo "installing time"; (apt-get update -qq && apt-get install -y -qq time) >/dev/null; }
# FLOW=/path/to/flow measures another build (an older one, to compare) instead of this tree's.
if [ -z "${FLOW:-}" ]; then cargo build --release --quiet; fi
flow="${FLOW:-${CARGO_TARGET_DIR:-$PWD/target}/release/flow}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
results="$dir/results.txt"
: >"$results"

generator() {
    case $1 in
        lines) echo "yes 'flow bench: a line of agent output, as long as a short JSON event would be (88 B)' | head -c $SIZE" ;;
        line) echo "head -c $SIZE /dev/zero | tr '\\0' a" ;;
        nul) echo "head -c $SIZE /dev/zero" ;;
    esac
}

# workflow CASE: a folder with a workflow whose one workstream prints the case's output.
workflow() {
    local d="$dir/$1"
    mkdir -p "$d"
    cat >"$d/parallel.kdl" <<EOF
workflow "output" {
    max-parallel 1
}
agent "shell" {
    command "sh" "-c" "{script}"
    output "text"
}
defaults {
    agent "shell"
    isolation "none"
}
workstream "talk" {
    script #"$(generator "$1")"#
}
EOF
}

echo "# machine: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for case in lines line nul; do
    workflow "$case"
    d="$dir/$case"
    for run in $(seq "$RUNS"); do
        rm -rf "$d/.flow"
        (cd "$d" && /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$flow" run --progress quiet >/dev/null) ||
            { echo "$case: flow run failed" >&2; exit 1; }
        log=$(echo "$d"/.flow/runs/*/logs/talk.log)
        echo "$case.flow $(cat "$dir/time.txt") $(stat -c %s "$log")" >>"$results"
        rm -rf "$d/.flow"
        /usr/bin/time -f "%e %M" -o "$dir/time.txt" sh -c "$(generator "$case") | cat > '$dir/cat.out'"
        echo "$case.cat $(cat "$dir/time.txt") $(stat -c %s "$dir/cat.out")" >>"$results"
        rm -f "$dir/cat.out"
    done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$results" "$SIZE" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, secs, kb, size = line.split()
    rows.setdefault(label, []).append((float(secs), int(kb), int(size)))
mb = int(sys.argv[2]) / 1e6
def med(label, i):
    return statistics.median(r[i] for r in rows[label])
print(f"(median of {len(rows['lines.flow'])} runs; {mb:.0f} MB printed per run)")
for case in ["lines", "line", "nul"]:
    fw, cw = max(med(f"{case}.flow", 0), 0.01), max(med(f"{case}.cat", 0), 0.01)
    fm = med(f"{case}.flow", 1) / 1024
    log = med(f"{case}.flow", 2) / 2**20
    runs = ", ".join(f"{r[0]:.2f}" for r in rows[f"{case}.flow"])
    print(f"{case:>5}: flow {fw:.2f} s = {mb / fw:.0f} MB/s, cat {cw:.2f} s = {mb / cw:.0f} MB/s, "
          f"ratio {fw / cw:.2f}; flow's peak memory {fm:.1f} MB (target < 100); "
          f"log {log:.1f} MiB; flow runs: {runs}")
PY
