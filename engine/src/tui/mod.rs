//! `flow watch`: a full-screen dashboard of a run, going on or finished.
//!
//! It reads only the run's folder (`state.json`, `events.jsonl`, `logs/`), so it attaches to
//! a run started in another terminal, by another user's shell, or long over. It follows the
//! folder with file notifications (the `notify` crate: inotify on Linux) and folds the record
//! again into a [`RunView`] when something changed, not on a timer; a clock tick once a
//! second only moves the elapsed times while the run goes on. What it draws is
//! [`screen::draw`], a pure function tested on ratatui's test backend.
//!
//! It never changes the run itself: stop, skip, retry and a message for an agent are
//! requests left in the run's `requests/` folder ([`crate::run::requests`]), which the run
//! reads as inputs to its core. A message and a search of the output are typed on a line at
//! the bottom ([`Entry`]); while one is typed every key goes to it.
//! The terminal is put back on quit, on error and on panic (ratatui's `try_init` installs a
//! panic hook that restores it).

pub mod screen;

use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::git::{Git, Oid};
use crate::report::html::{log_tail, plain_text};
use crate::report::run_table::{dollars, tokens};
use crate::report::usage::usage_report;
use crate::run::requests::{Action, refusal, send, send_message};
use crate::run::state::RunStatus;
use crate::run::store::read_events;
use crate::site::RunDir;
use crate::view::RunView;

pub use self::screen::{Dashboard, Entry, EntryKind, Extras, Search, Tab};

/// How many lines of the selected workstream's log the output pane keeps.
const PANE_LINES: usize = 2000;

/// A run's folder and what is needed to fold it into a view.
pub struct Source {
    pub run_dir: RunDir,
    pub git: Option<Git>,
}

impl Source {
    /// Reads the record and folds it into a view at this moment, with the budgets.
    pub fn load(&self) -> io::Result<(RunView, Extras)> {
        let state = self.run_dir.load()?;
        let events = read_events(&self.run_dir.events_path())?;
        let workflow = state
            .workflow_file
            .as_ref()
            .and_then(|f| flow_dsl::check_file(std::path::Path::new(f)).ok())
            .map(|c| c.workflow);
        let mut view = RunView::build(&state, &events, workflow.as_ref(), crate::time::now());
        // What each agent at work printed last: the record has it only once an attempt ends.
        for w in view.workstreams.iter_mut().filter(|w| w.phase.is_active()) {
            if let Some(line) = log_tail(&self.run_dir.log_path(&w.name), 8)
                .into_iter()
                .rev()
                .find(|l| !l.trim().is_empty())
            {
                w.last_line = Some(line);
            }
        }
        let budgets = match &workflow {
            Some(wf) => usage_report(&state, Some(wf)).budgets,
            None => vec![],
        };
        Ok((view, Extras { pane: vec![], budgets }))
    }

