//! The real [`Work`] of a run: git worktrees and context files, agent processes, commits and
//! checks, merges and `verify`. Each method does one effect of the core and reports what
//! happened as a value; none of them decides what happens next.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow_dsl::Workflow;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::agent::command::{Placeholders, Runner, launch};
use crate::agent::environment::{
    Redactor, agent_environment, declared_secret_values, declared_secrets, secret_variables,
};
use crate::agent::output::OutputReader;
use crate::agent::process::{Control, Output, ProcessEnd, Stream, run_process};
use crate::checks::{Check, run_check};
use crate::confine::{Confiner, Place};
use crate::context::{self, CONTEXT_PREFIXES};
use crate::git::{
    BranchState, Git, GitError, IntegrityProblem, MergeOutcome as GitMerge, MergeProgress, Oid, WorktreeMerge,
    WorktreeState,
};
use crate::integrate::{self, Integration};
use crate::run::core::{
    AgentEnd, AgentOutcome, Conflicts, Handoff, Inspection, MergeOutcome, Resolution, SyncOutcome, Workspace,
};
use crate::run::driver::{AgentRun, Reporter, Work};
use crate::run::guard::{RunGuard, Tampering};
use crate::run::observer::LinesWanted;
use crate::run::state::{Failure, FailureKind, Purpose, RunState, TestResult};
use crate::site::RunDir;
use crate::site::Site;
use crate::worktree_setup::copy::CopyList;
use crate::worktree_setup::hook::install_scope_hook;
use crate::worktree_setup::ports::PortBlock;
use crate::worktree_setup::{Identity, Setup, run_setup, setup_key, workstream_environment};

