//! What flow knows of a workstream worked on by hand: when it was prepared and how its setup
//! went, each session `flow open` started (who, which agent, when, how it ended), and when
//! `flow done` marked it finished and what became of it.
//!
//! One file per workstream, `.flow/by-hand/<workflow>/<workstream>.json`, so that sessions
//! of different workstreams opened at once never write the same file; each write replaces
//! the file atomically (temporary file, fsync, rename), so a crash leaves the old record or
//! the new one, never half of one. A session whose `flow open` died before it could record
//! the end keeps `ended: null`: [`Session::is_running`] then asks whether its process lives.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::process::start_time;
use crate::atomic::write_atomic;
use crate::time::Timestamp;

/// The version of the record's format.
pub const RECORD_VERSION: u32 = 1;

/// The record of one workstream worked on by hand.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByHandRecord {
    pub version: u32,
    pub workflow: String,
    pub workstream: String,
    /// When `flow prepare` (or `flow open`) last made its worktree ready.
    #[serde(default)]
    pub prepared_at: Option<Timestamp>,
    /// How its `setup` went, when it has one.
    #[serde(default)]
    pub setup: Option<SetupRecord>,
    /// Every session `flow open` started, oldest first.
    #[serde(default)]
    pub sessions: Vec<Session>,
    /// Set by `flow done`.
    #[serde(default)]
    pub done: Option<DoneRecord>,
}

/// How a workstream's setup went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupRecord {
    pub at: Timestamp,
    pub passed: bool,
    /// `passed`, or why it failed.
    pub detail: String,
    /// The hash of the commands and copies that passed ([`crate::worktree_setup::setup_key`]):
    /// the same setup is not run again in the same worktree.
    #[serde(default)]
    pub key: Option<String>,
}

/// One session `flow open` started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The user who opened it (`$USER`).
    pub by: String,
    /// The agent started, or `shell` for `--shell`.
    pub agent: String,
    /// The process flow started (the agent's, or the sandbox wrapper that became it).
    pub pid: Option<u32>,
    /// The process of `flow open` itself, which records the end.
    pub opener: u32,
    /// When that process started (clock ticks since boot): a pid alone may be taken by a new
    /// process once `flow open` is gone.
    #[serde(default)]
    pub opener_started: Option<u64>,
    pub started: Timestamp,
    #[serde(default)]
    pub ended: Option<Timestamp>,
    /// The exit status; `None` while it runs, or when it ended by a signal.
    #[serde(default)]
    pub exit: Option<i32>,
    /// Whether it ran in the workstream's sandbox.
    pub sandboxed: bool,
    /// What the guard found the session changed in the git directory, and undid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tampering: Vec<String>,
}

impl Session {
    /// Tells whether the session is still going: no end recorded and the `flow open` that
    /// started it still alive (one killed before it recorded the end does not count, nor a
    /// new process that took its pid).
    pub fn is_running(&self) -> bool {
        self.ended.is_none()
            && match self.opener_started {
                Some(started) => i32::try_from(self.opener).ok().and_then(start_time) == Some(started),
                None => process_alive(self.opener),
            }
    }
}

/// What `flow done` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneRecord {
    pub at: Timestamp,
    pub by: String,
    /// The branch's head it was given for.
    pub head: String,
    /// Where the branch's own work starts (for the handoff to its dependents).
    #[serde(default)]
    pub start: Option<String>,
    pub state: DoneState,
    pub detail: String,
}

/// Where a workstream marked done stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DoneState {
    /// Waiting for its dependencies to merge.
    Queued,
    Merged,
    /// A check, the merge or `verify` failed.
    Failed,
}

impl DoneState {
    /// Returns the kebab-case name, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            DoneState::Queued => "queued",
            DoneState::Merged => "merged",
            DoneState::Failed => "failed",
        }
    }
}

/// The folder of a workflow's records.
pub fn records_dir(flow_dir: &Path, workflow: &str) -> PathBuf {
    flow_dir.join("by-hand").join(workflow)
}

/// The record file of one workstream.
pub fn record_path(flow_dir: &Path, workflow: &str, workstream: &str) -> PathBuf {
    records_dir(flow_dir, workflow).join(format!("{workstream}.json"))
}

/// The log of one workstream's setup run by `flow prepare` or `flow open`.
pub fn setup_log_path(flow_dir: &Path, workflow: &str, workstream: &str) -> PathBuf {
    records_dir(flow_dir, workflow).join(format!("{workstream}.setup.log"))
}

/// The log of one workstream's test run by `flow done`.
pub fn test_log_path(flow_dir: &Path, workflow: &str, workstream: &str) -> PathBuf {
    records_dir(flow_dir, workflow).join(format!("{workstream}.test.log"))
}

