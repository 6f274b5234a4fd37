//! Turns the syntax trees of a workflow's files into a validated `Workflow`, reporting every
//! problem of meaning: unknown names, cycles, scopes, overlaps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use miette::SourceSpan;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::ast::*;
use crate::command_template::placeholders;
use crate::glob::{glob_covers, globs_may_overlap};
use crate::keywords::*;
use crate::loader::Loaded;
use crate::problem::{Code, Problem, Problems, Source, unknown_help};
use crate::scope::{Scope, ScopeGlob};
use crate::workflow::*;

/// A workflow that passed every check, with the warnings found on the way.
#[derive(Debug)]
pub struct Checked {
    pub workflow: Workflow,
    pub warnings: Vec<Problem>,
}

/// Validates loaded files into a workflow; all problems are reported at once.
pub fn validate(loaded: Loaded) -> Result<Checked, Problems> {
    let mut problems = loaded.problems;
    let mut workflow = None;
    if !loaded.syntax_failed {
        let mut v = Validator {
            files: &loaded.files,
            file_names: loaded.files.iter().map(|f| Arc::from(f.source.name())).collect(),
            problems: &mut problems,
        };
        workflow = Some(v.workflow(&loaded.order, loaded.main));
    }
    problems.sort_by(|a, b| a.file_name().cmp(b.file_name()).then(a.offset().cmp(&b.offset())));
    let mut problems = merge_repeats(problems);
    let main_name = loaded.files[loaded.main].source.name().to_string();
    problems.sort_by_key(|p| p.file_name() != main_name);
    match workflow {
        Some(workflow) if problems.iter().all(|p| !p.is_error()) => Ok(Checked {
            workflow,
            warnings: problems,
        }),
        _ => Err(Problems { problems }),
    }
}

/// Merges problems that say the same thing in the same file with one label each (the same
/// unknown model named in twelve workstreams) into one, labelled at its first four places.
fn merge_repeats(problems: Vec<Problem>) -> Vec<Problem> {
    let mut out: Vec<Problem> = Vec::with_capacity(problems.len());
    let mut seen: HashMap<(Code, String, String), (usize, usize)> = HashMap::new();
    for problem in problems {
        if problem.labels.len() != 1 {
            out.push(problem);
            continue;
        }
        let key = (problem.code, problem.file_name().to_string(), problem.message.clone());
        match seen.get_mut(&key) {
            Some((at, count)) if out[*at].help == problem.help => {
                *count += 1;
                let first = &mut out[*at];
                if first.labels.len() < 4 {
                    let label = &problem.labels[0];
                    first.labels.push(miette::LabeledSpan::new_with_span(
                        label.label().map(str::to_string),
                        label.inner().to_owned(),
                    ));
                }
            }
            _ => {
                seen.insert(key, (out.len(), 1));
                out.push(problem);
            }
        }
    }
    for (at, count) in seen.into_values() {
        if count > 1 {
            out[at].message = format!("{} (in {count} places)", out[at].message);
        }
    }
    out
}

/// A workstream's effective `owns` and `forbid` globs, as written.
type WrittenScope<'s> = (Vec<&'s Spanned<String>>, Vec<&'s Spanned<String>>);

struct Validator<'a> {
    files: &'a [crate::loader::LoadedFile],
    /// Each file's name as diagnostics show it, shared by the globs written in it.
    file_names: Vec<Arc<str>>,
    problems: &'a mut Vec<Problem>,
}

