//! Agents flow runs itself against a model API (an agent with `api "anthropic"` or
//! `api "openai"`): no CLI, flow sends the conversation and runs the tools the model calls.
//!
//! One attempt is one conversation. It starts with a system prompt (the worktree, the tools,
//! the workstream's scope) and the rendered task as the first user message; each turn sends
//! the whole conversation ([`client`]), records the reply in the transcript and the
//! workstream's log, and runs the tools the reply calls ([`tools`]), whose answers are the
//! next user message. The loop ends when a reply calls no tool (its text is the workstream's
//! result and handoff), at the agent's `max-turns` (a failure of class `turn-limit`), when
//! the next request could pass the workstream's budget (it is not sent), on a failure the
//! client could not mend by retrying, at the workstream's `timeout` (or `idle-timeout`
//! without a reply or a tool's answer), or when the run stops.
//!
//! Usage comes exactly from every reply and is reported as it grows. The transcript,
//! `transcripts/<workstream>-<attempt>-<purpose>.jsonl` in the run folder, holds every
//! message as sent and received, with secrets redacted; no header is recorded, so the key is
//! written nowhere. The log shows the same conversation for people (`flow logs`).
//!
//! Resume: an attempt a killed run left unfinished restarts cleanly, from the task, in the
//! worktree as the attempt left it (what it wrote is there; its conversation is not carried
//! over). A fix attempt also starts a new conversation, told the task and what failed.

pub mod anthropic;
pub mod client;
pub mod conversation;
pub mod openai;
pub mod tools;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use flow_dsl::{ApiKind, ApiSettings, Scope};
use serde_json::{Value, json};
use tokio::sync::watch;

use self::client::Client;
use self::conversation::{Block, Message, Request, Role};
use self::tools::Tools;
use crate::agent::Usage;
use crate::agent::environment::Redactor;
use crate::agent::output::{AgentError, ErrorClass};
use crate::agent::process::ProcessSpec;
use crate::run::core::{AgentEnd, AgentOutcome, priced};

/// How long one `run_command` may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// The most characters of a message or tool answer shown per entry in the log.
const LOG_CLIP: usize = 2_000;

/// Everything one attempt of an API agent needs.
pub struct Attempt {
    pub settings: ApiSettings,
    pub agent: String,
    /// The model's id, sent as `model`.
    pub model: String,
    /// The model's prices, to weigh a request against the budget.
    pub prices: Option<flow_dsl::Model>,
    pub key: Option<String>,
    /// The name requests wait at the rate gate of (the account, else the agent and URL).
    pub gate: String,
    pub prompt: String,
    pub worktree: PathBuf,
    pub scope: Scope,
    /// How `run_command` runs: a CLI agent's process (its environment without the API key,
    /// the command time limit), the program and arguments replaced for each command.
    pub commands: ProcessSpec,
    pub secrets: Vec<String>,
    /// What the workstream's budget has left, in dollars.
    pub budget_usd: Option<f64>,
    pub log_path: PathBuf,
    pub transcript_path: PathBuf,
    pub timeout: Option<Duration>,
    /// The workstream's `idle-timeout`: this long without a reply or a tool's answer, the
    /// attempt is treated as hung.
    pub idle_timeout: Option<Duration>,
}

/// What the loop knows while it runs: read once it ends however it ends.
struct Progress {
    usage: Usage,
    last_line: Option<String>,
    /// When the log last got a line: a reply, a tool call or its answer.
    active_at: tokio::time::Instant,
}

