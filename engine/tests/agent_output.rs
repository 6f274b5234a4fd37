//! Tests of the agent output readers against recorded-style outputs in `tests/fixtures/agents/`.

use flow_dsl::OutputFormat;
use flow_engine::agent::Usage;
use flow_engine::agent::output::{AgentError, AgentReport, ErrorClass, OutputReader, classify_message};

/// Includes a fixture file as a string.
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/agents/", $name))
    };
}

/// What one read produced: the report and every running usage `feed_line` returned, with the
/// 1-based number of the line that returned it.
struct Read {
    report: AgentReport,
    updates: Vec<(usize, Usage)>,
}

/// Feeds `stdout` line by line and finishes with the exit code and stderr.
fn read_output(format: OutputFormat, stdout: &str, exit_code: Option<i32>, stderr: &str) -> Read {
    let mut reader = OutputReader::new(format);
    let mut updates = Vec::new();
    for (index, line) in stdout.lines().enumerate() {
        if let Some(usage) = reader.feed_line(line) {
            assert_eq!(usage, reader.usage(), "returned usage is the reader's usage");
            updates.push((index + 1, usage));
        }
    }
    Read {
        report: reader.finish(exit_code, stderr),
        updates,
    }
}

fn usage(input: u64, output: u64, cache_read: u64, cache_write: u64, cost: Option<f64>) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        cost_usd: cost,
    }
}

fn error(class: ErrorClass, message: &str) -> Option<AgentError> {
    Some(AgentError::new(class, message))
}

fn some(text: &str) -> Option<String> {
    Some(text.to_string())
}

const CLAUDE_STREAM_SESSION: &str = "6b1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";

#[test]
fn claude_json_success() {
    let read = read_output(
        OutputFormat::ClaudeJson,
        fixture!("claude-json-success.json"),
        Some(0),
        "",
    );
    let expected = usage(14, 1203, 61250, 8412, Some(0.0699105));
    assert_eq!(
        read.report,
        AgentReport {
            error: None,
            session_id: some("3f1c9a52-7d4e-4b8a-9c1e-5a2b6d8f0e13"),
            usage: expected,
            result: some("Added the `--dry-run` flag to `flow run` and a test for it. All 42 tests pass."),
            model: some("claude-sonnet-4-5-20250929"),
            turns: Some(6),
        }
    );
    assert!(read.report.succeeded());
    assert_eq!(read.updates, vec![(1, expected)]);
}

#[test]
fn claude_json_is_error_with_success_subtype_is_an_auth_failure() {
    let read = read_output(
        OutputFormat::ClaudeJson,
        fixture!("claude-json-auth-error.json"),
        Some(1),
        "",
    );
    assert_eq!(
        read.report,
        AgentReport {
            error: error(ErrorClass::Auth, "Invalid API key · Fix external API key"),
            session_id: some("e2d54f0b-93a1-4c7e-b6f8-1d2a3c4b5e6f"),
            usage: usage(0, 0, 0, 0, Some(0.0)),
            result: some("Invalid API key · Fix external API key"),
            model: None,
            turns: Some(1),
        }
    );
    assert!(!read.report.succeeded());
}

#[test]
fn claude_json_array_takes_the_result_element() {
    let read = read_output(
        OutputFormat::ClaudeJson,
        fixture!("claude-json-array.json"),
        Some(0),
        "",
    );
    assert_eq!(
        read.report,
        AgentReport {
            error: None,
            session_id: some("71c4e0a9-2b8d-4f36-a5e1-c09d7b3f2e84"),
            usage: usage(4 + 6, 61 + 37, 5120, 5120 + 310, Some(0.1169925)),
            result: some("`parse` trims its input and returns `None` for anything that is not a number."),
            model: some("claude-opus-4-1-20250805"),
            turns: Some(2),
        }
    );
    assert_eq!(read.updates, vec![], "a pretty-printed array is read at the end");
}

