//! The git settings flow gives every process it starts in a worktree (agents, checks,
//! `verify`), so that a git started there ignores the hooks and commands planted in any
//! configuration file.
//!
//! They are passed as `GIT_CONFIG_COUNT` / `GIT_CONFIG_KEY_<n>` / `GIT_CONFIG_VALUE_<n>`:
//! the command-line level, which wins over the system, global, repository, worktree and
//! included files alike. What git 2.47 does with them, each shown by a test in
//! `engine/tests/guard.rs` with a planted command that writes a marker file (the test first
//! shows that git runs it without these settings):
//!
//! - `core.fsmonitor` planted in the shared config, the worktree's `config.worktree`, the
//!   user's global config or a file an `include.path` brings in does not run.
//! - Hooks in `.git/hooks`, or in a folder a planted `core.hooksPath` names, do not run:
//!   `core.hooksPath` is flow's folder, or [`NO_HOOKS`] (`/dev/null`: a folder nobody can
//!   put a file in, so no hook at all).
//! - A planted `core.editor` / `sequence.editor`, `credential.helper` (the empty value
//!   empties the list of helpers), `core.askPass`, `core.sshCommand`, `commit.gpgSign` /
//!   `tag.gpgSign` with `gpg.program`, `log.showSignature` with `gpg.program`,
//!   `interactive.diffFilter` (run by `git add -p` in colour, which a planted `color.ui`
//!   turns on), `protocol.ext.allow` with an `ext::` remote, and `core.gitProxy`
//!   (turned off by an empty `GIT_PROXY_COMMAND`, which git reads before the configuration)
//!   do not run.
//! - `core.pager` and `pager.<command>` never run with the output going to a pipe, which is
//!   how flow runs agents; `core.pager` is set to `cat` for an agent that makes a terminal.
//! - `gc.auto` and `maintenance.auto` are off (git reads them so, a test shows): no automatic
//!   repack of the shared object store while other agents work in it, and no detached
//!   `git gc` outliving the agent.
//!
//! The price: an agent's git runs none of the repository's own hooks (flow's checks stand in
//! for them), uses no credential helper and no custom ssh command of the user's (flow's agents
//! do not push), and `git commit` without `-m` stops at the empty message instead of waiting
//! for an editor no one will close.
//!
//! What this cannot turn off, because the keys are named after a driver or remote of the
//! planter's choosing (`filter.<driver>.clean`, `diff.<driver>.textconv` and `.command`,
//! `merge.<driver>.driver`, `remote.<name>.uploadpack`, `submodule.<name>.update`), or because
//! its empty value breaks the command (`diff.external`: `git diff` then fails): a test shows
//! a planted filter, textconv and `diff.external` still run. Those are planted in a
//! configuration file, which the guard's comparison finds after the agent and undoes.

use std::collections::BTreeMap;
use std::path::Path;

/// The value of `core.hooksPath` when flow gives no hooks: a path under `/dev/null`
/// never exists, so git finds no hook there.
pub const NO_HOOKS: &str = "/dev/null";

/// The settings every agent's git gets besides `core.hooksPath`, in order.
pub const AGENT_GIT_SETTINGS: &[(&str, &str)] = &[
    ("core.fsmonitor", "false"),
    ("core.editor", ":"),
    ("sequence.editor", ":"),
    ("core.pager", "cat"),
    ("interactive.diffFilter", "cat"),
    ("credential.helper", ""),
    ("core.askPass", ""),
    ("core.sshCommand", "ssh"),
    ("protocol.ext.allow", "never"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("log.showSignature", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
];

/// Returns the variables to add to the environment of a process flow starts in a worktree:
/// `core.hooksPath` set to `hooks_path` (or [`NO_HOOKS`]) and [`AGENT_GIT_SETTINGS`], at the
/// command-line level.
///
/// `environment` is the environment they join: settings already given there with
/// `GIT_CONFIG_COUNT` are kept and these are numbered after them (the later wins), and a
/// `GIT_PROXY_COMMAND` it sets is left alone.
pub fn agent_git_env(hooks_path: Option<&Path>, environment: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let first = environment
        .get("GIT_CONFIG_COUNT")
        .and_then(|count| count.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let hooks = hooks_path.map_or_else(|| NO_HOOKS.to_owned(), |path| path.display().to_string());
    let settings = std::iter::once(("core.hooksPath", hooks.as_str())).chain(AGENT_GIT_SETTINGS.iter().copied());
    let mut variables = Vec::new();
    let mut count = first;
    for (key, value) in settings {
        variables.push((format!("GIT_CONFIG_KEY_{count}"), key.to_owned()));
        variables.push((format!("GIT_CONFIG_VALUE_{count}"), value.to_owned()));
        count += 1;
    }
    variables.push(("GIT_CONFIG_COUNT".to_owned(), count.to_string()));
    if !environment.contains_key("GIT_PROXY_COMMAND") {
        variables.push(("GIT_PROXY_COMMAND".to_owned(), String::new()));
    }
    variables
}
