//! Crash safety end to end: `flow run` is SIGKILLed at many points of its lifecycle, then
//! `flow resume` (itself killed at random points) runs until it succeeds. Every time: each
//! workstream is merged exactly once, no agent that had finished runs again, the user's
//! checkout is untouched, `git fsck --strict` is clean (right after a kill, it may only report
//! a worktree record the kill caught half-made) and `state.json` parses.
//!
//! Only the flow process is killed: its agents live on, as after a real crash, until the
//! resume stops them. On top of the states the kills leave by timing, some scenarios add the
//! ones a kill leaves in windows too narrow to hit reliably: a torn last event line, a worktree
//! record caught inside its creation, the integration worktree still on its temporary branch.
//!
//! The same for the agents that work with the agents' work: a second workflow fails a test once
//! (a fix), has its reviewer reject once (a review, a fix, a review), and makes two pairs of
//! workstreams conflict (one resolved by its own agent after a sync, one by the resolver).
//! `flow run` is killed while each of those runs (the agent run a kill waits for is held until
//! the kill, so it is caught whatever the machine's speed) and right after each ended; then,
//! with resumes killed at random too: each workstream merged once with `verify` green, every
//! agent ran as often as the work needs and again only for an attempt a kill cut (a finished
//! fix, review or resolution never runs twice, and none runs off the record), the attempt logs
//! hold each attempt once and no more fixes than allowed, and the decision log each resolution
//! once.
//!
//! And: after a failed run and an edit of the workflow, `flow resume` re-runs exactly the
//! changed workstreams and their dependents.
//!
//! Self-contained on purpose (its own repository helper), so it does not depend on
//! `support.rs` changing under it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flow_engine::git::WORKTREE_BEING_MADE;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;

/// The workflow's name; branches are `flow/crash/<ws>`, merges land in `integration/crash`.
const WORKFLOW: &str = "crash";
const INTO: &str = "integration/crash";

/// One workstream of the crash workflow.
struct Spec {
    name: &'static str,
    deps: &'static [&'static str],
    sleep_ms: u32,
    /// The agent commits its own work (otherwise flow commits what it left).
    commits: bool,
    /// `isolation "none"`: runs in a scratch folder, nothing is merged.
    scratch: bool,
}

const fn ws(name: &'static str, deps: &'static [&'static str], sleep_ms: u32, commits: bool) -> Spec {
    Spec {
        name,
        deps,
        sleep_ms,
        commits,
        scratch: false,
    }
}

/// Three roots, two diamonds (api/db/ui -> svc/web -> app), a chain (c1 -> c2 -> c3) and a
/// scratch workstream: ten in all, three at a time.
const SPECS: &[Spec] = &[
    ws("api", &[], 250, true),
    ws("db", &[], 150, false),
    ws("ui", &[], 350, true),
    ws("svc", &["api", "db"], 200, false),
    ws("web", &["api", "ui"], 300, true),
    ws("app", &["svc", "web"], 250, false),
    ws("c1", &[], 100, false),
    ws("c2", &["c1"], 200, true),
    ws("c3", &["c2"], 150, false),
    Spec {
        name: "notes",
        deps: &[],
        sleep_ms: 200,
        commits: false,
        scratch: true,
    },
];

fn index_of(name: &str) -> usize {
    SPECS
        .iter()
        .position(|s| s.name == name)
        .expect("a workstream of SPECS")
}

/// The agent's script: count the invocation outside the repository, sleep, write its file
/// (its name, then its dependencies' files, which must be there), maybe commit.
fn script(spec: &Spec) -> String {
    let name = spec.name;
    let sleep = format!("{}.{:03}", spec.sleep_ms / 1000, spec.sleep_ms % 1000);
    let mut s = format!("echo run >> $COUNTERS/{name}; sleep {sleep}; ");
    if spec.scratch {
        s.push_str(&format!("echo {name} > {name}.txt"));
        return s;
    }
    s.push_str(&format!("mkdir -p {name}; echo {name} > {name}/file.txt"));
    for dep in spec.deps {
        s.push_str(&format!("; cat {dep}/file.txt >> {name}/file.txt || exit 7"));
    }
    if spec.commits {
        s.push_str(&format!("; git add {name} && git commit -q -m '{name}: work'"));
    }
    s
}

/// What a workstream's file holds once its dependencies' work is in its tree.
fn expected_content(name: &str) -> String {
    let spec = &SPECS[index_of(name)];
    let mut text = format!("{name}\n");
    for dep in spec.deps {
        text.push_str(&expected_content(dep));
    }
    text
}

/// The workflow's settings, its shell agent and its defaults, shared by both workflows here.
fn workflow_header() -> String {
    format!(
        r#"workflow "{WORKFLOW}" {{
    base "main"
    max-parallel 3
}}
agent "shell" {{
    command "sh" "-c" "{{script}}"
    output "text"
}}
defaults {{
    agent "shell"
    env "COUNTERS"
    writable "../counters/"
}}
"#
    )
}

fn workflow_text() -> String {
    let mut text = workflow_header();
    for spec in SPECS {
        let mut body = String::new();
        if spec.scratch {
            body.push_str("    isolation \"none\"\n");
        } else {
            writeln!(body, "    owns \"{}/**\"", spec.name).unwrap();
        }
        if !spec.deps.is_empty() {
            let deps: Vec<String> = spec.deps.iter().map(|d| format!("\"{d}\"")).collect();
            writeln!(body, "    depends-on {}", deps.join(" ")).unwrap();
        }
        writeln!(body, "    script \"{}\"", script(spec)).unwrap();
        writeln!(text, "workstream \"{}\" {{\n{body}}}", spec.name).unwrap();
    }
    text.push_str("integrate {\n    verify \"sh verify.sh\"\n}\n");
    text
}

