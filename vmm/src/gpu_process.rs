//! Spawning and supervising the jailed GPU process: compile the policy, build the jail, send
//! Start, wait for Ready, verify the confinement from outside, and report how it ended.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use control::display::DisplayMode;
use control::messages::{
    BlockedSyscall, FromGpu, LandlockRules, ReadyInfo, RendererMode, SandboxView, StartConfig,
    ToGpu,
};
use control::tube::{Tube, TubeError};
use seccomp::DefaultAction;
use thiserror::Error;

use crate::policy::{self, CompiledPolicy, PolicyError};
use jail::verify::{self, NamespaceLink, ProcStatus, VerifyError};
use jail::{self, ExitStatus, JailConfig, JailError, JailedProcess, PassFd, TreeEntry};

mod frames;
pub mod log;
mod screenshot;
#[doc(hidden)]
pub use frames::check_reply as check_frame_reply;
pub use frames::{FrameBuffer, FrameError, FrameUpdate, MAX_FRAME_BYTES};
pub use screenshot::{write_replacing, ScanoutFrame, ScreenshotError, MAX_SCREENSHOT_EDGE};

/// The control tube's number in the GPU process.
pub const TUBE_FD: i32 = 3;
/// Where a vhost-user socket goes in the GPU process (the device engineer's).
pub const VHOST_USER_FD: i32 = 4;
/// Where the GPU process finds the write end of the recording pipe, when it records.
pub const RECORD_FD: i32 = 5;

/// Send buffer of the GPU process's tube end: room for a full sandbox report in one packet.
const REPORT_BUFFER_BYTES: libc::c_int = 2 << 20;

/// How to spawn the GPU process.
#[derive(Debug, Clone)]
pub struct GpuSpawnConfig {
    /// The jail: program, identity, tree, limits, environment.
    pub jail: JailConfig,
    /// The seccomp policy file.
    pub policy: PathBuf,
    /// What the filter does with a call the policy does not allow.
    pub action: DefaultAction,
    /// The renderer the GPU process brings up before its filter.
    pub renderer: RendererMode,
    /// The mode the served device's display reports; `None` keeps the device's default.
    pub display: Option<DisplayMode>,
    /// How long from spawn to Ready before the process is killed.
    pub ready_timeout: Duration,
    /// How long a request (e.g. a sandbox report) may take.
    pub request_timeout: Duration,
    /// The GPU the user named (`--gpu`): the process must come up rendering on it, never on
    /// a software fallback.
    pub required_gpu: Option<PathBuf>,
    /// How long one guest command may run, or one fenced command wait, before the process
    /// stops itself (`WORK_TIMEOUT_EXIT_CODE`); `None`: no bound.
    pub work_timeout: Option<Duration>,
}

impl GpuSpawnConfig {
    /// The GL jail for `gpu_binary` with `devices`, filtered by `policy` with kill-process.
    pub fn new(gpu_binary: &Path, policy: &Path, devices: &[PathBuf]) -> GpuSpawnConfig {
        GpuSpawnConfig {
            jail: JailConfig::for_gpu_process(gpu_binary, devices),
            policy: policy.to_path_buf(),
            action: DefaultAction::KillProcess,
            renderer: RendererMode::None,
            display: None,
            ready_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(60),
            required_gpu: None,
            work_timeout: None,
        }
    }

    /// Landlock rules matching the jail's tree: read the binds, read-write the devices and
    /// scratch tmpfses, list the root.
    pub fn landlock_rules(&self) -> LandlockRules {
        let mut rules = LandlockRules {
            read_only: vec![self.jail.program_inside.clone(), PathBuf::from("/proc")],
            read_write: Vec::new(),
            list_only: vec![PathBuf::from("/")],
        };
        for entry in &self.jail.tree {
            match entry {
                TreeEntry::Bind { target, .. } => rules.read_only.push(target.clone()),
                TreeEntry::Symlink { .. } => {}
                TreeEntry::Device { path } => rules.read_write.push(path.clone()),
                TreeEntry::Tmpfs { target, .. } => rules.read_write.push(target.clone()),
            }
        }
        rules
    }
}

