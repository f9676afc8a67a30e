//! The backend's supervisor: ray-gpu in its jail, rayvmm's relay in front of it, and what
//! ends them.
//!
//! This process is not jailed and holds no privilege (libvirt runs it as the QEMU user
//! without capabilities). It keeps what rayvmm keeps from ray-gpu:
//! - ray-gpu is spawned in the same jail, in unprivileged user namespaces, and checked from
//!   /proc before anything else happens (vmm's `JailedGpu`);
//! - every vhost-user message between QEMU and ray-gpu goes through vmm's relay, which keeps
//!   QEMU's display socket here: ray-gpu never writes to QEMU;
//! - vmm's frame pump asks ray-gpu for frames and feeds QEMU's display from checked geometry.
//!
//! What ends it, and the exit status:
//!
//! | happening | what the supervisor does | status |
//! |---|---|---|
//! | SIGTERM, SIGINT, SIGHUP | stop ray-gpu (Shutdown, SIGKILL after 5 s), close QEMU's socket | 0 |
//! | QEMU closes the socket | stop ray-gpu | 0 |
//! | ray-gpu dies, stalls or breaks the protocol | say how, kill it, close QEMU's socket | 1 |
//! | QEMU sends what the relay refuses | say what, stop ray-gpu, close the socket | 1 |

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use control::display::DisplayMode;
use nix::sys::signal::{SigSet, Signal};
use thiserror::Error;
use vmm::relay::{Relay, RelayConfig, RelayEvent, Side};
use vmm::vm::child::ExitDescription;
use vmm::vm::gpu::{GpuEvent, GpuServer, JailedGpu, JailedGpuOptions};

use crate::report::say;

/// The signals that stop the backend (QEMU's convention: end on SIGTERM).
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];
/// How long ray-gpu may take to stop before it is killed, and to die once killed.
const GPU_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after ray-gpu's clean exit QEMU's closing counts as its cause.
const CONSEQUENCE_WINDOW: Duration = Duration::from_millis(500);

/// How to start ray-gpu.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub ray_gpu: PathBuf,
    pub policy: PathBuf,
    /// 3D (virglrenderer) or 2D.
    pub virgl: bool,
    /// The GPU device nodes the jail gets.
    pub devices: Vec<PathBuf>,
    /// The mode the device's display reports to the guest.
    pub display: DisplayMode,
}

/// Everything the supervisor waits for, from all threads, in one queue.
#[derive(Debug)]
pub enum Event {
    Signal(Signal),
    Gpu(GpuEvent),
    Relay(RelayEvent),
}

/// Why the backend could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("setting up signal handling failed: {0}")]
    Signals(#[source] std::io::Error),
    #[error("starting ray-gpu in its jail failed: {0}")]
    Gpu(String),
    #[error("starting the vhost-user relay failed: {0}")]
    Relay(#[source] std::io::Error),
}

/// How serving ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A stop signal arrived.
    Signal(Signal),
    /// QEMU closed the vhost-user socket (its VM stopped).
    FrontendClosed,
    /// Something failed; the line says what.
    Failed(String),
}

impl Ending {
    /// The exit status: 0 for a requested or natural end, 1 for a failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Ending::Signal(_) | Ending::FrontendClosed => 0,
            Ending::Failed(_) => 1,
        }
    }

    /// One line saying why it ended.
    pub fn describe(&self) -> String {
        match self {
            Ending::Signal(signal) => format!("{signal}: stopped"),
            Ending::FrontendClosed => "QEMU closed the vhost-user socket: stopped".into(),
            Ending::Failed(why) => why.clone(),
        }
    }
}

/// The stop signals, blocked in every thread and taken by one listener thread.
pub struct Signals {
    requested: Arc<AtomicBool>,
}

