//! `flow plan`: the plan for people.

use std::fmt::Write;

use flow_dsl::{Isolation, ModelSource, OverlapGroup, ScopeGlob, format_duration};

use crate::plan::{PathUnit, Plan, StartPoint};

/// Renders the plan as text.
pub fn plan_text(plan: &Plan) -> String {
    let wf = &plan.workflow;
    let mut out = String::new();
    let n = wf.workstreams.len();
    let file = wf
        .path
        .as_ref()
        .map(|p| format!(" ({})", p.display()))
        .unwrap_or_default();
    let _ = writeln!(out, "Plan for workflow `{}`{file}", wf.name);
    let base = wf.base.as_deref().unwrap_or("the current branch");
    let _ = writeln!(
        out,
        "  {n} workstream{} in {} wave{}, at most {} at once; merges land in `{}` (created from {base})",
        plural(n),
        plan.waves.len(),
        plural(plan.waves.len()),
        wf.max_parallel,
        wf.into
    );
    let width = wf.workstreams.iter().map(|w| w.name.len()).max().unwrap_or(0).max(4);
    for (k, wave) in plan.waves.iter().enumerate() {
        let _ = writeln!(out, "\nWave {}", k + 1);
        for &i in wave {
            let ws = &wf.workstreams[i];
            let model = match (&ws.model, ws.model_source) {
                (Some(m), ModelSource::Workstream) => format!(" · {m}"),
                (Some(m), source) => format!(" · {m} (from {})", source_name(source)),
                (None, ModelSource::AgentDefault) => " · agent default".to_string(),
                (None, _) => String::new(),
            };
            let start = match plan.start_point(i) {
                StartPoint::Base => "from base".to_string(),
                StartPoint::Integration => format!("after {}", plan.names(&ws.dependencies).join(", ")),
                StartPoint::Scratch => format!(
                    "no worktree{}",
                    if ws.dependencies.is_empty() {
                        String::new()
                    } else {
                        format!(", after {}", plan.names(&ws.dependencies).join(", "))
                    }
                ),
            };
            let owns = if ws.isolation == Isolation::None {
                "changes nothing".to_string()
            } else if ws.scope.owns_everything() {
                "owns everything".to_string()
            } else {
                ScopeGlob::join(ws.scope.owns(), " ")
            };
            let _ = writeln!(
                out,
                "  {:<width$}  {:<8} {}{}  {}  [{owns}]",
                ws.name,
                ws.priority.name(),
                ws.agent,
                model,
                start
            );
        }
    }
    let path = plan.names(&plan.critical_path).join(" → ");
    let length = match plan.path_unit {
        PathUnit::Workstreams => format!(
            "{} workstream{}",
            plan.critical_length as usize,
            plural(plan.critical_length as usize)
        ),
        PathUnit::Seconds => format!(
            "about {}",
            format_duration(std::time::Duration::from_secs_f64(plan.critical_length))
        ),
    };
    let _ = writeln!(out, "\nCritical path  {path}  ({length})");
    let merges: Vec<String> = plan
        .merge_order
        .iter()
        .enumerate()
        .map(|(k, &i)| format!("{}. {}", k + 1, wf.workstreams[i].name))
        .collect();
    let _ = writeln!(
        out,
        "Merge order    {}",
        if merges.is_empty() {
            "nothing merges".to_string()
        } else {
            merges.join("  ")
        }
    );
    if let Some(verify) = &wf.integrate.verify {
        let _ = writeln!(out, "Verify         `{verify}` after each merge");
    }
    let _ = writeln!(out, "Sandbox        {}", sandbox_line(wf));
    let cost = plan.cost_estimate();
    let unpriced = unpriced(plan, &cost.unpriced);
    if cost.workstreams.is_empty() && unpriced.is_empty() {
        let _ = writeln!(out, "Cost estimate  none (no workstream has an `estimate`)");
    } else if cost.workstreams.is_empty() {
        let _ = writeln!(out, "Cost estimate  none: {unpriced}");
    } else {
        let unestimated: Vec<&str> = cost
            .unestimated
            .iter()
            .filter(|w| !cost.unpriced.contains(w))
            .map(String::as_str)
            .collect();
        let mut missing = String::new();
        if !unestimated.is_empty() {
            missing = format!("; no estimate for {}", unestimated.join(", "));
        }
        if !unpriced.is_empty() {
            missing = format!("{missing}; {unpriced}");
        }
        let _ = writeln!(
            out,
            "Cost estimate  ${:.2}–${:.2} for {} workstream{}{missing}",
            cost.total.low_usd,
            cost.total.high_usd,
            cost.workstreams.len(),
            plural(cost.workstreams.len())
        );
    }
    for warning in &cost.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
    if wf.overlaps.is_empty() {
        let _ = writeln!(out, "Overlaps       none predicted");
    } else {
        let groups = wf.overlap_groups();
        let _ = writeln!(
            out,
            "Overlaps       {} predicted between workstreams that may run at once{}:",
            wf.overlaps.len(),
            if groups.len() < wf.overlaps.len() {
                format!(", in {} group{}", groups.len(), plural(groups.len()))
            } else {
                String::new()
            }
        );
        for group in &groups {
            let _ = writeln!(out, "  {}", overlap_group_line(plan, group));
        }
    }
    out
}

