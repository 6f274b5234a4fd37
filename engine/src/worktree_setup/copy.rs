//! Files of the user's checkout that git does not track, copied into new worktrees: a
//! workstream's `copy` globs and the repository's `.worktreeinclude`.
//!
//! A `copy` glob matches paths from the root as `owns` globs do (`*` stops at `/`); a
//! `.worktreeinclude` has gitignore syntax (a pattern without a slash matches at any depth,
//! `/` anchors, `!` negates) and, as Claude Code reads it, copies only what git ignores. A
//! folder that matches and holds no tracked file is copied whole. Each file is cloned (a
//! reflink, `FICLONE`) where the file system can, else copied; nothing that exists in the
//! worktree is overwritten. Only the folders that can hold a match are walked: the literal
//! folder each glob starts with, the root only for globs that start with a wildcard.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// The name of the file at the repository's root that lists ignored files to copy.
pub const WORKTREE_INCLUDE: &str = ".worktreeinclude";

/// What to copy, found once in the user's checkout and copied into each new worktree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyList {
    /// Paths relative to the root (files, links, or folders copied whole), sorted.
    pub paths: Vec<String>,
}

/// The globs of one source of paths to copy.
struct Patterns {
    include: GlobSet,
    exclude: GlobSet,
    /// The literal folders the globs start in: only these are walked.
    starts: Vec<String>,
    /// Only what git ignores is copied (`.worktreeinclude`).
    ignored_only: bool,
}

impl CopyList {
    /// Finds what `globs` and the root's `.worktreeinclude` name in the checkout at `root`:
    /// files and folders git does not track. `skip` are folders never looked into (flow's
    /// own, the worktrees).
    pub fn find(root: &Path, globs: &[String], skip: &[PathBuf]) -> Result<CopyList, String> {
        let mut sources = vec![];
        if !globs.is_empty() {
            sources.push(patterns(globs.iter().map(String::as_str), &[], false)?);
        }
        if let Ok(text) = fs::read_to_string(root.join(WORKTREE_INCLUDE)) {
            let (include, exclude) = gitignore_globs(&text);
            if !include.is_empty() {
                sources.push(patterns(include.iter().map(String::as_str), &exclude, true)?);
            }
        }
        if sources.is_empty() {
            return Ok(CopyList::default());
        }
        let repo = git2::Repository::open(root).map_err(|e| format!("cannot open {}: {e}", root.display()))?;
        let index = repo.index().map_err(|e| format!("cannot read the index: {e}"))?;
        let mut tracked: HashSet<Vec<u8>> = HashSet::new();
        let mut tracked_folders: HashSet<Vec<u8>> = HashSet::new();
        for entry in index.iter() {
            let path = entry.path;
            for (i, b) in path.iter().enumerate() {
                if *b == b'/' {
                    tracked_folders.insert(path[..i].to_vec());
                }
            }
            tracked.insert(path);
        }
        let mut found = Finder {
            root,
            skip,
            repo: &repo,
            tracked: &tracked,
            tracked_folders: &tracked_folders,
            paths: vec![],
        };
        for source in &sources {
            let mut starts = source.starts.clone();
            starts.sort();
            starts.dedup();
            // A start inside another start is walked with it.
            let mut walked: Vec<&str> = vec![];
            for start in &starts {
                if walked
                    .iter()
                    .any(|w| w.is_empty() || start.starts_with(&format!("{w}/")))
                {
                    continue;
                }
                walked.push(start);
                found.walk(source, start)?;
            }
        }
        found.paths.sort();
        found.paths.dedup();
        // A path inside a folder copied whole is copied with it.
        let mut paths: Vec<String> = vec![];
        for path in found.paths {
            if paths.last().is_some_and(|last| path.starts_with(&format!("{last}/"))) {
                continue;
            }
            paths.push(path);
        }
        Ok(CopyList { paths })
    }

