//! Helpers shared by the end-to-end tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use rustix::process::{Pid, Signal, kill_process, test_kill_process};
use serde_json::Value;

/// The repository root (where `workflows/` and `stdlib/` live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of the `flow` binary under test.
pub fn flow_bin() -> PathBuf {
    PathBuf::from(assert_cmd::cargo::cargo_bin!("flow"))
}

/// A `flow` command with a hermetic environment: no color, fixed width.
pub fn flow(dir: &Path) -> Command {
    let mut cmd = Command::new(flow_bin());
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env_remove("CLICOLOR_FORCE");
    cmd
}

/// Where a fake agent script lives (`tests/fixtures/agents/`).
pub fn fake_agent(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/agents").join(name)
}

/// A recorded agent CLI output (`engine/tests/fixtures/agents/`).
pub fn recorded_output(name: &str) -> PathBuf {
    repo_root().join("engine/tests/fixtures/agents").join(name)
}

/// How long a test waits for something that must happen before it calls it hung. It guards
/// against a test that would never end, and says nothing about speed: a busy machine may
/// take long, but not this long.
pub const HANG_GUARD: Duration = Duration::from_secs(180);

/// The date every commit the tests' git makes carries (flow's own commits carry the time
/// they were made).
const PINNED_DATE: &str = "2001-02-03T04:05:06+00:00";

/// The first lines of every test workflow: a workflow `t` on `main` and a `shell` agent.
pub const HEADER: &str = r#"
workflow "t" {
    base "main"
}
agent "shell" {
    command "sh" "-c" "{script}"
    output "text"
}
defaults {
    agent "shell"
}
"#;

/// A temporary git repository to run `flow` in, with a hermetic git and process environment.
///
/// The temporary folder holds `repo/` (the repository, on branch `main` with one commit),
/// `home/` (an empty `HOME`), `outside/` (where agent scripts leave evidence, outside every
/// worktree) and, once `flow run` has run, `repo-worktrees/`.
pub struct TestEnv {
    temp: tempfile::TempDir,
    /// The repository's root.
    pub root: PathBuf,
    /// A folder outside the repository and its worktrees.
    pub outside: PathBuf,
    home: PathBuf,
}

impl TestEnv {
    /// A repository with `README.md` committed on `main`.
    pub fn new() -> TestEnv {
        let temp = tempfile::Builder::new()
            .prefix("flow-e2e-")
            .tempdir()
            .expect("temp dir");
        // Canonical, so that paths flow prints and records compare equal with ours.
        let base = std::fs::canonicalize(temp.path()).expect("canonical temp dir");
        let root = base.join("repo");
        let outside = base.join("outside");
        let home = base.join("home");
        for dir in [&root, &outside, &home] {
            std::fs::create_dir_all(dir).expect("create dir");
        }
        let env = TestEnv {
            temp,
            root,
            outside,
            home,
        };
        env.git(&["init", "-q", "-b", "main"]);
        env.write("README.md", "# test repository\n");
        env.commit_all("initial commit");
        env
    }

    /// The environment every process of a test gets: nothing from the test's own environment
    /// but `PATH`.
    pub fn base_env(&self) -> Vec<(String, String)> {
        hermetic_env(&self.home)
    }

    /// Writes a file of the repository (creating its folders), relative to the root.
    pub fn write(&self, path: &str, text: &str) {
        let full = self.root.join(path);
        std::fs::create_dir_all(full.parent().expect("a parent")).expect("create dirs");
        std::fs::write(full, text).expect("write file");
    }

    /// Writes `parallel.kdl` (after [`HEADER`] unless the text has its own `workflow`) and
    /// commits it, so the checkout is clean.
    ///
    /// Agents and tests run in the kernel sandbox: `outside/` is made writable to them (in the
    /// `defaults` block, added when the text has none), as the place they leave evidence.
    pub fn workflow(&self, body: &str) {
        let text = if body.contains("workflow \"") {
            body.to_string()
        } else {
            format!("{HEADER}\n{body}")
        };
        let writable = format!("\n    writable \"{}/\"", self.outside.display());
        let text = match text.find("defaults {") {
            Some(at) => {
                let end = at + "defaults {".len();
                format!("{}{writable}{}", &text[..end], &text[end..])
            }
            None => format!("{text}\ndefaults {{{writable}\n}}\n"),
        };
        self.write("parallel.kdl", &text);
        self.commit_all("add the workflow");
    }

