//! How Codex's output is read: codex-jsonl.
//!
//! `thread.started.thread_id` is the session; `turn.completed.usage` is summed over turns. Codex
//! counts cached tokens inside `input_tokens`, so the report gives `input_tokens -
//! cached_input_tokens` as input and `cached_input_tokens` as cache reads: the total is not counted
//! twice. `turn.failed` is an error; an `error` event is an error unless a later `turn.completed`
//! shows the run recovered (Codex reports retries as `error` events). The last `agent_message` item
//! is the result. Codex reports no cost.

use serde_json::{Map, Value};

use super::{AgentError, ErrorClass, OutputReader, classify_message, string, unsigned};
use crate::agent::Usage;

impl OutputReader {
    /// Reads one `codex exec --json` event.
    pub(super) fn codex_event(&mut self, event: &Map<String, Value>) {
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
}

/// Builds an error classified from its text, or of the fallback class.
fn classified(message: &str, fallback: ErrorClass) -> AgentError {
    AgentError::new(classify_message(message).unwrap_or(fallback), message)
}
