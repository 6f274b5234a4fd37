//! Writing a commit's files into a new worktree: the checkout behind `add_worktree`.
//!
//! libgit2's checkout loads the filter list of every file it writes, which looks up
//! `.gitattributes` files and resolves the real path of the file's folder each time: about
//! half of its time on a repository of small files. When nothing can filter or convert a
//! file (no line-ending or sparse-checkout setting, no submodules, and no attribute that
//! changes what a checkout writes), flow writes the blobs itself instead, on several
//! threads, and writes the index with each file's stat data, as `git checkout` would, so
//! that `git status` in the new worktree compares stat data instead of hashing files.
//! Anything else, and any tree with a path git would refuse to write, goes through
//! libgit2's checkout.
//!
//! Most real repositories have a `.gitattributes`, and most of what it says changes nothing
//! a checkout writes on this platform: `text`, `eol=lf`, `text=auto` (with `core.eol` unset
//! and `core.autocrlf` off, git writes the blob as it is), `-text`, `binary`, `whitespace`,
//! `diff`, `merge`, `linguist-*`, `export-ignore`. Only `filter`, `ident`,
//! `working-tree-encoding` and `eol=crlf` (or a macro that sets one) do. The lines that set
//! one are read from every attributes file ([`converted_files`]), and the files their
//! patterns may match (usually a handful: `*.bat eol=crlf`) are left to libgit2's checkout,
//! which writes them after flow wrote the rest, so one such line does not cost the whole tree its
//! fast path. The matching only has to find a superset: libgit2 decides each of those files
//! exactly. A quoted or escaped pattern on such a line, or one that matches half the tree or
//! more, sends the whole tree to libgit2.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use git2::build::CheckoutBuilder;
use git2::{IndexEntry, IndexTime, ObjectType, Repository, Tree};

use super::error::{GitContext, io_error};
use super::{Git, GitError, Oid};
use crate::parallel::in_parallel;

/// Files handed to a thread at a time.
const CHUNK: usize = 64;

/// A file of the tree: its path (bytes, `/`-separated), git mode and blob.
struct File {
    path: Vec<u8>,
    mode: u32,
    id: git2::Oid,
}

/// What the index records of a file just written.
#[derive(Clone, Copy, Default)]
struct Stat {
    ctime: (i64, i64),
    mtime: (i64, i64),
    dev: u64,
    ino: u64,
    uid: u32,
    gid: u32,
    size: u64,
}

