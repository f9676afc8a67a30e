//! What auditors see in our two GPU-process policies with `ray-seccomp`: they differ only in
//! executable memory, and nothing else in them rates as a medium or high risk.

use std::process::Command;
use std::time::Duration;

use integration::binaries;
use integration::escape::Policy;
use serde_json::Value;

#[test]
fn software_policy_adds_only_executable_mmap_and_mprotect() {
    let mut diff = Command::new(binaries::ray_seccomp());
    diff.arg("--json")
        .arg("diff")
        .arg(Policy::Hardware.path())
        .arg(Policy::Software.path());

    let output = binaries::run_with_timeout(&mut diff, Duration::from_secs(30));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();

    let prot = |exec: &str| format!("arg2={exec}");
    let exec_values = Value::from(vec![prot("0x4"), prot("0x6"), prot("0x7")]);
    let widened: Vec<(&str, &Value)> = report["became_allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["syscall"].as_str().unwrap(), &entry["when"]))
        .collect();
    assert_eq!(
        widened,
        [("mmap", &exec_values), ("mprotect", &exec_values)]
    );
    assert_eq!(report["became_forbidden"], Value::Array(Vec::new()));
    assert_eq!(report["refusal_changed"], Value::Array(Vec::new()));
}

/// The auditor's findings at medium risk or above, as (syscall, risk) pairs.
fn serious_findings(policy: Policy) -> Vec<(String, String)> {
    let mut audit = Command::new(binaries::ray_seccomp());
    audit.arg("--json").arg("audit").arg(policy.path());

    let output = binaries::run_with_timeout(&mut audit, Duration::from_secs(30));
    let reports: Value = serde_json::from_slice(&output.stdout).unwrap();
    reports[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["syscall"].as_str().unwrap().to_owned(),
                f["risk"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(_, risk)| risk == "high" || risk == "medium")
        .collect()
}

#[test]
fn hardware_policy_audit_finds_no_medium_or_high_risk() {
    let findings = serious_findings(Policy::Hardware);

    assert_eq!(findings, Vec::<(String, String)>::new());
}

#[test]
fn software_policy_audit_finds_only_executable_memory() {
    let findings = serious_findings(Policy::Software);

    let high = |syscall: &str| (syscall.to_owned(), "high".to_owned());
    assert_eq!(findings, [high("mmap"), high("mprotect")]);
}