/// Why the GPU process could not be spawned or did not answer.
#[derive(Debug, Error)]
pub enum GpuError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("building the jail: {0}")]
    Jail(#[from] JailError),
    #[error("control tube: {0}")]
    Tube(#[from] TubeError),
    #[error("the GPU process did not become ready: {reason} ({exit})")]
    NotReady { reason: String, exit: ExitReport },
    #[error("refusing the GPU process: {0}")]
    Verify(#[from] VerifyError),
    #[error("the GPU process reported an error: {0}")]
    Child(String),
    #[error("the GPU process's filter refused {0}")]
    Blocked(NamedSyscall),
    #[error("the GPU process sent {0} where {1} was expected")]
    Unexpected(String, &'static str),
    #[error("refusing the GPU process's screenshot: {0}")]
    Screenshot(#[from] ScreenshotError),
    #[error("refusing the GPU process's frame: {0}")]
    Frame(#[from] FrameError),
    #[error("waiting for the GPU process: {0}")]
    Wait(#[source] std::io::Error),
    #[error("the GPU {0} does not exist on this host")]
    MissingGpu(PathBuf),
    #[error("the GPU process binary {} does not exist (build it with `cargo build -p gpu-process`, or name one on the command line)", .0.display())]
    MissingBinary(PathBuf),
    #[error("locating rayvmm's own executable: {0}")]
    OwnExecutable(#[source] std::io::Error),
    #[error("refusing the GPU process: asked to render on {gpu}, but {found}")]
    WrongGpu { gpu: PathBuf, found: String },
}

/// The GPU process's binary: `given` (a `--ray-gpu` argument), else `ray-gpu` beside the
/// running executable, where cargo and the install scripts put both. It must be a file.
pub fn ray_gpu_binary(given: Option<&Path>) -> Result<PathBuf, GpuError> {
    let binary = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .map_err(GpuError::OwnExecutable)?
            .with_file_name("ray-gpu"),
    };
    if !binary.is_file() {
        return Err(GpuError::MissingBinary(binary));
    }
    Ok(binary)
}

/// What kind of GPU a device node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuKind {
    /// `/dev/nvidiaN`: NVIDIA's proprietary driver.
    Nvidia,
    /// `/dev/dri/renderD*`: a DRM render node (Mesa's hardware drivers).
    RenderNode,
}

impl GpuKind {
    /// The kind of `node`, from its name; `None` for anything else.
    pub fn of(node: &Path) -> Option<GpuKind> {
        let name = node.file_name()?.to_str()?;
        let digits = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
        if name.strip_prefix("nvidia").is_some_and(digits) {
            return Some(GpuKind::Nvidia);
        }
        if name.strip_prefix("renderD").is_some_and(digits) {
            return Some(GpuKind::RenderNode);
        }
        None
    }
}

/// Software rasterizers a GL renderer string names when no GPU renders.
const SOFTWARE_RENDERERS: [&str; 4] = ["llvmpipe", "softpipe", "swrast", "lavapipe"];

/// Whether `ready` shows rendering on the GPU `gpu` names: virgl came up, on NVIDIA's GL for
/// an NVIDIA node, on no software rasterizer for a render node. `Err` says what was found.
pub fn check_renderer(gpu: &Path, ready: &ReadyInfo) -> Result<(), String> {
    let Some(gl) = &ready.gl_renderer else {
        return Err(format!(
            "virgl did not come up (renderer: {})",
            ready.renderer
        ));
    };
    let lower = gl.to_ascii_lowercase();
    let on_gpu = match GpuKind::of(gpu) {
        Some(GpuKind::Nvidia) => lower.contains("nvidia"),
        Some(GpuKind::RenderNode) => !SOFTWARE_RENDERERS.iter().any(|s| lower.contains(s)),
        None => false,
    };
    match on_gpu {
        true => Ok(()),
        false => Err(format!("GL_RENDERER is {gl:?}")),
    }
}

/// A system call the filter refused, with its name from the syscall table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSyscall {
    pub nr: i64,
    pub name: Option<&'static str>,
    pub args: [u64; 6],
}

impl From<BlockedSyscall> for NamedSyscall {
    fn from(b: BlockedSyscall) -> NamedSyscall {
        NamedSyscall {
            nr: b.nr,
            name: seccomp::syscall_name(b.nr),
            args: b.args,
        }
    }
}

impl fmt::Display for NamedSyscall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(name) => write!(f, "{name}")?,
            None => write!(f, "syscall {}", self.nr)?,
        }
        let args: Vec<String> = self.args.iter().map(|a| format!("{a:#x}")).collect();
        write!(f, "({})", args.join(", "))
    }
}

/// How the GPU process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReport {
    /// Exit code or signal.
    pub status: ExitStatus,
    /// In trap-and-report mode, the call the filter refused (as the process reported it).
    pub blocked: Option<NamedSyscall>,
}

