//! One frame path: a pump takes frames from the jailed GPU process on demand (at QEMU's
//! display refresh, about 33 per second, one request at a time, only what changed) and feeds
//! every consumer from the copy it keeps: QEMU's display (SCANOUT and UPDATE, from geometry
//! checked here, so no byte the GPU process writes reaches QEMU's display code), VNC viewers,
//! and screenshots. It is also the liveness watch of the GPU process.

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use control::messages::{CursorReply, DeviceProgress, FrameRect};
use control::tube::TubeError;
use qemu_display::DisplaySocket;

use crate::gpu_process::{FrameBuffer, FrameUpdate, GpuError, GpuProcess};

use super::frame::Frame;

/// How long a closed control tube may go unexplained by the process's exit.
const TUBE_CLOSED_GRACE: Duration = Duration::from_secs(1);

/// Shortest time between two frame requests: QEMU's displays refresh every 30 ms
/// (`GUI_REFRESH_INTERVAL_DEFAULT`), so a frame more often than that is never shown, and
/// every frame costs a readback in the GPU process and a composite on QEMU's main thread.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(30);

/// Shortest time between two frame requests when a consumer (a VNC viewer) asks for a newer
/// frame before the next refresh: at most 60 frames a second are read back.
pub const MIN_FRAME_INTERVAL: Duration = Duration::from_micros(16_667);

/// `RAYOS_FRAME_INTERVAL_MS`, for measuring what the display path costs a guest (10 ms to
/// 10 s); [`FRAME_INTERVAL`] otherwise.
fn frame_interval() -> Duration {
    std::env::var("RAYOS_FRAME_INTERVAL_MS")
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| (10..=10_000).contains(ms))
        .map_or(FRAME_INTERVAL, Duration::from_millis)
}

/// The scanout as rayvmm last saw it: B, G, R, X pixels, rows of `width * 4` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanoutCopy {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
    /// The GPU process's frame generation these pixels show: consumers compare it to see
    /// whether the frame changed since they last took it.
    pub generation: u64,
}

impl ScanoutCopy {
    fn black(width: u32, height: u32) -> ScanoutCopy {
        ScanoutCopy {
            width,
            height,
            pixels: vec![0; width as usize * height as usize * 4],
            generation: 0,
        }
    }

    /// Writes `pixels` (rows of `rect.width * 4` bytes) at `rect`, which the caller checked
    /// lies inside the copy.
    fn patch(&mut self, rect: FrameRect, pixels: &[u8]) {
        let row = rect.width as usize * 4;
        let stride = self.width as usize * 4;
        for (i, src) in pixels.chunks_exact(row).enumerate() {
            let at = (rect.y as usize + i) * stride + rect.x as usize * 4;
            self.pixels[at..at + row].copy_from_slice(src);
        }
    }

    /// The rows of `rect`, which the caller checked lies inside the copy.
    fn rect_pixels(&self, rect: FrameRect) -> Vec<u8> {
        let row = rect.width as usize * 4;
        let stride = self.width as usize * 4;
        let mut pixels = Vec::with_capacity(row * rect.height as usize);
        for y in rect.y..rect.y + rect.height {
            let at = y as usize * stride + rect.x as usize * 4;
            pixels.extend_from_slice(&self.pixels[at..at + row]);
        }
        pixels
    }

    /// As an RGB image.
    pub fn to_frame(&self) -> Result<Frame, String> {
        Frame::from_xrgb8888(
            self.width,
            self.height,
            self.width as usize * 4,
            &self.pixels,
        )
        .map_err(|e| e.to_string())
    }
}

/// What the pump shares with the other threads.
#[derive(Default)]
struct Shared {
    latest: Mutex<Option<Arc<ScanoutCopy>>>,
    display: Mutex<Option<PendingDisplay>>,
    stop: AtomicBool,
    /// A consumer has the latest frame and wants a newer one before the next refresh.
    wanted: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    /// Asks the pump for a newer frame than the latest, now rather than at the next refresh.
    fn want(&self) {
        *lock(&self.wanted) = true;
        self.wake.notify_one();
    }

