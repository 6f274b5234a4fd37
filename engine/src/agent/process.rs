//! Runs one agent process to its end, the way an agent must be run.
//!
//! [`run_process`] starts the program of a [`ProcessSpec`] in its own process group with a
//! complete, explicit environment and stdin either written then closed or `/dev/null`. It
//! reads stdout and stderr line by line at the same time, hands every line to a callback, and
//! appends it (with secrets redacted) to a log file. It ends the child when it exits, and
//! stops it when the wall-clock limit passes, when no line arrives for the idle limit, when
//! the callback asks, or when the cancel channel turns true (Ctrl-C).
//!
//! Stopping is the same for every reason: SIGINT to the whole process group, a grace period,
//! then SIGKILL to the group. When the leader has exited, whatever is left of its group
//! (grandchildren it started in the background) is killed too, and the output still buffered
//! is read until the pipes close, or stay silent for half a second (five seconds at most), so
//! a grandchild that escaped the group and holds the pipes open cannot make the run hang. If
//! the returned future is dropped before it completes, the group is killed at once.
//!
//! A bare program name is looked up in the child's own PATH, with the `which` crate, before the
//! start: so the standard library starts it with posix_spawn rather than fork, whose cost grows
//! with flow's memory. The answers are kept per program and PATH by a small cache written here: one lookup costs about 14 µs with an 11-entry PATH
//! (10,000 `which_in` calls timed in a loop), which a 10,000-step run would otherwise pay at
//! every step; on `bench/scheduler.sh`'s 10,000 no-op workstreams that is about 1% of the CPU
//! time, under the run-to-run noise (wall and CPU ratios without the cache against with it:
//! 1.02 and 0.99, medians of 10 alternating runs each).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use rustix::process::{Pid, Signal, getpgrp, kill_process_group};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::environment::redact;

/// The grace period [`ProcessSpec::new`] gives a child between SIGINT and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How many stderr lines [`ProcessOutcome::stderr_tail`] keeps.
const STDERR_TAIL_LINES: usize = 20;

/// How long the output pipes may stay silent, without closing, after the leader has exited
/// and its group was killed: only a process that escaped the group can hold them open.
const DRAIN_IDLE: Duration = Duration::from_millis(500);

/// How long output is read at most after the leader has exited and its group was killed.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The PATH a program is looked up in when the child's environment has none.
const DEFAULT_PATH: &str = "/usr/bin:/bin";

/// How many lines the readers may queue before they stop reading (and the child blocks).
const LINE_QUEUE: usize = 256;

/// Describes one child process to run: what, where, with what input, and within which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program, looked up in the `PATH` of `env` when it has no slash.
    pub program: String,
    /// The arguments, without the program.
    pub args: Vec<String>,
    /// The working directory of the child.
    pub cwd: PathBuf,
    /// The complete environment of the child: nothing else is inherited.
    pub env: BTreeMap<String, String>,
    /// Text written to the child's stdin, which is then closed; `None` gives it `/dev/null`.
    pub stdin: Option<String>,
    /// A file every output line is appended to (stderr lines prefixed `[stderr] `), created
    /// with the first line.
    pub log_path: Option<PathBuf>,
    /// Values replaced by `***` in the lines written to the log.
    pub secrets: Vec<String>,
    /// The wall-clock limit, after which the child is stopped as [`ProcessEnd::TimedOut`].
    pub timeout: Option<Duration>,
    /// The longest time without an output line, after which the child is stopped as
    /// [`ProcessEnd::Hung`].
    pub idle_timeout: Option<Duration>,
    /// How long the child may take to exit after SIGINT before its group is SIGKILLed.
    pub grace: Duration,
}

impl ProcessSpec {
    /// Creates a spec that runs `program` with `args` in `cwd`, with an empty environment,
    /// no stdin, no log, no limits and the [`DEFAULT_GRACE`] period.
    pub fn new(program: impl Into<String>, args: Vec<String>, cwd: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args,
            cwd: cwd.into(),
            env: BTreeMap::new(),
            stdin: None,
            log_path: None,
            secrets: Vec::new(),
            timeout: None,
            idle_timeout: None,
            grace: DEFAULT_GRACE,
        }
    }
}

/// One line of the child's output, without its line ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLine<'a> {
    /// A line the child wrote to stdout.
    Stdout(&'a str),
    /// A line the child wrote to stderr.
    Stderr(&'a str),
}

impl<'a> OutputLine<'a> {
    /// Returns the text of the line, whichever stream it came from.
    pub fn text(&self) -> &'a str {
        match self {
            OutputLine::Stdout(text) | OutputLine::Stderr(text) => text,
        }
    }
}

