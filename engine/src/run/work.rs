//! The real [`Work`] of a run: git worktrees and context files, agent processes, commits and
//! checks, merges and `verify`. Each method does one effect of the core and reports what
//! happened as a value; none of them decides what happens next.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow_dsl::Workflow;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::agent::command::{Placeholders, launch};
use crate::agent::environment::{agent_environment, redact};
use crate::agent::output::OutputReader;
use crate::agent::process::{Control, OutputLine, ProcessEnd, Stream, run_process};
use crate::checks::{Check, run_check};
use crate::context::{self, CONTEXT_PREFIXES};
use crate::git::{BranchState, Git, GitError, IntegrityProblem, MergeOutcome as GitMerge, Oid, WorktreeState};
use crate::integrate::{self, Integration};
use crate::run::core::{AgentEnd, AgentOutcome, Inspection, MergeOutcome, Workspace};
use crate::run::driver::{Reporter, Work};
use crate::run::state::{RunState, TestResult};
use crate::site::RunDir;
use crate::site::Site;

/// What one workstream's later steps need from its earlier ones.
#[derive(Debug, Clone, Default)]
struct Slot {
    workspace: Option<Workspace>,
    prompt: String,
    prompt_file: PathBuf,
    /// The environment its agent last ran with, kept only for a workstream with a test
    /// (which gets the same).
    env: Option<BTreeMap<String, String>>,
}

/// Runs a workflow's steps for real, in one repository and run folder.
pub struct ProcessWork {
    workflow: Arc<Workflow>,
    git: Option<Git>,
    root: PathBuf,
    run_dir: RunDir,
    worktrees_dir: PathBuf,
    integration_dir: PathBuf,
    parent_env: BTreeMap<String, String>,
    grace: Duration,
    /// Each workstream's spec hash, written into flow's commits so that work redone for a
    /// changed spec never repeats an earlier commit exactly.
    spec_hashes: Vec<String>,
    slots: Mutex<Vec<Slot>>,
}

impl ProcessWork {
    /// The work of a run of `workflow` at `site`, recorded in `run_dir`.
    pub fn new(
        workflow: Arc<Workflow>,
        site: &Site,
        run_dir: RunDir,
        parent_env: BTreeMap<String, String>,
        grace: Duration,
        spec_hashes: Vec<String>,
    ) -> ProcessWork {
        let n = workflow.workstreams.len();
        ProcessWork {
            git: site.git().cloned(),
            root: site.root().to_path_buf(),
            worktrees_dir: site.worktrees_dir(&workflow),
            integration_dir: site.integration_dir(&workflow),
            workflow,
            run_dir,
            parent_env,
            grace,
            spec_hashes,
            slots: Mutex::new(vec![Slot::default(); n]),
        }
    }

    fn slot(&self, index: usize) -> Slot {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[index].clone()
    }

    fn set_slot(&self, index: usize, change: impl FnOnce(&mut Slot)) {
        change(&mut self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[index]);
    }

    /// The workstream's worktree, branch and start, once prepared.
    fn worktree(&self, index: usize) -> Result<(Git, PathBuf, String, Oid), String> {
        let slot = self.slot(index);
        match (&self.git, slot.workspace) {
            (
                Some(git),
                Some(Workspace {
                    dir,
                    branch: Some(branch),
                    start: Some(start),
                }),
            ) => Ok((git.clone(), dir, branch, start)),
            _ => Err("the workstream has no worktree".into()),
        }
    }

    /// The trailer of flow's commits: the run and the workstream's spec.
    fn trailer(&self, index: usize) -> String {
        format!(
            "flow run {}, spec {}",
            self.run_dir.id,
            self.spec_hashes.get(index).map_or("", String::as_str)
        )
    }

