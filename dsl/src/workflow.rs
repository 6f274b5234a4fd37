//! The validated workflow: what every later stage works from. Nothing here knows KDL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::OutputFormat;
use crate::keywords::{
    ApiKind, Isolation, MergeOrder, OnConflict, Priority, SandboxMode, ScopePolicy, StdinMode, SyncMode, TaskKind,
};
use crate::scope::Scope;

/// A spending limit; either part may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Budget {
    pub usd: Option<f64>,
    pub tokens: Option<u64>,
}

impl Budget {
    /// Tells whether neither limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.usd.is_none() && self.tokens.is_none()
    }
}

/// What a workstream is expected to take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Estimate {
    pub duration: Option<Duration>,
    pub tokens: Option<u64>,
    pub usd: Option<f64>,
}

/// One environment setting of a workstream or agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvSetting {
    /// Set the variable to this value.
    Set { name: String, value: String },
    /// Pass the variable through from flow's own environment.
    Pass { name: String },
}

/// Where a workstream's model came from, for `flow plan`'s "why".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelSource {
    Workstream,
    Defaults,
    Kind,
    Role,
    /// No model: the agent's command does not use one.
    None,
    /// No model chosen: the agent's tool runs on its own default model (the arguments that
    /// would name one are left out of its command).
    AgentDefault,
}

/// A validated workflow.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    /// The main file, when the workflow was read from disk.
    pub path: Option<PathBuf>,
    /// The branch root workstreams start from; `None` means the branch checked out at run time.
    pub base: Option<String>,
    pub into: String,
    /// Where worktrees go, relative to the repository root; `None` means the default sibling folder.
    pub worktrees: Option<String>,
    pub branch_prefix: String,
    pub max_parallel: usize,
    pub budget: Budget,
    pub scope_policy: ScopePolicy,
    pub status_file: String,
    /// In declaration order; a workstream's index is its id.
    pub workstreams: Vec<Workstream>,
    pub integrate: Integrate,
    /// What to run, or ring, when something a person should know happens.
    pub notify: Vec<Notify>,
    pub models: BTreeMap<String, Model>,
    pub agents: BTreeMap<String, Agent>,
    pub roles: BTreeMap<String, Role>,
    pub accounts: BTreeMap<String, Account>,
    pub kinds: BTreeMap<TaskKind, KindEntry>,
    /// Pairs of workstreams that may run at once and own overlapping paths.
    pub overlaps: Vec<Overlap>,
}

impl Workflow {
    /// Finds a workstream's index by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.workstreams.iter().position(|w| w.name == name)
    }

    /// The branch a workstream works on.
    pub fn branch_of(&self, workstream: &Workstream) -> String {
        format!("{}{}", self.branch_prefix, workstream.name)
    }

    /// The agent definition a workstream runs.
    pub fn agent_of(&self, workstream: &Workstream) -> &Agent {
        self.agents
            .get(&workstream.agent)
            .expect("validation resolved every workstream's agent")
    }

    /// The model definition a workstream uses, if any.
    pub fn model_of(&self, workstream: &Workstream) -> Option<&Model> {
        workstream.model.as_ref().and_then(|m| self.models.get(m))
    }

    /// The predicted overlaps gathered into groups of workstreams (see [`group_overlaps`]).
    pub fn overlap_groups(&self) -> Vec<OverlapGroup> {
        group_overlaps(&self.overlaps)
    }

    /// The role definition a workstream has, if any.
    pub fn role_of(&self, workstream: &Workstream) -> Option<&Role> {
        workstream.role.as_ref().and_then(|r| self.roles.get(r))
    }
}

/// One unit of work: a task, an agent, a scope, dependencies.
#[derive(Debug, Clone)]
pub struct Workstream {
    pub name: String,
    pub description: Option<String>,
    pub task: Option<String>,
    pub script: Option<String>,
    pub role: Option<String>,
    pub agent: String,
    pub model: Option<String>,
    pub model_source: ModelSource,
    pub priority: Priority,
    /// The paths it may change (`owns`, else everything) and must not (`forbid`, which wins).
    pub scope: Scope,
    pub context: Vec<String>,
    /// Indices of the workstreams it depends on, in the order written.
    pub dependencies: Vec<usize>,
    pub test: Option<String>,
    pub timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub retries: u32,
    pub env: Vec<EnvSetting>,
    pub account: Option<String>,
    pub kind: Option<TaskKind>,
    pub estimate: Estimate,
    pub budget: Budget,
    pub isolation: Isolation,
    /// How many times a failed check (test, scope, `verify`, a conflict, a review) is sent
    /// back to the agent before the workstream fails.
    pub fix_attempts: u32,
    /// The reviewer that approves the work before it merges, if any.
    pub review: Option<AgentChoice>,
    /// At most this many tokens (about 4 characters each) of its dependencies' results go into
    /// its context.
    pub handoff_tokens: u32,
    pub sandbox: SandboxMode,
    pub network: Network,
    /// Paths its agent may write besides its worktree and temporary folder (`~` is `$HOME`).
    pub writable: Vec<String>,
    /// Variables whose values are secret whatever their names.
    pub secrets: Vec<String>,
    /// The most bytes its log keeps (the head and a rolling tail past it).
    pub log_limit: u64,
    /// How many TCP ports its block holds: `FLOW_PORT` and the `FLOW_PORT_COUNT - 1` after it.
    pub ports: u16,
    /// Commands run, one after the other, in each new worktree before its agent
    /// (`defaults`' first, then its own).
    pub setup: Vec<String>,
    /// How long its setup may take in all.
    pub setup_timeout: Duration,
    /// Commands run in its worktree before flow removes it.
    pub teardown: Vec<String>,
    /// Globs of untracked or ignored files of the user's checkout copied into each new
    /// worktree (never committed).
    pub copy: Vec<String>,
}

