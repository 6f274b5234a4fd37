//! The smallest workflow a newcomer writes, end to end: three workstreams with only `task`
//! and `owns` (no import, no agent, no model) check, plan and run with a stand-in `claude` on
//! `PATH`; and `flow init --agent NAME` writes a workflow that checks for each preset.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::support::{TestEnv, recorded_output};

const MINIMAL: &str = r#"
workstream "api" {
    task "Add a /health endpoint."
    owns "api/**"
}
workstream "ui" {
    task "Show the health on the status page."
    owns "ui/**"
}
workstream "docs" {
    task "Document the endpoint."
    owns "docs/**"
}
"#;

/// A folder outside the repository holding `claude`: a stand-in for Claude Code that writes
/// its arguments to `~/.claude/args-WS` (its state folder, the one place outside its worktree
/// the sandbox lets Claude Code write), does its workstream's work in the folder named after
/// it and prints a recorded `claude -p --output-format json` result.
fn stand_in_claude(env: &TestEnv) -> PathBuf {
    let bin = env.base().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$HOME/.claude/args-$FLOW_WORKSTREAM\"\nmkdir -p \"$FLOW_WORKSTREAM\"\necho \"work of $FLOW_WORKSTREAM\" > \"$FLOW_WORKSTREAM/done.txt\"\ncat '{result}'\n",
        result = recorded_output("claude-json-success.json").display(),
    );
    let claude = bin.join("claude");
    std::fs::write(&claude, script).expect("write the stand-in");
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

/// `PATH` with the stand-in's folder first.
fn path_with(bin: &std::path::Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
    )
}

#[test]
fn three_workstreams_with_only_task_and_owns_check_plan_and_run_on_claudes_default_model() {
    let env = TestEnv::new();
    env.write("parallel.kdl", MINIMAL);
    env.commit_all("add the workflow");
    let path = path_with(&stand_in_claude(&env));
    let flow = |args: &[&str]| {
        let out = env
            .flow()
            .env("PATH", &path)
            .args(args)
            .timeout(Duration::from_secs(120))
            .output()
            .expect("flow runs");
        let text = format!(
            "flow {args:?}\n--- stdout\n{}--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out, text)
    };

    let (check, text) = flow(&["check", "--deny-warnings"]);
    assert_eq!(check.status.code(), Some(0), "{text}");

    let (plan, text) = flow(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{text}");
    let stdout = String::from_utf8_lossy(&plan.stdout);
    assert!(stdout.contains("agent default"), "{text}");
    assert!(stdout.contains("none predicted"), "{text}");
    let (plan, text) = flow(&["plan", "--json"]);
    assert_eq!(plan.status.code(), Some(0), "{text}");
    let plan: Value = serde_json::from_slice(&plan.stdout).expect("plan JSON");
    for ws in plan["workstreams"].as_array().expect("workstreams") {
        assert_eq!(ws["agent"], "claude-code", "{ws}");
        assert_eq!(ws["model"], Value::Null, "{ws}");
        assert_eq!(ws["model_source"], "agent-default", "{ws}");
    }
    assert_eq!(plan["overlaps"], serde_json::json!([]));

    let (run, text) = flow(&["run", "--progress", "plain", "--grace", "1s"]);
    assert_eq!(run.status.code(), Some(0), "{text}");
    let state = env.state();
    for ws in ["api", "ui", "docs"] {
        assert_eq!(state.phase(ws), "merged", "{text}");
        assert_eq!(
            env.show_file("integration/parallel", &format!("{ws}/done.txt"))
                .as_deref(),
            Some(format!("work of {ws}\n").as_str())
        );
        // Claude Code ran on its own default model: no `--model` was given.
        let args = std::fs::read_to_string(env.base().join(format!("home/.claude/args-{ws}"))).unwrap_or_default();
        let args: Vec<&str> = args.lines().collect();
        assert_eq!(args[..2], ["-p", "--output-format"], "{args:?}");
        assert!(!args.contains(&"--model"), "{args:?}");
    }
}

#[test]
fn workstreams_without_owns_that_may_run_at_once_are_one_overlap_warning() {
    let env = TestEnv::new();
    let text: String = ["a", "b", "c"]
        .iter()
        .map(|n| format!("workstream \"{n}\" {{ task \"x\" }}\n"))
        .collect();
    env.write("parallel.kdl", &text);
    env.commit_all("add the workflow");
    let path = path_with(&stand_in_claude(&env));
    let check = env
        .flow()
        .env("PATH", &path)
        .args(["check"])
        .output()
        .expect("flow runs");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr.matches("flow::owns_overlap").count(), 1, "{stderr}");
    assert!(
        stderr.contains("3 workstreams have no `owns`, so each owns everything"),
        "{stderr}"
    );
    let denied = env
        .flow()
        .env("PATH", &path)
        .args(["check", "--deny-warnings"])
        .output()
        .expect("flow runs");
    assert_eq!(denied.status.code(), Some(1));
    let plan = env
        .flow()
        .env("PATH", &path)
        .args(["plan"])
        .output()
        .expect("flow runs");
    let stdout = String::from_utf8_lossy(&plan.stdout);
    assert!(
        stdout.contains("Overlaps       3 predicted between workstreams that may run at once, in 1 group:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("a, b and c (each owns everything): 3 pairs"),
        "{stdout}"
    );
}

#[test]
fn init_writes_a_workflow_for_each_agent_preset_that_checks() {
    for agent in flow_stdlib::agent_names() {
        let env = TestEnv::new();
        let init = env.flow().args(["init", "--agent", agent]).output().expect("flow runs");
        assert_eq!(
            init.status.code(),
            Some(0),
            "{agent}: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let text = std::fs::read_to_string(env.root.join("parallel.kdl")).expect("written");
        assert!(text.contains(&format!("agent \"{agent}\"")), "{agent}:\n{text}");
        assert!(text.contains("flow help workflow"), "{agent}:\n{text}");
        let check = env
            .flow()
            .args(["check", "--deny-warnings"])
            .output()
            .expect("flow runs");
        assert_eq!(
            check.status.code(),
            Some(0),
            "{agent}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let env = TestEnv::new();
    let unknown = env
        .flow()
        .args(["init", "--agent", "claude"])
        .output()
        .expect("flow runs");
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("claude-code"), "the presets are listed: {stderr}");
    assert!(!env.root.join("parallel.kdl").exists());
}