/// Runs one attempt to its end; `on_usage` hears the usage so far after every reply,
/// `on_line` each line written to the log.
pub async fn run(
    attempt: Attempt,
    on_usage: &(dyn Fn(Usage) + Sync),
    on_line: &(dyn Fn(String) + Sync),
    mut stop: watch::Receiver<bool>,
) -> AgentOutcome {
    let progress = Mutex::new(Progress {
        usage: Usage::default(),
        last_line: None,
        active_at: tokio::time::Instant::now(),
    });
    let log = Log {
        path: attempt.log_path.clone(),
        transcript: attempt.transcript_path.clone(),
        redactor: Redactor::new(&attempt.secrets),
        on_line,
        progress: &progress,
    };
    let timeout = attempt.timeout;
    let conversation = converse(&attempt, &log, on_usage, stop.clone());
    let stopped = async {
        let _ = stop.wait_for(|s| *s).await;
    };
    let timed_out = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let idle = async {
        let Some(limit) = attempt.idle_timeout else {
            return std::future::pending().await;
        };
        loop {
            let deadline = progress.lock().unwrap_or_else(PoisonError::into_inner).active_at + limit;
            if deadline <= tokio::time::Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    let ended = tokio::select! {
        outcome = conversation => Ok(outcome),
        () = stopped => Err(AgentEnd::Stopped),
        () = timed_out => Err(AgentEnd::TimedOut),
        () = idle => Err(AgentEnd::Hung),
    };
    if let Err(end) = &ended {
        log.line(match end {
            AgentEnd::TimedOut => "── stopped at the workstream's timeout",
            AgentEnd::Hung => "── stopped: nothing happened for the workstream's idle-timeout",
            _ => "── stopped",
        });
    }
    drop(log);
    let progress = progress.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut outcome = ended.unwrap_or_else(AgentOutcome::unstarted);
    outcome.usage = progress.usage;
    outcome.last_line = progress.last_line;
    outcome
}

/// The conversation itself, to its end.
async fn converse(
    attempt: &Attempt,
    log: &Log<'_>,
    on_usage: &(dyn Fn(Usage) + Sync),
    stop: watch::Receiver<bool>,
) -> AgentOutcome {
    let failed = |class: ErrorClass, message: String| AgentOutcome {
        error: Some(AgentError::new(class, message)),
        ..AgentOutcome::unstarted(AgentEnd::Exited(1))
    };
    let settings = &attempt.settings;
    let client = match Client::new(
        settings.kind,
        settings.base_url.as_deref(),
        attempt.key.clone(),
        &attempt.gate,
    ) {
        Ok(c) => c,
        Err(message) => return AgentOutcome::unstarted(AgentEnd::Failed(message)),
    };
    let tools = match Tools::new(
        &attempt.worktree,
        attempt.scope.clone(),
        attempt.commands.clone(),
        attempt.secrets.clone(),
        stop,
    ) {
        Ok(t) => t,
        Err(message) => return AgentOutcome::unstarted(AgentEnd::Failed(message)),
    };
    let specs = Tools::specs();
    let system = system_prompt(&attempt.scope);
    let mut messages = vec![Message::user_text(attempt.prompt.clone())];
    log.record(&json!({"agent": attempt.agent, "api": settings.kind.name(), "url": client.url, "model": attempt.model, "system": system}));
    log.record_message(&messages[0]);
    log.line(&format!(
        "── {} ({} API at {}), model {}",
        attempt.agent,
        settings.kind.name(),
        client.url,
        attempt.model
    ));
    log.text("user:", &attempt.prompt);
    let mut total = Usage::default();
    for turn in 1..=settings.max_turns {
        let request = Request {
            model: &attempt.model,
            system: &system,
            messages: &messages,
            tools: &specs,
            max_tokens: settings.max_tokens,
            stream: settings.stream,
        };
        let body = match settings.kind {
            ApiKind::Anthropic => anthropic::body(&request),
            ApiKind::Openai => openai::body(&request),
        };
        if let Some(left) = attempt.budget_usd {
            let spent = priced(total, attempt.prices.as_ref()).cost_usd.unwrap_or(0.0);
            let next = request_cost(&body, settings.max_tokens, attempt.prices.as_ref());
            if spent + next > left {
                let message = format!(
                    "the next request (up to ${next:.4}) would pass the workstream's budget (${:.4} left after ${spent:.4} spent in this attempt): not sent",
                    (left - spent).max(0.0)
                );
                log.line(&format!("── {message}"));
                return failed(ErrorClass::Budget, message);
            }
        }
        let reply = client
            .send(&body, settings.stream, |retry| log.line(&format!("── {retry}")))
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(error) => {
                let message = log.redactor.redact(&error.message).into_owned();
                log.line(&format!("── turn {turn} failed: {message}"));
                return failed(error.class, message);
            }
        };
        total.add(&reply.usage);
        on_usage(total);
        log.progress.lock().unwrap_or_else(PoisonError::into_inner).usage = total;
        log.record_message(&reply.message);
        log.line(&format!(
            "── turn {turn}: {} in, {} out, {} cache read, {} cache write",
            reply.usage.input_tokens,
            reply.usage.output_tokens,
            reply.usage.cache_read_tokens,
            reply.usage.cache_write_tokens
        ));
        let text = reply.message.text();
        if !text.is_empty() {
            log.text("assistant:", &text);
        }
        let calls: Vec<(String, String, Value)> = reply
            .message
            .tool_calls()
            .map(|(id, name, input)| (id.to_string(), name.to_string(), input.clone()))
            .collect();
        messages.push(reply.message);
        if calls.is_empty() {
            let result = log.redactor.redact(&text).into_owned();
            log.line("── done");
            return AgentOutcome {
                result: Some(result),
                session_id: attempt
                    .transcript_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned()),
                delivered: true,
                ..AgentOutcome::unstarted(AgentEnd::Exited(0))
            };
        }
        let mut results = vec![];
        for (id, name, input) in calls {
            log.line(&format!("→ {name} {}", describe_call(&input)));
            let answer = tools.call(&name, &input).await;
            let mark = if answer.is_error { "✗" } else { "←" };
            log.text(mark, &answer.content);
            results.push(Block::ToolResult {
                id,
                content: answer.content,
                is_error: answer.is_error,
            });
        }
        let message = Message {
            role: Role::User,
            content: results,
        };
        log.record_message(&message);
        messages.push(message);
    }
    let message = format!(
        "the model was still calling tools after {} turns (the agent's max-turns)",
        settings.max_turns
    );
    log.line(&format!("── {message}"));
    failed(ErrorClass::TurnLimit, message)
}