/// Tells [`run_process`] what to do after a line has been handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Keeps the child running.
    Continue,
    /// Stops the child (SIGINT, grace, SIGKILL); it ends as [`ProcessEnd::Stopped`] with this
    /// reason.
    Stop(String),
}

/// Says how a child process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEnd {
    /// The child exited on its own with this code.
    Exited(i32),
    /// The child was killed by this signal, not sent by flow.
    Signaled(i32),
    /// The child was stopped because it ran longer than [`ProcessSpec::timeout`].
    TimedOut,
    /// The child was stopped because it wrote nothing for [`ProcessSpec::idle_timeout`].
    Hung,
    /// The child was stopped because the cancel channel turned true.
    Cancelled,
    /// The child was stopped because the line callback returned [`Control::Stop`].
    Stopped(String),
}

impl ProcessEnd {
    /// Tells whether the child exited on its own with code 0.
    pub fn is_success(&self) -> bool {
        matches!(self, ProcessEnd::Exited(0))
    }

    /// Builds the end of a child that exited on its own with `status`.
    fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => ProcessEnd::Exited(code),
            (None, Some(signal)) => ProcessEnd::Signaled(signal),
            // Neither exited nor signaled cannot come from wait(2) without WUNTRACED.
            (None, None) => ProcessEnd::Exited(-1),
        }
    }
}

impl fmt::Display for ProcessEnd {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessEnd::Exited(code) => write!(formatter, "exited with code {code}"),
            ProcessEnd::Signaled(signal) => write!(formatter, "killed by signal {signal}"),
            ProcessEnd::TimedOut => formatter.write_str("timed out"),
            ProcessEnd::Hung => formatter.write_str("hung (no output)"),
            ProcessEnd::Cancelled => formatter.write_str("cancelled"),
            ProcessEnd::Stopped(reason) => write!(formatter, "stopped: {reason}"),
        }
    }
}

/// Reports how a child process ended, how long it ran, and its last words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutcome {
    /// How the child ended.
    pub end: ProcessEnd,
    /// The time from the start of the child to the end of [`run_process`].
    pub duration: Duration,
    /// The last 20 stderr lines, joined by newlines, secrets redacted.
    pub stderr_tail: String,
    /// The last output line that is not blank, from either stream, secrets redacted.
    pub last_line: Option<String>,
}