impl Stat {
    fn of(meta: &fs::Metadata) -> Stat {
        Stat {
            ctime: (meta.ctime(), meta.ctime_nsec()),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            dev: meta.dev(),
            ino: meta.ino(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
        }
    }
}

impl Git {
    /// Writes the files of `commit` into the worktrees at `dirs` (new records with HEAD
    /// set, folders holding nothing but `.git`) and writes each one's index. The blobs are
    /// read once for all of them.
    pub(crate) fn populate_worktrees(&self, commit: Oid, dirs: &[PathBuf]) -> Result<(), GitError> {
        let repo = self.open()?;
        let tree = repo
            .find_commit(commit.raw())
            .and_then(|commit| commit.tree())
            .context(|| format!("read the tree of {commit}"))?;
        // The files whose attributes may convert them (none on most repositories) are written
        // again by libgit2's checkout after the rest; settings that convert every file, or
        // attributes too odd to match here, send the whole tree there.
        let plain = match outside_attributes(&repo, self.common_dir()) {
            Some(outside) => Walk::of(&repo, &tree)?.and_then(|walk| {
                let converted = converted_files(&repo, &walk, &outside)?;
                (converted.len() * 2 <= walk.files.len().max(1)).then_some((walk, converted))
            }),
            None => None,
        };
        let Some((walk, converted)) = plain else {
            for dir in dirs {
                let worktree = Repository::open(dir).context(|| format!("open the worktree `{}`", dir.display()))?;
                let mut checkout = CheckoutBuilder::new();
                checkout.force();
                worktree
                    .checkout_head(Some(&mut checkout))
                    .context(|| format!("check out the files of `{}`", dir.display()))?;
            }
            return Ok(());
        };

        // The whole second before this one (see `write_file`).
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let stamp = UNIX_EPOCH + Duration::from_secs(now.saturating_sub(1));
        let skipped: std::collections::HashSet<&[u8]> = converted.iter().map(Vec::as_slice).collect();
        // Folders, then files (each blob read once, written into every worktree), then
        // each index: each step on a few threads.
        in_parallel(
            dirs.len(),
            || Ok(()),
            |(), d| {
                walk.folders.iter().try_for_each(|folder| {
                    let path = dirs[d].join(OsStr::from_bytes(folder));
                    fs::create_dir(&path).map_err(|error| io_error("create folder", &path, error))
                })
            },
        )?;
        let chunks = in_parallel(
            walk.files.len().div_ceil(CHUNK),
            || self.open(),
            |repo, c| {
                let files = &walk.files[c * CHUNK..((c + 1) * CHUNK).min(walk.files.len())];
                let mut stats = Vec::with_capacity(files.len() * dirs.len());
                for file in files {
                    if skipped.contains(file.path.as_slice()) {
                        // Left to libgit2, which finds it missing; its index entry says
                        // nothing until libgit2 writes the file and its stat data.
                        stats.extend(std::iter::repeat_n(Stat::default(), dirs.len()));
                        continue;
                    }
                    let blob = repo.find_blob(file.id).context(|| format!("read blob {}", file.id))?;
                    for dir in dirs {
                        stats.push(write_file(dir, file, blob.content(), stamp)?);
                    }
                }
                Ok(stats)
            },
        )?;
        // Chunk by chunk, file by file, worktree by worktree: regrouped per worktree.
        let stats = chunks.concat();
        in_parallel(
            dirs.len(),
            || Ok(()),
            |(), d| {
                let mine: Vec<Stat> = stats.iter().skip(d).step_by(dirs.len()).copied().collect();
                write_index(&dirs[d], &walk.files, &mine)
            },
        )?;
        if !converted.is_empty() {
            for dir in dirs {
                let worktree = Repository::open(dir).context(|| format!("open the worktree `{}`", dir.display()))?;
                let mut checkout = CheckoutBuilder::new();
                checkout.force().disable_pathspec_match(true);
                for path in &converted {
                    checkout.path(OsStr::from_bytes(path));
                }
                worktree
                    .checkout_head(Some(&mut checkout))
                    .context(|| format!("check out the converted files of `{}`", dir.display()))?;
                restamp(&worktree, dir, &converted, stamp)?;
            }
        }
        Ok(())
    }
}

/// Dates the files at `paths` (as libgit2 just wrote them) at `stamp` and records their new
/// stat data in the worktree's index, as [`write_file`] does for the rest: written in the
/// index's second, git would take them for racily clean and hash them again at the next
/// `git status`, and a blob committed with CRLF that its attributes now convert would then
/// show as modified in a worktree nobody touched.
fn restamp(worktree: &Repository, dir: &Path, paths: &[Vec<u8>], stamp: SystemTime) -> Result<(), GitError> {
    let mut index = worktree
        .index()
        .context(|| format!("read the index of `{}`", dir.display()))?;
    for path in paths {
        let Some(mut entry) = index.get_path(Path::new(OsStr::from_bytes(path)), 0) else {
            continue;
        };
        let file = dir.join(OsStr::from_bytes(path));
        let meta = OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|handle| handle.set_modified(stamp).and_then(|()| handle.metadata()))
            .map_err(|error| io_error("date", &file, error))?;
        let stat = Stat::of(&meta);
        let time = |(seconds, nanoseconds): (i64, i64)| IndexTime::new(seconds as i32, nanoseconds as u32);
        entry.ctime = time(stat.ctime);
        entry.mtime = time(stat.mtime);
        entry.dev = stat.dev as u32;
        entry.ino = stat.ino as u32;
        entry.uid = stat.uid;
        entry.gid = stat.gid;
        entry.file_size = stat.size as u32;
        index
            .add(&entry)
            .context(|| format!("add `{}` to the index", String::from_utf8_lossy(path)))?;
    }
    index
        .write()
        .context(|| format!("write the index of `{}`", dir.display()))
}

