//! API agents against a stand-in API served in the test itself: a loopback axum server that
//! answers each request with the next reply of a script (streamed as server-sent events, or
//! whole) and keeps every request it was sent.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flow_dsl::{ApiKind, ApiSettings, Scope, ScopeGlob};
use flow_engine::agent::Usage;
use flow_engine::agent::output::ErrorClass;
use flow_engine::agent::process::ProcessSpec;
use flow_engine::run::api_agent::{Attempt, run};
use flow_engine::run::core::{AgentEnd, AgentOutcome};
use serde_json::{Value, json};
use tokio::sync::watch;

const KEY: &str = "sk-test-key-that-must-stay-secret";

/// One scripted answer.
#[derive(Clone)]
struct Scripted {
    status: u16,
    headers: Vec<(&'static str, String)>,
    content_type: &'static str,
    body: String,
}

/// The stand-in: its script and what it was sent.
#[derive(Clone, Default)]
struct StandIn {
    replies: Arc<Mutex<VecDeque<Scripted>>>,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    /// The reply given once the script has ended, if any (a model that never stops).
    forever: Arc<Mutex<Option<Scripted>>>,
}

impl StandIn {
    fn new(replies: Vec<Scripted>) -> StandIn {
        StandIn {
            replies: Arc::new(Mutex::new(replies.into())),
            ..StandIn::default()
        }
    }

    fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.requests.lock().expect("the lock").clone()
    }

    /// Serves on a loopback port; answers its base URL.
    async fn serve(&self) -> String {
        let app = axum::Router::new()
            .route("/v1/messages", axum::routing::post(answer))
            .route("/v1/chat/completions", axum::routing::post(answer))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }
}

async fn answer(State(stand_in): State<StandIn>, headers: HeaderMap, body: String) -> Response {
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    stand_in.requests.lock().expect("the lock").push((headers, value));
    let next = stand_in.replies.lock().expect("the lock").pop_front();
    let Some(reply) = next.or_else(|| stand_in.forever.lock().expect("the lock").clone()) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the script has ended").into_response();
    };
    let mut response = (
        StatusCode::from_u16(reply.status).expect("a status"),
        [("content-type", reply.content_type)],
        reply.body,
    )
        .into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a header value"));
    }
    response
}

fn json_reply(body: Value) -> Scripted {
    Scripted {
        status: 200,
        headers: vec![],
        content_type: "application/json",
        body: body.to_string(),
    }
}

fn sse_reply(events: &[(&str, Value)]) -> Scripted {
    let mut body = String::new();
    for (event, data) in events {
        if !event.is_empty() {
            body.push_str(&format!("event: {event}\n"));
        }
        body.push_str(&format!("data: {data}\n\n"));
    }
    Scripted {
        status: 200,
        headers: vec![],
        content_type: "text/event-stream",
        body,
    }
}

