//! Reads what an agent CLI prints and turns it into an [`AgentReport`].
//!
//! Every agent command is run with one [`OutputFormat`]. An [`OutputReader`] is fed each line of
//! the command's stdout as it arrives ([`OutputReader::feed_line`]), which lets the caller watch
//! token usage while the agent runs and stop it once a budget is crossed, and is then finished
//! with the exit status and the tail of stderr ([`OutputReader::finish`]).
//!
//! The readers are defensive: lines that are not JSON are skipped, unknown events and fields are
//! ignored, numbers of the wrong type count as absent, and no input makes them panic.
//!
//! How each format is read:
//!
//! - **claude-json / claude-stream-json**: the `result` object decides. `is_error: true` is a
//!   failure even when `subtype` is `"success"`, and a `subtype` starting with `error` is a
//!   failure even when `is_error` is false (`error_max_turns` → [`ErrorClass::TurnLimit`],
//!   `error_max_budget_usd` → [`ErrorClass::Budget`]). Usage and `total_cost_usd` come from the
//!   result; before it arrives, the stream's `message_start`/`message_delta` events and
//!   `assistant` messages give a running total (per message id, so repeated messages are not
//!   counted twice). claude-json may be one object on one line, one pretty-printed object, or an
//!   array of messages holding the result. A run that succeeded but whose `permission_denials`
//!   is not empty stays a success (the agent often works around a refused tool), but a note
//!   naming the refused tools is appended to the result text so the report shows it.
//! - **codex-jsonl**: `thread.started.thread_id` is the session; `turn.completed.usage` is summed
//!   over turns. Codex counts cached tokens inside `input_tokens`, so the report gives
//!   `input_tokens - cached_input_tokens` as input and `cached_input_tokens` as cache reads: the
//!   total is not counted twice. `turn.failed` is an error; an `error` event is an error unless a
//!   later `turn.completed` shows the run recovered (Codex reports retries as `error` events).
//!   The last `agent_message` item is the result. Codex reports no cost.
//! - **gemini-json**: `response` is the result; tokens are summed over `stats.models`: input is
//!   `prompt - cached` (plus `tool`, the tool-use prompt tokens the API counts apart), cache
//!   reads are `cached`, output is `candidates + thoughts`. An `error` object (Gemini writes it
//!   to stderr, so the stderr tail is searched too) or the exit code (41 auth, 53 turn limit,
//!   42/52/54 crash) gives the error. Gemini reports no cost.
//! - **opencode-jsonl**: `sessionID` is the session; `step_finish` parts give tokens (reasoning
//!   counts as output) and `cost`, summed over steps. `error` events are errors. The text parts
//!   of the last step that had text are the result. Tools refused in the final `done` event get
//!   the same note as Claude's permission denials.
//! - **text**: the exit code decides; the last non-empty line is the result; no usage is known.
//!
//! For every format, when the output itself holds no error: a process killed by a signal is a
//! [`ErrorClass::Crash`] "killed by signal"; a non-zero exit is a crash whose message is the
//! stderr tail (or the last stdout line), classified as auth, rate limit or permission problem
//! when its text says so; and a zero exit of a JSON format without any result is a crash "no
//! result in output" (Claude Code is known to end some runs without a result).

use std::collections::HashMap;
use std::fmt;

use flow_dsl::OutputFormat;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Stdout kept for formats parsed as a whole at the end; past this the buffer is dropped and only
/// the lines that were complete JSON on their own count.
const MAX_BUFFERED_BYTES: usize = 64 * 1024 * 1024;

/// Longest error message taken from raw stderr or stdout; longer text keeps its end.
const MAX_MESSAGE_CHARS: usize = 4000;

/// Tokens and money an agent run used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens that were neither read from nor written to the prompt cache.
    pub input_tokens: u64,
    /// Output tokens, reasoning ("thinking") tokens included.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Cost in US dollars, only when the tool reported it (Claude Code, opencode).
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// Returns every token counted once: input, output, cache reads and cache writes.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// Adds another usage to this one; the cost stays `None` only when both are `None`.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(other.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(other.cache_write_tokens);
        self.cost_usd = match (self.cost_usd, other.cost_usd) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }

    /// Raises each token count to the other's where the other's is larger (same message seen twice).
    fn merge_max(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.max(other.input_tokens);
        self.output_tokens = self.output_tokens.max(other.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.max(other.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.max(other.cache_write_tokens);
    }
}

/// Why an agent run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// Not logged in, a bad API key, HTTP 401/403.
    Auth,
    /// Rate limited, overloaded, or a plan's usage limit reached.
    RateLimit,
    /// The tool's own spending cap was reached.
    Budget,
    /// The tool's own turn cap was reached.
    TurnLimit,
    /// The process failed on its own: a non-zero exit, a signal, or no result.
    Crash,
    /// The model API returned an error that is none of the above.
    Api,
    /// The tool refused to run something it needed.
    PermissionDenied,
}

