//! Linked worktrees: adding, reusing, locking, listing, pruning and removing them.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use git2::{Repository, WorktreePruneOptions};
use rustix::io::Errno;
use rustix::process::{Pid, test_kill_process};

use super::branch::read_ref;
use super::error::{GitContext, io_error};
use super::paths::normalize;
use super::repo::{Head, branch_ref, read_head, short_branch};
use super::{BranchState, Git, GitError, Oid};

/// Says whether `add_worktree` made a new worktree or found the right one in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorktreeState {
    /// A new worktree was created; `branch` says whether its branch was created too.
    Created {
        /// What happened to the branch.
        branch: BranchState,
    },
    /// The folder already was a worktree with the branch checked out; it was left alone.
    Reused,
}

/// Describes one linked worktree record of the repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorktreeInfo {
    /// The record's name under `.git/worktrees/`.
    pub name: String,
    /// The worktree folder.
    pub path: PathBuf,
    /// The branch checked out (short name), `None` when HEAD is detached.
    pub branch: Option<String>,
    /// The commit HEAD resolves to, `None` for a branch without commits.
    pub head: Option<Oid>,
    /// Whether the record is locked against pruning.
    pub locked: bool,
    /// The lock's reason, when one was given.
    pub lock_reason: Option<String>,
    /// Whether the folder is gone (deleted by hand).
    pub missing: bool,
    /// Whether `prune_stale_worktrees` would remove the record: missing and not locked.
    pub prunable: bool,
}

/// How the lock reason of a worktree whose files are not yet all written begins; the
/// reason goes on with ` by process <pid>`, the process making it.
pub const WORKTREE_BEING_MADE: &str = "flow: being created";

/// The lock reason of a worktree this process is making.
fn being_made_reason() -> String {
    format!("{WORKTREE_BEING_MADE} by process {}", std::process::id())
}

/// Tells whether a worktree record with this lock reason was left half-made: locked as
/// being made by a process that is gone (or by no process it names).
pub fn is_half_made(lock_reason: &str) -> bool {
    let Some(rest) = lock_reason.trim().strip_prefix(WORKTREE_BEING_MADE) else {
        return false;
    };
    match rest
        .trim()
        .strip_prefix("by process ")
        .and_then(|pid| pid.parse::<i32>().ok())
    {
        Some(pid) => !process_alive(pid),
        None => true,
    }
}

/// Tells whether the process `pid` exists (this one included).
fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // Signal 0 only checks that the process exists; EPERM says it exists but is not ours.
    Pid::from_raw(pid).is_some_and(|pid| matches!(test_kill_process(pid), Ok(()) | Err(Errno::PERM)))
}

/// The prefix of the folder in the common dir a new record is written in first.
pub const STAGED_RECORD_PREFIX: &str = "flow-new-worktree-";

/// A worktree record just written by `add_worktrees`, its files not yet.
struct MadeRecord {
    dir: PathBuf,
    admin_dir: PathBuf,
    /// The commit its branch points at.
    commit: Oid,
    branch: BranchState,
    /// The branch's full ref.
    full: String,
}

/// One record under `<common dir>/worktrees/<name>`, read without trusting the folder.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) admin_dir: PathBuf,
    pub(crate) path: PathBuf,
    pub(crate) exists: bool,
    /// `Some(reason)` when locked (the reason may be empty).
    pub(crate) lock: Option<String>,
}

impl Git {
    /// Creates a worktree at `dir` with `branch` checked out, creating the branch at
    /// `start` if it does not exist (an existing branch is used where it is).
    ///
    /// When `dir` already is a worktree of this repository with `branch` checked out it
    /// is returned as `WorktreeState::Reused` untouched. Records whose folder was deleted
    /// by hand and that block the folder or the branch are pruned first. It refuses with
    /// `PathInTheWay` when something else occupies `dir`, `BranchCheckedOut` when the
    /// branch is checked out elsewhere and `StaleWorktreeLocked` when a locked record
    /// blocks. If creating the worktree fails, a branch it created is deleted again.
    pub fn add_worktree(&self, dir: &Path, branch: &str, start: Oid) -> Result<WorktreeState, GitError> {
        let item = [(dir.to_path_buf(), branch.to_owned(), start)];
        self.add_worktrees(&item)?.pop().unwrap_or_else(|| {
            Err(GitError::NotAWorktree {
                path: dir.to_path_buf(),
            })
        })
    }