/// `verify`: on the merged tree, every workstream file starts with its folder's name, and a
/// workstream's dependencies are merged whenever it is.
fn verify_script() -> String {
    let mut s = String::from(
        "sleep 0.05\n\
         for f in */file.txt; do\n\
         \x20 [ -e \"$f\" ] || continue\n\
         \x20 d=${f%/file.txt}\n\
         \x20 [ \"$(head -n 1 \"$f\")\" = \"$d\" ] || { echo \"$f does not start with $d\"; exit 1; }\n\
         done\n",
    );
    for spec in SPECS.iter().filter(|s| !s.deps.is_empty()) {
        for dep in spec.deps {
            writeln!(
                s,
                "[ ! -e {0}/file.txt ] || [ -e {dep}/file.txt ] || {{ echo '{0} merged before {dep}'; exit 1; }}",
                spec.name
            )
            .unwrap();
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// A repository of its own, with a hermetic environment.

fn flow_bin() -> PathBuf {
    PathBuf::from(assert_cmd::cargo::cargo_bin!("flow"))
}

struct Repo {
    _temp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    counters: PathBuf,
    home: PathBuf,
    /// The workflow's workstreams in declaration order (events name them by index).
    names: Vec<&'static str>,
}

impl Repo {
    fn new(prefix: &str) -> Repo {
        let temp = tempfile::Builder::new().prefix(prefix).tempdir().expect("temp dir");
        let base = std::fs::canonicalize(temp.path()).expect("canonical temp dir");
        let root = base.join("repo");
        let counters = base.join("counters");
        let home = base.join("home");
        for dir in [&root, &counters, &home] {
            std::fs::create_dir_all(dir).expect("create dir");
        }
        let repo = Repo {
            _temp: temp,
            base,
            root,
            counters,
            home,
            names: SPECS.iter().map(|s| s.name).collect(),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        // Agents that commit themselves find an identity in the repository's config.
        repo.git(&["config", "user.name", "Agent"]);
        repo.git(&["config", "user.email", "agent@example.com"]);
        repo
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut vars = crate::support::hermetic_env(&self.home);
        vars.push(("COUNTERS".to_string(), self.counters.display().to_string()));
        vars
    }

    fn write(&self, path: &str, text: &str) {
        let full = self.root.join(path);
        std::fs::create_dir_all(full.parent().expect("a parent")).expect("create dirs");
        std::fs::write(full, text).expect("write file");
    }

    fn git_output(&self, args: &[&str]) -> std::process::Output {
        Command::new("git")
            .current_dir(&self.root)
            .env_clear()
            .envs(self.env())
            .args(args)
            .output()
            .expect("git runs")
    }

    #[track_caller]
    fn git(&self, args: &[&str]) -> String {
        let out = self.git_output(args);
        assert!(
            out.status.success(),
            "git {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    fn commit_all(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// Starts `flow <args>`, its output going to a file of the temporary folder.
    fn spawn_flow(&self, args: &[&str], label: &str) -> Child {
        let out = std::fs::File::create(self.base.join(format!("{label}.out"))).expect("output file");
        let err = out.try_clone().expect("clone file");
        Command::new(flow_bin())
            .current_dir(&self.root)
            .env_clear()
            .envs(self.env())
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("flow starts")
    }

    fn output_of(&self, label: &str) -> String {
        std::fs::read_to_string(self.base.join(format!("{label}.out"))).unwrap_or_default()
    }

    fn run_flow(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(flow_bin())
            .current_dir(&self.root)
            .env_clear()
            .envs(self.env())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("flow runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    fn latest_run_dir(&self) -> Option<PathBuf> {
        let id = std::fs::read_to_string(self.root.join(".flow/latest")).ok()?;
        Some(self.root.join(".flow/runs").join(id.trim()))
    }

    fn events(&self) -> Vec<Value> {
        let Some(dir) = self.latest_run_dir() else {
            return vec![];
        };
        read_events(&dir.join("events.jsonl"))
    }

    /// How often each workstream's agent ran.
    fn counters(&self) -> BTreeMap<String, usize> {
        SPECS
            .iter()
            .map(|s| {
                let text = std::fs::read_to_string(self.counters.join(s.name)).unwrap_or_default();
                (s.name.to_string(), text.lines().count())
            })
            .collect()
    }

    /// The user's checkout: HEAD, the base branch, the status (but flow's own `.flow/`), the
    /// stash, and the content of the files the user left dirty.
    fn checkout_snapshot(&self) -> Vec<String> {
        let status: Vec<String> = self
            .git(&["status", "--porcelain", "--untracked-files=all"])
            .lines()
            .filter(|l| !l.contains(".flow/"))
            .map(str::to_string)
            .collect();
        vec![
            self.git(&["symbolic-ref", "HEAD"]),
            self.git(&["rev-parse", "HEAD"]),
            self.git(&["rev-parse", "refs/heads/main"]),
            status.join("\n"),
            self.git(&["stash", "list", "--format=%H %s"]),
            std::fs::read_to_string(self.root.join("README.md")).unwrap_or_default(),
            std::fs::read_to_string(self.root.join("notes-of-the-user.txt")).unwrap_or_default(),
        ]
    }

    #[track_caller]
    fn assert_fsck_clean(&self, when: &str) {
        let out = self.git_output(&["fsck", "--strict", "--no-dangling", "--no-progress"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.trim().is_empty(),
            "git fsck --strict {when}:\n{text}"
        );
    }
}

fn read_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Where to kill.

/// A fixed-seed xorshift, so that the kill points are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// When to SIGKILL a flow process.
#[derive(Debug, Clone)]
enum Trigger {
    /// This long after it started.
    Delay(u64),
    /// As soon as this event (of this workstream, with this phase) is in the log.
    After {
        event: &'static str,
        ws: Option<&'static str>,
        phase: Option<&'static str>,
    },
    /// As soon as the process has appended this many events.
    NthEvent(usize),
    /// As soon as the worktree record of this workstream has its `HEAD` (libgit2 is checking
    /// it out, or just did).
    WorktreeMade(&'static str),
    /// As soon as the counter file `$COUNTERS/<file>` has this many lines: the agent that
    /// wrote the last one has started (and waits, held, while the test has it held).
    Counter { file: &'static str, runs: usize },
    /// As soon as an attempt of this workstream for this purpose has ended, in the log.
    Ended { ws: &'static str, purpose: &'static str },
    /// As soon as `verify` has started after the merge of this workstream.
    Verifying(&'static str),
    /// Never: let it finish.
    Never,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Delay(ms) => write!(f, "after {ms} ms"),
            Trigger::After { event, ws, phase } => {
                write!(f, "right after {event}")?;
                if let Some(p) = phase {
                    write!(f, " {p}")?;
                }
                if let Some(w) = ws {
                    write!(f, " of {w}")?;
                }
                Ok(())
            }
            Trigger::NthEvent(n) => write!(f, "right after its event #{n}"),
            Trigger::WorktreeMade(ws) => write!(f, "as {ws}'s worktree is made"),
            Trigger::Counter { file, runs } => write!(f, "as the agent of {file} starts its run #{runs}"),
            Trigger::Ended { ws, purpose } => write!(f, "right after {ws}'s {purpose} attempt ended"),
            Trigger::Verifying(ws) => write!(f, "as verify starts after {ws}'s merge"),
            Trigger::Never => write!(f, "never"),
        }
    }
}

fn after(event: &'static str, ws: &'static str) -> Trigger {
    Trigger::After {
        event,
        ws: Some(ws),
        phase: None,
    }
}

fn after_phase(phase: &'static str, ws: &'static str) -> Trigger {
    Trigger::After {
        event: "phase",
        ws: Some(ws),
        phase: Some(phase),
    }
}

fn matches(trigger: &Trigger, event: &Value, names: &[&str]) -> bool {
    let Trigger::After { event: name, ws, phase } = trigger else {
        return false;
    };
    event["event"] == *name
        && ws.is_none_or(|w| workstream_of(event, names) == Some(w))
        && phase.is_none_or(|p| event["phase"] == p)
}

/// The name of the workstream an event is about, if any.
fn workstream_of<'n>(event: &Value, names: &[&'n str]) -> Option<&'n str> {
    let i = usize::try_from(event["workstream"].as_u64()?).ok()?;
    names.get(i).copied()
}

/// Tells whether an attempt of `ws` for `purpose` ended among `events[from..]`.
fn attempt_ended(events: &[Value], from: usize, names: &[&str], ws: &str, purpose: &str) -> bool {
    let mut latest: Option<&str> = None;
    for (k, e) in events.iter().enumerate() {
        if workstream_of(e, names) != Some(ws) {
            continue;
        }
        match e["event"].as_str() {
            Some("attempt-started") => latest = e["purpose"].as_str(),
            Some("attempt-ended") if k >= from && latest == Some(purpose) => return true,
            _ => {}
        }
    }
    false
}

/// The initial kill points: deterministic ones at each step of the lifecycle, and delays
/// spread over the whole run.
fn initial_triggers(full_run_ms: u64, rng: &mut Rng) -> Vec<Trigger> {
    let mut t = vec![
        Trigger::Delay(2),
        Trigger::Delay(12),
        Trigger::After {
            event: "run-started",
            ws: None,
            phase: None,
        },
        after_phase("preparing", "api"),
        after("prepared", "db"),
        after("attempt-started", "ui"),
        after("attempt-ended", "api"),
        after_phase("checking", "db"),
        after("checked", "ui"),
        after_phase("ready", "api"),
        after_phase("merging", "api"),
        after("merged", "api"),
        after_phase("done", "notes"),
        after("prepared", "svc"),
        after("attempt-ended", "c2"),
        after_phase("checking", "web"),
        after_phase("merging", "svc"),
        after("checked", "c3"),
        after("attempt-started", "app"),
        after_phase("merging", "app"),
        after("merged", "app"),
        Trigger::After {
            event: "run-ended",
            ws: None,
            phase: None,
        },
        after("checked", "api"),
        after("attempt-ended", "notes"),
        after("prepared", "c2"),
        after_phase("merging", "c1"),
        after("merged", "web"),
        after_phase("checking", "app"),
        Trigger::WorktreeMade("api"),
        Trigger::WorktreeMade("svc"),
        Trigger::WorktreeMade("c3"),
        Trigger::NthEvent(5),
        Trigger::NthEvent(20),
        Trigger::NthEvent(45),
        Trigger::NthEvent(70),
    ];
    for _ in 0..4 {
        t.push(Trigger::Delay(20 + rng.below(full_run_ms.max(100))));
    }
    t
}

/// How a resume is stopped: the first ones are often killed, at a random event or delay.
fn resume_trigger(attempt: usize, rng: &mut Rng) -> Trigger {
    let chance = [60, 45, 30, 15];
    if attempt >= chance.len() || rng.below(100) >= chance[attempt] {
        return Trigger::Never;
    }
    if rng.below(2) == 0 {
        Trigger::NthEvent(1 + rng.below(40) as usize)
    } else {
        Trigger::Delay(3 + rng.below(1500))
    }
}

/// What a kill interrupted, read back from the event log.
#[derive(Debug, Clone, Default)]
struct KillPoint {
    label: String,
    trigger: String,
    after_ms: u128,
    last_event: String,
    /// Workstreams in an active phase when the process died, with the phase.
    in_flight: Vec<(String, String)>,
    /// `verify` had started for the workstream being merged.
    verifying: bool,
}

impl KillPoint {
    fn has(&self, phase: &str) -> bool {
        self.in_flight.iter().any(|(_, p)| p == phase)
    }

    fn between_runs(&self) -> bool {
        self.in_flight.is_empty()
    }
}

/// Every workstream's phase as the log has it.
fn replay_phases(events: &[Value]) -> Vec<String> {
    let mut phases = vec!["pending".to_string(); SPECS.len()];
    for e in events {
        let Some(i) = e["workstream"].as_u64().map(|i| i as usize) else {
            continue;
        };
        if i >= SPECS.len() {
            continue;
        }
        let phase = match e["event"].as_str().unwrap_or("") {
            "phase" => e["phase"].as_str().unwrap_or("").to_string(),
            "attempt-started" => "running".into(),
            "failed" => "failed".into(),
            "merged" => "merged".into(),
            "conflicted" => "conflicted".into(),
            "reset" => "pending".into(),
            _ => continue,
        };
        phases[i] = phase;
    }
    phases
}

fn describe_kill(repo: &Repo, label: &str, trigger: &Trigger, after_ms: u128, first_event: usize) -> KillPoint {
    let events = repo.events();
    let phases = replay_phases(&events);
    let in_flight: Vec<(String, String)> = phases
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.as_str(), "preparing" | "running" | "checking" | "merging"))
        .map(|(i, p)| (SPECS[i].name.to_string(), p.clone()))
        .collect();
    let last_event = match events.len().checked_sub(1) {
        Some(last) if last >= first_event => {
            let e = &events[last];
            let mut s = format!("#{} {}", e["seq"], e["event"].as_str().unwrap_or("?"));
            if let Some(p) = e["phase"].as_str() {
                write!(s, " {p}").unwrap();
            }
            if let Some(i) = e["workstream"].as_u64() {
                write!(s, " of {}", SPECS[i as usize].name).unwrap();
            }
            s
        }
        _ => "none of its own".to_string(),
    };
    // `verify` writes a header line into its log before it starts.
    let verifying = in_flight.iter().any(|(ws, p)| {
        p == "merging"
            && repo.latest_run_dir().is_some_and(|d| {
                std::fs::read_to_string(d.join("logs/_verify.log"))
                    .unwrap_or_default()
                    .lines()
                    .rfind(|l| l.starts_with("== verify after merging "))
                    .is_some_and(|l| l.starts_with(&format!("== verify after merging {ws}:")))
            })
    });
    KillPoint {
        label: label.to_string(),
        trigger: trigger.to_string(),
        after_ms,
        last_event,
        in_flight,
        verifying,
    }
}

/// Runs a flow process until it exits or the trigger fires (then SIGKILLs it). Returns the
/// exit code (None when killed) and how long it ran.
fn drive(repo: &Repo, mut child: Child, trigger: &Trigger, events_from: usize) -> (Option<i32>, u128) {
    let start = Instant::now();
    let mut seen = events_from;
    let limit = crate::support::HANG_GUARD;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code(), start.elapsed().as_millis());
        }
        assert!(start.elapsed() < limit, "flow ran for more than {limit:?}");
        let fire = match trigger {
            Trigger::Never => false,
            Trigger::Delay(ms) => start.elapsed() >= Duration::from_millis(*ms),
            Trigger::NthEvent(n) => repo.events().len() >= events_from + n,
            Trigger::WorktreeMade(ws) => repo
                .root
                .join(".git/worktrees")
                .join(format!("flow-{ws}/HEAD"))
                .is_file(),
            Trigger::After { .. } => {
                let events = repo.events();
                let hit = events.iter().skip(seen).any(|e| matches(trigger, e, &repo.names));
                seen = events.len().max(seen);
                hit
            }
            Trigger::Counter { file, runs } => {
                std::fs::read_to_string(repo.counters.join(file)).is_ok_and(|t| t.lines().count() >= *runs)
            }
            Trigger::Ended { ws, purpose } => attempt_ended(&repo.events(), events_from, &repo.names, ws, purpose),
            Trigger::Verifying(ws) => repo.latest_run_dir().is_some_and(|d| {
                std::fs::read_to_string(d.join("logs/_verify.log"))
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.starts_with(&format!("== verify after merging {ws}:")))
            }),
        };
        if fire {
            // Our own child, not reaped yet.
            let _ = kill_process(Pid::from_child(&child), Signal::KILL);
            let status = child.wait().expect("wait");
            // On a busy machine flow may end on its own between the trigger and the kill:
            // then it was not killed, and its exit code says how it ended.
            return (status.code(), start.elapsed().as_millis());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------
// The crash test.

/// A repository with the crash workflow, and a user's checkout with uncommitted work and a
/// stash that a run must not touch.
fn crash_repo(prefix: &str) -> Repo {
    let repo = Repo::new(prefix);
    repo.write("README.md", "# crash test\n");
    repo.write("verify.sh", &verify_script());
    repo.write("parallel.kdl", &workflow_text());
    repo.commit_all("initial commit");
    repo.write("README.md", "# crash test\n\nstashed edit\n");
    repo.git(&["stash", "-q"]);
    repo.write("README.md", "# crash test\n\nuncommitted edit\n");
    repo.write("notes-of-the-user.txt", "untracked\n");
    repo
}

/// What a scenario found, for the summary.
struct Outcome {
    report: String,
    kills: Vec<KillPoint>,
    torn_worktrees: usize,
    torn_integration: usize,
}

/// Checks that hold after every kill: state.json parses, the checkout and git are sound.
/// Returns the worktree records fsck found half-made (the kill caught libgit2 creating them;
/// the next resume removes them), the only fsck errors a kill may leave.
fn check_after_kill(repo: &Repo, before: &[String], what: &str) -> Vec<String> {
    let workstreams = repo.names.len();
    if let Some(dir) = repo.latest_run_dir() {
        let path = dir.join("state.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{what}: .flow/latest names a run but {} cannot be read: {e}",
                path.display()
            )
        });
        let state: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: state.json is not JSON ({e}):\n{text}"));
        assert_eq!(
            state["workstreams"].as_array().map(Vec::len),
            Some(workstreams),
            "{what}: state.json lists every workstream"
        );
    }
    assert_eq!(repo.checkout_snapshot(), before, "{what}: the user's checkout changed");
    // The dead flow's agents may still be at work (the next resume stops them): freeze them,
    // so that fsck does not race a `git commit` of theirs.
    let frozen = freeze_leftovers(repo);
    let out = repo.git_output(&["fsck", "--strict", "--no-dangling", "--no-progress"]);
    for pid in frozen {
        // Resuming a process we stopped.
        if let Some(pid) = Pid::from_raw(pid) {
            let _ = kill_process(pid, Signal::CONT);
        }
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut half_made = vec![];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let record = line
            .strip_prefix("error: worktrees/")
            .and_then(|rest| rest.split_once('/'))
            .map(|(name, _)| name.to_string())
            .filter(|name| {
                let admin = repo.root.join(".git/worktrees").join(name);
                !["HEAD", "gitdir", "commondir"].iter().all(|f| admin.join(f).is_file())
            });
        match record {
            Some(name) => half_made.push(name),
            None => panic!("git fsck --strict {what}:\n{text}"),
        }
    }
    assert!(
        out.status.success() || !half_made.is_empty(),
        "git fsck --strict {what}:\n{text}"
    );
    half_made
}

/// Stops (SIGSTOP) every live process of the latest run (they carry `FLOW_RUN=<id>`), until
/// none is left running; returns them.
fn freeze_leftovers(repo: &Repo) -> Vec<i32> {
    let Some(dir) = repo.latest_run_dir() else {
        return vec![];
    };
    let id = dir.file_name().expect("run id").to_string_lossy().into_owned();
    let needle = format!("FLOW_RUN={id}");
    let mut frozen: Vec<i32> = vec![];
    loop {
        let found: Vec<i32> = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| !frozen.contains(pid))
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
            })
            .collect();
        if found.is_empty() {
            return frozen;
        }
        for pid in found {
            // Stopping a leftover agent of our own test run.
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = kill_process(pid, Signal::STOP);
            }
            frozen.push(pid);
        }
    }
}

