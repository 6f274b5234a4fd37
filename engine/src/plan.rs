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
    pub workflow: Workflow,
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
            workflow,
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
