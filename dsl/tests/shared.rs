//! Problems many workstreams share, each reported once with the list of them: workstreams
//! without a task, workstreams that may run at once and own the same paths (a glob, or
//! everything for those without `owns`). The rendered reports are insta snapshots
//! (`tests/snapshots/dsl__shared__*.snap`); `workflow.overlaps` keeps every pair.

use flow_dsl::{Code, Problem, check_text, group_overlaps};
use miette::{GraphicalReportHandler, GraphicalTheme};

/// Every problem rendered the way `flow check` shows it, without colours.
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

/// Workstreams `w0` .. `w{n-1}`, each with a task and the given child lines.
fn workstreams(n: usize, children: impl Fn(usize) -> String) -> String {
    (0..n)
        .map(|i| format!("workstream \"w{i}\" {{\n    task \"part {i}\"\n{}}}\n", children(i)))
        .collect()
}

#[test]
fn twelve_workstreams_owning_one_glob_give_one_warning_and_keep_every_pair() {
    let text = workstreams(12, |_| "    owns \"src/**\"\n".into());
    let checked = check_text("twelve.kdl", &text).expect("the workflow checks");
    assert_eq!(checked.workflow.overlaps.len(), 66, "every pair stays in the data");
    assert_eq!(checked.warnings.len(), 1, "{:?}", checked.warnings);
    assert_eq!(checked.warnings[0].code, Code::OwnsOverlap);
    let groups = group_overlaps(&checked.workflow.overlaps);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].members, (0..12).collect::<Vec<_>>());
    assert!(groups[0].is_complete());
    insta::assert_snapshot!(render(&checked.warnings));
}

#[test]
fn workstreams_without_owns_that_may_run_at_once_overlap() {
    let text = r#"
workstream "api" { task "Add a /health endpoint." }
workstream "ui" { task "Show the health." }
workstream "docs" { task "Document it."; depends-on "api" "ui" }
"#;
    let checked = check_text("unowned.kdl", text).expect("the workflow checks");
    let pairs: Vec<(usize, usize)> = checked.workflow.overlaps.iter().map(|o| (o.first, o.second)).collect();
    // `docs` comes after both, so it runs alone.
    assert_eq!(pairs, [(0, 1)]);
    assert_eq!(checked.workflow.overlaps[0].first_glob, "**");
    assert_eq!(checked.warnings.len(), 1, "{:?}", checked.warnings);
    insta::assert_snapshot!(render(&checked.warnings));
}

#[test]
fn a_chain_of_workstreams_without_owns_does_not_overlap() {
    let text = r#"
workstream "a" { task "x" }
workstream "b" { task "y"; depends-on "a" }
workstream "c" { task "z"; depends-on "b" }
"#;
    let checked = check_text("chain.kdl", text).expect("the workflow checks");
    assert!(checked.workflow.overlaps.is_empty());
    assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
}

#[test]
fn a_workstream_without_owns_overlaps_every_concurrent_one() {
    let text = r#"
workstream "api" { task "x"; owns "src/api/**" }
workstream "ui" { task "y"; owns "src/ui/**" }
workstream "chores" { task "z" }
workstream "later" { task "w"; owns "docs/**"; depends-on "chores" }
"#;
    let checked = check_text("mixed.kdl", text).expect("the workflow checks");
    let pairs: Vec<(usize, usize)> = checked.workflow.overlaps.iter().map(|o| (o.first, o.second)).collect();
    // `later` comes after `chores` and owns what `api` and `ui` do not.
    assert_eq!(pairs, [(0, 2), (1, 2)]);
    assert_eq!(checked.warnings.len(), 1, "{:?}", checked.warnings);
    insta::assert_snapshot!(render(&checked.warnings));
}

#[test]
fn separate_overlaps_give_separate_warnings() {
    let text = r#"
workstream "a" { task "x"; owns "src/**" }
workstream "b" { task "y"; owns "src/lib.rs" }
workstream "c" { task "z"; owns "docs/**" }
workstream "d" { task "w"; owns "docs/guide/**" }
"#;
    let checked = check_text("two.kdl", text).expect("the workflow checks");
    assert_eq!(checked.workflow.overlaps.len(), 2);
    assert_eq!(checked.warnings.len(), 2, "{:?}", checked.warnings);
    insta::assert_snapshot!(render(&checked.warnings));
}

#[test]
fn workstreams_without_a_task_are_one_error() {
    let text = workstreams(6, |i| format!("    owns \"part{i}/**\"\n")).replace("    task \"part 1\"\n", "");
    let text = text
        .replace("    task \"part 0\"\n", "")
        .replace("    task \"part 4\"\n", "");
    let problems = check_text("untasked.kdl", &text).expect_err("the workflow fails");
    let errors: Vec<&Problem> = problems.problems.iter().filter(|p| p.is_error()).collect();
    assert_eq!(errors.len(), 1, "{:?}", problems.problems);
    assert_eq!(errors[0].code, Code::MissingTask);
    assert_eq!(errors[0].message, "3 workstreams have no task: w0, w1 and w4");
    insta::assert_snapshot!(render(&problems.problems));
}

#[test]
fn one_workstream_without_a_task_is_named_alone() {
    let text = "workstream \"w\" { owns \"a/**\" }\n";
    let problems = check_text("one.kdl", text).expect_err("the workflow fails");
    assert_eq!(problems.problems.len(), 1, "{:?}", problems.problems);
    assert_eq!(problems.problems[0].message, "workstream `w` has no task");
}

#[test]
fn globs_from_a_role_are_labelled_at_the_workstream_and_written_ones_where_written() {
    let text = r#"
workstream "a" { task "x"; role "database-specialist" }
workstream "b" { task "y"; role "database-specialist" }
workstream "c" { task "z"; owns "db/**" }
"#;
    let checked = check_text("roles.kdl", text).expect("the workflow checks");
    assert_eq!(checked.warnings.len(), 1, "{:?}", checked.warnings);
    let labels: Vec<String> = checked.warnings[0]
        .labels
        .iter()
        .map(|l| l.label().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        labels,
        [
            "owns `src/database/**` and `db/**` through its role, as does `b`",
            "owned by `c`"
        ]
    );
    insta::assert_snapshot!(render(&checked.warnings));
}
