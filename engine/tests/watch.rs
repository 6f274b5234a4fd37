//! Seeing a run: the fold of a record into a [`RunView`] (stages, attempts apart, waits,
//! critical path), the dashboard drawn on ratatui's test backend at two sizes (snapshots),
//! and the report page's content.

use flow_engine::agent::Usage;
use flow_engine::report::html::{Extras as PageExtras, render};
use flow_engine::run::state::{
    Event, EventKind, Failure, FailureKind, Phase, Purpose, RunState, RunStatus, WorkstreamState,
};
use flow_engine::time::Timestamp;
use flow_engine::tui::screen::{Dashboard, Entry, EntryKind, Extras, Search, Tab, draw};
use flow_engine::view::{RunView, Stage, Wait};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("a valid time")
}

/// A workflow of five: `schema`; `api` and `ui` on it; `billing` alone; `docs` on `api` and `ui`.
fn workflow() -> flow_dsl::Workflow {
    let text = r#"
workflow "shop" { base "main"; }
agent "shell" { command "sh" "-c" "{script}"; output "text"; }
defaults { agent "shell"; }
workstream "schema" { owns "schema/**"; script "true" }
workstream "api" { owns "api/**"; script "true"; depends-on "schema" }
workstream "ui" { owns "ui/**"; script "true"; depends-on "schema" }
workstream "billing" { owns "billing/**"; script "true" }
workstream "docs" { owns "docs/**"; script "true"; depends-on "api" "ui" }
"#;
    flow_dsl::check_text("parallel.kdl", text)
        .expect("a valid workflow")
        .workflow
}

/// A record: `schema` merged; `api` runs its second attempt after a crash; `ui` is queued
/// for merge; `billing` failed; `docs` waits on `api`. Each event is applied to the state as
/// the run does.
fn record(ended: bool) -> (RunState, Vec<Event>) {
    let names = ["schema", "api", "ui", "billing", "docs"];
    let mut state = RunState {
        version: 1,
        id: "20270115-080000-abcd".into(),
        workflow: "shop".into(),
        workflow_file: None,
        workflow_hash: "h".into(),
        repository: "/repo".into(),
        base: Some("main".into()),
        base_commit: None,
        into: "integration/shop".into(),
        last_good: None,
        status: RunStatus::Running,
        started_at: at(0),
        ended_at: None,
        last_event: 0,
        workstreams: names
            .iter()
            .map(|n| WorkstreamState::new(n, "x".into(), at(0)))
            .collect(),
        alerts: vec![],
        overruns: vec![],
    };
    let usage = |cost: f64| Usage {
        input_tokens: 1000,
        output_tokens: 500,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost_usd: Some(cost),
    };
    let phase = |w: usize, phase: Phase| EventKind::Phase {
        workstream: w,
        phase,
        reason: None,
    };
    let start = |w: usize, attempt: u32| EventKind::AttemptStarted {
        workstream: w,
        attempt,
        purpose: Purpose::Work,
        feedback: None,
    };
    let end = |w: usize, attempt: u32, cost: f64| EventKind::AttemptEnded {
        workstream: w,
        attempt,
        usage: usage(cost),
        session_id: None,
        error: None,
        last_line: Some("done".into()),
        result: None,
        session_cost: None,
    };
    let mut kinds: Vec<(i64, EventKind)> = vec![
        (
            0,
            EventKind::RunStarted {
                pid: 1,
                resumed: false,
                workflow_hash: None,
            },
        ),
        (1, phase(0, Phase::Preparing)),
        (1, phase(3, Phase::Preparing)),
        (2, start(0, 1)),
        (2, start(3, 1)),
        (10, end(0, 1, 0.25)),
        (10, phase(0, Phase::Checking)),
        (11, phase(0, Phase::Ready)),
        (11, phase(0, Phase::Merging)),
        (
            12,
            EventKind::Merged {
                workstream: 0,
                merge_commit: "c0".into(),
                verify: None,
            },
        ),
        (13, phase(1, Phase::Preparing)),
        (13, phase(2, Phase::Preparing)),
        (14, start(1, 1)),
        (14, start(2, 1)),
        (15, end(3, 1, 0.1)),
        (
            15,
            EventKind::Failed {
                workstream: 3,
                failure: Failure::new(FailureKind::Test, "test failed: 2 of 9 tests failed"),
            },
        ),
        (20, end(1, 1, 0.5)),
        (22, start(1, 2)),
        (
            22,
            EventKind::Usage {
                workstream: 1,
                usage: usage(0.05),
            },
        ),
        (24, end(2, 1, 0.2)),
        (24, phase(2, Phase::Checking)),
        (25, phase(2, Phase::Ready)),
        (
            26,
            EventKind::Alert {
                workstream: None,
                message: "run budget at 80%".into(),
            },
        ),
    ];
    if ended {
        kinds.push((
            30,
            EventKind::RunEnded {
                status: RunStatus::Cancelled,
            },
        ));
    }
    let mut events = vec![];
    for (seq, (second, kind)) in kinds.into_iter().enumerate() {
        let event = Event {
            seq: seq as u64 + 1,
            at: at(second),
            kind,
        };
        state.apply(&event);
        events.push(event);
    }
    (state, events)
}