#[test]
fn claude_json_max_turns_fails_even_without_is_error() {
    let read = read_output(
        OutputFormat::ClaudeJson,
        fixture!("claude-json-max-turns.json"),
        Some(0),
        "",
    );
    assert_eq!(
        read.report,
        AgentReport {
            error: error(ErrorClass::TurnLimit, "reached the maximum number of turns (4)"),
            session_id: some("8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d"),
            usage: usage(11, 612, 40218, 3906, Some(0.0359259)),
            result: None,
            model: some("claude-sonnet-4-5-20250929"),
            turns: Some(4),
        }
    );
}

#[test]
fn claude_json_max_budget_is_a_budget_failure() {
    let line = r#"{"type":"result","subtype":"error_max_budget_usd","is_error":false,"num_turns":2,"session_id":"s","total_cost_usd":0.152,"usage":{"input_tokens":5,"output_tokens":7,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}"#;
    let read = read_output(OutputFormat::ClaudeJson, line, Some(0), "");
    assert_eq!(
        read.report.error,
        error(ErrorClass::Budget, "reached the maximum budget")
    );
    assert_eq!(read.report.usage, usage(5, 7, 0, 0, Some(0.152)));
}

#[test]
fn claude_json_permission_denials_succeed_with_a_note() {
    let read = read_output(
        OutputFormat::ClaudeJson,
        fixture!("claude-json-permission-denials.json"),
        Some(0),
        "",
    );
    assert_eq!(
        read.report,
        AgentReport {
            error: None,
            session_id: some("2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e"),
            usage: usage(9, 388, 22930, 2203, Some(0.02098725)),
            result: some(
                "I could not write `src/lib.rs` or run `cargo test`: both were denied. The change \
                 is ready to apply once write access is granted.\n\n\
                 [flow] 2 tool calls refused for lack of permission: Write, Bash"
            ),
            model: some("claude-sonnet-4-5-20250929"),
            turns: Some(3),
        }
    );
}

#[test]
fn claude_json_pretty_object_after_a_warning_line() {
    let stdout = "Warning: the config file has an unknown key\n{\n  \"type\": \"result\",\n  \
                  \"subtype\": \"success\",\n  \"is_error\": false,\n  \"num_turns\": 1,\n  \
                  \"result\": \"done\",\n  \"session_id\": \"abc\",\n  \"total_cost_usd\": 0.5,\n  \
                  \"usage\": {\n    \"input_tokens\": 1,\n    \"output_tokens\": 2\n  }\n}\n";
    let read = read_output(OutputFormat::ClaudeJson, stdout, Some(0), "");
    assert_eq!(
        read.report,
        AgentReport {
            error: None,
            session_id: some("abc"),
            usage: usage(1, 2, 0, 0, Some(0.5)),
            result: some("done"),
            model: None,
            turns: Some(1),
        }
    );
}

#[test]
fn claude_stream_json_success_with_running_usage() {
    let read = read_output(
        OutputFormat::ClaudeStreamJson,
        fixture!("claude-stream-json-success.jsonl"),
        Some(0),
        "",
    );
    let first_message = (3, 148, 11402, 2811);
    let second_message = (6, 96, 14213, 412);
    let sum = (
        first_message.0 + second_message.0,
        first_message.1 + second_message.1,
        first_message.2 + second_message.2,
        first_message.3 + second_message.3,
    );
    assert_eq!(
        read.updates,
        vec![
            // message_start of the first message.
            (2, usage(3, 2, 11402, 2811, None)),
            // Its message_delta gives the final output tokens.
            (11, usage(3, 148, 11402, 2811, None)),
            // message_start of the second message adds to the first.
            (14, usage(3 + 6, 148 + 1, 11402 + 14213, 2811 + 412, None)),
            (19, usage(sum.0, sum.1, sum.2, sum.3, None)),
            // The result brings the cost.
            (21, usage(sum.0, sum.1, sum.2, sum.3, Some(0.02345775))),
        ]
    );
    assert_eq!(
        read.report,
        AgentReport {
            error: None,
            session_id: some(CLAUDE_STREAM_SESSION),
            usage: usage(9, 244, 25615, 3223, Some(0.02345775)),
            result: some("Renamed `calc` to `calculate_total` in src/lib.rs."),
            model: some("claude-sonnet-4-5-20250929"),
            turns: Some(2),
        }
    );
}

