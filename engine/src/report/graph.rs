//! `flow graph`: the dependency graph in DOT or Mermaid, with waves and merge order.

use std::fmt::Write;

use crate::plan::Plan;
use crate::report::html::phase_color;
use crate::run::state::Phase;

/// Renders the plan as a Graphviz DOT digraph: one cluster per wave, edges from a
/// dependency to its dependent, and each node labelled with its merge position.
pub fn dot(plan: &Plan) -> String {
    dot_with_states(plan, &[])
}

/// The state of each workstream in a run, by name, for [`dot_with_states`] and
/// [`mermaid_with_states`].
pub type States<'a> = &'a [(String, Phase)];

fn state_of(states: States, name: &str) -> Option<Phase> {
    states.iter().find(|(n, _)| n == name).map(|(_, p)| *p)
}

/// The phases a legend shows, in the order of a workstream's life.
const LEGEND: [Phase; 8] = [
    Phase::Pending,
    Phase::Running,
    Phase::Fixing,
    Phase::Ready,
    Phase::Merged,
    Phase::Failed,
    Phase::Skipped,
    Phase::Cancelled,
];

/// Renders the plan as [`dot`] does, each node filled with the colour of its state in a run
/// (the same colours as the report page), with a legend; with no states, as [`dot`].
pub fn dot_with_states(plan: &Plan, states: States) -> String {
    let wf = &plan.workflow;
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&wf.name));
    let _ = writeln!(out, "  rankdir=LR;\n  node [shape=box, style=rounded];");
    let critical: std::collections::HashSet<usize> = plan.critical_path.iter().copied().collect();
    for (k, wave) in plan.waves.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_wave{} {{\n    label={};\n    style=dashed;",
            k + 1,
            quote(&format!("wave {}", k + 1))
        );
        for &i in wave {
            let ws = &wf.workstreams[i];
            let label = match plan.merge_position[i] {
                Some(p) => format!("{}\nmerge #{}", ws.name, p + 1),
                None => format!("{}\nno merge", ws.name),
            };
            let bold = if critical.contains(&i) { ", penwidth=2" } else { "" };
            let (label, fill) = match state_of(states, &ws.name) {
                Some(phase) => (
                    format!("{label}\n{phase}"),
                    format!(
                        ", style=\"rounded,filled\", fillcolor={}",
                        quote(&light(phase_color(phase)))
                    ),
                ),
                None => (label, String::new()),
            };
            let _ = writeln!(out, "    {} [label={}{bold}{fill}];", quote(&ws.name), quote(&label));
        }
        let _ = writeln!(out, "  }}");
    }
    if !states.is_empty() {
        out.push_str("  subgraph cluster_legend {\n    label=\"legend\";\n    style=solid;\n");
        for (k, phase) in LEGEND.iter().enumerate() {
            let _ = writeln!(
                out,
                "    legend{k} [label={}, style=\"rounded,filled\", fillcolor={}];",
                quote(phase.name()),
                quote(&light(phase_color(*phase)))
            );
        }
        for k in 1..LEGEND.len() {
            let _ = writeln!(out, "    legend{} -> legend{k} [style=invis];", k - 1);
        }
        out.push_str("  }\n");
    }
    for (i, ws) in wf.workstreams.iter().enumerate() {
        for &d in &ws.dependencies {
            let _ = writeln!(
                out,
                "  {} -> {};",
                quote(&wf.workstreams[d].name),
                quote(&wf.workstreams[i].name)
            );
        }
    }
    out.push_str("}\n");
    out
}

/// Renders the plan as a Mermaid flowchart with one subgraph per wave.
pub fn mermaid(plan: &Plan) -> String {
    mermaid_with_states(plan, &[])
}

/// Renders the plan as [`mermaid`] does, each node in the colour of its state in a run.
pub fn mermaid_with_states(plan: &Plan, states: States) -> String {
    let wf = &plan.workflow;
    let mut out = String::from("flowchart LR\n");
    for (k, wave) in plan.waves.iter().enumerate() {
        let _ = writeln!(out, "  subgraph wave{} [\"wave {}\"]", k + 1, k + 1);
        for &i in wave {
            let ws = &wf.workstreams[i];
            let merge = plan.merge_position[i].map_or("no merge".to_string(), |p| format!("merge #{}", p + 1));
            let phase = state_of(states, &ws.name);
            let state = phase.map_or(String::new(), |p| format!("<br/>{p}"));
            let class = phase.map_or(String::new(), |p| format!(":::{}", p.name()));
            let _ = writeln!(
                out,
                "    w{i}[\"{}<br/>{merge}{state}\"]{class}",
                ws.name.replace('"', "#quot;")
            );
        }
        out.push_str("  end\n");
    }
    for (i, ws) in wf.workstreams.iter().enumerate() {
        for &d in &ws.dependencies {
            let _ = writeln!(out, "  w{d} --> w{i}");
        }
    }
    if !states.is_empty() {
        for phase in LEGEND.iter().chain(&[
            Phase::Merging,
            Phase::Checking,
            Phase::Preparing,
            Phase::Done,
            Phase::Conflicted,
            Phase::Reviewing,
            Phase::Resolving,
        ]) {
            let _ = writeln!(
                out,
                "  classDef {} fill:{},stroke:{}",
                phase.name(),
                light(phase_color(*phase)),
                phase_color(*phase)
            );
        }
    }
    out
}

/// A light tint of a `#rrggbb` colour, for a fill that black text reads on.
fn light(color: &str) -> String {
    let channel = |k: usize| u8::from_str_radix(color.get(1 + 2 * k..3 + 2 * k).unwrap_or("80"), 16).unwrap_or(128);
    let tint = |c: u8| 255 - (255 - u16::from(c)) * 2 / 5;
    format!(
        "#{:02x}{:02x}{:02x}",
        tint(channel(0)),
        tint(channel(1)),
        tint(channel(2))
    )
}

fn quote(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
    )
}
