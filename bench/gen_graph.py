#!/usr/bin/env python3
"""Generates the same random DAG as a flow workflow and as a build.ninja.

usage: gen_graph.py N EDGES_PER_NODE OUT_DIR [--sleep MAX_MS] [--isolation none|worktree] [--seed S]
                    [--json]

Each workstream i depends on up to EDGES_PER_NODE earlier workstreams chosen at random,
so the graph is acyclic. Both files run the same command per task: `true`, or with
--sleep a `sleep` of a random duration up to MAX_MS milliseconds (the same duration in
both files). The ninja file uses phony-free edges whose outputs are stamp files, so
`ninja -n` plans every task and `ninja -jN` runs them. With --json, OUT_DIR/graph.json
also gets the graph itself: {"tasks": [{"name": "t0", "ms": 412, "deps": ["t3", ...]}, ...]}
(`ms` is the sleep duration in milliseconds, 0 for `true`), e.g. to compute the critical path.
"""
import argparse
import json
import os
import random


def main():
    p = argparse.ArgumentParser()
    p.add_argument("n", type=int)
    p.add_argument("edges", type=int)
    p.add_argument("out")
    p.add_argument("--sleep", type=int, default=0, help="max sleep in ms (0: run `true`)")
    p.add_argument("--isolation", default="none")
    p.add_argument("--sandbox", default="off", help="the workstreams' `sandbox`: ninja confines nothing")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", action="store_true", help="also write OUT/graph.json (durations and edges)")
    a = p.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    deps = []
    cmds = []
    durations = []
    for i in range(a.n):
        k = min(i, a.edges)
        window = list(range(max(0, i - 200), i))  # local structure: depend on recent tasks
        chosen = sorted(rng.sample(window, min(k, len(window)))) if window else []
        deps.append(chosen)
        if a.sleep:
            ms = rng.randint(1, a.sleep)
            durations.append(ms)
            cmds.append(f"sleep {ms / 1000:.3f}")
        else:
            cmds.append("true")
            durations.append(0)
    with open(os.path.join(a.out, "parallel.kdl"), "w") as f:
        f.write(f'workflow "bench" {{\n    max-parallel 64\n}}\n')
        f.write('agent "shell" {\n    command "sh" "-c" "{script}"\n}\n')
        f.write(f'defaults {{\n    agent "shell"\n    isolation "{a.isolation}"\n    sandbox "{a.sandbox}"\n}}\n')
        for i in range(a.n):
            d = " ".join(f'"t{j}"' for j in deps[i])
            dep = f"\n    depends-on {d}" if d else ""
            f.write(f'workstream "t{i}" {{\n    script "{cmds[i]}"\n    owns "gen/t{i}/**"{dep}\n}}\n')
    with open(os.path.join(a.out, "build.ninja"), "w") as f:
        f.write("rule run\n  command = $cmd && touch $out\n\n")
        for i in range(a.n):
            ins = " ".join(f"stamp/t{j}" for j in deps[i])
            f.write(f"build stamp/t{i}: run {ins}\n  cmd = {cmds[i]}\n")
    if a.json:
        tasks = [{"name": f"t{i}", "ms": durations[i], "deps": [f"t{j}" for j in deps[i]]} for i in range(a.n)]
        with open(os.path.join(a.out, "graph.json"), "w") as f:
            json.dump({"tasks": tasks}, f)
    edges = sum(len(d) for d in deps)
    print(f"{a.n} tasks, {edges} edges -> {a.out}/parallel.kdl, {a.out}/build.ninja")


if __name__ == "__main__":
    main()
