//! Turning an agent definition into a process: the command with its placeholders filled in,
//! the clean environment, and what goes on standard input.

use std::collections::BTreeMap;
use std::path::Path;

use flow_dsl::{EnvSetting, StdinMode, Workflow};

use super::environment::{agent_environment, secret_values};
use super::process::ProcessSpec;

/// What an agent is launched with, before limits are set.
#[derive(Debug, Clone)]
pub struct Launch {
    pub spec: ProcessSpec,
    /// Variables whose values must never appear in logs or state.
    pub secrets: Vec<String>,
}

/// The values placeholders are replaced with.
pub struct Placeholders<'a> {
    pub prompt: &'a str,
    pub prompt_file: &'a Path,
    pub worktree: &'a Path,
}

/// Builds the process for one attempt of a workstream's agent.
///
/// `parent` is flow's own environment; only allowed and named variables reach the agent.
/// `extra` is set last (flow's own `FLOW_*` variables).
pub fn launch(
    workflow: &Workflow,
    index: usize,
    values: &Placeholders<'_>,
    parent: &BTreeMap<String, String>,
    extra: &BTreeMap<String, String>,
) -> Result<Launch, String> {
    let ws = &workflow.workstreams[index];
    let agent = workflow.agent_of(ws);
    let model = workflow.model_of(ws);
    let fill = |arg: &str| -> String {
        let mut out = arg.to_string();
        for (name, value) in [
            ("prompt", values.prompt),
            ("model", model.map_or("", |m| m.id.as_str())),
            ("model_name", ws.model.as_deref().unwrap_or("")),
            ("provider", model.map_or("", |m| m.provider.as_str())),
            ("workstream", ws.name.as_str()),
            ("script", ws.script.as_deref().unwrap_or("")),
        ] {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        out.replace("{prompt_file}", &values.prompt_file.display().to_string())
            .replace("{worktree}", &values.worktree.display().to_string())
    };
    let mut argv = agent.command.iter().map(|a| fill(a));
    let program = argv
        .next()
        .ok_or_else(|| format!("agent `{}` has an empty command", agent.name))?;
    let args: Vec<String> = argv.collect();

    let mut pass: Vec<String> = agent.pass_env.clone();
    let mut set: BTreeMap<String, String> = agent.env.clone();
    for setting in &ws.env {
        match setting {
            EnvSetting::Set { name, value } => {
                set.insert(name.clone(), value.clone());
            }
            EnvSetting::Pass { name } => pass.push(name.clone()),
        }
    }
    let mut account_secret = None;
    if let Some(account) = ws.account.as_ref().and_then(|a| workflow.accounts.get(a)) {
        let key = parent.get(&account.env).ok_or_else(|| {
            format!(
                "account `{}` reads its key from `{}`, which is not set",
                account.name, account.env
            )
        })?;
        let target = agent.key_env.clone().unwrap_or_else(|| account.env.clone());
        set.insert(target, key.clone());
        account_secret = Some(key.clone());
    }
    set.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    let env = agent_environment(parent.iter().map(|(k, v)| (k.clone(), v.clone())), &pass, &set);
    let mut secrets = secret_values(&env);
    secrets.extend(account_secret);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();

    let mut spec = ProcessSpec::new(program, args, values.worktree);
    spec.env = env;
    spec.secrets = secrets.clone();
    spec.stdin = match agent.stdin {
        StdinMode::Prompt => Some(values.prompt.to_string()),
        StdinMode::None => None,
    };
    spec.timeout = ws.timeout;
    spec.idle_timeout = ws.idle_timeout;
    Ok(Launch { spec, secrets })
}