/// Writes one file (or symbolic link) under `dir` and returns its stat data.
///
/// A regular file's modification time is set to `stamp`, a whole second before the index is
/// written: git (which compares whole seconds) would otherwise take every file written in the
/// same second as the index for "racily clean" and read and hash them all at the first
/// `git status` or `git commit` in the worktree. Any later edit gets a later time, so none
/// can go unnoticed.
fn write_file(dir: &Path, file: &File, content: &[u8], stamp: SystemTime) -> Result<Stat, GitError> {
    let path = dir.join(OsStr::from_bytes(&file.path));
    let meta = if file.mode == 0o120000 {
        std::os::unix::fs::symlink(OsStr::from_bytes(content), &path)
            .and_then(|()| fs::symlink_metadata(&path))
            .map_err(|error| io_error("create symbolic link", &path, error))?
    } else {
        let permissions = if file.mode == 0o100755 { 0o777 } else { 0o666 };
        let mut handle = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(permissions)
            .open(&path)
            .map_err(|error| io_error("create", &path, error))?;
        handle
            .write_all(content)
            .and_then(|()| handle.set_modified(stamp))
            .and_then(|()| handle.metadata())
            .map_err(|error| io_error("write", &path, error))?
    };
    Ok(Stat::of(&meta))
}

/// Writes the index of the worktree at `dir`: every file with its stat data.
fn write_index(dir: &Path, files: &[File], stats: &[Stat]) -> Result<(), GitError> {
    let repo = Repository::open(dir).context(|| format!("open the worktree `{}`", dir.display()))?;
    let mut index = repo
        .index()
        .context(|| format!("read the index of `{}`", dir.display()))?;
    index
        .clear()
        .context(|| format!("clear the index of `{}`", dir.display()))?;
    // Entries store the low 32 bits of these, as git does.
    let time = |(seconds, nanoseconds): (i64, i64)| IndexTime::new(seconds as i32, nanoseconds as u32);
    for (file, stat) in files.iter().zip(stats) {
        let entry = IndexEntry {
            ctime: time(stat.ctime),
            mtime: time(stat.mtime),
            dev: stat.dev as u32,
            ino: stat.ino as u32,
            mode: file.mode,
            uid: stat.uid,
            gid: stat.gid,
            file_size: stat.size as u32,
            id: file.id,
            flags: file.path.len().min(0xfff) as u16,
            flags_extended: 0,
            path: file.path.clone(),
        };
        index
            .add(&entry)
            .context(|| format!("add `{}` to the index", String::from_utf8_lossy(&file.path)))?;
    }
    index
        .write()
        .context(|| format!("write the index of `{}`", dir.display()))
}

/// The folders and files of a tree, in the tree's order (a folder before what it holds).
#[derive(Default)]
struct Walk {
    folders: Vec<Vec<u8>>,
    files: Vec<File>,
    /// The tree's `.gitattributes` files: the folder each is in (bytes, `/`-separated, empty
    /// at the top) and its blob.
    attributes: Vec<(Vec<u8>, git2::Oid)>,
}

impl Walk {
    /// Lists `tree`, or says `None` at the first attributes file, submodule, odd mode or
    /// path git would refuse.
    fn of(repo: &Repository, tree: &Tree<'_>) -> Result<Option<Walk>, GitError> {
        let mut walk = Walk::default();
        Ok(walk.add(repo, tree, &mut Vec::new())?.then_some(walk))
    }

    /// Adds what `tree` holds under `prefix`; false when something in it is not plain.
    fn add(&mut self, repo: &Repository, tree: &Tree<'_>, prefix: &mut Vec<u8>) -> Result<bool, GitError> {
        for entry in tree.iter() {
            let name = entry.name_bytes();
            if !plain_name(name) {
                return Ok(false);
            }
            let length = prefix.len();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(name);
            match (entry.kind(), entry.filemode_raw() as u32) {
                (Some(ObjectType::Tree), _) => {
                    self.folders.push(prefix.clone());
                    let subtree = repo
                        .find_tree(entry.id())
                        .context(|| format!("read tree {}", entry.id()))?;
                    if !self.add(repo, &subtree, prefix)? {
                        return Ok(false);
                    }
                }
                (Some(ObjectType::Blob), mode @ (0o100644 | 0o100755 | 0o120000)) => {
                    if name == b".gitattributes" {
                        self.attributes.push((prefix[..length].to_vec(), entry.id()));
                    }
                    self.files.push(File {
                        path: prefix.clone(),
                        mode,
                        id: entry.id(),
                    })
                }
                // Submodules, and modes git itself normalises (0o100664): left to libgit2.
                _ => return Ok(false),
            }
            prefix.truncate(length);
        }
        Ok(true)
    }
}

