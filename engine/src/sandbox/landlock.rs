//! Builds a policy's Landlock ruleset in the parent and enters it in the child.
//!
//! The `landlock` crate probes the kernel and builds the ruleset: which accesses are handled,
//! one rule per writable place (opened here, with `O_PATH`), one per allowed TCP port, and the
//! scopes. Every part is asked for at the crate's hard-requirement level, having first been
//! chosen from what [`Support`] says the kernel has: the crate never drops a part silently,
//! and what the kernel lacks is a [`super::Gap`] the caller was told about.
//!
//! Entering the ruleset is written here rather than left to the crate's `restrict_self`,
//! because it runs in the child between `fork` and `exec`, where a multi-threaded parent's
//! child may only make async-signal-safe calls: no allocation, no lock. The crate's function
//! does not allocate today, but it is not documented to stay so; the three steps here are
//! plain system calls, each readable in a few lines: detach from the controlling terminal
//! (`TIOCNOTTY`), `prctl(PR_SET_NO_NEW_PRIVS)`, and `landlock_restrict_self`.
//!
//! The same three steps confine a wrapper program before it `exec`s the agent
//! ([`super::wrapper`], whose module doc compares the cost of both ways).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use ::landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, NetPort, PathBeneath,
    RestrictSelf, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetError, Scope, make_bitflags,
};
use rustix::fs::{FileType, Mode, OFlags};

use super::{ALWAYS_WRITABLE, Absence, Network, Policy, SandboxError, Support, Write};

/// The newest Landlock ABI whose rights this module asks for: its behaviour is tested.
const NEWEST: u8 = 7;

/// `LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON` (ABI 7): refusals after the child's `exec` go to
/// the kernel's audit log, which is off by default for a process that confines itself before
/// an `exec`.
const LOG_NEW_EXEC_ON: libc::c_ulong = 2;

/// The rights that make sense on a file that is not a folder.
const FILE_RIGHTS: BitFlags<AccessFs> = make_bitflags!(AccessFs::{WriteFile | Truncate | IoctlDev});

/// Asks the kernel which Landlock ABI it has.
pub(super) fn probe() -> Support {
    // Without flags and without `no_new_privs`, `apply` makes no system call but the probe.
    match RestrictSelf::default()
        .no_new_privs(false)
        .apply()
        .map(|status| status.landlock)
    {
        Ok(LandlockStatus::Available { effective_abi, .. }) => Support::at(number(effective_abi), None),
        Ok(LandlockStatus::NotEnabled) => Support::at(0, Some(Absence::NotEnabled)),
        Ok(LandlockStatus::NotImplemented) | Err(_) => Support::at(0, Some(Absence::NotBuilt)),
    }
}

/// Returns the number of an ABI version.
fn number(abi: ABI) -> u8 {
    match abi {
        ABI::Unsupported => 0,
        ABI::V1 => 1,
        ABI::V2 => 2,
        ABI::V3 => 3,
        ABI::V4 => 4,
        ABI::V5 => 5,
        ABI::V6 => 6,
        ABI::V7 => 7,
        ABI::V8 => 8,
        ABI::V9 => 9,
        // A version newer than this crate knows is reported as the newest it knows.
        _ => 10,
    }
}

/// Builds the ruleset of `policy` for a kernel with `support`, returning its descriptor.
pub(super) fn ruleset(policy: &Policy, support: &Support) -> Result<OwnedFd, SandboxError> {
    let abi = ABI::from(i32::from(support.abi.min(NEWEST)));
    let handled = AccessFs::from_write(abi);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(handled)
        .map_err(refused)?;
    if support.network && policy.network != Network::Any {
        ruleset = ruleset.handle_access(AccessNet::from_all(abi)).map_err(refused)?;
    }
    if support.scopes {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(refused)?;
    }
    let mut created = ruleset.create().map_err(refused)?;
    for device in ALWAYS_WRITABLE {
        match open(Path::new(device)) {
            Ok((fd, is_dir)) => {
                let rights = if device == "/dev/shm" {
                    rights(Write::Tree, is_dir, handled)
                } else {
                    rights(Write::File, is_dir, handled) | (handled & AccessFs::IoctlDev)
                };
                created = add(created, fd, rights)?;
            }
            // A device the system lacks is one nobody can use.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SandboxError::Path {
                    path: device.into(),
                    source,
                });
            }
        }
    }
    for place in &policy.writable {
        let (fd, is_dir) = open(&place.path).map_err(|source| SandboxError::Path {
            path: super::absolute(&place.path),
            source,
        })?;
        created = add(created, fd, rights(place.access, is_dir, handled))?;
    }
    if let (true, Network::Ports(ports)) = (support.network, &policy.network) {
        for port in ports {
            created = created
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(refused)?;
        }
    }
    Option::<OwnedFd>::from(created).ok_or_else(|| SandboxError::Ruleset {
        message: "the kernel gave no ruleset".into(),
    })
}