/// The event log holds whole events numbered 1, 2, 3... with no gap (nothing lost), and no
/// other lines than the `torn` ones the test wrote.
fn check_event_log(repo: &Repo, torn: usize, what: &str) {
    let Some(dir) = repo.latest_run_dir() else { return };
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    let mut bad = 0;
    let mut expected = 1;
    for line in text.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(event) => {
                assert_eq!(
                    event["seq"].as_u64(),
                    Some(expected),
                    "{what}: event log out of sequence at {line}"
                );
                expected += 1;
            }
            Err(_) => bad += 1,
        }
    }
    assert_eq!(bad, torn, "{what}: lines of the event log that are not events");
}

/// The workstreams whose agent attempt ended without error, as the log has it.
fn finished_agents(events: &[Value]) -> Vec<usize> {
    let mut finished: Vec<usize> = events
        .iter()
        .filter(|e| e["event"] == "attempt-ended" && e["error"].is_null())
        .filter_map(|e| e["workstream"].as_u64().map(|i| i as usize))
        .collect();
    finished.sort_unstable();
    finished.dedup();
    finished
}

/// The workstreams whose worktree is there and complete: its `.git` file names a record that
/// is not locked as being made.
fn complete_worktrees(repo: &Repo) -> Vec<String> {
    SPECS
        .iter()
        .filter(|s| !s.scratch)
        .filter(|s| {
            let folder = repo.base.join("repo-worktrees").join(WORKFLOW).join(s.name);
            let Ok(text) = std::fs::read_to_string(folder.join(".git")) else {
                return false;
            };
            let admin = PathBuf::from(text.trim_end().trim_start_matches("gitdir: "));
            admin.join("HEAD").is_file()
                && !std::fs::read_to_string(admin.join("locked")).is_ok_and(|r| r.starts_with(WORKTREE_BEING_MADE))
        })
        .map(|s| s.name.to_string())
        .collect()
}

