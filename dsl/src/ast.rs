//! The spanned syntax tree: what one file says, before names are resolved.

use std::time::Duration;

use miette::SourceSpan;

use crate::OutputFormat;
use crate::keywords::{
    ApiKind, Isolation, MergeOrder, OnConflict, Priority, SandboxMode, ScopePolicy, StdinMode, Streaming, SyncMode,
    TaskKind,
};

/// The index of a file in the set of files read for one workflow.
pub type FileId = usize;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub file: FileId,
    pub span: SourceSpan,
}

impl<T> Spanned<T> {
    /// Pairs a value with its place.
    pub fn new(value: T, file: FileId, span: SourceSpan) -> Spanned<T> {
        Spanned { value, file, span }
    }
}

/// One file's top-level content.
#[derive(Debug, Default, Clone)]
pub struct FileAst {
    pub workflow: Option<WorkflowAst>,
    pub imports: Vec<Spanned<String>>,
    pub defaults: Option<WorkstreamAst>,
    pub workstreams: Vec<WorkstreamAst>,
    pub integrate: Option<IntegrateAst>,
    pub notifies: Vec<NotifyAst>,
    pub models: Vec<ModelAst>,
    pub agents: Vec<AgentAst>,
    pub roles: Vec<RoleAst>,
    pub accounts: Vec<AccountAst>,
    pub kinds: Vec<KindAst>,
}

/// `workflow "name" { ... }`.
#[derive(Debug, Default, Clone)]
pub struct WorkflowAst {
    pub name: Option<Spanned<String>>,
    pub base: Option<Spanned<String>>,
    pub into: Option<Spanned<String>>,
    pub worktrees: Option<Spanned<String>>,
    pub branch_prefix: Option<Spanned<String>>,
    pub max_parallel: Option<Spanned<u64>>,
    pub budget: Option<BudgetAst>,
    pub scope_policy: Option<Spanned<ScopePolicy>>,
    pub status_file: Option<Spanned<String>>,
}

/// `budget usd=X tokens=N`.
#[derive(Debug, Default, Clone)]
pub struct BudgetAst {
    pub usd: Option<Spanned<f64>>,
    pub tokens: Option<Spanned<u64>>,
}

/// `estimate "30m" tokens=N usd=X`.
#[derive(Debug, Default, Clone)]
pub struct EstimateAst {
    pub duration: Option<Spanned<Duration>>,
    pub tokens: Option<Spanned<u64>>,
    pub usd: Option<Spanned<f64>>,
}

/// One `env` entry: a value to set, or a name to pass through.
#[derive(Debug, Clone)]
pub enum EnvAst {
    Set(Spanned<String>, Spanned<String>),
    Pass(Spanned<String>),
}

/// A `workstream` node, or the `defaults` node (which has the same children and no name).
#[derive(Debug, Default, Clone)]
pub struct WorkstreamAst {
    pub name: Option<Spanned<String>>,
    /// The span of the node's name (`workstream`), for problems about the whole node.
    pub node_span: Option<Spanned<()>>,
    pub description: Option<Spanned<String>>,
    pub task: Option<Spanned<String>>,
    pub script: Option<Spanned<String>>,
    pub role: Option<Spanned<String>>,
    pub agent: Option<Spanned<String>>,
    pub model: Option<Spanned<String>>,
    pub priority: Option<Spanned<Priority>>,
    pub owns: Vec<Spanned<String>>,
    pub forbid: Vec<Spanned<String>>,
    pub context: Vec<Spanned<String>>,
    pub depends_on: Vec<Spanned<String>>,
    pub test: Option<Spanned<String>>,
    pub timeout: Option<Spanned<Duration>>,
    pub idle_timeout: Option<Spanned<Duration>>,
    pub retries: Option<Spanned<u64>>,
    pub env: Vec<EnvAst>,
    pub account: Option<Spanned<String>>,
    pub kind: Option<Spanned<TaskKind>>,
    pub estimate: Option<Box<EstimateAst>>,
    pub budget: Option<Box<BudgetAst>>,
    pub isolation: Option<Spanned<Isolation>>,
    pub fix_attempts: Option<Spanned<u64>>,
    pub review: Option<Box<AgentChoiceAst>>,
    pub handoff_tokens: Option<Spanned<u64>>,
    pub sandbox: Option<Spanned<SandboxMode>>,
    pub network: Option<Box<Spanned<NetworkAst>>>,
    pub writable: Vec<Spanned<String>>,
    pub secret: Vec<Spanned<String>>,
    pub log_limit: Option<Spanned<u64>>,
    /// How many TCP ports its block holds (`FLOW_PORT_COUNT`).
    pub ports: Option<Spanned<u64>>,
    /// Commands run in each new worktree before its agent.
    pub setup: Vec<Spanned<String>>,
    pub setup_timeout: Option<Spanned<Duration>>,
    /// Commands run in the worktree before flow removes it.
    pub teardown: Vec<Spanned<String>>,
    /// Globs of untracked or ignored files copied from the user's checkout.
    pub copy: Vec<Spanned<String>>,
}