fn view() -> RunView {
    let (state, events) = record(false);
    RunView::build(&state, &events, Some(&workflow()), at(28))
}

#[test]
fn the_fold_gives_every_stage_with_its_times_and_attempts_apart() {
    let view = view();
    let stages = |name: &str| -> Vec<(Stage, i64, Option<i64>, Option<u32>)> {
        let w = view
            .workstreams
            .iter()
            .find(|w| w.name == name)
            .expect("the workstream");
        w.spans
            .iter()
            .map(|s| {
                (
                    s.stage,
                    s.start.as_second() - at(0).as_second(),
                    s.end.map(|e| e.as_second() - at(0).as_second()),
                    s.attempt,
                )
            })
            .collect()
    };
    assert_eq!(
        stages("schema"),
        [
            (Stage::Waiting, 0, Some(1), None),
            (Stage::Setup, 1, Some(2), None),
            (Stage::Agent, 2, Some(10), Some(1)),
            (Stage::Check, 10, Some(11), None),
            (Stage::Queued, 11, Some(11), None),
            (Stage::Merge, 11, Some(12), None),
        ]
    );
    assert_eq!(
        stages("api"),
        [
            (Stage::Waiting, 0, Some(13), None),
            (Stage::Setup, 13, Some(14), None),
            (Stage::Agent, 14, Some(22), Some(1)),
            (Stage::Agent, 22, None, Some(2)),
        ],
        "the retry is a span of its own, going on"
    );
    assert_eq!(
        stages("billing"),
        [
            (Stage::Waiting, 0, Some(1), None),
            (Stage::Setup, 1, Some(2), None),
            (Stage::Agent, 2, Some(15), Some(1)),
        ]
    );
    let wait = |name: &str| {
        view.workstreams
            .iter()
            .find(|w| w.name == name)
            .and_then(|w| w.wait.clone())
    };
    assert_eq!(wait("docs"), Some(Wait::Dependencies(vec!["api".into(), "ui".into()])));
    assert_eq!(wait("ui"), Some(Wait::Merge(1)));
    assert_eq!(wait("api"), None);
    assert_eq!(view.queue, [2]);
    let names: Vec<&str> = view
        .critical_path
        .iter()
        .map(|&i| view.workstreams[i].name.as_str())
        .collect();
    assert_eq!(names, ["schema", "api"], "api goes on longest, after schema");
    // Finished attempts and the running one's streamed usage.
    let api = &view.workstreams[1];
    assert_eq!(api.spent().cost_usd.map(|c| (c * 100.0).round()), Some(55.0));
    let counts = view.counts();
    assert_eq!(
        (
            counts.running,
            counts.waiting,
            counts.queued,
            counts.done,
            counts.failed
        ),
        (1, 1, 1, 1, 1)
    );
}

#[test]
fn a_run_that_ended_closes_every_span_at_its_end() {
    let (state, events) = record(true);
    let view = RunView::build(&state, &events, Some(&workflow()), at(99));
    assert_eq!(view.now, at(30), "the view of a finished run is taken at its end");
    for w in &view.workstreams {
        assert!(w.spans.iter().all(|s| s.end.is_some()), "{}: {:?}", w.name, w.spans);
    }
    assert!(
        view.workstreams.iter().all(|w| w.wait.is_none()),
        "nothing waits on a run that is over"
    );
}

fn screen(width: u16, height: u16, dashboard: &Dashboard) -> String {
    terminal(width, height, dashboard).backend().to_string()
}

/// The lines of api's output the snapshots show in its pane.
fn pane() -> Vec<String> {
    (1..=40).map(|i| format!("line {i} of api's output")).collect()
}

fn terminal(width: u16, height: u16, dashboard: &Dashboard) -> Terminal<TestBackend> {
    let view = view();
    let extras = Extras {
        pane: pane(),
        budgets: vec![flow_engine::report::usage::BudgetLine {
            scope: "run".into(),
            spent_usd: Some(1.1),
            limit_usd: Some(2.0),
            spent_tokens: 7500,
            limit_tokens: None,
            percent: Some(55.0),
        }],
    };
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal
        .draw(|frame| draw(frame, &view, dashboard, &extras))
        .expect("it draws");
    terminal
}

#[test]
fn the_dashboard_on_a_wide_terminal() {
    let dashboard = Dashboard {
        selected: 1,
        follow: true,
        ..Dashboard::default()
    };
    insta::assert_snapshot!(screen(120, 30, &dashboard));
}

#[test]
fn the_dashboard_on_a_small_terminal() {
    let dashboard = Dashboard {
        selected: 3,
        tab: Tab::Details,
        ..Dashboard::default()
    };
    insta::assert_snapshot!(screen(60, 16, &dashboard));
    // Too small for anything but the counts: it says so rather than draw a mess.
    let tiny = screen(30, 6, &dashboard);
    assert!(tiny.contains("1 running") && tiny.contains("enlarge"), "{tiny}");
}

