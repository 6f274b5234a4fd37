//! One workstream from start to ready: worktree and context, agent attempts with retries,
//! then commit, integrity and scope checks, and its test.
//!
//! A job reports everything through messages; it never touches the run state itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flow_dsl::{Isolation, ScopePolicy, Workflow};
use globset::{Glob, GlobSet, GlobSetBuilder};
use tokio::sync::{mpsc, watch};

use crate::agent::Usage;
use crate::agent::command::{Placeholders, launch};
use crate::agent::environment::redact;
use crate::agent::output::{AgentError, ErrorClass, OutputReader};
use crate::agent::process::{Control, OutputLine, ProcessEnd, ProcessSpec, run_process};
use crate::context::{self, CONTEXT_PREFIXES};
use crate::git::{BranchState, Git, IntegrityProblem, Oid, WorktreeState};
use crate::run::state::{EventKind, Failure, FailureKind, Phase, TestResult};
use crate::run::store::RunDir;

/// A message from a job or a merge to the scheduler.
#[derive(Debug)]
pub enum Msg {
    /// Something to record.
    Event(EventKind),
    /// Something to record before the sender goes on, told through the channel once it is
    /// in the event log: an agent starts only after its attempt is on record, so the record
    /// never lags behind a process that is running.
    EventFirst(EventKind, tokio::sync::oneshot::Sender<bool>),
    /// A line an agent printed (for progress only; the log has them all).
    Line { workstream: usize, line: String },
    /// The job is over; its last event said how.
    JobEnded { workstream: usize },
    /// The merge is over; its last event said how.
    MergeEnded { workstream: usize },
}

/// What every job of a run shares.
pub struct RunContext {
    pub workflow: Arc<Workflow>,
    pub git: Option<Git>,
    pub run_dir: RunDir,
    /// The folder holding this workflow's worktrees.
    pub worktrees_dir: PathBuf,
    pub parent_env: BTreeMap<String, String>,
    pub cancel: watch::Receiver<bool>,
    pub grace: Duration,
    /// The first retry waits this long; each later one twice as long (at most 30 s), with jitter.
    pub retry_base: Duration,
    /// Each workstream's spec hash, written into flow's commits so that work redone for a
    /// changed spec never repeats an earlier commit exactly.
    pub spec_hashes: Vec<String>,
}

impl RunContext {
    /// The worktree folder of a workstream.
    pub fn worktree_of(&self, name: &str) -> PathBuf {
        self.worktrees_dir.join(name)
    }
}

/// Why the scheduler stops a job from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A run, account or workstream budget is exhausted: the workstream fails (kind budget).
    Budget(String),
    /// Another workstream failed under `--abort-on-failure`: the workstream is cancelled.
    Abort(String),
}

/// How a job asks to be stopped from outside (budget exhausted, `--abort-on-failure`).
pub type StopSignal = watch::Receiver<Option<Stop>>;

/// Aborts the task that feeds a process's cancel channel when the process is over.
struct Forwarder(tokio::task::JoinHandle<()>);

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Job {
    ctx: Arc<RunContext>,
    index: usize,
    tx: mpsc::UnboundedSender<Msg>,
    stop: StopSignal,
    /// What the attempts that ended so far used (priced): the workstream's budget covers them all.
    spent: std::sync::Mutex<Usage>,
}

/// How a job begins.
#[derive(Debug, Clone, Copy)]
pub struct JobStart {
    /// The commit its branch starts from (worktree isolation).
    pub start: Option<Oid>,
    /// Its agent already finished in an interrupted run: check its work, do not run it again.
    pub agent_finished: bool,
}

/// Runs one workstream.
pub async fn run_job(
    ctx: Arc<RunContext>,
    index: usize,
    begin: JobStart,
    tx: mpsc::UnboundedSender<Msg>,
    stop: StopSignal,
) {
    let job = Job {
        ctx,
        index,
        tx,
        stop,
        spent: std::sync::Mutex::new(Usage::default()),
    };
    job.run(begin).await;
    let _ = job.tx.send(Msg::JobEnded { workstream: index });
}

