//! Worktrees ready to work in: `setup` (a virtualenv a test imports from, a failure that
//! starts no agent, a resume after a kill during setup), `copy` and `.worktreeinclude` (a
//! `.env` in every worktree and in no merge), `FLOW_PORT` blocks two servers bind at once,
//! and the scope hook that refuses a person's commit outside the scope.

use rustix::process::Signal;

use crate::support::{TestEnv, wait_until};

fn have_python() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import venv"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn setup_installs_a_dependency_the_test_imports_and_the_copied_env_is_never_merged() {
    if !have_python() {
        eprintln!("skipped: no python3 with venv");
        return;
    }
    let env = TestEnv::new();
    env.write(".gitignore", ".env\n.venv/\n");
    env.write(".env", "GREETING=hello\n");
    env.workflow(
        r##"
workflow "t" {
    base "main"
}
agent "shell" {
    command "sh" "-c" "{script}"
    output "text"
}
defaults {
    agent "shell"
    copy ".env"
    setup "python3 -m venv --without-pip .venv" #"echo 'VALUE = 42' > "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/flowdep.py""#
}
workstream "one" {
    owns "one/**"
    script "mkdir -p one && echo $FLOW_WORKSTREAM > one/name.txt"
    test #". ./.env && test "$GREETING" = hello && .venv/bin/python -c 'import flowdep; assert flowdep.VALUE == 42'"#
}
workstream "two" {
    owns "two/**"
    script "mkdir -p two && echo $FLOW_BRANCH > two/branch.txt"
    test ".venv/bin/python -c 'import flowdep'"
}
"##,
    );
    // The .env is not committed in the user's checkout.
    assert!(!env.git(&["ls-files"]).contains(".env\n"));
    let run = env.run(&[]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("one"), "merged", "{}", run.text());
    assert_eq!(state.phase("two"), "merged", "{}", run.text());
    let files = env.files_at("integration/t");
    assert!(
        !files.iter().any(|f| f == ".env" || f.starts_with(".venv")),
        "{files:?}"
    );
    assert_eq!(env.show_file("integration/t", "one/name.txt").as_deref(), Some("one\n"));
    assert_eq!(
        env.show_file("integration/t", "two/branch.txt").as_deref(),
        Some("flow/t/two\n")
    );
    // Each worktree had its own copy.
    let worktrees = env.base().join("repo-worktrees").join("t");
    for ws in ["one", "two"] {
        let text = std::fs::read_to_string(worktrees.join(ws).join(".env")).expect("the copied .env");
        assert_eq!(text, "GREETING=hello\n");
    }
    // The run left the scope hook in each worktree: a person cannot commit the copied file.
    let mut add = env.git_command();
    add.current_dir(worktrees.join("one")).args(["add", "-f", ".env"]);
    assert!(add.output().expect("git add").status.success());
    let mut commit = env.git_command();
    commit
        .current_dir(worktrees.join("one"))
        .args(["commit", "-m", "the env"]);
    let refused = commit.output().expect("git commit");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("copied from your checkout"),
        "{said}"
    );
    // The setup's own log.
    let out = env.flow().args(["logs", "one", "--setup"]).output().expect("flow logs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("$ python3 -m venv --without-pip .venv"), "{text}");
}

