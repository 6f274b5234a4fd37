//! Printing problems and errors: graphical miette reports on standard error.

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

use crate::output::{Stream, colored, terminal_width};

/// Renders one diagnostic the way flow prints it: unicode, coloured as `--color` says, as
/// wide as the terminal.
pub fn render(diagnostic: &dyn Diagnostic) -> String {
    let theme = if colored(Stream::Stderr) {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let width = terminal_width();
    let mut out = String::new();
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width);
    if handler.render_report(&mut out, diagnostic).is_err() {
        out = format!("{diagnostic}\n");
    }
    out
}

/// Prints one diagnostic to standard error.
pub fn eprint(diagnostic: &dyn Diagnostic) {
    crate::output::print_stderr(&render(diagnostic));
}

/// Prints problems, each as its own report; with `-q`, warnings are left out.
pub fn print_problems(problems: &[flow_dsl::Problem]) {
    for problem in problems {
        if problem.is_error() || !crate::output::quiet() {
            eprint(problem);
        }
    }
}

/// "2 errors, 1 warning".
pub fn summary(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => "no problems".to_string(),
        (e, 0) => format!("error: {}", plural(e, "error")),
        (0, w) => format!("warning: {}", plural(w, "warning")),
        (e, w) => format!("error: {}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

/// Prints the findings of the checks before a run, each as its own report; returns how many
/// are errors.
pub fn print_findings(findings: &[flow_engine::preflight::Finding]) -> usize {
    use flow_engine::preflight::Severity;
    for finding in findings {
        let severity = match finding.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        };
        let mut diagnostic = miette::MietteDiagnostic::new(finding.message.clone()).with_severity(severity);
        if let Some(help) = &finding.help {
            diagnostic = diagnostic.with_help(help.clone());
        }
        eprint(&diagnostic);
    }
    findings.iter().filter(|f| f.severity == Severity::Error).count()
}

/// A problem as one line of `flow check --json`: where it is (1-based line and column, in
/// characters, of its primary label; `null` when it has none), what it is, and the fix.
#[derive(Debug, serde::Serialize)]
pub struct ProblemJson<'p> {
    pub version: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'static str,
    pub severity: &'static str,
    pub file: &'p str,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub end_line: Option<usize>,
    pub end_column: Option<usize>,
    pub message: &'p str,
    pub label: Option<&'p str>,
    pub help: Option<&'p str>,
}

impl<'p> ProblemJson<'p> {
    /// Describes one finding of the checks against the repository and the machine (no place
    /// in the file: `line` and `column` are `null`), under the code `flow::preflight`.
    pub fn finding(finding: &'p flow_engine::preflight::Finding, file: &'p str) -> ProblemJson<'p> {
        ProblemJson {
            version: crate::output::JSON_VERSION,
            kind: "diagnostic",
            code: "flow::preflight",
            severity: match finding.severity {
                flow_engine::preflight::Severity::Error => "error",
                flow_engine::preflight::Severity::Warning => "warning",
            },
            file,
            line: None,
            column: None,
            end_line: None,
            end_column: None,
            message: &finding.message,
            label: None,
            help: finding.help.as_deref(),
        }
    }

    /// Describes one problem.
    pub fn new(problem: &'p flow_dsl::Problem) -> ProblemJson<'p> {
        let text = problem.source.inner().as_str();
        let primary = problem
            .labels
            .iter()
            .find(|l| l.primary())
            .or_else(|| problem.labels.first());
        let start = primary.map(|l| position(text, l.offset()));
        let end = primary.map(|l| position(text, l.offset() + l.len()));
        ProblemJson {
            version: crate::output::JSON_VERSION,
            kind: "diagnostic",
            code: problem.code.as_str(),
            severity: match problem.severity {
                miette::Severity::Error => "error",
                miette::Severity::Warning => "warning",
                miette::Severity::Advice => "advice",
            },
            file: problem.file_name(),
            line: start.map(|(l, _)| l),
            column: start.map(|(_, c)| c),
            end_line: end.map(|(l, _)| l),
            end_column: end.map(|(_, c)| c),
            message: &problem.message,
            label: primary.and_then(|l| l.label()),
            help: problem.help.as_deref(),
        }
    }
}

/// The 1-based line and column (in characters) of a byte offset; an offset past the end or
/// inside a character counts from the nearest character boundary before it.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    (line, before[line_start..].chars().count() + 1)
}
