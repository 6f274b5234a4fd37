//! The core driven in-process: inputs in, effects and events out, no process, no git, no
//! clock. A small simulated world answers the effects the way the driver would, and each test
//! says when agents end and how.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::agent::Usage;
use crate::agent::output::{AgentError, ErrorClass};
use crate::run::state::{FeedbackKind, Purpose, TestResult, Verdict, WorkstreamState};

fn oid(n: u32) -> Oid {
    format!("{n:040x}").parse().expect("40 hex digits")
}

const BASE: u32 = 0xba5e;

/// A workflow of shell agents with `body` appended.
fn workflow(body: &str) -> flow_dsl::Workflow {
    let text = format!(
        r#"
workflow "t" {{
    base "main"
    max-parallel 8
}}
agent "shell" {{
    command "sh" "-c" "{{script}}"
    output "text"
}}
defaults {{
    agent "shell"
}}
{body}
"#
    );
    match flow_dsl::check_text("t.kdl", &text) {
        Ok(checked) => checked.workflow,
        Err(problems) => panic!("{problems:?}"),
    }
}

fn fresh_state(workflow: &flow_dsl::Workflow) -> RunState {
    let t = Timestamp::from_second(1_700_000_000).expect("a time");
    RunState {
        version: 2,
        id: "test".into(),
        workflow: workflow.name.clone(),
        workflow_file: None,
        workflow_hash: String::new(),
        repository: "/repo".into(),
        base: Some("main".into()),
        base_commit: Some(oid(BASE).to_string()),
        into: workflow.into.clone(),
        last_good: Some(oid(BASE).to_string()),
        status: RunStatus::Running,
        started_at: t,
        ended_at: None,
        last_event: 0,
        workstreams: workflow
            .workstreams
            .iter()
            .map(|w| WorkstreamState::new(&w.name, format!("hash-{}", w.name), t))
            .collect(),
        alerts: vec![],
        overruns: vec![],
    }
}

/// What the simulated world does with a test, a merge, a verify.
#[derive(Debug, Clone, Default)]
struct Script {
    /// Workstreams whose test fails (every time).
    failing_tests: BTreeSet<String>,
    /// Paths each workstream's agent changes (default `<name>/file`).
    changes: Vec<(String, Vec<String>)>,
    /// Workstreams whose merge conflicts.
    conflicts: BTreeSet<String>,
    /// Workstreams after whose merge `verify` fails (every time).
    failing_verify: BTreeSet<String>,
    /// Workstreams whose sync with the integration branch conflicts.
    sync_conflicts: BTreeSet<String>,
    /// Workstreams whose merge conflicts only until they were synced.
    conflicts_until_synced: BTreeSet<String>,
    /// Workstreams whose trial merges (the forecast when they become ready) conflict with
    /// everything they are tried against.
    forecast_conflicts: BTreeSet<String>,
}

/// The core, the world around it, and what it has asked for so far.
struct Sim {
    core: Core,
    plan: Arc<Plan>,
    script: Script,
    clock: Timestamp,
    /// Inputs the world has ready, answered in order.
    pending: Vec<Input>,
    /// Agents running: (workstream, attempt).
    agents: Vec<(usize, u32)>,
    /// Tests running.
    tests: Vec<usize>,
    /// Timers set and not fired: (timer, after).
    timers: Vec<(Timer, Duration)>,
    /// Every effect, in order.
    effects: Vec<Effect>,
    /// The most agents that ran at once.
    peak: usize,
    /// Agents stopped by the core.
    stopped: Vec<usize>,
    next_commit: u32,
    merges: Vec<usize>,
    /// Workstreams synced with the integration branch.
    synced: BTreeSet<usize>,
    /// The decision log's entries.
    decisions: Vec<String>,
}

impl Sim {
    fn new(body: &str, options: Options) -> Sim {
        let workflow = workflow(body);
        let state = fresh_state(&workflow);
        Sim::with_state(workflow, state, options)
    }

    fn with_state(workflow: flow_dsl::Workflow, state: RunState, options: Options) -> Sim {
        let plan = Arc::new(Plan::new(workflow));
        let options = Options {
            retry_base: Duration::from_secs(1),
            ..options
        };
        let core = Core::new(plan.clone(), state, options, true, 7);
        Sim {
            core,
            plan,
            script: Script::default(),
            clock: Timestamp::from_second(1_700_000_000).expect("a time"),
            pending: vec![],
            agents: vec![],
            tests: vec![],
            timers: vec![],
            effects: vec![],
            peak: 0,
            stopped: vec![],
            next_commit: 1,
            merges: vec![],
            synced: BTreeSet::new(),
            decisions: vec![],
        }
    }

    fn index(&self, name: &str) -> usize {
        self.plan.workflow.index_of(name).expect("a workstream of the workflow")
    }

    fn name(&self, index: usize) -> &str {
        &self.plan.workflow.workstreams[index].name
    }

    fn phase(&self, name: &str) -> Phase {
        self.core.state().workstreams[self.index(name)].phase
    }

    fn state(&self) -> &RunState {
        self.core.state()
    }

    fn tick(&mut self) -> Timestamp {
        self.clock += jiff::SignedDuration::from_millis(10);
        self.clock
    }

    fn begin(&mut self) {
        let at = self.tick();
        let effects = self.core.begin(at, 1, false, None);
        self.take(effects);
        self.settle();
    }

    /// A person's request about the workstream `name`.
    fn request(&mut self, name: &str, action: crate::run::core::Action) {
        let workstream = self.index(name);
        self.feed(Input::Request { workstream, action });
    }

    fn feed(&mut self, input: Input) {
        let at = self.tick();
        let effects = self.core.step(at, input);
        self.take(effects);
        self.settle();
    }

    /// Answers every quick effect (worktrees, inspections, merges...) until only agents,
    /// tests and timers are left to the test.
    fn settle(&mut self) {
        while !self.pending.is_empty() {
            let input = self.pending.remove(0);
            let at = self.tick();
            let effects = self.core.step(at, input);
            self.take(effects);
        }
    }

    fn take(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            self.effects.push(effect.clone());
            match effect {
                Effect::Record(_) => {}
                Effect::Prepare { workstream, start, .. } => {
                    let name = self.name(workstream).to_string();
                    let workspace = Workspace {
                        dir: PathBuf::from(format!("/worktrees/{name}")),
                        branch: Some(format!("flow/t/{name}")),
                        start,
                    };
                    self.pending.push(Input::Prepared {
                        workstream,
                        result: Ok(workspace),
                    });
                }
                Effect::StartAgent {
                    workstream, attempt, ..
                } => {
                    self.agents.push((workstream, attempt));
                    self.peak = self.peak.max(self.agents.len());
                }
                Effect::Stop { workstream } => {
                    self.stopped.push(workstream);
                    if let Some(k) = self.agents.iter().position(|(w, _)| *w == workstream) {
                        self.agents.remove(k);
                        self.pending.push(Input::AgentEnded {
                            workstream,
                            outcome: outcome(AgentEnd::Stopped),
                        });
                    }
                    if let Some(k) = self.tests.iter().position(|w| *w == workstream) {
                        self.tests.remove(k);
                        self.pending.push(Input::Tested {
                            workstream,
                            result: None,
                        });
                    }
                }
                Effect::Inspect { workstream, .. } => {
                    let name = self.name(workstream).to_string();
                    let changed = self
                        .script
                        .changes
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map_or_else(|| vec![format!("{name}/file")], |(_, c)| c.clone());
                    let head = oid(0x1000 + self.next_commit);
                    self.next_commit += 1;
                    self.pending.push(Input::Inspected {
                        workstream,
                        result: Ok(Inspection {
                            head,
                            base: oid(1),
                            changed,
                            integrity: vec![],
                            markers: vec![],
                        }),
                    });
                }
                Effect::Revert { workstream, .. } => {
                    let head = oid(0x2000 + self.next_commit);
                    self.next_commit += 1;
                    self.pending.push(Input::Reverted {
                        workstream,
                        result: Ok(head),
                    });
                }
                Effect::Test { workstream } => self.tests.push(workstream),
                Effect::Reset { workstream, .. } => self.pending.push(Input::Reset {
                    workstream,
                    result: Ok(()),
                }),
                Effect::Merge { workstream, .. } => {
                    self.merges.push(workstream);
                    let name = self.name(workstream).to_string();
                    let conflicts = self.script.conflicts.contains(&name)
                        || (self.script.conflicts_until_synced.contains(&name) && !self.synced.contains(&workstream));
                    let outcome = if conflicts {
                        MergeOutcome::Conflict(vec![format!("{name}/file")])
                    } else {
                        let commit = oid(0x3000 + self.next_commit);
                        self.next_commit += 1;
                        MergeOutcome::Merged(commit)
                    };
                    self.pending.push(Input::Merged { workstream, outcome });
                }
                Effect::Verify { workstream, .. } => {
                    let name = self.name(workstream).to_string();
                    let passed = !self.script.failing_verify.contains(&name);
                    self.pending.push(Input::Verified {
                        workstream,
                        result: Some(test_result(passed)),
                    });
                }
                Effect::StopVerify | Effect::Hurry => {}
                Effect::RollBack { workstream, .. } => {
                    self.pending.push(Input::RolledBack { workstream, ok: true });
                }
                Effect::Wake { timer, after } => self.timers.push((timer, after)),
                Effect::Sync { workstream, .. } => {
                    let name = self.name(workstream).to_string();
                    let result = if self.script.sync_conflicts.contains(&name) {
                        SyncOutcome::Conflicted(Conflicts {
                            paths: vec![format!("{name}/file")],
                            hunks: "<<<<<<< ours\n=======\n>>>>>>> theirs".into(),
                        })
                    } else {
                        self.synced.insert(workstream);
                        let head = oid(0x4000 + self.next_commit);
                        self.next_commit += 1;
                        SyncOutcome::Clean(head)
                    };
                    self.pending.push(Input::Synced {
                        workstream,
                        result: Ok(result),
                    });
                }
                Effect::Forecast {
                    workstream, against, ..
                } => {
                    let name = self.name(workstream).to_string();
                    let conflicts = if self.script.forecast_conflicts.contains(&name) {
                        against
                            .iter()
                            .map(|(other, _)| (*other, vec![format!("{name}/file")]))
                            .collect()
                    } else {
                        vec![]
                    };
                    self.pending.push(Input::Forecast { workstream, conflicts });
                }
                Effect::AbortSync { workstream } => self.pending.push(Input::SyncAborted {
                    workstream,
                    result: Ok(()),
                }),
                Effect::PrepareResolution { workstream, .. } => {
                    let name = self.name(workstream).to_string();
                    self.pending.push(Input::ResolutionPrepared {
                        workstream,
                        result: Ok(Conflicts {
                            paths: vec![format!("{name}/file")],
                            hunks: "<<<<<<< ours\n=======\n>>>>>>> theirs".into(),
                        }),
                    });
                }
                Effect::FinishResolution { workstream, .. } => {
                    let commit = oid(0x5000 + self.next_commit);
                    self.next_commit += 1;
                    self.pending.push(Input::Resolved {
                        workstream,
                        result: Ok(Resolution::Merged {
                            commit,
                            files: vec![format!("{}/file", self.name(workstream))],
                        }),
                    });
                }
                Effect::LogDecision { entry, .. } => self.decisions.push(entry),
            }
        }
    }

    /// Ends the running agent of `name` with `end`, then answers what follows (its test too,
    /// unless the script fails it).
    fn end_agent(&mut self, name: &str, end: AgentEnd) {
        self.end_agent_with(name, outcome(end));
    }

    fn end_agent_with(&mut self, name: &str, outcome: AgentOutcome) {
        let index = self.index(name);
        let k = self
            .agents
            .iter()
            .position(|(w, _)| *w == index)
            .unwrap_or_else(|| panic!("{name}'s agent is not running: {:?}", self.agents));
        self.agents.remove(k);
        self.feed(Input::AgentEnded {
            workstream: index,
            outcome,
        });
        self.finish_tests();
    }

    /// Ends every running test as the script says.
    fn finish_tests(&mut self) {
        while let Some(workstream) = self.tests.pop() {
            let name = self.name(workstream).to_string();
            let passed = !self.script.failing_tests.contains(&name);
            self.feed(Input::Tested {
                workstream,
                result: Some(test_result(passed)),
            });
        }
    }

    /// Fires the oldest timer.
    fn fire(&mut self) -> Duration {
        let (timer, after) = self.timers.remove(0);
        self.feed(Input::Timer(timer));
        self.finish_tests();
        after
    }

    /// Ends every agent successfully, in start order, until nothing runs and nothing waits.
    fn run_all(&mut self) {
        loop {
            if let Some(&(w, _)) = self.agents.first() {
                let name = self.name(w).to_string();
                self.end_agent(&name, AgentEnd::Exited(0));
            } else if !self.timers.is_empty() {
                self.fire();
            } else {
                break;
            }
        }
    }

    fn finish(&mut self) {
        assert!(self.core.is_over(), "the run is not over: {:?}", self.agents);
        let at = self.tick();
        let effects = self.core.finish(at);
        self.take(effects);
    }

    /// The workstreams whose agents started, in order (first attempts).
    fn started(&self) -> Vec<String> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::StartAgent {
                    workstream, attempt: 1, ..
                } => Some(self.name(*workstream).to_string()),
                _ => None,
            })
            .collect()
    }

    fn events(&self) -> Vec<&EventKind> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Record(event) => Some(&event.kind),
                _ => None,
            })
            .collect()
    }

    fn failure(&self, name: &str) -> Failure {
        self.state().workstreams[self.index(name)]
            .failure
            .clone()
            .unwrap_or_else(|| panic!("{name} has no failure"))
    }

    fn reason(&self, name: &str) -> String {
        self.state().workstreams[self.index(name)]
            .reason
            .clone()
            .unwrap_or_default()
    }
}