impl ExitReport {
    /// The name of the signal that killed it (`SIGSYS` for the filter's kill action).
    pub fn signal_name(&self) -> Option<&'static str> {
        match self.status {
            ExitStatus::Signaled(sig) => Some(
                nix::sys::signal::Signal::try_from(sig)
                    .map(|s| s.as_str())
                    .unwrap_or("unknown signal"),
            ),
            ExitStatus::Exited(_) => None,
        }
    }
}

impl fmt::Display for ExitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            ExitStatus::Exited(code) => write!(f, "exited with code {code}")?,
            ExitStatus::Signaled(sig) => write!(
                f,
                "killed by {} ({sig})",
                self.signal_name().unwrap_or("a signal")
            )?,
        }
        if let Some(blocked) = &self.blocked {
            write!(f, " after its filter refused {blocked}")?;
        }
        Ok(())
    }
}

/// What the supervisor verified about a running GPU process.
#[derive(Debug, Clone)]
pub struct Confinement {
    pub status: ProcStatus,
    pub namespaces: Vec<NamespaceLink>,
    pub uid_map: String,
    pub gid_map: String,
}

/// A running, verified, jailed GPU process. Dropping it kills and reaps the process.
#[derive(Debug)]
pub struct GpuProcess {
    tube: Tube,
    policy: CompiledPolicy,
    ready: ReadyInfo,
    confinement: Confinement,
    blocked: Option<NamedSyscall>,
    request_timeout: Duration,
    // Declared last: dropped (killed and reaped) after the tube is closed.
    process: JailedProcess,
}

impl GpuProcess {
    /// Spawns the GPU process with the tube at descriptor 3 and nothing else passed.
    pub fn spawn(config: &GpuSpawnConfig) -> Result<GpuProcess, GpuError> {
        GpuProcess::spawn_with_fds(config, &[])
    }

