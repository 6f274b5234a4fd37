//! How opencode's output is read: opencode-jsonl.
//!
//! `sessionID` is the session; `step_finish` parts give tokens (reasoning counts as output) and
//! `cost`, summed over steps. `error` events are errors. The text parts of the last step that had
//! text are the result. Tools refused in the final `done` event get the same note as Claude's
//! permission denials.

use serde_json::{Map, Value};

use super::{
    AgentError, ErrorClass, OutputReader, classify_message, float, refused_note, status_class, string, unsigned,
};
use crate::agent::Usage;

impl OutputReader {
    /// Reads one `opencode run --format json` event.
    pub(super) fn opencode_event(&mut self, event: &Map<String, Value>) {
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
