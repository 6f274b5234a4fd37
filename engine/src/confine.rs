//! The sandbox each process of a run starts in: what an agent, its test and `verify` may
//! write, and where they may connect.
//!
//! Everything that runs code an agent wrote is confined: the agent itself (and the reviewer
//! and resolver agents), its `test` (the test runs the agent's code), and `verify` (it runs
//! the merged code). The places each may write:
//!
//! | process | may write |
//! |---|---|
//! | agent in a worktree | its worktree, its temporary folder, the git places it needs to commit on its own branch ([`git_writable`]), the agent's and the workstream's `writable` |
//! | agent in a scratch folder | that folder, its temporary folder, the `writable` places |
//! | resolver | the integration worktree and the git places to commit on the integration branch |
//! | `test` | the worktree, the temporary folder, the `writable` places |
//! | `verify` | the integration worktree, its own temporary folder, the merged workstream's `writable` |
//!
//! Reading and executing stay open everywhere; the workstream's `network` limits TCP. The
//! temporary folder is `.flow/runs/<id>/tmp/<workstream>/`, given as `TMPDIR`.
//!
//! A kernel without Landlock confines nothing: the run says so once, before it starts
//! ([`Confiner::notice`]), and runs unconfined. A kernel that can enforce only part of a
//! policy (an older ABI) confines with that part and says what is not enforced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use flow_dsl::{Agent, Network as WorkflowNetwork, SandboxMode, Workstream};

use crate::agent::process::Sandboxing;
use crate::git::Git;
use crate::sandbox::{self, GitObjects, Network, Policy, Support, Wrapper, Writable, git_writable};

/// Decides the sandbox of each process of a run.
#[derive(Debug, Clone)]
pub struct Confiner {
    support: Support,
    wrapper: Wrapper,
    home: Option<PathBuf>,
    /// The folder relative `writable` paths start from: the repository's root.
    root: PathBuf,
}

/// Where a confined process works.
pub struct Place<'a> {
    /// Its working folder: a worktree or a scratch folder.
    pub dir: &'a Path,
    /// Its temporary folder (made when missing).
    pub tmp: &'a Path,
    /// The repository and the branch it commits on, when it commits.
    pub commits: Option<(&'a Git, &'a str)>,
}