#[test]
fn claude_stream_json_rate_limit() {
    let read = read_output(
        OutputFormat::ClaudeStreamJson,
        fixture!("claude-stream-json-rate-limit.jsonl"),
        Some(1),
        "",
    );
    let message = "You've hit your session limit · resets 3pm (UTC)";
    assert_eq!(
        read.report,
        AgentReport {
            error: error(ErrorClass::RateLimit, message),
            session_id: some("4e5f6a7b-8c9d-4e0f-9a1b-2c3d4e5f6a7b"),
            usage: usage(0, 0, 0, 0, Some(0.0)),
            result: some(message),
            model: some("claude-opus-4-5-20251101"),
            turns: Some(1),
        }
    );
    assert_eq!(read.updates, vec![(4, usage(0, 0, 0, 0, Some(0.0)))]);
}

#[test]
fn claude_stream_json_rate_limit_event_without_result() {
    let stdout: String = fixture!("claude-stream-json-rate-limit.jsonl")
        .lines()
        .take(2)
        .map(|line| format!("{line}\n"))
        .collect();
    let read = read_output(OutputFormat::ClaudeStreamJson, &stdout, Some(1), "");
    assert_eq!(read.report.error.map(|error| error.class), Some(ErrorClass::RateLimit));
}

#[test]
fn claude_stream_json_without_partial_messages_counts_each_message_once() {
    let stdout: String = fixture!("claude-stream-json-success.jsonl")
        .lines()
        .filter(|line| !line.contains("\"type\":\"stream_event\""))
        .map(|line| format!("{line}\n"))
        .collect();
    let read = read_output(OutputFormat::ClaudeStreamJson, &stdout, Some(0), "");
    // Lines: init, assistant A (text), assistant A (tool use), user, assistant B, result.
    assert_eq!(
        read.updates,
        vec![
            (2, usage(3, 2, 11402, 2811, None)),
            (5, usage(3 + 6, 2 + 1, 11402 + 14213, 2811 + 412, None)),
            (6, usage(9, 244, 25615, 3223, Some(0.02345775))),
        ]
    );
    assert_eq!(read.report.error, None);
}

/// The first twelve lines of the stream fixture: the first message is done, no result yet.
fn claude_stream_without_result() -> String {
    fixture!("claude-stream-json-success.jsonl")
        .lines()
        .take(12)
        .map(|line| format!("{line}\n"))
        .collect()
}

#[test]
fn killed_process_is_a_crash_with_the_usage_so_far() {
    let read = read_output(
        OutputFormat::ClaudeStreamJson,
        &claude_stream_without_result(),
        None,
        "",
    );
    assert_eq!(
        read.report,
        AgentReport {
            error: error(ErrorClass::Crash, "killed by signal"),
            session_id: some(CLAUDE_STREAM_SESSION),
            usage: usage(3, 148, 11402, 2811, None),
            result: None,
            model: some("claude-sonnet-4-5-20250929"),
            turns: None,
        }
    );
}

#[test]
fn zero_exit_without_result_is_a_crash() {
    let read = read_output(
        OutputFormat::ClaudeStreamJson,
        &claude_stream_without_result(),
        Some(0),
        "",
    );
    assert_eq!(read.report.error, error(ErrorClass::Crash, "no result in output"));
    for (format, stdout) in [
        (OutputFormat::ClaudeJson, ""),
        (
            OutputFormat::CodexJsonl,
            "{\"type\":\"thread.started\",\"thread_id\":\"t\"}",
        ),
        (OutputFormat::GeminiJson, "not json at all"),
        (OutputFormat::OpencodeJsonl, ""),
    ] {
        let report = read_output(format, stdout, Some(0), "").report;
        assert_eq!(
            report.error,
            error(ErrorClass::Crash, "no result in output"),
            "{format:?}"
        );
    }
}

