//! `flow done`: a workstream worked on by hand is finished, and goes through what a run's
//! finished workstream goes through: its scope, its `test`, then the merge queue in the
//! plan's order with `verify` ([`merge_selected`]).
//!
//! Refused, with what to do: a workstream that is not prepared, whose session is still
//! open, whose worktree holds uncommitted changes (listed), whose branch has no commit of
//! its own, whose commits change paths outside its scope (the scope hook can be bypassed
//! with `git commit --no-verify`; this check cannot), or whose `test` fails. Accepted, it is
//! recorded as done; merged at once when its dependencies are merged, else left queued: the
//! `flow done` (or `flow merge`) that merges its last dependency merges it too.

use std::collections::{BTreeMap, BTreeSet};

use flow_dsl::ScopePolicy;
use serde::Serialize;
use tokio::sync::watch;

use super::merge::{MergeItem, MergeResult, MergeSelection, merge_selected};
use super::prepare::{SetupSettings, by_hand_process, unmerged_dependencies};
use super::record::{self, ByHandRecord, DoneRecord, DoneState, user_name};
use super::{Layout, start_of};
use crate::checks::{Check, TestResult, run_check};
use crate::context;
use crate::integrate::Integration;
use crate::plan::Plan;
use crate::worktree_setup::copy::CopyList;

/// What `flow done` did.
#[derive(Debug, Clone, Serialize)]
pub struct DoneOutcome {
    pub workstream: String,
    pub state: DoneState,
    pub detail: String,
    /// Its `test`, when it has one.
    pub test: Option<TestResult>,
    /// What the merge queue did, this workstream and the queued ones it let through.
    pub merges: Vec<MergeItem>,
}

/// Why `flow done` refused.
#[derive(Debug, Clone, PartialEq)]
pub struct DoneRefusal {
    pub message: String,
    pub help: Option<String>,
    /// The end of a failing test's output.
    pub tail: String,
}

fn refuse(message: impl Into<String>, help: impl Into<String>) -> DoneRefusal {
    DoneRefusal {
        message: message.into(),
        help: Some(help.into()).filter(|h: &String| !h.is_empty()),
        tail: String::new(),
    }
}