/// Tells whether flow may write a tree entry of this name itself: nothing git protects against (`.git` in any case or with trailing dots and spaces,
/// its short name `git~1`, `.`, `..`, separators, NUL, `:`).
fn plain_name(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    let end = lower.iter().rposition(|&b| b != b' ' && b != b'.').map_or(0, |i| i + 1);
    let trimmed = &lower[..end];
    !(name.is_empty()
        || name == b"."
        || name == b".."
        || trimmed == b".git"
        || trimmed == b"git~1"
        // Another spelling of the attributes file: git reads it where names ignore case.
        || (lower == b".gitattributes" && name != b".gitattributes")
        || name.iter().any(|&b| matches!(b, b'/' | b'\\' | b'\0' | b':')))
}

/// The text of the attributes files outside the tree (`info/attributes`, the global and
/// system ones), when the repository's settings let every blob be written as it is: no
/// line-ending conversion, no sparse checkout, and a file system with symbolic links,
/// executable bits and case-sensitive names; `None` when they do not.
fn outside_attributes(repo: &Repository, common_dir: &Path) -> Option<String> {
    let config = repo.config().ok()?;
    let is_set = |key: &str| config.get_entry(key).is_ok();
    let flag = |key: &str, default: bool| {
        if is_set(key) {
            config.get_bool(key).ok()
        } else {
            Some(default)
        }
    };
    let settings_plain = flag("core.autocrlf", false) == Some(false)
        && !is_set("core.eol")
        && flag("core.sparseCheckout", false) == Some(false)
        && flag("core.symlinks", true) == Some(true)
        && flag("core.filemode", true) == Some(true)
        && flag("core.ignorecase", false) == Some(false);
    if !settings_plain {
        return None;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| home.clone().map(|home| home.join(".config")));
    let mut attribute_files = vec![common_dir.join("info/attributes"), PathBuf::from("/etc/gitattributes")];
    attribute_files.extend(xdg.map(|config| config.join("git/attributes")));
    if let Ok(path) = config.get_path("core.attributesFile") {
        attribute_files.push(path);
    }
    let mut text = String::new();
    for path in attribute_files {
        match fs::read(&path) {
            Ok(bytes) => {
                text.push_str(&String::from_utf8_lossy(&bytes));
                text.push('\n');
            }
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            // Present but unreadable: what it says cannot be known.
            Err(_) => return None,
        }
    }
    Some(text)
}

/// The files of `walk` that an attribute may convert on checkout (a superset: libgit2 decides
/// each exactly when it writes them), or `None` when that cannot be told here (a quoted or
/// escaped pattern on a converting line). `outside` is the text of the attributes files
/// outside the tree, whose patterns start at its top.
fn converted_files(repo: &Repository, walk: &Walk, outside: &str) -> Option<Vec<Vec<u8>>> {
    let mut sources = vec![(Vec::new(), outside.to_string())];
    for (folder, id) in &walk.attributes {
        let blob = repo.find_blob(*id).ok()?;
        sources.push((folder.clone(), String::from_utf8_lossy(blob.content()).into_owned()));
    }
    let macros = converting_macros(sources.iter().map(|(_, text)| text.as_str()));
    let mut matchers = Vec::new();
    for (folder, text) in &sources {
        let patterns = converting_patterns(text, &macros)?;
        if patterns.is_empty() {
            continue;
        }
        // Paths are matched relative to a made-up root; the attributes file's folder is
        // under it.
        let root = Path::new("/").join(OsStr::from_bytes(folder));
        let mut builder = ignore::gitignore::GitignoreBuilder::new(&root);
        for pattern in patterns {
            builder.add_line(None, &pattern).ok()?;
        }
        matchers.push((root, builder.build().ok()?));
    }
    if matchers.is_empty() {
        return Some(Vec::new());
    }
    Some(
        walk.files
            .iter()
            .filter(|file| {
                let path = Path::new("/").join(OsStr::from_bytes(&file.path));
                matchers.iter().any(|(root, matcher)| {
                    path.starts_with(root) && matcher.matched_path_or_any_parents(&path, false).is_ignore()
                })
            })
            .map(|file| file.path.clone())
            .collect(),
    )
}