/// The default of `setup-timeout`: 20 minutes.
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The default of `fix-attempts`.
pub const DEFAULT_FIX_ATTEMPTS: u32 = 2;

/// How many TCP ports a workstream's block holds when its `ports` does not say.
pub const DEFAULT_PORTS: u16 = 10;
/// The default of `handoff-tokens`.
pub const DEFAULT_HANDOFF_TOKENS: u32 = 2000;
/// The default of `log-limit`: 64 MiB.
pub const DEFAULT_LOG_LIMIT: u64 = 64 << 20;

/// An agent chosen for a job, with the model it uses (`review`, `resolver`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentChoice {
    pub agent: String,
    pub model: Option<String>,
}

/// What network an agent may reach (TCP, where the kernel can enforce it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    Any,
    Off,
    Ports(Vec<u16>),
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Network::Any => f.write_str("any"),
            Network::Off => f.write_str("off"),
            Network::Ports(ports) => {
                let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                write!(f, "ports {}", list.join(", "))
            }
        }
    }
}

/// A `notify` block: a command run with the event as JSON on its standard input, and/or
/// the terminal bell, on chosen events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The events it is for (every one when the block names none).
    pub on: Vec<NotifyEvent>,
    /// The program and its arguments; empty for a bell alone.
    pub command: Vec<String>,
    pub bell: bool,
}

/// What a `notify` block can be told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyEvent {
    /// The run ended, however it ended.
    RunFinished,
    /// A workstream failed (a conflict too).
    WorkstreamFailed,
    /// Something only a person can settle: a conflict no resolver takes, a review that
    /// rejected the work for the last time.
    NeedsPerson,
    /// A budget reached 80%, or was passed.
    BudgetAlert,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 4] = [
        NotifyEvent::RunFinished,
        NotifyEvent::WorkstreamFailed,
        NotifyEvent::NeedsPerson,
        NotifyEvent::BudgetAlert,
    ];

    /// The spelling in the workflow file and in the event's JSON.
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::RunFinished => "run-finished",
            NotifyEvent::WorkstreamFailed => "workstream-failed",
            NotifyEvent::NeedsPerson => "needs-person",
            NotifyEvent::BudgetAlert => "budget-alert",
        }
    }

    /// The event a name spells, if any.
    pub fn from_name(name: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// The `integrate` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Integrate {
    pub verify: Option<String>,
    pub on_conflict: OnConflict,
    pub order: MergeOrder,
    /// The agent that resolves conflicts (`on-conflict "agent"`).
    pub resolver: Option<AgentChoice>,
    pub sync: SyncMode,
    /// The remote `flow land` pushes the integration branch to (`push "origin"`).
    pub push: Option<String>,
    /// The pull request `flow land` opens or updates, if any.
    pub pull_request: Option<PullRequest>,
}

/// `pull-request { title ..; base ..; draft; labels .. }`: the pull request a landing opens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    /// The title (default: the workflow's name and what merged).
    pub title: Option<String>,
    /// The branch it merges into (default: the workflow's base).
    pub base: Option<String>,
    pub draft: bool,
    pub labels: Vec<String>,
}

/// A model and its prices in dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Model {
    pub name: String,
    pub provider: String,
    pub id: String,
    pub input_usd: f64,
    pub output_usd: f64,
    pub cache_read_usd: f64,
    pub cache_write_usd: f64,
    pub priced: Option<String>,
}

/// How to launch an agent and read what it prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    pub name: String,
    /// Program and arguments, with `{placeholders}`.
    pub command: Vec<String>,
    pub output: OutputFormat,
    pub stdin: StdinMode,
    pub key_env: Option<String>,
    pub env: BTreeMap<String, String>,
    pub pass_env: Vec<String>,
    pub max_parallel: Option<usize>,
    /// A flag the tool takes to limit its own spending (given the workstream's `budget usd`).
    pub budget_flag: Option<String>,
    /// How to continue a session (`{session}` is its id); empty when the tool cannot.
    pub resume: Vec<String>,
    /// How a person starts the tool in a terminal with the prompt (`flow open`); empty when
    /// it has no interactive form.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interactive: Vec<String>,
    /// Paths the tool writes besides the worktree (its state and caches).
    pub writable: Vec<String>,
    /// Set for an agent that flow runs itself against a model API (no command).
    pub api: Option<ApiSettings>,
}

