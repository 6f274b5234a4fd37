//! What the dashboard draws, from a [`RunView`] and the dashboard's own state: a pure
//! function of both, so that tests render it on ratatui's test backend at any size.
//!
//! The screen, from the top: the run (workflow, status, time, cost), counts of what runs,
//! waits, is queued, done and failed; the workstreams (state, time, attempts, tokens, cost,
//! what each waits on or why it stopped) beside the selected one's pane (its output, its
//! changes or its details); the merge queue, budgets and alerts; the keys. Narrow terminals
//! stack the pane under the list; short ones drop the pane and the bottom panels; a tiny one
//! says so and shows the counts.

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};

use flow_dsl::format_duration;

use crate::report::html::status_note;
use crate::report::run_table::{dollars, tokens};
use crate::report::usage::BudgetLine;
use crate::run::state::{Phase, RunStatus};
use crate::view::RunView;

/// What the right (or lower) pane shows about the selected workstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tab {
    /// Its log, followed or scrolled.
    #[default]
    Output,
    /// Its diffstat and diff.
    Changes,
    /// Its attempts, failure, waits and worktree.
    Details,
}

impl Tab {
    /// The next tab, for Tab.
    pub fn next(self) -> Tab {
        match self {
            Tab::Output => Tab::Changes,
            Tab::Changes => Tab::Details,
            Tab::Details => Tab::Output,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Tab::Output => "output",
            Tab::Changes => "changes",
            Tab::Details => "details",
        }
    }
}

/// The dashboard's own state: what is selected and how the pane is scrolled.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    /// The selected workstream (an index into the view's workstreams).
    pub selected: usize,
    pub tab: Tab,
    /// The pane sticks to the end of the output as it grows.
    pub follow: bool,
    /// Lines scrolled up from the end, when not following.
    pub scroll: usize,
    /// A line for the person: what a key did, or why it did nothing.
    pub message: Option<String>,
    /// The line being typed at the bottom (a message, a search), if one is.
    pub entry: Option<Entry>,
    /// The search of the output pane, once entered: its matches are highlighted.
    pub search: Option<Search>,
}

/// A line the person types at the bottom of the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    pub text: String,
}

/// What a typed line is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A message for this workstream's agent (m).
    Message(String),
    /// A search of the output pane (/).
    Search,
}

impl Entry {
    /// The longest line that may be typed: a message's limit, or a search's.
    pub fn limit(&self) -> usize {
        match self.kind {
            EntryKind::Message(_) => crate::run::requests::MESSAGE_MAX,
            EntryKind::Search => 200,
        }
    }
}

/// A search of the output pane: matches are lines holding the query, ASCII letters in any
/// case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub query: String,
    /// The current match: an index into the pane's lines.
    pub at: Option<usize>,
}

impl Search {
    /// The indices of the lines that hold the query.
    pub fn matches(&self, lines: &[String]) -> Vec<usize> {
        let query = self.query.to_ascii_lowercase();
        if query.is_empty() {
            return vec![];
        }
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.to_ascii_lowercase().contains(&query))
            .map(|(i, _)| i)
            .collect()
    }

    /// The match after (`forward`) or before the current one, or at or around the line
    /// `from` when none is current yet, going round at the ends.
    pub fn step(&self, lines: &[String], from: usize, forward: bool) -> Option<usize> {
        let matches = self.matches(lines);
        let found = match (self.at, forward) {
            (Some(at), true) => matches.iter().copied().find(|&m| m > at),
            (Some(at), false) => matches.iter().rev().copied().find(|&m| m < at),
            (None, true) => matches.iter().copied().find(|&m| m >= from),
            (None, false) => matches.iter().rev().copied().find(|&m| m <= from),
        };
        found.or(if forward { matches.first() } else { matches.last() }.copied())
    }
}