/// Makes the worktrees of the workstreams a kill caught preparing look half-made, as a kill
/// inside their creation leaves them: the record still locked as being made, and either no
/// `.git` file yet (killed right after the record was moved into place) or only some of the
/// files and no index (killed while the files were written); returns their names.
///
/// Only a worktree the killed process was making can be caught so: one that was there and
/// complete when it started (`complete_before`) is reused as it is, never made again, and
/// may hold the uncommitted work of an agent that finished (which a resume checks, without
/// running the agent again). Tearing that one would make up a state no kill can leave.
fn tear_worktrees(repo: &Repo, kill: &KillPoint, pid: u32, complete_before: &[String]) -> Vec<String> {
    let mut torn = vec![];
    for (ws, phase) in &kill.in_flight {
        if phase != "preparing" || SPECS[index_of(ws)].scratch || complete_before.contains(ws) {
            continue;
        }
        let folder = repo.base.join("repo-worktrees").join(WORKFLOW).join(ws);
        let Ok(text) = std::fs::read_to_string(folder.join(".git")) else {
            continue;
        };
        let admin = PathBuf::from(text.trim_end().trim_start_matches("gitdir: "));
        if !admin.join("HEAD").is_file() {
            continue;
        }
        // By the killed process, which is gone.
        std::fs::write(
            admin.join("locked"),
            format!("{WORKTREE_BEING_MADE} by process {pid}\n"),
        )
        .expect("lock");
        if torn.len() % 2 == 0 {
            std::fs::remove_file(folder.join(".git")).expect("remove .git");
        } else {
            let _ = std::fs::remove_file(admin.join("index"));
            for entry in std::fs::read_dir(&folder).expect("read the worktree").flatten() {
                if entry.file_type().is_ok_and(|t| t.is_file()) && entry.file_name() != ".git" {
                    std::fs::remove_file(entry.path()).expect("remove a file");
                }
            }
        }
        torn.push(ws.clone());
    }
    torn
}

/// Puts the integration worktree (if there is one, detached) back on a temporary branch named
/// after the dead flow process `pid`, as a kill inside its creation leaves it.
fn tear_integration_worktree(repo: &Repo, pid: u32) -> bool {
    let folder = repo.base.join("repo-worktrees").join(WORKFLOW).join("_integration");
    let Ok(text) = std::fs::read_to_string(folder.join(".git")) else {
        return false;
    };
    let admin = PathBuf::from(text.trim_end().trim_start_matches("gitdir: "));
    let head = std::fs::read_to_string(admin.join("HEAD")).unwrap_or_default();
    let commit = head.trim();
    if commit.len() != 40 {
        return false;
    }
    let branch = format!("flow-tmp/checkout--integration-{pid}-0");
    // (The dead process may have been creating that very branch: then its lock is in the way.)
    if !repo
        .git_output(&["update-ref", &format!("refs/heads/{branch}"), commit])
        .status
        .success()
    {
        return false;
    }
    std::fs::write(admin.join("HEAD"), format!("ref: refs/heads/{branch}\n")).expect("write HEAD");
    true
}

/// What a flow process cleaned up after the process it took over from, as a report line.
fn cleanup_note(output: &str) -> String {
    let stopped: usize = output
        .lines()
        .filter_map(|l| l.strip_prefix("flow: stopped "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    let removed = |what: &str| -> Vec<String> {
        output
            .lines()
            .filter_map(|l| l.strip_prefix("flow: removed "))
            .filter_map(|l| l.split_once(", ").filter(|(_, rest)| rest.contains(what)))
            .map(|(p, _)| p.rsplit_once("/.git/").map_or(p, |(_, rest)| rest).to_string())
            .collect()
    };
    let (locks, half_made) = (removed("git lock file"), removed("half-way through creating"));
    let others: Vec<String> = output
        .lines()
        .filter_map(|l| {
            let (verb, rest) = l.strip_prefix("flow: ")?.split_once(' ')?;
            let name = rest.split([',', ' ']).next()?;
            let name = name.rsplit_once('/').map_or(name, |(_, last)| last);
            matches!(verb, "deleted" | "detached").then(|| format!("{verb} {name}"))
        })
        .collect();
    if stopped == 0 && locks.is_empty() && half_made.is_empty() && others.is_empty() {
        return String::new();
    }
    let mut note = format!("    (it first stopped {stopped} leftover process(es)");
    if !locks.is_empty() {
        write!(note, "; removed stale locks: {}", locks.join(", ")).unwrap();
    }
    if !half_made.is_empty() {
        write!(note, "; removed half-made worktrees: {}", half_made.join(", ")).unwrap();
    }
    if !others.is_empty() {
        write!(note, "; {}", others.join(", ")).unwrap();
    }
    note.push_str(")\n");
    note
}

/// One scenario: `flow run` killed by `trigger`, then resumes until one succeeds.
fn scenario(number: usize, trigger: Trigger, seed: u64) -> Outcome {
    let repo = crash_repo(&format!("flow-crash-{number}-"));
    let before = repo.checkout_snapshot();
    let mut rng = Rng(seed);
    let mut report = String::new();
    let mut kills = vec![];
    // For each workstream whose agent finished: the counter when that was first seen.
    let mut frozen: BTreeMap<usize, usize> = BTreeMap::new();
    // Kills that caught a workstream preparing or running (its agent may run again).
    let mut interrupted = vec![0usize; SPECS.len()];
    let mut step = 0;
    let mut torn = 0;
    let mut torn_worktrees = 0;
    let mut torn_integration = 0;
    // Kills as a worktree is made always catch one to tear.
    let tear = number.is_multiple_of(2) || matches!(trigger, Trigger::WorktreeMade(_));
    let mut current = trigger;
    let mut command: Vec<&str> = vec!["run", "--progress", "plain", "--grace", "1s"];
    let mut label = "run".to_string();
    loop {
        assert!(
            step < 10,
            "scenario {number}: no resume succeeded after {step} tries\n{report}"
        );
        let events_from = repo.events().len();
        let complete_before = complete_worktrees(&repo);
        let child = repo.spawn_flow(&command, &format!("{step}-{label}"));
        let pid = child.id();
        let (code, ms) = drive(&repo, child, &current, events_from);
        let what = format!("scenario {number}, {label} killed {current}");
        let cleanup = cleanup_note(&repo.output_of(&format!("{step}-{label}")));
        match code {
            None => {
                let kill = describe_kill(&repo, &label, &current, ms, events_from);
                let flight: Vec<String> = kill.in_flight.iter().map(|(w, p)| format!("{w}:{p}")).collect();
                writeln!(
                    report,
                    "  kill {label:<9} {:<32} at {:>5} ms; last event: {}; in flight: {}{}",
                    kill.trigger,
                    kill.after_ms,
                    kill.last_event,
                    if flight.is_empty() {
                        "nothing (between runs)".to_string()
                    } else {
                        flight.join(" ")
                    },
                    if kill.verifying { " (verify started)" } else { "" }
                )
                .unwrap();
                report.push_str(&cleanup);
                for (w, p) in &kill.in_flight {
                    if p == "preparing" || p == "running" {
                        interrupted[index_of(w)] += 1;
                    }
                }
                for record in check_after_kill(&repo, &before, &what) {
                    writeln!(report, "    (fsck: the kill left {record} half-made)").unwrap();
                }
                // In some scenarios, a kill that caught a worktree being made caught it inside
                // its creation (windows too narrow to hit by timing alone): see `tear_worktrees`.
                if tear {
                    for ws in tear_worktrees(&repo, &kill, pid, &complete_before) {
                        writeln!(
                            report,
                            "    (and tore the worktree of {ws} as if killed inside its creation)"
                        )
                        .unwrap();
                        torn_worktrees += 1;
                    }
                }
                // And in others, it caught the integration worktree being made: still on the
                // temporary branch it is created through, not yet detached.
                if number % 4 == 3 && tear_integration_worktree(&repo, pid) {
                    report.push_str("    (and left the integration worktree on a temporary branch)\n");
                    torn_integration += 1;
                }
                // Every third scenario, the dead process was also half-way through writing
                // one more event: a torn last line, which the next process must step over.
                if number.is_multiple_of(3)
                    && let Some(dir) = repo.latest_run_dir()
                    && std::fs::read(dir.join("events.jsonl")).is_ok_and(|log| log.ends_with(b"\n"))
                {
                    let seq = repo.events().len() + 1;
                    let mut log = std::fs::OpenOptions::new()
                        .append(true)
                        .open(dir.join("events.jsonl"))
                        .expect("open the event log");
                    std::io::Write::write_all(
                        &mut log,
                        format!("{{\"seq\":{seq},\"at\":1.5,\"event\":\"pha").as_bytes(),
                    )
                    .expect("write");
                    torn += 1;
                    report.push_str("    (and left a torn event line)\n");
                }
                kills.push(kill);
            }
            Some(c) => {
                let out = repo.output_of(&format!("{step}-{label}"));
                writeln!(report, "  {label:<14} exited {c} after {ms} ms").unwrap();
                report.push_str(&cleanup);
                // A resume nobody killed finishes the run: nothing of a crash may make it fail.
                assert_eq!(
                    c, 0,
                    "scenario {number}: {label} exited {c}\n{out}\n--- so far\n{report}"
                );
                break;
            }
        }
        check_event_log(&repo, torn, &what);
        // No agent that had finished ran again.
        let counters = repo.counters();
        for i in finished_agents(&repo.events()) {
            let now = counters[SPECS[i].name];
            let first = *frozen.entry(i).or_insert(now);
            assert_eq!(
                now, first,
                "scenario {number}: the agent of `{}` finished, yet ran again ({first} -> {now} runs)\n{report}",
                SPECS[i].name
            );
        }
        step += 1;
        // Resume; with nothing recorded yet there is nothing to resume: start again.
        if repo.latest_run_dir().is_some() {
            command = vec!["resume", "--progress", "plain", "--grace", "1s"];
            label = format!("resume {step}");
        } else {
            command = vec!["run", "--progress", "plain", "--grace", "1s"];
            label = format!("run {step}");
        }
        current = resume_trigger(step - 1, &mut rng);
    }
    check_final(&repo, &before, &frozen, &interrupted, number, &report);
    Outcome {
        report,
        kills,
        torn_worktrees,
        torn_integration,
    }
}

/// Everything holds at the end: all merged once, the work in the tree, agents run as often as
/// the kills allow, the checkout untouched, git sound.
fn check_final(
    repo: &Repo,
    before: &[String],
    frozen: &BTreeMap<usize, usize>,
    interrupted: &[usize],
    number: usize,
    report: &str,
) {
    let what = format!("scenario {number}");
    let dir = repo.latest_run_dir().expect("a run");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).expect("state.json")).expect("JSON");
    assert_eq!(state["status"], "succeeded", "{what}: {report}");
    let head = repo.git(&["rev-parse", INTO]);
    assert_eq!(
        state["last_good"].as_str(),
        Some(head.as_str()),
        "{what}: last_good is the integration head"
    );
    let subjects = repo.git(&["log", "--format=%s", INTO]);
    let counters = repo.counters();
    for (i, spec) in SPECS.iter().enumerate() {
        let ws = &state["workstreams"][i];
        assert_eq!(ws["name"], spec.name);
        let expected_phase = if spec.scratch { "done" } else { "merged" };
        assert_eq!(ws["phase"], expected_phase, "{what}: {}\n{report}", spec.name);
        // The agent ran at least once, and again only after a kill caught it before it finished.
        let runs = counters[spec.name];
        if let Some(first) = frozen.get(&i) {
            assert_eq!(runs, *first, "{what}: `{}` ran again after it finished", spec.name);
        }
        assert!(
            runs >= 1 && runs <= 1 + interrupted[i],
            "{what}: `{}` ran {runs} times for {} interrupting kills\n{report}",
            spec.name,
            interrupted[i]
        );
        let path = format!("{}/file.txt", spec.name);
        if spec.scratch {
            let files = repo.git(&["ls-tree", "-r", "--name-only", INTO]);
            assert!(
                !files.contains("notes"),
                "{what}: nothing of a scratch workstream is merged"
            );
            continue;
        }
        // Merged exactly once: at most one merge commit names it (none for a fast-forward),
        // exactly one commit brought its file, and its work is in the final tree.
        let prefix = format!("Merge flow/{WORKFLOW}/{} (", spec.name);
        let merges = subjects.lines().filter(|s| s.starts_with(&prefix)).count();
        assert!(
            merges <= 1,
            "{what}: `{}` merged {merges} times:\n{subjects}",
            spec.name
        );
        let touching = repo.git(&[
            "log",
            "--format=%H %s",
            "--no-merges",
            "--full-history",
            INTO,
            "--",
            &path,
        ]);
        assert_eq!(
            touching.lines().count(),
            1,
            "{what}: commits bringing {path} on {INTO}:\n{touching}"
        );
        let content = repo.git(&["show", &format!("{INTO}:{path}")]);
        assert_eq!(format!("{content}\n"), expected_content(spec.name), "{what}: {path}");
        let merge = ws["merge_commit"].as_str().expect("merge commit");
        let ancestor = repo.git_output(&["merge-base", "--is-ancestor", merge, INTO]);
        assert!(
            ancestor.status.success(),
            "{what}: `{}`'s merge is in {INTO}",
            spec.name
        );
    }
    // No branch but the base, the integration branch and the workstreams' is left behind.
    let branches = repo.git(&["for-each-ref", "--format=%(refname:short)", "refs/heads"]);
    for branch in branches.lines() {
        let known = branch == "main"
            || branch == INTO
            || SPECS
                .iter()
                .any(|s| !s.scratch && branch == format!("flow/{WORKFLOW}/{}", s.name));
        assert!(known, "{what}: a branch left behind: {branch}\n{report}");
    }
    assert_eq!(repo.checkout_snapshot(), before, "{what}: the user's checkout changed");
    repo.assert_fsck_clean(&what);
}

