//! `flow graph`: draw the dependency graph, coloured by a run's states on request.

use std::process::ExitCode;

use flow_engine::report::graph;
use flow_engine::run::state::Phase;
use flow_engine::{Plan, Site};

use crate::cli::{GraphArgs, GraphFormat};
use crate::commands::status::load_run;
use crate::error::CommandError;
use crate::load::{load, workflow_file};
use crate::output::{print_stdout, say};

/// Prints the graph in DOT or Mermaid, or writes it (an image through `dot`).
pub fn run(args: GraphArgs, site: &Site) -> Result<ExitCode, CommandError> {
    let (file, states) = match args.run.as_deref() {
        Some(run) => {
            let (_, state) = load_run(site, (run != "latest").then_some(run))?;
            let file = match (&args.file, &state.workflow_file) {
                (Some(f), _) => f.clone(),
                (None, Some(f)) => f.into(),
                (None, None) => workflow_file(None, site),
            };
            let states: Vec<(String, Phase)> = state.workstreams.iter().map(|w| (w.name.clone(), w.phase)).collect();
            (file, states)
        }
        None => (workflow_file(args.file.as_deref(), site), vec![]),
    };
    let plan = Plan::new(load(&file)?.workflow);
    let image = args.output.as_ref().and_then(|o| {
        let ext = o.extension()?.to_str()?.to_ascii_lowercase();
        matches!(ext.as_str(), "svg" | "png" | "pdf").then_some(ext)
    });
    let format = if image.is_some() { GraphFormat::Dot } else { args.format };
    let text = match format {
        GraphFormat::Dot => graph::dot_with_states(&plan, &states),
        GraphFormat::Mermaid => graph::mermaid_with_states(&plan, &states),
    };
    match (&args.output, image) {
        (None, _) => print_stdout(&text)?,
        (Some(path), None) => {
            std::fs::write(path, text)
                .map_err(|e| CommandError::System(miette::miette!("cannot write {}: {e}", path.display())))?;
            say(&format!("wrote {}", path.display()));
        }
        (Some(path), Some(ext)) => draw(&text, path, &ext)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Draws DOT text into an image with graphviz's `dot`.
fn draw(text: &str, path: &std::path::Path, ext: &str) -> Result<(), CommandError> {
    use std::io::Write;
    let started = std::process::Command::new("dot")
        .arg(format!("-T{ext}"))
        .arg("-o")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn();
    let mut child = match started {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CommandError::Usage(miette::miette!(
                help = "install graphviz (Debian and Ubuntu: `apt-get install graphviz`, macOS: `brew install graphviz`), or print the DOT text with `flow graph` and paste it into any Graphviz viewer",
                "drawing {} needs graphviz's `dot`, which is not installed",
                path.display()
            )));
        }
        Err(e) => return Err(CommandError::System(miette::miette!("cannot start dot: {e}"))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    let status = child
        .wait()
        .map_err(|e| CommandError::System(miette::miette!("dot did not finish: {e}")))?;
    if !status.success() {
        return Err(CommandError::System(miette::miette!(
            "dot failed ({status}) drawing {}",
            path.display()
        )));
    }
    say(&format!("wrote {}", path.display()));
    Ok(())
}
