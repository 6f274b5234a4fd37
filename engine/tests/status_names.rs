//! The names the status enums show (`as_str`, `Display`) are the names serde writes, for every
//! variant, so text output and JSON output cannot drift apart.

use std::fmt::Display;

use flow_engine::by_hand::merge::MergeResult;
use flow_engine::by_hand::prepare::PrepareStatus;
use flow_engine::run::state::RunStatus;
use serde::Serialize;

/// Asserts that `as_str` and `Display` give serde's spelling of each of `variants`.
fn assert_serde_spelling<T: Serialize + Display + Copy>(variants: &[T], as_str: fn(T) -> &'static str) {
    for &variant in variants {
        let serde = serde_json::to_value(variant).expect("a unit variant serializes");
        assert_eq!(serde.as_str(), Some(as_str(variant)));
        assert_eq!(variant.to_string(), as_str(variant));
    }
}

#[test]
fn run_status_names_are_serde_names() {
    let every = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];
    // A new variant fails to compile here until it is added to `every`.
    for status in every {
        match status {
            RunStatus::Running | RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled => (),
        }
    }
    assert_serde_spelling(&every, RunStatus::as_str);
}

#[test]
fn prepare_status_names_are_serde_names() {
    let every = [
        PrepareStatus::Created,
        PrepareStatus::Reused,
        PrepareStatus::Waiting,
        PrepareStatus::Skipped,
        PrepareStatus::Failed,
    ];
    // A new variant fails to compile here until it is added to `every`.
    for status in every {
        match status {
            PrepareStatus::Created
            | PrepareStatus::Reused
            | PrepareStatus::Waiting
            | PrepareStatus::Skipped
            | PrepareStatus::Failed => (),
        }
    }
    assert_serde_spelling(&every, PrepareStatus::as_str);
}

#[test]
fn merge_result_names_are_serde_names() {
    let every = [
        MergeResult::Merged,
        MergeResult::AlreadyMerged,
        MergeResult::Skipped,
        MergeResult::Conflicted,
        MergeResult::Failed,
    ];
    // A new variant fails to compile here until it is added to `every`.
    for result in every {
        match result {
            MergeResult::Merged
            | MergeResult::AlreadyMerged
            | MergeResult::Skipped
            | MergeResult::Conflicted
            | MergeResult::Failed => (),
        }
    }
    assert_serde_spelling(&every, MergeResult::as_str);
}

#[test]
fn names_are_padded_like_strings() {
    assert_eq!(format!("[{:<9}]", RunStatus::Failed), "[failed   ]");
    assert_eq!(format!("[{:>8}]", MergeResult::Merged), "[  merged]");
}
