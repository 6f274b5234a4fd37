//! `flow plan --json`: the plan as a versioned JSON document.
//!
//! The shape (version 1) is documented in the README under "Plan JSON". Fields are only
//! ever added within a version; a removal or change of meaning bumps `version`.

use flow_dsl::{Budget, Estimate, Isolation, ModelSource, Priority, ScopeGlob, TaskKind};
use serde::Serialize;

use crate::plan::{PathUnit, Plan, StartPoint};

/// The version of the JSON shape.
pub const PLAN_JSON_VERSION: u32 = 1;

/// The whole plan document.
#[derive(Debug, Serialize)]
pub struct PlanJson<'p> {
    pub version: u32,
    pub workflow: &'p str,
    pub file: Option<String>,
    pub base: Option<&'p str>,
    pub into: &'p str,
    pub max_parallel: usize,
    pub budget: Budget,
    pub workstreams: Vec<WorkstreamJson<'p>>,
    pub waves: Vec<Vec<&'p str>>,
    pub critical_path: CriticalPathJson<'p>,
    pub merge_order: Vec<&'p str>,
    pub overlaps: Vec<OverlapJson<'p>>,
    pub cost: crate::plan::CostEstimate,
}

/// One workstream as planned, after defaults.
#[derive(Debug, Serialize)]
pub struct WorkstreamJson<'p> {
    pub name: &'p str,
    pub description: Option<&'p str>,
    pub agent: &'p str,
    pub model: Option<&'p str>,
    pub model_id: Option<&'p str>,
    pub model_source: ModelSource,
    pub role: Option<&'p str>,
    pub kind: Option<TaskKind>,
    pub priority: Priority,
    pub isolation: Isolation,
    pub branch: Option<String>,
    pub starts_from: StartPoint,
    pub wave: usize,
    pub merge_position: Option<usize>,
    pub depends_on: Vec<&'p str>,
    pub owns: &'p [ScopeGlob],
    pub forbid: &'p [ScopeGlob],
    pub account: Option<&'p str>,
    pub estimate: EstimateJson,
    pub budget: Budget,
    pub sandbox: flow_dsl::SandboxMode,
    pub network: &'p flow_dsl::Network,
    pub writable: &'p [String],
}

/// An estimate, with the duration in seconds.
#[derive(Debug, Serialize)]
pub struct EstimateJson {
    pub seconds: Option<f64>,
    pub tokens: Option<u64>,
    pub usd: Option<f64>,
}

/// The critical path.
#[derive(Debug, Serialize)]
pub struct CriticalPathJson<'p> {
    pub workstreams: Vec<&'p str>,
    pub length: f64,
    pub unit: PathUnit,
}

/// A predicted overlap between two workstreams that may run at once.
#[derive(Debug, Serialize)]
pub struct OverlapJson<'p> {
    pub first: &'p str,
    pub second: &'p str,
    pub first_glob: &'p str,
    pub second_glob: &'p str,
    pub example: &'p str,
}

fn estimate(e: &Estimate) -> EstimateJson {
    EstimateJson {
        seconds: e.duration.map(|d| d.as_secs_f64()),
        tokens: e.tokens,
        usd: e.usd,
    }
}

/// Builds the JSON document of a plan.
pub fn plan_json(plan: &Plan) -> PlanJson<'_> {
    let wf = &plan.workflow;
    let names = |v: &[usize]| plan.names(v);
    PlanJson {
        version: PLAN_JSON_VERSION,
        workflow: &wf.name,
        file: wf.path.as_ref().map(|p| p.display().to_string()),
        base: wf.base.as_deref(),
        into: &wf.into,
        max_parallel: wf.max_parallel,
        budget: wf.budget,
        workstreams: wf
            .workstreams
            .iter()
            .enumerate()
            .map(|(i, ws)| WorkstreamJson {
                name: &ws.name,
                description: ws.description.as_deref(),
                agent: &ws.agent,
                model: ws.model.as_deref(),
                model_id: wf.model_of(ws).map(|m| m.id.as_str()),
                model_source: ws.model_source,
                role: ws.role.as_deref(),
                kind: ws.kind,
                priority: ws.priority,
                isolation: ws.isolation,
                branch: (ws.isolation == Isolation::Worktree).then(|| wf.branch_of(ws)),
                starts_from: plan.start_point(i),
                wave: plan.wave_of[i],
                merge_position: plan.merge_position[i],
                depends_on: names(&ws.dependencies),
                owns: ws.scope.owns(),
                forbid: ws.scope.forbid(),
                account: ws.account.as_deref(),
                estimate: estimate(&ws.estimate),
                budget: ws.budget,
                sandbox: ws.sandbox,
                network: &ws.network,
                writable: &ws.writable,
            })
            .collect(),
        waves: plan.waves.iter().map(|w| names(w)).collect(),
        critical_path: CriticalPathJson {
            workstreams: names(&plan.critical_path),
            length: plan.critical_length,
            unit: plan.path_unit,
        },
        merge_order: names(&plan.merge_order),
        overlaps: wf
            .overlaps
            .iter()
            .map(|o| OverlapJson {
                first: &wf.workstreams[o.first].name,
                second: &wf.workstreams[o.second].name,
                first_glob: &o.first_glob,
                second_glob: &o.second_glob,
                example: &o.example,
            })
            .collect(),
        cost: plan.cost_estimate(),
    }
}
