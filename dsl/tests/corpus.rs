//! A corpus of malformed workflow files (`tests/corpus/*.kdl`), one problem (or a deliberate
//! few) per file. Each file starts with a comment
//!
//! ```text
//! // expect: flow::<code> line <N>
//! // expect: flow::<code> line <N> in imports/<file>.kdl
//! ```
//!
//! naming the code and the line of the first error's primary label (in the main file, or in
//! the named imported file). Every file must fail `check_file` that way, and its rendered
//! report must match the snapshot in `tests/snapshots/`. Regenerate the snapshots with
//! `INSTA_UPDATE=always cargo test -p flow-dsl --test dsl corpus` and read every changed one.
//!
//! Files are checked through their path relative to the crate (`tests/corpus/...`), so the
//! names in reports do not depend on where the repository is.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use flow_dsl::{Problem, Problems, check_file};
use miette::{GraphicalReportHandler, GraphicalTheme};

const CORPUS: &str = "tests/corpus";

/// The corpus files, sorted, as paths relative to the crate root.
fn corpus_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus folder exists")
        .map(|e| e.expect("a readable folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
        .map(|p| Path::new(CORPUS).join(p.file_name().expect("a file name")))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().expect("a file name").to_string_lossy().into_owned()
}

/// What a corpus file's first line says `flow check` must report first.
#[derive(Debug, PartialEq)]
struct Expectation {
    code: String,
    line: usize,
    /// The imported file (relative to the corpus folder) the error is in; `None` for the main file.
    file: Option<String>,
}

fn parse_expectation(first_line: &str) -> Option<Expectation> {
    let rest = first_line.strip_prefix("// expect: ")?;
    let mut words = rest.split_whitespace();
    let code = words.next()?.to_string();
    if words.next()? != "line" {
        return None;
    }
    let line = words.next()?.parse().ok()?;
    let file = match (words.next(), words.next()) {
        (None, _) => None,
        (Some("in"), Some(f)) => Some(f.to_string()),
        _ => return None,
    };
    words.next().is_none().then_some(Expectation { code, line, file })
}

fn check(path: &Path) -> Result<Problems, String> {
    match check_file(path) {
        Ok(checked) => Err(format!("the check passed with {} warning(s)", checked.warnings.len())),
        Err(problems) => Ok(problems),
    }
}

/// Every problem rendered the way `flow check` shows it, without colours, one after another.
fn render(problems: &[Problem]) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(100);
    let mut out = String::new();
    for problem in problems {
        handler
            .render_report(&mut out, problem)
            .expect("rendering into a string cannot fail");
    }
    out
}

#[test]
fn the_corpus_is_large_enough() {
    let files = corpus_files();
    assert!(files.len() >= 45, "only {} corpus files", files.len());
}

