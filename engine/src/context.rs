//! What an agent is told: the rendered prompt and the seed's context files in its worktree.
//!
//! Into each worktree go `.ai/worktrees/<name>/context.md` (role, expertise, scope,
//! integration points, context files with sizes), `current_task.md` (the task),
//! `agent_config.json` (everything machine-readable) and `prompt.md` (exactly what the agent
//! is given). These files are never committed: see [`CONTEXT_PREFIXES`].

use std::fmt::Write;
use std::path::{Path, PathBuf};

use flow_dsl::{ScopeGlob, Workflow, Workstream, format_duration};
use serde::Serialize;

/// Path prefixes flow writes into worktrees and never commits or merges.
pub const CONTEXT_PREFIXES: &[&str] = &[".ai/worktrees/", ".ai/coordination/"];

/// Every path prefix flow's own files live under in a worktree: the context folders and the
/// workflow's status board. Commits and cleanliness checks leave these out.
pub fn excluded_prefixes(workflow: &Workflow) -> Vec<&str> {
    let mut prefixes = CONTEXT_PREFIXES.to_vec();
    if !prefixes.iter().any(|p| workflow.status_file.starts_with(p)) {
        prefixes.push(workflow.status_file.as_str());
    }
    prefixes
}

/// The folder of a workstream's context files, relative to its worktree.
pub fn context_dir(workstream: &str) -> PathBuf {
    Path::new(".ai").join("worktrees").join(workstream)
}

/// The machine-readable context, written as `agent_config.json`.
#[derive(Debug, Serialize)]
pub struct AgentConfig<'w> {
    pub workstream: &'w str,
    pub workflow: &'w str,
    pub agent: &'w str,
    pub model: Option<&'w str>,
    pub model_id: Option<&'w str>,
    pub role: Option<&'w str>,
    pub expertise: Vec<&'w str>,
    pub instructions: Option<&'w str>,
    pub context_files: &'w [String],
    pub allowed_files: &'w [ScopeGlob],
    pub forbidden_files: &'w [ScopeGlob],
    pub depends_on: Vec<&'w str>,
    pub dependents: Vec<&'w str>,
    pub test: Option<&'w str>,
    pub limits: Limits,
}

/// The limits an agent runs under.
#[derive(Debug, Serialize)]
pub struct Limits {
    pub timeout_seconds: Option<u64>,
    pub idle_timeout_seconds: Option<u64>,
    pub retries: u32,
    pub budget_usd: Option<f64>,
    pub budget_tokens: Option<u64>,
}

/// Everything written for one workstream.
#[derive(Debug)]
pub struct Context {
    pub prompt: String,
    pub context_md: String,
    pub current_task_md: String,
    pub agent_config_json: String,
}

/// Renders a workstream's context. `root` is where context files are looked up for their size.
pub fn render(workflow: &Workflow, index: usize, root: &Path) -> Context {
    render_with(workflow, index, root, "")
}

