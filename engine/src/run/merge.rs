//! One step of the merge queue: merge a ready branch into the integration branch in memory,
//! run `verify` on the merged tree in the integration worktree, and roll back on failure.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::agent::process::{Control, OutputLine, ProcessEnd, ProcessSpec, run_process};
use crate::git::{MergeOutcome, Oid};
use crate::run::job::{Msg, RunContext};
use crate::run::state::{EventKind, Failure, FailureKind, Phase, TestResult};

/// The folder of the integration worktree where `verify` runs.
pub fn integration_dir(ctx: &RunContext) -> PathBuf {
    ctx.worktrees_dir.join("_integration")
}

/// Merges one workstream's result into the integration branch whose head is `expected`.
pub async fn merge(ctx: Arc<RunContext>, index: usize, expected: Oid, result: Oid, tx: mpsc::UnboundedSender<Msg>) {
    let send = |kind: EventKind| {
        let _ = tx.send(Msg::Event(kind));
    };
    let workflow = ctx.workflow.clone();
    let ws = &workflow.workstreams[index];
    let Some(git) = ctx.git.clone() else {
        send(EventKind::Failed {
            workstream: index,
            failure: Failure {
                kind: FailureKind::Git,
                message: "no repository".into(),
            },
        });
        let _ = tx.send(Msg::MergeEnded { workstream: index });
        return;
    };
    send(EventKind::Phase {
        workstream: index,
        phase: Phase::Merging,
        reason: None,
    });
    let into = workflow.into.clone();
    let message = format!(
        "Merge {} ({}) into {into}\n\nflow run {}",
        workflow.branch_of(ws),
        ws.name,
        ctx.run_dir.id
    );
    let g = git.clone();
    let into_for_merge = into.clone();
    let outcome =
        tokio::task::spawn_blocking(move || g.merge_into_expecting(&into_for_merge, expected, result, &message)).await;
    let merged = match outcome {
        Ok(Ok(MergeOutcome::FastForward { to })) => to,
        Ok(Ok(MergeOutcome::Merged { commit })) => commit,
        Ok(Ok(MergeOutcome::UpToDate)) => expected,
        Ok(Ok(MergeOutcome::Conflict { paths })) => {
            send(EventKind::Conflicted {
                workstream: index,
                paths,
            });
            let _ = tx.send(Msg::MergeEnded { workstream: index });
            return;
        }
        Ok(Err(e)) => {
            send(EventKind::Failed {
                workstream: index,
                failure: Failure {
                    kind: FailureKind::Git,
                    message: format!("merge failed: {e}"),
                },
            });
            let _ = tx.send(Msg::MergeEnded { workstream: index });
            return;
        }
        Err(e) => {
            send(EventKind::Failed {
                workstream: index,
                failure: Failure {
                    kind: FailureKind::Git,
                    message: format!("merge stopped: {e}"),
                },
            });
            let _ = tx.send(Msg::MergeEnded { workstream: index });
            return;
        }
    };
    let verify = match &workflow.integrate.verify {
        Some(command) if merged != expected => Some(verify(&ctx, command, merged, &ws.name).await),
        _ => None,
    };
    match verify {
        Some(Err(())) => {
            // Cancelled while verifying: put the branch back; the merge is redone on resume.
            let g = git.clone();
            let into2 = into.clone();
            let _ = tokio::task::spawn_blocking(move || {
                g.set_branch(&into2, expected, Some(merged), "flow: verify interrupted, roll back")
            })
            .await;
            send(EventKind::Phase {
                workstream: index,
                phase: Phase::Ready,
                reason: Some("merge interrupted; redone on resume".into()),
            });
        }
        Some(Ok(result)) if !result.passed => {
            let g = git.clone();
            let into2 = into.clone();
            let rollback = tokio::task::spawn_blocking(move || {
                g.set_branch(&into2, expected, Some(merged), "flow: verify failed, roll back")
            })
            .await;
            let rolled = matches!(rollback, Ok(Ok(())));
            let message = format!(
                "verify failed after merging: {}{}",
                result.detail,
                if rolled {
                    "; the integration branch was moved back to its last good commit"
                } else {
                    "; rolling the integration branch back FAILED"
                }
            );
            send(EventKind::Failed {
                workstream: index,
                failure: Failure {
                    kind: FailureKind::Verify,
                    message,
                },
            });
        }
        verify => send(EventKind::Merged {
            workstream: index,
            merge_commit: merged.to_string(),
            verify: verify.and_then(Result::ok),
        }),
    }
    let _ = tx.send(Msg::MergeEnded { workstream: index });
}

/// Runs the workflow's `verify` on `commit` in the integration worktree; `Err` when cancelled.
async fn verify(ctx: &RunContext, command: &str, commit: Oid, workstream: &str) -> Result<TestResult, ()> {
    let Some(git) = ctx.git.clone() else { return Err(()) };
    let dir = integration_dir(ctx);
    let d = dir.clone();
    let checkout = tokio::task::spawn_blocking(move || git.checkout_detached(&d, commit)).await;
    match checkout {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Ok(TestResult {
                passed: false,
                command: command.to_string(),
                detail: format!("cannot check out the merged tree: {e}"),
            });
        }
        Err(e) => {
            return Ok(TestResult {
                passed: false,
                command: command.to_string(),
                detail: format!("checkout stopped: {e}"),
            });
        }
    }
    let mut spec = ProcessSpec::new("sh", vec!["-c".to_string(), command.to_string()], &dir);
    spec.env = crate::agent::environment::agent_environment(
        ctx.parent_env.iter().map(|(k, v)| (k.clone(), v.clone())),
        &[],
        &Default::default(),
    );
    spec.log_path = Some(ctx.run_dir.dir.join("logs").join("_verify.log"));
    spec.grace = ctx.grace;
    let mut last = String::new();
    let header = format!("verify after merging {workstream}");
    let _ = append_line(
        &ctx.run_dir.dir.join("logs").join("_verify.log"),
        &format!("== {header}: {command}"),
    );
    let outcome = run_process(
        spec,
        |line: OutputLine<'_>| {
            if !line.text().trim().is_empty() {
                last = line.text().to_string();
            }
            Control::Continue
        },
        ctx.cancel.clone(),
    )
    .await;
    match outcome {
        Ok(o) if o.end == ProcessEnd::Cancelled => Err(()),
        Ok(o) => {
            let passed = o.end.is_success();
            let detail = if passed {
                "passed".to_string()
            } else {
                format!("`{command}` {}: {last}", o.end)
            };
            Ok(TestResult {
                passed,
                command: command.to_string(),
                detail,
            })
        }
        Err(e) => Ok(TestResult {
            passed: false,
            command: command.to_string(),
            detail: format!("cannot run `{command}`: {e}"),
        }),
    }
}

fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{line}")
}