enum Attempt {
    Succeeded,
    Failed(Failure),
    /// Stopped by Ctrl-C or by the failure policy, with the reason.
    Cancelled(String),
}

impl Job {
    fn send(&self, kind: EventKind) {
        let _ = self.tx.send(Msg::Event(kind));
    }

    /// Sends an event and waits until it is in the event log; says whether it got there.
    async fn send_first(&self, kind: EventKind) -> bool {
        let (done, recorded) = tokio::sync::oneshot::channel();
        self.tx.send(Msg::EventFirst(kind, done)).is_ok() && recorded.await.unwrap_or(false)
    }

    fn phase(&self, phase: Phase, reason: Option<String>) {
        self.send(EventKind::Phase {
            workstream: self.index,
            phase,
            reason,
        });
    }

    fn fail(&self, kind: FailureKind, message: impl Into<String>) {
        self.send(EventKind::Failed {
            workstream: self.index,
            failure: Failure {
                kind,
                message: message.into(),
            },
        });
    }

    fn cancelled(&self) -> bool {
        *self.ctx.cancel.borrow()
    }

    /// The cancel channel for one process of this job: it turns true on Ctrl-C and when the
    /// scheduler stops the job, so that an agent printing nothing is stopped at once too.
    fn process_cancel(&self) -> (watch::Receiver<bool>, Forwarder) {
        let (tx, rx) = watch::channel(self.cancelled() || self.stop.borrow().is_some());
        let (mut cancel, mut stop) = (self.ctx.cancel.clone(), self.stop.clone());
        let task = tokio::spawn(async move {
            // A sender that is gone can no longer ask for anything: wait on the other one.
            let cancelled = async {
                if cancel.wait_for(|c| *c).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let stopped = async {
                if stop.wait_for(|s| s.is_some()).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = cancelled => {}
                () = stopped => {}
            }
            let _ = tx.send(true);
        });
        (rx, Forwarder(task))
    }

    /// What a process stopped through [`Job::process_cancel`] means for the attempt.
    fn interrupted(&self) -> Attempt {
        if self.cancelled() {
            return Attempt::Cancelled("stopped by Ctrl-C".into());
        }
        match self.stop.borrow().clone() {
            Some(Stop::Budget(message)) => Attempt::Failed(Failure {
                kind: FailureKind::Budget,
                message,
            }),
            Some(Stop::Abort(reason)) => Attempt::Cancelled(reason),
            None => Attempt::Cancelled("stopped by Ctrl-C".into()),
        }
    }

    async fn run(&self, begin: JobStart) {
        let workflow = &self.ctx.workflow;
        let ws = &workflow.workstreams[self.index];
        self.phase(Phase::Preparing, None);
        let prepared = match self.prepare(begin).await {
            Ok(p) => p,
            Err(message) => return self.fail(FailureKind::Git, message),
        };
        let attempts = ws.retries + 1;
        let mut check_only = begin.agent_finished;
        for attempt in 1..=attempts {
            if self.cancelled() {
                return self.phase(Phase::Cancelled, Some("stopped before it started".into()));
            }
            let outcome = if self.stop.borrow().is_some() {
                self.interrupted()
            } else if check_only {
                self.check(&prepared, None).await
            } else {
                self.attempt(attempt, &prepared).await
            };
            check_only = false;
            match outcome {
                Attempt::Succeeded => {
                    let done = if ws.isolation == Isolation::None {
                        Phase::Done
                    } else {
                        Phase::Ready
                    };
                    return self.phase(done, None);
                }
                Attempt::Cancelled(reason) => return self.phase(Phase::Cancelled, Some(reason)),
                Attempt::Failed(failure) => {
                    let retryable = !matches!(
                        failure.kind,
                        FailureKind::Budget | FailureKind::Scope | FailureKind::Integrity | FailureKind::Cancelled
                    );
                    if attempt == attempts || !retryable {
                        return self.send(EventKind::Failed {
                            workstream: self.index,
                            failure,
                        });
                    }
                    let wait = backoff(self.ctx.retry_base, attempt, self.index);
                    self.send(EventKind::Alert {
                        workstream: Some(self.index),
                        message: format!(
                            "{}: attempt {attempt} failed ({}); retrying in {:.1}s",
                            ws.name,
                            failure.message,
                            wait.as_secs_f64()
                        ),
                    });
                    let mut cancel = self.ctx.cancel.clone();
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = cancel.wait_for(|c| *c) => return self.phase(Phase::Cancelled, Some("stopped by Ctrl-C".into())),
                        // The next turn of the loop says what the stop means.
                        _ = stop.wait_for(|s| s.is_some()) => continue,
                    }
                    if let (Some(git), Some(start)) = (&self.ctx.git, prepared.start) {
                        let (git, dir) = (git.clone(), prepared.dir.clone());
                        let reset =
                            tokio::task::spawn_blocking(move || git.reset_worktree(&dir, start, CONTEXT_PREFIXES))
                                .await;
                        if let Err(message) = flatten(reset) {
                            return self.fail(
                                FailureKind::Git,
                                format!("cannot reset the worktree for a retry: {message}"),
                            );
                        }
                    }
                }
            }
        }
    }