fn status_reply(status: u16, headers: Vec<(&'static str, String)>) -> Scripted {
    Scripted {
        status,
        headers,
        content_type: "application/json",
        body: json!({"type": "error", "error": {"type": "overloaded_error", "message": "try later"}}).to_string(),
    }
}

/// One turn of a scripted model: text, then tool calls `(name, input)`.
struct Turn {
    text: &'static str,
    calls: Vec<(&'static str, Value)>,
    input_tokens: u64,
    output_tokens: u64,
}

fn turn(text: &'static str, calls: Vec<(&'static str, Value)>) -> Turn {
    Turn {
        text,
        calls,
        input_tokens: 100,
        output_tokens: 20,
    }
}

fn anthropic(turn: &Turn, stream: bool) -> Scripted {
    let mut blocks = vec![];
    if !turn.text.is_empty() {
        blocks.push(json!({"type": "text", "text": turn.text}));
    }
    for (i, (name, input)) in turn.calls.iter().enumerate() {
        blocks.push(json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": input}));
    }
    let stop = if turn.calls.is_empty() { "end_turn" } else { "tool_use" };
    if !stream {
        return json_reply(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "content": blocks,
            "stop_reason": stop,
            "usage": {"input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens,
                      "cache_read_input_tokens": 50, "cache_creation_input_tokens": 10},
        }));
    }
    let mut events = vec![(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": turn.input_tokens, "output_tokens": 1, "cache_read_input_tokens": 50, "cache_creation_input_tokens": 10}}}),
    )];
    events.push(("ping", json!({"type": "ping"})));
    for (index, block) in blocks.iter().enumerate() {
        if block["type"] == "text" {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
            ));
            let text = block["text"].as_str().expect("a text");
            let (a, b) = text.split_at(text.len() / 2);
            for part in [a, b] {
                events.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": part}}),
                ));
            }
        } else {
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}),
            ));
            let input = block["input"].to_string();
            let (a, b) = input.split_at(input.len() / 2);
            for part in [a, b] {
                events.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": part}}),
                ));
            }
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push((
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": turn.output_tokens}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));
    sse_reply(&events)
}

fn openai(turn: &Turn, stream: bool) -> Scripted {
    let calls: Vec<Value> = turn
        .calls
        .iter()
        .enumerate()
        .map(|(i, (name, input))| {
            json!({"id": format!("call_{i}"), "type": "function", "function": {"name": name, "arguments": input.to_string()}})
        })
        .collect();
    let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
    let usage = json!({"prompt_tokens": turn.input_tokens + 50, "completion_tokens": turn.output_tokens,
                       "prompt_tokens_details": {"cached_tokens": 50}});
    if !stream {
        let mut message =
            json!({"role": "assistant", "content": if turn.text.is_empty() { Value::Null } else { json!(turn.text) }});
        if !calls.is_empty() {
            message["tool_calls"] = json!(calls);
        }
        return json_reply(json!({
            "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }));
    }
    let chunk = |delta: Value, finish: Value| {
        (
            "",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    if !turn.text.is_empty() {
        events.push(chunk(json!({"content": turn.text}), Value::Null));
    }
    for (i, call) in calls.iter().enumerate() {
        let arguments = call["function"]["arguments"].as_str().expect("arguments").to_string();
        let (a, b) = arguments.split_at(arguments.len() / 2);
        events.push(chunk(
            json!({"tool_calls": [{"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": a}}]}),
            Value::Null,
        ));
        events.push(chunk(
            json!({"tool_calls": [{"index": i, "function": {"arguments": b}}]}),
            Value::Null,
        ));
    }
    events.push(chunk(json!({}), json!(finish)));
    events.push((
        "",
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage}),
    ));
    let mut reply = sse_reply(&events);
    reply.body.push_str("data: [DONE]\n\n");
    reply
}

fn reply(api: ApiKind, turn: &Turn, stream: bool) -> Scripted {
    match api {
        ApiKind::Anthropic => anthropic(turn, stream),
        ApiKind::Openai => openai(turn, stream),
    }
}

fn scope(owns: &[&str], forbid: &[&str]) -> Scope {
    let globs = |texts: &[&str]| texts.iter().map(|t| ScopeGlob::new(*t)).collect();
    Scope::new(globs(owns), globs(forbid)).expect("valid globs")
}

fn attempt(api: ApiKind, base_url: &str, stream: bool, dir: &Path, scope: Scope) -> Attempt {
    let worktree = dir.join("worktree");
    std::fs::create_dir_all(&worktree).expect("a worktree");
    let model = flow_dsl::Model {
        name: "m".into(),
        provider: "test".into(),
        id: "model-1".into(),
        input_usd: 3.0,
        output_usd: 15.0,
        cache_read_usd: 0.3,
        cache_write_usd: 3.75,
        priced: None,
    };
    Attempt {
        settings: ApiSettings {
            kind: api,
            base_url: Some(base_url.to_string()),
            max_turns: 10,
            max_tokens: 1000,
            stream,
        },
        agent: "test-api".into(),
        model: model.id.clone(),
        prices: Some(model),
        key: Some(KEY.into()),
        gate: format!("test {base_url}"),
        prompt: "Write hello.txt.".into(),
        worktree,
        scope,
        commands: {
            let mut commands = ProcessSpec::new("sh", vec![], dir);
            commands.env = BTreeMap::from([("PATH".to_string(), std::env::var("PATH").unwrap_or_default())]);
            commands.timeout = Some(Duration::from_secs(600));
            commands.grace = Duration::from_secs(1);
            commands
        },
        secrets: vec![KEY.into()],
        budget_usd: None,
        log_path: dir.join("run/logs/w.log"),
        transcript_path: dir.join("run/transcripts/w-1-work.jsonl"),
        timeout: None,
        idle_timeout: None,
    }
}

async fn go(attempt: Attempt) -> (AgentOutcome, Vec<Usage>) {
    let reported = Mutex::new(vec![]);
    let on_usage = |u: Usage| reported.lock().expect("the lock").push(u);
    let on_line = |_line: String| {};
    let (_stop_tx, stop) = watch::channel(false);
    let outcome = run(attempt, &on_usage, &on_line, stop).await;
    (outcome, reported.into_inner().expect("the lock"))
}

/// The tool results a request sent, in either API's format: (content, is_error).
fn tool_results(api: ApiKind, body: &Value) -> Vec<(String, bool)> {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    match api {
        ApiKind::Anthropic => messages
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter(|b| b["type"] == "tool_result")
            .map(|b| (b["content"].as_str().unwrap_or("").to_string(), b["is_error"] == true))
            .collect(),
        ApiKind::Openai => messages
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| (m["content"].as_str().unwrap_or("").to_string(), false))
            .collect(),
    }
}

/// A model that writes a file, reads it back, runs a command, then says it is done.
async fn tool_loop(api: ApiKind, stream: bool) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let turns = [
        turn(
            "I will write the file.",
            vec![("write_file", json!({"path": "src/hello.txt", "content": "hello\n"}))],
        ),
        turn(
            "",
            vec![
                ("read_file", json!({"path": "src/hello.txt"})),
                ("run_command", json!({"command": "wc -l < src/hello.txt"})),
            ],
        ),
        turn("Wrote src/hello.txt with one line.", vec![]),
    ];
    let stand_in = StandIn::new(turns.iter().map(|t| reply(api, t, stream)).collect());
    let base = stand_in.serve().await;
    let (outcome, reported) = go(attempt(api, &base, stream, dir.path(), scope(&["src/**"], &[]))).await;
    assert_eq!(outcome.end, AgentEnd::Exited(0), "{outcome:?}");
    assert_eq!(outcome.error, None);
    assert!(outcome.delivered);
    assert_eq!(outcome.result.as_deref(), Some("Wrote src/hello.txt with one line."));
    let written = std::fs::read_to_string(dir.path().join("worktree/src/hello.txt")).expect("the file");
    assert_eq!(written, "hello\n");
    // Usage is exact, summed over the three replies, and reported as it grew.
    let expected = match api {
        ApiKind::Anthropic => Usage {
            input_tokens: 300,
            output_tokens: 60,
            cache_read_tokens: 150,
            cache_write_tokens: 30,
            cost_usd: None,
        },
        ApiKind::Openai => Usage {
            input_tokens: 300,
            output_tokens: 60,
            cache_read_tokens: 150,
            cache_write_tokens: 0,
            cost_usd: None,
        },
    };
    assert_eq!(outcome.usage, expected);
    assert_eq!(reported.len(), 3);
    assert_eq!(reported.last(), Some(&expected));
    // The model was sent what the tools answered.
    let requests = stand_in.requests();
    assert_eq!(requests.len(), 3);
    let results = tool_results(api, &requests[2].1);
    assert_eq!(results[0].0, "wrote src/hello.txt (6 bytes)");
    assert_eq!(results[1].0, "hello\n");
    assert_eq!(results[2].0, "exit status 0\n1\n");
    for (headers, body) in &requests {
        assert_eq!(body["model"], "model-1");
        assert_eq!(body["stream"], stream);
        match api {
            ApiKind::Anthropic => {
                assert_eq!(headers["x-api-key"], KEY);
                assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
                assert_eq!(body["messages"][0]["content"][0]["cache_control"]["type"], "ephemeral");
            }
            ApiKind::Openai => assert_eq!(headers["authorization"], format!("Bearer {KEY}")),
        }
    }
    // The transcript and the log hold the conversation, never the key.
    let transcript = std::fs::read_to_string(dir.path().join("run/transcripts/w-1-work.jsonl")).expect("a transcript");
    assert!(transcript.contains("write_file"), "{transcript}");
    let log = std::fs::read_to_string(dir.path().join("run/logs/w.log")).expect("a log");
    assert!(log.contains("→ write_file src/hello.txt (content: 6 bytes)"), "{log}");
    assert!(log.contains("assistant: Wrote src/hello.txt with one line."), "{log}");
    assert!(!transcript.contains(KEY) && !log.contains(KEY));
}

#[tokio::test]
async fn anthropic_streamed_tool_loop() {
    tool_loop(ApiKind::Anthropic, true).await;
}

#[tokio::test]
async fn anthropic_whole_tool_loop() {
    tool_loop(ApiKind::Anthropic, false).await;
}

#[tokio::test]
async fn openai_streamed_tool_loop() {
    tool_loop(ApiKind::Openai, true).await;
}

#[tokio::test]
async fn openai_whole_tool_loop() {
    tool_loop(ApiKind::Openai, false).await;
}

#[tokio::test]
async fn a_server_that_ignores_stream_is_read_as_it_answers() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let done = turn("Done.", vec![]);
    let stand_in = StandIn::new(vec![anthropic(&done, false), openai(&done, true)]);
    let base = stand_in.serve().await;
    let (outcome, _) = go(attempt(
        ApiKind::Anthropic,
        &base,
        true,
        dir.path(),
        Scope::everything(),
    ))
    .await;
    assert_eq!(outcome.result.as_deref(), Some("Done."), "{outcome:?}");
    let (outcome, _) = go(attempt(ApiKind::Openai, &base, false, dir.path(), Scope::everything())).await;
    assert_eq!(outcome.result.as_deref(), Some("Done."), "{outcome:?}");
}

