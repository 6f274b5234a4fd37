//! Printing problems and errors: graphical miette reports on standard error.

use std::io::IsTerminal;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

/// Renders one diagnostic the way flow prints it: unicode, colored only on a terminal.
pub fn render(diagnostic: &dyn Diagnostic) -> String {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let theme = if color {
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

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|w| *w >= 40)
        .unwrap_or(100)
}

/// Prints one diagnostic to standard error.
pub fn eprint(diagnostic: &dyn Diagnostic) {
    eprint!("{}", render(diagnostic));
}

/// Prints problems, each as its own report.
pub fn print_problems(problems: &[flow_dsl::Problem]) {
    for problem in problems {
        eprint(problem);
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