    /// Works as [`Git::add_worktree`] for each `(dir, branch, start)`, with one result per
    /// item: the records and branches are made one after the other, then the files of all
    /// new worktrees are written together (each blob read once, on several threads).
    /// Fails as a whole only when the repository cannot be read.
    pub fn add_worktrees(
        &self,
        items: &[(PathBuf, String, Oid)],
    ) -> Result<Vec<Result<WorktreeState, GitError>>, GitError> {
        let repo = self.open()?;
        let mut records = self.records(&repo)?;
        let mut results: Vec<Option<Result<WorktreeState, GitError>>> = Vec::with_capacity(items.len());
        let mut made: Vec<(usize, MadeRecord)> = Vec::new();
        for (i, (dir, branch, start)) in items.iter().enumerate() {
            match self.make_record(&repo, &mut records, dir, branch, *start) {
                Ok(None) => results.push(Some(Ok(WorktreeState::Reused))),
                Ok(Some(record)) => {
                    results.push(None);
                    made.push((i, record));
                }
                Err(error) => results.push(Some(Err(error))),
            }
        }
        let mut commits: Vec<Oid> = made.iter().map(|(_, record)| record.commit).collect();
        commits.sort();
        commits.dedup();
        for commit in commits {
            let group: Vec<&(usize, MadeRecord)> = made.iter().filter(|(_, record)| record.commit == commit).collect();
            let dirs: Vec<PathBuf> = group.iter().map(|(_, record)| record.dir.clone()).collect();
            match self.populate_worktrees(commit, &dirs) {
                Ok(()) => {
                    for (i, record) in group {
                        results[*i] = Some(
                            self.finish_worktree(&record.admin_dir)
                                .map(|()| WorktreeState::Created { branch: record.branch }),
                        );
                    }
                }
                Err(error) => {
                    // The first worktree reports the error; the others say why they were not made.
                    let message = error.to_string();
                    let mut error = Some(error);
                    for (i, record) in group {
                        self.undo_record(record);
                        let error = error.take().unwrap_or_else(|| {
                            io_error(
                                "check out the files of",
                                &record.dir,
                                std::io::Error::other(message.clone()),
                            )
                        });
                        results[*i] = Some(Err(error));
                    }
                }
            }
        }
        Ok(results.into_iter().flatten().collect())
    }
    /// Checks that a worktree of `branch` can be made at `dir` and writes its record, the
    /// branch (created at `start` when missing) checked out; returns `None` when `dir`
    /// already is that worktree. `records` is the list read once for a batch, kept current.
    fn make_record(
        &self,
        repo: &Repository,
        records: &mut Vec<Record>,
        dir: &Path,
        branch: &str,
        start: Oid,
    ) -> Result<Option<MadeRecord>, GitError> {
        let full = branch_ref(branch)?;
        let short = short_branch(&full).to_owned();
        let dir = normalize(dir);

        // Records that concern this folder, this branch or the name this folder gets.
        let base_name = worktree_name_base(&dir);
        let mut pruned = Vec::new();
        for (k, record) in records.iter().enumerate() {
            let record_head = self.record_head(record).ok();
            let same_path = record.path == dir;
            let holds_branch = record_head == Some(Head::Branch(full.clone()));
            if (same_path || holds_branch) && remove_if_half_made(record)? {
                pruned.push(k);
                continue;
            }
            if !(same_path || holds_branch) {
                if !record.exists && record.lock.is_none() && record.name == base_name {
                    self.prune_record(repo, record)?;
                    pruned.push(k);
                }
                continue;
            }
            if record.exists && same_path {
                if holds_branch {
                    return Ok(None);
                }
                let found = match record_head {
                    Some(Head::Branch(other)) => {
                        format!("a worktree of branch `{}`", short_branch(&other))
                    }
                    Some(Head::Detached(at)) => format!("a worktree detached at {}", at.short()),
                    None => "a worktree of this repository".to_owned(),
                };
                return Err(GitError::PathInTheWay { path: dir, found });
            }
            if !record.exists {
                self.prune_record(repo, record)?;
                pruned.push(k);
            }
        }
        for k in pruned.into_iter().rev() {
            records.remove(k);
        }

        refuse_occupied(&dir)?;
        if let Some(path) = self.checked_out_at_among(records, &full)? {
            return Err(GitError::BranchCheckedOut { branch: short, path });
        }

        let branch_state = self.ensure_branch(&full, start)?;
        let commit = match branch_state {
            BranchState::Existing(at) => at,
            BranchState::Created => start,
        };
        match self.create_worktree(&dir, &Head::Branch(full.clone())) {
            Ok(record) => {
                records.push(record.clone());
                Ok(Some(MadeRecord {
                    dir,
                    admin_dir: record.admin_dir,
                    commit,
                    branch: branch_state,
                    full,
                }))
            }
            Err(error) => {
                if branch_state == BranchState::Created {
                    // Best effort: the worktree error is the one worth reporting.
                    let _ = self.delete_branch(&full);
                }
                Err(error)
            }
        }
    }

