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

/// Runs `flow resume` to its end.
fn resume(env: &TestEnv) -> crate::support::RunOutput {
    crate::support::RunOutput {
        out: env
            .flow()
            .args(["resume", "--progress", "plain", "--grace", "1s"])
            .timeout(std::time::Duration::from_secs(120))
            .output()
            .expect("flow resumes"),
    }
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
    // The hint after the table fits the failure.
    assert!(run.text().contains("`w` did what an agent must not"), "{}", run.text());
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

/// Runs `flow run` with `DB_PASS` set in its environment, and returns its output as text.
fn run_with_db_pass(env: &TestEnv, value: &str) -> (Option<i32>, String) {
    let out = env
        .flow()
        .args(["run", "--progress", "plain"])
        .env("DB_PASS", value)
        .timeout(std::time::Duration::from_secs(300))
        .output()
        .expect("flow runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Whether any file under `dir` holds `needle`.
fn anywhere_under(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|path| {
            std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

const DB_PASS: &str = "pw-7Qx93-odd-name";

#[test]
fn a_declared_secret_under_an_odd_name_never_reaches_the_logs_or_the_record() {
    let env = TestEnv::new();
    env.workflow(
        r##"
workstream "w" {
    owns "w/**"
    env "DB_PASS"
    secret "DB_PASS"
    test "echo test sees $DB_PASS"
    script "mkdir -p w && echo work > w/file.txt && echo agent sees $DB_PASS"
}
"##,
    );
    let (code, text) = run_with_db_pass(&env, DB_PASS);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains(DB_PASS), "{text}");
    let log = env.log("w");
    assert!(log.contains("agent sees ***") && log.contains("test sees ***"), "{log}");
    assert_eq!(
        anywhere_under(&env.root.join(".flow"), DB_PASS),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn a_secret_written_into_a_committed_file_fails_the_workstream_and_merges_nothing() {
    let env = TestEnv::new();
    env.workflow(
        r##"
workstream "w" {
    owns "w/**"
    env "DB_PASS"
    secret "DB_PASS"
    script "export GIT_AUTHOR_NAME=x GIT_AUTHOR_EMAIL=x@example.com GIT_COMMITTER_NAME=x GIT_COMMITTER_EMAIL=x@example.com; mkdir -p w && echo work > w/file.txt && git add w && git commit -qm work && echo \"pass=$DB_PASS\" > w/config.txt && git add w && git commit -qm config && git rm -q w/config.txt && git commit -qm 'take it back'"
}
workstream "encoded" {
    owns "e/**"
    env "DB_PASS"
    secret "DB_PASS"
    script "export GIT_AUTHOR_NAME=x GIT_AUTHOR_EMAIL=x@example.com GIT_COMMITTER_NAME=x GIT_COMMITTER_EMAIL=x@example.com; mkdir -p e && echo work > e/file.txt && git add e && git commit -qm \"note $(printf 'x%s' \"$DB_PASS\" | base64)\""
}
"##,
    );
    let base = env.rev_parse("main");
    let (code, text) = run_with_db_pass(&env, DB_PASS);
    assert_ne!(code, Some(0), "{text}");
    assert!(!text.contains(DB_PASS), "{text}");
    let state = env.state();
    for ws in ["w", "encoded"] {
        assert_eq!(state.phase(ws), "failed", "{text}");
        let message = state.ws(ws)["failure"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains("the value of DB_PASS is in"), "{ws}: {message}");
    }
    // Removed in a later commit, it is still in the branch's history: nothing merged.
    assert!(env.rev_parse("integration/t").is_none_or(|c| Some(c) == base), "{text}");
    assert_eq!(
        anywhere_under(&env.root.join(".flow"), DB_PASS),
        Vec::<std::path::PathBuf>::new()
    );
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

#[test]
fn a_hook_planted_by_an_agent_cut_by_a_crash_of_flow_is_undone_at_resume() {
    let env = TestEnv::new();
    let planted = env.outside("planted");
    hostile(
        &env,
        &format!(
            r#"hooks="$(git rev-parse --git-common-dir)/hooks"; mkdir -p "$hooks"; printf '#!/bin/sh\necho gotcha\n' > "$hooks/post-merge"; chmod +x "$hooks/post-merge"; touch {planted}; while :; do sleep 1; done"#
        ),
    );
    let mut run = env.spawn_flow(&["run"]);
    crate::support::wait_until("the agent planted its hook", || std::path::Path::new(&planted).exists());
    run.signal(rustix::process::Signal::KILL);
    run.wait();
    let kept = env.latest_run_dir().expect("a run").join("guard");
    assert_eq!(
        walk(&kept).len(),
        1,
        "the agent's snapshot is kept in {}",
        kept.display()
    );

    let resumed = resume(&env);
    assert_ne!(resumed.code(), Some(0), "{}", resumed.text());
    assert_eq!(env.state().phase("w"), "failed", "{}", resumed.text());
    let (kind, message) = failure(&env);
    assert_eq!(kind, "integrity", "{message}");
    assert!(message.contains("post-merge"), "{message}");
    assert!(!env.root.join(".git/hooks/post-merge").exists(), "the hook is gone");
    assert!(walk(&kept).is_empty(), "the snapshot is done with");
    assert!(
        env.rev_parse("integration/t")
            .is_none_or(|c| Some(c) == env.rev_parse("main")),
        "nothing of it is merged"
    );
}

/// Every loose object of the shared store, by name (`ab/cdef...`).
fn loose_objects(env: &TestEnv) -> Vec<String> {
    let objects = env.root.join(".git/objects");
    let mut names: Vec<String> = walk(&objects)
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(&objects).ok()?.to_string_lossy().into_owned();
            (rel.len() == 41 && rel.as_bytes()[2] == b'/').then_some(rel)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_sandboxed_agent_that_packs_its_own_objects_still_merges() {
    if !confined() {
        return;
    }
    let env = TestEnv::new();
    env.workflow(
        r##"
workstream "w" {
    owns "w/**"
    script #"""
        mkdir -p w && echo work > w/file.txt && git add w
        git -c user.name=x -c user.email=x@example.com commit -qm work
        git repack -a -d -l -q && git prune-packed
        test -z "$(find "$GIT_OBJECT_DIRECTORY" -path '*/??/*' -type f)"
        """#
}
"##,
    );
    let run = env.run(&[]);
    assert_eq!(env.state().phase("w"), "merged", "{}", run.text());
    assert_eq!(env.show_file("integration/t", "w/file.txt").as_deref(), Some("work\n"));
    env.assert_fsck_clean();
}

#[test]
fn a_sandboxed_agent_that_prunes_and_deletes_objects_loses_nothing_of_anyone_else() {
    if !confined() {
        return;
    }
    let env = TestEnv::new();
    env.workflow(
        r##"
workstream "w" {
    owns "w/**"
    depends-on "other"
    script #"""
        mkdir -p w && echo work > w/file.txt && git add w
        git -c user.name=x -c user.email=x@example.com commit -qm work
        git gc --prune=now >/dev/null 2>&1
        git prune --expire=now >/dev/null 2>&1
        objects="$(git rev-parse --git-common-dir)/objects"
        for object in "$objects"/??/*; do rm -f "$object" 2>/dev/null && echo "REMOVED $object"; done
        for object in "$objects"/??/*; do chmod u+w "$object" 2>/dev/null; : > "$object" 2>/dev/null && echo "EMPTIED $object"; done
        true
        """#
}
workstream "other" {
    owns "other/**"
    script "mkdir -p other && echo mine > other/file.txt"
}
"##,
    );
    // The user's own work, loose in the store: a commit, and a file staged for the next one.
    env.write("notes.txt", "the user's commit\n");
    env.git(&["add", "notes.txt"]);
    env.git(&["commit", "-q", "-m", "the user's work"]);
    env.write("staged.txt", "staged by the user\n");
    env.git(&["add", "staged.txt"]);
    let before = loose_objects(&env);
    assert!(!before.is_empty(), "the user's objects are loose");
    let run = env.run(&[]);
    let log = std::fs::read_to_string(env.latest_run_dir().expect("a run").join("logs/w.log")).unwrap_or_default();
    let after = loose_objects(&env);
    let lost: Vec<&String> = before.iter().filter(|name| !after.contains(name)).collect();
    assert!(lost.is_empty(), "objects lost: {lost:?}\n{log}\n{}", run.text());
    env.assert_fsck_clean();
    // `other` merged before `w` started: its work, in the integration branch, is whole.
    assert_eq!(env.state().phase("other"), "merged", "{}", run.text());
    assert_eq!(
        env.show_file("integration/t", "other/file.txt").as_deref(),
        Some("mine\n")
    );
    assert_eq!(
        env.show_file("HEAD", "notes.txt").as_deref(),
        Some("the user's commit\n")
    );
    assert!(
        env.git(&["ls-files", "--stage", "staged.txt"]).contains("staged.txt"),
        "the staged file is in the index"
    );
    assert!(
        env.git(&["cat-file", "-p", ":staged.txt"])
            .contains("staged by the user"),
        "and its content in the store"
    );
}

/// `honest` (sandboxed) ends while `h` (no sandbox) has planted a hook and works on until
/// `go` exists: the comparison after `honest` finds the hook, which only `h` could have
/// written. Returns the path of `go`.
fn planted_beside_a_sandboxed_agent(env: &TestEnv) -> String {
    let planted = env.outside("planted");
    let go = env.outside("go");
    env.workflow(&format!(
        r##"
workstream "honest" {{
    owns "honest/**"
    script #"""
        while [ ! -e {planted} ]; do sleep 0.1; done
        mkdir -p honest && echo work > honest/file.txt
        """#
}}
workstream "h" {{
    owns "h/**"
    sandbox "off"
    script #"""
        hooks="$(git rev-parse --git-common-dir)/hooks"; mkdir -p "$hooks"
        printf '#!/bin/sh\necho gotcha\n' > "$hooks/post-merge"; chmod +x "$hooks/post-merge"
        touch {planted}
        while [ ! -e {go} ]; do sleep 0.1; done
        mkdir -p h && echo work > h/file.txt
        """#
}}
"##
    ));
    go
}

/// Waits until `honest` of [`planted_beside_a_sandboxed_agent`] is merged (or failed).
fn wait_for_honest(env: &TestEnv) {
    crate::support::wait_until("`honest` merged or failed", || {
        env.try_state()
            .is_some_and(|s| ["merged", "failed"].contains(&s.phase("honest")))
    });
}

/// Checks that `h` of [`planted_beside_a_sandboxed_agent`] failed for the hook `honest`'s
/// comparison found, that `honest` merged, and that the hook is gone.
fn charged_to_h(env: &TestEnv, text: &str) {
    let state = env.state();
    assert_eq!(state.phase("honest"), "merged", "{text}");
    assert_eq!(state.phase("h"), "failed", "{text}");
    assert_eq!(state.failure_kind("h"), Some("integrity"), "{text}");
    let message = state.failure_message("h");
    assert!(
        message.contains("post-merge") && message.contains("found and undone when `honest` ended"),
        "{message}"
    );
    assert!(!env.root.join(".git/hooks/post-merge").exists(), "the hook is gone");
}

#[test]
fn a_hook_planted_while_a_sandboxed_agent_ran_is_charged_to_the_agent_without_one() {
    if !confined() {
        return;
    }
    let env = TestEnv::new();
    let go = planted_beside_a_sandboxed_agent(&env);
    let mut run = env.spawn_flow(&["run", "--keep-going"]);
    wait_for_honest(&env);
    std::fs::write(&go, "").expect("write");
    run.wait();
    charged_to_h(&env, "");
}

#[test]
fn a_charge_made_before_a_crash_of_flow_fails_the_agent_at_resume() {
    if !confined() {
        return;
    }
    let env = TestEnv::new();
    let go = planted_beside_a_sandboxed_agent(&env);
    let mut run = env.spawn_flow(&["run", "--keep-going"]);
    wait_for_honest(&env);
    // `h` is charged and still at work: flow dies.
    run.signal(rustix::process::Signal::KILL);
    run.wait();
    std::fs::write(&go, "").expect("write");
    let resumed = resume(&env);
    charged_to_h(&env, &resumed.text());
}