#[tokio::test]
async fn a_write_out_of_scope_is_refused_at_the_tool() {
    for api in [ApiKind::Anthropic, ApiKind::Openai] {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let turns = [
            turn(
                "",
                vec![
                    ("write_file", json!({"path": "docs/notes.md", "content": "mine now"})),
                    ("write_file", json!({"path": "src/secret/key.rs", "content": "x"})),
                    ("write_file", json!({"path": "../escape.txt", "content": "x"})),
                    ("edit_file", json!({"path": "README.md", "old": "a", "new": "b"})),
                ],
            ),
            turn("I could not write those.", vec![]),
        ];
        let stand_in = StandIn::new(turns.iter().map(|t| reply(api, t, true)).collect());
        let base = stand_in.serve().await;
        let attempt = attempt(api, &base, true, dir.path(), scope(&["src/**"], &["src/secret/**"]));
        std::fs::write(attempt.worktree.join("README.md"), "a").expect("a file");
        let (outcome, _) = go(attempt).await;
        assert_eq!(outcome.end, AgentEnd::Exited(0));
        assert!(!dir.path().join("worktree/docs").exists());
        assert!(!dir.path().join("worktree/src/secret").exists());
        assert!(!dir.path().join("escape.txt").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("worktree/README.md")).expect("a file"),
            "a"
        );
        let requests = stand_in.requests();
        let results = tool_results(api, &requests[1].1);
        assert_eq!(results.len(), 4);
        assert!(
            results[0]
                .0
                .starts_with("refused: `docs/notes.md` is outside `owns` (src/**)"),
            "{}",
            results[0].0
        );
        assert!(results[0].0.contains("It may write: src/**, except src/secret/**"));
        assert!(
            results[1].0.contains("matches `forbid \"src/secret/**\"`"),
            "{}",
            results[1].0
        );
        assert!(results[2].0.contains("leaves the worktree"), "{}", results[2].0);
        assert!(results[3].0.starts_with("refused: `README.md`"), "{}", results[3].0);
        if api == ApiKind::Anthropic {
            assert!(results.iter().all(|(_, is_error)| *is_error));
        }
    }
}

