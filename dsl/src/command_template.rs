//! An agent's command template without a model: which arguments a run leaves out when its
//! workstream names no model, so that the tool falls back on its own default model.
//!
//! The rule is positional and needs nothing new in an agent definition, so every preset and
//! every agent a workflow defines works without a model as written:
//!
//! - an argument that holds a model placeholder (`{model}`, `{model_name}`, `{provider}`) is
//!   left out: `"--model={model}"`, `"{provider}/{model}"`;
//! - when that argument does not start with `-` (it is an option's value), the argument
//!   right before it is left out too if it is an option waiting for that value: it starts
//!   with `-`, is not `--` (the end of options), and holds neither `=` nor a placeholder.
//!   `"--model" "{model}"` and `"-m" "{provider}/{model}"` go as pairs.
//!
//! The program (the first argument) always stays.

/// The placeholders that stand for a workstream's model.
pub const MODEL_PLACEHOLDERS: &[&str] = &["model", "model_name", "provider"];

/// Tells whether an argument holds one of the model placeholders.
pub fn uses_model(argument: &str) -> bool {
    MODEL_PLACEHOLDERS
        .iter()
        .any(|p| argument.contains(&format!("{{{p}}}")))
}

/// Returns the arguments of a command template that a run without a model keeps, in order
/// (see the module documentation for the rule).
pub fn without_model(template: &[String]) -> Vec<&str> {
    let mut keep = vec![true; template.len()];
    for (i, argument) in template.iter().enumerate().skip(1) {
        if !uses_model(argument) {
            continue;
        }
        keep[i] = false;
        if argument.starts_with('-') || i < 2 {
            continue;
        }
        let before = template[i - 1].as_str();
        let takes_a_value = before.len() > 1
            && before.starts_with('-')
            && before != "--"
            && !before.contains('=')
            && !before.contains('{');
        if takes_a_value {
            keep[i - 1] = false;
        }
    }
    template
        .iter()
        .zip(keep)
        .filter_map(|(argument, kept)| kept.then_some(argument.as_str()))
        .collect()
}

/// The `{name}` placeholders written in a text, in order.
pub fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices('{').filter_map(move |(i, _)| {
        let rest = &text[i + 1..];
        let end = rest.find('}')?;
        let name = &rest[..end];
        (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped(template: &str) -> String {
        let args: Vec<String> = template.split(' ').map(str::to_string).collect();
        without_model(&args).join(" ")
    }

    #[test]
    fn model_arguments_and_their_options_are_left_out() {
        let table: &[(&str, &str)] = &[
            // The option and its value go together.
            (
                "claude -p --model {model} --output-format json -- {prompt}",
                "claude -p --output-format json -- {prompt}",
            ),
            (
                "gemini --prompt={prompt} -m {model} -o json",
                "gemini --prompt={prompt} -o json",
            ),
            (
                "opencode run -m {provider}/{model} -- {prompt}",
                "opencode run -- {prompt}",
            ),
            // A value glued to its option goes alone.
            ("tool --model={model} {prompt}", "tool {prompt}"),
            ("tool -p --model={model_name}", "tool -p"),
            // The end of options and an option that already has its value stay.
            ("tool -- {model} {prompt}", "tool -- {prompt}"),
            ("tool --x=1 {model}", "tool --x=1"),
            ("tool --prompt {prompt} {model}", "tool --prompt {prompt}"),
            // A positional model goes alone; the program always stays.
            ("tool {model} {prompt}", "tool {prompt}"),
            ("{model} -m {model}", "{model}"),
            ("-m {model}", "-m"),
            // Nothing to leave out.
            ("sh -c {script}", "sh -c {script}"),
            ("tool -m model {prompt}", "tool -m model {prompt}"),
            // Each of two model arguments takes its own option.
            ("tool -m {model} -p {provider} {prompt}", "tool {prompt}"),
        ];
        let mut wrong = vec![];
        for (template, expected) in table {
            let found = dropped(template);
            if found != *expected {
                wrong.push(format!("{template:?}: expected {expected:?}, found {found:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn placeholders_are_found_in_order() {
        let found: Vec<&str> = placeholders("{a}-{b_c}{}{not one}{d").collect();
        assert_eq!(found, ["a", "b_c"]);
    }
}
