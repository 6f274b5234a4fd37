//! Uncommitted changes in a worktree.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use git2::{Repository, Status, StatusOptions, StatusShow};

use super::error::GitContext;
use super::paths::{is_under, is_under_any, repo_path};
use super::{Git, GitError};

impl Git {
    /// Lists the uncommitted paths of the worktree at `dir` (staged, unstaged and
    /// untracked; ignored files excluded), leaving out paths under the `ignore`
    /// prefixes. An empty list means clean. `dir` may also be the checkout at the root.
    pub fn is_dirty(&self, dir: &Path, ignore: &[&str]) -> Result<Vec<String>, GitError> {
        let (repo, path) = self.open_worktree(dir)?;
        dirty_paths(&repo, &path, ignore)
    }

    /// Tells whether the worktree at `dir` holds anything uncommitted outside the `ignore`
    /// prefixes: what `is_dirty` would list, found faster. Staged changes are found by
    /// comparing the index's tree with HEAD's (no folder of HEAD is read); the files only
    /// against the index. Anything unclear (conflicts, no HEAD) counts as uncommitted.
    pub fn has_uncommitted(&self, dir: &Path, ignore: &[&str]) -> Result<bool, GitError> {
        let (repo, path) = self.open_worktree(dir)?;
        // Before the index is read: a later rewrite only makes its entries look racier.
        let index_time = fs::metadata(repo.path().join("index"))
            .ok()
            .map(|meta| (meta.mtime(), meta.mtime_nsec()));
        let mut index = repo
            .index()
            .context(|| format!("read the index of `{}`", path.display()))?;
        let head_tree = repo.head().and_then(|head| head.peel_to_tree()).map(|tree| tree.id());
        if index.has_conflicts() || index.write_tree().ok() != head_tree.ok() {
            return Ok(true);
        }
        let by_stat = index_time.and_then(|time| unchanged_by_stat(&index, time, &path, ignore));
        if let Some(dirty) = by_stat.map(|clean| !clean) {
            return Ok(dirty);
        }
        Ok(!status_paths(&repo, &path, ignore, StatusShow::Workdir)?.is_empty())
    }
}

/// Lists the uncommitted paths of `repo`, sorted, without the `ignore` prefixes.
pub(crate) fn dirty_paths(repo: &Repository, path: &Path, ignore: &[&str]) -> Result<Vec<String>, GitError> {
    status_paths(repo, path, ignore, StatusShow::IndexAndWorkdir)
}

/// Lists the paths `git status` shows (`show`: staged, unstaged and untracked ones, or the
/// last two only), sorted, ignored files and the `ignore` prefixes left out.
fn status_paths(repo: &Repository, path: &Path, ignore: &[&str], show: StatusShow) -> Result<Vec<String>, GitError> {
    let mut options = StatusOptions::new();
    options
        .show(show)
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .include_unmodified(false)
        .exclude_submodules(false);
    let statuses = repo
        .statuses(Some(&mut options))
        .context(|| format!("read the status of `{}`", path.display()))?;
    let mut paths = BTreeSet::new();
    for entry in statuses.iter() {
        let status = entry.status();
        if status.is_empty() || status.contains(Status::IGNORED) {
            continue;
        }
        let file = repo_path(entry.path_bytes());
        if !is_under_any(&file, ignore) {
            paths.insert(file);
        }
    }
    Ok(paths.into_iter().collect())
}

/// Tells from stat data alone, as `git diff-files` and `git status` first do, whether the
/// files of a worktree are exactly what its index says and nothing untracked lies around
/// (outside the `ignore` prefixes): `Some(true)` when sure, `Some(false)` when a tracked
/// file is gone, `None` whenever only reading content could tell (a file whose stat data
/// differs, one written too close to the index to trust its stat data, anything not in
/// the index, which may be ignored or not), leaving the answer to libgit2's status.
fn unchanged_by_stat(index: &git2::Index, index_time: (i64, i64), root: &Path, ignore: &[&str]) -> Option<bool> {
    let empty_blob = git2::Oid::hash_object(git2::ObjectType::Blob, b"").ok()?;
    let entries: Vec<git2::IndexEntry> = index.iter().collect();
    let mut files = HashSet::new();
    let mut folders = HashSet::new();
    for entry in &entries {
        // Flags beyond the path length (stages, skip-worktree, intent-to-add), submodules,
        // and entries git smudged (size 0 for content that is not empty) to force a look.
        if entry.flags & !0x0fff != 0
            || entry.flags_extended != 0
            || entry.mode == 0o160000
            || (entry.file_size == 0 && entry.id != empty_blob)
        {
            return None;
        }
        let path = std::str::from_utf8(&entry.path).ok()?;
        let meta = match fs::symlink_metadata(root.join(path)) {
            Ok(meta) => meta,
            Err(error) if error.kind() == ErrorKind::NotFound => return Some(false),
            Err(_) => return None,
        };
        let kind_matches = match entry.mode {
            0o120000 => meta.file_type().is_symlink(),
            0o100755 => meta.is_file() && meta.mode() & 0o100 != 0,
            0o100644 => meta.is_file() && meta.mode() & 0o100 == 0,
            _ => false,
        };
        let same = kind_matches
            && meta.size() as u32 == entry.file_size
            && meta.ino() as u32 == entry.ino
            && (meta.mtime() as i32, meta.mtime_nsec() as u32) == (entry.mtime.seconds(), entry.mtime.nanoseconds())
            && (meta.ctime() as i32, meta.ctime_nsec() as u32) == (entry.ctime.seconds(), entry.ctime.nanoseconds());
        // Racily clean: changed in the same instant the index was written.
        let racy = (i64::from(entry.mtime.seconds()), i64::from(entry.mtime.nanoseconds())) >= index_time;
        if !same || racy {
            return None;
        }
        let mut folder = path;
        while let Some((parent, _)) = folder.rsplit_once('/') {
            if !folders.insert(parent) {
                break;
            }
            folder = parent;
        }
        files.insert(path);
    }
    only_known_entries(root, "", &files, &folders, ignore).then_some(true)
}

/// Tells whether the folder `relative` of the worktree at `root` holds only tracked files,
/// folders holding tracked files, and what lies under the `ignore` prefixes.
fn only_known_entries(
    root: &Path,
    relative: &str,
    files: &HashSet<&str>,
    folders: &HashSet<&str>,
    ignore: &[&str],
) -> bool {
    let Ok(entries) = fs::read_dir(root.join(relative)) else {
        return false;
    };
    for entry in entries {
        let Ok(entry) = entry else { return false };
        let Ok(name) = entry.file_name().into_string() else {
            return false;
        };
        if relative.is_empty() && name == ".git" {
            continue;
        }
        let path = if relative.is_empty() {
            name
        } else {
            format!("{relative}/{name}")
        };
        if files.contains(path.as_str()) || is_under_any(&path, ignore) {
            continue;
        }
        // A tracked folder, or one on the way to an ignored prefix (`.ai` of `.ai/worktrees/`).
        let leads_to_ignored = ignore.iter().any(|prefix| is_under(prefix, &path));
        let is_folder = entry.file_type().is_ok_and(|kind| kind.is_dir());
        if !(is_folder && (folders.contains(path.as_str()) || leads_to_ignored)) {
            return false;
        }
        if !only_known_entries(root, &path, files, folders, ignore) {
            return false;
        }
    }
    true
}