impl ErrorClass {
    /// Returns the kebab-case name used in reports and state files.
    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Auth => "auth",
            ErrorClass::RateLimit => "rate-limit",
            ErrorClass::Budget => "budget",
            ErrorClass::TurnLimit => "turn-limit",
            ErrorClass::Crash => "crash",
            ErrorClass::Api => "api",
            ErrorClass::PermissionDenied => "permission-denied",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A failed agent run: what kind of failure and what the tool said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{class}: {message}")]
pub struct AgentError {
    /// The kind of failure.
    pub class: ErrorClass,
    /// The tool's own message, or one written by the reader when the tool gave none.
    pub message: String,
}

impl AgentError {
    /// Builds an error from its class and message.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        AgentError {
            class,
            message: message.into(),
        }
    }
}

/// Everything read from one agent run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    /// Why the run failed; `None` when it succeeded.
    pub error: Option<AgentError>,
    /// The tool's session id, for resuming the conversation.
    pub session_id: Option<String>,
    /// Tokens and cost, as far as the tool reported them.
    pub usage: Usage,
    /// The agent's final message.
    pub result: Option<String>,
    /// The model that did the work, when the output names it.
    pub model: Option<String>,
    /// Turns the tool counted (Claude's `num_turns`, Codex turns, opencode steps).
    pub turns: Option<u64>,
}

impl AgentReport {
    /// Returns whether the run succeeded.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// Incremental reader of one agent run's output: fed every stdout line as it arrives.
#[derive(Debug, Clone)]
pub struct OutputReader {
    format: OutputFormat,
    /// Running usage for every format but Claude's (whose usage lives in `claude`).
    usage: Usage,
    session_id: Option<String>,
    model: Option<String>,
    result: Option<String>,
    turns: Option<u64>,
    /// A result object (or final turn/step) was read.
    saw_result: bool,
    /// An error the output stated.
    error: Option<AgentError>,
    /// A Codex `error` event that a later completed turn may cancel.
    pending_error: Option<AgentError>,
    /// Appended to the result: tools that were refused.
    note: Option<String>,
    /// The last non-empty stdout line, trimmed.
    last_line: Option<String>,
    /// Whole stdout for claude-json and gemini-json, parsed again at the end.
    buffer: String,
    buffer_overflowed: bool,
    claude: ClaudeState,
    /// Text parts of the current opencode step.
    step_texts: Vec<String>,
}

/// Claude's running usage, kept per API message.
#[derive(Debug, Clone, Default)]
struct ClaudeState {
    /// Latest usage of each message id.
    messages: HashMap<String, Usage>,
    /// The sum of `messages`.
    running: Usage,
    /// The message that `message_delta` events belong to.
    current: Option<String>,
    /// Counter for messages that came without an id.
    anonymous: u64,
    /// The result's usage and cost, which replaces the running total.
    final_usage: Option<Usage>,
    /// A `rate_limit_event` that said the request was rejected.
    rate_limited: Option<String>,
}

impl OutputReader {
    /// Creates a reader for one run of an agent printing the given format.
    pub fn new(format: OutputFormat) -> Self {
        OutputReader {
            format,
            usage: Usage::default(),
            session_id: None,
            model: None,
            result: None,
            turns: None,
            saw_result: false,
            error: None,
            pending_error: None,
            note: None,
            last_line: None,
            buffer: String::new(),
            buffer_overflowed: false,
            claude: ClaudeState::default(),
            step_texts: Vec::new(),
        }
    }

