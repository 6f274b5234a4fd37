//! `flow export github-actions`: a workflow as a GitHub Actions job graph.
//!
//! One job per workstream, whose `needs:` are exactly its `depends-on`; each runs
//! `flow run FILE --only WS --push` in a full clone, which first merges its dependencies'
//! pushed branches in the plan's order (so it starts from their merged work, as it would in a
//! local run), runs the workstream and pushes its branch with its result as a note (see
//! [`crate::exchange`]). A last job fetches every branch and merges them in the plan's order
//! with `verify` (`flow merge --fetch`), then lands the integration branch (`flow land`).
//!
//! Concurrency: GitHub starts a job as soon as its needs are met. The only cap it offers across
//! separate jobs is a concurrency group, which cancels a pending job as soon as another one
//! queues behind it: a workstream's job cancelled that way would skip all its dependents. So
//! the export caps nothing by groups: the workflow as a whole has one concurrency group per
//! branch (two runs would push the same branches), and when the graph can have more jobs
//! running at once than `max-parallel` (more chains than that), the export says so; a runner
//! label whose pool has `max-parallel` runners (`--runs-on`) is the cap that holds.

use std::collections::BTreeMap;

use flow_dsl::{Isolation, Workflow};

use super::yaml::Yaml;
use crate::plan::Plan;

/// The action versions the jobs use.
const CHECKOUT: &str = "actions/checkout@v5";

/// How the jobs install flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// `cargo install --locked` from crates.io (`None`) or from a git repository.
    Cargo { git: Option<String> },
    /// A release archive (`.tar.gz`) holding the `flow` binary at its top.
    Release { url: String },
}

/// Everything the export needs besides the plan.
#[derive(Debug, Clone)]
pub struct Options {
    /// The workflow file, relative to the repository's root.
    pub file: String,
    /// The runner of every job, unless `runs_on_for` names another for a workstream.
    pub runs_on: String,
    pub runs_on_for: BTreeMap<String, String>,
    pub install: Install,
    /// The remote the branches are pushed to.
    pub remote: String,
}

/// What the export made: the document and what the user should know about it.
#[derive(Debug, Clone)]
pub struct Export {
    pub yaml: String,
    pub notes: Vec<String>,
    /// The id of each workstream's job, by workstream index.
    pub job_ids: Vec<String>,
}

/// The npm package of an agent CLI flow knows.
pub fn npm_package(program: &str) -> Option<&'static str> {
    Some(match program {
        "claude" => "@anthropic-ai/claude-code",
        "codex" => "@openai/codex",
        "gemini" => "@google/gemini-cli",
        "opencode" => "opencode-ai",
        _ => return None,
    })
}

/// A job id GitHub accepts (`^[_a-zA-Z][a-zA-Z0-9_-]*$`) for a workstream name, unique among
/// `taken`.
fn job_id(name: &str, taken: &mut std::collections::BTreeSet<String>) -> String {
    let mut id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        id.insert(0, '_');
    }
    let mut unique = id.clone();
    let mut n = 2;
    while !taken.insert(unique.to_lowercase()) {
        unique = format!("{id}_{n}");
        n += 1;
    }
    unique
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The programs a workstream's job starts: its agent, its reviewer.
fn programs(workflow: &Workflow, index: usize) -> Vec<String> {
    let ws = &workflow.workstreams[index];
    let mut agents = vec![ws.agent.clone()];
    if let Some(review) = &ws.review {
        agents.push(review.agent.clone());
    }
    agents
        .iter()
        .filter_map(|a| workflow.agents.get(a))
        .filter_map(|a| a.command.first().cloned())
        .collect()
}

/// The secrets a workstream's agent reads: its account's variable, else its agents' key
/// variables.
fn secrets(workflow: &Workflow, index: usize) -> Vec<String> {
    let ws = &workflow.workstreams[index];
    let mut names = vec![];
    if let Some(account) = ws.account.as_ref().and_then(|a| workflow.accounts.get(a)) {
        names.push(account.env.clone());
    } else {
        let mut agents = vec![&ws.agent];
        if let Some(review) = &ws.review {
            agents.push(&review.agent);
        }
        for agent in agents.into_iter().filter_map(|a| workflow.agents.get(a)) {
            if let Some(key) = &agent.key_env {
                names.push(key.clone());
            }
        }
    }
    names.sort();
    names.dedup();
    names.retain(|n| is_secret_name(n));
    names
}

