//! Runs real `sh -c` children through `run_process`: exits, output, limits, stopping, process
//! groups, the clean environment and redaction. Timings are short and bounds generous.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use flow_engine::agent::environment::{agent_environment, secret_values};
use flow_engine::agent::process::{Control, OutputLine, ProcessEnd, ProcessOutcome, ProcessSpec, run_process};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, kill_process, test_kill_process};
use tokio::sync::watch;

/// An upper bound for anything that should be quick, even on a loaded machine.
const SLACK: Duration = Duration::from_secs(5);

/// Builds a spec running `script` with `sh -c`, with only `PATH` set and a short grace.
fn shell(script: &str) -> ProcessSpec {
    let mut spec = ProcessSpec::new("sh", vec!["-c".to_owned(), script.to_owned()], std::env::temp_dir());
    spec.env
        .insert("PATH".to_owned(), std::env::var("PATH").unwrap_or_default());
    spec.grace = Duration::from_secs(2);
    spec
}

/// A cancel channel that stays false (its sender lives as long as the test).
fn not_cancelled() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

/// A line as the callback saw it: `true` for stderr.
type Seen = (bool, String);

/// Runs `spec`, recording every line, and stopping when `stop_at` returns a reason.
async fn run_with(
    spec: ProcessSpec,
    mut stop_at: impl FnMut(&str) -> Option<String> + Send,
) -> (ProcessOutcome, Vec<Seen>) {
    let (_sender, cancel) = not_cancelled();
    let mut seen = Vec::new();
    let outcome = run_process(
        spec,
        |line| {
            seen.push((matches!(line, OutputLine::Stderr(_)), line.text().to_owned()));
            match stop_at(line.text()) {
                Some(reason) => Control::Stop(reason),
                None => Control::Continue,
            }
        },
        cancel,
    )
    .await
    .expect("sh starts");
    (outcome, seen)
}

/// Runs `spec` to its end, recording every line.
async fn run(spec: ProcessSpec) -> (ProcessOutcome, Vec<Seen>) {
    run_with(spec, |_| None).await
}

/// Returns the stdout lines of `seen`.
fn stdout(seen: &[Seen]) -> Vec<&str> {
    seen.iter()
        .filter(|(is_stderr, _)| !is_stderr)
        .map(|(_, text)| text.as_str())
        .collect()
}

/// Tells whether process `pid` is gone (a zombie nobody reaped counts as gone).
fn is_gone(pid: i32) -> bool {
    // Signal 0 only checks that the process exists.
    let process = Pid::from_raw(pid).expect("a positive pid");
    if test_kill_process(process) == Err(Errno::SRCH) {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, after_name) = stat.rsplit_once(')')?;
            after_name.split_whitespace().next().map(|state| state == "Z")
        })
        .unwrap_or(false)
}

