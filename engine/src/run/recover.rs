//! Cleaning up after a flow process that died without a chance to (SIGKILL, a crash, a power
//! cut): the agents it left running, and what it left half-done in git (lock files, worktrees
//! half-way through their creation, the integration worktree on its temporary branch,
//! temporary branches).
//!
//! Called with the run lock held, so no live flow run of the workflow is at work.

use std::path::{Path, PathBuf};

use flow_dsl::{Isolation, Workflow};
use rustix::process::{Pid, Signal, getpgrp, kill_process, kill_process_group, test_kill_process};

use crate::git::{Git, STAGED_RECORD_PREFIX, is_half_made};

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
        // Never our own process or process group, nor group 1 (a signal to it reaches every
        // process we may signal).
        let own_group = getpgrp();
        for (pid, group) in found {
            if group > 1
                && group != own_group.as_raw_pid()
                && let Some(group) = Pid::from_raw(group)
            {
                let _ = kill_process_group(group, Signal::KILL);
            }
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
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
    candidates.retain(|path| path.is_file());
    settled(candidates)
        .into_iter()
        .filter(|path| std::fs::remove_file(path).is_ok())
        .collect()
}

/// How long a lock file or a half-made worktree record must stay unchanged before it is taken
/// for a leftover: git holds its locks for milliseconds, and `flow merge` or `flow prepare`
/// (which do not take the run lock) may be at work on the same workflow.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The paths that are at least [`SETTLE`] old, waiting (once, for all of them) for the young
/// ones, and dropping those that changed or went away meanwhile.
fn settled(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let seen: Vec<_> = paths.iter().map(|p| modified(p)).collect();
    let youngest = seen
        .iter()
        .flatten()
        .filter_map(|t| t.elapsed().ok())
        .min()
        .unwrap_or(SETTLE);
    if youngest < SETTLE {
        std::thread::sleep(SETTLE - youngest);
    }
    paths
        .into_iter()
        .zip(seen)
        .filter(|(p, then)| then.is_some() && modified(p) == *then)
        .map(|(p, _)| p)
        .collect()
}

/// Tells whether `dir` holds a whole worktree: its `.git` file names a record that is whole
/// (see `record_complete`). A half-made one is removed by [`repair_git`], with its folder.
pub fn worktree_is_whole(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(".git")).is_ok_and(|text| {
        let admin = PathBuf::from(text.trim_end().trim_start_matches("gitdir: "));
        record_complete(&admin)
    })
}

/// Tells whether a worktree record is whole: its `gitdir`, `commondir` and `HEAD` files
/// written, and not left locked as being made by a process that is gone.
fn record_complete(admin: &Path) -> bool {
    ["gitdir", "commondir", "HEAD"].iter().all(|f| admin.join(f).is_file())
        && std::fs::read_to_string(admin.join("locked")).map_or(true, |reason| !is_half_made(&reason))
}

/// Removes the worktrees a killed flow was half-way through creating: a record under
/// `<common>/worktrees/` without its `gitdir`, `commondir` or `HEAD` file or still locked as
/// being made, and the folder it was making for it; and records that were still being
/// written outside `worktrees/`. libgit2 reads such a record as holding every branch, so one left there
/// makes every later worktree creation fail with "already checked out". Only records that
/// belong to one of `folders` (flow's worktree folders) are touched. Returns what was removed.
pub fn remove_half_made_worktrees(git: &Git, folders: &[PathBuf]) -> Vec<PathBuf> {
    let mut removed = vec![];
    let staged: Vec<PathBuf> = std::fs::read_dir(git.common_dir())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(STAGED_RECORD_PREFIX))
        .map(|e| e.path())
        .collect();
    for record in settled(staged) {
        if std::fs::remove_dir_all(&record).is_ok() {
            removed.push(record);
        }
    }
    let records_dir = git.common_dir().join("worktrees");
    let Ok(entries) = std::fs::read_dir(&records_dir) else {
        return removed;
    };
    let points_at = |file: &Path, target: &Path| -> bool {
        std::fs::read_to_string(file).is_ok_and(|text| {
            let text = text.trim_end();
            let text = text.strip_prefix("gitdir: ").unwrap_or(text);
            same_path(Path::new(text), target)
        })
    };
    let incomplete: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !record_complete(p))
        .collect();
    for admin in settled(incomplete) {
        if record_complete(&admin) {
            continue;
        }
        let name = admin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Its folder: the one its `gitdir` names, the one whose `.git` names it, or (when
        // killed before either was written) the one its name was made from.
        let folder = folders.iter().find(|f| {
            points_at(&admin.join("gitdir"), &f.join(".git"))
                || points_at(&f.join(".git"), &admin)
                || (!admin.join("gitdir").exists()
                    && f.file_name().is_some_and(|n| {
                        let base = format!("flow-{}", n.to_string_lossy());
                        name == base || name.strip_prefix(&base).is_some_and(|rest| rest.starts_with('-'))
                    }))
        });
        let Some(folder) = folder else { continue };
        // The folder goes too, unless it is the working folder of another, complete record
        // (a later attempt under another name): half-made, it holds nothing of an agent.
        let other_record = std::fs::read_to_string(folder.join(".git")).ok().and_then(|text| {
            let target = PathBuf::from(text.trim_end().trim_start_matches("gitdir: "));
            (record_complete(&target) && !same_path(&target, &admin)).then_some(target)
        });
        if other_record.is_none() && folder.exists() && std::fs::remove_dir_all(folder).is_ok() {
            removed.push(folder.clone());
        }
        if std::fs::remove_dir_all(&admin).is_ok() {
            removed.push(admin);
        }
    }
    removed
}

