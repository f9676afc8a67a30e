//! The real ray-gpu in its real jail, spawned by the vmm library exactly as rayvmm spawns it
//! (GpuProcess::spawn_with_fds with one end of a socketpair at the vhost-user descriptor, the
//! repository's software-rendering policy, kill-process), driven over vhost-user by the test
//! frontend of `vhost-user-device/tests/support` (included, not copied).
#![allow(dead_code)]

#[path = "../../../vhost-user-device/tests/support/mod.rs"]
pub mod support;

pub mod busy_recording;

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use control::display::DisplayMode;
use control::messages::RendererMode;
use jail::{ChildStderr, ExitStatus, PassFd};
use seccomp::DefaultAction;
use vmm::gpu_process::{GpuError, GpuProcess, GpuSpawnConfig, VHOST_USER_FD};

use support::session::Session;

/// Overrides where the (non-probe) ray-gpu is.
pub const RAY_GPU_ENV: &str = "RAY_GPU_BIN";

/// `$RAY_GPU_BIN`, else `<workspace>/target/debug/ray-gpu`.
pub fn ray_gpu() -> PathBuf {
    let path = std::env::var_os(RAY_GPU_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/ray-gpu"));
    assert!(
        path.is_file(),
        "{} is missing: cargo build -p gpu-process (or set {RAY_GPU_ENV})",
        path.display()
    );
    path
}

/// The policy the jail uses: the software-rendering variant without a render node (llvmpipe
/// JIT-compiles shaders), the hardware one with.
pub fn policy_for(nodes: &[PathBuf]) -> PathBuf {
    let name = if nodes.is_empty() {
        vmm::policy::SOFTWARE_POLICY
    } else {
        "x86_64/gpu_device.policy"
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies")
        .join(name)
}

/// A jailed ray-gpu and a driver session on its vhost-user socket.
pub struct JailedGpu {
    pub process: GpuProcess,
    pub session: Session,
}

/// Spawns ray-gpu with `renderer`, negotiates `wanted` device features and sets up the
/// queues and the display (one 1024x768 mode).
pub fn spawn(renderer: RendererMode, wanted: u64) -> JailedGpu {
    spawn_with_display(renderer, wanted, None).expect("the jailed GPU process becomes ready")
}

/// As [`spawn`], with the device's display mode set in its StartConfig (`None`: the
/// device's default); the spawn error when the process refuses to start.
pub fn spawn_with_display(
    renderer: RendererMode,
    wanted: u64,
    display: Option<DisplayMode>,
) -> Result<JailedGpu, GpuError> {
    spawn_with_action(renderer, wanted, display, DefaultAction::KillProcess)
}

/// As [`spawn_with_display`], with the filter's action on a refused call (`Trap`: the
/// process names the call before it exits).
pub fn spawn_with_action(
    renderer: RendererMode,
    wanted: u64,
    display: Option<DisplayMode>,
    action: DefaultAction,
) -> Result<JailedGpu, GpuError> {
    spawn_configured(renderer, wanted, |config| {
        config.display = display;
        config.action = action;
    })
}

/// As [`spawn`], with the spawn configuration changed by `configure` first; the spawn error
/// when the process refuses to start.
pub fn spawn_configured(
    renderer: RendererMode,
    wanted: u64,
    configure: impl FnOnce(&mut GpuSpawnConfig),
) -> Result<JailedGpu, GpuError> {
    let nodes = jail::render_nodes(std::path::Path::new(jail::DRI_DIR));
    let mut config = GpuSpawnConfig::new(&ray_gpu(), &policy_for(&nodes), &nodes);
    config.renderer = renderer;
    config.jail.stderr = ChildStderr::Inherit;
    configure(&mut config);
    let (ours, theirs) = UnixStream::pair().expect("vhost-user socketpair");
    let process = GpuProcess::spawn_with_fds(
        &config,
        &[PassFd {
            source: theirs.as_fd(),
            target: VHOST_USER_FD,
        }],
    )?;
    drop(theirs);
    let session = Session::connect(ours, wanted, 256 << 20, vec![(1024, 768)]);
    Ok(JailedGpu { process, session })
}

impl JailedGpu {
    /// Closes the vhost-user socket (the frontend goes away) and returns how the process
    /// ended.
    pub fn disconnect(self) -> ExitStatus {
        let JailedGpu {
            mut process,
            session,
        } = self;
        drop(session);
        match process.wait_timeout(Duration::from_secs(10)) {
            Ok(Some(report)) => report.status,
            other => panic!("ray-gpu did not exit after the frontend left: {other:?}"),
        }
    }
}
