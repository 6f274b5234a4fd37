//! The standard library of `flow` workflows.
//!
//! Every workflow has these modules without importing them (`import "std:agents"` is allowed
//! and changes nothing). They are plain KDL 2 files (see `dsl/GRAMMAR.md`) embedded in the
//! binary, so a workflow works the same on every machine whatever files are next to it:
//!
//! - `std:agents`: presets for Claude Code, Codex, Gemini CLI, aider, opencode and shell scripts;
//! - `std:models`: model names, provider ids, list prices per million tokens, and the `kind`
//!   model-selection table;
//! - `std:roles`: roles (GUI, backend, tests, database, docs, architecture, review) with their
//!   expertise, instructions and default `owns`/`forbid` scopes.
//!
//! They are read before a workflow's own files: a workflow overrides any definition by
//! defining the same name again.

/// The text of `std:agents`.
const AGENTS: &str = include_str!("../std/agents.kdl");
/// The text of `std:models`.
const MODELS: &str = include_str!("../std/models.kdl");
/// The text of `std:roles`.
const ROLES: &str = include_str!("../std/roles.kdl");

/// Every module name, in order.
pub const MODULES: &[&str] = &["agents", "models", "roles"];

/// Returns the text of a standard-library module by its name without the `std:` prefix
/// (`"agents"`, `"models"`, `"roles"`), or `None` for any other name.
pub fn module(name: &str) -> Option<&'static str> {
    match name {
        "agents" => Some(AGENTS),
        "models" => Some(MODELS),
        "roles" => Some(ROLES),
        _ => None,
    }
}

/// The workflow `flow init` writes for an AI agent, with `@AGENT@`, `@MODEL@` and `@AGENTS@`
/// to fill in.
const INIT_TEMPLATE: &str = include_str!("../templates/parallel.kdl");
/// The workflow `flow init --agent shell` writes: workstreams with a `script` instead of a task.
const INIT_SHELL_TEMPLATE: &str = include_str!("../templates/parallel-shell.kdl");

/// The agent `flow init` writes a workflow for when none is named.
pub const DEFAULT_AGENT: &str = "claude-code";

/// The names of the agent presets of `std:agents`, in the order they are defined.
pub fn agent_names() -> Vec<&'static str> {
    AGENTS
        .lines()
        .filter_map(|line| line.strip_prefix("agent \""))
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| name))
        .collect()
}

/// The model `flow init`'s workflow suggests (commented out) for an agent preset: one its
/// tool can run.
fn suggested_model(agent: &str) -> &'static str {
    match agent {
        "codex" => "gpt-5",
        "gemini" => "gemini-2.5-pro",
        _ => "sonnet",
    }
}

/// The workflow `flow init --agent NAME` writes: a commented starting point for that agent
/// preset that passes `flow check`, or `None` when `std:agents` has no such preset. Its
/// workstreams name no model, so the agent runs on its own default one; the `shell` agent's
/// workstreams have a `script` instead of a task.
pub fn init_template(agent: &str) -> Option<String> {
    let names = agent_names();
    if !names.contains(&agent) {
        return None;
    }
    let template = if agent == "shell" {
        INIT_SHELL_TEMPLATE
    } else {
        INIT_TEMPLATE
    };
    Some(
        template
            .replace("@AGENTS@", &names.join(", "))
            .replace("@AGENT@", agent)
            .replace("@MODEL@", suggested_model(agent)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_module_exists_and_is_not_empty() {
        for name in MODULES {
            let text = module(name).unwrap_or_else(|| panic!("std:{name} is listed but missing"));
            assert!(!text.trim().is_empty(), "std:{name} is empty");
        }
    }

    #[test]
    fn the_init_template_names_its_agent_and_every_preset() {
        let names = agent_names();
        assert_eq!(names.first(), Some(&DEFAULT_AGENT));
        assert!(names.contains(&"shell") && names.contains(&"codex"), "{names:?}");
        for name in &names {
            let text = init_template(name).unwrap_or_else(|| panic!("no template for {name}"));
            assert!(text.contains(&format!("    agent \"{name}\"\n")), "{name}");
            assert!(!text.contains('@'), "{name}: a placeholder is left in\n{text}");
            assert!(text.contains("`flow help workflow`"), "{name}");
            assert!(!text.contains("GRAMMAR.md"), "{name}");
        }
        assert_eq!(init_template("claude"), None);
        assert_eq!(init_template(""), None);
    }

    #[test]
    fn unknown_names_are_none() {
        for name in [
            "",
            "std:agents",
            "Agents",
            "agent",
            "templates",
            "../agents",
            "agents.kdl",
        ] {
            assert_eq!(module(name), None, "{name:?}");
        }
    }

    #[test]
    fn modules_define_what_they_promise() {
        let agents = module("agents").unwrap();
        for preset in [
            "claude-code",
            "claude-code-stream",
            "codex",
            "gemini",
            "aider",
            "opencode",
            "shell",
        ] {
            assert!(agents.contains(&format!("agent \"{preset}\"")), "agent {preset}");
        }
        let models = module("models").unwrap();
        for model in ["opus", "sonnet", "haiku", "gpt-5", "gemini-2.5-pro"] {
            assert!(models.contains(&format!("model \"{model}\"")), "model {model}");
        }
        for kind in [
            "architecture",
            "feature",
            "crud",
            "review",
            "bugfix",
            "tests",
            "docs",
            "refactor",
        ] {
            assert!(models.contains(&format!("kind \"{kind}\"")), "kind {kind}");
        }
        let roles = module("roles").unwrap();
        for role in [
            "gui-specialist",
            "backend-specialist",
            "test-writer",
            "database-specialist",
            "docs-writer",
            "architect",
            "reviewer",
        ] {
            assert!(roles.contains(&format!("role \"{role}\"")), "role {role}");
        }
    }
}