    /// Feeds one line of stdout (no trailing newline).
    ///
    /// Returns `Some(usage so far)` when this line changed the running usage (streaming formats:
    /// claude-stream-json `message_start`/`message_delta`/`assistant`/`result` usage, codex
    /// `turn.completed`, opencode `step_finish`; the JSON formats when their result fits on one
    /// line), so the caller can stop an agent whose budget is crossed mid-run.
    pub fn feed_line(&mut self, line: &str) -> Option<Usage> {
        let before = self.usage();
        let trimmed = line.trim();
        if !trimmed.is_empty() {
            self.last_line = Some(trimmed.to_string());
        }
        if matches!(self.format, OutputFormat::ClaudeJson | OutputFormat::GeminiJson) {
            self.buffer_line(line);
        }
        if self.format != OutputFormat::Text
            && (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(value) = serde_json::from_str::<Value>(trimmed)
        {
            self.read_value(&value);
        }
        let after = self.usage();
        (after != before).then_some(after)
    }

    /// Returns the usage seen so far.
    pub fn usage(&self) -> Usage {
        if let Some(usage) = self.claude.final_usage {
            return usage;
        }
        match self.format {
            OutputFormat::ClaudeJson | OutputFormat::ClaudeStreamJson => self.claude.running,
            _ => self.usage,
        }
    }

    /// Returns whether the output already held its final result, so a process that keeps running
    /// afterwards (a known Claude Code hang) can be stopped without losing the answer.
    pub fn saw_result(&self) -> bool {
        self.saw_result
    }

    /// Ends the read and returns the report.
    ///
    /// `exit_code` `None` means the process was killed by a signal; `stderr_tail` is the last
    /// lines of stderr, used to classify errors (and, for Gemini, searched for its JSON error).
    /// An error stated in the output wins over the exit status, so a rate-limited Claude run
    /// that was then killed still reports the rate limit; a run killed after a successful result
    /// reports "killed by signal" (check [`OutputReader::saw_result`] before killing a process
    /// that hangs after its result).
    pub fn finish(mut self, exit_code: Option<i32>, stderr_tail: &str) -> AgentReport {
        self.reread_buffer();
        let failed = exit_code != Some(0) || !self.saw_result;
        if self.format == OutputFormat::GeminiJson && self.error.is_none() && failed {
            for value in json_values(stderr_tail) {
                if let Value::Object(object) = &value
                    && object.contains_key("error")
                {
                    self.gemini_object(object);
                }
            }
        }
        if self.format == OutputFormat::Text {
            self.result = self.last_line.clone();
        }
        let usage = self.usage();
        let error = self
            .error
            .take()
            .or_else(|| self.pending_error.take())
            .or_else(|| self.status_error(exit_code, stderr_tail));
        let result = match (self.result.take(), self.note.take()) {
            (Some(result), Some(note)) if !result.is_empty() => Some(format!("{result}\n\n{note}")),
            (_, Some(note)) => Some(note),
            (result, None) => result,
        };
        AgentReport {
            error,
            session_id: self.session_id,
            usage,
            result,
            model: self.model,
            turns: self.turns,
        }
    }

    /// Decides the error from the exit status when the output stated none.
    fn status_error(&self, exit_code: Option<i32>, stderr_tail: &str) -> Option<AgentError> {
        let Some(code) = exit_code else {
            return Some(AgentError::new(ErrorClass::Crash, "killed by signal"));
        };
        if code != 0 {
            let message = clip(stderr_tail.trim())
                .or_else(|| self.last_line.as_deref().and_then(clip))
                .unwrap_or_else(|| format!("exited with code {code}"));
            let class = match (self.format, code) {
                (OutputFormat::GeminiJson, 41) => ErrorClass::Auth,
                (OutputFormat::GeminiJson, 53) => ErrorClass::TurnLimit,
                _ if self.claude.rate_limited.is_some() => ErrorClass::RateLimit,
                _ => classify_message(&message).unwrap_or(ErrorClass::Crash),
            };
            return Some(AgentError::new(class, message));
        }
        if self.format != OutputFormat::Text && !self.saw_result {
            return Some(match &self.claude.rate_limited {
                Some(message) => AgentError::new(ErrorClass::RateLimit, message.clone()),
                None => AgentError::new(ErrorClass::Crash, "no result in output"),
            });
        }
        None
    }

    /// Keeps a line of a format that is parsed as a whole at the end.
    fn buffer_line(&mut self, line: &str) {
        if self.buffer_overflowed {
            return;
        }
        if self.buffer.len().saturating_add(line.len()) >= MAX_BUFFERED_BYTES {
            self.buffer_overflowed = true;
            self.buffer = String::new();
            return;
        }
        self.buffer.push_str(line);
        self.buffer.push('\n');
    }

    /// Parses the buffered stdout of claude-json or gemini-json when no line held a result alone.
    fn reread_buffer(&mut self) {
        if self.saw_result || self.error.is_some() || self.buffer.is_empty() {
            return;
        }
        let buffer = std::mem::take(&mut self.buffer);
        for value in json_values(&buffer) {
            self.read_value(&value);
        }
    }

    /// Reads one JSON value of the output.
    fn read_value(&mut self, value: &Value) {
        match self.format {
            OutputFormat::ClaudeJson | OutputFormat::ClaudeStreamJson => match value {
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(event) = item {
                            self.claude_event(event);
                        }
                    }
                }
                Value::Object(event) => self.claude_event(event),
                _ => {}
            },
            OutputFormat::CodexJsonl => {
                if let Value::Object(event) = value {
                    self.codex_event(event);
                }
            }
            OutputFormat::GeminiJson => {
                if let Value::Object(object) = value {
                    self.gemini_object(object);
                }
            }
            OutputFormat::OpencodeJsonl => {
                if let Value::Object(event) = value {
                    self.opencode_event(event);
                }
            }
            OutputFormat::Text => {}
        }
    }