#[test]
fn kill_anywhere_then_resume_merges_everything_once_and_never_reruns_a_finished_agent() {
    let started = Instant::now();
    // A run nobody kills: the reference, and the length of a whole run.
    let reference = crash_repo("flow-crash-ref-");
    let before = reference.checkout_snapshot();
    let child = reference.spawn_flow(&["run", "--progress", "plain"], "reference");
    let (code, full_run_ms) = drive(&reference, child, &Trigger::Never, 0);
    assert_eq!(code, Some(0), "{}", reference.output_of("reference"));
    check_final(&reference, &before, &BTreeMap::new(), &[0; SPECS.len()], 0, "");
    println!("an uninterrupted run takes {full_run_ms} ms");

    let mut rng = Rng(0x5eed_f10e_c4a5_4001);
    let triggers = initial_triggers(full_run_ms as u64, &mut rng);
    let seeds: Vec<u64> = triggers.iter().map(|_| rng.next()).collect();
    let outcomes = run_scenarios("scenario", &triggers, |i, trigger| {
        let outcome = scenario(i + 1, trigger.clone(), seeds[i]);
        (outcome.report.clone(), (i, outcome))
    });
    assert_eq!(outcomes.len(), triggers.len(), "every scenario ran");
    let kills: Vec<&KillPoint> = outcomes.iter().flat_map(|(_, o)| &o.kills).collect();
    let count = |f: &dyn Fn(&KillPoint) -> bool| kills.iter().filter(|k| f(k)).count();
    let coverage = [
        ("preparing", count(&|k| k.has("preparing"))),
        ("running", count(&|k| k.has("running"))),
        ("checking", count(&|k| k.has("checking"))),
        ("merging", count(&|k| k.has("merging"))),
        ("verify", count(&|k| k.verifying)),
        ("between runs", count(&|k| k.between_runs())),
        ("of a resume", count(&|k| k.label.starts_with("resume"))),
    ];
    println!(
        "{} kills in {} scenarios, {:.1} s; kills that caught: {}",
        kills.len(),
        outcomes.len(),
        started.elapsed().as_secs_f64(),
        coverage
            .iter()
            .map(|(what, n)| format!("{what} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let torn_worktrees: usize = outcomes.iter().map(|(_, o)| o.torn_worktrees).sum();
    let torn_integration: usize = outcomes.iter().map(|(_, o)| o.torn_integration).sum();
    println!(
        "worktrees torn as if killed inside their creation: {torn_worktrees}; \
         integration worktrees left on their temporary branch: {torn_integration}"
    );
    assert!(kills.len() >= 20, "at least 20 kill points, got {}", kills.len());
    assert!(torn_worktrees >= 1, "no worktree was caught half-made");
    assert!(
        torn_integration >= 1,
        "no integration worktree was caught on its temporary branch"
    );
    for (what, n) in coverage {
        assert!(n >= 1, "no kill caught a workstream {what}");
    }
}

// ---------------------------------------------------------------------------------------
// Resuming after a failure and an edit of the workflow.

/// A workflow where `broken` fails unless `fixed`, and `gamma`'s task says `gamma_task`.
fn edited_workflow(fixed: bool, gamma_task: &str) -> String {
    let step = |name: &str, deps: &[&str]| {
        let mut s = format!("echo run >> $COUNTERS/{name}; sleep 0.1; mkdir -p {name}; echo {name} > {name}/file.txt");
        for dep in deps {
            s.push_str(&format!("; cat {dep}/file.txt >> {name}/file.txt || exit 7"));
        }
        s
    };
    let broken = if fixed {
        step("broken", &[])
    } else {
        "echo run >> $COUNTERS/broken; echo on purpose >&2; exit 3".to_string()
    };
    let mut text = workflow_header();
    text.push_str(&format!(
        r#"workstream "broken" {{
    owns "broken/**"
    script "{broken}"
}}
workstream "gamma" {{
    owns "gamma/**"
    task "{gamma_task}"
    script "{}"
}}
"#,
        step("gamma", &[])
    ));
    for (name, deps) in [
        ("alpha", &[][..]),
        ("beta", &[]),
        ("after-broken", &["broken"]),
        ("after-gamma", &["gamma"]),
        ("after-alpha", &["alpha"]),
        ("tail", &["after-alpha", "beta"]),
    ] {
        let quoted: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
        let depends = if deps.is_empty() {
            String::new()
        } else {
            format!("    depends-on {}\n", quoted.join(" "))
        };
        writeln!(
            text,
            "workstream \"{name}\" {{\n    owns \"{name}/**\"\n{depends}    script \"{}\"\n}}",
            step(name, deps)
        )
        .unwrap();
    }
    text.push_str("integrate {\n    verify \"test -f README.md\"\n}\n");
    text
}

fn edited_counters(repo: &Repo) -> BTreeMap<String, usize> {
    [
        "broken",
        "gamma",
        "alpha",
        "beta",
        "after-broken",
        "after-gamma",
        "after-alpha",
        "tail",
    ]
    .iter()
    .map(|name| {
        let text = std::fs::read_to_string(repo.counters.join(name)).unwrap_or_default();
        (name.to_string(), text.lines().count())
    })
    .collect()
}

#[test]
fn after_a_failure_and_an_edit_resume_reruns_exactly_the_changed_workstreams_and_their_dependents() {
    let repo = Repo::new("flow-crash-edit-");
    repo.write("README.md", "# edit test\n");
    repo.write("parallel.kdl", &edited_workflow(false, "Write the first version."));
    repo.commit_all("initial commit");

    let (code, out) = repo.run_flow(&["run", "--progress", "plain", "--keep-going"]);
    assert_eq!(code, Some(1), "the run fails:\n{out}");
    let once: BTreeMap<String, usize> = edited_counters(&repo)
        .into_iter()
        .map(|(name, n)| {
            let expected = usize::from(name != "after-broken");
            assert_eq!(n, expected, "{name} ran {n} times in the first run\n{out}");
            (name, n)
        })
        .collect();

    // Fix `broken`'s script and reword `gamma`'s task (an independent, merged workstream).
    repo.write("parallel.kdl", &edited_workflow(true, "Write the second version."));
    let events_before = repo.events().len();
    let (code, dry) = repo.run_flow(&["resume", "--dry-run"]);
    assert_eq!(code, Some(0), "{dry}");
    println!("{dry}");
    let decisions: BTreeMap<String, (String, String)> = dry
        .lines()
        .skip_while(|l| !l.starts_with("resuming run"))
        .skip(1)
        .filter(|l| !l.trim_start().starts_with("integration branch:"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?.to_string();
            let action = words.next()?.to_string();
            Some((name, (action, words.collect::<Vec<_>>().join(" "))))
        })
        .collect();
    // The edited ones say their spec changed; their dependents, which were not edited, say why
    // they run again.
    let expected_runs: [(&str, &[&str]); 4] = [
        ("broken", &["spec changed"]),
        ("gamma", &["spec changed"]),
        ("after-broken", &["its dependency `broken` runs again"]),
        ("after-gamma", &["its dependency `gamma` runs again"]),
    ];
    for (name, reasons) in expected_runs {
        let (action, why) = decisions
            .get(name)
            .unwrap_or_else(|| panic!("no decision for {name}:\n{dry}"));
        assert_eq!(action, "run", "{name}:\n{dry}");
        assert!(
            reasons.iter().any(|r| why.contains(r)),
            "{name}'s reason `{why}`:\n{dry}"
        );
    }
    for name in ["alpha", "beta", "after-alpha", "tail"] {
        let (action, why) = decisions
            .get(name)
            .unwrap_or_else(|| panic!("no decision for {name}:\n{dry}"));
        assert_eq!((action.as_str(), why.as_str()), ("keep", "merged"), "{name}:\n{dry}");
    }
    assert_eq!(decisions.len(), 8, "one decision per workstream:\n{dry}");
    assert_eq!(edited_counters(&repo), once, "a dry run runs nothing");
    assert_eq!(repo.events().len(), events_before, "a dry run records nothing");

    let (code, out) = repo.run_flow(&["resume", "--progress", "plain"]);
    assert_eq!(code, Some(0), "{out}");
    let after = edited_counters(&repo);
    for (name, n) in &after {
        let reran = expected_runs.iter().any(|(r, _)| r == name);
        assert_eq!(*n, once[name] + usize::from(reran), "runs of {name}\n{out}");
    }
    let dir = repo.latest_run_dir().expect("a run");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).expect("state.json")).expect("JSON");
    assert_eq!(state["status"], "succeeded", "{out}");
    for ws in state["workstreams"].as_array().expect("workstreams") {
        assert_eq!(ws["phase"], "merged", "{ws}");
        let name = ws["name"].as_str().expect("name");
        let content = repo.git(&["show", &format!("{INTO}:{name}/file.txt")]);
        assert_eq!(content.lines().next(), Some(name), "{name}'s work is merged");
    }
    repo.assert_fsck_clean("after the resume");
}

