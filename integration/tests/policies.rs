//! The two GPU-process policies differ only in executable memory, as `ray-seccomp diff` (the
//! auditors' tool) sees them.

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