    /// Spawns the GPU process with the tube at descriptor 3 and `fds` at their numbers
    /// (e.g. a vhost-user socket at [`VHOST_USER_FD`]).
    pub fn spawn_with_fds(
        config: &GpuSpawnConfig,
        fds: &[PassFd<'_>],
    ) -> Result<GpuProcess, GpuError> {
        if let Some(gpu) = config.required_gpu.as_ref().filter(|g| !g.exists()) {
            return Err(GpuError::MissingGpu(gpu.clone()));
        }
        let policy = policy::compile(&config.policy, config.action)?;
        let (mut tube, child_end) = Tube::pair()?;
        let child_end = OwnedFd::from(child_end);
        // A SOCK_SEQPACKET message must fit the sender's buffer: let the GPU process send
        // reports up to the tube's message limit.
        enlarge_send_buffer(&child_end, REPORT_BUFFER_BYTES);
        let mut passed = vec![PassFd {
            source: child_end.as_fd(),
            target: TUBE_FD,
        }];
        passed.extend_from_slice(fds);
        let mut process = jail::spawn(&config.jail, &passed)?;
        drop(child_end);

        // Fields that other parts add to StartConfig (the device's) keep their defaults here.
        #[allow(clippy::needless_update)]
        let start = StartConfig {
            policy_name: policy.name.clone(),
            seccomp_filter: policy.filter.clone(),
            report_blocked_syscalls: config.action == DefaultAction::Trap,
            landlock: config.landlock_rules(),
            renderer: config.renderer,
            display: config.display,
            // A socket passed at VHOST_USER_FD is served as the virtio-gpu device.
            vhost_user_fd: fds
                .iter()
                .any(|fd| fd.target == VHOST_USER_FD)
                .then_some(VHOST_USER_FD),
            // A pipe passed at RECORD_FD takes a recording of the guest's commands.
            record_fd: fds
                .iter()
                .any(|fd| fd.target == RECORD_FD)
                .then_some(RECORD_FD),
            work_timeout_ms: config
                .work_timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            ..StartConfig::default()
        };
        let ready = match start_and_await_ready(&mut tube, &start, config.ready_timeout) {
            Ok(ready) => ready,
            Err((reason, blocked)) => {
                let exit = finish(&mut process, &tube, blocked, Duration::from_secs(2))?;
                return Err(GpuError::NotReady { reason, exit });
            }
        };
        if let Some(gpu) = &config.required_gpu {
            if let Err(found) = check_renderer(gpu, &ready) {
                let _ = finish(&mut process, &tube, None, Duration::from_secs(2));
                return Err(GpuError::WrongGpu {
                    gpu: gpu.clone(),
                    found,
                });
            }
        }
        let confinement = inspect(process.pid())?;
        verify::check(&confinement.status, &confinement.namespaces)?;
        Ok(GpuProcess {
            tube,
            policy,
            ready,
            confinement,
            blocked: None,
            request_timeout: config.request_timeout,
            process,
        })
    }

    /// The process's pid in the supervisor's pid namespace.
    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// Joins the host's GPU scheduling as described by `schedule`.
    pub fn join_scheduling(
        &self,
        schedule: &crate::vm_config::GpuSchedule,
    ) -> Result<scheduler::Member, String> {
        let pidfd = self
            .process
            .pidfd()
            .try_clone_to_owned()
            .map_err(|e| format!("duplicating the GPU process's pidfd: {e}"))?;
        scheduler::Member::join(
            &schedule.ledger,
            schedule.share,
            self.process.pid() as u32,
            pidfd,
        )
        .map_err(|e| e.to_string())
    }

    /// The supervisor's end of the control tube.
    pub fn tube(&self) -> &Tube {
        &self.tube
    }

    /// What the process said when it became ready.
    pub fn ready_info(&self) -> &ReadyInfo {
        &self.ready
    }

    /// The policy its filter was compiled from.
    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    /// What was verified at spawn.
    pub fn confinement(&self) -> &Confinement {
        &self.confinement
    }

    /// Re-reads `/proc/PID/status` (e.g. for memory use now).
    pub fn status(&self) -> Result<ProcStatus, GpuError> {
        Ok(ProcStatus::read(self.pid())?)
    }

    /// Asks the process what it sees from inside its jail.
    pub fn request_report(&mut self) -> Result<SandboxView, GpuError> {
        self.tube.set_recv_timeout(Some(self.request_timeout))?;
        self.tube.send(&ToGpu::Report)?;
        match self.tube.recv::<FromGpu>()? {
            FromGpu::Report(view) => Ok(view),
            other => Err(self.unexpected(other, "a report")),
        }
    }

    /// Sends `request` and returns the answer, whatever it is (for probes).
    pub fn request(&mut self, request: &ToGpu) -> Result<FromGpu, GpuError> {
        self.tube.set_recv_timeout(Some(self.request_timeout))?;
        self.tube.send(request)?;
        let answer = self.tube.recv::<FromGpu>()?;
        if let FromGpu::BlockedSyscall(b) = &answer {
            self.blocked = Some((*b).into());
        }
        Ok(answer)
    }

    /// Waits up to `timeout` for the process to end; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitReport>, GpuError> {
        match self.process.wait_timeout(timeout).map_err(GpuError::Wait)? {
            None => Ok(None),
            Some(_) => {
                finish(&mut self.process, &self.tube, self.blocked.clone(), timeout).map(Some)
            }
        }
    }

    /// Kills the process (if it still runs) and reports how it ended.
    pub fn kill(&mut self) -> Result<ExitReport, GpuError> {
        self.process.kill().map_err(GpuError::Wait)?;
        finish(
            &mut self.process,
            &self.tube,
            self.blocked.clone(),
            Duration::ZERO,
        )
    }

    fn unexpected(&mut self, answer: FromGpu, wanted: &'static str) -> GpuError {
        match answer {
            FromGpu::BlockedSyscall(b) => {
                let named = NamedSyscall::from(b);
                self.blocked = Some(named.clone());
                GpuError::Blocked(named)
            }
            FromGpu::Error(message) => GpuError::Child(message),
            other => GpuError::Unexpected(message_name(&other), wanted),
        }
    }
}

/// Sends Start and waits for Ready; on failure, why, and a blocked call if one was reported.
fn start_and_await_ready(
    tube: &mut Tube,
    start: &StartConfig,
    timeout: Duration,
) -> Result<ReadyInfo, (String, Option<NamedSyscall>)> {
    let failed = |e: TubeError| (e.to_string(), None);
    tube.set_recv_timeout(Some(timeout)).map_err(failed)?;
    tube.send(&ToGpu::Start(start.clone())).map_err(failed)?;
    match tube.recv::<FromGpu>().map_err(failed)? {
        FromGpu::Ready(ready) => Ok(ready),
        FromGpu::Error(message) => Err((message, None)),
        FromGpu::BlockedSyscall(b) => Err(("its filter refused a call".into(), Some(b.into()))),
        other => Err((
            format!("sent {} instead of Ready", message_name(&other)),
            None,
        )),
    }
}

