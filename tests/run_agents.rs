//! `flow run` end to end with what agents see and say: the environment they get, secrets kept
//! out of logs, and fake agent CLIs replaying recorded outputs (usage, cost, errors).

use std::path::Path;

use crate::support::{HEADER, TestEnv, fake_agent, recorded_output};

const SECRET: &str = "s3cr3t-value";

/// Every file under a folder, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn agents_get_only_allowed_and_named_variables_and_secrets_stay_out_of_the_logs() {
    let env = TestEnv::new();
    let plain = env.outside("plain.env");
    let named = env.outside("named.env");
    env.workflow(&format!(
        r#"
workstream "plain" {{ owns "p/**"; script "env > {plain}" }}
workstream "named" {{
    owns "n/**"
    env "SECRET_TOKEN" GREETING="hello"
    test "echo \"test saw $SECRET_TOKEN\""
    script "env > {named}; echo \"token is $SECRET_TOKEN\"; echo \"stderr $SECRET_TOKEN\" >&2"
}}
workstream "leaky-test" {{
    owns "l/**"
    env "SECRET_TOKEN"
    test "echo \"failing with $SECRET_TOKEN\"; false"
    script "echo \"$SECRET_TOKEN\""
}}
workstream "leaky-agent" {{
    owns "k/**"
    env "SECRET_TOKEN"
    script "echo \"key is $SECRET_TOKEN\"; exit 1"
}}
"#
    ));
    let run = env
        .flow()
        .env("SECRET_TOKEN", SECRET)
        .env("UNRELATED_SETTING", "x")
        .args(["run", "--progress", "plain", "--grace", "1s"])
        .output()
        .expect("flow runs");
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));
    let state = env.state();
    assert_eq!(
        state.phases(),
        crate::support::phases(&[
            ("plain", "merged"),
            ("named", "merged"),
            ("leaky-test", "failed"),
            ("leaky-agent", "failed")
        ])
    );
    assert_eq!(
        state.failure_message("leaky-agent"),
        "crash: key is *** (exited with code 1)",
        "the agent's error quotes its output, redacted, and says how it ended"
    );
    assert_eq!(state.failure_kind("leaky-test"), Some("test"));
    assert!(
        state.failure_message("leaky-test").contains("failing with ***"),
        "the test's last line is kept, redacted: {}",
        state.failure_message("leaky-test")
    );
    assert_eq!(state.field("leaky-test", "last_line").as_deref(), Some("***"));

    let vars = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
            .collect()
    };
    let plain_env = env.read_outside("plain.env");
    let plain_vars = vars(&plain_env);
    assert!(plain_vars.contains(&"PATH".to_string()), "{plain_env}");
    assert!(plain_vars.contains(&"HOME".to_string()), "{plain_env}");
    assert!(plain_vars.contains(&"FLOW_WORKSTREAM".to_string()), "{plain_env}");
    assert!(!plain_vars.contains(&"SECRET_TOKEN".to_string()), "{plain_env}");
    assert!(!plain_vars.contains(&"UNRELATED_SETTING".to_string()), "{plain_env}");
    assert!(!plain_env.contains(SECRET));

    let named_env = env.read_outside("named.env");
    assert!(
        named_env.lines().any(|l| l == format!("SECRET_TOKEN={SECRET}")),
        "{named_env}"
    );
    assert!(named_env.lines().any(|l| l == "GREETING=hello"), "{named_env}");
    assert!(!vars(&named_env).contains(&"UNRELATED_SETTING".to_string()));

    let log = env.log("named");
    assert!(log.contains("token is ***"), "the log shows the redacted line:\n{log}");
    assert!(log.contains("[stderr] stderr ***"), "{log}");
    assert!(
        log.contains("test saw ***"),
        "the test's output is redacted too:\n{log}"
    );
    for file in files_under(&env.flow_dir()) {
        let bytes = std::fs::read(&file).expect("read");
        assert!(
            !String::from_utf8_lossy(&bytes).contains(SECRET),
            "{} holds the secret",
            file.display()
        );
    }
    assert!(!String::from_utf8_lossy(&run.stdout).contains(SECRET));
    assert!(!String::from_utf8_lossy(&run.stderr).contains(SECRET));
}

/// A workflow with one workstream run by the fake agent replaying `fixture` with `code`.
fn fake_workflow(env: &TestEnv, output: &str, fixture: &str, code: i32) {
    let script = fake_agent("fake-agent.sh");
    let recorded = recorded_output(fixture);
    env.workflow(&format!(
        r#"{HEADER}
agent "fake" {{
    command "sh" "{script}" "{recorded}" "{code}" "{{prompt_file}}"
    output "{output}"
}}
workstream "agentic" {{
    agent "fake"
    owns "fake-agentic.txt"
    task "Do the work."
}}
"#,
        script = script.display(),
        recorded = recorded.display(),
    ));
}

