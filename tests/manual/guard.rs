//! The git directory of prepared sessions: what an agent run by hand plants in the shared git
//! directory (a hook, a `core.fsmonitor`, a ref) refuses its workstream at `flow merge`, is
//! undone with a copy kept, and stays refused until `flow prepare` runs again; what a person
//! does in their own checkout meanwhile (commit, branch, stash) refuses nothing.

use super::*;

const TWO: &str = r#"
workstream "a" { owns "a/**"; task "Write a."; }
workstream "b" { owns "b/**"; task "Write b."; }
"#;

/// Prepares `a` and `b` and gives each a commit of its own work.
fn prepared(env: &TestEnv) {
    flow(env, &["prepare"]).assert_code(0);
    for ws in ["a", "b"] {
        write_in(env, ws, &format!("{ws}/file.txt"), &format!("{ws}\n"));
        agent_commit(env, ws, &format!("{ws}: file"));
    }
}

/// Runs a shell command in a workstream's worktree, as its agent would.
fn agent_runs(env: &TestEnv, ws: &str, script: &str) {
    let out = std::process::Command::new("sh")
        .current_dir(worktree(env, ws))
        .env_clear()
        .envs(env.base_env())
        .args(["-c", script])
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn kept_copies(env: &TestEnv, ws: &str) -> usize {
    let dir = env.root.join(".flow/guard/t/undone").join(ws);
    std::fs::read_dir(dir).map(|entries| entries.count()).unwrap_or(0)
}

#[test]
fn a_hook_planted_in_a_prepared_session_refuses_its_merge_until_prepared_again() {
    let env = setup(&[], TWO);
    prepared(&env);
    let marker = env.outside("hook-ran");
    agent_runs(
        &env,
        "a",
        &format!(
            r#"hooks="$(git rev-parse --git-common-dir)/hooks"; mkdir -p "$hooks"; printf '#!/bin/sh\ntouch {marker}\n' > "$hooks/post-checkout"; chmod +x "$hooks/post-checkout""#
        ),
    );
    let merged = flow(&env, &["merge"]);
    merged.assert_code(1);
    // The hook is in the shared folder: both sessions saw it, neither merges.
    for ws in ["a", "b"] {
        assert_eq!(merged.result(ws), "failed", "{}", merged.text());
        assert!(merged.line(ws).contains("post-checkout"), "{}", merged.text());
    }
    assert!(!env.root.join(".git/hooks/post-checkout").exists(), "the hook is gone");
    assert!(kept_copies(&env, "a") > 0, "a copy of the hook is kept");
    assert_eq!(
        env.rev_parse(INTO),
        env.rev_parse("main"),
        "nothing of either is merged"
    );
    env.git(&["checkout", "-q", "main"]);
    assert!(!Path::new(&marker).exists(), "the planted hook never ran");

    // Refused again, though the git directory is back as it was...
    let again = flow(&env, &["merge"]);
    again.assert_code(1);
    assert!(again.line("a").contains("refused by an earlier"), "{}", again.text());
    // ...until a person prepares again: their word that they read the branch.
    flow(&env, &["prepare"]).assert_code(0);
    let accepted = flow(&env, &["merge"]);
    accepted.assert_code(0);
    assert_eq!(accepted.result("a"), "merged", "{}", accepted.text());
    assert_eq!(accepted.result("b"), "merged", "{}", accepted.text());
}

#[test]
fn a_planted_fsmonitor_is_undone_before_anything_runs_and_refuses_the_merge() {
    let env = setup(&[], TWO);
    prepared(&env);
    let config_before = std::fs::read_to_string(env.root.join(".git/config")).expect("config");
    let marker = env.outside("fsmonitor-ran");
    agent_runs(&env, "b", &format!("git config core.fsmonitor 'touch {marker}'"));
    let merged = flow(&env, &["merge"]);
    merged.assert_code(1);
    let line = merged.line("b");
    assert!(line.contains("core.fsmonitor"), "{}", merged.text());
    assert_eq!(
        std::fs::read_to_string(env.root.join(".git/config")).expect("config"),
        config_before,
        "the configuration is as prepared"
    );
    env.git(&["status", "--short"]);
    assert!(!Path::new(&marker).exists(), "the planted command never ran");
}

#[test]
fn a_new_replace_ref_or_a_moved_branch_of_the_user_refuses_the_merge_and_is_put_back() {
    let env = setup(&[], TWO);
    env.git(&["branch", "release"]);
    let release = env.rev_parse("release").expect("release");
    prepared(&env);
    // `a` moves a branch the user has not checked out, `b` replaces the user's head commit.
    agent_runs(&env, "a", "git update-ref refs/heads/release HEAD");
    agent_runs(&env, "b", "git replace -f \"$(git rev-parse main)\" HEAD");
    let merged = flow(&env, &["merge"]);
    merged.assert_code(1);
    assert!(merged.line("a").contains("refs/heads/release"), "{}", merged.text());
    assert!(merged.line("b").contains("refs/replace/"), "{}", merged.text());
    assert_eq!(env.rev_parse("release").as_deref(), Some(release.as_str()), "put back");
    assert_eq!(env.git(&["replace", "-l"]), "", "the replace ref is gone");
}

#[test]
fn a_person_committing_branching_and_stashing_in_their_checkout_refuses_nothing() {
    let env = setup(&[], TWO);
    prepared(&env);
    env.write("notes.txt", "the user's own work\n");
    env.git(&["add", "notes.txt"]);
    env.git(&["commit", "-q", "-m", "the user's commit"]);
    env.git(&["branch", "idea"]);
    env.git(&["tag", "v1"]);
    env.write("notes.txt", "more\n");
    env.git(&["stash", "-q"]);
    // A worktree's own branch and a branch of its own made by hand are the session's.
    agent_runs(&env, "a", "git branch a-experiment");
    let merged = flow(&env, &["merge"]);
    merged.assert_code(0);
    assert_eq!(merged.result("a"), "merged", "{}", merged.text());
    assert_eq!(merged.result("b"), "merged", "{}", merged.text());
    assert!(!merged.text().contains("not compared"), "{}", merged.text());
}
