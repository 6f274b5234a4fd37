//! The driver with fake work on tokio's paused clock: agents that take virtual minutes, retry
//! waits, stops and Ctrl-C, all in an instant of real time, and the same every run.

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures::FutureExt;
use tokio::time::Instant;

use super::*;
use crate::plan::Plan;
use crate::run::core::Options;
use crate::run::state::{Phase, RunStatus, WorkstreamState};
use crate::time::Timestamp;

fn oid(n: u32) -> Oid {
    format!("{n:040x}").parse().expect("40 hex digits")
}

/// What a fake agent does in each of its attempts.
#[derive(Debug, Clone)]
struct Behaviour {
    /// How long each attempt runs (the last one repeats).
    takes: Vec<Duration>,
    /// The exit code of each attempt (the last one repeats).
    exits: Vec<i32>,
    /// Usage reported at these times into an attempt.
    usage: Vec<(Duration, f64)>,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            takes: vec![Duration::from_secs(10)],
            exits: vec![0],
            usage: vec![],
        }
    }
}

/// What happened to one agent attempt, on the paused clock.
#[derive(Debug, Clone)]
struct Attempt {
    workstream: usize,
    started: Duration,
    ended: Duration,
    stopped: bool,
}

/// Work that does nothing but take (virtual) time and report what the test scripted.
struct FakeWork {
    behaviours: BTreeMap<usize, Behaviour>,
    origin: Instant,
    attempts: Mutex<Vec<Attempt>>,
    running: Mutex<(usize, usize)>,
}

impl FakeWork {
    fn new(behaviours: BTreeMap<usize, Behaviour>) -> FakeWork {
        FakeWork {
            behaviours,
            origin: Instant::now(),
            attempts: Mutex::new(vec![]),
            running: Mutex::new((0, 0)),
        }
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }

    fn peak(&self) -> usize {
        self.running.lock().unwrap().1
    }
}

impl Work for FakeWork {
    fn prepare(
        self: Arc<Self>,
        workstream: usize,
        start: Option<Oid>,
        _fresh: bool,
        _keep_merge: bool,
        _handoffs: Vec<Handoff>,
        _stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, Result<Workspace, crate::run::state::Failure>> {
        async move {
            Ok(Workspace {
                dir: format!("/w/{workstream}").into(),
                branch: Some(format!("flow/t/{workstream}")),
                start,
            })
        }
        .boxed()
    }

    fn run_agent(
        self: Arc<Self>,
        run: AgentRun,
        report: Reporter,
        mut stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, AgentOutcome> {
        let (workstream, attempt) = (run.workstream, run.attempt);
        async move {
            let behaviour = self.behaviours.get(&workstream).cloned().unwrap_or_default();
            let pick = |list: &[i32]| list[(attempt as usize - 1).min(list.len() - 1)];
            let takes = behaviour.takes[(attempt as usize - 1).min(behaviour.takes.len() - 1)];
            let exit = pick(&behaviour.exits);
            {
                let mut running = self.running.lock().unwrap();
                running.0 += 1;
                running.1 = running.1.max(running.0);
            }
            let started = self.origin.elapsed();
            let begun = Instant::now();
            let mut stopped = false;
            let mut steps = behaviour.usage.clone();
            steps.push((takes, f64::NAN));
            for (at, usd) in steps {
                tokio::select! {
                    () = tokio::time::sleep_until(begun + at) => {}
                    _ = stop.wait_for(|s| *s) => {
                        stopped = true;
                        break;
                    }
                }
                if !usd.is_nan() {
                    report.usage(Usage {
                        input_tokens: 1,
                        cost_usd: Some(usd),
                        ..Usage::default()
                    });
                    report.line(format!("spent ${usd}"));
                }
            }
            self.running.lock().unwrap().0 -= 1;
            self.attempts.lock().unwrap().push(Attempt {
                workstream,
                started,
                ended: self.origin.elapsed(),
                stopped,
            });
            AgentOutcome::unstarted(if stopped {
                AgentEnd::Stopped
            } else {
                AgentEnd::Exited(exit)
            })
        }
        .boxed()
    }

    fn inspect(
        self: Arc<Self>,
        workstream: usize,
        _markers_in: Vec<String>,
        _integration: Option<Oid>,
    ) -> BoxFuture<'static, Result<Inspection, String>> {
        async move {
            Ok(Inspection {
                head: oid(0x100 + workstream as u32),
                base: oid(1),
                changed: vec![format!("w{workstream}/f")],
                integrity: vec![],
                markers: vec![],
            })
        }
        .boxed()
    }

    fn sync(self: Arc<Self>, workstream: usize, _: Oid) -> BoxFuture<'static, Result<SyncOutcome, String>> {
        async move { Ok(SyncOutcome::Clean(oid(0x300 + workstream as u32))) }.boxed()
    }

