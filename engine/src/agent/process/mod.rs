//! Runs one agent process to its end, the way an agent must be run.
//!
//! [`run_process`] starts the program of a [`ProcessSpec`] in its own process group with a
//! complete, explicit environment and stdin either written then closed or `/dev/null`. It
//! reads stdout and stderr at the same time, hands the lines of each read to a callback, and
//! appends them (with secrets redacted) to a log file. It ends the child when it exits, and
//! stops it when the wall-clock limit passes, when no output arrives for the idle limit, when
//! the callback asks, or when the cancel channel turns true (Ctrl-C).
//!
//! An agent is untrusted: whatever it prints, flow's memory stays bounded and it keeps pace.
//! - `lines`: a line is held up to [`LINE_LIMIT`] (1 MiB) for the callback, which is told
//!   when a line was cut; the rest of the line streams to the log. Output that is not UTF-8 is
//!   decoded lossily.
//! - `log`: the log is written through a buffer on a thread of its own at the disk's speed,
//!   flushed when the output pauses so `flow logs -f` stays live, and capped by
//!   [`ProcessSpec::log_limit`] (head, marker line, tail).
//! - [`ProcessOutcome::last_line`] and [`ProcessOutcome::stderr_tail`] hold a few KiB at most
//!   ([`TEXT_LIMIT`]), cut with a visible `…`, redacted before they are cut.
//! - Memory: each reader holds at most one line's limit plus a 256 KiB block of an unfinished
//!   line. The pipes are read by the task that runs the callback, when it is ready for more, so
//!   no batch waits for the callback; at most 4 handfuls of batches wait for the log's writer,
//!   each about 64 KiB, or one batch (a block and at most one cut line's head) more. About a
//!   MiB for a fast stream of lines; about 25 MiB at worst per process (lines of more than
//!   1 MiB of invalid UTF-8, a disk that lags).
//! - `reaper`: nothing the child started outlives it, not even a process that left its group;
//!   each child carries a mark, `FLOW_PROCESS`, in its environment for that.
//!
//! Stopping is the same for every reason: SIGINT to the whole process group, a grace period,
//! then SIGKILL to the group. When the leader has exited, whatever is left of its group
//! (grandchildren it started in the background) is killed too, then the orphans it left (see
//! `reaper`), and the output is read until the pipes close. A process that still holds them
//! open cannot make the run hang: once they stay silent for half a second (five seconds at
//! most), only what the pipes hold is read, with reads that do not wait, and the reading stops.
//! So what the child wrote before it exited is always read, however late a busy machine lets
//! flow run; the timers only bound what an escaped process writes after it. If the
//! returned future is dropped before it completes, the group is killed at once (and what
//! escaped it, at the next sweep).
//!
//! A bare program name is looked up in the child's own PATH, with the `which` crate, before the
//! start: so the standard library starts it with posix_spawn rather than fork, whose cost grows
//! with flow's memory. The answers are kept per program and PATH by a small cache written here: one lookup costs about 14 µs with an 11-entry PATH
//! (10,000 `which_in` calls timed in a loop), which a 10,000-step run would otherwise pay at
//! every step; on `bench/scheduler.sh`'s 10,000 no-op workstreams that is about 1% of the CPU
//! time, under the run-to-run noise (wall and CPU ratios without the cache against with it:
//! 1.02 and 0.99, medians of 10 alternating runs each).

mod lines;
mod log;
mod reaper;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use rustix::process::{Pid, Signal, getpgrp, kill_process_group};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use self::lines::LINE_LIMIT;
use self::lines::{Batch, PieceKind, PipeReader, Pipes};
use self::log::{LogWriter, secret_safe_cut};
pub(crate) use self::reaper::start_time;
pub use self::reaper::{MARK_VARIABLE, become_subreaper};
use super::environment::Redactor;
use crate::sandbox::{Policy, Wrapper, wrap};

/// The grace period [`ProcessSpec::new`] gives a child between SIGINT and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The most [`ProcessSpec::new`] lets one process add to its log: 64 MiB.
pub const DEFAULT_LOG_LIMIT: u64 = 64 << 20;