    /// Removes a worktree whose files could not be written, and the branch made for it.
    fn undo_record(&self, record: &MadeRecord) {
        remove_half_made_worktree(&record.admin_dir, &record.dir);
        if record.branch == BranchState::Created {
            let _ = self.delete_branch(&record.full);
        }
    }

    /// Locks the worktree at `dir` against pruning, replacing an earlier lock's reason.
    pub fn lock_worktree(&self, dir: &Path, reason: &str) -> Result<(), GitError> {
        let repo = self.open()?;
        let record = self.require_record(&repo, dir)?;
        let worktree = repo
            .find_worktree(&record.name)
            .context(|| format!("find worktree `{}`", record.name))?;
        if record.lock.is_some() {
            if record.lock.as_deref() == Some(reason) {
                return Ok(());
            }
            worktree
                .unlock()
                .context(|| format!("unlock worktree `{}`", record.path.display()))?;
        }
        worktree
            .lock(Some(reason))
            .context(|| format!("lock worktree `{}`", record.path.display()))
    }

    /// Unlocks the worktree at `dir`; unlocking an unlocked worktree is not an error.
    pub fn unlock_worktree(&self, dir: &Path) -> Result<(), GitError> {
        let repo = self.open()?;
        let record = self.require_record(&repo, dir)?;
        if record.lock.is_none() {
            return Ok(());
        }
        let worktree = repo
            .find_worktree(&record.name)
            .context(|| format!("find worktree `{}`", record.name))?;
        worktree
            .unlock()
            .context(|| format!("unlock worktree `{}`", record.path.display()))
    }

    /// Lists the linked worktrees of the repository (not the main checkout), by name.
    pub fn worktrees(&self) -> Result<Vec<WorktreeInfo>, GitError> {
        let repo = self.open()?;
        let mut out = Vec::new();
        for record in self.records(&repo)? {
            let head = self.record_head(&record).ok();
            let (branch, head_commit) = match head {
                // Branches are shared by all worktrees: read through the main repository.
                Some(Head::Branch(full)) => (
                    Some(short_branch(&full).to_owned()),
                    read_ref(&repo, &full).ok().flatten(),
                ),
                Some(Head::Detached(at)) => (None, Some(at)),
                None => (None, None),
            };
            out.push(WorktreeInfo {
                name: record.name.clone(),
                path: record.path.clone(),
                branch,
                head: head_commit,
                locked: record.lock.is_some(),
                lock_reason: record.lock.clone().filter(|reason| !reason.is_empty()),
                missing: !record.exists,
                prunable: !record.exists && record.lock.is_none(),
            });
        }
        Ok(out)
    }

    /// Removes the records of worktrees whose folder was deleted by hand and that are
    /// not locked, and returns their names. Branches are kept.
    pub fn prune_stale_worktrees(&self) -> Result<Vec<String>, GitError> {
        let repo = self.open()?;
        let mut pruned = Vec::new();
        for record in self.records(&repo)? {
            if !record.exists && record.lock.is_none() {
                self.prune_record(&repo, &record)?;
                pruned.push(record.name);
            }
        }
        Ok(pruned)
    }