/// Renders a workstream's context with what its dependencies did (see [`crate::handoff`]).
pub fn render_with(workflow: &Workflow, index: usize, root: &Path, handoffs: &str) -> Context {
    let ws = &workflow.workstreams[index];
    let role = workflow.role_of(ws);
    let dependents: Vec<&str> = workflow
        .workstreams
        .iter()
        .filter(|w| w.dependencies.contains(&index))
        .map(|w| w.name.as_str())
        .collect();
    let depends_on: Vec<&str> = ws
        .dependencies
        .iter()
        .map(|&d| workflow.workstreams[d].name.as_str())
        .collect();
    let task = ws.task.as_deref().or(ws.script.as_deref()).unwrap_or("").trim_end();

    let mut scope = String::new();
    if ws.scope.owns_everything() {
        scope.push_str("- You may change any file.\n");
    } else {
        let _ = writeln!(
            scope,
            "- You may change only files matching: {}",
            code_list(ws.scope.owns())
        );
    }
    if !ws.scope.forbid().is_empty() {
        let _ = writeln!(
            scope,
            "- You must not change files matching: {}",
            code_list(ws.scope.forbid())
        );
    }
    scope.push_str(
        "- Changes outside this scope are rejected and nothing of your work is merged.\n- Do not switch branches, rewrite history, or touch `.git`. Commit or leave changes in place; flow commits what is left.\n",
    );

    let mut context_files = String::new();
    for file in &ws.context {
        let size = std::fs::metadata(root.join(file)).map(|m| m.len()).ok();
        match size {
            Some(bytes) => {
                let _ = writeln!(
                    context_files,
                    "- `{file}` ({bytes} bytes, about {} tokens)",
                    bytes.div_ceil(4)
                );
            }
            None => {
                let _ = writeln!(context_files, "- `{file}` (not found)");
            }
        }
    }

    let mut integration = String::new();
    if !depends_on.is_empty() {
        let _ = writeln!(
            integration,
            "- Builds on the merged work of: {}",
            code_list_str(&depends_on)
        );
    }
    if !dependents.is_empty() {
        let _ = writeln!(
            integration,
            "- Later work builds on yours: {}",
            code_list_str(&dependents)
        );
    }
    if let Some(test) = &ws.test {
        let _ = writeln!(integration, "- Your work must pass `{test}` in this worktree.");
    }
    if let Some(verify) = &workflow.integrate.verify {
        let _ = writeln!(
            integration,
            "- After merging, `{verify}` must pass on the integrated tree."
        );
    }

    let mut context_md = format!("# Context for workstream `{}`\n\n", ws.name);
    if let Some(d) = &ws.description {
        let _ = writeln!(context_md, "{d}\n");
    }
    if let Some(role) = role {
        let _ = writeln!(
            context_md,
            "## Role: {}\n",
            role.description.as_deref().unwrap_or(&role.name)
        );
        if !role.expertise.is_empty() {
            let _ = writeln!(context_md, "Expertise: {}\n", role.expertise.join(", "));
        }
        if let Some(i) = &role.instructions {
            let _ = writeln!(context_md, "{}\n", i.trim_end());
        }
    }
    let _ = writeln!(context_md, "## Scope\n\n{scope}");
    if !integration.is_empty() {
        let _ = writeln!(context_md, "## Integration points\n\n{integration}");
    }
    if !context_files.is_empty() {
        let _ = writeln!(context_md, "## Files to read first\n\n{context_files}");
    }
    if !handoffs.is_empty() {
        context_md.push_str(handoffs);
    }

    let current_task_md = format!("# Task: {}\n\n{task}\n", ws.name);

    let mut prompt = format!(
        "You are working on workstream `{}` of workflow `{}`.\n",
        ws.name, workflow.name
    );
    if let Some(role) = role {
        let _ = write!(
            prompt,
            "Your role: {}.",
            role.description.as_deref().unwrap_or(&role.name)
        );
        if !role.expertise.is_empty() {
            let _ = write!(prompt, " Expertise: {}.", role.expertise.join(", "));
        }
        prompt.push('\n');
        if let Some(i) = &role.instructions {
            let _ = writeln!(prompt, "{}", i.trim_end());
        }
    }
    let _ = writeln!(prompt, "\n## Task\n\n{task}\n\n## Scope\n\n{scope}");
    if !integration.is_empty() {
        let _ = writeln!(prompt, "## Integration points\n\n{integration}");
    }
    if !context_files.is_empty() {
        let _ = writeln!(prompt, "## Files to read first\n\n{context_files}");
    }
    if !handoffs.is_empty() {
        prompt.push_str(handoffs);
    }
    let _ = writeln!(
        prompt,
        "More context is in `{}/context.md`. When you are done, stop; flow checks, commits and merges your work.",
        context_dir(&ws.name).display()
    );

    let config = AgentConfig {
        workstream: &ws.name,
        workflow: &workflow.name,
        agent: &ws.agent,
        model: ws.model.as_deref(),
        model_id: workflow.model_of(ws).map(|m| m.id.as_str()),
        role: ws.role.as_deref(),
        expertise: role
            .map(|r| r.expertise.iter().map(String::as_str).collect())
            .unwrap_or_default(),
        instructions: role.and_then(|r| r.instructions.as_deref()),
        context_files: &ws.context,
        allowed_files: ws.scope.owns(),
        forbidden_files: ws.scope.forbid(),
        depends_on,
        dependents,
        test: ws.test.as_deref(),
        limits: limits(ws),
    };
    let agent_config_json = serde_json::to_string_pretty(&config).expect("the agent config has only string keys");
    Context {
        prompt,
        context_md,
        current_task_md,
        agent_config_json,
    }
}

fn limits(ws: &Workstream) -> Limits {
    Limits {
        timeout_seconds: ws.timeout.map(|t| t.as_secs()),
        idle_timeout_seconds: ws.idle_timeout.map(|t| t.as_secs()),
        retries: ws.retries,
        budget_usd: ws.budget.usd,
        budget_tokens: ws.budget.tokens,
    }
}

/// Writes the context files into a worktree (or scratch folder); returns the prompt file's path.
pub fn write(context: &Context, dir: &Path, workstream: &str) -> std::io::Result<PathBuf> {
    let folder = dir.join(context_dir(workstream));
    std::fs::create_dir_all(&folder)?;
    hide_from_git(&dir.join(".ai").join("worktrees"))?;
    std::fs::write(folder.join("context.md"), &context.context_md)?;
    std::fs::write(folder.join("current_task.md"), &context.current_task_md)?;
    std::fs::write(folder.join("agent_config.json"), &context.agent_config_json)?;
    let prompt = folder.join("prompt.md");
    std::fs::write(&prompt, &context.prompt)?;
    Ok(prompt)
}

/// Makes git ignore a folder of flow's files (a `.gitignore` of `*`, which ignores itself too),
/// so an agent's `git add -A` does not commit them.
pub fn hide_from_git(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    let ignore = folder.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(ignore, "# flow's own files: never committed\n*\n")?;
    }
    Ok(())
}

