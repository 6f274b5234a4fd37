//! One run per workflow and repository at a time: a lock file holding the owner's pid and
//! start time, taken over safely when its owner is dead.

use std::io::Write;
use std::path::{Path, PathBuf};

use miette::Diagnostic;
use rustix::io::Errno;
use rustix::process::{Pid, test_kill_process};

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum LockError {
    #[error("workflow `{workflow}` is already running (pid {pid}, started {started})")]
    #[diagnostic(
        code(flow::run::locked),
        help("wait for it, or stop it; a lock left by a process that died is taken over automatically")
    )]
    Held {
        workflow: String,
        pid: u32,
        started: String,
    },
    #[error("cannot take the lock {path}: {error}")]
    #[diagnostic(code(flow::run::lock_io))]
    Io { path: PathBuf, error: std::io::Error },
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
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
        let io = |error| LockError::Io {
            path: path.clone(),
            error,
        };
        for _ in 0..3 {
            // Written whole to a temporary file, then linked into place (failing if a lock is
            // there): nobody ever reads a lock file with its pid missing.
            let mut temp = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
            writeln!(temp, "{} {}", std::process::id(), crate::run::state::now()).map_err(io)?;
            temp.as_file().sync_all().map_err(io)?;
            match temp.persist_noclobber(&path) {
                Ok(_) => return Ok(RunLock { path }),
                Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    let mut parts = text.split_whitespace();
                    let pid: Option<u32> = parts.next().and_then(|p| p.parse().ok());
                    let started: f64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
                    match pid {
                        Some(pid) if pid != std::process::id() && alive(pid) => {
                            return Err(LockError::Held {
                                workflow: workflow.to_string(),
                                pid,
                                started: describe_time(started),
                            });
                        }
                        _ => {
                            // The owner is gone (or the file is damaged): take it over. Moved
                            // aside first, so that a lock another process took over meanwhile
                            // is put back rather than deleted.
                            let aside = dir.join(format!("{workflow}.lock.{}", std::process::id()));
                            if std::fs::rename(&path, &aside).is_ok() {
                                if std::fs::read_to_string(&aside).unwrap_or_default() != text {
                                    let _ = std::fs::hard_link(&aside, &path);
                                }
                                let _ = std::fs::remove_file(&aside);
                            }
                        }
                    }
                }
                Err(e) => return Err(io(e.error)),
            }
        }
        Err(LockError::Io {
            path,
            error: std::io::Error::other("the lock kept changing hands"),
        })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    // Signal 0 only checks that the process exists; EPERM says it exists but is not ours.
    matches!(test_kill_process(pid), Ok(()) | Err(Errno::PERM))
}

fn describe_time(at: f64) -> String {
    let ago = crate::run::state::now() - at;
    if ago < 120.0 {
        format!("{ago:.0}s ago")
    } else if ago < 7200.0 {
        format!("{:.0} minutes ago", ago / 60.0)
    } else {
        format!("{:.1} hours ago", ago / 3600.0)
    }
}