    /// Reads one Claude Code message (stream-json line or element of the json array).
    fn claude_event(&mut self, event: &Map<String, Value>) {
        let session = string(event, "session_id");
        match string(event, "type") {
            Some("system") if string(event, "subtype") == Some("init") => {
                if let Some(session) = session {
                    self.session_id = Some(session.to_string());
                }
                if let Some(model) = string(event, "model") {
                    self.model = Some(model.to_string());
                }
            }
            Some("stream_event") => {
                if let Some(Value::Object(inner)) = event.get("event") {
                    self.claude_stream_event(inner);
                }
            }
            Some("assistant") => {
                if let Some(Value::Object(message)) = event.get("message") {
                    let model = string(message, "model").filter(|m| !m.starts_with('<'));
                    if self.model.is_none()
                        && let Some(model) = model
                    {
                        self.model = Some(model.to_string());
                    }
                    if let Some(Value::Object(usage)) = message.get("usage") {
                        let id = string(message, "id").map(str::to_string);
                        self.claude_message_usage(id, claude_usage(usage), false);
                    }
                }
            }
            Some("result") => self.claude_result(event),
            Some("rate_limit_event") => {
                if let Some(Value::Object(info)) = event.get("rate_limit_info")
                    && string(info, "status") == Some("rejected")
                {
                    let kind = string(info, "rateLimitType").unwrap_or("usage");
                    let mut message = format!("rate limit reached ({kind})");
                    if let Some(resets) = info.get("resetsAt").and_then(Value::as_i64) {
                        message.push_str(&format!(", resets at unix time {resets}"));
                    }
                    self.claude.rate_limited = Some(message);
                }
            }
            _ => {}
        }
        if self.session_id.is_none()
            && let Some(session) = session
        {
            self.session_id = Some(session.to_string());
        }
    }

    /// Reads a raw API stream event (`--include-partial-messages`).
    fn claude_stream_event(&mut self, event: &Map<String, Value>) {
        match string(event, "type") {
            Some("message_start") => {
                let Some(Value::Object(message)) = event.get("message") else {
                    return;
                };
                if self.model.is_none()
                    && let Some(model) = string(message, "model")
                {
                    self.model = Some(model.to_string());
                }
                let usage = match message.get("usage") {
                    Some(Value::Object(usage)) => claude_usage(usage),
                    _ => Usage::default(),
                };
                let id = string(message, "id").map(str::to_string);
                self.claude_message_usage(id, usage, true);
            }
            Some("message_delta") => {
                if let Some(Value::Object(usage)) = event.get("usage") {
                    // A delta without a message_start before it starts an unnamed message.
                    let starts = self.claude.current.is_none();
                    let id = self.claude.current.clone();
                    self.claude_message_usage(id, claude_usage(usage), starts);
                }
            }
            _ => {}
        }
    }

    /// Records the latest usage of one API message; `starts` makes it the message that later
    /// `message_delta` events belong to.
    fn claude_message_usage(&mut self, id: Option<String>, usage: Usage, starts: bool) {
        let id = id.unwrap_or_else(|| {
            if !starts && let Some(current) = &self.claude.current {
                return current.clone();
            }
            self.claude.anonymous += 1;
            format!("\u{0}anonymous-{}", self.claude.anonymous)
        });
        let seen = self.claude.messages.entry(id.clone()).or_default();
        let before = *seen;
        seen.merge_max(&usage);
        // Counts only grow, so the difference is what the running total gains.
        self.claude.running.add(&Usage {
            input_tokens: seen.input_tokens - before.input_tokens,
            output_tokens: seen.output_tokens - before.output_tokens,
            cache_read_tokens: seen.cache_read_tokens - before.cache_read_tokens,
            cache_write_tokens: seen.cache_write_tokens - before.cache_write_tokens,
            cost_usd: None,
        });
        if starts {
            self.claude.current = Some(id);
        }
    }