#[test]
fn non_zero_exit_without_parsed_error_is_a_crash_with_the_stderr_tail() {
    let stdout: String = fixture!("codex-jsonl-success.jsonl")
        .lines()
        .take(3)
        .map(|line| format!("{line}\n"))
        .collect();
    let stderr = "thread 'main' panicked at exec/src/lib.rs:88:5:\nboom\n";
    let read = read_output(OutputFormat::CodexJsonl, &stdout, Some(101), stderr);
    assert_eq!(
        read.report.error,
        error(
            ErrorClass::Crash,
            "thread 'main' panicked at exec/src/lib.rs:88:5:\nboom"
        )
    );
    assert_eq!(read.report.session_id, some("0199a213-81c0-7800-8aa1-bbab2a035a53"));

    // No stderr: the last stdout line is the message.
    let read = read_output(OutputFormat::Text, "working\nsegmentation fault\n\n", Some(139), "  ");
    assert_eq!(read.report.error, error(ErrorClass::Crash, "segmentation fault"));

    // Nothing at all.
    let read = read_output(OutputFormat::Text, "", Some(3), "");
    assert_eq!(read.report.error, error(ErrorClass::Crash, "exited with code 3"));
}

#[test]
fn codex_success_sums_two_turns() {
    let read = read_output(
        OutputFormat::CodexJsonl,
        fixture!("codex-jsonl-success.jsonl"),
        Some(0),
        "",
    );
    // input_tokens include cached_input_tokens: input is the difference.
    let first = usage(24763 - 24448, 122, 24448, 0, None);
    let both = usage((24763 - 24448) + (31210 - 28160), 122 + 845, 24448 + 28160, 0, None);
    assert_eq!(read.updates, vec![(7, first), (14, both)]);
    assert_eq!(
        read.report,
        AgentReport {
            error: None,
            session_id: some("0199a213-81c0-7800-8aa1-bbab2a035a53"),
            usage: both,
            result: some("Added three unit tests for `calc::add` in src/lib.rs; `cargo test` passes."),
            model: None,
            turns: Some(2),
        }
    );
    assert_eq!(both.total_tokens(), 24763 + 31210 + 122 + 845);
}

#[test]
fn codex_turn_failed() {
    let read = read_output(
        OutputFormat::CodexJsonl,
        fixture!("codex-jsonl-turn-failed.jsonl"),
        Some(1),
        "",
    );
    assert_eq!(
        read.report,
        AgentReport {
            error: error(
                ErrorClass::RateLimit,
                "exceeded retry limit, last status: 429 Too Many Requests, request id: \
                 req_7f3a9c1e2b4d6f8a"
            ),
            session_id: some("0199a2f7-3c14-7d21-9e0b-4f6a8c2d1e95"),
            usage: Usage::default(),
            result: None,
            model: None,
            turns: None,
        }
    );
    assert_eq!(read.updates, vec![]);
}

#[test]
fn codex_error_event_followed_by_a_completed_turn_is_a_success() {
    let stdout = "{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n\
                  {\"type\":\"error\",\"message\":\"Reconnecting... 1/5\"}\n\
                  {\"type\":\"item.completed\",\"item\":{\"id\":\"item_0\",\"type\":\"agent_message\",\"text\":\"ok\"}}\n\
                  {\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":10,\"cached_input_tokens\":4,\"output_tokens\":3}}\n";
    let report = read_output(OutputFormat::CodexJsonl, stdout, Some(0), "").report;
    assert_eq!(report.error, None);
    assert_eq!(report.usage, usage(6, 3, 4, 0, None));

    // An error event that no turn follows is the error.
    let stdout = "{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n\
                  {\"type\":\"error\",\"message\":\"unexpected status 401 Unauthorized\"}\n";
    let report = read_output(OutputFormat::CodexJsonl, stdout, Some(1), "").report;
    assert_eq!(
        report.error,
        error(ErrorClass::Auth, "unexpected status 401 Unauthorized")
    );
}

#[test]
fn jsonl_lines_that_are_not_json_are_ignored() {
    let clean = read_output(
        OutputFormat::CodexJsonl,
        fixture!("codex-jsonl-success.jsonl"),
        Some(0),
        "",
    )
    .report;
    let noisy: String = fixture!("codex-jsonl-success.jsonl")
        .lines()
        .flat_map(|line| [line, "2026-11-24T10:00:00Z WARN codex_core: slow response {", "]"])
        .map(|line| format!("{line}\n"))
        .collect();
    let report = read_output(OutputFormat::CodexJsonl, &noisy, Some(0), "").report;
    assert_eq!(report, clean);
}

