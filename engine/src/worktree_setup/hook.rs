//! The scope hook: a `pre-commit` in every worktree flow makes that refuses a person's commit
//! touching paths outside the workstream's `owns` or inside its `forbid`, or files copied
//! from the user's checkout.
//!
//! It is installed for that worktree only: `core.hooksPath` in the worktree's own
//! `config.worktree` (read by git once `extensions.worktreeConfig` is on) points at a folder
//! under `.flow/hooks/`, outside every worktree, so neither the user's hooks nor their main
//! checkout's settings change, and an agent cannot rewrite the hook from its worktree. The
//! `pre-commit` there calls `flow hook pre-commit` with the workflow file of the user's
//! checkout (never the worktree's copy, which the person or agent could widen), so the check
//! follows the workflow as it is now; then it runs the repository's own `pre-commit`. Every
//! other hook the repository has runs as before: the folder holds a forwarder for each one
//! there when the hook is installed, so a hook added later is forwarded from the next
//! `flow prepare` or run on. A forwarder for every hook git knows, each asking git where the
//! repository's hooks are, cost processes at every commit: in one run of
//! `bench/git_attributes.sh` (on a loaded machine) 16 commits took 4.4 s against 3.0 s
//! for the same commits without flow's hooks; forwarding only existing hooks, 1.5 s against
//! 2.4 s.
//!
//! Agents never run it: flow starts them with `core.hooksPath` pointing nowhere, and checks
//! their scope itself after they end. `git commit --no-verify` skips it; `flow merge` still
//! checks.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use flow_dsl::{ScopePolicy, Workflow};

/// The client-side hooks git runs from `core.hooksPath`: each is forwarded to the
/// repository's own.
const HOOKS: &[&str] = &[
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "post-rewrite",
    "pre-auto-gc",
    "reference-transaction",
    "push-to-checkout",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
    "post-index-change",
];

/// The file in the hook folder listing the copied paths, one per line.
pub const COPIED_FILE: &str = "copied";

/// Quotes a string for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Where the hooks of one workstream's worktree live: `.flow/hooks/<workflow>/<workstream>`.
pub fn hooks_dir(flow_dir: &Path, workflow: &Workflow, workstream: &str) -> PathBuf {
    flow_dir.join("hooks").join(&workflow.name).join(workstream)
}

/// What the hook needs to know.
pub struct ScopeHook<'a> {
    /// flow's own program.
    pub flow: &'a Path,
    /// The workflow file in the user's checkout.
    pub workflow_file: &'a Path,
    pub workstream: &'a str,
    /// The folder the hooks are written to ([`hooks_dir`]).
    pub hooks_dir: &'a Path,
    /// Paths copied into the worktree (never to be committed).
    pub copied: &'a [String],
}

impl ScopeHook<'_> {
    /// Writes the hooks and points the worktree at `worktree` at them. `own_hooks` is the
    /// repository's own hooks folder (see [`own_hooks_dir`]).
    pub fn install(&self, repo_common_dir: &Path, own_hooks: &str, worktree: &Path) -> Result<(), String> {
        let err = |what: &str, path: &Path, e: &dyn std::fmt::Display| format!("cannot {what} {}: {e}", path.display());
        fs::create_dir_all(self.hooks_dir).map_err(|e| err("create", self.hooks_dir, &e))?;
        // Forwarders only for the hooks the repository has (each costs a process per use):
        // no `git` is asked at commit time.
        let own_dir = if Path::new(own_hooks).is_absolute() {
            PathBuf::from(own_hooks)
        } else {
            worktree.join(own_hooks)
        };
        for name in HOOKS {
            let path = self.hooks_dir.join(name);
            let own = format!("{own_hooks}/{name}");
            let body = if *name == "pre-commit" {
                format!(
                    "{} hook pre-commit --workflow {} --workstream {} --copied {} || exit $?\nif [ -x {own} ]; then exec {own} \"$@\"; fi\n",
                    quote(&self.flow.display().to_string()),
                    quote(&self.workflow_file.display().to_string()),
                    quote(self.workstream),
                    quote(&self.hooks_dir.join(COPIED_FILE).display().to_string()),
                    own = quote(&own),
                )
            } else if is_executable(&own_dir.join(name)) {
                format!("exec {} \"$@\"\n", quote(&own))
            } else {
                let _ = fs::remove_file(&path);
                continue;
            };
            let script = format!(
                "#!/bin/sh\n# Written by flow for workstream {}; remade by `flow prepare` and `flow run`.\n{body}",
                self.workstream
            );
            fs::write(&path, script).map_err(|e| err("write", &path, &e))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .map_err(|e| err("make executable", &path, &e))?;
        }
        let copied = self.hooks_dir.join(COPIED_FILE);
        let mut list = self.copied.join("\n");
        list.push('\n');
        fs::write(&copied, list).map_err(|e| err("write", &copied, &e))?;

        // Per-worktree settings, then this worktree's `core.hooksPath`.
        let common = repo_common_dir.join("config");
        let mut config = git2::Config::open(&common).map_err(|e| err("open", &common, &e))?;
        if !config.get_bool("extensions.worktreeConfig").unwrap_or(false) {
            config
                .set_bool("extensions.worktreeConfig", true)
                .map_err(|e| err("set extensions.worktreeConfig in", &common, &e))?;
        }
        let admin = admin_dir(worktree)?;
        let own = admin.join("config.worktree");
        let mut config = git2::Config::open(&own).map_err(|e| err("open", &own, &e))?;
        let value = self.hooks_dir.display().to_string();
        if config.get_string("core.hooksPath").ok().as_deref() == Some(value.as_str()) {
            return Ok(());
        }
        config
            .set_str("core.hooksPath", &value)
            .map_err(|e| err("set core.hooksPath in", &own, &e))
    }
}

