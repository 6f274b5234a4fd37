//! Stops whatever a child left behind when it ends, even processes that left its process group.
//!
//! Killing a child's process group does not reach a descendant that called `setsid` or moved to
//! another group, and a double fork hides a daemon from its starter. So flow becomes a
//! *subreaper* ([`become_subreaper`], `prctl(PR_SET_CHILD_SUBREAPER)`): an orphan anywhere below
//! it is reparented to flow instead of init, and so stays within reach. The kernel gives such
//! orphans to the first live thread of flow, its main thread, which never starts a process
//! itself: the children of flow's main thread (`/proc/self/task/<pid>/children`) are orphans,
//! apart from a child of another thread that ended (the registered children are told apart).
//!
//! Each child [`run_process`](super::run_process) starts carries a mark in its environment,
//! `FLOW_PROCESS=<flow's pid>.<number>` (after any mark flow itself inherited, so a flow run by
//! an agent leaves its agents marked for the outer one too), which its descendants inherit.
//! When a child has ended, [`sweep`] looks at the orphans: one that carries the mark of a child
//! still running is left alone (it belongs to a running agent); one that carries only marks of
//! children that ended, or whose mark was scrubbed (`env -i`, or its environment overwritten)
//! and that started after every child still running, is killed (SIGKILL) and reaped, and so is
//! an orphan that already exited (a zombie). The sweep repeats until a round finds nothing to
//! stop: a killed orphan's own children are reparented to flow when it dies. An orphan without a
//! mark that may belong to a running child is stopped by a later sweep, at the latest the one
//! after the last child ends.
//!
//! Only processes reparented to flow are signalled and waited for, so no pid can have been
//! reused in between (a dead orphan stays a zombie until flow reaps it), and no child that
//! flow started itself (whose status tokio or the standard library waits for) is touched. An
//! orphan flow may not signal (it changed its user: a setuid program) is left alone, and a
//! killed one that does not die within [`PATIENCE`] (stuck in the kernel) is reaped by a later
//! sweep.
//!
//! What a hostile child can still do: carry the mark of a child that still runs (it can guess
//! the numbers), which keeps its orphans alive until that child ends; and an orphan without a
//! mark lives until every child that started before it has ended. Namespaces (a sandbox) are
//! the way to hold a process that is not even a descendant any more, such as one handed to
//! another service (`systemd-run`, `at`).
//!
//! The common case stays cheap: with no orphan, a sweep reads one short file; 10,000 no-op
//! steps cost one read each (see `bench/README.md`). Linux only, and only on kernels that list
//! a thread's children (`CONFIG_PROC_CHILDREN`, which checkpoint/restore needs and common
//! distributions enable); elsewhere nothing is swept.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions, getpid, kill_process, waitpid};
use tokio::time::Instant;

/// The environment variable that marks a child and its descendants.
pub const MARK_VARIABLE: &str = "FLOW_PROCESS";

/// How long one sweep waits at most for the orphans it killed to die.
const PATIENCE: Duration = Duration::from_secs(30);

/// How many rounds of killing one sweep makes at most (each reaches one level further down).
const MAX_ROUNDS: usize = 1000;

/// Whether this process is a subreaper: without it, orphans go to init and nothing is swept.
static SUBREAPER: AtomicBool = AtomicBool::new(false);

/// The number the next child gets.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// The children still running, by number.
static LIVE: LazyLock<Mutex<HashMap<u64, Leader>>> = LazyLock::new(Mutex::default);

/// The marks this process inherited, which its children carry before their own.
static INHERITED: LazyLock<String> = LazyLock::new(|| {
    std::env::var(MARK_VARIABLE)
        .map(|marks| marks.trim().to_owned())
        .unwrap_or_default()
});

/// Makes this process the reaper of its descendants' orphans, so that [`run_process`] can stop
/// what its children leave behind; call it once, at startup.
///
/// Calling it declares that this process starts its children from threads other than its main
/// thread (flow's runtime and command run on threads of their own).
///
/// [`run_process`]: super::run_process
///
/// # Errors
///
/// Fails when the kernel refuses (`prctl`); elsewhere than on Linux it does nothing.
pub fn become_subreaper() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::process::set_child_subreaper(Some(getpid()))?;
        SUBREAPER.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// A child that runs, as the sweep needs to know it.
#[derive(Debug, Clone, Copy)]
struct Leader {
    pid: i32,
    /// When it started, in clock ticks since boot, read when first needed.
    started: Option<u64>,
}

/// A number for one child, with the value of [`MARK_VARIABLE`] that carries it; the child
/// counts among the running ones from before its start until this is dropped (once it has been
/// waited for), so no sweep takes it, or what it leaves, for an orphan while it runs.
#[derive(Debug)]
pub(super) struct Registration {
    number: u64,
    /// The value of the variable.
    pub mark: String,
}

impl Registration {
    /// Gives the next child a number of its own and counts it as running.
    pub fn new() -> Self {
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        let own = format!("{}.{number}", getpid().as_raw_pid());
        let mark = if INHERITED.is_empty() {
            own
        } else {
            format!("{} {own}", *INHERITED)
        };
        live().insert(number, Leader { pid: 0, started: None });
        Self { number, mark }
    }

