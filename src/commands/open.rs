//! `flow open`: a workstream's agent (or your shell) in its worktree, in this terminal.

use std::collections::BTreeMap;
use std::process::ExitCode;

use flow_engine::by_hand::open::{OpenRequest, open};
use flow_engine::by_hand::prepare::SetupSettings;
use flow_engine::{Plan, Site};

use crate::cli::OpenArgs;
use crate::error::CommandError;
use crate::load::{file_and_names, load_layout, workflow_file, workstream_index};

/// Opens the session, waits for it, and exits with its status.
pub async fn run(args: OpenArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (given, names) = file_and_names(&args.words);
    let file = workflow_file(given.as_deref(), site);
    let [name] = names.as_slice() else {
        return Err(CommandError::Usage(miette::miette!(
            help = "`flow open [FILE] WORKSTREAM`",
            "name one workstream to open"
        )));
    };
    let (workflow, layout) = load_layout(site, &given)?;
    let index = workstream_index(&workflow, name, &file)?;
    let plan = Plan::new(workflow);
    let parent_env: BTreeMap<String, String> = std::env::vars().collect();
    let confiner = flow_engine::confine::Confiner::new(&parent_env, site.root());
    let request = OpenRequest {
        index,
        shell: args.shell,
        sandbox: !args.no_sandbox,
        setup: SetupSettings {
            parent_env: &parent_env,
            confiner: &confiner,
            grace: std::time::Duration::from_secs(5),
        },
        stop: crate::interrupt::stop_on_ctrl_c(),
    };
    let opened = open(&plan, &layout, request, |notes| {
        for note in notes {
            crate::output::say(note);
        }
    })
    .await
    .map_err(|refusal| {
        CommandError::Failed(match refusal.help {
            Some(help) => miette::miette!(help = help, "{}", refusal.message),
            None => miette::miette!("{}", refusal.message),
        })
    })?;
    let session = &opened.session;
    for line in &session.tampering {
        crate::output::print_stderr(&format!("flow: the session changed the git directory: {line}\n"));
    }
    let ended = match session.exit {
        Some(code) => format!("exited with {code}"),
        None => "ended by a signal".to_string(),
    };
    crate::output::say(&format!(
        "{name}: {} {ended}; when the work is committed: flow done {}",
        session.agent,
        if given.is_some() {
            format!("{} {name}", file.display())
        } else {
            name.clone()
        }
    ));
    Ok(match session.exit {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(1),
    })
}
