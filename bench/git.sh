#!/usr/bin/env bash
# flow's git work against the same work done with the git CLI in a bash loop, in the same run.
#
# A generated repository of 3,000 files in 300 folders (10 files of 20 lines each; packed with
# `git gc`, as a cloned repository would be), or with SOURCE=/path/to/a/repository a clone of
# a real one (its default branch, its own `.gitattributes`; bench/git_real.sh), and a workflow
# of 16 workstreams, each owning its own folder and changing one file in it (shell agents, no
# verify). Both sides do the same thing, timed end to end:
#   flow:      `flow prepare` (16 worktrees and branches), one small commit per workstream
#              made with git in its worktree, `flow merge` (all 16, into integration/bench);
#   bash loop: `git worktree add -b ...` x16, the same commit in each, then
#              `git worktree add -b integration/bench` and `git merge --no-edit` of each branch,
#              one after another, in that worktree.
# Each run starts from a fresh `cp -a` of the same pristine repository (not timed) in a folder
# of its own. After one warm-up run of each side, RUNS runs each (default 3), alternating; the
# median is reported with the time of each phase. After every run the script checks that the
# integration branch holds all 16 changes. Runs are deleted only at the end: on ext4, creating
# files within a minute or more of deleting many is several times slower in the kernel (new
# inodes skip recently deleted ones), which would charge each run for the previous one's
# clean-up. TMPDIR=/dev/shm runs it on tmpfs, without the disk. Target: flow <= 0.5x the loop.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
WS=16
need() { command -v "$1" >/dev/null 2>&1 || { echo "installing $2"; (apt-get update -qq && apt-get install -y -qq "$2") >/dev/null; }; }
need git git
# FLOW=/path/to/flow measures another build (an older one, to compare) instead of this tree's.
if [ -z "${FLOW:-}" ]; then cargo build --release --quiet; fi
flow="${FLOW:-$PWD/target/release/flow}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.com
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.com
export GIT_CONFIG_NOSYSTEM=1 HOME="$dir"   # no user or system git configuration on either side

# The pristine repository: generated, or a clone of SOURCE (a real repository: its default
# branch, with its own `.gitattributes`).
if [ -n "${SOURCE:-}" ]; then
    git clone -q "$SOURCE" "$dir/pristine"
    git -C "$dir/pristine" branch -M main
    git -C "$dir/pristine" gc -q
    what="$(git -C "$dir/pristine" ls-files | wc -l) files of $SOURCE"
else
    mkdir "$dir/pristine"
    python3 - "$dir/pristine" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(300):
    os.makedirs(os.path.join(root, f"d{d:03}"))
    for f in range(10):
        with open(os.path.join(root, f"d{d:03}", f"f{f}.txt"), "w") as fh:
            fh.write("".join(f"line {k} of d{d:03}/f{f}.txt\n" for k in range(20)))
PY
    # ATTRIBUTES="..." gives the repository that `.gitattributes` (bench/git_attributes.sh).
    if [ -n "${ATTRIBUTES:-}" ]; then printf '%b' "$ATTRIBUTES" >"$dir/pristine/.gitattributes"; fi
    git -C "$dir/pristine" init -q -b main
    git -C "$dir/pristine" add -A
    git -C "$dir/pristine" commit -qm "3,000 files"
    git -C "$dir/pristine" gc -q
    what="3,000 files"
fi