/// One group of overlapping workstreams: "a (src/**) and b (src/ui/**), e.g. src/ui/x"; a
/// workstream without `owns` shows as "(everything)", and members that all overlap through
/// the same globs are listed once: "a, b and c (all src/**): 3 pairs, e.g. src/x".
fn overlap_group_line(plan: &Plan, group: &OverlapGroup) -> String {
    const SHOWN: usize = 12;
    let wf = &plan.workflow;
    let owned: Vec<(&str, String)> = group
        .members
        .iter()
        .map(|&m| {
            let ws = &wf.workstreams[m];
            if ws.scope.owns_everything() {
                return (ws.name.as_str(), "everything".to_string());
            }
            let mut globs: Vec<&str> = vec![];
            for &k in &group.overlaps {
                let o = &wf.overlaps[k];
                for (who, glob) in [(o.first, &o.first_glob), (o.second, &o.second_glob)] {
                    if who == m && !globs.contains(&glob.as_str()) {
                        globs.push(glob);
                    }
                }
            }
            (ws.name.as_str(), globs.join(" "))
        })
        .collect();
    let shared = owned.len() > 2 && owned.iter().all(|(_, o)| *o == owned[0].1);
    let mut members: Vec<String> = owned
        .iter()
        .take(SHOWN)
        .map(|(name, what)| {
            if shared {
                name.to_string()
            } else {
                format!("{name} ({what})")
            }
        })
        .collect();
    if group.members.len() > SHOWN {
        members.push(format!("{} more", group.members.len() - SHOWN));
    }
    if shared {
        let last = members.last_mut().expect("a group has members");
        *last = match owned[0].1.as_str() {
            "everything" => format!("{last} (each owns everything)"),
            globs => format!("{last} (all own {globs})"),
        };
    }
    let last = members.pop().expect("a group has members");
    let first = &wf.overlaps[group.overlaps[0]];
    let mut details = vec![];
    if group.members.len() > 2 {
        details.push(format!("{} pairs", group.overlaps.len()));
    }
    let unbounded = |i: usize| wf.workstreams[i].scope.owns_everything();
    if !(unbounded(first.first) && unbounded(first.second)) {
        details.push(format!("e.g. {}", first.example));
    }
    let separator = if group.members.len() > 2 { ": " } else { ", " };
    let details = if details.is_empty() {
        String::new()
    } else {
        format!("{separator}{}", details.join(", "))
    };
    format!("{} and {last}{details}", members.join(", "))
}

/// Why the estimated tokens of some workstreams have no price: "cannot price a, b (...)".
fn unpriced(plan: &Plan, names: &[String]) -> String {
    let wf = &plan.workflow;
    let (default, unpriced_model): (Vec<&str>, Vec<&str>) = names
        .iter()
        .map(String::as_str)
        .partition(|name| wf.index_of(name).is_some_and(|i| wf.workstreams[i].model.is_none()));
    let mut reasons = vec![];
    if !default.is_empty() {
        reasons.push(format!(
            "cannot price {} (the agent's default model: its price is unknown; set `model` or `estimate usd=`)",
            default.join(", ")
        ));
    }
    if !unpriced_model.is_empty() {
        reasons.push(format!(
            "cannot price {} (a model without prices)",
            unpriced_model.join(", ")
        ));
    }
    reasons.join("; ")
}

fn source_name(source: ModelSource) -> &'static str {
    match source {
        ModelSource::Workstream => "workstream",
        ModelSource::Defaults => "defaults",
        ModelSource::Kind => "kind",
        ModelSource::Role => "role",
        ModelSource::None => "none",
        ModelSource::AgentDefault => "agent default",
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// What the workflow asks of the kernel sandbox, in one line.
fn sandbox_line(wf: &flow_dsl::Workflow) -> String {
    use flow_dsl::{Network, SandboxMode};
    let names = |keep: &dyn Fn(&flow_dsl::Workstream) -> bool| -> Vec<&str> {
        wf.workstreams
            .iter()
            .filter(|w| keep(w))
            .map(|w| w.name.as_str())
            .collect()
    };
    let off = names(&|w| w.sandbox == SandboxMode::Off);
    if off.len() == wf.workstreams.len() && !off.is_empty() {
        return "off: agents may write anywhere you can".to_string();
    }
    let mut line =
        "agents, tests and verify write only to their worktree, temporary folder and `writable` places".to_string();
    if !off.is_empty() {
        line.push_str(&format!("; off for {}", off.join(", ")));
    }
    let mut networks: Vec<String> = Vec::new();
    for ws in wf.workstreams.iter().filter(|w| w.sandbox == SandboxMode::On) {
        if ws.network != Network::Any {
            networks.push(format!("{} {}", ws.name, ws.network));
        }
    }
    if !networks.is_empty() {
        line.push_str(&format!("; network: {}", networks.join(", ")));
    }
    line
}