#[test]
fn a_failing_setup_fails_the_workstream_with_its_output_and_starts_no_agent() {
    let env = TestEnv::new();
    let agent_ran = env.outside("agent-ran");
    env.workflow(&format!(
        r#"
workstream "broken" {{
    owns "b/**"
    setup "echo installing" "echo 'npm ERR! missing package' >&2; exit 3" "echo never"
    script "touch {agent_ran}"
}}
"#
    ));
    let run = env.run(&[]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.phase("broken"), "failed");
    assert_eq!(state.failure_kind("broken"), Some("setup"));
    let message = state.failure_message("broken");
    assert!(
        message.contains("exit") && message.contains("npm ERR! missing package"),
        "{message}"
    );
    assert!(!std::path::Path::new(&agent_ran).exists(), "the agent started");
    let out = env
        .flow()
        .args(["logs", "broken", "--setup"])
        .output()
        .expect("flow logs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("installing") && !text.contains("never"), "{text}");
}

#[test]
fn two_workstreams_bind_their_own_flow_port_at_the_same_time() {
    if !have_python() {
        eprintln!("skipped: no python3");
        return;
    }
    let env = TestEnv::new();
    let outside = env.outside.display().to_string();
    // Each binds its FLOW_PORT, says so, and holds it until the other has bound its own.
    let script = env.outside("server.py");
    std::fs::write(
        &script,
        format!(
            r#"import os, socket, sys, time, pathlib
me, other = sys.argv[1], sys.argv[2]
s = socket.socket()
s.bind(("127.0.0.1", int(os.environ["FLOW_PORT"])))
s.listen()
pathlib.Path("{outside}/" + me + ".port").write_text(os.environ["FLOW_PORT"] + " " + os.environ["FLOW_PORT_COUNT"])
while not pathlib.Path("{outside}/" + other + ".port").exists():
    time.sleep(0.05)
"#
        ),
    )
    .expect("server script");
    let server =
        |me: &str, other: &str| format!("python3 {script} {me} {other} && mkdir -p {me} && echo ok > {me}/done.txt");
    env.workflow(&format!(
        r##"
workflow "t" {{
    base "main"
    max-parallel 2
}}
agent "shell" {{
    command "sh" "-c" "{{script}}"
    output "text"
}}
defaults {{
    agent "shell"
    timeout "5m"
}}
workstream "a" {{
    owns "a/**"
    script "{}"
}}
workstream "b" {{
    owns "b/**"
    ports 25
    script "{}"
}}
"##,
        server("a", "b"),
        server("b", "a")
    ));
    let run = env.run(&[]);
    run.assert_code(0);
    let block = |name: &str| -> (u16, u16) {
        let text = env.read_outside(&format!("{name}.port"));
        let (first, count) = text.trim().split_once(' ').expect("port and count");
        (first.parse().expect("a port"), count.parse().expect("a count"))
    };
    let (a, b) = (block("a"), block("b"));
    assert_eq!((a.1, b.1), (10, 25), "the default count, and `ports 25`");
    assert!(
        a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0,
        "{a:?} and {b:?} overlap\n{}",
        run.text()
    );
}

#[test]
fn a_resume_after_a_kill_during_setup_runs_the_setup_again_and_finishes() {
    let env = TestEnv::new();
    let count = env.outside("setup-count");
    let release = env.outside("release");
    env.workflow(&format!(
        r#"
workstream "one" {{
    owns "one/**"
    setup "echo run >> {count}; if [ $(wc -l < {count}) -eq 1 ]; then while [ ! -e {release} ]; do sleep 0.05; done; fi"
    script "mkdir -p one && echo ok > one/ok.txt"
}}
"#
    ));
    let mut flow = env.spawn_flow(&["run", "--progress", "plain", "--grace", "1s"]);
    wait_until("the setup to start", || {
        env.read_outside("setup-count").lines().count() == 1
    });
    flow.signal(Signal::KILL);
    flow.wait();
    // The killed flow's setup, orphaned, may end now.
    std::fs::write(&release, "").expect("release");
    let out = env
        .flow()
        .args(["resume", "--progress", "plain", "--grace", "1s"])
        .output()
        .expect("flow resume");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.state().phase("one"), "merged");
    assert_eq!(env.read_outside("setup-count").lines().count(), 2);
    assert_eq!(env.show_file("integration/t", "one/ok.txt").as_deref(), Some("ok\n"));
}

