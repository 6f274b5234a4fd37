//! The guard of the shared git directory around each agent of a run: a snapshot before the
//! agent starts, a comparison once its processes are gone, and the undo of whatever it
//! changed (a planted hook, a `core.fsmonitor`, a moved ref of the user's), with copies of
//! what the undo removed kept in the run's folder. The git side is [`crate::git`]'s guard;
//! this is when to take which snapshot.
//!
//! Every agent's snapshot is taken on a base, the one taken when no agent was running: a
//! snapshot read while another agent runs would take in that agent's change, and its undo
//! would put the change back. The base is taken again each time the count of agents running
//! falls to zero, so the user's own work between agents never shows up as an agent's.
//!
//! Agents run side by side, and a comparison after one agent sees what another still at work
//! changed meanwhile. So a change is charged to an agent that could make it: the one compared,
//! when its kernel sandbox lets it write where the change is (or it has none); else the agents
//! still at work that could (without a sandbox, or one that lets them write there), each told
//! when it ends, since the change is undone before; else, with nobody else in view, the one
//! compared after all. A sandboxed agent ending beside one without a sandbox that planted a
//! hook goes on, and the one that planted it fails: not the other way round. A charge is also
//! written beside the charged agent's kept snapshot (`.charge`), so that a crash of flow
//! before that agent ends does not lose it: `flow resume` adds it to what the comparison finds.
//!
//! Each agent's snapshot is also written to the run's folder (`guard/`, atomically) before
//! the agent starts, and deleted once the comparison is done: when flow itself dies while
//! the agent runs, `flow resume` finds it there, stops what the dead run left running, and
//! compares and undoes as the run would have ([`check_left`]). A snapshot that cannot be
//! written keeps the agent from starting.
//!
//! Guarded: every agent that runs in a linked worktree (its own, a reviewer's, the resolver's
//! in the integration worktree). Not guarded: agents of `isolation "none"` workstreams, which
//! have no worktree of their own to name; the kernel sandbox keeps them off `.git`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flow_dsl::Workflow;
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::git::{Git, GitDirChange, GitSnapshot, Guarded, UserPlaces, is_lent_line, is_taken_out_line};
use crate::sandbox::Writable;

/// The refs that are not the guard's business: the ones flow moves during a run.
pub(crate) fn flow_refs(workflow: &Workflow) -> Vec<String> {
    let mut refs: Vec<String> = workflow.workstreams.iter().map(|ws| workflow.branch_of(ws)).collect();
    refs.push(workflow.into.clone());
    refs.push("refs/heads/flow-tmp/".to_string());
    refs
}

/// The guard of one run.
pub(crate) struct RunGuard {
    git: Git,
    user: UserPlaces,
    flow_refs: Vec<String>,
    inner: Mutex<Inner>,
    /// Held through each comparison, its undo and its charges: one agent's comparison that
    /// undoes a change must not let another's, at the same time, see nothing and end before
    /// the first could charge it.
    comparing: Mutex<()>,
}

#[derive(Default)]
struct Inner {
    base: Option<Arc<GitSnapshot>>,
    /// The agents under watch now, by id (none: the next snapshot takes a new base).
    watched: HashMap<u64, Watched>,
    next_id: u64,
    /// Changes another agent's comparison found that only these agents, still at work, could
    /// make: each one's, by id, said when it ends.
    charged: HashMap<u64, Vec<String>>,
}

/// An agent under watch, for the others' comparisons.
struct Watched {
    workstream: String,
    reach: Reach,
    /// Where its snapshot is kept: what it is charged with is kept beside it
    /// ([`charge_file`]), for a resume after a crash of flow.
    kept_at: Option<PathBuf>,
}

/// The file beside a kept snapshot that holds what its agent was charged with by another's
/// comparison (one line each, JSON), until its own comparison is done.
pub(crate) fn charge_file(kept: &Path) -> PathBuf {
    kept.with_extension("charge")
}

/// Where an agent can write: the writable places of its kernel sandbox, `None` without one
/// (anywhere its user can).
pub(crate) type Reach = Option<Vec<Writable>>;

/// One agent under watch: what its git directory held before it started.
#[derive(Serialize, Deserialize)]
pub(crate) struct Watch {
    snapshot: GitSnapshot,
    worktree: PathBuf,
    branch: String,
    /// The workstream the agent works for, by name (for `flow resume`).
    #[serde(default)]
    workstream: String,
    /// Where this watch is kept on disk until the comparison is done.
    #[serde(skip)]
    kept_at: Option<PathBuf>,
    /// Its id among the agents under watch.
    #[serde(skip)]
    id: u64,
    /// Where its agent can write (none kept on disk: after a crash, every change is its own).
    #[serde(skip)]
    reach: Reach,
}

/// What an agent changed in the git directory, and what the undo did.
#[derive(Debug, Default)]
pub(crate) struct Tampering {
    /// Each change, named exactly (`changed .git/config: core.fsmonitor set to ...`).
    pub found: Vec<String>,
    /// What the undo could not put back: a person must look.
    pub left: Vec<String>,
}

