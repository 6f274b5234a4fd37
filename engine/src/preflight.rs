//! Checks before anything is made: what would make a run fail after its worktrees exist, found
//! while nothing has happened yet. Every agent program is on `PATH` (with how to install the
//! known ones), the base branch exists (with a suggestion for a typo), and the branches flow
//! will create are free; a checkout with uncommitted changes is worth a warning (agents start
//! from the base as committed).
//!
//! `flow run` stops on an error here, before any branch or worktree is made; `flow check` and
//! `flow plan` report the same findings where the repository is known.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::Path;

use flow_dsl::{Isolation, Workflow, did_you_mean};

use crate::git::Git;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One finding: what is wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
}

impl Finding {
    fn error(message: String, help: Option<String>) -> Finding {
        Finding {
            severity: Severity::Error,
            message,
            help,
        }
    }

    fn warning(message: String, help: Option<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            message,
            help,
        }
    }
}

/// What the checks look at besides the workflow.
pub struct Context<'a> {
    /// The repository, when there is one.
    pub git: Option<&'a Git>,
    /// The folder flow runs from (the repository's root).
    pub root: &'a Path,
    /// The `PATH` agents get (flow's own).
    pub path: Option<OsString>,
    /// The workstreams a run would start (`None`: all).
    pub selected: Option<&'a [usize]>,
    /// Whether to check that the branches a new run creates are free. `flow run` leaves that
    /// to the start of the run, under the run's lock: a run of the workflow still going is
    /// the better answer then.
    pub branches: bool,
}

/// Runs every check; errors first.
pub fn preflight(workflow: &Workflow, context: &Context<'_>) -> Vec<Finding> {
    let mut findings = programs(workflow, context);
    if let Some(git) = context.git {
        findings.extend(base(workflow, git));
        if context.branches {
            findings.extend(branches_free(workflow, git, context.selected));
        }
        findings.extend(dirty_checkout(workflow, git));
    }
    findings.extend(sandbox(workflow));
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    findings
}

/// A kernel that cannot confine agents, or only in part, is worth a warning: the run goes on
/// unconfined (or with what it can enforce).
fn sandbox(workflow: &Workflow) -> Option<Finding> {
    let notice = crate::confine::Confiner::new(&std::collections::BTreeMap::new(), Path::new("/")).notice(workflow)?;
    Some(Finding::warning(
        notice,
        Some("Landlock needs Linux 5.13 or newer with `landlock` in the `lsm=` boot parameter; `sandbox \"off\"` on a workstream says you accept it".into()),
    ))
}

fn chosen(context: &Context<'_>, index: usize) -> bool {
    context.selected.is_none_or(|s| s.contains(&index))
}

/// How to install the agent CLIs flow knows.
fn install_note(program: &str) -> Option<&'static str> {
    Some(match program {
        "claude" => "install Claude Code with `npm install -g @anthropic-ai/claude-code`",
        "codex" => "install Codex with `npm install -g @openai/codex`",
        "gemini" => "install Gemini CLI with `npm install -g @google/gemini-cli`",
        "opencode" => "install opencode with `npm install -g opencode-ai`",
        "aider" => "install aider with `python3 -m pip install aider-install && aider-install`",
        _ => return None,
    })
}

/// Every agent a run would start (its own, reviewers, the resolver) names a program that
/// exists.
fn programs(workflow: &Workflow, context: &Context<'_>) -> Vec<Finding> {
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for (i, ws) in workflow.workstreams.iter().enumerate() {
        if !chosen(context, i) {
            continue;
        }
        used.insert(ws.agent.as_str());
        if let Some(review) = &ws.review {
            used.insert(review.agent.as_str());
        }
    }
    if let Some(resolver) = &workflow.integrate.resolver {
        used.insert(resolver.agent.as_str());
    }
    let cwd = context.root;
    let mut findings = vec![];
    for name in used {
        let Some(agent) = workflow.agents.get(name) else {
            continue;
        };
        let Some(program) = agent.command.first() else { continue };
        if program.contains('{') {
            continue;
        }
        if which::which_in(program, context.path.clone(), cwd).is_ok() {
            continue;
        }
        let where_ = if program.contains('/') {
            format!("`{program}` does not exist or cannot be run")
        } else {
            format!("`{program}` is not on PATH")
        };
        let help = install_note(program)
            .map(str::to_string)
            .or_else(|| Some(format!("install `{program}`, or change the command of agent `{name}`")));
        findings.push(Finding::error(format!("agent `{name}` cannot start: {where_}"), help));
    }
    findings
}

