//! Every workflow in `workflows/` and every module of the standard library passes `flow check`.

use crate::support::{flow, repo_root};

#[test]
fn every_example_workflow_checks() {
    let root = repo_root();
    let mut files: Vec<_> = std::fs::read_dir(root.join("workflows"))
        .expect("workflows/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "at least three example workflows: {files:?}");
    for file in files {
        let out = flow(&root)
            .arg("check")
            .arg("--deny-warnings")
            .arg(&file)
            .output()
            .expect("flow runs");
        assert!(
            out.status.success(),
            "{} failed:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_stdlib_module_checks_as_an_import() {
    let root = repo_root();
    let dir = tempfile::tempdir().expect("temp dir");
    for module in ["agents", "models", "roles"] {
        let file = dir.path().join(format!("{module}.kdl"));
        let text = format!(
            "import \"std:{module}\"\nagent \"t\" {{ command \"true\" }}\nworkstream \"w\" {{ agent \"t\"; task \"x\" }}\n"
        );
        std::fs::write(&file, text).expect("write");
        let out = flow(&root)
            .arg("check")
            .arg("--deny-warnings")
            .arg(&file)
            .output()
            .expect("flow runs");
        assert!(
            out.status.success(),
            "std:{module} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn plan_json_of_the_book_cataloger_orders_waves_and_merges() {
    let root = repo_root();
    let out = flow(&root)
        .args(["plan", "workflows/parallel.kdl", "--json"])
        .output()
        .expect("flow runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is only JSON");
    assert_eq!(plan["version"], 1);
    let waves: Vec<Vec<String>> = serde_json::from_value(plan["waves"].clone()).expect("waves");
    let mut sorted: Vec<Vec<String>> = waves
        .iter()
        .map(|w| {
            let mut w = w.clone();
            w.sort();
            w
        })
        .collect();
    sorted.iter_mut().for_each(|w| w.sort());
    assert_eq!(sorted, vec![vec!["backend", "gui"], vec!["integration", "testing"]]);
    let order: Vec<String> = serde_json::from_value(plan["merge_order"].clone()).expect("merge order");
    let position = |name: &str| order.iter().position(|n| n == name).expect("every workstream merges");
    for ws in plan["workstreams"].as_array().expect("workstreams") {
        let name = ws["name"].as_str().expect("name");
        for dependency in ws["depends_on"].as_array().expect("depends_on") {
            assert!(
                position(dependency.as_str().expect("name")) < position(name),
                "{dependency} merges before {name}"
            );
        }
    }
}

#[test]
fn init_writes_a_workflow_that_checks_and_refuses_to_overwrite() {
    let root = repo_root();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("parallel.kdl");
    let out = flow(dir.path()).arg("init").output().expect("flow runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = flow(&root)
        .args(["check", "--deny-warnings"])
        .arg(&file)
        .output()
        .expect("flow runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = flow(dir.path()).arg("init").output().expect("flow runs");
    assert_eq!(again.status.code(), Some(2), "a second init must refuse");
}

/// `flow demo` end to end: every workstream merges, the two slips (a write outside the scope,
/// a failed test) go back to their agents and are fixed, and the closing text says so.
#[test]
fn the_demo_recovers_from_its_two_slips_and_merges_everything() {
    let temp = tempfile::tempdir().expect("a temporary folder");
    let dir = temp.path().join("demo");
    let home = temp.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let out = std::process::Command::new(crate::support::flow_bin())
        .env_clear()
        .envs(crate::support::hermetic_env(&home))
        .args(["demo", "--progress", "quiet", "--dir"])
        .arg(&dir)
        .output()
        .expect("flow demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 of 5 workstreams merged"), "{stdout}");
    assert!(
        stdout.contains("`language` changed a file outside what it owns: flow sent that back to its agent (attempt 2), which fixed it."),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "`export` wrote work its test failed: flow sent that back to its agent (attempt 2), which fixed it."
        ),
        "{stdout}"
    );
    assert!(stdout.contains("to remove the demo:"), "{stdout}");
    // The slip outside the scope did not reach the result.
    let readme = std::process::Command::new("git")
        .current_dir(&dir)
        .args(["diff", "--stat", "main", "integration/demo", "--", "README.md"])
        .output()
        .expect("git runs");
    assert!(readme.stdout.is_empty(), "README.md is as it was");
}
