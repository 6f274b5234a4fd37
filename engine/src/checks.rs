//! Running a check command: a workstream's `test` in its worktree, or the workflow's `verify`
//! on a merged tree. Both are `sh -c COMMAND` with the agents' clean environment, their
//! output appended to a log, stoppable, and reported as a [`TestResult`].

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use crate::agent::environment::{Redactor, secret_values};
use crate::agent::process::{Control, OutputLine, ProcessEnd, ProcessSpec, Sandboxing, each_line, run_process};

/// The result of a workstream's `test` or the workflow's `verify`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TestResult {
    pub passed: bool,
    pub command: String,
    pub detail: String,
    /// The end of its output (a few KB), for the agent that must fix what it found.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tail: String,
}

impl TestResult {
    /// A check that failed without output of its own to show: it could not start, or
    /// something before it failed, as `detail` says.
    pub fn failed(command: &str, detail: String) -> TestResult {
        TestResult {
            passed: false,
            command: command.to_string(),
            detail,
            tail: String::new(),
        }
    }
}

/// How many of a failing check's last lines its result keeps, for the agent that fixes it.
const TAIL_LINES: usize = 60;
/// At most this many bytes of them.
const TAIL_BYTES: usize = 6000;
/// The most characters kept of one line of it.
const TAIL_LINE: usize = 400;

/// One run of a check command.
pub struct Check<'a> {
    pub command: &'a str,
    /// Where it runs.
    pub dir: &'a Path,
    /// Its whole environment.
    pub env: BTreeMap<String, String>,
    /// Where its output goes.
    pub log_path: PathBuf,
    /// A line written to the log before it starts.
    pub header: Option<String>,
    pub timeout: Option<Duration>,
    pub grace: Duration,
    /// The sandbox it runs in (it runs code an agent wrote); `None` runs it unconfined.
    pub sandbox: Option<Sandboxing>,
    /// Values kept out of its log besides those [`secret_values`] finds in `env` (declared
    /// secrets).
    pub secrets: Vec<String>,
    /// Kills it at once while it is being stopped, when it turns true.
    pub hurry: Option<watch::Receiver<bool>>,
}

/// Runs a check to its end; `None` when `stop` ended it.
pub async fn run_check(check: Check<'_>, stop: watch::Receiver<bool>) -> Option<TestResult> {
    let command = check.command;
    let mut spec = ProcessSpec::new("sh", vec!["-c".to_string(), command.to_string()], check.dir);
    // The check sees the agent's variables: keep their secrets out of the log too.
    spec.secrets = secret_values(&check.env);
    spec.secrets.extend(check.secrets);
    spec.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    spec.secrets.dedup();
    spec.env = check.env;
    spec.log_path = Some(check.log_path.clone());
    spec.grace = check.grace;
    spec.timeout = check.timeout;
    spec.sandbox = check.sandbox;
    spec.hurry = check.hurry;
    if let Some(header) = &check.header {
        let _ = append_line(&check.log_path, header);
    }
    let redactor = Redactor::new(&spec.secrets);
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut tail_bytes = 0;
    let outcome = run_process(
        spec,
        each_line(|line: OutputLine<'_>| {
            let text = redactor.redact(line.text());
            let kept: String = text.chars().take(TAIL_LINE).collect();
            tail_bytes += kept.len() + 1;
            tail.push_back(kept);
            while tail.len() > TAIL_LINES || tail_bytes > TAIL_BYTES {
                if let Some(dropped) = tail.pop_front() {
                    tail_bytes -= dropped.len() + 1;
                }
            }
            Control::Continue
        }),
        stop,
    )
    .await;
    let tail = Vec::from(tail).join("\n");
    match outcome {
        Ok(o) if o.end == ProcessEnd::Cancelled => None,
        Ok(o) => {
            let passed = o.end.is_success();
            // A long command is named by its start: the whole of it is in `command`.
            let named = match command.char_indices().nth(48) {
                Some((at, _)) => format!("{}…", &command[..at]),
                None => command.to_string(),
            };
            // The last line is redacted and a few KiB at most.
            let detail = match (passed, o.last_line.as_deref()) {
                (true, _) => "passed".to_string(),
                (false, None) => format!("`{named}` {}", o.end),
                (false, Some(last)) => format!("`{named}` {}: {last}", o.end),
            };
            Some(TestResult {
                passed,
                command: command.to_string(),
                detail,
                tail: if passed { String::new() } else { tail },
            })
        }
        Err(e) => Some(TestResult::failed(command, format!("cannot run `{command}`: {e}"))),
    }
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{line}")
}
