//! Runs real `sh -c` children through `run_process`: exits, output, limits, stopping, process
//! groups, the clean environment and redaction.
//!
//! No test asserts how fast anything happened, so a busy machine cannot fail them. They assert
//! on events instead: the lines a child wrote (one it would only write if it were left running,
//! after a long sleep, must never come), the marker line its SIGINT handler writes, the pid
//! files of its grandchildren. Limits that are wall-clock by nature (timeout, idle) are far
//! above what the child must do before them, and so is the grace period where a child is
//! expected to end on SIGINT. The only durations asserted are lower bounds: a limit never
//! fires early.
//!
//! A child meant to end on SIGINT waits for a background `sleep` (`sleep 30 & ...; wait`)
//! instead of running it in the foreground: a SIGINT that reaches `sh` while it is starting a
//! foreground command can be lost in the forked child, which then runs to its end (seen about
//! once in ten tries). A background job ignores SIGINT; the group's SIGKILL ends it once `sh`
//! has exited.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use flow_engine::agent::environment::{agent_environment, secret_values};
use flow_engine::agent::process::{
    Control, LINE_LIMIT, ProcessEnd, ProcessOutcome, ProcessSpec, TEXT_LIMIT, become_subreaper, each_line, run_process,
};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, test_kill_process};
use tokio::sync::watch;

/// The grace between SIGINT and SIGKILL: a child that ends on SIGINT is never cut short, and a
/// test only waits this long if the child failed to end.
const GRACE: Duration = Duration::from_secs(60);

/// How long a process killed by its group's SIGKILL may take to disappear before a test fails
/// instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// Builds a spec running `script` with `sh -c`, with only `PATH` set and a long grace.
fn shell(script: &str) -> ProcessSpec {
    let mut spec = ProcessSpec::new("sh", vec!["-c".to_owned(), script.to_owned()], std::env::temp_dir());
    spec.env
        .insert("PATH".to_owned(), std::env::var("PATH").unwrap_or_default());
    spec.grace = GRACE;
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
        each_line(|line| {
            seen.push((line.is_stderr(), line.text().to_owned()));
            match stop_at(line.text()) {
                Some(reason) => Control::Stop(reason),
                None => Control::Continue,
            }
        }),
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

/// Returns the pid the child wrote to `file`.
fn written_pid(file: &Path) -> i32 {
    let text = std::fs::read_to_string(file).expect("the child wrote its grandchild's pid");
    text.trim().parse().expect("a pid")
}

/// Asserts that the pid written in `file` names no process at all, not even a zombie: it was
/// killed and reaped before `run_process` returned.
fn assert_reaped(file: &Path) {
    let pid = written_pid(file);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} is still there: {:?}",
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
    );
}

/// Waits until the pid written in `file` is gone; a killed process needs a moment to be reaped.
async fn assert_gone(file: &Path) {
    let pid = written_pid(file);
    let deadline = Instant::now() + PATIENCE;
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
    // The timeout is far longer than the child needs to write its first line.
    let timeout = Duration::from_secs(2);
    let mut spec = shell("sleep 30 & echo started; wait; echo never");
    spec.timeout = Some(timeout);
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::TimedOut);
    assert_eq!(stdout(&seen), ["started"], "stopped before it woke up");
    assert!(outcome.duration >= timeout, "{outcome:?}");
}

#[tokio::test]
async fn a_silent_child_is_hung() {
    let mut spec = shell("sleep 30 & echo once; wait; echo never");
    spec.idle_timeout = Some(Duration::from_millis(300));
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Hung);
    assert!(!stdout(&seen).contains(&"never"), "stopped before it woke up: {seen:?}");
}

#[tokio::test]
async fn a_child_that_keeps_talking_is_not_hung() {
    // It talks for longer than the idle limit, with pauses twenty times shorter than it.
    let mut spec = shell("i=0; while [ $i -lt 30 ]; do echo tick $i; sleep 0.1; i=$((i+1)); done");
    spec.idle_timeout = Some(Duration::from_secs(2));
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(seen.len(), 30);
}

