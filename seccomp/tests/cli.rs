//! The `ray-seccomp` binary, run as users run it.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn ray_seccomp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ray-seccomp"))
        .args(args)
        .output()
        .expect("ray-seccomp runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn crosvm(name: &str) -> (String, String) {
    let dir = common::crosvm_dir();
    (
        dir.join(name).display().to_string(),
        dir.display().to_string(),
    )
}

fn findings_of_gpu_device() -> Vec<(String, String)> {
    let (policy, dir) = crosvm("gpu_device.policy");
    let output = ray_seccomp(&["audit", &policy, "-I", &dir, "--json"]);
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    reports[0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["risk"] == "high")
        .map(|f| {
            (
                f["syscall"].as_str().unwrap().to_string(),
                f["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn high_finding(syscall: &str) -> String {
    findings_of_gpu_device()
        .into_iter()
        .find(|(s, _)| s == syscall)
        .map(|(_, reason)| reason)
        .unwrap_or_else(|| panic!("no high finding for {syscall}"))
}

#[test]
fn audit_of_crosvm_gpu_device_names_its_ioctl_mask_rule_and_what_it_admits() {
    let reason = high_finding("ioctl");

    assert!(reason.contains("bit mask"), "{reason}");
    assert!(reason.contains("arg1 & 0x6400"), "{reason}");
    assert!(reason.contains("TIOCSTI (0x5412)"), "{reason}");
    assert!(reason.contains("DRM_IOCTL_SET_MASTER"), "{reason}");
}

#[test]
fn audit_of_crosvm_gpu_device_flags_io_uring_clone3_userfaultfd() {
    let flagged: Vec<String> = findings_of_gpu_device()
        .into_iter()
        .map(|(s, _)| s)
        .collect();

    let wanted = [
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "clone3",
        "userfaultfd",
    ];
    let missing: Vec<&str> = wanted
        .into_iter()
        .filter(|w| !flagged.iter().any(|f| f == w))
        .collect();
    assert_eq!(missing, Vec::<&str>::new());
}

#[test]
fn audit_of_crosvm_gpu_device_flags_memfd_create_with_executable_mappings() {
    let reason = high_finding("memfd_create");

    assert!(reason.contains("mmap with PROT_EXEC"), "{reason}");
}

#[test]
fn audit_table_ends_with_a_summary() {
    let (policy, dir) = crosvm("gpu_device.policy");

    let output = ray_seccomp(&["audit", &policy, "-I", &dir]);

    assert!(
        stdout(&output).contains("summary: 96 syscalls named, 96 allowed;"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn check_exits_0_for_an_allowed_call() {
    let (policy, dir) = crosvm("gpu_device.policy");

    let output = ray_seccomp(&[
        "check",
        &policy,
        "mmap",
        "0",
        "4096",
        "PROT_READ|PROT_WRITE",
        "-I",
        &dir,
    ]);

    assert_eq!(
        (output.status.code(), stdout(&output)),
        (Some(0), "mmap(0x0, 0x1000, 0x3) -> allow\n".to_string())
    );
}

#[test]
fn check_exits_1_for_a_refused_call() {
    let (policy, dir) = crosvm("gpu_device.policy");

    let output = ray_seccomp(&[
        "check",
        &policy,
        "socket",
        "AF_INET",
        "SOCK_STREAM",
        "0",
        "-I",
        &dir,
    ]);

    assert_eq!(
        (output.status.code(), stdout(&output)),
        (
            Some(1),
            "socket(0x2, 0x1, 0x0) -> kill-process\n".to_string()
        )
    );
}

#[test]
fn check_exits_2_with_file_line_column_for_a_policy_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("bad.policy");
    fs::write(&policy, "read: 1\nwrite: arg0 == NOT_A_CONSTANT\n").unwrap();

    let output = ray_seccomp(&["check", policy.to_str().unwrap(), "read"]);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("bad.policy:2:16: unknown constant `NOT_A_CONSTANT`"),
        "{stderr}"
    );
}

#[test]
fn compile_writes_eight_bytes_per_instruction() {
    let (policy, dir) = crosvm("gpu_device.policy");
    let out = tempfile::tempdir().unwrap();
    let bpf = out.path().join("gpu.bpf");

    let output = ray_seccomp(&[
        "compile",
        &policy,
        "-o",
        bpf.to_str().unwrap(),
        "-I",
        &dir,
        "--json",
    ]);

    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let instructions = summary["instructions"].as_u64().unwrap();
    assert_eq!(fs::metadata(&bpf).unwrap().len(), instructions * 8);
}

#[test]
fn diff_reports_what_became_allowed_and_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.policy");
    let b = dir.path().join("b.policy");
    fs::write(
        &a,
        "read: 1\nioctl: arg1 == FIONBIO\nsocket: arg0 == AF_UNIX\n",
    )
    .unwrap();
    fs::write(
        &b,
        "read: 1\nioctl: arg1 == FIONBIO || arg1 == TIOCSTI\nopen: return ENOENT\n",
    )
    .unwrap();

    let output = ray_seccomp(&["diff", a.to_str().unwrap(), b.to_str().unwrap(), "--json"]);

    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let allowed: Vec<String> = report["became_allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["syscall"], c["when"]))
        .collect();
    let forbidden: Vec<String> = report["became_forbidden"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["syscall"], c["when"]))
        .collect();
    assert_eq!(allowed, vec![r#""ioctl" ["arg1=0x5412"]"#]);
    assert_eq!(forbidden, vec![r#""socket" ["arg0=0x1"]"#]);
}

fn strace(dir: &Path, command: &[&str]) -> String {
    let log = dir.join("trace.log");
    let status = Command::new("strace")
        .args(["-f", "-o", log.to_str().unwrap()])
        .args(command)
        .status()
        .expect("strace must be installed (scripts/setup-host.sh installs it)");
    assert!(status.success(), "strace failed: {status}");
    log.display().to_string()
}

#[test]
fn learn_from_a_real_strace_log_gives_a_policy_that_parses_and_covers_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let log = strace(dir.path(), &["sh", "-c", "ls / > /dev/null"]);

    let output = ray_seccomp(&["learn", &log]);

    let text = stdout(&output);
    let policy = seccomp::Policy::from_str(&text, "learned", &[]).expect("learned policy parses");
    let names: Vec<&str> = policy.syscalls().iter().map(|r| r.name()).collect();
    assert!(
        names.contains(&"execve") && names.contains(&"exit_group"),
        "{text}"
    );
    assert!(text.contains("mmap: arg2 == PROT_READ"), "{text}");
}

#[test]
fn learn_with_existing_lists_rules_the_trace_never_needed() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("t.log");
    fs::write(&log, "1 read(3, \"x\", 1) = 1\n1 +++ exited with 0 +++\n").unwrap();
    let existing = dir.path().join("old.policy");
    fs::write(&existing, "read: 1\nwrite: 1\n").unwrap();

    let output = ray_seccomp(&[
        "learn",
        log.to_str().unwrap(),
        "--existing",
        existing.to_str().unwrap(),
    ]);

    let text = stdout(&output);
    assert!(text.contains("read: 1  # seen 1 times"), "{text}");
    assert!(text.contains("#   write: 1  ("), "{text}");
}
