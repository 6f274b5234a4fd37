//! One run per workflow and repository at a time: an advisory lock ([`File::try_lock`]) on
//! `.flow/locks/<workflow>.lock`.
//!
//! The operating system releases the lock when its holder's file closes, however the holder
//! ends, so a lock left by a run that was killed is free whatever became of its pid. The file
//! also holds the holder's pid and start time, only to name the holder when the lock is refused;
//! they are written before anyone can open the file.
//!
//! The file is deleted when the lock is released. Done naively that makes two holders: A holds
//! the lock, B opens the file, A deletes it and lets go, C creates a new file and locks it, and B
//! locks the deleted one. So only the holder of the file at the path ever changes the path
//! (it deletes or replaces the file it holds; a new file is linked into place only where none
//! is), and whoever locks a file then checks that the path still names that file, and starts
//! again otherwise. A file that is there but not locked (its holder was killed) is replaced,
//! while locked, by a new file naming the new holder.

use std::fs::{File, TryLockError};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use tempfile::NamedTempFile;

use crate::time::{Timestamp, elapsed};

/// How many times the lock is tried while its file keeps being deleted or replaced under us.
const ATTEMPTS: usize = 100;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum LockError {
    #[error("workflow `{workflow}` is already running (pid {pid}, started {started})")]
    #[diagnostic(
        code("flow::run::locked"),
        help("wait for it, or stop it; a lock left by a process that died is taken over automatically")
    )]
    Held {
        workflow: String,
        pid: u32,
        started: String,
    },
    #[error("cannot take the lock {path}: {error}")]
    #[diagnostic(code("flow::run::lock_io"))]
    Io { path: PathBuf, error: std::io::Error },
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    /// The open file whose lock is held; closing it releases the lock.
    file: File,
}

/// What one try at the lock came to.
#[derive(Debug)]
enum Attempt {
    /// The lock is ours.
    Taken(RunLock),
    /// Another open file holds it; the pid and start time it wrote.
    Held { pid: u32, started: Option<Timestamp> },
    /// The file changed under us (deleted or replaced): try again.
    Changed,
}

impl RunLock {
    /// Takes the lock of a workflow, or says who holds it.
    pub fn acquire(flow_dir: &Path, workflow: &str) -> Result<RunLock, LockError> {
        let dir = flow_dir.join("locks");
        std::fs::create_dir_all(&dir).map_err(|error| LockError::Io {
            path: dir.clone(),
            error,
        })?;
        let path = dir.join(format!("{workflow}.lock"));
        for _ in 0..ATTEMPTS {
            let attempt = attempt(&path).map_err(|error| LockError::Io {
                path: path.clone(),
                error,
            })?;
            match attempt {
                Attempt::Taken(lock) => return Ok(lock),
                Attempt::Held { pid, started } => {
                    return Err(LockError::Held {
                        workflow: workflow.to_string(),
                        pid,
                        started: describe_time(started),
                    });
                }
                Attempt::Changed => {}
            }
        }
        Err(LockError::Io {
            path,
            error: io::Error::other("the lock kept changing hands"),
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Deleted while still held, so that nobody takes the file on its way out; the lock goes
        // when `file` closes, just after.
        if names(&self.path, &self.file) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Tries once to take the lock at `path`.
fn attempt(path: &Path) -> io::Result<Attempt> {
    match File::open(path) {
        Ok(file) => lock_opened(path, file),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            // No file: link one naming us, locked already, into place, unless one came meanwhile.
            match holder_file(path)?.persist_noclobber(path) {
                Ok(file) => Ok(Attempt::Taken(RunLock {
                    path: path.to_path_buf(),
                    file,
                })),
                Err(error) if error.error.kind() == ErrorKind::AlreadyExists => Ok(Attempt::Changed),
                Err(error) => Err(error.error),
            }
        }
        Err(error) => Err(error),
    }
}

/// Tries to take the lock through `file`, the lock file as it was opened a moment ago.
fn lock_opened(path: &Path, mut file: File) -> io::Result<Attempt> {
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            if !names(path, &file) {
                // Its holder just deleted or replaced it.
                return Ok(Attempt::Changed);
            }
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            let mut parts = text.split_whitespace();
            return Ok(Attempt::Held {
                pid: parts.next().and_then(|pid| pid.parse().ok()).unwrap_or(0),
                started: parts.next().and_then(|at| at.parse().ok()),
            });
        }
        Err(TryLockError::Error(error)) => return Err(error),
    }
    if !names(path, &file) {
        // Locked only after its holder let go of it and took it off the path.
        return Ok(Attempt::Changed);
    }
    // A file nobody holds: its holder died without deleting it. Replaced by one naming us,
    // while we hold it.
    let replacement = holder_file(path)?.persist(path).map_err(|error| error.error)?;
    drop(file);
    Ok(Attempt::Taken(RunLock {
        path: path.to_path_buf(),
        file: replacement,
    }))
}

/// Makes a new, locked file beside `path` holding this process's pid and the time.
fn holder_file(path: &Path) -> io::Result<NamedTempFile> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = NamedTempFile::new_in(dir)?;
    writeln!(temp, "{} {}", std::process::id(), crate::time::now())?;
    temp.as_file().sync_all()?;
    temp.as_file().try_lock()?;
    Ok(temp)
}

