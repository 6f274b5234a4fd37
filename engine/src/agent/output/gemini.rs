//! How Gemini CLI's output is read: gemini-json.
//!
//! `response` is the result; tokens are summed over `stats.models`: input is `prompt - cached`
//! (plus `tool`, the tool-use prompt tokens the API counts apart), cache reads are `cached`, output
//! is `candidates + thoughts`. An `error` object (Gemini writes it to stderr, so the stderr tail is
//! searched too) or the exit code (41 auth, 53 turn limit, 42/52/54 crash) gives the error. Gemini
//! reports no cost.

use serde_json::{Map, Value};

use super::{AgentError, ErrorClass, OutputReader, classify_message, main_model, status_class, string, unsigned};
use crate::agent::Usage;

impl OutputReader {
    /// Reads one object of `gemini --output-format json` (the answer or an error object).
    pub(super) fn gemini_object(&mut self, object: &Map<String, Value>) {
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
