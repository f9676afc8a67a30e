//! `rayvmm probe-syscalls`: each raw system call of a JSON file in a fresh jailed probe
//! process, one JSON result per call, and a failing exit status when any result differs.

use std::path::PathBuf;

use integration::escape::{run_raw_file, Policy};

fn example_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/raw_syscalls.json")
}

#[test]
fn example_file_passes_under_the_hardware_policy() {
    let (output, results) = run_raw_file(&example_file(), Policy::Hardware);

    let failed: Vec<_> = results.iter().filter(|r| !r.pass).collect();
    assert!(output.status.success() && failed.is_empty(), "{failed:?}");
    assert_eq!(results.len(), 11);
}

#[test]
fn wrong_expectation_fails_the_run_and_names_the_outcome() {
    let dir = std::env::temp_dir().join(format!("rayos-probe-syscalls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wrong.json");
    std::fs::write(
        &file,
        r#"[{"name": "getpid", "nr": "getpid", "args": [], "expect": "SIGSYS"}]"#,
    )
    .unwrap();

    let (output, results) = run_raw_file(&file, Policy::Hardware);
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        results
            .iter()
            .map(|r| (r.outcome.as_str(), r.pass))
            .collect::<Vec<_>>(),
        [("ok", false)]
    );
}
