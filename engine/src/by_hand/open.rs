//! `flow open`: a workstream's agent started for a person, interactively, in its worktree,
//! with the prompt a run would give it; or the person's shell there.
//!
//! The worktree is prepared first as `flow prepare` would (copies, setup, scope hook), and
//! the context written. The agent gets what a run's agent gets: its clean environment (its
//! `env`, `pass-env`, the account's key) with the `FLOW_*` variables, and the same kernel
//! sandbox (it may write its worktree, its temporary folder, its branch's git places and its
//! `writable` ones). A shell gets the person's own environment with the `FLOW_*` variables
//! (it is the person's), and the same sandbox: what the person starts in it, often an agent,
//! is as untrusted as a run's. `--no-sandbox` (`sandbox: false`) drops the sandbox, for a
//! tool that must write elsewhere; the environment is the same either way.
//!
//! The session runs in flow's own process group, so that it is the terminal's foreground and
//! gets its input and its Ctrl-C; flow ignores Ctrl-C while it waits. The git directory is
//! guarded as around a run's agent: a snapshot before, the comparison after, what changed
//! undone and recorded with the session.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use flow_dsl::Isolation;

use super::Layout;
use super::prepare::{PrepareStatus, SetupSettings, by_hand_identity, prepare_only, set_up};
use super::record::{self, ByHandRecord, Session, user_name};
use crate::agent::command::{Placeholders, Runner, launch};
use crate::agent::process::start_time;
use crate::confine::Place;
use crate::context;
use crate::plan::Plan;
use crate::run::guard::RunGuard;
use crate::sandbox::wrap;
use crate::worktree_setup::ports::PortBlock;

/// What a person asked `flow open` for.
pub struct OpenRequest<'a> {
    pub index: usize,
    /// The person's `$SHELL` instead of the agent.
    pub shell: bool,
    /// Start it in the workstream's sandbox.
    pub sandbox: bool,
    pub setup: SetupSettings<'a>,
    /// Stops the setup (Ctrl-C before the session starts).
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// How a session ended.
#[derive(Debug, Clone)]
pub struct Opened {
    pub session: Session,
    pub worktree: PathBuf,
    /// Said once before the session started (the worktree was made, what the sandbox does).
    pub notes: Vec<String>,
}

/// Why `flow open` started nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRefusal {
    pub message: String,
    pub help: Option<String>,
}

