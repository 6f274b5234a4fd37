//! Cleaning up after a flow process that died without a chance to (SIGKILL, a crash, a power
//! cut): the agents it left running and the git lock files it left behind.
//!
//! Both are called with the run lock held, so no live flow process of the workflow is at work.

use std::path::{Path, PathBuf};

use flow_dsl::{Isolation, Workflow};

use crate::git::Git;

/// Stops the processes a dead flow left running for run `run_id`, and waits until they are
/// gone: its agents, their children and the workstreams' tests all carry `FLOW_RUN=<id>` in
/// their environment. Without this, a resumed workstream's new agent would share its worktree
/// with the old one, still writing and committing. Returns how many processes were stopped.
/// (Linux only: elsewhere nothing is found.)
pub fn stop_leftover_processes(run_id: &str) -> usize {
    let needle = format!("FLOW_RUN={run_id}");
    let mut stopped = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let found = processes_with_env(&needle);
        if found.is_empty() {
            break;
        }
        // SAFETY: plain syscalls; never our own process or process group.
        let own_group = unsafe { libc::getpgrp() };
        for (pid, group) in found {
            if group > 1 && group != own_group {
                unsafe { libc::kill(-group, libc::SIGKILL) };
            }
            unsafe { libc::kill(pid, libc::SIGKILL) };
            stopped.insert(pid);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stopped.len()
}

/// The live processes (pid, process group) whose environment holds `needle` (`NAME=value`).
#[cfg(target_os = "linux")]
fn processes_with_env(needle: &str) -> Vec<(i32, i32)> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
        .filter_map(|pid| {
            // "pid (comm) STATE PPID PGRP ...": comm may hold spaces, so split after ')'.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
            let state = fields.next()?;
            if state == "Z" || state == "X" {
                return None;
            }
            let group = fields.nth(1)?.parse().ok()?;
            Some((pid, group))
        })
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn processes_with_env(_needle: &str) -> Vec<(i32, i32)> {
    vec![]
}

/// Removes the lock files a killed flow (or one of its agents) left on what flow owns: the
/// integration branch, the workstream branches (and their reflogs), and the private files
/// (index, HEAD) of the worktrees under `worktrees_dir`. git never removes a lock file it did
/// not finish with, so one left there blocks every later update of that branch. Only call this
/// with the run lock held and leftover agents stopped. Returns the files removed.
pub fn clear_stale_git_locks(git: &Git, workflow: &Workflow, worktrees_dir: &Path) -> Vec<PathBuf> {
    let common = git.common_dir().to_path_buf();
    let mut candidates = vec![];
    let mut branches = vec![workflow.into.clone()];
    branches.extend(
        workflow
            .workstreams
            .iter()
            .filter(|w| w.isolation == Isolation::Worktree)
            .map(|w| workflow.branch_of(w)),
    );
    for branch in branches {
        for dir in ["refs/heads", "logs/refs/heads"] {
            candidates.push(common.join(dir).join(format!("{branch}.lock")));
        }
    }
    let worktrees_dir = std::fs::canonicalize(worktrees_dir).unwrap_or_else(|_| worktrees_dir.to_path_buf());
    if let Ok(records) = git.worktrees() {
        for record in records.iter().filter(|r| {
            let path = std::fs::canonicalize(&r.path).unwrap_or_else(|_| r.path.clone());
            path.starts_with(&worktrees_dir)
        }) {
            let admin = common.join("worktrees").join(&record.name);
            for file in ["index.lock", "HEAD.lock", "ORIG_HEAD.lock", "logs/HEAD.lock"] {
                candidates.push(admin.join(file));
            }
        }
    }
    candidates
        .into_iter()
        .filter(|path| path.is_file() && std::fs::remove_file(path).is_ok())
        .collect()
}
