//! The files the guard watches, how it reads them without trusting them, and how it puts
//! them back.
//!
//! Everything here treats the folders it walks as written by an adversary: nothing follows a
//! symbolic link (a link is recorded as a link), a file is opened with `O_NOFOLLOW` and
//! `O_NONBLOCK` (a FIFO planted where a hook was cannot stall the guard), only the first
//! [`KEPT_BYTES`] of a file are read (a huge file is recognised by its size, inode and change
//! time instead), and before anything is written or deleted every folder above it is checked
//! to be a real folder, so that a link planted in place of `.git/hooks` cannot turn an undo
//! into a write or a delete somewhere else.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::config_text;
use super::{ContentId, FileRole, FileState, UserPlaces};
use crate::git::Oid;
use crate::git::paths::normalize;

/// Files larger than this are compared by size, inode and change time, not by content,
/// and cannot be restored; git's configuration files and hooks are far smaller.
pub(crate) const KEPT_BYTES: u64 = 4 << 20;

/// How deep the guard walks below a watched folder.
const MAX_DEPTH: usize = 32;

/// Folders of a submodule's git directory that hold no configuration or code.
const NOT_CONFIGURATION: &[&str] = &["objects", "refs", "logs", "lfs", "rr-cache"];

/// How far a watch reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reach {
    /// One path (whatever is there: file, folder, link).
    File,
    /// A folder and everything below it.
    Tree,
    /// A folder of git directories (`.git/modules`): in each, what git reads as
    /// configuration or runs (`config`, `config.worktree`, `commondir`, `gitdir`, `hooks/`,
    /// `info/`), not its objects, refs or logs.
    GitDirs,
}

/// One place the guard records and compares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Watch {
    pub(crate) path: PathBuf,
    /// How messages name the path (`.git/config`, `~/.gitconfig`).
    pub(crate) label: String,
    pub(crate) role: FileRole,
    pub(crate) reach: Reach,
    /// Looked at only while this folder exists: a sibling worktree's record, which flow
    /// removes when that workstream is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) only_while: Option<PathBuf>,
}

/// What was found at one path.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) label: String,
    pub(crate) role: FileRole,
    pub(crate) state: FileState,
    /// The content of a regular file of at most [`KEPT_BYTES`].
    pub(crate) content: Option<Vec<u8>>,
    pub(crate) only_while: Option<PathBuf>,
}

