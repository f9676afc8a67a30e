//! ray-gpu: the jailed GPU process.
//!
//! Started by rayvmm inside its jail (namespaces, empty root, no privileges) with the control
//! tube at descriptor 3. It finishes its own confinement in DESIGN.md's order (Landlock, the
//! renderer, the seccomp filter) before it reads anything the guest controls, says Ready, and
//! serves the tube.

#[cfg(all(feature = "probe", not(debug_assertions)))]
compile_error!("the `probe` feature is for debug builds of the escape tests only; never ship it");

mod confine;
#[cfg(feature = "probe")]
mod probe;
mod renderer;
mod sigsys;
mod view;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use devices::control::{FromGpu, ReadyInfo, StartConfig, ToGpu};
use devices::tube::{Tube, TubeError};

/// The descriptor rayvmm installs the control tube at.
const TUBE_FD: i32 = 3;

fn main() {
    if let Err(err) = run() {
        eprintln!("ray-gpu: {err:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    // SAFETY: rayvmm installs the tube at descriptor 3 and passes nothing else there; if it is
    // not open or not a tube, Tube::from_fd refuses it.
    let tube = Tube::from_fd(unsafe { OwnedFd::from_raw_fd(TUBE_FD) })
        .context("descriptor 3 is not the control tube (ray-gpu runs only under rayvmm)")?;
    let start = match tube.recv::<ToGpu>().context("reading the start message")? {
        ToGpu::Start(start) => start,
        other => bail!("expected Start as the first message, got {other:?}"),
    };
    match confine(&tube, &start) {
        Ok(ready) => tube.send(&FromGpu::Ready(ready))?,
        Err(err) => {
            let _ = tube.send(&FromGpu::Error(format!("{err:#}")));
            return Err(err);
        }
    }
    serve(&tube)
}

/// Finishes confinement: Landlock, the renderer, then the filter.
fn confine(tube: &Tube, start: &StartConfig) -> Result<ReadyInfo> {
    let landlock_enforced = confine::apply_landlock(&start.landlock)?;
    let renderer = renderer::start(start.renderer).map_err(anyhow::Error::msg)?;
    let report_on = start.report_blocked_syscalls.then(|| tube.as_raw_fd());
    confine::install_filter(&start.seccomp_filter, report_on)?;
    Ok(ReadyInfo {
        // SAFETY: getpid cannot fail.
        pid_in_namespace: unsafe { libc::getpid() },
        landlock_enforced,
        renderer,
    })
}

/// Answers requests until Shutdown or until the supervisor goes away.
fn serve(tube: &Tube) -> Result<()> {
    loop {
        let request = match tube.recv::<ToGpu>() {
            Ok(request) => request,
            Err(TubeError::Disconnected) => return Ok(()),
            Err(err) => {
                tube.send(&FromGpu::Error(format!("bad request: {err}")))?;
                continue;
            }
        };
        let answer = match request {
            ToGpu::Report => FromGpu::Report(view::collect()),
            ToGpu::Probe(request) => probe(&request),
            ToGpu::Shutdown => return Ok(()),
            ToGpu::Start(_) => FromGpu::Error("already started".into()),
        };
        tube.send(&answer)?;
    }
}

#[cfg(feature = "probe")]
fn probe(request: &devices::probe_protocol::ProbeRequest) -> FromGpu {
    FromGpu::Probe(probe::run(request))
}

#[cfg(not(feature = "probe"))]
fn probe(_request: &devices::probe_protocol::ProbeRequest) -> FromGpu {
    FromGpu::Error("this ray-gpu was built without the probe feature".into())
}