impl Signals {
    /// Blocks the stop signals (call before any other thread starts, so all inherit the mask)
    /// and starts the thread that turns each into an [`Event::Signal`] on `events`.
    pub fn listen(events: Sender<Event>) -> Result<Signals, StartError> {
        let mut set = SigSet::empty();
        for signal in STOP_SIGNALS {
            set.add(signal);
        }
        set.thread_block()
            .map_err(|e| StartError::Signals(e.into()))?;
        let requested = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&requested);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                while let Ok(signal) = set.wait() {
                    flag.store(true, Ordering::Release);
                    let _ = events.send(Event::Signal(signal));
                }
            })
            .map_err(StartError::Signals)?;
        Ok(Signals { requested })
    }

    /// Whether a stop signal has arrived.
    pub fn stop_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}

/// ray-gpu, running, jailed and checked; the relay starts with [`Backend::serve`].
pub struct Backend {
    gpu: JailedGpu,
    gpu_alive: bool,
    events: Sender<Event>,
    queue: Receiver<Event>,
}

impl Backend {
    /// Spawns ray-gpu in its jail on `gpu_socket` (its end of the vhost-user connection) and
    /// waits for it to be Ready with its confinement checked. Its end is reported on `events`.
    pub fn start(
        config: &BackendConfig,
        gpu_socket: OwnedFd,
        events: Sender<Event>,
        queue: Receiver<Event>,
    ) -> Result<Backend, StartError> {
        let options = JailedGpuOptions {
            binary: &config.ray_gpu,
            policy: &config.policy,
            action: seccomp::DefaultAction::KillProcess,
            three_d: config.virgl,
            display: config.display,
            liveness: vmm::vm_config::DEFAULT_LIVENESS_TIMEOUT,
            work_timeout: vmm::vm_config::DEFAULT_GPU_WORK_TIMEOUT,
            record: None,
            gpu: None,
            memory_limit: None,
            nice: 0,
            schedule: None,
        };
        let sink = events.clone();
        let gpu = JailedGpu::spawn_with_devices(
            &options,
            &config.devices,
            gpu_socket,
            Arc::new(move |event| {
                let _ = sink.send(Event::Gpu(event));
            }),
        )
        .map_err(StartError::Gpu)?;
        Ok(Backend {
            gpu,
            gpu_alive: true,
            events,
            queue,
        })
    }

    /// Who serves: ray-gpu's path, pid, policy and renderer.
    pub fn describe(&self) -> String {
        self.gpu.describe()
    }

    /// Relays between `frontend` (QEMU) and `relay_end` (the peer of ray-gpu's socket) until
    /// something ends it; stops ray-gpu and closes both sockets before returning.
    pub fn serve(
        mut self,
        frontend: UnixStream,
        relay_end: UnixStream,
    ) -> Result<Ending, StartError> {
        let sink = self.events.clone();
        let relay = Relay::spawn(
            frontend,
            relay_end,
            RelayConfig::any_memfd(),
            Box::new(move |event| {
                let _ = sink.send(Event::Relay(event));
            }),
        )
        .map_err(StartError::Relay)?;
        let ending = self.run();
        self.stop_gpu();
        // Last: ray-gpu is gone, so nothing is cut off mid-message; QEMU sees its socket close.
        drop(relay);
        Ok(ending)
    }

