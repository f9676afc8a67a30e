//! ray-gpu: the jailed GPU process.
//!
//! Started by rayvmm inside its jail (namespaces, empty root, no privileges) with the control
//! tube at descriptor 3 and, when it serves a guest, the vhost-user socket at the descriptor
//! Start names (4). It finishes its own confinement in DESIGN.md's order (Landlock, the
//! renderer and device, the seccomp filter) before it reads anything the guest controls, says
//! Ready, then serves the vhost-user frontend on the main thread and the tube on a second one
//! (`device`), with a watchdog thread that stops it when the guest's GPU work does not finish
//! within the supervisor's work timeout (`watchdog`, exit 3). It exits 0 when the frontend
//! disconnects or the supervisor says Shutdown.

#[cfg(all(feature = "probe", not(debug_assertions)))]
compile_error!("the `probe` feature is for debug builds of the escape tests only; never ship it");

mod confine;
mod device;
#[cfg(feature = "probe")]
mod fault;
mod frame_buffer;
mod logger;
#[cfg(feature = "probe")]
mod probe;
mod renderer;
mod sigsys;
mod view;
mod watchdog;

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use control::messages::{FromGpu, ReadyInfo, StartConfig, ToGpu};
use control::tube::Tube;

use crate::device::Device;

/// The descriptor rayvmm installs the control tube at.
const TUBE_FD: i32 = 3;

fn main() {
    if let Err(err) = run() {
        eprintln!("ray-gpu: {err:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    logger::init();
    // SAFETY: rayvmm installs the tube at descriptor 3 and passes nothing else there; if it is
    // not open or not a tube, Tube::from_fd refuses it.
    let tube = Tube::from_fd(unsafe { OwnedFd::from_raw_fd(TUBE_FD) })
        .context("descriptor 3 is not the control tube (ray-gpu runs only under rayvmm)")?;
    let start = match tube.recv::<ToGpu>().context("reading the start message")? {
        ToGpu::Start(start) => start,
        other => bail!("expected Start as the first message, got {other:?}"),
    };
    let device = match confine(&tube, &start) {
        Ok((ready, device)) => {
            tube.send(&FromGpu::Ready(ready))?;
            device
        }
        Err(err) => {
            let _ = tube.send(&FromGpu::Error(format!("{err:#}")));
            return Err(err);
        }
    };
    match device {
        None => device::serve_tube(&tube, None).map(drop),
        Some(device) => serve_device(
            tube,
            device,
            start.work_timeout_ms.map(Duration::from_millis),
        ),
    }
}

/// Finishes confinement: Landlock, the renderer (and the device, when a vhost-user socket
/// was passed), then the filter.
fn confine(tube: &Tube, start: &StartConfig) -> Result<(ReadyInfo, Option<Device>)> {
    let landlock_enforced = confine::apply_landlock(&start.landlock)?;
    let stderr = logger::KeepStderr::save();
    let ((renderer, gl_renderer), device) = match start.vhost_user_fd {
        Some(fd) => {
            let device = Device::init(start.renderer, fd, start.display, start.record_fd)?;
            let described = (
                device.description().to_owned(),
                device.gl_renderer().map(str::to_owned),
            );
            (described, Some(device))
        }
        None => (
            renderer::start(start.renderer).map_err(anyhow::Error::msg)?,
            None,
        ),
    };
    stderr
        .restore()
        .context("restoring stderr after the renderer started")?;
    let report_on = start.report_blocked_syscalls.then(|| tube.as_raw_fd());
    confine::install_filter(&start.seccomp_filter, report_on)?;
    let ready = ReadyInfo {
        // SAFETY: getpid cannot fail.
        pid_in_namespace: unsafe { libc::getpid() },
        landlock_enforced,
        renderer,
        gl_renderer,
    };
    Ok((ready, device))
}

/// Serves the vhost-user frontend on this thread and the tube on a new one (it inherits the
/// filter). Whichever ends first ends the process: the frontend disconnecting or Shutdown
/// exit 0, a broken connection or tube exits 2.
fn serve_device(tube: Tube, device: Device, work_timeout: Option<Duration>) -> Result<()> {
    if let Some(timeout) = work_timeout {
        watchdog::start(device.work_age(), timeout)?;
    }
    let handle = device.handle();
    std::thread::Builder::new()
        .name("tube".into())
        .spawn(move || exit_now(device::serve_tube(&tube, Some(&handle)).map(drop)))
        .context("starting the tube thread")?;
    exit_now(device.serve())
}

/// Ends the process at once with 0 for `Ok`, 2 for an error (printed first). The renderer is
/// not torn down: Mesa's and virglrenderer's teardown (exit handlers, joins of their threads)
/// needs calls the policy does not allow, and the kernel releases everything anyway.
fn exit_now(result: Result<()>) -> ! {
    let code = match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("ray-gpu: {err:#}");
            2
        }
    };
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process without running exit handlers; nothing is left to
    // flush (stderr is unbuffered and flushed above) or to hand back.
    unsafe { libc::_exit(code) }
}

#[cfg(feature = "probe")]
pub(crate) fn probe(request: &control::probe::ProbeRequest) -> FromGpu {
    FromGpu::Probe(probe::run(request))
}

#[cfg(not(feature = "probe"))]
pub(crate) fn probe(_request: &control::probe::ProbeRequest) -> FromGpu {
    FromGpu::Error("this ray-gpu was built without the probe feature".into())
}