/// Tells whether `path` is a file anyone may execute.
fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The repository's own hooks folder, as git finds it for the user's checkout: the
/// `core.hooksPath` of its settings (`~` expanded; a relative one stays relative, as git
/// reads it from the worktree's root), else the common `hooks/` folder.
pub fn own_hooks_dir(git: &crate::git::Git) -> String {
    let configured = git2::Repository::open(git.root())
        .and_then(|repo| repo.config())
        .and_then(|config| config.get_path("core.hooksPath"));
    match configured {
        Ok(path) => path.display().to_string(),
        Err(_) => git.common_dir().join("hooks").display().to_string(),
    }
}

/// The worktree's private folder in the repository, from its `.git` file.
fn admin_dir(worktree: &Path) -> Result<PathBuf, String> {
    let file = worktree.join(".git");
    let text = fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let target = text
        .trim_end()
        .strip_prefix("gitdir: ")
        .ok_or_else(|| format!("{} does not name a git directory", file.display()))?;
    Ok(worktree.join(target))
}

/// What the hook says about a commit (nothing when all is well), and whether it refuses it:
/// always for a copied file, for a breach unless `scope-policy` is `"warn"`.
pub fn check_commit(
    workflow: &Workflow,
    workstream: &str,
    staged: &[String],
    copied: &[String],
) -> Option<(String, bool)> {
    let ws = workflow.workstreams.iter().find(|w| w.name == workstream)?;
    let list = super::copy::CopyList { paths: copied.to_vec() };
    let mut lines = vec![];
    let mut copied_staged = false;
    for path in staged {
        if list.holds(path) {
            copied_staged = true;
            lines.push(format!(
                "  `{path}` was copied from your checkout by flow and is never committed"
            ));
        } else if let Some(breach) = ws.scope.breach(path) {
            lines.push(format!("  {breach}"));
        }
    }
    if lines.is_empty() {
        return None;
    }
    let warn = workflow.scope_policy == ScopePolicy::Warn && !copied_staged;
    let message = format!(
        "flow: this commit changes paths outside workstream `{workstream}`'s scope:\n{}\n{}",
        lines.join("\n"),
        if warn {
            "flow: committed anyway (scope-policy \"warn\"); `flow merge` will report it."
        } else {
            "Unstage them (`git restore --staged PATH`), or commit them with `git commit --no-verify`\n\
             (your choice: `flow merge` still checks the scope)."
        }
    );
    Some((message, !warn))
}

/// flow's own program, for the scope hook to call: this process's, when it is `flow` (a
/// library caller, such as a test binary, installs no hook).
pub fn flow_program() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .filter(|exe| exe.file_name().is_some_and(|name| name == "flow"))
}

/// Installs the scope hook of workstream `index` in its worktree at `dir`, when flow's
/// program and the workflow's file are known (else nothing is installed).
pub fn install_scope_hook(
    flow_dir: &Path,
    git: &crate::git::Git,
    workflow: &Workflow,
    index: usize,
    dir: &Path,
    copied: &[String],
) -> Result<(), String> {
    let (Some(flow), Some(file)) = (flow_program(), workflow.path.as_deref()) else {
        return Ok(());
    };
    let ws = &workflow.workstreams[index];
    let hooks = hooks_dir(flow_dir, workflow, &ws.name);
    let file = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    ScopeHook {
        flow: &flow,
        workflow_file: &file,
        workstream: &ws.name,
        hooks_dir: &hooks,
        copied,
    }
    .install(git.common_dir(), &own_hooks_dir(git), dir)
}
