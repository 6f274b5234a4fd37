//! `flow sync`: the integration branch brought into workstreams' worktrees, and everything it
//! must refuse without touching a file: uncommitted work, a merge that would conflict, a merge
//! already in progress, a worktree gone or on another branch, an unknown name, a run at work.

use super::*;
use crate::support::wait_until;

/// `a` merges first and rewrites line one of `shared.txt`; `b` rewrites the same line; `c`
/// and `d` own folders of their own; `e` does nothing.
const FIVE: &str = r#"
workstream "a" { owns "shared.txt"; task "Edit line one."; priority "high"; }
workstream "b" { owns "shared.txt" "b/**"; task "Edit line one too."; }
workstream "c" { owns "c/**"; task "Write c."; }
workstream "d" { owns "d/**"; task "Write d."; }
workstream "e" { owns "e/**"; task "Write e."; }
integrate {
    on-conflict "skip"
}
"#;

const SHARED: &str = "line one\nline two\nline three\n";

/// Prepares the five, has `a` merged, and leaves `b`, `c`, `d` as the test needs them.
fn five(env: &TestEnv) {
    flow(env, &["prepare"]).assert_code(0);
    write_in(env, "a", "shared.txt", "line one by a\nline two\nline three\n");
    agent_commit(env, "a", "a: line one");
    let merged = flow(env, &["merge", "--json"]);
    assert!(
        merged.json().to_string().contains(r#""result":"merged""#),
        "{}",
        merged.text()
    );
    write_in(env, "b", "shared.txt", "line one by b\nline two\nline three\n");
    agent_commit(env, "b", "b: line one");
    write_in(env, "c", "c/c.txt", "C\n");
    agent_commit(env, "c", "c: c.txt");
    write_in(env, "d", "d/d.txt", "not committed\n");
}

/// A worktree's branch head, status, merge state and file contents, to check nothing changed.
fn worktree_state(env: &TestEnv, ws: &str) -> (String, String, bool, BTreeMap<String, Vec<u8>>) {
    let dir = worktree(env, ws);
    let head = git_at(env, &dir, &["rev-parse", "HEAD"]);
    let status = git_at(env, &dir, &["status", "--porcelain"]);
    let merging = env
        .git_command()
        .current_dir(&dir)
        .args(["rev-parse", "-q", "--verify", "MERGE_HEAD"])
        .output()
        .expect("git runs")
        .status
        .success();
    let mut files = BTreeMap::new();
    for name in ["shared.txt", "b/b.txt", "c/c.txt", "d/d.txt"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            files.insert(name.to_string(), bytes);
        }
    }
    (head, status, merging, files)
}