#[test]
fn gemini_success() {
    let read = read_output(
        OutputFormat::GeminiJson,
        fixture!("gemini-json-success.json"),
        Some(0),
        "",
    );
    assert_eq!(
        read.report,
        AgentReport {
            error: None,
            session_id: some("c7a1f0d2-5e3b-4a9c-8d6e-1f2a3b4c5d6e"),
            // flash-lite: 3412 prompt, 0 cached; pro: 58213 prompt, 41022 cached.
            usage: usage(3412 + (58213 - 41022), 48 + 1392 + 2210, 41022, 0, None),
            result: some(
                "I updated `src/parser.rs` so `parse_header` accepts trailing whitespace, and \
                 added a test for it."
            ),
            model: some("gemini-2.5-pro"),
            turns: None,
        }
    );
    assert_eq!(read.report.usage.total_tokens(), 3460 + 61815);
}

#[test]
fn gemini_auth_error_on_stderr() {
    let read = read_output(
        OutputFormat::GeminiJson,
        "",
        Some(41),
        fixture!("gemini-json-auth-error.stderr"),
    );
    assert_eq!(
        read.report,
        AgentReport {
            error: error(
                ErrorClass::Auth,
                "Please set an Auth method in your /root/.gemini/settings.json or specify one of \
                 the following environment variables before running: GEMINI_API_KEY, \
                 GOOGLE_GENAI_USE_VERTEXAI, GOOGLE_GENAI_USE_GCA"
            ),
            session_id: some("d8b2a1e3-6f4c-4b0d-9e7f-2a3b4c5d6e7f"),
            usage: Usage::default(),
            result: None,
            model: None,
            turns: None,
        }
    );
}

#[test]
fn gemini_exit_codes_without_json() {
    let cases = [
        (41, ErrorClass::Auth),
        (53, ErrorClass::TurnLimit),
        (42, ErrorClass::Crash),
        (52, ErrorClass::Crash),
        (54, ErrorClass::Crash),
    ];
    for (code, class) in cases {
        let report = read_output(OutputFormat::GeminiJson, "", Some(code), "something failed").report;
        assert_eq!(report.error, error(class, "something failed"), "exit code {code}");
    }
}

#[test]
fn gemini_error_object_on_stdout_after_a_log_line() {
    let stdout = "Loaded cached credentials.\n{\n  \"error\": {\n    \"type\": \"ApiError\",\n    \
                  \"message\": \"[API Error: 503 The model is overloaded.]\",\n    \"code\": 503\n  }\n}\n";
    let report = read_output(OutputFormat::GeminiJson, stdout, Some(1), "").report;
    assert_eq!(
        report.error,
        error(ErrorClass::RateLimit, "[API Error: 503 The model is overloaded.]")
    );
    let stdout = "{\"error\":{\"type\":\"ApiError\",\"message\":\"Internal error\",\"code\":500}}";
    let report = read_output(OutputFormat::GeminiJson, stdout, Some(1), "").report;
    assert_eq!(report.error, error(ErrorClass::Api, "Internal error"));
}

#[test]
fn opencode_success_sums_two_steps() {
    let read = read_output(
        OutputFormat::OpencodeJsonl,
        fixture!("opencode-jsonl-success.jsonl"),
        Some(0),
        "",
    );
    let first = usage(12, 187, 0, 11840, Some(0.0472));
    // Reasoning tokens count as output.
    let both = usage(12 + 9, 187 + 402 + 56, 11840, 11840 + 893, Some(0.0472 + 0.01315));
    assert_eq!(read.updates, vec![(3, first), (6, both)]);
    assert_eq!(
        read.report,
        AgentReport {
            error: None,
            session_id: some("ses_3b11bfdcdffeITCXse4fCuIRnU"),
            usage: both,
            result: some(
                "`add` returns the sum of its two arguments; it cannot overflow-check because it \
                 uses plain `+`."
            ),
            model: None,
            turns: Some(2),
        }
    );
}

#[test]
fn opencode_error() {
    let read = read_output(
        OutputFormat::OpencodeJsonl,
        fixture!("opencode-jsonl-error.jsonl"),
        Some(1),
        "",
    );
    assert_eq!(
        read.report,
        AgentReport {
            error: error(ErrorClass::Auth, "invalid x-api-key"),
            session_id: some("ses_2a09ce8b7ffdQm4Rn5So6Tp7Uq"),
            usage: Usage::default(),
            result: None,
            model: None,
            turns: None,
        }
    );
}

