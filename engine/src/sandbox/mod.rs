//! Confines an agent process so that it can write only where flow allows, enforced by the
//! kernel with Landlock.
//!
//! An agent is untrusted code running with the user's rights: without a sandbox it can write to
//! the user's own checkout, to `$HOME`, to a sibling workstream's worktree, or to the shared
//! `.git` (a `core.fsmonitor` command in its config then runs in the user's checkout). A
//! [`Policy`] names the places an agent may write ([`Writable`]) and the TCP ports it may
//! connect to ([`Network`]); [`confine`] and [`wrap`] make a [`tokio::process::Command`] start
//! its child under that policy. The child and every process it starts may then write only beneath those
//! places (and a few devices every tool needs, see [`ALWAYS_WRITABLE`]); reading and executing
//! stay open. [`git_writable`] computes what an agent needs to commit in its own worktree.
//!
//! Where the kernel has them (Landlock ABI 6), two scopes come with every confinement: the
//! agent cannot send signals to processes outside its sandbox (flow, the user's shell, other
//! agents) and cannot connect to abstract unix sockets created outside it. Signals from outside
//! into the sandbox are not affected: flow still stops an agent with SIGINT and SIGKILL.
//! The confined child is also detached from its controlling terminal, so that it cannot push
//! keystrokes into the user's terminal (`TIOCSTI`) or prompt on it.
//!
//! What Landlock does not cover, and so this sandbox does not either:
//! - UDP, and any protocol other than TCP: [`Network::Off`] leaves them open (DNS included).
//! - Connecting to a unix socket that has a path (the user's D-Bus session, `ssh-agent`, a
//!   container engine's socket): that needs ABI 9, which this module does not use yet.
//! - Changing metadata: `chmod`, `chown`, `utime` and extended attributes of files the user
//!   owns stay possible anywhere; only the writes listed in [`Write`] are refused.
//! - Files the child had open before it was confined: flow opens its own files close-on-exec,
//!   and gives an agent `/dev/null` and pipes.
//!
//! [`support`] says what the running kernel offers, probed once. A kernel without Landlock is
//! an error of [`confine`] ([`SandboxError::Unavailable`]) that the caller turns into one
//! notice; a kernel too old for all of a policy is an error too ([`SandboxError::Partial`]),
//! unless the policy asks for [`Policy::best_effort`], in which case the [`Confinement`] lists
//! the [`Gap`]s. Nothing is ever applied in part without saying so.
//!
//! Landlock restricts the calling thread and what it starts or `exec`s, never another process,
//! so a child is confined in one of two ways; both refuse to start the agent unconfined:
//! - [`confine`] adds a hook to a command that enters the ruleset in the child, between `fork`
//!   and `exec`. Everything that allocates or can fail on a path (opening the folders, building
//!   the ruleset) is done before, in the parent. Nothing else is needed, but the hook makes the
//!   standard library `fork` flow's whole memory for each child instead of using
//!   `posix_spawn`.
//! - [`wrap`] returns a command that starts a wrapper program ([`Wrapper`]: the small
//!   `flow-confine` program, or flow's own binary started again, whose `main` then calls
//!   [`exec_if_wrapper`]), which confines itself and `exec`s the agent. It costs one more
//!   `exec` per child, whatever flow's size: on 10,000 no-op steps `flow-confine` adds 0.8 ms
//!   of CPU a step, flow's own binary 1.3 ms, where [`confine`] adds 1.7 ms at flow's 40 MB
//!   and more as flow grows (figures in `wrapper`'s module doc).

mod git;
#[cfg(target_os = "linux")]
mod landlock;
mod wrapper;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use git::{GitObjects, GitSetError, git_writable};
pub use wrapper::{WRAPPER_FAILED, WRAPPER_MARKER, Wrapper, exec_if_wrapper, run_wrapper, wrap};