    /// The lines of the selected workstream's pane.
    pub fn pane(&self, view: &RunView, dashboard: &Dashboard) -> Vec<String> {
        let Some(w) = view.workstreams.get(dashboard.selected) else {
            return vec![];
        };
        match dashboard.tab {
            Tab::Output => {
                let mut lines = log_tail(&self.run_dir.log_path(&w.name), PANE_LINES);
                // Why it failed, under its output where the eye already is.
                if let Some(f) = &w.failure {
                    let exit = f.exit.map_or(String::new(), |e| format!(" ({e})"));
                    lines.push(format!("── failed: {}{exit} ──", f.kind));
                    lines.extend(plain_text(&f.message).lines().map(|l| format!("why: {l}")));
                } else if let Some(reason) = w.reason.as_ref().filter(|_| w.phase.is_final()) {
                    lines.push(format!("── {}: {reason} ──", w.phase));
                }
                lines
            }
            Tab::Changes => {
                let from = w.base_commit.as_deref().or(w.start_commit.as_deref());
                let range = from
                    .and_then(|f| f.parse::<Oid>().ok())
                    .zip(w.result_commit.as_deref().and_then(|r| r.parse::<Oid>().ok()));
                match (&self.git, range) {
                    (Some(git), Some((from, to))) => {
                        let mut lines = vec![];
                        let stats = git.diffstat(from, to).unwrap_or_default();
                        let (added, removed) = stats.iter().fold((0, 0), |(a, r), s| (a + s.added, r + s.removed));
                        lines.push(format!("{} files changed, +{added} -{removed}", stats.len()));
                        for s in &stats {
                            lines.push(format!("  {}  +{} -{}", s.path, s.added, s.removed));
                        }
                        lines.push(String::new());
                        let diff = git.diff_text(from, to, 256 * 1024).unwrap_or_default();
                        lines.extend(plain_text(&diff).lines().map(str::to_string));
                        lines
                    }
                    _ if !w.files_changed.is_empty() => {
                        let mut lines = vec![format!("{} files changed:", w.files_changed.len())];
                        lines.extend(w.files_changed.iter().map(|f| format!("  {f}")));
                        lines
                    }
                    _ => vec!["no changes committed yet: flow commits its work when its agent ends".into()],
                }
            }
            Tab::Details => details(view, dashboard.selected),
        }
    }
}

/// The details of one workstream: state, what it waits on or why it failed, its attempts.
fn details(view: &RunView, index: usize) -> Vec<String> {
    let w = &view.workstreams[index];
    let mut lines = vec![format!("state: {}", w.phase.name())];
    if let Some(wait) = &w.wait {
        lines.push(wait.to_string());
    }
    if let Some(f) = &w.failure {
        let exit = f.exit.map_or(String::new(), |e| format!(" ({e})"));
        lines.push(format!("failed: {}{exit}", f.kind));
        lines.extend(plain_text(&f.message).lines().map(|l| format!("why: {l}")));
    }
    if let Some(reason) = &w.reason {
        lines.push(format!("reason: {reason}"));
    }
    let who: Vec<String> = [w.agent.clone(), w.model.clone(), w.account.clone()]
        .into_iter()
        .flatten()
        .collect();
    if !who.is_empty() {
        lines.push(format!("agent: {}", who.join(" · ")));
    }
    if !w.dependencies.is_empty() {
        let names: Vec<&str> = w
            .dependencies
            .iter()
            .map(|&d| view.workstreams[d].name.as_str())
            .collect();
        lines.push(format!("depends on: {}", names.join(", ")));
    }
    if let Some(path) = &w.worktree {
        lines.push(format!("worktree: {path}"));
    }
    lines.push(String::new());
    lines.push(format!("attempts: {}", w.attempts.len()));
    for a in &w.attempts {
        let took = a.ended_at.map_or("going on".to_string(), |e| {
            format_duration(crate::time::elapsed(a.started_at, e))
        });
        let error = a
            .error
            .as_deref()
            .map_or(String::new(), |e| format!("  {}", plain_text(e)));
        lines.push(format!(
            "  #{} {:<7} {took:>8}  {:>7} tokens  {:>7}{error}",
            a.number,
            a.purpose.as_str(),
            tokens(a.usage.total_tokens()),
            dollars(a.usage.cost_usd)
        ));
    }
    if let Some(last) = &w.last_line {
        lines.push(String::new());
        lines.push(format!("last line: {}", plain_text(last)));
    }
    lines
}

use flow_dsl::format_duration;

/// Something the loop wakes up for besides a key.
enum Wake {
    /// The run's folder changed.
    Changed,
}

