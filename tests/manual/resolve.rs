//! `flow resolve` after a run stopped on a conflict, a person resolving it with plain git, and
//! `flow resume` merging the person's commit; and everything the resume must wait for: a merge
//! not committed yet, conflict markers committed.

use super::*;

/// `a` and `b` both rewrite `shared.txt`; `c` depends on `b`. Conflicts are not synced, and
/// `on_conflict` says what then; `verify` refuses a marker.
fn stopping_workflow(env: &TestEnv, integrate: &str) {
    env.write("shared.txt", "one\n");
    env.commit_all("a shared file");
    env.workflow(&format!(
        r#"{HEADER}
agent "shell" {{
    command "sh" "-c" "{{script}}"
    output "text"
}}
agent "broken-resolver" {{
    command "sh" "-c" "exit 1"
}}
workstream "a" {{ agent "shell"; owns "shared.txt"; priority "high"; script "echo from-a > shared.txt"; }}
workstream "b" {{ agent "shell"; owns "shared.txt"; script "echo from-b > shared.txt"; }}
workstream "c" {{ agent "shell"; owns "c/**"; depends-on "b"; script "mkdir -p c && echo c > c/c.txt"; }}
integrate {{
    sync "off"
    verify "! grep -q '^<<<<<<<' shared.txt"
    {integrate}
}}
"#
    ));
}

/// The number of events the latest run recorded.
fn events(env: &TestEnv) -> usize {
    let dir = env.latest_run_dir().expect("a run");
    std::fs::read_to_string(dir.join("events.jsonl"))
        .expect("the event log")
        .lines()
        .count()
}

/// Runs `flow resume` (or with more arguments) with the test's options.
fn resume(env: &TestEnv, more: &[&str]) -> Run {
    let mut args = vec![
        "resume",
        "--progress",
        "plain",
        "--grace",
        "1s",
        "--retry-delay",
        "100ms",
    ];
    args.extend_from_slice(more);
    flow(env, &args)
}

