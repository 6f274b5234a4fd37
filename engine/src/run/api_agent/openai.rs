//! The Chat Completions API (OpenAI and the servers compatible with it): the request body,
//! the reply read whole, and the reply read from its server-sent events.
//!
//! Its prompt caching is automatic: the prompt is sent in the same order every turn so that
//! its start is cached, and `prompt_tokens_details.cached_tokens` says how much was.

use serde_json::{Value, json};

use super::anthropic::parse_arguments;
use super::conversation::{Block, Message, Reply, Request, Role};
use crate::agent::Usage;

/// The path of the API below its base URL's version.
pub const PATH: &str = "/chat/completions";

/// Builds the JSON body of one request.
pub fn body(request: &Request<'_>) -> Value {
    let mut messages = vec![json!({"role": "system", "content": request.system})];
    for m in request.messages {
        match m.role {
            Role::User => {
                // Tool results are messages of their own; text goes in a user message.
                for b in &m.content {
                    if let Block::ToolResult { id, content, .. } = b {
                        messages.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
                    }
                }
                let text = m.text();
                if !text.is_empty() {
                    messages.push(json!({"role": "user", "content": text}));
                }
            }
            Role::Assistant => {
                let calls: Vec<Value> = m
                    .tool_calls()
                    .map(|(id, name, input)| {
                        let arguments = match input {
                            Value::String(raw) => raw.clone(),
                            other => other.to_string(),
                        };
                        json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
                    })
                    .collect();
                let text = m.text();
                let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
                if !calls.is_empty() {
                    message["tool_calls"] = Value::Array(calls);
                }
                messages.push(message);
            }
        }
    }
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.schema}}))
        .collect();
    let mut body = json!({
        "model": request.model,
        "messages": messages,
        "tools": tools,
        "max_completion_tokens": request.max_tokens,
        "stream": request.stream,
    });
    if request.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// The error an error body states, in words.
pub fn error_of(value: &Value) -> Option<String> {
    let error = value.get("error")?;
    if let Some(text) = error.as_str() {
        return Some(text.to_string());
    }
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    match error.get("type").and_then(Value::as_str) {
        Some(kind) => Some(format!("{kind}: {message}")),
        None => Some(message.to_string()),
    }
}

/// Reads the token counts of a `usage` object: the cached part of the prompt apart.
fn usage_of(u: &Value) -> Usage {
    let count = |pointer: &str| u.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("/prompt_tokens_details/cached_tokens");
    Usage {
        input_tokens: count("/prompt_tokens").saturating_sub(cached),
        output_tokens: count("/completion_tokens"),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
        cost_usd: None,
    }
}

/// Reads a reply given whole (`stream: false`).
pub fn parse(value: &Value) -> Result<Reply, String> {
    if let Some(error) = error_of(value) {
        return Err(error);
    }
    let choice = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or("the reply has no `choices`")?;
    let message = choice.get("message").ok_or("the reply's choice has no `message`")?;
    let mut content = vec![];
    if let Some(text) = message.get("content").and_then(Value::as_str)
        && !text.is_empty()
    {
        content.push(Block::Text { text: text.to_string() });
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .ok_or("a tool call has no `id`")?;
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or("a tool call has no function name")?;
        let arguments = match call.pointer("/function/arguments") {
            Some(Value::String(text)) => parse_arguments(text),
            Some(other) => other.clone(),
            None => json!({}),
        };
        content.push(Block::ToolUse {
            id: id.to_string(),
            name: name.to_string(),
            input: arguments,
        });
    }
    Ok(Reply {
        message: Message {
            role: Role::Assistant,
            content,
        },
        usage: value.get("usage").map(usage_of).unwrap_or_default(),
        stop_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_string),
    })
}

/// A reply being read from its chunks.
#[derive(Debug, Default)]
pub struct Stream {
    text: String,
    /// The tool calls by their index: id, name, arguments so far.
    calls: Vec<(String, String, String)>,
    usage: Usage,
    stop_reason: Option<String>,
    done: bool,
}

