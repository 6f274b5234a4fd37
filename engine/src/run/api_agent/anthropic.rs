//! Anthropic's Messages API: the request body, the reply read whole, and the reply read from
//! its server-sent events.
//!
//! The system prompt and the first user message (the task and its context) carry
//! `cache_control`, and so does the newest user message: every turn then reads what the
//! turns before it sent from the prompt cache (three of the four breakpoints the API
//! allows).

use serde_json::{Value, json};

use super::conversation::{Block, Message, Reply, Request, Role};
use crate::agent::Usage;

/// The path of the Messages API below its base URL's version.
pub const PATH: &str = "/messages";

/// The API version every request names.
pub const VERSION: &str = "2023-06-01";

/// Builds the JSON body of one request.
pub fn body(request: &Request<'_>) -> Value {
    let last_user = request.messages.iter().rposition(|m| m.role == Role::User);
    let messages: Vec<Value> = request
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| message(m, i == 0 || Some(i) == last_user))
        .collect();
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.schema}))
        .collect();
    json!({
        "model": request.model,
        "max_tokens": request.max_tokens,
        "system": [{"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}],
        "messages": messages,
        "tools": tools,
        "stream": request.stream,
    })
}

fn message(m: &Message, cached: bool) -> Value {
    let count = m.content.len();
    let content: Vec<Value> = m
        .content
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut block = match b {
                Block::Text { text } => json!({"type": "text", "text": text}),
                Block::ToolUse { id, name, input } => {
                    // Arguments that were not JSON are sent back as an empty object: the tool
                    // result tells the model what was wrong.
                    let input = if input.is_object() { input.clone() } else { json!({}) };
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }
                Block::ToolResult { id, content, is_error } => {
                    json!({"type": "tool_result", "tool_use_id": id, "content": content, "is_error": is_error})
                }
            };
            if cached && i + 1 == count {
                block["cache_control"] = json!({"type": "ephemeral"});
            }
            block
        })
        .collect();
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    json!({"role": role, "content": content})
}

/// Reads a reply given whole (`stream: false`).
pub fn parse(value: &Value) -> Result<Reply, String> {
    if let Some(error) = error_of(value) {
        return Err(error);
    }
    let content = value
        .get("content")
        .and_then(Value::as_array)
        .ok_or("the reply has no `content` list")?;
    let mut blocks = vec![];
    for block in content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => blocks.push(Block::Text {
                text: str_field(block, "text")?.to_string(),
            }),
            Some("tool_use") => blocks.push(Block::ToolUse {
                id: str_field(block, "id")?.to_string(),
                name: str_field(block, "name")?.to_string(),
                input: block.get("input").cloned().unwrap_or_else(|| json!({})),
            }),
            // Thinking and other blocks are not part of what the loop acts on.
            Some(_) => {}
            None => return Err("a content block has no `type`".into()),
        }
    }
    let mut usage = Usage::default();
    if let Some(u) = value.get("usage") {
        add_usage(&mut usage, u);
    }
    Ok(Reply {
        message: Message {
            role: Role::Assistant,
            content: blocks,
        },
        usage,
        stop_reason: value.get("stop_reason").and_then(Value::as_str).map(str::to_string),
    })
}

/// The error an error body states, in words.
pub fn error_of(value: &Value) -> Option<String> {
    let error = value.get("error")?;
    let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    Some(format!("{kind}: {message}"))
}

fn str_field<'v>(value: &'v Value, name: &str) -> Result<&'v str, String> {
    value
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("a content block has no `{name}`"))
}

/// Sets the token counts `u` states (a `usage` object), keeping the larger of two counts seen
/// for the same message (a stream states them at its start and again at its end).
fn add_usage(usage: &mut Usage, u: &Value) {
    let count = |name: &str| u.get(name).and_then(Value::as_u64);
    if let Some(n) = count("input_tokens") {
        usage.input_tokens = usage.input_tokens.max(n);
    }
    if let Some(n) = count("output_tokens") {
        usage.output_tokens = usage.output_tokens.max(n);
    }
    if let Some(n) = count("cache_read_input_tokens") {
        usage.cache_read_tokens = usage.cache_read_tokens.max(n);
    }
    if let Some(n) = count("cache_creation_input_tokens") {
        usage.cache_write_tokens = usage.cache_write_tokens.max(n);
    }
}

/// A reply being read from its events.
#[derive(Debug, Default)]
pub struct Stream {
    blocks: Vec<Partial>,
    usage: Usage,
    stop_reason: Option<String>,
    stopped: bool,
}

#[derive(Debug)]
enum Partial {
    Text(String),
    /// A tool call: its input as the start gave it, and the JSON text the deltas add.
    Tool {
        id: String,
        name: String,
        start: Value,
        json: String,
    },
    Other,
}

