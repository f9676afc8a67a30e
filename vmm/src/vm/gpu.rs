//! The process that serves the vhost-user GPU device on the other end of the engine's socket.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use super::child::{ExitDescription, SupervisedChild};
use super::frame::Frame;

use crate::recording::{RecordingError, RecordingJob, RecordingSummary};

/// QEMU's reference vhost-user GPU backend (Debian package qemu-system-gui).
pub const REFERENCE_BACKEND: &str = "/usr/lib/qemu/vhost-user-gpu";

/// Something that happened to the GPU process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuEvent {
    /// It stopped making progress (`what` says which part stalled and for how long); it is
    /// still alive and must be stopped.
    Stalled { what: String },
    /// It ended. `blocked` names the system call (with arguments) its filter refused, when it
    /// reported one in trap-and-report mode.
    Exited {
        exit: ExitDescription,
        blocked: Option<String>,
    },
}

/// Where a GPU server reports [`GpuEvent`]s; called from its own threads.
pub type GpuSink = std::sync::Arc<dyn Fn(GpuEvent) + Send + Sync>;

/// A running vhost-user GPU server.
pub trait GpuServer: Send {
    /// Who it is, for messages: program, pid, confinement.
    fn describe(&self) -> String;
    /// Asks it to stop and exit.
    fn request_stop(&mut self);
    /// Kills it outright (harmless once it is gone).
    fn kill(&mut self);
    /// The current scanout, if this server can produce one (`None`: not supported).
    fn screenshot(&mut self) -> Option<Result<Frame, String>>;
    /// Something another thread can take the current scanout with (`None`: not supported).
    fn frame_source(&self) -> Option<super::vnc::FrameSource>;
    /// QEMU's display socket, which rayvmm's relay kept from the server: from now on the
    /// server's frames are shown there.
    fn attach_display(&mut self, socket: std::os::unix::net::UnixStream);
    /// After the server ended: completes the recording it streamed, if it recorded.
    fn finish_recording(&mut self) -> Option<Result<RecordingSummary, RecordingError>> {
        None
    }
    /// Leaves the host's GPU scheduling, if the server took part; says what it did.
    fn finish_scheduling(&mut self) -> Option<String> {
        None
    }
}

/// QEMU's unjailed reference backend: a comparison point, never for untrusted guests.
pub struct ReferenceGpu {
    child: SupervisedChild,
}

impl ReferenceGpu {
    /// Starts the reference backend on `socket` (inherited at fd 3, `--fd=3`).
    pub fn spawn(socket: OwnedFd, sink: GpuSink) -> std::io::Result<ReferenceGpu> {
        if !Path::new(REFERENCE_BACKEND).exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{REFERENCE_BACKEND} is missing (apt package qemu-system-gui)"),
            ));
        }
        let mut cmd = Command::new(REFERENCE_BACKEND);
        cmd.arg("--fd=3").stdin(Stdio::null());
        let child = SupervisedChild::spawn(
            cmd,
            &[socket.as_raw_fd()],
            Box::new(move |exit| {
                sink(GpuEvent::Exited {
                    exit,
                    blocked: None,
                })
            }),
        )?;
        Ok(ReferenceGpu { child })
    }
}

impl GpuServer for ReferenceGpu {
    fn describe(&self) -> String {
        format!(
            "{REFERENCE_BACKEND} (pid {}, NOT jailed: reference backend, 2D only)",
            self.child.pid()
        )
    }

    fn request_stop(&mut self) {
        self.child.signal(libc::SIGTERM);
    }

    fn kill(&mut self) {
        self.child.kill();
    }

    fn screenshot(&mut self) -> Option<Result<Frame, String>> {
        None
    }

    fn frame_source(&self) -> Option<super::vnc::FrameSource> {
        None
    }

    fn attach_display(&mut self, _socket: std::os::unix::net::UnixStream) {}
}

impl Drop for ReferenceGpu {
    fn drop(&mut self) {
        self.child.kill();
    }
}

/// How often the monitor thread checks whether the jailed GPU process is still alive.
const MONITOR_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The jailed `ray-gpu`, serving the vhost-user socket at [`crate::gpu_process::VHOST_USER_FD`].
pub struct JailedGpu {
    /// Its place in the host's GPU scheduling, if scheduled; declared first so it is
    /// dropped first (a held process is continued before anything waits for it).
    scheduling: Option<scheduler::Member>,
    process: std::sync::Arc<std::sync::Mutex<crate::gpu_process::GpuProcess>>,
    frames: super::display::FramePump,
    description: String,
    recording: Option<RecordingJob>,
}

/// Where and how to record the guest's GPU commands.
pub struct RecordTo {
    pub path: std::path::PathBuf,
    /// The Info record rayvmm writes first (JSON).
    pub info: String,
    /// The bound on the file's compressed size.
    pub limit: u64,
}