fn outcome(end: AgentEnd) -> AgentOutcome {
    AgentOutcome::unstarted(end)
}

fn test_result(passed: bool) -> TestResult {
    TestResult {
        passed,
        command: "check".into(),
        detail: if passed {
            "passed".into()
        } else {
            "`check` exited with code 1: broken".into()
        },
        tail: if passed {
            String::new()
        } else {
            "assertion failed: 2 == 3".into()
        },
    }
}

fn usage_usd(usd: f64) -> Usage {
    Usage {
        input_tokens: 100,
        output_tokens: 10,
        cost_usd: Some(usd),
        ..Usage::default()
    }
}

// ---------------------------------------------------------------------------------------
// Limits and order.

/// Ten independent workstreams.
fn ten() -> String {
    (0..10)
        .map(|i| format!("workstream \"w{i}\" {{ owns \"w{i}/**\"; script \"true\" }}\n"))
        .collect()
}

#[test]
fn the_parallel_limit_is_never_exceeded() {
    for j in [1, 2, 3, 7] {
        let mut sim = Sim::new(
            &ten(),
            Options {
                max_parallel: Some(j),
                ..Options::default()
            },
        );
        sim.begin();
        assert_eq!(sim.agents.len(), j, "-j {j} fills its slots at once");
        sim.run_all();
        assert_eq!(sim.peak, j, "-j {j}");
        sim.finish();
        assert_eq!(sim.state().status, RunStatus::Succeeded);
        assert_eq!(sim.merges.len(), 10);
    }
}

#[test]
fn per_agent_and_per_account_limits_hold_under_a_larger_slot_count() {
    let body = r#"
agent "slow-tool" {
    command "sh" "-c" "{script}"
    output "text"
    max-parallel 1
}
account "team" env="TEAM_KEY" max-parallel=2
workstream "a1" { agent "slow-tool"; owns "a1/**"; script "true" }
workstream "a2" { agent "slow-tool"; owns "a2/**"; script "true" }
workstream "a3" { agent "slow-tool"; owns "a3/**"; script "true" }
workstream "t1" { account "team"; owns "t1/**"; script "true" }
workstream "t2" { account "team"; owns "t2/**"; script "true" }
workstream "t3" { account "team"; owns "t3/**"; script "true" }
workstream "free" { owns "free/**"; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    let check = |sim: &Sim| {
        let names: Vec<&str> = sim.agents.iter().map(|(w, _)| sim.name(*w)).collect();
        let tool = names.iter().filter(|n| n.starts_with('a')).count();
        let team = names.iter().filter(|n| n.starts_with('t')).count();
        assert!(tool <= 1, "the agent's max-parallel: {names:?}");
        assert!(team <= 2, "the account's max-parallel: {names:?}");
        (tool, team)
    };
    assert_eq!(check(&sim), (1, 2), "both limits filled, nothing more");
    assert_eq!(sim.agents.len(), 4, "and the free workstream: {:?}", sim.agents);
    while let Some(&(w, _)) = sim.agents.last() {
        let name = sim.name(w).to_string();
        sim.end_agent(&name, AgentEnd::Exited(0));
        check(&sim);
    }
    sim.finish();
    assert_eq!(sim.state().status, RunStatus::Succeeded);
}

#[test]
fn the_longest_remaining_path_starts_first_then_priority_then_declaration() {
    let body = r#"
workstream "leaf" { owns "leaf/**"; script "true" }
workstream "low" { owns "low/**"; priority "low"; script "true" }
workstream "chain1" { owns "chain1/**"; script "true" }
workstream "chain2" { owns "chain2/**"; depends-on "chain1"; script "true" }
workstream "chain3" { owns "chain3/**"; depends-on "chain2"; script "true" }
workstream "urgent" { owns "urgent/**"; priority "critical"; script "true" }
integrate { order "ready" }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            max_parallel: Some(1),
            ..Options::default()
        },
    );
    sim.begin();
    sim.run_all();
    sim.finish();
    // A slot frees when a workstream is ready, before its merge: `urgent` takes it while
    // `chain1` merges, then `chain2` (ready by then) goes first again.
    assert_eq!(
        sim.started(),
        ["chain1", "urgent", "chain2", "leaf", "chain3", "low"],
        "the longest path first; then by priority, then as declared"
    );
}

#[test]
fn a_workstream_starts_only_after_its_dependencies_merged_from_the_integration_head() {
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; depends-on "a"; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    assert_eq!(sim.started(), ["a"]);
    sim.end_agent("a", AgentEnd::Exited(0));
    assert_eq!(sim.phase("a"), Phase::Merged);
    let merged: Oid = sim.state().workstreams[0]
        .merge_commit
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let prepare_b = sim.effects.iter().find_map(|e| match e {
        Effect::Prepare {
            workstream: 1, start, ..
        } => Some(*start),
        _ => None,
    });
    assert_eq!(prepare_b, Some(Some(merged)), "b starts from a's merge");
    let prepare_a = sim.effects.iter().find_map(|e| match e {
        Effect::Prepare {
            workstream: 0, start, ..
        } => Some(*start),
        _ => None,
    });
    assert_eq!(prepare_a, Some(Some(oid(BASE))), "a root starts from base");
}

#[test]
fn an_attempt_is_recorded_before_its_agent_starts() {
    let mut sim = Sim::new(r#"workstream "a" { owns "a/**"; script "true" }"#, Options::default());
    sim.begin();
    let recorded = sim.effects.iter().position(|e| {
        matches!(
            e,
            Effect::Record(Event {
                kind: EventKind::AttemptStarted { .. },
                ..
            })
        )
    });
    let started = sim.effects.iter().position(|e| matches!(e, Effect::StartAgent { .. }));
    assert!(recorded.unwrap() < started.unwrap(), "{:?}", sim.effects);
}

// ---------------------------------------------------------------------------------------
// Failures and their policies.

fn failing_body() -> &'static str {
    r#"
workstream "bad" { owns "bad/**"; script "exit 3" }
workstream "after-bad" { owns "after-bad/**"; depends-on "bad"; script "true" }
workstream "after-after" { owns "after-after/**"; depends-on "after-bad"; script "true" }
workstream "slow" { owns "slow/**"; script "true" }
workstream "later" { owns "later/**"; script "true" }
"#
}

#[test]
fn a_failure_skips_its_dependents_and_stops_new_starts_but_lets_running_agents_finish() {
    let mut sim = Sim::new(
        failing_body(),
        Options {
            max_parallel: Some(2),
            ..Options::default()
        },
    );
    sim.begin();
    assert_eq!(sim.started(), ["bad", "slow"]);
    sim.end_agent("bad", AgentEnd::Exited(3));
    assert_eq!(sim.phase("bad"), Phase::Failed);
    let failure = sim.failure("bad");
    assert_eq!(failure.kind, FailureKind::Agent);
    assert_eq!(failure.exit, Some(crate::run::state::ExitStatus::Code(3)));
    assert_eq!(failure.message, "exited with code 3");
    assert_eq!(sim.phase("after-bad"), Phase::Skipped);
    assert_eq!(sim.phase("after-after"), Phase::Skipped);
    assert_eq!(sim.reason("after-after"), "dependency `bad` did not succeed");
    assert!(sim.stopped.is_empty(), "slow runs on");
    sim.end_agent("slow", AgentEnd::Exited(0));
    assert_eq!(sim.phase("slow"), Phase::Merged, "running work still merges");
    sim.finish();
    assert_eq!(sim.phase("later"), Phase::Pending);
    assert_eq!(sim.reason("later"), "not started: the run stopped after a failure");
    assert_eq!(sim.state().status, RunStatus::Failed);
}

#[test]
fn keep_going_starts_independent_workstreams_after_a_failure() {
    let mut sim = Sim::new(
        failing_body(),
        Options {
            max_parallel: Some(2),
            keep_going: true,
            ..Options::default()
        },
    );
    sim.begin();
    sim.end_agent("bad", AgentEnd::Exited(3));
    assert_eq!(sim.started(), ["bad", "slow", "later"]);
    sim.run_all();
    sim.finish();
    assert_eq!(sim.phase("later"), Phase::Merged);
    assert_eq!(sim.phase("after-bad"), Phase::Skipped);
    assert_eq!(sim.state().status, RunStatus::Failed);
}

#[test]
fn abort_on_failure_stops_the_running_agents_and_says_why() {
    let mut sim = Sim::new(
        failing_body(),
        Options {
            max_parallel: Some(2),
            abort_on_failure: true,
            ..Options::default()
        },
    );
    sim.begin();
    sim.end_agent("bad", AgentEnd::Exited(3));
    assert_eq!(sim.stopped, [sim.index("slow")]);
    assert_eq!(sim.phase("slow"), Phase::Cancelled);
    assert_eq!(sim.reason("slow"), "stopped: `bad` failed (--abort-on-failure)");
    sim.finish();
    assert_eq!(sim.state().status, RunStatus::Failed);
}

