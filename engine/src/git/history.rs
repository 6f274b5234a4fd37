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
