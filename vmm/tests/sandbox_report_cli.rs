//! `rayvmm sandbox-report` end to end: the real binary, the real jailed ray-gpu.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ray_gpu() -> PathBuf {
    let rayvmm = Path::new(env!("CARGO_BIN_EXE_rayvmm"));
    let path = rayvmm.with_file_name("ray-gpu");
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build -p gpu-process` (scripts/test.sh does)",
        path.display()
    );
    path
}

fn sandbox_report(extra: &[&str]) -> std::process::Output {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ray_gpu_none.policy");
    Command::new(env!("CARGO_BIN_EXE_rayvmm"))
        .arg("sandbox-report")
        .arg("--policy")
        .arg(policy)
        .arg("--gpu-binary")
        .arg(ray_gpu())
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn json_report_shows_a_filtered_unprivileged_pid_1() {
    let output = sandbox_report(&["--json"]);

    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(report["status"]["seccomp"], 2);
    assert_eq!(report["status"]["no_new_privs"], true);
    assert_eq!(report["status"]["cap_eff"], 0);
    assert_eq!(report["status"]["cap_bnd"], 0);
    assert_eq!(report["status"]["ns_pids"][1], 1);
    assert_eq!(report["policy"]["name"], "ray_gpu_none.policy");
    assert_eq!(report["cgroup"], "no delegated cgroup v2: rlimits only");
}

#[test]
fn text_report_names_every_namespace_as_its_own() {
    let output = sandbox_report(&[]);

    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let own = text
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("own"))
        .count();
    assert_eq!(own, 7, "{text}");
    assert!(!text.contains("SHARED"), "{text}");
}

#[test]
fn missing_policy_file_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_rayvmm"))
        .args(["sandbox-report", "--policy", "/nonexistent/x.policy"])
        .arg("--gpu-binary")
        .arg(ray_gpu())
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("policy file /nonexistent/x.policy does not exist"),
        "{stderr}"
    );
}
