//! `flow clean`: a workflow's worktrees and branches removed, unless they hold work.

use flow_dsl::{Isolation, Workflow};
use serde::Serialize;

use super::Layout;
use crate::context;
use crate::git::GitError;

/// What `flow clean` did with one thing.
#[derive(Debug, Clone, Serialize)]
pub struct CleanItem {
    /// The thing: `worktree PATH`, `branch NAME`, `worktree record NAME`.
    pub what: String,
    pub removed: bool,
    /// Why it was kept, or how it went (`deleted (merged)`); empty for a plain removal.
    pub detail: String,
    /// Kept because it holds the result: the integration branch, with merges not in base.
    /// That is not unfinished work left behind.
    pub result: bool,
}

/// Removes a workflow's worktrees and branches (and its integration branch when it holds
/// nothing that is not in base), refusing to drop uncommitted or unmerged work unless `force`.
pub fn clean(workflow: &Workflow, layout: &Layout, force: bool) -> Result<Vec<CleanItem>, GitError> {
    let mut out = vec![];
    let mut say = |what: String, removed: bool, detail: String| {
        out.push(CleanItem {
            what,
            removed,
            detail,
            result: false,
        })
    };
    // What runs left of their agents' object folders in `objects/info/alternates`: comments
    // of the length of the lines they stand for (see `Git::compact_alternates`).
    let _ = layout.git.compact_alternates();
    let pruned = layout.git.prune_stale_worktrees()?;
    for name in pruned {
        say(
            format!("worktree record {name}"),
            true,
            "its folder was deleted by hand; pruned".into(),
        );
    }
    let into_head = layout.git.branch_head(&layout.into)?;
    let worktrees = layout.git.worktrees()?;
    let mut kept_any = false;
    for ws in &workflow.workstreams {
        if ws.isolation == Isolation::None {
            continue;
        }
        let dir = layout.worktree_of(&ws.name);
        let branch = workflow.branch_of(ws);
        let mut worktree_kept = false;
        if worktrees.iter().any(|w| w.path == dir) {
            match layout
                .git
                .remove_worktree_ignoring(&dir, force, &context::excluded_prefixes(workflow))
            {
                Ok(()) => say(format!("worktree {}", dir.display()), true, String::new()),
                Err(GitError::Dirty { paths, .. }) => {
                    worktree_kept = true;
                    say(
                        format!("worktree {}", dir.display()),
                        false,
                        format!("uncommitted changes in {} (use --force to drop them)", paths.join(", ")),
                    );
                }
                Err(e) => {
                    worktree_kept = true;
                    say(format!("worktree {}", dir.display()), false, e.to_string());
                }
            }
        }
        if !worktree_kept {
            // Its by-hand record (`flow open`, `flow done`) goes with it; the logs stay.
            let record = super::record::record_path(layout.site.flow_dir(), &workflow.name, &ws.name);
            let _ = std::fs::remove_file(record);
        }
        let Some(head) = layout.git.branch_head(&branch)? else {
            continue;
        };
        if worktree_kept {
            kept_any = true;
            say(format!("branch {branch}"), false, "its worktree was kept".into());
            continue;
        }
        let merged = head == layout.base_commit
            || layout.git.is_ancestor(head, layout.base_commit)?
            || into_head.is_some_and(|i| head == i || layout.git.is_ancestor(head, i).unwrap_or(false));
        if !merged && !force {
            kept_any = true;
            say(
                format!("branch {branch}"),
                false,
                "it has commits not merged anywhere (use --force to delete it)".into(),
            );
            continue;
        }
        match layout.git.delete_branch(&branch) {
            Ok(()) => say(
                format!("branch {branch}"),
                true,
                if merged {
                    "deleted (merged)".into()
                } else {
                    "deleted (unmerged work dropped: --force)".into()
                },
            ),
            Err(e) => {
                kept_any = true;
                say(format!("branch {branch}"), false, e.to_string());
            }
        }
    }
    let verify_dir = layout.site.integration_dir(workflow);
    if worktrees.iter().any(|w| w.path == verify_dir) {
        match layout.git.remove_worktree(&verify_dir, true) {
            Ok(()) => say(
                format!("worktree {}", verify_dir.display()),
                true,
                "removed (integration checkout)".into(),
            ),
            Err(e) => say(format!("worktree {}", verify_dir.display()), false, e.to_string()),
        }
    }
    if let Some(head) = into_head {
        let in_base = head == layout.base_commit || layout.git.is_ancestor(head, layout.base_commit)?;
        if (in_base || force) && !kept_any {
            match layout.git.delete_branch(&layout.into) {
                Ok(()) => say(
                    format!("branch {}", layout.into),
                    true,
                    if in_base {
                        "deleted (nothing beyond base)".into()
                    } else {
                        "deleted (merges not in base dropped: --force)".into()
                    },
                ),
                Err(e) => say(format!("branch {}", layout.into), false, e.to_string()),
            }
        } else if !in_base {
            say(
                format!("branch {}", layout.into),
                false,
                format!(
                    "it holds the result: merges not in {} (merge it, or use --force)",
                    layout.base
                ),
            );
            if let Some(item) = out.last_mut() {
                item.result = true;
            }
        }
    }
    let _ = std::fs::remove_dir(&layout.worktrees_dir);
    if let Some(parent) = layout.worktrees_dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(out)
}

