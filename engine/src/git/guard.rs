//! A guard around the git directory an agent shares with the user: a snapshot before the
//! agent runs, a comparison after, and an undo of what changed.
//!
//! An agent works in a linked worktree, and a linked worktree writes the repository's common
//! git directory: `git config core.fsmonitor <command>` there runs `<command>` in the user's
//! own checkout at their next `git status`, and a hook, an attribute naming a filter, a ref
//! or the user's global configuration work the same way. A kernel sandbox that keeps the
//! agent off those files is the first line; this guard is the second, and the only one
//! where there is no sandbox or where people run agents by hand in prepared worktrees.
//!
//! [`Git::snapshot_git_dir`] records, [`Git::git_dir_changes`] lists what differs as
//! [`GitDirChange`]s that name the exact change, and [`Git::undo_git_dir_changes`] puts it
//! back. [`agent_git_env`] is the other half: the settings that make a git started by an
//! agent (or by a check or `verify` flow runs) ignore the hooks and commands anyone planted.
//!
//! # What is recorded
//!
//! - In the common git directory: `config` and `config.worktree` (the text, to restore it
//!   byte for byte and to name the keys that changed), `hooks/` (every file with its content
//!   and mode), `info/` (attributes, exclude, sparse-checkout, grafts...), the legacy
//!   `remotes/` and `branches/`, `commondir`, `MERGE_HEAD`, `CHERRY_PICK_HEAD`,
//!   `REVERT_HEAD`, `shallow`, `objects/info/alternates` and `http-alternates`, and in every
//!   git directory under `modules/` its `config`, `hooks/` and `info/`.
//! - Every ref, loose and packed, with its target, and HEAD of the main checkout, except the
//!   workstream's own branch and the refs flow moves during a run ([`Guarded::flow_refs`]);
//!   the stash list entry by entry; whether `packed-refs` reads the same to git as to libgit2
//!   (a file out of order under a `sorted` header hides refs from git, not from libgit2).
//! - The guarded worktree's private git directory: `config.worktree`, `config`, `commondir`,
//!   `gitdir`, `hooks/`, `info/`. The other worktrees' private directories: `config.worktree`,
//!   `commondir`, `gitdir` (their HEAD and index are their own agents' business), and a
//!   `config.worktree` in a record that appeared during the run.
//! - The user's configuration ([`UserPlaces`]): `~/.gitconfig` (or `$GIT_CONFIG_GLOBAL`),
//!   `$XDG_CONFIG_HOME/git/config` and `git/attributes`, the system configuration, a main
//!   checkout's `.git` file.
//! - What those configurations point git at: files named by `include.path` and
//!   `includeIf.*.path`, the folder `core.hooksPath` names (hooks there run in the user's
//!   checkout as well), `core.attributesFile`, and the target of a configuration that is a
//!   link. Keys such as `core.fsmonitor`, `core.sshCommand`, `core.pager`, `credential.helper`,
//!   `filter.*`, `diff.*.textconv`, `gc.*` or `remote.*` live in those files: any change to
//!   them is a change of the file's text.
//!
//! Files are compared byte for byte (by blob id) and by mode; the keys named in a message
//! come from a reader of git's syntax (`config_text`), so a text git and that reader see
//! differently is still reported and restored, only named less precisely. Nothing follows a
//! link and no file is opened in a way that can block (`places`).
//!
//! # Undo
//!
//! An added ref is deleted, a moved ref put back and a deleted one recreated, each under the
//! ref's lock and only if it still holds what the comparison saw (compare-and-swap); the stash
//! list is restored entry by entry. A changed file is restored from the snapshot, an added
//! one deleted, each only if it is still as the comparison saw it; with a folder to keep them
//! in, what is deleted or overwritten is copied there first. Nothing is written through a
//! link: every folder above a path is checked to be a real folder first.
//!
//! # Several agents at once
//!
//! Every agent has its own snapshot, taken on a base: the run's first snapshot, or one taken
//! while no agent ran. A snapshot read afresh while another agent runs would take in what
//! that agent changed and nobody compared yet, and its undo would put the change back; on a
//! base it cannot. Flow's own refs (the integration branch, every workstream branch,
//! `refs/heads/flow-tmp/`) are left out by the caller; the other worktrees' HEAD, index and
//! logs are not recorded; a worktree record that flow removes during the run takes its files
//! out of the comparison with it; `packed-refs` is compared by the refs it holds, so `git gc`
//! packing refs changes nothing. What remains:
//!
//! - A base grows stale: whatever the user changed since it was taken shows up in every
//!   later comparison. Take a new one whenever no agent is running (all compared and undone).
//! - A change is found, not attributed: a change to the shared configuration or to a ref
//!   made while several agents run shows up in the comparison of each of them. Undo is
//!   idempotent: the first undo puts it back, the others find it back already.
//! - An agent that moves another workstream's branch (a name in `flow_refs`) is not seen
//!   here: flow moves those refs too. That workstream's own checks see it: a branch moved to
//!   history that no longer descends from its start fails its integrity check, and commits
//!   added on top count as that workstream's work, whose changed paths are held to what it
//!   owns. A commit that stays within what the other workstream owns is stopped only by the
//!   kernel sandbox, or by a person reading the merge.
//! - The user works meanwhile: a commit on their branch, a new global setting, a stash are
//!   changes like any other. The messages say what and where; the caller decides whether to
//!   undo them (undoing a ref keeps the commit in its reflog).
//!
//! # Not covered
//!
//! The main checkout's index (an agent can stage content for the user's next commit; the
//! index changes with every `git status` of the user), reflogs, objects (in the kernel sandbox
//! an agent's git writes objects to a folder of its own and cannot touch the shared store;
//! without it, `git gc --prune=now` or `rm` by an agent loses objects for good), `objects/info/commit-graph`, peeled lines
//! of `packed-refs`, the executables a configuration names outside the repository (a script
//! `credential.helper` points at), and anything else of the user's: an agent that can write
//! `~/.bashrc` needs no git. The comparison of a snapshot kept from `flow prepare` to `flow
//! merge` is only as good as the place it is kept: without a sandbox an agent can rewrite it.
//!
//! # Cost
//!
//! A snapshot reads a few dozen small files and every ref; a comparison does the same and
//! parses only the configuration files that changed. Reading the refs is what costs: on a
//! repository with 10,000 branches and two worktrees (release build, 2 cores shared with
//! other work, load around 5), a snapshot took a median of 12 ms and a comparison 17 ms with
//! the refs packed; with all 10,000 loose, 120 ms and 140 ms, as long as `git for-each-ref`
//! takes to list them on the same machine (120 ms). A snapshot of that repository serializes
//! to 780 kB of JSON, nearly all of it refs.

