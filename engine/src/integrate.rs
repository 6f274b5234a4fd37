//! One step of the merge queue, in its three parts: merge a finished branch into the
//! integration branch in memory ([`merge`]), run `verify` on the merged tree in the
//! integration worktree ([`verify`]), and move the integration branch back when that fails
//! ([`roll_back`]). `flow run`'s core orders the parts itself; `flow merge` takes them
//! together ([`merge_and_verify`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use flow_dsl::Workflow;
use tokio::sync::watch;

use crate::agent::environment::declared_secret_values;
use crate::checks::{Check, TestResult, run_check};
use crate::confine::{Confiner, Place};
use crate::git::{Git, MergeOutcome, Oid};
use crate::site::Site;

/// Everything a merge step needs besides the branch.
pub struct Integration<'a> {
    pub git: &'a Git,
    pub workflow: &'a Workflow,
    /// The detached worktree where `verify` runs.
    pub verify_dir: PathBuf,
    /// Where `verify`'s output goes.
    pub log_path: PathBuf,
    /// flow's own environment; `verify` gets the same allowlist agents get.
    pub parent_env: &'a BTreeMap<String, String>,
    pub grace: Duration,
    /// Written into merge commit messages.
    pub note: String,
    /// Decides `verify`'s sandbox: it runs the merged code.
    pub confiner: Confiner,
    /// `verify`'s temporary folder (its `TMPDIR` when it is confined).
    pub tmp_dir: PathBuf,
}

impl<'a> Integration<'a> {
    /// The merge step of the verbs a person runs outside a run (`flow merge`, `flow done`,
    /// the dependencies of a pushed run): `verify` in the site's integration worktree, its
    /// output in `.flow/merge.log`, its temporary folder `.flow/tmp/verify`, confined as in a
    /// run. Creates `.flow/` when it is missing.
    pub fn by_hand(
        site: &Site,
        git: &'a Git,
        workflow: &'a Workflow,
        parent_env: &'a BTreeMap<String, String>,
        note: &str,
    ) -> std::io::Result<Integration<'a>> {
        let flow_dir = site.flow_dir();
        crate::run::store::ensure_flow_dir(flow_dir)?;
        Ok(Integration {
            git,
            workflow,
            verify_dir: site.integration_dir(workflow),
            log_path: flow_dir.join("merge.log"),
            parent_env,
            grace: Duration::from_secs(5),
            note: note.to_string(),
            confiner: Confiner::new(parent_env, site.root()),
            tmp_dir: flow_dir.join("tmp").join("verify"),
        })
    }
}

/// What a merge step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Integrated {
    /// The branch is in the integration branch, now at `commit` (verified when `verify` is set).
    Merged { commit: Oid, verify: Option<TestResult> },
    /// The branch conflicts; the integration branch did not move.
    Conflict { paths: Vec<String> },
    /// `verify` failed; the integration branch was moved back (unless `rolled_back` is false).
    VerifyFailed { result: TestResult, rolled_back: bool },
    /// `verify` was stopped: the integration branch was moved back.
    Interrupted,
    /// Git refused or failed.
    Error(String),
}

/// Merges `result` (the head of workstream `index`) into the integration branch, whose head
/// must be `expected`; the integration branch's new head, or what kept it from moving.
pub async fn merge(
    integration: &Integration<'_>,
    index: usize,
    expected: Oid,
    result: Oid,
) -> Result<MergeOutcome, String> {
    let workflow = integration.workflow;
    let ws = &workflow.workstreams[index];
    let into = workflow.into.clone();
    let message = format!(
        "Merge {} ({}) into {into}\n\n{}",
        workflow.branch_of(ws),
        ws.name,
        integration.note
    );
    let git = integration.git.clone();
    match tokio::task::spawn_blocking(move || git.merge_into_expecting(&into, expected, result, &message)).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err(format!("merge failed: {e}")),
        Err(e) => Err(format!("merge stopped: {e}")),
    }
}

