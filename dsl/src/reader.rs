//! Reads one parsed KDL document into the spanned syntax tree, reporting every shape problem.

use std::collections::HashMap;
use std::time::Duration;

use kdl::KdlValue;

use crate::node::{Document as KdlDocument, Entry as KdlEntry, Node as KdlNode};
use miette::SourceSpan;

use crate::OutputFormat;
use crate::ast::*;
use crate::duration::parse_duration;
use crate::keywords::{
    ApiKind, Isolation, MergeOrder, OnConflict, Priority, SandboxMode, ScopePolicy, StdinMode, Streaming, SyncMode,
    TaskKind,
};
use crate::problem::{Code, Problem, Source, did_you_mean};

const TOP_LEVEL: &[&str] = &[
    "workflow",
    "import",
    "defaults",
    "workstream",
    "integrate",
    "notify",
    "model",
    "agent",
    "role",
    "account",
    "kind",
];
const NOTIFY_CHILDREN: &[&str] = &["on", "command", "bell"];
const WORKFLOW_CHILDREN: &[&str] = &[
    "base",
    "into",
    "worktrees",
    "branch-prefix",
    "max-parallel",
    "budget",
    "scope-policy",
    "status-file",
];
const WORKSTREAM_CHILDREN: &[&str] = &[
    "description",
    "task",
    "script",
    "role",
    "agent",
    "model",
    "priority",
    "owns",
    "forbid",
    "context",
    "depends-on",
    "test",
    "timeout",
    "idle-timeout",
    "retries",
    "env",
    "account",
    "kind",
    "estimate",
    "budget",
    "isolation",
    "fix-attempts",
    "review",
    "handoff-tokens",
    "sandbox",
    "network",
    "writable",
    "secret",
    "log-limit",
    "ports",
    "setup",
    "setup-timeout",
    "teardown",
    "copy",
];
const DEFAULTS_CHILDREN: &[&str] = &[
    "agent",
    "model",
    "role",
    "priority",
    "timeout",
    "idle-timeout",
    "retries",
    "test",
    "account",
    "kind",
    "env",
    "forbid",
    "budget",
    "isolation",
    "fix-attempts",
    "review",
    "handoff-tokens",
    "sandbox",
    "network",
    "writable",
    "secret",
    "log-limit",
    "ports",
    "setup",
    "setup-timeout",
    "teardown",
    "copy",
];
const INTEGRATE_CHILDREN: &[&str] = &[
    "verify",
    "on-conflict",
    "order",
    "resolver",
    "sync",
    "push",
    "pull-request",
];
const PULL_REQUEST_CHILDREN: &[&str] = &["title", "base", "draft", "labels"];
const AGENT_CHILDREN: &[&str] = &[
    "budget-flag",
    "command",
    "output",
    "stdin",
    "key-env",
    "env",
    "pass-env",
    "max-parallel",
    "resume",
    "writable",
    "api",
    "interactive",
    "base-url",
    "max-turns",
    "max-tokens",
    "stream",
];
const ROLE_CHILDREN: &[&str] = &["description", "expertise", "instructions", "owns", "forbid", "model"];
const MODEL_PROPERTIES: &[&str] = &[
    "provider",
    "id",
    "input-usd",
    "output-usd",
    "cache-read-usd",
    "cache-write-usd",
    "priced",
];
const ACCOUNT_PROPERTIES: &[&str] = &["env", "max-parallel", "budget-usd", "budget-tokens"];

/// Checks that a name can be a branch and folder name.
pub fn name_error(name: &str) -> Option<&'static str> {
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() {
        Some("a name cannot be empty")
    } else if name.len() > 100 {
        Some("a name can have at most 100 characters")
    } else if !first_ok {
        Some("a name must start with a letter or digit")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Some("a name can only have letters, digits, `-`, `_` and `.`")
    } else if name.contains("..") || name.ends_with('.') || name.ends_with(".lock") {
        Some("a name cannot contain `..` or end with `.` or `.lock`")
    } else {
        None
    }
}

/// Reads one file's document.
pub struct Reader<'a> {
    file: FileId,
    source: &'a Source,
    main: bool,
    problems: &'a mut Vec<Problem>,
    flawed: Vec<SourceSpan>,
}

