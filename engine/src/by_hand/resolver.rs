//! `flow sync --agent`: a merge of the integration branch that conflicts, handed to the
//! workflow's resolver agent in the workstream's own worktree, outside any run.
//!
//! The merge is set up the way `git merge` leaves one (markers in the files, `MERGE_HEAD`);
//! the resolver is launched as a run launches it (the same command, clean environment and git
//! settings, placeholders, prompt and limits, and the guard of the git directory around it);
//! its work is committed only when the agent exited 0, changed nothing in the git directory,
//! left no conflict marker in the conflicting files, and left the worktree on its branch with
//! its history intact. Anything else gives the sync up: the branch and its files go back to where
//! they were, so a broken or hostile resolver leaves nothing that could be merged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flow_dsl::Workflow;
use tokio::sync::watch;

use super::Layout;
use super::sync_outcome::{SyncItem, SyncResult};
use crate::agent::command::{Placeholders, Runner, launch};
use crate::agent::output::OutputReader;
use crate::agent::process::{Control, OutputLine, each_line, run_process};
use crate::context;
use crate::git::{GitError, IntegrityProblem, Oid, WorktreeMerge, conflict_hunks, files_with_markers};
use crate::run::guard::RunGuard;

/// What launching the resolver needs from the command line.
pub struct ResolverSettings {
    /// flow's own environment, filtered for the agent as a run filters it.
    pub parent_env: BTreeMap<String, String>,
    /// How long a stopped agent gets between SIGINT and SIGKILL.
    pub grace: Duration,
    /// Turns true on Ctrl-C: the agent is stopped and the sync given up.
    pub stop: watch::Receiver<bool>,
}

/// The most bytes of conflict hunks the resolver is shown (the files hold the rest).
const HUNKS_LIMIT: usize = 12_000;

/// One conflicting sync of a workstream: its worktree at `dir` on `branch` at `head`, and the
/// integration commit `onto` to bring in.
pub(crate) struct Conflicting<'a> {
    pub(crate) index: usize,
    pub(crate) dir: &'a Path,
    pub(crate) branch: &'a str,
    pub(crate) head: Oid,
    pub(crate) onto: Oid,
}