#[tokio::test]
async fn a_model_that_never_stops_is_ended_by_max_turns() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let stand_in = StandIn::new(vec![]);
    *stand_in.forever.lock().expect("the lock") = Some(reply(
        ApiKind::Anthropic,
        &turn("", vec![("list_files", json!({}))]),
        true,
    ));
    let base = stand_in.serve().await;
    let mut attempt = attempt(ApiKind::Anthropic, &base, true, dir.path(), Scope::everything());
    attempt.settings.max_turns = 3;
    let (outcome, _) = go(attempt).await;
    assert_eq!(outcome.end, AgentEnd::Exited(1));
    let error = outcome.error.expect("an error");
    assert_eq!(error.class, ErrorClass::TurnLimit);
    assert!(error.message.contains("after 3 turns"), "{}", error.message);
    assert_eq!(stand_in.requests().len(), 3);
    assert_eq!(outcome.usage.input_tokens, 300);
}

#[tokio::test(start_paused = true)]
async fn rate_limits_and_overload_are_retried_after_the_time_asked() {
    for api in [ApiKind::Anthropic, ApiKind::Openai] {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let done = turn("Nothing to do.", vec![]);
        let stand_in = StandIn::new(vec![
            status_reply(429, vec![("retry-after", "30".into())]),
            status_reply(529, vec![]),
            status_reply(503, vec![]),
            reply(api, &done, true),
        ]);
        let base = stand_in.serve().await;
        let started = tokio::time::Instant::now();
        let (outcome, _) = go(attempt(api, &base, true, dir.path(), Scope::everything())).await;
        assert_eq!(outcome.end, AgentEnd::Exited(0), "{outcome:?}");
        assert_eq!(stand_in.requests().len(), 4);
        // On tokio's paused clock: the waits asked for (30 s) and the backoff (1 s, 2 s)
        // passed in no real time.
        assert!(started.elapsed() >= Duration::from_secs(33));
        let log = std::fs::read_to_string(dir.path().join("run/logs/w.log")).expect("a log");
        assert!(log.contains("429") && log.contains("retry 1 of 8 in 30s"), "{log}");
        assert!(log.contains("529"), "{log}");
    }
}

