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
//! How each JSON format is read is told in its own module: `claude` (claude-json and
//! claude-stream-json), `codex` (codex-jsonl), `gemini` (gemini-json) and `opencode`
//! (opencode-jsonl). The **text** format is read here: the exit code decides; the last non-empty
//! line is the result; no usage is known.
//!
//! For every format, when the output itself holds no error: a process killed by a signal is a
//! [`ErrorClass::Crash`] "killed by signal"; a non-zero exit is a crash whose message is the
//! stderr tail (or the last stdout line), classified as auth, rate limit or permission problem
//! when its text says so; and a zero exit of a JSON format without any result is a crash "no
//! result in output" (Claude Code is known to end some runs without a result).

mod claude;
mod codex;
mod gemini;
mod opencode;

use std::fmt;

use flow_dsl::OutputFormat;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use self::claude::ClaudeState;
use crate::agent::Usage;

/// Stdout kept for formats parsed as a whole at the end; past this the buffer is dropped and only
/// the lines that were complete JSON on their own count.
const MAX_BUFFERED_BYTES: usize = 64 * 1024 * 1024;

/// Longest error message taken from raw stderr or stdout; longer text keeps its end.
const MAX_MESSAGE_CHARS: usize = 4000;

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

    /// Tells whether every line must be fed ([`Self::feed_line`]): all formats but plain text,
    /// which keeps only the last line that is not blank.
    pub fn reads_every_line(&self) -> bool {
        self.format != OutputFormat::Text
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
            // The same buffer line after line: no allocation per line.
            let last = self.last_line.get_or_insert_with(String::new);
            last.clear();
            last.push_str(trimmed);
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
