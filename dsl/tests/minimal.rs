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
workstream "free" { task "x"; owns "a/**" }
workstream "chosen" { task "x"; model "haiku"; owns "b/**" }
workstream "script" { agent "shell"; script "true"; owns "c/**" }
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

#[test]
fn a_file_with_only_tasks_and_owns_checks_without_warnings() {
    let text = r#"
workstream "api" {
    task "Add a /health endpoint."
    owns "src/api/**"
}
workstream "ui" {
    task "Show the health on the status page."
    owns "src/ui/**"
}
workstream "tests" {
    task "Test both."
    owns "tests/**"
    depends-on "api" "ui"
}
"#;
    let checked = check_text("minimal.kdl", text).expect("the workflow checks");
    assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    let workflow = &checked.workflow;
    for ws in &workflow.workstreams {
        assert_eq!(ws.agent, "claude-code", "{}", ws.name);
        assert_eq!(ws.model, None, "{}", ws.name);
        assert_eq!(ws.model_source, ModelSource::AgentDefault, "{}", ws.name);
    }
    assert!(workflow.overlaps.is_empty());
}

#[test]
fn the_standard_library_needs_no_import_and_importing_it_twice_is_harmless() {
    let body = "workstream \"w\" { agent \"codex\"; model \"gpt-5\"; role \"test-writer\"; task \"x\" }\n";
    for imports in [
        "",
        "import \"std:agents\"\n",
        "import \"std:agents\" \"std:models\" \"std:roles\"\n",
        "import \"std:agents\" \"std:agents\"\nimport \"std:models\"\nimport \"std:models\"\n",
    ] {
        let checked = check_text("std.kdl", &format!("{imports}{body}"))
            .unwrap_or_else(|p| panic!("{imports:?}: {:?}", p.problems));
        assert!(checked.warnings.is_empty(), "{imports:?}: {:?}", checked.warnings);
        let ws = &checked.workflow.workstreams[0];
        assert_eq!(checked.workflow.agent_of(ws).command[0], "codex");
        assert_eq!(checked.workflow.model_of(ws).map(|m| m.id.as_str()), Some("gpt-5"));
        assert_eq!(ws.role.as_deref(), Some("test-writer"));
    }
}

#[test]
fn a_workflows_own_definition_replaces_the_preset_silently() {
    let text = r#"
import "std:agents" "std:models"
agent "claude-code" { command "my-claude" "--model" "{model}" "{prompt}"; }
model "sonnet" provider="anthropic" id="claude-sonnet-9" input-usd=1 output-usd=2
role "test-writer" { owns "spec/**"; }
kind "tests" model="sonnet"
workstream "w" { role "test-writer"; kind "tests"; task "x" }
"#;
    let checked = check_text("own.kdl", text).expect("the workflow checks");
    assert!(checked.warnings.is_empty(), "{:?}", checked.warnings);
    let workflow = &checked.workflow;
    let ws = &workflow.workstreams[0];
    assert_eq!(workflow.agent_of(ws).command[0], "my-claude");
    assert_eq!(ws.model.as_deref(), Some("sonnet"));
    assert_eq!(ws.model_source, ModelSource::Kind);
    assert_eq!(workflow.model_of(ws).map(|m| m.id.as_str()), Some("claude-sonnet-9"));
    let owns: Vec<&str> = ws.scope.owns().iter().map(|g| g.text.as_str()).collect();
    assert_eq!(owns, ["spec/**"]);
    // The presets the workflow did not redefine are still there.
    assert!(workflow.agents.contains_key("codex"));
    assert!(workflow.models.contains_key("opus"));
}

#[test]
fn a_description_without_a_task_is_the_task() {
    let text = r#"
workstream "described" { description "Add a /health endpoint."; owns "a/**" }
workstream "both" { description "Health"; task "Add a /health endpoint."; owns "b/**" }
"#;
    let checked = check_text("described.kdl", text).expect("the workflow checks");
    let tasks: Vec<(Option<&str>, Option<&str>)> = checked
        .workflow
        .workstreams
        .iter()
        .map(|w| (w.description.as_deref(), w.task.as_deref()))
        .collect();
    assert_eq!(
        tasks,
        [
            (Some("Add a /health endpoint."), Some("Add a /health endpoint.")),
            (Some("Health"), Some("Add a /health endpoint.")),
        ]
    );
}

#[test]
fn the_init_template_of_every_agent_preset_checks_without_warnings() {
    for agent in flow_stdlib::agent_names() {
        let text = flow_stdlib::init_template(agent).expect("a preset has a template");
        let checked = check_text("parallel.kdl", &text).unwrap_or_else(|p| panic!("{agent}: {:?}", p.problems));
        assert!(checked.warnings.is_empty(), "{agent}: {:?}", checked.warnings);
        for ws in &checked.workflow.workstreams {
            assert_eq!(ws.agent, agent, "{}", ws.name);
            assert_eq!(ws.model, None, "{agent}: {} names a model", ws.name);
        }
    }
}