/// How flow talks to a model API for an agent with `api`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiSettings {
    pub kind: ApiKind,
    /// Where the API is; `None` for the provider's own.
    pub base_url: Option<String>,
    /// The most requests one attempt makes: the loop ends there.
    pub max_turns: u32,
    /// The most tokens one reply may hold (`max_tokens`).
    pub max_tokens: u32,
    /// Replies are read as server-sent events.
    pub stream: bool,
}

impl ApiKind {
    /// The model an API agent asks for when its workstream names none: the provider's
    /// everyday model as `std:models` lists it.
    pub fn default_model(self) -> &'static str {
        match self {
            ApiKind::Anthropic => "claude-sonnet-5",
            ApiKind::Openai => "gpt-5",
        }
    }
}

impl ApiSettings {
    /// The number of requests an attempt makes at most unless `max-turns` says otherwise.
    pub const DEFAULT_MAX_TURNS: u32 = 50;
    /// The tokens a reply may hold unless `max-tokens` says otherwise.
    pub const DEFAULT_MAX_TOKENS: u32 = 8192;
}

impl Agent {
    /// Tells whether the command uses a placeholder, e.g. `model` for `{model}`. An API agent
    /// uses the prompt (and a model when it has one, else its API's default).
    pub fn uses(&self, placeholder: &str) -> bool {
        if self.api.is_some() && placeholder == "prompt" {
            return true;
        }
        let needle = format!("{{{placeholder}}}");
        self.command.iter().any(|a| a.contains(&needle))
    }

    /// Tells whether the command names a model (`{model}`, `{model_name}` or `{provider}`).
    pub fn takes_model(&self) -> bool {
        self.command.iter().any(|a| crate::uses_model(a))
    }
}

/// A role: expertise, instructions, and a default scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Role {
    pub name: String,
    pub description: Option<String>,
    pub expertise: Vec<String>,
    pub instructions: Option<String>,
    pub owns: Vec<String>,
    pub forbid: Vec<String>,
    pub model: Option<String>,
}

/// An account: where its key lives and what it may spend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Account {
    pub name: String,
    pub env: String,
    pub max_parallel: Option<usize>,
    pub budget: Budget,
}

/// One row of the model-selection table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindEntry {
    pub kind: TaskKind,
    pub model: String,
    pub description: Option<String>,
}

/// Two workstreams that may run at once and can both change some path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overlap {
    pub first: usize,
    pub second: usize,
    /// The glob of `first` that overlaps; `**` when it has no `owns` (it owns everything).
    pub first_glob: String,
    pub second_glob: String,
    /// A path both may change.
    pub example: String,
}

/// Workstreams linked by overlaps: each overlaps at least one other of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlapGroup {
    /// The workstreams, in declaration order.
    pub members: Vec<usize>,
    /// Indices of the overlaps between them, in the order given.
    pub overlaps: Vec<usize>,
}

impl OverlapGroup {
    /// Tells whether every two members overlap.
    pub fn is_complete(&self) -> bool {
        let n = self.members.len();
        self.overlaps.len() == n * (n - 1) / 2
    }
}

/// Gathers overlaps into groups of workstreams that overlap one another, directly or through
/// others, ordered by their first member: twelve workstreams that own one glob are one group,
/// not sixty-six pairs.
pub fn group_overlaps(overlaps: &[Overlap]) -> Vec<OverlapGroup> {
    let size = overlaps.iter().map(|o| o.first.max(o.second) + 1).max().unwrap_or(0);
    let mut sets = petgraph::unionfind::UnionFind::<usize>::new(size);
    for o in overlaps {
        sets.union(o.first, o.second);
    }
    let mut groups: BTreeMap<usize, OverlapGroup> = BTreeMap::new();
    for (k, o) in overlaps.iter().enumerate() {
        let group = groups.entry(sets.find(o.first)).or_insert_with(|| OverlapGroup {
            members: vec![],
            overlaps: vec![],
        });
        group.members.extend([o.first, o.second]);
        group.overlaps.push(k);
    }
    let mut groups: Vec<OverlapGroup> = groups.into_values().collect();
    for group in &mut groups {
        group.members.sort_unstable();
        group.members.dedup();
    }
    groups.sort_by_key(|g| g.members[0]);
    groups
}

/// The placeholders an agent command may use.
pub const PLACEHOLDERS: &[&str] = &[
    "prompt",
    "prompt_file",
    "model",
    "model_name",
    "provider",
    "worktree",
    "workstream",
    "script",
    "session",
];