/// Waits until the pid written in `file` is gone; a killed process needs a moment to be reaped.
async fn assert_gone(file: &Path) {
    let text = std::fs::read_to_string(file).expect("the child wrote its grandchild's pid");
    let pid: i32 = text.trim().parse().expect("a pid");
    let deadline = Instant::now() + SLACK;
    while !is_gone(pid) {
        assert!(Instant::now() < deadline, "grandchild {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn exit_codes_and_signals_are_reported() {
    assert_eq!(run(shell("exit 0")).await.0.end, ProcessEnd::Exited(0));
    assert_eq!(run(shell("exit 3")).await.0.end, ProcessEnd::Exited(3));
    assert_eq!(
        run(shell("kill -TERM $$")).await.0.end,
        ProcessEnd::Signaled(Signal::TERM.as_raw())
    );
}

#[tokio::test]
async fn a_missing_program_is_an_error_naming_it() {
    let spec = ProcessSpec::new("flow-no-such-agent", Vec::new(), std::env::temp_dir());
    let (_sender, cancel) = not_cancelled();
    let error = run_process(spec, |_| Control::Continue, cancel)
        .await
        .expect_err("the program does not exist");
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    assert!(error.to_string().contains("flow-no-such-agent"), "{error}");
}

#[tokio::test]
async fn lines_reach_the_callback_and_the_log() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let log = directory.path().join("logs/agent.log");
    let mut spec = shell(
        "echo out1; echo err1 >&2; echo out2; printf 'bad \\377 byte\\r\\n'; \
         head -c 200000 /dev/zero | tr '\\0' a; echo; echo err2 >&2; printf 'no newline'",
    );
    spec.log_path = Some(log.clone());
    let (outcome, seen) = run(spec).await;

    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    let long_line = "a".repeat(200_000);
    assert_eq!(
        stdout(&seen),
        ["out1", "out2", "bad \u{FFFD} byte", &long_line, "no newline"]
    );
    let stderr: Vec<&str> = seen
        .iter()
        .filter(|(is_stderr, _)| *is_stderr)
        .map(|(_, text)| text.as_str())
        .collect();
    assert_eq!(stderr, ["err1", "err2"]);
    assert_eq!(outcome.stderr_tail, "err1\nerr2");

    let written = std::fs::read_to_string(&log).expect("the log exists");
    let mut logged: Vec<&str> = written.lines().collect();
    logged.sort_unstable();
    let mut expected = vec![
        "out1",
        "out2",
        "bad \u{FFFD} byte",
        long_line.as_str(),
        "no newline",
        "[stderr] err1",
        "[stderr] err2",
    ];
    expected.sort_unstable();
    assert_eq!(logged, expected);
}

#[tokio::test]
async fn the_last_line_is_the_last_non_blank_one() {
    let (outcome, _) = run(shell("echo first; echo last; echo '  '; echo")).await;
    assert_eq!(outcome.last_line.as_deref(), Some("last"));
}

#[tokio::test]
async fn stdin_reaches_the_child_and_is_closed() {
    let mut spec = shell("cat; echo done");
    spec.stdin = Some("hello\nworld\n".to_owned());
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(stdout(&seen), ["hello", "world", "done"]);

    // Without stdin the child reads /dev/null, so `cat` ends at once.
    let (outcome, seen) = run(shell("cat; echo done")).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(stdout(&seen), ["done"]);

    // A child that never reads a large input does not block the run.
    let mut spec = shell("exit 0");
    spec.stdin = Some("x".repeat(1 << 20));
    assert_eq!(run(spec).await.0.end, ProcessEnd::Exited(0));
}

#[tokio::test]
async fn a_child_past_its_timeout_is_stopped() {
    let mut spec = shell("echo started; sleep 30");
    spec.timeout = Some(Duration::from_millis(300));
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::TimedOut);
    assert_eq!(stdout(&seen), ["started"]);
    assert!(outcome.duration >= Duration::from_millis(300), "{outcome:?}");
    assert!(outcome.duration < Duration::from_millis(300) + SLACK, "{outcome:?}");
}

#[tokio::test]
async fn a_silent_child_is_hung() {
    let mut spec = shell("echo once; sleep 30");
    spec.idle_timeout = Some(Duration::from_millis(300));
    let (outcome, _) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Hung);
    assert!(outcome.duration < SLACK, "{outcome:?}");
}

#[tokio::test]
async fn a_child_that_keeps_talking_is_not_hung() {
    let mut spec = shell("i=0; while [ $i -lt 10 ]; do echo tick $i; sleep 0.1; i=$((i+1)); done");
    spec.idle_timeout = Some(Duration::from_millis(500));
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(seen.len(), 10);
}

#[tokio::test]
async fn the_callback_stops_the_child() {
    let spec = shell("i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done");
    let (outcome, seen) = run_with(spec, |line| (line == "line 2").then(|| "budget crossed".to_owned())).await;
    assert_eq!(outcome.end, ProcessEnd::Stopped("budget crossed".to_owned()));
    let stop = seen
        .iter()
        .position(|(_, text)| text == "line 2")
        .expect("line 2 was seen");
    assert!(seen.len() <= stop + 3, "the child went on: {seen:?}");
    assert!(outcome.duration < SLACK, "{outcome:?}");
}

