//! Making a new worktree ready to work in: the files copied from the user's checkout
//! ([`copy`]), the workstream's `setup` commands, a block of ports ([`ports`]), the
//! variables that name the workstream, and the scope hook a person's commits go through
//! ([`hook`]).
//!
//! A fresh worktree is a clean checkout: without installed dependencies, a `.env` or a port
//! of its own, most projects can neither build nor test in it. Setup commands run as `test`
//! commands do (`sh -c`, the workstream's clean environment, the `test` sandbox, through
//! [`run_check`]), in order, with their own timeout and log; the first that fails stops the
//! others. Ctrl-C stops them as it stops a `test`.

pub mod copy;
pub mod hook;
pub mod ports;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flow_dsl::{EnvSetting, Workflow};
use tokio::sync::watch;

use crate::agent::environment::agent_environment;
use crate::agent::process::Sandboxing;
use crate::checks::{Check, run_check};

/// The identity of a workstream's worktree, given to its agent, setup, test and verify.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub workstream: String,
    pub worktree: PathBuf,
    pub run: String,
    pub branch: Option<String>,
    /// The first port of its block, and how many the block holds.
    pub port: Option<u16>,
    pub port_count: u16,
}

impl Identity {
    /// The `FLOW_*` variables it sets.
    pub fn variables(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        vars.insert("FLOW_WORKSTREAM".to_string(), self.workstream.clone());
        vars.insert("FLOW_WORKTREE".to_string(), self.worktree.display().to_string());
        vars.insert("FLOW_RUN".to_string(), self.run.clone());
        if let Some(branch) = &self.branch {
            vars.insert("FLOW_BRANCH".to_string(), branch.clone());
        }
        if let Some(port) = self.port {
            vars.insert("FLOW_PORT".to_string(), port.to_string());
            vars.insert("FLOW_PORT_COUNT".to_string(), self.port_count.to_string());
        }
        vars
    }
}

/// The environment of a workstream's commands that are not its agent (setup): the agents'
/// clean environment with the workstream's and its agent's `env`, and `extra`. Account keys
/// are not in it.
pub fn workstream_environment(
    workflow: &Workflow,
    index: usize,
    parent: &BTreeMap<String, String>,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let ws = &workflow.workstreams[index];
    let agent = workflow.agent_of(ws);
    let mut pass: Vec<String> = agent.pass_env.clone();
    let mut set: BTreeMap<String, String> = agent.env.clone();
    for setting in &ws.env {
        match setting {
            EnvSetting::Set { name, value } => {
                set.insert(name.clone(), value.clone());
            }
            EnvSetting::Pass { name } => pass.push(name.clone()),
        }
    }
    set.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    agent_environment(parent.iter().map(|(k, v)| (k.clone(), v.clone())), &pass, &set)
}

/// Why a setup failed: which command, how, and the end of its output.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupFailure {
    pub detail: String,
    pub tail: String,
}

impl std::fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "setup failed: {}", self.detail)?;
        if !self.tail.trim().is_empty() {
            write!(f, "\n{}", self.tail.trim_end())?;
        }
        Ok(())
    }
}

/// One setup (or teardown) to run.
pub struct Setup<'a> {
    pub commands: &'a [String],
    pub dir: &'a Path,
    pub env: BTreeMap<String, String>,
    pub log_path: PathBuf,
    /// For all the commands together.
    pub timeout: Duration,
    pub grace: Duration,
    /// The sandbox each command runs in: the workstream's `test` sandbox (a setup such as
    /// `npm ci` runs code the branch holds, which earlier agents may have written).
    pub sandbox: Option<Sandboxing>,
    /// Values kept out of its log besides those named like secrets (declared secrets).
    pub secrets: Vec<String>,
    /// Kills the running command at once while it is being stopped, when it turns true.
    pub hurry: Option<watch::Receiver<bool>>,
}

/// Runs the commands one after the other until one fails; `Ok` when all passed.
pub async fn run_setup(setup: Setup<'_>, stop: watch::Receiver<bool>) -> Result<(), SetupFailure> {
    let deadline = Instant::now() + setup.timeout;
    for command in setup.commands {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SetupFailure {
                detail: format!(
                    "its {} timeout ran out before `{command}`",
                    flow_dsl::format_duration(setup.timeout)
                ),
                tail: String::new(),
            });
        }
        let check = Check {
            command,
            dir: setup.dir,
            env: setup.env.clone(),
            log_path: setup.log_path.clone(),
            header: Some(format!("$ {command}")),
            timeout: Some(left),
            grace: setup.grace,
            sandbox: setup.sandbox.clone(),
            secrets: setup.secrets.clone(),
            hurry: setup.hurry.clone(),
        };
        match run_check(check, stop.clone()).await {
            Some(result) if result.passed => {}
            Some(result) => {
                return Err(SetupFailure {
                    detail: result.detail,
                    tail: result.tail,
                });
            }
            None => {
                return Err(SetupFailure {
                    detail: format!("`{command}` was stopped"),
                    tail: String::new(),
                });
            }
        }
    }
    Ok(())
}

/// The hash of what a setup does, recorded once it passed so a resume runs it again only
/// when it changed.
pub fn setup_key(commands: &[String], copy: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in commands.iter().chain([&"\u{0}".to_string()]).chain(copy) {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}
