//! `rayvmm run`: one virtual machine whose GPU is served by the jailed GPU process.
//!
//! rayvmm creates guest RAM (a memfd), a vhost-user socketpair and the GPU process, then
//! starts the engine on that memory and socket, and supervises both until the guest powers
//! off, a stop signal arrives, or a child dies:
//!
//! | happening | what rayvmm does | exit code |
//! |---|---|---|
//! | guest powers off | exit screenshot, QMP `quit`, stop the GPU process | 0 |
//! | guest panics | same | 1 |
//! | SIGINT, SIGTERM, SIGHUP, SIGQUIT | exit screenshot, QMP `quit`, stop the GPU process | 128 + signal |
//! | SIGUSR1 | write the current scanout as PNG: `--screenshot` path numbered (`shot-1.png` ...) | - |
//! | a VNC viewer connects (`--vnc`) | show it the scanout, view-only (see [`vnc`]) | - |
//! | GPU process dies | say how (in trap mode: the blocked call), stop the engine | 1 |
//! | engine dies | say how, stop the GPU process | 1 |
//!
//! Stopping is ordered: VNC viewers are disconnected, then the engine (QMP `quit`, SIGKILL after a timeout), then the
//! GPU process (Shutdown request, SIGKILL after a timeout). Every child has
//! `PR_SET_PDEATHSIG(SIGKILL)`, so none outlives rayvmm even if rayvmm is killed.

pub mod child;
mod display;
pub mod frame;
pub mod gpu;
pub mod memory;
mod signals;
pub mod vnc;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use thiserror::Error;

use crate::engine::qemu::QemuEngine;
use crate::engine::{accel, EngineError, EngineEvent, Machine, MachineSpec};
use crate::relay::{FileIdentity, Relay, RelayConfig, RelayEvent};
use crate::vm_config::{BootSource, GpuBackendKind, PolicyAction, RunConfig};
use control::display::DisplayMode;
use frame::Frame;
use gpu::{GpuEvent, GpuServer, GpuSink, JailedGpu, JailedGpuOptions, ReferenceGpu};
use memory::GuestRam;

/// rayvmm's exit status when the GPU process or the engine stopped making progress and the
/// VM was stopped.
pub const EXIT_GPU_STALLED: i32 = 3;
/// How often the supervisor asks the engine whether it still answers.
const ENGINE_PING_INTERVAL: Duration = Duration::from_secs(1);
/// How long the engine may take to quit before it is killed.
const ENGINE_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the GPU process may take to stop before it is killed.
const GPU_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after a child's death the other's death counts as its consequence.
const CONSEQUENCE_WINDOW: Duration = Duration::from_millis(500);
/// Where SIGUSR1 writes its screenshots when no `--screenshot` path was given.
pub const DEFAULT_SIGNAL_SCREENSHOT: &str = "rayvmm-screenshot.png";

/// Where the `n`th SIGUSR1 screenshot goes: `shot.png` becomes `shot-1.png`, `shot-2.png` ...
/// so they never overwrite each other or the exit screenshot.
pub fn numbered_screenshot(exit_path: Option<&Path>, n: u32) -> PathBuf {
    let base = exit_path.unwrap_or(Path::new(DEFAULT_SIGNAL_SCREENSHOT));
    let stem = base.file_stem().unwrap_or_default().to_string_lossy();
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    base.with_file_name(name)
}

