//! Confines a child by starting a wrapper program that confines itself and then `exec`s the
//! agent, so that the parent can start it with `posix_spawn` instead of `fork`.
//!
//! [`super::confine`] enters the ruleset between `fork` and `exec`, which makes the standard
//! library `fork` flow's whole address space for every child: a cost that grows with flow's
//! memory (a test program holding 200 MB more took 20 ms to start each confined child, against
//! 1 ms). A wrapper costs one more `exec` per child, whatever flow's size.
//!
//! Measured on part (a) of `bench/scheduler.sh` (10,000 no-op steps, `flow run -j 2`, every
//! step confined to its scratch folder, flow's peak memory 40 MB), the ways alternating, on the
//! 2-core machine while other builds kept its load average high; wall time and CPU time with
//! children, medians:
//!
//! | way | load 6 to 10, 5 runs | load 12 to 20, 3 runs | CPU added a step |
//! |---|---|---|---|
//! | not confined (`posix_spawn`) | 9.39 s, CPU 9.6 s | 13.35 s, CPU 10.4 s | |
//! | hook between `fork` and `exec` | 30.50 s, CPU 26.8 s | 39.33 s, CPU 27.2 s | 1.7 ms |
//! | flow's own binary as the wrapper | | 28.94 s, CPU 23.2 s | 1.3 ms |
//! | `flow-confine` (660 KB) as the wrapper | 17.41 s, CPU 18.3 s | 22.09 s, CPU 18.6 s | 0.8 ms |
//!
//! So a small wrapper program beside flow's binary is the cheapest way, and
//! [`Wrapper::beside_this_program`] looks for one; flow's own binary is the fallback.
//!
//! A third way was not taken: confining a short-lived thread of flow and `posix_spawn`ing from
//! it (a child inherits its thread's domain). That thread shares the agent's domain until it
//! exits, so for that moment the agent could signal it or, where Yama allows, `ptrace` it, and
//! with it all of flow's memory.
//!
//! The wrapper is any program whose `main` hands its arguments to [`run_wrapper`]: flow's own
//! binary, `exec`'d again through `/proc/self/exe` with a marker argument ([`Wrapper::this_program`]),
//! or a small program of its own. The policy travels in its arguments; the parent checks
//! beforehand everything it can (what the kernel supports, that each place opens), so that a
//! wrapper fails only on what it cannot foresee, and then exits with [`WRAPPER_FAILED`] and a
//! line on stderr, never running the agent unconfined.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::{Confinement, Network, Policy, SandboxError, Writable, Write, decide, support};

/// The exit code of a wrapper that could not confine itself or start the agent.
pub const WRAPPER_FAILED: i32 = 126;

/// The first argument that makes a program that calls [`exec_if_wrapper`] act as the wrapper.
pub const WRAPPER_MARKER: &str = "--flow-sandbox-exec";

/// Says how to start the wrapper program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapper {
    /// The wrapper program.
    pub program: PathBuf,
    /// The arguments that come before the policy (a marker that makes the program act as the
    /// wrapper).
    pub leading: Vec<OsString>,
}

impl Wrapper {
    /// Describes the `flow-confine` program beside the running one (in the same folder) as the
    /// wrapper when there is one, else the running program itself ([`Wrapper::this_program`]).
    pub fn beside_this_program() -> Wrapper {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|program| Some(program.parent()?.join("flow-confine")))
            .filter(|wrapper| wrapper.is_file());
        match beside {
            Some(program) => Wrapper {
                program,
                leading: Vec::new(),
            },
            None => Wrapper::this_program(),
        }
    }

    /// Describes the running program as the wrapper, started again (through `/proc/self/exe`,
    /// which stays valid when its file is replaced) with [`WRAPPER_MARKER`] as its first
    /// argument: its `main` must call [`exec_if_wrapper`] first thing.
    pub fn this_program() -> Wrapper {
        Wrapper {
            program: PathBuf::from("/proc/self/exe"),
            leading: vec![WRAPPER_MARKER.into()],
        }
    }
}

/// Returns a command that runs `program` confined by `policy` through `wrapper`, and how far
/// it will be confined; the caller adds the program's arguments, environment and the rest.
///
/// # Errors
///
/// The errors of [`super::confine`], found here, before anything is started.
pub fn wrap(
    wrapper: &Wrapper,
    program: &Path,
    policy: &Policy,
) -> Result<(tokio::process::Command, Confinement), SandboxError> {
    let support = support();
    let gaps = decide(support, policy)?;
    check_places(policy)?;
    let mut command = tokio::process::Command::new(&wrapper.program);
    command
        .args(&wrapper.leading)
        .args(to_args(policy))
        .arg("--")
        .arg(program);
    Ok((command, Confinement { abi: support.abi, gaps }))
}

/// Fails as [`super::confine`] would when a writable place cannot be opened.
#[cfg(target_os = "linux")]
fn check_places(policy: &Policy) -> Result<(), SandboxError> {
    super::landlock::check_places(policy)
}

#[cfg(not(target_os = "linux"))]
fn check_places(_: &Policy) -> Result<(), SandboxError> {
    Ok(())
}

/// Acts as the wrapper when the process was started as one ([`Wrapper::this_program`]): then
/// confines itself and becomes the agent, or prints why not and exits with [`WRAPPER_FAILED`];
/// otherwise returns at once.
pub fn exec_if_wrapper() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(OsStr::new(WRAPPER_MARKER)) {
        return;
    }
    eprintln!("{}", run_wrapper(args));
    std::process::exit(WRAPPER_FAILED);
}