/// Reaps the process (killing it if it has not ended within `grace`) and collects the
/// blocked call it may have reported on its way out.
fn finish(
    process: &mut JailedProcess,
    tube: &Tube,
    mut blocked: Option<NamedSyscall>,
    grace: Duration,
) -> Result<ExitReport, GpuError> {
    let status = match process.wait_timeout(grace).map_err(GpuError::Wait)? {
        Some(status) => status,
        None => process.kill().map_err(GpuError::Wait)?,
    };
    // The process is gone, so the tube holds only what it sent before dying; its end is
    // closed, so this ends with Disconnected rather than blocking.
    while let Ok(message) = tube.recv::<FromGpu>() {
        if let FromGpu::BlockedSyscall(b) = message {
            blocked = Some(b.into());
        }
    }
    Ok(ExitReport { status, blocked })
}

/// Reads the status, namespaces and id maps of the jailed process.
fn inspect(pid: i32) -> Result<Confinement, VerifyError> {
    let read = |name: &str| {
        let path = PathBuf::from(format!("/proc/{pid}/{name}"));
        std::fs::read_to_string(&path).map_err(|source| VerifyError::Read { path, source })
    };
    Ok(Confinement {
        status: ProcStatus::read(pid)?,
        namespaces: verify::namespaces(pid)?,
        uid_map: read("uid_map")?,
        gid_map: read("gid_map")?,
    })
}

/// The variant name of a message, for errors (serde's external tag).
fn message_name(message: &FromGpu) -> String {
    match serde_json::to_value(message) {
        Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        Ok(serde_json::Value::String(name)) => name,
        _ => "an unknown message".into(),
    }
}

/// Raises a socket's send buffer to `bytes`: forced where the supervisor has CAP_NET_ADMIN,
/// else as far as `net.core.wmem_max` allows. Best effort: a smaller buffer only limits the
/// size of the largest report.
fn enlarge_send_buffer(socket: &OwnedFd, bytes: libc::c_int) {
    for option in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
        // SAFETY: `bytes` is a valid int for the duration of the call and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(gl_renderer: Option<&str>) -> ReadyInfo {
        ReadyInfo {
            pid_in_namespace: 1,
            landlock_enforced: true,
            renderer: "virgl".into(),
            gl_renderer: gl_renderer.map(str::to_owned),
        }
    }

    #[test]
    fn gpu_kind_names_nvidia_and_render_nodes_only() {
        let kinds: Vec<Option<GpuKind>> = [
            "/dev/nvidia0",
            "/dev/dri/renderD128",
            "/dev/nvidiactl",
            "/dev/nvidia-uvm",
            "/dev/dri/card0",
            "/dev/null",
        ]
        .iter()
        .map(|p| GpuKind::of(Path::new(p)))
        .collect();

        assert_eq!(
            kinds,
            vec![
                Some(GpuKind::Nvidia),
                Some(GpuKind::RenderNode),
                None,
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn check_renderer_refuses_llvmpipe_when_an_nvidia_gpu_was_named() {
        let err = check_renderer(
            Path::new("/dev/nvidia0"),
            &ready(Some("LLVMPIPE (LLVM 15.0.6, 256 bits)")),
        )
        .unwrap_err();

        assert_eq!(err, "GL_RENDERER is \"LLVMPIPE (LLVM 15.0.6, 256 bits)\"");
    }

    #[test]
    fn check_renderer_accepts_nvidia_gl_on_an_nvidia_node() {
        let result = check_renderer(Path::new("/dev/nvidia0"), &ready(Some("NVIDIA H200/PCIe")));

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn check_renderer_refuses_a_software_rasterizer_on_a_render_node() {
        let err = check_renderer(Path::new("/dev/dri/renderD128"), &ready(Some("softpipe")));

        assert_eq!(err.unwrap_err(), "GL_RENDERER is \"softpipe\"");
    }

    #[test]
    fn check_renderer_refuses_when_virgl_did_not_come_up() {
        let err = check_renderer(Path::new("/dev/nvidia0"), &ready(None)).unwrap_err();

        assert_eq!(err, "virgl did not come up (renderer: virgl)");
    }
}