    /// Stages and commits everything.
    pub fn commit_all(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }

    /// A `git` command in the repository with the hermetic environment.
    pub fn git_command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new("git");
        cmd.current_dir(&self.root).env_clear().envs(self.base_env());
        cmd
    }

    /// Runs git and returns its output, whatever its exit status.
    pub fn git_output(&self, args: &[&str]) -> Output {
        self.git_command().args(args).output().expect("git runs")
    }

    /// Runs git, checks it succeeded, and returns its trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.git_output(args);
        assert!(
            out.status.success(),
            "git {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// The commit a revision names, or `None`.
    pub fn rev_parse(&self, rev: &str) -> Option<String> {
        let out = self.git_output(&["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The content of `path` at revision `rev`, or `None` when it has no such file.
    pub fn show_file(&self, rev: &str, path: &str) -> Option<String> {
        let out = self.git_output(&["cat-file", "-p", &format!("{rev}:{path}")]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// Every file of a revision's tree.
    pub fn files_at(&self, rev: &str) -> Vec<String> {
        self.git(&["ls-tree", "-r", "--name-only", rev])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The commits of `git rev-list --first-parent`, oldest first.
    pub fn first_parent_chain(&self, rev: &str) -> Vec<String> {
        let mut chain: Vec<String> = self
            .git(&["rev-list", "--first-parent", rev])
            .lines()
            .map(str::to_string)
            .collect();
        chain.reverse();
        chain
    }

    /// `git log --format=FORMAT` of a revision, one entry per commit, newest first.
    pub fn git_log(&self, rev: &str, format: &str) -> Vec<String> {
        self.git(&["log", &format!("--format={format}"), rev])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The parents of a commit.
    pub fn parents(&self, rev: &str) -> Vec<String> {
        self.git(&["rev-list", "--parents", "-n", "1", rev])
            .split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    /// What the user's checkout looks like: HEAD's branch and commit, `main`'s commit, the
    /// status, and the files at the root (but `.flow/`, flow's own, git-ignored folder). A run
    /// must leave all of it unchanged.
    pub fn checkout_snapshot(&self) -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(&self.root)
            .expect("read root")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name != ".flow")
            .collect();
        files.sort();
        vec![
            self.git(&["symbolic-ref", "HEAD"]),
            self.git(&["rev-parse", "HEAD"]),
            self.git(&["rev-parse", "refs/heads/main"]),
            self.git(&["status", "--porcelain", "--untracked-files=all"]),
            files.join(" "),
        ]
    }

    /// Checks `git fsck` finds nothing wrong.
    pub fn assert_fsck_clean(&self) {
        let out = self.git_output(&["fsck", "--full", "--no-dangling"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && text.trim().is_empty(), "git fsck:\n{text}");
    }

    /// A `flow` command in the repository: the hermetic environment and nothing else.
    pub fn flow(&self) -> Command {
        let mut cmd = Command::new(flow_bin());
        cmd.current_dir(&self.root).env_clear().envs(self.base_env());
        cmd
    }

    /// Starts `flow` with these arguments in the background, its output discarded, for tests
    /// that signal it or run something beside it.
    pub fn spawn_flow(&self, args: &[&str]) -> Background {
        let child = std::process::Command::new(flow_bin())
            .current_dir(&self.root)
            .env_clear()
            .envs(self.base_env())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("flow starts");
        Background { child }
    }

    /// Runs `flow run --progress plain --grace 1s --retry-delay 100ms` with more arguments.
    pub fn run(&self, args: &[&str]) -> RunOutput {
        let out = self
            .flow()
            .args(["run", "--progress", "plain", "--grace", "1s", "--retry-delay", "100ms"])
            .args(args)
            .timeout(Duration::from_secs(60))
            .output()
            .expect("flow runs");
        RunOutput { out }
    }

    /// The `.flow/` folder.
    pub fn flow_dir(&self) -> PathBuf {
        self.root.join(".flow")
    }

    /// The folder of the latest run, if there is one.
    pub fn latest_run_dir(&self) -> Option<PathBuf> {
        let id = std::fs::read_to_string(self.flow_dir().join("latest")).ok()?;
        Some(self.flow_dir().join("runs").join(id.trim()))
    }

    /// The latest run's `state.json`.
    pub fn state(&self) -> State {
        let dir = self.latest_run_dir().expect(".flow/latest names a run");
        let text = std::fs::read_to_string(dir.join("state.json")).expect("state.json exists");
        State(serde_json::from_str(&text).expect("state.json is JSON"))
    }

    /// The latest run's state if it can be read yet.
    pub fn try_state(&self) -> Option<State> {
        let dir = self.latest_run_dir()?;
        let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
        serde_json::from_str(&text).ok().map(State)
    }

    /// The latest run's log of a workstream.
    pub fn log(&self, workstream: &str) -> String {
        let dir = self.latest_run_dir().expect("a run");
        std::fs::read_to_string(dir.join("logs").join(format!("{workstream}.log"))).unwrap_or_default()
    }

    /// A path outside the repository, as text for a script.
    pub fn outside(&self, name: &str) -> String {
        self.outside.join(name).display().to_string()
    }

    /// Reads a file agents left outside the repository.
    pub fn read_outside(&self, name: &str) -> String {
        std::fs::read_to_string(self.outside.join(name)).unwrap_or_default()
    }

    /// The merge order `flow plan --json` gives.
    pub fn merge_order(&self) -> Vec<String> {
        let out = self.flow().args(["plan", "--json"]).output().expect("flow plan runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON");
        serde_json::from_value(plan["merge_order"].clone()).expect("merge order")
    }

    /// The temporary folder holding everything.
    pub fn base(&self) -> &Path {
        self.temp.path()
    }
}

/// A `flow` process running in the background. If a test fails while it runs, it is stopped
/// like a user would (SIGINT, then SIGKILL after five seconds), so that it neither outlives the
/// test nor leaves its agents behind.
pub struct Background {
    child: std::process::Child,
}

impl Background {
    /// Its process id.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid fits in i32")
    }

    /// Sends it a signal.
    pub fn signal(&self, signal: Signal) {
        // A child this test started and has not reaped: its pid is still its own.
        let sent = kill_process(Pid::from_child(&self.child), signal);
        assert_eq!(sent, Ok(()), "signal {signal:?} sent");
    }

    /// Waits for it to exit; panics if it is still running after `limit`.
    #[track_caller]
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for flow") {
                return status;
            }
            assert!(
                start.elapsed() < HANG_GUARD,
                "flow still running after {HANG_GUARD:?}: hung"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // As in `signal`: the child has not been reaped.
            let _ = kill_process(Pid::from_child(&self.child), Signal::INT);
            let start = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The output of one `flow run`.
pub struct RunOutput {
    pub out: Output,
}

impl RunOutput {
    /// The exit code.
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }

    /// Stdout and stderr, for assertion messages.
    pub fn text(&self) -> String {
        format!(
            "--- stdout\n{}--- stderr\n{}",
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    /// Stderr alone.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Checks the exit code, showing the output when it differs.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "exit code\n{}", self.text());
        self
    }
}

/// A run's `state.json`.
#[derive(Debug, Clone)]
pub struct State(pub Value);

impl State {
    /// The run's status.
    pub fn status(&self) -> &str {
        self.0["status"].as_str().expect("status")
    }

    /// A workstream's record.
    #[track_caller]
    pub fn ws(&self, name: &str) -> &Value {
        self.0["workstreams"]
            .as_array()
            .expect("workstreams")
            .iter()
            .find(|w| w["name"] == name)
            .unwrap_or_else(|| panic!("no workstream {name} in {:#}", self.0))
    }

    /// A workstream's phase.
    #[track_caller]
    pub fn phase(&self, name: &str) -> &str {
        self.ws(name)["phase"].as_str().expect("phase")
    }

    /// A workstream's failure kind, if it failed.
    pub fn failure_kind(&self, name: &str) -> Option<&str> {
        self.ws(name)["failure"]["kind"].as_str()
    }

    /// A workstream's failure message, or "".
    pub fn failure_message(&self, name: &str) -> &str {
        self.ws(name)["failure"]["message"].as_str().unwrap_or("")
    }

    /// A workstream's `started_at` (RFC 3339 in the state) as seconds since the epoch, if it started.
    pub fn started_at(&self, name: &str) -> Option<f64> {
        seconds(&self.ws(name)["started_at"])
    }

    /// A workstream's `ended_at` as seconds since the epoch, if it ended.
    pub fn ended_at(&self, name: &str) -> Option<f64> {
        seconds(&self.ws(name)["ended_at"])
    }

    /// A string field of a workstream.
    pub fn field(&self, name: &str, field: &str) -> Option<String> {
        self.ws(name)[field].as_str().map(str::to_string)
    }

    /// Every workstream's name and phase, for assertion messages and whole-table comparisons.
    pub fn phases(&self) -> Vec<(String, String)> {
        self.0["workstreams"]
            .as_array()
            .expect("workstreams")
            .iter()
            .map(|w| {
                (
                    w["name"].as_str().unwrap_or("").to_string(),
                    w["phase"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The alerts raised during the run.
    pub fn alerts(&self) -> Vec<String> {
        serde_json::from_value(self.0["alerts"].clone()).unwrap_or_default()
    }
}

/// `(name, phase)` pairs, for comparing with [`State::phases`].
pub fn phases(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, p)| (n.to_string(), p.to_string())).collect()
}

/// Waits until `check` holds, polling every 50 ms; panics after `limit`.
#[track_caller]
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < HANG_GUARD, "waited {HANG_GUARD:?} for {what}: hung");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Tells whether a process is gone: no such pid, or a zombie waiting for its parent.
pub fn process_gone(pid: i32) -> bool {
    // Signal 0 only checks that the process exists.
    let exists = pid > 0 && Pid::from_raw(pid).is_some_and(|pid| test_kill_process(pid).is_ok());
    if !exists {
        return true;
    }
    // `/proc/<pid>/stat` is "pid (comm) STATE ...": comm may hold spaces, so split after ')'.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

/// What every process of a test gets instead of the test's own environment: `PATH`, `home`
/// as `HOME`, a plain locale and terminal, no git configuration but a test identity and a
/// pinned date for every commit git makes.
pub fn hermetic_env(home: &Path) -> Vec<(String, String)> {
    let mut vars = vec![
        (
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        ),
        ("HOME".to_string(), home.display().to_string()),
        ("LANG".to_string(), "C".to_string()),
        ("TZ".to_string(), "UTC".to_string()),
        ("NO_COLOR".to_string(), "1".to_string()),
        ("COLUMNS".to_string(), "100".to_string()),
        ("GIT_CONFIG_GLOBAL".to_string(), "/dev/null".to_string()),
        ("GIT_CONFIG_NOSYSTEM".to_string(), "1".to_string()),
    ];
    for who in ["AUTHOR", "COMMITTER"] {
        vars.push((format!("GIT_{who}_NAME"), "Test User".to_string()));
        vars.push((format!("GIT_{who}_EMAIL"), "test@example.com".to_string()));
        vars.push((format!("GIT_{who}_DATE"), PINNED_DATE.to_string()));
    }
    vars
}

/// An RFC 3339 time of a JSON record as seconds since the epoch.
pub fn seconds(value: &Value) -> Option<f64> {
    let at: jiff::Timestamp = value.as_str()?.parse().ok()?;
    Some(at.as_microsecond() as f64 / 1e6)
}