#[test]
fn sync_brings_the_integration_branch_in_and_refuses_what_it_must_not_touch() {
    let env = setup(&[("shared.txt", SHARED)], FIVE);
    dirty_the_checkout(&env);
    five(&env);
    let into = env.rev_parse(INTO).expect("integration branch");
    let c_before = env.rev_parse(&branch("c")).expect("c");
    let (b_before, d_before) = (worktree_state(&env, "b"), worktree_state(&env, "d"));

    let synced = flow(&env, &["sync"]);
    synced.assert_code(1);
    assert_eq!(synced.result("a"), "up-to-date", "{}", synced.text());
    assert!(
        synced.line("a").contains(&format!("already holds {INTO}")),
        "{}",
        synced.text()
    );
    assert_eq!(synced.result("b"), "refused", "{}", synced.text());
    assert!(
        synced
            .line("b")
            .contains("would conflict in shared.txt; nothing was changed")
            && synced.line("b").contains("`flow resolve b`"),
        "{}",
        synced.text()
    );
    assert_eq!(synced.result("c"), "synced", "{}", synced.text());
    assert_eq!(synced.result("d"), "refused", "{}", synced.text());
    assert!(
        synced
            .line("d")
            .contains("uncommitted changes in its worktree: d/d.txt"),
        "{}",
        synced.text()
    );
    assert_eq!(synced.result("e"), "synced", "{}", synced.text());
    // Refused means untouched: the same head, status, files, and no merge left in progress.
    assert_eq!(worktree_state(&env, "b"), b_before);
    assert_eq!(worktree_state(&env, "d"), d_before);

    // c's branch is a merge of its work and the integration branch, checked out and clean.
    let c_head = env.rev_parse(&branch("c")).expect("c");
    assert_eq!(env.parents(&c_head), [c_before, into.clone()]);
    let c_dir = worktree(&env, "c");
    assert_eq!(git_at(&env, &c_dir, &["rev-parse", "HEAD"]), c_head);
    assert_eq!(git_at(&env, &c_dir, &["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read_to_string(c_dir.join("shared.txt")).expect("shared.txt"),
        "line one by a\nline two\nline three\n"
    );

    // Named, and again: up to date now; JSON says the same.
    let again = flow(&env, &["sync", "c", "--json"]);
    again.assert_code(0);
    assert_eq!(again.json()[0]["result"], "up-to-date", "{}", again.text());
    assert_eq!(again.json()[0]["head"], c_head.as_str());
    let json = flow(&env, &["sync", "parallel.kdl", "d", "--json"]);
    json.assert_code(1);
    assert_eq!(json.json()[0]["result"], "refused");
    assert_eq!(json.json()[0]["files"], serde_json::json!(["d/d.txt"]));

    // What c merges is its own work only: shared.txt came from the integration branch.
    let merged = flow(&env, &["merge"]);
    assert_eq!(merged.result("c"), "merged", "{}", merged.text());
    assert!(
        merged.line("c").starts_with("merged 1 file changed"),
        "{}",
        merged.text()
    );
    let out = env.git_output(&["merge-base", "--is-ancestor", &c_head, INTO]);
    assert!(out.status.success(), "c is in the integration branch");
    env.assert_fsck_clean();
}

#[test]
fn sync_refuses_a_merge_in_progress_a_missing_worktree_another_branch_and_unknown_names() {
    let env = setup(&[("shared.txt", SHARED)], FIVE);
    dirty_the_checkout(&env);
    five(&env);
    // b: the person started the merge by hand and left it conflicted.
    let b = worktree(&env, "b");
    let out = env
        .git_command()
        .current_dir(&b)
        .args(["merge", "-q", INTO])
        .output()
        .expect("git runs");
    assert!(!out.status.success(), "the merge conflicts");
    let b_before = worktree_state(&env, "b");
    // c: its folder deleted by hand; e: switched to another branch.
    std::fs::remove_dir_all(worktree(&env, "c")).expect("rm -rf c");
    git_at(&env, &worktree(&env, "e"), &["switch", "-q", "-c", "elsewhere"]);

    let synced = flow(&env, &["sync", "b", "c", "e"]);
    synced.assert_code(1);
    assert_eq!(synced.result("b"), "refused", "{}", synced.text());
    assert!(
        synced.line("b").contains("a merge is in progress in its worktree"),
        "{}",
        synced.text()
    );
    assert_eq!(
        worktree_state(&env, "b"),
        b_before,
        "the person's merge is left as it was"
    );
    assert_eq!(synced.result("c"), "refused", "{}", synced.text());
    assert!(synced.line("c").contains("is gone"), "{}", synced.text());
    assert_eq!(synced.result("e"), "refused", "{}", synced.text());
    assert!(
        synced
            .line("e")
            .contains("has branch `elsewhere` checked out, not its branch `flow/t/e`"),
        "{}",
        synced.text()
    );
    assert_eq!(
        git_at(&env, &worktree(&env, "e"), &["symbolic-ref", "--short", "HEAD"]),
        "elsewhere"
    );

    let unknown = flow(&env, &["sync", "b", "zz"]);
    unknown.assert_code(2);
    assert!(unknown.text().contains("no workstream `zz`"), "{}", unknown.text());
    let typo = flow(&env, &["sync", "parallel.kdl", "bb"]);
    typo.assert_code(2);
    assert!(typo.text().contains("did you mean `b`"), "{}", typo.text());
    assert_eq!(worktree_state(&env, "b"), b_before);
}

#[test]
fn sync_and_resolve_are_refused_while_a_run_of_the_workflow_is_at_work() {
    let env = TestEnv::new();
    let started = env.outside("started");
    let go = env.outside("go");
    env.workflow(&format!(
        r#"{HEADER}
agent "waiter" {{
    command "sh" "-c" "touch {started}; while [ ! -e {go} ]; do sleep 0.05; done"
}}
workstream "w" {{ agent "waiter"; owns "w/**"; task "Wait."; }}
"#
    ));
    let mut run = env.spawn_flow(&["run", "--progress", "quiet"]);
    wait_until("the agent to start", || env.outside.join("started").exists());
    for verb in ["sync", "resolve"] {
        let refused = flow(&env, &[verb, "w"]);
        refused.assert_code(2);
        assert!(
            refused.text().contains("is already running"),
            "{verb}: {}",
            refused.text()
        );
    }
    std::fs::write(env.outside.join("go"), "").expect("write go");
    assert!(run.wait().success(), "the run goes on and succeeds");
    flow(&env, &["sync", "w"]).assert_code(0);
}

/// Writes `NAME.kdl`: the five workstreams with a resolver `fixer` that runs `script` in the
/// worktree (the same workflow `t`, so the same worktrees and branches).
fn with_resolver(env: &TestEnv, name: &str, script: &str) -> String {
    let escaped = script.replace('\\', "\\\\").replace('"', "\\\"");
    let body = FIVE.replace(
        "    on-conflict \"skip\"\n",
        "    on-conflict \"skip\"\n    resolver \"fixer\"\n",
    );
    let text = format!(
        "{HEADER}\nagent \"fixer\" {{\n    command \"sh\" \"-c\" \"{escaped}\"\n    output \"text\"\n}}\n{body}"
    );
    let file = format!("{name}.kdl");
    std::fs::write(env.root.join(&file), text).expect("write the workflow");
    file
}

/// Takes the conflict markers out of `shared.txt`, keeping both sides.
const KEEP_BOTH: &str = "sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' shared.txt";

/// A git identity for commits an agent makes (its environment carries none).
const AS_AGENT: &str = "git -c user.name=agent -c user.email=agent@example.com";

#[test]
fn sync_with_the_resolver_commits_only_a_resolution_without_markers_on_its_branch() {
    let env = setup(&[("shared.txt", SHARED)], FIVE);
    dirty_the_checkout(&env);
    five(&env);
    let into = env.rev_parse(INTO).expect("integration branch");
    let b_old = env.rev_parse(&branch("b")).expect("b");
    let b_before = worktree_state(&env, "b");
    let seen = env.outside("seen");

    // Without a resolver in the workflow, --agent is refused up front.
    let none = flow(&env, &["sync", "b", "--agent"]);
    none.assert_code(2);
    assert!(none.text().contains("names none"), "{}", none.text());

    // Broken or hostile resolvers: each one's sync is given up, b exactly as it was.
    let hostile = [
        (
            "idle",
            "echo did nothing".to_string(),
            "left conflict markers in shared.txt",
        ),
        ("crash", "exit 3".to_string(), "failed (exited with code 3)"),
        (
            "sneaky",
            format!("{AS_AGENT} commit -qam 'markers and all'"),
            "ended without finishing the merge",
        ),
        (
            "hooker",
            format!(
                "{KEEP_BOTH} && hook=\"$(git rev-parse --git-common-dir)/hooks/post-commit\" && \
                 echo 'echo owned' > \"$hook\" && chmod +x \"$hook\""
            ),
            "changed the git directory",
        ),
        (
            "switcher",
            format!("{KEEP_BOTH} && git add -A . && {AS_AGENT} commit -q --no-edit && git switch -q -c evil"),
            "changed the git directory (added ref refs/heads/evil",
        ),
        (
            "detacher",
            format!("{KEEP_BOTH} && git add -A . && {AS_AGENT} commit -q --no-edit && git checkout -q --detach"),
            "detached its worktree's HEAD",
        ),
    ];
    for (name, script, why) in hostile {
        let file = with_resolver(&env, name, &script);
        let synced = flow(&env, &["sync", &file, "b", "--agent"]);
        synced.assert_code(1);
        assert_eq!(synced.result("b"), "failed", "{name}: {}", synced.text());
        assert!(
            synced.line("b").contains(why) && synced.line("b").contains("the sync was given up"),
            "{name}: {}",
            synced.text()
        );
        assert_eq!(env.rev_parse(&branch("b")).as_deref(), Some(b_old.as_str()), "{name}");
        assert!(
            !env.root.join(".git/hooks/post-commit").exists(),
            "{name}: a planted hook is undone"
        );
        if name == "switcher" || name == "detacher" {
            // Its worktree is left on the branch it made; b's own branch is back.
            assert!(synced.line("b").contains("was left as it is"), "{}", synced.text());
            git_at(&env, &worktree(&env, "b"), &["checkout", "-q", "-f", &branch("b")]);
        } else {
            assert_eq!(worktree_state(&env, "b"), b_before, "{name}");
        }
    }

    // A resolver that does the job: the merge is committed on b with both lines, and logged.
    let file = with_resolver(
        &env,
        "good",
        &format!(
            "grep -q '<<<<<<<' \"$FLOW_PROMPT_FILE\" && echo \"$FLOW_PURPOSE $FLOW_WORKSTREAM\" > {seen} && \
             {KEEP_BOTH} && echo kept both lines"
        ),
    );
    let synced = flow(&env, &["sync", &file, "--agent"]);
    synced.assert_code(1);
    assert_eq!(synced.result("b"), "resolved", "{}", synced.text());
    assert!(
        synced
            .line("b")
            .contains("conflicts in shared.txt resolved by the resolver `fixer`"),
        "{}",
        synced.text()
    );
    assert_eq!(synced.result("c"), "synced", "{}", synced.text());
    assert_eq!(
        synced.result("d"),
        "refused",
        "d still has uncommitted work: {}",
        synced.text()
    );
    assert_eq!(env.read_outside("seen"), "resolve b\n");
    let b_head = env.rev_parse(&branch("b")).expect("b");
    assert_eq!(env.parents(&b_head), [b_old, into]);
    let shared = env.show_file(&b_head, "shared.txt").expect("shared.txt");
    assert!(
        shared.contains("line one by a") && shared.contains("line one by b") && !shared.contains("======="),
        "{shared}"
    );
    assert_eq!(git_at(&env, &worktree(&env, "b"), &["status", "--porcelain"]), "");
    let log = std::fs::read_to_string(env.flow_dir().join("conflict_resolution.md")).expect("the decision log");
    assert!(
        log.contains("## `b` and the integration branch")
            && log.contains("- files: shared.txt")
            && log.contains("the resolver agent `fixer` (`flow sync --agent`)")
            && log.contains("kept both lines"),
        "{log}"
    );
    // The merge it resolved is b's to merge now, and it goes in.
    let merged = flow(&env, &["merge"]);
    assert_eq!(merged.result("b"), "merged", "{}", merged.text());
    env.assert_fsck_clean();
}

#[test]
fn sync_with_a_resolver_that_commits_the_merge_itself_keeps_a_clean_commit() {
    let env = setup(&[("shared.txt", SHARED)], FIVE);
    dirty_the_checkout(&env);
    five(&env);
    let into = env.rev_parse(INTO).expect("integration branch");
    let b_old = env.rev_parse(&branch("b")).expect("b");
    let file = with_resolver(
        &env,
        "committer",
        &format!("{KEEP_BOTH} && git add shared.txt && {AS_AGENT} commit -q --no-edit && echo committed"),
    );
    let synced = flow(&env, &["sync", &file, "b", "--agent"]);
    synced.assert_code(0);
    assert_eq!(synced.result("b"), "resolved", "{}", synced.text());
    let b_head = env.rev_parse(&branch("b")).expect("b");
    assert_eq!(env.parents(&b_head), [b_old, into]);
    assert_eq!(
        git_at(&env, &worktree(&env, "b"), &["log", "-1", "--format=%an"]),
        "agent",
        "its own commit is kept"
    );
}