impl<'a> Reader<'a> {
    /// Prepares to read a file; `main` is false for imported files.
    pub fn new(file: FileId, source: &'a Source, main: bool, problems: &'a mut Vec<Problem>) -> Reader<'a> {
        Reader {
            file,
            source,
            main,
            problems,
            flawed: vec![],
        }
    }

    /// Reads every top-level node; also returns the spans of the top-level nodes that had a
    /// problem, so later checks do not report what follows from it (a `task 42` is not also
    /// a missing task).
    pub fn read(mut self, document: &KdlDocument) -> (FileAst, Vec<SourceSpan>) {
        let mut ast = FileAst::default();
        // Sized once: a file of thousands of workstreams would otherwise hold the old and the
        // new buffer at once each time the vector doubles (the peak memory of `flow run`).
        let workstreams = document
            .nodes()
            .iter()
            .filter(|n| n.name().value() == "workstream")
            .count();
        ast.workstreams.reserve_exact(workstreams);
        let mut workflow_span: Option<SourceSpan> = None;
        let mut defaults_span: Option<SourceSpan> = None;
        let mut integrate_span: Option<SourceSpan> = None;
        for node in document.nodes() {
            let before = self.problems.len();
            let name = node.name().value();
            let span = node.name().span();
            let main_only = matches!(name, "workflow" | "defaults" | "workstream" | "integrate" | "notify");
            if main_only && !self.main {
                self.push(
                    Problem::error(Code::MisplacedNode, self.source, span, "not allowed here", format!("`{name}` is not allowed in an imported file"))
                        .with_help("imported files hold only `import` and definitions (`model`, `agent`, `role`, `account`, `kind`)"),
                );
                continue;
            }
            match name {
                "workflow" => {
                    if self.once(&mut workflow_span, node) {
                        ast.workflow = Some(self.workflow(node));
                    }
                }
                "import" => {
                    self.no_props(node);
                    self.no_children(node);
                    ast.imports.extend(self.strings(node, "a file to import"));
                }
                "defaults" => {
                    if self.once(&mut defaults_span, node) {
                        self.args(node, 0, 0, "");
                        self.no_props(node);
                        let mut defaults = self.workstream_body(node, DEFAULTS_CHILDREN);
                        defaults.node_span = Some(self.spanned((), span));
                        ast.defaults = Some(defaults);
                    }
                }
                "workstream" => {
                    let name = self.name_arg(node, "workstream");
                    self.no_props(node);
                    let mut ws = self.workstream_body(node, WORKSTREAM_CHILDREN);
                    ws.name = name;
                    ws.node_span = Some(self.spanned((), span));
                    ast.workstreams.push(ws);
                }
                "integrate" => {
                    if self.once(&mut integrate_span, node) {
                        self.args(node, 0, 0, "");
                        self.no_props(node);
                        ast.integrate = Some(self.integrate(node));
                    }
                }
                "notify" => {
                    self.args(node, 0, 0, "");
                    self.no_props(node);
                    let mut notify = self.notify(node);
                    notify.node = self.spanned((), span);
                    ast.notifies.push(notify);
                }
                "model" => ast.models.extend(self.model(node)),
                "agent" => ast.agents.extend(self.agent(node)),
                "role" => ast.roles.extend(self.role(node)),
                "account" => ast.accounts.extend(self.account(node)),
                "kind" => ast.kinds.extend(self.kind(node)),
                other => self.unknown_node(node, other, TOP_LEVEL, "at the top level"),
            }
            if self.problems.len() > before {
                self.flawed.push(node.span());
            }
        }
        (ast, self.flawed)
    }

    fn workflow(&mut self, node: &KdlNode) -> WorkflowAst {
        let mut w = WorkflowAst::default();
        self.no_props(node);
        let args = self.args(node, 0, 1, "the workflow's name");
        w.name = args.first().and_then(|e| self.string(e, "the workflow's name"));
        if let Some(name) = &w.name {
            self.check_name(name, "workflow");
        }
        let mut seen = Seen::default();
        for child in children(node) {
            let name = child.name().value();
            if WORKFLOW_CHILDREN.contains(&name) && !seen.first(self, child) {
                continue;
            }
            match name {
                "base" => w.base = self.one_string(child, "a branch name"),
                "into" => w.into = self.one_string(child, "a branch name"),
                "worktrees" => w.worktrees = self.one_string(child, "a folder"),
                "branch-prefix" => w.branch_prefix = self.one_string(child, "a branch prefix"),
                "max-parallel" => w.max_parallel = self.one_count(child, 1),
                "budget" => w.budget = Some(self.budget(child)),
                "scope-policy" => {
                    w.scope_policy = self.one_keyword(
                        child,
                        ScopePolicy::from_name,
                        names(ScopePolicy::ALL, ScopePolicy::name),
                    )
                }
                "status-file" => w.status_file = self.one_string(child, "a path"),
                other => self.unknown_node(child, other, WORKFLOW_CHILDREN, "in `workflow`"),
            }
        }
        w
    }

    fn workstream_body(&mut self, node: &KdlNode, allowed: &[&str]) -> WorkstreamAst {
        let mut ws = WorkstreamAst::default();
        let mut seen = Seen::default();
        let context = if allowed.len() == DEFAULTS_CHILDREN.len() {
            "in `defaults`"
        } else {
            "in `workstream`"
        };
        for child in children(node) {
            let name = child.name().value();
            if !allowed.contains(&name) {
                if WORKSTREAM_CHILDREN.contains(&name) {
                    self.push(
                        Problem::error(
                            Code::MisplacedNode,
                            self.source,
                            child.name().span(),
                            "not allowed here",
                            format!("`{name}` cannot be set in `defaults`"),
                        )
                        .with_help(format!(
                            "set it in each workstream; `defaults` sets only {}",
                            allowed.join(", ")
                        )),
                    );
                    continue;
                }
                self.unknown_node(child, name, allowed, context);
                continue;
            }
            let repeatable = matches!(
                name,
                "owns"
                    | "forbid"
                    | "context"
                    | "depends-on"
                    | "env"
                    | "writable"
                    | "secret"
                    | "setup"
                    | "teardown"
                    | "copy"
            );
            if !repeatable && !seen.first(self, child) {
                continue;
            }
            match name {
                "description" => ws.description = self.one_string(child, "a description"),
                "task" => ws.task = self.one_string(child, "the task"),
                "script" => ws.script = self.one_string(child, "a shell script"),
                "role" => ws.role = self.one_string(child, "a role name"),
                "agent" => ws.agent = self.one_string(child, "an agent name"),
                "model" => ws.model = self.one_string(child, "a model name"),
                "priority" => ws.priority = self.priority(child),
                "owns" => ws.owns.extend(self.list(child, "a glob")),
                "forbid" => ws.forbid.extend(self.list(child, "a glob")),
                "context" => ws.context.extend(self.list(child, "a file path")),
                "depends-on" => ws.depends_on.extend(self.list(child, "a workstream name")),
                "test" => ws.test = self.one_string(child, "a shell command"),
                "timeout" => ws.timeout = self.one_duration(child),
                "idle-timeout" => ws.idle_timeout = self.one_duration(child),
                "retries" => ws.retries = self.one_count(child, 0),
                "env" => ws.env.extend(self.env(child)),
                "account" => ws.account = self.one_string(child, "an account name"),
                "kind" => ws.kind = self.one_keyword(child, TaskKind::from_name, names(TaskKind::ALL, TaskKind::name)),
                "estimate" => ws.estimate = Some(Box::new(self.estimate(child))),
                "budget" => ws.budget = Some(Box::new(self.budget(child))),
                "isolation" => {
                    ws.isolation = self.one_keyword(child, Isolation::from_name, names(Isolation::ALL, Isolation::name))
                }
                "fix-attempts" => ws.fix_attempts = self.one_count(child, 0),
                "ports" => ws.ports = self.one_count(child, 1),
                "review" => ws.review = self.agent_choice(child).map(Box::new),
                "handoff-tokens" => ws.handoff_tokens = self.one_count(child, 0),
                "sandbox" => {
                    ws.sandbox = self.one_keyword(
                        child,
                        SandboxMode::from_name,
                        names(SandboxMode::ALL, SandboxMode::name),
                    )
                }
                "network" => ws.network = self.network(child).map(Box::new),
                "writable" => ws.writable.extend(self.list(child, "a path")),
                "secret" => ws.secret.extend(self.list(child, "a variable name")),
                "log-limit" => ws.log_limit = self.one_size(child),
                "setup" => ws.setup.extend(self.list(child, "a shell command")),
                "setup-timeout" => ws.setup_timeout = self.one_duration(child),
                "teardown" => ws.teardown.extend(self.list(child, "a shell command")),
                "copy" => ws.copy.extend(self.list(child, "a glob")),
                _ => unreachable!("every allowed child is handled"),
            }
        }
        ws
    }

    fn integrate(&mut self, node: &KdlNode) -> IntegrateAst {
        let mut i = IntegrateAst::default();
        let mut seen = Seen::default();
        for child in children(node) {
            let name = child.name().value();
            if INTEGRATE_CHILDREN.contains(&name) && !seen.first(self, child) {
                continue;
            }
            match name {
                "verify" => i.verify = self.one_string(child, "a shell command"),
                "on-conflict" => {
                    i.on_conflict =
                        self.one_keyword(child, OnConflict::from_name, names(OnConflict::ALL, OnConflict::name))
                }
                "order" => {
                    i.order = self.one_keyword(child, MergeOrder::from_name, names(MergeOrder::ALL, MergeOrder::name))
                }
                "resolver" => i.resolver = self.agent_choice(child),
                "sync" => i.sync = self.one_keyword(child, SyncMode::from_name, names(SyncMode::ALL, SyncMode::name)),
                "push" => i.push = self.one_string(child, "a remote name"),
                "pull-request" => i.pull_request = Some(self.pull_request(child)),
                other => self.unknown_node(child, other, INTEGRATE_CHILDREN, "in `integrate`"),
            }
        }
        i
    }

    /// `pull-request { title ..; base ..; draft; labels .. }`, or `pull-request` alone.
    fn pull_request(&mut self, node: &KdlNode) -> PullRequestAst {
        self.no_props(node);
        self.args(node, 0, 0, "a `{ ... }` block");
        let mut pr = PullRequestAst::default();
        let mut seen = Seen::default();
        for child in children(node) {
            let name = child.name().value();
            if PULL_REQUEST_CHILDREN.contains(&name) && !seen.first(self, child) {
                continue;
            }
            match name {
                "title" => pr.title = self.one_string(child, "a title"),
                "base" => pr.base = self.one_string(child, "a branch name"),
                "draft" => {
                    self.no_props(child);
                    self.no_children(child);
                    self.args(child, 0, 0, "nothing");
                    pr.draft = true;
                }
                "labels" => pr.labels.extend(self.list(child, "a label")),
                other => self.unknown_node(child, other, PULL_REQUEST_CHILDREN, "in `pull-request`"),
            }
        }
        pr
    }

    fn notify(&mut self, node: &KdlNode) -> NotifyAst {
        let mut n = NotifyAst {
            node: self.spanned((), node.name().span()),
            on: vec![],
            command: vec![],
            bell: false,
        };
        let mut seen = Seen::default();
        for child in children(node) {
            let name = child.name().value();
            if NOTIFY_CHILDREN.contains(&name) && !seen.first(self, child) {
                continue;
            }
            match name {
                "on" => n.on = self.list(child, "an event"),
                "command" => n.command = self.list(child, "a program and its arguments"),
                "bell" => {
                    self.args(child, 0, 0, "");
                    self.no_props(child);
                    self.no_children(child);
                    n.bell = true;
                }
                other => self.unknown_node(child, other, NOTIFY_CHILDREN, "in `notify`"),
            }
        }
        n
    }

    fn model(&mut self, node: &KdlNode) -> Option<ModelAst> {
        let name = self.name_arg(node, "model");
        let block = self.properties_block(node);
        let props = self.props(node, MODEL_PROPERTIES);
        let name = name?;
        let model = ModelAst {
            provider: props.get("provider").and_then(|e| self.string(e, "a provider name")),
            id: props.get("id").and_then(|e| self.string(e, "a model id")),
            input_usd: props.get("input-usd").and_then(|e| self.price(e)),
            output_usd: props.get("output-usd").and_then(|e| self.price(e)),
            cache_read_usd: props.get("cache-read-usd").and_then(|e| self.price(e)),
            cache_write_usd: props.get("cache-write-usd").and_then(|e| self.price(e)),
            priced: props.get("priced").and_then(|e| self.string(e, "a date")),
            name,
        };
        for (key, value) in [("provider", model.provider.is_none()), ("id", model.id.is_none())] {
            if value && !props.contains_key(key) && !block {
                self.push(
                    Problem::error(
                        Code::MissingNode,
                        self.source,
                        node.name().span(),
                        format!("no `{key}=`"),
                        format!("model `{}` has no `{key}`", model.name.value),
                    )
                    .with_help(format!("add `{key}=\"...\"` to the model")),
                );
            }
        }
        Some(model)
    }

    fn agent(&mut self, node: &KdlNode) -> Option<AgentAst> {
        let name = self.name_arg(node, "agent");
        self.no_props(node);
        let mut agent = AgentAst {
            name: name
                .clone()
                .unwrap_or_else(|| self.spanned(String::new(), node.name().span())),
            command: vec![],
            output: None,
            stdin: None,
            key_env: None,
            env: vec![],
            pass_env: vec![],
            max_parallel: None,
            budget_flag: None,
            resume: vec![],
            interactive: vec![],
            writable: vec![],
            api: None,
            base_url: None,
            max_turns: None,
            max_tokens: None,
            stream: None,
        };
        let mut seen = Seen::default();
        let mut has_command = false;
        let mut has_api = false;
        for child in children(node) {
            let child_name = child.name().value();
            let repeatable = matches!(child_name, "env" | "pass-env" | "writable");
            if AGENT_CHILDREN.contains(&child_name) && !repeatable && !seen.first(self, child) {
                continue;
            }
            match child_name {
                "command" => {
                    has_command = true;
                    agent.command = self.list(child, "a program or argument");
                }
                "output" => {
                    agent.output = self.one_keyword(
                        child,
                        OutputFormat::from_name,
                        names(&OutputFormat::ALL, OutputFormat::name),
                    )
                }
                "stdin" => {
                    agent.stdin = self.one_keyword(child, StdinMode::from_name, names(StdinMode::ALL, StdinMode::name))
                }
                "key-env" => agent.key_env = self.one_string(child, "a variable name"),
                "env" => {
                    for e in self.env(child) {
                        match e {
                            EnvAst::Set(k, v) => agent.env.push((k, v)),
                            EnvAst::Pass(p) => self.push(
                                Problem::error(
                                    Code::ArgumentType,
                                    self.source,
                                    p.span,
                                    "expected KEY=\"value\"",
                                    "an agent's `env` sets values",
                                )
                                .with_help("use `pass-env` to pass a variable through"),
                            ),
                        }
                    }
                }
                "pass-env" => agent.pass_env.extend(self.list(child, "a variable name")),
                "max-parallel" => agent.max_parallel = self.one_count(child, 1),
                "budget-flag" => agent.budget_flag = self.one_string(child, "a command-line flag"),
                "resume" => agent.resume = self.list(child, "a program or argument"),
                "interactive" => agent.interactive = self.list(child, "a program or argument"),
                "writable" => agent.writable.extend(self.list(child, "a path")),
                "api" => {
                    has_api = true;
                    agent.api = self.one_keyword(child, ApiKind::from_name, names(ApiKind::ALL, ApiKind::name));
                }
                "base-url" => agent.base_url = self.one_string(child, "a URL"),
                "max-turns" => agent.max_turns = self.one_count(child, 1),
                "max-tokens" => agent.max_tokens = self.one_count(child, 1),
                "stream" => {
                    // `stream #false` reads as `stream "off"`.
                    let flag = match child.entries() {
                        [entry] if entry.name().is_none() => match entry.value() {
                            KdlValue::Bool(on) => Some((*on, entry.span())),
                            _ => None,
                        },
                        _ => None,
                    };
                    agent.stream = match flag {
                        Some((on, span)) => Some(self.spanned(if on { Streaming::On } else { Streaming::Off }, span)),
                        None => self.one_keyword(child, Streaming::from_name, names(Streaming::ALL, Streaming::name)),
                    }
                }
                other => self.unknown_node(child, other, AGENT_CHILDREN, "in `agent`"),
            }
        }
        // An agent flow runs itself against a model API has no command.
        if !has_command && !has_api && name.is_some() {
            self.push(
                Problem::error(
                    Code::MissingNode,
                    self.source,
                    node.name().span(),
                    "no `command`",
                    format!("agent `{}` has no `command`", agent.name.value),
                )
                .with_help("add `command \"program\" \"arg\" ...` inside the agent block"),
            );
        }
        name.map(|_| agent)
    }

    fn role(&mut self, node: &KdlNode) -> Option<RoleAst> {
        let name = self.name_arg(node, "role");
        self.no_props(node);
        let mut role = RoleAst {
            name: name
                .clone()
                .unwrap_or_else(|| self.spanned(String::new(), node.name().span())),
            description: None,
            expertise: vec![],
            instructions: None,
            owns: vec![],
            forbid: vec![],
            model: None,
        };
        let mut seen = Seen::default();
        for child in children(node) {
            let child_name = child.name().value();
            let repeatable = matches!(child_name, "expertise" | "owns" | "forbid");
            if ROLE_CHILDREN.contains(&child_name) && !repeatable && !seen.first(self, child) {
                continue;
            }
            match child_name {
                "description" => role.description = self.one_string(child, "a description"),
                "expertise" => role.expertise.extend(self.list(child, "an area of expertise")),
                "instructions" => role.instructions = self.one_string(child, "instructions"),
                "owns" => role.owns.extend(self.list(child, "a glob")),
                "forbid" => role.forbid.extend(self.list(child, "a glob")),
                "model" => role.model = self.one_string(child, "a model name"),
                other => self.unknown_node(child, other, ROLE_CHILDREN, "in `role`"),
            }
        }
        name.map(|_| role)
    }

    fn account(&mut self, node: &KdlNode) -> Option<AccountAst> {
        let name = self.name_arg(node, "account");
        let block = self.properties_block(node);
        let props = self.props(node, ACCOUNT_PROPERTIES);
        let account = AccountAst {
            env: props.get("env").and_then(|e| self.string(e, "a variable name")),
            max_parallel: props.get("max-parallel").and_then(|e| self.count(e, 1, "")),
            budget: BudgetAst {
                usd: props.get("budget-usd").and_then(|e| self.price(e)),
                tokens: props.get("budget-tokens").and_then(|e| self.count(e, 1, "")),
            },
            name: name?,
        };
        if account.env.is_none() && !props.contains_key("env") && !block {
            self.push(
                Problem::error(
                    Code::MissingNode,
                    self.source,
                    node.name().span(),
                    "no `env=`",
                    format!("account `{}` has no `env`", account.name.value),
                )
                .with_help("add `env=\"VARIABLE\"`: the variable of flow's environment that holds this account's key"),
            );
        }
        Some(account)
    }

    fn kind(&mut self, node: &KdlNode) -> Option<KindAst> {
        let block = self.properties_block(node);
        let props = self.props(node, &["model", "description"]);
        let args = self.args(node, 1, 1, "a task kind");
        let entry = args.first()?;
        let text = self.string(entry, "a task kind")?;
        let kind = match TaskKind::from_name(&text.value) {
            Some(k) => self.spanned(k, entry.span()),
            None => {
                self.bad_keyword("kind", entry.span(), &text.value, names(TaskKind::ALL, TaskKind::name));
                return None;
            }
        };
        let model = props.get("model").and_then(|e| self.string(e, "a model name"));
        if model.is_none() && !props.contains_key("model") && !block {
            self.push(
                Problem::error(
                    Code::MissingNode,
                    self.source,
                    node.name().span(),
                    "no `model=`",
                    format!("kind `{}` names no model", text.value),
                )
                .with_help("add `model=\"...\"`"),
            );
        }
        Some(KindAst {
            kind,
            model,
            description: props.get("description").and_then(|e| self.string(e, "a description")),
        })
    }

    fn budget(&mut self, node: &KdlNode) -> BudgetAst {
        self.no_children(node);
        self.args(node, 0, 0, "");
        let props = self.props(node, &["usd", "tokens"]);
        if props.is_empty() {
            self.push(
                Problem::error(
                    Code::MissingNode,
                    self.source,
                    node.name().span(),
                    "no limit given",
                    "`budget` sets no limit",
                )
                .with_help("write `budget usd=10` or `budget tokens=1_000_000` (or both)"),
            );
        }
        BudgetAst {
            usd: props.get("usd").and_then(|e| self.price(e)),
            tokens: props.get("tokens").and_then(|e| self.count(e, 1, "")),
        }
    }

    fn estimate(&mut self, node: &KdlNode) -> EstimateAst {
        self.no_children(node);
        let props = self.props(node, &["tokens", "usd"]);
        let args = self.args(node, 0, 1, "a duration");
        EstimateAst {
            duration: args.first().and_then(|e| self.duration(e)),
            tokens: props.get("tokens").and_then(|e| self.count(e, 0, "")),
            usd: props.get("usd").and_then(|e| self.price(e)),
        }
    }

    fn env(&mut self, node: &KdlNode) -> Vec<EnvAst> {
        self.no_children(node);
        if node.entries().is_empty() {
            self.push(
                Problem::error(
                    Code::ArgumentCount,
                    self.source,
                    node.name().span(),
                    "nothing to set",
                    "`env` is empty",
                )
                .with_help("write `env KEY=\"value\"` to set a variable or `env \"NAME\"` to pass one through"),
            );
        }
        let mut out = vec![];
        for entry in node.entries() {
            match entry.name() {
                Some(key) => {
                    let key = self.spanned(key.value().to_string(), key.span());
                    if let Some(value) = self.string(entry, "a string value") {
                        out.push(EnvAst::Set(key, value));
                    }
                }
                None => {
                    if let Some(name) = self.string(entry, "a variable name") {
                        out.push(EnvAst::Pass(name));
                    }
                }
            }
        }
        out
    }

    fn priority(&mut self, node: &KdlNode) -> Option<Spanned<Priority>> {
        let text = self.one_string(node, "a priority")?;
        match Priority::from_name(&text.value) {
            Some(p) => Some(self.spanned(p, text.span)),
            None => {
                let known = names(Priority::ALL, Priority::name);
                let help = match did_you_mean(&text.value, known.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? priorities are {}", known.join(", ")),
                    None => format!("priorities are {}", known.join(", ")),
                };
                self.push(
                    Problem::error(
                        Code::InvalidPriority,
                        self.source,
                        text.span,
                        "not a priority",
                        format!("`{}` is not a priority", text.value),
                    )
                    .with_help(help),
                );
                None
            }
        }
    }

    // ---- shared helpers ----

    fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// The source text of a span.
    fn text(&self, span: SourceSpan) -> &str {
        self.source
            .inner()
            .get(span.offset()..span.offset() + span.len())
            .unwrap_or("")
    }

    fn spanned<T>(&self, value: T, span: SourceSpan) -> Spanned<T> {
        Spanned::new(value, self.file, span)
    }

    /// Records a node that may appear only once; false (and an error) on a repeat.
    fn once(&mut self, first: &mut Option<SourceSpan>, node: &KdlNode) -> bool {
        match first {
            None => {
                *first = Some(node.name().span());
                true
            }
            Some(earlier) => {
                let name = node.name().value();
                self.push(
                    Problem::error(
                        Code::DuplicateNode,
                        self.source,
                        node.name().span(),
                        "written again here",
                        format!("`{name}` is written twice"),
                    )
                    .with_label(*earlier, "first written here")
                    .with_help(format!("merge the two `{name}` nodes into one")),
                );
                false
            }
        }
    }

    fn unknown_node(&mut self, node: &KdlNode, name: &str, known: &[&str], context: &str) {
        let mut problem = Problem::error(
            Code::UnknownNode,
            self.source,
            node.name().span(),
            "unknown node",
            format!("unknown node `{name}` {context}"),
        );
        problem = match did_you_mean(name, known.iter().copied()) {
            Some(s) => problem.with_help(format!("did you mean `{s}`?")),
            None => problem.with_help(format!("expected one of: {}", known.join(", "))),
        };
        self.push(problem);
    }

    /// Reports a `{ ... }` block on a node that takes values; true when the block is all
    /// there is, so the missing value need not be reported too.
    fn leaf_block(&mut self, node: &KdlNode, what: &str) -> bool {
        if node.children().is_none() {
            return false;
        }
        let name = node.name().value();
        self.push(
            Problem::error(
                Code::ArgumentType,
                self.source,
                node.name().span(),
                "has a `{ ... }` block",
                format!("`{name}` takes no children block"),
            )
            .with_help(format!(
                "write the value after the name, without braces: `{name} {}`",
                example_for(what)
            )),
        );
        node.entries().iter().all(|e| e.name().is_some())
    }

    /// Reports a `{ ... }` block on a node that takes properties, showing the block's
    /// children as properties; true when there is a block.
    fn properties_block(&mut self, node: &KdlNode) -> bool {
        let Some(block) = node.children() else { return false };
        let name = node.name().value();
        let mut line = vec![self.text(node.name().span()).to_string()];
        line.extend(node.entries().iter().map(|e| self.text(e.span()).trim().to_string()));
        for child in block.nodes() {
            let value = child.entries().first().map_or("...", |e| self.text(e.span()).trim());
            line.push(format!("{}={value}", child.name().value()));
        }
        self.push(
            Problem::error(
                Code::ArgumentType,
                self.source,
                node.name().span(),
                "has a `{ ... }` block",
                format!("`{name}` takes properties, not a children block"),
            )
            .with_help(format!("write them as properties on one line: `{}`", line.join(" "))),
        );
        true
    }

    fn no_children(&mut self, node: &KdlNode) {
        if node.children().is_some() {
            let name = node.name().value();
            self.push(
                Problem::error(
                    Code::ArgumentType,
                    self.source,
                    node.name().span(),
                    "has a `{ ... }` block",
                    format!("`{name}` takes no children block"),
                )
                .with_help("remove the braces and what is inside them"),
            );
        }
    }

    fn no_props(&mut self, node: &KdlNode) {
        self.props(node, &[]);
    }

    /// The properties of a node, reporting unknown and repeated ones.
    fn props<'n>(&mut self, node: &'n KdlNode, allowed: &[&str]) -> HashMap<&'n str, &'n KdlEntry> {
        let mut out: HashMap<&str, &KdlEntry> = HashMap::new();
        for entry in node.entries() {
            let Some(key) = entry.name() else { continue };
            let key_text = key.value();
            if !allowed.contains(&key_text) {
                let node_name = node.name().value();
                let mut problem = Problem::error(
                    Code::UnknownProperty,
                    self.source,
                    key.span(),
                    "unknown property",
                    format!("`{node_name}` has no property `{key_text}`"),
                );
                problem = match (did_you_mean(key_text, allowed.iter().copied()), allowed.is_empty()) {
                    (Some(s), _) => problem.with_help(format!("did you mean `{s}`?")),
                    (None, true) if children_of(node_name).contains(&key_text) => {
                        let value = self.text(entry.span()).split_once('=').map_or("...", |(_, v)| v.trim());
                        problem.with_help(format!(
                            "`{key_text}` is a child node: write `{key_text} {value}` inside the `{{ ... }}` block"
                        ))
                    }
                    (None, true) => problem.with_help(format!("`{node_name}` takes no properties")),
                    (None, false) => problem.with_help(format!("its properties are: {}", allowed.join(", "))),
                };
                self.push(problem);
                continue;
            }
            if let Some(earlier) = out.insert(key_text, entry) {
                self.push(
                    Problem::error(
                        Code::DuplicateNode,
                        self.source,
                        entry.span(),
                        "set again here",
                        format!("property `{key_text}` is set twice"),
                    )
                    .with_label(earlier.span(), "first set here")
                    .with_help("remove one of them"),
                );
            }
        }
        out
    }

    /// The positional arguments of a node, checking their count.
    fn args<'n>(&mut self, node: &'n KdlNode, min: usize, max: usize, what: &str) -> Vec<&'n KdlEntry> {
        let args: Vec<&KdlEntry> = node.entries().iter().filter(|e| e.name().is_none()).collect();
        let name = node.name().value();
        if args.len() < min {
            let expected = if min == max {
                format!("{min}")
            } else {
                format!("at least {min}")
            };
            self.push(
                Problem::error(
                    Code::ArgumentCount,
                    self.source,
                    node.name().span(),
                    format!("expected {what}"),
                    format!("`{name}` needs {expected} argument{}", if min == 1 { "" } else { "s" }),
                )
                .with_help(format!("write `{name} {}`", example_for(what))),
            );
        } else if args.len() > max {
            let (first, last) = (args[max].span(), args[args.len() - 1].span());
            let extra: SourceSpan = (first.offset(), last.offset() + last.len() - first.offset()).into();
            let message = if max == 0 {
                format!("`{name}` takes no arguments")
            } else {
                format!(
                    "`{name}` takes {max} argument{}, not {}",
                    if max == 1 { "" } else { "s" },
                    args.len()
                )
            };
            let label = if args.len() - max == 1 {
                "unexpected argument"
            } else {
                "unexpected arguments"
            };
            let mut problem = Problem::error(Code::ArgumentCount, self.source, extra, label, message);
            // KDL 2 reads unquoted words as separate strings: `task Fix the bug` has three.
            let words: Vec<&str> = args.iter().filter_map(|e| e.value().as_string()).collect();
            let bare = args
                .iter()
                .any(|e| !self.text(e.span()).trim_start().starts_with(['"', '#']));
            if max == 1 && bare && words.len() == args.len() && !what.ends_with("name") {
                problem = problem.with_help(format!(
                    "unquoted words are separate values: write the whole text in double quotes, `{name} \"{}\"`",
                    words.join(" ")
                ));
            } else if max == 0 && !children_of(name).is_empty() {
                problem = problem.with_help(format!("`{name}` has no name or value, only a `{{ ... }}` block"));
            }
            self.push(problem);
        }
        args
    }

    fn string(&mut self, entry: &KdlEntry, what: &str) -> Option<Spanned<String>> {
        match entry.value() {
            KdlValue::String(s) => Some(self.spanned(s.clone(), entry.span())),
            other => {
                let shown = match other {
                    KdlValue::Integer(n) if what == "a duration" => format!("{n}m"),
                    KdlValue::Integer(n) => n.to_string(),
                    KdlValue::Float(f) => f.to_string(),
                    KdlValue::Bool(b) => b.to_string(),
                    _ => "...".to_string(),
                };
                let help = if what == "a duration" {
                    format!("write a duration in double quotes, with its unit: `\"{shown}\"`")
                } else {
                    format!("put the value in double quotes: `\"{shown}\"`")
                };
                self.push(
                    Problem::error(
                        Code::ArgumentType,
                        self.source,
                        entry.span(),
                        format!("expected {what}"),
                        format!("expected a string, found {}", value_kind(other)),
                    )
                    .with_help(help),
                );
                None
            }
        }
    }

    /// A node with exactly one string argument and nothing else.
    fn one_string(&mut self, node: &KdlNode, what: &str) -> Option<Spanned<String>> {
        if self.leaf_block(node, what) {
            return None;
        }
        self.no_props(node);
        let args = self.args(node, 1, 1, what);
        args.first().and_then(|e| self.string(e, what))
    }

    /// A node with one or more string arguments.
    fn list(&mut self, node: &KdlNode, what: &str) -> Vec<Spanned<String>> {
        if self.leaf_block(node, what) {
            return vec![];
        }
        self.no_props(node);
        self.strings(node, what)
    }

    fn strings(&mut self, node: &KdlNode, what: &str) -> Vec<Spanned<String>> {
        let args = self.args(node, 1, usize::MAX, what);
        args.iter().filter_map(|e| self.string(e, what)).collect()
    }

    fn name_arg(&mut self, node: &KdlNode, what: &str) -> Option<Spanned<String>> {
        let args = self.args(node, 1, 1, &format!("the {what}'s name"));
        let name = self.string(args.first()?, &format!("the {what}'s name"))?;
        // An invalid name is reported, and still names the node, so references to it resolve.
        self.check_name(&name, what);
        Some(name)
    }

    fn check_name(&mut self, name: &Spanned<String>, what: &str) -> bool {
        match name_error(&name.value) {
            None => true,
            Some(why) => {
                self.push(
                    Problem::error(
                        Code::InvalidName,
                        self.source,
                        name.span,
                        why,
                        if name.value.is_empty() {
                            format!("the {what} name is empty")
                        } else {
                            format!("`{}` is not a valid {what} name", name.value)
                        },
                    )
                    .with_help("names become branch and folder names: use letters, digits, `-`, `_` and `.`"),
                );
                false
            }
        }
    }

    /// A whole number of at least `min`; `node` names the node, for properties the key is used.
    fn count(&mut self, entry: &KdlEntry, min: u64, node: &str) -> Option<Spanned<u64>> {
        let subject = entry.name().map_or(node, |k| k.value());
        match entry.value() {
            KdlValue::Integer(n) if *n >= min as i128 && *n <= limit_of(subject) => {
                Some(self.spanned(*n as u64, entry.span()))
            }
            KdlValue::Integer(n) => {
                let (label, message) = if *n < min as i128 {
                    (
                        format!("must be at least {min}"),
                        format!("`{subject}` must be at least {min}, not {n}"),
                    )
                } else {
                    (
                        "too large".to_string(),
                        format!("`{subject}` is too large: {n} is more than {}", limit_of(subject)),
                    )
                };
                self.push(Problem::error(
                    Code::InvalidNumber,
                    self.source,
                    entry.span(),
                    label,
                    message,
                ));
                None
            }
            other => {
                let help = match other {
                    KdlValue::String(t) if t.trim().parse::<i64>().is_ok() => {
                        format!("write the number without quotes: `{}`", t.trim())
                    }
                    _ => "write a whole number without quotes, e.g. `3`".to_string(),
                };
                self.push(
                    Problem::error(
                        Code::ArgumentType,
                        self.source,
                        entry.span(),
                        "expected a whole number",
                        format!("expected a whole number, found {}", value_kind(other)),
                    )
                    .with_help(help),
                );
                None
            }
        }
    }

    /// `review "AGENT" model="M"` / `resolver "AGENT" model="M"`.
    fn agent_choice(&mut self, node: &KdlNode) -> Option<AgentChoiceAst> {
        if self.leaf_block(node, "an agent name") {
            return None;
        }
        let props = self.props(node, &["model"]);
        let model = props.get("model").and_then(|e| self.string(e, "a model name"));
        let args = self.args(node, 1, 1, "an agent name");
        let agent = args.first().and_then(|e| self.string(e, "an agent name"))?;
        Some(AgentChoiceAst { agent, model })
    }

    /// `network "off"`, `network "any"`, or `network 443 8080` (TCP ports it may connect to).
    fn network(&mut self, node: &KdlNode) -> Option<Spanned<NetworkAst>> {
        if self.leaf_block(node, "a network setting") {
            return None;
        }
        self.no_props(node);
        let args = self.args(node, 1, usize::MAX, "a network setting");
        let first = args.first()?;
        if let KdlValue::String(text) = first.value() {
            let value = match text.as_str() {
                "off" => NetworkAst::Off,
                "any" => NetworkAst::Any,
                other => {
                    self.bad_keyword(node.name().value(), first.span(), other, vec!["off", "any"]);
                    return None;
                }
            };
            if args.len() > 1 {
                self.args(node, 1, 1, "a network setting");
                return None;
            }
            return Some(self.spanned(value, first.span()));
        }
        let mut ports = vec![];
        for entry in &args {
            match entry.value() {
                KdlValue::Integer(n) if (1..=65_535).contains(n) => ports.push(*n as u16),
                other => {
                    self.push(
                        Problem::error(
                            Code::ArgumentType,
                            self.source,
                            entry.span(),
                            "expected a port",
                            format!("expected a TCP port (1 to 65535), found {}", value_kind(other)),
                        )
                        .with_help("write `network \"off\"`, `network \"any\"`, or the ports: `network 443 8080`"),
                    );
                    return None;
                }
            }
        }
        Some(self.spanned(NetworkAst::Ports(ports), first.span()))
    }

    /// A size in bytes: `"64MB"`, `"512KB"`, `"1GB"` (powers of 1024), or a whole number of bytes.
    fn one_size(&mut self, node: &KdlNode) -> Option<Spanned<u64>> {
        if self.leaf_block(node, "a size") {
            return None;
        }
        self.no_props(node);
        let args = self.args(node, 1, 1, "a size");
        let entry = args.first()?;
        let parsed = match entry.value() {
            KdlValue::Integer(n) if *n > 0 && *n <= i64::MAX as i128 => Some(*n as u64),
            KdlValue::String(text) => parse_size(text),
            _ => None,
        };
        match parsed {
            Some(bytes) => Some(self.spanned(bytes, entry.span())),
            None => {
                self.push(
                    Problem::error(
                        Code::ArgumentType,
                        self.source,
                        entry.span(),
                        "expected a size",
                        format!("`{}` takes a size such as \"64MB\"", node.name().value()),
                    )
                    .with_help("write a number with `KB`, `MB` or `GB` (powers of 1024), e.g. `\"64MB\"`"),
                );
                None
            }
        }
    }

    fn one_count(&mut self, node: &KdlNode, min: u64) -> Option<Spanned<u64>> {
        if self.leaf_block(node, "a number") {
            return None;
        }
        self.no_props(node);
        let args = self.args(node, 1, 1, "a number");
        args.first().and_then(|e| self.count(e, min, node.name().value()))
    }

    fn price(&mut self, entry: &KdlEntry) -> Option<Spanned<f64>> {
        let value = match entry.value() {
            KdlValue::Integer(n) => *n as f64,
            KdlValue::Float(f) => *f,
            other => {
                let help = match other {
                    KdlValue::String(t) if t.trim().parse::<f64>().is_ok() => {
                        format!("write the amount without quotes: `{}`", t.trim())
                    }
                    _ => "write the amount without quotes, e.g. `2.5`".to_string(),
                };
                self.push(
                    Problem::error(
                        Code::ArgumentType,
                        self.source,
                        entry.span(),
                        "expected a number",
                        format!("expected a number, found {}", value_kind(other)),
                    )
                    .with_help(help),
                );
                return None;
            }
        };
        let subject = entry.name().map_or("an amount", |k| k.value());
        if !value.is_finite() {
            self.push(Problem::error(
                Code::InvalidNumber,
                self.source,
                entry.span(),
                "not a finite number",
                format!("`{subject}` must be a finite amount"),
            ));
            return None;
        }
        if value < 0.0 {
            self.push(Problem::error(
                Code::InvalidNumber,
                self.source,
                entry.span(),
                "must be zero or more",
                format!("`{subject}` cannot be negative"),
            ));
            return None;
        }
        Some(self.spanned(value, entry.span()))
    }

    fn duration(&mut self, entry: &KdlEntry) -> Option<Spanned<Duration>> {
        let text = self.string(entry, "a duration")?;
        match parse_duration(&text.value) {
            Ok(d) if d.is_zero() => {
                self.push(
                    Problem::error(
                        Code::InvalidDuration,
                        self.source,
                        text.span,
                        "zero",
                        "a duration must be longer than zero",
                    )
                    .with_help("leave the node out to set no limit"),
                );
                None
            }
            Ok(d) => Some(self.spanned(d, text.span)),
            Err(why) => {
                self.push(
                    Problem::error(
                        Code::InvalidDuration,
                        self.source,
                        text.span,
                        why,
                        format!("`{}` is not a duration", text.value),
                    )
                    .with_help("write numbers with units `ms`, `s`, `m`, `h` or `d`, e.g. \"45m\" or \"1h30m\""),
                );
                None
            }
        }
    }

    fn one_duration(&mut self, node: &KdlNode) -> Option<Spanned<Duration>> {
        if self.leaf_block(node, "a duration") {
            return None;
        }
        self.no_props(node);
        let args = self.args(node, 1, 1, "a duration");
        args.first().and_then(|e| self.duration(e))
    }

    fn one_keyword<T>(
        &mut self,
        node: &KdlNode,
        parse: fn(&str) -> Option<T>,
        known: Vec<&'static str>,
    ) -> Option<Spanned<T>> {
        let text = self.one_string(node, "a keyword")?;
        match parse(&text.value) {
            Some(v) => Some(self.spanned(v, text.span)),
            None => {
                self.bad_keyword(node.name().value(), text.span, &text.value, known);
                None
            }
        }
    }

    fn bad_keyword(&mut self, node: &str, span: SourceSpan, text: &str, known: Vec<&'static str>) {
        let list = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        let help = match did_you_mean(text, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? expected one of {list}"),
            None => format!("expected one of {list}"),
        };
        self.push(
            Problem::error(
                Code::InvalidValue,
                self.source,
                span,
                "not a known value",
                format!("`{text}` is not a valid value for `{node}`"),
            )
            .with_help(help),
        );
    }
}