#[tokio::test]
async fn a_child_that_writes_one_line_slowly_is_not_hung() {
    // No line ends for longer than the idle limit, but output keeps coming, twenty times as
    // often as the limit.
    let mut spec = shell("i=0; while [ $i -lt 30 ]; do printf x; sleep 0.1; i=$((i+1)); done; echo");
    spec.idle_timeout = Some(Duration::from_secs(2));
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(stdout(&seen), ["x".repeat(30)]);
}

#[tokio::test]
async fn the_callback_stops_the_child() {
    // It would write forever; on SIGINT it says so and exits.
    let spec =
        shell("trap 'echo interrupted; exit 0' INT; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done");
    let (outcome, seen) = run_with(spec, |line| (line == "line 2").then(|| "budget crossed".to_owned())).await;
    assert_eq!(outcome.end, ProcessEnd::Stopped("budget crossed".to_owned()));
    let lines = stdout(&seen);
    assert_eq!(lines[..3], ["line 0", "line 1", "line 2"]);
    // What it wrote between the stop and the signal, then its last words, and nothing after.
    let (last, between) = lines[3..].split_last().expect("the child wrote on");
    assert_eq!(*last, "interrupted", "the child went on: {seen:?}");
    let expected: Vec<String> = (3..3 + between.len()).map(|i| format!("line {i}")).collect();
    assert_eq!(between, expected, "{seen:?}");
}

#[tokio::test]
async fn cancelling_stops_the_child() {
    // Cancelled (as Ctrl-C would) once the child says it is running.
    let (sender, cancel) = watch::channel(false);
    let mut seen = Vec::new();
    let outcome = run_process(
        shell("sleep 30 & echo ready; wait; echo never"),
        each_line(|line| {
            seen.push(line.text().to_owned());
            if line.text() == "ready" {
                sender.send(true).expect("run_process still listens");
            }
            Control::Continue
        }),
        cancel,
    )
    .await
    .expect("sh starts");
    assert_eq!(outcome.end, ProcessEnd::Cancelled);
    assert_eq!(seen, ["ready"], "stopped before it woke up");

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
    // The leader exits at once; its background grandchild holds stdout open, and would write
    // to it after its sleep.
    let directory = tempfile::tempdir().expect("a temporary directory");
    let pid_file = directory.path().join("pid");
    let spec = shell(&format!(
        "(sleep 30; echo never) & echo $! > '{}'; echo bye",
        pid_file.display()
    ));
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(stdout(&seen), ["bye"], "the run did not wait for the grandchild");
    assert_gone(&pid_file).await;
}

#[tokio::test]
async fn grandchildren_of_a_stopped_child_are_killed() {
    // A background job of `sh` ignores SIGINT, so only the SIGKILL of the group ends it. The
    // child is stopped once its grandchild's pid is written.
    let directory = tempfile::tempdir().expect("a temporary directory");
    let pid_file = directory.path().join("pid");
    let spec = shell(&format!(
        "sleep 30 & echo $! > '{}'; echo ready; wait; echo never",
        pid_file.display()
    ));
    let (outcome, seen) = run_with(spec, |line| (line == "ready").then(|| "enough".to_owned())).await;
    assert_eq!(outcome.end, ProcessEnd::Stopped("enough".to_owned()));
    assert_eq!(stdout(&seen), ["ready"], "stopped before it woke up");
    assert_gone(&pid_file).await;
}

#[tokio::test]
async fn a_grandchild_that_escaped_the_group_does_not_hang_the_run() {
    become_subreaper().expect("the kernel lets a process reap its orphans");
    let directory = tempfile::tempdir().expect("a temporary directory");
    let pid_file = directory.path().join("pid");
    // It holds stdout open in a session of its own, and would write to it after its sleep.
    let spec = shell(&format!(
        "setsid sh -c 'sleep 30; echo never' & echo $! > '{}'; echo bye",
        pid_file.display()
    ));
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(
        stdout(&seen),
        ["bye"],
        "the run did not wait for the escaped grandchild"
    );
    assert_reaped(&pid_file);
}