fn same_path(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canonical(a) == canonical(b)
}

/// Repairs what a killed flow left in git for `workflow`: stale lock files on its branches and
/// worktrees, and half-made worktrees. Returns what was removed, in words.
pub fn repair_git(git: &Git, workflow: &Workflow, site: &crate::site::Site) -> Vec<String> {
    let worktrees_dir = &site.worktrees_dir(workflow);
    let mut done: Vec<String> = clear_stale_git_locks(git, workflow, worktrees_dir)
        .iter()
        .map(|p| {
            format!(
                "removed {}, a git lock file an interrupted run left behind",
                p.display()
            )
        })
        .collect();
    let mut folders: Vec<PathBuf> = workflow
        .workstreams
        .iter()
        .filter(|w| w.isolation == Isolation::Worktree)
        .map(|w| worktrees_dir.join(&w.name))
        .collect();
    folders.push(site.integration_dir(workflow));
    done.extend(detach_integration_worktree(git, &site.integration_dir(workflow)));
    done.extend(remove_dead_temporary_branches(git));
    done.extend(remove_half_made_worktrees(git, &folders).iter().map(|p| {
        format!(
            "removed {}, part of a worktree an interrupted run was half-way through creating",
            p.display()
        )
    }));
    done
}

/// The prefix of the temporary branches through which the git layer creates a detached
/// worktree (libgit2 only creates worktrees on a branch): `<prefix><folder>-<pid>-<n>`.
const TEMPORARY_BRANCHES: &str = "refs/heads/flow-tmp/checkout-";

/// A flow killed while creating the integration worktree (where `verify` runs) can leave it on
/// its temporary branch instead of detached, which every later checkout refuses ("a worktree
/// of branch flow-tmp/..."): detach it where that branch points.
fn detach_integration_worktree(git: &Git, folder: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(folder.join(".git")) else {
        return vec![];
    };
    let admin = PathBuf::from(text.trim_end().trim_start_matches("gitdir: "));
    let Ok(head) = std::fs::read_to_string(admin.join("HEAD")) else {
        return vec![];
    };
    let Some(branch) = head
        .trim_end()
        .strip_prefix("ref: ")
        .filter(|r| r.starts_with(TEMPORARY_BRANCHES))
    else {
        return vec![];
    };
    let Ok(repo) = git2::Repository::open(git.common_dir()) else {
        return vec![];
    };
    match repo.refname_to_id(branch) {
        Ok(oid) if crate::atomic::write_atomic(&admin.join("HEAD"), format!("{oid}\n").as_bytes()).is_ok() => {
            vec![format!(
                "detached {} from {branch}, where an interrupted run had left it",
                folder.display()
            )]
        }
        // Its branch is gone too: the worktree is only `verify`'s scratch, made again on demand.
        Err(_) if std::fs::remove_dir_all(&admin).is_ok() => {
            let _ = std::fs::remove_dir_all(folder);
            vec![format!(
                "removed {}, left on a temporary branch that no longer exists",
                folder.display()
            )]
        }
        _ => vec![],
    }
}

/// Deletes the temporary branches of flow processes that died before they could (their pid in
/// the name is gone), unless a worktree still has one checked out.
fn remove_dead_temporary_branches(git: &Git) -> Vec<String> {
    let Ok(repo) = git2::Repository::open(git.common_dir()) else {
        return vec![];
    };
    let checked_out: Vec<String> = std::fs::read_dir(git.common_dir().join("worktrees"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("HEAD")).ok())
                .filter_map(|h| h.trim_end().strip_prefix("ref: ").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    // The pid in a temporary branch's name is gone.
    let dead = |name: &str| {
        let pid: Option<i32> = name.rsplit('-').nth(1).and_then(|p| p.parse().ok());
        // Signal 0 only checks whether the process exists.
        pid.filter(|&p| p > 0)
            .and_then(Pid::from_raw)
            .is_some_and(|p| test_kill_process(p).is_err())
    };
    let mut done = vec![];
    // Lock files first: a process killed while creating its branch leaves `<branch>.lock`.
    let folder = git
        .common_dir()
        .join(TEMPORARY_BRANCHES.rsplit_once('/').map_or("", |(dir, _)| dir));
    if let Ok(entries) = std::fs::read_dir(&folder) {
        for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(branch) = name.strip_suffix(".lock")
                && dead(branch)
                && std::fs::remove_file(&path).is_ok()
            {
                done.push(format!(
                    "removed {}, a git lock file an interrupted run left behind",
                    path.display()
                ));
            }
        }
    }
    let Ok(references) = repo.references_glob(&format!("{TEMPORARY_BRANCHES}*")) else {
        return done;
    };
    for mut reference in references.filter_map(|r| r.ok()) {
        let Some(name) = reference.name().ok().map(str::to_string) else {
            continue;
        };
        if !dead(&name) || checked_out.contains(&name) {
            continue;
        }
        if reference.delete().is_ok() {
            done.push(format!(
                "deleted {}, a temporary branch an interrupted run left behind",
                name.trim_start_matches("refs/heads/")
            ));
        }
    }
    done
}