/// What the dashboard draws besides the view: the pane's lines and the budgets.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The lines of the selected workstream's pane (its log, its changes or its details).
    pub pane: Vec<String>,
    pub budgets: Vec<BudgetLine>,
}

/// The colour of a workstream's state.
pub fn phase_color(phase: Phase) -> Color {
    match phase {
        Phase::Merged | Phase::Done => Color::Green,
        Phase::Failed | Phase::Conflicted => Color::Red,
        Phase::Pending | Phase::Skipped | Phase::Cancelled => Color::DarkGray,
        Phase::Ready => Color::Yellow,
        Phase::Fixing | Phase::Resolving => Color::Magenta,
        Phase::Merging => Color::Cyan,
        Phase::Preparing | Phase::Running | Phase::Checking | Phase::Reviewing => Color::Blue,
    }
}

fn status_color(status: RunStatus) -> Color {
    match status {
        RunStatus::Running => Color::Blue,
        RunStatus::Succeeded => Color::Green,
        RunStatus::Failed => Color::Red,
        RunStatus::Cancelled => Color::Yellow,
    }
}

/// Draws the whole dashboard.
pub fn draw(frame: &mut Frame, view: &RunView, dashboard: &Dashboard, extras: &Extras) {
    let area = frame.area();
    if area.width < 40 || area.height < 8 {
        return tiny(frame, view);
    }
    let wide = area.width >= 110;
    let tall = area.height >= 24;
    let bottom = if tall { 6 } else { 0 };
    let [header, body, panels, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Length(bottom),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, view);
    if wide {
        let [list, pane] = Layout::horizontal([Constraint::Percentage(64), Constraint::Percentage(36)]).areas(body);
        draw_list(frame, list, view, dashboard, true);
        draw_pane(frame, pane, view, dashboard, extras);
    } else if body.height >= 16 {
        let rows = (view.workstreams.len() as u16 + 3).min(body.height / 2).max(5);
        let [list, pane] = Layout::vertical([Constraint::Length(rows), Constraint::Min(3)]).areas(body);
        draw_list(frame, list, view, dashboard, area.width >= 80);
        draw_pane(frame, pane, view, dashboard, extras);
    } else {
        draw_list(frame, body, view, dashboard, area.width >= 80);
    }
    if tall {
        draw_panels(frame, panels, view, extras);
    }
    draw_footer(frame, footer, dashboard, area.width);
}

/// A terminal too small for the dashboard: the counts, and how to get more.
fn tiny(frame: &mut Frame, view: &RunView) {
    let c = view.counts();
    let text = vec![
        Line::from(vec![
            Span::raw(format!("{} ", view.workflow)),
            Span::styled(view.status.as_str(), Style::new().fg(status_color(view.status))),
        ]),
        Line::from(format!("{} running {} waiting", c.running, c.waiting)),
        Line::from(format!("{} done {} failed", c.done, c.failed)),
        Line::from("(enlarge; q quits)".dark_gray()),
    ];
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), frame.area());
}

fn draw_header(frame: &mut Frame, area: Rect, view: &RunView) {
    let spent = view.spent();
    let title = Line::from(vec![
        Span::styled(" flow ", Style::new().bold().reversed()),
        Span::raw(" "),
        Span::styled(view.workflow.clone(), Style::new().bold()),
        Span::raw("  "),
        Span::styled(
            format!("● {}", view.status.as_str()),
            Style::new().fg(status_color(view.status)).bold(),
        ),
        Span::raw(format!(
            "  {}  {}  {} tokens  run {}",
            format_duration(view.duration()),
            dollars(spent.cost_usd),
            tokens(spent.total_tokens()),
            view.id
        )),
    ]);
    let c = view.counts();
    let mut counts = vec![
        count(c.running, "running", Color::Blue),
        count(c.waiting, "waiting", Color::Gray),
        count(c.queued, "queued", Color::Yellow),
        count(c.done, "done", Color::Green),
        count(c.failed, "failed", Color::Red),
    ];
    if c.stopped > 0 {
        counts.push(count(c.stopped, "skipped", Color::DarkGray));
    }
    let mut spans = vec![Span::raw(" ")];
    for (i, part) in counts.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" · "));
        }
        spans.extend(part);
    }
    frame.render_widget(Paragraph::new(vec![title, Line::from(spans)]), area);
}