    fn abort_sync(self: Arc<Self>, _: usize) -> BoxFuture<'static, Result<(), String>> {
        async { Ok(()) }.boxed()
    }

    fn prepare_resolution(self: Arc<Self>, _: usize, _: Oid, _: Oid) -> BoxFuture<'static, Result<Conflicts, String>> {
        async { Err("no resolver here".to_string()) }.boxed()
    }

    fn finish_resolution(
        self: Arc<Self>,
        _: usize,
        _: Oid,
        _: Oid,
        _: Vec<String>,
    ) -> BoxFuture<'static, Result<Resolution, String>> {
        async { Err("no resolver here".to_string()) }.boxed()
    }

    fn log_decision(&self, _: Oid, _: &str) {}

    fn revert(self: Arc<Self>, _: usize, _: Vec<String>) -> BoxFuture<'static, Result<Oid, String>> {
        async { Err("no reverts here".to_string()) }.boxed()
    }

    fn test(self: Arc<Self>, _: usize, _: watch::Receiver<bool>) -> BoxFuture<'static, Option<TestResult>> {
        async { None }.boxed()
    }

    fn reset(self: Arc<Self>, _: usize, _: Oid) -> BoxFuture<'static, Result<(), String>> {
        async { Ok(()) }.boxed()
    }

    fn merge(self: Arc<Self>, workstream: usize, _: Oid, _: Oid) -> BoxFuture<'static, MergeOutcome> {
        async move { MergeOutcome::Merged(oid(0x200 + workstream as u32)) }.boxed()
    }

    fn verify(self: Arc<Self>, _: usize, _: Oid, _: watch::Receiver<bool>) -> BoxFuture<'static, Option<TestResult>> {
        async { None }.boxed()
    }

    fn roll_back(self: Arc<Self>, _: Oid, _: Oid, _: &'static str) -> BoxFuture<'static, bool> {
        async { true }.boxed()
    }

    fn forecast(
        self: Arc<Self>,
        _: Oid,
        _: Vec<(Option<usize>, Oid)>,
    ) -> BoxFuture<'static, Vec<(Option<usize>, Vec<String>)>> {
        async { vec![] }.boxed()
    }

    fn finish(&self, _: &RunState) {}
}

/// A journal in memory, which can be told to fail.
#[derive(Default)]
struct MemoryJournal {
    events: Arc<Mutex<Vec<Event>>>,
    snapshots: Arc<Mutex<usize>>,
    fail_after: Option<usize>,
}

impl Journal for MemoryJournal {
    fn append(&mut self, event: &Event) -> std::io::Result<()> {
        let mut events = self.events.lock().unwrap();
        if self.fail_after.is_some_and(|n| events.len() >= n) {
            return Err(std::io::Error::other("disk full"));
        }
        events.push(event.clone());
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    fn snapshot(&mut self, _: &RunState) -> std::io::Result<()> {
        *self.snapshots.lock().unwrap() += 1;
        Ok(())
    }
}

/// Counts what observers are told.
#[derive(Default)]
struct Counting {
    events: usize,
    lines: usize,
    notices: Vec<String>,
    finished: bool,
}

impl Observer for Counting {
    fn event(&mut self, _: &RunState, _: &Event) {
        self.events += 1;
    }

    fn lines_wanted(&self) -> LinesWanted {
        LinesWanted::All
    }

    fn lines(&mut self, _: &RunState, _: usize, lines: &str) {
        self.lines += lines.lines().count();
    }

    fn notice(&mut self, message: &str) {
        self.notices.push(message.to_string());
    }