impl Stream {
    /// Takes one event's data.
    pub fn feed(&mut self, data: &str) -> Result<(), String> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let value: Value = serde_json::from_str(data).map_err(|e| format!("a chunk is not JSON: {e}"))?;
        if let Some(error) = error_of(&value) {
            return Err(error);
        }
        if let Some(u) = value.get("usage").filter(|u| u.is_object()) {
            self.usage = usage_of(u);
        }
        for choice in value.get("choices").and_then(Value::as_array).into_iter().flatten() {
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.stop_reason = Some(reason.to_string());
            }
            let Some(delta) = choice.get("delta") else { continue };
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                self.text.push_str(text);
            }
            for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let index = call
                    .get("index")
                    .and_then(Value::as_u64)
                    .and_then(|i| usize::try_from(i).ok())
                    .filter(|i| *i < 1024)
                    .unwrap_or(self.calls.len().saturating_sub(1));
                if self.calls.len() <= index {
                    self.calls.resize_with(index + 1, Default::default);
                }
                let slot = &mut self.calls[index];
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    slot.0 = id.to_string();
                }
                if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                    slot.1.push_str(name);
                }
                match call.pointer("/function/arguments") {
                    Some(Value::String(arguments)) => slot.2.push_str(arguments),
                    // A server that sends the arguments as an object sends them whole.
                    Some(arguments @ Value::Object(_)) => slot.2 = arguments.to_string(),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The reply, once the stream has ended.
    pub fn finish(self) -> Result<Reply, String> {
        if !self.done && self.stop_reason.is_none() {
            return Err("the stream ended before its last chunk".into());
        }
        let mut content = vec![];
        if !self.text.is_empty() {
            content.push(Block::Text { text: self.text });
        }
        for (i, (id, name, arguments)) in self.calls.into_iter().enumerate() {
            if name.is_empty() {
                return Err(format!("tool call {i} has no function name"));
            }
            let id = if id.is_empty() { format!("call_{i}") } else { id };
            content.push(Block::ToolUse {
                id,
                name,
                input: parse_arguments(&arguments),
            });
        }
        Ok(Reply {
            message: Message {
                role: Role::Assistant,
                content,
            },
            usage: self.usage,
            stop_reason: self.stop_reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_streamed_tool_calls_and_usage() {
        let mut s = Stream::default();
        for chunk in [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"On it."}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"write_file","arguments":"{\"path\":\"a"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\",\"content\":\"x\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":100,"completion_tokens":20,"prompt_tokens_details":{"cached_tokens":60}}}"#,
            "[DONE]",
        ] {
            s.feed(chunk).expect("a valid chunk");
        }
        let reply = s.finish().expect("a whole reply");
        assert_eq!(reply.message.text(), "On it.");
        let calls: Vec<_> = reply.message.tool_calls().collect();
        assert_eq!(calls, [("c1", "write_file", &json!({"path": "a", "content": "x"}))]);
        assert_eq!(
            (
                reply.usage.input_tokens,
                reply.usage.cache_read_tokens,
                reply.usage.output_tokens
            ),
            (40, 60, 20)
        );
    }

    #[test]
    fn tool_results_become_tool_messages() {
        let messages = [
            Message::user_text("task"),
            Message {
                role: Role::Assistant,
                content: vec![Block::ToolUse {
                    id: "c1".into(),
                    name: "list_files".into(),
                    input: json!({}),
                }],
            },
            Message {
                role: Role::User,
                content: vec![Block::ToolResult {
                    id: "c1".into(),
                    content: "a.txt".into(),
                    is_error: false,
                }],
            },
        ];
        let request = Request {
            model: "m",
            system: "s",
            messages: &messages,
            tools: &[],
            max_tokens: 10,
            stream: false,
        };
        let body = body(&request);
        let roles: Vec<&str> = body["messages"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|m| m["role"].as_str().expect("a role"))
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool"]);
        assert_eq!(body["messages"][2]["tool_calls"][0]["function"]["arguments"], "{}");
    }
}