fn count(n: usize, what: &'static str, color: Color) -> Vec<Span<'static>> {
    let style = if n > 0 {
        Style::new().fg(color).bold()
    } else {
        Style::new().dark_gray()
    };
    vec![
        Span::styled(n.to_string(), style),
        Span::styled(format!(" {what}"), style),
    ]
}

fn draw_list(frame: &mut Frame, area: Rect, view: &RunView, dashboard: &Dashboard, roomy: bool) {
    let header = if roomy {
        vec![
            "",
            "WORKSTREAM",
            "STATE",
            "TIME",
            "ATT",
            "TOKENS",
            "COST",
            "WAITS ON / WHY / LAST LINE",
        ]
    } else {
        vec!["", "WORKSTREAM", "STATE", "TIME", "NOTE"]
    };
    let rows = view.workstreams.iter().enumerate().map(|(i, w)| {
        let color = phase_color(w.phase);
        let mark = if w.critical { "◆" } else { " " };
        let time = if w.started_at.is_some() {
            format_duration(w.busy(view.now))
        } else {
            "-".into()
        };
        let note = status_note(w);
        let note_style = match w.phase {
            Phase::Failed | Phase::Conflicted => Style::new().red(),
            Phase::Pending | Phase::Ready => Style::new().yellow(),
            _ => Style::new().dark_gray(),
        };
        let spent = w.spent();
        let mut cells = vec![
            Cell::from(mark).red(),
            Cell::from(w.name.clone()).bold(),
            Cell::from(w.phase.name()).fg(color),
            Cell::from(time),
        ];
        if roomy {
            cells.push(Cell::from(w.attempt_count().to_string()));
            cells.push(Cell::from(tokens(spent.total_tokens())));
            cells.push(Cell::from(dollars(spent.cost_usd)));
        }
        cells.push(Cell::from(note).style(note_style));
        let row = Row::new(cells);
        if i == dashboard.selected {
            row.style(Style::new().add_modifier(Modifier::REVERSED))
        } else {
            row
        }
    });
    let widths: Vec<Constraint> = if roomy {
        vec![
            Constraint::Length(1),
            Constraint::Length(name_width(view)),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(3),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Min(10),
        ]
    } else {
        vec![
            Constraint::Length(1),
            Constraint::Length(name_width(view)),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Min(6),
        ]
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(Style::new().dark_gray()))
        .block(Block::new().borders(Borders::TOP).title(" workstreams "));
    let mut state = TableState::new().with_selected(Some(dashboard.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn name_width(view: &RunView) -> u16 {
    view.workstreams
        .iter()
        .map(|w| w.name.chars().count())
        .max()
        .unwrap_or(10)
        .clamp(10, 24) as u16
}

fn draw_pane(frame: &mut Frame, area: Rect, view: &RunView, dashboard: &Dashboard, extras: &Extras) {
    let name = view
        .workstreams
        .get(dashboard.selected)
        .map_or("-", |w| w.name.as_str());
    let search = dashboard.search.as_ref().filter(|_| dashboard.tab == Tab::Output);
    let matches = search.map(|s| s.matches(&extras.pane)).unwrap_or_default();
    let how = match dashboard.tab {
        Tab::Output if search.is_some() => {
            let query = search.map_or("", |s| s.query.as_str());
            let at = search
                .and_then(|s| s.at)
                .and_then(|a| matches.iter().position(|&m| m == a));
            match at {
                _ if matches.is_empty() => format!(" /{query}: no match"),
                Some(k) => format!(" /{query}: {}/{}", k + 1, matches.len()),
                None => format!(" /{query}: {} matches", matches.len()),
            }
        }
        Tab::Output if dashboard.follow => " (following)".to_string(),
        Tab::Output if dashboard.scroll > 0 => format!(" (scrolled up {})", dashboard.scroll),
        Tab::Output => " (paused: f follows)".to_string(),
        _ => String::new(),
    };
    let block = Block::new()
        .borders(Borders::TOP | Borders::LEFT)
        .title(format!(" {} of {name}{how} ", dashboard.tab.name()));
    let inner = block.inner(area);
    let height = inner.height as usize;
    let end = extras
        .pane
        .len()
        .saturating_sub(dashboard.scroll.min(extras.pane.len()));
    let lines: Vec<Line> = if dashboard.tab == Tab::Output {
        let start = end.saturating_sub(height);
        extras.pane[start..end]
            .iter()
            .enumerate()
            .map(|(k, l)| match search {
                Some(s) if matches.binary_search(&(start + k)).is_ok() => {
                    highlighted(l, &s.query, s.at == Some(start + k))
                }
                _ => styled_pane_line(l, false),
            })
            .collect()
    } else {
        extras
            .pane
            .iter()
            .skip(dashboard.scroll)
            .map(|l| styled_pane_line(l, dashboard.tab == Tab::Changes))
            .collect()
    };
    let lines = if lines.is_empty() {
        vec![Line::from("(nothing yet)".dark_gray())]
    } else {
        lines
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// A line of the pane, coloured: a diff's lines when `diff`, why a workstream failed.
fn styled_pane_line(line: &str, diff: bool) -> Line<'static> {
    let style = if diff && line.starts_with('+') && !line.starts_with("+++") {
        Style::new().green()
    } else if diff && line.starts_with('-') && !line.starts_with("---") {
        Style::new().red()
    } else if diff && line.starts_with("@@") {
        Style::new().cyan()
    } else if line.starts_with("failed") || line.starts_with("why:") || line.starts_with("── failed") {
        Style::new().red().bold()
    } else {
        Style::new()
    };
    // What the pane shows was read without escape sequences; no control character gets
    // through here either, whatever the caller passed.
    let text: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    Line::styled(text, style)
}

/// A line of the pane holding the search's query: each match marked, the current match's
/// line in bold.
fn highlighted(line: &str, query: &str, current: bool) -> Line<'static> {
    let text: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    // ASCII lowering keeps every byte where it is, so positions found in it hold in `text`.
    let lower = text.to_ascii_lowercase();
    let query = query.to_ascii_lowercase();
    let base = if current {
        Style::new().add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    let mark = Style::new()
        .fg(Color::Black)
        .bg(if current { Color::LightYellow } else { Color::Yellow });
    let mut spans = vec![];
    let mut from = 0;
    while let Some(found) = lower[from..].find(&query).filter(|_| !query.is_empty()) {
        let start = from + found;
        let end = start + query.len();
        spans.push(Span::styled(text[from..start].to_string(), base));
        spans.push(Span::styled(text[start..end].to_string(), mark));
        from = end;
    }
    spans.push(Span::styled(text[from..].to_string(), base));
    if current {
        spans.insert(0, Span::styled("▶", mark));
    }
    Line::from(spans)
}

fn draw_panels(frame: &mut Frame, area: Rect, view: &RunView, extras: &Extras) {
    let [left, right] = Layout::new(
        Direction::Horizontal,
        [Constraint::Percentage(50), Constraint::Percentage(50)],
    )
    .areas(area);
    // The merge queue and the alerts.
    let mut lines = vec![];
    let queue: Vec<String> = view
        .queue
        .iter()
        .enumerate()
        .map(|(k, &i)| format!("{}. {}", k + 1, view.workstreams[i].name))
        .collect();
    lines.push(Line::from(vec![
        Span::styled("merge queue: ", Style::new().bold()),
        Span::raw(if queue.is_empty() {
            "empty".to_string()
        } else {
            queue.join("  ")
        }),
    ]));
    let merging: Vec<&str> = view
        .workstreams
        .iter()
        .filter(|w| w.phase == Phase::Merging)
        .map(|w| w.name.as_str())
        .collect();
    if !merging.is_empty() {
        lines.push(Line::from(format!("merging now: {}", merging.join(", "))).cyan());
    }
    for o in &view.overruns {
        lines.push(Line::from(format!("OVER BUDGET: {}", o.overrun())).red().bold());
    }
    for a in view.alerts.iter().rev().take(4) {
        lines.push(Line::from(format!("! {a}")).yellow());
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::new().borders(Borders::TOP).title(" queue and alerts ")),
        left,
    );
    // Budgets as gauges.
    let width = right.width.saturating_sub(44).clamp(4, 24) as usize;
    let mut lines = vec![];
    if extras.budgets.is_empty() {
        lines.push(Line::from("no budget set".dark_gray()));
    }
    for b in &extras.budgets {
        let pct = b.percent.unwrap_or(0.0);
        let filled = ((pct.min(100.0) / 100.0) * width as f64).round() as usize;
        let color = if pct >= 100.0 {
            Color::Red
        } else if pct >= 80.0 {
            Color::Yellow
        } else {
            Color::Green
        };
        let spent = match b.limit_usd {
            Some(l) => format!("{} / ${l:.2}", dollars(b.spent_usd)),
            None => format!("{} / {}", tokens(b.spent_tokens), tokens(b.limit_tokens.unwrap_or(0))),
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{:<16.16} ", b.scope)),
            Span::styled("█".repeat(filled), Style::new().fg(color)),
            Span::styled("░".repeat(width - filled), Style::new().dark_gray()),
            Span::styled(format!(" {pct:>3.0}% "), Style::new().fg(color).bold()),
            Span::raw(spent),
        ]));
    }
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::TOP | Borders::LEFT).title(" budgets ")),
        right,
    );
}