#[test]
fn a_timeout_fails_the_attempt_and_is_retried_after_a_growing_wait() {
    let body = r#"workstream "t" { owns "t/**"; timeout "45m"; retries 2; script "true" }"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    sim.end_agent("t", AgentEnd::TimedOut);
    assert_eq!(sim.timers.len(), 1, "waiting for its retry");
    let first = sim.fire();
    assert!(
        (Duration::from_millis(800)..=Duration::from_millis(1200)).contains(&first),
        "{first:?}"
    );
    assert!(
        sim.effects
            .iter()
            .any(|e| matches!(e, Effect::Reset { workstream: 0, to } if *to == oid(BASE))),
        "the worktree is reset to its start before the retry"
    );
    sim.end_agent("t", AgentEnd::Hung);
    let second = sim.fire();
    assert!(
        (Duration::from_millis(1600)..=Duration::from_millis(2400)).contains(&second),
        "{second:?}"
    );
    sim.end_agent("t", AgentEnd::TimedOut);
    assert!(sim.timers.is_empty(), "three attempts in all");
    assert_eq!(sim.phase("t"), Phase::Failed);
    assert_eq!(sim.failure("t").kind, FailureKind::Timeout);
    assert_eq!(sim.failure("t").message, "timed out after 45m");
    assert_eq!(sim.state().workstreams[0].attempts, 3);
    let alerts: Vec<&String> = sim.state().alerts.iter().collect();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(
        alerts[0].starts_with("t: attempt 1 failed (timed out after 45m); retrying in "),
        "{alerts:?}"
    );
}