/// Checks workstream `index`, records it done, and merges what is ready.
pub async fn done(
    plan: &Plan,
    layout: &Layout,
    index: usize,
    settings: &SetupSettings<'_>,
    integration: Integration<'_>,
    stop: watch::Receiver<bool>,
) -> Result<DoneOutcome, DoneRefusal> {
    let workflow = &plan.workflow;
    let ws = &workflow.workstreams[index];
    let flow_dir = layout.site.flow_dir();
    let git_failed = |e: crate::git::GitError| refuse(e.to_string(), "");
    let dir = layout.worktree_of(&ws.name);
    let prepared = layout
        .git
        .worktrees()
        .map_err(git_failed)?
        .iter()
        .any(|w| w.path == dir)
        && dir.exists();
    let branch = workflow.branch_of(ws);
    let head = layout.git.branch_head(&branch).map_err(git_failed)?;
    let (true, Some(head)) = (prepared, head) else {
        return Err(refuse(
            format!("`{}` is not prepared: it has no worktree at {}", ws.name, dir.display()),
            format!(
                "`flow open {0}` (or `flow prepare`) makes it, then work and commit there",
                ws.name
            ),
        ));
    };
    let record = ByHandRecord::load(flow_dir, &workflow.name, &ws.name).map_err(|e| refuse(e, ""))?;
    if let Some(running) = record.running_session() {
        return Err(refuse(
            format!(
                "`{}` is still open: {} started {} (flow open's process {})",
                ws.name, running.agent, running.started, running.opener
            ),
            "end the session first",
        ));
    }

    // Everything committed: the files flow copied in and its context are not the work.
    let root = layout.site.root();
    let skip = [flow_dir.to_path_buf(), layout.site.worktrees_dir(workflow)];
    let copied = CopyList::find(root, &ws.copy, &skip)
        .map(|c| c.paths)
        .map_err(|e| refuse(format!("cannot find the files flow copied: {e}"), ""))?;
    let mut ignore: Vec<&str> = context::excluded_prefixes(workflow);
    ignore.extend(copied.iter().map(String::as_str));
    let dirty = layout.git.is_dirty(&dir, &ignore).map_err(git_failed)?;
    if !dirty.is_empty() {
        return Err(refuse(
            format!(
                "`{}` has uncommitted changes in {}:\n  {}",
                ws.name,
                dir.display(),
                dirty.join("\n  ")
            ),
            "commit them (or remove them), then run `flow done` again",
        ));
    }
    let into_head = layout.ensure_into().map_err(git_failed)?;
    let start = start_of(workflow, layout, ws, head, Some(into_head)).map_err(git_failed)?;
    if head == start {
        return Err(refuse(
            format!("`{}` has nothing committed on {branch}", ws.name),
            format!("commit its work in {} first", dir.display()),
        ));
    }

    // Its scope, measured as the merge measures it.
    let from = layout
        .git
        .merge_base(head, into_head)
        .map_err(git_failed)?
        .unwrap_or(start);
    let changes = layout.git.changed_paths(from, head).map_err(git_failed)?;
    let paths: Vec<String> = changes.iter().flat_map(|c| c.paths().map(str::to_string)).collect();
    let outside: Vec<String> = ws.scope.breaches(&paths).into_iter().map(|b| b.path).collect();
    if !outside.is_empty() && workflow.scope_policy != ScopePolicy::Warn {
        return Err(refuse(
            format!(
                "`{}` changed files outside its scope:\n  {}",
                ws.name,
                outside.join("\n  ")
            ),
            "undo those changes in new commits (or widen its `owns`), then run `flow done` again",
        ));
    }

    // Its test, in its worktree and the test's sandbox.
    let test = match &ws.test {
        Some(command) => {
            let result = run_test(plan, layout, index, command, &dir, settings, stop.clone()).await;
            match result {
                None => return Err(refuse("interrupted during its test", "")),
                Some(result) if !result.passed => {
                    let mut refusal = refuse(
                        format!("`{}`'s test failed: {}", ws.name, result.detail),
                        format!(
                            "fix it and run `flow done` again (the whole output: {})",
                            record::test_log_path(flow_dir, &workflow.name, &ws.name).display()
                        ),
                    );
                    refusal.tail = result.tail;
                    return Err(refusal);
                }
                Some(result) => Some(result),
            }
        }
        None => None,
    };

    // What merges is what was checked: the test left nothing behind and the branch did not
    // move meanwhile.
    let left = layout.git.is_dirty(&dir, &ignore).map_err(git_failed)?;
    if !left.is_empty() {
        return Err(refuse(
            format!(
                "`{}`'s test left uncommitted files in {}:\n  {}",
                ws.name,
                dir.display(),
                left.join("\n  ")
            ),
            "ignore them (.gitignore) or have the test clean up, then run `flow done` again",
        ));
    }
    if layout.git.branch_head(&branch).map_err(git_failed)? != Some(head) {
        return Err(refuse(
            format!("{branch} moved while `{}` was checked", ws.name),
            "run `flow done` again",
        ));
    }

    let mut recorded = ByHandRecord::update(flow_dir, &workflow.name, &ws.name, |r| {
        r.done = Some(DoneRecord {
            at: crate::time::now(),
            by: user_name(),
            head: head.to_string(),
            start: Some(start.to_string()),
            state: DoneState::Queued,
            detail: "waiting for the merge".into(),
        });
    })
    .map_err(|e| refuse(e, ""))?;

    let waiting = unmerged_dependencies(workflow, layout, index, into_head).map_err(git_failed)?;
    if !waiting.is_empty() {
        let detail = format!(
            "queued: waits for {} to merge; it merges with the `flow done` (or `flow merge`) that merges them",
            waiting.join(", ")
        );
        recorded.done.as_mut().expect("just recorded").detail = detail.clone();
        recorded.save(flow_dir).map_err(|e| refuse(e, ""))?;
        return Ok(DoneOutcome {
            workstream: ws.name.clone(),
            state: DoneState::Queued,
            detail,
            test,
            merges: vec![],
        });
    }

    // This one and every queued one, in the plan's order.
    let queued: BTreeSet<usize> = ByHandRecord::load_all(flow_dir, &workflow.name)
        .iter()
        .filter(|r| r.done.as_ref().is_some_and(|d| d.state == DoneState::Queued))
        .filter_map(|r| workflow.workstreams.iter().position(|w| w.name == r.workstream))
        .chain([index])
        .collect();
    let selection = MergeSelection {
        only: Some(queued),
        starts: BTreeMap::new(),
    };
    let merges = merge_selected(plan, layout, integration, stop, &selection)
        .await
        .map_err(git_failed)?;
    let mut outcome = DoneOutcome {
        workstream: ws.name.clone(),
        state: DoneState::Queued,
        detail: "not merged".into(),
        test,
        merges: merges.clone(),
    };
    for item in &merges {
        let state = match item.result {
            MergeResult::Merged | MergeResult::AlreadyMerged => DoneState::Merged,
            MergeResult::Conflicted | MergeResult::Failed => DoneState::Failed,
            MergeResult::Skipped => DoneState::Queued,
        };
        let _ = ByHandRecord::update(flow_dir, &workflow.name, &item.workstream, |r| {
            if let Some(done) = r.done.as_mut() {
                done.state = state;
                done.detail = item.detail.clone();
            }
        });
        if item.workstream == ws.name {
            outcome.state = state;
            outcome.detail = item.detail.clone();
        }
    }
    Ok(outcome)
}

/// Runs the workstream's test in its worktree, as a run does after its agent: its sandbox,
/// the clean environment with the `FLOW_*` variables, its output in its test log.
async fn run_test(
    plan: &Plan,
    layout: &Layout,
    index: usize,
    command: &str,
    dir: &std::path::Path,
    settings: &SetupSettings<'_>,
    stop: watch::Receiver<bool>,
) -> Option<TestResult> {
    let workflow = &plan.workflow;
    let ws = &workflow.workstreams[index];
    let flow_dir = layout.site.flow_dir();
    let process = by_hand_process(workflow, index, dir, None, flow_dir, settings);
    let sandbox = match process.sandbox {
        Ok(sandbox) => sandbox,
        Err(message) => {
            return Some(TestResult::failed(
                command,
                format!("cannot confine the test: {message}"),
            ));
        }
    };
    let log_path = record::test_log_path(flow_dir, &workflow.name, &ws.name);
    let _ = std::fs::remove_file(&log_path);
    let check = Check {
        command,
        dir,
        secrets: process.secrets,
        env: process.env,
        log_path,
        header: Some(format!("$ {command}")),
        timeout: ws.timeout,
        grace: settings.grace,
        sandbox,
        hurry: None,
    };
    run_check(check, stop).await
}