    fn integration(&self) -> Option<Integration<'_>> {
        Some(Integration {
            git: self.git.as_ref()?,
            workflow: &self.workflow,
            verify_dir: self.integration_dir.clone(),
            log_path: self.run_dir.log_path("_verify"),
            parent_env: &self.parent_env,
            grace: self.grace,
            note: format!("flow run {}", self.run_dir.id),
        })
    }

    async fn do_prepare(&self, index: usize, start: Option<Oid>, fresh: bool) -> Result<Workspace, String> {
        let workflow = self.workflow.clone();
        let ws = &workflow.workstreams[index];
        let (dir, branch, start) = match (&self.git, start) {
            (Some(git), Some(start)) => {
                let dir = self.worktrees_dir.join(&ws.name);
                let branch = workflow.branch_of(ws);
                let (git, d, b) = (git.clone(), dir.clone(), branch.clone());
                let reason = format!("flow run {}", self.run_dir.id);
                blocking(move || {
                    let made = git.add_worktree(&d, &b, start)?;
                    // A reused worktree (an earlier, interrupted attempt), or one made on a
                    // branch left elsewhere, starts over at `start`; a new one is there already.
                    let at_start = match made {
                        WorktreeState::Created {
                            branch: BranchState::Created,
                        } => true,
                        WorktreeState::Created {
                            branch: BranchState::Existing(at),
                        } => at == start,
                        WorktreeState::Reused => false,
                    };
                    if fresh && !at_start {
                        git.reset_worktree(&d, start, CONTEXT_PREFIXES)?;
                    }
                    git.lock_worktree(&d, &reason)
                })
                .await?;
                (dir, Some(branch), Some(start))
            }
            _ => {
                let dir = self.run_dir.scratch_path(&ws.name);
                std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                (dir, None, None)
            }
        };
        // Worktrees always get the seed's context files; a scratch folder only when the agent
        // reads its prompt from a file, and the prompt is rendered only when something reads it
        // (thousands of no-op steps should cost neither files nor rendering).
        let agent = workflow.agent_of(ws);
        let needs_prompt = branch.is_some()
            || agent.uses("prompt")
            || agent.uses("prompt_file")
            || agent.stdin == flow_dsl::StdinMode::Prompt;
        let root = if self.git.is_some() { &self.root } else { &dir };
        let rendered = needs_prompt.then(|| context::render(&workflow, index, root));
        let prompt_file = match &rendered {
            Some(r) if branch.is_some() || agent.uses("prompt_file") => context::write(r, &dir, &ws.name)
                .map_err(|e| format!("cannot write the context into {}: {e}", dir.display()))?,
            _ => dir.join(context::context_dir(&ws.name)).join("prompt.md"),
        };
        let workspace = Workspace { dir, branch, start };
        self.set_slot(index, |slot| {
            slot.workspace = Some(workspace.clone());
            slot.prompt = rendered.map(|r| r.prompt).unwrap_or_default();
            slot.prompt_file = prompt_file;
        });
        Ok(workspace)
    }

    async fn do_run_agent(
        &self,
        index: usize,
        attempt: u32,
        budget_usd: Option<f64>,
        report: Reporter,
        stop: watch::Receiver<bool>,
    ) -> AgentOutcome {
        let workflow = self.workflow.clone();
        let ws = &workflow.workstreams[index];
        let slot = self.slot(index);
        let Some(workspace) = &slot.workspace else {
            return AgentOutcome::unstarted(AgentEnd::Failed("the workstream was not prepared".into()));
        };
        let mut extra = BTreeMap::new();
        extra.insert("FLOW_WORKSTREAM".to_string(), ws.name.clone());
        extra.insert("FLOW_RUN".to_string(), self.run_dir.id.clone());
        extra.insert("FLOW_ATTEMPT".to_string(), attempt.to_string());
        extra.insert("FLOW_WORKTREE".to_string(), workspace.dir.display().to_string());
        extra.insert("FLOW_INTO".to_string(), workflow.into.clone());
        if let Some(git) = &self.git {
            extra.insert("FLOW_REPO".to_string(), git.root().display().to_string());
        }
        let values = Placeholders {
            prompt: &slot.prompt,
            prompt_file: &slot.prompt_file,
            worktree: &workspace.dir,
        };
        let launched = match launch(&workflow, index, &values, &self.parent_env, &extra, budget_usd) {
            Ok(l) => l,
            Err(message) => return AgentOutcome::unstarted(AgentEnd::Failed(message)),
        };
        let mut spec = launched.spec;
        spec.log_path = Some(self.run_dir.log_path(&ws.name));
        spec.grace = self.grace;
        if ws.test.is_some() {
            self.set_slot(index, |s| s.env = Some(spec.env.clone()));
        }
        let secrets = launched.secrets;
        let mut reader = OutputReader::new(workflow.agent_of(ws).output);
        let on_line = |line: OutputLine<'_>| {
            if line.stream == Stream::Stdout {
                let text = line.text;
                if let Some(usage) = reader.feed_line(text) {
                    report.usage(usage);
                }
                report.line(redact(text, &secrets).into_owned());
            }
            Control::Continue
        };
        let outcome = match run_process(spec, on_line, stop).await {
            Ok(o) => o,
            Err(e) => return AgentOutcome::unstarted(AgentEnd::Failed(e.to_string())),
        };
        let exit_code = match &outcome.end {
            ProcessEnd::Exited(code) => Some(*code),
            _ => None,
        };
        let mut agent_report = reader.finish(exit_code, &outcome.stderr_tail);
        // The tool's own message may quote what it printed: keep secrets out of state and events.
        if let Some(error) = &mut agent_report.error {
            error.message = redact(&error.message, &secrets).into_owned();
        }
        if outcome.end == ProcessEnd::Exited(0) && workspace.branch.is_none() && ws.test.is_none() {
            // A scratch step with nothing to check is over: nothing will ask for its slot again
            // (thousands of no-op steps should not keep theirs).
            self.set_slot(index, |s| *s = Slot::default());
        }
        let end = match outcome.end {
            ProcessEnd::Exited(code) => AgentEnd::Exited(code),
            ProcessEnd::Signaled(signal) => AgentEnd::Signaled(signal),
            ProcessEnd::TimedOut => AgentEnd::TimedOut,
            ProcessEnd::Hung => AgentEnd::Hung,
            ProcessEnd::Cancelled => AgentEnd::Stopped,
            ProcessEnd::Stopped(reason) => AgentEnd::Failed(reason),
        };
        AgentOutcome {
            end,
            usage: agent_report.usage,
            session_id: agent_report.session_id,
            error: agent_report.error,
            last_line: outcome.last_line,
        }
    }

    async fn do_inspect(&self, index: usize) -> Result<Inspection, String> {
        let (git, dir, branch, start) = self.worktree(index)?;
        let workflow = self.workflow.clone();
        let message = format!(
            "flow: work of {} (uncommitted changes left by the agent)\n\n{}",
            workflow.workstreams[index].name,
            self.trailer(index)
        );
        blocking(move || {
            git.commit_all(&dir, &message, &context::excluded_prefixes(&workflow))?;
            let integrity: Vec<String> = git
                .check_worktree_integrity(&dir, &branch, start)?
                .iter()
                .map(describe_integrity)
                .collect();
            let Some(head) = git.branch_head(&branch)? else {
                return Ok(Inspection {
                    head: start,
                    changed: vec![],
                    integrity: vec![format!("branch {branch} is gone")],
                });
            };
            if !integrity.is_empty() {
                return Ok(Inspection {
                    head,
                    changed: vec![],
                    integrity,
                });
            }
            let mut changed: Vec<String> = git
                .changed_paths(start, head)?
                .iter()
                .flat_map(|c| c.paths().map(str::to_string))
                .collect();
            changed.sort();
            changed.dedup();
            Ok(Inspection {
                head,
                changed,
                integrity,
            })
        })
        .await
    }

    async fn do_revert(&self, index: usize, paths: Vec<String>) -> Result<Oid, String> {
        let (git, dir, branch, start) = self.worktree(index)?;
        let workflow = self.workflow.clone();
        let message = format!(
            "flow: revert changes of {} outside its scope\n\n{}",
            workflow.workstreams[index].name,
            paths.join("\n")
        );
        blocking(move || {
            git.restore_paths(&dir, start, &paths)?;
            git.commit_all(&dir, &message, &context::excluded_prefixes(&workflow))?;
            git.branch_head(&branch)?
                .ok_or_else(|| GitError::UnknownBranch(branch.clone()))
        })
        .await
    }

    async fn do_test(&self, index: usize, stop: watch::Receiver<bool>) -> Option<TestResult> {
        let ws = &self.workflow.workstreams[index];
        let command = ws.test.as_deref()?;
        let slot = self.slot(index);
        let dir = slot.workspace.as_ref().map_or(self.root.as_path(), |w| w.dir.as_path());
        // The test sees what its agent saw; a test of work checked after a restart, the clean
        // environment.
        let env = slot.env.clone().unwrap_or_else(|| {
            agent_environment(
                self.parent_env.iter().map(|(k, v)| (k.clone(), v.clone())),
                &[],
                &BTreeMap::new(),
            )
        });
        let check = Check {
            command,
            dir,
            env,
            log_path: self.run_dir.log_path(&ws.name),
            header: None,
            timeout: ws.timeout,
            grace: self.grace,
        };
        run_check(check, stop).await
    }

    async fn do_reset(&self, index: usize, to: Oid) -> Result<(), String> {
        let (git, dir, _, _) = self.worktree(index)?;
        blocking(move || git.reset_worktree(&dir, to, CONTEXT_PREFIXES)).await
    }

    async fn do_merge(&self, index: usize, expected: Oid, result: Oid) -> MergeOutcome {
        let Some(integration) = self.integration() else {
            return MergeOutcome::Error("no repository".into());
        };
        match integrate::merge(&integration, index, expected, result).await {
            Ok(GitMerge::FastForward { to }) => MergeOutcome::Merged(to),
            Ok(GitMerge::Merged { commit }) => MergeOutcome::Merged(commit),
            Ok(GitMerge::UpToDate) => MergeOutcome::UpToDate,
            Ok(GitMerge::Conflict { paths }) => MergeOutcome::Conflict(paths),
            Err(message) => MergeOutcome::Error(message),
        }
    }

    async fn do_verify(&self, index: usize, commit: Oid, stop: watch::Receiver<bool>) -> Option<TestResult> {
        let integration = self.integration()?;
        let command = self.workflow.integrate.verify.as_deref()?;
        let name = &self.workflow.workstreams[index].name;
        integrate::verify(&integration, command, commit, name, stop).await
    }
}