#[test]
fn a_failed_test_and_a_scope_breach_go_back_to_the_agent_and_are_not_retried() {
    let body = r#"
workstream "tested" { owns "tested/**"; retries 3; fix-attempts 2; test "check"; script "true" }
workstream "wild" { owns "wild/**"; retries 3; fix-attempts 2; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.failing_tests.insert("tested".into());
    sim.script
        .changes
        .push(("wild".into(), vec!["elsewhere/x".into(), "wild/y".into()]));
    sim.begin();
    sim.end_agent("tested", AgentEnd::Exited(0));
    assert!(sim.timers.is_empty(), "a failed test is no crash: no retry wait");
    assert_eq!(sim.phase("tested"), Phase::Fixing);
    let fix = sim.effects.iter().rev().find_map(|e| match e {
        Effect::StartAgent {
            workstream: 0,
            purpose: Purpose::Fix,
            feedback: Some(f),
            ..
        } => Some(f.clone()),
        _ => None,
    });
    let fix = fix.expect("a fix attempt with the feedback");
    assert_eq!(fix.kind, FeedbackKind::Test);
    assert!(
        fix.detail.contains("assertion failed: 2 == 3"),
        "the test's output reaches the agent: {}",
        fix.detail
    );
    assert!(
        !sim.effects.iter().any(|e| matches!(e, Effect::Reset { .. })),
        "the worktree is kept"
    );
    sim.end_agent("tested", AgentEnd::Exited(0));
    sim.end_agent("tested", AgentEnd::Exited(0));
    assert_eq!(sim.phase("tested"), Phase::Failed, "two fixes, then the failure stands");
    assert_eq!(sim.failure("tested").kind, FailureKind::Test);
    assert_eq!(sim.state().workstreams[0].fixes, 2);
    assert_eq!(sim.state().workstreams[0].attempts, 3);
    let purposes: Vec<Purpose> = sim.state().workstreams[0]
        .attempt_log
        .iter()
        .map(|a| a.purpose)
        .collect();
    assert_eq!(purposes, [Purpose::Work, Purpose::Fix, Purpose::Fix]);

    sim.end_agent("wild", AgentEnd::Exited(0));
    let scope_fix = sim.effects.iter().rev().find_map(|e| match e {
        Effect::StartAgent {
            workstream: 1,
            feedback: Some(f),
            ..
        } => Some(f.clone()),
        _ => None,
    });
    let scope_fix = scope_fix.expect("the scope breach goes back to the agent");
    assert_eq!(scope_fix.kind, FeedbackKind::Scope);
    assert!(
        scope_fix.detail.contains("elsewhere/x") && scope_fix.detail.contains("outside `owns`"),
        "{}",
        scope_fix.detail
    );
    // The agent puts the file back: in scope now.
    sim.script.changes = vec![("wild".into(), vec!["wild/y".into()])];
    sim.end_agent("wild", AgentEnd::Exited(0));
    assert_eq!(sim.phase("wild"), Phase::Merged);
}

#[test]
fn a_test_that_fails_once_is_fixed_and_merges() {
    let body = r#"workstream "w" { owns "w/**"; test "check"; script "true" }"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.failing_tests.insert("w".into());
    sim.begin();
    sim.end_agent("w", AgentEnd::Exited(0));
    sim.script.failing_tests.clear();
    sim.end_agent("w", AgentEnd::Exited(0));
    assert_eq!(sim.phase("w"), Phase::Merged);
    assert_eq!(sim.state().workstreams[0].fixes, 1);
    assert!(
        sim.state()
            .alerts
            .iter()
            .any(|a| a.contains("sent back to its agent (fix 1 of 2)")),
        "{:?}",
        sim.state().alerts
    );
}

#[test]
fn a_crash_during_a_fix_is_retried_without_spending_a_fix() {
    let body = r#"workstream "w" { owns "w/**"; retries 1; test "check"; script "true" }"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.failing_tests.insert("w".into());
    sim.begin();
    sim.end_agent("w", AgentEnd::Exited(0));
    sim.end_agent("w", AgentEnd::Exited(2));
    assert_eq!(sim.timers.len(), 1, "the crashed fix waits for its retry");
    sim.script.failing_tests.clear();
    sim.fire();
    let retried = sim.effects.iter().rev().find_map(|e| match e {
        Effect::StartAgent {
            purpose: Purpose::Fix,
            feedback,
            attempt,
            ..
        } => Some((*attempt, feedback.clone())),
        _ => None,
    });
    let (attempt, feedback) = retried.expect("the fix runs again");
    assert_eq!(attempt, 3);
    assert!(feedback.is_some(), "with the same feedback");
    assert!(
        !sim.effects.iter().any(|e| matches!(e, Effect::Reset { .. })),
        "a retried fix keeps the worktree"
    );
    sim.end_agent("w", AgentEnd::Exited(0));
    assert_eq!(sim.phase("w"), Phase::Merged);
    assert_eq!(sim.state().workstreams[0].fixes, 1, "the retry was not a new fix");
}

#[test]
fn a_reviewer_that_requests_changes_sends_them_back_and_its_approval_merges() {
    let body = r#"
agent "rev" {
    command "sh" "-c" "{script}"
    output "text"
}
workstream "w" { owns "w/**"; review "rev"; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    sim.end_agent("w", AgentEnd::Exited(0));
    assert_eq!(sim.phase("w"), Phase::Reviewing);
    let mut answer = outcome(AgentEnd::Exited(0));
    answer.result = Some(r#"{"verdict": "changes-requested", "comments": "name the constant"}"#.into());
    sim.end_agent_with("w", answer);
    assert_eq!(sim.phase("w"), Phase::Fixing);
    let review = sim.state().workstreams[0].review.clone().expect("recorded");
    assert_eq!(review.verdict, Verdict::ChangesRequested);
    assert_eq!(review.reviewer, "rev");
    let fix = sim.effects.iter().rev().find_map(|e| match e {
        Effect::StartAgent {
            purpose: Purpose::Fix,
            feedback: Some(f),
            ..
        } => Some(f.clone()),
        _ => None,
    });
    assert!(fix.expect("a fix").detail.contains("name the constant"));
    sim.end_agent("w", AgentEnd::Exited(0));
    assert_eq!(sim.phase("w"), Phase::Reviewing, "the fixed work is reviewed again");
    let mut answer = outcome(AgentEnd::Exited(0));
    answer.result = Some("Good now.\n{\"verdict\": \"approve\", \"comments\": \"ok\"}".into());
    sim.end_agent_with("w", answer);
    assert_eq!(sim.phase("w"), Phase::Merged);
    assert_eq!(
        sim.state().workstreams[0].review.as_ref().map(|r| r.verdict),
        Some(Verdict::Approve)
    );
    let purposes: Vec<Purpose> = sim.state().workstreams[0]
        .attempt_log
        .iter()
        .map(|a| a.purpose)
        .collect();
    assert_eq!(
        purposes,
        [Purpose::Work, Purpose::Review, Purpose::Fix, Purpose::Review]
    );
}

#[test]
fn an_unreadable_review_counts_as_changes_requested() {
    let body = r#"
agent "rev" {
    command "sh" "-c" "{script}"
    output "text"
}
workstream "w" { owns "w/**"; review "rev"; fix-attempts 0; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    sim.end_agent("w", AgentEnd::Exited(0));
    let mut answer = outcome(AgentEnd::Exited(0));
    answer.result = Some("LGTM".into());
    sim.end_agent_with("w", answer);
    assert_eq!(sim.phase("w"), Phase::Failed);
    assert_eq!(sim.failure("w").kind, FailureKind::Review);
    assert!(
        sim.failure("w").message.contains("could not be read"),
        "{}",
        sim.failure("w").message
    );
}

#[test]
fn a_conflicting_merge_brings_the_integration_branch_in_and_merges_then() {
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; test "check"; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.conflicts_until_synced.insert("b".into());
    sim.begin();
    sim.run_all();
    sim.finish_tests();
    assert_eq!(sim.phase("a"), Phase::Merged);
    assert_eq!(sim.phase("b"), Phase::Merged, "{:?}", sim.events());
    assert!(sim.synced.contains(&1));
    assert!(
        sim.events()
            .iter()
            .any(|e| matches!(e, EventKind::Synced { workstream: 1, conflicts, .. } if conflicts.is_empty()))
    );
    assert_eq!(sim.state().workstreams[1].fixes, 0, "a clean sync needs no fix");
}

#[test]
fn a_sync_that_conflicts_goes_to_the_agent_with_the_hunks() {
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.conflicts_until_synced.insert("b".into());
    sim.script.sync_conflicts.insert("b".into());
    sim.begin();
    sim.end_agent("a", AgentEnd::Exited(0));
    sim.end_agent("b", AgentEnd::Exited(0));
    assert_eq!(sim.phase("b"), Phase::Fixing);
    let fix = sim.effects.iter().rev().find_map(|e| match e {
        Effect::StartAgent {
            workstream: 1,
            feedback: Some(f),
            ..
        } => Some(f.clone()),
        _ => None,
    });
    let fix = fix.expect("a fix with the conflict");
    assert_eq!(fix.kind, FeedbackKind::Conflict);
    assert!(fix.detail.contains("<<<<<<<"), "{}", fix.detail);
    // The agent resolves it: its check asks for markers in the conflicting files.
    sim.synced.insert(1);
    sim.end_agent("b", AgentEnd::Exited(0));
    assert!(sim.effects.iter().any(
        |e| matches!(e, Effect::Inspect { workstream: 1, markers_in, .. } if markers_in == &["b/file".to_string()])
    ));
    assert_eq!(sim.phase("b"), Phase::Merged);
    assert_eq!(sim.decisions.len(), 1, "the resolution is logged");
    assert!(
        sim.decisions[0].contains("workstream's own agent"),
        "{}",
        sim.decisions[0]
    );
}

#[test]
fn attempts_are_numbered_on_when_a_job_opens_again_and_after_a_resume() {
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.conflicts_until_synced.insert("b".into());
    sim.script.sync_conflicts.insert("b".into());
    sim.begin();
    sim.end_agent("a", AgentEnd::Exited(0));
    sim.end_agent("b", AgentEnd::Exited(0));
    // b's merge conflicted: its job opened again for a fix, numbered after its work.
    assert_eq!(sim.agents, [(1, 2)]);
    sim.synced.insert(1);
    sim.end_agent("b", AgentEnd::Exited(0));
    assert_eq!(sim.phase("b"), Phase::Merged);
    let numbers: Vec<(u32, Purpose)> = sim.state().workstreams[1]
        .attempt_log
        .iter()
        .map(|a| (a.number, a.purpose))
        .collect();
    assert_eq!(numbers, [(1, Purpose::Work), (2, Purpose::Fix)]);

    // A resume numbers on from the attempts on record (one was cut: it never ended).
    let workflow = workflow(body);
    let mut state = fresh_state(&workflow);
    state.workstreams[0].attempts = 3;
    let mut sim = Sim::with_state(workflow, state, Options::default());
    sim.begin();
    assert_eq!(sim.agents, [(0, 4), (1, 1)]);
}

#[test]
fn a_conflict_left_goes_to_the_resolver_and_its_resolution_is_verified_and_logged() {
    let body = r#"
agent "resolver" {
    command "sh" "-c" "{script}"
    output "text"
}
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; script "true" }
integrate {
    on-conflict "agent"
    resolver "resolver"
    sync "off"
    verify "check"
}
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.conflicts.insert("b".into());
    sim.begin();
    sim.end_agent("a", AgentEnd::Exited(0));
    sim.end_agent("b", AgentEnd::Exited(0));
    assert_eq!(sim.phase("b"), Phase::Resolving);
    let resolver = sim.effects.iter().rev().find_map(|e| match e {
        Effect::StartAgent {
            workstream: 1,
            purpose: Purpose::Resolve,
            feedback: Some(f),
            ..
        } => Some(f.clone()),
        _ => None,
    });
    assert!(resolver.expect("the resolver runs").detail.contains("<<<<<<<"));
    let mut done = outcome(AgentEnd::Exited(0));
    done.result = Some("kept both greetings".into());
    let index = sim.index("b");
    sim.feed(Input::AgentEnded {
        workstream: index,
        outcome: done,
    });
    assert_eq!(sim.phase("b"), Phase::Merged);
    assert!(
        sim.effects
            .iter()
            .any(|e| matches!(e, Effect::Verify { workstream: 1, .. })),
        "verified before it lands"
    );
    assert_eq!(sim.decisions.len(), 1);
    assert!(
        sim.decisions[0].contains("resolver agent `resolver`") && sim.decisions[0].contains("kept both greetings"),
        "{}",
        sim.decisions[0]
    );
}

#[test]
fn a_failed_verify_brings_the_integration_branch_in_and_the_agent_fixes_it() {
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "v" { owns "v/**"; script "true" }
integrate { verify "check" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.failing_verify.insert("v".into());
    sim.begin();
    sim.end_agent("a", AgentEnd::Exited(0));
    sim.end_agent("v", AgentEnd::Exited(0));
    assert_eq!(sim.phase("v"), Phase::Fixing);
    assert!(sim.synced.contains(&1), "the integration branch is brought in first");
    let fix = sim.effects.iter().rev().find_map(|e| match e {
        Effect::StartAgent {
            workstream: 1,
            feedback: Some(f),
            ..
        } => Some(f.clone()),
        _ => None,
    });
    assert_eq!(fix.expect("a fix").kind, FeedbackKind::Verify);
    sim.script.failing_verify.clear();
    sim.end_agent("v", AgentEnd::Exited(0));
    assert_eq!(sim.phase("v"), Phase::Merged);
}

#[test]
fn a_resumed_claude_session_costs_what_its_running_total_grew_by() {
    let body = r#"
agent "claude" {
    command "claude" "-p" "{prompt}"
    resume "claude" "-p" "{prompt}" "--resume" "{session}"
    output "claude-json"
}
workstream "w" { agent "claude"; owns "w/**"; test "check"; task "Do it." }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.failing_tests.insert("w".into());
    sim.begin();
    let mut first = outcome(AgentEnd::Exited(0));
    first.usage = usage_usd(0.30);
    first.session_id = Some("s-1".into());
    sim.end_agent_with("w", first);
    let session = sim.effects.iter().rev().find_map(|e| match e {
        Effect::StartAgent {
            purpose: Purpose::Fix,
            session,
            ..
        } => Some(session.clone()),
        _ => None,
    });
    assert_eq!(session, Some(Some("s-1".to_string())), "the fix continues the session");
    sim.script.failing_tests.clear();
    let mut second = outcome(AgentEnd::Exited(0));
    second.usage = usage_usd(0.45);
    second.resumed = true;
    sim.end_agent_with("w", second);
    let log = &sim.state().workstreams[0].attempt_log;
    assert!(
        (log[1].usage.cost_usd.unwrap() - 0.15).abs() < 1e-9,
        "{:?}",
        log[1].usage
    );
    assert!((sim.state().workstreams[0].usage.cost_usd.unwrap() - 0.45).abs() < 1e-9);
}

#[test]
fn scope_policy_warn_merges_and_revert_takes_the_paths_out() {
    for (policy, kept) in [("warn", vec!["docs/x", "ws/y"]), ("revert", vec!["ws/y"])] {
        let body = format!(
            r#"
workflow "t" {{ scope-policy "{policy}" }}
workstream "ws" {{ owns "ws/**"; script "true" }}
"#
        );
        let text = body.replace("workflow \"t\" {", "workflow \"t\" { base \"main\";");
        let workflow = flow_dsl::check_text(
            "t.kdl",
            &format!(
                "{text}\nagent \"shell\" {{\n command \"sh\" \"-c\" \"{{script}}\"\n output \"text\"\n}}\ndefaults {{ agent \"shell\" }}"
            ),
        )
        .expect("valid")
        .workflow;
        let state = fresh_state(&workflow);
        let mut sim = Sim::with_state(workflow, state, Options::default());
        sim.script
            .changes
            .push(("ws".into(), vec!["docs/x".into(), "ws/y".into()]));
        sim.begin();
        sim.end_agent("ws", AgentEnd::Exited(0));
        assert_eq!(sim.phase("ws"), Phase::Merged, "{policy}");
        assert_eq!(sim.state().workstreams[0].files_changed, kept, "{policy}");
        let reverts = sim
            .effects
            .iter()
            .filter(|e| matches!(e, Effect::Revert { .. }))
            .count();
        assert_eq!(reverts, usize::from(policy == "revert"), "{policy}");
        assert_eq!(sim.state().alerts.len(), 1, "{policy}: {:?}", sim.state().alerts);
    }
}

#[test]
fn ctrl_c_stops_every_agent_cancels_retries_and_starts_nothing() {
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; retries 1; script "true" }
workstream "c" { owns "c/**"; script "true" }
workstream "d" { owns "d/**"; depends-on "a"; script "true" }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            max_parallel: Some(2),
            ..Options::default()
        },
    );
    sim.begin();
    sim.end_agent("b", AgentEnd::Exited(1));
    assert_eq!(sim.timers.len(), 1, "b waits for its retry");
    sim.feed(Input::Interrupt);
    assert_eq!(sim.stopped, [sim.index("a")], "a runs; b waits, holding its slot");
    assert_eq!(sim.phase("a"), Phase::Cancelled);
    assert_eq!(sim.reason("a"), "stopped by Ctrl-C");
    assert_eq!(sim.phase("b"), Phase::Cancelled, "its retry will not come");
    sim.fire();
    assert!(sim.agents.is_empty());
    sim.finish();
    assert_eq!(sim.state().status, RunStatus::Cancelled);
    assert_eq!(sim.phase("d"), Phase::Skipped);
    assert_eq!(sim.phase("c"), Phase::Pending);
    assert_eq!(sim.reason("c"), "not started: the run was interrupted");
    assert!(
        sim.state()
            .alerts
            .iter()
            .any(|a| a.starts_with("interrupted: stopping every agent"))
    );
}

#[test]
fn a_second_ctrl_c_hurries_what_is_being_stopped() {
    let body = r#"workstream "a" { owns "a/**"; script "true" }"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    sim.feed(Input::Interrupt);
    assert!(!sim.effects.contains(&Effect::Hurry), "the first one gives the grace");
    sim.feed(Input::Interrupt);
    assert!(sim.effects.contains(&Effect::Hurry));
    assert!(
        sim.state()
            .alerts
            .iter()
            .any(|a| a == "interrupted again: killing every process now")
    );
}

#[test]
fn ctrl_c_during_verify_rolls_the_merge_back_for_the_resume() {
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
integrate { verify "check" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    // The merge is answered, and its verify started; stop before verify answers.
    let index = sim.index("a");
    sim.agents.clear();
    let at = sim.tick();
    let effects = sim.core.step(
        at,
        Input::AgentEnded {
            workstream: index,
            outcome: outcome(AgentEnd::Exited(0)),
        },
    );
    sim.take(effects);
    while let Some(input) = sim.pending.first().cloned() {
        if matches!(input, Input::Verified { .. }) {
            break;
        }
        sim.pending.remove(0);
        let at = sim.tick();
        let effects = sim.core.step(at, input);
        sim.take(effects);
    }
    sim.pending.clear();
    sim.feed(Input::Interrupt);
    assert!(sim.effects.contains(&Effect::StopVerify));
    sim.feed(Input::Verified {
        workstream: index,
        result: None,
    });
    assert!(
        sim.effects
            .iter()
            .any(|e| matches!(e, Effect::RollBack { why, .. } if why.contains("interrupted")))
    );
    assert_eq!(sim.phase("a"), Phase::Ready);
    assert_eq!(sim.reason("a"), "merge interrupted; redone on resume");
    sim.finish();
    assert_eq!(sim.state().last_good.as_deref(), Some(oid(BASE).to_string().as_str()));
}

#[test]
fn a_conflict_stops_merging_unless_on_conflict_skip() {
    for on_conflict in ["stop", "skip"] {
        let body = format!(
            r#"
workstream "x" {{ owns "x/**"; script "true" }}
workstream "y" {{ owns "y/**"; script "true" }}
workstream "z" {{ owns "z/**"; script "true" }}
integrate {{ on-conflict "{on_conflict}" }}
"#
        );
        let mut sim = Sim::new(
            &body,
            Options {
                keep_going: true,
                ..Options::default()
            },
        );
        sim.script.conflicts.insert("y".into());
        sim.begin();
        sim.run_all();
        sim.finish();
        assert_eq!(sim.phase("x"), Phase::Merged);
        assert_eq!(sim.phase("y"), Phase::Conflicted);
        if on_conflict == "stop" {
            assert_eq!(sim.phase("z"), Phase::Ready, "stop: z is not merged");
            assert_eq!(
                sim.reason("z"),
                "not merged: merging stopped at a conflict (on-conflict \"stop\")"
            );
        } else {
            assert_eq!(sim.phase("z"), Phase::Merged, "skip: z merges");
        }
    }
}

#[test]
fn a_failed_verify_rolls_back_and_the_next_merge_builds_on_the_last_good_commit() {
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "v" { owns "v/**"; script "true" }
workstream "z" { owns "z/**"; script "true" }
integrate { verify "check" }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            keep_going: true,
            ..Options::default()
        },
    );
    sim.script.failing_verify.insert("v".into());
    sim.begin();
    sim.run_all();
    sim.finish();
    assert_eq!(sim.phase("v"), Phase::Failed);
    assert_eq!(sim.failure("v").kind, FailureKind::Verify);
    assert!(
        sim.failure("v")
            .message
            .ends_with("the integration branch was moved back to its last good commit")
    );
    let a_merge: Oid = sim.state().workstreams[0]
        .merge_commit
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let z_expected = sim.effects.iter().find_map(|e| match e {
        Effect::Merge {
            workstream: 2,
            expected,
            ..
        } => Some(*expected),
        _ => None,
    });
    assert_eq!(z_expected, Some(a_merge));
}

