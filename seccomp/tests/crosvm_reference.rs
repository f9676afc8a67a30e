//! crosvm's real policies parse and compile unchanged.

mod common;

use seccomp::{DefaultAction, Policy};

#[test]
fn every_crosvm_policy_parses_unchanged() {
    let dirs = vec![common::crosvm_dir()];
    let files = common::crosvm_policies();

    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| Policy::from_file(f, &dirs).err())
        .map(|e| e.to_string())
        .collect();

    assert!(
        files.len() > 40,
        "expected crosvm's ~47 policies, found {}",
        files.len()
    );
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn every_crosvm_policy_compiles() {
    let dirs = vec![common::crosvm_dir()];

    let failures: Vec<String> = common::crosvm_policies()
        .iter()
        .map(|f| Policy::from_file(f, &dirs).expect("parses"))
        .filter_map(|p| {
            p.compile(DefaultAction::KillProcess)
                .err()
                .map(|e| format!("{}: {e}", p.name()))
        })
        .collect();

    assert_eq!(failures, Vec::<String>::new());
}
