//! One step of the merge queue: merge a ready branch into the integration branch in memory,
//! run `verify` on the merged tree in the integration worktree, and roll back on failure.
//!
//! [`merge_and_verify`] is the step itself, shared by `flow run` and `flow merge`;
//! [`merge`] is the scheduler's wrapper that reports it as events.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flow_dsl::Workflow;
use tokio::sync::{mpsc, watch};

use crate::agent::process::{Control, OutputLine, ProcessEnd, ProcessSpec, run_process};
use crate::git::{Git, MergeOutcome, Oid};
use crate::run::job::{Msg, RunContext};
use crate::run::state::{EventKind, Failure, FailureKind, Phase, TestResult};

/// Everything a merge step needs besides the branch.
pub struct Integration<'a> {
    pub git: &'a Git,
    pub workflow: &'a Workflow,
    /// The detached worktree where `verify` runs.
    pub verify_dir: PathBuf,
    /// Where `verify`'s output goes.
    pub log_path: PathBuf,
    /// flow's own environment; `verify` gets the same allowlist agents get.
    pub parent_env: &'a BTreeMap<String, String>,
    pub grace: Duration,
    pub cancel: watch::Receiver<bool>,
    /// Written into merge commit messages.
    pub note: String,
}

/// What a merge step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Integrated {
    /// The branch is in the integration branch, now at `commit` (verified when `verify` is set).
    Merged { commit: Oid, verify: Option<TestResult> },
    /// The branch conflicts; the integration branch did not move.
    Conflict { paths: Vec<String> },
    /// `verify` failed; the integration branch was moved back (unless `rolled_back` is false).
    VerifyFailed { result: TestResult, rolled_back: bool },
    /// Ctrl-C during `verify`: the integration branch was moved back.
    Interrupted,
    /// Git refused or failed.
    Error(String),
}

/// The folder of the integration worktree where `verify` runs.
pub fn integration_dir(worktrees_dir: &Path) -> PathBuf {
    worktrees_dir.join("_integration")
}

/// Merges `result` (the head of workstream `index`) into the integration branch, whose head
/// must be `expected`, then runs `verify` on the merged tree.
pub async fn merge_and_verify(integration: &Integration<'_>, index: usize, expected: Oid, result: Oid) -> Integrated {
    let workflow = integration.workflow;
    let ws = &workflow.workstreams[index];
    let into = workflow.into.clone();
    let message = format!(
        "Merge {} ({}) into {into}\n\n{}",
        workflow.branch_of(ws),
        ws.name,
        integration.note
    );
    let git = integration.git.clone();
    let target = into.clone();
    let outcome =
        tokio::task::spawn_blocking(move || git.merge_into_expecting(&target, expected, result, &message)).await;
    let merged = match outcome {
        Ok(Ok(MergeOutcome::FastForward { to })) => to,
        Ok(Ok(MergeOutcome::Merged { commit })) => commit,
        Ok(Ok(MergeOutcome::UpToDate)) => {
            return Integrated::Merged {
                commit: expected,
                verify: None,
            };
        }
        Ok(Ok(MergeOutcome::Conflict { paths })) => return Integrated::Conflict { paths },
        Ok(Err(e)) => return Integrated::Error(format!("merge failed: {e}")),
        Err(e) => return Integrated::Error(format!("merge stopped: {e}")),
    };
    let Some(command) = &workflow.integrate.verify else {
        return Integrated::Merged {
            commit: merged,
            verify: None,
        };
    };
    let verified = verify(integration, command, merged, &ws.name).await;
    let rollback = |why: &'static str| {
        let git = integration.git.clone();
        let target = into.clone();
        tokio::task::spawn_blocking(move || git.set_branch(&target, expected, Some(merged), why))
    };
    match verified {
        None => {
            let _ = rollback("flow: verify interrupted, roll back").await;
            Integrated::Interrupted
        }
        Some(result) if !result.passed => {
            let rolled_back = matches!(rollback("flow: verify failed, roll back").await, Ok(Ok(())));
            Integrated::VerifyFailed { result, rolled_back }
        }
        Some(result) => Integrated::Merged {
            commit: merged,
            verify: Some(result),
        },
    }
}