/// What one workstream's later steps need from its earlier ones.
#[derive(Debug, Clone, Default)]
struct Slot {
    workspace: Option<Workspace>,
    prompt: String,
    prompt_file: PathBuf,
    /// The environment its agent last ran with, kept only for a workstream with a test
    /// (which gets the same).
    env: Option<BTreeMap<String, String>>,
    /// The first of its block of ports.
    port: Option<u16>,
    /// What was copied into its worktree from the user's checkout (never committed).
    copied: Vec<String>,
    /// Where its own changes start, as its latest inspection found (its start, or the
    /// integration commit a sync brought in): its reviewer reads the diff from there, and a
    /// scope revert puts files back as they are there.
    changes_from: Option<Oid>,
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
    /// The guard of the shared git directory around each agent (with a repository).
    guard: Option<Arc<RunGuard>>,
    /// Each workstream's block of ports, held until the run ends.
    ports: Mutex<Vec<Option<PortBlock>>>,
    /// What each set of `copy` globs names in the user's checkout, found once.
    copies: Mutex<HashMap<Vec<String>, CopyList>>,
    flow_dir: PathBuf,
    /// Decides the sandbox of each agent, test and `verify`.
    confiner: Confiner,
    /// Turns true when the run is interrupted twice: what is being stopped is killed at once.
    hurry: watch::Sender<bool>,
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
            guard: site.git().map(|git| Arc::new(RunGuard::new(git.clone(), &workflow))),
            confiner: Confiner::new(&parent_env, site.root()),
            hurry: watch::channel(false).0,
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
            ports: Mutex::new((0..n).map(|_| None).collect()),
            copies: Mutex::new(HashMap::new()),
            flow_dir: site.flow_dir().to_path_buf(),
        }
    }

    fn slot(&self, index: usize) -> Slot {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[index].clone()
    }

    fn slot_list(&self) -> Vec<Slot> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
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
            confiner: self.confiner.clone(),
            tmp_dir: self.run_dir.tmp_path("_verify"),
        })
    }

    async fn do_prepare(
        &self,
        index: usize,
        start: Option<Oid>,
        fresh: bool,
        keep_merge: bool,
        handoffs: Vec<Handoff>,
        stop: watch::Receiver<bool>,
    ) -> Result<Workspace, Failure> {
        let git_failure = |message: String| Failure::new(FailureKind::Git, message);
        let workflow = self.workflow.clone();
        let ws = &workflow.workstreams[index];
        let mut created = false;
        let (dir, branch, start) = match (&self.git, start) {
            (Some(git), Some(start)) => {
                let dir = self.worktrees_dir.join(&ws.name);
                let branch = workflow.branch_of(ws);
                let (git, d, b) = (git.clone(), dir.clone(), branch.clone());
                let reason = format!("flow run {}", self.run_dir.id);
                created = blocking(move || {
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
                    } else if !fresh && !keep_merge && git.merge_in_progress(&d)? {
                        // A merge an interrupted run left half-done: given up (it is done
                        // again if it is still needed). The sync its agent was resolving
                        // stays, with what the agent did so far.
                        git.abort_merge_in(&d, CONTEXT_PREFIXES)?;
                    }
                    git.lock_worktree(&d, &reason)?;
                    Ok(made != WorktreeState::Reused)
                })
                .await
                .map_err(git_failure)?;
                (dir, Some(branch), Some(start))
            }
            _ => {
                let dir = self.run_dir.scratch_path(&ws.name);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| git_failure(format!("cannot create {}: {e}", dir.display())))?;
                (dir, None, None)
            }
        };
        // Ports, once per run, for a worktree or a scratch folder alike.
        let port = {
            let mut ports = self.ports.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if ports[index].is_none() {
                ports[index] = PortBlock::take(self.workflow.workstreams[index].ports);
            }
            ports[index].as_ref().map(PortBlock::first)
        };
        self.set_slot(index, |slot| slot.port = port);
        if branch.is_some() {
            self.ready_worktree(index, &dir, branch.as_deref(), created, stop)
                .await?;
        }
        // Worktrees always get the seed's context files; a scratch folder only when the agent
        // reads its prompt from a file, and the prompt is rendered only when something reads it
        // (thousands of no-op steps should cost neither files nor rendering).
        let agent = workflow.agent_of(ws);
        let needs_prompt = branch.is_some()
            || agent.uses("prompt")
            || agent.uses("prompt_file")
            || agent.stdin == flow_dsl::StdinMode::Prompt;
        let root = if self.git.is_some() { &self.root } else { &dir };
        let handoff_text = if handoffs.is_empty() {
            String::new()
        } else {
            let decisions = std::fs::read_to_string(self.decision_log()).unwrap_or_default();
            crate::handoff::render(&handoffs, self.git.as_ref(), &decisions, ws.handoff_tokens)
        };
        let rendered = needs_prompt.then(|| context::render_with(&workflow, index, root, &handoff_text));
        let prompt_file = match &rendered {
            Some(r) if branch.is_some() || agent.uses("prompt_file") => context::write(r, &dir, &ws.name)
                .map_err(|e| git_failure(format!("cannot write the context into {}: {e}", dir.display())))?,
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

    /// Makes a workstream's worktree ready to work in: its files copied from the user's
    /// checkout, a block of ports, and its `setup` run (unless this run already ran the same
    /// setup in this worktree). The scope hook comes at the end of the run (see `finish`).
    async fn ready_worktree(
        &self,
        index: usize,
        dir: &Path,
        branch: Option<&str>,
        created: bool,
        stop: watch::Receiver<bool>,
    ) -> Result<(), Failure> {
        let workflow = self.workflow.clone();
        let ws = &workflow.workstreams[index];
        let setup_failure = |message: String| Failure::new(FailureKind::Setup, message);
        // Copied files: what the globs name is found once per run.
        let copy = {
            let cached = self
                .copies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&ws.copy)
                .cloned();
            match cached {
                Some(list) => list,
                None => {
                    let (root, globs) = (self.root.clone(), ws.copy.clone());
                    let skip = vec![self.flow_dir.clone(), self.worktrees_dir.clone()];
                    let list = tokio::task::spawn_blocking(move || CopyList::find(&root, &globs, &skip))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r)
                        .map_err(|e| setup_failure(format!("cannot find the files to copy: {e}")))?;
                    self.copies
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(ws.copy.clone(), list.clone());
                    list
                }
            }
        };
        {
            let (list, root, dir) = (copy.clone(), self.root.clone(), dir.to_path_buf());
            tokio::task::spawn_blocking(move || list.copy_into(&root, &dir))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
                .map_err(setup_failure)?;
        }
        // The scope hook, for a person who commits in this worktree.
        let port = self.slot(index).port;
        self.set_slot(index, |slot| slot.copied = copy.paths.clone());
        if ws.setup.is_empty() {
            return Ok(());
        }
        let key = setup_key(&ws.setup, &ws.copy);
        let mark = self.run_dir.setup_mark_path(&ws.name);
        if !created && std::fs::read_to_string(&mark).is_ok_and(|k| k.trim() == key) {
            return Ok(());
        }
        let _ = std::fs::remove_file(&mark);
        let identity = self.identity(index, dir, branch.map(str::to_string), port);
        let env = workstream_environment(&workflow, index, &self.parent_env, &identity.variables());
        // In the sandbox its test gets: it runs code the branch holds.
        let tmp = self.run_dir.tmp_path(&ws.name);
        let place = Place {
            dir,
            tmp: &tmp,
            commits: None,
        };
        let sandbox = self
            .confiner
            .test(ws, &place)
            .map_err(|e| setup_failure(format!("cannot confine the setup: {e}")))?;
        let secrets = declared_secret_values(&ws.secrets, &env, &self.parent_env);
        // Ctrl-C (or a person's stop) stops it; a second Ctrl-C kills it at once.
        let setup = Setup {
            commands: &ws.setup,
            dir,
            env,
            log_path: self.run_dir.setup_log_path(&ws.name),
            timeout: ws.setup_timeout,
            grace: self.grace,
            sandbox,
            secrets,
            hurry: Some(self.hurry.subscribe()),
        };
        run_setup(setup, stop)
            .await
            .map_err(|failure| setup_failure(failure.to_string()))?;
        let written = mark
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&mark, &key));
        if let Err(e) = written {
            return Err(setup_failure(format!("cannot record that setup passed: {e}")));
        }
        Ok(())
    }

    /// The `FLOW_*` identity of a workstream's worktree.
    fn identity(&self, index: usize, dir: &Path, branch: Option<String>, port: Option<u16>) -> Identity {
        Identity {
            workstream: self.workflow.workstreams[index].name.clone(),
            worktree: dir.to_path_buf(),
            run: self.run_dir.id.clone(),
            branch,
            port,
            port_count: self.workflow.workstreams[index].ports,
        }
    }

    async fn do_run_agent(&self, run: AgentRun, report: Reporter, stop: watch::Receiver<bool>) -> AgentOutcome {
        let index = run.workstream;
        let workflow = self.workflow.clone();
        let ws = &workflow.workstreams[index];
        let slot = self.slot(index);
        let workspace = match (&slot.workspace, run.purpose) {
            (_, Purpose::Resolve) => Workspace {
                dir: self.integration_dir.clone(),
                branch: None,
                start: None,
            },
            (Some(w), _) => w.clone(),
            (None, _) => return AgentOutcome::unstarted(AgentEnd::Failed("the workstream was not prepared".into())),
        };
        // Which agent, command and model, and what it is told.
        let own = workflow.agent_of(ws);
        fn other<'w>(
            workflow: &'w Workflow,
            choice: Option<&'w flow_dsl::AgentChoice>,
        ) -> Option<(&'w flow_dsl::Agent, Option<&'w str>)> {
            choice.and_then(|c| workflow.agents.get(&c.agent).map(|a| (a, c.model.as_deref())))
        }
        let (agent, model_name) = match run.purpose {
            Purpose::Review => match other(&workflow, ws.review.as_ref()) {
                Some((a, m)) => (a, m.or(ws.model.as_deref())),
                None => return AgentOutcome::unstarted(AgentEnd::Failed("the workstream has no reviewer".into())),
            },
            Purpose::Resolve => match other(&workflow, workflow.integrate.resolver.as_ref()) {
                Some((a, m)) => (a, m.or(ws.model.as_deref())),
                None => return AgentOutcome::unstarted(AgentEnd::Failed("the workflow has no resolver".into())),
            },
            Purpose::Work | Purpose::Fix => (own, ws.model.as_deref()),
        };
        let model = model_name.and_then(|m| workflow.models.get(m));
        let feedback = run.feedback.as_ref().map(|f| f.detail.clone()).unwrap_or_default();
        let resumes = run.purpose == Purpose::Fix && !agent.resume.is_empty() && run.session.is_some();
        // A person's message is not a failure: it is said as what it is.
        let told = run
            .feedback
            .as_ref()
            .is_some_and(|f| f.kind == crate::run::state::FeedbackKind::Message);
        let prompt = match run.purpose {
            Purpose::Work => slot.prompt.clone(),
            Purpose::Fix if told && resumes => context::message_text(&feedback),
            Purpose::Fix if told => context::message_prompt(&slot.prompt, &feedback),
            Purpose::Fix if resumes => context::fix_message(&feedback),
            Purpose::Fix => context::fix_prompt(&slot.prompt, &feedback),
            Purpose::Review => self.review_prompt(index, &workspace),
            Purpose::Resolve => self.resolve_prompt(index, &feedback),
        };
        // An API agent runs no program: this command only lets `launch` build its environment.
        let api_command = ["sh".to_string()];
        let command: &[String] = match (&agent.api, resumes) {
            (Some(_), _) => &api_command,
            (None, true) => &agent.resume,
            (None, false) => &agent.command,
        };
        // What the agent is told is also a file in its context folder.
        let context_folder = workspace.dir.join(context::context_dir(&ws.name));
        let prompt_file = match run.purpose {
            Purpose::Work => slot.prompt_file.clone(),
            _ => {
                let name = format!("{}.md", run.purpose.as_str());
                let written = context::hide_from_git(&workspace.dir.join(".ai").join("worktrees"))
                    .and_then(|()| std::fs::create_dir_all(&context_folder))
                    .and_then(|()| std::fs::write(context_folder.join(&name), &prompt));
                if let Err(e) = written {
                    return AgentOutcome::unstarted(AgentEnd::Failed(format!("cannot write {name}: {e}")));
                }
                context_folder.join(name)
            }
        };
        let mut extra = BTreeMap::new();
        extra.insert("FLOW_WORKSTREAM".to_string(), ws.name.clone());
        extra.insert("FLOW_RUN".to_string(), self.run_dir.id.clone());
        extra.insert("FLOW_ATTEMPT".to_string(), run.attempt.to_string());
        extra.insert("FLOW_PURPOSE".to_string(), run.purpose.as_str().to_string());
        extra.insert("FLOW_WORKTREE".to_string(), workspace.dir.display().to_string());
        extra.insert("FLOW_INTO".to_string(), workflow.into.clone());
        extra.insert("FLOW_PROMPT_FILE".to_string(), prompt_file.display().to_string());
        if let Some(f) = &run.feedback {
            extra.insert("FLOW_FEEDBACK_KIND".to_string(), f.kind.as_str().to_string());
        }
        if let Some(git) = &self.git {
            extra.insert("FLOW_REPO".to_string(), git.root().display().to_string());
        }
        extra.extend(
            self.identity(index, &workspace.dir, workspace.branch.clone(), slot.port)
                .variables(),
        );
        let session = run.session.clone().unwrap_or_default();
        let values = Placeholders {
            prompt: &prompt,
            prompt_file: &prompt_file,
            worktree: &workspace.dir,
            session: &session,
        };
        let runner = Runner {
            agent,
            command,
            model,
            model_name,
        };
        let budget_usd = if run.purpose == Purpose::Work || run.purpose == Purpose::Fix {
            run.budget_usd
        } else {
            None
        };
        let launched = match launch(&workflow, index, &runner, &values, &self.parent_env, &extra, budget_usd) {
            Ok(l) => l,
            Err(message) => return AgentOutcome::unstarted(AgentEnd::Failed(message)),
        };
        let mut spec = launched.spec;
        spec.log_path = Some(self.run_dir.log_path(&ws.name));
        spec.grace = self.grace;
        spec.hurry = Some(self.hurry.subscribe());
        // The agent writes to its worktree (and commits on its branch), a reviewer to nothing
        // it keeps, a resolver to the integration worktree and branch.
        let tmp = self.run_dir.tmp_path(&ws.name);
        let commits = match run.purpose {
            Purpose::Review => None,
            Purpose::Resolve => Some(workflow.into.as_str()),
            Purpose::Work | Purpose::Fix => workspace.branch.as_deref(),
        };
        let place = Place {
            dir: &workspace.dir,
            tmp: &tmp,
            commits: self.git.as_ref().zip(commits),
        };
        match self.confiner.agent(ws, agent, &place) {
            Ok(sandbox) => spec.sandbox = sandbox,
            Err(message) => {
                return AgentOutcome::unstarted(AgentEnd::Failed(format!("cannot confine the agent: {message}")));
            }
        }
        if ws.test.is_some() && matches!(run.purpose, Purpose::Work | Purpose::Fix) {
            self.set_slot(index, |s| s.env = Some(spec.env.clone()));
        }
        let secrets = launched.secrets;
        let mut reader = OutputReader::new(agent.output);
        // The lines of one read go to the driver together: a message per line cost more than
        // writing the log (bench/output.sh).
        let mut gathered = String::new();
        let redactor = Redactor::new(&secrets);
        let wanted = report.wanted();
        let on_output = |output: Output<'_>| {
            if output.stream() != Stream::Stdout {
                return Control::Continue;
            }
            let last = output.last_line();
            if reader.reads_every_line() {
                for line in output.lines() {
                    if let Some(usage) = reader.feed_line(line.text) {
                        report.lines(std::mem::take(&mut gathered));
                        report.usage(usage);
                    }
                    if wanted == LinesWanted::All {
                        gathered.push_str(&redactor.redact(line.text));
                        gathered.push('\n');
                    }
                }
            } else if let Some(line) = last {
                // Plain text: only its last line is kept.
                reader.feed_line(line.text);
            }
            match wanted {
                LinesWanted::Nothing => {}
                LinesWanted::Last => {
                    if let Some(line) = last {
                        gathered.push_str(&redactor.redact(line.text));
                        gathered.push('\n');
                    }
                }
                LinesWanted::All if !reader.reads_every_line() => output.push_text(&mut gathered, &redactor),
                LinesWanted::All => {}
            }
            report.lines(std::mem::take(&mut gathered));
            Control::Continue
        };
        let head_before = match (&self.git, run.purpose) {
            (Some(git), Purpose::Review) => workspace
                .branch
                .as_ref()
                .and_then(|b| git.branch_head(b).ok().flatten()),
            _ => None,
        };
        // The git directory as it was, for the comparison once the agent is gone.
        let guarded_branch = match run.purpose {
            Purpose::Resolve => Some(workflow.into.clone()),
            _ => workspace.branch.clone(),
        };
        let watch = match (&self.guard, guarded_branch) {
            (Some(guard), Some(branch)) => {
                let (guard, dir) = (guard.clone(), workspace.dir.clone());
                let kept = self.run_dir.guard_path(&ws.name, run.attempt, run.purpose.as_str());
                let name = ws.name.clone();
                let reach = spec.sandbox.as_ref().map(|s| s.policy.writable.clone());
                match tokio::task::spawn_blocking(move || guard.before_kept(&dir, &branch, &name, reach, kept)).await {
                    Ok(Ok(watch)) => Some(watch),
                    Ok(Err(message)) => return AgentOutcome::unstarted(AgentEnd::Failed(message)),
                    Err(e) => return AgentOutcome::unstarted(AgentEnd::Failed(format!("the guard stopped: {e}"))),
                }
            }
            _ => None,
        };
        let own_objects = spec.sandbox.as_ref().and_then(|s| s.git_objects.clone());
        if let (Some(git), Some(objects)) = (&self.git, &own_objects) {
            // Listed in the shared store while it runs: the repository stays whole.
            let (git, own) = (git.clone(), objects.own.clone());
            if let Err(message) = blocking(move || git.lend_objects(&own)).await {
                return AgentOutcome::unstarted(AgentEnd::Failed(format!(
                    "cannot list the agent's object folder: {message}"
                )));
            }
        }
        let ran = match &agent.api {
            Some(settings) => {
                let attempt = self.api_attempt(&run, settings, agent, model, &spec, &secrets, budget_usd, prompt);
                match attempt {
                    Ok(attempt) => {
                        let on_usage = |usage| report.usage(usage);
                        let on_line = |line| report.line(line);
                        Ran::Api(crate::run::api_agent::run(attempt, &on_usage, &on_line, stop).await)
                    }
                    Err(message) => Ran::Api(AgentOutcome::unstarted(AgentEnd::Failed(message))),
                }
            }
            None => Ran::Process(run_process(spec, on_output, stop).await),
        };
        // What its git wrote, into the shared store, before anything reads its branch.
        if let (Some(git), Some(objects)) = (&self.git, own_objects) {
            let git = git.clone();
            let _ = blocking(move || git.adopt_objects(&objects.own)).await;
        }
        let tampering = match (&self.guard, watch) {
            (Some(guard), Some(watch)) => {
                let guard = guard.clone();
                let keep_in = self
                    .run_dir
                    .dir
                    .join("undone")
                    .join(format!("{}-{}", ws.name, run.attempt));
                tokio::task::spawn_blocking(move || guard.after(watch, &keep_in))
                    .await
                    .unwrap_or_else(|e| Tampering {
                        found: vec![],
                        left: vec![format!("the comparison of the git directory failed: {e}")],
                    })
            }
            _ => Tampering::default(),
        };
        if let (Some(git), Some(head)) = (&self.git, head_before) {
            // A reviewer changes nothing: whatever it left is taken back out.
            let (git, dir) = (git.clone(), workspace.dir.clone());
            let _ = blocking(move || git.reset_worktree(&dir, head, CONTEXT_PREFIXES)).await;
        }
        let outcome = match ran {
            Ran::Api(mut outcome) => {
                outcome.tampered = tampering.lines();
                return outcome;
            }
            Ran::Process(Ok(o)) => o,
            Ran::Process(Err(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return AgentOutcome::unstarted(AgentEnd::CannotStart(e.to_string()));
            }
            Ran::Process(Err(e)) => return AgentOutcome::unstarted(AgentEnd::Failed(e.to_string())),
        };
        let exit_code = match &outcome.end {
            ProcessEnd::Exited(code) => Some(*code),
            _ => None,
        };
        // Claude Code's result and Gemini's answer come last; a Codex turn can be followed by more.
        let final_result = matches!(
            agent.output,
            flow_dsl::OutputFormat::ClaudeJson
                | flow_dsl::OutputFormat::ClaudeStreamJson
                | flow_dsl::OutputFormat::GeminiJson
        );
        let delivered = final_result && reader.saw_result();
        let mut agent_report = reader.finish(exit_code, &outcome.stderr_tail);
        // The tool's own message may quote what it printed: keep secrets out of state and events.
        if let Some(error) = &mut agent_report.error {
            error.message = redactor.redact(&error.message).into_owned();
        }
        if outcome.end == ProcessEnd::Exited(0)
            && workspace.branch.is_none()
            && ws.test.is_none()
            && run.purpose == Purpose::Work
        {
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
            result: agent_report.result.map(|r| redactor.redact(&r).into_owned()),
            resumed: resumes,
            delivered,
            tampered: tampering.lines(),
        }
    }

    /// One attempt of an API agent: its key (from the workstream's account, else the
    /// agent's `key-env`), endpoint, scope, and the environment a CLI agent would get for its
    /// commands, without the key.
    #[allow(clippy::too_many_arguments)]
    fn api_attempt(
        &self,
        run: &AgentRun,
        settings: &flow_dsl::ApiSettings,
        agent: &flow_dsl::Agent,
        model: Option<&flow_dsl::Model>,
        spec: &crate::agent::process::ProcessSpec,
        secrets: &[String],
        budget_usd: Option<f64>,
        prompt: String,
    ) -> Result<crate::run::api_agent::Attempt, String> {
        let workflow = &self.workflow;
        let ws = &workflow.workstreams[run.workstream];
        let (default_key, base_envs): (_, &[&str]) = match settings.kind {
            flow_dsl::ApiKind::Anthropic => ("ANTHROPIC_API_KEY", &["ANTHROPIC_BASE_URL"]),
            flow_dsl::ApiKind::Openai => ("OPENAI_API_KEY", &["OPENAI_BASE_URL", "OPENAI_API_BASE"]),
        };
        let key_env = agent.key_env.clone().unwrap_or_else(|| default_key.to_string());
        let account = ws.account.as_ref().and_then(|a| workflow.accounts.get(a));
        let key = match account {
            Some(account) => self.parent_env.get(&account.env),
            None => self.parent_env.get(&key_env),
        }
        .filter(|k| !k.is_empty())
        .cloned();
        let mut settings = settings.clone();
        if settings.base_url.is_none() {
            settings.base_url = base_envs
                .iter()
                .find_map(|name| self.parent_env.get(*name).filter(|u| !u.is_empty()))
                .map(|u| u.trim_end_matches('/').to_string());
        }
        let mut secrets = secrets.to_vec();
        secrets.extend(key.clone());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        // The commands the model runs are a CLI agent's process that never sees the key.
        let mut commands = spec.clone();
        commands.env.remove(&key_env);
        if let Some(key) = &key {
            commands.env.retain(|_, value| value != key);
        }
        commands.secrets = secrets.clone();
        commands.timeout = Some(crate::run::api_agent::COMMAND_TIMEOUT);
        commands.idle_timeout = None;
        commands.grace = self.grace;
        let gate = match account {
            Some(account) => format!("account {}", account.name),
            None => format!(
                "{} {}",
                settings.kind.name(),
                settings.base_url.as_deref().unwrap_or("")
            ),
        };
        let scope = match run.purpose {
            Purpose::Work | Purpose::Fix => ws.scope.clone(),
            // A reviewer changes nothing; the resolver resolves whichever files conflict.
            Purpose::Review => {
                flow_dsl::Scope::new(vec![], vec![flow_dsl::ScopeGlob::new("**")]).map_err(|e| e.to_string())?
            }
            Purpose::Resolve => flow_dsl::Scope::everything(),
        };
        let model_id = model.map_or_else(|| settings.kind.default_model().to_string(), |m| m.id.clone());
        Ok(crate::run::api_agent::Attempt {
            settings,
            agent: agent.name.clone(),
            model: model_id,
            prices: model.cloned(),
            key,
            gate,
            prompt,
            worktree: spec.cwd.clone(),
            scope,
            commands,
            secrets,
            budget_usd,
            log_path: self.run_dir.log_path(&ws.name),
            transcript_path: self.run_dir.dir.join("transcripts").join(format!(
                "{}-{}-{}.jsonl",
                ws.name,
                run.attempt,
                run.purpose.as_str()
            )),
            timeout: ws.timeout,
            idle_timeout: ws.idle_timeout,
        })
    }

    /// What the reviewer of workstream `index` is told: its task, its diff, its test.
    fn review_prompt(&self, index: usize, workspace: &Workspace) -> String {
        let ws = &self.workflow.workstreams[index];
        let head = match (&self.git, &workspace.branch) {
            (Some(git), Some(branch)) => git.branch_head(branch).ok().flatten(),
            _ => None,
        };
        let from = self.slot(index).changes_from.or(workspace.start);
        let diff = match (&self.git, from, head) {
            (Some(git), Some(from), Some(head)) => git
                .diff_text(from, head, 100_000)
                .unwrap_or_else(|e| format!("(the diff cannot be read: {e})")),
            _ => "(no diff: the workstream has no branch)".to_string(),
        };
        let test = ws.test.as_ref().map(|t| format!("`{t}` passed on this work."));
        context::review_prompt(&self.workflow, index, &diff, test.as_deref())
    }

    /// What the resolver is told about workstream `index`'s conflict.
    fn resolve_prompt(&self, index: usize, conflicts: &str) -> String {
        let workflow = &self.workflow;
        // The workstreams whose work the integration branch holds: merged, or anything the
        // conflicting files' history names is beyond what the record tells here.
        let merged: Vec<usize> = (0..workflow.workstreams.len()).filter(|&i| i != index).collect();
        let decisions = std::fs::read_to_string(self.decision_log()).unwrap_or_default();
        let handoffs = crate::handoff::decisions_about(&decisions, &workflow.workstreams[index].name);
        let handoffs = if handoffs.is_empty() {
            String::new()
        } else {
            format!("## Decisions already made\n\n{handoffs}\n\n")
        };
        context::resolve_prompt(workflow, index, &merged, conflicts, &handoffs)
    }

    /// The run's decision log: every conflict resolution, by an agent or a person.
    fn decision_log(&self) -> PathBuf {
        self.run_dir.decision_log_path()
    }

    async fn do_inspect(
        &self,
        index: usize,
        markers_in: Vec<String>,
        integration: Option<Oid>,
    ) -> Result<Inspection, String> {
        let (git, dir, branch, start) = self.worktree(index)?;
        // Conflict markers left in a merge being resolved: nothing is committed, the agent
        // is told.
        let markers = crate::git::files_with_markers(&dir, &markers_in);
        if !markers.is_empty() {
            let head = git.branch_head(&branch).map_err(|e| e.to_string())?.unwrap_or(start);
            return Ok(Inspection {
                head,
                base: start,
                changed: vec![],
                integrity: vec![],
                markers,
            });
        }
        let workflow = self.workflow.clone();
        let message = format!(
            "flow: work of {} (uncommitted changes left by the agent)\n\n{}",
            workflow.workstreams[index].name,
            self.trailer(index)
        );
        // A sync whose conflicts the agent resolved: this commit finishes the merge.
        let finishing = !markers_in.is_empty();
        // Every secret flow knows of: those of its own environment (agents get theirs from it)
        // and the workstream's declared ones.
        let mut secrets = secret_variables(&self.parent_env);
        secrets.extend(declared_secrets(
            &workflow.workstreams[index].secrets,
            &BTreeMap::new(),
            &self.parent_env,
        ));
        let copied = self.slot(index).copied;
        let inspection = blocking(move || {
            if finishing {
                git.commit_all_finishing_merge(&dir, &message, &excluded(&workflow, &copied))?;
            } else {
                git.commit_all(&dir, &message, &excluded(&workflow, &copied))?;
            }
            let integrity: Vec<String> = git
                .check_worktree_integrity(&dir, &branch, start)?
                .iter()
                .map(describe_integrity)
                .collect();
            let Some(head) = git.branch_head(&branch)? else {
                return Ok(Inspection {
                    head: start,
                    base: start,
                    changed: vec![],
                    integrity: vec![format!("branch {branch} is gone")],
                    markers: vec![],
                });
            };
            if !integrity.is_empty() {
                return Ok(Inspection {
                    head,
                    base: start,
                    changed: vec![],
                    integrity,
                    markers: vec![],
                });
            }
            // Its own work: what a sync brought in of the last good integration commit is
            // not its (that commit, not the integration branch, which an agent can move).
            let base = match integration {
                Some(good) => git.work_base_at(start, head, good)?,
                None => start,
            };
            let mut changed: Vec<String> = git
                .changed_paths(base, head)?
                .iter()
                .flat_map(|c| c.paths().map(str::to_string))
                .collect();
            changed.sort();
            changed.dedup();
            // Files flow copied from the user's checkout (a `.env`) never merge: an agent
            // that committed one itself fails.
            let list = CopyList { paths: copied };
            let leaked: Vec<&str> = changed.iter().map(String::as_str).filter(|p| list.holds(p)).collect();
            let mut integrity = integrity;
            if !leaked.is_empty() {
                integrity.push(format!(
                    "it committed files flow copied from your checkout, which never merge: {}",
                    leaked.join(", ")
                ));
            }
            // A secret in its commits would merge with them: the work fails, the value unsaid.
            integrity.extend(git.find_secrets(base, head, &secrets)?);
            Ok(Inspection {
                head,
                base,
                changed,
                integrity,
                markers: vec![],
            })
        })
        .await?;
        self.set_slot(index, |slot| slot.changes_from = Some(inspection.base));
        Ok(inspection)
    }

    async fn do_revert(&self, index: usize, paths: Vec<String>) -> Result<Oid, String> {
        let (git, dir, branch, start) = self.worktree(index)?;
        // Restored as they are where its own work starts (after a sync, as the integration
        // commit it brought in has them, not as at the start), as its inspection found it.
        let base = self.slot(index).changes_from.unwrap_or(start);
        let workflow = self.workflow.clone();
        let message = format!(
            "flow: revert changes of {} outside its scope\n\n{}",
            workflow.workstreams[index].name,
            paths.join("\n")
        );
        let copied = self.slot(index).copied;
        blocking(move || {
            git.restore_paths(&dir, base, &paths)?;
            git.commit_all(&dir, &message, &excluded(&workflow, &copied))?;
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
            let identity = self.identity(
                index,
                dir,
                slot.workspace.as_ref().and_then(|w| w.branch.clone()),
                slot.port,
            );
            agent_environment(
                self.parent_env.iter().map(|(k, v)| (k.clone(), v.clone())),
                &[],
                &identity.variables(),
            )
        });
        let tmp = self.run_dir.tmp_path(&ws.name);
        let place = Place {
            dir,
            tmp: &tmp,
            commits: None,
        };
        let sandbox = match self.confiner.test(ws, &place) {
            Ok(sandbox) => sandbox,
            Err(message) => {
                return Some(TestResult::failed(
                    command,
                    format!("cannot confine the test: {message}"),
                ));
            }
        };
        let secrets = declared_secret_values(&ws.secrets, &env, &self.parent_env);
        let check = Check {
            command,
            dir,
            env,
            log_path: self.run_dir.log_path(&ws.name),
            header: None,
            timeout: ws.timeout,
            grace: self.grace,
            sandbox,
            secrets,
            hurry: Some(self.hurry.subscribe()),
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

impl ProcessWork {
    async fn do_sync(&self, index: usize, onto: Oid) -> Result<SyncOutcome, String> {
        let (git, dir, _, _) = self.worktree(index)?;
        let message = format!(
            "flow: bring the integration branch into {}\n\n{}",
            self.workflow.workstreams[index].name,
            self.trailer(index)
        );
        let rebase = self.workflow.integrate.sync == flow_dsl::SyncMode::Rebase;
        let merged = {
            let (git, dir) = (git.clone(), dir.clone());
            blocking(move || {
                if rebase {
                    git.rebase_worktree(&dir, onto, &message)
                } else {
                    git.merge_into_worktree(&dir, onto, &message)
                }
            })
            .await?
        };
        Ok(match merged {
            WorktreeMerge::Clean(head) => SyncOutcome::Clean(head),
            WorktreeMerge::Conflicted(paths) => SyncOutcome::Conflicted(Conflicts {
                hunks: crate::git::conflict_hunks(&dir, &paths, HUNKS_LIMIT),
                paths,
            }),
        })
    }

    async fn do_abort_sync(&self, index: usize) -> Result<(), String> {
        let (git, dir, _, _) = self.worktree(index)?;
        blocking(move || git.abort_merge_in(&dir, CONTEXT_PREFIXES)).await
    }

    async fn do_prepare_resolution(&self, onto: Oid, result: Oid) -> Result<Conflicts, String> {
        let git = self.git.clone().ok_or("no repository")?;
        let dir = self.integration_dir.clone();
        let paths = {
            let dir = dir.clone();
            blocking(move || git.prepare_merge_in(&dir, onto, result)).await?
        };
        Ok(Conflicts {
            hunks: crate::git::conflict_hunks(&dir, &paths, HUNKS_LIMIT),
            paths,
        })
    }

    async fn do_finish_resolution(
        &self,
        index: usize,
        onto: Oid,
        result: Oid,
        files: Vec<String>,
    ) -> Result<Resolution, String> {
        let git = self.git.clone().ok_or("no repository")?;
        let dir = self.integration_dir.clone();
        let into = self.workflow.into.clone();
        // A resume (no files given) finds what a run stopped after its resolver ended left:
        // the resolution still to commit, committed in the integration worktree, or on the
        // integration branch too. Right after the resolver, only the first is flow's doing.
        let resuming = files.is_empty();
        let (files, progress) = {
            let (git, dir, into) = (git.clone(), dir.clone(), into.clone());
            blocking(move || {
                let files = if files.is_empty() {
                    git.trial_merge(onto, result)?
                } else {
                    files
                };
                let progress = git.merge_progress(&dir, &into, onto, result)?;
                Ok((files, progress))
            })
            .await?
        };
        let committed = match progress {
            MergeProgress::InProgress => None,
            MergeProgress::Committed(commit) if resuming => Some(commit),
            // On the branch already (checked before it got there): `verify` decides.
            MergeProgress::Landed(commit) if resuming => return Ok(Resolution::Merged { commit, files }),
            MergeProgress::Absent if resuming => return Ok(Resolution::Gone),
            _ => return Err("the resolver committed its merge or moved the integration branch itself".into()),
        };
        // The worktree holds the resolution, committed or not.
        let left = crate::git::files_with_markers(&dir, &files);
        if !left.is_empty() {
            return Ok(Resolution::Markers(left));
        }
        let workflow = self.workflow.clone();
        let ws = &workflow.workstreams[index];
        let message = format!(
            "Merge {} ({}) into {}, conflicts resolved by the resolver agent\n\nflow run {}",
            workflow.branch_of(ws),
            ws.name,
            workflow.into,
            self.run_dir.id
        );
        let commit = blocking(move || {
            let commit = match committed {
                Some(c) => c,
                None => git.commit_merge_in(&dir, &message)?,
            };
            git.set_branch(
                &into,
                commit,
                Some(onto),
                "flow: merge with conflicts resolved by the resolver",
            )?;
            Ok(commit)
        })
        .await?;
        Ok(Resolution::Merged { commit, files })
    }
}

/// The most bytes of conflict hunks an agent is shown (the files hold the rest).
const HUNKS_LIMIT: usize = 12_000;

impl Work for ProcessWork {
    fn prepare(
        self: Arc<Self>,
        workstream: usize,
        start: Option<Oid>,
        fresh: bool,
        keep_merge: bool,
        handoffs: Vec<Handoff>,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, Result<Workspace, Failure>> {
        async move {
            self.do_prepare(workstream, start, fresh, keep_merge, handoffs, stop)
                .await
        }
        .boxed()
    }

    fn run_agent(
        self: Arc<Self>,
        run: AgentRun,
        report: Reporter,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, AgentOutcome> {
        async move { self.do_run_agent(run, report, stop).await }.boxed()
    }

    fn inspect(
        self: Arc<Self>,
        workstream: usize,
        markers_in: Vec<String>,
        integration: Option<Oid>,
    ) -> BoxFuture<'static, Result<Inspection, String>> {
        async move { self.do_inspect(workstream, markers_in, integration).await }.boxed()
    }

    fn sync(self: Arc<Self>, workstream: usize, onto: Oid) -> BoxFuture<'static, Result<SyncOutcome, String>> {
        async move { self.do_sync(workstream, onto).await }.boxed()
    }

    fn abort_sync(self: Arc<Self>, workstream: usize) -> BoxFuture<'static, Result<(), String>> {
        async move { self.do_abort_sync(workstream).await }.boxed()
    }

    fn prepare_resolution(
        self: Arc<Self>,
        _workstream: usize,
        onto: Oid,
        result: Oid,
    ) -> BoxFuture<'static, Result<Conflicts, String>> {
        async move { self.do_prepare_resolution(onto, result).await }.boxed()
    }

    fn finish_resolution(
        self: Arc<Self>,
        workstream: usize,
        onto: Oid,
        result: Oid,
        files: Vec<String>,
    ) -> BoxFuture<'static, Result<Resolution, String>> {
        async move { self.do_finish_resolution(workstream, onto, result, files).await }.boxed()
    }

    fn log_decision(&self, commit: Oid, entry: &str) {
        let Ok(Some(text)) = crate::decision_log::append_once(&self.decision_log(), commit, entry) else {
            return;
        };
        // Later agents read it in their worktrees, as the seed's `.ai/coordination/` has it.
        let slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for workspace in slots.iter().filter_map(|s| s.workspace.as_ref()) {
            let folder = workspace.dir.join(".ai").join("coordination");
            if context::hide_from_git(&folder).is_ok() {
                let _ = std::fs::write(folder.join(crate::decision_log::FILE_NAME), &text);
            }
        }
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

    fn forecast(
        self: Arc<Self>,
        head: Oid,
        against: Vec<(Option<usize>, Oid)>,
    ) -> BoxFuture<'static, Vec<(Option<usize>, Vec<String>)>> {
        async move {
            let Some(git) = self.git.clone() else { return vec![] };
            // A trial merge that cannot be made is no warning: the merge itself will say.
            blocking(move || {
                Ok::<_, GitError>(
                    against
                        .into_iter()
                        .filter_map(|(other, oid)| match git.trial_merge(oid, head) {
                            Ok(paths) if !paths.is_empty() => Some((other, paths)),
                            _ => None,
                        })
                        .collect(),
                )
            })
            .await
            .unwrap_or_default()
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
        // The scope hook, for a person who commits in a worktree the run leaves. Installed
        // only now, with no agent running: agents never run hooks, and a worktree setting
        // written while one runs would be taken for that agent's (the git-directory guard).
        let slots = self.slot_list();
        for (index, slot) in slots.iter().enumerate() {
            if let Some(Workspace {
                dir, branch: Some(_), ..
            }) = &slot.workspace
                && dir.exists()
            {
                let _ = install_scope_hook(&self.flow_dir, git, &self.workflow, index, dir, &slot.copied);
            }
        }
    }

    fn hurry(&self) {
        self.hurry.send_replace(true);
    }
}

/// How an attempt ran: a process, or an API agent's conversation.
enum Ran {
    Process(std::io::Result<crate::agent::process::ProcessOutcome>),
    Api(AgentOutcome),
}

/// What flow's own commits leave out: the context files and the files copied from the
/// user's checkout.
fn excluded<'a>(workflow: &'a Workflow, copied: &'a [String]) -> Vec<&'a str> {
    let mut prefixes = context::excluded_prefixes(workflow);
    prefixes.extend(copied.iter().map(String::as_str));
    prefixes
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