    /// Deletes the worktree at `dir`: its folder and its record. Its branch is kept.
    ///
    /// Without `force` it refuses with `GitError::Dirty` when there are uncommitted
    /// changes (untracked files included, ignored files not) and with
    /// `GitError::WorktreeLocked` when it is locked; with `force` it unlocks first and
    /// throws the changes away. A folder that is neither a worktree nor present is
    /// already removed, which is not an error; the user's own checkout is refused with
    /// `GitError::UserCheckout`.
    pub fn remove_worktree(&self, dir: &Path, force: bool) -> Result<(), GitError> {
        self.remove_worktree_ignoring(dir, force, &[])
    }

    /// Works as `remove_worktree`, but changes under the `ignore` prefixes (such as flow's
    /// own `.ai/worktrees/`) do not count as uncommitted changes.
    pub fn remove_worktree_ignoring(&self, dir: &Path, force: bool, ignore: &[&str]) -> Result<(), GitError> {
        let dir = normalize(dir);
        self.refuse_user_checkout(&dir)?;
        let repo = self.open()?;
        let Some(record) = self.find_record(&repo, &dir)? else {
            return match fs::symlink_metadata(&dir) {
                Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
                _ => Err(GitError::NotAWorktree { path: dir }),
            };
        };
        if !force {
            if let Some(reason) = &record.lock {
                return Err(GitError::WorktreeLocked {
                    path: record.path.clone(),
                    reason: Some(reason.clone()).filter(|reason| !reason.is_empty()),
                });
            }
            if record.exists {
                let worktree_repo = self.open_record(&record)?;
                let dirty = super::status::dirty_paths(&worktree_repo, &record.path, ignore)?;
                if !dirty.is_empty() {
                    return Err(GitError::Dirty {
                        path: record.path.clone(),
                        paths: dirty,
                    });
                }
            }
        }
        let worktree = repo
            .find_worktree(&record.name)
            .context(|| format!("find worktree `{}`", record.name))?;
        if record.lock.is_some() {
            worktree
                .unlock()
                .context(|| format!("unlock worktree `{}`", record.path.display()))?;
        }
        let mut options = WorktreePruneOptions::new();
        options.valid(true).locked(true).working_tree(true);
        worktree
            .prune(Some(&mut options))
            .context(|| format!("remove worktree `{}`", record.path.display()))?;
        // libgit2 only deletes the folder when its `.git` file is still there.
        match fs::remove_dir_all(&record.path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(io_error("delete worktree folder", &record.path, error)),
        }
    }

    /// Reads every worktree record of the repository.
    pub(crate) fn records(&self, repo: &Repository) -> Result<Vec<Record>, GitError> {
        let names = repo.worktrees().context(|| "list the worktrees".to_owned())?;
        let mut records = Vec::new();
        for name in names.iter().filter_map(|name| name.ok().flatten()) {
            let worktree = match repo.find_worktree(name) {
                Ok(worktree) => worktree,
                // A half-written record (no gitdir file) is not listed by git either.
                Err(_) => continue,
            };
            let admin_dir = self.common_dir().join("worktrees").join(name);
            let lock = match fs::read(admin_dir.join("locked")) {
                Ok(bytes) => Some(String::from_utf8_lossy(&bytes).trim().to_owned()),
                Err(error) if error.kind() == ErrorKind::NotFound => None,
                Err(error) => return Err(io_error("read", &admin_dir.join("locked"), error)),
            };
            let path = normalize(worktree.path());
            records.push(Record {
                name: name.to_owned(),
                exists: path.is_dir(),
                admin_dir,
                path,
                lock,
            });
        }
        Ok(records)
    }

    /// Finds the record whose folder is `dir` (already normalized).
    pub(crate) fn find_record(&self, repo: &Repository, dir: &Path) -> Result<Option<Record>, GitError> {
        Ok(self.records(repo)?.into_iter().find(|record| record.path == dir))
    }

