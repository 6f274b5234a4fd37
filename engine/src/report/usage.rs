//! `flow usage`: what a run spent, per workstream, model, agent and account, against each
//! budget; the most expensive workstreams; and cheaper models the `kind` table suggests.

use std::collections::BTreeMap;

use flow_dsl::{Budget, Model, Workflow};
use serde::Serialize;

use crate::agent::Usage;
use crate::run::state::{Purpose, RunState};

/// Spending against one budget.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetLine {
    pub scope: String,
    pub spent_usd: Option<f64>,
    pub limit_usd: Option<f64>,
    pub spent_tokens: u64,
    pub limit_tokens: Option<u64>,
    /// The larger of the two shares, in percent.
    pub percent: Option<f64>,
}

/// A cheaper model for a workstream, from the model-selection table.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub workstream: String,
    pub kind: String,
    pub used: String,
    pub suggested: String,
    /// What the same tokens would have cost with the suggested model.
    pub would_cost_usd: f64,
    pub spent_usd: f64,
}

/// What one agent attempt was for and what it spent.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptUsage {
    pub number: u32,
    /// `work`, `fix`, `review` or `resolve`.
    pub purpose: &'static str,
    /// What a fix attempt fixed: `test`, `scope`, `verify`, `conflict` or `review`.
    pub fixed: Option<&'static str>,
    pub usage: Usage,
}

/// The whole usage report.
#[derive(Debug, Clone, Serialize)]
pub struct UsageReport {
    pub run: String,
    pub workflow: String,
    pub total: Usage,
    pub by_workstream: BTreeMap<String, Usage>,
    pub by_model: BTreeMap<String, Usage>,
    pub by_agent: BTreeMap<String, Usage>,
    pub by_account: BTreeMap<String, Usage>,
    /// What the attempts were for: `work` (the task and its retries), `fix`, `review`,
    /// `resolve`.
    pub by_purpose: BTreeMap<String, Usage>,
    /// Each agent attempt of each workstream, in order, with its own usage.
    pub attempts: BTreeMap<String, Vec<AttemptUsage>>,
    pub budgets: Vec<BudgetLine>,
    pub most_expensive: Vec<(String, f64)>,
    pub suggestions: Vec<Suggestion>,
}

fn line(scope: String, spent: &Usage, budget: &Budget) -> BudgetLine {
    let usd_share = match (budget.usd, spent.cost_usd) {
        (Some(l), Some(s)) if l > 0.0 => Some(100.0 * s / l),
        (Some(_), None) => Some(0.0),
        _ => None,
    };
    let token_share = budget
        .tokens
        .filter(|l| *l > 0)
        .map(|l| 100.0 * spent.total_tokens() as f64 / l as f64);
    BudgetLine {
        scope,
        spent_usd: spent.cost_usd,
        limit_usd: budget.usd,
        spent_tokens: spent.total_tokens(),
        limit_tokens: budget.tokens,
        percent: match (usd_share, token_share) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        },
    }
}

fn cost_with(usage: &Usage, model: &Model) -> f64 {
    (usage.input_tokens as f64 * model.input_usd
        + usage.output_tokens as f64 * model.output_usd
        + usage.cache_read_tokens as f64 * model.cache_read_usd
        + usage.cache_write_tokens as f64 * model.cache_write_usd)
        / 1_000_000.0
}