/// About the most bytes [`ProcessOutcome::last_line`] and [`ProcessOutcome::stderr_tail`] hold
/// (a little more when a secret straddles the cut, so that it is hidden whole).
pub const TEXT_LIMIT: usize = 4096;

/// How many stderr lines [`ProcessOutcome::stderr_tail`] keeps.
const STDERR_TAIL_LINES: usize = 20;

/// How long the output pipes may stay silent, without closing, after the leader has exited
/// and its group was killed, before the readers take only what they hold: only a process that
/// escaped the group can hold them open.
const DRAIN_IDLE: Duration = Duration::from_millis(500);

/// How long output is waited for at most after the leader has exited and its group was
/// killed; what the pipes hold then is still read.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The PATH a program is looked up in when the child's environment has none.
const DEFAULT_PATH: &str = "/usr/bin:/bin";

/// Describes one child process to run: what, where, with what input, and within which limits.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// The program, looked up in the `PATH` of `env` when it has no slash.
    pub program: String,
    /// The arguments, without the program.
    pub args: Vec<String>,
    /// The working directory of the child.
    pub cwd: PathBuf,
    /// The complete environment of the child: nothing else is inherited, but for the
    /// [`MARK_VARIABLE`] that [`run_process`] adds.
    pub env: BTreeMap<String, String>,
    /// Text written to the child's stdin, which is then closed; `None` gives it `/dev/null`.
    pub stdin: Option<String>,
    /// A file every output line is appended to (stderr lines prefixed `[stderr] `), created
    /// with the first line.
    pub log_path: Option<PathBuf>,
    /// About the most this process adds to the log: past it, the log keeps the first and the
    /// last half of the output, with a line saying how much was dropped in between. `None`
    /// keeps everything.
    pub log_limit: Option<u64>,
    /// Values replaced by `***` in the lines written to the log.
    pub secrets: Vec<String>,
    /// The wall-clock limit, after which the child is stopped as [`ProcessEnd::TimedOut`].
    pub timeout: Option<Duration>,
    /// The longest time without output, after which the child is stopped as
    /// [`ProcessEnd::Hung`].
    pub idle_timeout: Option<Duration>,
    /// How long the child may take to exit after SIGINT before its group is SIGKILLed.
    pub grace: Duration,
    /// The kernel sandbox the child starts in, through a wrapper program; `None` starts it
    /// unconfined.
    pub sandbox: Option<Sandboxing>,
    /// Turning true while the child is being stopped kills it at once, without the rest of
    /// its grace (a second Ctrl-C); true already when it is stopped, it gets no grace.
    pub hurry: Option<watch::Receiver<bool>>,
}

/// Says how a child is confined: the policy, and the wrapper program that enters it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandboxing {
    /// Where the child may write and connect.
    pub policy: Policy,
    /// The program that confines itself and then becomes the child.
    pub wrapper: Wrapper,
    /// The child's own temporary folder, writable in the policy: its `TMPDIR`.
    pub tmpdir: PathBuf,
    /// For a child that commits: the object folder its git writes to, the shared store read
    /// only (set in its environment).
    pub git_objects: Option<crate::sandbox::GitObjects>,
}

impl ProcessSpec {
    /// Creates a spec that runs `program` with `args` in `cwd`, with an empty environment,
    /// no stdin, no log (limited to [`DEFAULT_LOG_LIMIT`] once set), no time limits and the
    /// [`DEFAULT_GRACE`] period.
    pub fn new(program: impl Into<String>, args: Vec<String>, cwd: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args,
            cwd: cwd.into(),
            env: BTreeMap::new(),
            stdin: None,
            log_path: None,
            log_limit: Some(DEFAULT_LOG_LIMIT),
            secrets: Vec::new(),
            timeout: None,
            idle_timeout: None,
            grace: DEFAULT_GRACE,
            sandbox: None,
            hurry: None,
        }
    }
}

/// Names the stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The child's standard output.
    Stdout = 0,
    /// The child's standard error.
    Stderr = 1,
}