    /// Finds the record whose folder is `dir`, or fails with `NotAWorktree`.
    pub(crate) fn require_record(&self, repo: &Repository, dir: &Path) -> Result<Record, GitError> {
        let dir = normalize(dir);
        match self.find_record(repo, &dir)? {
            Some(record) => Ok(record),
            None => Err(GitError::NotAWorktree { path: dir }),
        }
    }

    /// Returns the private git folder (`<common>/worktrees/<name>`) of the linked worktree at
    /// `dir`, found through the records in the common dir, never through the worktree's own
    /// `.git` file (which its agent can rewrite).
    pub fn worktree_admin_dir(&self, dir: &Path) -> Result<PathBuf, GitError> {
        let repo = self.open()?;
        Ok(self.require_record(&repo, dir)?.admin_dir)
    }

    /// Opens a worktree through its record in the common dir, so a `.git` file an agent
    /// overwrote cannot redirect flow to another repository.
    pub(crate) fn open_record(&self, record: &Record) -> Result<Repository, GitError> {
        Repository::open(&record.admin_dir).context(|| format!("open worktree `{}`", record.path.display()))
    }

    /// Opens a linked worktree of this repository that is not the user's checkout, for
    /// operations that write to it.
    pub(crate) fn open_flow_worktree(&self, dir: &Path) -> Result<(Repository, PathBuf), GitError> {
        let dir = normalize(dir);
        self.refuse_user_checkout(&dir)?;
        let repo = self.open()?;
        match self.find_record(&repo, &dir)? {
            Some(record) if record.exists => Ok((self.open_record(&record)?, record.path)),
            _ => Err(GitError::NotAWorktree { path: dir }),
        }
    }

    /// Fails with `GitError::UserCheckout` when `dir` (normalized) is the checkout flow
    /// was started from or the main working tree.
    pub(crate) fn refuse_user_checkout(&self, dir: &Path) -> Result<(), GitError> {
        let main = self.open_main()?;
        let main_workdir = main.workdir().map(normalize);
        if dir == self.root() || main_workdir.as_deref() == Some(dir) {
            return Err(GitError::UserCheckout {
                path: dir.to_path_buf(),
            });
        }
        Ok(())
    }

    /// Opens the worktree at `dir`: a linked worktree of this repository, or the
    /// checkout at the root.
    pub(crate) fn open_worktree(&self, dir: &Path) -> Result<(Repository, PathBuf), GitError> {
        let dir = normalize(dir);
        let repo = self.open()?;
        if let Some(record) = self.find_record(&repo, &dir)? {
            if !record.exists {
                return Err(GitError::NotAWorktree { path: dir });
            }
            return Ok((self.open_record(&record)?, record.path));
        }
        let main = self.open_main()?;
        if main.workdir().map(normalize).as_deref() == Some(dir.as_path()) {
            return Ok((main, dir));
        }
        Err(GitError::NotAWorktree { path: dir })
    }

    /// Reads HEAD of a record through its admin dir (works when the folder is gone).
    ///
    /// The file is read directly (`ref: <full ref>` or a commit id): opening the record as
    /// a repository would load the whole configuration, and every worktree operation
    /// reads the HEAD of every record. Anything else in it goes through libgit2.
    pub(crate) fn record_head(&self, record: &Record) -> Result<Head, GitError> {
        if let Ok(text) = fs::read_to_string(record.admin_dir.join("HEAD")) {
            let text = text.trim_end();
            if let Some(full) = text.strip_prefix("ref: ").filter(|full| full.starts_with("refs/")) {
                return Ok(Head::Branch(full.to_owned()));
            }
            if let Ok(at) = text.parse::<Oid>() {
                return Ok(Head::Detached(at));
            }
        }
        let repo = self.open_record(record)?;
        read_head(&repo, &record.path)
    }

    /// Returns the working tree that has the full ref `full` checked out, if any:
    /// the main checkout or a linked worktree (including one whose folder is gone).
    pub(crate) fn checked_out_at(&self, repo: &Repository, full: &str) -> Result<Option<PathBuf>, GitError> {
        self.checked_out_at_among(&self.records(repo)?, full)
    }