/// How to start the jailed GPU process for a VM.
pub struct JailedGpuOptions<'a> {
    pub binary: &'a Path,
    pub policy: &'a Path,
    pub action: seccomp::DefaultAction,
    pub three_d: bool,
    /// The mode the device's display reports to the guest.
    pub display: control::display::DisplayMode,
    /// How long the process may stop making progress before it is reported stalled.
    pub liveness: std::time::Duration,
    /// How long one guest command may run or one fence wait before the process stops itself.
    pub work_timeout: std::time::Duration,
    /// Record the guest's commands.
    pub record: Option<RecordTo>,
    /// The GPU to render on (`--gpu`); `None`: software rendering, no GPU node in the jail.
    pub gpu: Option<std::path::PathBuf>,
    /// RLIMIT_DATA for the process (`--gpu-memory-limit`); `None`: the jail's default.
    pub memory_limit: Option<u64>,
    /// The process's nice value (`--gpu-nice`).
    pub nice: i32,
    /// The host's GPU scheduling it joins (`--gpu-weight`, `--gpu-priority`); `None`:
    /// unscheduled.
    pub schedule: Option<crate::vm_config::GpuSchedule>,
}

impl JailedGpu {
    /// Spawns ray-gpu in its jail with `socket` as its vhost-user connection and the GPU
    /// `options.gpu` names (none: software rendering); a monitor thread reports its end to
    /// `sink`.
    pub fn spawn(
        options: &JailedGpuOptions<'_>,
        socket: OwnedFd,
        sink: GpuSink,
    ) -> Result<JailedGpu, String> {
        let devices: Vec<_> = options.gpu.iter().cloned().collect();
        JailedGpu::spawn_with_devices(options, &devices, socket, sink)
    }

    /// [`JailedGpu::spawn`] with exactly the GPU device nodes `devices` in the jail (those
    /// the host lacks are skipped).
    pub fn spawn_with_devices(
        options: &JailedGpuOptions<'_>,
        devices: &[std::path::PathBuf],
        socket: OwnedFd,
        sink: GpuSink,
    ) -> Result<JailedGpu, String> {
        use crate::gpu_process::{GpuProcess, GpuSpawnConfig, VHOST_USER_FD};
        use control::messages::RendererMode;
        use jail::{ChildStderr, PassFd};
        use std::os::fd::AsFd;

        let mut config = GpuSpawnConfig::new(options.binary, options.policy, devices);
        config.action = options.action;
        config.renderer = match options.three_d {
            true => RendererMode::Virgl,
            false => RendererMode::TwoD,
        };
        config.display = Some(options.display);
        config.work_timeout = Some(options.work_timeout);
        config.ready_timeout = std::time::Duration::from_secs(60);
        config.required_gpu = options.gpu.clone().filter(|_| options.three_d);
        config.jail.nice = options.nice;
        if let Some(bytes) = options.memory_limit {
            for limit in &mut config.jail.rlimits {
                if limit.resource == jail::Resource::Data {
                    (limit.soft, limit.hard) = (bytes, bytes);
                }
            }
        }
        // Its log goes into a pipe that rayvmm reads with bounds: no host file open for
        // writing inside the jail.
        let (log_read, log_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("creating the GPU process's log pipe: {e}"))?;
        config.jail.stderr = ChildStderr::Descriptor(std::os::fd::AsRawFd::as_raw_fd(&log_write));
        // ray-gpu logs on that stderr at the level RAYOS_GPU_LOG names (warn by default).
        if let Some(level) = std::env::var_os("RAYOS_GPU_LOG") {
            config.jail.env.push(("RAYOS_GPU_LOG".into(), level));
        }
        // Fault injection for the fault tests; only probe builds of ray-gpu read it.
        if let Some(fault) = std::env::var_os("RAYOS_GPU_FAULT") {
            config.jail.env.push(("RAYOS_GPU_FAULT".into(), fault));
        }
        let mut passed = vec![PassFd {
            source: socket.as_fd(),
            target: VHOST_USER_FD,
        }];
        let recording = match &options.record {
            Some(to) => {
                let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| format!("creating the recording pipe: {e}"))?;
                let job = RecordingJob::start(read, &to.path, to.info.clone(), to.limit)
                    .map_err(|e| e.to_string())?;
                Some((job, write))
            }
            None => None,
        };
        if let Some((_, write)) = &recording {
            passed.push(PassFd {
                source: write.as_fd(),
                target: crate::gpu_process::RECORD_FD,
            });
        }
        let process = GpuProcess::spawn_with_fds(&config, &passed).map_err(|e| e.to_string())?;
        drop(socket);
        let scheduling = match &options.schedule {
            Some(schedule) => Some(process.join_scheduling(schedule)?),
            None => None,
        };
        // Only the GPU process holds the write end now: its exit ends the recording.
        let recording = recording.map(|(job, _write)| job);
        drop(log_write);
        std::thread::Builder::new()
            .name("gpu-log".into())
            .spawn(move || {
                crate::gpu_process::log::forward(log_read, &|line| {
                    // ray-gpu names itself on its own lines (it also runs alone): once is enough.
                    let line = line.strip_prefix("ray-gpu: ").unwrap_or(line);
                    eprintln!("rayvmm: ray-gpu: {line}")
                })
            })
            .map_err(|e| e.to_string())?;
        let scheduled = match &options.schedule {
            Some(s) => format!("; GPU share {}, ledger {}", s.share, s.ledger.display()),
            None => String::new(),
        };
        let description = format!(
            "{} (pid {}, jailed; policy {}, {} on refusal; renderer {}{scheduled})",
            options.binary.display(),
            process.pid(),
            process.policy().name,
            crate::policy::action_name(options.action),
            process.ready_info().renderer
        );
        let process = std::sync::Arc::new(std::sync::Mutex::new(process));
        let watched = std::sync::Arc::downgrade(&process);
        let monitor_sink = std::sync::Arc::clone(&sink);
        std::thread::Builder::new()
            .name("gpu-monitor".into())
            .spawn(move || monitor(watched, monitor_sink))
            .map_err(|e| e.to_string())?;
        let mode = options.display;
        let frames = super::display::FramePump::start(
            std::sync::Arc::clone(&process),
            u64::from(mode.width) * u64::from(mode.height) * 4,
            options.liveness,
            |message| eprintln!("rayvmm: {message}"),
            move |what| sink(GpuEvent::Stalled { what }),
        )
        .map_err(|e| format!("starting the frame pump: {e}"))?;
        Ok(JailedGpu {
            process,
            frames,
            description,
            recording,
            scheduling,
        })
    }

    /// The GPU process's pid.
    pub fn pid(&self) -> i32 {
        self.with_process(|p| p.pid())
    }

    fn with_process<T>(&self, f: impl FnOnce(&mut crate::gpu_process::GpuProcess) -> T) -> T {
        let mut guard = self
            .process
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }
}

