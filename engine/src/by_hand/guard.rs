//! The guard of the shared git directory for sessions people run by hand: `flow prepare`
//! keeps a snapshot of it per worktree, `flow merge` compares before merging a workstream,
//! and refuses (and undoes) what an agent must not have done.
//!
//! A run watches each agent from start to end; a prepared worktree is handed to a person
//! who starts whatever agent they like in it, for as long as they like, so the comparison
//! spans days of the person's own work too. What counts, and why:
//!
//! - Every watched file counts (the shared and the worktree's configuration, hooks, `info/`,
//!   the user's global configuration, what `core.hooksPath` and `include.path` point at, a
//!   `packed-refs` git reads differently): this is where planted commands run, and people
//!   rarely change it by hand. A change the person made themselves is undone too (a copy is
//!   kept) and refused once; they make it again after `flow prepare`.
//! - A ref counts unless it is what a person does every day: HEAD of the main checkout
//!   switching branches; a new branch or tag; the branch checked out in the main checkout
//!   moving forward (the person committing, or pulling); a branch or tag deleted whose commit
//!   HEAD of the main checkout still holds (nothing is lost, as `git branch -d` checks);
//!   remote-tracking refs (`git fetch`); the stash (people stash and pop). Everything else
//!   counts: `refs/replace/` and `refs/notes/` (they change what git shows), a branch moved
//!   back or sideways, a branch not checked out that moved, a tag moved.
//! - Not caught: commits an agent adds on top of the branch checked out in the main
//!   checkout (they look like the person's own; they show in `git log`), and anything the
//!   snapshot's place allows: an agent that can write `.flow/` can rewrite the snapshot.
//!
//! A refusal sticks: the workstream stays refused in later `flow merge`s until `flow prepare`
//! runs again and finds the git directory as its snapshot had it, which takes a new one.
//! That is the person's word that they read the branch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use flow_dsl::Workflow;
use serde::{Deserialize, Serialize};

use super::Layout;
use crate::atomic::write_atomic;
use crate::git::{GitDirChange, GitError, GitSnapshot, Guarded, RefTarget, UserPlaces};

/// The snapshot of one prepared worktree, as `.flow/guard/<workflow>/<workstream>.json` holds it.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    worktree: PathBuf,
    branch: String,
    snapshot: GitSnapshot,
    /// What a `flow merge` found and undid; while not empty the workstream is refused.
    #[serde(default)]
    refused: Vec<String>,
}

/// What a comparison of one prepared worktree found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No snapshot to compare with (none stored, or the worktree is gone).
    Unchecked,
    /// As the snapshot had it.
    Clean,
    /// Refused by an earlier `flow merge`, and still as the snapshot had it after the undo.
    RefusedBefore(Vec<String>),
    /// Changed since the snapshot: each change, named.
    Changed(Vec<String>),
    /// The snapshot or the repository could not be read.
    Unreadable(String),
}

/// The guard of one workflow's prepared worktrees.
pub(crate) struct SessionGuard<'a> {
    layout: &'a Layout,
    workflow: &'a Workflow,
    user: UserPlaces,
    flow_refs: Vec<String>,
    dir: PathBuf,
}

