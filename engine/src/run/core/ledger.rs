//! The budget ledger: the one place where spending is weighed against the run's, the
//! accounts' and the workstreams' budgets.
//!
//! A workstream's spending is what its finished attempts recorded (`usage` in the state, kept
//! across resumes) plus what its running attempt has streamed so far. The ledger answers three
//! questions, each with a [`BudgetBreach`] that travels as data to the failure and the report:
//! may a workstream start ([`Ledger::refusal`]: not once a budget it counts against is spent),
//! which budgets a workstream's spending has now passed ([`Ledger::breaches`]: its running
//! members are stopped), and which have just reached 80% ([`Ledger::alerts`], once each).

use std::collections::BTreeSet;

use flow_dsl::{Budget, Model, Workflow};

use crate::agent::Usage;
use crate::run::state::{Amount, BudgetBreach, BudgetScope, RunState};

/// Running spending and the alerts already raised.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The priced usage each running attempt has streamed so far.
    live: Vec<Usage>,
    /// The budgets already alerted at 80%, with the limit (`usd`, `tokens`).
    alerted: BTreeSet<(BudgetScope, &'static str)>,
}

impl Ledger {
    /// A ledger for `n` workstreams.
    pub fn new(n: usize) -> Ledger {
        Ledger {
            live: vec![Usage::default(); n],
            alerted: BTreeSet::new(),
        }
    }

    /// Sets the running attempt's usage of a workstream (already priced).
    pub fn set_live(&mut self, workstream: usize, usage: Usage) {
        self.live[workstream] = usage;
    }

    /// Forgets the running attempt's usage (it ended, and its final usage is recorded).
    pub fn clear_live(&mut self, workstream: usize) {
        self.live[workstream] = Usage::default();
    }

    /// The budgets workstream `index` counts against, with their members.
    fn scopes(workflow: &Workflow, index: usize) -> Vec<(BudgetScope, Budget)> {
        let ws = &workflow.workstreams[index];
        let mut scopes = vec![(BudgetScope::Run, workflow.budget)];
        if let Some(account) = ws.account.as_ref().and_then(|a| workflow.accounts.get(a)) {
            scopes.push((BudgetScope::Account(account.name.clone()), account.budget));
        }
        scopes.push((BudgetScope::Workstream(ws.name.clone()), ws.budget));
        scopes.retain(|(_, budget)| !budget.is_unlimited());
        scopes
    }

    /// Tells whether workstream `index` counts against a budget's scope.
    pub fn is_member(workflow: &Workflow, scope: &BudgetScope, index: usize) -> bool {
        let ws = &workflow.workstreams[index];
        match scope {
            BudgetScope::Run => true,
            BudgetScope::Account(name) => ws.account.as_deref() == Some(name.as_str()),
            BudgetScope::Workstream(name) => ws.name == *name,
        }
    }

    /// What a scope has spent: the recorded usage of its members plus their running attempts.
    fn spent(&self, workflow: &Workflow, state: &RunState, scope: &BudgetScope) -> Usage {
        let mut total = Usage::default();
        let mut add = |i: usize| {
            total.add(&state.workstreams[i].usage);
            total.add(&self.live[i]);
        };
        match scope {
            BudgetScope::Workstream(name) => {
                if let Some(i) = workflow.index_of(name) {
                    add(i);
                }
            }
            _ => (0..workflow.workstreams.len())
                .filter(|&i| Ledger::is_member(workflow, scope, i))
                .for_each(add),
        }
        total
    }

    /// The budget that keeps workstream `index` from starting: one it counts against that is
    /// spent up to its limit.
    pub fn refusal(&self, workflow: &Workflow, state: &RunState, index: usize) -> Option<BudgetBreach> {
        Ledger::scopes(workflow, index).into_iter().find_map(|(scope, budget)| {
            let spent = self.spent(workflow, state, &scope);
            reached(&spent, budget, |spent, limit| spent >= limit).map(|(limit, spent)| BudgetBreach {
                scope,
                limit,
                spent,
                at_start: true,
            })
        })
    }