/// Polls the process until it ends (reporting how) or the server is dropped.
fn monitor(
    process: std::sync::Weak<std::sync::Mutex<crate::gpu_process::GpuProcess>>,
    sink: GpuSink,
) {
    use jail::ExitStatus;
    while let Some(process) = process.upgrade() {
        let ended = {
            let mut guard = process.lock().unwrap_or_else(|p| p.into_inner());
            guard.wait_timeout(std::time::Duration::ZERO)
        };
        drop(process);
        match ended {
            Ok(None) => std::thread::sleep(MONITOR_INTERVAL),
            Ok(Some(report)) => {
                let exit = match report.status {
                    ExitStatus::Exited(code) => ExitDescription {
                        code: Some(code),
                        signal: None,
                    },
                    ExitStatus::Signaled(sig) => ExitDescription {
                        code: None,
                        signal: Some(super::child::signal_name(sig)),
                    },
                };
                sink(GpuEvent::Exited {
                    exit,
                    blocked: report.blocked.map(|b| b.to_string()),
                });
                return;
            }
            Err(e) => {
                sink(GpuEvent::Exited {
                    exit: ExitDescription {
                        code: None,
                        signal: None,
                    },
                    blocked: Some(format!("(waiting for it failed: {e})")),
                });
                return;
            }
        }
    }
}

impl GpuServer for JailedGpu {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn request_stop(&mut self) {
        // A held process could not hear the request until its hold ends.
        if let Some(member) = &mut self.scheduling {
            member.stop();
        }
        self.with_process(|p| {
            let _ = p.tube().send(&control::messages::ToGpu::Shutdown);
        });
    }

    fn kill(&mut self) {
        self.with_process(|p| {
            let _ = p.kill();
        });
    }

    fn screenshot(&mut self) -> Option<Result<Frame, String>> {
        Some(latest_frame(self.frames.latest()))
    }

    fn frame_source(&self) -> Option<super::vnc::FrameSource> {
        let latest = self.frames.source();
        let demand = self.frames.demand();
        Some(Box::new(move |shown| {
            let copy = latest().ok_or_else(|| "the scanout has shown no frame yet".to_string())?;
            if shown == Some(copy.generation) {
                demand();
                return Ok(None);
            }
            Ok(Some((copy.generation, copy.to_frame()?)))
        }))
    }

    fn attach_display(&mut self, socket: std::os::unix::net::UnixStream) {
        self.frames.attach_display(socket);
    }

    fn finish_recording(&mut self) -> Option<Result<RecordingSummary, RecordingError>> {
        self.recording.take().map(RecordingJob::finish)
    }

    fn finish_scheduling(&mut self) -> Option<String> {
        let stats = self.scheduling.take()?.leave();
        let stopped_early = match &stats.error {
            Some(e) => format!("; it ran unscheduled after: {e}"),
            None => String::new(),
        };
        Some(format!(
            "GPU scheduling: the GPU process was {stats}{stopped_early}"
        ))
    }
}

/// The newest frame the pump took from the GPU process (one frame path for screenshots, VNC
/// and QEMU's display).
fn latest_frame(
    copy: Option<std::sync::Arc<super::display::ScanoutCopy>>,
) -> Result<Frame, String> {
    copy.ok_or_else(|| "the scanout has shown no frame yet".to_string())?
        .to_frame()
}