impl<'a> Validator<'a> {
    fn source(&self, file: FileId) -> &'a Source {
        &self.files[file].source
    }

    /// True when `at` lies in a top-level node that already had a problem while being read:
    /// what seems missing there may only have been written wrong.
    fn flawed<T>(&self, at: Option<&Spanned<T>>) -> bool {
        at.is_some_and(|at| {
            self.files[at.file]
                .flawed
                .iter()
                .any(|f| f.offset() <= at.span.offset() && at.span.offset() < f.offset() + f.len())
        })
    }

    fn error<T>(
        &mut self,
        code: Code,
        at: &Spanned<T>,
        label: impl Into<String>,
        message: impl Into<String>,
    ) -> &mut Problem {
        let problem = Problem::error(code, self.source(at.file), at.span, label, message);
        self.problems.push(problem);
        self.problems.last_mut().expect("a problem was just pushed")
    }

    fn workflow(&mut self, order: &[FileId], main: FileId) -> Workflow {
        let main_ast = &self.files[main].ast;
        let models = self.models(order);
        let agents = self.agents(order);
        let roles = self.roles(order, &models);
        let accounts = self.accounts(order);
        let kinds = self.kinds(order, &models);

        let settings = main_ast.workflow.as_ref();
        let name = settings
            .and_then(|w| w.name.as_ref())
            .map(|n| n.value.clone())
            .or_else(|| {
                self.files[main]
                    .path
                    .as_deref()
                    .and_then(Path::file_stem)
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .filter(|n| crate::reader::name_error(n).is_none())
            .unwrap_or_else(|| "workflow".to_string());
        let mut workflow = Workflow {
            into: format!("integration/{name}"),
            branch_prefix: format!("flow/{name}/"),
            name,
            path: self.files[main].path.clone(),
            base: None,
            worktrees: None,
            max_parallel: 4,
            budget: Budget::default(),
            scope_policy: ScopePolicy::Fail,
            status_file: ".ai/coordination/worktree_status.md".to_string(),
            workstreams: vec![],
            integrate: Integrate {
                verify: None,
                on_conflict: OnConflict::Stop,
                order: MergeOrder::Plan,
                resolver: None,
                sync: SyncMode::Merge,
                push: None,
                pull_request: None,
            },
            notify: vec![],
            models,
            agents,
            roles,
            accounts,
            kinds,
            overlaps: vec![],
        };
        if let Some(w) = settings {
            for (value, what) in [(&w.base, "branch"), (&w.into, "branch")] {
                if let Some(v) = value {
                    self.check_ref(v, what, false);
                }
            }
            if let Some(p) = &w.branch_prefix {
                self.check_ref(p, "branch prefix", true);
            }
            workflow.base = w.base.as_ref().map(|b| b.value.clone());
            if let Some(into) = &w.into {
                workflow.into = into.value.clone();
                if w.base.as_ref().is_some_and(|b| b.value == into.value) {
                    self.error(Code::InvalidValue, into, "same as `base`", "`into` must differ from `base`")
                        .help = Some("merges land in `into`, which is created from `base`; name a new branch such as \"integration/NAME\"".into());
                }
            }
            workflow.worktrees = w.worktrees.as_ref().map(|v| v.value.clone());
            if let Some(p) = &w.branch_prefix {
                workflow.branch_prefix = p.value.clone();
            }
            if let Some(n) = &w.max_parallel {
                workflow.max_parallel = n.value as usize;
            }
            workflow.budget = budget(w.budget.as_ref());
            if let Some(p) = &w.scope_policy {
                workflow.scope_policy = p.value;
            }
            if let Some(s) = &w.status_file {
                workflow.status_file = s.value.clone();
            }
        }
        for n in &main_ast.notifies {
            let mut on = vec![];
            for event in &n.on {
                match NotifyEvent::from_name(&event.value) {
                    Some(e) => on.push(e),
                    None => {
                        let known: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.name()).collect();
                        let hint = crate::problem::did_you_mean(&event.value, known.iter().copied())
                            .map(|s| format!("did you mean `{s}`? "))
                            .unwrap_or_default();
                        self.error(
                            Code::InvalidValue,
                            event,
                            "not an event",
                            format!("`{}` is not an event `notify` knows", event.value),
                        )
                        .help = Some(format!("{hint}the events: {}", known.join(", ")));
                    }
                }
            }
            if n.command.is_empty() && !n.bell {
                self.error(
                    Code::MissingNode,
                    &n.node,
                    "nothing to do",
                    "`notify` needs a `command`, a `bell`, or both",
                )
                .help = Some(
                    "add `command \"notify-send\" \"flow\"` (the event comes as JSON on its standard input) or `bell`"
                        .into(),
                );
            }
            workflow.notify.push(Notify {
                on: if n.on.is_empty() { NotifyEvent::ALL.to_vec() } else { on },
                command: n.command.iter().map(|c| c.value.clone()).collect(),
                bell: n.bell,
            });
        }
        if let Some(i) = &main_ast.integrate {
            workflow.integrate = Integrate {
                verify: i.verify.as_ref().map(|v| v.value.clone()),
                on_conflict: i.on_conflict.as_ref().map_or(OnConflict::Stop, |v| v.value),
                order: i.order.as_ref().map_or(MergeOrder::Plan, |v| v.value),
                resolver: i.resolver.as_ref().map(agent_choice),
                sync: i.sync.as_ref().map_or(SyncMode::Merge, |v| v.value),
                push: i.push.as_ref().map(|v| v.value.clone()),
                pull_request: i.pull_request.as_ref().map(|pr| crate::workflow::PullRequest {
                    title: pr.title.as_ref().map(|v| v.value.clone()),
                    base: pr.base.as_ref().map(|v| v.value.clone()),
                    draft: pr.draft,
                    labels: pr.labels.iter().map(|v| v.value.clone()).collect(),
                }),
            };
            self.check_resolver(main, i, &workflow);
        }
        self.workstreams(main, &mut workflow);
        workflow
    }

    fn check_ref(&mut self, value: &Spanned<String>, what: &str, prefix: bool) {
        let v = value.value.as_str();
        let bad = v.is_empty()
            || v.starts_with(['-', '/', '.'])
            || v.contains("..")
            || v.contains("//")
            || v.contains("@{")
            || v.chars()
                .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c))
            || (!prefix && (v.ends_with('/') || v.ends_with(".lock") || v.ends_with('.')));
        if bad {
            self.error(
                Code::InvalidName,
                value,
                "not a valid git branch name",
                format!("`{v}` is not a valid {what}"),
            )
            .help = Some("git branch names cannot contain spaces, `..`, `~^:?*[\\`, or start with `-`".into());
        }
    }

    /// Merges definitions across files: a later file's definition replaces an earlier file's;
    /// two in one file are an error.
    fn definitions<T>(
        &mut self,
        order: &[FileId],
        list: fn(&FileAst) -> &[T],
        name: fn(&T) -> &Spanned<String>,
        what: &str,
    ) -> Vec<&'a T> {
        let mut chosen: BTreeMap<String, &'a T> = BTreeMap::new();
        for &file in order {
            let mut in_file: HashMap<&str, SourceSpan> = HashMap::new();
            for def in list(&self.files[file].ast) {
                let n = name(def);
                if let Some(earlier) = in_file.insert(&n.value, n.span) {
                    let p = self.error(
                        Code::DuplicateDefinition,
                        n,
                        "defined again here",
                        format!("{what} `{}` is defined twice", n.value),
                    );
                    p.labels.push(miette::LabeledSpan::new_with_span(
                        Some("first defined here".into()),
                        earlier,
                    ));
                    let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "an"
                    } else {
                        "a"
                    };
                    p.help = Some(format!(
                        "remove one of them, or rename it; {article} {what} in this file replaces one from an imported file"
                    ));
                    continue;
                }
                chosen.insert(n.value.clone(), def);
            }
        }
        chosen.into_values().collect()
    }

    fn models(&mut self, order: &[FileId]) -> BTreeMap<String, Model> {
        self.definitions(order, |f| &f.models, |m| &m.name, "model")
            .into_iter()
            .map(|m| {
                let price = |p: &Option<Spanned<f64>>| p.as_ref().map_or(0.0, |v| v.value);
                let model = Model {
                    name: m.name.value.clone(),
                    provider: m.provider.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                    id: m.id.as_ref().map(|p| p.value.clone()).unwrap_or_default(),
                    input_usd: price(&m.input_usd),
                    output_usd: price(&m.output_usd),
                    cache_read_usd: price(&m.cache_read_usd),
                    cache_write_usd: price(&m.cache_write_usd),
                    priced: m.priced.as_ref().map(|p| p.value.clone()),
                };
                (model.name.clone(), model)
            })
            .collect()
    }

    fn agents(&mut self, order: &[FileId]) -> BTreeMap<String, Agent> {
        let defs = self.definitions(order, |f| &f.agents, |a| &a.name, "agent");
        let mut out = BTreeMap::new();
        for a in defs {
            for arg in a.command.iter().chain(&a.interactive) {
                for placeholder in placeholders(&arg.value) {
                    if !PLACEHOLDERS.contains(&placeholder) {
                        self.error(
                            Code::UnknownPlaceholder,
                            arg,
                            "unknown placeholder",
                            format!("`{{{placeholder}}}` is not a placeholder"),
                        )
                        .help = Some(unknown_help("placeholder", placeholder, PLACEHOLDERS.iter().copied()));
                    }
                }
            }
            // The API settings belong to an agent flow runs itself, which runs no command.
            if a.api.is_none() {
                let stray = [
                    a.base_url.as_ref().map(|u| (u.span, "base-url")),
                    a.max_turns.as_ref().map(|m| (m.span, "max-turns")),
                    a.max_tokens.as_ref().map(|m| (m.span, "max-tokens")),
                    a.stream.as_ref().map(|s| (s.span, "stream")),
                ];
                for (span, node) in stray.into_iter().flatten() {
                    let at = Spanned {
                        value: (),
                        span,
                        file: a.name.file,
                    };
                    self.error(
                        Code::MisplacedNode,
                        &at,
                        "only for an `api` agent",
                        format!("`{node}` applies to an agent flow runs against a model API"),
                    )
                    .help = Some("add `api \"anthropic\"` or `api \"openai\"`, or remove it".into());
                }
            } else if let Some(first) = a.command.first() {
                self.error(
                    Code::MisplacedNode,
                    first,
                    "an `api` agent runs no command",
                    format!("agent `{}` has both `api` and `command`", a.name.value),
                )
                .help = Some("remove `command`: flow itself talks to the API".into());
            }
            let agent = Agent {
                name: a.name.value.clone(),
                command: a.command.iter().map(|c| c.value.clone()).collect(),
                output: a.output.as_ref().map_or(crate::OutputFormat::Text, |o| o.value),
                stdin: a.stdin.as_ref().map_or(StdinMode::None, |s| s.value),
                key_env: a.key_env.as_ref().map(|k| k.value.clone()),
                env: a.env.iter().map(|(k, v)| (k.value.clone(), v.value.clone())).collect(),
                pass_env: a.pass_env.iter().map(|p| p.value.clone()).collect(),
                max_parallel: a.max_parallel.as_ref().map(|m| m.value as usize),
                budget_flag: a.budget_flag.as_ref().map(|f| f.value.clone()),
                resume: a.resume.iter().map(|c| c.value.clone()).collect(),
                interactive: a.interactive.iter().map(|c| c.value.clone()).collect(),
                writable: a.writable.iter().map(|w| w.value.clone()).collect(),
                api: a.api.as_ref().map(|kind| ApiSettings {
                    kind: kind.value,
                    base_url: a.base_url.as_ref().map(|u| u.value.trim_end_matches('/').to_string()),
                    max_turns: a.max_turns.as_ref().map_or(ApiSettings::DEFAULT_MAX_TURNS, |m| {
                        u32::try_from(m.value).unwrap_or(u32::MAX)
                    }),
                    max_tokens: a.max_tokens.as_ref().map_or(ApiSettings::DEFAULT_MAX_TOKENS, |m| {
                        u32::try_from(m.value).unwrap_or(u32::MAX)
                    }),
                    stream: a.stream.as_ref().is_none_or(|s| s.value == crate::Streaming::On),
                }),
            };
            out.insert(agent.name.clone(), agent);
        }
        out
    }

    fn roles(&mut self, order: &[FileId], models: &BTreeMap<String, Model>) -> BTreeMap<String, Role> {
        let defs = self.definitions(order, |f| &f.roles, |r| &r.name, "role");
        let mut out = BTreeMap::new();
        for r in defs {
            for glob in r.owns.iter().chain(&r.forbid) {
                self.check_glob(glob);
            }
            if let Some(m) = &r.model {
                self.check_known(m, models.keys(), Code::UnknownModel, "model");
            }
            let role = Role {
                name: r.name.value.clone(),
                description: r.description.as_ref().map(|d| d.value.clone()),
                expertise: r.expertise.iter().map(|e| e.value.clone()).collect(),
                instructions: r.instructions.as_ref().map(|i| i.value.clone()),
                owns: r.owns.iter().map(|o| o.value.clone()).collect(),
                forbid: r.forbid.iter().map(|f| f.value.clone()).collect(),
                model: r.model.as_ref().map(|m| m.value.clone()),
            };
            out.insert(role.name.clone(), role);
        }
        out
    }

    fn accounts(&mut self, order: &[FileId]) -> BTreeMap<String, Account> {
        self.definitions(order, |f| &f.accounts, |a| &a.name, "account")
            .into_iter()
            .map(|a| {
                let account = Account {
                    name: a.name.value.clone(),
                    env: a.env.as_ref().map(|e| e.value.clone()).unwrap_or_default(),
                    max_parallel: a.max_parallel.as_ref().map(|m| m.value as usize),
                    budget: budget(Some(&a.budget)),
                };
                (account.name.clone(), account)
            })
            .collect()
    }

    fn kinds(&mut self, order: &[FileId], models: &BTreeMap<String, Model>) -> BTreeMap<TaskKind, KindEntry> {
        let mut out = BTreeMap::new();
        for &file in order {
            let mut in_file: HashMap<TaskKind, SourceSpan> = HashMap::new();
            for k in &self.files[file].ast.kinds {
                if let Some(earlier) = in_file.insert(k.kind.value, k.kind.span) {
                    let p = self.error(
                        Code::DuplicateDefinition,
                        &k.kind,
                        "defined again here",
                        format!("kind `{}` is defined twice", k.kind.value),
                    );
                    p.labels.push(miette::LabeledSpan::new_with_span(
                        Some("first defined here".into()),
                        earlier,
                    ));
                    p.help = Some("remove one of them; a kind in this file replaces one from an imported file".into());
                    continue;
                }
                let Some(model) = &k.model else { continue };
                self.check_known(model, models.keys(), Code::UnknownModel, "model");
                out.insert(
                    k.kind.value,
                    KindEntry {
                        kind: k.kind.value,
                        model: model.value.clone(),
                        description: k.description.as_ref().map(|d| d.value.clone()),
                    },
                );
            }
        }
        out
    }

    /// Reports a reference to an unknown name; true when the name is known.
    fn check_known<'k>(
        &mut self,
        name: &Spanned<String>,
        known: impl Iterator<Item = &'k String> + Clone,
        code: Code,
        what: &str,
    ) -> bool {
        if known.clone().any(|k| *k == name.value) {
            return true;
        }
        let help = unknown_help(what, &name.value, known.map(String::as_str));
        self.error(
            code,
            name,
            format!("no {what} named `{}`", name.value),
            format!("unknown {what} `{}`", name.value),
        )
        .help = Some(help);
        false
    }

    fn check_glob(&mut self, glob: &Spanned<String>) -> bool {
        if crate::scope::plainly_valid(&glob.value) {
            return true;
        }
        match crate::scope::glob(&glob.value) {
            Ok(_) if glob.value.starts_with('/') => {
                self.error(
                    Code::InvalidGlob,
                    glob,
                    "starts with `/`",
                    format!("`{}` is not relative to the repository root", glob.value),
                )
                .help = Some("write paths relative to the repository root, without a leading `/`".into());
                false
            }
            Ok(_) => true,
            Err(e) => {
                self.error(
                    Code::InvalidGlob,
                    glob,
                    e.kind().to_string(),
                    format!("`{}` is not a valid glob", glob.value),
                )
                .help =
                    Some("`*` matches within a folder, `**` across folders, `{a,b}` either, `[a-z]` a range".into());
                false
            }
        }
    }

    fn workstreams(&mut self, main: FileId, workflow: &mut Workflow) {
        let ast = &self.files[main].ast;
        let defaults = ast.defaults.as_ref();
        if ast.workstreams.is_empty() {
            let source = self.source(main);
            let span: SourceSpan = ast
                .workflow
                .as_ref()
                .and_then(|w| w.name.as_ref())
                .map_or((0, 0).into(), |n| n.span);
            self.problems.push(
                Problem::error(
                    Code::EmptyWorkflow,
                    source,
                    span,
                    "no workstream",
                    "the workflow has no workstream",
                )
                .with_help("add one: workstream \"name\" { task \"what to do\"; owns \"src/**\" }"),
            );
            return;
        }
        if let Some(d) = defaults {
            for glob in &d.forbid {
                self.check_glob(glob);
            }
            self.check_references(d, workflow);
        }

        // Names first, so dependencies can point forward.
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(ast.workstreams.len());
        let mut named: Vec<&WorkstreamAst> = Vec::with_capacity(ast.workstreams.len());
        workflow.workstreams.reserve_exact(ast.workstreams.len());
        for ws in &ast.workstreams {
            let Some(name) = &ws.name else { continue };
            if let Some(&earlier) = index.get(name.value.as_str()) {
                let first = named[earlier]
                    .name
                    .as_ref()
                    .expect("indexed workstreams have names")
                    .span;
                let p = self.error(
                    Code::DuplicateWorkstream,
                    name,
                    "declared again here",
                    format!("workstream `{}` is declared twice", name.value),
                );
                p.labels.push(miette::LabeledSpan::new_with_span(
                    Some("first declared here".into()),
                    first,
                ));
                p.help = Some("rename one of them; names must be unique".into());
                continue;
            }
            index.insert(&name.value, named.len());
            named.push(ws);
        }

        let mut scopes: Vec<WrittenScope<'_>> = vec![];
        // Problems many workstreams can share, each reported once with all of them.
        let mut without_task: Vec<&Spanned<String>> = vec![];
        let mut without_script: BTreeMap<String, Vec<&Spanned<String>>> = BTreeMap::new();
        let defaults_flawed = self.flawed(defaults.and_then(|d| d.node_span.as_ref()));
        for ws in &named {
            let name = ws.name.as_ref().expect("named workstreams have names");
            // Something written wrong in the workstream or in `defaults` is reported already.
            let flawed = defaults_flawed || self.flawed(ws.node_span.as_ref());
            self.check_references(ws, workflow);
            let agent_name = ws.agent.as_ref().or(defaults.and_then(|d| d.agent.as_ref()));
            let agent = agent_name.map_or("claude-code", |a| a.value.as_str()).to_string();
            // The standard library's agents are always there: an agent that is not is
            // unknown, and reported as such by `check_references`.
            let agent_def = workflow.agents.get(&agent);
            let role_name = ws
                .role
                .as_ref()
                .or(defaults.and_then(|d| d.role.as_ref()))
                .map(|r| r.value.clone());
            let role = role_name.as_ref().and_then(|r| workflow.roles.get(r));
            let kind = ws
                .kind
                .as_ref()
                .or(defaults.and_then(|d| d.kind.as_ref()))
                .map(|k| k.value);

            let (model, model_source) = if let Some(m) = &ws.model {
                (Some(m.value.clone()), ModelSource::Workstream)
            } else if let Some(m) = defaults.and_then(|d| d.model.as_ref()) {
                (Some(m.value.clone()), ModelSource::Defaults)
            } else if let Some(entry) = kind.and_then(|k| workflow.kinds.get(&k)) {
                (Some(entry.model.clone()), ModelSource::Kind)
            } else if let Some(m) = role.as_ref().and_then(|r| r.model.clone()) {
                (Some(m), ModelSource::Role)
            } else if agent_def.is_some_and(Agent::takes_model) {
                (None, ModelSource::AgentDefault)
            } else {
                (None, ModelSource::None)
            };
            if let Some(def) = agent_def.as_ref().filter(|_| !flawed) {
                if def.uses("script") {
                    if ws.script.is_none() {
                        without_script.entry(agent.clone()).or_default().push(name);
                    }
                } else if ws.task.is_none() && ws.description.is_none() {
                    without_task.push(name);
                }
            }

            let mut dependencies = vec![];
            let mut seen_dependencies: HashMap<usize, SourceSpan> = HashMap::new();
            for dependency in &ws.depends_on {
                match index.get(dependency.value.as_str()) {
                    None => {
                        let help = unknown_help("workstream", &dependency.value, index.keys().copied());
                        let p = self.error(
                            Code::UnknownDependency,
                            dependency,
                            format!("no workstream named `{}`", dependency.value),
                            format!("unknown workstream `{}` in depends-on", dependency.value),
                        );
                        p.help = Some(help);
                        p.labels.push(miette::LabeledSpan::new_with_span(
                            Some("in this workstream".into()),
                            name.span,
                        ));
                    }
                    Some(&d) if dependency.value == name.value => {
                        let _ = d;
                        self.error(
                            Code::SelfDependency,
                            dependency,
                            "depends on itself",
                            format!("workstream `{}` depends on itself", name.value),
                        )
                        .help = Some("remove it from `depends-on`".into());
                    }
                    Some(&d) => {
                        if let Some(first) = seen_dependencies.insert(d, dependency.span) {
                            let source = self.source(dependency.file);
                            self.problems.push(
                                Problem::warning(
                                    Code::DuplicateDependency,
                                    source,
                                    dependency.span,
                                    "listed again",
                                    format!("`{}` is listed twice in depends-on", dependency.value),
                                )
                                .with_label(first, "first listed here"),
                            );
                        } else {
                            dependencies.push(d);
                        }
                    }
                }
            }

            // Scope: owns from the workstream else its role; forbid from all three.
            let role_ast = role_name.as_ref().and_then(|r| self.role_ast(r));
            let owns: Vec<&Spanned<String>> = if ws.owns.is_empty() {
                role_ast.map(|r| r.owns.iter().collect()).unwrap_or_default()
            } else {
                ws.owns.iter().collect()
            };
            let mut forbid: Vec<&Spanned<String>> = ws.forbid.iter().collect();
            forbid.extend(role_ast.map(|r| r.forbid.iter()).into_iter().flatten());
            forbid.extend(defaults.map(|d| d.forbid.iter()).into_iter().flatten());
            let mut scope_ok = true;
            for glob in ws.owns.iter().chain(&ws.forbid) {
                scope_ok &= self.check_glob(glob);
            }
            if scope_ok {
                self.check_contradiction(name, &owns, &forbid);
            }
            let scope = Scope::new(
                owns.iter().map(|g| self.scope_glob(g)).collect(),
                dedup(forbid.iter().map(|g| self.scope_glob(g))),
            )
            // A glob globset refuses is reported above by `check_glob`, so the workflow is
            // rejected whatever scope stands in for this one.
            .unwrap_or_else(|_| Scope::everything());
            scopes.push((owns, forbid));

            let merged_env = defaults
                .map(|d| d.env.as_slice())
                .unwrap_or_default()
                .iter()
                .chain(&ws.env)
                .map(|e| match e {
                    EnvAst::Set(k, v) => EnvSetting::Set {
                        name: k.value.clone(),
                        value: v.value.clone(),
                    },
                    EnvAst::Pass(n) => EnvSetting::Pass { name: n.value.clone() },
                });
            let pick = |own: &Option<Spanned<String>>, default: Option<&Option<Spanned<String>>>| {
                own.as_ref()
                    .or(default.and_then(|d| d.as_ref()))
                    .map(|v| v.value.clone())
            };
            workflow.workstreams.push(Workstream {
                name: name.value.clone(),
                description: ws.description.as_ref().map(|d| d.value.clone()),
                // A description stands for a missing task.
                task: ws.task.as_ref().or(ws.description.as_ref()).map(|t| t.value.clone()),
                script: ws.script.as_ref().map(|s| s.value.clone()),
                role: role_name,
                agent,
                model,
                model_source,
                priority: ws
                    .priority
                    .as_ref()
                    .or(defaults.and_then(|d| d.priority.as_ref()))
                    .map_or(Priority::Medium, |p| p.value),
                scope,
                context: ws.context.iter().map(|c| c.value.clone()).collect(),
                dependencies,
                test: pick(&ws.test, defaults.map(|d| &d.test)),
                timeout: ws
                    .timeout
                    .as_ref()
                    .or(defaults.and_then(|d| d.timeout.as_ref()))
                    .map(|t| t.value),
                idle_timeout: ws
                    .idle_timeout
                    .as_ref()
                    .or(defaults.and_then(|d| d.idle_timeout.as_ref()))
                    .map(|t| t.value),
                retries: ws
                    .retries
                    .as_ref()
                    .or(defaults.and_then(|d| d.retries.as_ref()))
                    .map_or(0, |r| r.value as u32),
                env: merged_env.collect(),
                account: pick(&ws.account, defaults.map(|d| &d.account)),
                kind,
                estimate: estimate(ws.estimate.as_deref()),
                budget: budget(ws.budget.as_deref().or(defaults.and_then(|d| d.budget.as_deref()))),
                isolation: ws
                    .isolation
                    .as_ref()
                    .or(defaults.and_then(|d| d.isolation.as_ref()))
                    .map_or(Isolation::Worktree, |i| i.value),
                fix_attempts: ws
                    .fix_attempts
                    .as_ref()
                    .or(defaults.and_then(|d| d.fix_attempts.as_ref()))
                    .map_or(DEFAULT_FIX_ATTEMPTS, |n| n.value as u32),
                review: ws
                    .review
                    .as_deref()
                    .or(defaults.and_then(|d| d.review.as_deref()))
                    .map(agent_choice),
                handoff_tokens: ws
                    .handoff_tokens
                    .as_ref()
                    .or(defaults.and_then(|d| d.handoff_tokens.as_ref()))
                    .map_or(DEFAULT_HANDOFF_TOKENS, |n| n.value as u32),
                sandbox: ws
                    .sandbox
                    .as_ref()
                    .or(defaults.and_then(|d| d.sandbox.as_ref()))
                    .map_or(SandboxMode::On, |s| s.value),
                network: match ws.network.as_deref().or(defaults.and_then(|d| d.network.as_deref())) {
                    None => Network::Any,
                    Some(n) => match &n.value {
                        NetworkAst::Any => Network::Any,
                        NetworkAst::Off => Network::Off,
                        NetworkAst::Ports(p) => Network::Ports(p.clone()),
                    },
                },
                writable: defaults
                    .map(|d| d.writable.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .chain(&ws.writable)
                    .map(|w| w.value.clone())
                    .collect(),
                secrets: defaults
                    .map(|d| d.secret.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .chain(&ws.secret)
                    .map(|w| w.value.clone())
                    .collect(),
                log_limit: ws
                    .log_limit
                    .as_ref()
                    .or(defaults.and_then(|d| d.log_limit.as_ref()))
                    .map_or(DEFAULT_LOG_LIMIT, |n| n.value),
                ports: ws
                    .ports
                    .as_ref()
                    .or(defaults.and_then(|d| d.ports.as_ref()))
                    .map_or(DEFAULT_PORTS, |n| n.value as u16),
                setup: concat(defaults.map(|d| d.setup.as_slice()), &ws.setup),
                setup_timeout: ws
                    .setup_timeout
                    .as_ref()
                    .or(defaults.and_then(|d| d.setup_timeout.as_ref()))
                    .map_or(DEFAULT_SETUP_TIMEOUT, |t| t.value),
                teardown: concat(defaults.map(|d| d.teardown.as_slice()), &ws.teardown),
                copy: concat(defaults.map(|d| d.copy.as_slice()), &ws.copy),
            });
        }

        if !without_task.is_empty() {
            self.shared_problem(
                Code::MissingTask,
                &without_task,
                "no task",
                "has no task",
                "have no task",
                "add `task \"...\"` (or a `description`) saying what the agent must do",
            );
        }
        for (agent, names) in &without_script {
            self.shared_problem(
                Code::MissingTask,
                names,
                "no script",
                &format!("has no `script`, and agent `{agent}` runs one"),
                &format!("have no `script`, and agent `{agent}` runs one"),
                "add `script \"...\"` with the shell commands to run",
            );
        }

        let acyclic = self.check_cycles(&named, workflow);
        self.warn_unpriced(workflow, &named);
        if acyclic {
            workflow.overlaps = self.overlaps(main, &named, &scopes, workflow);
        }
    }

    /// Reports one error about several workstreams: "workstream `a` has no task", or "3
    /// workstreams have no task: a, b and c" with a label on the first four names.
    fn shared_problem(
        &mut self,
        code: Code,
        names: &[&Spanned<String>],
        label: &str,
        one: &str,
        many: &str,
        help: &str,
    ) {
        let message = match names {
            [name] => format!("workstream `{}` {one}", name.value),
            _ => {
                let list: Vec<&str> = names.iter().map(|n| n.value.as_str()).collect();
                format!("{} workstreams {many}: {}", names.len(), name_list(&list))
            }
        };
        let first = names[0];
        let mut problem = Problem::error(code, self.source(first.file), first.span, label, message).with_help(help);
        for name in names.iter().skip(1).take(3) {
            problem = problem.with_label(name.span, label);
        }
        self.problems.push(problem);
    }

    /// A glob as the validated workflow keeps it, with the file and span it was written at.
    fn scope_glob(&self, glob: &Spanned<String>) -> ScopeGlob {
        ScopeGlob::written(glob.value.clone(), self.file_names[glob.file].clone(), glob.span)
    }

    fn role_ast(&self, name: &str) -> Option<&'a RoleAst> {
        self.files
            .iter()
            .rev()
            .flat_map(|f| f.ast.roles.iter())
            .find(|r| r.name.value == name)
    }

    fn check_references(&mut self, ws: &WorkstreamAst, workflow: &Workflow) {
        if let Some(a) = &ws.agent {
            self.check_known(a, workflow.agents.keys(), Code::UnknownAgent, "agent");
        }
        if let Some(m) = &ws.model {
            self.check_known(m, workflow.models.keys(), Code::UnknownModel, "model");
        }
        if let Some(r) = &ws.role {
            self.check_known(r, workflow.roles.keys(), Code::UnknownRole, "role");
        }
        if let Some(a) = &ws.account {
            self.check_known(a, workflow.accounts.keys(), Code::UnknownAccount, "account");
        }
        if let Some(review) = &ws.review {
            self.check_choice(review, workflow);
        }
    }

    /// The agent and model of a `review` or `resolver` exist.
    fn check_choice(&mut self, choice: &AgentChoiceAst, workflow: &Workflow) {
        self.check_known(&choice.agent, workflow.agents.keys(), Code::UnknownAgent, "agent");
        if let Some(m) = &choice.model {
            self.check_known(m, workflow.models.keys(), Code::UnknownModel, "model");
        }
    }

    /// `on-conflict "agent"` has a `resolver` to hand conflicts to, and the resolver exists.
    fn check_resolver(&mut self, _main: FileId, integrate: &IntegrateAst, workflow: &Workflow) {
        if let Some(resolver) = &integrate.resolver {
            self.check_choice(resolver, workflow);
        }
        if let Some(on) = &integrate.on_conflict
            && on.value == OnConflict::Agent
            && integrate.resolver.is_none()
        {
            self.error(
                Code::MissingNode,
                on,
                "no `resolver` to hand conflicts to",
                "`on-conflict \"agent\"` needs a `resolver` in `integrate`",
            )
            .help =
                Some("add `resolver \"AGENT\"` (optionally with `model=\"MODEL\"`) to the `integrate` block".into());
        }
    }

    fn check_contradiction(&mut self, name: &Spanned<String>, owns: &[&Spanned<String>], forbid: &[&Spanned<String>]) {
        for own in owns {
            if let Some(f) = forbid.iter().find(|f| glob_covers(&f.value, &own.value)) {
                let p = self.error(
                    Code::ScopeContradiction,
                    own,
                    "every path here is forbidden",
                    format!(
                        "workstream `{}` owns `{}`, but `forbid \"{}\"` forbids all of it",
                        name.value, own.value, f.value
                    ),
                );
                if f.file == own.file {
                    p.labels.push(miette::LabeledSpan::new_with_span(
                        Some("forbidden here".into()),
                        f.span,
                    ));
                }
                p.help = Some("narrow the `forbid` pattern or remove this `owns`".into());
            }
        }
    }

    /// Reports every dependency cycle, one per strongly connected group; true when there is none.
    fn check_cycles(&mut self, named: &[&WorkstreamAst], workflow: &Workflow) -> bool {
        let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(named.len(), 0);
        let nodes: Vec<NodeIndex> = (0..named.len()).map(|i| graph.add_node(i)).collect();
        for (i, ws) in workflow.workstreams.iter().enumerate() {
            for &d in &ws.dependencies {
                // An edge from a workstream to what it depends on.
                graph.add_edge(nodes[i], nodes[d], ());
            }
        }
        let mut acyclic = true;
        for component in tarjan_scc(&graph) {
            if component.len() < 2 {
                continue;
            }
            acyclic = false;
            let members: HashSet<usize> = component.iter().map(|n| graph[*n]).collect();
            let start = *members.iter().min().expect("a component has members");
            let path = cycle_path(start, &members, workflow);
            // Cut the edge that points forward in declaration order: dependencies are usually declared first.
            let edges: Vec<(usize, usize)> = path.windows(2).map(|w| (w[0], w[1])).collect();
            let cut = edges
                .iter()
                .copied()
                .find(|(from, to)| to > from)
                .unwrap_or(*edges.last().expect("a cycle has edges"));
            let names: Vec<&str> = path.iter().map(|&i| workflow.workstreams[i].name.as_str()).collect();
            let entry_of = |from: usize, to: usize| {
                named[from]
                    .depends_on
                    .iter()
                    .find(|d| d.value == workflow.workstreams[to].name)
                    .expect("every edge comes from a depends-on entry")
            };
            let cut_entry = entry_of(cut.0, cut.1);
            let p = self.error(
                Code::DependencyCycle,
                cut_entry,
                "cut this edge to break the cycle",
                format!("dependency cycle: {}", names.join(" → ")),
            );
            for &(from, to) in &edges {
                if (from, to) != cut {
                    let e = entry_of(from, to);
                    p.labels.push(miette::LabeledSpan::new_with_span(
                        Some(format!(
                            "`{}` depends on `{}`",
                            workflow.workstreams[from].name, workflow.workstreams[to].name
                        )),
                        e.span,
                    ));
                }
            }
            p.help = Some(format!(
                "remove \"{}\" from the depends-on of `{}`",
                workflow.workstreams[cut.1].name, workflow.workstreams[cut.0].name
            ));
        }
        acyclic
    }

    fn warn_unpriced(&mut self, workflow: &Workflow, named: &[&WorkstreamAst]) {
        let mut warned = HashSet::new();
        for (ws, ast) in workflow.workstreams.iter().zip(named) {
            let Some(model) = workflow.model_of(ws) else { continue };
            let uses_model = workflow.agents.get(&ws.agent).is_some_and(|a| a.uses("model"));
            if !uses_model || model.input_usd > 0.0 || model.output_usd > 0.0 || !warned.insert(model.name.clone()) {
                continue;
            }
            // A model written wrong is reported already; its prices may be what is wrong.
            if self
                .files
                .iter()
                .flat_map(|f| &f.ast.models)
                .any(|m| m.name.value == model.name && self.flawed(Some(&m.name)))
            {
                continue;
            }
            let at = ast
                .model
                .as_ref()
                .or(ast.name.as_ref())
                .expect("named workstreams have names");
            let source = self.source(at.file);
            self.problems.push(
                Problem::warning(
                    Code::UnpricedModel,
                    source,
                    at.span,
                    "no prices",
                    format!("model `{}` has no prices, so its cost counts as $0", model.name),
                )
                .with_help("add `input-usd=` and `output-usd=` (dollars per million tokens) to the model"),
            );
        }
    }

    /// Finds the pairs of workstreams that may run at once and own overlapping paths, and
    /// warns once per group of them. A workstream without `owns` owns everything: it stands
    /// as `**`, written at its name.
    fn overlaps(
        &mut self,
        main: FileId,
        named: &[&WorkstreamAst],
        scopes: &[WrittenScope<'_>],
        workflow: &Workflow,
    ) -> Vec<Overlap> {
        let everything: Vec<Option<Spanned<String>>> = named
            .iter()
            .zip(scopes)
            .map(|(ws, (owns, _))| {
                let name = ws.name.as_ref().expect("named workstreams have names");
                owns.is_empty()
                    .then(|| Spanned::new("**".to_string(), name.file, name.span))
            })
            .collect();
        // Index every owned glob by its literal folder prefix: only nested prefixes can overlap.
        let mut by_prefix: HashMap<&str, Vec<(usize, &Spanned<String>)>> = HashMap::new();
        for (i, (owns, _)) in scopes.iter().enumerate() {
            if workflow.workstreams[i].isolation == Isolation::None {
                continue;
            }
            for glob in everything[i].iter().chain(owns.iter().copied()) {
                by_prefix
                    .entry(literal_prefix(&glob.value))
                    .or_default()
                    .push((i, glob));
            }
        }
        let mut candidates: Vec<(usize, &Spanned<String>, usize, &Spanned<String>)> = vec![];
        for (prefix, globs) in &by_prefix {
            for ancestor in ancestors(prefix) {
                let Some(others) = by_prefix.get(ancestor) else {
                    continue;
                };
                for &(i, g) in globs {
                    for &(j, h) in others {
                        let same_prefix = ancestor == *prefix;
                        if i == j || (same_prefix && (i, g.span.offset()) > (j, h.span.offset())) {
                            continue;
                        }
                        candidates.push((i.min(j), if i < j { g } else { h }, i.max(j), if i < j { h } else { g }));
                    }
                }
            }
        }
        if candidates.is_empty() {
            return vec![];
        }
        let reach = Reachability::new(workflow);
        candidates.sort_by_key(|(i, g, j, h)| (*i, *j, g.span.offset(), h.span.offset()));
        candidates.dedup_by_key(|(i, g, j, h)| (*i, *j, g.span.offset(), h.span.offset()));
        let mut out: Vec<Overlap> = vec![];
        let mut written: Vec<(&Spanned<String>, &Spanned<String>)> = vec![];
        for (i, g, j, h) in candidates {
            if reach.ordered(i, j) || out.last().is_some_and(|o| o.first == i && o.second == j) {
                continue;
            }
            if !globs_may_overlap(&g.value, &h.value) {
                continue;
            }
            let forbidden = scopes[i].1.iter().any(|f| glob_covers(&f.value, &h.value))
                || scopes[j].1.iter().any(|f| glob_covers(&f.value, &g.value));
            if forbidden {
                continue;
            }
            let example = crate::glob::overlap_example(&g.value, &h.value)
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| {
                    crate::glob::example_path(if g.value.len() >= h.value.len() {
                        &g.value
                    } else {
                        &h.value
                    })
                });
            out.push(Overlap {
                first: i,
                second: j,
                first_glob: g.value.clone(),
                second_glob: h.value.clone(),
                example,
            });
            written.push((g, h));
        }
        for group in group_overlaps(&out) {
            let warning = self.overlap_warning(main, named, &group, &out, &written, workflow);
            self.problems.push(warning);
        }
        out
    }

    /// The one warning about a group of overlapping workstreams: who they are, one label per
    /// glob they overlap through (at most four), and how to separate them.
    fn overlap_warning(
        &self,
        main: FileId,
        named: &[&WorkstreamAst],
        group: &OverlapGroup,
        overlaps: &[Overlap],
        written: &[(&Spanned<String>, &Spanned<String>)],
        workflow: &Workflow,
    ) -> Problem {
        let name = |i: usize| workflow.workstreams[i].name.as_str();
        let owns_everything = |i: usize| workflow.workstreams[i].scope.owns_everything();
        let members: Vec<&str> = group.members.iter().map(|&i| name(i)).collect();
        let unbounded: Vec<&str> = group
            .members
            .iter()
            .filter(|&&i| owns_everything(i))
            .map(|&i| name(i))
            .collect();
        let first = &overlaps[group.overlaps[0]];
        let message = match (members.as_slice(), unbounded.len() == members.len()) {
            ([a, b], true) => {
                format!("`{a}` and `{b}` have no `owns`, so each owns everything, and they may run at the same time")
            }
            ([a, b], false) => format!(
                "`{a}` and `{b}` may run at the same time and both own paths like `{}`",
                first.example
            ),
            (_, true) => format!(
                "{} workstreams have no `owns`, so each owns everything, and they may run at the same time: {}",
                members.len(),
                name_list(&members)
            ),
            (_, false) => format!(
                "{} workstreams may run at the same time and own overlapping paths: {}",
                members.len(),
                name_list(&members)
            ),
        };

        // One label per glob written in this file, however many members wrote it (a missing
        // `owns` counts as one); globs a role gives are labelled at the first member's name,
        // one label for the globs of the same members.
        let mut globs: Vec<(GlobKey<'_>, &Spanned<String>, Vec<usize>)> = vec![];
        for &k in &group.overlaps {
            let (o, (g, h)) = (&overlaps[k], written[k]);
            for (i, glob) in [(o.first, g), (o.second, h)] {
                let key = if owns_everything(i) {
                    GlobKey::Everything
                } else if glob.file == main {
                    GlobKey::Written(&glob.value)
                } else {
                    GlobKey::Role(vec![&glob.value])
                };
                match globs.iter_mut().find(|(k, _, _)| *k == key) {
                    Some((_, _, owners)) if !owners.contains(&i) => owners.push(i),
                    Some(_) => {}
                    None => globs.push((key, glob, vec![i])),
                }
            }
        }
        for (_, _, owners) in &mut globs {
            owners.sort_unstable();
        }
        let mut merged: Vec<(GlobKey<'_>, &Spanned<String>, Vec<usize>)> = vec![];
        for (key, glob, owners) in globs {
            let same_role = merged
                .iter_mut()
                .find(|(k, _, o)| matches!(k, GlobKey::Role(_)) && *o == owners);
            match (key, same_role) {
                (GlobKey::Role(texts), Some((GlobKey::Role(all), _, _))) => all.extend(texts),
                (key, _) => merged.push((key, glob, owners)),
            }
        }
        let mut labels = vec![];
        for (key, glob, owners) in merged.iter().take(4) {
            let names: Vec<&str> = owners.iter().map(|&i| name(i)).collect();
            let label = match key {
                GlobKey::Everything if names.len() == 1 => "no `owns`: owns everything".to_string(),
                GlobKey::Everything => format!("no `owns` here, nor in {}", label_list(&names[1..])),
                GlobKey::Written(_) => format!("owned by {}", label_list(&names)),
                GlobKey::Role(texts) => {
                    let texts: Vec<String> = texts.iter().map(|t| format!("`{t}`")).collect();
                    let also = match &names[1..] {
                        [] => String::new(),
                        [one] => format!(", as does `{one}`"),
                        more => format!(", as do {}", label_list(more)),
                    };
                    format!("owns {} through its role{also}", list(texts, 2))
                }
            };
            let span = match key {
                GlobKey::Role(_) => {
                    named[owners[0]]
                        .name
                        .as_ref()
                        .expect("named workstreams have names")
                        .span
                }
                _ => glob.span,
            };
            labels.push((span, label));
        }

        let order = match members.as_slice() {
            [a, b] => format!("make one depend on the other (`depends-on \"{a}\"` in `{b}`)"),
            _ => "make them depend on one another with `depends-on`".to_string(),
        };
        let mut help = if unbounded.is_empty() {
            format!("{order}, narrow their `owns`, or add a `forbid`")
        } else if unbounded.len() == members.len() {
            format!("give each an `owns` with the paths it may change, or {order}")
        } else {
            format!(
                "give {} an `owns` with the paths it may change, {order}, narrow the others' `owns`, or add a `forbid`",
                label_list(&unbounded)
            )
        };
        if members.len() > 2 && !group.is_complete() {
            let shown: Vec<String> = group
                .overlaps
                .iter()
                .take(6)
                .map(|&k| {
                    let o = &overlaps[k];
                    if owns_everything(o.first) && owns_everything(o.second) {
                        format!("`{}` and `{}`", name(o.first), name(o.second))
                    } else {
                        format!("`{}` and `{}` (e.g. `{}`)", name(o.first), name(o.second), o.example)
                    }
                })
                .collect();
            let more = group.overlaps.len() - shown.len();
            let more = if more > 0 {
                format!(", and {more} more (`flow plan --json` lists them all)")
            } else {
                String::new()
            };
            help = format!("{help}\noverlapping: {}{more}", shown.join(", "));
        }
        let source = self.source(main);
        let mut labels = labels.into_iter();
        let (span, label) = labels.next().expect("a group has at least one overlap");
        let mut problem = Problem::warning(Code::OwnsOverlap, source, span, label, message).with_help(help);
        for (span, label) in labels {
            problem = problem.with_label(span, label);
        }
        problem
    }
}

/// What an overlap warning labels once: the missing `owns` of its members, a glob written in
/// the workflow's file (by one or more members), or the globs members have from a role.
#[derive(Debug, PartialEq, Eq)]
enum GlobKey<'s> {
    Everything,
    Written(&'s str),
    Role(Vec<&'s str>),
}

/// Which workstreams come before which, as ancestor bit sets.
struct Reachability {
    words: usize,
    ancestors: Vec<u64>,
}

impl Reachability {
    fn new(workflow: &Workflow) -> Reachability {
        let n = workflow.workstreams.len();
        let words = n.div_ceil(64);
        let mut ancestors = vec![0u64; n * words];
        let mut done = vec![false; n];
        // Iterative depth-first order so long chains do not overflow the stack.
        for root in 0..n {
            let mut stack = vec![(root, 0usize)];
            while let Some((node, next)) = stack.pop() {
                if done[node] {
                    continue;
                }
                let deps = &workflow.workstreams[node].dependencies;
                if next < deps.len() {
                    stack.push((node, next + 1));
                    if !done[deps[next]] {
                        stack.push((deps[next], 0));
                    }
                    continue;
                }
                for &d in deps {
                    ancestors[node * words + d / 64] |= 1 << (d % 64);
                    for w in 0..words {
                        let bits = ancestors[d * words + w];
                        ancestors[node * words + w] |= bits;
                    }
                }
                done[node] = true;
            }
        }
        Reachability { words, ancestors }
    }

    fn is_ancestor(&self, ancestor: usize, of: usize) -> bool {
        self.ancestors[of * self.words + ancestor / 64] & (1 << (ancestor % 64)) != 0
    }

    /// True when one of the two must finish before the other starts.
    fn ordered(&self, a: usize, b: usize) -> bool {
        self.is_ancestor(a, b) || self.is_ancestor(b, a)
    }
}

/// A cycle through `start` inside one strongly connected group, following depends-on edges.
fn cycle_path(start: usize, members: &HashSet<usize>, workflow: &Workflow) -> Vec<usize> {
    // Breadth-first from start's dependencies back to start gives the shortest cycle.
    let mut previous: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &d in &workflow.workstreams[node].dependencies {
            if !members.contains(&d) {
                continue;
            }
            if d == start {
                let mut path = vec![start];
                let mut at = node;
                while at != start {
                    path.push(at);
                    at = previous[&at];
                }
                path.push(start);
                let last = path.len() - 1;
                path[1..last].reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = previous.entry(d) {
                e.insert(node);
                queue.push_back(d);
            }
        }
    }
    vec![start, start]
}

/// Names for a message, plain and at most twelve: "a, b, c" or "a, b, ..., l and 3 more".
fn name_list(names: &[&str]) -> String {
    list(names.iter().map(|n| n.to_string()).collect(), 12)
}

/// Names for a label or a help line, quoted and short, since a label does not wrap (the
/// message lists them all): "`a`", "`a` and `b`", "`a` and 10 others".
fn label_list(names: &[&str]) -> String {
    match names {
        [first, _, _, ..] => format!("`{first}` and {} others", names.len() - 1),
        _ => list(names.iter().map(|n| format!("`{n}`")).collect(), 2),
    }
}

/// Joins items as prose, the first `shown` of them: "a, b and c", or "a, b and 3 more".
fn list(mut items: Vec<String>, shown: usize) -> String {
    if items.len() > shown {
        let more = items.len() - shown;
        items.truncate(shown);
        return format!("{} and {more} more", items.join(", "));
    }
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.join(""),
    }
}

/// The folders above a prefix, itself included: "a/b" gives "", "a", "a/b".
fn ancestors(prefix: &str) -> impl Iterator<Item = &str> {
    std::iter::once("")
        .chain(prefix.match_indices('/').map(move |(i, _)| &prefix[..i]))
        .chain((!prefix.is_empty()).then_some(prefix))
}

/// The literal folder part of a glob before its first wildcard: "src/ui/**/*.py" gives "src/ui".
fn literal_prefix(glob: &str) -> &str {
    let mut end = 0;
    for (i, segment) in glob.split('/').scan(0usize, |pos, s| {
        let start = *pos;
        *pos += s.len() + 1;
        Some((start, s))
    }) {
        if segment.contains(['*', '?', '[', '{', '\\']) {
            break;
        }
        end = i + segment.len();
    }
    glob[..end].trim_end_matches('/')
}

fn budget(ast: Option<&BudgetAst>) -> Budget {
    ast.map_or_else(Budget::default, |b| Budget {
        usd: b.usd.as_ref().map(|u| u.value),
        tokens: b.tokens.as_ref().map(|t| t.value),
    })
}

fn estimate(ast: Option<&EstimateAst>) -> Estimate {
    ast.map_or_else(Estimate::default, |e| Estimate {
        duration: e.duration.as_ref().map(|d| d.value),
        tokens: e.tokens.as_ref().map(|t| t.value),
        usd: e.usd.as_ref().map(|u| u.value),
    })
}

/// The globs without repeats of a text, each where it first appears.
fn dedup(globs: impl Iterator<Item = ScopeGlob>) -> Vec<ScopeGlob> {
    let mut seen = HashSet::new();
    globs.filter(|g| seen.insert(g.text.clone())).collect()
}

fn agent_choice(choice: &AgentChoiceAst) -> AgentChoice {
    AgentChoice {
        agent: choice.agent.value.clone(),
        model: choice.model.as_ref().map(|m| m.value.clone()),
    }
}

/// The values of `defaults`' list, then the workstream's own.
fn concat(defaults: Option<&[Spanned<String>]>, own: &[Spanned<String>]) -> Vec<String> {
    defaults
        .unwrap_or_default()
        .iter()
        .chain(own)
        .map(|s| s.value.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("src/ui/**/*.py"), "src/ui");
        assert_eq!(literal_prefix("**/*.py"), "");
        assert_eq!(literal_prefix("src/a.py"), "src/a.py");
        assert_eq!(literal_prefix("src/{a,b}/x"), "src");
        assert_eq!(ancestors("a/b").collect::<Vec<_>>(), vec!["", "a", "a/b"]);
        assert_eq!(ancestors("").collect::<Vec<_>>(), vec![""]);
    }

    #[test]
    fn api_agents_read_their_settings() {
        let cases = [
            ("api \"anthropic\"", ApiKind::Anthropic, None, 50, 8192, true),
            (
                "api \"openai\"; base-url \"http://h/v1/\"; max-turns 3; max-tokens 99; stream \"off\"",
                ApiKind::Openai,
                Some("http://h/v1"),
                3,
                99,
                false,
            ),
            ("api \"openai\"; stream #false", ApiKind::Openai, None, 50, 8192, false),
            ("api \"openai\"; stream #true", ApiKind::Openai, None, 50, 8192, true),
        ];
        for (body, kind, base_url, max_turns, max_tokens, stream) in cases {
            let text = format!("agent \"a\" {{ {body} }}\nworkstream \"w\" {{ agent \"a\"; task \"t\" }}");
            let checked = crate::check_text("t.kdl", &text).unwrap_or_else(|p| panic!("{body}: {p:?}"));
            let api = checked.workflow.agents["a"].api.clone().expect("an API agent");
            assert_eq!(
                (
                    api.kind,
                    api.base_url.as_deref(),
                    api.max_turns,
                    api.max_tokens,
                    api.stream
                ),
                (kind, base_url, max_turns, max_tokens, stream),
                "{body}"
            );
        }
    }
}
