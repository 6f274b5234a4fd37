//! Merging branches into an integration branch, in memory.

use std::collections::BTreeSet;

use git2::{Index, MergeOptions, Repository};

use super::branch::{compare_and_swap, read_ref};
use super::error::GitContext;
use super::paths::repo_path;
use super::repo::{branch_ref, flow_signature, short_branch};
use super::{Git, GitError, Oid};

/// Says what merging a branch into another did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MergeOutcome {
    /// The target was an ancestor and now points at the merged head.
    FastForward {
        /// The target's new head.
        to: Oid,
    },
    /// A merge commit was written and the target now points at it.
    Merged {
        /// The merge commit.
        commit: Oid,
    },
    /// The merged head already was part of the target; nothing changed.
    UpToDate,
    /// The merge conflicts; the target was left untouched.
    Conflict {
        /// The conflicting paths, sorted.
        paths: Vec<String>,
    },
}

impl Git {
    /// Merges the commit `branch_head` into the branch `into` without touching any
    /// working tree: a fast-forward when possible, otherwise a merge commit with parents
    /// `[into's head, branch_head]` written as `flow <flow@localhost>`.
    ///
    /// `into` must exist and must not be checked out anywhere
    /// (`GitError::BranchCheckedOut`). On conflicts `into` is left untouched and the
    /// paths are returned. The branch is moved with compare-and-swap.
    pub fn merge_into(&self, into: &str, branch_head: Oid, message: &str) -> Result<MergeOutcome, GitError> {
        let full = branch_ref(into)?;
        let Some(expected) = self.branch_head(&full)? else {
            return Err(GitError::UnknownBranch(short_branch(&full).to_owned()));
        };
        self.merge_into_expecting(into, expected, branch_head, message)
    }

    /// Works as `merge_into`, but merges onto `expected_into_head` and only moves `into`
    /// if it still points there; otherwise it fails with `GitError::RefMoved`. This lets
    /// a caller insist on the last integration commit it recorded.
    pub fn merge_into_expecting(
        &self,
        into: &str,
        expected_into_head: Oid,
        branch_head: Oid,
        message: &str,
    ) -> Result<MergeOutcome, GitError> {
        let full = branch_ref(into)?;
        let short = short_branch(&full).to_owned();
        let repo = self.open()?;
        if let Some(path) = self.checked_out_at(&repo, &full)? {
            return Err(GitError::BranchCheckedOut { branch: short, path });
        }
        let actual = read_ref(&repo, &full)?;
        if actual != Some(expected_into_head) {
            return Err(GitError::RefMoved {
                branch: short,
                expected: Some(expected_into_head),
                actual,
            });
        }
        if self.is_ancestor(branch_head, expected_into_head)? {
            return Ok(MergeOutcome::UpToDate);
        }
        let first_line = message.lines().next().unwrap_or_default();
        if self.is_ancestor(expected_into_head, branch_head)? {
            compare_and_swap(
                &repo,
                &full,
                branch_head,
                Some(expected_into_head),
                &format!("flow: fast-forward: {first_line}"),
            )?;
            return Ok(MergeOutcome::FastForward { to: branch_head });
        }

        let ours = repo
            .find_commit(expected_into_head.raw())
            .context(|| format!("read commit {expected_into_head}"))?;
        let theirs = repo
            .find_commit(branch_head.raw())
            .context(|| format!("read commit {branch_head}"))?;
        let mut index = repo
            .merge_commits(&ours, &theirs, Some(&MergeOptions::new()))
            .context(|| format!("merge {} into `{short}`", branch_head.short()))?;
        let paths = conflict_paths(&index)?;
        if !paths.is_empty() {
            return Ok(MergeOutcome::Conflict { paths });
        }
        let tree_id = index
            .write_tree_to(&repo)
            .context(|| format!("write the merged tree for `{short}`"))?;
        let tree = repo.find_tree(tree_id).context(|| format!("read tree {tree_id}"))?;
        let signature = flow_signature()?;
        let commit = repo
            .commit(None, &signature, &signature, message, &tree, &[&ours, &theirs])
            .context(|| format!("write the merge commit for `{short}`"))?;
        compare_and_swap(
            &repo,
            &full,
            commit.into(),
            Some(expected_into_head),
            &format!("flow: merge: {first_line}"),
        )?;
        Ok(MergeOutcome::Merged { commit: commit.into() })
    }

    /// Lists the paths that would conflict when merging `b` into `a`, computed in
    /// memory; an empty list means the merge is clean.
    pub fn trial_merge(&self, a: Oid, b: Oid) -> Result<Vec<String>, GitError> {
        let repo = self.open()?;
        let index = merge_in_memory(&repo, a, b)?;
        conflict_paths(&index)
    }
}

/// Merges commit `b` into commit `a` in memory and returns the resulting index.
fn merge_in_memory(repo: &Repository, a: Oid, b: Oid) -> Result<Index, GitError> {
    let ours = repo.find_commit(a.raw()).context(|| format!("read commit {a}"))?;
    let theirs = repo.find_commit(b.raw()).context(|| format!("read commit {b}"))?;
    repo.merge_commits(&ours, &theirs, Some(&MergeOptions::new()))
        .context(|| format!("merge {} into {}", b.short(), a.short()))
}

/// Collects the sorted paths of every conflict in a merged index (all sides' paths, so
/// a rename conflict names both).
fn conflict_paths(index: &Index) -> Result<Vec<String>, GitError> {
    if !index.has_conflicts() {
        return Ok(Vec::new());
    }
    let mut paths = BTreeSet::new();
    let conflicts = index.conflicts().context(|| "list merge conflicts".to_owned())?;
    for conflict in conflicts {
        let conflict = conflict.context(|| "read a merge conflict".to_owned())?;
        for entry in [&conflict.ancestor, &conflict.our, &conflict.their]
            .into_iter()
            .flatten()
        {
            paths.insert(repo_path(&entry.path));
        }
    }
    Ok(paths.into_iter().collect())
}