#[tokio::test]
async fn a_child_that_exits_on_sigint_returns_before_the_grace() {
    let spec = shell("trap 'echo bye; exit 0' INT; echo ready; sleep 30 & wait");
    let (outcome, seen) = run_with(spec, |line| (line == "ready").then(|| "enough".to_owned())).await;
    assert_eq!(outcome.end, ProcessEnd::Stopped("enough".to_owned()));
    assert_eq!(stdout(&seen), ["ready", "bye"]);
    // Its group would have been SIGKILLed at the end of the grace: the run returned when the
    // child exited, not then.
    assert!(outcome.duration < GRACE, "{outcome:?}");
}

#[tokio::test]
async fn a_child_that_ignores_sigint_is_killed_after_the_grace() {
    let grace = Duration::from_millis(300);
    let mut spec = shell("trap '' INT; echo ready; sleep 30; echo never");
    spec.grace = grace;
    let (outcome, seen) = run_with(spec, |line| (line == "ready").then(|| "enough".to_owned())).await;
    assert_eq!(outcome.end, ProcessEnd::Stopped("enough".to_owned()));
    assert_eq!(stdout(&seen), ["ready"], "killed before it woke up");
    assert!(outcome.duration >= grace, "{outcome:?}");
}

#[tokio::test]
async fn hurrying_kills_a_child_being_stopped_without_waiting_for_its_grace() {
    // A grace of an hour: only the hurry can end this child in the test's lifetime.
    let mut spec = shell("trap '' INT; echo ready; sleep 600; echo never");
    spec.grace = Duration::from_secs(3600);
    let (hurry_tx, hurry_rx) = watch::channel(false);
    spec.hurry = Some(hurry_rx);
    let (cancel_tx, cancel) = watch::channel(false);
    let mut stopped = false;
    let run = run_process(
        spec,
        each_line(|line| {
            if line.text() == "ready" && !stopped {
                stopped = true;
                // Stop it (SIGINT, which it ignores), then hurry: SIGKILL at once.
                let _ = cancel_tx.send(true);
                let _ = hurry_tx.send(true);
            }
            Control::Continue
        }),
        cancel,
    );
    let outcome = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the hurried child was killed")
        .expect("sh starts");
    assert_eq!(outcome.end, ProcessEnd::Cancelled);
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

/// Returns the lines of the log at `path`, which must be valid UTF-8.
fn log_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("the log exists and is UTF-8");
    text.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn a_flood_of_lines_leaves_a_log_within_its_limit() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let log = directory.path().join("agent.log");
    // About 300 MB: the numbers from 1 to 35,000,000, one a line.
    let mut spec = shell("seq 1 35000000");
    let limit = 8 << 20;
    spec.log_limit = Some(limit);
    spec.log_path = Some(log.clone());
    let (_sender, cancel) = not_cancelled();
    let mut count = 0u64;
    let outcome = run_process(
        spec,
        each_line(|line| {
            count += 1;
            assert!(!line.cut, "{}", line.text);
            Control::Continue
        }),
        cancel,
    )
    .await
    .expect("sh starts");
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(count, 35_000_000, "the callback saw every line");
    assert_eq!(outcome.last_line.as_deref(), Some("35000000"));

    let size = std::fs::metadata(&log).expect("the log exists").len();
    assert!(size <= limit + 200, "the log holds {size} bytes");
    let lines = log_lines(&log);
    let marker = lines
        .iter()
        .position(|line| line.starts_with("[flow: ") && line.contains("dropped here"))
        .expect("a marker line");
    // The head: the first lines (the last may be cut where the head filled).
    let head = &lines[..marker];
    for (index, line) in head[..head.len() - 1].iter().enumerate() {
        assert_eq!(*line, (index + 1).to_string());
    }
    // The tail: whole lines, the last ones printed.
    let tail = &lines[marker + 1..];
    let first: u64 = tail[0].parse().expect("the tail starts with a whole line");
    for (index, line) in tail.iter().enumerate() {
        assert_eq!(*line, (first + index as u64).to_string());
    }
    assert_eq!(tail.last().map(String::as_str), Some("35000000"));
    assert!(first > 30_000_000, "{} lines dropped at most", first);
    assert!(lines[marker].contains(" lines) dropped here"), "{}", lines[marker]);
}

