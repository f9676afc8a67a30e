//! Running escape techniques and raw system calls through `rayvmm probe` against the probe
//! build of the real jailed ray-gpu.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::binaries;

/// How long one probe may take inside rayvmm (each attempt is a fresh jailed process).
pub const PROBE_SECONDS: u64 = 60;
/// How long the test waits for rayvmm before killing it.
pub const RAYVMM_LIMIT: Duration = Duration::from_secs(PROBE_SECONDS + 30);

/// The two GPU-process policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `gpu_device.policy`: hardware GPUs, no executable memory.
    Hardware,
    /// `gpu_device_software.policy`: llvmpipe, executable memory allowed.
    Software,
}

impl Policy {
    /// The policy file's path in the repository.
    pub fn path(self) -> std::path::PathBuf {
        binaries::policy(match self {
            Policy::Hardware => "x86_64/gpu_device.policy",
            Policy::Software => "x86_64/gpu_device_software.policy",
        })
    }
}

/// What `rayvmm probe --json` printed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TechniqueResult {
    pub technique: String,
    pub policy: String,
    /// `ok`, an errno name, a signal name, `exit N`, `refused` or `timeout`.
    pub outcome: String,
    pub detail: Option<String>,
}

/// An abstract unix socket listening on the host for the length of a test, under a name no
/// other test uses.
pub struct HostListener {
    pub name: String,
    _listener: UnixListener,
}

impl HostListener {
    /// Listens on `@rayos-escape-test-<pid>-<n>`.
    pub fn new() -> HostListener {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "rayos-escape-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("a short name");
        let listener = UnixListener::bind_addr(&addr).expect("binding an abstract socket");
        HostListener {
            name,
            _listener: listener,
        }
    }
}

impl Default for HostListener {
    fn default() -> Self {
        HostListener::new()
    }
}

/// What the GPU process brings up before its filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    /// Nothing: the jail alone.
    None,
    /// virglrenderer on llvmpipe, as in production without a GPU.
    Virgl,
}

/// Attempts `technique` in a fresh jail under `policy` and returns what rayvmm reported.
pub fn run_technique(technique: &str, policy: Policy) -> TechniqueResult {
    run_technique_with(technique, policy, Renderer::None)
}

/// [`run_technique`] with the GPU process's renderer brought up first.
pub fn run_technique_with(technique: &str, policy: Policy, renderer: Renderer) -> TechniqueResult {
    let listener = HostListener::new();
    let policy_path = policy.path();
    let mut args = vec![
        "probe",
        "--technique",
        technique,
        "--json",
        "--abstract-socket",
        &listener.name,
        "--policy",
        policy_path.to_str().expect("UTF-8 repository path"),
    ];
    if renderer == Renderer::Virgl {
        args.push("--virgl");
    }
    let output = rayvmm(&args);
    assert!(
        output.status.success(),
        "rayvmm probe {technique} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "rayvmm probe {technique} printed no result ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// One line of `rayvmm probe-syscalls` output.
pub use vmm::probe::RawResult;

/// Runs `rayvmm probe-syscalls FILE` under `policy`: its exit status and each result line.
pub fn run_raw_file(file: &Path, policy: Policy) -> (Output, Vec<RawResult>) {
    let output = rayvmm(&[
        "probe-syscalls",
        file.to_str().expect("UTF-8 path"),
        "--policy",
        policy.path().to_str().expect("UTF-8 repository path"),
    ]);
    let results = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad result line {line:?}: {e}"))
        })
        .collect();
    (output, results)
}

/// Runs rayvmm with the probe build of ray-gpu and `args`, bounded in time.
fn rayvmm(args: &[&str]) -> Output {
    let gpu = binaries::ray_gpu_probe();
    let mut command = Command::new(binaries::rayvmm());
    command
        .args(args)
        .arg("--gpu-binary")
        .arg(gpu)
        .arg("--timeout")
        .arg(PROBE_SECONDS.to_string());
    binaries::run_with_timeout(&mut command, RAYVMM_LIMIT)
}