/// Lists what a snapshot watches, from the common git directory, the guarded worktree's
/// private git directory, the other worktrees' private directories, the main checkout and the
/// user's own configuration, then every file or folder those configurations point git at
/// (`include.path`, `includeIf.*.path`, `core.hooksPath`, `core.attributesFile`, and the
/// target of a configuration file that is a link).
pub(crate) fn watches(common: &Path, own: &Path, main_workdir: Option<&Path>, user: &UserPlaces) -> Vec<Watch> {
    let home = user.home.as_deref().map(normalize);
    let home = home.as_deref();
    let name = |path: &Path| label(path, common, home);
    let mut list = Vec::new();
    let mut add = |path: PathBuf, role: FileRole, reach: Reach, only_while: Option<PathBuf>| {
        list.push(Watch {
            label: name(&path),
            path,
            role,
            reach,
            only_while,
        });
    };
    use FileRole::{Config, Hook, Other};
    use Reach::{File, GitDirs, Tree};
    // The common directory: what every checkout of the repository reads.
    add(common.join("config"), Config, File, None);
    // The main checkout's own configuration when `extensions.worktreeConfig` is on.
    add(common.join("config.worktree"), Config, File, None);
    // A `commondir` here would make the main checkout use another git directory altogether.
    for file in [
        "commondir",
        // The parents of the user's next commit.
        "MERGE_HEAD",
        "CHERRY_PICK_HEAD",
        "REVERT_HEAD",
        // History cut short, and object stores borrowed from elsewhere.
        "shallow",
        "objects/info/alternates",
        "objects/info/http-alternates",
    ] {
        add(common.join(file), Other, File, None);
    }
    add(common.join("hooks"), Hook, Tree, None);
    // `info/attributes` names filters and diff drivers, `info/grafts` rewrites parents.
    add(common.join("info"), Other, Tree, None);
    // Remotes in the files git read before `remote.*` existed.
    add(common.join("remotes"), Other, Tree, None);
    add(common.join("branches"), Other, Tree, None);
    add(common.join("modules"), Other, GitDirs, None);
    // The guarded worktree's private directory: git reads `config.worktree`, `commondir`
    // and `info/sparse-checkout` there, and without `commondir` its `config` and `hooks/` too.
    for file in ["config.worktree", "config"] {
        add(own.join(file), Config, File, None);
    }
    for file in ["commondir", "gitdir"] {
        add(own.join(file), Other, File, None);
    }
    add(own.join("hooks"), Hook, Tree, None);
    add(own.join("info"), Other, Tree, None);
    // The other worktrees' private directories: their HEAD and index are their own agents'
    // business, what the git in them reads as configuration is not.
    for record in record_names(common) {
        let dir = common.join("worktrees").join(&record);
        if dir == own {
            continue;
        }
        add(dir.join("config.worktree"), Config, File, Some(dir.clone()));
        for file in ["commondir", "gitdir"] {
            add(dir.join(file), Other, File, Some(dir.clone()));
        }
    }
    // A main checkout whose `.git` is a file pointing at the git directory.
    if let Some(workdir) = main_workdir {
        let gitfile = workdir.join(".git");
        if fs::symlink_metadata(&gitfile).is_ok_and(|meta| !meta.is_dir()) {
            add(gitfile, Other, File, None);
        }
    }
    // The user's own configuration: what is set there applies in the user's checkout too.
    for path in user.config_files() {
        add(settle(&path), Config, File, None);
    }
    if let Some(attributes) = user.attributes_file() {
        add(settle(&attributes), Other, File, None);
    }
    if let Ok(system) = git2::Config::find_system() {
        add(system, Config, File, None);
    }
    follow_configuration(&mut list, common, main_workdir, home);
    // A hooks or info folder that is a link: what it points at is watched as well.
    let targets: Vec<Watch> = list
        .iter()
        .filter(|watch| watch.reach == Reach::Tree)
        .filter(|watch| fs::symlink_metadata(&watch.path).is_ok_and(|meta| meta.file_type().is_symlink()))
        .filter_map(|watch| {
            let path = fs::canonicalize(&watch.path).ok()?;
            Some(Watch {
                label: label(&path, common, home),
                path,
                ..watch.clone()
            })
        })
        .collect();
    list.extend(targets);
    let mut seen = BTreeSet::new();
    list.retain(|watch| seen.insert(watch.path.clone()));
    list
}

/// Adds what the watched configuration files point git at, until nothing new turns up.
fn follow_configuration(list: &mut Vec<Watch>, common: &Path, main_workdir: Option<&Path>, home: Option<&Path>) {
    let mut looked_at = BTreeSet::new();
    // git follows includes ten deep; one more round for what the last level names.
    for _ in 0..11 {
        let mut more = Vec::new();
        for watch in list.iter() {
            if watch.role != FileRole::Config || watch.reach != Reach::File || !looked_at.insert(watch.path.clone()) {
                continue;
            }
            let only_while = watch.only_while.clone();
            let mut push = |path: PathBuf, role: FileRole, reach: Reach| {
                let path = settle(&path);
                more.push(Watch {
                    label: label(&path, common, home),
                    path,
                    role,
                    reach,
                    only_while: only_while.clone(),
                });
            };
            if fs::symlink_metadata(&watch.path).is_ok_and(|meta| meta.file_type().is_symlink())
                && let Ok(target) = fs::canonicalize(&watch.path)
            {
                push(target, FileRole::Config, Reach::File);
            }
            let Some((FileState::File { .. }, Some(content))) = read_entry(&watch.path) else {
                continue;
            };
            let Ok(variables) = config_text::parse(&content) else {
                continue;
            };
            let folder = watch.path.parent().unwrap_or(Path::new("/"));
            for (key, value) in variables {
                let Some(value) = value else { continue };
                let is_include = key == "include.path" || (key.starts_with("includeif.") && key.ends_with(".path"));
                if is_include {
                    if let Some(path) = resolve(&value, Some(folder), home) {
                        push(path, FileRole::Config, Reach::File);
                    }
                } else if key == "core.hookspath" {
                    if let Some(path) = resolve(&value, main_workdir, home) {
                        push(path, FileRole::Hook, Reach::Tree);
                    }
                } else if key == "core.attributesfile"
                    && let Some(path) = resolve(&value, main_workdir, home)
                {
                    push(path, FileRole::Other, Reach::File);
                }
            }
        }
        if more.is_empty() {
            break;
        }
        list.extend(more);
    }
}

