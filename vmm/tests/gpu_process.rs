//! Spawns the real jailed ray-gpu and checks the jail from outside and from inside.
//!
//! ray-gpu is another package's binary: these tests look for it in the target directory
//! beside this test executable (`scripts/test.sh` builds the whole workspace first).

use std::path::{Path, PathBuf};
use std::time::Duration;

use jail::{ExitStatus, Resource, TreeEntry};
use seccomp::DefaultAction;
use vmm::gpu_process::{GpuError, GpuProcess, GpuSpawnConfig};

fn ray_gpu() -> PathBuf {
    // target/<profile>/deps/gpu_process-HASH -> target/<profile>/ray-gpu
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("ray-gpu");
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build -p gpu-process` (scripts/test.sh does)",
        path.display()
    );
    path
}

fn fixture_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ray_gpu_none.policy")
}

fn config() -> GpuSpawnConfig {
    GpuSpawnConfig::new(&ray_gpu(), &fixture_policy(), &[])
}

fn spawn(config: &GpuSpawnConfig) -> GpuProcess {
    GpuProcess::spawn(config).unwrap_or_else(|e| panic!("spawn failed: {e}"))
}

#[test]
fn spawned_process_is_filtered_without_privileges() {
    let gpu = spawn(&config());

    let status = &gpu.confinement().status;

    assert_eq!(status.seccomp, 2);
    assert!(status.no_new_privs);
    assert_eq!(
        (
            status.cap_eff,
            status.cap_prm,
            status.cap_bnd,
            status.cap_amb,
            status.cap_inh
        ),
        (0, 0, 0, 0, 0)
    );
}

#[test]
fn spawned_process_has_its_own_namespaces() {
    let gpu = spawn(&config());

    let shared: Vec<&str> = gpu
        .confinement()
        .namespaces
        .iter()
        .filter(|l| !l.is_separate())
        .map(|l| l.kind)
        .collect();

    assert_eq!(shared, Vec::<&str>::new());
    assert_eq!(gpu.confinement().namespaces.len(), 7);
}

#[test]
fn spawned_process_is_pid_1_inside() {
    let gpu = spawn(&config());

    assert_eq!(gpu.ready_info().pid_in_namespace, 1);
    assert_eq!(gpu.confinement().status.pid_inside(), Some(1));
}

#[test]
fn spawned_process_runs_as_the_configured_unprivileged_ids() {
    let config = config();
    let gpu = spawn(&config);

    let status = &gpu.confinement().status;

    assert_eq!(status.uids, vec![config.jail.ids.uid; 4]);
    assert_eq!(status.gids, vec![config.jail.ids.gid; 4]);
    assert_eq!(
        gpu.confinement()
            .uid_map
            .split_whitespace()
            .collect::<Vec<_>>(),
        [
            config.jail.ids.uid.to_string(),
            config.jail.ids.uid.to_string(),
            "1".into()
        ]
    );
}

#[test]
fn visible_tree_holds_no_host_secrets() {
    let mut gpu = spawn(&config());

    let view = gpu.request_report().unwrap();

    let paths: Vec<&str> = view.files.iter().map(|f| f.path.as_str()).collect();
    for secret in [
        "/etc/shadow",
        "/etc/passwd",
        "/home",
        "/root",
        "/work",
        "/sys",
        "/dev/shm",
    ] {
        assert!(!paths.contains(&secret), "{secret} is visible");
    }
    assert!(paths.contains(&"/ray-gpu"));
    assert!(paths.contains(&"/etc/ld.so.cache"));
}

#[test]
fn nothing_inside_is_writable() {
    let mut gpu = spawn(&config());

    let view = gpu.request_report().unwrap();

    let writable: Vec<&str> = view
        .files
        .iter()
        .filter(|f| f.writable && !f.path.starts_with("/proc/"))
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(writable, Vec::<&str>::new());
}

#[test]
fn only_the_passed_descriptors_are_open_inside() {
    let mut gpu = spawn(&config());

    let view = gpu.request_report().unwrap();

    let numbers: Vec<i32> = view.fds.iter().map(|(fd, _)| *fd).collect();
    assert_eq!(numbers, [0, 1, 2, 3], "{:?}", view.fds);
    assert!(view.fds[3].1.starts_with("socket:"), "{:?}", view.fds);
}

#[test]
fn uid_inside_is_the_mapped_uid() {
    let config = config();
    let mut gpu = spawn(&config);

    let view = gpu.request_report().unwrap();

    assert_eq!(
        (view.uid, view.gid),
        (config.jail.ids.uid, config.jail.ids.gid)
    );
}

#[test]
fn rlimits_are_the_configured_ones() {
    let config = config();
    let mut gpu = spawn(&config);

    let view = gpu.request_report().unwrap();

    for limit in &config.jail.rlimits {
        let seen = view
            .rlimits
            .iter()
            .find(|(name, _, _)| name == limit.resource.name())
            .unwrap_or_else(|| panic!("{} not reported", limit.resource.name()));
        assert_eq!(
            (seen.1, seen.2),
            (Some(limit.soft), Some(limit.hard)),
            "{}",
            seen.0
        );
    }
}

#[test]
fn smaller_descriptor_limit_is_applied() {
    let mut config = config();
    config
        .jail
        .rlimits
        .iter_mut()
        .filter(|l| l.resource == Resource::NoFile)
        .for_each(|l| (l.soft, l.hard) = (64, 64));
    let mut gpu = spawn(&config);

    let view = gpu.request_report().unwrap();

    assert!(view
        .rlimits
        .contains(&("RLIMIT_NOFILE".into(), Some(64), Some(64))));
}

#[test]
fn missing_required_bind_source_is_named() {
    let mut config = config();
    config.jail.tree.push(TreeEntry::Bind {
        source: PathBuf::from("/nonexistent/rayos-lib"),
        target: PathBuf::from("/opt/lib"),
        optional: false,
    });

    let err = GpuProcess::spawn(&config).unwrap_err();

    assert_eq!(
        err.to_string(),
        "building the jail: required bind source /nonexistent/rayos-lib does not exist"
    );
}

#[test]
fn failing_pre_exec_step_is_named_with_its_errno() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut config = config();
    config.jail.tree.push(TreeEntry::Bind {
        source: fixtures,
        target: PathBuf::from("/fixtures"),
        optional: false,
    });
    config.jail.tree.push(TreeEntry::Symlink {
        link: PathBuf::from("/fixtures/escape"),
        value: PathBuf::from("/"),
    });

    let err = GpuProcess::spawn(&config).unwrap_err();

    assert_eq!(
        err.to_string(),
        "building the jail: symlink /fixtures/escape -> / failed: EROFS: Read-only file system"
    );
}

#[test]
fn call_outside_the_policy_kills_with_sigsys() {
    let mut config = config();
    config.policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/no_report.policy");
    let mut gpu = spawn(&config);

    gpu.tube().send(&control::messages::ToGpu::Report).unwrap();
    let exit = gpu.wait_timeout(Duration::from_secs(10)).unwrap().unwrap();

    assert_eq!(exit.status, ExitStatus::Signaled(libc::SIGSYS));
    assert_eq!(exit.signal_name(), Some("SIGSYS"));
}

#[test]
fn trap_mode_reports_the_blocked_call_by_name() {
    let mut config = config();
    config.policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/no_report.policy");
    config.action = DefaultAction::Trap;
    let mut gpu = spawn(&config);

    let err = gpu.request_report().unwrap_err();
    let exit = gpu.wait_timeout(Duration::from_secs(10)).unwrap().unwrap();

    assert!(matches!(err, GpuError::Blocked(_)), "{err}");
    assert_eq!(
        exit.status,
        ExitStatus::Exited(control::messages::BLOCKED_SYSCALL_EXIT_CODE)
    );
    assert_eq!(exit.blocked.unwrap().name, Some("openat"));
}

#[test]
fn shutdown_ends_the_process_cleanly() {
    let mut gpu = spawn(&config());

    gpu.tube()
        .send(&control::messages::ToGpu::Shutdown)
        .unwrap();
    let exit = gpu.wait_timeout(Duration::from_secs(10)).unwrap().unwrap();

    assert_eq!(exit.status, ExitStatus::Exited(0));
}

#[test]
fn dropping_the_handle_kills_and_reaps_the_process() {
    let gpu = spawn(&config());
    let pid = gpu.pid();

    drop(gpu);

    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}
