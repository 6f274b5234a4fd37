//! `flow graph`: the dependency graph in DOT or Mermaid, with waves and merge order.

use std::fmt::Write;

use crate::plan::Plan;

/// Renders the plan as a Graphviz DOT digraph: one cluster per wave, edges from a
/// dependency to its dependent, and each node labelled with its merge position.
pub fn dot(plan: &Plan) -> String {
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
            let _ = writeln!(out, "    {} [label={}{bold}];", quote(&ws.name), quote(&label));
        }
        let _ = writeln!(out, "  }}");
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
    let wf = &plan.workflow;
    let mut out = String::from("flowchart LR\n");
    for (k, wave) in plan.waves.iter().enumerate() {
        let _ = writeln!(out, "  subgraph wave{} [\"wave {}\"]", k + 1, k + 1);
        for &i in wave {
            let ws = &wf.workstreams[i];
            let merge = plan.merge_position[i].map_or("no merge".to_string(), |p| format!("merge #{}", p + 1));
            let _ = writeln!(out, "    w{i}[\"{}<br/>{merge}\"]", ws.name.replace('"', "#quot;"));
        }
        out.push_str("  end\n");
    }
    for (i, ws) in wf.workstreams.iter().enumerate() {
        for &d in &ws.dependencies {
            let _ = writeln!(out, "  w{d} --> w{i}");
        }
    }
    out
}

fn quote(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
    )
}