// ---------------------------------------------------------------------------------------
// Budgets.

#[test]
fn a_workstream_budget_stops_its_agent_when_streamed_usage_passes_it() {
    let body = r#"workstream "spender" { owns "s/**"; budget usd=1; script "true" }"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    let i = sim.index("spender");
    sim.feed(Input::Usage {
        workstream: i,
        usage: usage_usd(0.5),
    });
    assert!(sim.stopped.is_empty());
    assert!(sim.state().alerts.is_empty(), "50% is no alert");
    sim.feed(Input::Usage {
        workstream: i,
        usage: usage_usd(0.85),
    });
    assert_eq!(
        sim.state().alerts,
        ["workstream `spender` has used 80% of its $1.00 budget ($0.85)"]
    );
    sim.feed(Input::Usage {
        workstream: i,
        usage: usage_usd(0.9),
    });
    assert_eq!(sim.state().alerts.len(), 1, "one alert per budget");
    sim.feed(Input::Usage {
        workstream: i,
        usage: usage_usd(1.2),
    });
    assert_eq!(sim.stopped, [i]);
    assert_eq!(sim.phase("spender"), Phase::Failed);
    let failure = sim.failure("spender");
    assert_eq!(failure.kind, FailureKind::Budget);
    assert_eq!(
        failure.message,
        "workstream `spender`: budget exhausted: $1.2000 spent of $1.00"
    );
    let breach = failure.budget.expect("the breach is kept as data");
    assert_eq!(
        breach.scope,
        crate::run::state::BudgetScope::Workstream("spender".into())
    );
    assert!(!breach.at_start);
    sim.finish();
}

#[test]
fn a_spent_run_budget_refuses_new_starts_and_stops_its_running_members() {
    let body = r#"
workflow "t" { budget usd=1 }
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; script "true" }
workstream "c" { owns "c/**"; script "true" }
"#
    .replace("workflow \"t\" { budget usd=1 }", "");
    let mut workflow = workflow(&body);
    workflow.budget.usd = Some(1.0);
    let state = fresh_state(&workflow);
    let mut sim = Sim::with_state(
        workflow,
        state,
        Options {
            max_parallel: Some(2),
            keep_going: true,
            ..Options::default()
        },
    );
    sim.begin();
    assert_eq!(sim.started(), ["a", "b"]);
    let mut spent = outcome(AgentEnd::Exited(0));
    spent.usage = usage_usd(0.6);
    sim.end_agent_with("a", spent.clone());
    assert_eq!(sim.phase("a"), Phase::Merged);
    assert_eq!(sim.started(), ["a", "b", "c"], "under budget: c starts");
    sim.feed(Input::Usage {
        workstream: sim.index("b"),
        usage: usage_usd(0.5),
    });
    let (b, c) = (sim.index("b"), sim.index("c"));
    assert_eq!(sim.stopped, [b, c], "both running members of the run's budget");
    for name in ["b", "c"] {
        assert_eq!(sim.phase(name), Phase::Failed, "{name}");
        assert_eq!(
            sim.failure(name).message,
            "run: budget exhausted: $1.1000 spent of $1.00"
        );
    }
    sim.finish();
    assert_eq!(sim.state().status, RunStatus::Failed);
}

#[test]
fn a_budget_already_spent_refuses_the_start_and_says_whose() {
    let body = r#"
account "team" env="TEAM_KEY" budget-usd=1
workstream "first" { account "team"; owns "first/**"; script "true" }
workstream "second" { account "team"; owns "second/**"; depends-on "first"; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    let mut spent = outcome(AgentEnd::Exited(0));
    spent.usage = usage_usd(1.0);
    sim.end_agent_with("first", spent);
    assert_eq!(sim.phase("first"), Phase::Merged, "exactly at the limit is not past it");
    assert_eq!(sim.phase("second"), Phase::Failed);
    let failure = sim.failure("second");
    assert_eq!(
        failure.message,
        "not started: account `team`'s budget is spent: $1.0000 of $1.00"
    );
    assert!(failure.budget.expect("data").at_start);
    assert_eq!(sim.started(), ["first"]);
}

#[test]
fn usage_reported_only_at_the_end_is_weighed_too_and_counts_every_attempt() {
    let body = r#"workstream "twice" { owns "t/**"; retries 1; budget usd=1; script "true" }"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    let mut failed = outcome(AgentEnd::Exited(1));
    failed.usage = usage_usd(0.6);
    sim.end_agent_with("twice", failed);
    sim.fire();
    let mut succeeded = outcome(AgentEnd::Exited(0));
    succeeded.usage = usage_usd(0.6);
    sim.end_agent_with("twice", succeeded);
    assert_eq!(sim.phase("twice"), Phase::Failed);
    assert_eq!(sim.failure("twice").kind, FailureKind::Budget);
    let spent = sim.state().workstreams[0].usage.cost_usd.unwrap();
    assert!((spent - 1.2).abs() < 1e-9, "{spent}");
    let second_start = sim.effects.iter().find_map(|e| match e {
        Effect::StartAgent {
            attempt: 2, budget_usd, ..
        } => Some(*budget_usd),
        _ => None,
    });
    let left = second_start.flatten().expect("a cap for the second attempt");
    assert!((left - 0.4).abs() < 1e-9, "what the budget has left: {left}");
}

#[test]
fn prices_come_from_the_model_when_the_agent_reports_only_tokens() {
    let body = r#"
model "m" provider="test" id="m-1" input-usd=1000000 output-usd=0
workstream "w" { model "m"; owns "w/**"; budget usd=50; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    sim.feed(Input::Usage {
        workstream: 0,
        usage: Usage {
            input_tokens: 60,
            ..Usage::default()
        },
    });
    assert_eq!(sim.phase("w"), Phase::Failed);
    assert_eq!(
        sim.failure("w").message,
        "workstream `w`: budget exhausted: $60.0000 spent of $50.00"
    );
}

#[test]
fn an_agent_that_reports_its_own_budget_error_fails_for_budget() {
    let mut sim = Sim::new(
        r#"workstream "w" { owns "w/**"; retries 2; script "true" }"#,
        Options::default(),
    );
    sim.begin();
    let mut capped = outcome(AgentEnd::Exited(1));
    capped.error = Some(AgentError::new(ErrorClass::Budget, "max budget reached"));
    sim.end_agent_with("w", capped);
    assert_eq!(sim.phase("w"), Phase::Failed, "not retried");
    assert_eq!(sim.failure("w").kind, FailureKind::Budget);
}

// ---------------------------------------------------------------------------------------
// The record and the end of a run.

#[test]
fn an_unwritable_event_log_starts_nothing_more() {
    let mut sim = Sim::new(
        &ten(),
        Options {
            max_parallel: Some(2),
            ..Options::default()
        },
    );
    sim.begin();
    sim.feed(Input::RecordFailed("disk full".into()));
    let a = sim.agents[0].0;
    let name = sim.name(a).to_string();
    sim.end_agent(&name, AgentEnd::Exited(0));
    assert_eq!(sim.started().len(), 2, "no new start after the log failed");
    // An agent the driver refused to start for want of a record is cancelled, not failed.
    let (b, _) = sim.agents.remove(0);
    sim.feed(Input::AgentEnded {
        workstream: b,
        outcome: outcome(AgentEnd::Unrecorded),
    });
    assert_eq!(sim.core.state().workstreams[b].phase, Phase::Cancelled);
    assert!(sim.core.is_over());
}

#[test]
fn finished_work_behind_an_unstarted_workstream_in_the_merge_order_says_why() {
    let body = r#"
workstream "bad" { owns "bad/**"; script "exit 3" }
workstream "early" { owns "early/**"; script "true" }
workstream "slow" { owns "slow/**"; script "true" }
workstream "after-slow" { owns "as/**"; depends-on "slow"; script "true" }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            max_parallel: Some(2),
            ..Options::default()
        },
    );
    sim.begin();
    assert_eq!(sim.started(), ["slow", "bad"]);
    sim.end_agent("bad", AgentEnd::Exited(3));
    sim.end_agent("slow", AgentEnd::Exited(0));
    sim.finish();
    assert_eq!(sim.phase("slow"), Phase::Ready);
    assert_eq!(
        sim.reason("slow"),
        "not merged: `early` comes first in the merge order and did not finish"
    );
    assert_eq!(sim.phase("early"), Phase::Pending);
}