/// Runs `verify` on `commit` in the integration worktree; `None` when `stop` ended it.
pub async fn verify(
    integration: &Integration<'_>,
    command: &str,
    commit: Oid,
    workstream: &str,
    stop: watch::Receiver<bool>,
) -> Option<TestResult> {
    let git = integration.git.clone();
    let dir = integration.verify_dir.clone();
    let checkout = tokio::task::spawn_blocking(move || git.checkout_detached(&dir, commit)).await;
    let failed = |detail: String| Some(TestResult::failed(command, detail));
    match checkout {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return failed(format!("cannot check out the merged tree: {e}")),
        Err(e) => return failed(format!("checkout stopped: {e}")),
    }
    // What names the work being verified, and ports of its own while it runs.
    // The verified workstream's count of ports (the workflow's default for another name).
    let count = integration
        .workflow
        .workstreams
        .iter()
        .find(|ws| ws.name == workstream)
        .map_or(flow_dsl::DEFAULT_PORTS, |ws| ws.ports);
    let ports = crate::worktree_setup::ports::PortBlock::take(count);
    let identity = crate::worktree_setup::Identity {
        workstream: workstream.to_string(),
        worktree: integration.verify_dir.clone(),
        run: integration
            .note
            .strip_prefix("flow run ")
            .unwrap_or_default()
            .to_string(),
        branch: Some(integration.workflow.into.clone()),
        port: ports.as_ref().map(crate::worktree_setup::ports::PortBlock::first),
        port_count: count,
    };
    let mut variables = identity.variables();
    if identity.run.is_empty() {
        variables.remove("FLOW_RUN");
    }
    let env = crate::agent::environment::agent_environment(
        integration.parent_env.iter().map(|(k, v)| (k.clone(), v.clone())),
        &[],
        &variables,
    );
    let tmp = &integration.tmp_dir;
    let place = Place {
        dir: &integration.verify_dir,
        tmp,
        commits: None,
    };
    let merged = integration.workflow.workstreams.iter().find(|ws| ws.name == workstream);
    let sandbox = match merged.map(|ws| integration.confiner.verify(ws, &place)) {
        Some(Ok(sandbox)) => sandbox,
        None => None,
        Some(Err(e)) => return failed(format!("cannot confine verify: {e}")),
    };
    let secrets = merged.map_or_else(Vec::new, |ws| {
        declared_secret_values(&ws.secrets, &env, integration.parent_env)
    });
    let check = Check {
        command,
        dir: &integration.verify_dir,
        env,
        log_path: integration.log_path.clone(),
        header: Some(format!("== verify after merging {workstream}: {command}")),
        timeout: None,
        grace: integration.grace,
        sandbox,
        secrets,
        hurry: None,
    };
    run_check(check, stop).await
}

/// Moves the integration branch from `from` back to `to`; says whether it could.
pub async fn roll_back(git: &Git, into: &str, to: Oid, from: Oid, why: &'static str) -> bool {
    let git = git.clone();
    let into = into.to_string();
    matches!(
        tokio::task::spawn_blocking(move || git.set_branch(&into, to, Some(from), why)).await,
        Ok(Ok(()))
    )
}

/// Merges then verifies, moving the integration branch back when `verify` fails or is
/// stopped: the whole step, for `flow merge`.
pub async fn merge_and_verify(
    integration: &Integration<'_>,
    index: usize,
    expected: Oid,
    result: Oid,
    stop: watch::Receiver<bool>,
) -> Integrated {
    let merged = match merge(integration, index, expected, result).await {
        Ok(MergeOutcome::FastForward { to }) => to,
        Ok(MergeOutcome::Merged { commit }) => commit,
        Ok(MergeOutcome::UpToDate) => {
            return Integrated::Merged {
                commit: expected,
                verify: None,
            };
        }
        Ok(MergeOutcome::Conflict { paths }) => return Integrated::Conflict { paths },
        Err(message) => return Integrated::Error(message),
    };
    let workflow = integration.workflow;
    let Some(command) = &workflow.integrate.verify else {
        return Integrated::Merged {
            commit: merged,
            verify: None,
        };
    };
    let name = &workflow.workstreams[index].name;
    match verify(integration, command, merged, name, stop).await {
        None => {
            roll_back(
                integration.git,
                &workflow.into,
                expected,
                merged,
                "flow: verify interrupted, roll back",
            )
            .await;
            Integrated::Interrupted
        }
        Some(result) if !result.passed => {
            let rolled_back = roll_back(
                integration.git,
                &workflow.into,
                expected,
                merged,
                "flow: verify failed, roll back",
            )
            .await;
            Integrated::VerifyFailed { result, rolled_back }
        }
        Some(result) => Integrated::Merged {
            commit: merged,
            verify: Some(result),
        },
    }
}