/// Fails as [`ruleset`] would when a writable place of `policy` cannot be opened.
pub(super) fn check_places(policy: &Policy) -> Result<(), SandboxError> {
    for place in &policy.writable {
        open(&place.path).map_err(|source| SandboxError::Path {
            path: super::absolute(&place.path),
            source,
        })?;
    }
    Ok(())
}

/// Opens `path` without following it into a read or write (`O_PATH`), and says whether it is
/// a folder.
fn open(path: &Path) -> io::Result<(OwnedFd, bool)> {
    let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
    let stat = rustix::fs::fstat(&fd)?;
    Ok((fd, FileType::from_raw_mode(stat.st_mode) == FileType::Directory))
}

/// Adds a rule allowing `rights` beneath `fd`, unless there are none to allow.
fn add(created: RulesetCreated, fd: OwnedFd, rights: BitFlags<AccessFs>) -> Result<RulesetCreated, SandboxError> {
    if rights.is_empty() {
        return Ok(created);
    }
    created.add_rule(PathBeneath::new(fd, rights)).map_err(refused)
}

/// Returns the rights `access` grants on a folder or a file, among the `handled` ones.
fn rights(access: Write, is_dir: bool, handled: BitFlags<AccessFs>) -> BitFlags<AccessFs> {
    let wanted = match access {
        Write::Tree => handled,
        Write::Entries => make_bitflags!(AccessFs::{MakeReg | MakeDir | WriteFile | RemoveFile}),
        Write::File => make_bitflags!(AccessFs::{WriteFile | Truncate}),
    } & handled;
    if is_dir { wanted } else { wanted & FILE_RIGHTS }
}

/// Turns the crate's error into ours.
fn refused(error: RulesetError) -> SandboxError {
    SandboxError::Ruleset {
        message: error.to_string(),
    }
}

/// Returns the flags of `landlock_restrict_self` for a kernel with `support`.
fn restrict_flags(support: &Support) -> libc::c_ulong {
    if support.audit { LOG_NEW_EXEC_ON } else { 0 }
}

/// Confines the calling thread, and the program it `exec`s next, with `ruleset`.
pub(super) fn enter_now(ruleset: OwnedFd, support: &Support) -> io::Result<()> {
    enter(ruleset.as_fd(), restrict_flags(support))
}

/// Makes `command`'s child enter `ruleset` between `fork` and `exec`.
pub(super) fn confine_child(command: &mut tokio::process::Command, ruleset: OwnedFd, support: &Support) {
    let flags = restrict_flags(support);
    // SAFETY: `pre_exec` requires the closure to be safe to run in the child of a `fork` of a
    // multi-threaded process, before `exec`: only async-signal-safe operations. `enter` makes
    // four system calls (`open`, `ioctl`, `prctl`, `landlock_restrict_self`) and a `close`,
    // builds errors with `io::Error::from_raw_os_error` / `last_os_error` (no allocation), and
    // touches no lock and no memory but its own stack and the descriptor it borrows. The
    // descriptor is owned by the closure, so it is open in the child; it is close-on-exec, so
    // the program that runs next does not inherit it.
    unsafe {
        command.pre_exec(move || enter(ruleset.as_fd(), flags));
    }
}

/// Confines the calling thread with `ruleset`; in a child between `fork` and `exec`, see
/// [`confine_child`] for what it may do there.
fn enter(ruleset: BorrowedFd<'_>, flags: libc::c_ulong) -> io::Result<()> {
    detach_from_terminal()?;
    rustix::thread::set_no_new_privs(true)?;
    // SAFETY: `landlock_restrict_self(2)` takes a ruleset descriptor and flags, and reads no
    // memory of the caller; `ruleset` is a live Landlock ruleset descriptor (borrowed from the
    // closure that owns it), and `flags` is 0 or a flag the kernel has (ABI 7, checked).
    let result = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), flags) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives up the calling process's controlling terminal, if it has one, so that it cannot type
/// into the user's terminal with `TIOCSTI` (open where `dev.tty.legacy_tiocsti` is 1) or read
/// from it. Fails when a terminal may be there but cannot be given up.
fn detach_from_terminal() -> io::Result<()> {
    let terminal = match rustix::fs::open(
        c"/dev/tty",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // ENXIO: no controlling terminal; EIO: it hung up.
        Err(rustix::io::Errno::NXIO | rustix::io::Errno::IO) => return Ok(()),
        Err(errno) => return Err(errno.into()),
    };
    // SAFETY: `TIOCNOTTY` takes no argument and reads no memory of the caller; `terminal` is
    // an open descriptor of the controlling terminal, closed when it is dropped below.
    let result = unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCNOTTY) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
