//! `flow help`: a command's help, or one of the topics built into the binary: the workflow
//! language (`dsl/GRAMMAR.md`, as written) and the exit codes.

use std::fmt::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, HelpArgs};
use crate::error::{CommandError, EXIT_CODES};
use crate::output::{Stream, colored, print_stdout};

/// The workflow language reference, as the repository has it.
const GRAMMAR: &str = include_str!("../../dsl/GRAMMAR.md");

/// The topics `flow help` knows besides the commands, each with what it shows.
const TOPICS: &[(&str, &str)] = &[
    (
        "workflow",
        "the workflow language: every node, argument, property and default",
    ),
    ("exit-codes", "what each exit status of flow means"),
];

/// Prints the help of a command (or of flow), or a topic.
pub fn run(args: HelpArgs) -> Result<ExitCode, CommandError> {
    let mut command = Cli::command();
    command.build();
    let color = colored(Stream::Stdout);
    let text = |help: clap::builder::StyledStr| {
        if color {
            help.ansi().to_string()
        } else {
            help.to_string()
        }
    };
    match args.topic.first().map(String::as_str) {
        Some("workflow" | "language" | "grammar") => print_stdout(GRAMMAR)?,
        Some("exit-codes" | "exit-status" | "exit") => print_stdout(&exit_codes())?,
        None => {
            let mut help = text(command.render_long_help());
            help.push_str("\nHelp topics:\n");
            for (topic, what) in TOPICS {
                let _ = writeln!(help, "  {topic:<12} {what}");
            }
            print_stdout(&help)?;
        }
        Some(_) => {
            // `flow help resume`, and nested as clap's own help is: `flow help a b`.
            let mut current = &mut command;
            let mut path = vec!["flow".to_string()];
            for name in &args.topic {
                let Some(sub) = current.find_subcommand_mut(name) else {
                    let topics: Vec<&str> = TOPICS.iter().map(|(t, _)| *t).collect();
                    return Err(CommandError::Usage(miette::miette!(
                        help = format!("`flow help` lists the commands; the topics are {}", topics.join(", ")),
                        "no command or help topic `{}`",
                        path.iter()
                            .skip(1)
                            .chain(std::iter::once(name))
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(" ")
                    )));
                };
                path.push(name.clone());
                current = sub;
            }
            let mut sub = current.clone().bin_name(path.join(" "));
            print_stdout(&text(sub.render_long_help()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The exit-code table as text, one status per paragraph.
pub fn exit_codes() -> String {
    let mut out = String::from("flow's exit status:\n\n");
    for (code, meaning) in EXIT_CODES {
        let options = textwrap::Options::new(86).subsequent_indent("       ");
        let _ = writeln!(out, "{code:>5}  {}", textwrap::fill(meaning, options));
    }
    out
}