/// The scheduler's merge step: runs [`merge_and_verify`] and reports it as events.
pub async fn merge(ctx: Arc<RunContext>, index: usize, expected: Oid, result: Oid, tx: mpsc::UnboundedSender<Msg>) {
    let send = |kind: EventKind| {
        let _ = tx.send(Msg::Event(kind));
    };
    let failed = |kind: FailureKind, message: String| EventKind::Failed {
        workstream: index,
        failure: Failure { kind, message },
    };
    match &ctx.git {
        None => send(failed(FailureKind::Git, "no repository".into())),
        Some(git) => {
            send(EventKind::Phase {
                workstream: index,
                phase: Phase::Merging,
                reason: None,
            });
            let integration = Integration {
                git,
                workflow: &ctx.workflow,
                verify_dir: integration_dir(&ctx.worktrees_dir),
                log_path: ctx.run_dir.log_path("_verify"),
                parent_env: &ctx.parent_env,
                grace: ctx.grace,
                cancel: ctx.cancel.clone(),
                note: format!("flow run {}", ctx.run_dir.id),
            };
            match merge_and_verify(&integration, index, expected, result).await {
                Integrated::Merged { commit, verify } => send(EventKind::Merged {
                    workstream: index,
                    merge_commit: commit.to_string(),
                    verify,
                }),
                Integrated::Conflict { paths } => send(EventKind::Conflicted {
                    workstream: index,
                    paths,
                }),
                Integrated::VerifyFailed { result, rolled_back } => {
                    let back = if rolled_back {
                        "the integration branch was moved back to its last good commit"
                    } else {
                        "moving the integration branch back FAILED"
                    };
                    send(failed(
                        FailureKind::Verify,
                        format!("verify failed after merging: {}; {back}", result.detail),
                    ));
                }
                Integrated::Interrupted => send(EventKind::Phase {
                    workstream: index,
                    phase: Phase::Ready,
                    reason: Some("merge interrupted; redone on resume".into()),
                }),
                Integrated::Error(message) => send(failed(FailureKind::Git, message)),
            }
        }
    }
    let _ = tx.send(Msg::MergeEnded { workstream: index });
}

/// Runs `verify` on `commit` in the integration worktree; `None` when cancelled.
async fn verify(integration: &Integration<'_>, command: &str, commit: Oid, workstream: &str) -> Option<TestResult> {
    let failed = |detail: String| {
        Some(TestResult {
            passed: false,
            command: command.to_string(),
            detail,
        })
    };
    let git = integration.git.clone();
    let dir = integration.verify_dir.clone();
    match tokio::task::spawn_blocking(move || git.checkout_detached(&dir, commit)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return failed(format!("cannot check out the merged tree: {e}")),
        Err(e) => return failed(format!("checkout stopped: {e}")),
    }
    let mut spec = ProcessSpec::new(
        "sh",
        vec!["-c".to_string(), command.to_string()],
        &integration.verify_dir,
    );
    spec.env = crate::agent::environment::agent_environment(
        integration.parent_env.iter().map(|(k, v)| (k.clone(), v.clone())),
        &[],
        &BTreeMap::new(),
    );
    spec.log_path = Some(integration.log_path.clone());
    spec.grace = integration.grace;
    let _ = append_line(
        &integration.log_path,
        &format!("== verify after merging {workstream}: {command}"),
    );
    let mut last = String::new();
    let outcome = run_process(
        spec,
        |line: OutputLine<'_>| {
            if !line.text().trim().is_empty() {
                last = line.text().to_string();
            }
            Control::Continue
        },
        integration.cancel.clone(),
    )
    .await;
    match outcome {
        Ok(o) if o.end == ProcessEnd::Cancelled => None,
        Ok(o) => {
            let passed = o.end.is_success();
            let detail = match (passed, last.is_empty()) {
                (true, _) => "passed".to_string(),
                (false, true) => format!("`{command}` {}", o.end),
                (false, false) => format!("`{command}` {}: {last}", o.end),
            };
            Some(TestResult {
                passed,
                command: command.to_string(),
                detail,
            })
        }
        Err(e) => failed(format!("cannot run `{command}`: {e}")),
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
