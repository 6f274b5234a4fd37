//! Each resume decision, from a record and git facts made up for it: no repository needed.

use super::*;
use crate::git::Oid;
use crate::run::spec_hash::spec_hashes;
use crate::run::state::{EventKind, Failure, FailureKind, Phase, RunState, RunStatus, WorkstreamState};
use crate::time::Timestamp;

fn oid(n: u32) -> Oid {
    format!("{n:040x}").parse().expect("40 hex digits")
}

const BASE: u32 = 0xba5e;

/// `a` and `b` independent, `c` on `a`, `d` on `c`.
fn plan() -> Plan {
    let text = r#"
workflow "t" { base "main"; }
agent "shell" {
    command "sh" "-c" "{script}"
    output "text"
}
defaults { agent "shell"; }
workstream "a" { owns "a/**"; script "true" }
workstream "b" { owns "b/**"; script "true" }
workstream "c" { owns "c/**"; depends-on "a"; script "true" }
workstream "d" { owns "d/**"; depends-on "c"; script "true" }
"#;
    Plan::new(flow_dsl::check_text("t.kdl", text).expect("valid").workflow)
}

/// A record where every workstream is in `phase`, with the spec hashes of `plan`.
fn record(plan: &Plan, phase: Phase) -> RunState {
    let t = Timestamp::from_second(1_700_000_000).expect("a time");
    let hashes = spec_hashes(&plan.workflow);
    RunState {
        version: 2,
        id: "r".into(),
        workflow: "t".into(),
        workflow_file: None,
        workflow_hash: String::new(),
        repository: "/repo".into(),
        base: Some("main".into()),
        base_commit: Some(oid(BASE).to_string()),
        into: "integration/t".into(),
        last_good: Some(oid(BASE).to_string()),
        status: RunStatus::Failed,
        started_at: t,
        ended_at: Some(t),
        last_event: 0,
        workstreams: plan
            .workflow
            .workstreams
            .iter()
            .zip(hashes)
            .map(|(w, h)| {
                let mut ws = WorkstreamState::new(&w.name, h, t);
                ws.phase = phase;
                ws
            })
            .collect(),
        alerts: vec![],
        overruns: vec![],
    }
}

/// Git as the record has it: the integration branch at the last good commit, each branch at
/// its recorded result.
fn facts(state: &RunState) -> GitFacts {
    let parse = |c: &Option<String>| c.as_deref().and_then(|c| c.parse::<Oid>().ok());
    GitFacts {
        has_git: true,
        into_head: parse(&state.last_good),
        branch_heads: state.workstreams.iter().map(|w| parse(&w.result_commit)).collect(),
        ancestry: Default::default(),
        worktree_gone: vec![],
        by_hand: vec![],
    }
}

/// `a` merged as commit 0xa1 (result 0xa0), on top of base.
fn with_a_merged(state: &mut RunState) {
    let a = &mut state.workstreams[0];
    a.phase = Phase::Merged;
    a.start_commit = Some(oid(BASE).to_string());
    a.result_commit = Some(oid(0xa0).to_string());
    a.merge_commit = Some(oid(0xa1).to_string());
    state.last_good = Some(oid(0xa1).to_string());
}

fn decisions(decided: &Decided) -> Vec<(&str, Action, &str)> {
    decided
        .decisions
        .iter()
        .map(|d| (d.workstream.as_str(), d.action, d.why.as_str()))
        .collect()
}

fn hashes(plan: &Plan) -> Vec<String> {
    spec_hashes(&plan.workflow)
}

#[test]
fn what_was_not_started_runs_and_merged_work_is_kept() {
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    with_a_merged(&mut state);
    let facts = facts(&state);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[(0, oid(0xa1))]);
    assert_eq!(
        decisions(&decided),
        [
            ("a", Action::Keep, "merged"),
            ("b", Action::Run, "it had not started"),
            ("c", Action::Run, "it had not started"),
            ("d", Action::Run, "it had not started"),
        ]
    );
    assert!(decided.undo_merges.is_empty());
    assert!(decided.integration_reset.is_none());
    assert_eq!(
        decided.events.len(),
        3,
        "a reset for each that runs: {:?}",
        decided.events
    );
}