/// Merges `onto` into the worktree, has the resolver resolve the conflicts, and commits its
/// resolution; or gives the sync up and says why.
pub(crate) async fn resolve_with_agent(
    workflow: &Workflow,
    layout: &Layout,
    sync: Conflicting<'_>,
    settings: &ResolverSettings,
) -> Result<SyncItem, GitError> {
    let ws = &workflow.workstreams[sync.index];
    let into = &layout.into;
    let item = |result: SyncResult, detail: String, files: Vec<String>, head: Option<Oid>| SyncItem {
        workstream: ws.name.clone(),
        result,
        detail,
        files,
        head: head.map(|h| h.to_string()),
        worktree: Some(sync.dir.to_path_buf()),
    };
    let Some((choice, agent)) = workflow
        .integrate
        .resolver
        .as_ref()
        .and_then(|c| workflow.agents.get(&c.agent).map(|a| (c, a)))
    else {
        return Ok(item(
            SyncResult::Refused,
            "the workflow names no resolver (`integrate { resolver \"AGENT\" }`); nothing was changed".into(),
            vec![],
            Some(sync.head),
        ));
    };
    let message = format!(
        "flow: bring {into} into {} (flow sync), conflicts resolved by the resolver agent `{}`",
        ws.name, agent.name
    );
    let paths = match layout.git.merge_into_worktree(sync.dir, sync.onto, &message)? {
        WorktreeMerge::Clean(head) => {
            return Ok(item(
                SyncResult::Synced,
                format!("merged {into} ({}) in; now at {}", sync.onto.short(), head.short()),
                vec![],
                Some(head),
            ));
        }
        WorktreeMerge::Conflicted(paths) => paths,
    };
    let excluded = context::excluded_prefixes(workflow);
    let give_up = |why: String, paths: Vec<String>| -> Result<SyncItem, GitError> {
        let left = restore(layout, sync.dir, sync.branch, sync.head, &excluded)?;
        Ok(item(
            SyncResult::Failed,
            format!(
                "{why}; the sync was given up: its branch is back at {}{left}",
                sync.head.short()
            ),
            paths,
            Some(sync.head),
        ))
    };
    // The git directory the worktree shares with the user's checkout, as it was: whatever
    // the resolver plants or moves there is undone once it is gone.
    let guard = RunGuard::new(layout.git.clone(), workflow);
    let watch = match guard.before(sync.dir, sync.branch, None) {
        Ok(watch) => watch,
        Err(why) => return give_up(format!("the resolver was not started: {why}"), paths),
    };
    let ran = run_resolver(
        workflow,
        layout,
        &sync,
        agent,
        choice.model.as_deref(),
        &paths,
        settings,
    )
    .await;
    let keep_in = layout.site.flow_dir().join("undone").join(format!("sync-{}", ws.name));
    let tampering = guard.after(watch, &keep_in).lines();
    if !tampering.is_empty() {
        return give_up(
            format!(
                "the resolver `{}` changed the git directory ({}; undone, copies in {})",
                agent.name,
                tampering.join("; "),
                keep_in.display()
            ),
            paths,
        );
    }
    let said = match ran {
        Ok(said) => said,
        Err(why) => return give_up(format!("the resolver `{}` {why}", agent.name), paths),
    };
    let problems = layout.git.check_worktree_integrity(sync.dir, sync.branch, sync.head)?;
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(describe).collect();
        return give_up(format!("the resolver {}", list.join("; ")), paths);
    }
    let head = if layout.git.merge_in_progress(sync.dir)? {
        let markers = files_with_markers(sync.dir, &paths);
        if !markers.is_empty() {
            return give_up(
                format!("the resolver left conflict markers in {}", markers.join(", ")),
                markers,
            );
        }
        layout.git.commit_all_finishing_merge(sync.dir, &message, &excluded)?;
        layout.git.branch_head(sync.branch)?
    } else {
        // It committed the merge itself, or gave it up: the commit must hold both sides and
        // no marker, with nothing left beside it.
        let head = layout.git.branch_head(sync.branch)?;
        let finished = match head {
            Some(h) => {
                layout.git.is_ancestor(sync.onto, h)?
                    && layout.git.files_with_markers_at(h, &paths)?.is_empty()
                    && layout.git.is_dirty(sync.dir, &excluded)?.is_empty()
            }
            None => false,
        };
        if !finished {
            return give_up(
                format!(
                    "the resolver `{}` ended without finishing the merge (it gave it up, committed \
                     something else, or left changes beside it)",
                    agent.name
                ),
                paths,
            );
        }
        head
    };
    let Some(head) = head else {
        return give_up(format!("its branch `{}` is gone", sync.branch), paths);
    };
    let entry = crate::decision_log::entry(
        &ws.name,
        &paths,
        &format!("the resolver agent `{}` (`flow sync --agent`)", agent.name),
        said.as_deref(),
    );
    let _ = crate::decision_log::append(&decision_log(workflow, layout), &entry);
    Ok(item(
        SyncResult::Resolved,
        format!(
            "merged {into} ({}) in, conflicts in {} resolved by the resolver `{}`; now at {}",
            sync.onto.short(),
            paths.join(", "),
            agent.name,
            head.short()
        ),
        paths,
        Some(head),
    ))
}