#[tokio::test]
async fn one_huge_line_costs_a_bounded_part_of_it() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let log = directory.path().join("agent.log");
    // 50 MB on one line, without a line ending, last.
    let mut spec = shell("echo before; head -c 50000000 /dev/zero | tr '\\0' a");
    spec.log_path = Some(log.clone());
    let (_sender, cancel) = not_cancelled();
    let mut seen = Vec::new();
    let outcome = run_process(
        spec,
        each_line(|line| {
            seen.push((line.text.len(), line.cut));
            Control::Continue
        }),
        cancel,
    )
    .await
    .expect("sh starts");
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(
        seen,
        [(6, false), (LINE_LIMIT, true)],
        "the callback saw the line's start, marked cut"
    );
    let last_line = outcome.last_line.expect("a last line");
    assert_eq!(last_line, format!("{}…", "a".repeat(TEXT_LIMIT)));

    // Within the default limit: the log holds the whole line.
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], "before");
    assert_eq!(lines[1].len(), 50_000_000);
    assert!(lines[1].bytes().all(|byte| byte == b'a'));
}

#[tokio::test]
async fn binary_output_and_nul_bytes_are_text_in_the_log() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let log = directory.path().join("agent.log");
    // 3 MB of NUL bytes then bytes that are not UTF-8 on one line; random bytes; a last word.
    let mut spec = shell(
        "head -c 3000000 /dev/zero; printf '\\377\\376binary\\n'; head -c 1000000 /dev/urandom; echo; \
         echo done >&2",
    );
    spec.log_path = Some(log.clone());
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    // The NUL line reached the callback cut, as text.
    let (_, first) = &seen[0];
    assert_eq!(first.len(), LINE_LIMIT);
    assert!(first.bytes().all(|byte| byte == 0));
    // The last word is on stderr: read from another pipe than the random bytes, it may come
    // before their last lines, which the child wrote first but which were still in their pipe.
    let stderr: Vec<&str> = seen
        .iter()
        .filter(|(is_stderr, _)| *is_stderr)
        .map(|(_, text)| text.as_str())
        .collect();
    assert_eq!(stderr, ["done"]);
    assert_eq!(outcome.stderr_tail, "done");

    // The log is valid UTF-8 (`log_lines` reads it so): NUL bytes kept, invalid bytes replaced.
    let lines = log_lines(&log);
    assert_eq!(lines[0].len(), 3_000_000 + "\u{FFFD}\u{FFFD}binary".len());
    assert!(lines[0].ends_with("\0\u{FFFD}\u{FFFD}binary"));
    assert!(
        lines.iter().any(|line| line == "[stderr] done"),
        "the last word is logged"
    );

    // NUL bytes are not blank: the last line is their first few KiB, marked cut.
    let (outcome, seen) = run(shell("head -c 10000 /dev/zero")).await;
    assert_eq!(seen.last().map(|(_, text)| text.len()), Some(10_000));
    assert_eq!(outcome.last_line, Some(format!("{}…", "\0".repeat(TEXT_LIMIT))));
}

#[tokio::test]
async fn a_secret_is_hidden_wherever_the_reads_cut_a_long_line() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let log = directory.path().join("agent.log");
    // 2 MB on one line: 100,000 copies of the secret, which the pipe's reads cut anywhere.
    let mut spec = shell(
        "i=0; while [ $i -lt 100000 ]; do printf '%s..' \"$SERVICE_API_KEY\"; i=$((i+1)); done; echo; \
         printf '%4090s%s\\n' '' \"$SERVICE_API_KEY\"",
    );
    spec.env
        .insert("SERVICE_API_KEY".to_owned(), "sk-supersecret-123".to_owned());
    spec.secrets = secret_values(&spec.env);
    spec.log_path = Some(log.clone());
    let (outcome, _) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));

    let written = std::fs::read_to_string(&log).expect("the log exists");
    assert!(!written.contains("supersecret"));
    assert_eq!(written.matches("***").count(), 100_001);
    // The secret straddles the last line's cut: it is hidden whole, not shown in part.
    let last_line = outcome.last_line.expect("a last line");
    assert!(last_line.ends_with("***"), "{}", &last_line[last_line.len() - 20..]);
    assert!(!last_line.contains("sk-"));
}