mod agent_env;
mod config_text;
mod places;
mod refs;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use self::agent_env::{AGENT_GIT_SETTINGS, NO_HOOKS, agent_git_env};
use self::places::{Found, Watch};
use self::refs::{RefFilter, STASH};
use super::paths::normalize;
use super::{Git, GitError, Oid};

/// What a snapshot is taken for: one agent's worktree, its branch, and what flow itself
/// changes while the agent runs.
#[derive(Debug, Clone, Copy)]
pub struct Guarded<'a> {
    /// The agent's linked worktree.
    pub worktree: &'a Path,
    /// The agent's branch (short or full name): the agent moves it, by design.
    pub branch: &'a str,
    /// The refs flow moves during a run: full names (`refs/heads/flow/api`), short branch
    /// names (`flow/api`), or prefixes ending in `/` (`refs/heads/flow-tmp/`).
    pub flow_refs: &'a [String],
    /// Where the user's own git configuration lives.
    pub user: &'a UserPlaces,
}

/// Says where the user's own git configuration lives, the files git reads in every
/// repository of theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPlaces {
    /// The home folder (`$HOME`).
    pub home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`, when set; `~/.config` otherwise.
    pub xdg_config_home: Option<PathBuf>,
    /// `$GIT_CONFIG_GLOBAL`, when set: it replaces `~/.gitconfig`.
    pub global_config: Option<PathBuf>,
}

impl UserPlaces {
    /// Reads the places from this process's environment.
    pub fn from_environment() -> UserPlaces {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        UserPlaces {
            home: var("HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            global_config: var("GIT_CONFIG_GLOBAL"),
        }
    }

    fn xdg_git(&self) -> Option<PathBuf> {
        match (&self.xdg_config_home, &self.home) {
            (Some(xdg), _) => Some(xdg.join("git")),
            (None, Some(home)) => Some(home.join(".config").join("git")),
            (None, None) => None,
        }
    }

    /// Lists the global configuration files git reads.
    fn config_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        match (&self.global_config, &self.home) {
            (Some(global), _) => files.push(global.clone()),
            (None, Some(home)) => files.push(home.join(".gitconfig")),
            (None, None) => {}
        }
        files.extend(self.xdg_git().map(|git| git.join("config")));
        files.retain(|file| file != Path::new("/dev/null"));
        files
    }

    /// Returns the global attributes file git reads by default.
    fn attributes_file(&self) -> Option<PathBuf> {
        self.xdg_git().map(|git| git.join("attributes"))
    }
}

/// Records the git directory as it was before an agent ran.
///
/// It serializes, so `flow prepare` can keep one for `flow merge`; it holds the content of
/// every file it watches (a few dozen small files), so the undo can restore them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSnapshot {
    common_dir: PathBuf,
    watches: Vec<Watch>,
    files: BTreeMap<PathBuf, Kept>,
    refs: BTreeMap<String, RefTarget>,
    stash: Vec<StashEntry>,
    packed_refs_problem: Option<String>,
    records: BTreeSet<String>,
}

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    label: String,
    role: FileRole,
    state: FileState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    content: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    only_while: Option<PathBuf>,
}

/// Holds file content, serialized as text when it is UTF-8 and as hex otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Bytes {
    Text(String),
    Hex { hex: String },
}

impl Bytes {
    fn new(bytes: Vec<u8>) -> Bytes {
        match String::from_utf8(bytes) {
            Ok(text) => Bytes::Text(text),
            Err(error) => Bytes::Hex {
                hex: error.as_bytes().iter().map(|b| format!("{b:02x}")).collect(),
            },
        }
    }

    fn to_vec(&self) -> Option<Vec<u8>> {
        match self {
            Bytes::Text(text) => Some(text.as_bytes().to_vec()),
            Bytes::Hex { hex } => (0..hex.len())
                .step_by(2)
                .map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
                .collect(),
        }
    }
}

/// Says what a ref points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefTarget {
    /// An object (a commit, or a tag object).
    Object(Oid),
    /// Another ref, by full name.
    Symbolic(String),
}

impl RefTarget {
    /// Describes the target for a message: `at 1a2b3c4`, or `pointing at refs/heads/main`.
    fn describe(&self) -> String {
        match self {
            RefTarget::Object(id) => format!("at {}", id.short()),
            RefTarget::Symbolic(name) => format!("pointing at {name}"),
        }
    }

    fn short(&self) -> String {
        match self {
            RefTarget::Object(id) => id.short(),
            RefTarget::Symbolic(name) => name.clone(),
        }
    }
}

/// One entry of the stash list, kept whole so the list can be written back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StashEntry {
    /// The stash commit.
    pub id: Oid,
    /// Who made it.
    pub name: String,
    /// Their e-mail.
    pub email: String,
    /// When, in seconds since the epoch.
    pub time: i64,
    /// The time zone, in minutes.
    pub offset_minutes: i32,
    /// The entry's message (`WIP on main: ...`).
    pub message: Option<String>,
}

/// Says what git does with a watched file, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    /// A git configuration file: its changed keys are named.
    Config,
    /// A hook, or a file in a hooks folder.
    Hook,
    /// Anything else git reads.
    Other,
}

/// Describes what is at a watched path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileState {
    /// A folder, with its permission bits.
    Folder {
        /// Permission bits (`0o755`).
        mode: u32,
    },
    /// A regular file.
    File {
        /// What it holds.
        id: ContentId,
        /// Permission bits (`0o644`, `0o755`).
        mode: u32,
    },
    /// A symbolic link.
    Link {
        /// Where it points.
        target: PathBuf,
    },
    /// A FIFO, socket or device.
    Special,
}

/// Identifies the content of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentId {
    /// The git blob id of its content.
    Blob(Oid),
    /// A file too large to read whole: its size, inode and change time (which no process
    /// without root can set), compared instead.
    Large {
        /// Size in bytes.
        size: u64,
        /// Inode number.
        inode: u64,
        /// Change time, in nanoseconds since the epoch.
        changed: i64,
    },
    /// A file that could not be read (no permission).
    Unreadable,
}

/// Names one change found in the git directory, with what was there before and after.
///
/// Its `Display` is the sentence to show: `added ref refs/heads/elsewhere at 1a2b3c4`,
/// `changed .git/config: core.fsmonitor set to `touch /tmp/x``.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum GitDirChange {
    /// A ref was added, moved or deleted (HEAD is HEAD of the main checkout).
    Ref {
        /// The full name.
        name: String,
        /// Its target before, `None`: it did not exist.
        before: Option<RefTarget>,
        /// Its target after, `None`: it was deleted.
        after: Option<RefTarget>,
    },
    /// The stash list changed.
    Stash {
        /// The stash commits before, newest first.
        before: Vec<Oid>,
        /// The stash commits after, newest first.
        after: Vec<Oid>,
    },
    /// `packed-refs` no longer reads the same to git as to libgit2.
    PackedRefs {
        /// How messages name the file.
        label: String,
        /// What is wrong.
        problem: String,
    },
    /// A watched file, link or folder was added, changed or deleted.
    File {
        /// Where.
        path: PathBuf,
        /// How messages name it (`.git/hooks/pre-commit`, `~/.gitconfig`).
        label: String,
        /// What git does with it.
        role: FileRole,
        /// What was there, `None`: nothing.
        before: Option<FileState>,
        /// What is there, `None`: nothing.
        after: Option<FileState>,
        /// For a configuration file, the keys that changed.
        keys: Vec<KeyChange>,
    },
}

/// Names one key of a configuration file whose values changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    /// The key as git names it (`core.fsmonitor`, `remote.origin.url`).
    pub key: String,
    /// Its values before, in order (`None`: written without `=`, read as true).
    pub before: Vec<Option<String>>,
    /// Its values after.
    pub after: Vec<Option<String>>,
}

/// Tells what an undo did and what it left.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoReport {
    /// What was put back, one sentence each.
    pub done: Vec<String>,
    /// What was not, and why (it changed again since the comparison, its content was not
    /// kept, a write failed): each needs a person to look.
    pub left: Vec<String>,
}

impl Git {
    /// Records the git directory around the worktree in `guarded`, before its agent runs.
    ///
    /// With `base`, a snapshot taken earlier in the same run (for another worktree), what
    /// `base` already records is taken from it instead of being read again: a change another
    /// agent made meanwhile and nobody compared yet cannot become part of this snapshot, where
    /// this agent's undo would put it back. Only what `base` does not cover (this worktree's
    /// private directory, records made since) is read now; refs made since count as added,
    /// so both should leave out the same refs: in a run, every workstream's branch.
    ///
    /// Fails with `GitError::NotAWorktree` when `guarded.worktree` is not a linked worktree
    /// of this repository.
    pub fn snapshot_git_dir(&self, guarded: &Guarded<'_>, base: Option<&GitSnapshot>) -> Result<GitSnapshot, GitError> {
        let repo = self.open()?;
        let own = self.require_record(&repo, guarded.worktree)?;
        let main = self.open_main()?;
        let main_workdir = main.workdir().map(normalize);
        let watches = places::watches(self.common_dir(), &own.admin_dir, main_workdir.as_deref(), guarded.user);
        let files = places::scan(&watches)
            .into_iter()
            .map(|(path, found)| {
                let kept = Kept {
                    label: found.label,
                    role: found.role,
                    state: found.state,
                    content: found.content.map(Bytes::new),
                    only_while: found.only_while,
                };
                (path, kept)
            })
            .collect();
        let filter = RefFilter::new(guarded.branch, guarded.flow_refs)?;
        let fresh = GitSnapshot {
            common_dir: self.common_dir().to_path_buf(),
            watches,
            files,
            refs: refs::scan(&main, &filter)?,
            stash: refs::stash_entries(&main)?,
            packed_refs_problem: refs::packed_refs_problem(self.common_dir()),
            records: places::record_names(self.common_dir()),
        };
        match base {
            None => Ok(fresh),
            Some(base) => {
                self.same_repository(base)?;
                Ok(fresh.on(base, &filter))
            }
        }
    }

    /// Lists what changed in the git directory since `before` was taken, leaving out what
    /// `guarded` says flow and the agent's own branch change; empty when nothing did.
    ///
    /// `guarded.flow_refs` may hold more refs than at the snapshot (workstreams that started
    /// since). Fails only when the repository cannot be read.
    pub fn git_dir_changes(&self, before: &GitSnapshot, guarded: &Guarded<'_>) -> Result<Vec<GitDirChange>, GitError> {
        self.same_repository(before)?;
        let main = self.open_main()?;
        let mut changes = Vec::new();

        let problem = refs::packed_refs_problem(self.common_dir());
        if let Some(problem) = problem
            && before.packed_refs_problem.as_ref() != Some(&problem)
        {
            changes.push(GitDirChange::PackedRefs {
                label: places::label(&self.common_dir().join("packed-refs"), self.common_dir(), None),
                problem,
            });
        }

        let filter = RefFilter::new(guarded.branch, guarded.flow_refs)?;
        let after = refs::scan(&main, &filter)?;
        let names: BTreeSet<&String> = before
            .refs
            .keys()
            .filter(|name| !filter.skips(name))
            .chain(after.keys())
            .collect();
        for name in names {
            let was = before.refs.get(name);
            if was == after.get(name) {
                continue;
            }
            // Read once more on its own: a ref being packed by `git gc` while the list was
            // read can be missing from it.
            let now = refs::read(&main, name)?;
            if now.as_ref() != was {
                changes.push(GitDirChange::Ref {
                    name: name.clone(),
                    before: was.cloned(),
                    after: now,
                });
            }
        }

        let stash = refs::stash_ids(&refs::stash_entries(&main)?);
        let stash_before = refs::stash_ids(&before.stash);
        if stash != stash_before {
            changes.push(GitDirChange::Stash {
                before: stash_before,
                after: stash,
            });
        }

        let found = places::scan(&before.watches);
        changes.extend(file_changes(before, &found));
        changes.extend(self.new_record_changes(before));
        Ok(changes)
    }

    /// Puts back what `changes` (from [`Git::git_dir_changes`] with the same snapshot) found,
    /// each only where it is still as the comparison saw it; with `keep_in`, every file it
    /// deletes or overwrites is copied there first (flat names, not executable).
    ///
    /// Fails only when the repository cannot be opened; everything else it could not do is
    /// in [`UndoReport::left`].
    pub fn undo_git_dir_changes(
        &self,
        before: &GitSnapshot,
        changes: &[GitDirChange],
        keep_in: Option<&Path>,
    ) -> Result<UndoReport, GitError> {
        self.same_repository(before)?;
        let main = self.open_main()?;
        let mut report = UndoReport::default();
        for change in changes {
            if let GitDirChange::PackedRefs { label, .. } = change {
                match refs::rewrite_packed_refs(&main) {
                    Ok(()) => report
                        .done
                        .push(format!("rewrote {label} sorted, as libgit2 reads the refs")),
                    Err(error) => report.left.push(format!("could not rewrite {label}: {error}")),
                }
            }
        }
        for change in changes {
            let (name, was, now, stash) = match change {
                GitDirChange::Ref { name, before, after } => (name.as_str(), before.clone(), after.clone(), None),
                GitDirChange::Stash { after, .. } => {
                    let was = before.stash.first().map(|entry| RefTarget::Object(entry.id));
                    let now = after.first().map(|id| RefTarget::Object(*id));
                    (STASH, was, now, Some(before.stash.as_slice()))
                }
                _ => continue,
            };
            match refs::put_back(&main, name, was.as_ref(), now.as_ref(), stash) {
                Ok(None) => {}
                Ok(Some(())) => report
                    .done
                    .push(ref_undone(name, was.as_ref(), now.as_ref(), stash.is_some())),
                Err(why) if stash.is_some() => report.left.push(format!("left the stash list alone: {why}")),
                Err(why) => report.left.push(format!("left {} alone: {why}", ref_name(name))),
            }
        }
        let mut files: Vec<&GitDirChange> = changes
            .iter()
            .filter(|change| matches!(change, GitDirChange::File { .. }))
            .collect();
        // Deletions first, deepest first; then restores, outermost first (a folder before
        // the files in it).
        files.sort_by_key(|change| match change {
            GitDirChange::File { path, before, .. } => {
                let depth = path.components().count();
                if before.is_none() {
                    (0, usize::MAX - depth)
                } else {
                    (1, depth)
                }
            }
            _ => (2, 0),
        });
        for change in files {
            if let GitDirChange::File {
                path,
                label,
                role,
                before: was,
                after: now,
                ..
            } = change
            {
                let kept = before.files.get(path);
                let target = FileTarget {
                    path,
                    label,
                    name: file_name(label, *role, [was.as_ref(), now.as_ref()]),
                };
                match undo_file(&target, was.as_ref(), now.as_ref(), kept, keep_in) {
                    Ok(Some(done)) => report.done.push(done),
                    Ok(None) => {}
                    Err(why) => report.left.push(format!("left {} alone: {why}", target.name)),
                }
            }
        }
        Ok(report)
    }

    /// Refuses a snapshot taken in another repository.
    fn same_repository(&self, snapshot: &GitSnapshot) -> Result<(), GitError> {
        if snapshot.common_dir == self.common_dir() {
            return Ok(());
        }
        Err(GitError::Git {
            action: format!("compare the git directory `{}`", self.common_dir().display()),
            error: git2::Error::from_str(&format!(
                "the snapshot was taken of `{}`",
                snapshot.common_dir.display()
            )),
        })
    }

    /// Lists a `config.worktree` in a worktree record that appeared since the snapshot:
    /// flow never writes one.
    fn new_record_changes(&self, before: &GitSnapshot) -> Vec<GitDirChange> {
        let mut changes = Vec::new();
        for record in places::record_names(self.common_dir()).difference(&before.records) {
            let path = self.common_dir().join("worktrees").join(record).join("config.worktree");
            if places::covers(&before.watches, &path) {
                continue;
            }
            if let Some((state, content)) = places::read_entry(&path) {
                let label = places::label(&path, self.common_dir(), None);
                let keys = key_changes(Some(&[][..]), content.as_deref());
                changes.push(GitDirChange::File {
                    path,
                    label,
                    role: FileRole::Config,
                    before: None,
                    after: Some(state),
                    keys,
                });
            }
        }
        changes
    }
}

impl GitSnapshot {
    /// Returns what a ref pointed at when the snapshot was taken (`HEAD` is the main
    /// checkout's); `None` for a ref it did not record.
    pub fn ref_target(&self, name: &str) -> Option<&RefTarget> {
        self.refs.get(name)
    }

    /// Returns what a watched path held when the snapshot was taken; `None` when it held
    /// nothing or is not watched.
    pub fn file_state(&self, path: &Path) -> Option<&FileState> {
        self.files.get(path).map(|kept| &kept.state)
    }

    /// Returns the content of a watched file as the snapshot kept it; `None` when it held
    /// nothing, was too large to keep, or is not watched.
    pub fn file_content(&self, path: &Path) -> Option<Vec<u8>> {
        self.files.get(path)?.content.as_ref()?.to_vec()
    }

    /// Tells whether a worktree record (the folder name under `worktrees/`) existed when the
    /// snapshot was taken.
    pub fn had_record(&self, record: &str) -> bool {
        self.records.contains(record)
    }

    /// Rebuilds this fresh snapshot on `base`: whatever both watch and `base` recorded
    /// (present or absent) is as `base` has it; the rest as read now.
    fn on(self, base: &GitSnapshot, filter: &RefFilter) -> GitSnapshot {
        let mut files = BTreeMap::new();
        let paths: BTreeSet<&PathBuf> = self.files.keys().chain(base.files.keys()).collect();
        for path in paths {
            let Some(watch) = places::covering(&self.watches, path) else {
                continue;
            };
            let kept = if places::covers(&base.watches, path) {
                base.files.get(path).map(|kept| Kept {
                    only_while: watch.only_while.clone(),
                    ..kept.clone()
                })
            } else {
                self.files.get(path).cloned()
            };
            if let Some(kept) = kept {
                files.insert(path.clone(), kept);
            }
        }
        let refs = base
            .refs
            .iter()
            .filter(|(name, _)| !filter.skips(name))
            .map(|(name, target)| (name.clone(), target.clone()))
            .collect();
        GitSnapshot {
            common_dir: self.common_dir,
            watches: self.watches,
            files,
            refs,
            stash: base.stash.clone(),
            packed_refs_problem: base.packed_refs_problem.clone(),
            records: base.records.clone(),
        }
    }
}

/// Compares the snapshot's files with what is there now.
fn file_changes(before: &GitSnapshot, found: &BTreeMap<PathBuf, Found>) -> Vec<GitDirChange> {
    let mut changes = Vec::new();
    let paths: BTreeSet<&PathBuf> = before.files.keys().chain(found.keys()).collect();
    for path in paths {
        let kept = before.files.get(path);
        let now = found.get(path);
        // A sibling record flow removed takes its files with it.
        if now.is_none()
            && let Some(kept) = kept
            && kept.only_while.as_deref().is_some_and(|dir| !dir.is_dir())
        {
            continue;
        }
        let was_state = kept.map(|kept| &kept.state);
        let now_state = now.map(|found| &found.state);
        if was_state == now_state {
            continue;
        }
        let (label, role) = match (kept, now) {
            (Some(kept), _) => (kept.label.clone(), kept.role),
            (None, Some(found)) => (found.label.clone(), found.role),
            (None, None) => continue,
        };
        let keys = if role == FileRole::Config {
            let old = kept.and_then(|kept| kept.content.as_ref()).and_then(Bytes::to_vec);
            let old = match (kept, old) {
                (None, _) => Some(Vec::new()),
                (Some(_), old) => old,
            };
            let new = match now {
                None => Some(Vec::new()),
                Some(found) => found.content.clone(),
            };
            key_changes(old.as_deref(), new.as_deref())
        } else {
            Vec::new()
        };
        changes.push(GitDirChange::File {
            path: path.clone(),
            label,
            role,
            before: was_state.cloned(),
            after: now_state.cloned(),
            keys,
        });
    }
    changes.sort_by(|a, b| file_label(a).cmp(file_label(b)));
    changes
}

fn file_label(change: &GitDirChange) -> &str {
    match change {
        GitDirChange::File { label, .. } => label,
        _ => "",
    }
}

/// Names the keys whose values differ between two configuration texts; nothing when
/// either is unknown or cannot be read.
fn key_changes(before: Option<&[u8]>, after: Option<&[u8]>) -> Vec<KeyChange> {
    let (Some(before), Some(after)) = (before, after) else {
        return Vec::new();
    };
    let (Ok(before), Ok(after)) = (config_text::parse(before), config_text::parse(after)) else {
        return Vec::new();
    };
    let group = |variables: Vec<config_text::Variable>| {
        let mut keys: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        for (key, value) in variables {
            keys.entry(key).or_default().push(value);
        }
        keys
    };
    let (before, after) = (group(before), group(after));
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter(|key| before.get(*key) != after.get(*key))
        .map(|key| KeyChange {
            key: key.clone(),
            before: before.get(key).cloned().unwrap_or_default(),
            after: after.get(key).cloned().unwrap_or_default(),
        })
        .collect()
}

/// A file the undo works on.
struct FileTarget<'a> {
    path: &'a Path,
    label: &'a str,
    /// How sentences name it.
    name: String,
}

/// Names a file in a sentence: `hook .git/hooks/pre-commit`, `.git/config` (a folder is
/// named by its label alone).
fn file_name(label: &str, role: FileRole, states: [Option<&FileState>; 2]) -> String {
    let folder = states
        .iter()
        .any(|state| matches!(state, Some(FileState::Folder { .. })));
    match role {
        FileRole::Hook if !folder => format!("hook {label}"),
        _ => label.to_owned(),
    }
}

/// Puts one file back; `Ok(None)` when it already was as before.
fn undo_file(
    target: &FileTarget<'_>,
    was: Option<&FileState>,
    expected: Option<&FileState>,
    kept: Option<&Kept>,
    keep_in: Option<&Path>,
) -> Result<Option<String>, String> {
    let path = target.path;
    places::check_folders_above(path)?;
    let entry = places::read_entry(path);
    let now = entry.as_ref().map(|(state, _)| state);
    if now == was {
        return Ok(None);
    }
    if now != expected {
        return Err("it changed again since the comparison".to_owned());
    }
    let mode_only = matches!((was, now), (Some(FileState::File { id, .. }), Some(FileState::File { id: now_id, .. })) if id == now_id);
    let mut words = String::new();
    if let (Some(folder), Some((FileState::File { .. }, Some(content))), false) = (keep_in, &entry, mode_only) {
        let kept_at = places::keep(folder, target.label, content)
            .map_err(|error| format!("could not keep a copy in `{}`: {error}", folder.display()))?;
        words = format!(" (what was there is kept in `{}`)", kept_at.display());
    }
    let failed = |error: std::io::Error| format!("could not write it: {error}");
    let name = &target.name;
    match (was, now) {
        (None, Some(now)) => {
            places::remove(path, now).map_err(failed)?;
            Ok(Some(format!("removed {name}{words}")))
        }
        (Some(FileState::Folder { mode }), now) => {
            if let Some(now) = now.filter(|now| !matches!(now, FileState::Folder { .. })) {
                places::remove(path, now).map_err(failed)?;
            }
            places::write_folder(path, *mode).map_err(failed)?;
            Ok(Some(format!("restored folder {}{words}", target.label)))
        }
        (Some(FileState::File { id, mode }), now) => {
            if let Some(FileState::File { id: now_id, .. }) = now
                && now_id == id
            {
                places::set_mode(path, *mode).map_err(failed)?;
                return Ok(Some(format!("restored the mode of {name} ({mode:o})")));
            }
            let Some(content) = kept.and_then(|kept| kept.content.as_ref()).and_then(Bytes::to_vec) else {
                return Err("its content was too large to keep".to_owned());
            };
            if let Some(now @ FileState::Folder { .. }) = now {
                places::remove(path, now).map_err(failed)?;
            }
            places::write_file(path, &content, *mode).map_err(failed)?;
            Ok(Some(format!("restored {name}{words}")))
        }
        (Some(FileState::Link { target: link }), now) => {
            if let Some(now @ FileState::Folder { .. }) = now {
                places::remove(path, now).map_err(failed)?;
            }
            places::write_link(path, link).map_err(failed)?;
            Ok(Some(format!(
                "restored {name} as a link to `{}`{words}",
                link.display()
            )))
        }
        (Some(FileState::Special), _) => Err("it was a special file, which cannot be made again".to_owned()),
        (None, None) => Ok(None),
    }
}

/// Says how a ref was put back.
fn ref_undone(name: &str, was: Option<&RefTarget>, now: Option<&RefTarget>, stash: bool) -> String {
    if stash {
        return "restored the stash list".to_owned();
    }
    let name = ref_name(name);
    match (was, now) {
        (None, Some(now)) => format!("removed ref {name} (was {})", now.describe()),
        (Some(was), None) => format!("restored ref {name} {}", was.describe()),
        (Some(was), Some(now)) => format!("put {name} back from {} to {}", now.short(), was.short()),
        (None, None) => format!("left {name} as it was"),
    }
}

/// Names a ref in a sentence; HEAD is the main checkout's.
fn ref_name(name: &str) -> String {
    if name == "HEAD" {
        "HEAD of the main checkout".to_owned()
    } else {
        name.to_owned()
    }
}

impl fmt::Display for GitDirChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitDirChange::Ref { name, before, after } => {
                let name = ref_name(name);
                match (before, after) {
                    (None, Some(after)) => write!(f, "added ref {name} {}", after.describe()),
                    (Some(before), None) => write!(f, "removed ref {name} (was {})", before.describe()),
                    (Some(before), Some(after)) => {
                        write!(f, "moved {name} from {} to {}", before.short(), after.short())
                    }
                    (None, None) => write!(f, "touched ref {name}"),
                }
            }
            GitDirChange::Stash { before, after } => {
                let added: Vec<String> = after.iter().filter(|id| !before.contains(id)).map(Oid::short).collect();
                let dropped: Vec<String> = before.iter().filter(|id| !after.contains(id)).map(Oid::short).collect();
                write!(f, "changed the stash list")?;
                let mut parts = Vec::new();
                if !added.is_empty() {
                    parts.push(format!("added {}", added.join(", ")));
                }
                if !dropped.is_empty() {
                    parts.push(format!("dropped {}", dropped.join(", ")));
                }
                if parts.is_empty() {
                    parts.push("reordered".to_owned());
                }
                write!(f, ": {}", parts.join("; "))
            }
            GitDirChange::PackedRefs { label, problem } => {
                write!(f, "changed {label} so that git reads it differently: {problem}")
            }
            GitDirChange::File {
                label,
                role,
                before,
                after,
                keys,
                ..
            } => {
                let name = file_name(label, *role, [before.as_ref(), after.as_ref()]);
                match (before, after) {
                    (None, Some(after)) => {
                        write!(f, "added {name}")?;
                        if !matches!(after, FileState::File { .. }) {
                            write!(f, " ({})", describe_kind(after))?;
                        }
                    }
                    (Some(_), None) => write!(f, "removed {name}")?,
                    (Some(FileState::File { id: a, mode: m }), Some(FileState::File { id: b, mode: n })) => {
                        if a != b {
                            write!(f, "changed {name}")?;
                            if m != n {
                                write!(f, " and its mode from {m:o} to {n:o}")?;
                            }
                        } else {
                            write!(f, "changed the mode of {name} from {m:o} to {n:o}")?;
                        }
                    }
                    (Some(FileState::Folder { mode: m }), Some(FileState::Folder { mode: n })) => {
                        write!(f, "changed the mode of folder {label} from {m:o} to {n:o}")?;
                    }
                    (Some(before), Some(after)) => write!(
                        f,
                        "replaced {name}: {} became {}",
                        describe_kind(before),
                        describe_kind(after)
                    )?,
                    (None, None) => write!(f, "touched {name}")?,
                }
                if !keys.is_empty() {
                    let keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
                    write!(f, ": {}", keys.join("; "))?;
                }
                Ok(())
            }
        }
    }
}

/// Names what a path holds: `a file`, `a folder`, `a link to `...``, `a special file`.
fn describe_kind(state: &FileState) -> String {
    match state {
        FileState::Folder { .. } => "a folder".to_owned(),
        FileState::File { .. } => "a file".to_owned(),
        FileState::Link { target } => format!("a link to {}", quote(&target.to_string_lossy())),
        FileState::Special => "a special file".to_owned(),
    }
}

impl fmt::Display for KeyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = |values: &[Option<String>]| {
            values
                .iter()
                .map(|value| match value {
                    Some(value) => quote(value),
                    None => "(no value)".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (self.before.is_empty(), self.after.is_empty()) {
            (true, _) => write!(f, "{} set to {}", self.key, values(&self.after)),
            (false, true) => write!(f, "{} removed (was {})", self.key, values(&self.before)),
            (false, false) => write!(
                f,
                "{} changed from {} to {}",
                self.key,
                values(&self.before),
                values(&self.after)
            ),
        }
    }
}

/// Quotes a value for a message: in backticks, control characters escaped, at most 200
/// characters (a planted value can be long).
fn quote(value: &str) -> String {
    const SHOWN: usize = 200;
    let mut text = String::new();
    for c in value.chars().take(SHOWN) {
        if c.is_control() {
            text.extend(c.escape_default());
        } else {
            text.push(c);
        }
    }
    if value.chars().count() > SHOWN {
        text.push('…');
    }
    format!("`{text}`")
}