    /// Handles events until one ends the service.
    fn run(&mut self) -> Ending {
        loop {
            let Ok(event) = self.queue.recv() else {
                return Ending::Failed("lost every event source".into());
            };
            match event {
                Event::Signal(signal) => return Ending::Signal(signal),
                Event::Relay(RelayEvent::DisplaySocket(socket)) => self.gpu.attach_display(socket),
                Event::Relay(RelayEvent::Closed { side: Side::Engine }) => {
                    return Ending::FrontendClosed
                }
                // How ray-gpu ended is reported by its monitor; give it a moment to arrive.
                Event::Relay(RelayEvent::Closed { side: Side::Gpu }) => {
                    return match self.next_gpu_exit(GPU_STOP_TIMEOUT) {
                        Some((exit, blocked)) => {
                            Ending::Failed(gpu_death(&exit, blocked.as_deref()))
                        }
                        None => Ending::Failed("ray-gpu closed its vhost-user socket".into()),
                    };
                }
                Event::Relay(RelayEvent::BackendViolation(what)) => {
                    self.gpu.kill();
                    return Ending::Failed(format!(
                        "ray-gpu broke the vhost-user protocol: {what}"
                    ));
                }
                Event::Relay(RelayEvent::FrontendViolation(what)) => {
                    return Ending::Failed(format!(
                        "QEMU sent a vhost-user message the relay refuses: {what}"
                    ))
                }
                Event::Relay(RelayEvent::Failed(what)) => {
                    return Ending::Failed(format!("the vhost-user relay failed: {what}"))
                }
                Event::Gpu(GpuEvent::Stalled { what }) => {
                    self.gpu.kill();
                    return Ending::Failed(format!("ray-gpu stopped making progress: {what}"));
                }
                Event::Gpu(GpuEvent::Exited { exit, blocked }) => {
                    self.gpu_alive = false;
                    // ray-gpu also ends, cleanly, when QEMU's end of the socket closes.
                    let clean = exit.success() && blocked.is_none();
                    if clean && self.frontend_closed_within(CONSEQUENCE_WINDOW) {
                        return Ending::FrontendClosed;
                    }
                    return Ending::Failed(gpu_death(&exit, blocked.as_deref()));
                }
            }
        }
    }

    /// Whether QEMU's end closes within `window` (other events are dropped: the service is
    /// ending anyway).
    fn frontend_closed_within(&mut self, window: Duration) -> bool {
        let deadline = Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.queue.recv_timeout(left) {
                Ok(Event::Relay(RelayEvent::Closed { side: Side::Engine })) => return true,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Waits up to `timeout` for ray-gpu's exit event (other events are dropped: the service
    /// is ending anyway); how it ended, or `None` if it has not.
    fn next_gpu_exit(&mut self, timeout: Duration) -> Option<(ExitDescription, Option<String>)> {
        let deadline = Instant::now() + timeout;
        while self.gpu_alive {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.queue.recv_timeout(left) {
                Ok(Event::Gpu(GpuEvent::Exited { exit, blocked })) => {
                    self.gpu_alive = false;
                    return Some((exit, blocked));
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        None
    }

    /// Waits up to `timeout` for ray-gpu to end; true once it has.
    fn wait_for_gpu_exit(&mut self, timeout: Duration) -> bool {
        self.next_gpu_exit(timeout);
        !self.gpu_alive
    }

    /// Asks ray-gpu to stop; kills it if it has not within [`GPU_STOP_TIMEOUT`].
    fn stop_gpu(&mut self) {
        if !self.gpu_alive {
            return;
        }
        self.gpu.request_stop();
        if !self.wait_for_gpu_exit(GPU_STOP_TIMEOUT) {
            say("ray-gpu did not stop in time; killing it");
            self.gpu.kill();
            self.wait_for_gpu_exit(GPU_STOP_TIMEOUT);
        }
    }
}

/// Says how ray-gpu died, with the call its filter refused when it reported one.
fn gpu_death(exit: &ExitDescription, blocked: Option<&str>) -> String {
    match blocked {
        Some(call) => format!("ray-gpu {exit} after its filter refused {call}"),
        None => format!("ray-gpu {exit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_and_natural_ends_exit_0_failures_exit_1() {
        assert_eq!(Ending::Signal(Signal::SIGTERM).exit_code(), 0);
        assert_eq!(Ending::FrontendClosed.exit_code(), 0);
        assert_eq!(Ending::Failed("x".into()).exit_code(), 1);
    }

    #[test]
    fn a_gpu_death_names_the_refused_call() {
        let exit = ExitDescription {
            code: None,
            signal: Some("SIGSYS".into()),
        };

        let line = gpu_death(&exit, Some("socket(0x2, 0x1, 0x0, 0x0, 0x0, 0x0)"));

        assert_eq!(
            line,
            format!("ray-gpu {exit} after its filter refused socket(0x2, 0x1, 0x0, 0x0, 0x0, 0x0)")
        );
    }
}
