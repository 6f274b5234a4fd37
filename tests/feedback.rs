//! Working with the agents, end to end with scripted shell agents: a failed test goes back
//! to the agent with its output, a scope breach with the paths and the rule, a conflict with
//! its hunks (to the workstream's own agent after bringing the integration branch in, or to
//! the resolver), a review with its comments; handoffs reach the dependents' context.

use crate::support::{TestEnv, phases};

/// A workflow header with a shell agent, a reviewer and a resolver, all scripts.
const HEADER: &str = r#"
workflow "t" {
    base "main"
}
agent "shell" {
    command "sh" "-c" "{script}"
    output "text"
}
agent "reviewer" {
    command "sh" "-c" "if grep -q v1 w/file.txt; then echo '{\"verdict\": \"changes-requested\", \"comments\": \"write v2, not v1\"}'; else echo '{\"verdict\": \"approve\", \"comments\": \"good\"}'; fi"
    output "text"
}
agent "resolver" {
    command "sh" "-c" "sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' shared.txt && echo kept both lines"
    output "text"
}
defaults {
    agent "shell"
}
"#;

fn workflow(env: &TestEnv, body: &str) {
    env.workflow(&format!("{HEADER}\n{body}"));
}

#[test]
fn a_failed_test_goes_back_to_the_agent_with_its_output_and_the_fix_merges() {
    let env = TestEnv::new();
    let seen = env.outside("seen");
    workflow(
        &env,
        &format!(
            r##"
workstream "w" {{
    owns "w/**"
    test "grep -q value=2 w/file.txt || {{ echo \"expected value=2, found $(cat w/file.txt)\"; exit 1; }}"
    script #"""
        mkdir -p w
        if [ "$FLOW_PURPOSE" = fix ]; then
            grep -o 'expected value=2, found value=1' "$FLOW_PROMPT_FILE" | sort -u > {seen}
            echo "kind=$FLOW_FEEDBACK_KIND" >> {seen}
            echo value=2 > w/file.txt
        else
            echo value=1 > w/file.txt
        fi
        """#
}}
"##
        ),
    );
    let run = env.run(&[]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("w"), "merged", "{}", run.text());
    assert_eq!(
        env.read_outside("seen"),
        "expected value=2, found value=1\nkind=test\n",
        "the test's output reached the agent"
    );
    assert_eq!(state.ws("w")["fixes"], 1);
    let purposes: Vec<&str> = state.ws("w")["attempt_log"]
        .as_array()
        .expect("an attempt log")
        .iter()
        .map(|a| a["purpose"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(purposes, ["work", "fix"]);
    assert_eq!(
        env.show_file("integration/t", "w/file.txt").as_deref(),
        Some("value=2\n")
    );
    // The feedback is a file in its context, never committed.
    assert!(!env.files_at("integration/t").iter().any(|f| f.starts_with(".ai/")));
}

#[test]
fn a_write_outside_the_scope_goes_back_to_the_agent_which_takes_it_out() {
    let env = TestEnv::new();
    workflow(
        &env,
        r##"
workstream "w" {
    owns "w/**"
    script #"""
        if [ "$FLOW_PURPOSE" = fix ]; then
            grep -q 'elsewhere/x.txt' "$FLOW_PROMPT_FILE" && rm -f elsewhere/x.txt
        else
            mkdir -p w elsewhere
            echo mine > w/file.txt
            echo stray > elsewhere/x.txt
        fi
        """#
}
"##,
    );
    let run = env.run(&[]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("w"), "merged", "{}", run.text());
    assert_eq!(state.ws("w")["fixes"], 1);
    assert_eq!(state.ws("w")["files_changed"], serde_json::json!(["w/file.txt"]));
    let files = env.files_at("integration/t");
    assert!(!files.contains(&"elsewhere/x.txt".to_string()), "{files:?}");
}

/// `a` and `b` both rewrite the one line of `shared.txt`; `a` also writes a file of its own
/// (which a sync brings into `b`'s branch: not `b`'s change, whatever `b`'s scope).
fn conflicting(env: &TestEnv, integrate: &str) {
    env.write("shared.txt", "one\n");
    env.commit_all("a shared file");
    workflow(
        env,
        &format!(
            r##"
workstream "a" {{
    owns "shared.txt" "a.txt"
    script "echo from-a > shared.txt; echo a > a.txt"
}}
workstream "b" {{
    owns "shared.txt"
    depends-on-nothing-here
}}
{integrate}
"##
        )
        .replace(
            "    depends-on-nothing-here\n",
            r##"    script #"""
        if [ "$FLOW_FEEDBACK_KIND" = conflict ]; then
            grep -q '<<<<<<<' "$FLOW_PROMPT_FILE" || exit 3
            sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' shared.txt
        else
            echo from-b > shared.txt
        fi
        """#
"##,
        ),
    );
}

#[test]
fn a_conflicting_merge_is_brought_up_to_date_and_resolved_by_the_workstreams_agent() {
    let env = TestEnv::new();
    conflicting(&env, r#"integrate { verify "! grep -q '^<<<<<<<' shared.txt" }"#);
    let run = env.run(&["-j", "1"]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(
        state.phases(),
        phases(&[("a", "merged"), ("b", "merged")]),
        "{}",
        run.text()
    );
    let shared = env.show_file("integration/t", "shared.txt").expect("shared.txt");
    assert!(shared.contains("from-a") && shared.contains("from-b"), "{shared}");
    assert!(!shared.contains("<<<<<<<"), "{shared}");
    assert_eq!(state.ws("b")["fixes"], 1);
    // The conflict was seen coming when b became ready, before its merge.
    let status = env.flow().arg("status").output().expect("flow status");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        // With the integration branch once `a` merged, else with `a`'s branch (ready or being
        // merged): which one depends on when `b` became ready.
        status
            .lines()
            .any(|l| l.contains("b: its branch conflicts with") && l.contains("in shared.txt")),
        "{status}"
    );
    // Its own work only: `a.txt`, which the sync brought in, is `a`'s, not a breach of `b`'s scope.
    assert_eq!(state.ws("b")["files_changed"], serde_json::json!(["shared.txt"]));
    let log = std::fs::read_to_string(env.latest_run_dir().expect("a run").join("conflict_resolution.md"))
        .expect("the decision log");
    assert!(
        log.contains("`b`") && log.contains("shared.txt") && log.contains("own agent"),
        "{log}"
    );
    env.assert_fsck_clean();
}

#[test]
fn a_conflict_left_goes_to_the_resolver_which_is_verified_and_logged() {
    let env = TestEnv::new();
    conflicting(
        &env,
        r#"integrate {
    on-conflict "agent"
    resolver "resolver"
    sync "off"
    verify "! grep -q '^<<<<<<<' shared.txt"
}"#,
    );
    let run = env.run(&["-j", "1"]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(
        state.phases(),
        phases(&[("a", "merged"), ("b", "merged")]),
        "{}",
        run.text()
    );
    let shared = env.show_file("integration/t", "shared.txt").expect("shared.txt");
    assert!(
        shared.contains("from-a") && shared.contains("from-b") && !shared.contains("======="),
        "{shared}"
    );
    let log = std::fs::read_to_string(env.latest_run_dir().expect("a run").join("conflict_resolution.md"))
        .expect("the decision log");
    assert!(
        log.contains("resolver agent `resolver`") && log.contains("kept both lines"),
        "{log}"
    );
    let purposes: Vec<&str> = state.ws("b")["attempt_log"]
        .as_array()
        .expect("an attempt log")
        .iter()
        .map(|a| a["purpose"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(purposes, ["work", "resolve"]);
    env.assert_fsck_clean();
}

#[test]
fn a_reviewer_that_requests_changes_once_gets_them_and_approves() {
    let env = TestEnv::new();
    workflow(
        &env,
        r##"
workstream "w" {
    owns "w/**"
    review "reviewer"
    script #"""
        mkdir -p w
        if [ "$FLOW_FEEDBACK_KIND" = review ]; then
            grep -q 'write v2' "$FLOW_PROMPT_FILE" && echo v2 > w/file.txt
        else
            echo v1 > w/file.txt
        fi
        """#
}
"##,
    );
    let run = env.run(&[]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("w"), "merged", "{}", run.text());
    assert_eq!(state.ws("w")["review"]["verdict"], "approve");
    assert_eq!(env.show_file("integration/t", "w/file.txt").as_deref(), Some("v2\n"));
    let purposes: Vec<&str> = state.ws("w")["attempt_log"]
        .as_array()
        .expect("an attempt log")
        .iter()
        .map(|a| a["purpose"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(purposes, ["work", "review", "fix", "review"]);

    // `flow status` lists the attempts and the verdict; `flow usage` splits by purpose.
    let status = env.flow().arg("status").output().expect("flow status");
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("fix (review)"), "{status}");
    assert!(status.contains("review by reviewer: approved: good"), "{status}");
    let usage = env.flow().args(["usage", "--json"]).output().expect("flow usage");
    let usage: serde_json::Value = serde_json::from_slice(&usage.stdout).expect("usage JSON");
    let purposes: Vec<&String> = usage["by_purpose"].as_object().expect("by_purpose").keys().collect();
    assert_eq!(purposes, ["fix", "review", "work"]);
}

#[test]
fn everything_at_once_finishes_merged_with_verify_green_and_no_person() {
    let env = TestEnv::new();
    env.write("shared.txt", "one\n");
    env.commit_all("a shared file");
    workflow(
        &env,
        r##"
workstream "left" {
    owns "shared.txt"
    script "echo left > shared.txt"
}
workstream "right" {
    owns "shared.txt" "right/**"
    test "test -f right/ok"
    script #"""
        if [ "$FLOW_FEEDBACK_KIND" = conflict ]; then
            sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' shared.txt
        elif [ "$FLOW_FEEDBACK_KIND" = test ]; then
            mkdir -p right && touch right/ok
        else
            echo right > shared.txt
        fi
        """#
}
workstream "w" {
    owns "w/**"
    review "reviewer"
    depends-on "left"
    script #"""
        mkdir -p w
        if [ "$FLOW_FEEDBACK_KIND" = review ]; then echo v2 > w/file.txt; else echo v1 > w/file.txt; fi
        """#
}
integrate { verify "grep -q left shared.txt && grep -q right shared.txt || ! test -f right/ok" }
"##,
    );
    let run = env.run(&["-j", "2"]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(
        state.phases(),
        phases(&[("left", "merged"), ("right", "merged"), ("w", "merged")]),
        "{}",
        run.text()
    );
    let shared = env.show_file("integration/t", "shared.txt").expect("shared.txt");
    assert!(shared.contains("left") && shared.contains("right"), "{shared}");
    assert!(state.ws("right")["fixes"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(state.ws("w")["review"]["verdict"], "approve");
}

#[test]
fn a_dependent_is_told_what_its_dependency_did_and_flow_context_shows_it() {
    let env = TestEnv::new();
    workflow(
        &env,
        r##"
workstream "api" {
    owns "api/**"
    script "mkdir -p api && echo endpoint > api/routes.txt && echo 'Added GET /books in api/routes.txt'"
}
workstream "web" {
    owns "web/**"
    depends-on "api"
    script #"""
        mkdir -p web
        cp "$FLOW_PROMPT_FILE" web/prompt-i-got.md
        """#
}
"##,
    );
    let run = env.run(&[]);
    run.assert_code(0);
    let prompt = env
        .show_file("integration/t", "web/prompt-i-got.md")
        .expect("the prompt web got");
    assert!(prompt.contains("What your dependencies did"), "{prompt}");
    assert!(prompt.contains("Added GET /books"), "the summary: {prompt}");
    assert!(prompt.contains("api/routes.txt"), "the files: {prompt}");
    let shown = env
        .flow()
        .args(["context", "parallel.kdl", "web"])
        .output()
        .expect("flow context");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("Added GET /books") && shown.contains("api/routes.txt"),
        "{shown}"
    );
}

#[test]
fn a_resolver_that_commits_its_merge_itself_is_refused() {
    let env = TestEnv::new();
    conflicting(
        &env,
        r#"agent "committer" {
    command "sh" "-c" "sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' shared.txt && git -c user.name=r -c user.email=r@r commit -qam mine && echo done"
    output "text"
}
integrate {
    on-conflict "agent"
    resolver "committer"
    sync "off"
}"#,
    );
    let run = env.run(&["-j", "1"]);
    let state = env.state();
    assert_eq!(state.phase("b"), "failed", "{}", run.text());
    assert!(
        state
            .failure_message("b")
            .contains("the resolver committed its merge or moved the integration branch itself"),
        "{}",
        state.failure_message("b")
    );
    let shared = env.show_file("integration/t", "shared.txt").expect("shared.txt");
    assert_eq!(shared, "from-a\n", "nothing of the resolver's own commit landed");
}

/// A Claude Code-like agent that reports the whole session's running cost after `--resume`:
/// the fix attempt continues the session and costs the difference, not the running total.
#[test]
fn a_fix_continues_the_session_and_each_attempt_counts_its_own_tokens_and_cost() {
    let env = TestEnv::new();
    let resumed = env.outside("resumed");
    env.workflow(&format!(
        r##"
workflow "t" {{
    base "main"
}}
agent "sessions" {{
    command "sh" "-c" "{{script}}"
    resume "sh" "-c" "echo {{session}} > {resumed}; exec sh -c \"$0\"" "{{script}}"
    output "claude-json"
}}
workstream "w" {{
    agent "sessions"
    owns "w/**"
    test "grep -q fixed w/file.txt"
    script #"""
        mkdir -p w
        if [ "$FLOW_PURPOSE" = fix ]; then
            echo fixed > w/file.txt
            echo '{{"type":"result","subtype":"success","is_error":false,"result":"fixed it","session_id":"s-1","total_cost_usd":0.15,"usage":{{"input_tokens":50,"output_tokens":5}}}}'
        else
            echo broken > w/file.txt
            echo '{{"type":"result","subtype":"success","is_error":false,"result":"did it","session_id":"s-1","total_cost_usd":0.10,"usage":{{"input_tokens":100,"output_tokens":10}}}}'
        fi
        """#
}}
"##
    ));
    let run = env.run(&[]);
    run.assert_code(0);
    assert_eq!(env.state().phase("w"), "merged", "{}", run.text());
    assert_eq!(
        env.read_outside("resumed").trim(),
        "s-1",
        "the fix resumed the agent's session"
    );

    let usage = env.flow().args(["usage", "--json"]).output().expect("flow usage");
    let usage: serde_json::Value = serde_json::from_slice(&usage.stdout).expect("usage JSON");
    let attempts = usage["attempts"]["w"].as_array().expect("w's attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["purpose"], "work");
    assert_eq!(attempts[0]["usage"]["input_tokens"], 100);
    assert_eq!(attempts[1]["purpose"], "fix");
    assert_eq!(attempts[1]["fixed"], "test");
    assert_eq!(attempts[1]["usage"]["input_tokens"], 50);
    let cost = |a: &serde_json::Value| a["usage"]["cost_usd"].as_f64().expect("a cost");
    assert!((cost(&attempts[0]) - 0.10).abs() < 1e-9);
    assert!((cost(&attempts[1]) - 0.05).abs() < 1e-9, "the fix costs the difference");
    let total = usage["total"]["cost_usd"].as_f64().expect("a total");
    assert!((total - 0.15).abs() < 1e-9, "the session is counted once: {total}");

    let text = env.flow().arg("usage").output().expect("flow usage");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("#2 fix (test)"), "{text}");
}

/// `sync "rebase"`: a branch whose merge breaks `verify` is replayed on the integration
/// branch (no merge commit), then fixed with `verify`'s output.
#[test]
fn a_rebased_branch_is_replayed_on_the_integration_branch_and_fixed() {
    let env = TestEnv::new();
    env.write("lib.txt", "v1\n");
    env.commit_all("a library");
    workflow(
        &env,
        r##"
workstream "a" {
    owns "lib.txt"
    script "echo v2 > lib.txt"
}
workstream "b" {
    owns "use.txt"
    script #"""
        if [ "$FLOW_FEEDBACK_KIND" = verify ]; then
            echo "uses $(cat lib.txt)" > use.txt
        else
            echo "uses v1" > use.txt
        fi
        git add use.txt && git -c user.name=b -c user.email=b@example.com commit -qm "b uses the library"
        """#
}
integrate {
    sync "rebase"
    verify "grep -q \"uses $(cat lib.txt)\" use.txt || ! test -f use.txt"
}
"##,
    );
    let run = env.run(&["-j", "1"]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(
        state.phases(),
        phases(&[("a", "merged"), ("b", "merged")]),
        "{}",
        run.text()
    );
    assert_eq!(env.show_file("integration/t", "use.txt").as_deref(), Some("uses v2\n"));
    assert_eq!(state.ws("b")["fixes"], 1);
    assert_eq!(state.ws("b")["files_changed"], serde_json::json!(["use.txt"]));
    // Replayed, not merged: the branch holds no merge commit of its own.
    let merges = env.git(&["rev-list", "--merges", "main..flow/t/b"]);
    assert_eq!(merges.trim(), "", "no merge commit on the rebased branch");
    assert!(
        env.git(&["merge-base", "--is-ancestor", "flow/t/a", "flow/t/b"])
            .is_empty(),
        "b is on top of a"
    );
}

/// `sync "rebase"` on a branch whose commits conflict: it is merged instead, and the
/// conflict goes to the workstream's agent as with `sync "merge"`.
#[test]
fn a_rebase_that_would_conflict_is_a_merge_whose_conflict_the_agent_resolves() {
    let env = TestEnv::new();
    conflicting(
        &env,
        r#"integrate {
    sync "rebase"
    verify "! grep -q '^<<<<<<<' shared.txt"
}"#,
    );
    let run = env.run(&["-j", "1"]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("b"), "merged", "{}", run.text());
    let shared = env.show_file("integration/t", "shared.txt").expect("shared.txt");
    assert!(shared.contains("from-a") && shared.contains("from-b"), "{shared}");
    assert_eq!(state.ws("b")["files_changed"], serde_json::json!(["shared.txt"]));
}