/// What the model is told first: where it works, with which tools, within which scope.
fn system_prompt(scope: &Scope) -> String {
    let owns = if scope.owns_everything() {
        "any file".to_string()
    } else {
        flow_dsl::ScopeGlob::join(scope.owns(), ", ")
    };
    let forbid = if scope.forbid().is_empty() {
        String::new()
    } else {
        format!(", except {}", flow_dsl::ScopeGlob::join(scope.forbid(), ", "))
    };
    format!(
        "You are a coding agent working in a git worktree of a repository. Use the tools to read, \
         search and change its files and to run commands in it; paths are relative to the \
         worktree root. You may write {owns}{forbid}: a write anywhere else is refused. \
         Work until the task is done, and check your work (run its tests if there are any). \
         Do not commit and do not touch .git: your changes are committed for you. When you are \
         done, answer without calling a tool: that last message is your summary of what you did \
         and what others should know."
    )
}

/// The most a request can cost: its input (about one token per three bytes of the body, a
/// high estimate for text and code) at the input price, and `max_tokens` of output.
fn request_cost(body: &Value, max_tokens: u32, prices: Option<&flow_dsl::Model>) -> f64 {
    let Some(m) = prices else { return 0.0 };
    let input_tokens = body.to_string().len() as f64 / 3.0;
    (input_tokens * m.input_usd.max(m.cache_write_usd) + f64::from(max_tokens) * m.output_usd) / 1_000_000.0
}

/// A tool call in a few words for the log: its path or command, and the size of what it
/// writes.
fn describe_call(input: &Value) -> String {
    let mut parts = vec![];
    for key in ["path", "pattern", "command"] {
        if let Some(v) = input.get(key).and_then(Value::as_str) {
            parts.push(v.to_string());
        }
    }
    for key in ["content", "old", "new"] {
        if let Some(v) = input.get(key).and_then(Value::as_str) {
            parts.push(format!("({key}: {} bytes)", v.len()));
        }
    }
    if parts.is_empty() {
        input.to_string()
    } else {
        parts.join(" ")
    }
}

/// Where an attempt writes: the workstream's log for people, the transcript for the record.
struct Log<'a> {
    path: PathBuf,
    transcript: PathBuf,
    /// Hides the attempt's secrets in everything written.
    redactor: Redactor,
    on_line: &'a (dyn Fn(String) + Sync),
    progress: &'a Mutex<Progress>,
}

impl Log<'_> {
    /// Appends one line (secrets redacted) to the log, and reports it.
    fn line(&self, text: &str) {
        let text = self.redactor.redact(text).into_owned();
        append(&self.path, &format!("{text}\n"));
        {
            let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
            progress.active_at = tokio::time::Instant::now();
            if !text.trim().is_empty() {
                progress.last_line = Some(text.clone());
            }
        }
        (self.on_line)(text);
    }

    /// Logs a message's text after a label (`assistant:`, `←`), clipped.
    fn text(&self, label: &str, text: &str) {
        let clipped: String = text.chars().take(LOG_CLIP).collect();
        let more = if clipped.len() < text.len() { " […]" } else { "" };
        let mut lines = clipped.lines();
        self.line(&format!("{label} {}", lines.next().unwrap_or("")));
        for line in lines {
            self.line(&format!("  {line}"));
        }
        if !more.is_empty() {
            self.line(&format!("  ({} characters in all){more}", text.chars().count()));
        }
    }

    /// Appends one JSON value to the transcript, secrets redacted.
    fn record(&self, value: &Value) {
        let text = self.redactor.redact(&value.to_string()).into_owned();
        append(&self.transcript, &format!("{text}\n"));
    }

    fn record_message(&self, message: &Message) {
        if let Ok(value) = serde_json::to_value(message) {
            self.record(&value);
        }
    }
}

/// Appends `text` to the file at `path`, making its folder; a failure to write is not the
/// agent's failure, and is left for the run's own log checks.
fn append(path: &std::path::Path, text: &str) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = file.write_all(text.as_bytes());
    }
}