/// One line of the child's output, without its line ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLine<'a> {
    /// The stream the line came from.
    pub stream: Stream,
    /// The line, decoded from UTF-8 lossily; its first [`LINE_LIMIT`] bytes at most.
    pub text: &'a str,
    /// Whether the line was longer than [`LINE_LIMIT`] and `text` is only its start (the
    /// whole line goes to the log).
    pub cut: bool,
}

impl<'a> OutputLine<'a> {
    /// Returns the text of the line, whichever stream it came from.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Tells whether the line came from stderr.
    pub fn is_stderr(&self) -> bool {
        self.stream == Stream::Stderr
    }
}

/// What one read of one of the child's streams completed, as the callback sees it: the lines
/// that ended in it, and the start of a line that passed [`LINE_LIMIT`] in it (cut).
///
/// A child printing as fast as it can makes reads of tens of kilobytes and hundreds of short
/// lines each: a callback that needs only the last line ([`Output::last_line`]) or all of the
/// text ([`Output::push_text`]) takes it without a step per line.
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    batch: &'a Batch,
}

impl<'a> Output<'a> {
    /// The stream the output came from.
    pub fn stream(&self) -> Stream {
        self.batch.stream
    }

    /// Returns the lines, in the order they were written.
    pub fn lines(&self) -> impl DoubleEndedIterator<Item = OutputLine<'a>> + 'a {
        let stream = self.batch.stream;
        self.batch.pieces().filter_map(move |(kind, text)| match kind {
            PieceKind::Line => Some(OutputLine {
                stream,
                text,
                cut: false,
            }),
            PieceKind::Head => Some(OutputLine {
                stream,
                text,
                cut: true,
            }),
            PieceKind::Rest | PieceKind::RestEnd | PieceKind::Lines => None,
        })
    }

    /// Returns the last line that is not blank, if any.
    ///
    /// Found from the end of the text, not line by line: a read of thousands of blank lines
    /// costs one pass over its bytes.
    pub fn last_line(&self) -> Option<OutputLine<'a>> {
        let stream = self.batch.stream;
        for (kind, text) in self.batch.runs().rev() {
            match kind {
                PieceKind::Lines => {
                    // Up to the last character that is not white space: it is in that line.
                    let body = text.trim_end();
                    if body.is_empty() {
                        continue;
                    }
                    let start = memchr::memrchr(b'\n', body.as_bytes()).map_or(0, |at| at + 1);
                    let end = memchr::memchr(b'\n', &text.as_bytes()[start..]).map_or(text.len(), |at| start + at);
                    let text = &text[start..end];
                    return Some(OutputLine {
                        stream,
                        text,
                        cut: false,
                    });
                }
                PieceKind::Line | PieceKind::Head if !text.trim().is_empty() => {
                    let cut = kind == PieceKind::Head;
                    return Some(OutputLine { stream, text, cut });
                }
                _ => {}
            }
        }
        None
    }

    /// Appends the lines to `text`, each ended by `\n`, with `redactor`'s secrets hidden.
    pub fn push_text(&self, text: &mut String, redactor: &Redactor) {
        for (kind, run) in self.batch.runs() {
            match kind {
                PieceKind::Lines => text.push_str(&redactor.redact(run)),
                PieceKind::Line | PieceKind::Head => {
                    text.push_str(&redactor.redact(run));
                    text.push('\n');
                }
                PieceKind::Rest | PieceKind::RestEnd => {}
            }
        }
    }
}