#[test]
fn ready_work_whose_branch_is_unchanged_is_merged_and_changed_work_runs_again() {
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    for (i, phase) in [(0, Phase::Ready), (1, Phase::Merging)] {
        let ws = &mut state.workstreams[i];
        ws.phase = phase;
        ws.start_commit = Some(oid(BASE).to_string());
        ws.result_commit = Some(oid(0x10 + i as u32).to_string());
    }
    let mut facts = facts(&state);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[]);
    assert_eq!(decided.decisions[0].action, Action::Merge);
    assert_eq!(decided.decisions[0].why, "ready; merged now");
    assert_eq!(decided.decisions[1].why, "its merge was interrupted; merged again");
    assert!(
        decided.events.iter().any(|e| matches!(
            e,
            EventKind::Phase {
                workstream: 1,
                phase: Phase::Ready,
                ..
            }
        )),
        "the interrupted merge is made ready again"
    );
    // Someone committed to `a`'s branch after it was checked.
    facts.branch_heads[0] = Some(oid(0x99));
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[]);
    assert_eq!(decided.decisions[0].action, Action::Run);
    assert_eq!(decided.decisions[0].why, "its branch changed since it was checked");
}

#[test]
fn an_agent_that_finished_is_checked_not_run_again() {
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    for i in [0, 1] {
        let ws = &mut state.workstreams[i];
        ws.phase = Phase::Running;
        ws.start_commit = Some(oid(BASE).to_string());
    }
    state.workstreams[0].agent_finished = true;
    let mut facts = facts(&state);
    facts.branch_heads[0] = Some(oid(0x51));
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[]);
    assert_eq!(decided.decisions[0].action, Action::Check);
    assert_eq!(decided.decisions[1].action, Action::Run);
    assert_eq!(decided.decisions[1].why, "it was interrupted");
    // Its branch is gone: nothing to check, it runs again.
    facts.branch_heads[0] = None;
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[]);
    assert_eq!(decided.decisions[0].action, Action::Run);
}

#[test]
fn a_finished_agent_whose_uncommitted_work_went_with_its_worktree_runs_again() {
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    // `a`'s agent left its work uncommitted (flow commits it at the check); `b`'s committed.
    for i in [0, 1] {
        let ws = &mut state.workstreams[i];
        ws.phase = Phase::Checking;
        ws.start_commit = Some(oid(BASE).to_string());
        ws.agent_finished = true;
    }
    let mut facts = facts(&state);
    facts.branch_heads[0] = Some(oid(BASE));
    facts.branch_heads[1] = Some(oid(0xb1));
    // Both worktrees there: both are checked.
    facts.worktree_gone = vec![false; 4];
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[]);
    assert_eq!(decided.decisions[0].action, Action::Check);
    assert_eq!(decided.decisions[1].action, Action::Check);
    // Both gone (deleted, or half-made and removed before the resume goes on): `a`'s work is
    // lost, so its agent runs again rather than a check finding nothing and merging it empty;
    // `b`'s is in its commits, checked as it is.
    facts.worktree_gone = vec![true; 4];
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[]);
    assert_eq!(
        decisions(&decided)[..2],
        [
            (
                "a",
                Action::Run,
                "its agent finished, but its worktree is gone and nothing of its work was committed; it runs again"
            ),
            (
                "b",
                Action::Check,
                "its agent finished before the run stopped; its work is checked, the agent is not run again"
            ),
        ]
    );
    assert!(
        decided
            .events
            .iter()
            .any(|e| matches!(e, EventKind::Reset { workstream: 0, .. })),
        "its record starts over: {:?}",
        decided.events
    );
    // Its dependents run again after it.
    assert_eq!(decided.decisions[2].action, Action::Run);
}

#[test]
fn failures_say_what_failed_and_run_again() {
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    state.workstreams[0].phase = Phase::Failed;
    state.workstreams[0].failure = Some(Failure::new(FailureKind::Test, "test failed: boom"));
    state.workstreams[1].phase = Phase::Conflicted;
    state.workstreams[2].phase = Phase::Skipped;
    state.workstreams[3].phase = Phase::Cancelled;
    let decided = decide(&plan, &state, &hashes(&plan), &facts(&state), &[]);
    assert_eq!(
        decisions(&decided),
        [
            ("a", Action::Run, "it failed: test failed: boom"),
            ("b", Action::Run, "it conflicted"),
            ("c", Action::Run, "it was skipped"),
            ("d", Action::Run, "it was cancelled"),
        ]
    );
}

