//! Remote branches as the exchange between machines: each machine runs one workstream
//! (`flow run --only WS --push`) and pushes its branch with its result; the last one fetches
//! them all and merges them in the plan's order (`flow merge --fetch`).
//!
//! A workstream's result travels as a git note on its branch's head, in a notes ref of its own
//! (`refs/notes/` + its branch name, e.g. `refs/notes/flow/billing/api`): a note rides along
//! with the branch it describes, needs no file in the tree (the merged tree stays what a local
//! run makes), and one ref per workstream means jobs running at once never race to update a
//! shared notes ref. The note is JSON ([`ResultNote`]): the workstream's recorded state (what it
//! did, its test, its review, its usage and cost, its agent's summary for its dependents), the
//! commit its work started from, and the run's decision log.
//!
//! Why the start commit: a job merges its dependencies' branches itself, so a workstream's
//! branch holds merge commits that the final merge makes again as other commits. With two
//! dependencies or more, the branch and the integration branch then have more than one best
//! common ancestor, and "what it changed" measured from one of them would include another
//! dependency's files (and fail its scope). Measured from the recorded start, it is exactly
//! its own work.
//!
//! Network operations run the git CLI as a subprocess, so the user's credentials, SSH agent,
//! helpers and configuration work unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use flow_dsl::{Isolation, Workflow};
use serde::{Deserialize, Serialize};

use crate::git::{Git, GitError, Oid};
use crate::run::state::WorkstreamState;

/// The version of the note's JSON.
pub const NOTE_VERSION: u32 = 1;

/// A workstream's result, as its job pushes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultNote {
    pub version: u32,
    pub workflow: String,
    pub workstream: String,
    /// The run that made it (in the job's clone).
    pub run: String,
    /// The commit its work started from (its dependencies merged).
    pub start: Option<String>,
    /// Its state at the end of its run.
    pub state: WorkstreamState,
    /// The run's decision log, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_log: Option<String>,
}

/// Why exchanging with the remote failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExchangeError {
    #[error("git {args} failed: {message}")]
    #[diagnostic(
        code("flow::exchange::git"),
        help("the same command at a terminal shows what git needs")
    )]
    GitCommand { args: String, message: String },
    #[error("cannot start git: {0}")]
    #[diagnostic(code("flow::exchange::no_git"), help("install git; flow pushes and fetches with it"))]
    NoGit(std::io::Error),
    #[error("`{workstream}` has not been pushed to {remote} (no {branch} there)")]
    #[diagnostic(
        code("flow::exchange::not_pushed"),
        help("run its job first: `flow run FILE --only {workstream} --push`")
    )]
    NotPushed {
        workstream: String,
        remote: String,
        branch: String,
    },
    #[error("the local branch {branch} has commits that {remote}'s lacks")]
    #[diagnostic(
        code("flow::exchange::diverged"),
        help("push or delete the local branch, then fetch again")
    )]
    Diverged { branch: String, remote: String },
    #[error("the result note of `{workstream}` is unreadable: {message}")]
    #[diagnostic(code("flow::exchange::bad_note"))]
    BadNote { workstream: String, message: String },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Git(#[from] GitError),
}

/// The notes ref that holds a workstream's result.
pub fn notes_ref(workflow: &Workflow, index: usize) -> String {
    format!("refs/notes/{}", workflow.branch_of(&workflow.workstreams[index]))
}

/// The credential helper git is given on GitHub Actions: it answers with the job's token, read
/// from flow's environment when git asks, so the checkout need not keep credentials in
/// `.git/config` (`persist-credentials: false`), where every agent of the job could read them
/// and push anything. Agents never get `GITHUB_TOKEN` (see `agent::environment`). Elsewhere
/// git's own configuration is used as it is.
fn credential_helper() -> Option<&'static str> {
    let on_actions = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    let has_token = std::env::var("GITHUB_TOKEN").is_ok_and(|v| !v.trim().is_empty());
    (on_actions && has_token).then_some(
        "credential.helper=!f() { test \"$1\" = get && echo username=x-access-token && echo \"password=$GITHUB_TOKEN\"; }; f",
    )
}