/// Runs the resolver in the worktree with the merge in progress; its final message, or how
/// it failed.
async fn run_resolver(
    workflow: &Workflow,
    layout: &Layout,
    sync: &Conflicting<'_>,
    agent: &flow_dsl::Agent,
    model: Option<&str>,
    paths: &[String],
    settings: &ResolverSettings,
) -> Result<Option<String>, String> {
    let ws = &workflow.workstreams[sync.index];
    if agent.api.is_some() {
        // The conversation loop runs inside `flow run` only.
        return Err(format!(
            "agent `{}` talks to a model API: resolve the conflict in a run (`on-conflict \"agent\"`) or by hand",
            agent.name
        ));
    }
    let log_path = decision_log(workflow, layout);
    let decisions = std::fs::read_to_string(&log_path).unwrap_or_default();
    let handoffs = crate::handoff::decisions_about(&decisions, &ws.name);
    let handoffs = if handoffs.is_empty() {
        String::new()
    } else {
        format!("## Decisions already made\n\n{handoffs}\n\n")
    };
    let others: Vec<usize> = (0..workflow.workstreams.len()).filter(|&i| i != sync.index).collect();
    let hunks = conflict_hunks(sync.dir, paths, HUNKS_LIMIT);
    let prompt = context::resolve_prompt(workflow, sync.index, &others, &hunks, &handoffs);
    let folder = sync.dir.join(context::context_dir(&ws.name));
    let prompt_file = folder.join("resolve.md");
    context::hide_from_git(&sync.dir.join(".ai").join("worktrees"))
        .and_then(|()| std::fs::create_dir_all(&folder))
        .and_then(|()| std::fs::write(&prompt_file, &prompt))
        .map_err(|e| format!("could not be given its prompt: {e}"))?;
    let model_name = model.or(ws.model.as_deref());
    let runner = Runner {
        agent,
        command: &agent.command,
        model: model_name.and_then(|m| workflow.models.get(m)),
        model_name,
    };
    let values = Placeholders {
        prompt: &prompt,
        prompt_file: &prompt_file,
        worktree: sync.dir,
        session: "",
    };
    let mut extra = BTreeMap::new();
    for (name, value) in [
        ("FLOW_WORKSTREAM", ws.name.clone()),
        ("FLOW_ATTEMPT", "1".into()),
        ("FLOW_PURPOSE", "resolve".into()),
        ("FLOW_FEEDBACK_KIND", "conflict".into()),
        ("FLOW_WORKTREE", sync.dir.display().to_string()),
        ("FLOW_INTO", layout.into.clone()),
        ("FLOW_PROMPT_FILE", prompt_file.display().to_string()),
        ("FLOW_REPO", layout.git.root().display().to_string()),
    ] {
        extra.insert(name.to_string(), value);
    }
    let launched = launch(
        workflow,
        sync.index,
        &runner,
        &values,
        &settings.parent_env,
        &extra,
        None,
    )
    .map_err(|e| format!("could not start: {e}"))?;
    let mut spec = launched.spec;
    spec.log_path = Some(sync_log(layout));
    spec.grace = settings.grace;
    let mut reader = OutputReader::new(agent.output);
    let on_line = each_line(|line: OutputLine<'_>| {
        if !line.is_stderr() {
            reader.feed_line(line.text);
        }
        Control::Continue
    });
    let outcome = run_process(spec, on_line, settings.stop.clone())
        .await
        .map_err(|e| format!("could not run: {e}"))?;
    let exit_code = match outcome.end {
        crate::agent::process::ProcessEnd::Exited(code) => Some(code),
        _ => None,
    };
    let report = reader.finish(exit_code, &outcome.stderr_tail);
    match (&outcome.end, report.error) {
        (end, _) if !end.is_success() => Err(format!("failed ({end})")),
        (_, Some(error)) => Err(format!("failed ({error})")),
        _ => Ok(report.result),
    }
}

/// Puts the workstream's branch and worktree back at `head`: a merge in progress is given
/// up, whatever the resolver committed taken back out. A worktree the resolver moved to
/// another branch (or detached) is left as it is, its branch alone put back; returns a note
/// saying so.
fn restore(layout: &Layout, dir: &Path, branch: &str, head: Oid, keep: &[&str]) -> Result<String, GitError> {
    let on_branch = layout
        .git
        .worktrees()?
        .into_iter()
        .any(|w| w.path == dir && !w.missing && w.branch.as_deref() == Some(branch));
    if on_branch {
        // A hard reset also ends a merge in progress, and makes a deleted branch again.
        layout.git.reset_worktree(dir, head, keep)?;
        return Ok(String::new());
    }
    let now = layout.git.branch_head(branch)?;
    if now != Some(head) {
        layout
            .git
            .set_branch(branch, head, now, "flow sync: the resolver's work is given up")?;
    }
    Ok(format!(
        " (its worktree {} is no longer on it and was left as it is)",
        dir.display()
    ))
}

/// Where a by-hand resolution is logged: the decision log of the workflow's latest run, so a
/// resume and later agents see it; `.flow/conflict_resolution.md` when it has never run.
fn decision_log(workflow: &Workflow, layout: &Layout) -> PathBuf {
    let site = &layout.site;
    site.runs()
        .into_iter()
        .rev()
        .map(|id| site.run_dir(&id))
        .find(|run| run.load().is_ok_and(|s| s.workflow == workflow.name))
        .map_or_else(
            || site.flow_dir().join(crate::decision_log::FILE_NAME),
            |run| run.decision_log_path(),
        )
}

/// The log of the resolvers `flow sync --agent` runs.
fn sync_log(layout: &Layout) -> PathBuf {
    layout.site.flow_dir().join("sync.log")
}

fn describe(problem: &IntegrityProblem) -> String {
    match problem {
        IntegrityProblem::FolderMissing => "deleted its worktree folder".to_string(),
        IntegrityProblem::GitFileTouched { detail } => format!("touched .git: {detail}"),
        IntegrityProblem::SwitchedBranch { now } => format!("switched its worktree to branch {now}"),
        IntegrityProblem::Detached { at } => format!("detached its worktree's HEAD (at {at})"),
        IntegrityProblem::BranchMissing => "deleted its branch".to_string(),
        IntegrityProblem::RewroteHistory { head } => format!("rewrote its branch's history (head {head})"),
    }
}