impl RunGuard {
    pub(crate) fn new(git: Git, workflow: &Workflow) -> RunGuard {
        RunGuard {
            git,
            user: UserPlaces::from_environment(),
            flow_refs: flow_refs(workflow),
            inner: Mutex::new(Inner::default()),
            comparing: Mutex::new(()),
        }
    }

    fn guarded<'a>(&'a self, worktree: &'a Path, branch: &'a str) -> Guarded<'a> {
        Guarded {
            worktree,
            branch,
            flow_refs: &self.flow_refs,
            user: &self.user,
        }
    }

    /// Takes the snapshot of an agent about to start in `worktree` on `branch` (blocking),
    /// which can write where `reach` says. Every successful call must be followed by
    /// [`RunGuard::after`].
    pub(crate) fn before(&self, worktree: &Path, branch: &str, reach: Reach) -> Result<Watch, String> {
        let guarded = self.guarded(worktree, branch);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.watched.is_empty() || inner.base.is_none() {
            let base = self
                .git
                .snapshot_git_dir(&guarded, None)
                .map_err(|e| format!("cannot read the git directory before the agent: {e}"))?;
            inner.base = Some(Arc::new(base));
        }
        let base = inner.base.clone().expect("a base was just taken");
        let snapshot = self
            .git
            .snapshot_git_dir(&guarded, Some(&base))
            .map_err(|e| format!("cannot read the git directory before the agent: {e}"))?;
        inner.next_id += 1;
        let id = inner.next_id;
        inner.watched.insert(
            id,
            Watched {
                workstream: String::new(),
                reach: reach.clone(),
                kept_at: None,
            },
        );
        Ok(Watch {
            snapshot,
            worktree: worktree.to_path_buf(),
            branch: branch.to_string(),
            workstream: String::new(),
            kept_at: None,
            id,
            reach,
        })
    }

    /// Takes the snapshot as [`RunGuard::before`] does, and keeps it in `file` until
    /// [`RunGuard::after`] is done with it, so that a `flow resume` after a crash of flow
    /// compares with it ([`check_left`]); an agent whose snapshot cannot be kept does not start.
    pub(crate) fn before_kept(
        &self,
        worktree: &Path,
        branch: &str,
        workstream: &str,
        reach: Reach,
        file: PathBuf,
    ) -> Result<Watch, String> {
        let mut watch = self.before(worktree, branch, reach)?;
        watch.workstream = workstream.to_string();
        if let Some(watched) = self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .watched
            .get_mut(&watch.id)
        {
            watched.workstream = workstream.to_string();
        }
        let kept = serde_json::to_vec(&watch)
            .map_err(|e| e.to_string())
            .and_then(|json| write_atomic(&file, &json).map_err(|e| e.to_string()));
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = kept {
            inner.watched.remove(&watch.id);
            inner.charged.remove(&watch.id);
            return Err(format!(
                "cannot keep the snapshot of the git directory in {}: {e}",
                file.display()
            ));
        }
        // Kept: what it is charged with from now on is kept beside it.
        if let Some(watched) = inner.watched.get_mut(&watch.id) {
            watched.kept_at = Some(file.clone());
        }
        drop(inner);
        watch.kept_at = Some(file);
        Ok(watch)
    }

    /// Compares the git directory with `watch` once its agent's processes are gone, and
    /// undoes what changed, copies of what the undo removes going to `keep_in` (blocking).
    ///
    /// A change is the agent's own when it could make it (its sandbox lets it write there, or
    /// it has none). One it could not make, while agents that could are still at work, is
    /// charged to them (each is told when it ends, and fails); with none at work that could,
    /// it is the agent's all the same: nobody else is in view.
    pub(crate) fn after(&self, watch: Watch, keep_in: &Path) -> Tampering {
        let _one_at_a_time = self.comparing.lock().unwrap_or_else(|e| e.into_inner());
        let guarded = self.guarded(&watch.worktree, &watch.branch);
        let changes = self.git.git_dir_changes(&watch.snapshot, &guarded).map(|changes| {
            changes
                .into_iter()
                .filter(|c| !self.lent_only(&watch.snapshot, c))
                .collect::<Vec<_>>()
        });
        let mut tampering = match &changes {
            Err(e) => Tampering {
                found: vec![],
                left: vec![format!("cannot compare the git directory after the agent: {e}")],
            },
            Ok(changes) if changes.is_empty() => Tampering::default(),
            Ok(changes) => match self.git.undo_git_dir_changes(&watch.snapshot, changes, Some(keep_in)) {
                Ok(report) => Tampering {
                    found: vec![],
                    left: report.left,
                },
                Err(e) => Tampering {
                    found: vec![],
                    left: vec![format!("cannot undo: {e}")],
                },
            },
        };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.watched.remove(&watch.id);
        for change in changes.unwrap_or_default() {
            let said = change.to_string();
            let path = self.place_of(&change);
            if within(&watch.reach, &path) {
                tampering.found.push(said);
                continue;
            }
            let suspects: Vec<(u64, String)> = inner
                .watched
                .iter()
                .filter(|(_, other)| within(&other.reach, &path))
                .map(|(&id, other)| (id, other.workstream.clone()))
                .collect();
            if suspects.is_empty() {
                tampering.found.push(said);
                continue;
            }
            for (id, _) in suspects {
                let by = match watch.workstream.as_str() {
                    "" => "another agent".to_string(),
                    name => format!("`{name}`"),
                };
                let charged = inner.charged.entry(id).or_default();
                charged.push(format!(
                    "{said} (found and undone when {by} ended; made while this agent was at work, and only \
                     agents like it, without a sandbox that keeps them out of there, could)"
                ));
                let charged = charged.clone();
                if let Some(kept) = inner.watched.get(&id).and_then(|other| other.kept_at.as_ref())
                    && let Ok(json) = serde_json::to_vec(&charged)
                {
                    // Lost only with the disk: the agent's own comparison still finds nothing.
                    let _ = write_atomic(&charge_file(kept), &json);
                }
            }
        }
        if let Some(charged) = inner.charged.remove(&watch.id) {
            tampering.found.extend(charged);
        }
        drop(inner);
        if let Some(file) = &watch.kept_at {
            // What it was charged with is in the findings now (the copy kept for a resume is
            // done with, as the snapshot is).
            let _ = std::fs::remove_file(charge_file(file));
            let _ = std::fs::remove_file(file);
        }
        tampering
    }

    /// The file a change is in, for the question of who could write it.
    fn place_of(&self, change: &GitDirChange) -> PathBuf {
        let common = self.git.common_dir();
        match change {
            GitDirChange::File { path, .. } => path.clone(),
            GitDirChange::Ref { name, .. } => common.join(name),
            GitDirChange::Stash { .. } => common.join("refs/stash"),
            GitDirChange::PackedRefs { .. } => common.join("packed-refs"),
        }
    }
}