    /// Waits until the next frame request is due: `interval` after `started`, or earlier
    /// when a consumer wants a newer frame, but never less than [`MIN_FRAME_INTERVAL`].
    fn wait_for_next_request(&self, started: Instant, interval: Duration) {
        std::thread::sleep(MIN_FRAME_INTERVAL.saturating_sub(started.elapsed()));
        let deadline = started + interval;
        let mut wanted = lock(&self.wanted);
        while !*wanted && !self.stop.load(Ordering::Acquire) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            wanted = self
                .wake
                .wait_timeout(wanted, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        *wanted = false;
    }
}

/// QEMU's display socket, until the pump takes it over.
struct PendingDisplay(UnixStream);

/// The frame pump, running until dropped.
pub struct FramePump {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl FramePump {
    /// Starts pumping frames of `process`, into a first frame buffer of `initial_bytes`.
    ///
    /// The pump is also the liveness watch: every request is answered by the thread that
    /// serves the device, so an answer that does not come within `liveness`, or fenced
    /// commands pending with none answered for that long, means the process stopped making
    /// progress; `stalled` hears what stalled, once, and the pump ends.
    pub fn start(
        process: Arc<Mutex<GpuProcess>>,
        initial_bytes: u64,
        liveness: Duration,
        report: impl Fn(String) + Send + 'static,
        stalled: impl Fn(String) + Send + 'static,
    ) -> std::io::Result<FramePump> {
        let shared = Arc::new(Shared::default());
        let pumped = Arc::clone(&shared);
        let watch = Watch {
            bound: liveness,
            stalled: Box::new(stalled),
        };
        let thread = std::thread::Builder::new()
            .name("gpu-frames".into())
            .spawn(move || pump(&process, &pumped, initial_bytes, &report, &watch))?;
        Ok(FramePump {
            shared,
            thread: Some(thread),
        })
    }

    /// From now on the frames also go to QEMU's display, on `socket` (the one QEMU passed with
    /// VHOST_USER_GPU_SET_SOCKET, kept by rayvmm's relay).
    pub fn attach_display(&self, socket: UnixStream) {
        *lock(&self.shared.display) = Some(PendingDisplay(socket));
    }

    /// The newest frame, if the scanout has shown one.
    pub fn latest(&self) -> Option<Arc<ScanoutCopy>> {
        lock(&self.shared.latest).clone()
    }

    /// A function other threads call for the newest frame.
    pub fn source(&self) -> impl Fn() -> Option<Arc<ScanoutCopy>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        move || lock(&shared.latest).clone()
    }

    /// A function a consumer that has the newest frame calls to have the next one taken
    /// now instead of at the next display refresh (a VNC viewer waiting for a frame).
    pub fn demand(&self) -> impl Fn() + Send + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.want()
    }
}