/// Calls `on_line` for each line of an [`Output`] and returns the first [`Control::Stop`] it
/// gave, if any: a callback for [`run_process`] that takes the output line by line.
pub fn each_line(
    mut on_line: impl FnMut(OutputLine<'_>) -> Control + Send,
) -> impl FnMut(Output<'_>) -> Control + Send {
    move |output: Output<'_>| {
        let mut control = Control::Continue;
        for line in output.lines() {
            let said = on_line(line);
            if control == Control::Continue {
                control = said;
            }
        }
        control
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
    /// The last 20 stderr lines, joined by newlines, secrets redacted; its last [`TEXT_LIMIT`]
    /// bytes, and a line its first, with `…` where something was cut.
    pub stderr_tail: String,
    /// The last output line that is not blank, from either stream, secrets redacted; its first
    /// [`TEXT_LIMIT`] bytes, ending with `…` when cut. Within a stream it is the last line
    /// written; between the two streams, two pipes read at the same time, nothing says which
    /// line was written last, and it is the last one read.
    pub last_line: Option<String>,
}

/// Runs the child described by `spec` to its end, handing its output to `on_output` a read at
/// a time ([`each_line`] makes it a line at a time).
///
/// `on_output` sees every line, in the order they arrived, including those written while the
/// child is being stopped; what it returns is only heeded while the child runs normally. A line
/// longer than [`LINE_LIMIT`] reaches it once, cut, as soon as that much has arrived.
/// `cancel` turning true stops the child and ends it as [`ProcessEnd::Cancelled`]; if it is
/// already true, no process is started. When the leader of the group has exited, the rest of
/// its group is SIGKILLed, and so are its descendants that left the group when this process
/// is a subreaper ([`become_subreaper`]): none is left when this returns.
///
/// # Errors
///
/// Fails when the program cannot be started (the message names the program), when waiting for
/// the child fails, and when the log cannot be opened or written to: in that last case the
/// child is stopped first, as with [`Control::Stop`]. The log is created with the first output;
/// a child that prints nothing leaves no log.
pub async fn run_process(
    mut spec: ProcessSpec,
    mut on_output: impl FnMut(Output<'_>) -> Control + Send,
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
    let registration = reaper::Registration::new();
    let mut command = match &spec.sandbox {
        // The wrapper checks everything it can before anything starts; what it cannot foresee
        // makes it exit with `WRAPPER_FAILED` and a line on stderr, never running unconfined.
        Some(sandboxing) => {
            // Unconfined, a missing program fails the spawn; the wrapper would only exit 126.
            if !spec.cwd.join(&program).is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("cannot start `{}` in {}: not found", spec.program, spec.cwd.display()),
                ));
            }
            let (command, _) = wrap(&sandboxing.wrapper, &program, &sandboxing.policy).map_err(|error| {
                io::Error::other(format!("cannot confine `{}` in its sandbox: {error}", spec.program))
            })?;
            command
        }
        None => Command::new(&program),
    };
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&spec.env)
        .envs(spec.sandbox.as_ref().map(|s| ("TMPDIR", &s.tmpdir)))
        .envs(
            spec.sandbox
                .iter()
                .filter_map(|s| s.git_objects.as_ref())
                .flat_map(crate::sandbox::GitObjects::env),
        )
        .env(MARK_VARIABLE, &registration.mark)
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
    registration.started(child.id());
    let mut group = ProcessGroup::of(child.id())?;

    let mut tasks = AbortOnDrop(Vec::new());
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), spec.stdin.take()) {
        tasks.0.push(tokio::spawn(async move {
            // A child that exits without reading its input breaks the pipe: nothing to report.
            let _ = pipe.write_all(input.as_bytes()).await;
            let _ = pipe.shutdown().await;
        }));
    }
    let mut pipes = Pipes {
        stdout: child.stdout.take().map(|pipe| PipeReader::new(pipe, Stream::Stdout)),
        stderr: child.stderr.take().map(|pipe| PipeReader::new(pipe, Stream::Stderr)),
    };

    let mut recorder = Recorder::new(spec.log_path.take(), spec.log_limit, std::mem::take(&mut spec.secrets));
    let deadline = spec.timeout.map(|timeout| started + timeout);
    let mut idle_deadline = spec.idle_timeout.map(|idle| Instant::now() + idle);
    let mut stopping: Option<Stopping> = None;
    let mut hurry = spec.hurry.take();
    let mut cancel_open = true;

    let status = loop {
        let kill_at = stopping
            .as_ref()
            .and_then(|stop| (!stop.killed).then_some(stop.kill_at));
        let flush_at = recorder.flush_at();
        let mut stop_with = None;
        tokio::select! {
            status = child.wait() => break status?,
            Some(batch) = pipes.next(), if !pipes.is_done() => {
                if let Some(idle) = spec.idle_timeout {
                    idle_deadline = Some(Instant::now() + idle);
                }
                let control = recorder.record(batch, &mut on_output).await;
                if let Some(error) = &recorder.log_error {
                    let reason = format!("cannot write the log: {error}");
                    stop_with = Some(ProcessEnd::Stopped(reason));
                } else if let Control::Stop(reason) = control {
                    stop_with = Some(ProcessEnd::Stopped(reason));
                }
            }
            () = sleep_until(flush_at), if flush_at.is_some() => recorder.flush().await,
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
            Some(()) = hurried(&mut hurry), if kill_at.is_some() => {
                {
                    group.signal(Signal::KILL);
                    if let Some(stop) = &mut stopping {
                        stop.killed = true;
                    }
                }
            }
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
            // Hurried already: no grace.
            let grace = if hurry.as_mut().is_some_and(|h| *h.borrow_and_update()) {
                Duration::ZERO
            } else {
                spec.grace
            };
            stopping = Some(Stopping {
                end,
                kill_at: Instant::now() + grace,
                killed: false,
            });
        }
    };

    // The leader is gone: kill what is left of its group and what escaped it, then read what is
    // still buffered.
    group.signal(Signal::KILL);
    group.release();
    drop(registration);
    reaper::sweep().await;
    // The timers only decide how long a process that escaped may go on writing: what the pipes
    // hold when they fire is read all the same, however late the readers get to run.
    let drain_limit = Instant::now() + DRAIN_LIMIT;
    while !pipes.is_done() {
        let drain_deadline = drain_limit.min(Instant::now() + DRAIN_IDLE);
        tokio::select! {
            // Asked first: a stream that never pauses must still end.
            biased;
            () = tokio::time::sleep_until(drain_deadline) => {
                for batch in pipes.empty() {
                    recorder.record(batch, &mut on_output).await;
                }
            }
            batch = pipes.next() => match batch {
                None => break,
                Some(batch) => {
                    recorder.record(batch, &mut on_output).await;
                }
            },
        }
    }
    recorder.finish_log().await;
    if let Some(error) = recorder.log_error.take() {
        return Err(error);
    }
    let end = match stopping {
        Some(stop) => stop.end,
        None => ProcessEnd::from_status(status),
    };
    Ok(recorder.finish(end, started.elapsed()))
}

