//! `flow prepare`: every workstream's worktree, branch and context, its files copied, its
//! scope hook and its `setup` run, without launching any agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flow_dsl::{Isolation, Workflow};
use serde::Serialize;
use tokio::sync::watch;

use super::guard::{SessionGuard, Verdict};
use super::record::{self, ByHandRecord, SetupRecord};
use super::{Layout, start_of};
use crate::agent::environment::declared_secret_values;
use crate::agent::process::Sandboxing;
use crate::confine::{Confiner, Place};
use crate::context;
use crate::git::{GitError, Oid};
use crate::plan::Plan;
use crate::worktree_setup::copy::CopyList;
use crate::worktree_setup::hook::install_scope_hook;
use crate::worktree_setup::ports::PortBlock;
use crate::worktree_setup::{Identity, Setup, run_setup, setup_key, workstream_environment};

/// What `flow prepare` did for one workstream.
#[derive(Debug, Clone, Serialize)]
pub struct PrepareItem {
    pub workstream: String,
    pub status: PrepareStatus,
    pub branch: Option<String>,
    pub worktree: Option<PathBuf>,
    pub start: Option<String>,
    pub detail: String,
}

/// The outcome of preparing one workstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrepareStatus {
    Created,
    Reused,
    Waiting,
    Skipped,
    Failed,
}

impl PrepareStatus {
    /// Returns the kebab-case name shown by `flow prepare` and written to its JSON, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PrepareStatus::Created => "created",
            PrepareStatus::Reused => "reused",
            PrepareStatus::Waiting => "waiting",
            PrepareStatus::Skipped => "skipped",
            PrepareStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for PrepareStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.pad(self.as_str())
    }
}

/// Creates the worktree, branch and context of every workstream whose dependencies have
/// merged (in parallel); the others wait for `flow merge`. Their `setup` is run by
/// [`set_up`].
pub fn prepare(plan: &Plan, layout: &Layout) -> Result<Vec<PrepareItem>, GitError> {
    prepare_only(plan, layout, None)
}

/// Prepares as [`prepare`] does, only workstream `only` when given.
pub fn prepare_only(plan: &Plan, layout: &Layout, only: Option<usize>) -> Result<Vec<PrepareItem>, GitError> {
    let workflow = &plan.workflow;
    let into_head = layout.ensure_into()?;
    let mut items: Vec<Option<PrepareItem>> = vec![None; workflow.workstreams.len()];
    let mut jobs: Vec<(usize, Oid)> = vec![];
    for (i, ws) in workflow.workstreams.iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        if ws.isolation == Isolation::None {
            items[i] = Some(item(
                ws.name.clone(),
                PrepareStatus::Skipped,
                None,
                None,
                None,
                "isolation \"none\": no worktree",
            ));
            continue;
        }
        let waiting = unmerged_dependencies(workflow, layout, i, into_head)?;
        if !waiting.is_empty() {
            items[i] = Some(item(
                ws.name.clone(),
                PrepareStatus::Waiting,
                Some(workflow.branch_of(ws)),
                None,
                None,
                &format!("waits for {} to merge (`flow merge`)", waiting.join(", ")),
            ));
            continue;
        }
        let start = if ws.dependencies.is_empty() {
            layout.base_commit
        } else {
            into_head
        };
        jobs.push((i, start));
    }
    // The worktrees first, all together (their files are written on several threads), then
    // each one's context.
    let requests: Vec<(PathBuf, String, Oid)> = jobs
        .iter()
        .map(|&(i, start)| {
            let ws = &workflow.workstreams[i];
            (layout.worktree_of(&ws.name), workflow.branch_of(ws), start)
        })
        .collect();
    // Compared before any worktree is made: a new one is no change of the others'.
    let guard = SessionGuard::new(layout, workflow);
    let verdicts: Vec<Verdict> = jobs.iter().map(|&(i, _)| guard.verdict(i)).collect();
    let made = layout.git.add_worktrees(&requests)?;
    for ((&(i, start), (dir, branch, _)), result) in jobs.iter().zip(requests).zip(made) {
        items[i] = Some(prepare_one(workflow, layout, i, start, dir, branch, result));
    }
    guard_sessions(&guard, &jobs, &verdicts, &mut items);
    Ok(items.into_iter().flatten().collect())
}