/// Shows the dashboard until the person quits; the run goes on.
pub fn watch(source: Source) -> io::Result<()> {
    // The folder is followed before the first read, so no change falls in between.
    let (tx, rx) = mpsc::channel();
    let watcher = follow(&source.run_dir.dir, tx);
    let mut terminal = ratatui::try_init()?;
    let result = run_loop(&mut terminal, &source, &rx, watcher.is_ok());
    if hung_up_within(Duration::ZERO) {
        // Nothing to restore on a terminal that is gone, and dropping the terminal would
        // write to it: ratatui then prints its failure with `eprintln!`, which panics on the
        // dead terminal, and the panic hook does it again (an abort, the run's agents left
        // running and its record unfinished).
        std::mem::forget(terminal);
        drop(watcher);
        return result;
    }
    ratatui::try_restore()?;
    drop(watcher);
    result
}

fn follow(dir: &std::path::Path, tx: mpsc::Sender<Wake>) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.send(Wake::Changed);
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// Waits up to `timeout` for input on the terminal (standard input), with `poll(2)` rather
/// than crossterm's wait, which spins on a terminal that hung up instead of returning; tells
/// whether the terminal hung up (or is gone).
fn hung_up_within(timeout: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdin = io::stdin();
    let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    matches!(poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
}

fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    source: &Source,
    rx: &mpsc::Receiver<Wake>,
    notified: bool,
) -> io::Result<()> {
    let mut dashboard = Dashboard {
        follow: true,
        ..Dashboard::default()
    };
    if !notified {
        dashboard.message = Some("cannot follow the run's folder: reading it every second".into());
    }
    let (mut view, mut extras) = source.load()?;
    extras.pane = source.pane(&view, &dashboard);
    // Whose pane and which tab `extras.pane` holds.
    let mut shown = (dashboard.selected, dashboard.tab);
    let mut last_load = Instant::now();
    loop {
        terminal.draw(|frame| screen::draw(frame, &view, &dashboard, &extras))?;
        // Keys are read with a wait, so the loop sleeps between them; changes to the
        // folder arrive as notifications and are taken at the next wake. A terminal that
        // went away (its window closed, tmux killed) hangs up and ends the dashboard:
        // crossterm's own wait spun on it for ever (a finished `flow run --watch` was found
        // at 90% of a core and 3.5 GB two hours later).
        let mut reload = false;
        if hung_up_within(Duration::from_millis(250)) {
            return Ok(());
        }
        // Every event crossterm has, including those one read brought in together (a paste).
        while event::poll(Duration::ZERO)? {
            match event::read()? {
                TermEvent::Key(key) if key.kind != KeyEventKind::Release => {
                    let pane = std::mem::take(&mut extras.pane);
                    let flow = handle_key(key, &mut dashboard, &view, &pane, source, terminal)?;
                    extras.pane = pane;
                    match flow {
                        Flow::Quit => return Ok(()),
                        Flow::Reload => reload = true,
                        Flow::Redraw => {}
                    }
                }
                TermEvent::Resize(..) => {}
                _ => {}
            }
        }
        while rx.try_recv().is_ok() {
            reload = true;
        }
        let ticking = view.status == RunStatus::Running && last_load.elapsed() >= Duration::from_secs(1);
        if reload || ticking || (!notified && last_load.elapsed() >= Duration::from_secs(1)) {
            if let Ok((v, e)) = source.load() {
                view = v;
                extras.budgets = e.budgets;
            }
            dashboard.selected = dashboard.selected.min(view.workstreams.len().saturating_sub(1));
            let before = extras.pane.len();
            let same = shown == (dashboard.selected, dashboard.tab);
            extras.pane = source.pane(&view, &dashboard);
            shown = (dashboard.selected, dashboard.tab);
            // The current match stays where it is on the screen as the output grows below it
            // (the pane keeps the last lines of the log: past that, the lines move under it).
            if same && dashboard.search.as_ref().is_some_and(|s| s.at.is_some()) && !dashboard.follow {
                dashboard.scroll += extras.pane.len().saturating_sub(before);
            }
            last_load = Instant::now();
        }
    }
}

/// What the loop does after a key.
enum Flow {
    Quit,
    Reload,
    Redraw,
}