/// Resolves once `hurry` turns true; never without one, or once its sender is gone.
async fn hurried(hurry: &mut Option<watch::Receiver<bool>>) -> Option<()> {
    match hurry {
        Some(receiver) => {
            let hurried = receiver.wait_for(|&now| now).await.is_ok();
            if hurried {
                Some(())
            } else {
                std::future::pending().await
            }
        }
        None => std::future::pending().await,
    }
}

/// Remembers why a child is being stopped and when it gets SIGKILL.
#[derive(Debug)]
struct Stopping {
    end: ProcessEnd,
    kill_at: Instant,
    killed: bool,
}

/// A line kept for the outcome: its first [`TEXT_LIMIT`] bytes and as many as the longest
/// secret more (so a secret at the cut can still be found whole), and whether it was cut.
#[derive(Debug)]
struct Kept {
    text: String,
    cut: bool,
}

impl Kept {
    /// Keeps the first `room` bytes of `text`, a line that was already `cut` or not.
    fn new(text: &str, cut: bool, room: usize) -> Self {
        let end = text.floor_char_boundary(room);
        Self {
            text: text[..end].to_owned(),
            cut: cut || end < text.len(),
        }
    }

    /// Returns the line with `secrets` redacted, then cut to about [`TEXT_LIMIT`] bytes, with
    /// `…` when anything was cut.
    fn shown(&self, secrets: &[String], redactor: &Redactor) -> String {
        // Cut where no secret straddles, then redact: a secret is never shown in part.
        let end = secret_safe_cut(&self.text, TEXT_LIMIT, secrets);
        let mut shown = redactor.redact(&self.text[..end]).into_owned();
        if self.cut || end < self.text.len() {
            shown.push('…');
        }
        shown
    }
}

