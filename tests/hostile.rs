//! Hostile agents. In the kernel sandbox, an agent (and its test) cannot write to the user's
//! checkout, `$HOME`, another workstream's worktree or the shared git directory's
//! configuration and hooks. Without the sandbox (`sandbox "off"`, or a kernel without
//! Landlock), whatever an agent plants in the shared git directory (a `core.fsmonitor`
//! command, a hook, a moved branch of the user's) is found once it is gone, undone, and fails
//! its workstream; a hook planted before the run never runs in an agent's git.

use crate::support::TestEnv;

/// A workstream, outside the sandbox (the guard is what catches it there), whose agent runs
/// `script` after writing its own file.
fn hostile(env: &TestEnv, script: &str) {
    env.workflow(&format!(
        r##"
workstream "w" {{
    owns "w/**"
    sandbox "off"
    script #"""
        mkdir -p w && echo work > w/file.txt
        {script}
        """#
}}
"##
    ));
}

fn failure(env: &TestEnv) -> (String, String) {
    let state = env.state();
    let ws = state.ws("w");
    (
        ws["failure"]["kind"].as_str().unwrap_or_default().to_string(),
        ws["failure"]["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn a_planted_fsmonitor_is_undone_and_fails_the_workstream() {
    let env = TestEnv::new();
    let marker = env.outside("fsmonitor-ran");
    hostile(&env, &format!("git config core.fsmonitor 'touch {marker}'"));
    let config_before = std::fs::read_to_string(env.root.join(".git/config")).expect("config");
    let run = env.run(&[]);
    assert_ne!(run.code(), Some(0), "{}", run.text());
    assert_eq!(env.state().phase("w"), "failed");
    let (kind, message) = failure(&env);
    assert_eq!(kind, "integrity", "{message}");
    assert!(message.contains("core.fsmonitor"), "{message}");
    // As it was, but for the switch that lets each worktree have its own scope hook.
    assert_eq!(
        std::fs::read_to_string(env.root.join(".git/config"))
            .expect("config")
            .replace("[extensions]\n\tworktreeConfig = true\n", ""),
        config_before,
        "the configuration is as it was"
    );
    // The user's next `git status` runs nothing.
    env.git(&["status", "--short"]);
    assert!(!std::path::Path::new(&marker).exists(), "the planted command never ran");
    assert!(
        env.rev_parse("integration/t")
            .is_none_or(|c| Some(c) == env.rev_parse("main"))
    );
}

#[test]
fn a_planted_hook_is_removed_and_kept_for_a_person_to_read() {
    let env = TestEnv::new();
    hostile(
        &env,
        r#"hooks="$(git rev-parse --git-common-dir)/hooks"; mkdir -p "$hooks"; printf '#!/bin/sh\necho gotcha\n' > "$hooks/pre-commit"; chmod +x "$hooks/pre-commit""#,
    );
    let run = env.run(&[]);
    assert_ne!(run.code(), Some(0), "{}", run.text());
    let (kind, message) = failure(&env);
    assert_eq!(kind, "integrity", "{message}");
    assert!(message.contains("pre-commit"), "{message}");
    assert!(!env.root.join(".git/hooks/pre-commit").exists(), "the hook is gone");
    let undone = env.latest_run_dir().expect("a run").join("undone");
    let kept: Vec<_> = walk(&undone);
    assert!(
        !kept.is_empty(),
        "a copy of what was removed is kept in {}",
        undone.display()
    );
}

#[test]
fn a_moved_branch_of_the_user_is_put_back() {
    let env = TestEnv::new();
    hostile(
        &env,
        r#"git -c user.name=x -c user.email=x@example.com commit -q --allow-empty -m evil && git update-ref refs/heads/main HEAD"#,
    );
    let main_before = env.rev_parse("main").expect("main");
    let run = env.run(&[]);
    assert_ne!(run.code(), Some(0), "{}", run.text());
    let (kind, message) = failure(&env);
    assert_eq!(kind, "integrity", "{message}");
    assert!(message.contains("refs/heads/main"), "{message}");
    assert_eq!(
        env.rev_parse("main").as_deref(),
        Some(main_before.as_str()),
        "main is back"
    );
}

#[test]
fn a_hook_planted_before_the_run_never_runs_in_an_agents_git() {
    let env = TestEnv::new();
    let marker = env.outside("hook-ran");
    let hook = env.root.join(".git/hooks/pre-commit");
    std::fs::create_dir_all(hook.parent().expect("hooks")).expect("hooks folder");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {marker}\n")).expect("hook");
    make_executable(&hook);
    env.workflow(
        r##"
workstream "w" {
    owns "w/**"
    script "mkdir -p w && echo work > w/file.txt && git add w && git -c user.name=x -c user.email=x@example.com commit -qm work"
}
"##,
    );
    // The test's own commit of the workflow ran the hook: start from no marker.
    let _ = std::fs::remove_file(&marker);
    let run = env.run(&[]);
    run.assert_code(0);
    assert_eq!(env.state().phase("w"), "merged");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "the repository's hook did not run in the agent's git"
    );
}

/// Whether this kernel confines agents; a test of the sandbox says why it skips when not.
fn confined() -> bool {
    let support = flow_engine::sandbox::support();
    if !support.filesystem {
        eprintln!("skipped: {support}, so agents run unconfined here");
    }
    support.filesystem
}

#[test]
fn a_sandboxed_agent_cannot_write_outside_its_worktree() {
    if !confined() {
        return;
    }
    let env = TestEnv::new();
    let home = env.root.parent().expect("parent").join("home");
    // Not in `outside/`, which the tests' workflows make writable.
    let elsewhere = env.root.parent().expect("parent").join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("a folder");
    let outside = elsewhere.join("escaped").display().to_string();
    env.workflow(&format!(
        r##"
workstream "w" {{
    owns "w/**"
    script #"""
        mkdir -p w && echo work > w/file.txt && git add w && git commit -qm work
        echo x > "$FLOW_REPO/escaped-to-checkout" 2>/dev/null && echo WROTE checkout
        echo x > "$HOME/escaped-to-home" 2>/dev/null && echo WROTE home
        echo x > "{outside}" 2>/dev/null && echo WROTE outside
        echo x > "$(dirname "$PWD")/other/escaped-to-sibling" 2>/dev/null && echo WROTE sibling
        git config core.fsmonitor "touch {outside}" 2>/dev/null && echo WROTE config
        echo x > "$TMPDIR/scratch" && echo tmp-ok
        true
        """#
}}
workstream "other" {{
    owns "other/**"
    script "mkdir -p other && echo mine > other/file.txt"
}}
"##
    ));
    let run = env.run(&[]);
    run.assert_code(0);
    let log = std::fs::read_to_string(env.latest_run_dir().expect("a run").join("logs/w.log")).expect("log");
    assert!(!log.contains("WROTE"), "{log}");
    assert!(log.contains("tmp-ok"), "its temporary folder is its own: {log}");
    assert!(!env.root.join("escaped-to-checkout").exists());
    assert!(!home.join("escaped-to-home").exists());
    assert!(!std::path::Path::new(&outside).exists());
    let config = std::fs::read_to_string(env.root.join(".git/config")).expect("config");
    assert!(!config.contains("fsmonitor"), "{config}");
    // Its own work was committed, checked and merged all the same.
    assert_eq!(env.state().phase("w"), "merged");
    assert_eq!(env.state().phase("other"), "merged");
}

#[test]
fn a_sandboxed_test_cannot_write_outside_its_worktree() {
    if !confined() {
        return;
    }
    let env = TestEnv::new();
    let elsewhere = env.root.parent().expect("parent").join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("a folder");
    let outside = elsewhere.join("test-escaped").display().to_string();
    env.workflow(&format!(
        r##"
workstream "w" {{
    owns "w/**"
    script "mkdir -p w && echo work > w/file.txt"
    test "echo x > {outside} || true"
}}
"##
    ));
    env.run(&[]).assert_code(0);
    assert!(
        !std::path::Path::new(&outside).exists(),
        "the test, running the agent's code, is confined too"
    );
}

#[test]
fn sandbox_off_lets_the_agent_write_where_the_user_can() {
    let env = TestEnv::new();
    let outside = env.outside("allowed");
    env.workflow(&format!(
        r##"
workstream "w" {{
    owns "w/**"
    sandbox "off"
    script "mkdir -p w && echo work > w/file.txt && echo x > {outside}"
}}
"##
    ));
    env.run(&[]).assert_code(0);
    assert!(std::path::Path::new(&outside).exists());
}

fn make_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(path).expect("metadata").permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(path, permissions).expect("chmod");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}