/// Tracks which single-valued children a block has seen.
#[derive(Default)]
struct Seen {
    first: HashMap<String, SourceSpan>,
}

impl Seen {
    /// True the first time a child name is seen; reports a duplicate otherwise.
    fn first(&mut self, reader: &mut Reader<'_>, child: &KdlNode) -> bool {
        let name = child.name().value().to_string();
        let mut slot = self.first.get(&name).copied();
        let fresh = reader.once(&mut slot, child);
        if fresh {
            self.first.insert(name, child.name().span());
        }
        fresh
    }
}

/// The child nodes a block node allows, by its name.
fn children_of(node: &str) -> &'static [&'static str] {
    match node {
        "workflow" => WORKFLOW_CHILDREN,
        "workstream" => WORKSTREAM_CHILDREN,
        "defaults" => DEFAULTS_CHILDREN,
        "integrate" => INTEGRATE_CHILDREN,
        "pull-request" => PULL_REQUEST_CHILDREN,
        "notify" => NOTIFY_CHILDREN,
        "agent" => AGENT_CHILDREN,
        "role" => ROLE_CHILDREN,
        _ => &[],
    }
}

fn children(node: &KdlNode) -> &[KdlNode] {
    node.children().map(|d| d.nodes()).unwrap_or_default()
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| name(*v)).collect()
}

fn value_kind(value: &KdlValue) -> &'static str {
    match value {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a decimal number",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    }
}

fn example_for(what: &str) -> &'static str {
    match what {
        "a number" => "3",
        "a duration" => "\"45m\"",
        "a glob" => "\"src/**\"",
        _ => "\"...\"",
    }
}

/// The largest whole number a node or property takes: token counts may be large, counts of
/// things (retries, parallel agents) fit in 32 bits.
fn limit_of(subject: &str) -> i128 {
    if subject.contains("tokens") {
        i64::MAX as i128
    } else if subject == "ports" {
        MAX_PORTS as i128
    } else {
        u32::MAX as i128
    }
}

/// The most TCP ports one workstream's block may hold (`ports`).
pub const MAX_PORTS: u16 = 1000;

/// Parses `"64MB"`, `"512KB"`, `"1GB"` (powers of 1024) or plain bytes.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let unit = match text[digits..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "K" | "KIB" => 1 << 10,
        "MB" | "M" | "MIB" => 1 << 20,
        "GB" | "G" | "GIB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(unit).filter(|n| *n > 0)
}