/// Why `rayvmm run` could not run the VM at all.
#[derive(Debug, Error)]
pub enum VmError {
    #[error("setting up signal handling failed: {0}")]
    Signals(String),
    #[error("creating guest RAM ({mib} MiB memfd) failed")]
    Memory {
        mib: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("creating the vhost-user socketpair failed")]
    Socket(#[source] std::io::Error),
    #[error("starting the GPU process failed: {0}")]
    Gpu(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Vnc(#[from] vnc::VncError),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code rayvmm should end with.
    pub exit_code: i32,
    /// One line saying why the run ended.
    pub summary: String,
}

/// Everything the supervisor waits for, from all threads, in one queue.
#[derive(Debug)]
enum Event {
    Signal(Signal),
    Engine(EngineEvent),
    Gpu(GpuEvent),
    Relay(RelayEvent),
}

/// Runs the VM described by `config` to its end.
pub fn run(config: &RunConfig) -> Result<Outcome, VmError> {
    // Before any thread exists, so every thread inherits the mask.
    signals::block().map_err(|e| VmError::Signals(e.to_string()))?;
    let (tx, rx) = mpsc::channel::<Event>();
    let signal_tx = tx.clone();
    signals::spawn_listener(move |s| {
        let _ = signal_tx.send(Event::Signal(s));
    })
    .map_err(|e| VmError::Signals(e.to_string()))?;

    let choice = accel::choose();
    say(&format!(
        "accelerator: {} ({})",
        choice.accelerator, choice.reason
    ));
    let engine = QemuEngine::locate(&config.qemu)?;
    say(&format!(
        "engine: QEMU {} ({})",
        engine.version(),
        config.qemu.display()
    ));
    let ram = GuestRam::new(config.memory_mib).map_err(|source| VmError::Memory {
        mib: config.memory_mib,
        source,
    })?;
    let (engine_end, gpu_end) = UnixStream::pair().map_err(VmError::Socket)?;
    // Bound before anything starts, so a port in use fails the run at once.
    let vnc_listener = config.vnc.as_ref().map(vnc::listen).transpose()?;

    let gpu_tx = Mutex::new(tx.clone());
    let gpu_sink: GpuSink = Arc::new(move |e| {
        let _ = gpu_tx.lock().map(|tx| tx.send(Event::Gpu(e)));
    });
    // The jailed GPU process never talks to QEMU directly: rayvmm's relay sits between them
    // on the vhost-user socket and keeps QEMU's display socket (the unjailed reference
    // backend, a comparison point only, is connected straight).
    let (engine_end, relay) = match config.gpu_backend {
        GpuBackendKind::Reference => (engine_end, None),
        GpuBackendKind::RayGpu => {
            // `engine_end` becomes the relay's end toward ray-gpu; QEMU gets a new pair's end.
            let (qemu_end, relay_engine) = UnixStream::pair().map_err(VmError::Socket)?;
            let identity = FileIdentity::of(ram.as_fd()).map_err(VmError::Socket)?;
            let relay_tx = Mutex::new(tx.clone());
            let relay = Relay::spawn(
                relay_engine,
                engine_end,
                RelayConfig::new(identity),
                Box::new(move |e| {
                    let _ = relay_tx.lock().map(|tx| tx.send(Event::Relay(e)));
                }),
            )
            .map_err(VmError::Socket)?;
            (qemu_end, Some(relay))
        }
    };
    let gpu = spawn_gpu(config, gpu_end.into(), gpu_sink)?;
    say(&format!("GPU: {}", gpu.describe()));
    let vnc = match vnc_listener {
        Some(listener) => Some(start_vnc(listener, config, gpu.as_ref())?),
        None => None,
    };

    let engine_tx = Mutex::new(tx);
    let engine_sink = Arc::new(move |e| {
        let _ = engine_tx.lock().map(|tx| tx.send(Event::Engine(e)));
    });
    let spec = MachineSpec {
        memory: ram.as_fd(),
        memory_mib: ram.mib(),
        cpus: config.cpus,
        accelerator: choice.accelerator,
        boot: &config.boot,
        gpu_socket: engine_end.as_fd(),
        display: config.display,
    };
    let mut supervisor = Supervisor {
        rx,
        machine: None,
        gpu,
        engine_alive: false,
        gpu_alive: true,
        screenshot: config.screenshot.clone(),
        signal_shots: 0,
        gpu_stop_requested: false,
        engine_exit: None,
        last_frame: None,
        vnc,
        relay,
        liveness: config.liveness_timeout,
        gpu_work_timeout: config.gpu_work_timeout,
        last_ping: Instant::now(),
    };
    let machine = match engine.launch(&spec, engine_sink) {
        Ok(m) => m,
        Err(e) => {
            // A GPU process that died is the likelier cause: give its report a moment.
            supervisor.wait_until(|s| !s.gpu_alive, Duration::from_secs(1));
            supervisor.stop();
            return Err(e.into());
        }
    };
    drop(engine_end);
    say(&format!("VM running: QEMU pid {}", machine.pid()));
    supervisor.machine = Some(Box::new(machine));
    supervisor.engine_alive = true;
    Ok(supervisor.run())
}

/// Starts the VNC server on `listener`, fed by the GPU process's frames.
fn start_vnc(
    listener: std::net::TcpListener,
    config: &RunConfig,
    gpu: &dyn GpuServer,
) -> Result<vnc::VncDisplay, VmError> {
    let source = gpu
        .frame_source()
        .ok_or_else(|| VmError::Gpu("this GPU backend hands rayvmm no frames for VNC".into()))?;
    // Display edges are at most 4095 (checked by the config), so they fit RFB's 16 bits.
    let display = vnc::VncDisplay::start(
        listener,
        config.display.width as u16,
        config.display.height as u16,
        source,
        |message| say(&message),
    )?;
    say(&format!(
        "VNC server listening on {} (view-only)",
        display.local_addr()
    ));
    Ok(display)
}

fn spawn_gpu(
    config: &RunConfig,
    socket: OwnedFd,
    sink: GpuSink,
) -> Result<Box<dyn GpuServer>, VmError> {
    match config.gpu_backend {
        GpuBackendKind::Reference => {
            if config.three_d {
                say("the reference backend cannot do 3D here (no render node): 2D only");
            }
            let gpu = ReferenceGpu::spawn(socket, sink).map_err(|e| VmError::Gpu(e.to_string()))?;
            Ok(Box::new(gpu))
        }
        GpuBackendKind::RayGpu => {
            let binary = crate::gpu_process::ray_gpu_binary(config.ray_gpu.as_deref())
                .map_err(|e| VmError::Gpu(e.to_string()))?;
            let policy = crate::policy::policy_for_gpu(config.gpu.as_deref())
                .map_err(|e| VmError::Gpu(e.to_string()))?;
            let options = JailedGpuOptions {
                binary: &binary,
                policy: &policy,
                action: match config.action {
                    PolicyAction::Kill => seccomp::DefaultAction::KillProcess,
                    PolicyAction::Trap => seccomp::DefaultAction::Trap,
                },
                three_d: config.three_d,
                display: DisplayMode {
                    width: config.display.width,
                    height: config.display.height,
                },
                liveness: config.liveness_timeout,
                work_timeout: config.gpu_work_timeout,
                gpu: config.gpu.clone(),
                memory_limit: config.gpu_memory_limit,
                nice: config.gpu_nice,
                schedule: config.gpu_schedule.clone(),
                record: config.record.as_ref().map(|path| gpu::RecordTo {
                    path: path.clone(),
                    info: recording_info(config),
                    limit: config.record_limit,
                }),
            };
            let gpu = JailedGpu::spawn(&options, socket, sink).map_err(VmError::Gpu)?;
            Ok(Box::new(gpu))
        }
    }
}

/// The Info record of a recording: what was recorded, when, and how.
fn recording_info(config: &RunConfig) -> String {
    let boot = match &config.boot {
        BootSource::Kernel { append, .. } => format!("linux kernel, append {append:?}"),
        BootSource::Firmware { .. } => "UEFI firmware".to_string(),
    };
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    serde_json::json!({
        "recorded_by": format!("rayvmm {}", env!("CARGO_PKG_VERSION")),
        "created_unix": created,
        "boot": boot,
        "display": format!("{}x{}", config.display.width, config.display.height),
        "3d": config.three_d,
        "memory_mib": config.memory_mib,
    })
    .to_string()
}

/// Prints a supervisor message on stderr (stdout carries the guest's serial console).
fn say(msg: &str) {
    eprintln!("rayvmm: {msg}");
}

struct Supervisor {
    rx: Receiver<Event>,
    machine: Option<Box<dyn Machine>>,
    gpu: Box<dyn GpuServer>,
    engine_alive: bool,
    gpu_alive: bool,
    screenshot: Option<PathBuf>,
    signal_shots: u32,
    gpu_stop_requested: bool,
    engine_exit: Option<child::ExitDescription>,
    last_frame: Option<(Frame, Instant)>,
    vnc: Option<vnc::VncDisplay>,
    /// Between QEMU and the jailed GPU process on the vhost-user socket.
    relay: Option<Relay>,
    /// How long a child may stop answering before the VM is stopped.
    liveness: Duration,
    /// The GPU process's work timeout, to name it when the process stops a guest's work.
    gpu_work_timeout: Duration,
    last_ping: Instant,
}

/// Says how the GPU process died, with the call its filter refused when it reported one.
fn gpu_death(exit: &child::ExitDescription, blocked: Option<&str>) -> String {
    match blocked {
        Some(call) => format!("the GPU process {exit} after its filter refused {call}"),
        None => format!("the GPU process {exit}"),
    }
}

impl Supervisor {
    fn run(mut self) -> Outcome {
        loop {
            if self.last_ping.elapsed() >= ENGINE_PING_INTERVAL {
                if let Some(outcome) = self.ping_engine() {
                    return outcome;
                }
            }
            let event = match self.rx.recv_timeout(ENGINE_PING_INTERVAL) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => {
                    self.poll_frame();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return self.finish(1, "lost every event source".into())
                }
            };
            match event {
                Event::Signal(Signal::SIGUSR1) => {
                    self.signal_shots += 1;
                    let path = numbered_screenshot(self.screenshot.as_deref(), self.signal_shots);
                    self.write_screenshot(&path);
                }
                Event::Signal(signal) => {
                    say(&format!("{signal}: stopping the VM"));
                    self.exit_screenshot();
                    return self.finish(128 + signal as i32, format!("stopped by {signal}"));
                }
                Event::Engine(EngineEvent::ShuttingDown {
                    guest: true,
                    reason,
                }) => {
                    say(&format!("guest shut down ({reason})"));
                    self.exit_screenshot();
                    let code = i32::from(reason == "guest-panic");
                    return self.finish(code, format!("guest shut down ({reason})"));
                }
                Event::Engine(EngineEvent::ShuttingDown { guest: false, .. }) => {}
                Event::Engine(EngineEvent::Exited(exit)) => {
                    self.engine_alive = false;
                    return self.engine_died(&exit);
                }
                Event::Gpu(GpuEvent::Stalled { what }) => {
                    let msg = format!("the GPU process stopped making progress: {what}");
                    say(&format!("{msg}; stopping it and the VM"));
                    self.gpu.kill();
                    return self.finish(EXIT_GPU_STALLED, msg);
                }
                Event::Gpu(GpuEvent::Exited { exit, blocked }) => {
                    self.gpu_alive = false;
                    // The GPU process also ends, cleanly, when the engine's end of the socket
                    // closes: if the engine went down too, it went first.
                    let clean = exit.success() && blocked.is_none();
                    if clean && self.wait_until(|s| !s.engine_alive, CONSEQUENCE_WINDOW) {
                        let engine_exit = self.engine_exit.clone();
                        return self.engine_died(&engine_exit.unwrap_or(exit));
                    }
                    if exit.code == Some(control::messages::WORK_TIMEOUT_EXIT_CODE) {
                        let msg = format!(
                            "the GPU process stopped making progress: the guest's GPU work did \
                             not finish within the GPU work timeout ({:.1} s) and the GPU \
                             process stopped it",
                            self.gpu_work_timeout.as_secs_f64()
                        );
                        say(&format!("{msg}; stopping the VM"));
                        return self.finish(EXIT_GPU_STALLED, msg);
                    }
                    let msg = gpu_death(&exit, blocked.as_deref());
                    say(&format!("{msg}; stopping the VM"));
                    return self.finish(1, msg);
                }
                Event::Relay(event) => {
                    if let Some(outcome) = self.relay_event(event) {
                        return outcome;
                    }
                }
            }
        }
    }

    /// Asks QEMU whether it still answers; one that does not within the liveness bound
    /// (stopped, or its main loop stuck) ends the run with [`EXIT_GPU_STALLED`]. Other QMP
    /// failures mean QEMU is going away, which its monitor reports.
    fn ping_engine(&mut self) -> Option<Outcome> {
        self.last_ping = Instant::now();
        let machine = self.machine.as_mut().filter(|_| self.engine_alive)?;
        let asked = Instant::now();
        match machine.ping(self.liveness) {
            Err(EngineError::Qmp(crate::engine::qmp::QmpError::Timeout { .. })) => {
                let msg = format!(
                    "the engine (QEMU) stopped making progress: it did not answer QMP within \
                     {:.1} s",
                    asked.elapsed().as_secs_f64()
                );
                say(&format!("{msg}; stopping it and the GPU process"));
                machine.kill();
                Some(self.finish(EXIT_GPU_STALLED, msg))
            }
            _ => None,
        }
    }

    /// What the relay between QEMU and the GPU process saw; `Some` ends the run.
    fn relay_event(&mut self, event: RelayEvent) -> Option<Outcome> {
        match event {
            RelayEvent::DisplaySocket(socket) => {
                self.gpu.attach_display(socket);
                None
            }
            RelayEvent::BackendViolation(what) => {
                let msg = format!("the GPU process broke the vhost-user protocol: {what}");
                say(&format!("{msg}; stopping it and the VM"));
                self.gpu.kill();
                Some(self.finish(1, msg))
            }
            RelayEvent::FrontendViolation(what) => {
                let msg = format!("QEMU sent a vhost-user message rayvmm refuses: {what}");
                say(&format!("{msg}; stopping the VM"));
                Some(self.finish(1, msg))
            }
            RelayEvent::Failed(what) => {
                let msg = format!("the vhost-user relay failed: {what}");
                say(&format!("{msg}; stopping the VM"));
                Some(self.finish(1, msg))
            }
            // The end of the process on that side is reported by its own monitor.
            RelayEvent::Closed { .. } => None,
        }
    }

    fn engine_died(&mut self, exit: &child::ExitDescription) -> Outcome {
        let msg = format!("the engine (QEMU) {exit} unexpectedly");
        say(&format!("{msg}; stopping the GPU process"));
        self.finish(1, msg)
    }

    fn finish(&mut self, exit_code: i32, summary: String) -> Outcome {
        self.stop();
        Outcome { exit_code, summary }
    }

    /// Stops the engine, then the GPU process; kills what does not stop in time.
    fn stop(&mut self) {
        // Viewers go first: they should see the guest's last frame, not the children dying.
        drop(self.vnc.take());
        // From here on the GPU process ending is expected: it exits when the engine's end of
        // its socket closes.
        self.gpu_stop_requested = true;
        if self.engine_alive {
            if let Some(machine) = self.machine.as_mut() {
                if let Err(e) = machine.request_quit() {
                    say(&format!("QMP quit failed ({e}); killing QEMU"));
                    machine.kill();
                }
            }
            if !self.wait_until(|s| !s.engine_alive, ENGINE_STOP_TIMEOUT) {
                say("QEMU did not quit in time; killing it");
                if let Some(machine) = self.machine.as_mut() {
                    machine.kill();
                }
                self.wait_until(|s| !s.engine_alive, ENGINE_STOP_TIMEOUT);
            }
        }
        if self.gpu_alive {
            self.gpu.request_stop();
            if !self.wait_until(|s| !s.gpu_alive, GPU_STOP_TIMEOUT) {
                say("the GPU process did not stop in time; killing it");
                self.gpu.kill();
                self.wait_until(|s| !s.gpu_alive, GPU_STOP_TIMEOUT);
            }
        }
        // Last: both of its peers are gone, so nothing is cut off mid-message.
        drop(self.relay.take());
        if let Some(summary) = self.gpu.finish_scheduling() {
            say(&summary);
        }
        match self.gpu.finish_recording() {
            Some(Ok(summary)) => say(&summary.to_string()),
            Some(Err(e)) => say(&format!("recording failed: {e}")),
            None => {}
        }
    }

    /// Consumes events until `done` holds or `timeout` passes; notes child exits on the way.
    fn wait_until(&mut self, done: impl Fn(&Supervisor) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Event::Engine(EngineEvent::Exited(exit))) => {
                    self.engine_alive = false;
                    self.engine_exit = Some(exit);
                }
                Ok(Event::Gpu(GpuEvent::Exited { exit, blocked })) => {
                    self.gpu_alive = false;
                    if !self.gpu_stop_requested {
                        say(&gpu_death(&exit, blocked.as_deref()));
                    }
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return done(self)
                }
            }
        }
        true
    }

    fn exit_screenshot(&mut self) {
        if let Some(path) = self.screenshot.clone() {
            self.write_screenshot(&path);
        }
    }

    /// Captures the scanout (from the GPU process if it can, else the engine's display) and
    /// writes it as PNG; failures are reported, not fatal.
    fn write_screenshot(&mut self, path: &Path) {
        match self.capture() {
            Ok((frame, source)) => match write_png(&frame, path) {
                Ok(()) => say(&format!(
                    "screenshot {}x{} ({} colours) written to {} (source: {source})",
                    frame.width,
                    frame.height,
                    frame.distinct_colours(),
                    path.display()
                )),
                Err(e) => say(&format!("writing screenshot {}: {e}", path.display())),
            },
            Err(e) => say(&format!("screenshot failed: {e}")),
        }
    }

    /// Keeps the GPU process's latest frame: a guest that powers off resets the device, and
    /// the exit screenshot should still show what the guest last displayed.
    fn poll_frame(&mut self) {
        if !self.gpu_alive {
            return;
        }
        if let Some(Ok(frame)) = self.gpu.screenshot() {
            self.last_frame = Some((frame, Instant::now()));
        }
    }

    /// The current scanout: from the GPU process; else the last frame it showed (when the
    /// scanout is now empty); else the engine's display (QMP `screendump`).
    ///
    /// Falling back to QEMU is normal until the guest sets a scanout (while it boots), so it
    /// earns no line of its own: why the GPU process had no frame goes into the screenshot's
    /// source (`QMP screendump; GPU process: ...`), or into the error if QEMU fails too.
    fn capture(&mut self) -> Result<(Frame, String), String> {
        let mut gpu_failure = None;
        if self.gpu_alive {
            match self.gpu.screenshot() {
                Some(Ok(frame)) => return Ok((frame, "GPU process".into())),
                Some(Err(e)) => {
                    if let Some((frame, when)) = &self.last_frame {
                        let age = when.elapsed().as_secs_f32();
                        let source =
                            format!("GPU process, the last frame shown, {age:.1} s ago; now: {e}");
                        return Ok((frame.clone(), source));
                    }
                    gpu_failure = Some(e);
                }
                None => {}
            }
        }
        let from_engine = match self.machine.as_mut().filter(|_| self.engine_alive) {
            Some(machine) => machine.screenshot().map_err(|e| e.to_string()),
            None => Err("the engine is not running".to_string()),
        };
        fallback_result(from_engine, gpu_failure.as_deref())
    }
}