/// Runs the `teardown` of each workstream whose worktree `flow clean` is about to remove
/// (it exists, and holds no uncommitted work unless `force`), as a setup runs: `sh -c` in the
/// worktree, the agents' clean environment with the workstream's variables, its
/// `setup-timeout`. Returns what failed, one line per workstream; a failure does not keep
/// the worktree.
pub async fn teardown(workflow: &Workflow, layout: &Layout, force: bool) -> Vec<CleanItem> {
    let parent: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let mut out = vec![];
    for (index, ws) in workflow.workstreams.iter().enumerate() {
        if ws.teardown.is_empty() || ws.isolation == Isolation::None {
            continue;
        }
        let dir = layout.worktree_of(&ws.name);
        if !dir.join(".git").exists() {
            continue;
        }
        if !force
            && layout
                .git
                .has_uncommitted(&dir, &context::excluded_prefixes(workflow))
                .unwrap_or(true)
        {
            continue;
        }
        let identity = crate::worktree_setup::Identity {
            workstream: ws.name.clone(),
            worktree: dir.clone(),
            run: String::new(),
            branch: Some(workflow.branch_of(ws)),
            port: None,
            port_count: ws.ports,
        };
        let mut variables = identity.variables();
        variables.remove("FLOW_RUN");
        let env = crate::worktree_setup::workstream_environment(workflow, index, &parent, &variables);
        let log_path = layout.site.flow_dir().join("teardown").join(format!("{}.log", ws.name));
        // In the sandbox its test would get.
        let tmp = layout.site.flow_dir().join("teardown").join("tmp").join(&ws.name);
        let place = crate::confine::Place {
            dir: &dir,
            tmp: &tmp,
            commits: None,
        };
        let sandbox = match crate::confine::Confiner::new(&parent, layout.site.root()).test(ws, &place) {
            Ok(sandbox) => sandbox,
            Err(e) => {
                out.push(CleanItem {
                    what: format!("teardown of {}", ws.name),
                    removed: false,
                    detail: format!("cannot confine it: {e}; the worktree is removed anyway"),
                    result: true,
                });
                continue;
            }
        };
        let setup = crate::worktree_setup::Setup {
            commands: &ws.teardown,
            dir: &dir,
            env,
            log_path: log_path.clone(),
            timeout: ws.setup_timeout,
            grace: std::time::Duration::from_secs(5),
            sandbox,
            secrets: Vec::new(),
            hurry: None,
        };
        let (_stop_sender, stop) = tokio::sync::watch::channel(false);
        if let Err(failure) = crate::worktree_setup::run_setup(setup, stop).await {
            out.push(CleanItem {
                what: format!("teardown of {}", ws.name),
                removed: false,
                detail: format!(
                    "{} (log: {}); the worktree is removed anyway",
                    failure.detail,
                    log_path.display()
                ),
                result: true,
            });
        }
    }
    out
}
