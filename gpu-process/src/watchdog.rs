//! The work watchdog: stops the GPU process when one guest command has run, or one fenced
//! command has waited for its fence, longer than the supervisor's work timeout.
//!
//! A draw that never finishes (an endless shader loop) would otherwise hold the guest's fence
//! for ever and keep the renderer busy, on llvmpipe burning the host's CPUs. Windows resets its
//! GPU when a fence takes more than 2 s (TdrDelay); the bound is set below that, so the VM
//! whose work does not finish is the one stopped, and its neighbours' GPU processes never wait
//! for it. The watchdog runs on its own thread because the serving thread may be the one stuck
//! inside the renderer.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use control::messages::WORK_TIMEOUT_EXIT_CODE;
use devices::virtio_gpu::WorkAge;

/// How often the watchdog looks.
const PERIOD: Duration = Duration::from_millis(50);

/// Starts the watchdog thread over `age` with bound `timeout`.
pub fn start(age: Arc<WorkAge>, timeout: Duration) -> Result<()> {
    std::thread::Builder::new()
        .name("work-watchdog".into())
        .spawn(move || watch(&age, timeout))
        .context("starting the work watchdog")?;
    Ok(())
}

fn watch(age: &WorkAge, timeout: Duration) -> ! {
    loop {
        // park_timeout waits on a futex with a timeout, which the filter allows (nanosleep it
        // does not).
        std::thread::park_timeout(PERIOD);
        if let Some((what, waited)) = age.oldest().filter(|&(_, waited)| waited > timeout) {
            eprintln!(
                "ray-gpu: the guest's GPU work did not finish: {what} waited {:.2} s (work \
                 timeout {:.2} s); stopping",
                waited.as_secs_f64(),
                timeout.as_secs_f64()
            );
            let _ = std::io::stderr().flush();
            // SAFETY: _exit ends the process at once without exit handlers: the renderer may be
            // stuck holding its own locks, and the kernel releases everything it holds.
            unsafe { libc::_exit(WORK_TIMEOUT_EXIT_CODE) }
        }
    }
}
