//! The plan: a workflow as a dependency graph, with waves, the critical path and the merge order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use flow_dsl::{Isolation, Workflow};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

/// Where a workstream's branch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartPoint {
    /// The workflow's base branch (a workstream without dependencies).
    Base,
    /// The integration branch, once every dependency has merged.
    Integration,
    /// A scratch folder: the workstream has `isolation "none"`.
    Scratch,
}

/// What the critical path is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathUnit {
    /// Estimated seconds (some workstream has an `estimate`).
    Seconds,
    /// Number of workstreams (no estimates given).
    Workstreams,
}

/// A workflow arranged for running: the graph and the orders derived from it.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workflow: std::sync::Arc<Workflow>,
    /// Edges go from a dependency to its dependent; node weights are workstream indices.
    pub graph: DiGraph<usize, ()>,
    /// Groups that could run together if every workstream took as long: wave `k` holds the
    /// workstreams whose longest chain of dependencies has `k` links.
    pub waves: Vec<Vec<usize>>,
    /// For each workstream, its wave.
    pub wave_of: Vec<usize>,
    /// The longest chain by estimated duration (or by count when nothing is estimated).
    pub critical_path: Vec<usize>,
    pub critical_length: f64,
    pub path_unit: PathUnit,
    /// For each workstream, the length of the longest chain starting at it (itself included):
    /// the scheduler starts the largest first.
    pub remaining: Vec<f64>,
    /// The order branches merge in: dependencies first, ties by priority then declaration.
    /// Workstreams with `isolation "none"` never merge and are not listed.
    pub merge_order: Vec<usize>,
    /// For each workstream, its position in `merge_order`.
    pub merge_position: Vec<Option<usize>>,
}

impl Plan {
    /// Arranges a validated (hence acyclic) workflow.
    pub fn new(workflow: Workflow) -> Plan {
        let n = workflow.workstreams.len();
        let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(n, n);
        let nodes: Vec<NodeIndex> = (0..n).map(|i| graph.add_node(i)).collect();
        let mut dependents: Vec<Vec<usize>> = vec![vec![]; n];
        for (i, ws) in workflow.workstreams.iter().enumerate() {
            for &d in &ws.dependencies {
                graph.add_edge(nodes[d], nodes[i], ());
                dependents[d].push(i);
            }
        }

        // Topological order with ties broken by priority, then declaration: this is the merge order.
        let mut missing: Vec<usize> = workflow.workstreams.iter().map(|w| w.dependencies.len()).collect();
        let key = |i: usize| Reverse((workflow.workstreams[i].priority.rank(), i));
        let mut ready: BinaryHeap<Reverse<(u8, usize)>> = (0..n).filter(|&i| missing[i] == 0).map(key).collect();
        let mut topological = Vec::with_capacity(n);
        while let Some(Reverse((_, i))) = ready.pop() {
            topological.push(i);
            for &d in &dependents[i] {
                missing[d] -= 1;
                if missing[d] == 0 {
                    ready.push(key(d));
                }
            }
        }
        assert_eq!(topological.len(), n, "validation rejects dependency cycles");

        let mut wave_of = vec![0usize; n];
        for &i in &topological {
            wave_of[i] = workflow.workstreams[i]
                .dependencies
                .iter()
                .map(|&d| wave_of[d] + 1)
                .max()
                .unwrap_or(0);
        }
        let wave_count = wave_of.iter().max().map_or(0, |m| m + 1);
        let mut waves = vec![vec![]; wave_count];
        for i in 0..n {
            waves[wave_of[i]].push(i);
        }

        let estimated: Vec<Option<f64>> = workflow
            .workstreams
            .iter()
            .map(|w| w.estimate.duration.map(|d| d.as_secs_f64()))
            .collect();
        let given: Vec<f64> = estimated.iter().flatten().copied().collect();
        let (path_unit, fallback) = if given.is_empty() {
            (PathUnit::Workstreams, 1.0)
        } else {
            let mut sorted = given.clone();
            sorted.sort_by(f64::total_cmp);
            (PathUnit::Seconds, sorted[sorted.len() / 2])
        };
        let weight: Vec<f64> = estimated.iter().map(|e| e.unwrap_or(fallback)).collect();
        let mut remaining = vec![0.0f64; n];
        let mut next_on_path: Vec<Option<usize>> = vec![None; n];
        for &i in topological.iter().rev() {
            let best = dependents[i]
                .iter()
                .copied()
                .max_by(|&a, &b| remaining[a].total_cmp(&remaining[b]).then(b.cmp(&a)));
            remaining[i] = weight[i] + best.map_or(0.0, |b| remaining[b]);
            next_on_path[i] = best;
        }
        let mut critical_path = vec![];
        let start = (0..n)
            .filter(|&i| workflow.workstreams[i].dependencies.is_empty())
            .max_by(|&a, &b| remaining[a].total_cmp(&remaining[b]).then(b.cmp(&a)));
        let critical_length = start.map_or(0.0, |s| remaining[s]);
        let mut at = start;
        while let Some(i) = at {
            critical_path.push(i);
            at = next_on_path[i];
        }

        let merge_order: Vec<usize> = topological
            .into_iter()
            .filter(|&i| workflow.workstreams[i].isolation == Isolation::Worktree)
            .collect();
        let mut merge_position = vec![None; n];
        for (position, &i) in merge_order.iter().enumerate() {
            merge_position[i] = Some(position);
        }
        Plan {
            workflow: std::sync::Arc::new(workflow),
            graph,
            waves,
            wave_of,
            critical_path,
            critical_length,
            path_unit,
            remaining,
            merge_order,
            merge_position,
        }
    }