#[test]
fn every_file_reports_its_expected_first_error() {
    let mut failures = vec![];
    for path in corpus_files() {
        let text = std::fs::read_to_string(&path).expect("a readable corpus file");
        let Some(expected) = text.lines().next().and_then(parse_expectation) else {
            failures.push(format!(
                "{}: the first line is not `// expect: flow::CODE line N`",
                path.display()
            ));
            continue;
        };
        let problems = match check(&path) {
            Ok(p) => p,
            Err(why) => {
                failures.push(format!("{}: {why}", path.display()));
                continue;
            }
        };
        let Some(first) = problems.problems.iter().find(|p| p.is_error()) else {
            failures.push(format!("{}: failed without any error", path.display()));
            continue;
        };
        let expected_file = match &expected.file {
            Some(f) => Path::new(CORPUS).join(f),
            None => path.clone(),
        };
        let found = Expectation {
            code: first.code.as_str().to_string(),
            line: first.line(),
            file: (Path::new(first.file_name()) != expected_file).then(|| first.file_name().to_string()),
        };
        let wanted = Expectation { file: None, ..expected };
        if found != wanted {
            failures.push(format!(
                "{}: expected {} line {}, found {} line {}{}: {}",
                path.display(),
                wanted.code,
                wanted.line,
                found.code,
                found.line,
                found.file.as_deref().map(|f| format!(" in {f}")).unwrap_or_default(),
                first.message
            ));
        }
        // No problem is reported twice.
        let mut seen = HashSet::new();
        for p in &problems.problems {
            if !seen.insert((p.code, p.file_name().to_string(), p.offset())) {
                failures.push(format!(
                    "{}: {} reported twice at line {}",
                    path.display(),
                    p.code,
                    p.line()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus file(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_report_matches_its_snapshot() {
    let mut failures = vec![];
    for path in corpus_files() {
        let name = file_name(&path);
        let report = match check(&path) {
            Ok(problems) => render(&problems.problems),
            Err(why) => format!("unexpected: {why}\n"),
        };
        let outcome = std::panic::catch_unwind(|| {
            insta::with_settings!({
                snapshot_suffix => name.clone(),
                input_file => path.clone(),
                omit_expression => true,
            }, {
                insta::assert_snapshot!("report", report);
            });
        });
        if outcome.is_err() {
            failures.push(name);
        }
    }
    assert!(
        failures.is_empty(),
        "{} snapshot(s) differ: {}",
        failures.len(),
        failures.join(", ")
    );
}

#[test]
fn every_snapshot_has_a_corpus_file() {
    let names: HashSet<String> = corpus_files().iter().map(|p| file_name(p)).collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut orphans = vec![];
    for entry in entries {
        let snapshot = file_name(&entry.expect("a readable folder entry").path());
        let Some(rest) = snapshot.strip_prefix("dsl__corpus__report@") else {
            continue;
        };
        let corpus_name = rest.trim_end_matches(".new").trim_end_matches(".snap");
        if !names.contains(corpus_name) {
            orphans.push(snapshot);
        }
    }
    assert!(
        orphans.is_empty(),
        "snapshots without a corpus file (delete them): {}",
        orphans.join(", ")
    );
}

#[test]
fn expectation_lines_parse() {
    let table: &[(&str, Option<Expectation>)] = &[
        (
            "// expect: flow::syntax line 5",
            Some(Expectation {
                code: "flow::syntax".into(),
                line: 5,
                file: None,
            }),
        ),
        (
            "// expect: flow::import_cycle line 2 in imports/b.kdl",
            Some(Expectation {
                code: "flow::import_cycle".into(),
                line: 2,
                file: Some("imports/b.kdl".into()),
            }),
        ),
        ("// expect: flow::syntax", None),
        ("// expect: flow::syntax line five", None),
        ("// expect: flow::syntax line 5 at imports/b.kdl", None),
        ("// flow::syntax line 5", None),
    ];
    for (line, expected) in table {
        assert_eq!(&parse_expectation(line), expected, "{line}");
    }
}

#[test]
fn did_you_mean_table() {
    const CHILDREN: &[&str] = &[
        "description",
        "task",
        "script",
        "role",
        "agent",
        "model",
        "priority",
        "owns",
        "forbid",
        "context",
        "depends-on",
        "test",
        "timeout",
        "idle-timeout",
        "retries",
        "env",
        "account",
        "kind",
        "estimate",
        "budget",
        "isolation",
    ];
    let table: &[(&str, Option<&str>)] = &[
        ("taks", Some("task")),
        ("tasks", Some("task")),
        ("depends_on", Some("depends-on")),
        ("dependson", Some("depends-on")),
        ("depends", Some("depends-on")),
        ("owned", Some("owns")),
        ("own", Some("owns")),
        ("forbidden", Some("forbid")),
        ("estimated", Some("estimate")),
        ("timeout_secs", Some("timeout")),
        ("test-command", None),
        ("idle_timeout", Some("idle-timeout")),
        ("retry", Some("retries")),
        ("isolate", Some("isolation")),
        ("modle", Some("model")),
        ("priorty", Some("priority")),
        ("agnet", Some("agent")),
        ("enviroment", None),
        ("x", None),
        ("name", None),
        ("cwd", None),
        ("", None),
    ];
    let mut wrong = vec![];
    for (word, expected) in table {
        let found = flow_dsl::did_you_mean(word, CHILDREN.iter().copied());
        if found != *expected {
            wrong.push(format!("{word:?}: expected {expected:?}, found {found:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