#[tokio::test(start_paused = true)]
async fn retries_end_with_a_rate_limit_failure() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let stand_in = StandIn::new(vec![]);
    *stand_in.forever.lock().expect("the lock") = Some(status_reply(429, vec![("retry-after", "1".into())]));
    let base = stand_in.serve().await;
    let (outcome, _) = go(attempt(
        ApiKind::Anthropic,
        &base,
        false,
        dir.path(),
        Scope::everything(),
    ))
    .await;
    let error = outcome.error.expect("an error");
    assert_eq!(error.class, ErrorClass::RateLimit);
    assert!(error.message.contains("gave up after 8 retries"), "{}", error.message);
    assert_eq!(stand_in.requests().len(), 9);
}

#[tokio::test]
async fn a_malformed_reply_is_a_clear_failure() {
    let cases = [
        (
            ApiKind::Anthropic,
            false,
            json_reply(json!({"unexpected": true})),
            "no `content`",
        ),
        (
            ApiKind::Openai,
            false,
            Scripted {
                body: "<html>gateway</html>".into(),
                ..json_reply(json!({}))
            },
            "not JSON",
        ),
        (
            ApiKind::Anthropic,
            true,
            sse_reply(&[("message_start", json!({"type": "message_start", "message": {}}))]),
            "before `message_stop`",
        ),
        (
            ApiKind::Openai,
            true,
            sse_reply(&[("", json!({"choices": [{"delta": {"content": "cut"}}]}))]),
            "before its last chunk",
        ),
    ];
    for (api, stream, scripted, expected) in cases {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let stand_in = StandIn::new(vec![scripted]);
        let base = stand_in.serve().await;
        let (outcome, _) = go(attempt(api, &base, stream, dir.path(), Scope::everything())).await;
        assert_eq!(outcome.end, AgentEnd::Exited(1));
        let error = outcome.error.expect("an error");
        assert_eq!(error.class, ErrorClass::Api);
        assert!(
            error.message.starts_with("the API's reply cannot be read"),
            "{}",
            error.message
        );
        assert!(error.message.contains(expected), "{}", error.message);
        assert_eq!(stand_in.requests().len(), 1, "a malformed reply is not retried");
    }
}

