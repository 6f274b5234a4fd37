//! `flow open` (an agent or a shell started for a person, in the terminal, in a worktree),
//! `flow done` (what a person finished, checked and merged), the record both keep and
//! `flow status` shows, and `flow prepare`'s setup.

use super::*;

/// `fake` is an interactive agent: it prints where it is, what it was told and its
/// variables, reads one line of its standard input (the terminal), and exits 3. `human` has
/// no interactive form.
const OPENED: &str = r#"
agent "fake" {
    command "true"
    interactive "sh" "-c" "echo \"cwd=$PWD\"; echo \"ws=$FLOW_WORKSTREAM run=$FLOW_RUN branch=$FLOW_BRANCH worktree=$FLOW_WORKTREE\"; echo \"port=${FLOW_PORT:+set}\"; echo \"key=${ACCOUNT_KEY:-none}\"; echo \"prompt=$1\"; read line; echo \"got=$line\"; exit 3" "fake" "{prompt}"
}
workstream "a" {
    agent "fake"
    owns "a/**"
    task "Write the a files."
    setup "echo setting up $FLOW_WORKSTREAM on $FLOW_BRANCH"
}
workstream "h" { owns "h/**"; task "Write h."; }
"#;

/// Runs `flow` with `stdin` as its standard input and `vars` set, and checks the user's
/// checkout is byte-identical afterwards.
#[track_caller]
fn flow_fed(env: &TestEnv, args: &[&str], stdin: &str, vars: &[(&str, &str)]) -> Run {
    let before = checkout(env);
    let out = env
        .flow()
        .args(args)
        .envs(vars.iter().copied())
        .write_stdin(stdin)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .expect("flow runs");
    let run = Run { out };
    assert!(
        before == checkout(env),
        "`flow {}` changed the user's checkout\n{}",
        args.join(" "),
        run.text()
    );
    run
}

