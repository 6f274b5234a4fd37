//! Writing what commands say: results on standard output, problems on standard error.

use crate::error::CommandError;

/// Writes to standard output; a reader that went away (`flow plan --json | head`) ends the
/// command quietly instead of failing.
pub fn print_stdout(text: &str) -> Result<(), CommandError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(CommandError::Exit(0)),
        Err(e) => Err(CommandError::Failed(miette::miette!(
            "cannot write to standard output: {e}"
        ))),
    }
}

/// Prints a JSON value on standard output.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), CommandError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CommandError::Failed(miette::miette!("cannot write JSON: {e}")))?;
    print_stdout(&format!("{text}\n"))
}