#[test]
fn inputs_that_do_not_fit_the_job_are_ignored() {
    let mut sim = Sim::new(r#"workstream "a" { owns "a/**"; script "true" }"#, Options::default());
    sim.begin();
    let before = sim.effects.len();
    // A stale timer, a test result nobody asked for, an unknown merge result.
    sim.feed(Input::Timer(Timer::Retry {
        workstream: 0,
        attempt: 9,
    }));
    sim.feed(Input::Tested {
        workstream: 0,
        result: Some(test_result(true)),
    });
    sim.feed(Input::Merged {
        workstream: 0,
        outcome: MergeOutcome::UpToDate,
    });
    assert_eq!(sim.effects.len(), before);
    sim.run_all();
    sim.finish();
    assert_eq!(sim.state().status, RunStatus::Succeeded);
}

#[test]
fn the_state_is_the_events_applied_in_order() {
    let mut sim = Sim::new(
        failing_body(),
        Options {
            max_parallel: Some(2),
            keep_going: true,
            ..Options::default()
        },
    );
    sim.begin();
    sim.run_all();
    sim.end_agent_if_any();
    sim.finish();
    let mut replayed = fresh_state(&sim.plan.workflow);
    for effect in &sim.effects {
        if let Effect::Record(event) = effect {
            assert_eq!(event.seq, replayed.last_event + 1, "numbered without gaps");
            replayed.apply(event);
        }
    }
    assert_eq!(&replayed, sim.state());
    assert!(!sim.events().is_empty());
}

impl Sim {
    fn end_agent_if_any(&mut self) {
        while let Some(&(w, _)) = self.agents.first() {
            let name = self.name(w).to_string();
            self.end_agent(&name, AgentEnd::Exited(0));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Resuming: check-only jobs.

#[test]
fn a_resumed_workstream_whose_agent_finished_is_checked_without_running_it_again() {
    let body = r#"workstream "done" { owns "done/**"; script "true" }"#;
    let workflow = workflow(body);
    let mut state = fresh_state(&workflow);
    state.workstreams[0].agent_finished = true;
    state.workstreams[0].start_commit = Some(oid(0x51a).to_string());
    let mut sim = Sim::with_state(workflow, state, Options::default());
    sim.begin();
    assert!(sim.started().is_empty(), "no agent");
    assert!(sim.effects.iter().any(|e| matches!(
        e,
        Effect::Prepare {
            workstream: 0,
            fresh: false,
            start: Some(s),
            ..
        } if *s == oid(0x51a)
    )));
    assert_eq!(sim.phase("done"), Phase::Merged);
}

/// The record a resume continues when a kill cut `w`'s first fix (for `kind`) short: its work
/// finished and was checked (for a conflict: the sync conflicted in `w/file`), the fix
/// started and never ended; the resume set it pending.
fn with_a_cut_fix(workflow: &flow_dsl::Workflow, kind: FeedbackKind) -> RunState {
    let mut state = fresh_state(workflow);
    let t = state.started_at;
    let feedback = crate::run::state::Feedback {
        kind,
        summary: "the test failed".into(),
        detail: "assertion failed: 2 == 3".into(),
        files: if kind == FeedbackKind::Conflict {
            vec!["w/file".into()]
        } else {
            vec![]
        },
    };
    let mut events = vec![
        EventKind::AttemptStarted {
            workstream: 0,
            attempt: 1,
            purpose: Purpose::Work,
            feedback: None,
        },
        EventKind::AttemptEnded {
            workstream: 0,
            attempt: 1,
            usage: Usage::default(),
            session_id: None,
            error: None,
            last_line: None,
            result: None,
            session_cost: None,
        },
    ];
    if kind == FeedbackKind::Conflict {
        events.push(EventKind::Synced {
            workstream: 0,
            head: None,
            conflicts: vec!["w/file".into()],
        });
    }
    events.extend([
        EventKind::AttemptStarted {
            workstream: 0,
            attempt: 2,
            purpose: Purpose::Fix,
            feedback: Some(feedback),
        },
        EventKind::Phase {
            workstream: 0,
            phase: Phase::Pending,
            reason: Some("its fix attempt was cut short".into()),
        },
    ]);
    for (seq, kind) in events.into_iter().enumerate() {
        state.apply(&Event {
            seq: seq as u64 + 1,
            at: t,
            kind,
        });
    }
    state.workstreams[0].start_commit = Some(oid(BASE).to_string());
    state
}

#[test]
fn a_fix_a_kill_cut_runs_again_as_a_retry_of_that_fix_not_a_new_one() {
    for allowed in [1, 2] {
        let body = format!(r#"workstream "w" {{ owns "w/**"; test "check"; fix-attempts {allowed}; script "true" }}"#);
        let workflow = workflow(&body);
        let state = with_a_cut_fix(&workflow, FeedbackKind::Test);
        assert_eq!(state.workstreams[0].fixes, 1);
        let mut sim = Sim::with_state(workflow, state, Options::default());
        sim.script.failing_tests.insert("w".into());
        sim.begin();
        let fix = sim.effects.iter().find_map(|e| match e {
            Effect::StartAgent {
                purpose: Purpose::Fix,
                feedback,
                attempt,
                ..
            } => Some((*attempt, feedback.clone())),
            _ => None,
        });
        let (attempt, feedback) = fix.expect("the cut fix runs again");
        assert_eq!(attempt, 3);
        assert_eq!(
            feedback.map(|f| f.detail),
            Some("assertion failed: 2 == 3".to_string()),
            "with the same feedback"
        );
        assert_eq!(sim.state().workstreams[0].fixes, 1, "not a new fix");
        let record = sim.state().workstreams[0]
            .attempt_log
            .last()
            .cloned()
            .expect("recorded");
        assert_eq!(
            (record.purpose, record.feedback),
            (Purpose::Fix, Some(FeedbackKind::Test))
        );
        // Its test still fails: a second fix only where `fix-attempts` allow one.
        sim.end_agent("w", AgentEnd::Exited(0));
        let fixes = sim.state().workstreams[0].fixes;
        assert_eq!(fixes, allowed, "fix-attempts {allowed}");
        if allowed == 1 {
            assert_eq!(sim.phase("w"), Phase::Failed);
        } else {
            assert_eq!(sim.phase("w"), Phase::Fixing);
        }
    }
}

#[test]
fn a_conflict_fix_a_kill_cut_keeps_the_sync_in_its_worktree_and_is_logged_once() {
    let body = r#"workstream "w" { owns "w/**"; script "true" }"#;
    let workflow = workflow(body);
    let state = with_a_cut_fix(&workflow, FeedbackKind::Conflict);
    assert_eq!(state.workstreams[0].sync_conflicts, ["w/file"]);
    let mut sim = Sim::with_state(workflow, state, Options::default());
    sim.begin();
    assert!(
        sim.effects.iter().any(|e| matches!(
            e,
            Effect::Prepare {
                fresh: false,
                keep_merge: true,
                ..
            }
        )),
        "the merge its agent was resolving stays: {:?}",
        sim.effects
    );
    assert_eq!(sim.agents, [(0, 3)], "the fix runs again");
    sim.end_agent("w", AgentEnd::Exited(0));
    assert!(
        sim.effects.iter().any(
            |e| matches!(e, Effect::Inspect { workstream: 0, markers_in, integration } if markers_in == &["w/file".to_string()] && *integration == Some(oid(BASE)))
        ),
        "its check looks for markers left in the conflicting files, finishes the merge, and \
         reads its own changes past the last good integration commit"
    );
    assert_eq!(sim.phase("w"), Phase::Merged);
    assert_eq!(sim.state().workstreams[0].fixes, 1);
    assert!(
        sim.state().workstreams[0].sync_conflicts.is_empty(),
        "over once checked"
    );
    let logged: Vec<Oid> = sim
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::LogDecision { commit, .. } => Some(*commit),
            _ => None,
        })
        .collect();
    let checked = sim.state().workstreams[0].result_commit.clone();
    assert_eq!(
        logged.iter().map(Oid::to_string).collect::<Vec<_>>(),
        checked.into_iter().collect::<Vec<_>>(),
        "logged once, for the commit checked"
    );
    assert!(sim.decisions[0].contains("own agent"), "{}", sim.decisions[0]);
}

#[test]
fn a_resumed_check_without_a_sync_gives_up_a_merge_left_in_its_worktree() {
    let body = r#"workstream "w" { owns "w/**"; test "check"; script "true" }"#;
    let workflow = workflow(body);
    let state = with_a_cut_fix(&workflow, FeedbackKind::Test);
    let mut sim = Sim::with_state(workflow, state, Options::default());
    sim.begin();
    assert!(sim.effects.iter().any(|e| matches!(
        e,
        Effect::Prepare {
            fresh: false,
            keep_merge: false,
            ..
        }
    )));
}

#[test]
fn a_verdict_given_on_the_commit_a_resume_checks_again_stands() {
    let body = r#"
agent "rev" {
    command "sh" "-c" "{script}"
    output "text"
}
workstream "w" { owns "w/**"; review "rev"; script "true" }
"#;
    for (verdict, then) in [
        (Verdict::ChangesRequested, Phase::Fixing),
        (Verdict::Approve, Phase::Merged),
    ] {
        let workflow = workflow(body);
        let mut state = fresh_state(&workflow);
        let w = &mut state.workstreams[0];
        w.agent_finished = true;
        w.start_commit = Some(oid(BASE).to_string());
        // The commit the check finds again: the simulated world's first.
        w.review = Some(crate::run::state::Review {
            verdict,
            comments: "name the constant".into(),
            reviewer: "rev".into(),
            commit: Some(oid(0x1001).to_string()),
        });
        let mut sim = Sim::with_state(workflow, state, Options::default());
        sim.begin();
        assert!(
            !sim.effects.iter().any(|e| matches!(
                e,
                Effect::StartAgent {
                    purpose: Purpose::Review,
                    ..
                }
            )),
            "{verdict:?}: the reviewer does not read the same commit again"
        );
        assert_eq!(sim.phase("w"), then, "{verdict:?}");
        if verdict == Verdict::ChangesRequested {
            let fix = sim.effects.iter().find_map(|e| match e {
                Effect::StartAgent {
                    purpose: Purpose::Fix,
                    feedback: Some(f),
                    ..
                } => Some(f.clone()),
                _ => None,
            });
            let fix = fix.expect("the requested changes go to the agent");
            assert_eq!(fix.kind, FeedbackKind::Review);
            assert!(fix.detail.contains("name the constant"), "{}", fix.detail);
            assert_eq!(sim.state().workstreams[0].fixes, 1);
        }
    }
}

#[test]
fn a_resolution_whose_resolver_ended_is_finished_and_verified_on_resume_not_redone() {
    let body = r#"
agent "resolver" {
    command "sh" "-c" "{script}"
    output "text"
}
workstream "b" { owns "b/**"; script "true" }
integrate {
    on-conflict "agent"
    resolver "resolver"
    verify "check"
}
"#;
    let workflow = workflow(body);
    let mut state = fresh_state(&workflow);
    let b = &mut state.workstreams[0];
    b.phase = Phase::Resolving;
    b.attempts = 2;
    b.start_commit = Some(oid(BASE).to_string());
    b.result_commit = Some(oid(0xb0).to_string());
    let mut sim = Sim::with_state(workflow, state, Options::default());
    sim.begin();
    assert!(
        sim.effects.iter().any(|e| matches!(
            e,
            Effect::FinishResolution { workstream: 0, onto, result, files }
                if *onto == oid(BASE) && *result == oid(0xb0) && files.is_empty()
        )),
        "{:?}",
        sim.effects
    );
    assert!(
        !sim.effects.iter().any(|e| matches!(e, Effect::StartAgent { .. })),
        "the resolver does not run again"
    );
    assert!(
        sim.effects
            .iter()
            .any(|e| matches!(e, Effect::Verify { workstream: 0, .. }))
    );
    assert_eq!(sim.phase("b"), Phase::Merged);
    assert!(
        sim.events()
            .iter()
            .any(|e| matches!(e, EventKind::Merged { verify: Some(v), .. } if v.passed)),
        "merged once verified"
    );
    assert_eq!(sim.decisions.len(), 1);
    assert!(
        sim.decisions[0].contains("resolver agent `resolver`") && sim.decisions[0].contains("b/file"),
        "{}",
        sim.decisions[0]
    );
}

#[test]
fn a_resolution_that_is_gone_on_resume_is_merged_again() {
    let body = r#"
agent "resolver" {
    command "sh" "-c" "{script}"
    output "text"
}
workstream "b" { owns "b/**"; script "true" }
integrate {
    on-conflict "agent"
    resolver "resolver"
}
"#;
    let workflow = workflow(body);
    let mut state = fresh_state(&workflow);
    let b = &mut state.workstreams[0];
    b.phase = Phase::Resolving;
    b.start_commit = Some(oid(BASE).to_string());
    b.result_commit = Some(oid(0xb0).to_string());
    let mut sim = Sim::with_state(workflow, state, Options::default());
    let at = sim.tick();
    let effects = sim.core.begin(at, 1, true, None);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::FinishResolution { workstream: 0, .. }))
    );
    let at = sim.tick();
    let effects = sim.core.step(
        at,
        Input::Resolved {
            workstream: 0,
            result: Ok(Resolution::Gone),
        },
    );
    sim.take(effects);
    sim.settle();
    assert!(sim.merges.contains(&0), "merged again");
    assert_eq!(sim.phase("b"), Phase::Merged);
}