#[test]
fn a_changed_spec_runs_again_with_its_dependents_and_its_merge_is_undone() {
    let plan = plan();
    let mut state = record(&plan, Phase::Merged);
    with_a_merged(&mut state);
    // c merged on top of a.
    let c = &mut state.workstreams[2];
    c.start_commit = Some(oid(0xa1).to_string());
    c.result_commit = Some(oid(0xc0).to_string());
    c.merge_commit = Some(oid(0xc1).to_string());
    state.last_good = Some(oid(0xc1).to_string());
    let mut facts = facts(&state);
    facts.ancestry.insert((oid(0xa1), oid(0xc1)), true);
    facts.ancestry.insert((oid(0xb1), oid(0xc1)), true);
    facts.ancestry.insert((oid(0xd1), oid(0xc1)), true);
    for (i, n) in [(1, 0xb1), (3, 0xd1)] {
        state.workstreams[i].merge_commit = Some(oid(n).to_string());
    }
    // `c`'s recorded hash differs from its spec now: its task was edited.
    state.workstreams[2].spec_hash = "edited".into();
    let merges = [(0, oid(0xa1)), (2, oid(0xc1))];
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &merges);
    assert_eq!(
        decisions(&decided),
        [
            ("a", Action::Keep, "merged"),
            ("b", Action::Keep, "merged"),
            (
                "c",
                Action::Run,
                "its spec changed (task, agent, model, scope, test or a dependency's)"
            ),
            ("d", Action::Run, "its dependency `c` runs again"),
        ]
    );
    assert_eq!(decided.undo_merges, [("c".to_string(), oid(0xa1), oid(0xc1))]);
}

#[test]
fn an_upstream_edit_is_named_as_the_reason_downstream() {
    let plan = plan();
    let mut state = record(&plan, Phase::Done);
    // `a` was edited: its hash and, through it, `c`'s and `d`'s differ.
    state.workstreams[0].spec_hash = "old-a".into();
    let recorded_a = ["old-a"];
    state.workstreams[2].spec_hash = crate::run::spec_hash::spec_hash_with(&plan.workflow, 2, &recorded_a);
    let decided = decide(&plan, &state, &hashes(&plan), &facts(&state), &[]);
    assert_eq!(decided.decisions[0].action, Action::Run);
    assert_eq!(decided.decisions[1].why, "done");
    assert_eq!(decided.decisions[2].why, "its dependency `a` runs again");
}

#[test]
fn an_integration_branch_moved_by_hand_is_followed_and_merges_not_in_it_are_redone() {
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    with_a_merged(&mut state);
    let mut facts = facts(&state);
    // Someone reset the integration branch to base: a's merge is gone, its branch unchanged.
    facts.into_head = Some(oid(BASE));
    facts.branch_heads[0] = Some(oid(0xa0));
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[(0, oid(0xa1))]);
    assert_eq!(decided.decisions[0].action, Action::Merge);
    assert_eq!(
        decided.decisions[0].why,
        "its merge is no longer in the integration branch; merged again"
    );
    assert!(matches!(
        &decided.events[0],
        EventKind::IntegrationReset { commit, reason }
            if *commit == oid(BASE).to_string() && reason.contains("moved by hand")
    ));
    // And when its branch changed too, it runs again.
    facts.branch_heads[0] = Some(oid(0x77));
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[(0, oid(0xa1))]);
    assert_eq!(decided.decisions[0].action, Action::Run);
}

#[test]
fn a_merge_the_run_did_not_finish_verifying_is_undone_and_redone() {
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    let a = &mut state.workstreams[0];
    a.phase = Phase::Merging;
    a.start_commit = Some(oid(BASE).to_string());
    a.result_commit = Some(oid(0xa0).to_string());
    let mut facts = facts(&state);
    // The merge moved the branch, then flow died before `verify` said yes.
    facts.into_head = Some(oid(0xa1));
    facts.ancestry.insert((oid(BASE), oid(0xa1)), true);
    facts.ancestry.insert((oid(0xa0), oid(0xa1)), true);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[]);
    assert_eq!(decided.integration_reset.as_ref().map(|r| r.0), Some(oid(BASE)));
    assert_eq!(decided.decisions[0].action, Action::Merge);
}