#[test]
fn a_claude_json_success_records_its_tokens_cost_and_session() {
    let env = TestEnv::new();
    fake_workflow(&env, "claude-json", "claude-json-success.json", 0);
    let run = env.run(&[]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("agentic"), "merged");
    assert_eq!(
        state.ws("agentic")["usage"],
        serde_json::json!({
            "input_tokens": 14,
            "output_tokens": 1203,
            "cache_read_tokens": 61250,
            "cache_write_tokens": 8412,
            "cost_usd": 0.0699105,
        })
    );
    assert_eq!(
        state.field("agentic", "session_id").as_deref(),
        Some("3f1c9a52-7d4e-4b8a-9c1e-5a2b6d8f0e13")
    );
    assert_eq!(
        env.show_file("integration/t", "fake-agentic.txt").as_deref(),
        Some("work of agentic\n")
    );
    // The context flow wrote for the agent (its prompt file) is not part of the work.
    assert_eq!(
        state.ws("agentic")["files_changed"],
        serde_json::json!(["fake-agentic.txt"])
    );
    assert_eq!(
        env.files_at("integration/t"),
        ["README.md", "fake-agentic.txt", "parallel.kdl"]
    );
}

#[test]
fn a_claude_auth_error_fails_the_workstream_with_the_tools_message() {
    let env = TestEnv::new();
    fake_workflow(&env, "claude-json", "claude-json-auth-error.json", 1);
    let base = env.rev_parse("main").expect("main");
    let run = env.run(&[]);
    run.assert_code(1);
    let state = env.state();
    assert_eq!(state.phase("agentic"), "failed");
    assert_eq!(state.failure_kind("agentic"), Some("agent"));
    let message = state.failure_message("agentic");
    assert!(message.contains("Invalid API key"), "{message}");
    assert!(message.contains("auth"), "classified as an auth problem: {message}");
    assert_eq!(env.rev_parse("integration/t").as_deref(), Some(base.as_str()));
}

#[test]
fn codex_jsonl_usage_is_summed_over_turns() {
    let env = TestEnv::new();
    fake_workflow(&env, "codex-jsonl", "codex-jsonl-success.jsonl", 0);
    let run = env.run(&[]);
    run.assert_code(0);
    let state = env.state();
    assert_eq!(state.phase("agentic"), "merged");
    // Codex counts cached tokens inside input_tokens: flow keeps them apart.
    assert_eq!(
        state.ws("agentic")["usage"],
        serde_json::json!({
            "input_tokens": (24763 - 24448) + (31210 - 28160),
            "output_tokens": 122 + 845,
            "cache_read_tokens": 24448 + 28160,
            "cache_write_tokens": 0,
            "cost_usd": null,
        })
    );
    assert_eq!(
        state.field("agentic", "session_id").as_deref(),
        Some("0199a213-81c0-7800-8aa1-bbab2a035a53")
    );
}

#[test]
fn crossing_the_run_budget_stops_the_other_agents_even_silent_ones() {
    let env = TestEnv::new();
    let script = fake_agent("fake-agent.sh");
    let recorded = recorded_output("claude-json-success.json");
    // The recorded run cost $0.0699: past the run's $0.05.
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
    budget usd=0.05
}}
agent "shell" {{
    command "sh" "-c" "{{script}}"
    output "text"
}}
agent "fake" {{
    command "sh" "{script}" "{recorded}" "0" "{{prompt_file}}"
    output "claude-json"
}}
workstream "spender" {{ agent "fake"; owns "fake-spender.txt"; task "Spend." }}
workstream "silent" {{ agent "shell"; owns "s/**"; script "sleep 30" }}
"#,
        script = script.display(),
        recorded = recorded.display(),
    ));
    let run = env.run(&[]);
    run.assert_code(1);
    // Stopped by the run's budget: left to itself, the silent agent would have ended well.
    let state = env.state();
    assert_eq!(state.phase("silent"), "failed", "{}", run.text());
    assert_eq!(state.failure_kind("silent"), Some("budget"));
    let message = state.failure_message("silent");
    assert!(message.contains("run") && message.contains("budget"), "{message}");
    assert_eq!(state.ws("spender")["usage"]["cost_usd"], 0.0699105);
}