#[tokio::test]
async fn cancelling_stops_the_child() {
    let (sender, cancel) = watch::channel(false);
    let cancelling = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sender.send(true).expect("run_process still listens");
        sender
    });
    let outcome = run_process(shell("sleep 30"), |_| Control::Continue, cancel)
        .await
        .expect("sh starts");
    assert_eq!(outcome.end, ProcessEnd::Cancelled);
    assert!(outcome.duration < SLACK, "{outcome:?}");
    drop(cancelling.await);

    // Already cancelled: nothing starts.
    let directory = tempfile::tempdir().expect("a temporary directory");
    let marker = directory.path().join("started");
    let (_sender, cancel) = watch::channel(true);
    let spec = shell(&format!("touch '{}'", marker.display()));
    let outcome = run_process(spec, |_| Control::Continue, cancel)
        .await
        .expect("nothing to fail");
    assert_eq!(outcome.end, ProcessEnd::Cancelled);
    assert!(!marker.exists());
}

#[tokio::test]
async fn a_dropped_cancel_sender_changes_nothing() {
    let (sender, cancel) = watch::channel(false);
    drop(sender);
    let outcome = run_process(shell("sleep 0.2; exit 4"), |_| Control::Continue, cancel)
        .await
        .expect("sh starts");
    assert_eq!(outcome.end, ProcessEnd::Exited(4));
}

#[tokio::test]
async fn grandchildren_left_behind_are_killed() {
    // The leader exits at once; its background grandchild holds stdout open.
    let directory = tempfile::tempdir().expect("a temporary directory");
    let pid_file = directory.path().join("pid");
    let spec = shell(&format!("sleep 30 & echo $! > '{}'; echo bye", pid_file.display()));
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(stdout(&seen), ["bye"]);
    assert!(outcome.duration < SLACK, "{outcome:?}");
    assert_gone(&pid_file).await;
}

#[tokio::test]
async fn grandchildren_of_a_stopped_child_are_killed() {
    // A background job of `sh` ignores SIGINT, so only the SIGKILL of the group ends it.
    let directory = tempfile::tempdir().expect("a temporary directory");
    let pid_file = directory.path().join("pid");
    let mut spec = shell(&format!("sleep 30 & echo $! > '{}'; sleep 30", pid_file.display()));
    spec.timeout = Some(Duration::from_millis(200));
    let (outcome, _) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::TimedOut);
    assert!(outcome.duration < SLACK, "{outcome:?}");
    assert_gone(&pid_file).await;
}

#[tokio::test]
async fn a_grandchild_that_escaped_the_group_does_not_hang_the_run() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let pid_file = directory.path().join("pid");
    let spec = shell(&format!(
        "setsid sleep 30 & echo $! > '{}'; echo bye",
        pid_file.display()
    ));
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(stdout(&seen), ["bye"]);
    assert!(outcome.duration < SLACK, "{outcome:?}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the pid was written")
        .trim()
        .parse()
        .expect("a pid");
    // The escaped process is this test's own `sleep`; SIGKILL ends it.
    let _ = kill_process(Pid::from_raw(pid).expect("a positive pid"), Signal::KILL);
}

#[tokio::test]
async fn a_child_that_exits_on_sigint_returns_before_the_grace() {
    let mut spec = shell("trap 'echo bye; exit 0' INT; echo ready; sleep 30 & wait");
    spec.grace = Duration::from_secs(20);
    let (outcome, seen) = run_with(spec, |line| (line == "ready").then(|| "enough".to_owned())).await;
    assert_eq!(outcome.end, ProcessEnd::Stopped("enough".to_owned()));
    assert_eq!(stdout(&seen), ["ready", "bye"]);
    assert!(outcome.duration < SLACK, "{outcome:?}");
}