/// Tells whether one attribute word changes what a checkout writes on this platform (with
/// `core.eol` unset and `core.autocrlf` off): a `filter`, `ident` or `working-tree-encoding`
/// that is set, `eol=crlf`, or a macro that sets one of them.
fn converting_word(word: &str, macros: &std::collections::HashSet<String>) -> bool {
    if word.starts_with('-') || word.starts_with('!') {
        return false;
    }
    let (name, value) = word.split_once('=').unwrap_or((word, ""));
    match name {
        "filter" | "ident" | "working-tree-encoding" => true,
        "eol" => !value.eq_ignore_ascii_case("lf"),
        _ => macros.contains(name),
    }
}

/// A line's pattern (as written, quotes kept) and the words after it; `None` for blank lines
/// and comments.
fn split_line(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    // The pattern may be quoted, with spaces in it.
    Some(match line.strip_prefix('"') {
        Some(quoted) => match quoted.split_once('"') {
            Some((pattern, rest)) => (&line[..pattern.len() + 2], rest),
            None => (line, ""),
        },
        None => line.split_once(char::is_whitespace).unwrap_or((line, "")),
    })
}

/// The macros (`[attr]NAME ...` lines of any of `texts`) that set a converting attribute,
/// directly or through another such macro.
fn converting_macros<'a>(texts: impl Iterator<Item = &'a str> + Clone) -> std::collections::HashSet<String> {
    let mut macros = std::collections::HashSet::new();
    loop {
        let before = macros.len();
        for text in texts.clone() {
            for (pattern, rest) in text.lines().filter_map(split_line) {
                if let Some(name) = pattern.strip_prefix("[attr]")
                    && rest.split_whitespace().any(|word| converting_word(word, &macros))
                {
                    macros.insert(name.to_string());
                }
            }
        }
        if macros.len() == before {
            return macros;
        }
    }
}

/// The patterns of the lines of `text` that set a converting attribute, or `None` when one
/// of them is quoted or escaped (matched here only as git would, so left to libgit2).
fn converting_patterns(text: &str, macros: &std::collections::HashSet<String>) -> Option<Vec<String>> {
    let mut patterns = Vec::new();
    for (pattern, rest) in text.lines().filter_map(split_line) {
        if pattern.starts_with("[attr]") || !rest.split_whitespace().any(|word| converting_word(word, macros)) {
            continue;
        }
        if pattern.starts_with('"') || pattern.contains('\\') {
            return None;
        }
        patterns.push(pattern.to_string());
    }
    Some(patterns)
}

/// Tells whether attributes text may change what a checkout writes on this platform: some
/// line sets a converting attribute (see [`converting_word`]).
#[cfg(test)]
fn converting_attributes(text: &str) -> bool {
    let macros = converting_macros(std::iter::once(text));
    converting_patterns(text, &macros).is_none_or(|patterns| !patterns.is_empty())
}

#[cfg(test)]
mod tests {
    use super::converting_attributes;

    #[test]
    fn only_attributes_that_change_what_a_checkout_writes_count() {
        let table: &[(&str, bool)] = &[
            ("*.c text eol=lf whitespace=trailing-space diff=cpp merge=union", false),
            (
                "*.md linguist-generated=true linguist-documentation export-ignore",
                false,
            ),
            ("* text=auto\n*.png binary\n*.txt -text", false),
            ("# *.txt filter=lfs", false),
            ("*.txt -filter !ident -working-tree-encoding", false),
            ("*.txt crlf=input", false),
            ("*.bin filter=lfs diff=lfs merge=lfs -text", true),
            ("*.c ident", true),
            ("*.txt working-tree-encoding=UTF-16", true),
            ("*.bat text eol=crlf", true),
            ("*.bat eol=CRLF", true),
            ("[attr]win text eol=crlf\n*.bat win", true),
            ("\"a b.txt\" filter=x", true),
        ];
        for (text, converting) in table {
            assert_eq!(converting_attributes(text), *converting, "{text}");
        }
    }
}