    /// Where a workstream's branch starts.
    pub fn start_point(&self, index: usize) -> StartPoint {
        let ws = &self.workflow.workstreams[index];
        if ws.isolation == Isolation::None {
            StartPoint::Scratch
        } else if ws.dependencies.is_empty() {
            StartPoint::Base
        } else {
            StartPoint::Integration
        }
    }

    /// The workstreams that depend directly on `index`.
    pub fn dependents(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(index), petgraph::Direction::Outgoing)
            .map(|n| self.graph[n])
    }

    /// The workstream names of a list of indices.
    pub fn names(&self, indices: &[usize]) -> Vec<&str> {
        indices
            .iter()
            .map(|&i| self.workflow.workstreams[i].name.as_str())
            .collect()
    }
}

/// A range of dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CostRange {
    pub low_usd: f64,
    pub high_usd: f64,
}

/// What a plan is expected to cost, from each workstream's `estimate` and the price table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CostEstimate {
    /// The sum over the workstreams that have an estimate.
    pub total: CostRange,
    /// Estimated tokens, summed.
    pub tokens: u64,
    /// Per workstream (by name), when it has an estimate.
    pub workstreams: std::collections::BTreeMap<String, CostRange>,
    /// Workstreams with no estimate, or whose model has no prices.
    pub unestimated: Vec<String>,
    /// Workstreams with an estimate in tokens that cannot be priced: they have no model (the
    /// agent's tool picks its own) or a model without prices. Also in `unestimated`.
    pub unpriced: Vec<String>,
    /// Estimates that exceed (or may exceed) a budget.
    pub warnings: Vec<String>,
}

impl Plan {
    /// Estimates the cost: a workstream's `estimate usd=` as given, or its `estimate tokens=`
    /// priced between all-input and all-output at its model's prices.
    pub fn cost_estimate(&self) -> CostEstimate {
        let wf = &self.workflow;
        let mut estimate = CostEstimate::default();
        for ws in &wf.workstreams {
            let range = match (ws.estimate.usd, ws.estimate.tokens, wf.model_of(ws)) {
                (Some(usd), _, _) => Some(CostRange {
                    low_usd: usd,
                    high_usd: usd,
                }),
                (None, Some(tokens), Some(m)) if m.input_usd > 0.0 || m.output_usd > 0.0 => {
                    let (cheap, dear) = (m.input_usd.min(m.output_usd), m.input_usd.max(m.output_usd));
                    Some(CostRange {
                        low_usd: tokens as f64 * cheap / 1e6,
                        high_usd: tokens as f64 * dear / 1e6,
                    })
                }
                _ => None,
            };
            estimate.tokens += ws.estimate.tokens.unwrap_or(0);
            if let (Some(limit), Some(tokens)) = (ws.budget.tokens, ws.estimate.tokens)
                && tokens > limit
            {
                estimate.warnings.push(format!(
                    "the estimated {tokens} tokens of workstream `{}` exceed its budget of {limit} tokens",
                    ws.name
                ));
            }
            match range {
                Some(r) => {
                    estimate.total.low_usd += r.low_usd;
                    estimate.total.high_usd += r.high_usd;
                    if let Some(limit) = ws.budget.usd {
                        warn_over(&mut estimate.warnings, &format!("workstream `{}`", ws.name), r, limit);
                    }
                    estimate.workstreams.insert(ws.name.clone(), r);
                }
                None => {
                    if ws.estimate.tokens.is_some() {
                        estimate.unpriced.push(ws.name.clone());
                    }
                    estimate.unestimated.push(ws.name.clone());
                }
            }
        }
        if let Some(limit) = wf.budget.usd {
            let total = estimate.total;
            warn_over(&mut estimate.warnings, "the run", total, limit);
        }
        if let Some(limit) = wf.budget.tokens
            && estimate.tokens > limit
        {
            estimate.warnings.push(format!(
                "the estimated {} tokens exceed the run's budget of {limit} tokens",
                estimate.tokens
            ));
        }
        for (name, account) in &wf.accounts {
            if let Some(limit) = account.budget.tokens {
                let tokens: u64 = wf
                    .workstreams
                    .iter()
                    .filter(|w| w.account.as_deref() == Some(name.as_str()))
                    .filter_map(|w| w.estimate.tokens)
                    .sum();
                if tokens > limit {
                    estimate.warnings.push(format!(
                        "the estimated {tokens} tokens of account `{name}` exceed its budget of {limit} tokens"
                    ));
                }
            }
            let Some(limit) = account.budget.usd else { continue };
            let mut sum = CostRange::default();
            for ws in wf
                .workstreams
                .iter()
                .filter(|w| w.account.as_deref() == Some(name.as_str()))
            {
                if let Some(r) = estimate.workstreams.get(&ws.name) {
                    sum.low_usd += r.low_usd;
                    sum.high_usd += r.high_usd;
                }
            }
            warn_over(&mut estimate.warnings, &format!("account `{name}`"), sum, limit);
        }
        estimate
    }
}

fn warn_over(warnings: &mut Vec<String>, scope: &str, range: CostRange, limit: f64) {
    if range.low_usd > limit {
        warnings.push(format!(
            "{scope} is estimated at ${:.2}–${:.2}, over its ${limit:.2} budget",
            range.low_usd, range.high_usd
        ));
    } else if range.high_usd > limit {
        warnings.push(format!(
            "{scope} is estimated at ${:.2}–${:.2}, which may pass its ${limit:.2} budget",
            range.low_usd, range.high_usd
        ));
    }
}