impl Drop for FramePump {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.want();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The pump's own state.
struct Pump {
    buffer: Option<FrameBuffer>,
    since: u64,
    /// Shared with consumers; patched in place unless one still holds the previous frame.
    copy: Option<Arc<ScanoutCopy>>,
    display: Option<DisplaySocket>,
    /// The display was attached and has not been shown the current copy yet.
    announce: bool,
    /// The part of the copy changed since the last update QEMU's display was sent, held
    /// while an update was in flight, and whether the scanout's size changed meanwhile.
    display_held: Option<(FrameRect, bool)>,
    failures: u32,
    /// The cursor generation rayvmm last got.
    cursor_since: u64,
}

/// The liveness bound and who hears of a stall.
struct Watch {
    bound: Duration,
    stalled: Box<dyn Fn(String) + Send>,
}

/// Whether fenced commands wait while nothing is answered.
#[derive(Default)]
struct ProgressWatch {
    last: DeviceProgress,
    since: Option<Instant>,
}

impl ProgressWatch {
    /// Takes the device's progress; says what stalled when fenced commands have been pending
    /// with none answered for `bound`.
    fn check(&mut self, now: DeviceProgress, bound: Duration) -> Option<String> {
        let moved = now.commands_answered != self.last.commands_answered;
        if moved || now.fences_pending == 0 || self.since.is_none() {
            self.last = now;
            self.since = Some(Instant::now());
            return None;
        }
        let waited = self.since?.elapsed();
        (waited >= bound).then(|| {
            format!(
                "{} fenced command(s) pending and none answered for {:.1} s (the renderer stalled)",
                now.fences_pending,
                waited.as_secs_f64()
            )
        })
    }
}

fn pump(
    process: &Mutex<GpuProcess>,
    shared: &Shared,
    initial_bytes: u64,
    report: &dyn Fn(String),
    watch: &Watch,
) {
    let mut progress = ProgressWatch::default();
    let interval = frame_interval();
    let mut state = Pump {
        buffer: None,
        since: 0,
        copy: None,
        display: None,
        announce: false,
        display_held: None,
        failures: 0,
        cursor_since: 0,
    };
    let mut want_bytes = initial_bytes;
    while !shared.stop.load(Ordering::Acquire) {
        let started = Instant::now();
        if let Some(PendingDisplay(socket)) = lock(&shared.display).take() {
            match DisplaySocket::from_stream(socket) {
                Ok(display) => {
                    state.display = Some(display);
                    state.announce = true;
                    // The new display has no cursor yet: the next answer brings the image.
                    state.cursor_since = 0;
                }
                Err(e) => report(format!("QEMU's display socket: {e}")),
            }
        }
        state.show_pending();
        // Frames are taken at the pump's pace whatever QEMU does: VNC viewers and screenshots
        // read the copy. At most one update is in flight toward QEMU; what changes while one
        // is goes in the next (newest content wins).
        state.send_held_display_update();
        if state.buffer.is_none() {
            match FrameBuffer::new(want_bytes) {
                Ok(buffer) => state.buffer = Some(buffer),
                Err(e) => {
                    report(format!("frames: {e}"));
                    return;
                }
            }
        }
        let buffer = state.buffer.as_mut().expect("made above");
        let asked = Instant::now();
        let since = (state.since, state.cursor_since);
        let update = lock(process).frame(buffer, since, watch.bound);
        match update {
            Ok((FrameUpdate::NeedsBuffer { bytes }, cursor, _)) => {
                state.cursor(cursor);
                want_bytes = bytes;
                state.buffer = None;
            }
            Ok((update, cursor, device)) => {
                if let Some(what) = progress.check(device, watch.bound) {
                    (watch.stalled)(what);
                    return;
                }
                state.failures = 0;
                state.cursor(cursor);
                // The pump holds the only reference unless a consumer still reads the
                // previous frame, so patching it in place copies nothing.
                state.copy = lock(&shared.latest).take();
                state.apply(update);
                *lock(&shared.latest) = state.copy.clone();
            }
            Err(e @ (GpuError::Frame(_) | GpuError::Unexpected(..))) => {
                // A claim that breaks the frame protocol: the process may be compromised.
                // Its death ends the VM, reported by the supervisor with this reason.
                report(format!("{e}; stopping the GPU process"));
                let _ = lock(process).kill();
                return;
            }
            // The tube closes when the process ends, and its monitor reports how within
            // a tenth of a second. A process that closed its tube and lives on would
            // escape this watch: after a grace second it counts as stalled (if it did
            // end, the supervisor has already stopped listening).
            Err(GpuError::Tube(TubeError::Disconnected)) => {
                std::thread::sleep(TUBE_CLOSED_GRACE);
                (watch.stalled)("it closed its control tube".to_string());
                return;
            }
            Err(GpuError::Tube(TubeError::Timeout(_))) => {
                (watch.stalled)(format!(
                    "the thread that serves the device did not answer a frame request \
                     within {:.1} s",
                    asked.elapsed().as_secs_f64()
                ));
                return;
            }
            Err(e) => {
                state.failures += 1;
                // One line, not sixty a second: the process's end is reported elsewhere.
                if state.failures == 1 {
                    report(format!("frames from the GPU process: {e}"));
                }
            }
        }
        shared.wait_for_next_request(started, interval);
    }
}

impl Pump {
    /// Applies a checked update to the copy and the display.
    fn apply(&mut self, update: FrameUpdate) {
        match update {
            FrameUpdate::Unchanged | FrameUpdate::NeedsBuffer { .. } => {}
            FrameUpdate::Disabled { generation } => {
                self.since = generation;
                self.copy = None;
                self.display_held = None;
                if let Some(display) = &self.display {
                    log_display(display.scanout(0, 0, 0));
                }
            }
            FrameUpdate::Pixels {
                generation,
                width,
                height,
                rect,
                pixels,
            } => {
                self.since = generation;
                let resized = self
                    .copy
                    .as_ref()
                    .is_none_or(|c| (c.width, c.height) != (width, height));
                if resized {
                    self.copy = Some(Arc::new(ScanoutCopy::black(width, height)));
                }
                let copy = self.copy.as_mut().expect("made above");
                let copy = Arc::make_mut(copy);
                copy.patch(rect, &pixels);
                copy.generation = generation;
                let Some(display) = &self.display else {
                    return;
                };
                let held = self.display_held.take();
                if display.update_in_flight() || held.is_some() {
                    let (before, was_resized) = held.unwrap_or((rect, false));
                    let rect = if resized {
                        whole(width, height)
                    } else {
                        union(before, rect)
                    };
                    self.display_held = Some((rect, was_resized || resized));
                    self.send_held_display_update();
                    return;
                }
                if resized {
                    log_display(display.scanout(0, width, height));
                }
                let r = (rect.x, rect.y, rect.width, rect.height);
                log_display(display.update_owned(0, r, pixels));
            }
        }
    }