#[tokio::test]
async fn the_log_is_written_while_the_child_runs() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let log = directory.path().join("agent.log");
    let go = directory.path().join("go");
    // It says one line, then waits until the test has seen that line in the log.
    let mut spec = shell(&format!(
        "echo early; while [ ! -e '{}' ]; do sleep 0.02; done; echo late",
        go.display()
    ));
    spec.log_path = Some(log.clone());
    let (sender, cancel) = not_cancelled();
    let run = tokio::spawn(run_process(spec, |_| Control::Continue, cancel));
    let deadline = Instant::now() + PATIENCE;
    while std::fs::read_to_string(&log).unwrap_or_default() != "early\n" {
        assert!(Instant::now() < deadline, "the first line never reached the log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::write(&go, "").expect("the go file");
    let outcome = run.await.expect("the run ends").expect("sh starts");
    drop(sender);
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(std::fs::read_to_string(&log).expect("the log"), "early\nlate\n");
}

#[tokio::test]
async fn escaped_descendants_are_stopped_and_reaped() {
    become_subreaper().expect("the kernel lets a process reap its orphans");
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = |name: &str| directory.path().join(name);
    // A grandchild in a session of its own, and a daemon double-forked out of one: both would
    // outlive the child, and neither is in its process group. The child waits until both have
    // said who they are.
    let spec = shell(&format!(
        "setsid sh -c 'echo $$ > {a}.tmp; mv {a}.tmp {a}; exec sleep 300' & \
         (setsid sh -c 'sleep 300 & echo $! > {b}.tmp; mv {b}.tmp {b}' &); \
         while [ ! -e {a} ] || [ ! -e {b} ]; do sleep 0.01; done; echo bye",
        a = path("setsid").display(),
        b = path("daemon").display(),
    ));
    let (outcome, seen) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    assert_eq!(stdout(&seen), ["bye"]);
    assert_reaped(&path("setsid"));
    assert_reaped(&path("daemon"));
}

#[tokio::test]
async fn escaped_descendants_of_a_stopped_child_are_stopped() {
    become_subreaper().expect("the kernel lets a process reap its orphans");
    let directory = tempfile::tempdir().expect("a temporary directory");
    let pid_file = directory.path().join("pid");
    let spec = shell(&format!(
        "setsid sh -c 'echo $$ > {p}.tmp; mv {p}.tmp {p}; exec sleep 300' & \
         while [ ! -e {p} ]; do sleep 0.01; done; echo ready; sleep 300 & wait",
        p = pid_file.display(),
    ));
    let (outcome, _) = run_with(spec, |line| (line == "ready").then(|| "enough".to_owned())).await;
    assert_eq!(outcome.end, ProcessEnd::Stopped("enough".to_owned()));
    assert_reaped(&pid_file);
}

#[tokio::test]
async fn a_descendant_that_scrubs_its_mark_is_stopped_too() {
    become_subreaper().expect("the kernel lets a process reap its orphans");
    let directory = tempfile::tempdir().expect("a temporary directory");
    let pid_file = directory.path().join("pid");
    // `env -i` drops the mark every descendant inherits. It is stopped once no child that
    // started before it runs: at once when this test runs alone, or when the other tests' children
    // that started before it have ended.
    let spec = shell(&format!(
        "env -i setsid sh -c 'echo $$ > {p}.tmp; mv {p}.tmp {p}; exec sleep 300' & \
         while [ ! -e {p} ]; do sleep 0.01; done; echo bye",
        p = pid_file.display(),
    ));
    let (outcome, _) = run(spec).await;
    assert_eq!(outcome.end, ProcessEnd::Exited(0));
    let pid = written_pid(&pid_file);
    let deadline = Instant::now() + PATIENCE;
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "process {pid} was not stopped and reaped");
        // Each run ends with a sweep: the one after the other tests' earlier children have
        // ended stops it, whichever test happens to finish last.
        let _ = run(shell("true")).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