#[test]
fn opencode_rejected_permissions_add_a_note() {
    let stdout = "{\"type\":\"text\",\"sessionID\":\"ses_1\",\"part\":{\"type\":\"text\",\"text\":\"Could not edit.\"}}\n\
                  {\"type\":\"step_finish\",\"sessionID\":\"ses_1\",\"part\":{\"reason\":\"stop\",\"cost\":0,\"tokens\":{\"input\":1,\"output\":1,\"reasoning\":0,\"cache\":{\"read\":0,\"write\":0}}}}\n\
                  {\"type\":\"done\",\"sessionID\":\"ses_1\",\"reason\":\"idle\",\"rejected\":[\"edit\"]}\n";
    let report = read_output(OutputFormat::OpencodeJsonl, stdout, Some(0), "").report;
    assert_eq!(report.error, None);
    assert_eq!(
        report.result,
        some("Could not edit.\n\n[flow] 1 tool call refused for lack of permission: edit")
    );
}

#[test]
fn text_success_is_the_last_non_empty_line() {
    let read = read_output(OutputFormat::Text, fixture!("text-success.txt"), Some(0), "");
    assert_eq!(
        read.report,
        AgentReport {
            error: None,
            session_id: None,
            usage: Usage::default(),
            result: some("Commit 3f2a1b9 feat: Add subtract function"),
            model: None,
            turns: None,
        }
    );
    assert_eq!(read.updates, vec![]);
}

#[test]
fn text_failure_is_classified_from_stderr() {
    let stderr = "litellm.AuthenticationError: AnthropicException - invalid x-api-key\n";
    let read = read_output(OutputFormat::Text, fixture!("text-success.txt"), Some(1), stderr);
    assert_eq!(
        read.report.error,
        error(
            ErrorClass::Auth,
            "litellm.AuthenticationError: AnthropicException - invalid x-api-key"
        )
    );
}

#[test]
fn messages_are_classified_by_their_words() {
    let cases = [
        ("Not logged in · Please run /login", Some(ErrorClass::Auth)),
        ("Invalid API key · Fix external API key", Some(ErrorClass::Auth)),
        ("API Error: 401 {\"type\":\"error\"}", Some(ErrorClass::Auth)),
        ("API Error: 429 rate_limit_error", Some(ErrorClass::RateLimit)),
        ("Overloaded", Some(ErrorClass::RateLimit)),
        ("Claude AI usage limit reached|1771390800", Some(ErrorClass::RateLimit)),
        (
            "You've hit your session limit · resets 3pm",
            Some(ErrorClass::RateLimit),
        ),
        (
            "open /etc/shadow: permission denied",
            Some(ErrorClass::PermissionDenied),
        ),
        (
            "Reached max session turns for this session.",
            Some(ErrorClass::TurnLimit),
        ),
        ("API Error: 400 invalid request", None),
        ("request msg_0140123x failed after 14290 ms", None),
        ("", None),
    ];
    for (message, class) in cases {
        assert_eq!(classify_message(message), class, "{message}");
    }
}

#[test]
fn usage_adds_and_totals() {
    let mut total = usage(1, 2, 3, 4, None);
    total.add(&usage(10, 20, 30, 40, None));
    assert_eq!(total, usage(11, 22, 33, 44, None));
    assert_eq!(total.total_tokens(), 110);
    total.add(&usage(0, 0, 0, 0, Some(0.25)));
    assert_eq!(total.cost_usd, Some(0.25));
    total.add(&usage(0, 0, 0, 0, Some(0.5)));
    assert_eq!(total.cost_usd, Some(0.75));
    let mut huge = usage(u64::MAX, 1, 0, 0, None);
    huge.add(&usage(1, 0, 0, 0, None));
    assert_eq!(huge.input_tokens, u64::MAX);
    assert_eq!(huge.total_tokens(), u64::MAX);
}