/// Runs the git CLI in `root`; its standard output.
fn git(root: &Path, args: &[&str]) -> Result<String, ExchangeError> {
    let mut command = Command::new("git");
    if let Some(helper) = credential_helper() {
        command.args(["-c", helper]);
    }
    let output = command
        .arg("-C")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(ExchangeError::NoGit)?;
    if !output.status.success() {
        return Err(ExchangeError::GitCommand {
            args: args.join(" "),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What the remote holds: each ref name and its commit.
fn remote_refs(root: &Path, remote: &str) -> Result<BTreeMap<String, String>, ExchangeError> {
    let listing = git(root, &["ls-remote", remote])?;
    Ok(listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(oid, name)| (name.to_string(), oid.to_string()))
        .collect())
}

/// What was fetched for one workstream.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub index: usize,
    /// Its branch's head (none for `isolation "none"`).
    pub head: Option<Oid>,
    pub note: Option<ResultNote>,
}

/// Fetches the branches and result notes of the workstreams `which` from `remote` and sets
/// each local branch to its remote head (refusing one with local commits the remote lacks);
/// a workstream not on the remote is left out, or an error when `required`.
pub fn fetch(
    git_handle: &Git,
    remote: &str,
    workflow: &Workflow,
    which: &[usize],
    required: bool,
) -> Result<Vec<Fetched>, ExchangeError> {
    let root = git_handle.root();
    let there = remote_refs(root, remote)?;
    let mut refspecs = vec![];
    let mut present = vec![];
    for &i in which {
        let ws = &workflow.workstreams[i];
        let branch = workflow.branch_of(ws);
        let branch_ref = format!("refs/heads/{branch}");
        let notes = notes_ref(workflow, i);
        let has_branch = there.contains_key(&branch_ref);
        let has_note = there.contains_key(&notes);
        let pushed = match ws.isolation {
            Isolation::Worktree => has_branch,
            Isolation::None => has_note,
        };
        if !pushed {
            if required {
                return Err(ExchangeError::NotPushed {
                    workstream: ws.name.clone(),
                    remote: remote.to_string(),
                    branch: if ws.isolation == Isolation::Worktree {
                        branch
                    } else {
                        notes
                    },
                });
            }
            continue;
        }
        if has_branch && ws.isolation == Isolation::Worktree {
            refspecs.push(format!("+{branch_ref}:refs/remotes/{remote}/{branch}"));
        }
        if has_note {
            refspecs.push(format!("+{notes}:{notes}"));
        }
        present.push(i);
    }
    if !refspecs.is_empty() {
        let mut args = vec!["fetch", "--no-tags", "--quiet", remote];
        args.extend(refspecs.iter().map(String::as_str));
        git(root, &args)?;
    }
    let mut out = vec![];
    for i in present {
        let ws = &workflow.workstreams[i];
        let branch = workflow.branch_of(ws);
        let head = if ws.isolation == Isolation::Worktree {
            let fetched = git_handle.resolve(&format!("refs/remotes/{remote}/{branch}"))?;
            match git_handle.branch_head(&branch)? {
                Some(local) if local == fetched => {}
                Some(local) if !git_handle.is_ancestor(local, fetched)? => {
                    return Err(ExchangeError::Diverged {
                        branch,
                        remote: remote.to_string(),
                    });
                }
                local => {
                    git_handle.set_branch(&branch, fetched, local, "flow: fetch the workstream's pushed branch")?
                }
            }
            Some(fetched)
        } else {
            None
        };
        let note = read_note(git_handle, workflow, i)?;
        out.push(Fetched { index: i, head, note });
    }
    Ok(out)
}

/// The result note of a workstream, from its local notes ref.
pub fn read_note(git_handle: &Git, workflow: &Workflow, index: usize) -> Result<Option<ResultNote>, ExchangeError> {
    let repo = git_handle.open()?;
    let name = notes_ref(workflow, index);
    let Ok(notes) = repo.notes(Some(&name)) else {
        return Ok(None);
    };
    let bad = |message: String| ExchangeError::BadNote {
        workstream: workflow.workstreams[index].name.clone(),
        message,
    };
    // The ref holds one note: the job that pushed it wrote it alone.
    let Some(entry) = notes.into_iter().next() else {
        return Ok(None);
    };
    let (_, annotated) = entry.map_err(|e| bad(e.to_string()))?;
    let note = repo.find_note(Some(&name), annotated).map_err(|e| bad(e.to_string()))?;
    let text = note.message().map_err(|e| bad(e.to_string()))?;
    let parsed: ResultNote = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    Ok(Some(parsed))
}

/// Writes a workstream's result as the only note of its notes ref, on `commit`.
pub fn write_note(
    git_handle: &Git,
    workflow: &Workflow,
    index: usize,
    commit: Oid,
    note: &ResultNote,
) -> Result<(), ExchangeError> {
    let repo = git_handle.open()?;
    let name = notes_ref(workflow, index);
    let failed = |action: &str, error: git2::Error| {
        ExchangeError::Git(GitError::Git {
            action: format!("{action} {name}"),
            error,
        })
    };
    if let Ok(mut old) = repo.find_reference(&name) {
        old.delete().map_err(|e| failed("delete", e))?;
    }
    let signature = git2::Signature::now("flow", "flow@localhost").map_err(|e| failed("sign", e))?;
    let text = serde_json::to_string_pretty(note).expect("a result note serializes");
    repo.note(&signature, &signature, Some(&name), commit.raw(), &text, true)
        .map_err(|e| failed("write", e))?;
    Ok(())
}

/// Pushes a workstream's branch (when it has one) and its notes ref to `remote` at once
/// (`--atomic`: both or neither), replacing what an earlier job pushed.
pub fn push_workstream(git_handle: &Git, remote: &str, workflow: &Workflow, index: usize) -> Result<(), ExchangeError> {
    let ws = &workflow.workstreams[index];
    let notes = notes_ref(workflow, index);
    let mut refspecs = vec![format!("+{notes}:{notes}")];
    if ws.isolation == Isolation::Worktree {
        let branch = workflow.branch_of(ws);
        refspecs.insert(0, format!("+refs/heads/{branch}:refs/heads/{branch}"));
    }
    let mut args = vec!["push", "--atomic", "--quiet", remote];
    args.extend(refspecs.iter().map(String::as_str));
    git(git_handle.root(), &args)?;
    Ok(())
}

/// Pushes a branch to `remote` (no force: a remote branch that moved elsewhere is refused).
pub fn push_branch(git_handle: &Git, remote: &str, branch: &str) -> Result<(), ExchangeError> {
    let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
    git(git_handle.root(), &["push", "--quiet", remote, &spec])?;
    Ok(())
}

/// The dependencies of `index`, directly or not, without it.
pub fn dependencies_of(workflow: &Workflow, index: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = workflow.workstreams[index].dependencies.clone();
    while let Some(d) = stack.pop() {
        if seen.insert(d) {
            stack.extend(workflow.workstreams[d].dependencies.iter().copied());
        }
    }
    seen
}

/// The commit each fetched workstream's own work starts from, from its note.
pub fn starts(fetched: &[Fetched]) -> BTreeMap<usize, Oid> {
    fetched
        .iter()
        .filter_map(|f| {
            let note = f.note.as_ref()?;
            let start = note.state.base_commit.as_deref().or(note.start.as_deref())?;
            Some((f.index, start.parse().ok()?))
        })
        .collect()
}

/// A dependency that could not be merged before the workstream's run.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot start from the dependencies' work: `{workstream}` {result}: {detail}")]
#[diagnostic(
    code("flow::exchange::dependency_not_merged"),
    help("a local run would stop here too; `flow merge --fetch` in a clone shows the same")
)]
pub struct DependencyNotMerged {
    pub workstream: String,
    pub result: String,
    pub detail: String,
}