/// The base branch exists.
fn base(workflow: &Workflow, git: &Git) -> Option<Finding> {
    let base = workflow.base.as_deref()?;
    if git.resolve(base).is_ok() {
        return None;
    }
    let branches = git.local_branches().unwrap_or_default();
    let help = match did_you_mean(base, branches.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`?"),
        None if branches.is_empty() => "the repository has no branch yet: commit something first".to_string(),
        None => format!("branches: {}", shorten(&branches, 8)),
    };
    Some(Finding::error(
        format!("the base branch `{base}` does not exist"),
        Some(help),
    ))
}

/// The branches a new run creates do not exist yet (the integration branch may, as long as
/// it holds nothing past the base).
fn branches_free(workflow: &Workflow, git: &Git, selected: Option<&[usize]>) -> Vec<Finding> {
    let taken: Vec<String> = workflow
        .workstreams
        .iter()
        .enumerate()
        .filter(|(i, ws)| selected.is_none_or(|s| s.contains(i)) && ws.isolation == Isolation::Worktree)
        .map(|(_, ws)| workflow.branch_of(ws))
        .filter(|branch| git.branch_head(branch).ok().flatten().is_some())
        .collect();
    let mut findings = vec![];
    if !taken.is_empty() {
        findings.push(Finding::error(
            format!(
                "{} branch{} flow would create exist{} already: {}",
                taken.len(),
                if taken.len() == 1 { "" } else { "es" },
                if taken.len() == 1 { "s" } else { "" },
                shorten(&taken, 6)
            ),
            Some(
                "continue the run that made them with `flow resume`, or remove them with `flow clean` \
                 (`--force` for unmerged work)"
                    .to_string(),
            ),
        ));
    }
    let base = workflow.base.as_deref().and_then(|b| git.resolve(b).ok());
    if let (Some(base), Ok(Some(into))) = (base, git.branch_head(&workflow.into))
        && into != base
        && !git.is_ancestor(into, base).unwrap_or(false)
    {
        findings.push(Finding::error(
            format!(
                "the integration branch `{}` exists and holds merges not in the base",
                workflow.into
            ),
            Some("merge it into your branch, or remove it with `flow clean --force`".to_string()),
        ));
    }
    findings
}

/// Uncommitted changes in the user's checkout do not reach the agents.
fn dirty_checkout(workflow: &Workflow, git: &Git) -> Option<Finding> {
    let dirty = git.is_dirty(git.root(), &[".flow/"]).ok()?;
    if dirty.is_empty() {
        return None;
    }
    let base = workflow.base.as_deref().unwrap_or("the base branch");
    Some(Finding::warning(
        format!(
            "your checkout has uncommitted changes ({} path{}: {}): agents start from `{base}` as \
             committed, without them",
            dirty.len(),
            if dirty.len() == 1 { "" } else { "s" },
            shorten(&dirty, 5)
        ),
        Some("commit them first if the agents should see them".to_string()),
    ))
}

/// `a, b, c and 4 more`.
fn shorten(items: &[String], at_most: usize) -> String {
    let shown: Vec<&str> = items.iter().take(at_most).map(String::as_str).collect();
    match items.len().saturating_sub(at_most) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(text: &str) -> Workflow {
        match flow_dsl::check_text("t.kdl", text) {
            Ok(checked) => checked.workflow,
            Err(problems) => panic!("{problems:?}"),
        }
    }

    const SHELL: &str = r#"
workflow "t" { base "main"; }
agent "missing" { command "no-such-agent-program-here" "{prompt}"; output "text"; }
agent "claude-like" { command "claude" "{prompt}"; output "text"; }
agent "sh" { command "sh" "-c" "{script}"; output "text"; }
"#;

    fn context(path: &str) -> Context<'static> {
        Context {
            git: None,
            root: Path::new("/"),
            path: Some(path.into()),
            selected: None,
            branches: true,
        }
    }

    #[test]
    fn a_missing_program_is_an_error_with_how_to_install_a_known_one() {
        let w = workflow(&format!(
            "{SHELL}\nworkstream \"a\" {{ agent \"missing\"; task \"x\"; }}\nworkstream \"b\" {{ agent \"claude-like\"; task \"x\"; }}\nworkstream \"c\" {{ agent \"sh\"; script \"true\"; }}"
        ));
        // A PATH of its own, holding `sh` alone: the machine may have any agent CLI installed.
        let bin = tempfile::tempdir().expect("temporary folder");
        std::os::unix::fs::symlink("/bin/sh", bin.path().join("sh")).expect("link sh");
        let findings = preflight(&w, &context(bin.path().to_str().expect("utf-8 path")));
        let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m.contains("`no-such-agent-program-here` is not on PATH")),
            "{messages:?}"
        );
        let claude = findings
            .iter()
            .find(|f| f.message.contains("`claude`"))
            .expect("claude is not on this PATH");
        assert!(
            claude
                .help
                .as_deref()
                .is_some_and(|h| h.contains("npm install -g @anthropic-ai/claude-code"))
        );
        assert!(findings.iter().all(|f| f.severity == Severity::Error));
        assert!(!messages.iter().any(|m| m.contains("`sh`")), "sh is found");
    }

    #[test]
    fn an_agent_no_selected_workstream_uses_is_not_checked() {
        let w = workflow(&format!(
            "{SHELL}\nworkstream \"a\" {{ agent \"missing\"; task \"x\"; }}\nworkstream \"c\" {{ agent \"sh\"; script \"true\"; }}"
        ));
        let mut ctx = context("/usr/bin:/bin");
        let selected = [1];
        ctx.selected = Some(&selected);
        assert!(preflight(&w, &ctx).is_empty());
    }

    #[test]
    fn shorten_says_how_many_more() {
        let items: Vec<String> = (0..7).map(|i| i.to_string()).collect();
        assert_eq!(shorten(&items, 3), "0, 1, 2 and 4 more");
        assert_eq!(shorten(&items[..2], 3), "0, 1");
    }
}