#[test]
fn a_branch_that_becomes_ready_is_trial_merged_and_a_coming_conflict_is_warned_of() {
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.forecast_conflicts.insert("b".into());
    sim.begin();
    sim.run_all();
    let forecasts: Vec<usize> = sim
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Forecast {
                workstream, against, ..
            } => {
                assert!(
                    against.iter().any(|(other, _)| other.is_none()),
                    "the integration branch is one"
                );
                Some(*workstream)
            }
            _ => None,
        })
        .collect();
    assert_eq!(forecasts.len(), 2, "each branch once, when it becomes ready");
    let warnings: Vec<&String> = sim
        .state()
        .alerts
        .iter()
        .filter(|a| a.starts_with("b: its branch conflicts"))
        .collect();
    assert!(!warnings.is_empty(), "{:?}", sim.state().alerts);
    assert!(warnings[0].contains("b/file"), "{}", warnings[0]);
    assert!(
        !sim.state().alerts.iter().any(|a| a.starts_with("a: ")),
        "a conflicts with nothing"
    );
    // A warning only: both merge.
    assert_eq!(sim.phase("a"), Phase::Merged);
    assert_eq!(sim.phase("b"), Phase::Merged);
}

#[test]
fn a_conflicting_sync_no_fix_was_left_for_is_given_up_on_resume() {
    // The run stopped after the sync conflicted, while it was being given up (no fix left):
    // its merge is no agent's to resolve, and the resume does not keep it.
    let body = r#"workstream "w" { owns "w/**"; fix-attempts 0; script "true" }"#;
    let workflow = workflow(body);
    let mut state = fresh_state(&workflow);
    let t = state.started_at;
    let events = [
        EventKind::AttemptStarted {
            workstream: 0,
            attempt: 1,
            purpose: Purpose::Work,
            feedback: None,
        },
        EventKind::AttemptEnded {
            workstream: 0,
            attempt: 1,
            usage: Usage::default(),
            session_id: None,
            error: None,
            last_line: None,
            result: None,
            session_cost: None,
        },
        EventKind::Phase {
            workstream: 0,
            phase: Phase::Fixing,
            reason: Some("its merge conflicts in w/file: bringing the integration branch in".into()),
        },
        EventKind::Synced {
            workstream: 0,
            head: None,
            conflicts: vec!["w/file".into()],
        },
        EventKind::Phase {
            workstream: 0,
            phase: Phase::Pending,
            reason: Some("its agent finished before the run stopped".into()),
        },
    ];
    for (seq, kind) in events.into_iter().enumerate() {
        state.apply(&Event {
            seq: seq as u64 + 1,
            at: t,
            kind,
        });
    }
    state.workstreams[0].start_commit = Some(oid(BASE).to_string());
    assert!(state.workstreams[0].sync_conflicts.is_empty());
    let mut sim = Sim::with_state(workflow, state, Options::default());
    sim.begin();
    assert!(sim.effects.iter().any(|e| matches!(
        e,
        Effect::Prepare {
            fresh: false,
            keep_merge: false,
            ..
        }
    )));
    assert!(
        sim.effects
            .iter()
            .any(|e| matches!(e, Effect::Inspect { workstream: 0, markers_in, .. } if markers_in.is_empty())),
        "its check takes no conflict for its agent's"
    );
}

#[test]
fn an_agent_whose_program_cannot_start_fails_at_once_without_retries() {
    let body = r#"
workstream "a" { owns "a/**"; retries 3; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    sim.end_agent(
        "a",
        AgentEnd::CannotStart("cannot start `claude`: No such file or directory".into()),
    );
    assert_eq!(sim.phase("a"), Phase::Failed);
    assert_eq!(sim.failure("a").kind, FailureKind::Setup);
    let starts = sim
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::StartAgent { .. }))
        .count();
    assert_eq!(starts, 1, "never retried");
}

#[test]
fn a_person_stops_a_running_workstream_and_skips_a_waiting_one_and_the_run_goes_on() {
    use crate::run::core::Action;
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; script "true" }
workstream "c" { owns "c/**"; depends-on "a"; script "true" }
workstream "d" { owns "d/**"; depends-on "b"; script "true" }
workstream "e" { owns "e/**"; script "true" }
workstream "f" { owns "f/**"; depends-on "e"; script "true" }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            max_parallel: Some(2),
            ..Options::default()
        },
    );
    sim.begin();
    let (a, e) = (sim.index("a"), sim.index("e"));
    sim.feed(Input::Request {
        workstream: a,
        action: Action::Stop,
    });
    assert_eq!(sim.stopped, [a], "its agent is stopped");
    assert_eq!(sim.phase("a"), Phase::Cancelled);
    assert_eq!(sim.reason("a"), "stopped by a person");
    assert_eq!(sim.phase("c"), Phase::Skipped, "its dependent will not run");
    // Not a failure for the failure policy: what does not depend on it still starts.
    assert_eq!(sim.phase("e"), Phase::Running, "the freed slot is taken");
    sim.feed(Input::Request {
        workstream: sim.index("f"),
        action: Action::Skip,
    });
    assert_eq!(sim.phase("f"), Phase::Skipped);
    assert_eq!(sim.reason("f"), "skipped by a person");
    // What cannot be done is said, and changes nothing.
    sim.run_all();
    sim.feed(Input::Request {
        workstream: e,
        action: Action::Stop,
    });
    assert_eq!(sim.phase("e"), Phase::Merged);
    assert!(
        sim.state().alerts.iter().any(|a| a.contains("`e` is merged")),
        "{:?}",
        sim.state().alerts
    );
    assert_eq!(sim.phase("b"), Phase::Merged);
    assert_eq!(sim.phase("d"), Phase::Merged);
    sim.finish();
}

// ---------------------------------------------------------------------------------------
// A person's retry and message, during the run.

fn alerts_about(sim: &Sim, text: &str) -> usize {
    sim.state().alerts.iter().filter(|a| a.contains(text)).count()
}

fn agent_starts(sim: &Sim, name: &str) -> Vec<(u32, Purpose, Option<FeedbackKind>, Option<String>)> {
    let index = sim.index(name);
    sim.effects
        .iter()
        .filter_map(|e| match e {
            Effect::StartAgent {
                workstream,
                attempt,
                purpose,
                feedback,
                session,
                ..
            } if *workstream == index => Some((*attempt, *purpose, feedback.as_ref().map(|f| f.kind), session.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_person_retries_a_failure_from_its_skipped_dependent_and_the_run_goes_on_to_succeed() {
    use crate::run::core::Action;
    let body = r#"
workstream "flaky" { owns "flaky/**"; script "true" }
workstream "after" { owns "after/**"; depends-on "flaky"; script "true" }
workstream "slow" { owns "slow/**"; script "true" }
workstream "later" { owns "later/**"; depends-on "slow"; script "true" }
"#;
    // Without --keep-going: the failure stops new starts until it is retried.
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    sim.end_agent("flaky", AgentEnd::Exited(3));
    assert_eq!(sim.phase("flaky"), Phase::Failed, "retries 0: it fails at once");
    assert_eq!(sim.phase("after"), Phase::Skipped);
    // The retry comes while `slow` still runs (a run with nothing at work is over).
    sim.feed(Input::Request {
        workstream: sim.index("after"),
        action: Action::Retry,
    });
    let flaky = sim.index("flaky");
    assert!(
        sim.events().iter().any(|e| matches!(
            e,
            EventKind::Retried { workstream, reason } if *workstream == flaky && reason == "retried by a person"
        )),
        "the person's retry is recorded"
    );
    assert_eq!(
        sim.phase("flaky"),
        Phase::Running,
        "a new attempt, from a clean worktree"
    );
    assert!(sim.state().workstreams[flaky].failure.is_none());
    assert_eq!(sim.phase("after"), Phase::Pending, "its dependent waits for it again");
    // No failure stands: `later` starts once `slow` merges (it did not before the retry).
    let fresh = sim.effects.iter().rev().find_map(|e| match e {
        Effect::Prepare { workstream, fresh, .. } if *workstream == flaky => Some(*fresh),
        _ => None,
    });
    assert_eq!(fresh, Some(true));
    sim.run_all();
    assert_eq!(
        agent_starts(&sim, "flaky").iter().map(|s| s.0).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        sim.state().workstreams[flaky].attempt_log.len(),
        2,
        "the failed attempt stays in the record"
    );
    for name in ["flaky", "after", "slow", "later"] {
        assert_eq!(sim.phase(name), Phase::Merged, "{name}");
    }
    sim.finish();
    assert_eq!(sim.state().status, RunStatus::Succeeded);
}

#[test]
fn a_retry_is_refused_for_what_did_not_fail_and_while_the_run_stops() {
    use crate::run::core::Action;
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; script "true" }
workstream "c" { owns "c/**"; depends-on "b"; script "true" }
workstream "d" { owns "d/**"; script "true" }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            max_parallel: Some(2),
            ..Options::default()
        },
    );
    sim.begin();
    sim.request("a", Action::Retry);
    assert_eq!(alerts_about(&sim, "`a` cannot be retried: it is running"), 1);
    sim.feed(Input::Request {
        workstream: sim.index("d"),
        action: Action::Skip,
    });
    assert_eq!(sim.phase("d"), Phase::Skipped);
    sim.end_agent("a", AgentEnd::Exited(0));
    sim.request("a", Action::Retry);
    assert_eq!(alerts_about(&sim, "`a` cannot be retried: it is merged"), 1);
    assert!(!sim.events().iter().any(|e| matches!(e, EventKind::Retried { .. })));
    sim.feed(Input::Interrupt);
    sim.request("d", Action::Retry);
    assert_eq!(alerts_about(&sim, "`d` cannot be retried: the run is stopping"), 1);
    assert!(!sim.events().iter().any(|e| matches!(e, EventKind::Retried { .. })));
    sim.run_all();
    sim.finish();
}

#[test]
fn a_person_who_stopped_or_skipped_a_workstream_can_retry_it() {
    use crate::run::core::Action;
    let body = r#"
workstream "b" { owns "b/**"; script "true" }
workstream "c" { owns "c/**"; depends-on "b"; script "true" }
workstream "d" { owns "d/**"; script "true" }
workstream "slow" { owns "slow/**"; script "true" }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            max_parallel: Some(1),
            ..Options::default()
        },
    );
    sim.begin();
    // `d` has not started: skipped; `b` is at work: stopped, and `c`, waiting on it, skipped.
    sim.request("d", Action::Skip);
    sim.request("b", Action::Stop);
    assert_eq!(sim.phase("d"), Phase::Skipped);
    assert_eq!(sim.phase("b"), Phase::Cancelled);
    assert_eq!(sim.phase("c"), Phase::Skipped);
    // The person changes their mind: `d` again, and `c`, which retries what it waits on.
    sim.request("d", Action::Retry);
    assert_eq!(alerts_about(&sim, "`d` retried by a person after it was skipped"), 1);
    sim.request("c", Action::Retry);
    assert_eq!(alerts_about(&sim, "`b` retried by a person after it was stopped"), 1);
    assert_eq!(sim.phase("c"), Phase::Pending, "it waits for `b` again");
    sim.run_all();
    for name in ["b", "c", "d", "slow"] {
        assert_eq!(sim.phase(name), Phase::Merged, "{name}");
    }
    assert_eq!(agent_starts(&sim, "b").len(), 2, "stopped once, then run again");
    sim.finish();
    assert_eq!(sim.state().status, RunStatus::Succeeded);
}