/// Resolves a path from a configuration value as git does: `~/` is the home folder, a
/// relative path is relative to `base`. `None` for what cannot be resolved here.
fn resolve(value: &str, base: Option<&Path>, home: Option<&Path>) -> Option<PathBuf> {
    let path = if let Some(rest) = value.strip_prefix("~/") {
        home?.join(rest)
    } else if value.starts_with('~') || value.starts_with("%(prefix)") || value.is_empty() {
        return None;
    } else if Path::new(value).is_absolute() {
        PathBuf::from(value)
    } else {
        base?.join(value)
    };
    Some(lexical(&path))
}

/// Resolves the links in the folders above `path`, not in `path` itself: a configuration
/// file that is a link is watched as a link (and its target on its own), and every folder
/// above a watched path is a real folder, as the undo requires.
fn settle(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => normalize(parent).join(name),
        _ => normalize(path),
    }
}

/// Removes `.` and `..` from an absolute path without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Names a path for messages: `.git/...` inside the common directory (whatever its folder is
/// called), `~/...` in the home folder, else the whole path.
pub(crate) fn label(path: &Path, common: &Path, home: Option<&Path>) -> String {
    if let Ok(rest) = path.strip_prefix(common) {
        let name = common.file_name().map_or(".git".into(), |name| name.to_string_lossy());
        if rest.as_os_str().is_empty() {
            return name.into_owned();
        }
        return format!("{name}/{}", rest.display());
    }
    if let Some(home) = home
        && let Ok(rest) = path.strip_prefix(home)
    {
        return format!("~/{}", rest.display());
    }
    path.display().to_string()
}

/// Returns the watch that reaches `path`, if any.
pub(crate) fn covering<'a>(watches: &'a [Watch], path: &Path) -> Option<&'a Watch> {
    watches.iter().find(|watch| match watch.reach {
        Reach::File => watch.path == path,
        Reach::Tree | Reach::GitDirs => path.starts_with(&watch.path),
    })
}

/// Tells whether a watch reaches `path`.
pub(crate) fn covers(watches: &[Watch], path: &Path) -> bool {
    covering(watches, path).is_some()
}

