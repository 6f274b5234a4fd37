//! `flow demo`: the built-in example. It makes a small Python repository in a new folder and
//! runs `workflows/demo.kdl` on it with shell agents: real worktrees, parallel agents, a
//! merge queue with a verify step, and two failures sent back to their agents (a write
//! outside the scope, a failed test) and fixed. No account, key or network.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use flow_engine::{Plan, RunSettings, Site, start};

use crate::cli::DemoArgs;
use crate::commands::progress::{finish, observers};
use crate::diagnostics::print_problems;
use crate::error::{CommandError, run_failed};
use crate::output::say;

/// The demo workflow, embedded so the demo runs from any folder.
const WORKFLOW: &str = include_str!("../../workflows/demo.kdl");

/// The sample repository's files before any agent runs.
const FILES: &[(&str, &str)] = &[
    (
        "README.md",
        "# catalog\n\nA small book catalog, built by the flow demo.\n",
    ),
    ("src/catalog/__init__.py", "\"\"\"A small book catalog.\"\"\"\n"),
    ("tests/__init__.py", ""),
    (
        "tests/test_package.py",
        "import unittest\n\nimport catalog\n\n\nclass PackageTest(unittest.TestCase):\n    def test_imports(self):\n        self.assertTrue(catalog.__doc__)\n",
    ),
    (".gitignore", "__pycache__/\n"),
];

/// Creates the sample repository and runs the demo workflow in it.
pub async fn run(args: DemoArgs) -> Result<ExitCode, CommandError> {
    let dir = match args.dir {
        Some(d) => d,
        None => tempfile::Builder::new()
            .prefix("flow-demo-")
            .tempdir()
            .map_err(|e| CommandError::System(miette::miette!("cannot make a temporary folder: {e}")))?
            .keep(),
    };
    create_repository(&dir)?;
    say(&format!("flow demo: a sample repository in {}", dir.display()));
    say(
        "flow demo: running its parallel.kdl (five workstreams of shell agents standing in for AI agents; \
         after each merge, verify runs the project's tests on the merged tree).",
    );
    say(
        "flow demo: two agents slip as real ones do: one edits a file it does not own, one writes a bug \
         its test catches. Watch flow send each failure back to its agent.\n",
    );

    let file = dir.join("parallel.kdl");
    let checked = flow_dsl::check_file(&file).map_err(CommandError::Invalid)?;
    print_problems(&checked.warnings);
    let workflow = checked.workflow;
    let site = Site::find(&dir);
    let worktrees = site.worktrees_dir(&workflow);
    let mut observers = observers(args.progress, workflow.workstreams.len(), &site, &workflow.status_file);
    let plan = Plan::new(workflow);
    let state = start(plan.clone(), &site, RunSettings::default(), &mut observers)
        .await
        .map_err(run_failed)?;
    let code = finish(&state, &plan, &site);
    if crate::output::quiet() {
        return Ok(code);
    }
    let d = dir.display();
    let flow = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "flow".into());
    let record = site.run_dir(&state.id).dir;
    let w = worktrees.parent().unwrap_or(&worktrees).display();
    let _ = crate::output::print_stdout(&format!(
        "\nwhat happened:\n{}\n\
         where to look:\n  what the run built:\n    git -C {d} diff --stat main integration/demo\n  \
         the merges, in dependency order:\n    git -C {d} log --graph --oneline integration/demo\n  \
         every attempt and what it fixed:\n    {flow} -C {d} status\n  \
         the record (state.json, events.jsonl, logs/):\n    {}\n\n\
         next: in your own repository, `{flow} init` writes a starting parallel.kdl; `{flow} help workflow` explains the language.\n\n\
         to remove the demo: {flow} -C {d} clean --force && rm -rf {d} {w}\n",
        what_happened(&state),
        record.display(),
    ));
    Ok(code)
}

/// What the run did with each agent's slip, from the record.
fn what_happened(state: &flow_engine::RunState) -> String {
    let mut out = String::new();
    for ws in &state.workstreams {
        for attempt in &ws.attempt_log {
            let Some(kind) = attempt.feedback else { continue };
            let slip = match kind.as_str() {
                "scope" => "changed a file outside what it owns",
                "test" => "wrote work its test failed",
                "verify" => "broke the project's tests once merged",
                "conflict" => "conflicted with the merged work",
                _ => "was asked for changes by its reviewer",
            };
            let then = if ws.phase.is_success() {
                "which fixed it"
            } else {
                "which did not fix it"
            };
            out.push_str(&format!(
                "  `{}` {slip}: flow sent that back to its agent (attempt {}), {then}.\n",
                ws.name, attempt.number
            ));
        }
    }
    let merged = state.workstreams.iter().filter(|w| w.phase.is_success()).count();
    out.push_str(&format!(
        "  {merged} of {} workstreams merged into integration/demo{}.\n",
        state.workstreams.len(),
        if merged == state.workstreams.len() {
            ", the tests green after each merge"
        } else {
            ""
        }
    ));
    out
}

fn create_repository(dir: &Path) -> Result<(), CommandError> {
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(CommandError::Usage(miette::miette!(
            "{} exists and is not empty; pick another folder with --dir",
            dir.display()
        )));
    }
    let made = || -> miette::Result<()> {
        for (path, text) in FILES {
            write(&dir.join(path), text)?;
        }
        write(&dir.join("parallel.kdl"), WORKFLOW)?;
        git(dir, &["init", "--quiet", "--initial-branch", "main"])?;
        git(dir, &["add", "--all"])?;
        git(
            dir,
            &["commit", "--quiet", "--no-verify", "-m", "A book catalog to build"],
        )
    };
    made().map_err(CommandError::System)
}

fn write(path: &PathBuf, text: &str) -> miette::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| miette::miette!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))
}

fn git(dir: &Path, args: &[&str]) -> miette::Result<()> {
    let status = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=flow demo",
            "-c",
            "user.email=demo@flow.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .status()
        .map_err(|e| miette::miette!("cannot run git (is it installed?): {e}"))?;
    if !status.success() {
        miette::bail!("git {} failed in {}", args.join(" "), dir.display());
    }
    Ok(())
}
