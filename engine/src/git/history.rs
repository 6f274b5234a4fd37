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