#[test]
fn the_scope_hook_refuses_a_persons_commit_outside_the_scope_and_the_users_hook_still_runs() {
    let env = TestEnv::new();
    let user_hook_ran = env.outside("user-hook");
    env.write("src/a.txt", "a\n");
    env.write("docs/d.txt", "d\n");
    env.workflow(
        r#"
workstream "one" {
    owns "src/**"
    forbid "src/generated/**"
    script "true"
}
"#,
    );
    let hook = env.root.join(".git/hooks/pre-commit");
    std::fs::create_dir_all(hook.parent().expect("hooks folder")).expect("hooks folder");
    std::fs::write(&hook, format!("#!/bin/sh\necho ran >> {user_hook_ran}\n")).expect("user hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let out = env.flow().args(["prepare"]).output().expect("flow prepare");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let worktree = env.base().join("repo-worktrees").join("t").join("one");
    let git = |args: &[&str]| {
        let mut cmd = env.git_command();
        cmd.current_dir(&worktree).args(args);
        cmd.output().expect("git runs")
    };
    std::fs::write(worktree.join("docs/d.txt"), "changed\n").expect("edit");
    git(&["add", "docs/d.txt"]);
    let refused = git(&["commit", "-m", "out of scope"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "the commit went through");
    assert!(said.contains("docs/d.txt") && said.contains("outside `owns`"), "{said}");
    assert!(said.contains("--no-verify"), "{said}");
    git(&["reset", "-q", "docs/d.txt"]);
    git(&["checkout", "docs/d.txt"]);
    std::fs::create_dir_all(worktree.join("src/generated")).expect("mkdir");
    std::fs::write(worktree.join("src/generated/x.txt"), "x\n").expect("write");
    git(&["add", "src/generated/x.txt"]);
    let forbidden = git(&["commit", "-m", "forbidden"]);
    assert!(!forbidden.status.success());
    assert!(String::from_utf8_lossy(&forbidden.stderr).contains("forbid"));
    git(&["reset", "-q", "src/generated/x.txt"]);
    // In scope: the commit is made, and the repository's own hook ran after flow's.
    std::fs::write(worktree.join("src/a.txt"), "b\n").expect("edit");
    let made = git(&["commit", "-qam", "in scope"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert_eq!(env.read_outside("user-hook"), "ran\n");
    // The user's own checkout is untouched: no hooksPath of flow's, its hook runs as before.
    let hooks_path = env.git_output(&["config", "--get-all", "core.hooksPath"]);
    assert!(!String::from_utf8_lossy(&hooks_path.stdout).contains(".flow"));
    env.write("README.md", "changed\n");
    env.commit_all("in the user's checkout");
    assert_eq!(env.read_outside("user-hook"), "ran\nran\n");
}

#[test]
fn flow_clean_runs_the_teardown_in_each_worktree_it_removes() {
    let env = TestEnv::new();
    let torn = env.outside("torn-down");
    env.workflow(&format!(
        r#"
workstream "one" {{
    owns "one/**"
    teardown "echo $FLOW_WORKSTREAM $FLOW_BRANCH >> {torn}"
    script "true"
}}
"#
    ));
    let out = env.flow().args(["prepare"]).output().expect("flow prepare");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env.flow().args(["clean"]).output().expect("flow clean");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(env.read_outside("torn-down"), "one flow/t/one\n");
    assert!(!env.base().join("repo-worktrees/t/one").exists());
}

#[test]
fn an_agent_that_commits_a_copied_file_itself_fails_and_nothing_of_it_merges() {
    let env = TestEnv::new();
    env.write(".gitignore", ".env\n");
    env.write(".env", "TOKEN=secret\n");
    env.workflow(
        r#"
workstream "leaky" {
    copy ".env"
    script "mkdir -p l && echo x > l/x.txt && git add -f .env l && git -c user.name=a -c user.email=a@b commit -qm leak"
}
"#,
    );
    let run = env.run(&[]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.phase("leaky"), "failed");
    assert_eq!(state.failure_kind("leaky"), Some("integrity"), "{}", run.text());
    assert!(state.failure_message("leaky").contains(".env"));
    let files = env.files_at("integration/t");
    assert!(!files.iter().any(|f| f == ".env"), "{files:?}");
}

#[test]
fn ctrl_c_during_a_setup_stops_it_and_a_resume_runs_it_again() {
    let env = TestEnv::new();
    let started = env.outside("setup.pid");
    let count = env.outside("setup-count");
    // The first setup waits for ever (it is only stopped); the second passes.
    env.workflow(&format!(
        r#"
workstream "one" {{
    owns "one/**"
    setup "echo run >> {count}; if [ $(wc -l < {count}) -eq 1 ]; then echo $$ > {started}; while true; do sleep 0.05; done; fi"
    script "mkdir -p one && echo ok > one/ok.txt"
}}
"#
    ));
    let mut flow = env.spawn_flow(&["run", "--progress", "plain", "--grace", "1s"]);
    wait_until("the setup to start", || {
        !env.read_outside("setup.pid").trim().is_empty()
    });
    let setup_pid: i32 = env.read_outside("setup.pid").trim().parse().expect("a pid");
    flow.signal(Signal::INT);
    let status = flow.wait();
    assert!(!status.success(), "an interrupted run does not succeed");
    assert!(crate::support::process_gone(setup_pid), "the setup outlived Ctrl-C");
    let state = env.state();
    assert_eq!(state.status(), "cancelled");
    assert_eq!(state.phase("one"), "cancelled");

    let out = env
        .flow()
        .args(["resume", "--progress", "plain", "--grace", "1s"])
        .output()
        .expect("flow resume");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.state().phase("one"), "merged");
    assert_eq!(env.read_outside("setup-count").lines().count(), 2);
}