/// An agent picked for a job with an optional model: `review "AGENT" model="M"`,
/// `resolver "AGENT" model="M"`.
#[derive(Debug, Clone)]
pub struct AgentChoiceAst {
    pub agent: Spanned<String>,
    pub model: Option<Spanned<String>>,
}

/// `network "off"`, `network "any"` or `network 443 8080`.
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkAst {
    Any,
    Off,
    Ports(Vec<u16>),
}

/// `integrate { ... }`.
#[derive(Debug, Default, Clone)]
pub struct IntegrateAst {
    pub verify: Option<Spanned<String>>,
    pub on_conflict: Option<Spanned<OnConflict>>,
    pub order: Option<Spanned<MergeOrder>>,
    pub resolver: Option<AgentChoiceAst>,
    pub sync: Option<Spanned<SyncMode>>,
    pub push: Option<Spanned<String>>,
    pub pull_request: Option<PullRequestAst>,
}

/// `pull-request { ... }` in `integrate`.
#[derive(Debug, Default, Clone)]
pub struct PullRequestAst {
    pub title: Option<Spanned<String>>,
    pub base: Option<Spanned<String>>,
    pub draft: bool,
    pub labels: Vec<Spanned<String>>,
}

/// `notify { on "EVENT"...; command "PROGRAM" "ARG"...; bell }`.
#[derive(Debug, Clone)]
pub struct NotifyAst {
    /// The node's name, for problems about the whole block.
    pub node: Spanned<()>,
    pub on: Vec<Spanned<String>>,
    pub command: Vec<Spanned<String>>,
    pub bell: bool,
}

/// `model "name" provider=... id=... input-usd=... output-usd=...`.
#[derive(Debug, Clone)]
pub struct ModelAst {
    pub name: Spanned<String>,
    pub provider: Option<Spanned<String>>,
    pub id: Option<Spanned<String>>,
    pub input_usd: Option<Spanned<f64>>,
    pub output_usd: Option<Spanned<f64>>,
    pub cache_read_usd: Option<Spanned<f64>>,
    pub cache_write_usd: Option<Spanned<f64>>,
    pub priced: Option<Spanned<String>>,
}

/// `agent "name" { command ...; output ...; ... }`.
#[derive(Debug, Clone)]
pub struct AgentAst {
    pub name: Spanned<String>,
    pub command: Vec<Spanned<String>>,
    pub output: Option<Spanned<OutputFormat>>,
    pub stdin: Option<Spanned<StdinMode>>,
    pub key_env: Option<Spanned<String>>,
    pub env: Vec<(Spanned<String>, Spanned<String>)>,
    pub pass_env: Vec<Spanned<String>>,
    pub max_parallel: Option<Spanned<u64>>,
    pub budget_flag: Option<Spanned<String>>,
    /// How to continue a session: a command with the same placeholders plus `{session}`.
    pub resume: Vec<Spanned<String>>,
    /// How a person starts it in a terminal (`flow open`): a command with the same
    /// placeholders.
    pub interactive: Vec<Spanned<String>>,
    /// Folders (or files) the tool writes besides the worktree: its state, caches.
    pub writable: Vec<Spanned<String>>,
    /// `api "anthropic"` or `api "openai"`: flow runs the agent itself.
    pub api: Option<Spanned<ApiKind>>,
    pub base_url: Option<Spanned<String>>,
    pub max_turns: Option<Spanned<u64>>,
    pub max_tokens: Option<Spanned<u64>>,
    pub stream: Option<Spanned<Streaming>>,
}

/// `role "name" { ... }`.
#[derive(Debug, Clone)]
pub struct RoleAst {
    pub name: Spanned<String>,
    pub description: Option<Spanned<String>>,
    pub expertise: Vec<Spanned<String>>,
    pub instructions: Option<Spanned<String>>,
    pub owns: Vec<Spanned<String>>,
    pub forbid: Vec<Spanned<String>>,
    pub model: Option<Spanned<String>>,
}

/// `account "name" env=... max-parallel=... budget-usd=... budget-tokens=...`.
#[derive(Debug, Clone)]
pub struct AccountAst {
    pub name: Spanned<String>,
    pub env: Option<Spanned<String>>,
    pub max_parallel: Option<Spanned<u64>>,
    pub budget: BudgetAst,
}

/// `kind "tests" model="haiku" description="..."`.
#[derive(Debug, Clone)]
pub struct KindAst {
    pub kind: Spanned<TaskKind>,
    pub model: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
}