/// Tells whether a name is one GitHub accepts for a secret (and so in `${{ secrets.NAME }}`).
fn is_secret_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.to_ascii_uppercase().starts_with("GITHUB_")
}

/// Cuts the workstreams into chains, each member depending on the one before (directly or
/// not): no more jobs than chains ever run at once.
fn chains(plan: &Plan) -> Vec<Vec<usize>> {
    let n = plan.workflow.workstreams.len();
    // ancestors[i][j]: j is a dependency of i, directly or not.
    let mut ancestors = vec![vec![false; n]; n];
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| plan.wave_of[i]);
    for &i in &order {
        for &d in &plan.workflow.workstreams[i].dependencies {
            let inherited = ancestors[d].clone();
            ancestors[i][d] = true;
            for (mine, theirs) in ancestors[i].iter_mut().zip(inherited) {
                *mine |= theirs;
            }
        }
    }
    let mut chains: Vec<Vec<usize>> = vec![];
    for &i in &order {
        let last_of = |c: &Vec<usize>| *c.last().expect("chains are never empty");
        match chains.iter_mut().find(|c| ancestors[i][last_of(c)]) {
            Some(chain) => chain.push(i),
            None => chains.push(vec![i]),
        }
    }
    chains
}

/// The workflow's GitHub Actions document.
pub fn github_actions(plan: &Plan, options: &Options) -> Export {
    let workflow = &plan.workflow;
    let mut notes = vec![];
    let mut taken = std::collections::BTreeSet::new();
    let job_ids: Vec<String> = workflow
        .workstreams
        .iter()
        .map(|w| job_id(&w.name, &mut taken))
        .collect();
    let final_id = job_id("integrate", &mut taken);
    let name = &workflow.name;

    let width = chains(plan).len();
    if width > workflow.max_parallel {
        notes.push(format!(
            "up to {width} jobs can run at once on GitHub, more than max-parallel {}: GitHub Actions has no safe cap across jobs; use a runner label whose pool has {} runners (--runs-on) to keep to it",
            workflow.max_parallel, workflow.max_parallel
        ));
    }

    let install = install_step(&options.install);
    let identity = Yaml::map([
        ("name", Yaml::str("Git identity for flow's commits")),
        (
            "run",
            Yaml::Block(
                "git config --global user.name \"github-actions[bot]\"\ngit config --global user.email \"41898282+github-actions[bot]@users.noreply.github.com\"\n"
                    .into(),
            ),
        ),
    ]);
    // No credentials kept in `.git/config`, where the agents could read them: flow's own git
    // commands get the job's token from GITHUB_TOKEN through a credential helper.
    let checkout = Yaml::map([
        ("uses", Yaml::str(CHECKOUT)),
        (
            "with",
            Yaml::map([
                ("fetch-depth", Yaml::Int(0)),
                ("persist-credentials", Yaml::Bool(false)),
            ]),
        ),
    ]);
    let token = || ("GITHUB_TOKEN".to_string(), Yaml::str("${{ secrets.GITHUB_TOKEN }}"));
    let file = shell_word(&options.file);
    let remote = shell_word(&options.remote);

    let mut jobs: Vec<(String, Yaml)> = vec![];
    for (i, ws) in workflow.workstreams.iter().enumerate() {
        let mut job: Vec<(String, Yaml)> = vec![("name".into(), Yaml::str(ws.name.clone()))];
        if !ws.dependencies.is_empty() {
            job.push((
                "needs".into(),
                Yaml::List(ws.dependencies.iter().map(|&d| Yaml::str(job_ids[d].clone())).collect()),
            ));
        }
        let runs_on = options.runs_on_for.get(&ws.name).unwrap_or(&options.runs_on);
        job.push(("runs-on".into(), Yaml::str(runs_on.clone())));
        if let Some(timeout) = ws.timeout {
            // Every attempt may take the whole timeout; half an hour more for the setup.
            let attempts = 1 + u64::from(ws.retries) + u64::from(ws.fix_attempts);
            let minutes = (timeout.as_secs() * attempts).div_ceil(60) + 30;
            job.push(("timeout-minutes".into(), Yaml::Int(minutes.min(360))));
        }
        let mut steps = vec![checkout.clone(), identity.clone(), install.clone()];
        let mut packages: Vec<&str> = programs(workflow, i).iter().filter_map(|p| npm_package(p)).collect();
        packages.sort();
        packages.dedup();
        if !packages.is_empty() {
            steps.push(Yaml::map([
                ("name", Yaml::str("Install the agent CLI")),
                ("run", Yaml::str(format!("npm install -g {}", packages.join(" ")))),
            ]));
        }
        let mut run = vec![
            ("name".to_string(), Yaml::str(format!("Run {}", ws.name))),
            (
                "run".to_string(),
                Yaml::str(format!(
                    "flow run {file} --only {} --push --remote {remote} --progress plain",
                    shell_word(&ws.name)
                )),
            ),
        ];
        let mut env: Vec<(String, Yaml)> = secrets(workflow, i)
            .iter()
            .map(|s| (s.clone(), Yaml::str(format!("${{{{ secrets.{s} }}}}"))))
            .collect();
        env.push(token());
        run.push(("env".into(), Yaml::Map(env)));
        steps.push(Yaml::Map(run));
        job.push(("steps".into(), Yaml::List(steps)));
        jobs.push((job_ids[i].clone(), Yaml::Map(job)));
    }

    let all: Vec<Yaml> = job_ids.iter().map(|id| Yaml::str(id.clone())).collect();
    let mut final_job: Vec<(String, Yaml)> = vec![("name".into(), Yaml::str("merge and land"))];
    if !all.is_empty() {
        final_job.push(("needs".into(), Yaml::List(all)));
    }
    final_job.push(("runs-on".into(), Yaml::str(options.runs_on.clone())));
    let has_branches = workflow.workstreams.iter().any(|w| w.isolation == Isolation::Worktree);
    let mut steps = vec![checkout, identity, install];
    if has_branches {
        steps.push(Yaml::map([
            (
                "name",
                Yaml::str("Merge the pushed branches in the plan's order, with verify"),
            ),
            ("run", Yaml::str(format!("flow merge {file} --fetch --remote {remote}"))),
            ("env", Yaml::Map(vec![token()])),
        ]));
        steps.push(Yaml::map([
            ("name", Yaml::str("Land the integration branch")),
            ("run", Yaml::str(format!("flow land {file} --remote {remote}"))),
            ("env", Yaml::Map(vec![token()])),
        ]));
    }
    final_job.push(("steps".into(), Yaml::List(steps)));
    jobs.push((final_id, Yaml::Map(final_job)));

    let document = Yaml::map([
        ("name", Yaml::str(format!("flow {name}"))),
        ("on", Yaml::map([("workflow_dispatch", Yaml::Map(vec![]))])),
        (
            "permissions",
            Yaml::map([("contents", Yaml::str("write")), ("pull-requests", Yaml::str("write"))]),
        ),
        // One run of this workflow at a time per branch: two would push the same branches.
        (
            "concurrency",
            Yaml::map([
                ("group", Yaml::str(format!("flow-{name}-${{{{ github.ref }}}}"))),
                ("cancel-in-progress", Yaml::Bool(false)),
            ]),
        ),
        ("jobs", Yaml::Map(jobs)),
    ]);
    let header = format!(
        "# Written by `flow export github-actions {}`: one job per workstream, `needs:` from\n# depends-on. Export again after changing the workflow rather than editing this file.\n",
        options.file
    );
    Export {
        yaml: header + &document.to_text(),
        notes,
        job_ids,
    }
}

fn install_step(install: &Install) -> Yaml {
    let run = match install {
        Install::Cargo { git: None } => "cargo install --locked flow".to_string(),
        Install::Cargo { git: Some(url) } => format!("cargo install --locked --git {} flow", shell_word(url)),
        Install::Release { url } => format!(
            "mkdir -p \"$HOME/.local/bin\"\ncurl -fsSL {} | tar -xz -C \"$HOME/.local/bin\"\necho \"$HOME/.local/bin\" >> \"$GITHUB_PATH\"\n",
            shell_word(url)
        ),
    };
    Yaml::map([("name", Yaml::str("Install flow")), ("run", Yaml::Block(run))])
}
