//! The names of the parsers that read an agent's output.

use serde::Serialize;

/// How `flow` reads what an agent command prints: usage, cost, session id and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// Claude Code `--output-format json`: one result object (or an array holding one).
    ClaudeJson,
    /// Claude Code `--output-format stream-json --verbose`: JSON lines ending in a result.
    ClaudeStreamJson,
    /// Codex `exec --json`: JSON lines (`thread.started`, `turn.completed`, ...).
    CodexJsonl,
    /// Gemini CLI `--output-format json`: one object with `response` and `stats`.
    GeminiJson,
    /// opencode `run --format json`: JSON lines (`step_finish` carries tokens and cost).
    OpencodeJsonl,
    /// Plain text: success is the exit code, no usage is known.
    Text,
}

impl OutputFormat {
    /// Every format, in the order the documentation lists them.
    pub const ALL: [OutputFormat; 6] = [
        OutputFormat::ClaudeJson,
        OutputFormat::ClaudeStreamJson,
        OutputFormat::CodexJsonl,
        OutputFormat::GeminiJson,
        OutputFormat::OpencodeJsonl,
        OutputFormat::Text,
    ];

    /// The name used in workflow files.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::ClaudeJson => "claude-json",
            OutputFormat::ClaudeStreamJson => "claude-stream-json",
            OutputFormat::CodexJsonl => "codex-jsonl",
            OutputFormat::GeminiJson => "gemini-json",
            OutputFormat::OpencodeJsonl => "opencode-jsonl",
            OutputFormat::Text => "text",
        }
    }

    /// Tells whether the cost this tool reports after continuing a session is the whole
    /// session's running total rather than the call's own (Claude Code's `total_cost_usd`
    /// after `--resume`, while its token counts are the call's).
    pub fn reports_session_cost(self) -> bool {
        matches!(self, OutputFormat::ClaudeJson | OutputFormat::ClaudeStreamJson)
    }

    /// Looks a format up by its workflow-file name.
    pub fn from_name(name: &str) -> Option<OutputFormat> {
        OutputFormat::ALL.into_iter().find(|f| f.name() == name)
    }
}