/// Tells whether an agent that can write where `reach` says can write `path`.
fn within(reach: &Reach, path: &Path) -> bool {
    let Some(places) = reach else {
        return true;
    };
    // Every kind of place covers its path and what is beneath it.
    places.iter().any(|place| path.starts_with(&place.path))
}

/// What a snapshot left in a run's folder found: the workstream (by name), what changed,
/// and the file to delete once the finding is recorded.
pub(crate) struct LeftWatch {
    pub workstream: String,
    pub tampering: Tampering,
    pub file: PathBuf,
}

/// Compares the git directory with every snapshot a run left in `dir` (its agents cut by a
/// crash of flow, their processes stopped since), and undoes what changed, copies going to
/// `keep_in/<file name>` (blocking). A snapshot that cannot be read is a finding too: a
/// person must look.
pub(crate) fn check_left(git: &Git, workflow: &Workflow, dir: &Path, keep_in: &Path) -> Vec<LeftWatch> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let guard = RunGuard::new(git.clone(), workflow);
    let mut left = vec![];
    for file in files {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let read = std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice::<Watch>(&bytes).map_err(|e| e.to_string()));
        let (workstream, tampering) = match read {
            Ok(watch) => {
                let workstream = watch.workstream.clone();
                // Compared even when the worktree is gone: an agent that removes its own
                // worktree does not take the shared git directory with it.
                let mut tampering = guard.after(watch, &keep_in.join(&stem));
                // What another agent's comparison charged it with before flow died.
                tampering.found.extend(read_charges(&file));
                (workstream, tampering)
            }
            Err(e) => (
                String::new(),
                Tampering {
                    found: vec![],
                    left: vec![format!("cannot read the snapshot {}: {e}", file.display())],
                },
            ),
        };
        left.push(LeftWatch {
            workstream,
            tampering,
            file,
        });
    }
    left
}

impl RunGuard {
    /// Tells whether a change is only flow's own lines of `objects/info/alternates`: the
    /// object folders of the agents at work, listed while they run ([`Git::lend_objects`]),
    /// and the comments that stand in for those taken out.
    fn lent_only(&self, snapshot: &GitSnapshot, change: &GitDirChange) -> bool {
        let GitDirChange::File { path, .. } = change else {
            return false;
        };
        if *path != self.git.alternates_path() {
            return false;
        }
        let root = self.git.root();
        let others = |bytes: Option<Vec<u8>>| -> Option<Vec<String>> {
            let text = String::from_utf8(bytes.unwrap_or_default()).ok()?;
            Some(
                text.lines()
                    .filter(|line| !is_lent_line(root, line) && !is_taken_out_line(line))
                    .map(str::to_owned)
                    .collect(),
            )
        };
        let before = others(snapshot.file_content(path));
        let now = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => others(std::fs::read(path).ok()),
            Ok(_) => None,
            Err(_) => others(None),
        };
        before.is_some() && before == now
    }
}

/// What the agent whose snapshot is kept in `kept` was charged with, if anything.
fn read_charges(kept: &Path) -> Vec<String> {
    std::fs::read(charge_file(kept))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

impl Tampering {
    /// The sentences for the record: each change, then what could not be undone.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut lines = self.found.clone();
        lines.extend(self.left.iter().map(|l| format!("NOT UNDONE: {l}")));
        lines
    }
}