impl Work for ProcessWork {
    fn prepare(
        self: Arc<Self>,
        workstream: usize,
        start: Option<Oid>,
        fresh: bool,
    ) -> BoxFuture<'static, Result<Workspace, String>> {
        async move { self.do_prepare(workstream, start, fresh).await }.boxed()
    }

    fn run_agent(
        self: Arc<Self>,
        workstream: usize,
        attempt: u32,
        budget_usd: Option<f64>,
        report: Reporter,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, AgentOutcome> {
        async move { self.do_run_agent(workstream, attempt, budget_usd, report, stop).await }.boxed()
    }

    fn inspect(self: Arc<Self>, workstream: usize) -> BoxFuture<'static, Result<Inspection, String>> {
        async move { self.do_inspect(workstream).await }.boxed()
    }

    fn revert(self: Arc<Self>, workstream: usize, paths: Vec<String>) -> BoxFuture<'static, Result<Oid, String>> {
        async move { self.do_revert(workstream, paths).await }.boxed()
    }

    fn test(self: Arc<Self>, workstream: usize, stop: watch::Receiver<bool>) -> BoxFuture<'static, Option<TestResult>> {
        async move { self.do_test(workstream, stop).await }.boxed()
    }

    fn reset(self: Arc<Self>, workstream: usize, to: Oid) -> BoxFuture<'static, Result<(), String>> {
        async move { self.do_reset(workstream, to).await }.boxed()
    }

    fn merge(self: Arc<Self>, workstream: usize, expected: Oid, result: Oid) -> BoxFuture<'static, MergeOutcome> {
        async move { self.do_merge(workstream, expected, result).await }.boxed()
    }

    fn verify(
        self: Arc<Self>,
        workstream: usize,
        commit: Oid,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, Option<TestResult>> {
        async move { self.do_verify(workstream, commit, stop).await }.boxed()
    }

    fn roll_back(self: Arc<Self>, to: Oid, from: Oid, why: &'static str) -> BoxFuture<'static, bool> {
        async move {
            match &self.git {
                Some(git) => integrate::roll_back(git, &self.workflow.into, to, from, why).await,
                None => false,
            }
        }
        .boxed()
    }

    fn finish(&self, state: &RunState) {
        let Some(git) = &self.git else { return };
        for ws in &state.workstreams {
            if let (Some(dir), Some(_)) = (&ws.worktree, &ws.branch) {
                let _ = git.unlock_worktree(Path::new(dir));
            }
        }
    }
}

/// Runs git work on the blocking pool; its error, or the pool's, in words.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, GitError> + Send + 'static) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the git task stopped: {e}")),
    }
}

fn describe_integrity(problem: &IntegrityProblem) -> String {
    match problem {
        IntegrityProblem::FolderMissing => "its worktree folder is gone".to_string(),
        IntegrityProblem::GitFileTouched { detail } => format!("it touched .git: {detail}"),
        IntegrityProblem::SwitchedBranch { now } => format!("it switched its worktree to branch {now}"),
        IntegrityProblem::Detached { at } => format!("it detached its worktree's HEAD (at {at})"),
        IntegrityProblem::BranchMissing => "its branch was deleted".to_string(),
        IntegrityProblem::RewroteHistory { head } => format!("it rewrote history below its start commit (head {head})"),
    }
}