    fn finish(&mut self, _: &RunState) {
        self.finished = true;
    }
}

fn plan(body: &str) -> Plan {
    let text = format!(
        r#"
workflow "t" {{ base "main"; max-parallel 8; }}
agent "shell" {{
    command "sh" "-c" "{{script}}"
    output "text"
}}
defaults {{ agent "shell"; }}
{body}
"#
    );
    Plan::new(flow_dsl::check_text("t.kdl", &text).expect("valid").workflow)
}

fn state_of(plan: &Plan) -> RunState {
    let t = Timestamp::from_second(1_700_000_000).expect("a time");
    RunState {
        version: 2,
        id: "test".into(),
        workflow: "t".into(),
        workflow_file: None,
        workflow_hash: String::new(),
        repository: "/repo".into(),
        base: Some("main".into()),
        base_commit: Some(oid(0xba5e).to_string()),
        into: "integration/t".into(),
        last_good: Some(oid(0xba5e).to_string()),
        status: RunStatus::Running,
        started_at: t,
        ended_at: None,
        last_event: 0,
        workstreams: plan
            .workflow
            .workstreams
            .iter()
            .map(|w| WorkstreamState::new(&w.name, String::new(), t))
            .collect(),
        alerts: vec![],
        overruns: vec![],
    }
}

struct Outcome {
    state: RunState,
    work: Arc<FakeWork>,
    events: Vec<Event>,
    observer: Counting,
    took: Duration,
}

/// Runs a plan with fake work; `interrupt_at` sends one Ctrl-C at that virtual time.
async fn run(
    plan: Plan,
    options: Options,
    behaviours: BTreeMap<usize, Behaviour>,
    journal: MemoryJournal,
    interrupt_at: Option<Duration>,
) -> Outcome {
    let state = state_of(&plan);
    let work = Arc::new(FakeWork::new(behaviours));
    let events = journal.events.clone();
    let core = Core::new(Arc::new(plan), state, options, true, 1);
    let mut observer = Counting::default();
    let (tx, rx) = mpsc::unbounded_channel();
    if let Some(at) = interrupt_at {
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            let _ = tx.send(());
        });
    } else {
        std::mem::forget(tx);
    }
    let started = Instant::now();
    let driver = Driver::new(core, work.clone(), Box::new(journal), &mut observer);
    let state = driver
        .run(
            Begin {
                resumed: false,
                workflow_hash: None,
            },
            rx,
        )
        .await;
    let took = started.elapsed();
    let events = events.lock().unwrap().clone();
    Outcome {
        state,
        work,
        events,
        observer,
        took,
    }
}