/// Takes `b` from a run stopped on its conflict to merged: `flow resolve`, a person's wrong
/// commits the resume waits for, then their right one, merged and logged.
fn resolve_by_hand_and_resume(env: &TestEnv) {
    let state = env.state();
    assert_eq!(
        state.phases(),
        crate::support::phases(&[("a", "merged"), ("b", "conflicted"), ("c", "skipped")])
    );
    let into_before = env.rev_parse(INTO).expect("integration branch");
    let b_result = state.field("b", "result_commit").expect("b's result");

    let resolved = flow(env, &["resolve", "b"]);
    resolved.assert_code(0);
    let b = worktree(env, "b");
    let text = resolved.stdout();
    for needle in [
        "b: integration/t",
        "merged into flow/t/b, with conflicts",
        "Conflicts in:\n  shared.txt\n",
        &format!("In the worktree {} (branch flow/t/b)", b.display()),
        "git commit --no-edit",
        "Then `flow resume` merges the resolved branch",
        "merge --abort",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    let shared = std::fs::read_to_string(b.join("shared.txt")).expect("shared.txt");
    assert!(
        shared.contains("<<<<<<<") && shared.contains("from-a") && shared.contains("from-b"),
        "{shared}"
    );

    // Not committed yet: the resume waits and changes nothing, and resolve says it again.
    let recorded = events(env);
    let waiting = resume(env, &[]);
    waiting.assert_code(2);
    assert!(
        waiting.text().contains("b  wait") && waiting.text().contains("a merge is in progress in its worktree"),
        "{}",
        waiting.text()
    );
    assert_eq!(events(env), recorded, "nothing recorded");
    assert_eq!(env.rev_parse(INTO).as_deref(), Some(into_before.as_str()));
    let again = flow(env, &["resolve", "b"]);
    again.assert_code(0);
    assert!(
        again.stdout().contains("already in progress") && again.stdout().contains("  shared.txt\n"),
        "{}",
        again.text()
    );

    // The person commits the markers: the resume waits again.
    git_at(env, &b, &["add", "-A"]);
    git_at(env, &b, &["commit", "-q", "--no-edit"]);
    let dry = resume(env, &["--dry-run"]);
    dry.assert_code(0);
    assert!(
        dry.stdout().contains("conflict markers committed in shared.txt"),
        "{}",
        dry.text()
    );
    resume(env, &[]).assert_code(2);
    assert_eq!(events(env), recorded, "nothing recorded");
    assert_eq!(env.rev_parse(INTO).as_deref(), Some(into_before.as_str()));

    // Resolved for real: merged with verify, the dependent runs, the resolution is logged.
    std::fs::write(b.join("shared.txt"), "from-a\nfrom-b\n").expect("write");
    git_at(env, &b, &["commit", "-q", "-am", "keep both lines"]);
    let b_head = git_at(env, &b, &["rev-parse", "HEAD"]);
    let dry = resume(env, &["--dry-run"]);
    assert!(
        dry.stdout().contains(&format!(
            "its conflict was resolved by hand (its branch is at {})",
            &b_head[..7]
        )),
        "{}",
        dry.text()
    );
    let resumed = resume(env, &[]);
    resumed.assert_code(0);
    let state = env.state();
    assert_eq!(
        state.phases(),
        crate::support::phases(&[("a", "merged"), ("b", "merged"), ("c", "merged")]),
        "{}",
        resumed.text()
    );
    assert_eq!(state.field("b", "result_commit").as_deref(), Some(b_head.as_str()));
    assert_ne!(b_head, b_result);
    let work_attempts = state.ws("b")["attempt_log"]
        .as_array()
        .expect("an attempt log")
        .iter()
        .filter(|a| a["purpose"] == "work")
        .count();
    assert_eq!(work_attempts, 1, "b's agent did not run again");
    assert_eq!(env.show_file(INTO, "shared.txt").as_deref(), Some("from-a\nfrom-b\n"));
    let out = env.git_output(&["merge-base", "--is-ancestor", &b_head, INTO]);
    assert!(out.status.success(), "b's resolution is in the integration branch");
    let log = std::fs::read_to_string(env.latest_run_dir().expect("a run").join("conflict_resolution.md"))
        .expect("the decision log");
    assert!(
        log.contains("## `b` and the integration branch")
            && log.contains("- files: shared.txt")
            && log.contains(&format!("a person (`flow resolve`), in commit {}", &b_head[..7])),
        "{log}"
    );
    env.assert_fsck_clean();
}

#[test]
fn a_run_stopped_on_a_conflict_resumes_with_the_resolution_a_person_committed() {
    let env = TestEnv::new();
    stopping_workflow(&env, r#"on-conflict "stop""#);
    env.run(&["-j", "1"]).assert_code(1);
    resolve_by_hand_and_resume(&env);
}

#[test]
fn after_the_resolver_failed_a_person_resolves_and_the_run_resumes() {
    let env = TestEnv::new();
    stopping_workflow(&env, "on-conflict \"agent\"\n    resolver \"broken-resolver\"");
    let run = env.run(&["-j", "1"]);
    run.assert_code(1);
    assert!(
        env.state()
            .alerts()
            .iter()
            .any(|a| a.contains("the resolver failed") && a.contains("`flow resolve b`")),
        "{}",
        run.text()
    );
    resolve_by_hand_and_resume(&env);
}

#[test]
fn resolve_refuses_what_it_must_not_touch_and_works_by_hand_without_a_run() {
    let env = setup(
        &[("shared.txt", "line one\n")],
        r#"
workstream "a" { owns "shared.txt"; task "Edit it."; priority "high"; }
workstream "b" { owns "shared.txt"; task "Edit it too."; }
integrate {
    on-conflict "skip"
}
"#,
    );
    dirty_the_checkout(&env);
    flow(&env, &["prepare"]).assert_code(0);
    write_in(&env, "a", "shared.txt", "by a\n");
    write_in(&env, "b", "shared.txt", "by b\n");
    let merged = flow(&env, &["merge"]);
    assert_eq!(merged.result("b"), "conflicted", "{}", merged.text());

    // b's worktree still holds b's work uncommitted (flow merge committed it; more came).
    write_in(&env, "b", "notes.txt", "more\n");
    let refused = flow(&env, &["resolve", "b"]);
    refused.assert_code(1);
    assert!(
        refused
            .stdout()
            .contains("uncommitted changes in its worktree: notes.txt"),
        "{}",
        refused.text()
    );
    let merging = env
        .git_command()
        .current_dir(worktree(&env, "b"))
        .args(["rev-parse", "-q", "--verify", "MERGE_HEAD"])
        .output()
        .expect("git runs");
    assert!(!merging.status.success(), "no merge was started");
    std::fs::remove_file(worktree(&env, "b").join("notes.txt")).expect("rm");
    let unknown = flow(&env, &["resolve", "parallel.kdl", "bb"]);
    unknown.assert_code(2);
    assert!(unknown.text().contains("did you mean `b`"), "{}", unknown.text());
    flow(&env, &["resolve"]).assert_code(2);

    // Without a run, `flow merge` is what merges the resolution.
    let resolved = flow(&env, &["resolve", "b", "--json"]);
    resolved.assert_code(0);
    let json = resolved.json();
    assert_eq!(json["result"], "conflicted");
    assert_eq!(json["files"], serde_json::json!(["shared.txt"]));
    assert_eq!(json["next"], "flow merge");
    let b = worktree(&env, "b");
    std::fs::write(b.join("shared.txt"), "by a\nby b\n").expect("write");
    git_at(&env, &b, &["commit", "-q", "-am", "both"]);
    let merged = flow(&env, &["merge"]);
    merged.assert_code(0);
    assert_eq!(merged.result("b"), "merged", "{}", merged.text());
    assert_eq!(env.show_file(INTO, "shared.txt").as_deref(), Some("by a\nby b\n"));
    let up_to_date = flow(&env, &["resolve", "b"]);
    up_to_date.assert_code(0);
    assert!(
        up_to_date.stdout().contains("nothing to resolve"),
        "{}",
        up_to_date.text()
    );
}

#[test]
fn a_resume_that_waits_for_a_person_first_undoes_what_an_agent_cut_by_a_crash_planted() {
    let env = TestEnv::new();
    let go = env.outside("go");
    let planted = env.outside("planted");
    let pid_file = env.outside("agent-pid");
    let hook_ran = env.outside("hook-ran");
    env.write("shared.txt", "one\n");
    env.commit_all("a shared file");
    // `a` and `b` conflict, `b` is skipped; then (no other agent at work, which the guard
    // would take for the culprit) `h` plants a hook a person's commit would run, and works on
    // until flow is killed.
    env.workflow(&format!(
        r##"{HEADER}
agent "shell" {{
    command "sh" "-c" "{{script}}"
    output "text"
}}
workstream "a" {{ agent "shell"; owns "shared.txt"; priority "high"; script "echo from-a > shared.txt"; }}
workstream "b" {{ agent "shell"; owns "shared.txt"; script "echo from-b > shared.txt"; }}
workstream "h" {{
    agent "shell"
    owns "h/**"
    sandbox "off"
    script #"""
        while [ ! -e {go} ]; do sleep 0.1; done
        hooks="$(git rev-parse --git-common-dir)/hooks"; mkdir -p "$hooks"
        printf '#!/bin/sh\ntouch {hook_ran}\n' > "$hooks/post-commit"; chmod +x "$hooks/post-commit"
        echo $$ > {pid_file}; touch {planted}
        while :; do sleep 1; done
        """#
}}
integrate {{
    sync "off"
    on-conflict "skip"
}}
"##
    ));
    let mut run = env.spawn_flow(&["run"]);
    crate::support::wait_until("b conflicted", || {
        env.try_state().is_some_and(|s| s.phase("b") == "conflicted")
    });
    std::fs::write(&go, "").expect("write");
    crate::support::wait_until("h planted its hook", || Path::new(&planted).exists());
    run.signal(rustix::process::Signal::KILL);
    run.wait();
    let agent: i32 = std::fs::read_to_string(&pid_file)
        .expect("h wrote its pid")
        .trim()
        .parse()
        .expect("a pid");

    flow(&env, &["resolve", "b"]).assert_code(0);
    let waiting = resume(&env, &[]);
    waiting.assert_code(2);
    let text = waiting.text();
    assert!(text.contains("a merge is in progress in its worktree"), "{text}");
    assert!(
        text.contains("`h`: its agent, cut when the run stopped, changed the git directory"),
        "{text}"
    );
    assert!(
        !env.root.join(".git/hooks/post-commit").exists(),
        "the hook is gone:\n{text}"
    );
    let state = env.state();
    assert_eq!(state.phase("h"), "failed", "{text}");
    assert_eq!(state.failure_kind("h"), Some("integrity"), "{text}");
    crate::support::wait_until("the cut agent is stopped", || {
        std::fs::read_to_string(format!("/proc/{agent}/stat")).map_or(true, |stat| stat.contains(") Z "))
    });

    // The person commits in b's worktree: no hook of the agent runs.
    let b = worktree(&env, "b");
    std::fs::write(b.join("shared.txt"), "from-a\nfrom-b\n").expect("write");
    git_at(&env, &b, &["commit", "-q", "-am", "keep both lines"]);
    assert!(
        !Path::new(&hook_ran).exists(),
        "the planted hook ran in the person's commit"
    );
    let dry = resume(&env, &["--dry-run"]);
    dry.assert_code(0);
    let text = dry.stdout();
    assert!(text.contains("its conflict was resolved by hand"), "{text}");
    assert!(text.contains("h  run"), "{text}");
}