    /// Copies every path from `root` into the worktree at `dir`, keeping what is there.
    pub fn copy_into(&self, root: &Path, dir: &Path) -> Result<(), String> {
        for path in &self.paths {
            let (from, to) = (root.join(path), dir.join(path));
            // Never through a link the worktree's tree holds (a committed `config -> ~/.ssh`
            // would send the copy outside the worktree).
            if through_link(dir, path) {
                return Err(format!(
                    "cannot copy {path}: a folder above it in the worktree is a link"
                ));
            }
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            copy_tree(&from, &to).map_err(|e| format!("cannot copy {path} into {}: {e}", dir.display()))?;
        }
        Ok(())
    }

    /// Tells whether `path` (relative to the root) is a copied file or inside a copied folder.
    pub fn holds(&self, path: &str) -> bool {
        self.paths
            .iter()
            .any(|p| path == p || path.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('/')))
    }
}

struct Finder<'a> {
    root: &'a Path,
    skip: &'a [PathBuf],
    repo: &'a git2::Repository,
    tracked: &'a HashSet<Vec<u8>>,
    tracked_folders: &'a HashSet<Vec<u8>>,
    paths: Vec<String>,
}

impl Finder<'_> {
    /// Walks the folder `start` (relative; empty for the root) for paths `source` matches.
    fn walk(&mut self, source: &Patterns, start: &str) -> Result<(), String> {
        let mut pending = vec![start.to_string()];
        while let Some(folder) = pending.pop() {
            let full = self.root.join(&folder);
            if folder == ".git" || self.skip.iter().any(|s| s == &full) {
                continue;
            }
            let entries = match fs::read_dir(&full) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => continue,
                Err(e) => return Err(format!("cannot read {}: {e}", full.display())),
            };
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let relative = if folder.is_empty() {
                    name.clone()
                } else {
                    format!("{folder}/{name}")
                };
                if relative == ".git" || self.skip.iter().any(|s| s == &entry.path()) {
                    continue;
                }
                let is_folder = entry.file_type().is_ok_and(|t| t.is_dir());
                let matched = source.include.is_match(&relative) && !source.exclude.is_match(&relative);
                if matched && (!source.ignored_only || self.ignored(&relative, is_folder)) {
                    if !is_folder && !self.tracked.contains(relative.as_bytes()) {
                        self.paths.push(relative);
                        continue;
                    }
                    if is_folder && !self.tracked_folders.contains(relative.as_bytes()) {
                        self.paths.push(relative);
                        continue;
                    }
                }
                if is_folder {
                    pending.push(relative);
                }
            }
        }
        Ok(())
    }

    fn ignored(&self, relative: &str, is_folder: bool) -> bool {
        let path = if is_folder {
            format!("{relative}/")
        } else {
            relative.to_string()
        };
        self.repo.is_path_ignored(&path).unwrap_or(false)
    }
}

/// Compiles globs (matched from the root, `*` stopping at `/`) with the folders to walk.
fn patterns<'g>(
    include: impl Iterator<Item = &'g str>,
    exclude: &[String],
    ignored_only: bool,
) -> Result<Patterns, String> {
    let glob = |text: &str| -> Result<Glob, String> {
        GlobBuilder::new(text)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("bad copy glob `{text}`: {e}"))
    };
    let (mut inc, mut exc, mut starts) = (GlobSetBuilder::new(), GlobSetBuilder::new(), vec![]);
    for text in include {
        let text = text.trim_start_matches("./").trim_end_matches('/');
        inc.add(glob(text)?);
        starts.push(literal_start(text));
    }
    for text in exclude {
        exc.add(glob(text)?);
    }
    let build = |b: GlobSetBuilder| b.build().map_err(|e| format!("bad copy globs: {e}"));
    Ok(Patterns {
        include: build(inc)?,
        exclude: build(exc)?,
        starts,
        ignored_only,
    })
}

/// The folder a glob's literal leading components name (empty: the root).
fn literal_start(glob: &str) -> String {
    let parts: Vec<&str> = glob.split('/').collect();
    let literal = |p: &&&str| !p.contains(['*', '?', '[', '{', '\\']);
    let count = parts[..parts.len().saturating_sub(1)]
        .iter()
        .take_while(literal)
        .count();
    parts[..count].join("/")
}