/// A screenshot taken from the engine's display (QMP `screendump`), labelled with why the
/// GPU process gave none (`gpu_failure`), if it was asked.
fn fallback_result(
    from_engine: Result<Frame, String>,
    gpu_failure: Option<&str>,
) -> Result<(Frame, String), String> {
    match (from_engine, gpu_failure) {
        (Ok(frame), None) => Ok((frame, "QMP screendump".into())),
        (Ok(frame), Some(why)) => Ok((frame, format!("QMP screendump; GPU process: {why}"))),
        (Err(e), None) => Err(e),
        (Err(e), Some(why)) => Err(format!("GPU process: {why}; QEMU: {e}")),
    }
}

fn write_png(frame: &Frame, path: &Path) -> Result<(), String> {
    crate::gpu_process::write_replacing(path, |out| frame.write_png(out).map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_screenshots_are_numbered_beside_the_exit_screenshot() {
        let path = numbered_screenshot(Some(Path::new("/out/final.png")), 3);

        assert_eq!(path, PathBuf::from("/out/final-3.png"));
    }

    fn tiny_frame() -> Frame {
        Frame {
            width: 1,
            height: 1,
            rgb: vec![0, 0, 0],
        }
    }

    #[test]
    fn a_screenshot_before_the_first_frame_names_the_reason_in_its_source() {
        let (_, source) =
            fallback_result(Ok(tiny_frame()), Some("the scanout has shown no frame yet")).unwrap();

        assert_eq!(
            source,
            "QMP screendump; GPU process: the scanout has shown no frame yet"
        );
    }

    #[test]
    fn a_screenshot_without_a_gpu_frame_source_is_plainly_from_qemu() {
        let (_, source) = fallback_result(Ok(tiny_frame()), None).unwrap();

        assert_eq!(source, "QMP screendump");
    }

    #[test]
    fn a_failed_screenshot_gives_both_reasons_in_one_message() {
        let err = fallback_result(
            Err("the engine is not running".into()),
            Some("the scanout has shown no frame yet"),
        )
        .unwrap_err();

        assert_eq!(
            err,
            "GPU process: the scanout has shown no frame yet; QEMU: the engine is not running"
        );
    }

    #[test]
    fn signal_screenshots_default_to_the_working_directory() {
        let path = numbered_screenshot(None, 1);

        assert_eq!(path, PathBuf::from("rayvmm-screenshot-1.png"));
    }
}