// ---------------------------------------------------------------------------------------
// Crash safety of the fix loop, the resolver and the review.

/// The loop workflow's name; its merges land in `integration/loops`.
const LOOPS: &str = "loops";
const LOOPS_INTO: &str = "integration/loops";

/// The loop workflow's workstreams, in declaration (and merge) order.
const LOOP_NAMES: [&str; 6] = ["tf", "rv", "left", "right", "top", "bottom"];

/// How often each agent runs, per workstream and purpose, when nothing is killed: `tf` fails
/// its test once and fixes it; `rv`'s reviewer rejects its work once; `right` conflicts with
/// `left`, is brought up to date and its own agent resolves the conflict; `bottom` conflicts
/// with `top` and, with no fix attempt of its own, the resolver resolves it.
const LOOP_RUNS: [(&str, &str, usize); 11] = [
    ("tf", "work", 1),
    ("tf", "fix", 1),
    ("rv", "work", 1),
    ("rv", "review", 2),
    ("rv", "fix", 1),
    ("left", "work", 1),
    ("right", "work", 1),
    ("right", "fix", 1),
    ("top", "work", 1),
    ("bottom", "work", 1),
    ("bottom", "resolve", 1),
];

/// How many fixes each workstream needs, and how many it may have (`fix-attempts`).
const LOOP_FIXES: [(&str, u64, u64); 6] = [
    ("tf", 1, 2),
    ("rv", 1, 2),
    ("left", 0, 2),
    ("right", 1, 2),
    ("top", 0, 2),
    ("bottom", 0, 0),
];

/// What every agent of the loop workflow does first: count its run in
/// `$COUNTERS/<workstream>.<purpose>`, then wait while the test holds that run (a file
/// `hold.<workstream>.<purpose>.<run>` exists), so that a kill meant for it always catches it.
const LOOP_PREFIX: &str = r#"c="$COUNTERS/$FLOW_WORKSTREAM.$FLOW_PURPOSE"; echo "$FLOW_ATTEMPT" >> "$c"; n=$(wc -l < "$c"); while [ -e "$COUNTERS/hold.$FLOW_WORKSTREAM.$FLOW_PURPOSE.$n" ]; do sleep 0.01; done; sleep 0.05"#;

/// Removes conflict markers from the files named, keeping both sides.
const UNMARK: &str = r"sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d'";

