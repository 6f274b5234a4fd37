//! `flow report`: one self-contained HTML page about a run, to open in any browser with no
//! network and no script: a summary (what runs, waits, failed, what it cost), a timeline of
//! every workstream's stages with its attempts apart and the critical path marked, each
//! failure with the tail of its log, a table of the workstreams with their diffstat, the
//! dependency graph coloured by state, and spending per workstream, model and account
//! against the budgets. Styles and drawings (SVG) are inline.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use flow_dsl::format_duration;

use crate::git::{FileStat, Git, Oid};
use crate::report::run_table::{dollars, tokens};
use crate::report::usage::UsageReport;
use crate::run::state::{FailureKind, Phase, RunStatus};
use crate::site::RunDir;
use crate::time::{Timestamp, elapsed};
use crate::view::{RunView, Stage, WorkstreamView};

/// How many lines of a failed workstream's log the page shows.
pub const LOG_TAIL_LINES: usize = 30;

/// What the page shows beside the view: read from the run folder and the repository.
#[derive(Debug, Default)]
pub struct Extras {
    /// The last lines of each failed workstream's log (and of `verify`'s for a failed verify).
    pub log_tails: BTreeMap<String, Vec<String>>,
    /// The files each workstream changed, with lines added and removed.
    pub diffstats: BTreeMap<String, Vec<FileStat>>,
    /// Spending by model, account and budget (none when the workflow file cannot be read).
    pub usage: Option<UsageReport>,
}

impl Extras {
    /// Reads the log tails of the failed workstreams and each workstream's diffstat.
    pub fn gather(view: &RunView, run_dir: &RunDir, git: Option<&Git>, usage: Option<UsageReport>) -> Extras {
        let mut extras = Extras {
            usage,
            ..Extras::default()
        };
        for w in &view.workstreams {
            if w.failure.is_some() {
                let mut tail = log_tail(&run_dir.log_path(&w.name), LOG_TAIL_LINES);
                if w.failure.as_ref().is_some_and(|f| f.kind == FailureKind::Verify) {
                    let verify = log_tail(&run_dir.log_path("_verify"), LOG_TAIL_LINES);
                    if !verify.is_empty() {
                        tail.push("── verify ──".to_string());
                        tail.extend(verify);
                    }
                }
                extras.log_tails.insert(w.name.clone(), tail);
            }
            let from = w.base_commit.as_deref().or(w.start_commit.as_deref());
            let range = from
                .and_then(|f| f.parse::<Oid>().ok())
                .zip(w.result_commit.as_deref().and_then(|r| r.parse::<Oid>().ok()));
            if let (Some(git), Some((from, to))) = (git, range)
                && let Ok(stats) = git.diffstat(from, to)
            {
                extras.diffstats.insert(w.name.clone(), stats);
            }
        }
        extras
    }
}

/// The last `lines` lines of a log, without escape sequences or control characters; empty
/// when there is no log. Only the end of a large log is read.
pub fn log_tail(path: &std::path::Path, lines: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    const WINDOW: u64 = 64 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else {
        return vec![];
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)));
    let mut bytes = vec![];
    let _ = file.take(WINDOW).read_to_end(&mut bytes);
    let text = plain_text(&String::from_utf8_lossy(&bytes));
    let all: Vec<&str> = text.lines().collect();
    let skip_cut_line = usize::from(len > WINDOW);
    let start = all.len().saturating_sub(lines).max(skip_cut_line.min(all.len()));
    all[start..].iter().map(|l| l.to_string()).collect()
}

/// Text without escape sequences, and without control characters other than newline and tab.
pub fn plain_text(text: &str) -> String {
    anstream::adapter::strip_str(text)
        .to_string()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// The colour of a workstream's state.
pub fn phase_color(phase: Phase) -> &'static str {
    match phase {
        Phase::Merged | Phase::Done => "#1f9d55",
        Phase::Failed | Phase::Conflicted => "#d64545",
        Phase::Pending => "#9aa3ae",
        Phase::Ready => "#d69e2e",
        Phase::Skipped | Phase::Cancelled => "#c3c9d1",
        Phase::Merging => "#0f766e",
        Phase::Fixing | Phase::Resolving => "#dd6b20",
        Phase::Preparing | Phase::Running | Phase::Checking | Phase::Reviewing => "#2b6cb0",
    }
}