#[test]
fn the_message_line_while_a_message_is_typed() {
    let dashboard = Dashboard {
        selected: 1,
        follow: true,
        entry: Some(Entry {
            kind: EntryKind::Message("api".into()),
            text: "use the new client, not the old one".into(),
        }),
        ..Dashboard::default()
    };
    insta::assert_snapshot!(screen(120, 30, &dashboard));
    // On a narrow terminal the end of a long line stays in sight, with the cursor.
    let long = Dashboard {
        entry: Some(Entry {
            kind: EntryKind::Message("api".into()),
            text: format!("{} the end", "word ".repeat(40)),
        }),
        ..dashboard
    };
    let small = screen(60, 16, &long);
    let last = small.lines().last().expect("a footer");
    assert!(last.contains("the end█") && last.contains("message for api:"), "{last}");
}

#[test]
fn a_search_of_the_output_marks_its_matches_and_goes_round_with_n_and_shift_n() {
    let lines = pane();
    let search = Search {
        query: "LINE 3".into(),
        at: None,
    };
    // `line 3` and `line 30` to `line 39`, in any case.
    let matches = search.matches(&lines);
    assert_eq!(matches, [2, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38]);
    // From the pane's last line (following), the next match goes round to the first.
    assert_eq!(search.step(&lines, 39, true), Some(2));
    assert_eq!(search.step(&lines, 39, false), Some(38));
    let at = |at| Search {
        at: Some(at),
        ..search.clone()
    };
    assert_eq!(at(2).step(&lines, 0, true), Some(29));
    assert_eq!(at(2).step(&lines, 0, false), Some(38), "round the top");
    assert_eq!(at(38).step(&lines, 0, true), Some(2), "round the end");

    // The current match (`line 34`) at the bottom of the paused pane.
    let dashboard = Dashboard {
        selected: 1,
        follow: false,
        scroll: lines.len() - 34,
        search: Some(at(33)),
        ..Dashboard::default()
    };
    let terminal = terminal(120, 30, &dashboard);
    insta::assert_snapshot!(terminal.backend().to_string());
    let buffer = terminal.backend().buffer();
    let find = |text: &str| -> (u16, u16) {
        for y in 0..buffer.area.height {
            let row: String = (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect();
            if let Some(k) = row.find(text) {
                return (row[..k].chars().count() as u16, y);
            }
        }
        panic!("{text} is not on the screen")
    };
    use ratatui::style::{Color, Modifier};
    let (x, y) = find("▶line 34");
    assert_eq!(buffer[(x + 1, y)].bg, Color::LightYellow, "the current match");
    assert!(buffer[(x + 10, y)].modifier.contains(Modifier::BOLD));
    let (x, y) = find("line 31 of");
    assert_eq!(buffer[(x, y)].bg, Color::Yellow, "another match");
    assert_eq!(buffer[(x + 7, y)].bg, Color::Reset, "past the match");
    let (x, y) = find("line 29 of");
    assert_eq!(buffer[(x, y)].bg, Color::Reset, "no match");
}

#[test]
fn the_report_page_names_every_workstream_and_shows_the_failure_with_its_log() {
    let view = view();
    let mut extras = PageExtras::default();
    extras
        .log_tails
        .insert("billing".into(), vec!["test_total ... FAILED <oops>".into()]);
    let page = render(&view, &extras);
    for w in &view.workstreams {
        assert!(page.contains(&format!("<tr id=\"ws-{}\">", w.name)), "{}", w.name);
    }
    assert!(page.contains("id=\"fail-billing\""));
    assert!(
        page.contains("test_total ... FAILED &lt;oops&gt;"),
        "log text is escaped"
    );
    assert!(!page.contains("<script"), "the page needs no script");
    assert!(
        !page.contains("http://") || !page.contains("src=\"http"),
        "nothing is fetched"
    );
    assert!(page.contains("waits on api"));
}

#[test]
fn an_agents_escape_sequences_never_reach_the_dashboard_or_the_page() {
    let (mut state, events) = record(false);
    let hostile = "before \u{1b}]0;pwned\u{7} \u{1b}[2J after <script>x</script>";
    state.workstreams[3].failure = Some(Failure::new(FailureKind::Agent, hostile));
    state.workstreams[1].last_line = Some(hostile.into());
    let view = RunView::build(&state, &events, Some(&workflow()), at(28));
    for w in &view.workstreams {
        let note = flow_engine::report::html::status_note(w);
        assert!(!note.chars().any(char::is_control), "{note:?}");
    }
    let extras = Extras {
        pane: vec![hostile.to_string()],
        budgets: vec![],
    };
    let mut terminal = Terminal::new(TestBackend::new(120, 30)).expect("a test terminal");
    terminal
        .draw(|frame| draw(frame, &view, &Dashboard::default(), &extras))
        .expect("it draws");
    let screen = terminal.backend().to_string();
    assert!(screen.contains("after"), "{screen}");
    assert!(!screen.contains('\u{1b}') && !screen.contains('\u{7}'), "{screen:?}");
    let page = render(&view, &PageExtras::default());
    assert!(
        !page.contains('\u{1b}') && !page.contains("<script>x"),
        "the page escapes it"
    );
}