#[test]
fn a_resolution_the_run_did_not_finish_verifying_is_finished_if_its_resolver_ended_else_redone() {
    use crate::run::state::{AttemptRecord, Purpose};
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    let a = &mut state.workstreams[0];
    a.phase = Phase::Resolving;
    a.start_commit = Some(oid(BASE).to_string());
    a.result_commit = Some(oid(0xa0).to_string());
    a.attempt_log.push(AttemptRecord {
        number: 2,
        purpose: Purpose::Resolve,
        started_at: state.started_at,
        ended_at: None,
        usage: Default::default(),
        feedback: None,
        error: None,
    });
    // The resolver was cut: its merge is redone, and it runs again.
    let decided = decide(&plan, &state, &hashes(&plan), &facts(&state), &[]);
    assert_eq!(decided.decisions[0].action, Action::Merge);
    assert!(decided.decisions[0].why.contains("the resolver runs again"));

    // It ended; flow committed its resolution, moved the integration branch, and died before
    // `verify` said yes: the resolution stays where it is, and is verified.
    state.workstreams[0].attempt_log[0].ended_at = Some(state.started_at);
    let mut facts = facts(&state);
    facts.into_head = Some(oid(0xa1));
    facts.ancestry.insert((oid(BASE), oid(0xa1)), true);
    facts.ancestry.insert((oid(0xa0), oid(0xa1)), true);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[]);
    assert_eq!(
        decided.decisions[0].action,
        Action::Finish,
        "{:?}",
        decided.decisions[0]
    );
    assert!(decided.integration_reset.is_none(), "the unverified resolution stays");
    assert_eq!(
        decided.events[0],
        EventKind::Phase {
            workstream: 0,
            phase: Phase::Resolving,
            reason: Some(decided.decisions[0].why.clone()),
        }
    );
    assert!(
        !decided
            .events
            .iter()
            .any(|e| matches!(e, EventKind::IntegrationReset { .. })),
        "the record keeps its last good commit: the resolution is not taken as verified"
    );
    // Before it was committed: the same (the integration worktree holds it).
    let decided = decide(&plan, &state, &hashes(&plan), &self::facts(&state), &[]);
    assert_eq!(decided.decisions[0].action, Action::Finish);

    // Its resolver failed: nothing to finish.
    state.workstreams[0].attempt_log[0].error = Some("crashed".into());
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[]);
    assert_eq!(decided.decisions[0].action, Action::Merge);
    assert_eq!(decided.integration_reset.as_ref().map(|r| r.0), Some(oid(BASE)));
}

#[test]
fn a_dependent_whose_start_left_the_integration_branch_runs_again() {
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    with_a_merged(&mut state);
    let c = &mut state.workstreams[2];
    c.phase = Phase::Ready;
    c.start_commit = Some(oid(0x5a).to_string());
    c.result_commit = Some(oid(0xc0).to_string());
    let facts = facts(&state);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[(0, oid(0xa1))]);
    assert_eq!(decided.decisions[2].action, Action::Run);
    assert_eq!(
        decided.decisions[2].why,
        "the integration commit it started from is no longer in the integration branch"
    );
}

#[test]
fn the_pairs_asked_of_git_cover_every_recorded_commit_against_both_heads() {
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    with_a_merged(&mut state);
    let pairs = GitFacts::pairs_needed(&state, Some(oid(0x77)));
    for commit in [oid(BASE), oid(0xa0), oid(0xa1)] {
        assert!(pairs.contains(&(commit, oid(0x77))), "{commit} against git's head");
    }
    assert!(pairs.contains(&(oid(0xa0), oid(0xa1))), "against the recorded head");
    assert!(!pairs.iter().any(|(c, h)| c == h));
}

/// `b` conflicted with result 0xb0 after `a` merged as 0xa1; what a person did since is `hand`
/// with `b`'s branch at `head`.
fn conflicted_b(hand: Option<ByHand>, head: u32) -> (Plan, RunState, GitFacts) {
    let plan = plan();
    let mut state = record(&plan, Phase::Pending);
    with_a_merged(&mut state);
    let b = &mut state.workstreams[1];
    b.phase = Phase::Conflicted;
    b.start_commit = Some(oid(BASE).to_string());
    b.result_commit = Some(oid(0xb0).to_string());
    b.files_changed = vec!["shared.txt".into()];
    let mut facts = facts(&state);
    facts.branch_heads[1] = Some(oid(head));
    facts.by_hand = vec![None, hand, None, None];
    (plan, state, facts)
}