/// The colour of a timeline stage.
pub fn stage_color(stage: Stage) -> &'static str {
    match stage {
        Stage::Waiting => "#e2e6eb",
        Stage::Setup => "#a0aec0",
        Stage::Agent => "#3b82f6",
        Stage::Fix => "#f59e0b",
        Stage::Review => "#8b5cf6",
        Stage::Resolve => "#ec4899",
        Stage::Check => "#14b8a6",
        Stage::Queued => "#fcd34d",
        Stage::Merge => "#10b981",
    }
}

fn status_color(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Running => "#2b6cb0",
        RunStatus::Succeeded => "#1f9d55",
        RunStatus::Failed => "#d64545",
        RunStatus::Cancelled => "#d69e2e",
    }
}

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// A duration the short way: `4.2s`, `3m05s`.
fn short(d: Duration) -> String {
    format_duration(d)
}

/// What a workstream is doing or why it stopped, in a few words, without escape sequences
/// or control characters (an agent's text is in it).
pub fn status_note(w: &WorkstreamView) -> String {
    plain_text(&raw_note(w)).replace(['\n', '\t'], " ")
}

fn raw_note(w: &WorkstreamView) -> String {
    if let Some(wait) = &w.wait {
        return wait.to_string();
    }
    if let Some(f) = &w.failure {
        let first = f.message.lines().next().unwrap_or("");
        return format!("{}: {first}", f.kind);
    }
    if let Some(reason) = &w.reason {
        return reason.clone();
    }
    if w.phase.is_active() {
        return w.last_line.clone().map(|l| plain_text(&l)).unwrap_or_default();
    }
    String::new()
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;background:#f5f7fa;color:#1a202c}
main{max-width:1240px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #dde2e8;padding-bottom:4px}
.sub{color:#5a6472}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;color:#fff;font-weight:600;font-size:13px;vertical-align:middle}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:14px 0 4px}
.card{flex:1 1 0;background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:8px 12px;min-width:84px}
.card b{display:block;font-size:20px}
.card span{color:#5a6472;font-size:11px;white-space:nowrap;text-transform:uppercase;letter-spacing:.04em}
.panel{background:#fff;border:1px solid #dde2e8;border-radius:8px;padding:12px;overflow-x:auto}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #edf0f3;vertical-align:top}
th{font-size:12px;color:#5a6472;text-transform:uppercase;letter-spacing:.04em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:baseline}
.state{font-weight:600;white-space:nowrap}
td small code{white-space:nowrap}
.crit{color:#c53030;font-weight:700}
.fail{background:#fff;border:1px solid #f3c1c1;border-left:5px solid #d64545;border-radius:8px;padding:10px 14px;margin:10px 0}
.fail h3{margin:0 0 4px;font-size:15px}
pre{background:#1a202c;color:#e2e8f0;padding:10px;border-radius:6px;overflow-x:auto;font:12px/1.4 ui-monospace,"DejaVu Sans Mono",monospace;margin:6px 0 0;white-space:pre-wrap;word-break:break-all}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:8px 0 0;font-size:12px;color:#4a5568}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.bar{background:#edf0f3;border-radius:4px;height:10px;width:160px;display:inline-block;vertical-align:middle;overflow:hidden}
.bar i{display:block;height:100%}
.add{color:#1f9d55}.del{color:#c53030}
.muted{color:#8a94a3}
ul.alerts{margin:0;padding-left:20px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:16px}
@media (max-width:900px){.two{grid-template-columns:1fr}}
"#;

/// Renders the whole page.
pub fn render(view: &RunView, extras: &Extras) -> String {
    let mut out = String::new();
    let title = format!("flow run {} · {}", view.id, view.workflow);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body><main>\n",
        escape(&title)
    );
    summary(&mut out, view);
    timeline(&mut out, view);
    failures(&mut out, view, extras);
    workstream_table(&mut out, view, extras);
    graph(&mut out, view);
    spending(&mut out, view, extras);
    if !view.alerts.is_empty() || !view.overruns.is_empty() {
        out.push_str("<h2>Alerts</h2><div class=\"panel\"><ul class=\"alerts\">");
        for o in &view.overruns {
            let _ = write!(out, "<li class=\"crit\">OVER BUDGET: {}</li>", escape(&o.overrun()));
        }
        for a in &view.alerts {
            let _ = write!(out, "<li>{}</li>", escape(a));
        }
        out.push_str("</ul></div>");
    }
    let _ = write!(
        out,
        "<p class=\"muted\">Made by <code>flow report</code> from <code>.flow/runs/{}/</code> at {}.</p>",
        escape(&view.id),
        view.now.strftime("%Y-%m-%d %H:%M:%S UTC")
    );
    out.push_str("</main></body></html>\n");
    out
}

fn summary(out: &mut String, view: &RunView) {
    let c = view.counts();
    let spent = view.spent();
    let _ = write!(
        out,
        "<header id=\"summary\"><h1>{} <span class=\"badge\" style=\"background:{}\">{}</span></h1><div class=\"sub\">run <code>{}</code> · started {} · into <code>{}</code></div>",
        escape(&view.workflow),
        status_color(view.status),
        view.status.as_str(),
        escape(&view.id),
        view.started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        escape(&view.into),
    );
    out.push_str("<div class=\"cards\">");
    let mut card = |value: String, label: &str, color: Option<&str>| {
        let style = color.map_or(String::new(), |c| format!(" style=\"color:{c}\""));
        let _ = write!(
            out,
            "<div class=\"card\"><b{style}>{value}</b><span>{label}</span></div>"
        );
    };
    card(short(view.duration()), "time", None);
    card(format!("{}", view.workstreams.len()), "workstreams", None);
    card(c.running.to_string(), "running", (c.running > 0).then_some("#2b6cb0"));
    card(c.waiting.to_string(), "waiting", None);
    card(c.queued.to_string(), "queued", (c.queued > 0).then_some("#b7791f"));
    card(c.done.to_string(), "done", (c.done > 0).then_some("#1f9d55"));
    card(c.failed.to_string(), "failed", (c.failed > 0).then_some("#d64545"));
    if c.stopped > 0 {
        card(c.stopped.to_string(), "skipped", None);
    }
    card(dollars(spent.cost_usd), "cost", None);
    card(tokens(spent.total_tokens()), "tokens", None);
    out.push_str("</div></header>\n");
}

/// The pixel layout of the timeline.
const LABEL_W: f64 = 190.0;
const CHART_W: f64 = 900.0;
const NOTE_W: f64 = 130.0;
const ROW_H: f64 = 26.0;
const BAR_H: f64 = 16.0;
const AXIS_H: f64 = 24.0;

fn timeline(out: &mut String, view: &RunView) {
    out.push_str("<h2 id=\"timeline\">Timeline</h2><div class=\"panel\">");
    let start = view.started_at;
    let total = elapsed(start, view.now).as_secs_f64().max(0.001);
    let x = |t: Timestamp| LABEL_W + CHART_W * (elapsed(start, t).as_secs_f64() / total).clamp(0.0, 1.0);
    let rows = view.workstreams.len() as f64;
    let width = LABEL_W + CHART_W + NOTE_W;
    let height = AXIS_H + rows * ROW_H + 6.0;
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" aria-label=\"timeline of the workstreams\" font-family=\"system-ui,DejaVu Sans,sans-serif\" font-size=\"12\">"
    );
    // The time axis: about eight ticks at round seconds.
    let step = nice_step(total / 8.0);
    let mut t = 0.0;
    while t <= total + 1e-9 {
        let px = LABEL_W + CHART_W * t / total;
        let _ = write!(
            out,
            "<line x1=\"{px:.1}\" y1=\"{AXIS_H}\" x2=\"{px:.1}\" y2=\"{height}\" stroke=\"#edf0f3\"/><text x=\"{px:.1}\" y=\"14\" text-anchor=\"middle\" fill=\"#5a6472\">{}</text>",
            short(Duration::from_secs_f64(t))
        );
        t += step;
    }
    for (row, w) in view.workstreams.iter().enumerate() {
        let y = AXIS_H + row as f64 * ROW_H;
        if row % 2 == 1 {
            let _ = write!(
                out,
                "<rect x=\"0\" y=\"{y}\" width=\"{width}\" height=\"{ROW_H}\" fill=\"#f8fafc\"/>"
            );
        }
        let name = if w.critical {
            format!("◆ {}", w.name)
        } else {
            w.name.clone()
        };
        let weight = if w.critical {
            " font-weight=\"700\" fill=\"#c53030\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\"{weight}>{}</text>",
            LABEL_W - 8.0,
            y + ROW_H / 2.0 + 4.0,
            escape(&clip(&name, 26))
        );
        let bar_y = y + (ROW_H - BAR_H) / 2.0;
        for span in &w.spans {
            let (x0, x1) = (x(span.start), x(span.end_or(view.now)));
            let wide = (x1 - x0).max(1.5);
            let label = match span.attempt {
                Some(n) if span.stage == Stage::Agent => format!("#{n}"),
                Some(n) => format!("#{n} {}", span.stage.name()),
                None => span.stage.name().to_string(),
            };
            let ongoing = if span.end.is_none() { " (going on)" } else { "" };
            let _ = write!(
                out,
                "<rect class=\"span\" data-workstream=\"{}\" data-stage=\"{}\" data-attempt=\"{}\" x=\"{x0:.1}\" y=\"{bar_y:.1}\" width=\"{wide:.1}\" height=\"{BAR_H}\" rx=\"2\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"1\"><title>{}: {label}, {}{ongoing}</title></rect>",
                escape(&w.name),
                span.stage.name(),
                span.attempt.map_or(String::new(), |n| n.to_string()),
                stage_color(span.stage),
                escape(&w.name),
                short(elapsed(span.start, span.end_or(view.now))),
            );
            if span.stage.is_agent() && wide > 8.0 * label.len() as f64 {
                let _ = write!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#fff\" font-size=\"11\">{}</text>",
                    x0 + 4.0,
                    bar_y + 12.0,
                    escape(&label)
                );
            }
        }
        // The critical path: a red rule under its work, from setup to the end.
        if w.critical
            && let (Some(first), Some(last)) = (w.spans.iter().find(|s| s.stage != Stage::Waiting), w.spans.last())
        {
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"2.5\" fill=\"#c53030\"/>",
                x(first.start),
                bar_y + BAR_H + 1.0,
                (x(last.end_or(view.now)) - x(first.start)).max(1.5)
            );
        }
        // The end: a mark of how it finished, and the note.
        let end_x = w.spans.last().map_or(LABEL_W, |s| x(s.end_or(view.now)));
        let (mark, color) = match w.phase {
            p if p.is_success() => ("✔", "#1f9d55"),
            Phase::Failed | Phase::Conflicted => ("✘", "#d64545"),
            Phase::Skipped | Phase::Cancelled => ("–", "#8a94a3"),
            _ => ("", "#000"),
        };
        if !mark.is_empty() {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\" font-weight=\"700\">{mark}</text>",
                end_x + 3.0,
                y + ROW_H / 2.0 + 4.0
            );
        }
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{}\" font-weight=\"600\">{}</text>",
            LABEL_W + CHART_W + 14.0,
            y + ROW_H / 2.0 + 4.0,
            phase_color(w.phase),
            w.phase.name()
        );
    }
    out.push_str("</svg><div class=\"legend\">");
    for stage in Stage::ALL {
        let _ = write!(
            out,
            "<span><i style=\"background:{}\"></i>{}</span>",
            stage_color(stage),
            stage.name()
        );
    }
    out.push_str(
        "<span class=\"crit\">◆ and red rule: critical path</span><span>#n: agent attempt n</span></div></div>\n",
    );
}

/// A round step for about `target` seconds: 1, 2, 5 times a power of ten, or minutes.
fn nice_step(target: f64) -> f64 {
    let steps = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        14400.0, 28800.0, 86400.0,
    ];
    steps.into_iter().find(|s| *s >= target).unwrap_or(86400.0)
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

fn failures(out: &mut String, view: &RunView, extras: &Extras) {
    let failed: Vec<&WorkstreamView> = view.workstreams.iter().filter(|w| w.failure.is_some()).collect();
    if failed.is_empty() {
        return;
    }
    let _ = write!(out, "<h2 id=\"failures\">Failures ({})</h2>", failed.len());
    for w in failed {
        let Some(f) = &w.failure else { continue };
        let exit = f.exit.map_or(String::new(), |e| format!(" ({e})"));
        let _ = write!(
            out,
            "<div class=\"fail\" id=\"fail-{}\"><h3>✘ {} <span class=\"muted\">— {}{}</span></h3><div>{}</div>",
            escape(&w.name),
            escape(&w.name),
            f.kind,
            escape(&exit),
            escape(&plain_text(&f.message)).replace('\n', "<br>")
        );
        if let Some(lines) = extras.log_tails.get(&w.name).filter(|l| !l.is_empty()) {
            let _ = write!(
                out,
                "<div class=\"muted\" style=\"margin-top:6px\">last {} lines of its log:</div><pre>{}</pre>",
                lines.len(),
                escape(&lines.join("\n"))
            );
        } else {
            out.push_str("<div class=\"muted\" style=\"margin-top:6px\">(no log)</div>");
        }
        out.push_str("</div>");
    }
}

fn workstream_table(out: &mut String, view: &RunView, extras: &Extras) {
    out.push_str("<h2 id=\"workstreams\">Workstreams</h2><div class=\"panel\"><table><thead><tr><th>workstream</th><th>state</th><th>waits on / why</th><th class=\"num\">attempts</th><th class=\"num\">time</th><th class=\"num\">tokens</th><th class=\"num\">cost</th><th>changes</th></tr></thead><tbody>");
    for w in &view.workstreams {
        let spent = w.spent();
        let changes = match extras.diffstats.get(&w.name) {
            Some(stats) if !stats.is_empty() => {
                let added: usize = stats.iter().map(|s| s.added).sum();
                let removed: usize = stats.iter().map(|s| s.removed).sum();
                let files: Vec<String> = stats
                    .iter()
                    .take(6)
                    .map(|s| {
                        format!(
                            "<code>{}</code> <span class=\"add\">+{}</span> <span class=\"del\">−{}</span>",
                            escape(&s.path),
                            s.added,
                            s.removed
                        )
                    })
                    .collect();
                let more = if stats.len() > 6 {
                    format!("<br><span class=\"muted\">and {} more</span>", stats.len() - 6)
                } else {
                    String::new()
                };
                format!(
                    "{} file{} <span class=\"add\">+{added}</span> <span class=\"del\">−{removed}</span><br><small>{}{more}</small>",
                    stats.len(),
                    if stats.len() == 1 { "" } else { "s" },
                    files.join("<br>")
                )
            }
            _ if !w.files_changed.is_empty() => format!("{} files", w.files_changed.len()),
            _ => "<span class=\"muted\">-</span>".to_string(),
        };
        let critical = if w.critical {
            " <span class=\"crit\" title=\"critical path\">◆</span>"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<tr id=\"ws-{}\"><td><b>{}</b>{critical}<br><small class=\"muted\">{}</small></td><td class=\"state\" style=\"color:{}\"><span class=\"dot\" style=\"background:{}\"></span>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{changes}</td></tr>",
            escape(&w.name),
            escape(&w.name),
            escape(
                &[w.agent.clone(), w.model.clone()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" · ")
            ),
            phase_color(w.phase),
            phase_color(w.phase),
            w.phase.name(),
            escape(&clip(&status_note(w), 160)),
            w.attempt_count(),
            if w.started_at.is_some() {
                short(w.busy(view.now))
            } else {
                "-".to_string()
            },
            tokens(spent.total_tokens()),
            dollars(spent.cost_usd),
        );
    }
    out.push_str("</tbody></table></div>\n");
}

/// The dependency graph: a column per wave, boxes coloured by state, edges from a
/// dependency to its dependents, the critical path in red.
fn graph(out: &mut String, view: &RunView) {
    if view.workstreams.iter().all(|w| w.dependencies.is_empty()) && view.waves <= 1 {
        // Nothing to draw but a row of boxes: the table says it all.
        if view.workstreams.len() > 1 {
            out.push_str("<h2 id=\"graph\">Graph</h2><p class=\"muted\">No workstream depends on another: they all ran side by side.</p>");
        }
        return;
    }
    out.push_str("<h2 id=\"graph\">Graph</h2><div class=\"panel\">");
    const BOX_W: f64 = 170.0;
    const BOX_H: f64 = 40.0;
    const GAP_X: f64 = 70.0;
    const GAP_Y: f64 = 14.0;
    let waves = view.waves.max(1);
    let mut columns: Vec<Vec<usize>> = vec![vec![]; waves];
    for (i, w) in view.workstreams.iter().enumerate() {
        columns[w.wave.min(waves - 1)].push(i);
    }
    let tallest = columns.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let width = waves as f64 * (BOX_W + GAP_X) - GAP_X + 20.0;
    let height = tallest * (BOX_H + GAP_Y) + 26.0;
    let mut place = vec![(0.0, 0.0); view.workstreams.len()];
    for (k, column) in columns.iter().enumerate() {
        let offset = (tallest - column.len() as f64) * (BOX_H + GAP_Y) / 2.0;
        for (r, &i) in column.iter().enumerate() {
            place[i] = (
                10.0 + k as f64 * (BOX_W + GAP_X),
                22.0 + offset + r as f64 * (BOX_H + GAP_Y),
            );
        }
    }
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{}\" style=\"max-width:100%\" role=\"img\" aria-label=\"dependency graph\" font-family=\"system-ui,DejaVu Sans,sans-serif\" font-size=\"12\"><defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#8a94a3\"/></marker><marker id=\"arrowc\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"#c53030\"/></marker></defs>",
        width.min(1190.0)
    );
    for k in 0..waves {
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"12\" fill=\"#8a94a3\" font-size=\"11\">wave {}</text>",
            10.0 + k as f64 * (BOX_W + GAP_X),
            k + 1
        );
    }
    let on_path = |a: usize, b: usize| view.critical_path.windows(2).any(|pair| pair[0] == a && pair[1] == b);
    for (i, w) in view.workstreams.iter().enumerate() {
        for &d in &w.dependencies {
            let (x0, y0) = (place[d].0 + BOX_W, place[d].1 + BOX_H / 2.0);
            let (x1, y1) = (place[i].0, place[i].1 + BOX_H / 2.0);
            let mid = (x0 + x1) / 2.0;
            let critical = on_path(d, i);
            let _ = write!(
                out,
                "<path d=\"M{x0:.1},{y0:.1} C{mid:.1},{y0:.1} {mid:.1},{y1:.1} {x1:.1},{y1:.1}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" marker-end=\"url(#{})\"/>",
                if critical { "#c53030" } else { "#b8c0cc" },
                if critical { 2.5 } else { 1.3 },
                if critical { "arrowc" } else { "arrow" }
            );
        }
    }
    for (i, w) in view.workstreams.iter().enumerate() {
        let (x, y) = place[i];
        let color = phase_color(w.phase);
        let dashed = if matches!(w.phase, Phase::Skipped | Phase::Cancelled | Phase::Pending) {
            " stroke-dasharray=\"4 3\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<g><title>{}: {}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"6\" fill=\"#fff\" stroke=\"{}\" stroke-width=\"{}\"{dashed}/><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"6\" height=\"{BOX_H}\" rx=\"3\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-weight=\"600\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\" font-size=\"11\">{}</text></g>",
            escape(&w.name),
            w.phase.name(),
            if w.critical { "#c53030" } else { color },
            if w.critical { 2.5 } else { 1.5 },
            x + 14.0,
            y + 17.0,
            escape(&clip(&w.name, 20)),
            x + 14.0,
            y + 32.0,
            w.phase.name(),
        );
    }
    out.push_str("</svg><div class=\"legend\">");
    for phase in [
        Phase::Pending,
        Phase::Running,
        Phase::Fixing,
        Phase::Ready,
        Phase::Merging,
        Phase::Merged,
        Phase::Failed,
        Phase::Skipped,
    ] {
        let _ = write!(
            out,
            "<span><i style=\"background:{}\"></i>{}</span>",
            phase_color(phase),
            phase.name()
        );
    }
    out.push_str("<span class=\"crit\">red edges: critical path</span></div></div>\n");
}

fn spending(out: &mut String, view: &RunView, extras: &Extras) {
    let spent = view.spent();
    let heading = match (spent.cost_usd, spent.total_tokens()) {
        (None, 0) => "Cost: none reported".to_string(),
        (cost, n) => format!("Cost: {} · {} tokens", dollars(cost), tokens(n)),
    };
    let _ = write!(out, "<h2 id=\"cost\">{heading}</h2><div class=\"two\">");
    // Per workstream, with a bar against the most expensive.
    let most = view
        .workstreams
        .iter()
        .map(|w| w.spent().cost_usd.unwrap_or(0.0))
        .fold(0.0_f64, f64::max);
    let most_tokens = view
        .workstreams
        .iter()
        .map(|w| w.spent().total_tokens())
        .max()
        .unwrap_or(0);
    out.push_str("<div class=\"panel\"><table><thead><tr><th>workstream</th><th class=\"num\">tokens</th><th class=\"num\">cost</th><th></th></tr></thead><tbody>");
    for w in &view.workstreams {
        let s = w.spent();
        let share = if most > 0.0 {
            s.cost_usd.unwrap_or(0.0) / most
        } else if most_tokens > 0 {
            s.total_tokens() as f64 / most_tokens as f64
        } else {
            0.0
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><span class=\"bar\"><i style=\"width:{:.0}%;background:#3b82f6\"></i></span></td></tr>",
            escape(&w.name),
            tokens(s.total_tokens()),
            dollars(s.cost_usd),
            share * 100.0
        );
    }
    out.push_str("</tbody></table></div><div>");
    match &extras.usage {
        Some(usage) => {
            for (what, map) in [("model", &usage.by_model), ("account", &usage.by_account)] {
                if map.is_empty() {
                    continue;
                }
                let _ = write!(
                    out,
                    "<div class=\"panel\" style=\"margin-bottom:12px\"><table><thead><tr><th>{what}</th><th class=\"num\">tokens</th><th class=\"num\">cost</th></tr></thead><tbody>"
                );
                for (name, u) in map {
                    let _ = write!(
                        out,
                        "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                        escape(name),
                        tokens(u.total_tokens()),
                        dollars(u.cost_usd)
                    );
                }
                out.push_str("</tbody></table></div>");
            }
            out.push_str("<div class=\"panel\"><table><thead><tr><th>budget</th><th>spent</th><th></th></tr></thead><tbody>");
            if usage.budgets.is_empty() {
                out.push_str("<tr><td colspan=\"3\" class=\"muted\">no budget set</td></tr>");
            }
            for b in &usage.budgets {
                let pct = b.percent.unwrap_or(0.0);
                let color = if pct >= 100.0 {
                    "#d64545"
                } else if pct >= 80.0 {
                    "#d69e2e"
                } else {
                    "#1f9d55"
                };
                let usd = b
                    .limit_usd
                    .map(|l| format!("{} of ${l:.2}", dollars(b.spent_usd)));
                let tok = b
                    .limit_tokens
                    .map(|l| format!("{} of {} tokens", tokens(b.spent_tokens), tokens(l)));
                let text = [usd, tok].into_iter().flatten().collect::<Vec<_>>().join(", ");
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{} <b style=\"color:{color}\">{pct:.0}%</b></td><td><span class=\"bar\"><i style=\"width:{:.0}%;background:{color}\"></i></span></td></tr>",
                    escape(&b.scope),
                    escape(&text),
                    pct.min(100.0)
                );
            }
            out.push_str("</tbody></table></div>");
        }
        None => out.push_str(
            "<div class=\"panel muted\">The workflow file could not be read: no figures per model, account or budget.</div>",
        ),
    }
    out.push_str("</div></div>\n");
}