/// Handles each batch: the callback, the log, the stderr tail and the last line.
///
/// The log is created with the first output, so a quiet step (thousands of no-op steps in a
/// large workflow) costs no file and no writer.
struct Recorder {
    log_path: Option<PathBuf>,
    log_limit: Option<u64>,
    log: Option<LogWriter>,
    log_error: Option<io::Error>,
    secrets: Vec<String>,
    /// How many bytes of a line are kept for the outcome.
    room: usize,
    stderr_tail: VecDeque<Kept>,
    last_line: Option<Kept>,
}

impl Recorder {
    /// Creates a recorder writing to the log at `log_path`, hiding `secrets` in it.
    fn new(log_path: Option<PathBuf>, log_limit: Option<u64>, secrets: Vec<String>) -> Self {
        let longest = secrets.iter().map(String::len).max().unwrap_or(0);
        Self {
            log_path,
            log_limit,
            log: None,
            log_error: None,
            secrets,
            room: TEXT_LIMIT + longest,
            stderr_tail: VecDeque::with_capacity(STDERR_TAIL_LINES + 1),
            last_line: None,
        }
    }

    /// Passes `batch` to `on_output`, remembers its last lines, and hands it to the log;
    /// returns what the callback said.
    ///
    /// A failed log write is kept in `log_error`, and nothing more is written to the log.
    async fn record(&mut self, batch: Batch, on_output: &mut (impl FnMut(Output<'_>) -> Control + Send)) -> Control {
        let output = Output { batch: &batch };
        let control = on_output(output);
        if let Some(line) = output.last_line() {
            self.last_line = Some(Kept::new(line.text, line.cut, self.room));
        }
        if batch.stream == Stream::Stderr {
            // Only the last lines of a batch can stay in the tail: copy no others.
            let newest: Vec<Kept> = output
                .lines()
                .rev()
                .take(STDERR_TAIL_LINES)
                .map(|line| Kept::new(line.text, line.cut, self.room))
                .collect();
            for line in newest.into_iter().rev() {
                if self.stderr_tail.len() == STDERR_TAIL_LINES {
                    self.stderr_tail.pop_front();
                }
                self.stderr_tail.push_back(line);
            }
        }
        self.write_log(batch).await;
        control
    }

    /// Hands `batch` to the log's writer, starting it with the first output.
    async fn write_log(&mut self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        if self.log.is_none()
            && self.log_error.is_none()
            && let Some(path) = self.log_path.take()
        {
            self.log = Some(LogWriter::start(path, self.log_limit, self.secrets.clone()));
        }
        if let Some(log) = &mut self.log
            && !log.write(batch).await
        {
            self.log_failed().await;
        }
    }

    /// Returns when buffered output must reach the log.
    fn flush_at(&self) -> Option<Instant> {
        self.log.as_ref().and_then(LogWriter::flush_at)
    }

    /// Has the log's writer write what it buffers.
    async fn flush(&mut self) {
        if let Some(log) = &mut self.log
            && !log.flush().await
        {
            self.log_failed().await;
        }
    }

    /// Waits for the log to be complete, keeping its error if it failed.
    async fn finish_log(&mut self) {
        if let Some(log) = self.log.take()
            && let Err(error) = log.finish().await
        {
            self.log_error.get_or_insert(error);
        }
    }

    /// Ends the log after its writer stopped taking output, which only an error does.
    async fn log_failed(&mut self) {
        self.finish_log().await;
        self.log_error
            .get_or_insert_with(|| io::Error::other("the log writer stopped"));
    }

    /// Builds the outcome, with secrets redacted from the remembered lines.
    fn finish(self, end: ProcessEnd, duration: Duration) -> ProcessOutcome {
        let redactor = Redactor::new(&self.secrets);
        let lines: Vec<String> = self
            .stderr_tail
            .iter()
            .map(|line| line.shown(&self.secrets, &redactor))
            .collect();
        let mut stderr_tail = lines.join("\n");
        if stderr_tail.len() > TEXT_LIMIT {
            let start = stderr_tail.ceil_char_boundary(stderr_tail.len() - TEXT_LIMIT);
            stderr_tail = format!("…{}", &stderr_tail[start..]);
        }
        ProcessOutcome {
            end,
            duration,
            stderr_tail,
            last_line: self.last_line.map(|line| line.shown(&self.secrets, &redactor)),
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
