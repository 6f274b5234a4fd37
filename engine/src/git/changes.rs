//! Paths changed between two commits, with rename detection.

use git2::{Delta, DiffFindOptions, DiffOptions, Repository, Tree};

use super::error::GitContext;
use super::paths::repo_path;
use super::trees::{Entry, FOLDER_MODE, entries_by_name, is_folder};
use super::{Git, GitError, Oid};

/// Classifies how a path changed between two commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The path is new.
    Added,
    /// The path's content or mode changed.
    Modified,
    /// The path is gone.
    Deleted,
    /// The content moved from `old_path` to `path` (possibly with edits).
    Renamed,
    /// The path changed type (file, symlink, submodule).
    TypeChanged,
}

/// Describes one changed path between two commits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// The path after the change (for a deletion: the path that was deleted).
    pub path: String,
    /// The path before a rename; `None` for every other kind.
    pub old_path: Option<String>,
    /// How the path changed.
    pub kind: ChangeKind,
}

impl Change {
    /// Returns every path this change touches: the path, and the old path of a rename.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str()).chain(self.old_path.as_deref())
    }
}

impl Git {
    /// Lists the paths that differ between the trees of `from` and `to`, sorted by path,
    /// detecting renames the way `git diff -M` does.
    pub fn changed_paths(&self, from: Oid, to: Oid) -> Result<Vec<Change>, GitError> {
        let repo = self.open()?;
        let old_tree = tree_of(&repo, from)?;
        let new_tree = tree_of(&repo, to)?;
        // libgit2's diff reads every folder of both trees; the paths that differ are found
        // by reading only the folders that differ, and the diff (for renames) limited to them.
        let mut differing = Vec::new();
        differing_paths(&repo, Some(&old_tree), Some(&new_tree), &mut Vec::new(), &mut differing)
            .context(|| format!("compare {} with {}", from.short(), to.short()))?;
        if differing.is_empty() {
            return Ok(Vec::new());
        }
        let diff_of = |paths: &[Vec<u8>]| -> Result<git2::Diff<'_>, GitError> {
            let mut options = DiffOptions::new();
            options.include_typechange(true).disable_pathspec_match(true);
            for path in paths {
                options.pathspec(path.as_slice());
            }
            let mut diff = repo
                .diff_tree_to_tree(Some(&old_tree), Some(&new_tree), Some(&mut options))
                .context(|| format!("diff {} against {}", from.short(), to.short()))?;
            let mut find = DiffFindOptions::new();
            find.renames(true);
            diff.find_similar(Some(&mut find))
                .context(|| format!("find renames between {} and {}", from.short(), to.short()))?;
            Ok(diff)
        };
        // libgit2 still reads a pathspec as a pattern (`!x` excludes, `#x` is a comment,
        // trailing blanks go): the limited diff is used only when it lists every path found.
        let limited = differing.len() <= PATHSPEC_LIMIT;
        let mut diff = diff_of(if limited { &differing } else { &[] })?;
        if limited {
            let listed: std::collections::HashSet<&[u8]> = diff
                .deltas()
                .flat_map(|delta| [delta.old_file().path_bytes(), delta.new_file().path_bytes()])
                .flatten()
                .collect();
            if !differing.iter().all(|path| listed.contains(path.as_slice())) {
                diff = diff_of(&[])?;
            }
        }

        let mut changes = Vec::new();
        for delta in diff.deltas() {
            let old_path = delta.old_file().path_bytes().map(repo_path);
            let new_path = delta.new_file().path_bytes().map(repo_path);
            let (kind, path, old) = match delta.status() {
                Delta::Added | Delta::Copied => (ChangeKind::Added, new_path, None),
                Delta::Deleted => (ChangeKind::Deleted, old_path, None),
                Delta::Modified => (ChangeKind::Modified, new_path, None),
                Delta::Renamed => (ChangeKind::Renamed, new_path, old_path),
                Delta::Typechange => (ChangeKind::TypeChanged, new_path, None),
                _ => continue,
            };
            if let Some(path) = path {
                changes.push(Change {
                    path,
                    old_path: old,
                    kind,
                });
            }
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path).then(a.old_path.cmp(&b.old_path)));
        Ok(changes)
    }
}

/// The most paths a diff is limited to; beyond, the whole trees are compared.
const PATHSPEC_LIMIT: usize = 1000;

/// Appends to `out` the path of every file (and submodule) that differs between two
/// folders (`None`: absent), without reading the subfolders both have alike.
fn differing_paths(
    repo: &Repository,
    old: Option<&Tree<'_>>,
    new: Option<&Tree<'_>>,
    prefix: &mut Vec<u8>,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), git2::Error> {
    for (name, [before, after]) in entries_by_name([old, new]) {
        if before == after {
            continue;
        }
        let length = prefix.len();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(&name);
        let folder = |entry: Entry| match entry {
            Some((FOLDER_MODE, id)) => repo.find_tree(id).map(Some),
            _ => Ok(None),
        };
        let (old_folder, new_folder) = (folder(before)?, folder(after)?);
        if old_folder.is_some() || new_folder.is_some() {
            differing_paths(repo, old_folder.as_ref(), new_folder.as_ref(), prefix, out)?;
        }
        // A file on either side (beside or instead of a folder).
        if (before.is_some() && !is_folder(&before)) || (after.is_some() && !is_folder(&after)) {
            out.push(prefix.clone());
        }
        prefix.truncate(length);
    }
    Ok(())
}

/// Reads the tree of a commit (or a tree id itself).
pub(crate) fn tree_of(repo: &Repository, oid: Oid) -> Result<Tree<'_>, GitError> {
    repo.find_object(oid.raw(), None)
        .and_then(|object| object.peel_to_tree())
        .map_err(|error| match error.code() {
            git2::ErrorCode::NotFound => GitError::UnknownRevision(oid.to_string()),
            _ => GitError::Git {
                action: format!("read the tree of {oid}"),
                error,
            },
        })
}