/// The temporary folder of a workstream's confined processes started by hand (`TMPDIR`).
pub fn tmp_path(flow_dir: &Path, workflow: &str, workstream: &str) -> PathBuf {
    records_dir(flow_dir, workflow).join("tmp").join(workstream)
}

impl ByHandRecord {
    /// Reads the record of a workstream; an empty one when there is none yet.
    ///
    /// # Errors
    ///
    /// A record that exists but cannot be read or parsed.
    pub fn load(flow_dir: &Path, workflow: &str, workstream: &str) -> Result<ByHandRecord, String> {
        let path = record_path(flow_dir, workflow, workstream);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("cannot read {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ByHandRecord {
                version: RECORD_VERSION,
                workflow: workflow.to_string(),
                workstream: workstream.to_string(),
                ..ByHandRecord::default()
            }),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Every record of a workflow, by workstream name.
    pub fn load_all(flow_dir: &Path, workflow: &str) -> Vec<ByHandRecord> {
        let Ok(entries) = std::fs::read_dir(records_dir(flow_dir, workflow)) else {
            return vec![];
        };
        let mut records: Vec<ByHandRecord> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect();
        records.sort_by(|a: &ByHandRecord, b| a.workstream.cmp(&b.workstream));
        records
    }

    /// Every record of every workflow, by workflow then workstream.
    pub fn load_every(flow_dir: &Path) -> Vec<ByHandRecord> {
        let Ok(entries) = std::fs::read_dir(flow_dir.join("by-hand")) else {
            return vec![];
        };
        let mut workflows: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        workflows.sort();
        workflows
            .iter()
            .flat_map(|w| ByHandRecord::load_all(flow_dir, w))
            .collect()
    }

    /// The record as `flow status --json` shows it: its fields, with `state`.
    pub fn summary(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("state".into(), self.state().into());
        }
        value
    }

    /// Writes the record atomically.
    ///
    /// # Errors
    ///
    /// The folder cannot be made or the file written.
    pub fn save(&self, flow_dir: &Path) -> Result<(), String> {
        let path = record_path(flow_dir, &self.workflow, &self.workstream);
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| write_atomic(&path, &json))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Reads the record, changes it and writes it back.
    ///
    /// # Errors
    ///
    /// As [`ByHandRecord::load`] and [`ByHandRecord::save`].
    pub fn update(
        flow_dir: &Path,
        workflow: &str,
        workstream: &str,
        change: impl FnOnce(&mut ByHandRecord),
    ) -> Result<ByHandRecord, String> {
        let mut record = ByHandRecord::load(flow_dir, workflow, workstream)?;
        change(&mut record);
        record.save(flow_dir)?;
        Ok(record)
    }

    /// The session running now, if any.
    pub fn running_session(&self) -> Option<&Session> {
        self.sessions.iter().rev().find(|s| s.is_running())
    }

    /// Where the workstream stands: `merged`, `failed`, `done` (queued), `open`, `prepared`,
    /// or `setup-failed`.
    pub fn state(&self) -> &'static str {
        match &self.done {
            Some(done) if done.state == DoneState::Merged => "merged",
            Some(done) if done.state == DoneState::Failed => "failed",
            Some(_) => "done",
            None if self.running_session().is_some() => "open",
            None if self.setup.as_ref().is_some_and(|s| !s.passed) => "setup-failed",
            None => "prepared",
        }
    }
}

/// The user's name, for the record (`$USER`, else `$LOGNAME`, else `unknown`).
pub fn user_name() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

/// Tells whether a process with this id exists (`/proc/<pid>`; elsewhere, assumed alive).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session `flow open` started in process `opener`, which started at `opener_started`.
    fn session(opener: u32, opener_started: Option<u64>) -> Session {
        Session {
            by: "someone".into(),
            agent: "shell".into(),
            pid: None,
            opener,
            opener_started,
            started: crate::time::now(),
            ended: None,
            exit: None,
            sandboxed: false,
            tampering: vec![],
        }
    }

    #[test]
    fn a_session_runs_while_its_opener_lives_and_not_once_its_pid_names_another_process() {
        let me = std::process::id();
        let started = start_time(i32::try_from(me).expect("a pid")).expect("this process's start time");
        assert!(session(me, Some(started)).is_running());
        // The same pid, a process started at another time: `flow open` is gone, its pid reused.
        assert!(!session(me, Some(started + 1)).is_running());
        // Recorded before start times were: the pid alone.
        assert!(session(me, None).is_running());
        let mut ended = session(me, Some(started));
        ended.ended = Some(crate::time::now());
        assert!(!ended.is_running());
    }
}