impl Confiner {
    /// A confiner for a run at `root` whose environment is `parent_env` (for `~`), with what
    /// this kernel offers.
    pub fn new(parent_env: &BTreeMap<String, String>, root: &Path) -> Confiner {
        Confiner {
            support: sandbox::support(),
            wrapper: Wrapper::beside_this_program(),
            home: parent_env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from),
            root: root.to_path_buf(),
        }
    }

    /// Returns the one line a run prints before it starts when the kernel cannot confine
    /// what it runs, or can only in part; `None` when it confines everything.
    pub fn notice(&self, workflow: &flow_dsl::Workflow) -> Option<String> {
        if workflow.workstreams.iter().all(|ws| ws.sandbox == SandboxMode::Off) {
            return None;
        }
        if !self.support.filesystem {
            return Some(format!(
                "agents run unconfined: {} (they can write anywhere you can; see `sandbox` in `flow help workflow`)",
                self.support
            ));
        }
        let network = workflow.workstreams.iter().any(|ws| ws.network != WorkflowNetwork::Any);
        let policy = Policy::new().network(if network { Network::Off } else { Network::Any });
        let gaps = self.support.gaps(&policy);
        if gaps.is_empty() {
            return None;
        }
        let gaps: Vec<String> = gaps.iter().map(ToString::to_string).collect();
        Some(format!(
            "agents are confined with {}, which does not enforce: {}",
            self.support,
            gaps.join("; ")
        ))
    }

    /// Returns the sandbox of workstream `ws`'s agent (`agent`) working at `place`; `None`
    /// when the workstream has `sandbox "off"` or the kernel has no Landlock.
    ///
    /// # Errors
    ///
    /// Fails when a place cannot be made ready (the temporary folder, the git places): the
    /// agent must then not start.
    pub fn agent(&self, ws: &Workstream, agent: &Agent, place: &Place<'_>) -> Result<Option<Sandboxing>, String> {
        let extra: Vec<&str> = agent.writable.iter().chain(&ws.writable).map(String::as_str).collect();
        self.build(ws, place, &extra)
    }

    /// Returns the sandbox of workstream `ws`'s `test` run at `place`.
    ///
    /// # Errors
    ///
    /// As [`Confiner::agent`].
    pub fn test(&self, ws: &Workstream, place: &Place<'_>) -> Result<Option<Sandboxing>, String> {
        let extra: Vec<&str> = ws.writable.iter().map(String::as_str).collect();
        self.build(ws, place, &extra)
    }

    /// Returns the sandbox of `verify` run at `place` (the integration worktree) after the
    /// merge of workstream `ws`: the folder, its temporary folder and `ws`'s `writable` places,
    /// no network limit; `None` when `ws` has `sandbox "off"` or the kernel has no Landlock.
    ///
    /// # Errors
    ///
    /// As [`Confiner::agent`].
    pub fn verify(&self, ws: &Workstream, place: &Place<'_>) -> Result<Option<Sandboxing>, String> {
        if ws.sandbox == SandboxMode::Off || !self.support.filesystem {
            return Ok(None);
        }
        let extra: Vec<&str> = ws.writable.iter().map(String::as_str).collect();
        let policy = self.policy(place, &extra, Network::Any)?;
        Ok(Some(self.sandboxing(policy, place)))
    }

    fn build(&self, ws: &Workstream, place: &Place<'_>, extra: &[&str]) -> Result<Option<Sandboxing>, String> {
        if ws.sandbox == SandboxMode::Off || !self.support.filesystem {
            return Ok(None);
        }
        let network = match &ws.network {
            WorkflowNetwork::Any => Network::Any,
            WorkflowNetwork::Off => Network::Off,
            WorkflowNetwork::Ports(ports) => Network::Ports(ports.clone()),
        };
        let policy = self.policy(place, extra, network)?;
        Ok(Some(self.sandboxing(policy, place)))
    }

    fn sandboxing(&self, policy: Policy, place: &Place<'_>) -> Sandboxing {
        let git_objects = place
            .commits
            .map(|(git, _)| GitObjects::make(git.common_dir(), &own_objects(place.tmp)).map(|made| made.0))
            .and_then(Result::ok);
        Sandboxing {
            policy,
            wrapper: self.wrapper.clone(),
            tmpdir: place.tmp.to_path_buf(),
            git_objects,
        }
    }

    fn policy(&self, place: &Place<'_>, extra: &[&str], network: Network) -> Result<Policy, String> {
        std::fs::create_dir_all(place.tmp)
            .map_err(|e| format!("cannot make the temporary folder {}: {e}", place.tmp.display()))?;
        let mut policy = Policy::new()
            .allow(Writable::tree(place.dir))
            .allow(Writable::tree(place.tmp))
            .network(network);
        policy.best_effort = true;
        if let Some((git, branch)) = place.commits {
            let private = git.worktree_admin_dir(place.dir).map_err(|e| e.to_string())?;
            let places = git_writable(git.common_dir(), &private, branch).map_err(|e| e.to_string())?;
            policy.writable.extend(places);
            let (_, objects) =
                GitObjects::make(git.common_dir(), &own_objects(place.tmp)).map_err(|e| e.to_string())?;
            policy.writable.push(objects);
        }
        for path in extra {
            if let Some(place) = self.writable(path) {
                policy.writable.push(place);
            }
        }
        Ok(policy)
    }

    /// The place a `writable` entry names, `~` expanded: a folder is writable throughout, a
    /// file in place. An entry ending in `/` is a folder, made when missing (a tool's state
    /// folder on its first run); any other path that does not exist is skipped (a rule needs
    /// something to hold on to), and so is `~` without a `HOME`.
    fn writable(&self, entry: &str) -> Option<Writable> {
        let path = match entry.strip_prefix('~') {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                self.home.as_ref()?.join(rest.trim_start_matches('/'))
            }
            _ => self.root.join(entry),
        };
        if entry.ends_with('/') {
            std::fs::create_dir_all(&path).ok()?;
        }
        let meta = std::fs::metadata(&path).ok()?;
        Some(if meta.is_dir() {
            Writable::tree(path)
        } else {
            Writable::file(path)
        })
    }
}

/// The object folder of an agent that commits, in its temporary folder: its git writes there,
/// and flow takes the objects into the shared store once it is gone
/// ([`crate::git::Git::adopt_objects`]).
pub fn own_objects(tmp: &Path) -> PathBuf {
    tmp.join(OWN_OBJECTS)
}

/// The name of an agent's object folder in its temporary folder.
pub const OWN_OBJECTS: &str = "git-objects";

#[cfg(test)]
mod tests {
    use super::*;

    fn confiner(home: &Path) -> Confiner {
        Confiner {
            support: sandbox::support(),
            wrapper: Wrapper::this_program(),
            home: Some(home.to_path_buf()),
            root: home.join("repo"),
        }
    }

    #[test]
    fn writable_entries_expand_the_home_and_skip_what_does_not_exist() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".tool")).unwrap();
        std::fs::write(home.path().join(".tool.json"), "{}").unwrap();
        std::fs::create_dir(home.path().join("repo")).unwrap();
        let c = confiner(home.path());
        assert_eq!(c.writable("~/.tool"), Some(Writable::tree(home.path().join(".tool"))));
        assert_eq!(
            c.writable("~/.tool.json"),
            Some(Writable::file(home.path().join(".tool.json")))
        );
        assert_eq!(c.writable("~/.missing"), None);
        assert_eq!(c.writable("~/.made/"), Some(Writable::tree(home.path().join(".made/"))));
        assert!(home.path().join(".made").is_dir());
        // `~user` is not this user's home; a relative path starts at the repository.
        assert_eq!(c.writable("~other/x"), None);
        assert_eq!(
            c.writable("../.tool"),
            Some(Writable::tree(home.path().join("repo/../.tool")))
        );
    }
}