# The workflow: workstream wNN owns a folder of its own (generated: d(NN*18); a real
# repository: WS folders holding files, none inside another) and changes one file in it.
names=() folders=() files=()
while read -r folder file; do folders+=("$folder"); files+=("$file"); done < <(
    git -C "$dir/pristine" ls-files | python3 -c '
import sys, collections
ws = int(sys.argv[1])
first = collections.OrderedDict()
for path in sys.stdin.read().split("\n"):
    if "/" in path and not path.startswith(".") and " " not in path:
        first.setdefault(path.rsplit("/", 1)[0], path)
chosen = []
for folder in sorted(first, key=lambda f: (-f.count("/"), f)):  # the deepest first
    if any(folder.startswith(c + "/") or c.startswith(folder + "/") for c in chosen):
        continue
    chosen.append(folder)
chosen.sort()
step = max(1, len(chosen) // ws)
for folder in chosen[::step][:ws]:
    print(folder, first[folder])
' "$WS")
[ "${#folders[@]}" -eq "$WS" ] || { echo "the repository has fewer than $WS separate folders" >&2; exit 1; }
{
    printf 'workflow "bench" {\n    base "main"\n    into "integration/bench"\n    max-parallel %d\n}\n' "$WS"
    printf 'agent "shell" {\n    command "sh" "-c" "{script}"\n}\n'
    printf 'defaults {\n    agent "shell"\n}\n'
    for i in $(seq 0 $((WS - 1))); do
        names+=("$(printf 'w%02d' "$i")")
        printf 'workstream "%s" {\n    script "true"\n    owns "%s/**"\n}\n' "${names[i]}" "${folders[i]}"
    done
} >"$dir/parallel.kdl"
"$flow" check "$dir/parallel.kdl" >/dev/null 2>&1 || { "$flow" check "$dir/parallel.kdl"; exit 1; }
export NAMES="${names[*]}" FILES="${files[*]}"

# One small commit in worktree $1 for workstream index $2.
cat >"$dir/commit.sh" <<'SH'
set -e
read -ra names <<<"$NAMES"; read -ra files <<<"$FILES"
cd "$1"
echo "change by ${names[$2]}" >>"${files[$2]}"
git commit -qam "${names[$2]}: one change"
SH

# Each side writes the time after each phase (worktrees, commits, merges) to RUN_DIR/phases.
cat >"$dir/flow.sh" <<SH
set -e
read -ra names <<<"\$NAMES"
cd "\$1"
"$flow" -C repo prepare "$dir/parallel.kdl" >/dev/null
echo "\$EPOCHREALTIME" >>phases
for i in "\${!names[@]}"; do bash "$dir/commit.sh" "repo-worktrees/bench/\${names[i]}" "\$i"; done
echo "\$EPOCHREALTIME" >>phases
"$flow" -C repo merge "$dir/parallel.kdl" >/dev/null
SH

cat >"$dir/loop.sh" <<SH
set -e
read -ra names <<<"\$NAMES"
cd "\$1/repo"
for n in "\${names[@]}"; do git worktree add -q -b "ws/\$n" "../wt/\$n" main; done
echo "\$EPOCHREALTIME" >>../phases
for i in "\${!names[@]}"; do bash "$dir/commit.sh" "../wt/\${names[i]}" "\$i"; done
echo "\$EPOCHREALTIME" >>../phases
git worktree add -q -b integration/bench ../wt/integration main
for n in "\${names[@]}"; do git -C ../wt/integration merge -q --no-edit "ws/\$n"; done
SH

# check RUN_DIR: the integration branch holds every workstream's change.
check() {
    local i got
    for i in "${!names[@]}"; do
        got=$(git -C "$1/repo" show "integration/bench:${files[i]}" | tail -n 1)
        [ "$got" = "change by ${names[i]}" ] ||
            { echo "$1: integration/bench lacks ${names[i]}'s change (last line: $got)" >&2; exit 1; }
    done
}

results="$dir/results.txt"
: >"$results"
# measure LABEL SCRIPT: a fresh copy of the pristine repository, then the timed script.
measure() {
    local run
    run=$(mktemp -d "$dir/run-$1-XXXXXX")
    cp -a "$dir/pristine" "$run/repo"
    sync
    local t0 t1
    t0=$EPOCHREALTIME
    bash "$2" "$run" || { echo "$1 failed" >&2; exit 1; }
    t1=$EPOCHREALTIME
    check "$run"
    echo "$1 $t0 $(tr '\n' ' ' <"$run/phases")$t1" >>"$results"
}

echo "# machine: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# One warm-up run of each side (checked, not counted): page cache, and the first run after
# another benchmark's clean-up would otherwise pay for it.
measure flow "$dir/flow.sh"
measure loop "$dir/loop.sh"
: >"$results"
for _ in $(seq "$RUNS"); do
    measure flow "$dir/flow.sh"
    measure loop "$dir/loop.sh"
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg); all $WS changes found on both sides in every run"
python3 - "$results" "$what" <<'PY'
import statistics, sys
t, phases = {}, {}
for line in open(sys.argv[1]):
    label, *marks = line.split()
    marks = [float(m) for m in marks]  # start, after worktrees, after commits, end
    t.setdefault(label, []).append(marks[-1] - marks[0])
    phases.setdefault(label, []).append([b - a for a, b in zip(marks, marks[1:])])
def show(xs):
    return ", ".join(f"{x:.2f}" for x in xs)
def split(label):
    return " + ".join(f"{statistics.median(p[k] for p in phases[label]):.2f}" for k in range(3))
f, l = statistics.median(t["flow"]), statistics.median(t["loop"])
print(f"(median of {len(t['flow'])} runs) {sys.argv[2]}, 16 workstreams; phases: worktrees + commits + merges")
print(f"    flow prepare + commits + flow merge:         {f:.2f} s = {split('flow')} (runs: {show(t['flow'])})")
print(f"    git worktree add + commits + git merge loop: {l:.2f} s = {split('loop')} (runs: {show(t['loop'])})")
print(f"    ratio {f/l:.2f} (target <= 0.5)")
PY
