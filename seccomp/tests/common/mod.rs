//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// crosvm's x86_64 policies, shipped in the shared reference folder.
pub fn crosvm_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/crosvm-seccomp-x86_64");
    assert!(
        dir.is_dir(),
        "reference policies missing at {}: the shared reference folder is required",
        dir.display()
    );
    dir
}

/// Every `.policy` file of crosvm's reference set, sorted.
pub fn crosvm_policies() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(crosvm_dir())
        .expect("reference folder is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "policy"))
        .collect();
    files.sort();
    files
}