impl<'a> SessionGuard<'a> {
    pub(crate) fn new(layout: &'a Layout, workflow: &'a Workflow) -> SessionGuard<'a> {
        let mut flow_refs = crate::run::guard::flow_refs(workflow);
        // `git fetch`, and `flow merge --fetch`, move them; nothing runs from them.
        flow_refs.push("refs/remotes/".to_owned());
        SessionGuard {
            layout,
            workflow,
            user: UserPlaces::from_environment(),
            flow_refs,
            dir: layout.site.flow_dir().join("guard").join(&workflow.name),
        }
    }

    fn path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{}.json", self.workflow.workstreams[index].name))
    }

    /// Where the undo of a workstream keeps copies of what it removed.
    fn undone_dir(&self, index: usize) -> PathBuf {
        self.dir.join("undone").join(&self.workflow.workstreams[index].name)
    }

    fn guarded<'b>(&'b self, worktree: &'b Path, branch: &'b str) -> Guarded<'b> {
        Guarded {
            worktree,
            branch,
            flow_refs: &self.flow_refs,
            user: &self.user,
        }
    }

    fn load(&self, index: usize) -> Result<Option<Stored>, String> {
        let path = self.path(index);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    }

    fn save(&self, index: usize, stored: &Stored) -> Result<(), String> {
        let path = self.path(index);
        let json = serde_json::to_vec(stored).map_err(|e| e.to_string())?;
        write_atomic(&path, &json).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Takes and stores a new snapshot for each of `indices` (their worktrees made and set
    /// up), one read of the git directory shared by all; says for each what went wrong.
    pub(crate) fn take(&self, indices: &[usize]) -> BTreeMap<usize, String> {
        let mut failed = BTreeMap::new();
        let mut base: Option<GitSnapshot> = None;
        for &i in indices {
            let ws = &self.workflow.workstreams[i];
            let worktree = self.layout.worktree_of(&ws.name);
            let branch = self.workflow.branch_of(ws);
            let taken = self
                .layout
                .git
                .snapshot_git_dir(&self.guarded(&worktree, &branch), base.as_ref());
            let snapshot = match taken {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    failed.insert(i, format!("cannot take the snapshot of the git directory: {e}"));
                    continue;
                }
            };
            let stored = Stored {
                worktree,
                branch,
                snapshot,
                refused: vec![],
            };
            if let Err(e) = self.save(i, &stored) {
                failed.insert(i, e);
            }
            if base.is_none() {
                base = Some(stored.snapshot);
            }
        }
        failed
    }

    /// Compares the git directory with the snapshot of workstream `index`, counting only
    /// what a person does not do by hand (see the module doc).
    fn changes(&self, index: usize, stored: &Stored) -> Result<Vec<GitDirChange>, GitError> {
        let guarded = self.guarded(&stored.worktree, &stored.branch);
        let changes = self.layout.git.git_dir_changes(&stored.snapshot, &guarded)?;
        let head_before = stored.snapshot.ref_target("HEAD").cloned();
        let head_now = changes
            .iter()
            .find_map(|change| match change {
                GitDirChange::Ref { name, after, .. } if name == "HEAD" => Some(after.clone()),
                _ => None,
            })
            .unwrap_or_else(|| head_before.clone());
        let checked_out: BTreeSet<&str> = [&head_before, &head_now]
            .into_iter()
            .filter_map(|head| match head {
                Some(RefTarget::Symbolic(name)) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let head_commit = self.layout.git.resolve("HEAD").ok();
        let mut counted = Vec::new();
        for change in changes {
            if !self.by_hand(index, &change, &stored.snapshot, &checked_out, head_commit)? {
                counted.push(change);
            }
        }
        Ok(counted)
    }

    /// Tells whether a change is one a person makes by hand (or flow makes for another
    /// workstream), which the comparison leaves alone.
    fn by_hand(
        &self,
        index: usize,
        change: &GitDirChange,
        snapshot: &GitSnapshot,
        checked_out: &BTreeSet<&str>,
        head_commit: Option<crate::git::Oid>,
    ) -> Result<bool, GitError> {
        let git = &self.layout.git;
        let everyday = |name: &str| name.starts_with("refs/heads/") || name.starts_with("refs/tags/");
        Ok(match change {
            GitDirChange::Stash { .. } => true,
            GitDirChange::Ref { name, .. } if name == "HEAD" => true,
            GitDirChange::Ref {
                name,
                before: None,
                after: Some(_),
            } => everyday(name),
            GitDirChange::Ref {
                name,
                before: Some(RefTarget::Object(was)),
                after: None,
            } => {
                everyday(name)
                    && head_commit.is_some_and(|head| *was == head || git.is_ancestor(*was, head).unwrap_or(false))
            }
            GitDirChange::Ref {
                name,
                before: Some(RefTarget::Object(was)),
                after: Some(RefTarget::Object(now)),
            } => {
                name.starts_with("refs/heads/") && checked_out.contains(name.as_str()) && git.is_ancestor(*was, *now)?
            }
            GitDirChange::File {
                path,
                before: None,
                after: Some(after),
                ..
            } => self.prepared_since(index, snapshot, path, after),
            _ => false,
        })
    }

    /// Tells whether `path` is the `config.worktree` of a worktree `flow prepare` made after
    /// this snapshot, exactly as that worktree's own snapshot has it (its own comparison
    /// watches it from then on).
    fn prepared_since(&self, index: usize, snapshot: &GitSnapshot, path: &Path, after: &crate::git::FileState) -> bool {
        let worktrees = self.layout.git.common_dir().join("worktrees");
        let Ok(rest) = path.strip_prefix(&worktrees) else {
            return false;
        };
        let parts: Vec<_> = rest.components().collect();
        let [record, file] = parts.as_slice() else {
            return false;
        };
        if file.as_os_str() != "config.worktree" || snapshot.had_record(&record.as_os_str().to_string_lossy()) {
            return false;
        }
        (0..self.workflow.workstreams.len())
            .filter(|&other| other != index)
            .filter_map(|other| self.load(other).ok().flatten())
            .any(|other| other.snapshot.file_state(path) == Some(after))
    }

    /// Compares the git directory with the stored snapshot of workstream `index`.
    pub(crate) fn verdict(&self, index: usize) -> Verdict {
        let stored = match self.load(index) {
            Ok(Some(stored)) => stored,
            Ok(None) => return Verdict::Unchecked,
            Err(e) => return Verdict::Unreadable(e),
        };
        if !stored.worktree.is_dir() {
            return Verdict::Unchecked;
        }
        match self.changes(index, &stored) {
            Err(e) => Verdict::Unreadable(format!("cannot compare the git directory: {e}")),
            Ok(changes) if !changes.is_empty() => Verdict::Changed(changes.iter().map(ToString::to_string).collect()),
            Ok(_) if !stored.refused.is_empty() => Verdict::RefusedBefore(stored.refused),
            Ok(_) => Verdict::Clean,
        }
    }

    /// Compares the git directory for each of `indices` before `flow merge` merges any;
    /// undoes what counts and marks those workstreams refused. Returns the refusals, by
    /// workstream, and the workstreams it could not compare (no snapshot).
    ///
    /// All are compared before anything is undone: a change to the shared git directory
    /// cannot be told apart by workstream, so every workstream that sees it is refused.
    pub(crate) fn refuse_tampered(&self, indices: &[usize]) -> (BTreeMap<usize, String>, BTreeSet<usize>) {
        let mut refused = BTreeMap::new();
        let mut unchecked = BTreeSet::new();
        let mut found: Vec<(usize, Stored, Vec<GitDirChange>)> = Vec::new();
        for &i in indices {
            let stored = match self.load(i) {
                Ok(Some(stored)) if stored.worktree.is_dir() => stored,
                Ok(_) => {
                    unchecked.insert(i);
                    continue;
                }
                Err(e) => {
                    refused.insert(i, format!("{e}; `flow prepare` takes a new snapshot"));
                    continue;
                }
            };
            match self.changes(i, &stored) {
                Err(e) => {
                    refused.insert(i, format!("cannot compare the git directory: {e}"));
                }
                Ok(changes) if changes.is_empty() => {
                    if !stored.refused.is_empty() {
                        refused.insert(i, refused_before(&stored.refused));
                    }
                }
                Ok(changes) => found.push((i, stored, changes)),
            }
        }
        for (i, mut stored, changes) in found {
            let keep_in = self.undone_dir(i);
            let mut lines: Vec<String> = changes.iter().map(ToString::to_string).collect();
            // The same change seen by several workstreams is undone by the first.
            let undone = match self
                .layout
                .git
                .undo_git_dir_changes(&stored.snapshot, &changes, Some(&keep_in))
            {
                Ok(report) => {
                    lines.extend(report.left.iter().map(|left| format!("NOT UNDONE: {left}")));
                    if report.done.is_empty() {
                        "undone".to_owned()
                    } else {
                        format!("undone, copies of what was removed in {}", keep_in.display())
                    }
                }
                Err(e) => {
                    lines.push(format!("NOT UNDONE: {e}"));
                    "not undone".to_owned()
                }
            };
            let mut message = format!(
                "the git directory changed since `flow prepare`, as an agent must not change it: {} ({undone})",
                lines.join("; ")
            );
            stored.refused = lines;
            if let Err(e) = self.save(i, &stored) {
                message.push_str(&format!("; {e}"));
            }
            message.push_str("; nothing of it merged: read its branch, then `flow prepare` lets it merge again");
            refused.insert(i, message);
        }
        (refused, unchecked)
    }
}

/// Says why a workstream refused by an earlier `flow merge` is still refused.
fn refused_before(lines: &[String]) -> String {
    format!(
        "refused by an earlier `flow merge` (the git directory changed: {}); read its branch, then `flow prepare` lets it merge again",
        lines.join("; ")
    )
}