/// The by-hand record of a workstream of workflow `t`.
fn record(env: &TestEnv, ws: &str) -> Value {
    let path = env.flow_dir().join("by-hand/t").join(format!("{ws}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("the record is JSON")
}

#[test]
fn open_starts_the_agent_in_its_prepared_worktree_with_the_prompt_the_variables_and_the_terminal() {
    let env = setup(&[], OPENED);
    dirty_the_checkout(&env);
    let dir = worktree(&env, "a");

    // No worktree yet: `flow open` prepares it, setup included, then starts the agent.
    let opened = flow_fed(&env, &["open", "a"], "typed by the person\n", &[]);
    opened.assert_code(3);
    let out = opened.stdout();
    let has = |needle: &str| assert!(out.contains(needle), "no {needle:?} in\n{}", opened.text());
    has(&format!("cwd={}\n", dir.display()));
    has(&format!(
        "ws=a run=by-hand branch=flow/t/a worktree={}\n",
        dir.display()
    ));
    has("port=set\n");
    has("got=typed by the person\n");
    // The prompt a run gives: `flow context` prints the same.
    let context = flow(&env, &["context", "a"]);
    context.assert_code(0);
    has(&format!("prompt={}", context.stdout().trim_end()));
    has("Write the a files.");
    assert_eq!(
        std::fs::read_to_string(dir.join(".ai/worktrees/a/prompt.md")).expect("prompt.md"),
        context.stdout()
    );
    let setup_log = flow(&env, &["logs", "a", "--setup"]);
    setup_log.assert_code(0);
    assert!(
        setup_log.stdout().contains("setting up a on flow/t/a"),
        "{}",
        setup_log.text()
    );

    // The session is recorded: who, which agent, started, ended, its exit status.
    let rec = record(&env, "a");
    let sessions = rec["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "{rec:#}");
    assert_eq!(sessions[0]["agent"], "fake");
    assert_eq!(sessions[0]["exit"], 3);
    assert!(
        sessions[0]["started"].is_string() && sessions[0]["ended"].is_string(),
        "{rec:#}"
    );
    assert!(sessions[0]["by"].is_string(), "{rec:#}");
    assert_eq!(rec["setup"]["passed"], true, "{rec:#}");

    // Opened again, the worktree is reused and the setup that passed there is not run again.
    let setup_at = rec["setup"]["at"].clone();
    flow_fed(&env, &["open", "a"], "again\n", &[]).assert_code(3);
    let rec = record(&env, "a");
    assert_eq!(rec["sessions"].as_array().map(Vec::len), Some(2), "{rec:#}");
    assert_eq!(rec["setup"]["at"], setup_at, "setup ran again: {rec:#}");

    // `flow status` lists it, with no run recorded, in text and JSON.
    let status = flow(&env, &["status"]);
    status.assert_code(0);
    assert!(
        status.stdout().contains("worked on by hand:") && status.line("a").starts_with("prepared fake opened by"),
        "{}",
        status.text()
    );
    let json = flow(&env, &["status", "--json"]);
    json.assert_code(0);
    let listed = &json.json()["by_hand"][0];
    assert_eq!(listed["workstream"], "a", "{}", json.text());
    assert_eq!(listed["state"], "prepared", "{}", json.text());
    assert_eq!(listed["sessions"][1]["exit"], 3, "{}", json.text());
}

#[test]
fn open_refuses_an_agent_without_an_interactive_form_and_an_unknown_workstream() {
    let env = setup(&[], OPENED);
    let refused = flow_fed(&env, &["open", "h"], "", &[]);
    refused.assert_code(1);
    let text = refused.text();
    assert!(text.contains("agent `human` of `h` has no interactive form"), "{text}");
    assert!(text.contains("flow open h --shell"), "{text}");
    assert!(!worktree(&env, "h").exists(), "nothing was prepared for nothing");

    let unknown = flow_fed(&env, &["open", "aa"], "", &[]);
    unknown.assert_code(2);
    assert!(unknown.text().contains("did you mean `a`?"), "{}", unknown.text());
}

#[test]
fn open_shell_starts_the_users_shell_in_the_worktree() {
    let env = setup(&[], OPENED);
    let shell = env.outside("a-shell");
    std::fs::write(
        &shell,
        "#!/bin/sh\necho \"shell in $PWD for $FLOW_WORKSTREAM\"\nread line\necho \"shell got=$line\"\n",
    )
    .expect("write the shell");
    std::fs::set_permissions(&shell, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");

    let opened = flow_fed(&env, &["open", "h", "--shell"], "ls\n", &[("SHELL", &shell)]);
    opened.assert_code(0);
    let out = opened.stdout();
    assert!(
        out.contains(&format!("shell in {} for h\n", worktree(&env, "h").display())),
        "{}",
        opened.text()
    );
    assert!(out.contains("shell got=ls\n"), "{}", opened.text());
    let rec = record(&env, "h");
    assert_eq!(rec["sessions"][0]["agent"], "shell", "{rec:#}");
    assert_eq!(rec["sessions"][0]["exit"], 0, "{rec:#}");
}

/// `a` has a test and `verify` checks its file; `b` depends on `a`.
const DONE: &str = r#"
workstream "a" { owns "a/**"; task "Write a."; test "test -f a/a.txt && test ! -e a/bad"; }
workstream "b" { owns "b/**"; task "Write b."; depends-on "a"; }
integrate {
    verify "test -f a/a.txt"
}
"#;

#[test]
fn done_refuses_unfinished_work_and_merges_finished_work_with_verify() {
    let env = setup(&[], DONE);
    dirty_the_checkout(&env);
    let dir = worktree(&env, "a");
    let refused = |args: &[&str], needles: &[&str]| {
        let run = flow(&env, args);
        run.assert_code(1);
        for needle in needles {
            assert!(run.text().contains(needle), "no {needle:?} in\n{}", run.text());
        }
    };

    refused(&["done", "a"], &["`a` is not prepared", "flow open a"]);
    flow(&env, &["prepare"]).assert_code(0);
    refused(&["done", "a"], &["`a` has nothing committed on flow/t/a"]);

    write_in(&env, "a", "a/a.txt", "A\n");
    refused(&["done", "a"], &["`a` has uncommitted changes", "a/a.txt"]);

    // Out of scope, the hook bypassed with --no-verify: `done` still refuses.
    write_in(&env, "a", "outside.txt", "not a's\n");
    git_at(&env, &dir, &["add", "a/a.txt", "outside.txt"]);
    git_at(&env, &dir, &["commit", "-q", "--no-verify", "-m", "a and more"]);
    refused(&["done", "a"], &["changed files outside its scope", "outside.txt"]);
    git_at(&env, &dir, &["rm", "-q", "outside.txt"]);
    git_at(&env, &dir, &["commit", "-q", "--no-verify", "-m", "only a's"]);

    // Its test runs, and a failure is shown with its output.
    write_in(&env, "a", "a/bad", "breaks the test\n");
    agent_commit(&env, "a", "a: bad");
    refused(&["done", "a"], &["`a`'s test failed"]);
    git_at(&env, &dir, &["rm", "-q", "a/bad"]);
    git_at(&env, &dir, &["commit", "-q", "-m", "a: good"]);
    assert_eq!(env.rev_parse(INTO), env.rev_parse("main"), "nothing merged yet");

    let done = flow(&env, &["done", "a", "--json"]);
    done.assert_code(0);
    let json = done.json();
    assert_eq!(json["state"], "merged", "{}", done.text());
    assert!(
        json["detail"].as_str().unwrap_or("").contains("verified"),
        "{}",
        done.text()
    );
    assert_eq!(json["test"]["passed"], true, "{}", done.text());
    assert_eq!(env.show_file(INTO, "a/a.txt").as_deref(), Some("A\n"));
    assert_eq!(env.show_file(INTO, "outside.txt"), None);

    let status = flow(&env, &["status", "--json"]);
    let by_hand = status.json()["by_hand"].clone();
    assert_eq!(by_hand[0]["workstream"], "a", "{by_hand:#}");
    assert_eq!(by_hand[0]["state"], "merged", "{by_hand:#}");

    // b can start now, told what a did: prepared, done, merged on top of a.
    flow(&env, &["prepare"]).assert_code(0);
    let context = flow(&env, &["context", "b"]);
    let told = context.stdout();
    assert!(
        told.contains("## What your dependencies did") && told.contains("### `a`") && told.contains("a: good"),
        "{}",
        context.text()
    );
    assert!(
        told.contains("a/a.txt") && told.contains("passed"),
        "{}",
        context.text()
    );
    write_in(&env, "b", "b/b.txt", "B\n");
    agent_commit(&env, "b", "b: work");
    let done = flow(&env, &["done", "b"]);
    done.assert_code(0);
    assert_eq!(done.result("b"), "merged", "{}", done.text());
    assert_eq!(env.show_file(INTO, "b/b.txt").as_deref(), Some("B\n"));
}

#[test]
fn prepare_runs_setup_and_fails_a_workstream_whose_setup_fails_with_its_output() {
    let env = setup(
        &[],
        r#"
workstream "a" { owns "a/**"; task "Write a."; setup "echo ready $FLOW_WORKSTREAM on $FLOW_BRANCH in $FLOW_RUN"; }
workstream "b" { owns "b/**"; task "Write b."; setup "echo first" "echo the reason it broke; exit 4" "echo never"; }
"#,
    );
    dirty_the_checkout(&env);
    let prepared = flow(&env, &["prepare"]);
    prepared.assert_code(1);
    assert_eq!(prepared.result("a"), "created", "{}", prepared.text());
    assert_eq!(prepared.result("b"), "failed", "{}", prepared.text());
    let text = prepared.stdout();
    assert!(
        text.contains("exited with code 4") && text.contains("the reason it broke"),
        "{}",
        prepared.text()
    );
    let log = flow(&env, &["logs", "a", "--setup"]);
    assert!(
        log.stdout().contains("ready a on flow/t/a in by-hand"),
        "{}",
        log.text()
    );
    let log = flow(&env, &["logs", "b", "--setup"]);
    assert!(
        log.stdout().contains("first\n")
            && log.stdout().contains("the reason it broke")
            && !log.stdout().contains("never"),
        "{}",
        log.text()
    );
    assert_eq!(record(&env, "b")["setup"]["passed"], false);
    let status = flow(&env, &["status"]);
    assert!(status.line("b").starts_with("setup-failed"), "{}", status.text());

    // `flow clean` takes the records with the worktrees: nothing is listed any more.
    flow(&env, &["clean", "--force"]).assert_code(0);
    let status = flow(&env, &["status"]);
    assert!(!status.stdout().contains("worked on by hand"), "{}", status.text());
}

#[test]
fn an_opened_agent_is_confined_to_its_worktree_unless_no_sandbox_is_asked_for() {
    let support = flow_engine::sandbox::support();
    if !support.filesystem {
        eprintln!("skipped: {support}, so sessions run unconfined here");
        return;
    }
    let env = TestEnv::new();
    // Not in `outside/`, which the tests' workflows make writable.
    let elsewhere = env.root.parent().expect("parent").join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("a folder");
    let escaped = elsewhere.join("escaped");
    env.workflow(&format!(
        r#"{HEADER}
agent "hostile" {{
    command "true"
    interactive "sh" "-c" "echo out > '{escaped}'; echo in > mine.txt; git config core.fsmonitor 'touch {planted}'; exit 0"
}}
workstream "w" {{ agent "hostile"; owns "**"; task "Escape."; }}
"#,
        escaped = escaped.display(),
        planted = elsewhere.join("planted").display(),
    ));
    let opened = flow_fed(&env, &["open", "w"], "", &[]);
    opened.assert_code(0);
    assert!(
        !escaped.exists(),
        "the session wrote outside its worktree\n{}",
        opened.text()
    );
    assert!(worktree(&env, "w").join("mine.txt").exists(), "{}", opened.text());
    let fsmonitor = env.git_output(&["config", "--get", "core.fsmonitor"]);
    assert!(
        fsmonitor.stdout.is_empty(),
        "core.fsmonitor planted: {}",
        String::from_utf8_lossy(&fsmonitor.stdout)
    );
    assert_eq!(record(&env, "w")["sessions"][0]["sandboxed"], true);

    let unconfined = flow_fed(&env, &["open", "w", "--no-sandbox"], "", &[]);
    unconfined.assert_code(0);
    assert!(escaped.exists(), "--no-sandbox: {}", unconfined.text());
    // The guard still undoes what it changed in the git directory, and says so.
    let fsmonitor = env.git_output(&["config", "--get", "core.fsmonitor"]);
    assert!(fsmonitor.stdout.is_empty(), "{}", unconfined.text());
    assert!(
        unconfined.text().contains("the session changed the git directory"),
        "{}",
        unconfined.text()
    );
    let rec = record(&env, "w");
    assert_eq!(rec["sessions"][1]["sandboxed"], false, "{rec:#}");
    assert!(
        rec["sessions"][1]["tampering"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{rec:#}"
    );
}

#[test]
fn ctrl_c_goes_to_the_session_and_flow_waits_for_it_to_end() {
    let env = TestEnv::new();
    let started = env.outside("started");
    let release = env.outside("release");
    env.workflow(&format!(
        r#"{HEADER}
agent "waits" {{
    command "true"
    interactive "sh" "-c" "trap 'echo interrupted >> {started}' INT; echo up > {started}; while [ ! -e {release} ]; do sleep 0.05; done; exit 7"
}}
workstream "w" {{ agent "waits"; owns "w/**"; task "Wait."; }}
"#
    ));
    let mut flow = std::process::Command::new(crate::support::flow_bin())
        .current_dir(&env.root)
        .env_clear()
        .envs(
            env.flow()
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .args(["open", "w"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("flow starts");
    crate::support::wait_until("the session to start", || {
        std::fs::read_to_string(&started).is_ok_and(|s| s.starts_with("up"))
    });
    // As a terminal's Ctrl-C would, to flow (the session gets its own from the terminal).
    let pid = rustix::process::Pid::from_child(&flow);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT sent");
    // While it is open, it is shown open, and neither opened again nor taken as done.
    let status = flow_fed(&env, &["status"], "", &[]);
    assert!(
        status.line("w").starts_with("open waits opened by"),
        "{}",
        status.text()
    );
    let again = flow_fed(&env, &["open", "w"], "", &[]);
    again.assert_code(1);
    assert!(again.text().contains("`w` is already open"), "{}", again.text());
    let done = flow_fed(&env, &["done", "w"], "", &[]);
    done.assert_code(1);
    assert!(done.text().contains("`w` is still open"), "{}", done.text());
    std::fs::write(&release, "").expect("release");
    let status = flow.wait().expect("flow ends");
    assert_eq!(
        status.code(),
        Some(7),
        "flow exits with the session's status: {status:?}"
    );
    let rec = record(&env, "w");
    assert_eq!(rec["sessions"][0]["exit"], 7, "{rec:#}");
    assert!(rec["sessions"][0]["ended"].is_string(), "{rec:#}");
    let status = flow_fed(&env, &["status"], "", &[]);
    assert!(
        status.line("w").starts_with("prepared waits opened by"),
        "{}",
        status.text()
    );
    assert!(status.line("w").ends_with("exited 7"), "{}", status.text());
}

#[test]
fn open_refuses_a_workstream_whose_dependencies_have_not_merged() {
    let env = setup(&[], DONE);
    let refused = flow_fed(&env, &["open", "b", "--shell"], "", &[]);
    refused.assert_code(1);
    assert!(
        refused.text().contains("cannot open `b`: waits for a to merge"),
        "{}",
        refused.text()
    );
    assert!(!worktree(&env, "b").exists());
}

#[test]
fn ctrl_c_stops_a_setup_flow_prepare_runs() {
    let env = TestEnv::new();
    let started = env.outside("setup.pid");
    env.workflow(&format!(
        r#"{HEADER}
workstream "a" {{ owns "a/**"; task "Write a."; setup "echo $$ > {started}; while true; do sleep 0.05; done"; }}
"#
    ));
    let mut flow = env.spawn_flow(&["prepare"]);
    crate::support::wait_until("the setup to start", || {
        !env.read_outside("setup.pid").trim().is_empty()
    });
    let setup_pid: i32 = env.read_outside("setup.pid").trim().parse().expect("a pid");
    flow.signal(rustix::process::Signal::INT);
    let status = flow.wait();
    assert_eq!(
        status.code(),
        Some(1),
        "the stopped setup fails its workstream: {status:?}"
    );
    assert!(crate::support::process_gone(setup_pid), "the setup outlived Ctrl-C");
    let rec = record(&env, "a");
    assert_eq!(rec["setup"]["passed"], false, "{rec:#}");
    assert!(
        rec["setup"]["detail"].as_str().unwrap_or("").contains("was stopped"),
        "{rec:#}"
    );
}