fn handle_key(
    key: KeyEvent,
    dashboard: &mut Dashboard,
    view: &RunView,
    pane: &[String],
    source: &Source,
    terminal: &mut ratatui::DefaultTerminal,
) -> io::Result<Flow> {
    let n = view.workstreams.len();
    let page = 10;
    dashboard.message = None;
    if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
        return Ok(Flow::Quit);
    }
    if dashboard.entry.is_some() {
        return Ok(type_key(key, dashboard, pane, source));
    }
    let moved = |dashboard: &mut Dashboard, selected: usize| {
        dashboard.selected = selected;
        dashboard.scroll = 0;
        dashboard.follow = true;
        if let Some(s) = dashboard.search.as_mut() {
            s.at = None;
        }
    };
    match key.code {
        // Esc first clears a search; then it quits.
        KeyCode::Esc if dashboard.search.is_some() => {
            dashboard.search = None;
            dashboard.message = Some("search cleared: f follows the output again".into());
        }
        KeyCode::Char('q') | KeyCode::Esc => return Ok(Flow::Quit),
        KeyCode::Down | KeyCode::Char('j') if n > 0 => moved(dashboard, (dashboard.selected + 1).min(n - 1)),
        KeyCode::Up | KeyCode::Char('k') => moved(dashboard, dashboard.selected.saturating_sub(1)),
        KeyCode::Home | KeyCode::Char('g') => moved(dashboard, 0),
        KeyCode::End | KeyCode::Char('G') => moved(dashboard, n.saturating_sub(1)),
        KeyCode::Char('/') => {
            dashboard.tab = Tab::Output;
            dashboard.entry = Some(Entry {
                kind: EntryKind::Search,
                text: dashboard.search.as_ref().map(|s| s.query.clone()).unwrap_or_default(),
            });
        }
        KeyCode::Char(c @ ('n' | 'N')) if dashboard.search.is_some() && dashboard.tab == Tab::Output => {
            jump(dashboard, pane, c == 'n');
        }
        KeyCode::Char('m') => match view.workstreams.get(dashboard.selected) {
            None => dashboard.message = Some("no workstream selected".into()),
            Some(w) => match refusal(view.status, &w.name, w.phase, Action::Message) {
                Some(why) => dashboard.message = Some(why),
                None => {
                    dashboard.entry = Some(Entry {
                        kind: EntryKind::Message(w.name.clone()),
                        text: String::new(),
                    })
                }
            },
        },
        KeyCode::Char('f') | KeyCode::Enter => {
            dashboard.tab = Tab::Output;
            dashboard.follow = !dashboard.follow || dashboard.scroll > 0;
            dashboard.scroll = 0;
        }
        KeyCode::PageUp => {
            dashboard.follow = false;
            dashboard.scroll += page;
        }
        KeyCode::PageDown => {
            dashboard.scroll = dashboard.scroll.saturating_sub(page);
            dashboard.follow = dashboard.scroll == 0;
        }
        KeyCode::Tab => {
            dashboard.tab = dashboard.tab.next();
            dashboard.scroll = 0;
        }
        KeyCode::Char('s') => dashboard.message = Some(request(view, dashboard.selected, Action::Stop, source)),
        KeyCode::Char('x') => dashboard.message = Some(request(view, dashboard.selected, Action::Skip, source)),
        KeyCode::Char('r') => dashboard.message = Some(request(view, dashboard.selected, Action::Retry, source)),
        KeyCode::Char('o') => {
            dashboard.message = Some(open_shell(view, dashboard.selected, terminal)?);
            return Ok(Flow::Reload);
        }
        _ => return Ok(Flow::Redraw),
    }
    Ok(Flow::Reload)
}