    /// Shows QEMU's display a checked cursor change.
    fn cursor(&mut self, cursor: CursorReply) {
        let display = self.display.as_ref();
        match cursor {
            CursorReply::Unchanged => {}
            CursorReply::Hidden { generation } => {
                self.cursor_since = generation;
                if let Some(display) = display {
                    log_display(display.cursor_move(0, (0, 0), false));
                }
            }
            CursorReply::Moved { generation, x, y } => {
                self.cursor_since = generation;
                if let Some(display) = display {
                    log_display(display.cursor_move(0, (x, y), true));
                }
            }
            CursorReply::Image {
                generation,
                x,
                y,
                hot_x,
                hot_y,
                pixels,
            } => {
                self.cursor_since = generation;
                if let Some(display) = display {
                    log_display(display.cursor_update(0, (x, y), (hot_x, hot_y), &pixels));
                }
            }
        }
    }

    /// Sends QEMU's display what was held for it while an update was in flight, once none
    /// is, from the copy.
    fn send_held_display_update(&mut self) {
        let (Some(display), Some(copy)) = (&self.display, &self.copy) else {
            return;
        };
        if display.update_in_flight() {
            return;
        }
        let Some((rect, resized)) = self.display_held.take() else {
            return;
        };
        if resized {
            log_display(display.scanout(0, copy.width, copy.height));
        }
        let r = (rect.x, rect.y, rect.width, rect.height);
        log_display(display.update_owned(0, r, copy.rect_pixels(rect)));
    }

    /// Shows a newly attached display the whole current copy.
    fn show_pending(&mut self) {
        if !self.announce {
            return;
        }
        self.announce = false;
        let (Some(display), Some(copy)) = (&self.display, &self.copy) else {
            return;
        };
        log_display(display.scanout(0, copy.width, copy.height));
        let whole = (0, 0, copy.width, copy.height);
        log_display(display.update(0, whole, &copy.pixels));
    }
}

/// The whole of a `width` x `height` frame.
fn whole(width: u32, height: u32) -> FrameRect {
    FrameRect {
        x: 0,
        y: 0,
        width,
        height,
    }
}

/// The smallest rectangle holding `a` and `b`.
fn union(a: FrameRect, b: FrameRect) -> FrameRect {
    let x = a.x.min(b.x);
    let y = a.y.min(b.y);
    FrameRect {
        x,
        y,
        width: (a.x + a.width).max(b.x + b.width) - x,
        height: (a.y + a.height).max(b.y + b.height) - y,
    }
}

/// A display message that could not go: QEMU went away (its end is reported elsewhere) or
/// the backlog is full (the next frame repaints).
fn log_display(result: Result<(), qemu_display::DisplayError>) {
    match result {
        // QEMU closes it on its way out; its end is reported by the engine's monitor.
        Ok(()) | Err(qemu_display::DisplayError::Closed) => {}
        Err(e) => log_once(&e.to_string()),
    }
}

fn log_once(message: &str) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        eprintln!("rayvmm: QEMU's display: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_demand_ends_the_wait_for_the_next_request_early() {
        let shared = Arc::new(Shared::default());
        let asker = Arc::clone(&shared);
        let started = Instant::now();
        let demand = std::thread::spawn(move || asker.want());

        shared.wait_for_next_request(started, Duration::from_secs(600));

        demand.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(300));
    }

    #[test]
    fn rect_pixels_reads_the_rectangle_rows() {
        let mut copy = ScanoutCopy::black(3, 2);
        copy.pixels = (0..24).collect();
        let rect = FrameRect {
            x: 1,
            y: 0,
            width: 2,
            height: 2,
        };

        let pixels = copy.rect_pixels(rect);

        assert_eq!(
            pixels,
            [4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23]
        );
    }

    #[test]
    fn union_holds_both_rectangles() {
        let a = FrameRect {
            x: 1,
            y: 5,
            width: 2,
            height: 2,
        };
        let b = FrameRect {
            x: 4,
            y: 1,
            width: 3,
            height: 1,
        };

        let both = union(a, b);

        assert_eq!(
            both,
            FrameRect {
                x: 1,
                y: 1,
                width: 6,
                height: 6
            }
        );
    }

    #[test]
    fn patch_writes_the_rectangle_rows_in_place() {
        let mut copy = ScanoutCopy::black(3, 2);
        let rect = FrameRect {
            x: 1,
            y: 1,
            width: 2,
            height: 1,
        };

        copy.patch(rect, &[1, 1, 1, 1, 2, 2, 2, 2]);

        let mut expected = vec![0u8; 24];
        expected[16..24].copy_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(copy.pixels, expected);
    }
}