/// Runs the child described by `spec` to its end, handing each output line to `on_line`.
///
/// `on_line` sees every line, in the order they arrived, including those written while the
/// child is being stopped; what it returns is only heeded while the child runs normally.
/// `cancel` turning true stops the child and ends it as [`ProcessEnd::Cancelled`]; if it is
/// already true, no process is started. When the leader of the group has exited, the rest of
/// its group is SIGKILLed, so no process of the group is left when this returns.
///
/// # Errors
///
/// Fails when the program cannot be started (the message names the program), when waiting for
/// the child fails, and when the log cannot be opened or a line cannot be written to it: in
/// that last case the child is stopped first, as with [`Control::Stop`]. The log is created
/// with the first line of output; a child that prints nothing leaves no log.
pub async fn run_process(
    mut spec: ProcessSpec,
    mut on_line: impl FnMut(OutputLine<'_>) -> Control + Send,
    mut cancel: watch::Receiver<bool>,
) -> io::Result<ProcessOutcome> {
    let started = Instant::now();
    if *cancel.borrow_and_update() {
        return Ok(ProcessOutcome {
            end: ProcessEnd::Cancelled,
            duration: Duration::ZERO,
            stderr_tail: String::new(),
            last_line: None,
        });
    }
    // A program found through the child's own PATH, resolved here: the standard library falls
    // back from posix_spawn to fork when the environment sets PATH and the program is a bare
    // name, and fork's cost grows with flow's memory.
    let program = resolve_program(&spec.program, spec.env.get("PATH").map(String::as_str), &spec.cwd);
    let mut command = Command::new(&program);
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&spec.env)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot start `{}` in {}: {error}", spec.program, spec.cwd.display()),
        )
    })?;
    let mut group = ProcessGroup::of(child.id())?;

    let mut tasks = AbortOnDrop(Vec::new());
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), spec.stdin.take()) {
        tasks.0.push(tokio::spawn(async move {
            // A child that exits without reading its input breaks the pipe: nothing to report.
            let _ = pipe.write_all(input.as_bytes()).await;
            let _ = pipe.shutdown().await;
        }));
    }
    let (sender, mut lines) = mpsc::channel(LINE_QUEUE);
    if let Some(stdout) = child.stdout.take() {
        tasks
            .0
            .push(tokio::spawn(read_lines(stdout, Stream::Stdout, sender.clone())));
    }
    if let Some(stderr) = child.stderr.take() {
        tasks
            .0
            .push(tokio::spawn(read_lines(stderr, Stream::Stderr, sender.clone())));
    }
    drop(sender);

    let mut recorder = Recorder::new(spec.log_path.take(), &spec.secrets);
    let deadline = spec.timeout.map(|timeout| started + timeout);
    let mut idle_deadline = spec.idle_timeout.map(|idle| Instant::now() + idle);
    let mut stopping: Option<Stopping> = None;
    let mut output_open = true;
    let mut cancel_open = true;

    let status = loop {
        let kill_at = stopping
            .as_ref()
            .and_then(|stop| (!stop.killed).then_some(stop.kill_at));
        let mut stop_with = None;
        tokio::select! {
            status = child.wait() => break status?,
            line = lines.recv(), if output_open => match line {
                None => output_open = false,
                Some((stream, text)) => {
                    if let Some(idle) = spec.idle_timeout {
                        idle_deadline = Some(Instant::now() + idle);
                    }
                    let control = recorder.record(stream, text, &mut on_line).await;
                    if let Some(error) = &recorder.log_error {
                        let reason = format!("cannot write the log: {error}");
                        stop_with = Some(ProcessEnd::Stopped(reason));
                    } else if let Control::Stop(reason) = control {
                        stop_with = Some(ProcessEnd::Stopped(reason));
                    }
                }
            },
            () = sleep_until(deadline), if stopping.is_none() => {
                stop_with = Some(ProcessEnd::TimedOut);
            }
            () = sleep_until(idle_deadline), if stopping.is_none() => {
                stop_with = Some(ProcessEnd::Hung);
            }
            changed = cancel.changed(), if stopping.is_none() && cancel_open => match changed {
                Ok(()) if *cancel.borrow_and_update() => stop_with = Some(ProcessEnd::Cancelled),
                Ok(()) => {}
                // Nobody can cancel any more.
                Err(_) => cancel_open = false,
            },
            () = sleep_until(kill_at), if kill_at.is_some() => {
                group.signal(Signal::KILL);
                if let Some(stop) = &mut stopping {
                    stop.killed = true;
                }
            }
        }
        if let Some(end) = stop_with
            && stopping.is_none()
        {
            group.signal(Signal::INT);
            stopping = Some(Stopping {
                end,
                kill_at: Instant::now() + spec.grace,
                killed: false,
            });
        }
    };

    // The leader is gone: kill what is left of its group, then read what is still buffered.
    group.signal(Signal::KILL);
    group.release();
    let drain_limit = Instant::now() + DRAIN_LIMIT;
    while output_open {
        let drain_deadline = drain_limit.min(Instant::now() + DRAIN_IDLE);
        tokio::select! {
            line = lines.recv() => match line {
                None => output_open = false,
                Some((stream, text)) => {
                    recorder.record(stream, text, &mut on_line).await;
                }
            },
            () = tokio::time::sleep_until(drain_deadline) => break,
        }
    }
    drop(tasks);

    if let Some(error) = recorder.log_error.take() {
        let path = spec.log_path.as_deref().unwrap_or(Path::new("the log"));
        return Err(io::Error::new(
            error.kind(),
            format!("cannot write to {}: {error}", path.display()),
        ));
    }
    let end = match stopping {
        Some(stop) => stop.end,
        None => ProcessEnd::from_status(status),
    };
    Ok(recorder.finish(end, started.elapsed()))
}

/// Remembers why a child is being stopped and when it gets SIGKILL.
#[derive(Debug)]
struct Stopping {
    end: ProcessEnd,
    kill_at: Instant,
    killed: bool,
}

/// Names the stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// Handles each line: the callback, the log, the stderr tail and the last line.
///
/// The log is created with the first line, so a quiet step (thousands of no-op steps in a
/// large workflow) costs no file.
struct Recorder<'a> {
    log_path: Option<PathBuf>,
    log: Option<tokio::fs::File>,
    log_error: Option<io::Error>,
    secrets: &'a [String],
    stderr_tail: VecDeque<String>,
    last_line: Option<String>,
}

