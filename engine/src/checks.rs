//! Running a check command: a workstream's `test` in its worktree, or the workflow's `verify`
//! on a merged tree. Both are `sh -c COMMAND` with the agents' clean environment, their
//! output appended to a log, stoppable, and reported as a [`TestResult`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use crate::agent::environment::secret_values;
use crate::agent::process::{Control, OutputLine, ProcessEnd, ProcessSpec, run_process};

/// The result of a workstream's `test` or the workflow's `verify`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TestResult {
    pub passed: bool,
    pub command: String,
    pub detail: String,
}

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
}

/// Runs a check to its end; `None` when `stop` ended it.
pub async fn run_check(check: Check<'_>, stop: watch::Receiver<bool>) -> Option<TestResult> {
    let command = check.command;
    let mut spec = ProcessSpec::new("sh", vec!["-c".to_string(), command.to_string()], check.dir);
    // The check sees the agent's variables: keep their secrets out of the log too.
    spec.secrets = secret_values(&check.env);
    spec.env = check.env;
    spec.log_path = Some(check.log_path.clone());
    spec.grace = check.grace;
    spec.timeout = check.timeout;
    if let Some(header) = &check.header {
        let _ = append_line(&check.log_path, header);
    }
    let outcome = run_process(spec, |_: OutputLine<'_>| Control::Continue, stop).await;
    match outcome {
        Ok(o) if o.end == ProcessEnd::Cancelled => None,
        Ok(o) => {
            let passed = o.end.is_success();
            // The last line is redacted and a few KiB at most.
            let detail = match (passed, o.last_line) {
                (true, _) => "passed".to_string(),
                (false, None) => format!("`{command}` {}", o.end),
                (false, Some(last)) => format!("`{command}` {}: {last}", o.end),
            };
            Some(TestResult {
                passed,
                command: command.to_string(),
                detail,
            })
        }
        Err(e) => Some(TestResult {
            passed: false,
            command: command.to_string(),
            detail: format!("cannot run `{command}`: {e}"),
        }),
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