/// Fetches the dependencies of workstream `index` (directly or not) and merges their branches
/// into the integration branch in the plan's order, with `verify`; their recorded states, as
/// merged here, for the run of `index` to start after.
pub async fn merge_dependencies(
    plan: &crate::plan::Plan,
    layout: &crate::by_hand::Layout,
    integration: crate::integrate::Integration<'_>,
    remote: &str,
    index: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<(usize, WorkstreamState)>, miette::Report> {
    use crate::by_hand::merge::{MergeResult, MergeSelection, merge_selected};
    use crate::run::state::Phase;
    let workflow = &plan.workflow;
    let dependencies: Vec<usize> = dependencies_of(workflow, index).into_iter().collect();
    if dependencies.is_empty() {
        return Ok(vec![]);
    }
    let fetched = fetch(&layout.git, remote, workflow, &dependencies, true)?;
    let selection = MergeSelection {
        only: Some(dependencies.iter().copied().collect()),
        starts: starts(&fetched),
    };
    let items = merge_selected(plan, layout, integration, stop, &selection).await?;
    let mut done = vec![];
    for f in fetched {
        let ws = &workflow.workstreams[f.index];
        let mut state = match f.note {
            Some(note) => note.state,
            None => WorkstreamState::new(&ws.name, String::new(), crate::time::now()),
        };
        if ws.isolation == Isolation::Worktree {
            let item = items
                .iter()
                .find(|i| i.workstream == ws.name)
                .expect("every fetched dependency with a branch is in the merge's list");
            if !matches!(item.result, MergeResult::Merged | MergeResult::AlreadyMerged) {
                return Err(DependencyNotMerged {
                    workstream: ws.name.clone(),
                    result: item.result.to_string(),
                    detail: item.detail.clone(),
                }
                .into());
            }
            state.phase = Phase::Merged;
            state.merge_commit = item.commit.clone();
        } else if !state.phase.is_success() {
            state.phase = Phase::Done;
        }
        done.push((f.index, state));
    }
    Ok(done)
}