/// Turns gitignore lines into root-relative globs to include and to exclude.
fn gitignore_globs(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut include, mut exclude) = (vec![], vec![]);
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negated, pattern) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, line.strip_prefix('\\').unwrap_or(line)),
        };
        let pattern = pattern.trim_end_matches('/');
        if pattern.is_empty() {
            continue;
        }
        let glob = match pattern.strip_prefix('/') {
            Some(anchored) => anchored.to_string(),
            None if pattern.contains('/') => pattern.to_string(),
            None => format!("**/{pattern}"),
        };
        if negated {
            exclude.push(glob);
        } else {
            include.push(glob);
        }
    }
    (include, exclude)
}

/// Tells whether a folder above `path` (relative) under `dir` is a symbolic link.
fn through_link(dir: &Path, path: &str) -> bool {
    let mut at = dir.to_path_buf();
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        at.push(part);
        if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

/// Copies a file, link or folder; a file is cloned where the file system can. What exists
/// at `to` is kept (a folder is merged into, never through a link).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    if let Ok(existing) = fs::symlink_metadata(to) {
        if meta.is_dir() && existing.is_dir() {
            for entry in fs::read_dir(from)? {
                let entry = entry?;
                copy_tree(&entry.path(), &to.join(entry.file_name()))?;
            }
        }
        return Ok(());
    }
    if meta.file_type().is_symlink() {
        return std::os::unix::fs::symlink(fs::read_link(from)?, to);
    }
    if meta.is_dir() {
        fs::create_dir(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        return fs::set_permissions(to, meta.permissions());
    }
    if meta.is_file() {
        return clone_or_copy(from, to, &meta);
    }
    // Sockets, pipes and devices are not copied.
    Ok(())
}

/// Clones a regular file (a reflink: no data copied), or copies it where the file system
/// cannot clone.
fn clone_or_copy(from: &Path, to: &Path, meta: &fs::Metadata) -> std::io::Result<()> {
    let source = fs::File::open(from)?;
    let target = fs::OpenOptions::new().write(true).create_new(true).open(to)?;
    if rustix::fs::ioctl_ficlone(&target, &source).is_err() {
        drop(target);
        fs::remove_file(to)?;
        fs::copy(from, to)?;
    }
    fs::set_permissions(to, meta.permissions())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_lines_become_root_relative_globs() {
        let (include, exclude) = gitignore_globs("# comment\n.env\n/config/local.toml\nnode_modules/\n!keep.env\n\n");
        assert_eq!(include, ["**/.env", "config/local.toml", "**/node_modules"]);
        assert_eq!(exclude, ["**/keep.env"]);
    }

    #[test]
    fn only_the_literal_folders_of_a_glob_are_walked() {
        assert_eq!(literal_start(".env"), "");
        assert_eq!(literal_start("config/local/*.toml"), "config/local");
        assert_eq!(literal_start("**/.env"), "");
        assert_eq!(literal_start("a/*/b"), "a");
    }

    #[test]
    fn a_copy_never_goes_through_a_link_in_the_worktree() {
        let root = tempfile::tempdir().expect("temp");
        let (user, worktree, elsewhere) = (root.path().join("u"), root.path().join("w"), root.path().join("x"));
        for dir in [&user, &worktree, &elsewhere] {
            fs::create_dir_all(dir).expect("mkdir");
        }
        fs::create_dir_all(user.join("config")).expect("mkdir");
        fs::write(user.join("config/local.toml"), "secret").expect("write");
        std::os::unix::fs::symlink(&elsewhere, worktree.join("config")).expect("link");
        let list = CopyList {
            paths: vec!["config/local.toml".into()],
        };
        assert!(list.copy_into(&user, &worktree).is_err());
        assert!(!elsewhere.join("local.toml").exists());
    }

    #[test]
    fn a_copied_folder_holds_what_is_under_it() {
        let list = CopyList {
            paths: vec![".env".into(), "node_modules".into()],
        };
        assert!(list.holds(".env"));
        assert!(list.holds("node_modules/x/y.js"));
        assert!(!list.holds("node_modules2"));
        assert!(!list.holds(".envrc"));
    }
}
