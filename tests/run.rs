//! `flow run` end to end: dependency order, parallelism, failure policies, `--only`, Ctrl-C
//! and the run lock, against real temporary repositories with `shell` agents.

use std::time::{Duration, Instant};

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
    assert!(state.started_at("later").expect("later started") > state.ended_at("bad").expect("bad ended"));
    assert!(state.started_at("after-bad").is_none());
    assert!(env.show_file("integration/t", "later/x").is_some());
}

#[test]
fn abort_on_failure_stops_the_agents_still_running() {
    let env = TestEnv::new();
    failing_workflow(&env, 30);
    let started = Instant::now();
    let run = env.run(&["-j", "2", "--abort-on-failure"]);
    let took = started.elapsed();
    run.assert_code(1);
    assert!(
        took < Duration::from_secs(15),
        "the slow agent was stopped (run took {took:?})"
    );
    let state = env.state();
    assert_eq!(state.status(), "failed");
    let slow = state.phase("slow");
    assert!(
        slow == "cancelled" || slow == "failed",
        "slow is {slow}\n{}",
        run.text()
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
    let run = env.run(&["--only", "b"]);
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
    let env = TestEnv::new();
    sleepers_with_grandchildren(&env);
    let mut child = env
        .flow_process()
        .args(["run", "--progress", "plain", "--grace", "1s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("flow starts");
    wait_until(Duration::from_secs(20), "both agents running", || both_running(&env));
    let pids = recorded_pids(&env);
    assert_eq!(pids.len(), 4);
    assert!(
        pids.iter().all(|&p| !process_gone(p)),
        "the agents are alive before Ctrl-C"
    );

    let flow_pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: sends SIGINT to the flow process this test started.
    assert_eq!(unsafe { libc::kill(flow_pid, libc::SIGINT) }, 0);
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("flow did not exit within 10 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "an interrupted run does not exit 0: {status:?}");
    for pid in pids {
        assert!(process_gone(pid), "process {pid} outlived Ctrl-C");
    }
    let state = env.state();
    assert_eq!(state.status(), "cancelled");
    assert_eq!(state.phases(), phases(&[("s1", "cancelled"), ("s2", "cancelled")]));
    assert!(env.show_file("integration/t", "s1").is_none());
}

#[test]
fn a_second_run_of_the_same_workflow_is_refused_while_one_runs() {
    let env = TestEnv::new();
    sleepers_with_grandchildren(&env);
    let mut first = env
        .flow_process()
        .args(["run", "--progress", "quiet", "--grace", "1s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("flow starts");
    wait_until(Duration::from_secs(20), "both agents running", || both_running(&env));
    let run_id = env.state().0["id"].clone();

    let second = env.run(&[]);
    second.assert_code(2);
    let stderr = second.stderr();
    assert!(
        stderr.contains("already running") && stderr.contains(&format!("pid {}", first.id())),
        "the refusal names the holder's pid:\n{stderr}"
    );
    assert_eq!(env.state().0["id"], run_id, "the refused run made no run folder");
    assert_eq!(env.state().status(), "running");

    // SAFETY: sends SIGINT to the flow process this test started.
    unsafe { libc::kill(i32::try_from(first.id()).expect("pid"), libc::SIGINT) };
    let status = first.wait().expect("first run ends");
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