#[test]
fn retrying_what_a_person_skipped_retries_what_it_waits_on_too() {
    use crate::run::core::Action;
    let body = r#"
workstream "b" { owns "b/**"; script "true" }
workstream "c" { owns "c/**"; depends-on "b"; script "true" }
workstream "slow" { owns "slow/**"; script "true" }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            max_parallel: Some(2),
            ..Options::default()
        },
    );
    sim.begin();
    // `c` skipped by the person, then `b`, which it waits on, stopped.
    sim.request("c", Action::Skip);
    sim.request("b", Action::Stop);
    assert_eq!(sim.phase("b"), Phase::Cancelled);
    assert_eq!(sim.phase("c"), Phase::Skipped);
    sim.request("c", Action::Retry);
    assert_eq!(alerts_about(&sim, "`b` retried by a person after it was stopped"), 1);
    assert_eq!(alerts_about(&sim, "`c` retried by a person after it was skipped"), 1);
    sim.run_all();
    for name in ["b", "c", "slow"] {
        assert_eq!(sim.phase(name), Phase::Merged, "{name}");
    }
    sim.finish();
    assert_eq!(sim.state().status, RunStatus::Succeeded);
}

#[test]
fn a_retried_workstream_still_counts_what_it_spent_against_its_budget() {
    use crate::run::core::Action;
    let body = r#"
workstream "spender" { owns "spender/**"; budget usd=1; script "true" }
workstream "other" { owns "other/**"; script "true" }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            keep_going: true,
            ..Options::default()
        },
    );
    sim.begin();
    let i = sim.index("spender");
    sim.end_agent_with(
        "spender",
        AgentOutcome {
            usage: usage_usd(1.0),
            ..outcome(AgentEnd::Exited(2))
        },
    );
    assert_eq!(sim.phase("spender"), Phase::Failed);
    sim.feed(Input::Request {
        workstream: i,
        action: Action::Retry,
    });
    assert!(sim.events().iter().any(|e| matches!(e, EventKind::Retried { .. })));
    assert_eq!(alerts_about(&sim, "`spender` retried by a person after it failed"), 1);
    assert_eq!(sim.phase("spender"), Phase::Failed, "refused at once");
    assert_eq!(sim.failure("spender").kind, FailureKind::Budget);
    assert_eq!(agent_starts(&sim, "spender").len(), 1, "no attempt on a spent budget");
    sim.run_all();
    sim.finish();
}

#[test]
fn a_message_waits_for_the_running_attempt_then_goes_to_the_agent_in_its_session() {
    let body = r#"workstream "a" { owns "a/**"; fix-attempts 1; test "check"; script "true" }"#;
    let mut sim = Sim::new(body, Options::default());
    sim.script.failing_tests.insert("a".into());
    sim.begin();
    let a = sim.index("a");
    sim.feed(Input::Message {
        workstream: a,
        text: "use the \u{1b}[31mnew\u{7} API\n\nnot the old one".into(),
    });
    assert!(sim.stopped.is_empty(), "the attempt is not cut short");
    assert_eq!(
        alerts_about(&sim, "a person's message for `a` is queued"),
        1,
        "{:?}",
        sim.state().alerts
    );
    sim.end_agent_with(
        "a",
        AgentOutcome {
            session_id: Some("s-1".into()),
            ..outcome(AgentEnd::Exited(0))
        },
    );
    assert!(
        !sim.effects.iter().any(|e| matches!(e, Effect::Inspect { .. })),
        "the message goes before the check"
    );
    assert_eq!(
        agent_starts(&sim, "a"),
        [
            (1, Purpose::Work, None, None),
            (2, Purpose::Fix, Some(FeedbackKind::Message), Some("s-1".into()))
        ]
    );
    let ws = &sim.state().workstreams[a];
    let given = ws.feedback.as_ref().expect("the message is recorded");
    assert_eq!(
        given.detail, "use the [31mnew API\n\nnot the old one",
        "control characters dropped"
    );
    assert_eq!(ws.fixes, 0, "a message is not a fix");
    assert_eq!(sim.phase("a"), Phase::Fixing);
    // Its work is checked after the message; the failed test still gets its one fix.
    sim.end_agent("a", AgentEnd::Exited(0));
    assert_eq!(
        agent_starts(&sim, "a").last().map(|s| (s.1, s.2)),
        Some((Purpose::Fix, Some(FeedbackKind::Test)))
    );
    // A message that comes while the last fix's test runs, which then fails with no fix
    // left: never given, and the end of the run says so.
    let k = sim.agents.iter().position(|(w, _)| *w == a).expect("the fix runs");
    sim.agents.remove(k);
    sim.feed(Input::AgentEnded {
        workstream: a,
        outcome: outcome(AgentEnd::Exited(0)),
    });
    sim.feed(Input::Message {
        workstream: a,
        text: "one more thing".into(),
    });
    sim.finish_tests();
    assert_eq!(sim.phase("a"), Phase::Failed);
    assert_eq!(agent_starts(&sim, "a").len(), 3, "work, message, test fix");
    sim.finish();
    assert_eq!(alerts_about(&sim, "1 message(s) for `a` never reached its agent"), 1);
}

#[test]
fn a_message_for_a_waiting_or_checking_workstream_goes_once_its_work_ends_or_is_checked() {
    let body = r#"
workstream "first" { owns "first/**"; test "check"; script "true" }
workstream "second" { owns "second/**"; depends-on "first"; script "true" }
"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    let (first, second) = (sim.index("first"), sim.index("second"));
    sim.feed(Input::Message {
        workstream: second,
        text: "keep it short".into(),
    });
    // first's test runs: a message now goes after it passes, instead of the merge.
    let k = sim.agents.iter().position(|(w, _)| *w == first).expect("first runs");
    sim.agents.remove(k);
    sim.feed(Input::AgentEnded {
        workstream: first,
        outcome: outcome(AgentEnd::Exited(0)),
    });
    assert_eq!(sim.phase("first"), Phase::Checking);
    sim.feed(Input::Message {
        workstream: first,
        text: "also add a test".into(),
    });
    sim.finish_tests();
    assert_eq!(sim.phase("first"), Phase::Fixing, "not ready: the message comes first");
    assert_eq!(
        agent_starts(&sim, "first").last().map(|s| s.2),
        Some(Some(FeedbackKind::Message))
    );
    sim.end_agent("first", AgentEnd::Exited(0));
    assert_eq!(sim.phase("first"), Phase::Merged);
    // second had not started: its message waits for its first attempt.
    assert_eq!(sim.phase("second"), Phase::Running);
    sim.end_agent("second", AgentEnd::Exited(0));
    assert_eq!(
        agent_starts(&sim, "second")
            .iter()
            .map(|s| (s.1, s.2))
            .collect::<Vec<_>>(),
        [(Purpose::Work, None), (Purpose::Fix, Some(FeedbackKind::Message))]
    );
    assert_eq!(
        sim.state().workstreams[second]
            .feedback
            .as_ref()
            .map(|f| f.detail.as_str()),
        Some("keep it short")
    );
    sim.run_all();
    assert_eq!(sim.phase("second"), Phase::Merged);
    sim.finish();
}

#[test]
fn a_message_kept_when_flow_was_killed_reaches_the_agent_after_the_resume() {
    let body = r#"workstream "a" { owns "a/**"; script "true" }"#;
    let mut sim = Sim::new(body, Options::default());
    sim.begin();
    let a = sim.index("a");
    sim.feed(Input::Message {
        workstream: a,
        text: "use the new API".into(),
    });
    assert_eq!(
        sim.state().workstreams[a].told,
        ["use the new API"],
        "kept in the record"
    );
    // flow is killed while the work runs; the resume finds the attempt cut and sets it
    // pending, the message still in the record.
    let mut state = sim.state().clone();
    let t = state.started_at;
    state.apply(&Event {
        seq: state.last_event + 1,
        at: t,
        kind: EventKind::Phase {
            workstream: a,
            phase: Phase::Pending,
            reason: Some("its attempt was cut short".into()),
        },
    });
    let mut resumed = Sim::with_state(workflow(body), state, Options::default());
    resumed.begin();
    resumed.end_agent("a", AgentEnd::Exited(0));
    let starts = agent_starts(&resumed, "a");
    assert_eq!(
        starts.iter().map(|s| (s.1, s.2)).collect::<Vec<_>>(),
        [(Purpose::Work, None), (Purpose::Fix, Some(FeedbackKind::Message))]
    );
    let ws = &resumed.state().workstreams[a];
    assert_eq!(ws.feedback.as_ref().map(|f| f.detail.as_str()), Some("use the new API"));
    assert!(ws.told.is_empty(), "given: out of the record");
    resumed.end_agent("a", AgentEnd::Exited(0));
    resumed.run_all();
    resumed.finish();
    assert_eq!(resumed.phase("a"), Phase::Merged);
}

#[test]
fn a_message_is_refused_for_finished_failed_or_empty() {
    let body = r#"
workstream "done" { owns "done/**"; script "true" }
workstream "broken" { owns "broken/**"; script "true" }
workstream "busy" { owns "busy/**"; script "true" }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            keep_going: true,
            ..Options::default()
        },
    );
    sim.begin();
    sim.end_agent("done", AgentEnd::Exited(0));
    sim.end_agent("broken", AgentEnd::Exited(1));
    let tell = |sim: &mut Sim, name: &str, text: &str| {
        let workstream = sim.index(name);
        sim.feed(Input::Message {
            workstream,
            text: text.into(),
        });
    };
    tell(&mut sim, "done", "more");
    tell(&mut sim, "broken", "more");
    tell(&mut sim, "busy", " \n\u{7} ");
    for (name, why) in [
        ("done", "it is merged: its work is done"),
        ("broken", "it is failed: retry it first"),
        ("busy", "it is empty"),
    ] {
        assert_eq!(
            alerts_about(&sim, &format!("the message for `{name}` was not sent: {why}")),
            1,
            "{:?}",
            sim.state().alerts
        );
    }
    sim.end_agent("busy", AgentEnd::Exited(0));
    assert_eq!(agent_starts(&sim, "busy").len(), 1, "nothing was queued");
    sim.finish();
}

#[test]
fn a_long_message_is_cut_and_says_so() {
    let text = "x".repeat(crate::run::requests::MESSAGE_MAX + 10);
    let tidy = crate::run::requests::tidy(&text);
    assert!(
        tidy.ends_with("… [cut: 10 more characters]"),
        "{}",
        &tidy[tidy.len() - 40..]
    );
    assert_eq!(
        tidy.chars().filter(|&c| c == 'x').count(),
        crate::run::requests::MESSAGE_MAX
    );
}

#[test]
fn a_conflict_is_not_retried_once_merging_stopped_at_it() {
    use crate::run::core::Action;
    let body = r#"
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; script "true" }
integrate { sync "off"; }
"#;
    let mut sim = Sim::new(
        body,
        Options {
            keep_going: true,
            ..Options::default()
        },
    );
    sim.script.conflicts.insert("a".into());
    sim.begin();
    sim.end_agent("a", AgentEnd::Exited(0));
    assert_eq!(sim.phase("a"), Phase::Conflicted, "on-conflict \"stop\" by default");
    sim.feed(Input::Request {
        workstream: sim.index("a"),
        action: Action::Retry,
    });
    assert_eq!(
        alerts_about(&sim, "`a` cannot be retried: merging stopped at a conflict"),
        1,
        "{:?}",
        sim.state().alerts
    );
    assert_eq!(sim.phase("a"), Phase::Conflicted);
    sim.run_all();
    sim.finish();
}