/// The devices every confined process may write to, whatever its policy, when they exist.
///
/// A shell redirect to `/dev/null` must work; `/dev/zero` and `/dev/full` are written to by
/// tests and tools; `/dev/tty`, `/dev/ptmx` and `/dev/pts` let a tool open a terminal of its
/// own (the child has no controlling terminal, so `/dev/tty` itself cannot be opened); POSIX
/// shared memory and semaphores live in `/dev/shm`. These devices may also be ioctl'ed
/// (`tcsetattr`, window sizes, the `isatty` of a stream opened on `/dev/null`); other devices
/// may not, on kernels that control it (ABI 5): a tool that needs a GPU or `/dev/kvm` needs
/// that device in its policy as a [`Write::Tree`].
pub const ALWAYS_WRITABLE: [&str; 7] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
    "/dev/shm",
];

/// Describes what a confined process may write and where it may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The places the process may write to, besides [`ALWAYS_WRITABLE`].
    pub writable: Vec<Writable>,
    /// The TCP connections the process may make.
    pub network: Network,
    /// Whether a kernel that can enforce only part of the policy confines the process with
    /// that part (listed in [`Confinement::gaps`]) instead of refusing with
    /// [`SandboxError::Partial`].
    pub best_effort: bool,
}

impl Policy {
    /// Creates a policy that allows no writes beyond [`ALWAYS_WRITABLE`], any TCP connection,
    /// and no best effort.
    pub fn new() -> Policy {
        Policy {
            writable: Vec::new(),
            network: Network::Any,
            best_effort: false,
        }
    }

    /// Returns the policy with `place` added to its writable places.
    pub fn allow(mut self, place: Writable) -> Policy {
        self.writable.push(place);
        self
    }

    /// Returns the policy with its network set to `network`.
    pub fn network(mut self, network: Network) -> Policy {
        self.network = network;
        self
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::new()
    }
}

/// Names one place a confined process may write to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writable {
    /// A folder (the rule covers everything beneath it) or a single file. Symbolic links in it
    /// are followed when [`confine`] is called: the rule holds for what the path named then.
    pub path: PathBuf,
    /// What may be done there.
    pub access: Write,
}

impl Writable {
    /// Allows every kind of write beneath `path`.
    pub fn tree(path: impl Into<PathBuf>) -> Writable {
        Writable {
            path: path.into(),
            access: Write::Tree,
        }
    }

    /// Allows creating, writing, renaming and removing regular files, and creating folders,
    /// beneath `path`.
    pub fn entries(path: impl Into<PathBuf>) -> Writable {
        Writable {
            path: path.into(),
            access: Write::Entries,
        }
    }

    /// Allows writing to and truncating the existing file `path` (or the files beneath it).
    pub fn file(path: impl Into<PathBuf>) -> Writable {
        Writable {
            path: path.into(),
            access: Write::File,
        }
    }
}

/// Says which writes a [`Writable`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Every write the kernel can control: writing and truncating files, making regular files,
    /// folders, symbolic links, named pipes, sockets and devices, removing files and folders,
    /// moving and linking across folders, and ioctls on devices.
    Tree,
    /// What a lock-file-and-rename update needs: making regular files and folders, writing them,
    /// renaming and removing files, within a folder. No symbolic links, pipes, sockets or
    /// devices, no removing folders, no moving or linking from one folder to another, no
    /// truncating.
    Entries,
    /// Writing to and truncating existing files; nothing can be made, removed or renamed.
    File,
}

/// Says which TCP connections a confined process may make.
///
/// Landlock controls TCP only: UDP (DNS among it) and other protocols stay open whatever this
/// says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// Any connection, and binding to any port.
    Any,
    /// No TCP connection and no binding of a TCP port.
    Off,
    /// TCP connections to these ports only, on any host; no binding of a TCP port.
    Ports(Vec<u16>),
}