impl<'a> Recorder<'a> {
    /// Creates a recorder writing to the log at `log_path`, hiding `secrets` in it.
    fn new(log_path: Option<PathBuf>, secrets: &'a [String]) -> Self {
        Self {
            log_path,
            log: None,
            log_error: None,
            secrets,
            stderr_tail: VecDeque::with_capacity(STDERR_TAIL_LINES + 1),
            last_line: None,
        }
    }

    /// Passes one line to `on_line` and the log, and remembers it; returns the callback's word.
    ///
    /// A failed log write is kept in `log_error`, and nothing more is written to the log.
    async fn record(
        &mut self,
        stream: Stream,
        text: String,
        on_line: &mut (impl FnMut(OutputLine<'_>) -> Control + Send),
    ) -> Control {
        let control = on_line(match stream {
            Stream::Stdout => OutputLine::Stdout(&text),
            Stream::Stderr => OutputLine::Stderr(&text),
        });
        if self.log.is_none()
            && self.log_error.is_none()
            && let Some(path) = self.log_path.take()
        {
            match open_log(&path).await {
                Ok(file) => self.log = Some(file),
                Err(error) => self.log_error = Some(error),
            }
        }
        if let Some(file) = &mut self.log {
            let redacted = redact(&text, self.secrets);
            let mut entry = String::with_capacity(redacted.len() + 10);
            if stream == Stream::Stderr {
                entry.push_str("[stderr] ");
            }
            entry.push_str(&redacted);
            entry.push('\n');
            let written = match file.write_all(entry.as_bytes()).await {
                Ok(()) => file.flush().await,
                Err(error) => Err(error),
            };
            if let Err(error) = written {
                self.log = None;
                self.log_error = Some(error);
            }
        }
        if !text.trim().is_empty() {
            self.last_line = Some(text.clone());
        }
        if stream == Stream::Stderr {
            if self.stderr_tail.len() == STDERR_TAIL_LINES {
                self.stderr_tail.pop_front();
            }
            self.stderr_tail.push_back(text);
        }
        control
    }

    /// Builds the outcome, with secrets redacted from the remembered lines.
    fn finish(self, end: ProcessEnd, duration: Duration) -> ProcessOutcome {
        let stderr_tail = Vec::from(self.stderr_tail).join("\n");
        ProcessOutcome {
            end,
            duration,
            stderr_tail: redact(&stderr_tail, self.secrets).into_owned(),
            last_line: self.last_line.map(|line| redact(&line, self.secrets).into_owned()),
        }
    }
}

/// Sends signals to a child's process group, and SIGKILLs it when dropped while still held.
///
/// The id is never 1 (a group signal to 1 reaches every process flow may signal), nor flow's own
/// group: the child was started as the leader of a new group, so its group id is its pid.
struct ProcessGroup {
    id: Pid,
    held: bool,
}

impl ProcessGroup {
    /// Takes hold of the group led by the child with process id `pid`.
    fn of(pid: Option<u32>) -> io::Result<Self> {
        let id = pid
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(Pid::from_raw)
            .filter(|&id| id != Pid::INIT)
            .ok_or_else(|| io::Error::other("the child started without a process id"))?;
        debug_assert_ne!(id, getpgrp(), "the child leads a process group of its own");
        Ok(Self { id, held: true })
    }

    /// Sends `signal` to every process of the group, ignoring a group that is already gone.
    fn signal(&self, signal: Signal) {
        if self.held {
            // Only a group this run created and still holds: once released, the id may be reused.
            let _ = kill_process_group(self.id, signal);
        }
    }

    /// Lets go of the group once it is known to be empty, so that nothing signals a reused id.
    fn release(&mut self) {
        self.held = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::KILL);
    }
}

/// Aborts its tasks when dropped, so no reader outlives the run.
struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Opens `path` for appending, creating it and its directory when missing.
async fn open_log(path: &Path) -> io::Result<tokio::fs::File> {
    let opened = async {
        if let Some(directory) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(directory).await?;
        }
        tokio::fs::OpenOptions::new().create(true).append(true).open(path).await
    };
    opened
        .await
        .map_err(|error| io::Error::new(error.kind(), format!("cannot open the log {}: {error}", path.display())))
}