    async fn prepare(&self, begin: JobStart) -> Result<Prepared, String> {
        let start = begin.start;
        let fresh = !begin.agent_finished;
        let workflow = self.ctx.workflow.clone();
        let ws = &workflow.workstreams[self.index];
        let (dir, branch, start) = match (&self.ctx.git, ws.isolation) {
            (Some(git), Isolation::Worktree) => {
                let start = start.ok_or("no start commit for a worktree")?;
                let dir = self.ctx.worktree_of(&ws.name);
                let branch = workflow.branch_of(ws);
                let (git, d, b) = (git.clone(), dir.clone(), branch.clone());
                let reason = format!("flow run {}", self.ctx.run_dir.id);
                flatten(
                    tokio::task::spawn_blocking(move || {
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
                    .await,
                )?;
                (dir, Some(branch), Some(start))
            }
            _ => {
                let dir = self.ctx.run_dir.scratch_path(&ws.name);
                std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                (dir, None, None)
            }
        };
        let root = self.ctx.git.as_ref().map_or(dir.clone(), |g| g.root().to_path_buf());
        // Worktrees always get the seed's context files; a scratch folder only when the agent
        // reads its prompt from a file, and the prompt is rendered only when something reads it
        // (thousands of no-op steps should cost neither files nor rendering).
        let agent = workflow.agent_of(ws);
        let needs_prompt = branch.is_some()
            || agent.uses("prompt")
            || agent.uses("prompt_file")
            || agent.stdin == flow_dsl::StdinMode::Prompt;
        let rendered = needs_prompt.then(|| context::render(&workflow, self.index, &root));
        let prompt_file = match &rendered {
            Some(r) if branch.is_some() || agent.uses("prompt_file") => context::write(r, &dir, &ws.name)
                .map_err(|e| format!("cannot write the context into {}: {e}", dir.display()))?,
            _ => dir.join(context::context_dir(&ws.name)).join("prompt.md"),
        };
        self.send(EventKind::Prepared {
            workstream: self.index,
            branch: branch.clone(),
            worktree: dir.display().to_string(),
            start_commit: start.map(|s| s.to_string()),
        });
        Ok(Prepared {
            dir,
            branch,
            start,
            prompt: rendered.map(|r| r.prompt).unwrap_or_default(),
            prompt_file,
        })
    }

    async fn attempt(&self, attempt: u32, prepared: &Prepared) -> Attempt {
        let workflow = self.ctx.workflow.clone();
        let ws = &workflow.workstreams[self.index];
        let recorded = self
            .send_first(EventKind::AttemptStarted {
                workstream: self.index,
                attempt,
            })
            .await;
        if !recorded {
            // Nothing starts that the record would not know of.
            return Attempt::Cancelled("the run's event log cannot be written".into());
        }
        let mut extra = BTreeMap::new();
        extra.insert("FLOW_WORKSTREAM".to_string(), ws.name.clone());
        extra.insert("FLOW_RUN".to_string(), self.ctx.run_dir.id.clone());
        extra.insert("FLOW_ATTEMPT".to_string(), attempt.to_string());
        extra.insert("FLOW_WORKTREE".to_string(), prepared.dir.display().to_string());
        extra.insert("FLOW_INTO".to_string(), workflow.into.clone());
        if let Some(git) = &self.ctx.git {
            extra.insert("FLOW_REPO".to_string(), git.root().display().to_string());
        }
        let values = Placeholders {
            prompt: &prepared.prompt,
            prompt_file: &prepared.prompt_file,
            worktree: &prepared.dir,
        };
        let launched = match launch(&workflow, self.index, &values, &self.ctx.parent_env, &extra) {
            Ok(l) => l,
            Err(message) => {
                return Attempt::Failed(Failure {
                    kind: FailureKind::Agent,
                    message,
                });
            }
        };
        let mut spec = launched.spec;
        spec.log_path = Some(self.ctx.run_dir.log_path(&ws.name));
        spec.grace = self.ctx.grace;
        let test_env = spec.env.clone();
        let secrets = launched.secrets;

        let agent = workflow.agent_of(ws);
        let mut reader = OutputReader::new(agent.output);
        let model = workflow.model_of(ws).cloned();
        let budget = ws.budget;
        let earlier = *self.spent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = self.index;
        let tx = self.tx.clone();
        let on_line = |line: OutputLine<'_>| {
            if let OutputLine::Stdout(text) = line {
                if let Some(usage) = reader.feed_line(text) {
                    let usage = priced(usage, model.as_ref());
                    let _ = tx.send(Msg::Event(EventKind::Usage {
                        workstream: index,
                        usage,
                    }));
                    let mut total = earlier;
                    total.add(&usage);
                    if let Some(reason) = over_budget(&total, budget.usd, budget.tokens) {
                        return Control::Stop(reason);
                    }
                }
                let _ = tx.send(Msg::Line {
                    workstream: index,
                    line: redact(text, &secrets).into_owned(),
                });
            }
            Control::Continue
        };
        let (cancel, _forwarder) = self.process_cancel();
        let outcome = run_process(spec, on_line, cancel).await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.send(EventKind::AttemptEnded {
                    workstream: self.index,
                    attempt,
                    usage: Usage::default(),
                    session_id: None,
                    error: Some(AgentError::new(ErrorClass::Crash, e.to_string())),
                    last_line: None,
                });
                return Attempt::Failed(Failure {
                    kind: FailureKind::Agent,
                    message: e.to_string(),
                });
            }
        };
        let exit_code = match &outcome.end {
            ProcessEnd::Exited(code) => Some(*code),
            _ => None,
        };
        let mut report = reader.finish(exit_code, &outcome.stderr_tail);
        // The tool's own message may quote what it printed: keep secrets out of state and events.
        if let Some(error) = &mut report.error {
            error.message = redact(&error.message, &secrets).into_owned();
        }
        let usage = priced(report.usage, workflow.model_of(ws));
        let spent = {
            let mut spent = self.spent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            spent.add(&usage);
            *spent
        };
        self.send(EventKind::AttemptEnded {
            workstream: self.index,
            attempt,
            usage,
            session_id: report.session_id.clone(),
            error: report.error.clone(),
            last_line: outcome.last_line.clone(),
        });
        let failure = match &outcome.end {
            ProcessEnd::Cancelled => return self.interrupted(),
            ProcessEnd::TimedOut => Some((
                FailureKind::Timeout,
                format!(
                    "timed out after {}",
                    flow_dsl::format_duration(ws.timeout.unwrap_or_default())
                ),
            )),
            ProcessEnd::Hung => Some((
                FailureKind::Hung,
                format!(
                    "printed nothing for {}: treated as hung",
                    flow_dsl::format_duration(ws.idle_timeout.unwrap_or_default())
                ),
            )),
            ProcessEnd::Stopped(reason) => Some((FailureKind::Budget, reason.clone())),
            ProcessEnd::Exited(_) | ProcessEnd::Signaled(_) => match &report.error {
                Some(error) if error.class == ErrorClass::Budget => Some((FailureKind::Budget, error.to_string())),
                Some(error) => Some((FailureKind::Agent, error.to_string())),
                None if !outcome.end.is_success() => Some((FailureKind::Agent, outcome.end.to_string())),
                // Formats read as a whole give their usage only now: the budget still holds.
                None => {
                    over_budget(&spent, ws.budget.usd, ws.budget.tokens).map(|reason| (FailureKind::Budget, reason))
                }
            },
        };
        if let Some((kind, message)) = failure {
            return Attempt::Failed(Failure { kind, message });
        }
        self.check(prepared, Some(test_env)).await
    }

    /// Checks an attempt's work: commit, integrity, scope, then the workstream's test.
    async fn check(&self, prepared: &Prepared, test_env: Option<BTreeMap<String, String>>) -> Attempt {
        let workflow = self.ctx.workflow.clone();
        let ws = &workflow.workstreams[self.index];
        let test_env = test_env.unwrap_or_else(|| {
            let parent = self.ctx.parent_env.iter().map(|(k, v)| (k.clone(), v.clone()));
            crate::agent::environment::agent_environment(parent, &[], &BTreeMap::new())
        });
        // A scratch folder with no test has nothing to check: no events for it.
        if prepared.branch.is_none() && ws.test.is_none() {
            return Attempt::Succeeded;
        }
        self.phase(Phase::Checking, None);
        let (result_commit, files_changed) = match self.check_changes(prepared).await {
            Ok(v) => v,
            Err(failure) => return Attempt::Failed(failure),
        };
        let test = match &ws.test {
            Some(command) => match self.run_test(command, prepared, test_env).await {
                Ok(result) => Some(result),
                Err(()) => return self.interrupted(),
            },
            None => None,
        };
        let passed = test.as_ref().is_none_or(|t| t.passed);
        self.send(EventKind::Checked {
            workstream: self.index,
            result_commit,
            files_changed,
            test: test.clone(),
        });
        if !passed {
            let detail = test.map(|t| t.detail).unwrap_or_default();
            return Attempt::Failed(Failure {
                kind: FailureKind::Test,
                message: format!("test failed: {detail}"),
            });
        }
        Attempt::Succeeded
    }

    /// Commits leftovers, checks the worktree was not rewired, and checks the changed paths
    /// against the scope. Returns the result commit and the changed paths.
    async fn check_changes(&self, prepared: &Prepared) -> Result<(Option<String>, Vec<String>), Failure> {
        let (Some(git), Some(branch), Some(start)) = (&self.ctx.git, &prepared.branch, prepared.start) else {
            return Ok((None, vec![]));
        };
        let workflow = self.ctx.workflow.clone();
        let policy = workflow.scope_policy;
        let (git, dir, branch) = (git.clone(), prepared.dir.clone(), branch.clone());
        let index = self.index;
        let tx = self.tx.clone();
        let trailer = format!(
            "flow run {}, spec {}",
            self.ctx.run_dir.id,
            self.ctx.spec_hashes.get(index).map_or("", String::as_str)
        );
        let result = tokio::task::spawn_blocking(move || -> Result<(Option<String>, Vec<String>), Failure> {
            let ws = &workflow.workstreams[index];
            let git_failure = |e: crate::git::GitError| Failure {
                kind: FailureKind::Git,
                message: e.to_string(),
            };
            let message = format!(
                "flow: work of {} (uncommitted changes left by the agent)\n\n{trailer}",
                ws.name
            );
            git.commit_all(&dir, &message, &context::excluded_prefixes(&workflow))
                .map_err(git_failure)?;
            let problems = git
                .check_worktree_integrity(&dir, &branch, start)
                .map_err(git_failure)?;
            if !problems.is_empty() {
                let text: Vec<String> = problems.iter().map(describe_integrity).collect();
                return Err(Failure {
                    kind: FailureKind::Integrity,
                    message: text.join("; "),
                });
            }
            let head = git.branch_head(&branch).map_err(git_failure)?.ok_or_else(|| Failure {
                kind: FailureKind::Integrity,
                message: format!("branch {branch} is gone"),
            })?;
            let changes = git.changed_paths(start, head).map_err(git_failure)?;
            let mut paths: Vec<String> = changes.iter().flat_map(|c| c.paths().map(str::to_string)).collect();
            paths.sort();
            paths.dedup();
            let violations = scope_violations(&ws.owns, &ws.forbid, &paths);
            if violations.is_empty() {
                return Ok((Some(head.to_string()), paths));
            }
            let list = violations.join(", ");
            match policy {
                ScopePolicy::Fail => Err(Failure {
                    kind: FailureKind::Scope,
                    message: format!("changed files outside its scope: {list}"),
                }),
                ScopePolicy::Warn => {
                    let _ = tx.send(Msg::Event(EventKind::Alert {
                        workstream: Some(index),
                        message: format!("{}: changed files outside its scope: {list}", ws.name),
                    }));
                    Ok((Some(head.to_string()), paths))
                }
                ScopePolicy::Revert => {
                    git.restore_paths(&dir, start, &violations).map_err(git_failure)?;
                    let message = format!(
                        "flow: revert changes of {} outside its scope\n\n{}",
                        ws.name,
                        violations.join("\n")
                    );
                    git.commit_all(&dir, &message, &context::excluded_prefixes(&workflow))
                        .map_err(git_failure)?;
                    let head = git.branch_head(&branch).map_err(git_failure)?.unwrap_or(head);
                    let _ = tx.send(Msg::Event(EventKind::Alert {
                        workstream: Some(index),
                        message: format!("{}: reverted changes outside its scope: {list}", ws.name),
                    }));
                    let kept: Vec<String> = paths.into_iter().filter(|p| !violations.contains(p)).collect();
                    Ok((Some(head.to_string()), kept))
                }
            }
        })
        .await;
        match result {
            Ok(r) => r,
            Err(e) => Err(Failure {
                kind: FailureKind::Git,
                message: format!("the check stopped: {e}"),
            }),
        }
    }

    async fn run_test(
        &self,
        command: &str,
        prepared: &Prepared,
        env: BTreeMap<String, String>,
    ) -> Result<TestResult, ()> {
        let ws = &self.ctx.workflow.workstreams[self.index];
        let mut spec = ProcessSpec::new("sh", vec!["-c".to_string(), command.to_string()], &prepared.dir);
        // The test sees the agent's variables: keep their secrets out of the log too.
        spec.secrets = crate::agent::environment::secret_values(&env);
        spec.env = env;
        spec.log_path = Some(self.ctx.run_dir.log_path(&ws.name));
        spec.grace = self.ctx.grace;
        spec.timeout = ws.timeout;
        let secrets = spec.secrets.clone();
        let mut tail: Vec<String> = vec![];
        let (cancel, _forwarder) = self.process_cancel();
        let outcome = run_process(
            spec,
            |line: OutputLine<'_>| {
                tail.push(redact(line.text(), &secrets).into_owned());
                if tail.len() > 20 {
                    tail.remove(0);
                }
                Control::Continue
            },
            cancel,
        )
        .await;
        match outcome {
            Ok(o) if o.end == ProcessEnd::Cancelled => Err(()),
            Ok(o) => {
                let passed = o.end.is_success();
                let detail = if passed {
                    "passed".to_string()
                } else {
                    format!("`{command}` {}: {}", o.end, tail.last().cloned().unwrap_or_default())
                };
                Ok(TestResult {
                    passed,
                    command: command.to_string(),
                    detail,
                })
            }
            Err(e) => Ok(TestResult {
                passed: false,
                command: command.to_string(),
                detail: format!("cannot run `{command}`: {e}"),
            }),
        }
    }
}