    /// Reads Claude Code's final `result` object.
    fn claude_result(&mut self, result: &Map<String, Value>) {
        self.saw_result = true;
        if let Some(session) = string(result, "session_id") {
            self.session_id = Some(session.to_string());
        }
        let mut usage = match result.get("usage") {
            Some(Value::Object(usage)) => claude_usage(usage),
            _ => self.usage(),
        };
        usage.cost_usd = float(result, "total_cost_usd");
        self.claude.final_usage = Some(usage);
        self.turns = unsigned(result, "num_turns").or(self.turns);
        if self.model.is_none()
            && let Some(Value::Object(models)) = result.get("modelUsage")
        {
            self.model = main_model(models, |stats| {
                (
                    float(stats, "costUSD").unwrap_or(0.0),
                    unsigned(stats, "outputTokens").unwrap_or(0),
                )
            });
        }
        let text = string(result, "result").map(str::to_string);
        self.result = text.clone();
        self.note = match result.get("permission_denials") {
            Some(Value::Array(denials)) if !denials.is_empty() => {
                let tools = denials.iter().map(|denial| {
                    denial
                        .get("tool_name")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown tool")
                });
                Some(refused_note(tools))
            }
            _ => None,
        };

        let subtype = string(result, "subtype").unwrap_or("success");
        let is_error = result.get("is_error").and_then(Value::as_bool) == Some(true);
        if !is_error && !subtype.starts_with("error") {
            self.error = None;
            return;
        }
        let errors = match result.get("errors") {
            Some(Value::Array(errors)) => errors
                .iter()
                .filter_map(|error| match error {
                    Value::String(text) => Some(text.clone()),
                    other => other.get("message").and_then(Value::as_str).map(str::to_string),
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::new(),
        };
        let message = text
            .filter(|text| !text.trim().is_empty())
            .or_else(|| (!errors.is_empty()).then_some(errors))
            .unwrap_or_else(|| match subtype {
                "error_max_turns" => match self.turns {
                    Some(turns) => format!("reached the maximum number of turns ({turns})"),
                    None => "reached the maximum number of turns".to_string(),
                },
                "error_max_budget_usd" => "reached the maximum budget".to_string(),
                "success" => "the agent reported an error".to_string(),
                other => other.replace('_', " "),
            });
        let class = match subtype {
            "error_max_turns" => ErrorClass::TurnLimit,
            "error_max_budget_usd" => ErrorClass::Budget,
            _ => unsigned(result, "api_error_status")
                .and_then(status_class)
                .or_else(|| classify_message(&message))
                .or_else(|| self.claude.rate_limited.as_ref().map(|_| ErrorClass::RateLimit))
                .unwrap_or(if subtype == "success" {
                    ErrorClass::Api
                } else {
                    ErrorClass::Crash
                }),
        };
        self.error = Some(AgentError::new(class, message));
    }

    /// Reads one `codex exec --json` event.
    fn codex_event(&mut self, event: &Map<String, Value>) {
        match string(event, "type") {
            Some("thread.started") => {
                if let Some(thread) = string(event, "thread_id") {
                    self.session_id = Some(thread.to_string());
                }
            }
            Some("turn.completed") => {
                if let Some(Value::Object(usage)) = event.get("usage") {
                    let input = unsigned(usage, "input_tokens").unwrap_or(0);
                    let cached = unsigned(usage, "cached_input_tokens").unwrap_or(0);
                    self.usage.add(&Usage {
                        input_tokens: input.saturating_sub(cached),
                        output_tokens: unsigned(usage, "output_tokens").unwrap_or(0),
                        cache_read_tokens: cached,
                        cache_write_tokens: 0,
                        cost_usd: None,
                    });
                }
                self.turns = Some(self.turns.unwrap_or(0).saturating_add(1));
                self.saw_result = true;
                self.pending_error = None;
            }
            Some("turn.failed") => {
                let message = event
                    .get("error")
                    .and_then(|error| error.get("message"))
                    .and_then(Value::as_str)
                    .filter(|message| !message.trim().is_empty())
                    .unwrap_or("turn failed");
                if self.error.is_none() {
                    self.error = Some(classified(message, ErrorClass::Api));
                }
            }
            Some("error") => {
                let message = string(event, "message")
                    .filter(|message| !message.trim().is_empty())
                    .unwrap_or("error");
                self.pending_error = Some(classified(message, ErrorClass::Api));
            }
            Some("item.completed") => {
                if let Some(Value::Object(item)) = event.get("item")
                    && matches!(string(item, "type"), Some("agent_message"))
                    && let Some(text) = string(item, "text")
                {
                    self.result = Some(text.to_string());
                }
            }
            _ => {}
        }
    }

    /// Reads one object of `gemini --output-format json` (the answer or an error object).
    fn gemini_object(&mut self, object: &Map<String, Value>) {
        let known = ["response", "stats", "error"]
            .iter()
            .any(|key| object.contains_key(*key));
        if !known {
            return;
        }
        if let Some(session) = string(object, "session_id").or_else(|| string(object, "sessionId")) {
            self.session_id = Some(session.to_string());
        }
        if let Some(Value::String(response)) = object.get("response") {
            self.result = Some(response.clone());
            self.saw_result = true;
        }
        if let Some(Value::Object(models)) = object.get("stats").and_then(|stats| stats.get("models")) {
            let mut usage = Usage::default();
            for stats in models.values() {
                let Some(Value::Object(tokens)) = stats.get("tokens") else {
                    continue;
                };
                let count = |key| unsigned(tokens, key).unwrap_or(0);
                let cached = count("cached");
                usage.add(&Usage {
                    input_tokens: count("prompt").saturating_sub(cached).saturating_add(count("tool")),
                    output_tokens: count("candidates").saturating_add(count("thoughts")),
                    cache_read_tokens: cached,
                    cache_write_tokens: 0,
                    cost_usd: None,
                });
            }
            self.usage = usage;
            self.model = main_model(models, |stats| match stats.get("tokens") {
                Some(Value::Object(tokens)) => unsigned(tokens, "total").unwrap_or(0),
                _ => 0,
            })
            .or(self.model.take());
        }
        if let Some(error) = object.get("error").filter(|error| !error.is_null()) {
            self.error = Some(gemini_error(error));
        }
    }

    /// Reads one `opencode run --format json` event.
    fn opencode_event(&mut self, event: &Map<String, Value>) {
        if self.session_id.is_none()
            && let Some(session) = string(event, "sessionID")
        {
            self.session_id = Some(session.to_string());
        }
        let part = match event.get("part") {
            Some(Value::Object(part)) => Some(part),
            _ => None,
        };
        match string(event, "type") {
            Some("step_start") => self.step_texts.clear(),
            Some("text") => {
                if let Some(text) = part.and_then(|part| string(part, "text")) {
                    self.step_texts.push(text.to_string());
                    self.result = Some(self.step_texts.join("\n"));
                }
            }
            Some("step_finish") => {
                let Some(part) = part else { return };
                let mut usage = Usage::default();
                if let Some(Value::Object(tokens)) = part.get("tokens") {
                    let count = |key| unsigned(tokens, key).unwrap_or(0);
                    usage.input_tokens = count("input");
                    usage.output_tokens = count("output").saturating_add(count("reasoning"));
                    if let Some(Value::Object(cache)) = tokens.get("cache") {
                        usage.cache_read_tokens = unsigned(cache, "read").unwrap_or(0);
                        usage.cache_write_tokens = unsigned(cache, "write").unwrap_or(0);
                    }
                }
                usage.cost_usd = float(part, "cost");
                self.usage.add(&usage);
                self.turns = Some(self.turns.unwrap_or(0).saturating_add(1));
                self.saw_result = string(part, "reason") != Some("tool-calls");
            }
            Some("error") => {
                let error = event.get("error").unwrap_or(&Value::Null);
                let found = opencode_error(error);
                match &mut self.error {
                    Some(first) => {
                        first.message.push('\n');
                        first.message.push_str(&found.message);
                    }
                    None => self.error = Some(found),
                }
            }
            Some("done") => {
                if let Some(Value::Array(rejected)) = event.get("rejected")
                    && !rejected.is_empty()
                {
                    let tools = rejected.iter().map(|tool| tool.as_str().unwrap_or("unknown tool"));
                    self.note = Some(refused_note(tools));
                }
            }
            _ => {}
        }
    }
}

/// Returns the string field `key` of an object.
fn string<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// Returns the field `key` as a token count: negative numbers are 0, fractions are cut, huge
/// numbers saturate, anything that is not a number is absent.
fn unsigned(object: &Map<String, Value>, key: &str) -> Option<u64> {
    let number = object.get(key)?;
    number.as_u64().or_else(|| {
        number
            .as_f64()
            .filter(|value| value.is_finite())
            .map(|value| value.max(0.0) as u64)
    })
}

/// Returns the field `key` as a finite, non-negative amount.
fn float(object: &Map<String, Value>, key: &str) -> Option<f64> {
    object
        .get(key)
        .and_then(Value::as_f64)
        .filter(|value| value.is_finite() && *value >= 0.0)
}

/// Converts an Anthropic `usage` object.
fn claude_usage(usage: &Map<String, Value>) -> Usage {
    let count = |key| unsigned(usage, key).unwrap_or(0);
    Usage {
        input_tokens: count("input_tokens"),
        output_tokens: count("output_tokens"),
        cache_read_tokens: count("cache_read_input_tokens"),
        cache_write_tokens: count("cache_creation_input_tokens"),
        cost_usd: None,
    }
}

/// Picks the model that did most of the work from a per-model statistics object: the one with
/// the highest score, the first of equals.
fn main_model<Score: PartialOrd + Default>(
    models: &Map<String, Value>,
    score: impl Fn(&Map<String, Value>) -> Score,
) -> Option<String> {
    let mut best: Option<(&String, Score)> = None;
    for (name, stats) in models {
        let value = match stats {
            Value::Object(stats) => score(stats),
            _ => Score::default(),
        };
        if best.as_ref().is_none_or(|(_, best_value)| value > *best_value) {
            best = Some((name, value));
        }
    }
    best.map(|(name, _)| name.clone())
}

/// Writes the note appended to a result when tools were refused.
fn refused_note<'a>(tools: impl Iterator<Item = &'a str>) -> String {
    let mut count = 0;
    let mut names: Vec<&str> = Vec::new();
    for tool in tools {
        count += 1;
        if !names.contains(&tool) {
            names.push(tool);
        }
    }
    let calls = if count == 1 { "call" } else { "calls" };
    format!(
        "[flow] {count} tool {calls} refused for lack of permission: {}",
        names.join(", ")
    )
}

/// Classifies a Gemini `error` object (`{type, message, code}`) or error string.
fn gemini_error(error: &Value) -> AgentError {
    let (kind, message, code) = match error {
        Value::Object(error) => (
            string(error, "type").unwrap_or(""),
            string(error, "message").unwrap_or(""),
            error.get("code").and_then(|code| {
                code.as_u64()
                    .or_else(|| code.as_str().and_then(|text| text.parse().ok()))
            }),
        ),
        Value::String(message) => ("", message.as_str(), None),
        _ => ("", "", None),
    };
    let message = if message.trim().is_empty() {
        match (kind, code) {
            ("", Some(code)) => format!("error {code}"),
            ("", None) => "error".to_string(),
            (kind, _) => kind.to_string(),
        }
    } else {
        message.to_string()
    };
    let class = match code {
        Some(41) => Some(ErrorClass::Auth),
        Some(53) => Some(ErrorClass::TurnLimit),
        Some(42 | 52 | 54 | 130) => Some(ErrorClass::Crash),
        Some(code) => status_class(code),
        None => None,
    }
    .or(match kind {
        "FatalAuthenticationError" => Some(ErrorClass::Auth),
        "FatalTurnLimitedError" => Some(ErrorClass::TurnLimit),
        "FatalInputError"
        | "FatalConfigError"
        | "FatalToolExecutionError"
        | "FatalCancellationError"
        | "FatalSandboxError" => Some(ErrorClass::Crash),
        _ => None,
    })
    .or_else(|| classify_message(&message))
    .unwrap_or(ErrorClass::Api);
    AgentError::new(class, message)
}

/// Classifies an opencode error object (`{name, data: {message, statusCode}}`).
fn opencode_error(error: &Value) -> AgentError {
    let name = error.get("name").and_then(Value::as_str).unwrap_or("");
    let data = error.get("data");
    let message = data
        .and_then(|data| data.get("message"))
        .or_else(|| error.get("message"))
        .and_then(Value::as_str)
        .filter(|message| !message.trim().is_empty())
        .map(str::to_string)
        .or_else(|| {
            error
                .as_str()
                .filter(|message| !message.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            if name.is_empty() {
                "error".to_string()
            } else {
                name.to_string()
            }
        });
    let status = data.and_then(|data| data.get("statusCode")).and_then(Value::as_u64);
    let class = match name {
        "ProviderAuthError" => Some(ErrorClass::Auth),
        "MessageAbortedError" => Some(ErrorClass::Crash),
        _ => None,
    }
    .or_else(|| status.and_then(status_class))
    .or_else(|| classify_message(&message))
    .unwrap_or(match name {
        "APIError" | "MessageOutputLengthError" | "ContextOverflowError" => ErrorClass::Api,
        _ => ErrorClass::Crash,
    });
    AgentError::new(class, message)
}

/// Builds an error classified from its text, or of the fallback class.
fn classified(message: &str, fallback: ErrorClass) -> AgentError {
    AgentError::new(classify_message(message).unwrap_or(fallback), message)
}

/// Classifies an HTTP status code.
fn status_class(status: u64) -> Option<ErrorClass> {
    match status {
        401 | 403 => Some(ErrorClass::Auth),
        429 | 529 => Some(ErrorClass::RateLimit),
        _ => None,
    }
}

/// Classifies an error message by the words the tools use; `None` when nothing matches.
pub fn classify_message(message: &str) -> Option<ErrorClass> {
    const AUTH: &[&str] = &[
        "not logged in",
        "please run /login",
        "invalid api key",
        "invalid x-api-key",
        "api key not valid",
        "incorrect api key",
        "authentication_error",
        "authentication failed",
        "authentication error",
        "unauthorized",
        "oauth token has expired",
        "please set an auth method",
    ];
    const RATE_LIMIT: &[&str] = &[
        "rate limit",
        "rate_limit",
        "ratelimit",
        "too many requests",
        "overloaded",
        "usage limit",
        "session limit",
        "hit your limit",
        "quota",
        "resource_exhausted",
        "resource exhausted",
    ];
    const PERMISSION: &[&str] = &[
        "permission denied",
        "permission_denied",
        "cannot be used with root/sudo",
    ];
    const TURN_LIMIT: &[&str] = &["max session turns", "maximum number of turns", "max turns"];
    let lower = message.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|word| lower.contains(word));
    if has(AUTH) || has_code(&lower, "401") || has_code(&lower, "403") {
        Some(ErrorClass::Auth)
    } else if has(RATE_LIMIT) || has_code(&lower, "429") || has_code(&lower, "529") {
        Some(ErrorClass::RateLimit)
    } else if has(PERMISSION) {
        Some(ErrorClass::PermissionDenied)
    } else if has(TURN_LIMIT) {
        Some(ErrorClass::TurnLimit)
    } else {
        None
    }
}

/// Returns whether `code` occurs in `text` as a number of its own (not inside `msg_01401`).
fn has_code(text: &str, code: &str) -> bool {
    text.match_indices(code).any(|(start, _)| {
        let before = text[..start].chars().next_back();
        let after = text[start + code.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Returns text for an error message, keeping its end when it is long; `None` when empty.
fn clip(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let count = text.chars().count();
    if count <= MAX_MESSAGE_CHARS {
        return Some(text.to_string());
    }
    let tail: String = text.chars().skip(count - MAX_MESSAGE_CHARS).collect();
    Some(format!("...{tail}"))
}

/// Finds the JSON values in text that may hold other lines: each value starts on a line whose
/// first character is `{` or `[`, may span lines, and several may follow each other; lines that
/// do not parse are skipped. A value cut off by the end of the text ends the search, and so do
/// too many failed attempts, which keeps the work near linear on any input.
fn json_values(text: &str) -> Vec<Value> {
    const MAX_FAILED_ATTEMPTS: usize = 1000;
    let mut values = Vec::new();
    let mut failed_attempts = 0;
    let mut start = 0;
    while start < text.len() {
        let line_end = text[start..].find('\n').map_or(text.len(), |offset| start + offset + 1);
        let line = text[start..line_end].trim_start();
        if line.starts_with('{') || line.starts_with('[') {
            let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
            let mut parsed_any = false;
            for value in stream.by_ref() {
                match value {
                    Ok(value) => {
                        values.push(value);
                        parsed_any = true;
                    }
                    Err(error) if error.is_eof() => return values,
                    Err(_) => break,
                }
            }
            if parsed_any {
                // Go on after the line where the last value ended.
                let consumed = start + stream.byte_offset();
                start = text[consumed..]
                    .find('\n')
                    .map_or(text.len(), |offset| consumed + offset + 1);
                continue;
            }
            failed_attempts += 1;
            if failed_attempts >= MAX_FAILED_ATTEMPTS {
                return values;
            }
        }
        start = line_end;
    }
    values
}
