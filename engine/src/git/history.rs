//! Reading history and trees: merge bases and the paths a commit holds.

use git2::{ObjectType, TreeWalkMode, TreeWalkResult};

use super::error::GitContext;
use super::{Git, GitError, Oid};

impl Git {
    /// The best common ancestor of two commits, if they share history.
    pub fn merge_base(&self, a: Oid, b: Oid) -> Result<Option<Oid>, GitError> {
        let repo = self.open()?;
        match repo.merge_base(a.raw(), b.raw()) {
            Ok(oid) => Ok(Some(oid.into())),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e).context(|| format!("find the merge base of {a} and {b}")),
        }
    }

    /// A commit's parents, in order.
    pub fn parents(&self, commit: Oid) -> Result<Vec<Oid>, GitError> {
        let repo = self.open()?;
        let found = repo
            .find_commit(commit.raw())
            .context(|| format!("read commit {commit}"))?;
        Ok(found.parent_ids().map(Oid::from).collect())
    }

    /// The integration commit a workstream's work at `head` is measured from: the latest
    /// commit of the branch `into` that `head` contains (a sync brings the integration branch
    /// in), or `start` when there is none past it. A merge base older than `start` (history
    /// rewound) gives `start`: the integrity check reports that.
    pub fn work_base(&self, start: Oid, head: Oid, into: &str) -> Result<Oid, GitError> {
        match self.branch_head(into)? {
            Some(tip) => self.work_base_at(start, head, tip),
            None => Ok(start),
        }
    }

    /// [`Git::work_base`] against the integration commit `integration` rather than a branch:
    /// a run passes its last good integration commit, which no agent can move (an agent that
    /// moved the integration branch onto its own work would otherwise hide that work from
    /// the scope check and its reviewer).
    pub fn work_base_at(&self, start: Oid, head: Oid, integration: Oid) -> Result<Oid, GitError> {
        match self.merge_base(head, integration)? {
            Some(base) if base != start && self.is_ancestor(start, base)? => Ok(base),
            _ => Ok(start),
        }
    }

    /// Every file path in a commit's tree, sorted.
    pub fn tree_paths(&self, commit: Oid) -> Result<Vec<String>, GitError> {
        let repo = self.open()?;
        let tree = repo
            .find_commit(commit.raw())
            .and_then(|c| c.tree())
            .context(|| format!("read the tree of {commit}"))?;
        let mut paths = vec![];
        tree.walk(TreeWalkMode::PreOrder, |root, entry| {
            if entry.kind() == Some(ObjectType::Blob)
                && let Ok(name) = entry.name()
            {
                paths.push(format!("{root}{name}"));
            }
            TreeWalkResult::Ok
        })
        .context(|| format!("walk the tree of {commit}"))?;
        paths.sort();
        Ok(paths)
    }
}

impl Git {
    /// Takes one merge step back out of the branch `into`: the change from `before` to
    /// `after` (the branch's heads around that merge) is undone on top of the branch's current
    /// head, in a new commit, in memory. Later merges stay. Returns the new head, or `None`
    /// when undoing it conflicts with what came later (the branch is then left alone).
    pub fn undo_merge(
        &self,
        into: &str,
        expected_head: Oid,
        before: Oid,
        after: Oid,
        message: &str,
    ) -> Result<Option<Oid>, GitError> {
        let repo = self.open()?;
        let tree_of = |oid: Oid| {
            repo.find_commit(oid.raw())
                .and_then(|c| c.tree())
                .context(|| format!("read the tree of {oid}"))
        };
        let (head_tree, before_tree, after_tree) = (tree_of(expected_head)?, tree_of(before)?, tree_of(after)?);
        let mut index = repo
            .merge_trees(&after_tree, &head_tree, &before_tree, None)
            .context(|| format!("undo the merge {after}"))?;
        if index.has_conflicts() {
            return Ok(None);
        }
        let tree_id = index
            .write_tree_to(&repo)
            .context(|| "write the undone tree".to_owned())?;
        let tree = repo.find_tree(tree_id).context(|| "read the undone tree".to_owned())?;
        let head = repo
            .find_commit(expected_head.raw())
            .context(|| format!("read {expected_head}"))?;
        let signature = super::repo::flow_signature()?;
        let commit = repo
            .commit(None, &signature, &signature, message, &tree, &[&head])
            .context(|| "write the undo commit".to_owned())?;
        let full = super::repo::branch_ref(into)?;
        super::branch::compare_and_swap(
            &repo,
            &full,
            commit.into(),
            Some(expected_head),
            "flow: undo a merge that runs again",
        )?;
        Ok(Some(commit.into()))
    }
}