    /// The budgets workstream `index` counts against whose spending has passed the limit.
    pub fn breaches(&self, workflow: &Workflow, state: &RunState, index: usize) -> Vec<BudgetBreach> {
        Ledger::scopes(workflow, index)
            .into_iter()
            .filter_map(|(scope, budget)| {
                let spent = self.spent(workflow, state, &scope);
                reached(&spent, budget, |spent, limit| spent > limit).map(|(limit, spent)| BudgetBreach {
                    scope,
                    limit,
                    spent,
                    at_start: false,
                })
            })
            .collect()
    }

    /// The alerts for budgets of workstream `index` that have reached 80% (and not their
    /// limit), each raised once per budget and limit however the spending grows.
    pub fn alerts(&mut self, workflow: &Workflow, state: &RunState, index: usize) -> Vec<String> {
        let mut alerts = vec![];
        for (scope, budget) in Ledger::scopes(workflow, index) {
            let spent = self.spent(workflow, state, &scope);
            if reached(&spent, budget, |spent, limit| spent > limit).is_some() {
                continue;
            }
            let Some((which, text)) = near(&spent, budget) else {
                continue;
            };
            if self.alerted.insert((scope.clone(), which)) {
                alerts.push(format!("{scope} has used {text}"));
            }
        }
        alerts
    }

    /// What a workstream's own `budget usd=` has left, for an agent's spending cap.
    pub fn left_usd(&self, workflow: &Workflow, state: &RunState, index: usize) -> Option<f64> {
        let ws = &workflow.workstreams[index];
        let limit = ws.budget.usd?;
        let spent = state.workstreams[index].usage.cost_usd.unwrap_or(0.0);
        Some((limit - spent).max(0.0))
    }
}

/// The first limit of `budget` that `spent` reaches by `past` (dollars, then tokens).
fn reached(spent: &Usage, budget: Budget, past: impl Fn(f64, f64) -> bool) -> Option<(Amount, Amount)> {
    if let (Some(limit), Some(cost)) = (budget.usd, spent.cost_usd)
        && past(cost, limit)
    {
        return Some((Amount::Usd(limit), Amount::Usd(cost)));
    }
    if let Some(limit) = budget.tokens
        && past(spent.total_tokens() as f64, limit as f64)
    {
        return Some((Amount::Tokens(limit), Amount::Tokens(spent.total_tokens())));
    }
    None
}

/// The alert for spending at 80% of a budget or more, and which limit it is about.
fn near(spent: &Usage, budget: Budget) -> Option<(&'static str, String)> {
    if let (Some(limit), Some(cost)) = (budget.usd, spent.cost_usd)
        && cost >= 0.8 * limit
    {
        return Some(("usd", format!("80% of its ${limit:.2} budget (${cost:.2})")));
    }
    if let Some(limit) = budget.tokens
        && spent.total_tokens() as f64 >= 0.8 * limit as f64
    {
        return Some((
            "tokens",
            format!("80% of its {limit}-token budget ({})", spent.total_tokens()),
        ));
    }
    None
}

/// Fills in the cost from the model's price table when the agent did not report one.
pub fn priced(mut usage: Usage, model: Option<&Model>) -> Usage {
    if usage.cost_usd.is_none()
        && let Some(m) = model
        && (m.input_usd > 0.0 || m.output_usd > 0.0)
        && usage.total_tokens() > 0
    {
        let per_million = usage.input_tokens as f64 * m.input_usd
            + usage.output_tokens as f64 * m.output_usd
            + usage.cache_read_tokens as f64 * m.cache_read_usd
            + usage.cache_write_tokens as f64 * m.cache_write_usd;
        usage.cost_usd = Some(per_million / 1_000_000.0);
    }
    usage
}