/// Builds the report of a run; `workflow` (when it can be read) maps workstreams to models,
/// agents, accounts and budgets.
pub fn usage_report(state: &RunState, workflow: Option<&Workflow>) -> UsageReport {
    let mut report = UsageReport {
        run: state.id.clone(),
        workflow: state.workflow.clone(),
        total: state.total_usage(),
        by_workstream: BTreeMap::new(),
        by_model: BTreeMap::new(),
        by_agent: BTreeMap::new(),
        by_account: BTreeMap::new(),
        by_purpose: BTreeMap::new(),
        attempts: BTreeMap::new(),
        budgets: vec![],
        most_expensive: vec![],
        suggestions: vec![],
    };
    for ws in &state.workstreams {
        report.by_workstream.insert(ws.name.clone(), ws.usage);
        let mut recorded = Usage::default();
        let attempts = ws.attempt_log.iter().map(|a| AttemptUsage {
            number: a.number,
            purpose: a.purpose.as_str(),
            fixed: a.feedback.map(|k| k.as_str()),
            usage: a.usage,
        });
        report.attempts.insert(ws.name.clone(), attempts.collect());
        for a in &ws.attempt_log {
            recorded.add(&a.usage);
            let purpose = report.by_purpose.entry(a.purpose.as_str().into()).or_default();
            purpose.add(&a.usage);
        }
        // Usage streamed by an attempt that was cut before it ended is the workstream's own.
        let rest = ws.usage.without(&recorded);
        if rest.total_tokens() > 0 || rest.cost_usd.is_some_and(|c| c > 0.0) {
            report.by_purpose.entry("work".into()).or_default().add(&rest);
        }
    }
    let mut costs: Vec<(String, f64)> = state
        .workstreams
        .iter()
        .filter_map(|w| w.usage.cost_usd.map(|c| (w.name.clone(), c)))
        .collect();
    costs.sort_by(|a, b| b.1.total_cmp(&a.1));
    report.most_expensive = costs.into_iter().take(5).collect();
    let Some(workflow) = workflow else { return report };
    if !workflow.budget.is_unlimited() {
        report.budgets.push(line("run".into(), &report.total, &workflow.budget));
    }
    for (ws, recorded) in workflow.workstreams.iter().zip(&state.workstreams) {
        let usage = recorded.usage;
        // A reviewer or a resolver is its own agent and model: what it spent is theirs.
        let mut own = usage;
        for a in &recorded.attempt_log {
            let choice = match a.purpose {
                Purpose::Review => ws.review.as_ref(),
                Purpose::Resolve => workflow.integrate.resolver.as_ref(),
                Purpose::Work | Purpose::Fix => None,
            };
            let Some(choice) = choice else { continue };
            own = own.without(&a.usage);
            // Without its own model it runs the workstream's, as the run does.
            let model = choice.model.clone().or_else(|| ws.model.clone());
            let model = model.unwrap_or_else(|| "(none)".into());
            report.by_model.entry(model).or_default().add(&a.usage);
            report.by_agent.entry(choice.agent.clone()).or_default().add(&a.usage);
        }
        let model = ws.model.clone().unwrap_or_else(|| "(none)".into());
        report.by_model.entry(model).or_default().add(&own);
        report.by_agent.entry(ws.agent.clone()).or_default().add(&own);
        if let Some(a) = &ws.account {
            report.by_account.entry(a.clone()).or_default().add(&usage);
        }
        if !ws.budget.is_unlimited() {
            report
                .budgets
                .push(line(format!("workstream {}", ws.name), &usage, &ws.budget));
        }
        let (Some(kind), Some(used)) = (ws.kind, workflow.model_of(ws)) else {
            continue;
        };
        let Some(suggested) = workflow.kinds.get(&kind).and_then(|k| workflow.models.get(&k.model)) else {
            continue;
        };
        if suggested.name == used.name || own.total_tokens() == 0 {
            continue;
        }
        let spent = own.cost_usd.unwrap_or_else(|| cost_with(&own, used));
        let would = cost_with(&own, suggested);
        if would < spent {
            report.suggestions.push(Suggestion {
                workstream: ws.name.clone(),
                kind: kind.name().to_string(),
                used: used.name.clone(),
                suggested: suggested.name.clone(),
                would_cost_usd: would,
                spent_usd: spent,
            });
        }
    }
    for (name, account) in &workflow.accounts {
        if !account.budget.is_unlimited() {
            let spent = report.by_account.get(name).copied().unwrap_or_default();
            report
                .budgets
                .push(line(format!("account {name}"), &spent, &account.budget));
        }
    }
    report
}