/// A one-line summary of a workstream's limits, for tables.
pub fn limits_line(ws: &Workstream) -> String {
    let mut parts = vec![];
    if let Some(t) = ws.timeout {
        parts.push(format!("timeout {}", format_duration(t)));
    }
    if ws.retries > 0 {
        parts.push(format!(
            "{} retr{}",
            ws.retries,
            if ws.retries == 1 { "y" } else { "ies" }
        ));
    }
    parts.join(", ")
}

fn code_list(items: &[ScopeGlob]) -> String {
    items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

fn code_list_str(items: &[&str]) -> String {
    items.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

/// What a fix attempt is told when its agent starts afresh: the workstream's prompt, then what
/// failed (the feedback) and what to do about it.
pub fn fix_prompt(prompt: &str, feedback: &str) -> String {
    format!(
        "{prompt}\n## What failed: fix it\n\nYour earlier work on this task is in this worktree. It did not pass:\n\n{feedback}\n\n\
         Fix this in the worktree, keeping the rest of your work. When you are done, stop.\n"
    )
}

/// What a fix attempt is told when its agent continues its own session: only what failed.
pub fn fix_message(feedback: &str) -> String {
    format!(
        "Your work did not pass:\n\n{feedback}\n\nFix this in the worktree, keeping the rest of your work. When you are done, stop.\n"
    )
}

/// What a person's message attempt is told when its agent starts afresh: the workstream's
/// prompt, then the message.
pub fn message_prompt(prompt: &str, message: &str) -> String {
    format!(
        "{prompt}\n## A message from the person running this workflow\n\nYour earlier work on this task is in this worktree. \
         The person watching it sent you this message:\n\n{message}\n\n\
         Act on it in the worktree, keeping the rest of your work. When you are done, stop.\n"
    )
}

/// What a person's message attempt is told when its agent continues its own session: only
/// the message.
pub fn message_text(message: &str) -> String {
    format!(
        "The person watching your work sent you this message:\n\n{message}\n\n\
         Act on it in the worktree, keeping the rest of your work. When you are done, stop.\n"
    )
}

/// What a reviewer is told: the task, the diff, the test, and how to answer.
pub fn review_prompt(workflow: &Workflow, index: usize, diff: &str, test: Option<&str>) -> String {
    let ws = &workflow.workstreams[index];
    let task = ws.task.as_deref().or(ws.script.as_deref()).unwrap_or("").trim_end();
    let mut out = format!(
        "You are reviewing the work of workstream `{}` of workflow `{}`. Do not change any file.\n\n## Its task\n\n{task}\n\n",
        ws.name, workflow.name
    );
    if let Some(test) = test {
        let _ = writeln!(out, "## Its test\n\n{test}\n");
    }
    let _ = writeln!(out, "## Its changes\n\n```diff\n{}\n```\n", diff.trim_end());
    out.push_str(
        "## Your answer\n\nEnd your answer with one JSON object, on a line of its own:\n\n\
         {\"verdict\": \"approve\", \"comments\": \"what you checked\"}\n\nor\n\n\
         {\"verdict\": \"changes-requested\", \"comments\": \"what must change, precisely\"}\n\n\
         Request changes only for real problems: the task not done, a bug, a missing test.\n",
    );
    out
}

/// What the resolver is told: both sides' tasks, what each did, and the conflicts.
pub fn resolve_prompt(
    workflow: &Workflow,
    index: usize,
    merged_before: &[usize],
    conflicts: &str,
    handoffs: &str,
) -> String {
    let ws = &workflow.workstreams[index];
    let task = |w: &Workstream| {
        w.task
            .as_deref()
            .or(w.script.as_deref())
            .unwrap_or("")
            .trim_end()
            .to_string()
    };
    let mut out = format!(
        "You are resolving a merge conflict in workflow `{}`: the branch of workstream `{}` conflicts with the \
         integration branch. This worktree holds the merge in progress, with conflict markers.\n\n\
         ## One side: `{}`\n\n{}\n\n",
        workflow.name,
        ws.name,
        ws.name,
        task(ws)
    );
    if !merged_before.is_empty() {
        out.push_str("## The other side: the integration branch, with the work of\n\n");
        for &i in merged_before {
            let other = &workflow.workstreams[i];
            let _ = writeln!(out, "### `{}`\n\n{}\n", other.name, task(other));
        }
    }
    if !handoffs.is_empty() {
        out.push_str(handoffs);
    }
    let _ = writeln!(out, "## The conflicts\n\n{conflicts}\n");
    out.push_str(
        "Resolve every conflict so that both sides' work is kept as they meant it, and remove every \
         conflict marker (`<<<<<<<`, `=======`, `>>>>>>>`). Do not commit: flow checks that no marker is \
         left, commits the merge, and runs `verify`. End with one line saying what you decided.\n",
    );
    out
}