/// Lists the names of the worktree records in the common directory, read from the folder
/// itself (a record an agent broke is listed too); flow's half-written records are left out.
pub(crate) fn record_names(common: &Path) -> BTreeSet<String> {
    let Ok(entries) = fs::read_dir(common.join("worktrees")) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Records everything the watches reach.
pub(crate) fn scan(watches: &[Watch]) -> BTreeMap<PathBuf, Found> {
    let mut found = BTreeMap::new();
    for watch in watches {
        if watch.only_while.as_deref().is_some_and(|dir| !is_real_dir(dir)) {
            continue;
        }
        match watch.reach {
            Reach::File => {
                if let Some((state, content)) = read_entry(&watch.path) {
                    found.insert(
                        watch.path.clone(),
                        found_at(watch, &watch.label, watch.role, state, content),
                    );
                }
            }
            Reach::Tree => walk(watch, &watch.path, &watch.label, 0, &mut found),
            Reach::GitDirs => walk_git_dirs(watch, &watch.path, &watch.label, 0, &mut found),
        }
    }
    found
}

fn found_at(watch: &Watch, label: &str, role: FileRole, state: FileState, content: Option<Vec<u8>>) -> Found {
    Found {
        label: label.to_owned(),
        role,
        state,
        content,
        only_while: watch.only_while.clone(),
    }
}

/// Records `path` and, for a real folder, everything below it.
fn walk(watch: &Watch, path: &Path, label: &str, depth: usize, found: &mut BTreeMap<PathBuf, Found>) {
    let Some((state, content)) = read_entry(path) else {
        return;
    };
    let is_folder = matches!(state, FileState::Folder { .. });
    found.insert(path.to_path_buf(), found_at(watch, label, watch.role, state, content));
    if !is_folder || depth >= MAX_DEPTH {
        return;
    }
    for (name, child) in children(path) {
        if ignored(path, &name) {
            continue;
        }
        walk(watch, &child, &format!("{label}/{name}"), depth + 1, found);
    }
}

/// Records, below a folder of git directories, what git reads as configuration or runs.
fn walk_git_dirs(watch: &Watch, folder: &Path, label: &str, depth: usize, found: &mut BTreeMap<PathBuf, Found>) {
    if depth >= MAX_DEPTH || !is_real_dir(folder) {
        return;
    }
    for (name, child) in children(folder) {
        if ignored(folder, &name) {
            continue;
        }
        let child_label = format!("{label}/{name}");
        if name == "hooks" || name == "info" {
            let role = if name == "hooks" {
                FileRole::Hook
            } else {
                FileRole::Other
            };
            let sub = Watch { role, ..watch.clone() };
            walk(&sub, &child, &child_label, depth + 1, found);
        } else if ["config", "config.worktree", "commondir", "gitdir"].contains(&name.as_str()) {
            let role = if name.starts_with("config") {
                FileRole::Config
            } else {
                FileRole::Other
            };
            if let Some((state, content)) = read_entry(&child) {
                found.insert(child.clone(), found_at(watch, &child_label, role, state, content));
            }
        } else if !NOT_CONFIGURATION.contains(&name.as_str()) {
            walk_git_dirs(watch, &child, &child_label, depth + 1, found);
        }
    }
}

/// Tells whether a folder entry is one the guard leaves alone: lock files (git never reads
/// a `*.lock` file as configuration) and `info/refs`, which `git repack` rewrites.
fn ignored(folder: &Path, name: &str) -> bool {
    name.ends_with(".lock") || (name == "refs" && folder.file_name().is_some_and(|folder| folder == "info"))
}

/// Lists a folder's entries by name, sorted; an unreadable folder has none.
fn children(folder: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut children: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry.path()))
        .collect();
    children.sort();
    children
}

/// Tells whether `path` is a folder and not a link to one.
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// Reads what is at `path` without following a link: its state and, for a regular file of
/// at most [`KEPT_BYTES`], its content. `None` when nothing is there (or it cannot be
/// reached: a folder above it is unreadable or was replaced by a file).
pub(crate) fn read_entry(path: &Path) -> Option<(FileState, Option<Vec<u8>>)> {
    let meta = fs::symlink_metadata(path).ok()?;
    let kind = meta.file_type();
    let mode = meta.permissions().mode() & 0o7777;
    if kind.is_symlink() {
        let target = fs::read_link(path).unwrap_or_default();
        return Some((FileState::Link { target }, None));
    }
    if kind.is_dir() {
        return Some((FileState::Folder { mode }, None));
    }
    if !kind.is_file() {
        return Some((FileState::Special, None));
    }
    let Ok(mut file) = open_no_follow(path) else {
        let id = ContentId::Unreadable;
        return Some((FileState::File { id, mode }, None));
    };
    let meta = match file.metadata() {
        Ok(meta) if meta.is_file() => meta,
        // Replaced by a FIFO or a device between the two looks.
        Ok(_) => return Some((FileState::Special, None)),
        Err(_) => {
            return Some((
                FileState::File {
                    id: ContentId::Unreadable,
                    mode,
                },
                None,
            ));
        }
    };
    let mode = meta.permissions().mode() & 0o7777;
    let mut content = Vec::new();
    if (&mut file).take(KEPT_BYTES + 1).read_to_end(&mut content).is_err() {
        return Some((
            FileState::File {
                id: ContentId::Unreadable,
                mode,
            },
            None,
        ));
    }
    if content.len() as u64 > KEPT_BYTES {
        let id = ContentId::Large {
            size: meta.size(),
            inode: meta.ino(),
            changed: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
        };
        return Some((FileState::File { id, mode }, None));
    }
    let id = match git2::Oid::hash_object(git2::ObjectType::Blob, &content) {
        Ok(oid) => ContentId::Blob(Oid::from(oid)),
        Err(_) => ContentId::Unreadable,
    };
    Some((FileState::File { id, mode }, Some(content)))
}