#[test]
fn reports_serialize_with_kebab_case_classes() {
    let report = read_output(
        OutputFormat::ClaudeStreamJson,
        fixture!("claude-stream-json-rate-limit.jsonl"),
        Some(1),
        "",
    )
    .report;
    let json = serde_json::to_value(&report).expect("a report serializes");
    assert_eq!(json["error"]["class"], "rate-limit");
    let back: AgentReport = serde_json::from_value(json).expect("a report deserializes");
    assert_eq!(back, report);
}

/// Every fixture with its format and the stderr it comes with.
const FIXTURES: &[(OutputFormat, &str, &str)] = &[
    (OutputFormat::ClaudeJson, fixture!("claude-json-success.json"), ""),
    (OutputFormat::ClaudeJson, fixture!("claude-json-auth-error.json"), ""),
    (OutputFormat::ClaudeJson, fixture!("claude-json-array.json"), ""),
    (OutputFormat::ClaudeJson, fixture!("claude-json-max-turns.json"), ""),
    (
        OutputFormat::ClaudeJson,
        fixture!("claude-json-permission-denials.json"),
        "",
    ),
    (
        OutputFormat::ClaudeStreamJson,
        fixture!("claude-stream-json-success.jsonl"),
        "",
    ),
    (
        OutputFormat::ClaudeStreamJson,
        fixture!("claude-stream-json-rate-limit.jsonl"),
        "",
    ),
    (OutputFormat::CodexJsonl, fixture!("codex-jsonl-success.jsonl"), ""),
    (OutputFormat::CodexJsonl, fixture!("codex-jsonl-turn-failed.jsonl"), ""),
    (OutputFormat::GeminiJson, fixture!("gemini-json-success.json"), ""),
    (OutputFormat::GeminiJson, "", fixture!("gemini-json-auth-error.stderr")),
    (
        OutputFormat::OpencodeJsonl,
        fixture!("opencode-jsonl-success.jsonl"),
        "",
    ),
    (OutputFormat::OpencodeJsonl, fixture!("opencode-jsonl-error.jsonl"), ""),
    (OutputFormat::Text, fixture!("text-success.txt"), ""),
];

/// A small deterministic random number generator (xorshift64*).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Returns a copy of `text` with one random mutation.
fn garble(text: &str, random: &mut Random) -> String {
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        "\"",
        ",",
        ":",
        "\n",
        "null",
        "-7",
        "1e400",
        "18446744073709551616",
        "3.5",
        "true",
        "\"x\"",
        "é",
        "\u{0}",
        "\\",
        "{\"type\":\"result\"}",
        "[{}]",
        "NaN",
    ];
    let chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<&str> = text.lines().collect();
    match random.below(6) {
        0 if !chars.is_empty() => {
            let start = random.below(chars.len());
            let end = (start + random.below(40) + 1).min(chars.len());
            chars[..start].iter().chain(&chars[end..]).collect()
        }
        1 if !chars.is_empty() => {
            let at = random.below(chars.len());
            let piece = PIECES[random.below(PIECES.len())];
            let mut out: String = chars[..at].iter().collect();
            out.push_str(piece);
            out.extend(&chars[at + 1..]);
            out
        }
        2 if !lines.is_empty() => {
            let at = random.below(lines.len());
            let line = lines[at];
            lines.insert(at, line);
            lines.join("\n")
        }
        3 if lines.len() > 1 => {
            let a = random.below(lines.len());
            let b = random.below(lines.len());
            lines.swap(a, b);
            lines.join("\n")
        }
        4 => {
            // Numbers become other numbers or other types.
            let replacement = ["-1", "99999999999999999999999", "0.5", "\"12\"", "null"][random.below(5)];
            let mut out = String::new();
            let mut in_number = false;
            for character in text.chars() {
                if character.is_ascii_digit() {
                    if !in_number && random.below(3) == 0 {
                        out.push_str(replacement);
                        in_number = true;
                        continue;
                    }
                    if in_number {
                        continue;
                    }
                }
                in_number = false;
                out.push(character);
            }
            out
        }
        _ => {
            let at = random.below(chars.len() + 1);
            let piece = PIECES[random.below(PIECES.len())];
            let mut out: String = chars[..at].iter().collect();
            out.push_str(piece);
            out.extend(&chars[at..]);
            out
        }
    }
}