    /// Works as [`Git::checked_out_at`] with the records already read.
    fn checked_out_at_among(&self, records: &[Record], full: &str) -> Result<Option<PathBuf>, GitError> {
        let main = self.open_main()?;
        if let Some(workdir) = main.workdir()
            && read_head(&main, workdir)? == Head::Branch(full.to_owned())
        {
            return Ok(Some(normalize(workdir)));
        }
        for record in records {
            if self.record_head(record).ok() == Some(Head::Branch(full.to_owned())) {
                return Ok(Some(record.path.clone()));
            }
        }
        Ok(None)
    }

    /// Prunes one record whose folder is gone, or fails if it is locked.
    pub(crate) fn prune_record(&self, repo: &Repository, record: &Record) -> Result<(), GitError> {
        if record.lock.is_some() {
            return Err(GitError::StaleWorktreeLocked {
                name: record.name.clone(),
                path: record.path.clone(),
            });
        }
        let worktree = repo
            .find_worktree(&record.name)
            .context(|| format!("find worktree `{}`", record.name))?;
        worktree
            .prune(None)
            .context(|| format!("prune stale worktree record `{}`", record.name))
    }

    /// Creates a worktree record for `dir` (absent or an empty folder) with HEAD at `head`
    /// and the folder holding only its `.git` file: the files are written next, by
    /// [`Git::populate_worktrees`], then [`Git::finish_worktree`] says it is complete. The
    /// record is written in a folder of its own and moved into `<common>/worktrees/`
    /// whole, locked as [`WORKTREE_BEING_MADE`] until then: whatever a kill leaves at any
    /// point is recognised as half-made and removed before the folder is used again.
    pub(crate) fn create_worktree(&self, dir: &Path, head: &Head) -> Result<Record, GitError> {
        let records_dir = self.common_dir().join("worktrees");
        fs::create_dir_all(&records_dir).map_err(|error| io_error("create folder", &records_dir, error))?;
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(|error| io_error("create folder", parent, error))?;
        }
        let made_folder = match fs::create_dir(dir) {
            Ok(()) => true,
            Err(error) if error.kind() == ErrorKind::AlreadyExists && is_empty_dir(dir)? => false,
            Err(error) => return Err(io_error("create folder", dir, error)),
        };
        let record = self.write_record(&records_dir, dir, head);
        if record.is_err() && made_folder {
            let _ = fs::remove_dir_all(dir);
        }
        record
    }

    /// Writes the record of a new worktree and its `.git` file (see `create_worktree`).
    fn write_record(&self, records_dir: &Path, dir: &Path, head: &Head) -> Result<Record, GitError> {
        let staging = tempfile::Builder::new()
            .prefix(STAGED_RECORD_PREFIX)
            .tempdir_in(self.common_dir())
            .map_err(|error| io_error("create a folder in", self.common_dir(), error))?;
        let head_text = match head {
            Head::Branch(full) => format!("ref: {full}\n"),
            Head::Detached(at) => format!("{at}\n"),
        };
        let files = [
            ("gitdir", format!("{}\n", dir.join(".git").display())),
            ("commondir", "../..\n".to_owned()),
            ("HEAD", head_text),
            ("locked", format!("{}\n", being_made_reason())),
        ];
        for (name, text) in files {
            let path = staging.path().join(name);
            fs::write(&path, text).map_err(|error| io_error("write", &path, error))?;
        }
        // Under a name nobody took meanwhile.
        let (name, admin_dir) = loop {
            let name = self.unique_worktree_name(dir);
            let admin_dir = records_dir.join(&name);
            match fs::rename(staging.path(), &admin_dir) {
                // Readable as git makes records (a temporary folder is private).
                Ok(()) => {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = fs::set_permissions(&admin_dir, fs::Permissions::from_mode(0o755));
                    break (name, admin_dir);
                }
                Err(_) if admin_dir.exists() => continue,
                Err(error) => return Err(io_error("create worktree record", &admin_dir, error)),
            }
        };
        let git_file = dir.join(".git");
        if let Err(error) = fs::write(&git_file, format!("gitdir: {}\n", admin_dir.display())) {
            let _ = fs::remove_dir_all(&admin_dir);
            return Err(io_error("write", &git_file, error));
        }
        Ok(Record {
            name,
            admin_dir,
            path: dir.to_path_buf(),
            exists: true,
            lock: Some(being_made_reason()),
        })
    }

    /// Marks a worktree made by `create_worktree` complete, once its files are written.
    pub(crate) fn finish_worktree(&self, admin_dir: &Path) -> Result<(), GitError> {
        let lock = admin_dir.join("locked");
        fs::remove_file(&lock).map_err(|error| io_error("unlock new worktree", &lock, error))
    }

    /// Derives a record name from the folder (`flow-<folder>`, `/` and other odd
    /// characters replaced) that no record in the common dir uses yet.
    fn unique_worktree_name(&self, dir: &Path) -> String {
        let base = worktree_name_base(dir);
        let taken = |name: &str| self.common_dir().join("worktrees").join(name).exists();
        if !taken(&base) {
            return base;
        }
        let mut counter = 2u32;
        loop {
            let candidate = format!("{base}-{counter}");
            if !taken(&candidate) {
                return candidate;
            }
            counter += 1;
        }
    }
}

