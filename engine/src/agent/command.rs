//! Turning an agent definition into a process: the command with its placeholders filled in,
//! the clean environment, and what goes on standard input.

use std::collections::BTreeMap;
use std::path::Path;

use flow_dsl::{EnvSetting, StdinMode, Workflow};

use super::environment::{agent_environment, declared_secret_values, secret_values};
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
    /// The session a fix continues (`{session}`).
    pub session: &'a str,
}

/// Which agent runs, with which command and model: the workstream's own, or its reviewer or
/// the resolver (another agent definition and model), or the own agent continuing a session.
pub struct Runner<'a> {
    pub agent: &'a flow_dsl::Agent,
    /// The agent's `command`, or its `resume` template.
    pub command: &'a [String],
    pub model: Option<&'a flow_dsl::Model>,
    /// The model's name as the workflow gives it (`{model_name}`).
    pub model_name: Option<&'a str>,
}

/// Builds the process for one attempt of a workstream's agent.
///
/// `parent` is flow's own environment; only allowed and named variables reach the agent.
/// `extra` is set last (flow's own `FLOW_*` variables). `budget_usd` is what the workstream's
/// budget has left, given to tools that take a spending cap of their own.
pub fn launch(
    workflow: &Workflow,
    index: usize,
    runner: &Runner<'_>,
    values: &Placeholders<'_>,
    parent: &BTreeMap<String, String>,
    extra: &BTreeMap<String, String>,
    budget_usd: Option<f64>,
) -> Result<Launch, String> {
    let ws = &workflow.workstreams[index];
    let agent = runner.agent;
    let model = runner.model;
    let prompt_file = values.prompt_file.display().to_string();
    let worktree = values.worktree.display().to_string();
    let lookup = |name: &str| -> Option<&str> {
        Some(match name {
            "prompt" => values.prompt,
            "prompt_file" => &prompt_file,
            "model" => model.map_or("", |m| m.id.as_str()),
            "model_name" => runner.model_name.unwrap_or(""),
            "provider" => model.map_or("", |m| m.provider.as_str()),
            "worktree" => &worktree,
            "workstream" => ws.name.as_str(),
            "script" => ws.script.as_deref().unwrap_or(""),
            "session" => values.session,
            _ => return None,
        })
    };
    let fill = |arg: &str| fill_placeholders(arg, &lookup);
    // Without a model the tool picks its own: the arguments that would name one are left out.
    let template: Vec<&str> = match model {
        Some(_) => runner.command.iter().map(String::as_str).collect(),
        None => flow_dsl::without_model(runner.command),
    };
    let mut argv = template.into_iter().map(fill);
    let program = argv
        .next()
        .ok_or_else(|| format!("agent `{}` has an empty command", agent.name))?;
    let mut args: Vec<String> = argv.collect();
    if let (Some(flag), Some(usd)) = (&agent.budget_flag, budget_usd) {
        // The tool's own limit is checked only between turns; flow's ledger enforces the budget.
        args.splice(0..0, [flag.clone(), format!("{usd}")]);
    }

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
    secrets.extend(declared_secret_values(&ws.secrets, &env, parent));
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
    spec.log_limit = Some(ws.log_limit);
    Ok(Launch { spec, secrets })
}

/// Replaces every `{name}` that `lookup` knows in one pass, so text substituted in (a
/// prompt that mentions `{model}`) is never substituted again.
pub fn fill_placeholders<'v>(text: &str, lookup: &dyn Fn(&str) -> Option<&'v str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| lookup(&after[..close]).map(|v| (close, v)))
        {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::{Placeholders, Runner, fill_placeholders, launch};

    /// The program and arguments workstream `w` of a workflow is started with.
    fn command_line(workflow_text: &str) -> Vec<String> {
        let workflow = flow_dsl::check_text("t.kdl", workflow_text)
            .expect("the workflow is valid")
            .workflow;
        let ws = &workflow.workstreams[0];
        let agent = workflow.agent_of(ws);
        let runner = Runner {
            agent,
            command: &agent.command,
            model: workflow.model_of(ws),
            model_name: ws.model.as_deref(),
        };
        let values = Placeholders {
            prompt: "-do it",
            prompt_file: Path::new("/p"),
            worktree: Path::new("/w"),
            session: "",
        };
        let launched = launch(&workflow, 0, &runner, &values, &BTreeMap::new(), &BTreeMap::new(), None)
            .expect("the agent launches");
        let mut line = vec![launched.spec.program];
        line.extend(launched.spec.args);
        line
    }

    #[test]
    fn without_a_model_the_arguments_naming_one_are_left_out() {
        let agents = r#"agent "a" { command "tool" "-m" "{provider}/{model}" "--name={model_name}" "--" "{prompt}"; }
model "m" provider="p" id="m-1" input-usd=1 output-usd=1
"#;
        assert_eq!(
            command_line(&format!("{agents}workstream \"w\" {{ agent \"a\"; task \"x\" }}")),
            ["tool", "--", "-do it"]
        );
        assert_eq!(
            command_line(&format!(
                "{agents}workstream \"w\" {{ agent \"a\"; model \"m\"; task \"x\" }}"
            )),
            ["tool", "-m", "p/m-1", "--name=m", "--", "-do it"]
        );
    }

    #[test]
    fn fills_in_one_pass() {
        let lookup = |name: &str| match name {
            "prompt" => Some("use {model} and {x}"),
            "model" => Some("m1"),
            _ => None,
        };
        assert_eq!(
            fill_placeholders("-p {prompt} --model {model} {other} {", &lookup),
            "-p use {model} and {x} --model m1 {other} {"
        );
    }
}