/// How much one file changed: its path, the lines added and the lines removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub path: String,
    pub added: usize,
    pub removed: usize,
}

impl Git {
    /// The subjects of the commits in `to` that are not in `from` (newest first, at most
    /// `limit`), each with its short id.
    pub fn commit_subjects(&self, from: Oid, to: Oid, limit: usize) -> Result<Vec<String>, GitError> {
        let repo = self.open()?;
        let mut walk = repo.revwalk().context(|| "walk the history".to_string())?;
        walk.push(to.raw()).context(|| format!("walk from {to}"))?;
        walk.hide(from.raw()).context(|| format!("walk up to {from}"))?;
        let mut out = vec![];
        for id in walk.take(limit) {
            let id = id.context(|| "walk the history".to_string())?;
            let commit = repo.find_commit(id).context(|| format!("read commit {id}"))?;
            let subject = commit.summary().ok().flatten().unwrap_or("").to_string();
            out.push(format!("{} {subject}", &id.to_string()[..8]));
        }
        Ok(out)
    }

    /// The lines added and removed in each file from `from` to `to`.
    pub fn diffstat(&self, from: Oid, to: Oid) -> Result<Vec<FileStat>, GitError> {
        let repo = self.open()?;
        let tree = |id: Oid| {
            repo.find_commit(id.raw())
                .and_then(|c| c.tree())
                .context(|| format!("read the tree of {id}"))
        };
        let (old, new) = (tree(from)?, tree(to)?);
        let diff = repo
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .context(|| format!("diff {from} and {to}"))?;
        let mut stats = vec![];
        for i in 0..diff.deltas().len() {
            let Some(delta) = diff.get_delta(i) else { continue };
            let path = delta
                .new_file()
                .path()
                .or(delta.old_file().path())
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (added, removed) = match git2::Patch::from_diff(&diff, i) {
                Ok(Some(patch)) => patch.line_stats().map(|(_, a, r)| (a, r)).unwrap_or((0, 0)),
                _ => (0, 0),
            };
            stats.push(FileStat { path, added, removed });
        }
        Ok(stats)
    }

    /// The unified diff from `from` to `to`, at most `limit` bytes.
    pub fn diff_text(&self, from: Oid, to: Oid, limit: usize) -> Result<String, GitError> {
        let repo = self.open()?;
        let tree = |id: Oid| {
            repo.find_commit(id.raw())
                .and_then(|c| c.tree())
                .context(|| format!("read the tree of {id}"))
        };
        let (old, new) = (tree(from)?, tree(to)?);
        let diff = repo
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .context(|| format!("diff {from} and {to}"))?;
        let mut out = String::new();
        let mut cut = false;
        diff.print(git2::DiffFormat::Patch, |_, _, line| {
            if out.len() >= limit {
                cut = true;
                return false;
            }
            if matches!(line.origin(), '+' | '-' | ' ') {
                out.push(line.origin());
            }
            out.push_str(&String::from_utf8_lossy(line.content()));
            true
        })
        .or_else(|e| if cut { Ok(()) } else { Err(e) })
        .context(|| format!("print the diff of {from} and {to}"))?;
        if cut {
            out.push_str("\n[... the diff goes on: see the branch]\n");
        }
        Ok(out)
    }
}