impl OpenRefusal {
    fn new(message: impl Into<String>) -> OpenRefusal {
        OpenRefusal {
            message: message.into(),
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> OpenRefusal {
        self.help = Some(help.into());
        self
    }
}

/// Prepares the workstream's worktree when needed, starts its agent (or a shell) there with
/// the terminal, waits for it, and records the session.
///
/// `before_start` is called once everything is ready, just before the session starts (to
/// print the notes).
pub async fn open(
    plan: &Plan,
    layout: &Layout,
    request: OpenRequest<'_>,
    before_start: impl FnOnce(&[String]),
) -> Result<Opened, OpenRefusal> {
    let workflow = &plan.workflow;
    let index = request.index;
    let ws = &workflow.workstreams[index];
    let flow_dir = layout.site.flow_dir();
    if ws.isolation == Isolation::None {
        return Err(OpenRefusal::new(format!(
            "`{}` has `isolation \"none\"`: it has no worktree to open",
            ws.name
        )));
    }
    let agent = workflow.agent_of(ws);
    if !request.shell && agent.interactive.is_empty() {
        return Err(OpenRefusal::new(format!(
            "agent `{}` of `{}` has no interactive form",
            agent.name, ws.name
        ))
        .help(format!(
            "`flow open {} --shell` opens a shell in its worktree; or give the agent an \
             `interactive \"program\" \"arg\" ...` command (see `flow help workflow`)",
            ws.name
        )));
    }
    let existing = ByHandRecord::load(flow_dir, &workflow.name, &ws.name).map_err(OpenRefusal::new)?;
    if let Some(running) = existing.running_session() {
        return Err(OpenRefusal::new(format!(
            "`{}` is already open: {} started {} by {} (flow open's process {})",
            ws.name, running.agent, running.started, running.by, running.opener
        ))
        .help("end that session first"));
    }

    // The worktree, as `flow prepare` makes it (setup only when it did not pass there).
    let mut notes = vec![];
    let mut items = prepare_only(plan, layout, Some(index)).map_err(|e| OpenRefusal::new(e.to_string()))?;
    set_up(plan, layout, &mut items, &request.setup, request.stop.clone()).await;
    if *request.stop.borrow() {
        return Err(OpenRefusal::new("interrupted while preparing"));
    }
    let Some(item) = items.into_iter().next() else {
        return Err(OpenRefusal::new(format!("`{}` was not prepared", ws.name)));
    };
    match item.status {
        PrepareStatus::Created => notes.push(format!("prepared {}", item.detail)),
        PrepareStatus::Reused => {}
        PrepareStatus::Waiting | PrepareStatus::Skipped | PrepareStatus::Failed => {
            return Err(OpenRefusal::new(format!("cannot open `{}`: {}", ws.name, item.detail)));
        }
    }
    let dir = layout.worktree_of(&ws.name);
    let branch = workflow.branch_of(ws);

    // The prompt a run gives, with its dependencies' handoffs.
    let rendered = crate::run::prompt::context_for(workflow, index, &layout.site);
    let prompt_file = context::write(&rendered, &dir, &ws.name)
        .map_err(|e| OpenRefusal::new(format!("cannot write the context into {}: {e}", dir.display())))?;

    let port = PortBlock::take(ws.ports);
    let identity = by_hand_identity(workflow, index, &dir, port.as_ref().map(PortBlock::first));
    let parent = request.setup.parent_env;
    let (program, args, env, agent_name) = if request.shell {
        let shell = parent
            .get("SHELL")
            .filter(|s| !s.is_empty())
            .cloned()
            .unwrap_or_else(|| "/bin/sh".to_string());
        let mut env: BTreeMap<String, String> = parent.clone();
        env.extend(identity.variables());
        (shell, vec![], env, "shell".to_string())
    } else {
        let runner = Runner {
            agent,
            command: &agent.interactive,
            model: workflow.model_of(ws),
            model_name: ws.model.as_deref(),
        };
        let values = Placeholders {
            prompt: &rendered.prompt,
            prompt_file: &prompt_file,
            worktree: &dir,
            session: "",
        };
        let launched =
            launch(workflow, index, &runner, &values, parent, &identity.variables(), None).map_err(OpenRefusal::new)?;
        let spec = launched.spec;
        (spec.program, spec.args, spec.env, agent.name.clone())
    };

    let tmp = record::tmp_path(flow_dir, &workflow.name, &ws.name);
    let sandboxing = if request.sandbox {
        let place = Place {
            dir: &dir,
            tmp: &tmp,
            commits: Some((&layout.git, &branch)),
        };
        request
            .setup
            .confiner
            .agent(ws, agent, &place)
            .map_err(|e| OpenRefusal::new(format!("cannot confine the session: {e}")))?
    } else {
        None
    };
    let resolved = resolve_program(&program, env.get("PATH").map(String::as_str));
    let mut command = match &sandboxing {
        Some(s) => {
            let (command, confinement) = wrap(&s.wrapper, &resolved, &s.policy)
                .map_err(|e| OpenRefusal::new(format!("cannot confine `{program}` in its sandbox: {e}")))?;
            if !confinement.is_full() {
                notes.push(format!("the sandbox is partial: {confinement:?}"));
            }
            command
        }
        None => {
            if request.sandbox && ws.sandbox != flow_dsl::SandboxMode::Off {
                notes.push("this kernel cannot confine it: the session runs unconfined".into());
            }
            tokio::process::Command::new(&resolved)
        }
    };
    command
        .args(&args)
        .current_dir(&dir)
        .env_clear()
        .envs(&env)
        .envs(sandboxing.as_ref().map(|s| ("TMPDIR", &s.tmpdir)))
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());

    // The guard's snapshot of the git directory, as around a run's agent.
    let guard = RunGuard::new(layout.git.clone(), workflow);
    let watch = {
        let (dir, branch) = (dir.clone(), branch.clone());
        let guard = std::sync::Arc::new(guard);
        let for_task = guard.clone();
        let watch = tokio::task::spawn_blocking(move || for_task.before(&dir, &branch, None))
            .await
            .map_err(|e| OpenRefusal::new(e.to_string()))?
            .map_err(OpenRefusal::new)?;
        (guard, watch)
    };

    before_start(&notes);
    // Ctrl-C belongs to the session: flow waits on. The handler is in place before the
    // session starts (made here, not in the task).
    let mut interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| OpenRefusal::new(format!("cannot handle Ctrl-C: {e}")))?;
    let ignore = tokio::spawn(async move { while interrupts.recv().await.is_some() {} });
    let mut child = command
        .spawn()
        .map_err(|e| OpenRefusal::new(format!("cannot start `{program}` in {}: {e}", dir.display())))?;
    let mut session = Session {
        by: user_name(),
        agent: agent_name,
        pid: child.id(),
        opener: std::process::id(),
        opener_started: i32::try_from(std::process::id()).ok().and_then(start_time),
        started: crate::time::now(),
        ended: None,
        exit: None,
        sandboxed: sandboxing.is_some(),
        tampering: vec![],
    };
    let recorded = session.clone();
    let started = ByHandRecord::update(flow_dir, &workflow.name, &ws.name, |r| r.sessions.push(recorded));
    if let Err(e) = started {
        let _ = child.start_kill();
        return Err(OpenRefusal::new(e));
    }
    let status = child.wait().await;
    ignore.abort();
    session.ended = Some(crate::time::now());
    session.exit = status.ok().and_then(|s| s.code());
    let (guard, watch) = watch;
    let keep_in = record::records_dir(flow_dir, &workflow.name)
        .join("undone")
        .join(&ws.name);
    let tampering = tokio::task::spawn_blocking(move || guard.after(watch, &keep_in))
        .await
        .map(|t| t.lines())
        .unwrap_or_else(|e| vec![format!("cannot compare the git directory: {e}")]);
    session.tampering = tampering;
    let ended = session.clone();
    ByHandRecord::update(flow_dir, &workflow.name, &ws.name, |r| {
        match r
            .sessions
            .iter_mut()
            .rev()
            .find(|s| s.started == ended.started && s.opener == ended.opener)
        {
            Some(s) => *s = ended,
            None => r.sessions.push(ended),
        }
    })
    .map_err(OpenRefusal::new)?;
    drop(port);
    Ok(Opened {
        session,
        worktree: dir,
        notes,
    })
}

/// Finds a bare program name in `path` (the session's own `PATH`), as a shell would; a name
/// with a `/`, or one not found, is kept as it is.
fn resolve_program(program: &str, path: Option<&str>) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    path.unwrap_or("")
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(program))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| PathBuf::from(program))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