fn options(max_parallel: usize) -> Options {
    Options {
        max_parallel: Some(max_parallel),
        retry_base: Duration::from_secs(1),
        ..Options::default()
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn slots_are_filled_at_once_longest_path_first_on_virtual_time() {
    // a (10 s) -> b (20 s); c (25 s); d (5 s); two slots. a (the longest path) and c start;
    // when a is ready its slot goes to d at once (b waits for a's merge), b follows d.
    let plan = plan(
        r#"
workstream "a" { owns "w0/**"; script "true" }
workstream "b" { owns "w1/**"; depends-on "a"; script "true" }
workstream "c" { owns "w2/**"; script "true" }
workstream "d" { owns "w3/**"; script "true" }
"#,
    );
    let behaviours = BTreeMap::from([
        (0, Behaviour::default()),
        (
            1,
            Behaviour {
                takes: vec![secs(20)],
                ..Behaviour::default()
            },
        ),
        (
            2,
            Behaviour {
                takes: vec![secs(25)],
                ..Behaviour::default()
            },
        ),
        (
            3,
            Behaviour {
                takes: vec![secs(5)],
                ..Behaviour::default()
            },
        ),
    ]);
    let out = run(plan, options(2), behaviours, MemoryJournal::default(), None).await;
    assert_eq!(out.state.status, RunStatus::Succeeded);
    assert_eq!(out.work.peak(), 2, "never more than two at once");
    let attempts = out.work.attempts();
    let at = |w: usize| attempts.iter().find(|a| a.workstream == w).expect("ran").clone();
    assert_eq!(at(0).started, Duration::ZERO, "the longest path starts first");
    assert_eq!(at(2).started, Duration::ZERO);
    assert_eq!(at(3).started, secs(10), "d in the slot a left");
    assert_eq!(at(1).started, secs(15), "b in the slot d left");
    assert_eq!(out.took, secs(35));
    assert!(out.observer.finished);
}

#[tokio::test(start_paused = true)]
async fn a_retry_waits_its_backoff_and_a_second_failure_ends_the_workstream() {
    let plan = plan(r#"workstream "flaky" { owns "w0/**"; retries 2; script "true" }"#);
    let behaviours = BTreeMap::from([(
        0,
        Behaviour {
            exits: vec![1, 1, 0],
            ..Behaviour::default()
        },
    )]);
    let out = run(plan, options(1), behaviours, MemoryJournal::default(), None).await;
    let attempts = out.work.attempts();
    assert_eq!(attempts.len(), 3);
    let first_wait = attempts[1].started - attempts[0].ended;
    let second_wait = attempts[2].started - attempts[1].ended;
    assert!(
        (Duration::from_millis(800)..=Duration::from_millis(1200)).contains(&first_wait),
        "{first_wait:?}"
    );
    assert!(
        (Duration::from_millis(1600)..=Duration::from_millis(2400)).contains(&second_wait),
        "{second_wait:?}"
    );
    assert_eq!(
        out.state.workstreams[0].phase,
        Phase::Merged,
        "the third attempt passed"
    );
    assert_eq!(out.state.workstreams[0].attempts, 3);
}

#[tokio::test(start_paused = true)]
async fn ctrl_c_stops_running_agents_at_once_and_the_run_ends_cancelled() {
    let plan = plan(
        r#"
workstream "a" { owns "w0/**"; script "true" }
workstream "b" { owns "w1/**"; script "true" }
workstream "c" { owns "w2/**"; depends-on "a"; script "true" }
"#,
    );
    let long = Behaviour {
        takes: vec![secs(3600)],
        ..Behaviour::default()
    };
    let behaviours = BTreeMap::from([(0, long.clone()), (1, long)]);
    let out = run(plan, options(2), behaviours, MemoryJournal::default(), Some(secs(5))).await;
    assert_eq!(out.took, secs(5), "nothing waited for the hour-long agents");
    assert!(out.work.attempts().iter().all(|a| a.stopped && a.ended == secs(5)));
    assert_eq!(out.state.status, RunStatus::Cancelled);
    let phases: Vec<Phase> = out.state.workstreams.iter().map(|w| w.phase).collect();
    assert_eq!(phases, [Phase::Cancelled, Phase::Cancelled, Phase::Skipped]);
}

#[tokio::test(start_paused = true)]
async fn streamed_usage_past_a_budget_stops_the_agent_where_it_crossed() {
    let plan = plan(r#"workstream "spender" { owns "w0/**"; budget usd=1; script "true" }"#);
    let behaviours = BTreeMap::from([(
        0,
        Behaviour {
            takes: vec![secs(100)],
            usage: vec![(secs(1), 0.3), (secs(2), 0.85), (secs(3), 1.4), (secs(4), 2.0)],
            ..Behaviour::default()
        },
    )]);
    let out = run(plan, options(1), behaviours, MemoryJournal::default(), None).await;
    let attempt = &out.work.attempts()[0];
    assert!(attempt.stopped);
    assert_eq!(attempt.ended, secs(3), "stopped on the report that crossed, not later");
    let ws = &out.state.workstreams[0];
    assert_eq!(ws.phase, Phase::Failed);
    let failure = ws.failure.as_ref().expect("a failure");
    assert_eq!(
        failure.message,
        "workstream `spender`: budget exhausted: $1.4000 spent of $1.00"
    );
    assert_eq!(out.state.alerts.len(), 1, "the 80% alert: {:?}", out.state.alerts);
    assert_eq!(out.observer.lines, 3, "every line reached the observers");
}

#[tokio::test(start_paused = true)]
async fn no_agent_starts_once_the_event_log_cannot_be_written() {
    let plan = plan(
        r#"
workstream "a" { owns "w0/**"; script "true" }
workstream "b" { owns "w1/**"; script "true" }
"#,
    );
    // The log takes the run's start and the first phase change, then fails.
    let journal = MemoryJournal {
        fail_after: Some(2),
        ..MemoryJournal::default()
    };
    let out = run(plan, options(2), BTreeMap::new(), journal, None).await;
    assert!(out.work.attempts().is_empty(), "{:?}", out.work.attempts());
    assert_eq!(out.events.len(), 2);
    assert_eq!(out.observer.notices.len(), 1, "said once: {:?}", out.observer.notices);
    assert!(out.observer.notices[0].contains("disk full"));
    assert!(
        out.state.workstreams.iter().all(
            |w| w.phase == Phase::Cancelled && w.reason.as_deref() == Some("the run's event log cannot be written")
        )
    );
}

#[tokio::test(start_paused = true)]
async fn the_record_is_every_event_in_order_and_snapshots_are_spaced() {
    let body: String = (0..20)
        .map(|i| format!("workstream \"s{i}\" {{ owns \"w{i}/**\"; script \"true\" }}\n"))
        .collect();
    let behaviours = (0..20)
        .map(|i| {
            (
                i,
                Behaviour {
                    takes: vec![Duration::from_millis(10 * (i as u64 + 1))],
                    ..Behaviour::default()
                },
            )
        })
        .collect();
    let journal = MemoryJournal::default();
    let snapshots = journal.snapshots.clone();
    let out = run(plan(&body), options(4), behaviours, journal, None).await;
    assert_eq!(out.state.status, RunStatus::Succeeded);
    for (k, event) in out.events.iter().enumerate() {
        assert_eq!(event.seq, k as u64 + 1);
    }
    assert_eq!(out.observer.events, out.events.len(), "observers see what the log has");
    let snapshots = *snapshots.lock().unwrap();
    // Merges and the end are written at once; nothing else more often than every 250 ms.
    assert!(
        snapshots <= 20 + 1 + 1 + 1,
        "{snapshots} snapshots for a {:?} run",
        out.took
    );
}