#[tokio::test]
async fn a_child_that_ignores_sigint_is_killed_after_the_grace() {
    let mut spec = shell("trap '' INT; echo ready; sleep 30");
    spec.grace = Duration::from_millis(300);
    let (outcome, _) = run_with(spec, |line| (line == "ready").then(|| "enough".to_owned())).await;
    assert_eq!(outcome.end, ProcessEnd::Stopped("enough".to_owned()));
    assert!(outcome.duration >= Duration::from_millis(300), "{outcome:?}");
    assert!(outcome.duration < SLACK, "{outcome:?}");
}

#[tokio::test]
async fn the_child_sees_only_the_clean_environment() {
    let mut parent: Vec<(String, String)> = std::env::vars().collect();
    parent.extend(
        [
            ("HOME", "/home/flow-test"),
            ("LC_ALL", "C"),
            ("FLOW_TEST_HIDDEN", "hidden"),
            ("FLOW_TEST_PASSED", "passed"),
            ("CLAUDECODE", "1"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned())),
    );
    let pass = ["FLOW_TEST_PASSED".to_owned(), "CLAUDECODE".to_owned()];
    let set = BTreeMap::from([
        ("FLOW_TEST_SET".to_owned(), "set".to_owned()),
        ("CLAUDE_CODE_ENTRYPOINT".to_owned(), "cli".to_owned()),
    ]);
    let mut spec = shell("env");
    spec.env = agent_environment(parent, &pass, &set);
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    let lines = stdout(&seen);

    for expected in [
        "HOME=/home/flow-test",
        "LC_ALL=C",
        "FLOW_TEST_PASSED=passed",
        "FLOW_TEST_SET=set",
    ] {
        assert!(lines.contains(&expected), "{expected} missing from {lines:?}");
    }
    for hidden in ["FLOW_TEST_HIDDEN=", "CLAUDECODE=", "CLAUDE_CODE_ENTRYPOINT=", "CARGO"] {
        assert!(
            !lines.iter().any(|line| line.starts_with(hidden)),
            "{hidden} leaked into {lines:?}"
        );
    }
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let log = directory.path().join("agent.log");
    let mut spec = shell("echo \"key is $SERVICE_API_KEY\"; echo \"$SERVICE_API_KEY\" >&2");
    spec.env
        .insert("SERVICE_API_KEY".to_owned(), "sk-supersecret-123".to_owned());
    spec.secrets = secret_values(&spec.env);
    spec.log_path = Some(log.clone());
    let (outcome, seen) = run(spec).await;

    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(stdout(&seen), ["key is sk-supersecret-123"]);
    let written = std::fs::read_to_string(&log).expect("the log exists");
    assert!(!written.contains("supersecret"), "{written}");
    assert!(written.contains("key is ***\n"), "{written}");
    assert!(written.contains("[stderr] ***\n"), "{written}");
    assert_eq!(outcome.stderr_tail, "***");
    let last_line = outcome.last_line.expect("the child wrote lines");
    assert!(
        last_line.ends_with("***") && !last_line.contains("supersecret"),
        "{last_line}"
    );
}

#[tokio::test]
async fn output_written_just_before_exit_is_all_read() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let log = directory.path().join("agent.log");
    let mut spec = shell("seq 1 5000");
    spec.log_path = Some(log.clone());
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(seen.len(), 5000);
    assert_eq!(outcome.last_line.as_deref(), Some("5000"));
    let written = std::fs::read_to_string(&log).expect("the log exists");
    assert_eq!(written.lines().count(), 5000);
}

#[test]
fn the_run_can_be_spawned_on_a_multi_threaded_runtime() {
    fn assert_send<T: Send>(_: &T) {}
    let (_sender, cancel) = not_cancelled();
    let run = run_process(shell("exit 0"), |_| Control::Continue, cancel);
    assert_send(&run);
}