/// Opens a file for reading without following a link and without waiting for a writer.
fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    Ok(fs::File::from(fd))
}

/// Checks that every folder above `path` is a real folder (or does not exist yet), so that
/// writing or deleting `path` happens where its name says.
pub(crate) fn check_folders_above(path: &Path) -> Result<(), String> {
    let mut above = PathBuf::new();
    let components: Vec<Component> = path.components().collect();
    for component in &components[..components.len().saturating_sub(1)] {
        above.push(component.as_os_str());
        match fs::symlink_metadata(&above) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(format!("`{}` is no longer a folder", above.display())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(format!("cannot inspect `{}`: {error}", above.display())),
        }
    }
    Ok(())
}

/// Creates the folders above `path` that are missing (after [`check_folders_above`]).
fn make_folders_above(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

/// Deletes what is at `path`: a file, link or special file itself, or a folder with
/// everything in it (which never follows links inside).
pub(crate) fn remove(path: &Path, state: &FileState) -> io::Result<()> {
    match state {
        FileState::Folder { .. } => fs::remove_dir_all(path),
        _ => fs::remove_file(path),
    }
}

/// Writes a file whole, with its mode: written beside it and renamed over it, so a link
/// in its place is replaced, never followed.
pub(crate) fn write_file(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    make_folders_above(path)?;
    let folder = path.parent().unwrap_or(Path::new("/"));
    let mut file = tempfile::NamedTempFile::new_in(folder)?;
    file.write_all(content)?;
    file.as_file().set_permissions(fs::Permissions::from_mode(mode))?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// Makes `path` a link to `target`, replacing a file or link there.
pub(crate) fn write_link(path: &Path, target: &Path) -> io::Result<()> {
    make_folders_above(path)?;
    let folder = path.parent().unwrap_or(Path::new("/"));
    let temporary = tempfile::Builder::new().prefix(".flow-guard-").tempdir_in(folder)?;
    let link = temporary.path().join("link");
    std::os::unix::fs::symlink(target, &link)?;
    fs::rename(&link, path)
}

/// Makes `path` a folder with `mode`, or gives an existing folder that mode.
pub(crate) fn write_folder(path: &Path, mode: u32) -> io::Result<()> {
    make_folders_above(path)?;
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists && is_real_dir(path) => {}
        Err(error) => return Err(error),
    }
    set_mode(path, mode)
}

/// Sets the mode of the file or folder at `path`, refusing a link there.
pub(crate) fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(io::Error::other("it is a link"));
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Copies a file's content into `folder` under a flat name made from its label, readable
/// only by the user and never executable; returns where.
pub(crate) fn keep(folder: &Path, label: &str, content: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(folder)?;
    let flat: String = label
        .trim_start_matches('/')
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    for n in 1u32.. {
        let path = folder.join(format!("{n}-{flat}"));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(content)?;
                return Ok(path);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(error),
        }
    }
    Err(io::Error::other("no free name"))
}