/// Takes the snapshot of the git directory `flow merge` compares with, for every worktree
/// prepared now: a new one where the git directory is as the last snapshot had it (or there
/// was none); where it changed, the old one stays, for `flow merge` to refuse and undo.
fn guard_sessions(
    guard: &SessionGuard<'_>,
    jobs: &[(usize, Oid)],
    verdicts: &[Verdict],
    items: &mut [Option<PrepareItem>],
) {
    let mut take = vec![];
    for (&(i, _), verdict) in jobs.iter().zip(verdicts) {
        let Some(item) = items[i].as_mut() else { continue };
        if !matches!(item.status, PrepareStatus::Created | PrepareStatus::Reused) {
            continue;
        }
        match verdict {
            Verdict::Changed(changes) if item.status == PrepareStatus::Reused => {
                item.detail.push_str(&format!(
                    "; the git directory changed since its snapshot, `flow merge` will refuse it: {}",
                    changes.join("; ")
                ));
            }
            Verdict::Unreadable(why) => {
                item.detail
                    .push_str(&format!("; took a new snapshot of the git directory ({why})"));
                take.push(i);
            }
            _ => take.push(i),
        }
    }
    for (i, why) in guard.take(&take) {
        if let Some(item) = items[i].as_mut() {
            item.status = PrepareStatus::Failed;
            item.detail = why;
        }
    }
}

fn item(
    workstream: String,
    status: PrepareStatus,
    branch: Option<String>,
    worktree: Option<PathBuf>,
    start: Option<Oid>,
    detail: &str,
) -> PrepareItem {
    PrepareItem {
        workstream,
        status,
        branch,
        worktree,
        start: start.map(|s| s.to_string()),
        detail: detail.to_string(),
    }
}

/// Writes the context of one workstream whose worktree `made` says how it went.
fn prepare_one(
    workflow: &Workflow,
    layout: &Layout,
    index: usize,
    start: Oid,
    dir: PathBuf,
    branch: String,
    made: Result<crate::git::WorktreeState, GitError>,
) -> PrepareItem {
    let ws = &workflow.workstreams[index];
    let status = match made {
        Ok(crate::git::WorktreeState::Reused) => PrepareStatus::Reused,
        Ok(_) => PrepareStatus::Created,
        Err(e) => {
            return item(
                ws.name.clone(),
                PrepareStatus::Failed,
                Some(branch),
                Some(dir),
                Some(start),
                &e.to_string(),
            );
        }
    };
    if let Err(e) = ready(workflow, layout, index, &dir) {
        return item(
            ws.name.clone(),
            PrepareStatus::Failed,
            Some(branch),
            Some(dir),
            Some(start),
            &e,
        );
    }
    let rendered = context::render(workflow, index, layout.site.root());
    if let Err(e) = context::write(&rendered, &dir, &ws.name) {
        return item(
            ws.name.clone(),
            PrepareStatus::Failed,
            Some(branch),
            Some(dir),
            Some(start),
            &format!("cannot write the context: {e}"),
        );
    }
    let detail = format!(
        "prompt in {}",
        dir.join(context::context_dir(&ws.name)).join("prompt.md").display()
    );
    item(ws.name.clone(), status, Some(branch), Some(dir), Some(start), &detail)
}

/// How [`set_up`] runs setups.
pub struct SetupSettings<'a> {
    /// flow's own environment, which the setups' clean environment is made from.
    pub parent_env: &'a BTreeMap<String, String>,
    pub confiner: &'a Confiner,
    pub grace: Duration,
}