fn draw_footer(frame: &mut Frame, area: Rect, dashboard: &Dashboard, width: u16) {
    let keys = if width >= 130 {
        "↑↓ select  f follow  PgUp/PgDn scroll  / search  Tab output/changes/details  s stop  r retry  m message  x skip  o shell  q quit"
    } else if width >= 104 {
        "↑↓ select  f follow  PgUp/Dn  / search  Tab pane  s stop  r retry  m message  x skip  o shell  q quit"
    } else if width >= 60 {
        "↑↓ f PgUp/Dn / Tab  s stop  r retry  m msg  x skip  o  q"
    } else {
        "↑↓ f / Tab s r m x o q"
    };
    if let Some(entry) = &dashboard.entry {
        let (label, hint) = match &entry.kind {
            EntryKind::Message(name) => (format!(" message for {name}: "), "  (Enter sends, Esc cancels)"),
            EntryKind::Search => (" /".to_string(), "  (Enter searches, Esc cancels)"),
        };
        // The end of what is typed stays in sight, the cursor after it.
        let room = (width as usize).saturating_sub(label.chars().count() + hint.chars().count() + 1);
        let typed: String = entry
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let skip = typed.chars().count().saturating_sub(room);
        let shown: String = typed.chars().skip(skip).collect();
        let line = Line::from(vec![
            Span::styled(label, Style::new().bold()),
            Span::raw(shown),
            Span::styled("█", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled(hint, Style::new().dark_gray()),
        ]);
        return frame.render_widget(Paragraph::new(line), area);
    }
    let line = match &dashboard.message {
        Some(m) => Line::from(vec![Span::styled(format!(" {m} "), Style::new().bold().reversed())]),
        None => Line::from(Span::styled(format!(" {keys}"), Style::new().dark_gray())),
    };
    frame.render_widget(Paragraph::new(line), area);
}
