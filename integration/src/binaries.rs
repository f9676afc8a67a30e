//! Finding the binaries the tests spawn, and running them with a time limit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Overrides where rayvmm is.
pub const RAYVMM_ENV: &str = "RAYVMM_BIN";
/// Overrides where the probe build of ray-gpu is.
pub const RAY_GPU_PROBE_ENV: &str = "RAY_GPU_PROBE_BIN";

/// The workspace root (the integration crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the integration crate lives inside the workspace")
        .to_path_buf()
}

/// `$RAYVMM_BIN`, else `<workspace>/target/debug/rayvmm`; panics with how to build it.
pub fn rayvmm() -> PathBuf {
    existing(RAYVMM_ENV, "target/debug/rayvmm")
}

/// `$RAY_GPU_PROBE_BIN`, else `<workspace>/target/probe/debug/ray-gpu`; panics with how to
/// build it.
pub fn ray_gpu_probe() -> PathBuf {
    existing(RAY_GPU_PROBE_ENV, "target/probe/debug/ray-gpu")
}

/// `<workspace>/target/debug/ray-seccomp`; panics with how to build it.
pub fn ray_seccomp() -> PathBuf {
    existing("RAY_SECCOMP_BIN", "target/debug/ray-seccomp")
}

/// A policy file of the repository, e.g. `x86_64/gpu_device.policy`.
pub fn policy(relative: &str) -> PathBuf {
    workspace_root().join("policies").join(relative)
}

fn existing(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(default));
    assert!(
        path.is_file(),
        "{} is missing: run ./scripts/test.sh, which builds it (or set {env})",
        path.display()
    );
    path
}

/// Runs `command` to completion with its output captured, killing it if it takes longer
/// than `limit`; panics (naming the command) on a spawn failure or a timeout.
pub fn run_with_timeout(command: &mut Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
    let mut guard = KillOnDrop(Some(child));
    let deadline = Instant::now() + limit;
    loop {
        let child = guard.0.as_mut().expect("the child is held until it ends");
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => panic!("{command:?} did not finish within {limit:?}; killed"),
            Err(e) => panic!("waiting for {command:?}: {e}"),
        }
    }
    let child = guard.0.take().expect("the child is held until it ends");
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("collecting the output of {command:?}: {e}"))
}

/// Kills and reaps the child if the test fails while it runs.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