struct Prepared {
    dir: PathBuf,
    branch: Option<String>,
    start: Option<Oid>,
    prompt: String,
    prompt_file: PathBuf,
}

fn flatten<T>(result: Result<Result<T, crate::git::GitError>, tokio::task::JoinError>) -> Result<T, String> {
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the git task stopped: {e}")),
    }
}

/// Tells whether usage passes a limit, and says how.
pub fn over_budget(usage: &Usage, usd: Option<f64>, tokens: Option<u64>) -> Option<String> {
    if let (Some(limit), Some(spent)) = (usd, usage.cost_usd)
        && spent > limit
    {
        return Some(format!("budget exhausted: ${spent:.4} spent of ${limit:.2}"));
    }
    if let Some(limit) = tokens
        && usage.total_tokens() > limit
    {
        return Some(format!(
            "budget exhausted: {} tokens used of {limit}",
            usage.total_tokens()
        ));
    }
    None
}

/// The delay before retry number `attempt` (1-based): exponential with ±20% jitter.
fn backoff(base: Duration, attempt: u32, salt: usize) -> Duration {
    let exponential = base
        .saturating_mul(1 << (attempt - 1).min(10))
        .min(Duration::from_secs(30));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = ((nanos as usize ^ salt.wrapping_mul(2_654_435_761)) % 401) as f64 / 1000.0 - 0.2;
    exponential.mul_f64(1.0 + jitter)
}