#[test]
fn a_conflict_a_person_resolved_and_committed_is_merged_and_logged_as_theirs() {
    let hand = ByHand {
        merging: false,
        moved_on: true,
        holds_into: true,
        files: vec!["shared.txt".into()],
        markers: vec![],
    };
    let (plan, state, facts) = conflicted_b(Some(hand), 0xb1);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[(0, oid(0xa1))]);
    assert_eq!(
        decisions(&decided)[1],
        (
            "b",
            Action::Merge,
            format!(
                "its conflict was resolved by hand (its branch is at {}); merged now",
                oid(0xb1).short()
            )
            .as_str()
        )
    );
    assert!(decided.waiting().is_none());
    // Its result is the person's commit, then it is ready; its check is kept.
    let for_b: Vec<&EventKind> = decided
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                EventKind::Checked { workstream: 1, .. } | EventKind::Phase { workstream: 1, .. }
            )
        })
        .collect();
    assert!(
        matches!(
            for_b.as_slice(),
            [
                EventKind::Checked { result_commit: Some(r), base_commit: Some(base), files_changed, .. },
                EventKind::Phase { phase: Phase::Ready, .. },
            ] if *r == oid(0xb1).to_string() && *base == oid(0xa1).to_string() && *files_changed == ["shared.txt"]
        ),
        "{for_b:?}"
    );
    assert_eq!(decided.log.len(), 1);
    let (commit, entry) = &decided.log[0];
    assert_eq!(*commit, oid(0xb1), "keyed by the commit that holds the resolution");
    assert!(
        entry.contains("## `b` and the integration branch")
            && entry.contains("- files: shared.txt")
            && entry.contains(&format!("a person (`flow resolve`), in commit {}", oid(0xb1).short())),
        "{entry}"
    );
}

#[test]
fn a_resolution_not_committed_or_with_markers_committed_makes_the_resume_wait() {
    let merging = ByHand {
        merging: true,
        ..ByHand::default()
    };
    let (plan, state, facts) = conflicted_b(Some(merging), 0xb0);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[(0, oid(0xa1))]);
    let waiting = decided.waiting().expect("it waits");
    assert_eq!(waiting.workstream, "b");
    assert!(
        waiting.why.contains("a merge is in progress in its worktree"),
        "{}",
        waiting.why
    );
    assert!(decided.log.is_empty());

    let markers = ByHand {
        merging: false,
        moved_on: true,
        holds_into: true,
        files: vec!["shared.txt".into(), "other.txt".into()],
        markers: vec!["shared.txt".into()],
    };
    let (plan, state, facts) = conflicted_b(Some(markers), 0xb1);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[(0, oid(0xa1))]);
    assert_eq!(decided.decisions[1].action, Action::Wait);
    assert!(
        decided.decisions[1]
            .why
            .contains("conflict markers committed in shared.txt"),
        "{}",
        decided.decisions[1].why
    );
    assert!(decided.log.is_empty(), "nothing is logged for a resume that waits");
}

#[test]
fn a_conflicted_branch_left_alone_or_rewritten_runs_again_and_one_moved_on_merges_unlogged() {
    // Nothing done by hand: it runs again, as before.
    let (plan, state, facts) = conflicted_b(None, 0xb0);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[(0, oid(0xa1))]);
    assert_eq!(decisions(&decided)[1], ("b", Action::Run, "it conflicted"));
    // Its history rewritten (the recorded result is not in it): the same.
    let rewritten = ByHand {
        moved_on: false,
        ..ByHand::default()
    };
    let (plan, state, facts) = conflicted_b(Some(rewritten), 0xb9);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[(0, oid(0xa1))]);
    assert_eq!(decisions(&decided)[1], ("b", Action::Run, "it conflicted"));
    // Committed on, without merging the integration branch: merged again, nothing to log.
    let moved = ByHand {
        moved_on: true,
        ..ByHand::default()
    };
    let (plan, state, facts) = conflicted_b(Some(moved), 0xb2);
    let decided = decide(&plan, &state, &hashes(&plan), &facts, &[(0, oid(0xa1))]);
    assert_eq!(decided.decisions[1].action, Action::Merge);
    assert!(decided.log.is_empty());
}