/// Says what the running kernel's Landlock offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Support {
    /// The Landlock ABI version, 0 when there is none; a kernel newer than this module knows
    /// shows as the newest version it knows.
    pub abi: u8,
    /// Why there is no Landlock, when `abi` is 0.
    pub missing: Option<Absence>,
    /// Whether writes can be confined (ABI 1); below ABI 3, truncating is not controlled, below
    /// ABI 5, ioctls on devices are not.
    pub filesystem: bool,
    /// Whether TCP connections and bindings can be controlled (ABI 4).
    pub network: bool,
    /// Whether signals and abstract unix sockets can be scoped to the sandbox (ABI 6).
    pub scopes: bool,
    /// Whether a refused access can be sent to the kernel's audit log (ABI 7).
    pub audit: bool,
}

/// Says why a kernel has no Landlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absence {
    /// The kernel is built with Landlock but did not enable it at boot.
    NotEnabled,
    /// The kernel is built without Landlock.
    NotBuilt,
    /// The system is not Linux.
    NotLinux,
}

impl Support {
    /// Describes a kernel whose Landlock is at `abi` (0 for none, with `missing` saying why).
    fn at(abi: u8, missing: Option<Absence>) -> Support {
        Support {
            abi,
            missing: if abi == 0 {
                Some(missing.unwrap_or(Absence::NotBuilt))
            } else {
                None
            },
            filesystem: abi >= 1,
            network: abi >= 4,
            scopes: abi >= 6,
            audit: abi >= 7,
        }
    }

    /// Lists what this kernel cannot enforce of `policy`, in a fixed order; empty when it can
    /// enforce all of it, and when it has no Landlock at all (see [`Support::filesystem`]).
    pub fn gaps(&self, policy: &Policy) -> Vec<Gap> {
        if !self.filesystem {
            return Vec::new();
        }
        let mut gaps = Vec::new();
        if self.abi < 3 {
            gaps.push(Gap::Truncate);
        }
        if self.abi < 5 {
            gaps.push(Gap::DeviceIoctl);
        }
        if !self.network && policy.network != Network::Any {
            gaps.push(Gap::Network);
        }
        if !self.scopes {
            gaps.push(Gap::Scopes);
        }
        gaps
    }
}

impl fmt::Display for Support {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.missing {
            Some(Absence::NotEnabled) => formatter.write_str("Landlock is built into this kernel but not enabled"),
            Some(Absence::NotBuilt) => formatter.write_str("this kernel has no Landlock"),
            Some(Absence::NotLinux) => formatter.write_str("Landlock exists only on Linux"),
            None => write!(formatter, "Landlock ABI {}", self.abi),
        }
    }
}

/// Names one part of a policy that an older kernel cannot enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Gap {
    /// Truncating files outside the writable places stays possible (needs ABI 3).
    Truncate,
    /// Ioctls on devices stay possible (needs ABI 5).
    DeviceIoctl,
    /// TCP connections and bindings stay open (needs ABI 4).
    Network,
    /// Signals to outside processes and connections to outside abstract unix sockets stay
    /// possible (needs ABI 6).
    Scopes,
}

impl fmt::Display for Gap {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Gap::Truncate => "truncating files anywhere (needs Landlock ABI 3)",
            Gap::DeviceIoctl => "ioctls on devices (needs Landlock ABI 5)",
            Gap::Network => "TCP connections (needs Landlock ABI 4)",
            Gap::Scopes => "signals to other processes and their abstract unix sockets (needs Landlock ABI 6)",
        })
    }
}

/// Reports the confinement [`confine`] arranged for a command's child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    /// The Landlock ABI the child is confined with.
    pub abi: u8,
    /// What of the policy is not enforced (only with [`Policy::best_effort`]).
    pub gaps: Vec<Gap>,
}

impl Confinement {
    /// Tells whether the whole policy is enforced.
    pub fn is_full(&self) -> bool {
        self.gaps.is_empty()
    }
}

impl fmt::Display for Confinement {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "confined with Landlock ABI {}", self.abi)?;
        for (index, gap) in self.gaps.iter().enumerate() {
            formatter.write_str(if index == 0 { "; not enforced: " } else { ", " })?;
            write!(formatter, "{gap}")?;
        }
        Ok(())
    }
}

