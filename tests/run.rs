//! `flow run` end to end: dependency order, parallelism, failure policies, `--only`, Ctrl-C
//! and the run lock, against real temporary repositories with `shell` agents.

use rustix::process::Signal;

use crate::support::{TestEnv, phases, process_gone, wait_until};

#[test]
fn a_diamond_runs_in_dependency_order_and_merges_everything_without_touching_the_checkout() {
    let env = TestEnv::new();
    env.workflow(
        r#"
workstream "a" { owns "a/**"; script "mkdir -p a && echo A > a/a.txt" }
workstream "b" { owns "b/**"; depends-on "a"; script "test -f a/a.txt && sleep 0.2 && mkdir -p b && echo B > b/b.txt" }
workstream "c" { owns "c/**"; depends-on "a"; script "test -f a/a.txt && sleep 0.3 && mkdir -p c && echo C > c/c.txt" }
workstream "d" { owns "d/**"; depends-on "b" "c"; script "test -f b/b.txt && test -f c/c.txt && mkdir -p d && echo D > d/d.txt" }
"#,
    );
    let before = env.checkout_snapshot();
    let base = env.rev_parse("main").expect("main");
    let run = env.run(&[]);
    run.assert_code(0);

    let state = env.state();
    assert_eq!(state.status(), "succeeded");
    assert_eq!(
        state.phases(),
        phases(&[("a", "merged"), ("b", "merged"), ("c", "merged"), ("d", "merged")])
    );
    // Each workstream starts only after all of its dependencies merged.
    for (ws, deps) in [("b", vec!["a"]), ("c", vec!["a"]), ("d", vec!["b", "c"])] {
        let started = state.started_at(ws).expect("started");
        for dep in deps {
            let merged = state.ended_at(dep).expect("ended");
            assert!(
                started >= merged,
                "{ws} started at {started} before {dep} merged at {merged}"
            );
        }
        // It branched from the integration branch holding its dependencies' work.
        let start = state.field(ws, "start_commit").expect("start commit");
        assert!(env.show_file(&start, "a/a.txt").is_some(), "{ws} starts after a's work");
    }
    assert_eq!(state.field("a", "start_commit").as_deref(), Some(base.as_str()));

    // The integration branch holds everything.
    let into = "integration/t";
    let head = env.rev_parse(into).expect("integration branch");
    assert_eq!(state.0["last_good"].as_str(), Some(head.as_str()));
    for (path, text) in [
        ("a/a.txt", "A\n"),
        ("b/b.txt", "B\n"),
        ("c/c.txt", "C\n"),
        ("d/d.txt", "D\n"),
    ] {
        assert_eq!(env.show_file(into, path).as_deref(), Some(text), "{path} on {into}");
    }
    assert_eq!(
        env.git(&["merge-base", "--is-ancestor", &base, into]),
        "",
        "the integration branch grows from main"
    );

    // The merges land on the integration branch's first-parent line in the plan's merge order.
    let chain = env.first_parent_chain(into);
    let order = env.merge_order();
    let positions: Vec<usize> = order
        .iter()
        .map(|ws| {
            let merge = state.field(ws, "merge_commit").expect("merge commit");
            chain
                .iter()
                .position(|c| *c == merge)
                .unwrap_or_else(|| panic!("{ws}'s merge {merge} is not on the first-parent line of {into}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "merge order {order:?} at positions {positions:?}"
    );
    let merged_at: Vec<f64> = order.iter().map(|ws| state.ended_at(ws).expect("ended")).collect();
    assert!(
        merged_at.windows(2).all(|w| w[0] <= w[1]),
        "{order:?} merged at {merged_at:?}"
    );
    // b and c both started from a's merge: whichever merged second needed a real merge commit.
    let second = &order[2];
    let merge = state.field(second, "merge_commit").expect("merge commit");
    assert_eq!(env.parents(&merge).len(), 2, "{second} merged with a merge commit");
    assert_eq!(
        env.git_log(&merge, "%s")[0],
        format!("Merge flow/t/{second} ({second}) into integration/t")
    );
    // flow's own commits are flow's, the user's keep their pinned author.
    assert_eq!(
        env.git_log(&base, "%an <%ae> %aI")[0],
        "Test User <test@example.com> 2001-02-03T04:05:06Z"
    );
    assert_eq!(env.git_log(&merge, "%an <%ae>")[0], "flow <flow@localhost>");

    // The user's checkout, main and the object store are untouched.
    assert_eq!(env.checkout_snapshot(), before);
    assert_eq!(env.rev_parse("main").as_deref(), Some(base.as_str()));
    env.assert_fsck_clean();
}

/// The largest number of `[start, end]` intervals open at one time.
fn max_overlap(intervals: &[(u128, u128)]) -> usize {
    let mut points: Vec<(u128, i32)> = intervals.iter().flat_map(|&(s, e)| [(s, 1), (e, -1)]).collect();
    // At equal times an end comes before a start: touching intervals do not overlap.
    points.sort();
    let (mut open, mut most) = (0i32, 0i32);
    for (_, delta) in points {
        open += delta;
        most = most.max(open);
    }
    most as usize
}

/// Four independent workstreams that each record when they start and end, in nanoseconds.
fn four_sleepers(env: &TestEnv) {
    let mut text = String::new();
    for name in ["w1", "w2", "w3", "w4"] {
        let times = env.outside(&format!("{name}.times"));
        text.push_str(&format!(
            r#"workstream "{name}" {{ owns "{name}/**"; script "date +%s%N > {times}; sleep 1; date +%s%N >> {times}" }}
"#
        ));
    }
    env.workflow(&text);
}

fn intervals(env: &TestEnv) -> Vec<(u128, u128)> {
    ["w1", "w2", "w3", "w4"]
        .iter()
        .map(|name| {
            let text = env.read_outside(&format!("{name}.times"));
            let stamps: Vec<u128> = text.lines().map(|l| l.trim().parse().expect("nanoseconds")).collect();
            assert_eq!(stamps.len(), 2, "{name} recorded its start and end: {text:?}");
            (stamps[0], stamps[1])
        })
        .collect()
}

#[test]
fn independent_workstreams_run_at_once_up_to_the_limit() {
    let env = TestEnv::new();
    four_sleepers(&env);
    env.run(&["-j", "4"]).assert_code(0);
    assert_eq!(max_overlap(&intervals(&env)), 4, "all four ran at once");

    let env = TestEnv::new();
    four_sleepers(&env);
    env.run(&["-j", "2"]).assert_code(0);
    let seen = intervals(&env);
    assert_eq!(max_overlap(&seen), 2, "never more than two at once: {seen:?}");
    assert_eq!(env.state().status(), "succeeded");
}

/// `bad` fails fast and has a dependent; `slow` runs beside it; `later` waits for a slot (-j 2).
fn failing_workflow(env: &TestEnv, slow_seconds: u32) {
    env.workflow(&format!(
        r#"
workstream "bad" {{ owns "bad/**"; script "sleep 0.2; echo giving up; exit 3" }}
workstream "after-bad" {{ owns "after/**"; depends-on "bad"; script "mkdir -p after && echo > after/x" }}
workstream "slow" {{ owns "slow/**"; script "sleep {slow_seconds}; mkdir -p slow && echo > slow/x" }}
workstream "later" {{ owns "later/**"; priority "low"; script "mkdir -p later && echo > later/x" }}
"#
    ));
}

#[test]
fn a_failure_stops_new_starts_but_lets_running_agents_finish() {
    let env = TestEnv::new();
    failing_workflow(&env, 1);
    let run = env.run(&["-j", "2"]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.status(), "failed");
    assert_eq!(
        state.phases(),
        phases(&[
            ("bad", "failed"),
            ("after-bad", "skipped"),
            ("slow", "merged"),
            ("later", "pending")
        ]),
        "{}",
        run.text()
    );
    assert_eq!(state.failure_kind("bad"), Some("agent"));
    let reason = state.field("after-bad", "reason").unwrap_or_default();
    assert!(reason.contains("bad"), "the skip names the failed dependency: {reason}");
    assert!(state.started_at("after-bad").is_none());
    assert!(state.started_at("later").is_none(), "nothing starts after the failure");
    let failed_at = state.ended_at("bad").expect("bad ended");
    for (name, _) in state.phases() {
        if let Some(started) = state.started_at(&name) {
            assert!(started < failed_at, "{name} started after the failure");
        }
    }
    assert!(
        state
            .field("later", "reason")
            .unwrap_or_default()
            .contains("not started"),
        "later says why it did not start"
    );
    assert!(env.show_file("integration/t", "slow/x").is_some());
}

#[test]
fn finished_work_waiting_behind_an_unstarted_workstream_in_the_merge_order_says_why() {
    let env = TestEnv::new();
    // `slow` starts before `early` (it has a longer path ahead) but merges after it.
    env.workflow(
        r#"
workstream "bad" { owns "bad/**"; script "sleep 0.2; exit 3" }
workstream "early" { owns "early/**"; script "mkdir -p early && echo > early/x" }
workstream "slow" { owns "slow/**"; script "sleep 1; mkdir -p slow && echo > slow/x" }
workstream "after-bad" { owns "ab/**"; depends-on "bad"; script "true" }
workstream "after-slow" { owns "as/**"; depends-on "slow"; script "true" }
"#,
    );
    assert_eq!(env.merge_order(), ["bad", "early", "slow", "after-bad", "after-slow"]);
    let run = env.run(&["-j", "2"]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(
        state.phases(),
        phases(&[
            ("bad", "failed"),
            ("early", "pending"),
            ("slow", "ready"),
            ("after-bad", "skipped"),
            ("after-slow", "pending"),
        ]),
        "{}",
        run.text()
    );
    let reason = state.field("slow", "reason").unwrap_or_default();
    assert!(reason.contains("not merged") && reason.contains("`early`"), "{reason}");
    // It keeps the time its work ended, not the run's end.
    let ended = state.ended_at("slow").expect("ended");
    assert!(ended < crate::support::seconds(&state.0["ended_at"]).expect("run ended"));
    assert!(state.field("slow", "result_commit").is_some());
    assert_eq!(env.show_file("integration/t", "slow/x"), None);
}

#[test]
fn keep_going_starts_independent_workstreams_after_a_failure() {
    let env = TestEnv::new();
    failing_workflow(&env, 1);
    let run = env.run(&["-j", "2", "--keep-going"]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.status(), "failed");
    assert_eq!(
        state.phases(),
        phases(&[
            ("bad", "failed"),
            ("after-bad", "skipped"),
            ("slow", "merged"),
            ("later", "merged")
        ]),
        "{}",
        run.text()
    );
    // Started by the very step that recorded the failure: at the same time, never before.
    assert!(state.started_at("later").expect("later started") >= state.ended_at("bad").expect("bad ended"));
    assert!(state.started_at("after-bad").is_none());
    assert!(env.show_file("integration/t", "later/x").is_some());
}

#[test]
fn abort_on_failure_stops_the_agents_still_running() {
    let env = TestEnv::new();
    failing_workflow(&env, 30);
    let run = env.run(&["-j", "2", "--abort-on-failure"]);
    run.assert_code(1);
    // Stopped, not waited for: its 30-second sleep would have ended in a merge.
    let state = env.state();
    assert_eq!(state.status(), "failed");
    assert_eq!(state.phase("slow"), "cancelled", "{}", run.text());
    let reason = state.field("slow", "reason").unwrap_or_default();
    assert!(
        reason.contains("`bad` failed") && reason.contains("--abort-on-failure"),
        "{reason}"
    );
    assert_eq!(state.phase("bad"), "failed");
    assert_eq!(state.phase("after-bad"), "skipped");
    assert!(state.started_at("later").is_none());
    assert!(env.show_file("integration/t", "slow/x").is_none());
}

#[test]
fn only_runs_the_named_workstreams_and_their_dependencies() {
    let env = TestEnv::new();
    env.workflow(
        r#"
workstream "a" { owns "a/**"; script "mkdir -p a && echo > a/x" }
workstream "b" { owns "b/**"; depends-on "a"; script "mkdir -p b && echo > b/x" }
workstream "c" { owns "c/**"; script "mkdir -p c && echo > c/x" }
workstream "d" { owns "d/**"; depends-on "b"; script "mkdir -p d && echo > d/x" }
"#,
    );
    let unknown = env.run(&["--only", "nope"]);
    unknown.assert_code(2);
    assert!(unknown.stderr().contains("nope"), "{}", unknown.text());
    assert!(env.latest_run_dir().is_none());

    // Started from another folder with `-C`, like git.
    let out = env
        .flow()
        .current_dir(&env.outside)
        .arg("-C")
        .arg(&env.root)
        .args(["run", "--progress", "plain", "--only", "b"])
        .output()
        .expect("flow runs");
    let run = crate::support::RunOutput { out };
    run.assert_code(0);
    let state = env.state();
    assert_eq!(
        state.phases(),
        phases(&[("a", "merged"), ("b", "merged"), ("c", "pending"), ("d", "pending")]),
        "{}",
        run.text()
    );
    assert!(state.started_at("c").is_none() && state.started_at("d").is_none());
    assert_eq!(
        env.files_at("integration/t"),
        ["README.md", "a/x", "b/x", "parallel.kdl"]
    );
    assert!(env.rev_parse("flow/t/c").is_none(), "no branch for c");
}

/// A workflow whose two agents start a background grandchild, record both pids, and sleep.
fn sleepers_with_grandchildren(env: &TestEnv) {
    let mut text = String::new();
    for name in ["s1", "s2"] {
        let pids = env.outside(&format!("{name}.pids"));
        text.push_str(&format!(
            r#"workstream "{name}" {{ owns "{name}/**"; script "sleep 100 & echo $! > {pids}; echo $$ >> {pids}; echo started; sleep 30" }}
"#
        ));
    }
    env.workflow(&text);
}

fn recorded_pids(env: &TestEnv) -> Vec<i32> {
    ["s1", "s2"]
        .iter()
        .flat_map(|name| {
            env.read_outside(&format!("{name}.pids"))
                .lines()
                .map(|l| l.trim().parse().expect("a pid"))
                .collect::<Vec<i32>>()
        })
        .collect()
}

fn both_running(env: &TestEnv) -> bool {
    env.try_state()
        .is_some_and(|s| s.phase("s1") == "running" && s.phase("s2") == "running")
        && ["s1", "s2"]
            .iter()
            .all(|n| env.read_outside(&format!("{n}.pids")).lines().count() == 2)
}

#[test]
fn ctrl_c_stops_every_agent_and_its_children_and_records_the_run_as_cancelled() {
    stop_a_run_with(Signal::INT);
}

#[test]
fn sigterm_stops_every_agent_like_ctrl_c() {
    stop_a_run_with(Signal::TERM);
}

/// Sends `signal` to a run whose agents sleep, and checks everything stopped and was recorded.
fn stop_a_run_with(signal: Signal) {
    let env = TestEnv::new();
    sleepers_with_grandchildren(&env);
    let mut flow = env.spawn_flow(&["run", "--progress", "plain", "--grace", "1s"]);
    wait_until("both agents running", || both_running(&env));
    let pids = recorded_pids(&env);
    assert_eq!(pids.len(), 4);
    assert!(
        pids.iter().all(|&p| !process_gone(p)),
        "the agents are alive before Ctrl-C"
    );

    flow.signal(signal);
    // The agents get SIGINT, then SIGKILL after the 1 s grace.
    let status = flow.wait();
    assert_eq!(status.code(), Some(130), "an interrupted run exits 130: {status:?}");
    for pid in pids {
        assert!(process_gone(pid), "process {pid} outlived signal {signal:?}");
    }
    let state = env.state();
    assert_eq!(state.status(), "cancelled");
    assert_eq!(state.phases(), phases(&[("s1", "cancelled"), ("s2", "cancelled")]));
    assert!(
        state.field("s1", "reason").unwrap_or_default().contains("stopped"),
        "{:?}",
        state.field("s1", "reason")
    );
    assert!(!env.flow_dir().join("locks/t.lock").exists(), "the lock is released");
    assert!(env.show_file("integration/t", "s1").is_none());
}

#[test]
fn a_second_run_of_the_same_workflow_is_refused_while_one_runs() {
    let env = TestEnv::new();
    sleepers_with_grandchildren(&env);
    let mut first = env.spawn_flow(&["run", "--progress", "quiet", "--grace", "1s"]);
    wait_until("both agents running", || both_running(&env));
    let run_id = env.state().0["id"].clone();

    let second = env.run(&[]);
    second.assert_code(2);
    let stderr = second.stderr();
    assert!(
        stderr.contains("already running") && stderr.contains(&format!("pid {}", first.pid())),
        "the refusal names the holder's pid:\n{stderr}"
    );
    assert_eq!(env.state().0["id"], run_id, "the refused run made no run folder");
    assert_eq!(env.state().status(), "running");

    first.signal(Signal::INT);
    let status = first.wait();
    assert!(!status.success());
    for pid in recorded_pids(&env) {
        assert!(process_gone(pid), "process {pid} outlived Ctrl-C");
    }
}

#[test]
fn leftover_branches_of_an_earlier_run_make_a_fresh_run_refuse_with_a_hint() {
    let env = TestEnv::new();
    env.workflow(r#"workstream "a" { owns "a/**"; script "mkdir -p a && echo > a/x" }"#);
    env.run(&[]).assert_code(0);
    let first = env.state().0["id"].clone();
    let integration = env.rev_parse("integration/t");

    let again = env.run(&[]);
    again.assert_code(2);
    let stderr = again.stderr();
    assert!(stderr.contains("flow/t/a"), "names the leftover branch:\n{stderr}");
    assert!(
        stderr.contains("flow resume") && stderr.contains("flow clean"),
        "hints at resume and clean:\n{stderr}"
    );
    assert_eq!(env.state().0["id"], first, "no new run was recorded");
    assert_eq!(env.rev_parse("integration/t"), integration);
}

#[test]
fn a_lock_left_by_a_dead_run_is_taken_over_and_a_live_holder_is_named() {
    let env = TestEnv::new();
    env.workflow(r#"workstream "a" { owns "a/**"; script "mkdir -p a && echo > a/x" }"#);
    let locks = env.flow_dir().join("locks");
    std::fs::create_dir_all(&locks).expect("locks dir");
    let lock = locks.join("t.lock");

    // A live process holds it (this test): refused, naming the pid.
    std::fs::write(&lock, format!("{} 1700000000.5\n", std::process::id())).expect("write lock");
    let holder = std::fs::File::open(&lock).expect("open lock");
    holder.try_lock().expect("take the lock");
    let refused = env.run(&[]);
    refused.assert_code(2);
    assert!(
        refused.stderr().contains(&format!("pid {}", std::process::id())),
        "{}",
        refused.text()
    );
    assert!(lock.exists(), "a refused run leaves the holder's lock alone");
    assert!(env.latest_run_dir().is_none(), "nothing was started");
    drop(holder);

    // Its holder died: the lock is taken over, and released at the end.
    let mut dead = std::process::Command::new("true").spawn().expect("spawn true");
    let dead_pid = dead.id();
    dead.wait().expect("true exits");
    std::fs::write(&lock, format!("{dead_pid} 1700000000.5\n")).expect("write lock");
    env.run(&[]).assert_code(0);
    assert_eq!(env.state().status(), "succeeded");
    assert!(!lock.exists(), "the lock is released when the run ends");
    let leftovers: Vec<_> = std::fs::read_dir(&locks).expect("locks").flatten().collect();
    assert!(leftovers.is_empty(), "nothing left in .flow/locks: {leftovers:?}");
}

#[test]
fn ctrl_c_during_verify_moves_the_integration_branch_back() {
    let env = TestEnv::new();
    let pid_file = env.outside("verify.pid");
    env.workflow(&format!(
        r#"{}
integrate {{ verify "echo $$ > {pid_file}; sleep 30" }}
workstream "a" {{ owns "a/**"; script "mkdir -p a && echo > a/x" }}
"#,
        crate::support::HEADER
    ));
    let base = env.rev_parse("main").expect("main");
    let mut flow = env.spawn_flow(&["run", "--progress", "plain", "--grace", "1s"]);
    wait_until("verify running", || {
        env.try_state().is_some_and(|s| s.phase("a") == "merging") && !env.read_outside("verify.pid").is_empty()
    });
    let verify_pid: i32 = env.read_outside("verify.pid").trim().parse().expect("pid");
    flow.signal(Signal::INT);
    let status = flow.wait();
    assert!(!status.success());
    assert!(process_gone(verify_pid), "verify outlived Ctrl-C");
    let state = env.state();
    assert_eq!(state.status(), "cancelled");
    assert_eq!(state.phase("a"), "ready");
    assert!(state.field("a", "merge_commit").is_none());
    assert_eq!(state.0["last_good"].as_str(), Some(base.as_str()));
    assert_eq!(
        env.rev_parse("integration/t").as_deref(),
        Some(base.as_str()),
        "rolled back"
    );
    assert!(
        env.rev_parse("flow/t/a").is_some(),
        "the work is kept on its branch for a resume"
    );
}

#[test]
fn an_agents_background_processes_do_not_outlive_it() {
    let env = TestEnv::new();
    let pid_file = env.outside("background.pid");
    env.workflow(&format!(
        r#"workstream "a" {{ owns "a/**"; script "sleep 100 > /dev/null 2>&1 & echo $! > {pid_file}; mkdir -p a && echo > a/x" }}"#
    ));
    env.run(&[]).assert_code(0);
    let pid: i32 = env.read_outside("background.pid").trim().parse().expect("pid");
    assert!(process_gone(pid), "the background sleep {pid} outlived its agent");
    assert_eq!(env.state().phase("a"), "merged");
}

#[test]
fn a_dirty_checkout_on_another_branch_is_left_alone_and_not_merged() {
    let env = TestEnv::new();
    env.workflow(
        r#"workstream "a" { owns "a/**"; script "mkdir -p a && echo > a/x && cat README.md > a/readme-copy" }"#,
    );
    env.git(&["checkout", "-q", "-b", "topic"]);
    env.write("README.md", "# edited, not committed\n");
    env.write("notes.txt", "untracked\n");
    env.git(&["add", "notes.txt"]);
    env.write("scratch.txt", "untracked too\n");
    let before = env.checkout_snapshot();
    let main = env.rev_parse("main").expect("main");

    env.run(&[]).assert_code(0);
    assert_eq!(env.checkout_snapshot(), before);
    assert_eq!(
        std::fs::read_to_string(env.root.join("README.md")).unwrap(),
        "# edited, not committed\n"
    );
    assert_eq!(env.rev_parse("main").as_deref(), Some(main.as_str()));
    // The workstream started from `main` as committed, not from the dirty checkout.
    assert_eq!(
        env.show_file("integration/t", "a/readme-copy").as_deref(),
        Some("# test repository\n")
    );
    assert_eq!(
        env.files_at("integration/t"),
        ["README.md", "a/readme-copy", "a/x", "parallel.kdl"]
    );
    env.assert_fsck_clean();
}