/// The loop workflow: three at a time, merged in declaration order, `verify` after each merge,
/// the resolver for conflicts left.
fn loop_workflow() -> String {
    let p = LOOP_PREFIX;
    format!(
        r##"workflow "{LOOPS}" {{
    base "main"
    max-parallel 3
}}
agent "shell" {{
    command "sh" "-c" "{{script}}"
    output "text"
}}
agent "reviewer" {{
    command "sh" "-c" #"""
        {p}
        if grep -q v1 rv/file.txt; then echo '{{"verdict": "changes-requested", "comments": "write v2, not v1"}}'; else echo '{{"verdict": "approve", "comments": "good"}}'; fi
        """#
    output "text"
}}
agent "resolver" {{
    command "sh" "-c" #"""
        {p}
        for f in shared.txt other.txt; do {UNMARK} "$f"; done
        echo kept both sides
        """#
    output "text"
}}
defaults {{
    agent "shell"
    env "COUNTERS"
    writable "../counters/"
}}
workstream "tf" {{
    owns "tf/**"
    test "grep -qx fixed tf/file.txt"
    script #"""
        {p}
        mkdir -p tf
        if [ "$FLOW_PURPOSE" = fix ]; then echo fixed > tf/file.txt; else echo broken > tf/file.txt; fi
        """#
}}
workstream "rv" {{
    owns "rv/**"
    review "reviewer"
    script #"""
        {p}
        mkdir -p rv
        if [ "$FLOW_FEEDBACK_KIND" = review ]; then echo v2 > rv/file.txt; else echo v1 > rv/file.txt; fi
        """#
}}
workstream "left" {{
    owns "shared.txt"
    script #"""
        {p}
        echo left > shared.txt
        """#
}}
workstream "right" {{
    owns "shared.txt"
    script #"""
        {p}
        if [ "$FLOW_FEEDBACK_KIND" = conflict ]; then {UNMARK} shared.txt; else echo right > shared.txt; fi
        """#
}}
workstream "top" {{
    owns "other.txt"
    script #"""
        {p}
        echo top > other.txt
        """#
}}
workstream "bottom" {{
    owns "other.txt"
    fix-attempts 0
    script #"""
        {p}
        echo bottom > other.txt
        """#
}}
integrate {{
    verify "sh verify.sh"
    on-conflict "agent"
    resolver "resolver"
}}
"##
    )
}

/// `verify` of the loop workflow: no conflict marker, `tf` fixed, `rv` as its reviewer
/// approved it, and each conflict resolved keeping both sides. On the merge that brings
/// `bottom` in (the resolver's), it first waits while the test holds it (the file `hold`
/// exists), so that a kill meant for it always catches it.
fn loop_verify(hold: &Path) -> String {
    format!(
        r#"while grep -q bottom other.txt && [ -e '{}' ]; do sleep 0.01; done
{LOOP_CHECKS}"#,
        hold.display()
    )
}

const LOOP_CHECKS: &str = r#"sleep 0.05
for f in shared.txt other.txt; do
  ! grep -q '^<<<<<<<\|^=======$\|^>>>>>>>' "$f" || { echo "conflict markers in $f"; exit 1; }
done
[ ! -e tf/file.txt ] || grep -qx fixed tf/file.txt || { echo 'tf is not fixed'; exit 1; }
[ ! -e rv/file.txt ] || grep -qx v2 rv/file.txt || { echo 'rv is not what its reviewer approved'; exit 1; }
! grep -q right shared.txt || grep -q left shared.txt || { echo 'right dropped left'; exit 1; }
! grep -q bottom other.txt || grep -q top other.txt || { echo 'bottom dropped top'; exit 1; }
"#;

/// A repository with the loop workflow and the two files its pairs of workstreams fight over.
fn loop_repo(prefix: &str) -> Repo {
    let mut repo = Repo::new(prefix);
    repo.names = LOOP_NAMES.to_vec();
    repo.write("README.md", "# loop crash test\n");
    repo.write("shared.txt", "one\n");
    repo.write("other.txt", "one\n");
    repo.write("verify.sh", &loop_verify(&repo.counters.join("hold.verify.bottom")));
    repo.write("parallel.kdl", &loop_workflow());
    repo.commit_all("initial commit");
    repo
}

/// How often each agent ran, per `<workstream>.<purpose>` (every counter file there is).
fn loop_counters(repo: &Repo) -> BTreeMap<String, usize> {
    std::fs::read_dir(&repo.counters)
        .expect("the counters folder")
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|name| !name.starts_with("hold."))
        .map(|name| {
            let text = std::fs::read_to_string(repo.counters.join(&name)).unwrap_or_default();
            (name, text.lines().count())
        })
        .collect()
}

/// The agent attempts started among `events[from..]` that had not ended there, as
/// `<workstream>.<purpose>`.
fn attempts_in_flight(events: &[Value], from: usize, names: &[&str]) -> Vec<String> {
    let mut open: Vec<(String, String)> = vec![];
    for e in events.iter().skip(from) {
        let Some(ws) = workstream_of(e, names) else { continue };
        match e["event"].as_str() {
            Some("attempt-started") => {
                open.push((ws.to_string(), e["purpose"].as_str().unwrap_or("work").to_string()));
            }
            Some("attempt-ended") => {
                if let Some(k) = open.iter().rposition(|(w, _)| w == ws) {
                    open.remove(k);
                }
            }
            _ => {}
        }
    }
    open.into_iter().map(|(w, p)| format!("{w}.{p}")).collect()
}

/// What one loop scenario found.
struct LoopOutcome {
    report: String,
    /// The attempts its kills caught running, as `<workstream>.<purpose>`.
    caught: Vec<String>,
    kills: usize,
    /// What its resumes decided, as `<workstream> <action>` (all but `keep`).
    decided: Vec<String>,
}

/// One loop scenario: `flow run` killed by `trigger` (the agent run a counter trigger waits
/// for is held until the kill), then resumes, themselves killed at random, until one
/// succeeds.
fn loop_scenario(number: usize, trigger: Trigger, seed: u64) -> LoopOutcome {
    let repo = loop_repo(&format!("flow-loops-{number}-"));
    let before = repo.checkout_snapshot();
    let mut rng = Rng(seed);
    let mut report = String::new();
    let mut caught = vec![];
    let mut kills = 0;
    // Agent attempts each kill caught before they ended, per `<workstream>.<purpose>`.
    let mut cut: BTreeMap<String, usize> = BTreeMap::new();
    let mut hold = match &trigger {
        Trigger::Counter { file, runs } => Some(repo.counters.join(format!("hold.{file}.{runs}"))),
        Trigger::Verifying(ws) => Some(repo.counters.join(format!("hold.verify.{ws}"))),
        _ => None,
    };
    if let Some(path) = &hold {
        std::fs::write(path, "").expect("hold file");
    }
    let mut decided: Vec<String> = vec![];
    let mut current = trigger;
    let mut command: Vec<&str> = vec!["run", "--progress", "plain", "--grace", "1s"];
    let mut label = "run".to_string();
    let mut step = 0;
    loop {
        assert!(
            step < 10,
            "loop scenario {number}: no resume succeeded after {step} tries\n{report}"
        );
        let events_from = repo.events().len();
        let child = repo.spawn_flow(&command, &format!("{step}-{label}"));
        let (code, ms) = drive(&repo, child, &current, events_from);
        // The held agent (alive after its flow, as after a real crash) may go on now.
        if let Some(path) = hold.take() {
            let _ = std::fs::remove_file(path);
        }
        let what = format!("loop scenario {number}, {label} killed {current}");
        let output = repo.output_of(&format!("{step}-{label}"));
        let cleanup = cleanup_note(&output);
        let decisions = resume_decisions(&output);
        if !decisions.is_empty() {
            writeln!(report, "    ({label} decided: {})", decisions.join(", ")).unwrap();
        }
        decided.extend(decisions);
        match code {
            None => {
                kills += 1;
                let events = repo.events();
                let flight = attempts_in_flight(&events, events_from, &repo.names);
                let last = match events.last() {
                    Some(e) if events.len() > events_from => describe_event(e, &repo.names),
                    _ => "none of its own".to_string(),
                };
                writeln!(
                    report,
                    "  kill {label:<9} {current:<48} at {ms:>5} ms; last event: {last}; attempts cut: {}",
                    if flight.is_empty() {
                        "none".to_string()
                    } else {
                        flight.join(" ")
                    }
                )
                .unwrap();
                report.push_str(&cleanup);
                for attempt in flight {
                    *cut.entry(attempt.clone()).or_default() += 1;
                    caught.push(attempt);
                }
                for record in check_after_kill(&repo, &before, &what) {
                    writeln!(report, "    (fsck: the kill left {record} half-made)").unwrap();
                }
                check_event_log(&repo, 0, &what);
            }
            Some(c) => {
                writeln!(report, "  {label:<14} exited {c} after {ms} ms").unwrap();
                report.push_str(&cleanup);
                assert_eq!(
                    c, 0,
                    "loop scenario {number}: {label} exited {c}\n{output}\n--- so far\n{report}"
                );
                break;
            }
        }
        step += 1;
        if repo.latest_run_dir().is_some() {
            command = vec!["resume", "--progress", "plain", "--grace", "1s"];
            label = format!("resume {step}");
        } else {
            command = vec!["run", "--progress", "plain", "--grace", "1s"];
            label = format!("run {step}");
        }
        current = resume_trigger(step - 1, &mut rng);
    }
    check_loop_final(&repo, &before, &cut, &format!("loop scenario {number}"), &report);
    LoopOutcome {
        report,
        caught,
        kills,
        decided,
    }
}

/// An event in a few words: its number, kind, phase or purpose, and workstream.
fn describe_event(event: &Value, names: &[&str]) -> String {
    let mut s = format!("#{} {}", event["seq"], event["event"].as_str().unwrap_or("?"));
    for key in ["phase", "purpose"] {
        if let Some(v) = event[key].as_str() {
            write!(s, " {v}").unwrap();
        }
    }
    if let Some(ws) = workstream_of(event, names) {
        write!(s, " of {ws}").unwrap();
    }
    s
}

/// What a resume decided for the workstreams it did not keep as they were, as
/// `<workstream> <action>`, from its output.
fn resume_decisions(output: &str) -> Vec<String> {
    output
        .lines()
        .skip_while(|l| !l.starts_with("resuming run"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (name, action) = (words.next()?, words.next()?);
            (name != "integration" && action != "keep").then(|| format!("{name} {action}"))
        })
        .collect()
}

/// Everything holds at the end of a loop scenario: each workstream merged once with `verify`
/// green; every agent ran as often as its work needs, again only for an attempt a kill cut
/// (a finished fix, review or resolution never runs again), and never off the record; the
/// attempt logs hold each attempt once and no more fixes than allowed; the decision log holds
/// each resolution once.
fn check_loop_final(repo: &Repo, before: &[String], cut: &BTreeMap<String, usize>, what: &str, report: &str) {
    let dir = repo.latest_run_dir().expect("a run");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).expect("state.json")).expect("JSON");
    let events = repo.events();
    assert_eq!(state["status"], "succeeded", "{what}\n{report}");
    let head = repo.git(&["rev-parse", LOOPS_INTO]);
    assert_eq!(
        state["last_good"].as_str(),
        Some(head.as_str()),
        "{what}: last_good is the integration head"
    );

    // Merged exactly once each, verified, and never undone.
    let subjects = repo.git(&["log", "--first-parent", "--format=%s", LOOPS_INTO]);
    assert!(
        !subjects.lines().any(|s| s.starts_with("Undo the merge")),
        "{what}: a merge was undone:\n{subjects}"
    );
    for (i, name) in LOOP_NAMES.iter().enumerate() {
        let ws = &state["workstreams"][i];
        assert_eq!(ws["name"], *name);
        assert_eq!(ws["phase"], "merged", "{what}: {name}\n{report}");
        let merged: Vec<&Value> = events
            .iter()
            .filter(|e| e["event"] == "merged" && workstream_of(e, &repo.names) == Some(name))
            .collect();
        assert_eq!(
            merged.len(),
            1,
            "{what}: `{name}` recorded as merged {} times",
            merged.len()
        );
        assert_eq!(
            merged[0]["verify"]["passed"], true,
            "{what}: `{name}`'s merge was not verified: {}",
            merged[0]
        );
        let prefix = format!("Merge flow/{LOOPS}/{name} (");
        let merges = subjects.lines().filter(|s| s.starts_with(&prefix)).count();
        assert!(merges <= 1, "{what}: `{name}` merged {merges} times:\n{subjects}");
        let merge = ws["merge_commit"].as_str().expect("a merge commit");
        assert!(
            repo.git_output(&["merge-base", "--is-ancestor", merge, LOOPS_INTO])
                .status
                .success(),
            "{what}: `{name}`'s merge is in {LOOPS_INTO}"
        );
    }
    let show = |path: &str| repo.git(&["show", &format!("{LOOPS_INTO}:{path}")]);
    assert_eq!(show("tf/file.txt"), "fixed", "{what}");
    assert_eq!(show("rv/file.txt"), "v2", "{what}");
    for (path, sides) in [("shared.txt", ["left", "right"]), ("other.txt", ["top", "bottom"])] {
        let text = show(path);
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        let mut expected = sides.to_vec();
        expected.sort_unstable();
        assert_eq!(lines, expected, "{what}: {path} keeps both sides, once each:\n{text}");
    }

    // Agents ran as often as the work needs, more only for attempts a kill cut, and each run
    // is on record.
    let counters = loop_counters(repo);
    let started = |file: &str| {
        events
            .iter()
            .filter(|e| e["event"] == "attempt-started")
            .filter(|e| {
                workstream_of(e, &repo.names)
                    .is_some_and(|ws| format!("{ws}.{}", e["purpose"].as_str().unwrap_or("work")) == file)
            })
            .count()
    };
    for (file, runs) in &counters {
        let expected = LOOP_RUNS
            .iter()
            .find(|(ws, purpose, _)| format!("{ws}.{purpose}") == *file)
            .map_or(0, |(_, _, n)| *n);
        let again = cut.get(file).copied().unwrap_or(0);
        assert!(
            *runs >= expected && *runs <= expected + again,
            "{what}: the agent of {file} ran {runs} times; the work needs {expected}, and kills cut {again} of them\n{report}"
        );
        assert!(
            *runs <= started(file),
            "{what}: the agent of {file} ran {runs} times, {} on record",
            started(file)
        );
    }
    for (ws, purpose, runs) in LOOP_RUNS {
        let file = format!("{ws}.{purpose}");
        assert!(
            counters.get(&file).copied().unwrap_or(0) >= runs,
            "{what}: {file} never ran\n{report}"
        );
    }

    // Each attempt recorded once, numbered on from the last, ended at most once; no more
    // fixes than allowed, exactly as many as the work needs.
    for (i, name) in LOOP_NAMES.iter().enumerate() {
        let mut last = 0;
        let mut open = false;
        for e in events.iter().filter(|e| workstream_of(e, &repo.names) == Some(name)) {
            match e["event"].as_str() {
                Some("attempt-started") => {
                    let n = e["attempt"].as_u64().expect("an attempt number");
                    assert!(
                        n > last,
                        "{what}: `{name}`'s attempt {n} started after its attempt {last}"
                    );
                    last = n;
                    open = true;
                }
                Some("attempt-ended") => {
                    assert!(
                        open && e["attempt"].as_u64() == Some(last),
                        "{what}: `{name}`'s attempt {} ended, not the one that started ({last}, open: {open})",
                        e["attempt"]
                    );
                    open = false;
                }
                _ => {}
            }
        }
        let ws = &state["workstreams"][i];
        let log = ws["attempt_log"].as_array().expect("an attempt log");
        let numbers: Vec<u64> = log.iter().filter_map(|a| a["number"].as_u64()).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{what}: `{name}`'s attempt log numbers {numbers:?}"
        );
        let (_, needed, allowed) = LOOP_FIXES[i];
        let fixes = ws["fixes"].as_u64().unwrap_or(0);
        assert!(
            fixes <= allowed,
            "{what}: `{name}` had {fixes} fixes, {allowed} allowed"
        );
        assert_eq!(fixes, needed, "{what}: `{name}`'s fixes\n{report}");
    }
    assert_eq!(state["workstreams"][1]["review"]["verdict"], "approve", "{what}");

    // Each resolution logged once: `right`'s by its own agent, `bottom`'s by the resolver.
    let log = std::fs::read_to_string(dir.join("conflict_resolution.md")).expect("the decision log");
    let entries: Vec<&str> = log.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        entries,
        [
            "## `right` and the integration branch",
            "## `bottom` and the integration branch"
        ],
        "{what}: the decision log:\n{log}"
    );
    assert!(
        log.contains("own agent (`shell`)") && log.contains("resolver agent `resolver`"),
        "{what}: {log}"
    );
    assert_eq!(repo.checkout_snapshot(), before, "{what}: the user's checkout changed");
    repo.assert_fsck_clean(what);
}

/// Runs one scenario per trigger on `FLOW_CRASH_THREADS` threads (3 unless set), printing
/// each one's report as it ends. A scenario that fails does not stop the others; the test
/// then fails with every failed scenario's number, trigger and message at the end of the
/// output, where a shortened log still shows them.
fn run_scenarios<O: Send>(
    label: &str,
    triggers: &[Trigger],
    run: impl Fn(usize, &Trigger) -> (String, O) + Sync,
) -> Vec<O> {
    let threads = std::env::var("FLOW_CRASH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(3);
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<O>> = Mutex::new(vec![]);
    let failures: Mutex<Vec<String>> = Mutex::new(vec![]);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(trigger) = triggers.get(i) else { break };
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(i, trigger)));
                    match ran {
                        Ok((report, outcome)) => {
                            println!("{label} {} (kill `flow run` {trigger}):\n{report}", i + 1);
                            outcomes.lock().unwrap().push(outcome);
                        }
                        Err(panic) => {
                            let message = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default();
                            failures.lock().unwrap().push(format!(
                                "{label} {} (kill `flow run` {trigger}) failed: {message}",
                                i + 1
                            ));
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    for failure in &failures {
        println!("{failure}\n");
    }
    let heads: Vec<String> = failures
        .iter()
        .map(|f| f.lines().take(6).collect::<Vec<_>>().join("\n"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} failed (whole messages above):\n\n{}",
        failures.len(),
        triggers.len(),
        heads.join("\n\n")
    );
    outcomes.into_inner().unwrap()
}

/// The loop scenarios' first kills: each agent run of the fix loop, the review and the
/// resolver held and caught while it runs, and the moments right after each ended.
fn loop_triggers() -> Vec<Trigger> {
    let counter = |file, runs| Trigger::Counter { file, runs };
    vec![
        counter("tf.fix", 1),
        Trigger::Ended {
            ws: "tf",
            purpose: "fix",
        },
        counter("rv.review", 1),
        after("reviewed", "rv"),
        counter("rv.fix", 1),
        counter("rv.review", 2),
        after_phase("fixing", "right"),
        after("synced", "right"),
        counter("right.fix", 1),
        Trigger::Ended {
            ws: "right",
            purpose: "fix",
        },
        after("synced", "bottom"),
        after_phase("resolving", "bottom"),
        counter("bottom.resolve", 1),
        Trigger::Ended {
            ws: "bottom",
            purpose: "resolve",
        },
        Trigger::Verifying("bottom"),
        after("merged", "bottom"),
        Trigger::NthEvent(30),
    ]
}

#[test]
fn kills_during_fixes_reviews_and_the_resolver_lose_nothing_and_repeat_nothing() {
    let started = Instant::now();
    let reference = loop_repo("flow-loops-ref-");
    let before = reference.checkout_snapshot();
    let child = reference.spawn_flow(&["run", "--progress", "plain"], "reference");
    let (code, full_run_ms) = drive(&reference, child, &Trigger::Never, 0);
    assert_eq!(code, Some(0), "{}", reference.output_of("reference"));
    check_loop_final(&reference, &before, &BTreeMap::new(), "the uninterrupted run", "");
    println!("an uninterrupted run of the loop workflow takes {full_run_ms} ms");

    let triggers = loop_triggers();
    let mut rng = Rng(0x100b_5eed_c4a5_4002);
    let seeds: Vec<u64> = triggers.iter().map(|_| rng.next()).collect();
    let outcomes = run_scenarios("loop scenario", &triggers, |i, trigger| {
        let outcome = loop_scenario(i + 1, trigger.clone(), seeds[i]);
        (outcome.report.clone(), outcome)
    });
    assert_eq!(outcomes.len(), triggers.len(), "every scenario ran");
    let caught: Vec<&String> = outcomes.iter().flat_map(|o| &o.caught).collect();
    let kills: usize = outcomes.iter().map(|o| o.kills).sum();
    let count = |purpose: &str| caught.iter().filter(|c| c.ends_with(&format!(".{purpose}"))).count();
    let decided: Vec<&String> = outcomes.iter().flat_map(|o| &o.decided).collect();
    let resumed = |action: &str| decided.iter().filter(|d| d.ends_with(&format!(" {action}"))).count();
    println!(
        "{kills} kills in {} loop scenarios, {:.1} s; attempts they cut: work {}, fix {}, review {}, resolve {}; \
         resumes decided: check {}, fix {}, merge {}, finish {}, run {}",
        outcomes.len(),
        started.elapsed().as_secs_f64(),
        count("work"),
        count("fix"),
        count("review"),
        count("resolve"),
        resumed("check"),
        resumed("fix"),
        resumed("merge"),
        resumed("finish"),
        resumed("run"),
    );
    // The held runs make these certain, whatever the machine's speed.
    for purpose in ["fix", "review", "resolve"] {
        assert!(count(purpose) >= 1, "no kill caught a {purpose} attempt running");
    }
    assert!(
        decided.iter().any(|d| d.as_str() == "bottom finish"),
        "no resume finished a resolution its resolver had ended (verify held, so one must)"
    );
    assert!(
        decided.iter().any(|d| d.as_str() == "right fix"),
        "no resume ran a cut conflict fix again (its fix held, so one must)"
    );
}
