//! A compiled policy installed in the kernel with seccompiler does what the policy says.
//!
//! The filter is installed in a child process (this test binary, re-run on one ignored
//! test), so the test harness itself is never filtered.

use std::process::Command;

use seccomp::{DefaultAction, Policy};

const CHILD_ENV: &str = "RAY_SECCOMP_TEST_CHILD";

#[test]
fn installed_filter_fails_openat_with_the_policy_errno() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_installs_filter_then_open_fails_with_eacces",
        ])
        .args(["--include-ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();

    let log = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "child failed:\n{log}");
    assert!(
        log.contains("1 passed"),
        "child did not run its test:\n{log}"
    );
}

#[test]
#[ignore = "runs in a child process started by installed_filter_fails_openat_with_the_policy_errno"]
fn child_installs_filter_then_open_fails_with_eacces() {
    assert_eq!(
        std::env::var(CHILD_ENV).as_deref(),
        Ok("1"),
        "only run as a child"
    );
    let policy = Policy::from_str("openat: return EACCES\n", "child.policy", &[]).unwrap();
    let program = policy.compile(DefaultAction::Log).unwrap();

    seccompiler::apply_filter(&program).unwrap();
    let opened = std::fs::File::open("/proc/self/status");

    assert_eq!(opened.unwrap_err().raw_os_error(), Some(13));
}