/// Runs the `setup` of each workstream `prepare` made ready (`created` or `reused`), all
/// at once, in its worktree, its sandbox and its clean environment with the `FLOW_*`
/// variables, its output in its setup log ([`record::setup_log_path`]); a setup that passed
/// before in the same worktree, unchanged, is not run again. A failing setup fails its
/// item, with the end of its output. Records each prepared workstream.
pub async fn set_up(
    plan: &Plan,
    layout: &Layout,
    items: &mut [PrepareItem],
    settings: &SetupSettings<'_>,
    stop: watch::Receiver<bool>,
) {
    let workflow = &plan.workflow;
    let flow_dir = layout.site.flow_dir();
    let runs = items.iter_mut().filter_map(|item| {
        let ready = matches!(item.status, PrepareStatus::Created | PrepareStatus::Reused);
        let index = workflow.workstreams.iter().position(|w| w.name == item.workstream)?;
        let dir = item.worktree.clone()?;
        ready.then_some((item, index, dir))
    });
    let jobs = runs.map(|(item, index, dir)| {
        let stop = stop.clone();
        async move {
            let ws = &workflow.workstreams[index];
            let outcome = set_up_one(plan, layout, index, &dir, item, settings, stop).await;
            let at = crate::time::now();
            let recorded = ByHandRecord::update(flow_dir, &workflow.name, &ws.name, |r| {
                r.prepared_at = Some(at);
                if let Some(setup) = outcome.clone() {
                    r.setup = Some(setup);
                }
                // A workstream prepared again is worked on again.
                if item.status == PrepareStatus::Created {
                    r.done = None;
                }
            });
            if let Some(failed) = outcome.filter(|s| !s.passed) {
                item.status = PrepareStatus::Failed;
                item.detail = failed.detail;
            }
            if let Err(e) = recorded {
                item.status = PrepareStatus::Failed;
                item.detail = e;
            }
        }
    });
    futures::future::join_all(jobs).await;
}

/// Runs one workstream's setup unless the same one passed in this worktree; `None` when
/// nothing ran.
async fn set_up_one(
    plan: &Plan,
    layout: &Layout,
    index: usize,
    dir: &Path,
    item: &PrepareItem,
    settings: &SetupSettings<'_>,
    stop: watch::Receiver<bool>,
) -> Option<SetupRecord> {
    let workflow = &plan.workflow;
    let ws = &workflow.workstreams[index];
    if ws.setup.is_empty() {
        return None;
    }
    let flow_dir = layout.site.flow_dir();
    let key = setup_key(&ws.setup, &ws.copy);
    let before = ByHandRecord::load(flow_dir, &workflow.name, &ws.name).ok();
    let passed_before = before
        .and_then(|r| r.setup)
        .is_some_and(|s| s.passed && s.key.as_deref() == Some(key.as_str()));
    if item.status == PrepareStatus::Reused && passed_before {
        return None;
    }
    let failed = |detail: String| SetupRecord {
        at: crate::time::now(),
        passed: false,
        detail,
        key: None,
    };
    let port = PortBlock::take(workflow.workstreams[index].ports);
    let process = by_hand_process(
        workflow,
        index,
        dir,
        port.as_ref().map(PortBlock::first),
        flow_dir,
        settings,
    );
    let sandbox = match process.sandbox {
        Ok(sandbox) => sandbox,
        Err(e) => return Some(failed(format!("cannot confine the setup: {e}"))),
    };
    let log_path = record::setup_log_path(flow_dir, &workflow.name, &ws.name);
    let _ = std::fs::remove_file(&log_path);
    let setup = Setup {
        commands: &ws.setup,
        dir,
        secrets: process.secrets,
        env: process.env,
        log_path: log_path.clone(),
        timeout: ws.setup_timeout,
        grace: settings.grace,
        sandbox,
        hurry: None,
    };
    Some(match run_setup(setup, stop).await {
        Ok(()) => SetupRecord {
            at: crate::time::now(),
            passed: true,
            detail: "passed".into(),
            key: Some(key),
        },
        Err(failure) => failed(format!("{failure}\n(the whole output: {})", log_path.display())),
    })
}

