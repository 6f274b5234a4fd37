//! Trial merges that count what worktrees hold uncommitted: each worktree's files are
//! written as a commit on top of its head, in memory only (libgit2's mempack backend), and
//! merged there. Nothing reaches the object database, no index or file of the worktree is
//! touched, and the merge's own automerged blobs stay in memory too.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use git2::build::TreeUpdateBuilder;
use git2::{FileMode, Repository};

use super::error::{GitContext, io_error};
use super::merge::{conflict_paths, merge_in_memory};
use super::repo::flow_signature;
use super::{Git, GitError, Oid};

/// One side of a trial merge: a commit, and the paths a worktree on it changed without
/// committing them (as `Git::is_dirty` lists them), read from the worktree's folder.
#[derive(Debug, Clone, Copy)]
pub struct TrialSide<'a> {
    pub head: Oid,
    pub worktree: Option<(&'a Path, &'a [String])>,
}

/// The priority of the in-memory backend: above the loose and packed ones, so every write
/// goes to it.
const IN_MEMORY_FIRST: i32 = 1000;

impl Git {
    /// Lists the paths that would conflict when merging side `b` into side `a`, each side
    /// its commit with its worktree's uncommitted files on top; an empty list means clean.
    pub fn trial_merge_sides(&self, a: TrialSide<'_>, b: TrialSide<'_>) -> Result<Vec<String>, GitError> {
        let repo = self.open()?;
        let odb = repo.odb().context(|| "open the object database".to_string())?;
        // The backend lives as long as `odb`, which outlives every write below.
        let _in_memory = odb
            .add_new_mempack_backend(IN_MEMORY_FIRST)
            .context(|| "add an in-memory object store".to_string())?;
        let a = snapshot(&repo, a)?;
        let b = snapshot(&repo, b)?;
        let index = merge_in_memory(&repo, a, b)?;
        conflict_paths(&index)
    }
}

/// The commit a side stands for: its head, or a commit of its worktree's files on top of it.
fn snapshot(repo: &Repository, side: TrialSide<'_>) -> Result<Oid, GitError> {
    let Some((dir, paths)) = side.worktree.filter(|(_, paths)| !paths.is_empty()) else {
        return Ok(side.head);
    };
    let head = repo
        .find_commit(side.head.raw())
        .context(|| format!("read commit {}", side.head))?;
    let base = head.tree().context(|| format!("read the tree of {}", side.head))?;
    let mut update = TreeUpdateBuilder::new();
    for path in paths {
        let full = dir.join(path);
        let meta = match fs::symlink_metadata(&full) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Gone: taken out of the tree (a file only ever staged is not in it).
                if base.get_path(Path::new(path)).is_ok() {
                    update.remove(path.as_str());
                }
                continue;
            }
            Err(e) => return Err(io_error("inspect", &full, e)),
        };
        // A link is stored as its target, never followed.
        let (bytes, mode) = if meta.file_type().is_symlink() {
            let target = fs::read_link(&full).map_err(|e| io_error("read the link", &full, e))?;
            (target.as_os_str().as_bytes().to_vec(), FileMode::Link)
        } else if meta.is_file() {
            let bytes = fs::read(&full).map_err(|e| io_error("read", &full, e))?;
            let executable = meta.permissions().mode() & 0o100 != 0;
            (
                bytes,
                if executable {
                    FileMode::BlobExecutable
                } else {
                    FileMode::Blob
                },
            )
        } else {
            // A folder (a nested repository) or something else: left as committed.
            continue;
        };
        let blob = repo.blob(&bytes).context(|| format!("hash `{}`", full.display()))?;
        update.upsert(path.as_str(), blob, mode);
    }
    let tree = update
        .create_updated(repo, &base)
        .context(|| format!("write the uncommitted files of `{}`", dir.display()))?;
    let tree = repo.find_tree(tree).context(|| format!("read tree {tree}"))?;
    let signature = flow_signature()?;
    let commit = repo
        .commit(None, &signature, &signature, "uncommitted work", &tree, &[&head])
        .context(|| format!("write the uncommitted work of `{}`", dir.display()))?;
    Ok(commit.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the objects the object database holds on disk (loose and packed).
    fn stored_objects(repo: &Repository) -> usize {
        let mut count = 0;
        repo.odb()
            .expect("odb")
            .foreach(|_| {
                count += 1;
                true
            })
            .expect("list objects");
        count
    }

    #[test]
    fn uncommitted_files_conflict_in_memory_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let repo = Repository::init(root).expect("init");
        let signature = git2::Signature::now("t", "t@t").expect("signature");
        let commit_file = |text: &str, parents: &[&git2::Commit<'_>]| -> Oid {
            let blob = repo.blob(text.as_bytes()).expect("blob");
            let mut builder = repo.treebuilder(None).expect("builder");
            builder.insert("shared.txt", blob, 0o100644).expect("insert");
            let tree = repo.find_tree(builder.write().expect("tree")).expect("tree");
            repo.commit(None, &signature, &signature, "c", &tree, parents)
                .expect("commit")
                .into()
        };
        let base = commit_file("one\n", &[]);
        let base_commit = repo.find_commit(base.raw()).expect("base");
        let other = commit_file("two by the other\n", &[&base_commit]);
        let git = Git::discover(root).expect("git");
        let objects = stored_objects(&repo);

        // Nothing uncommitted: the heads merge cleanly (one side did nothing).
        let head = TrialSide {
            head: base,
            worktree: None,
        };
        let theirs = TrialSide {
            head: other,
            worktree: None,
        };
        assert_eq!(
            git.trial_merge_sides(head, theirs).expect("merge"),
            Vec::<String>::new()
        );

        // The same line changed in the worktree, not committed: a conflict.
        fs::write(root.join("shared.txt"), "two by us\n").expect("write");
        fs::write(root.join("new.txt"), "new\n").expect("write");
        let paths = ["new.txt".to_string(), "shared.txt".to_string()];
        let dirty = TrialSide {
            head: base,
            worktree: Some((root, &paths)),
        };
        assert_eq!(git.trial_merge_sides(dirty, theirs).expect("merge"), ["shared.txt"]);
        assert_eq!(stored_objects(&repo), objects, "no object was written");
        assert_eq!(
            fs::read_to_string(root.join("shared.txt")).expect("read"),
            "two by us\n"
        );
    }
}
