//! `flow run` with the API presets (`anthropic-api`, `openai-api`) pointed at stand-ins of
//! the Messages and Chat Completions APIs served by the test: a scripted model that writes
//! one file in its scope and tries one outside it, then says it is done. The file is merged,
//! the write outside is refused at the tool, the stand-in's tokens are in `flow usage`, the
//! conversation is in `flow logs`, and the key is in no file under `.flow/`.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::support::TestEnv;

const KEY: &str = "sk-e2e-secret-key-0123456789";

/// What the stand-in saw: each request's key header and body.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, Value)>>>);

/// Serves the stand-in on a loopback port, on a thread of its own; answers its base URL.
fn serve(seen: Seen) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let app = axum::Router::new()
                .route("/v1/messages", axum::routing::post(anthropic))
                .route("/v1/chat/completions", axum::routing::post(openai))
                .with_state(seen);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
            tx.send(listener.local_addr().expect("an address"))
                .expect("the test waits");
            let _ = axum::serve(listener, app).await;
        });
    });
    format!("http://{}", rx.recv().expect("the stand-in's address"))
}

/// The model's first turn writes two files; once it has the tools' answers, it is done.
fn first_turn(body: &Value) -> bool {
    !body.to_string().contains("tool_result") && !body.to_string().contains("\"role\":\"tool\"")
}

async fn anthropic(State(seen): State<Seen>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).expect("a JSON request");
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let first = first_turn(&body);
    let streamed = body["stream"] == true;
    seen.0.lock().expect("the lock").push((key, body));
    let content = if first {
        json!([
            {"type": "text", "text": "Writing the greeting."},
            {"type": "tool_use", "id": "toolu_1", "name": "write_file", "input": {"path": "greeting.txt", "content": "hello from the API\n"}},
            {"type": "tool_use", "id": "toolu_2", "name": "write_file", "input": {"path": "README.md", "content": "taken over\n"}},
            {"type": "tool_use", "id": "toolu_3", "name": "run_command", "input": {"command": "env"}},
            {"type": "tool_use", "id": "toolu_4", "name": "run_command", "input": {"command": "echo mine > README.md"}},
        ])
    } else {
        json!([{"type": "text", "text": "Wrote greeting.txt; README.md is not mine to change."}])
    };
    let stop = if first { "tool_use" } else { "end_turn" };
    let usage = json!({"input_tokens": 1000, "output_tokens": 50, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 300});
    if !streamed {
        return axum::Json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "stand-in",
            "content": content, "stop_reason": stop, "usage": usage,
        }))
        .into_response();
    }
    let mut stream = vec![(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "usage": {"input_tokens": 1000, "output_tokens": 1, "cache_creation_input_tokens": 200, "cache_read_input_tokens": 300}}}),
    )];
    for (index, block) in content.as_array().expect("blocks").iter().enumerate() {
        let (start, delta) = if block["type"] == "text" {
            (
                json!({"type": "text", "text": ""}),
                json!({"type": "text_delta", "text": block["text"]}),
            )
        } else {
            (
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
                json!({"type": "input_json_delta", "partial_json": block["input"].to_string()}),
            )
        };
        stream.push((
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        stream.push((
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
        stream.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    stream.push((
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 50}}),
    ));
    stream.push(("message_stop", json!({"type": "message_stop"})));
    events(&stream)
}

async fn openai(State(seen): State<Seen>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).expect("a JSON request");
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let first = first_turn(&body);
    let streamed = body["stream"] == true;
    seen.0.lock().expect("the lock").push((key, body));
    let message = if first {
        json!({"role": "assistant", "content": "Writing the greeting.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "write_file", "arguments": "{\"path\":\"greeting.txt\",\"content\":\"hello from the API\\n\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "write_file", "arguments": "{\"path\":\"README.md\",\"content\":\"taken over\\n\"}"}},
        ]})
    } else {
        json!({"role": "assistant", "content": "Wrote greeting.txt; README.md is not mine to change."})
    };
    let usage =
        json!({"prompt_tokens": 1300, "completion_tokens": 50, "prompt_tokens_details": {"cached_tokens": 300}});
    let finish = if first { "tool_calls" } else { "stop" };
    if !streamed {
        return axum::Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }))
        .into_response();
    }
    let mut delta = message.clone();
    if let Some(calls) = delta["tool_calls"].as_array_mut() {
        for (i, call) in calls.iter_mut().enumerate() {
            call["index"] = json!(i);
        }
    }
    let chunks = [
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": null}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}),
        json!({"choices": [], "usage": usage}),
    ];
    let mut stream: Vec<(&str, Value)> = chunks.into_iter().map(|c| ("", c)).collect();
    stream.push(("", json!("[DONE]")));
    events(&stream)
}

