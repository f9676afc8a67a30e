//! Fault injection for the fault tests (probe builds only): `RAYOS_GPU_FAULT=segv|abort|hang`
//! makes the thread that serves the device crash, abort or spin for ever 5 seconds after the
//! scanout first shows pixels, that is while the guest renders.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long after the first frame with pixels the fault strikes.
const DELAY: Duration = Duration::from_secs(5);

/// A fault to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Segv,
    Abort,
    Hang,
}

fn configured() -> Option<Fault> {
    static FAULT: OnceLock<Option<Fault>> = OnceLock::new();
    *FAULT.get_or_init(|| match std::env::var("RAYOS_GPU_FAULT").ok()?.as_str() {
        "segv" => Some(Fault::Segv),
        "abort" => Some(Fault::Abort),
        "hang" => Some(Fault::Hang),
        _ => None,
    })
}

/// Called on the serving thread each time a frame with pixels is handed out.
pub fn frame_shown() {
    static FIRST: OnceLock<Instant> = OnceLock::new();
    let Some(fault) = configured() else {
        return;
    };
    if FIRST.get_or_init(Instant::now).elapsed() < DELAY {
        return;
    }
    match fault {
        // SAFETY: not sound, on purpose: the write faults, which is the fault being tested.
        // Only probe builds (debug, for the fault tests; release builds refuse the feature)
        // compile this.
        Fault::Segv => unsafe { std::ptr::null_mut::<u8>().write_volatile(1) },
        Fault::Abort => std::process::abort(),
        Fault::Hang => loop {
            std::hint::spin_loop();
        },
    }
}