/// Tells whether `path` names the very file `file` is open on.
fn names(path: &Path, file: &File) -> bool {
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(named), Ok(open)) => named.dev() == open.dev() && named.ino() == open.ino(),
        _ => false,
    }
}

/// Says how long ago `at` was.
fn describe_time(at: Option<Timestamp>) -> String {
    match at {
        Some(at) => format!("{} ago", flow_dsl::format_duration(elapsed(at, crate::time::now()))),
        None => "at an unknown time".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the pid written in the lock file at `path`.
    fn written_pid(path: &Path) -> u32 {
        let text = std::fs::read_to_string(path).expect("the lock file is there");
        text.split_whitespace()
            .next()
            .and_then(|pid| pid.parse().ok())
            .expect("the lock file starts with a pid")
    }

    #[test]
    fn a_second_acquire_is_refused_naming_the_holder() {
        let flow = tempfile::tempdir().expect("a temporary directory");
        let _held = RunLock::acquire(flow.path(), "w").expect("the lock is free");
        // Each acquire opens the file anew: a lock of another open file description, though
        // the process is the same.
        match RunLock::acquire(flow.path(), "w") {
            Err(LockError::Held { workflow, pid, started }) => {
                assert_eq!(workflow, "w");
                assert_eq!(pid, std::process::id());
                assert!(started.ends_with("s ago"), "{started}");
            }
            other => panic!("expected Held, got {other:?}"),
        }
        // Another workflow has a lock of its own.
        RunLock::acquire(flow.path(), "other").expect("another workflow's lock is free");
    }

    #[test]
    fn a_file_locked_by_another_open_file_is_held() {
        let flow = tempfile::tempdir().expect("a temporary directory");
        let path = flow.path().join("locks/w.lock");
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("the locks folder");
        std::fs::write(&path, "4242 1700000000.5\n").expect("a lock file");
        let holder = File::open(&path).expect("the lock file opens");
        holder.try_lock().expect("nobody holds it yet");
        match RunLock::acquire(flow.path(), "w") {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, 4242),
            other => panic!("expected Held, got {other:?}"),
        }
        assert_eq!(written_pid(&path), 4242, "a refused acquire leaves the file alone");
    }

    #[test]
    fn the_lock_is_free_after_drop() {
        let flow = tempfile::tempdir().expect("a temporary directory");
        let path = flow.path().join("locks/w.lock");
        let lock = RunLock::acquire(flow.path(), "w").expect("the lock is free");
        assert_eq!(written_pid(&path), std::process::id());
        drop(lock);
        assert!(!path.exists(), "the lock file is deleted");
        let again = RunLock::acquire(flow.path(), "w").expect("the lock is free again");
        drop(again);
        let leftovers: Vec<_> = std::fs::read_dir(flow.path().join("locks"))
            .expect("the locks folder")
            .flatten()
            .map(|entry| entry.path())
            .collect();
        assert!(leftovers.is_empty(), "nothing left: {leftovers:?}");
    }

    #[test]
    fn a_file_left_by_a_dead_holder_is_taken_over() {
        let flow = tempfile::tempdir().expect("a temporary directory");
        let path = flow.path().join("locks/w.lock");
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("the locks folder");
        // What a killed run leaves: its pid and start time, and no lock (the system let it go).
        let mut dead = std::process::Command::new("true").spawn().expect("`true` starts");
        dead.wait().expect("`true` exits");
        std::fs::write(&path, format!("{} 1700000000.5\n", dead.id())).expect("a lock file");
        let lock = RunLock::acquire(flow.path(), "w").expect("a dead holder's lock is taken over");
        assert_eq!(written_pid(&path), std::process::id());
        match RunLock::acquire(flow.path(), "w") {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(lock);
        assert!(!path.exists());
    }

    #[test]
    fn a_deleted_file_locked_late_does_not_make_a_second_holder() {
        let flow = tempfile::tempdir().expect("a temporary directory");
        let path = flow.path().join("locks/w.lock");
        let first = RunLock::acquire(flow.path(), "w").expect("the lock is free");
        // B opens the file, then its holder lets go (deleting it) and C takes a new one.
        let opened_by_b = File::open(&path).expect("the lock file opens");
        drop(first);
        let _third = RunLock::acquire(flow.path(), "w").expect("the lock is free");
        // B can lock the deleted file, but must see it is no longer the lock.
        assert!(matches!(
            lock_opened(&path, opened_by_b).expect("no I/O error"),
            Attempt::Changed
        ));
    }

    #[test]
    fn a_file_being_released_is_tried_again_not_refused() {
        let flow = tempfile::tempdir().expect("a temporary directory");
        let path = flow.path().join("locks/w.lock");
        let first = RunLock::acquire(flow.path(), "w").expect("the lock is free");
        let opened = File::open(&path).expect("the lock file opens");
        // Deleted by its holder, still locked: not refused in the holder's name, tried again.
        std::fs::remove_file(&path).expect("the holder deletes it");
        assert!(matches!(
            lock_opened(&path, opened).expect("no I/O error"),
            Attempt::Changed
        ));
        drop(first);
    }
}