#[tokio::test]
async fn a_bad_key_is_an_auth_failure_without_the_key() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let stand_in = StandIn::new(vec![Scripted {
        status: 401,
        headers: vec![],
        content_type: "application/json",
        body: json!({"type": "error", "error": {"type": "authentication_error", "message": format!("invalid x-api-key {KEY}")}})
            .to_string(),
    }]);
    let base = stand_in.serve().await;
    let (outcome, _) = go(attempt(
        ApiKind::Anthropic,
        &base,
        true,
        dir.path(),
        Scope::everything(),
    ))
    .await;
    let error = outcome.error.expect("an error");
    assert_eq!(error.class, ErrorClass::Auth);
    assert!(
        error.message.contains("401") && !error.message.contains(KEY),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_request_that_would_pass_the_budget_is_not_sent() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    // The first reply costs 100_000 output tokens at $15 per million: $1.50. The next request
    // may cost up to 1000 output tokens ($0.015) and its input: past $1.51.
    let mut expensive = turn("", vec![("list_files", json!({}))]);
    expensive.output_tokens = 100_000;
    let stand_in = StandIn::new(vec![
        reply(ApiKind::Anthropic, &expensive, true),
        reply(ApiKind::Anthropic, &turn("done", vec![]), true),
    ]);
    let base = stand_in.serve().await;
    let mut attempt = attempt(ApiKind::Anthropic, &base, true, dir.path(), Scope::everything());
    attempt.budget_usd = Some(1.51);
    let (outcome, _) = go(attempt).await;
    let error = outcome.error.expect("an error");
    assert_eq!(error.class, ErrorClass::Budget);
    assert!(error.message.contains("not sent"), "{}", error.message);
    assert_eq!(stand_in.requests().len(), 1, "the second request was not sent");
    assert_eq!(outcome.usage.output_tokens, 100_000);
}

#[tokio::test]
async fn stopping_ends_the_attempt_with_its_usage_so_far() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let stand_in = StandIn::new(vec![reply(
        ApiKind::Openai,
        &turn(
            "",
            vec![("run_command", json!({"command": "touch started; sleep 600"}))],
        ),
        false,
    )]);
    let base = stand_in.serve().await;
    let attempt = attempt(ApiKind::Openai, &base, false, dir.path(), Scope::everything());
    let marker = attempt.worktree.join("started");
    let (stop_tx, stop) = watch::channel(false);
    let on_usage = |_u: Usage| {};
    let on_line = |_line: String| {};
    let stopper = async {
        // Stops once the command has started (the marker), however long that takes.
        while !marker.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop_tx.send(true);
    };
    let (outcome, ()) = tokio::join!(run(attempt, &on_usage, &on_line, stop), stopper);
    assert_eq!(outcome.end, AgentEnd::Stopped);
    assert_eq!(outcome.usage.output_tokens, 20);
}

#[tokio::test(start_paused = true)]
async fn a_model_that_answers_nothing_is_hung_at_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    // A tool's answer that never comes: the command waits on its own forever.
    let stand_in = StandIn::new(vec![reply(
        ApiKind::Anthropic,
        &turn("", vec![("run_command", json!({"command": "sleep 100000"}))]),
        false,
    )]);
    let base = stand_in.serve().await;
    let mut attempt = attempt(ApiKind::Anthropic, &base, false, dir.path(), Scope::everything());
    attempt.idle_timeout = Some(Duration::from_secs(300));
    let (outcome, _) = go(attempt).await;
    // (The paused clock may reach the limit while the reply is on its way: hung either way.)
    assert_eq!(outcome.end, AgentEnd::Hung);
}