/// Sends each line of `reader` (lossy UTF-8, line ending removed) to `sender` until the end.
async fn read_lines(reader: impl AsyncRead + Unpin, stream: Stream, sender: mpsc::Sender<(Stream, String)>) {
    let mut reader = BufReader::new(reader);
    loop {
        let mut bytes = Vec::new();
        match reader.read_until(b'\n', &mut bytes).await {
            Ok(0) => return,
            Ok(_) => {
                if bytes.last() == Some(&b'\n') {
                    bytes.pop();
                    if bytes.last() == Some(&b'\r') {
                        bytes.pop();
                    }
                }
                let text = match String::from_utf8(bytes) {
                    Ok(text) => text,
                    Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
                };
                if sender.send((stream, text)).await.is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            // A pipe that cannot be read any more ends like a closed one.
            Err(_) => return,
        }
    }
}

/// Waits until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Finds a bare program name in `path` (the child's PATH, or `/usr/bin:/bin` when it has none)
/// the way a shell would, relative entries (an empty one included) taken from `cwd`; a name with
/// a slash, or one not found, is returned as it is.
fn resolve_program(program: &str, path: Option<&str>, cwd: &Path) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    let path = path.unwrap_or(DEFAULT_PATH);
    let search = || which::which_in(program, Some(path), cwd).unwrap_or_else(|_| PathBuf::from(program));
    // Thousands of steps run the same few programs: look each up once per PATH. A PATH with
    // entries relative to the working folder is searched every time, and so is a program not
    // found (it may be installed meanwhile).
    if path.split(':').any(|entry| !entry.starts_with('/')) {
        return search();
    }
    type Found = HashMap<(String, String), PathBuf>;
    static FOUND: LazyLock<Mutex<Found>> = LazyLock::new(Mutex::default);
    let key = (program.to_owned(), path.to_owned());
    if let Some(found) = FOUND.lock().ok().and_then(|found| found.get(&key).cloned()) {
        return found;
    }
    let found = search();
    if found.is_absolute()
        && let Ok(mut cache) = FOUND.lock()
    {
        cache.insert(key, found.clone());
    }
    found
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Creates the file `dir/name` with the given permission bits, and its folder.
    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a file has a folder")).expect("a folder");
        std::fs::write(&path, "#!/bin/sh\n").expect("a file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("permissions");
        path
    }

    #[test]
    fn a_name_with_a_slash_is_taken_as_it_is() {
        let cwd = tempfile::tempdir().expect("a temporary directory");
        file(cwd.path(), "bin/tool", 0o755);
        for name in ["./tool", "bin/tool", "/no/such/tool"] {
            assert_eq!(resolve_program(name, Some("/usr/bin"), cwd.path()), PathBuf::from(name));
        }
    }

    #[test]
    fn a_bare_name_is_the_first_executable_of_that_name_in_the_path() {
        let first = tempfile::tempdir().expect("a temporary directory");
        let second = tempfile::tempdir().expect("a temporary directory");
        file(first.path(), "tool", 0o644);
        let found = file(second.path(), "tool", 0o755);
        let path = format!("{}:{}", first.path().display(), second.path().display());
        assert_eq!(resolve_program("tool", Some(&path), Path::new("/")), found);
        // Asked again, the answer comes from the cache and is the same.
        assert_eq!(resolve_program("tool", Some(&path), Path::new("/")), found);
    }

    #[test]
    fn empty_and_relative_entries_are_taken_from_the_working_folder() {
        let cwd = tempfile::tempdir().expect("a temporary directory");
        let in_cwd = file(cwd.path(), "here", 0o755);
        let in_tools = file(cwd.path(), "tools/there", 0o755);
        assert_eq!(resolve_program("here", Some(":/usr/bin"), cwd.path()), in_cwd);
        assert_eq!(resolve_program("there", Some("/usr/bin:tools"), cwd.path()), in_tools);
    }

    #[test]
    fn a_name_not_found_is_returned_as_it_is() {
        let empty = tempfile::tempdir().expect("a temporary directory");
        let path = empty.path().display().to_string();
        let name = "flow-no-such-program";
        assert_eq!(resolve_program(name, Some(&path), empty.path()), PathBuf::from(name));
        // Installed later, it is found: a miss is not cached.
        let found = file(empty.path(), name, 0o755);
        assert_eq!(resolve_program(name, Some(&path), empty.path()), found);
    }

    #[test]
    fn without_a_path_the_system_folders_are_searched() {
        let found = resolve_program("sh", None, Path::new("/"));
        assert!(
            [Path::new("/usr/bin/sh"), Path::new("/bin/sh")].contains(&found.as_path()),
            "{}",
            found.display()
        );
    }
}