/// Reads a variant and checks what must hold for any input.
fn read_any(format: OutputFormat, stdout: &str, exit_code: Option<i32>, stderr: &str) {
    let report = read_output(format, stdout, exit_code, stderr).report;
    if report.succeeded() {
        assert_eq!(exit_code, Some(0), "only a zero exit succeeds: {stdout}");
    }
    if let Some(error) = &report.error {
        assert!(!error.message.is_empty(), "an error has a message: {stdout}");
    }
}

#[test]
fn garbled_and_truncated_outputs_never_panic() {
    let exit_codes = [Some(0), Some(1), Some(41), Some(53), None];
    let mut random = Random(0x5eed_1234_abcd_ef01);
    let mut variants = 0;
    for &(format, stdout, stderr) in FIXTURES {
        // Every truncation, stepping so each fixture gives a few hundred.
        let boundaries: Vec<usize> = stdout
            .char_indices()
            .map(|(index, _)| index)
            .chain([stdout.len()])
            .collect();
        let step = (boundaries.len() / 400).max(1);
        for (count, &end) in boundaries.iter().step_by(step).enumerate() {
            let exit_code = exit_codes[count % exit_codes.len()];
            read_any(format, &stdout[..end], exit_code, stderr);
            let stderr_end = stderr.len().min(end);
            if stderr.is_char_boundary(stderr_end) {
                read_any(format, "", exit_code, &stderr[..stderr_end]);
            }
            variants += 1;
        }
        // Random mutations, applied one to three times.
        for count in 0..300 {
            let mut garbled = stdout.to_string();
            let mut garbled_stderr = stderr.to_string();
            for _ in 0..=random.below(3) {
                garbled = garble(&garbled, &mut random);
                if !garbled_stderr.is_empty() {
                    garbled_stderr = garble(&garbled_stderr, &mut random);
                }
            }
            let exit_code = exit_codes[count % exit_codes.len()];
            read_any(format, &garbled, exit_code, &garbled_stderr);
            // The same bytes read as every other format.
            let other = OutputFormat::ALL[count % OutputFormat::ALL.len()];
            read_any(other, &garbled, exit_code, &garbled_stderr);
            variants += 1;
        }
    }
    assert!(variants > 4000, "only {variants} variants were read");
}

#[test]
fn odd_inputs_never_panic() {
    let long_line = "x".repeat(100_000);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let inputs = [
        "",
        "\n\n\n",
        "{",
        "[",
        "}",
        "null",
        "[]",
        "[[[[{\"type\":\"result\"}]]]]",
        "{\"type\":\"result\",\"usage\":[],\"total_cost_usd\":-1,\"num_turns\":-3}",
        "{\"type\":\"result\",\"is_error\":\"yes\",\"subtype\":5}",
        "{\"type\":\"stream_event\",\"event\":{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":1e300}}}",
        "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":1,\"cached_input_tokens\":99}}",
        "{\"type\":\"step_finish\",\"part\":{\"tokens\":{\"input\":18446744073709551615,\"output\":18446744073709551615,\"reasoning\":18446744073709551615}}}",
        "{\"stats\":{\"models\":{\"m\":{\"tokens\":{\"prompt\":1,\"cached\":5}}}},\"error\":\"\"}",
        "{\"type\":\"error\",\"error\":\"\"}",
        "{\"type\":\"error\",\"message\":\"\"}",
        &long_line,
        &deep,
    ];
    for input in inputs {
        for format in OutputFormat::ALL {
            for exit_code in [Some(0), Some(2), None] {
                read_any(format, input, exit_code, input);
            }
        }
    }
}

#[test]
fn large_malformed_outputs_are_read_in_bounded_time() {
    // Each of these would make a naive "retry from every line" parser quadratic.
    let inputs = [
        "{\n".repeat(50_000),
        "[1,\n".repeat(50_000),
        "{\"a\": [\n".repeat(20_000),
        format!("{{\"type\":\"result\",\"result\":\"{}", "y".repeat(1_000_000)),
    ];
    for input in &inputs {
        for format in OutputFormat::ALL {
            read_any(format, input, Some(0), input);
        }
    }
}
