//! `flow run` end to end: what stops a workstream's work from reaching the integration branch
//! (timeouts, hung agents, scope violations, failing tests, `verify`, conflicts) and retries.

use crate::support::{HEADER, TestEnv, phases};

#[test]
fn a_timeout_fails_the_workstream_long_before_its_agent_would_end() {
    let env = TestEnv::new();
    env.workflow(r#"workstream "slow" { owns "slow/**"; timeout "1s"; script "sleep 30" }"#);
    let run = env.run(&[]);
    run.assert_code(1);
    // Stopped at its timeout: left to itself, the agent would have ended well (exit 0).
    let state = env.state();
    assert_eq!(state.phase("slow"), "failed");
    assert_eq!(state.failure_kind("slow"), Some("timeout"));
    assert!(state.failure_message("slow").contains("timed out after 1s"));
    assert_eq!(state.status(), "failed");
}

#[test]
fn a_failed_attempt_is_retried_from_a_clean_worktree() {
    let env = TestEnv::new();
    let attempts = env.outside("attempts");
    env.workflow(&format!(
        r##"
workstream "flaky" {{
    owns "flaky/**"
    retries 1
    script #"""
        echo "$FLOW_ATTEMPT" >> {attempts}
        mkdir -p flaky
        if [ "$FLOW_ATTEMPT" = 1 ]; then
            echo first > flaky/first.txt
            exit 1
        fi
        test ! -e flaky/first.txt || {{ echo "attempt 1 left its file" >&2; exit 9; }}
        echo second > flaky/second.txt
        """#
}}
"##
    ));
    let run = env.run(&[]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("flaky"), "merged", "{}", run.text());
    assert_eq!(state.ws("flaky")["attempts"], 2);
    assert_eq!(env.read_outside("attempts"), "1\n2\n");
    assert_eq!(
        state.ws("flaky")["files_changed"],
        serde_json::json!(["flaky/second.txt"])
    );
    let files = env.files_at("integration/t");
    assert!(files.contains(&"flaky/second.txt".to_string()), "{files:?}");
    assert!(!files.contains(&"flaky/first.txt".to_string()), "{files:?}");
    assert!(
        state.alerts().iter().any(|a| a.contains("attempt 1 failed")),
        "{:?}",
        state.alerts()
    );
}

#[test]
fn an_agent_silent_past_its_idle_timeout_is_treated_as_hung() {
    let env = TestEnv::new();
    env.workflow(r#"workstream "quiet" { owns "q/**"; idle-timeout "1s"; script "echo thinking; sleep 30" }"#);
    let run = env.run(&[]);
    run.assert_code(1);
    // Stopped when idle: left to itself, the agent would have ended well (exit 0).
    let state = env.state();
    assert_eq!(state.phase("quiet"), "failed");
    assert_eq!(state.failure_kind("quiet"), Some("hung"));
    assert_eq!(state.field("quiet", "last_line").as_deref(), Some("thinking"));
}

fn scope_workflow(env: &TestEnv, policy: Option<&str>) {
    let header = match policy {
        Some(p) => HEADER.replace("base \"main\"", &format!("base \"main\"\n    scope-policy \"{p}\"")),
        None => HEADER.to_string(),
    };
    env.workflow(&format!(
        r#"{header}
workstream "sloppy" {{
    owns "src/a/**"
    script "mkdir -p src/a src/b && echo mine > src/a/x.txt && echo theirs > src/b/x.txt"
}}
"#
    ));
}

#[test]
fn a_scope_violation_fails_the_workstream_and_nothing_of_it_merges() {
    let env = TestEnv::new();
    scope_workflow(&env, None);
    let base = env.rev_parse("main").expect("main");
    let run = env.run(&[]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.phase("sloppy"), "failed");
    assert_eq!(state.failure_kind("sloppy"), Some("scope"));
    assert!(state.failure_message("sloppy").contains("src/b/x.txt"));
    assert!(!state.failure_message("sloppy").contains("src/a/x.txt"));
    assert_eq!(env.rev_parse("integration/t").as_deref(), Some(base.as_str()));
}

#[test]
fn scope_policy_revert_merges_without_the_out_of_scope_change() {
    let env = TestEnv::new();
    scope_workflow(&env, Some("revert"));
    let run = env.run(&[]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("sloppy"), "merged", "{}", run.text());
    assert_eq!(env.show_file("integration/t", "src/a/x.txt").as_deref(), Some("mine\n"));
    assert_eq!(env.show_file("integration/t", "src/b/x.txt"), None);
    assert_eq!(state.ws("sloppy")["files_changed"], serde_json::json!(["src/a/x.txt"]));
    assert!(
        state.alerts().iter().any(|a| a.contains("src/b/x.txt")),
        "{:?}",
        state.alerts()
    );
}

#[test]
fn scope_policy_warn_merges_everything_with_an_alert() {
    let env = TestEnv::new();
    scope_workflow(&env, Some("warn"));
    let run = env.run(&[]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("sloppy"), "merged", "{}", run.text());
    assert_eq!(env.show_file("integration/t", "src/a/x.txt").as_deref(), Some("mine\n"));
    assert_eq!(
        env.show_file("integration/t", "src/b/x.txt").as_deref(),
        Some("theirs\n")
    );
    assert!(
        state
            .alerts()
            .iter()
            .any(|a| a.contains("outside its scope") && a.contains("src/b/x.txt")),
        "{:?}",
        state.alerts()
    );
}

#[test]
fn a_failing_test_keeps_the_work_out_and_skips_dependents() {
    let env = TestEnv::new();
    env.workflow(
        r#"
workstream "untested" { owns "u/**"; test "echo checking; false"; script "mkdir -p u && echo > u/x" }
workstream "next" { owns "n/**"; depends-on "untested"; script "mkdir -p n && echo > n/x" }
workstream "last" { owns "l/**"; depends-on "next"; script "mkdir -p l && echo > l/x" }
"#,
    );
    let base = env.rev_parse("main").expect("main");
    let run = env.run(&[]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(
        state.phases(),
        phases(&[("untested", "failed"), ("next", "skipped"), ("last", "skipped")])
    );
    assert_eq!(state.failure_kind("untested"), Some("test"));
    assert_eq!(state.ws("untested")["test"]["passed"], false);
    assert_eq!(env.rev_parse("integration/t").as_deref(), Some(base.as_str()));
    // The branch keeps the work for a person to look at.
    assert!(env.show_file("flow/t/untested", "u/x").is_some());
}

#[test]
fn a_failing_verify_rolls_the_integration_branch_back() {
    let env = TestEnv::new();
    env.workflow(&format!(
        r#"{HEADER}
integrate {{ verify "test ! -f bad.txt" }}
workstream "good" {{ owns "good.txt"; script "echo good > good.txt" }}
workstream "bad" {{ owns "bad.txt"; depends-on "good"; script "echo bad > bad.txt" }}
"#
    ));
    let run = env.run(&[]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(
        state.phases(),
        phases(&[("good", "merged"), ("bad", "failed")]),
        "{}",
        run.text()
    );
    assert_eq!(state.failure_kind("bad"), Some("verify"));
    let good = state.field("good", "merge_commit").expect("good merged");
    assert_eq!(env.rev_parse("integration/t").as_deref(), Some(good.as_str()));
    assert_eq!(state.0["last_good"].as_str(), Some(good.as_str()));
    assert_eq!(env.show_file("integration/t", "bad.txt"), None);
    assert_eq!(state.ws("good")["test"], serde_json::Value::Null);
}

fn conflict_workflow(env: &TestEnv, on_conflict: &str) {
    env.write("shared.txt", "one\ntwo\nthree\n");
    env.commit_all("a shared file");
    env.workflow(&format!(
        r#"{HEADER}
integrate {{ on-conflict "{on_conflict}" }}
workstream "left" {{ owns "shared.txt"; script "sed -i 's/two/left/' shared.txt; sleep 0.2" }}
workstream "right" {{ owns "shared.txt"; script "sed -i 's/two/right/' shared.txt; sleep 0.2" }}
workstream "third" {{ owns "third.txt"; priority "low"; script "sleep 0.5; echo 3 > third.txt" }}
"#
    ));
}

#[test]
fn the_second_of_two_conflicting_branches_is_marked_conflicted() {
    let env = TestEnv::new();
    conflict_workflow(&env, "stop");
    let order = env.merge_order();
    let (first, second) = (order[0].as_str(), order[1].as_str());
    assert_eq!(order[2], "third");
    let run = env.run(&[]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.phase(first), "merged", "{}", run.text());
    assert_eq!(state.phase(second), "conflicted");
    assert_eq!(state.failure_kind(second), Some("conflict"));
    assert!(state.failure_message(second).contains("shared.txt"));
    let text = format!("one\n{first}\nthree\n");
    assert_eq!(env.show_file("integration/t", "shared.txt"), Some(text));
    assert_eq!(
        env.rev_parse("integration/t"),
        state.field(first, "merge_commit"),
        "the integration branch keeps the first"
    );
    // `stop`: nothing merges after a conflict; the finished work waits, and says why.
    assert_eq!(state.phase("third"), "ready");
    let reason = state.field("third", "reason").unwrap_or_default();
    assert!(reason.contains("not merged") && reason.contains("conflict"), "{reason}");
    assert_eq!(env.show_file("integration/t", "third.txt"), None);
    assert_eq!(state.status(), "failed");
}

#[test]
fn on_conflict_skip_lets_the_others_merge() {
    let env = TestEnv::new();
    conflict_workflow(&env, "skip");
    let order = env.merge_order();
    let (first, second) = (order[0].as_str(), order[1].as_str());
    let run = env.run(&[]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.phase(first), "merged", "{}", run.text());
    assert_eq!(state.phase(second), "conflicted");
    assert_eq!(state.phase("third"), "merged");
    assert_eq!(
        env.show_file("integration/t", "shared.txt"),
        Some(format!("one\n{first}\nthree\n"))
    );
    assert_eq!(env.show_file("integration/t", "third.txt").as_deref(), Some("3\n"));
}

/// The checks before a run: what would fail once worktrees exist stops `flow run` before
/// anything is made.
mod before_the_run {
    use crate::support::TestEnv;

    fn nothing_made(env: &TestEnv) {
        let branches = env.git(&["branch", "--list", "flow/*", "integration/*"]);
        assert_eq!(branches.trim(), "", "no branch was made");
        assert!(env.latest_run_dir().is_none(), "no run was recorded");
    }

    #[test]
    fn an_agent_program_that_is_not_installed_stops_the_run_before_anything_is_made() {
        let env = TestEnv::new();
        env.workflow(
            r#"
agent "claude-like" {
    command "claude" "-p" "{prompt}"
    output "text"
}
workstream "a" {
    agent "claude-like"
    task "anything"
}
"#,
        );
        // A PATH that holds only what the test needs: no `claude` here, whatever this machine has.
        let bin = env.root.parent().expect("the temporary folder").join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        for tool in ["sh", "git"] {
            let found = which::which(tool).expect("the tool is installed");
            std::os::unix::fs::symlink(found, bin.join(tool)).expect("link");
        }
        let out = env
            .flow()
            .args(["run", "--progress", "plain"])
            .env("PATH", &bin)
            .output()
            .expect("flow runs");
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("`claude` is not on PATH"), "{stderr}");
        assert!(stderr.contains("npm install -g @anthropic-ai/claude-code"), "{stderr}");
        nothing_made(&env);
    }

    #[test]
    fn a_base_branch_that_does_not_exist_is_refused_with_a_suggestion() {
        let env = TestEnv::new();
        env.workflow(
            r#"
workflow "t" {
    base "mian"
}
agent "shell" {
    command "sh" "-c" "{script}"
    output "text"
}
workstream "a" {
    agent "shell"
    script "true"
}
"#,
        );
        let run = env.run(&[]);
        run.assert_code(2);
        let stderr = run.stderr();
        assert!(stderr.contains("the base branch `mian` does not exist"), "{stderr}");
        assert!(stderr.contains("did you mean `main`?"), "{stderr}");
        nothing_made(&env);
    }

    #[test]
    fn a_dirty_checkout_is_a_warning_and_the_run_goes_on_from_the_commit() {
        let env = TestEnv::new();
        env.workflow(
            r#"
workstream "a" {
    owns "a.txt"
    script "test ! -e notes.txt && echo a > a.txt"
}
"#,
        );
        env.write("notes.txt", "not committed\n");
        let run = env.run(&[]);
        run.assert_code(0);
        let stderr = run.stderr();
        assert!(
            stderr.contains("your checkout has uncommitted changes (1 path: notes.txt)"),
            "{stderr}"
        );
        assert_eq!(env.state().phase("a"), "merged");
    }
}