/// Leaves a request for the run and says what was asked.
fn request(view: &RunView, index: usize, action: Action, source: &Source) -> String {
    let Some(w) = view.workstreams.get(index) else {
        return "no workstream selected".into();
    };
    if let Some(why) = refusal(view.status, &w.name, w.phase, action) {
        return why;
    }
    match send(&source.run_dir, &w.name, action) {
        Ok(()) => format!("asked the run to {} {}", action.as_str(), w.name),
        Err(e) => format!("cannot ask the run: {e}"),
    }
}

/// A key while a line is typed: it edits the line; Enter sends the message or searches, Esc
/// gives the line up.
fn type_key(key: KeyEvent, dashboard: &mut Dashboard, pane: &[String], source: &Source) -> Flow {
    let Some(entry) = dashboard.entry.as_mut() else {
        return Flow::Redraw;
    };
    match key.code {
        KeyCode::Esc => dashboard.entry = None,
        KeyCode::Backspace => {
            entry.text.pop();
        }
        KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => entry.text.clear(),
        KeyCode::Char(c) if entry.text.chars().count() < entry.limit() => entry.text.push(c),
        KeyCode::Char(_) => dashboard.message = Some(format!("the line is full ({} characters)", entry.limit())),
        KeyCode::Enter => {
            let Some(entry) = dashboard.entry.take() else {
                return Flow::Redraw;
            };
            match entry.kind {
                EntryKind::Message(name) => {
                    dashboard.message = Some(if crate::run::requests::tidy(&entry.text).is_empty() {
                        "an empty message: nothing sent".to_string()
                    } else {
                        match send_message(&source.run_dir, &name, &entry.text) {
                            Ok(()) => format!("sent {name} a message: its agent gets it when its current attempt ends"),
                            Err(e) => format!("cannot ask the run: {e}"),
                        }
                    });
                    return Flow::Reload;
                }
                EntryKind::Search if entry.text.is_empty() => dashboard.search = None,
                EntryKind::Search => {
                    dashboard.search = Some(Search {
                        query: entry.text,
                        at: None,
                    });
                    jump(dashboard, pane, true);
                }
            }
        }
        _ => {}
    }
    Flow::Redraw
}

/// Goes to the next (or previous) match of the search, pausing the output there.
fn jump(dashboard: &mut Dashboard, pane: &[String], forward: bool) {
    let Some(search) = dashboard.search.as_mut() else {
        return;
    };
    // With no match chosen yet, the search starts from the line at the pane's bottom.
    let bottom = pane.len().saturating_sub(dashboard.scroll + 1);
    match search.step(pane, bottom, forward) {
        Some(at) => {
            search.at = Some(at);
            dashboard.follow = false;
            dashboard.scroll = pane.len().saturating_sub(at + 1);
        }
        None => dashboard.message = Some(format!("no line holds \"{}\"", search.query)),
    }
}

/// Suspends the dashboard for a shell in the selected workstream's worktree.
fn open_shell(view: &RunView, index: usize, terminal: &mut ratatui::DefaultTerminal) -> io::Result<String> {
    let Some(w) = view.workstreams.get(index) else {
        return Ok("no workstream selected".into());
    };
    let Some(dir) = w.worktree.as_ref().map(PathBuf::from).filter(|d| d.is_dir()) else {
        return Ok(format!("{} has no worktree (yet)", w.name));
    };
    let shell = std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into());
    ratatui::try_restore()?;
    println!(
        "a shell in {} ({}); exit it to go back to the dashboard",
        dir.display(),
        w.name
    );
    let status = std::process::Command::new(&shell).current_dir(&dir).status();
    ratatui::crossterm::terminal::enable_raw_mode()?;
    ratatui::crossterm::execute!(io::stdout(), ratatui::crossterm::terminal::EnterAlternateScreen)?;
    terminal.clear()?;
    Ok(match status {
        Ok(_) => format!("back from the shell in {}", w.name),
        Err(e) => format!("cannot start {}: {e}", shell.to_string_lossy()),
    })
}