/// Confines the calling process as the arguments say and `exec`s the program they name;
/// returns only on failure, with the message to print before exiting with
/// [`WRAPPER_FAILED`].
///
/// The arguments are those [`wrap`] puts after the wrapper's leading ones.
pub fn run_wrapper(args: impl IntoIterator<Item = OsString>) -> String {
    let (policy, program, rest) = match from_args(args) {
        Ok(parsed) => parsed,
        Err(message) => return format!("flow sandbox: {message}"),
    };
    if let Err(error) = confine_self(&policy) {
        return format!("flow sandbox: {error}");
    }
    let error = std::process::Command::new(&program).args(rest).exec();
    format!(
        "flow sandbox: cannot start `{}`: {error}",
        Path::new(&program).display()
    )
}

#[cfg(target_os = "linux")]
fn confine_self(policy: &Policy) -> Result<(), SandboxError> {
    let support = support();
    decide(support, policy)?;
    let ruleset = super::landlock::ruleset(policy, &support)?;
    super::landlock::enter_now(ruleset, &support).map_err(|error| SandboxError::Ruleset {
        message: error.to_string(),
    })
}

#[cfg(not(target_os = "linux"))]
fn confine_self(_: &Policy) -> Result<(), SandboxError> {
    Err(SandboxError::Unavailable { support: support() })
}

/// Writes `policy` as the wrapper's arguments.
fn to_args(policy: &Policy) -> Vec<OsString> {
    let mut args = Vec::new();
    for place in &policy.writable {
        args.push(
            match place.access {
                Write::Tree => "--tree",
                Write::Entries => "--entries",
                Write::File => "--file",
            }
            .into(),
        );
        args.push(place.path.clone().into_os_string());
    }
    args.push("--network".into());
    args.push(match &policy.network {
        Network::Any => "any".into(),
        Network::Off => "off".into(),
        Network::Ports(ports) => {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            format!("ports={}", ports.join(",")).into()
        }
    });
    if policy.best_effort {
        args.push("--best-effort".into());
    }
    args
}

/// Reads a policy, a program and its arguments from the wrapper's arguments.
fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<(Policy, OsString, Vec<OsString>), String> {
    let mut args = args.into_iter();
    let mut policy = Policy::new();
    loop {
        let Some(flag) = args.next() else {
            return Err("no program to run".into());
        };
        let mut value = || args.next().ok_or_else(|| format!("{} needs a value", flag.display()));
        match flag.as_bytes() {
            b"--tree" => policy.writable.push(Writable::tree(value()?)),
            b"--entries" => policy.writable.push(Writable::entries(value()?)),
            b"--file" => policy.writable.push(Writable::file(value()?)),
            b"--network" => policy.network = network(&value()?)?,
            b"--best-effort" => policy.best_effort = true,
            b"--" => break,
            _ => return Err(format!("unknown argument `{}`", flag.display())),
        }
    }
    let program = args.next().ok_or("no program to run")?;
    Ok((policy, program, args.collect()))
}

/// Reads a [`Network`] from `any`, `off` or `ports=80,443`.
fn network(text: &OsStr) -> Result<Network, String> {
    let text = text.to_str().ok_or("the network is not text")?;
    match text {
        "any" => Ok(Network::Any),
        "off" => Ok(Network::Off),
        _ => {
            let ports = text
                .strip_prefix("ports=")
                .ok_or_else(|| format!("unknown network `{text}`"))?;
            let ports = ports
                .split(',')
                .filter(|port| !port.is_empty())
                .map(|port| port.parse().map_err(|_| format!("`{port}` is not a port")))
                .collect::<Result<_, _>>()?;
            Ok(Network::Ports(ports))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_survives_the_trip_through_arguments() {
        let policy = Policy {
            writable: vec![
                Writable::tree("/work/tree"),
                Writable::entries("/repo/.git/refs/heads/flow"),
                Writable::file("/home/u/.claude.json"),
            ],
            network: Network::Ports(vec![443, 8080]),
            best_effort: true,
        };
        let mut args = to_args(&policy);
        args.extend(["--".into(), "/bin/sh".into(), "-c".into(), "--tree x".into()]);
        let (read, program, rest) = from_args(args).unwrap();
        assert_eq!(read, policy);
        assert_eq!(program, "/bin/sh");
        assert_eq!(rest, ["-c", "--tree x"]);
        for network in [Network::Any, Network::Off, Network::Ports(vec![])] {
            let policy = Policy::new().network(network);
            let mut args = to_args(&policy);
            args.extend(["--".into(), "true".into()]);
            assert_eq!(from_args(args).unwrap().0, policy);
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        let cases: [(&[&str], &str); 5] = [
            (&["--tree"], "--tree needs a value"),
            (&["--network", "udp", "--", "true"], "unknown network `udp`"),
            (&["--network", "ports=x", "--", "true"], "`x` is not a port"),
            (&["--shell", "--", "true"], "unknown argument `--shell`"),
            (&["--"], "no program to run"),
        ];
        for (args, message) in cases {
            let args = args.iter().map(OsString::from);
            assert_eq!(from_args(args).unwrap_err(), message);
        }
    }
}