    /// Records the pid of the child, once started.
    pub fn started(&self, pid: Option<u32>) {
        if let Some(leader) = live().get_mut(&self.number) {
            leader.pid = pid.and_then(|pid| i32::try_from(pid).ok()).unwrap_or(0);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        live().remove(&self.number);
    }
}

/// Kills and reaps the orphans of children that have ended (see the module doc), until none is
/// left or [`PATIENCE`] has passed.
pub(super) async fn sweep() {
    if !SUBREAPER.load(Ordering::Relaxed) {
        return;
    }
    let deadline = Instant::now() + PATIENCE;
    for _ in 0..MAX_ROUNDS {
        let mut dying = orphans_to_stop();
        if dying.is_empty() {
            return;
        }
        // An orphan is flow's child: until flow reaps it, its pid is not reused. One that may
        // not be killed (it changed its user) is not waited for.
        dying.retain(|&pid| kill_process(pid, Signal::KILL) != Err(Errno::PERM));
        if dying.is_empty() {
            return;
        }
        let mut pause = Duration::from_millis(1);
        loop {
            // Gone when reaped now (`Some`) or already (an error: no such child).
            dying.retain(|&pid| matches!(waitpid(Some(pid), WaitOptions::NOHANG), Ok(None)));
            if dying.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// Locks the table of running children, which no panic can leave inconsistent.
fn live() -> MutexGuard<'static, HashMap<u64, Leader>> {
    LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Returns the orphans to kill and reap now.
fn orphans_to_stop() -> Vec<Pid> {
    static CHILDREN: LazyLock<String> =
        LazyLock::new(|| format!("/proc/self/task/{0}/children", getpid().as_raw_pid()));
    // Listed before the running children are looked at: a child is counted as running before
    // it starts, so every child listed is known by then.
    // In one read: the kernel builds the list for what one read asks, and a later read starts
    // again at an index, which skips a child when another was reaped in between.
    let Ok(listed) = read_at_once(&CHILDREN) else {
        return Vec::new();
    };
    if listed.trim().is_empty() {
        return Vec::new();
    }
    let mut live = live();
    let mut stop = Vec::new();
    for pid in listed.split_whitespace().filter_map(|pid| pid.parse::<i32>().ok()) {
        if live.values().any(|leader| leader.pid == pid) {
            // A running child whose starting thread ended.
            continue;
        }
        let Some(process) = Pid::from_raw(pid) else {
            continue;
        };
        let Some((state, started)) = state_and_start(pid) else {
            continue;
        };
        let keep = state != 'Z'
            && match marks(pid) {
                Some(numbers) => numbers.iter().any(|number| live.contains_key(number)),
                None => started_after_a_live_child(&mut live, started),
            };
        if !keep {
            stop.push(process);
        }
    }
    stop
}

/// Reads the file at `path` with reads as large as it, so that a list the kernel builds at each
/// read is one snapshot.
fn read_at_once(path: &str) -> io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0; 1 << 16];
    let mut length = 0;
    loop {
        let read = file.read(&mut buffer[length..])?;
        if read == 0 {
            break;
        }
        length += read;
        if length == buffer.len() {
            buffer.resize(2 * length, 0);
        }
    }
    buffer.truncate(length);
    String::from_utf8(buffer).map_err(io::Error::other)
}

/// Tells whether some running child started no later than `started` (so the orphan may be its).
fn started_after_a_live_child(live: &mut HashMap<u64, Leader>, started: u64) -> bool {
    live.values_mut().any(|leader| {
        if leader.started.is_none() && leader.pid > 0 {
            leader.started = state_and_start(leader.pid).map(|(_, started)| started);
        }
        // A child whose start cannot be read has just ended: it owns nothing.
        leader.started.is_some_and(|leader_started| leader_started <= started)
    })
}

/// Reads the start time of process `pid` (clock ticks since boot): with its pid, it names a
/// process for good, where a pid alone may be taken by a new one once it has ended.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    state_and_start(pid).map(|(_, started)| started)
}

/// Reads the state letter and the start time (clock ticks since boot) of process `pid`.
fn state_and_start(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) STATE PPID ...": comm may hold spaces and parentheses, so split after the last.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // The start time is field 22 of the line; the state is field 3.
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
}

/// Returns the numbers of this process's children that the environment of process `pid`
/// marks it with, or `None` when it carries no mark of this process.
fn marks(pid: i32) -> Option<Vec<u64>> {
    let environment = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{MARK_VARIABLE}=");
    let value = environment
        .split(|&byte| byte == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))?;
    let own = format!("{}.", getpid().as_raw_pid());
    let numbers: Vec<u64> = String::from_utf8_lossy(value)
        .split_whitespace()
        .filter_map(|mark| mark.strip_prefix(own.as_str())?.parse().ok())
        .collect();
    (!numbers.is_empty()).then_some(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_and_start_of_a_process_are_read() {
        let (state, started) = state_and_start(getpid().as_raw_pid()).expect("this process has a stat file");
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(started > 0);
    }

    #[test]
    fn marks_carry_their_process_and_number_while_registered() {
        let first = Registration::new();
        let later = Registration::new();
        assert!(later.number > first.number);
        let own = format!("{}.{}", getpid().as_raw_pid(), first.number);
        assert!(first.mark.ends_with(&own), "{}", first.mark);
        assert!(live().contains_key(&first.number));
        let number = first.number;
        drop(first);
        assert!(!live().contains_key(&number));
    }
}