/// Server-sent events, one per `(event, data)`.
fn events(events: &[(&str, Value)]) -> Response {
    let mut text = String::new();
    for (event, data) in events {
        if !event.is_empty() {
            text.push_str(&format!("event: {event}\n"));
        }
        // A string is sent as it is (`[DONE]`), anything else as JSON.
        let data = match data {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        };
        text.push_str(&format!("data: {data}\n\n"));
    }
    ([("content-type", "text/event-stream")], text).into_response()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Runs workstream `greet` with `agent`, `definitions` added to the workflow and `lines`
/// to the workstream, the key in `key_variable`, and checks all the test's promises.
fn api_run(agent: &str, key_variable: &str, extra_env: &[(&str, String)], definitions: &str, lines: &str) {
    let env = TestEnv::new();
    env.workflow(&format!(
        r#"
workflow "t" {{
    base "main"
}}
import "std:agents" "std:models"
{definitions}
workstream "greet" {{
    agent "{agent}"
    model "sonnet"
    {lines}
    owns "greeting.txt"
    task "Write greeting.txt."
}}
"#
    ));
    let mut command = env.flow();
    command
        .args(["run", "--progress", "plain", "--grace", "1s", "--retry-delay", "100ms"])
        .env(key_variable, KEY)
        .timeout(std::time::Duration::from_secs(120));
    for (name, value) in extra_env {
        command.env(name, value);
    }
    let out = command.output().expect("flow runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    let state = env.state();
    assert_eq!(state.phase("greet"), "merged", "{text}");
    // The file is merged; the write outside the scope was refused, so the scope check after
    // the attempt found nothing to complain of.
    assert_eq!(
        env.show_file("integration/t", "greeting.txt").as_deref(),
        Some("hello from the API\n")
    );
    assert_eq!(
        env.show_file("integration/t", "README.md").as_deref(),
        Some("# test repository\n")
    );
    // The stand-in's tokens, summed over its two replies.
    let usage = env.flow().args(["usage", "--json"]).output().expect("flow usage runs");
    let report: Value = serde_json::from_slice(&usage.stdout).expect("usage JSON");
    let total = &report["total"];
    let cache_write = if agent.starts_with("anthropic") { 400 } else { 0 };
    assert_eq!(
        (
            &total["input_tokens"],
            &total["output_tokens"],
            &total["cache_read_tokens"],
            &total["cache_write_tokens"]
        ),
        (&json!(2000), &json!(100), &json!(600), &json!(cache_write)),
        "{report}"
    );
    let usage_text = env.flow().args(["usage"]).output().expect("flow usage runs");
    let usage_text = String::from_utf8_lossy(&usage_text.stdout).into_owned();
    assert!(usage_text.contains("greet"), "{usage_text}");
    // The conversation, readable, with the refusal.
    let logs = env.flow().args(["logs", "greet"]).output().expect("flow logs runs");
    let logs = String::from_utf8_lossy(&logs.stdout).into_owned();
    assert!(logs.contains("→ write_file greeting.txt"), "{logs}");
    assert!(
        logs.contains("✗ refused: `README.md` is outside `owns` (greeting.txt)"),
        "{logs}"
    );
    assert!(logs.contains("assistant: Wrote greeting.txt"), "{logs}");
    if agent.starts_with("anthropic") {
        // A command's write outside the scope is undone as soon as the command ends.
        assert!(logs.contains("those changes were undone"), "{logs}");
    }
    // The key went to the API, and nowhere under .flow/.
    for path in files_under(&env.flow_dir()) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "{} holds the key",
            path.display()
        );
    }
}

#[test]
fn anthropic_api_preset_writes_merges_and_counts_the_stand_ins_tokens() {
    let seen = Seen::default();
    let base = serve(seen.clone());
    api_run(
        "anthropic-api",
        "ANTHROPIC_API_KEY",
        &[("ANTHROPIC_BASE_URL", base)],
        "",
        "",
    );
    let requests = seen.0.lock().expect("the lock").clone();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|(key, _)| key == KEY));
    assert_eq!(requests[0].1["model"], "claude-sonnet-5");
}

#[test]
fn openai_api_preset_writes_merges_and_counts_the_stand_ins_tokens() {
    for stream in ["on", "off"] {
        let seen = Seen::default();
        let base = serve(seen.clone());
        // The workflow's own definition of the preset, with its `base-url`.
        let definition = format!(
            "agent \"openai-api\" {{\n    api \"openai\"\n    key-env \"OPENAI_API_KEY\"\n    base-url \"{base}/v1\"\n    stream \"{stream}\"\n}}"
        );
        api_run("openai-api", "OPENAI_API_KEY", &[], &definition, "");
        let requests = seen.0.lock().expect("the lock").clone();
        assert_eq!(requests.len(), 2);
        assert!(requests.iter().all(|(key, _)| *key == format!("Bearer {KEY}")));
        assert_eq!(requests[1].1["stream"], stream == "on");
    }
}

#[test]
fn an_accounts_key_is_the_one_sent() {
    let seen = Seen::default();
    let base = serve(seen.clone());
    api_run(
        "anthropic-api",
        "TEAM_ANTHROPIC_KEY",
        &[
            ("ANTHROPIC_BASE_URL", base),
            ("ANTHROPIC_API_KEY", "sk-not-this-one".into()),
        ],
        "account \"team\" env=\"TEAM_ANTHROPIC_KEY\"",
        "account \"team\"",
    );
    let requests = seen.0.lock().expect("the lock").clone();
    assert!(!requests.is_empty() && requests.iter().all(|(key, _)| key == KEY));
    // The commands the model runs get a CLI agent's environment without the key.
    let results = requests[1].1["messages"].to_string();
    assert!(results.contains("FLOW_WORKSTREAM=greet"), "{results}");
    assert!(
        !results.contains("ANTHROPIC_API_KEY") && !results.contains(KEY),
        "{results}"
    );
}
