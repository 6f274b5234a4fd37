//! The smallest workflows a newcomer writes: workstreams with only a `task` and `owns`, and
//! the presets they run on without naming a model.

use flow_dsl::{ModelSource, check_text, without_model};

/// The command a workstream's agent starts with when the workstream has no model.
fn model_free(text: &str, agent: &str) -> Vec<String> {
    let checked = check_text("presets.kdl", text).expect("the workflow checks");
    let agent = &checked.workflow.agents[agent];
    without_model(&agent.command).into_iter().map(str::to_string).collect()
}

#[test]
fn every_preset_runs_without_a_model() {
    let text = "import \"std:agents\"\nworkstream \"w\" { task \"x\" }\n";
    let checked = check_text("presets.kdl", text).expect("the workflow checks");
    for agent in checked.workflow.agents.values() {
        for template in [&agent.command, &agent.resume] {
            let kept = without_model(template);
            let wrong: Vec<&&str> = kept
                .iter()
                .filter(|a| flow_dsl::uses_model(a) || ["-m", "--model"].contains(*a))
                .collect();
            assert!(wrong.is_empty(), "agent `{}` keeps {wrong:?} in {kept:?}", agent.name);
            if !template.is_empty() {
                assert_eq!(
                    kept.first().copied(),
                    template.first().map(String::as_str),
                    "{}",
                    agent.name
                );
            }
        }
    }
    assert_eq!(
        model_free(text, "claude-code"),
        [
            "claude",
            "-p",
            "--output-format",
            "json",
            "--permission-mode",
            "bypassPermissions",
            "--",
            "{prompt}"
        ]
    );
    assert_eq!(
        model_free(text, "opencode"),
        ["opencode", "run", "--format", "json", "--auto", "--", "{prompt}"]
    );
}

#[test]
fn a_workstream_without_a_model_uses_the_agents_default() {
    let text = r#"
import "std:agents" "std:models"
workstream "free" { task "x" }
workstream "chosen" { task "x"; model "haiku" }
workstream "script" { agent "shell"; script "true" }
"#;
    let checked = check_text("models.kdl", text).expect("the workflow checks");
    assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    let sources: Vec<(&str, Option<&str>, ModelSource)> = checked
        .workflow
        .workstreams
        .iter()
        .map(|w| (w.name.as_str(), w.model.as_deref(), w.model_source))
        .collect();
    assert_eq!(
        sources,
        [
            ("free", None, ModelSource::AgentDefault),
            ("chosen", Some("haiku"), ModelSource::Workstream),
            ("script", None, ModelSource::None),
        ]
    );
}