impl Stream {
    /// Takes one event: its name and its data.
    pub fn feed(&mut self, event: &str, data: &str) -> Result<(), String> {
        let value: Value = serde_json::from_str(data).map_err(|e| format!("an event `{event}` is not JSON: {e}"))?;
        let kind = value.get("type").and_then(Value::as_str).unwrap_or(event);
        match kind {
            "message_start" => {
                if let Some(u) = value.pointer("/message/usage") {
                    add_usage(&mut self.usage, u);
                }
            }
            "content_block_start" => {
                let block = value
                    .get("content_block")
                    .ok_or("content_block_start without a block")?;
                let partial = match block.get("type").and_then(Value::as_str) {
                    Some("text") => Partial::Text(block.get("text").and_then(Value::as_str).unwrap_or("").into()),
                    Some("tool_use") => Partial::Tool {
                        id: str_field(block, "id")?.to_string(),
                        name: str_field(block, "name")?.to_string(),
                        start: block.get("input").cloned().unwrap_or_else(|| json!({})),
                        json: String::new(),
                    },
                    _ => Partial::Other,
                };
                let index = index_of(&value)?;
                if self.blocks.len() <= index {
                    self.blocks.resize_with(index + 1, || Partial::Other);
                }
                self.blocks[index] = partial;
            }
            "content_block_delta" => {
                let index = index_of(&value)?;
                let delta = value.get("delta").ok_or("content_block_delta without a delta")?;
                match (self.blocks.get_mut(index), delta.get("type").and_then(Value::as_str)) {
                    (Some(Partial::Text(text)), Some("text_delta")) => {
                        text.push_str(delta.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    (Some(Partial::Tool { json, .. }), Some("input_json_delta")) => {
                        json.push_str(delta.get("partial_json").and_then(Value::as_str).unwrap_or(""));
                    }
                    (None, _) => return Err(format!("a delta for block {index}, which never started")),
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = value.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(reason.to_string());
                }
                if let Some(u) = value.get("usage") {
                    add_usage(&mut self.usage, u);
                }
            }
            "message_stop" => self.stopped = true,
            "error" => return Err(error_of(&value).unwrap_or_else(|| "the stream reported an error".into())),
            // `ping`, `content_block_stop` and events added later.
            _ => {}
        }
        Ok(())
    }

    /// The reply, once the stream has ended.
    pub fn finish(self) -> Result<Reply, String> {
        // A stream that stated why it stopped is whole even if `message_stop` never came.
        if !self.stopped && self.stop_reason.is_none() {
            return Err("the stream ended before `message_stop`".into());
        }
        let mut content = vec![];
        for partial in self.blocks {
            match partial {
                Partial::Text(text) => content.push(Block::Text { text }),
                Partial::Tool { id, name, start, json } => content.push(Block::ToolUse {
                    id,
                    name,
                    // A server that gives the whole input at the start sends no delta.
                    input: if json.trim().is_empty() {
                        start
                    } else {
                        parse_arguments(&json)
                    },
                }),
                Partial::Other => {}
            }
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

fn index_of(value: &Value) -> Result<usize, String> {
    value
        .get("index")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .filter(|i| *i < 1024)
        .ok_or_else(|| "an event without a valid `index`".into())
}

/// Reads a tool call's arguments: `{}` when empty, the raw text as a string when not JSON.
pub fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_streamed_tool_call() {
        let mut s = Stream::default();
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"read_file","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"path\":"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"a.txt\"}"}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":7}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        for (e, d) in events {
            s.feed(e, d).expect("a valid event");
        }
        let reply = s.finish().expect("a whole reply");
        assert_eq!(reply.message.text(), "Hi");
        let calls: Vec<_> = reply.message.tool_calls().collect();
        assert_eq!(calls, [("t1", "read_file", &json!({"path": "a.txt"}))]);
        assert_eq!((reply.usage.input_tokens, reply.usage.output_tokens), (10, 7));
        assert_eq!(reply.usage.cache_read_tokens, 5);
    }

    #[test]
    fn a_tool_input_given_whole_at_its_start_is_kept() {
        let mut s = Stream::default();
        for (e, d) in [
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"read_file","input":{"path":"a"}}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ] {
            s.feed(e, d).expect("a valid event");
        }
        let reply = s.finish().expect("a whole reply");
        assert_eq!(
            reply.message.tool_calls().next(),
            Some(("t", "read_file", &json!({"path": "a"})))
        );
    }

    #[test]
    fn a_cut_stream_is_an_error() {
        let mut s = Stream::default();
        s.feed("message_start", r#"{"type":"message_start","message":{}}"#)
            .expect("a valid event");
        assert!(s.finish().is_err());
        assert!(Stream::default().feed("x", "not json").is_err());
    }
}