/// Derives the preferred record name for a folder: `flow-<folder name>`, with
/// characters other than letters, digits, `-`, `_` and `.` replaced by `-`.
fn worktree_name_base(dir: &Path) -> String {
    let folder = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches('.');
    if cleaned.is_empty() {
        "flow-worktree".to_owned()
    } else {
        format!("flow-{cleaned}")
    }
}

/// Deletes a worktree record and its folder that a failed or killed creation left behind,
/// but only what belongs to that creation: a record pointing at another folder, or a
/// folder holding anything but that record's files, belongs to someone else.
pub(crate) fn remove_half_made_worktree(admin_dir: &Path, dir: &Path) {
    let points_at = |file: &Path, target: &Path| -> bool {
        match fs::read_to_string(file) {
            Ok(text) => {
                let text = text.trim_end();
                let text = text.strip_prefix("gitdir: ").unwrap_or(text);
                normalize(Path::new(text)) == normalize(target)
            }
            Err(_) => false,
        }
    };
    let record_is_ours = admin_dir.is_dir()
        && (!admin_dir.join("gitdir").exists() || points_at(&admin_dir.join("gitdir"), &dir.join(".git")));
    let folder_is_ours =
        dir.is_dir() && (is_empty_dir(dir).unwrap_or(false) || points_at(&dir.join(".git"), admin_dir));
    // Best effort: the error from libgit2 is what the caller reports.
    if folder_is_ours {
        let _ = fs::remove_dir_all(dir);
    }
    if record_is_ours {
        let _ = fs::remove_dir_all(admin_dir);
    }
}

/// Removes the worktree of `record` when a killed flow left it half-made, so that it is made
/// again from scratch; says whether it did. One that another flow is still making is refused.
pub(crate) fn remove_if_half_made(record: &Record) -> Result<bool, GitError> {
    let Some(reason) = record.lock.as_deref().filter(|r| r.starts_with(WORKTREE_BEING_MADE)) else {
        return Ok(false);
    };
    if !is_half_made(reason) {
        return Err(GitError::PathInTheWay {
            path: record.path.clone(),
            found: format!("a worktree another flow is making ({reason})"),
        });
    }
    remove_half_made_worktree(&record.admin_dir, &record.path);
    Ok(true)
}

/// Refuses `dir` when something other than nothing or an empty folder is there.
pub(crate) fn refuse_occupied(dir: &Path) -> Result<(), GitError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            if is_empty_dir(dir)? {
                Ok(())
            } else {
                Err(GitError::PathInTheWay {
                    path: dir.to_path_buf(),
                    found: "a non-empty folder that is not a worktree of this repository".to_owned(),
                })
            }
        }
        Ok(_) => Err(GitError::PathInTheWay {
            path: dir.to_path_buf(),
            found: "a file".to_owned(),
        }),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error("inspect", dir, error)),
    }
}

/// Tells whether a folder has no entries.
fn is_empty_dir(dir: &Path) -> Result<bool, GitError> {
    let mut entries = fs::read_dir(dir).map_err(|error| io_error("read folder", dir, error))?;
    Ok(entries.next().is_none())
}