/// The changed paths that break the scope: outside every `owns` (when there is one) or inside a `forbid`.
pub fn scope_violations(owns: &[String], forbid: &[String], paths: &[String]) -> Vec<String> {
    let owns_set = glob_set(owns);
    let forbid_set = glob_set(forbid);
    paths
        .iter()
        .filter(|p| {
            let outside = !owns.is_empty() && !owns_set.is_match(p.as_str());
            outside || forbid_set.is_match(p.as_str())
        })
        .cloned()
        .collect()
}

fn glob_set(globs: &[String]) -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        // Validation already rejected globs that do not parse.
        if let Ok(g) = Glob::new(glob).and_then(|_| globset::GlobBuilder::new(glob).literal_separator(true).build()) {
            builder.add(g);
        }
    }
    builder.build().unwrap_or_else(|_| GlobSet::empty())
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

/// The path of a workstream's worktree for a workflow in a repository.
pub fn worktrees_dir(workflow: &Workflow, root: &Path) -> PathBuf {
    let base = match &workflow.worktrees {
        Some(dir) => root.join(dir),
        None => {
            let name = root
                .file_name()
                .map_or("repository".into(), |n| n.to_string_lossy().into_owned());
            root.parent().unwrap_or(root).join(format!("{name}-worktrees"))
        }
    };
    base.join(&workflow.name)
}

/// Fills in the cost from the model's price table when the agent did not report one.
pub fn priced(mut usage: Usage, model: Option<&flow_dsl::Model>) -> Usage {
    if usage.cost_usd.is_none()
        && let Some(m) = model
        && (m.input_usd > 0.0 || m.output_usd > 0.0)
        && usage.total_tokens() > 0
    {
        let per_million = usage.input_tokens as f64 * m.input_usd
            + usage.output_tokens as f64 * m.output_usd
            + usage.cache_read_tokens as f64 * m.cache_read_usd
            + usage.cache_write_tokens as f64 * m.cache_write_usd;
        usage.cost_usd = Some(per_million / 1_000_000.0);
    }
    usage
}
