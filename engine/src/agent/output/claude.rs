//! How Claude Code's output is read: claude-json and claude-stream-json.
//!
//! The `result` object decides. `is_error: true` is a failure even when `subtype` is `"success"`,
//! and a `subtype` starting with `error` is a failure even when `is_error` is false
//! (`error_max_turns` → [`ErrorClass::TurnLimit`], `error_max_budget_usd` →
//! [`ErrorClass::Budget`]). Usage and `total_cost_usd` come from the result; before it arrives, the
//! stream's `message_start`/`message_delta` events and `assistant` messages give a running total
//! (per message id, so repeated messages are not counted twice). claude-json may be one object on
//! one line, one pretty-printed object, or an array of messages holding the result. A run that
//! succeeded but whose `permission_denials` is not empty stays a success (the agent often works
//! around a refused tool), but a note naming the refused tools is appended to the result text so
//! the report shows it.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{
    AgentError, ErrorClass, OutputReader, classify_message, float, main_model, refused_note, status_class, string,
    unsigned,
};
use crate::agent::Usage;

/// Claude's running usage, kept per API message.
#[derive(Debug, Clone, Default)]
pub(super) struct ClaudeState {
    /// Latest usage of each message id.
    messages: HashMap<String, Usage>,
    /// The sum of `messages`.
    pub(super) running: Usage,
    /// The message that `message_delta` events belong to.
    current: Option<String>,
    /// Counter for messages that came without an id.
    anonymous: u64,
    /// The result's usage and cost, which replaces the running total.
    pub(super) final_usage: Option<Usage>,
    /// A `rate_limit_event` that said the request was rejected.
    pub(super) rate_limited: Option<String>,
}

impl OutputReader {
    /// Reads one Claude Code message (stream-json line or element of the json array).
    pub(super) fn claude_event(&mut self, event: &Map<String, Value>) {
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