/// What a process flow starts in a worktree worked on by hand (its setup, its test) runs
/// with.
pub(super) struct ByHandProcess {
    /// The workstream's environment, with the worktree's `FLOW_*` identity.
    pub env: BTreeMap<String, String>,
    /// The values to hide in its output.
    pub secrets: Vec<String>,
    /// Its sandbox, or why it cannot have one.
    pub sandbox: Result<Option<Sandboxing>, String>,
}

/// The environment, secrets and sandbox of a process started in `dir`, workstream `index`'s
/// worktree worked on by hand, with `port` the first of its ports if it has a block.
pub(super) fn by_hand_process(
    workflow: &Workflow,
    index: usize,
    dir: &Path,
    port: Option<u16>,
    flow_dir: &Path,
    settings: &SetupSettings<'_>,
) -> ByHandProcess {
    let ws = &workflow.workstreams[index];
    let identity = by_hand_identity(workflow, index, dir, port);
    let env = workstream_environment(workflow, index, settings.parent_env, &identity.variables());
    let tmp = record::tmp_path(flow_dir, &workflow.name, &ws.name);
    let place = Place {
        dir,
        tmp: &tmp,
        commits: None,
    };
    ByHandProcess {
        secrets: declared_secret_values(&ws.secrets, &env, settings.parent_env),
        env,
        sandbox: settings.confiner.test(ws, &place),
    }
}

/// The `FLOW_*` identity of a workstream's worktree worked on by hand: `FLOW_RUN` is
/// `by-hand`.
pub fn by_hand_identity(workflow: &Workflow, index: usize, dir: &Path, port: Option<u16>) -> Identity {
    let ws = &workflow.workstreams[index];
    Identity {
        workstream: ws.name.clone(),
        worktree: dir.to_path_buf(),
        run: "by-hand".to_string(),
        branch: Some(workflow.branch_of(ws)),
        port,
        port_count: ws.ports,
    }
}

/// Copies the workstream's files from the user's checkout into its worktree and installs
/// its scope hook.
fn ready(workflow: &Workflow, layout: &Layout, index: usize, dir: &std::path::Path) -> Result<(), String> {
    let ws = &workflow.workstreams[index];
    let root = layout.site.root();
    let skip = [
        layout.site.flow_dir().to_path_buf(),
        layout.site.worktrees_dir(workflow),
    ];
    let copy = CopyList::find(root, &ws.copy, &skip).map_err(|e| format!("cannot find the files to copy: {e}"))?;
    copy.copy_into(root, dir)?;
    install_scope_hook(layout.site.flow_dir(), &layout.git, workflow, index, dir, &copy.paths)
        .map_err(|e| format!("cannot install the scope hook: {e}"))
}

/// The dependencies of a workstream whose branches are not (yet) in the integration branch.
pub(crate) fn unmerged_dependencies(
    workflow: &Workflow,
    layout: &Layout,
    index: usize,
    into_head: Oid,
) -> Result<Vec<String>, GitError> {
    let mut waiting = vec![];
    for &d in &workflow.workstreams[index].dependencies {
        let dep = &workflow.workstreams[d];
        if dep.isolation == Isolation::None {
            continue;
        }
        let merged = match layout.git.branch_head(&workflow.branch_of(dep))? {
            Some(head) => {
                head != start_of(workflow, layout, dep, head, Some(into_head))? && layout.is_merged(head, into_head)?
            }
            None => false,
        };
        if !merged {
            waiting.push(dep.name.clone());
        }
    }
    Ok(waiting)
}