/// Describes why a command could not be confined.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SandboxError {
    /// The kernel has no Landlock: nothing can be confined.
    #[error("agents cannot be confined: {support}")]
    #[diagnostic(
        code("flow::sandbox::unavailable"),
        help("Landlock needs Linux 5.13 or newer with `landlock` in the `lsm=` boot parameter")
    )]
    Unavailable {
        /// What the kernel offers.
        support: Support,
    },

    /// The kernel can enforce only part of the policy, and the policy asks for all of it.
    #[error(
        "agents can only be partly confined with {support}: {} would not be enforced",
        list(gaps)
    )]
    #[diagnostic(
        code("flow::sandbox::partial"),
        help("a newer kernel enforces all of it; a policy with best effort accepts the rest")
    )]
    Partial {
        /// What the kernel offers.
        support: Support,
        /// What would not be enforced.
        gaps: Vec<Gap>,
    },

    /// A writable place cannot be opened.
    #[error("cannot allow writes to `{}`: {source}", path.display())]
    #[diagnostic(code("flow::sandbox::path"))]
    Path {
        /// The place.
        path: PathBuf,
        /// Why it cannot be opened.
        source: std::io::Error,
    },

    /// The kernel refused the ruleset.
    #[error("the kernel refused the sandbox's rules: {message}")]
    #[diagnostic(code("flow::sandbox::ruleset"))]
    Ruleset {
        /// What the Landlock library reported.
        message: String,
    },
}

/// Joins gaps with commas, for a message.
fn list(gaps: &[Gap]) -> String {
    gaps.iter().map(Gap::to_string).collect::<Vec<_>>().join(", ")
}

/// Returns what the running kernel's Landlock offers, probed on the first call.
pub fn support() -> Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    *SUPPORT.get_or_init(probe)
}

#[cfg(target_os = "linux")]
fn probe() -> Support {
    landlock::probe()
}

#[cfg(not(target_os = "linux"))]
fn probe() -> Support {
    Support::at(0, Some(Absence::NotLinux))
}

/// Makes `command` start its child confined by `policy`, and says how far.
///
/// The writable places are opened now, so each must exist; their rules bind to what they are
/// now. The child is confined between `fork` and `exec`: if that fails, spawning the command
/// fails, so a child never runs unconfined after this returned `Ok`.
///
/// # Errors
///
/// [`SandboxError::Unavailable`] without Landlock, [`SandboxError::Partial`] when the kernel
/// cannot enforce all of the policy and it does not ask for best effort,
/// [`SandboxError::Path`] when a writable place cannot be opened, and
/// [`SandboxError::Ruleset`] when the kernel refuses a rule.
pub fn confine(command: &mut tokio::process::Command, policy: &Policy) -> Result<Confinement, SandboxError> {
    let support = support();
    let gaps = decide(support, policy)?;
    apply(command, policy, &support)?;
    Ok(Confinement { abi: support.abi, gaps })
}

/// Returns what a kernel with `support` would leave unenforced of `policy`, or why it must not
/// confine with it at all.
fn decide(support: Support, policy: &Policy) -> Result<Vec<Gap>, SandboxError> {
    if !support.filesystem {
        return Err(SandboxError::Unavailable { support });
    }
    let gaps = support.gaps(policy);
    if !gaps.is_empty() && !policy.best_effort {
        return Err(SandboxError::Partial { support, gaps });
    }
    Ok(gaps)
}

#[cfg(target_os = "linux")]
fn apply(command: &mut tokio::process::Command, policy: &Policy, support: &Support) -> Result<(), SandboxError> {
    let ruleset = landlock::ruleset(policy, support)?;
    landlock::confine_child(command, ruleset, support);
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn apply(_: &mut tokio::process::Command, _: &Policy, support: &Support) -> Result<(), SandboxError> {
    Err(SandboxError::Unavailable { support: *support })
}

/// Returns `path` made absolute against the current folder, for messages and rules.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests;
