//! What a kernel of each Landlock ABI can enforce of a policy, and how a refusal reads.

use super::{Confinement, Gap, Network, Policy, SandboxError, Support, decide};

#[test]
fn each_abi_reports_what_it_cannot_enforce() {
    let open = Policy::new();
    let offline = Policy::new().network(Network::Off);
    let cases: [(u8, &Policy, &[Gap]); 10] = [
        (1, &open, &[Gap::Truncate, Gap::DeviceIoctl, Gap::Scopes]),
        (
            2,
            &offline,
            &[Gap::Truncate, Gap::DeviceIoctl, Gap::Network, Gap::Scopes],
        ),
        (3, &open, &[Gap::DeviceIoctl, Gap::Scopes]),
        (4, &offline, &[Gap::DeviceIoctl, Gap::Scopes]),
        (5, &offline, &[Gap::Scopes]),
        (5, &open, &[Gap::Scopes]),
        (6, &offline, &[]),
        (7, &offline, &[]),
        (7, &open, &[]),
        (0, &offline, &[]),
    ];
    for (abi, policy, gaps) in cases {
        assert_eq!(Support::at(abi, None).gaps(policy), gaps, "ABI {abi}, {policy:?}");
    }
}

#[test]
fn support_follows_the_abi() {
    let none = Support::at(0, None);
    assert!(!none.filesystem && !none.network && !none.scopes && !none.audit);
    let four = Support::at(4, None);
    assert!(four.filesystem && four.network && !four.scopes);
    let seven = Support::at(7, None);
    assert!(seven.scopes && seven.audit && seven.missing.is_none());
}

#[test]
fn a_kernel_without_landlock_is_refused_and_partial_support_needs_best_effort() {
    let offline = Policy::new().network(Network::Off);
    let error = decide(Support::at(0, Some(super::Absence::NotEnabled)), &offline).unwrap_err();
    assert!(matches!(error, SandboxError::Unavailable { .. }));
    assert_eq!(
        error.to_string(),
        "agents cannot be confined: Landlock is built into this kernel but not enabled"
    );

    let error = decide(Support::at(5, None), &offline).unwrap_err();
    assert_eq!(
        error.to_string(),
        "agents can only be partly confined with Landlock ABI 5: signals to other processes and \
         their abstract unix sockets (needs Landlock ABI 6) would not be enforced"
    );
    let best_effort = Policy {
        best_effort: true,
        ..offline.clone()
    };
    assert_eq!(decide(Support::at(5, None), &best_effort).unwrap(), vec![Gap::Scopes]);
    // Best effort never turns "no Landlock" into a confinement.
    assert!(matches!(
        decide(Support::at(0, None), &best_effort),
        Err(SandboxError::Unavailable { .. })
    ));
    assert_eq!(decide(Support::at(7, None), &offline).unwrap(), vec![]);
}

#[test]
fn a_partial_confinement_names_its_gaps() {
    let full = Confinement { abi: 7, gaps: vec![] };
    assert!(full.is_full());
    assert_eq!(full.to_string(), "confined with Landlock ABI 7");
    let partial = Confinement {
        abi: 3,
        gaps: vec![Gap::DeviceIoctl, Gap::Scopes],
    };
    assert!(!partial.is_full());
    assert_eq!(
        partial.to_string(),
        "confined with Landlock ABI 3; not enforced: ioctls on devices (needs Landlock ABI 5), \
         signals to other processes and their abstract unix sockets (needs Landlock ABI 6)"
    );
}
