//! The display socket toward the frontend (vhost-user-gpu protocol, `VHOST_USER_GPU_SET_SOCKET`).
//!
//! The frontend (QEMU) shows what the backend sends: SCANOUT announces a scanout's size,
//! UPDATE carries raw x8r8g8b8 pixels for a rectangle, CURSOR_UPDATE a 64x64 image, CURSOR_POS
//! a position. QEMU trusts these messages (an UPDATE before any SCANOUT, or one larger than the
//! scanout, corrupts or crashes it: ../../../shared/FACTS.md), so this side never sends an
//! update for a scanout it has not announced, nor one outside the announced size, nor one whose
//! payload does not match its rectangle. rayvmm speaks to QEMU through it, from frames it
//! checked; ray-gpu uses it only when it is started without rayvmm in front of QEMU.
//!
//! Sending never blocks the caller: messages go through a queue to a writer thread that owns
//! the socket. The frontend may be blocked waiting for a reply on the vhost-user socket while
//! the guest is flushing frames, and a device thread blocked on a full display socket at that
//! moment would deadlock both. The queue holds at most [`MAX_BACKLOG_BYTES`] of pixels; past
//! that, updates are dropped and counted (the next flush repaints).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use thiserror::Error;
use vhost::vhost_user::gpu_message::{
    VhostUserGpuCursorPos, VhostUserGpuCursorUpdate, VhostUserGpuScanout, VhostUserGpuUpdate,
    VIRTIO_GPU_MAX_SCANOUTS,
};
use vhost::vhost_user::message::VhostUserU64;
use vhost::vhost_user::GpuBackend;

/// Largest pixel payload of one UPDATE message; larger rectangles go as strips of rows.
pub const MAX_UPDATE_PAYLOAD: usize = 1 << 20;
/// Most pixel bytes queued for the writer before updates are dropped.
pub const MAX_BACKLOG_BYTES: usize = 64 << 20;
/// Side of the square cursor image, in pixels.
pub const CURSOR_SIZE: u32 = 64;
/// Bytes in a cursor image.
pub const CURSOR_BYTES: usize = (CURSOR_SIZE * CURSOR_SIZE * 4) as usize;

/// Why a display message was not sent.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DisplayError {
    #[error("scanout {0} does not exist")]
    NoSuchScanout(u32),
    #[error("scanout {0} has not been announced with a size")]
    ScanoutDisabled(u32),
    #[error("rectangle {x},{y} {width}x{height} lies outside scanout {scanout_id}")]
    OutOfBounds {
        scanout_id: u32,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
    #[error("{got} bytes of pixels given for a rectangle that needs {expected}")]
    PixelCount { got: usize, expected: usize },
    #[error("the display backlog is full; update dropped")]
    Backlog,
    #[error("the display socket is closed")]
    Closed,
    #[error("the frontend did not answer in time")]
    NoAnswer,
}

/// A display mode the frontend prefers (from GET_DISPLAY_INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DisplayMode {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub enabled: bool,
}

enum Command {
    Scanout(VhostUserGpuScanout),
    Update {
        header: VhostUserGpuUpdate,
        pixels: Vec<u8>,
    },
    CursorUpdate(VhostUserGpuCursorUpdate, Box<[u8; CURSOR_BYTES]>),
    CursorPos(VhostUserGpuCursorPos),
    CursorHide(VhostUserGpuCursorPos),
    DisplayInfo(Sender<Vec<DisplayMode>>),
}

#[derive(Default)]
struct Shared {
    queued_bytes: AtomicUsize,
    dropped_updates: AtomicU64,
    /// Sizes announced with SCANOUT; `None` while a scanout is disabled.
    scanouts: Mutex<[Option<(u32, u32)>; VIRTIO_GPU_MAX_SCANOUTS]>,
}

/// Sends display messages to the frontend through a writer thread. Cheap to clone.
#[derive(Clone)]
pub struct DisplaySocket {
    commands: Sender<Command>,
    shared: Arc<Shared>,
}

impl DisplaySocket {
    /// Starts the writer thread on `backend`, which first negotiates the display protocol's
    /// features (none are used: pixels go in UPDATE messages, no dma-bufs, no EDID from the
    /// frontend).
    pub fn start(backend: GpuBackend) -> std::io::Result<DisplaySocket> {
        let (commands, receiver) = channel();
        let shared = Arc::new(Shared::default());
        let writer_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("vu-gpu-display".into())
            .spawn(move || write_loop(&backend, &receiver, &writer_shared))?;
        Ok(DisplaySocket { commands, shared })
    }

    /// [`DisplaySocket::start`] on a connected socket (the frontend's end of
    /// VHOST_USER_GPU_SET_SOCKET).
    pub fn from_stream(socket: std::os::unix::net::UnixStream) -> std::io::Result<DisplaySocket> {
        DisplaySocket::start(GpuBackend::from_stream(socket))
    }

    /// Announces scanout `scanout_id` at `width` x `height`; zero disables it.
    pub fn scanout(&self, scanout_id: u32, width: u32, height: u32) -> Result<(), DisplayError> {
        let index = scanout_index(scanout_id)?;
        self.shared
            .scanouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())[index] =
            (width != 0 && height != 0).then_some((width, height));
        self.send(Command::Scanout(VhostUserGpuScanout {
            scanout_id,
            width,
            height,
        }))
    }

    /// Sends the pixels of a rectangle of scanout `scanout_id`: `width * height` x8r8g8b8
    /// pixels, row after row with no padding.
    pub fn update(
        &self,
        scanout_id: u32,
        rect: (u32, u32, u32, u32),
        pixels: &[u8],
    ) -> Result<(), DisplayError> {
        self.update_owned(scanout_id, rect, pixels.to_vec())
    }

    /// [`DisplaySocket::update`] for pixels the caller no longer needs: they go to the writer
    /// without a copy.
    pub fn update_owned(
        &self,
        scanout_id: u32,
        (x, y, width, height): (u32, u32, u32, u32),
        pixels: Vec<u8>,
    ) -> Result<(), DisplayError> {
        let index = scanout_index(scanout_id)?;
        let (scanout_width, scanout_height) = self
            .shared
            .scanouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())[index]
            .ok_or(DisplayError::ScanoutDisabled(scanout_id))?;
        let inside = |start: u32, len: u32, limit: u32| {
            start.checked_add(len).is_some_and(|end| end <= limit)
        };
        if !inside(x, width, scanout_width) || !inside(y, height, scanout_height) {
            return Err(DisplayError::OutOfBounds {
                scanout_id,
                x,
                y,
                width,
                height,
            });
        }
        let expected = width as usize * height as usize * 4;
        if pixels.len() != expected {
            return Err(DisplayError::PixelCount {
                got: pixels.len(),
                expected,
            });
        }
        if expected == 0 {
            return Ok(());
        }
        let queued = self
            .shared
            .queued_bytes
            .fetch_add(expected, Ordering::AcqRel);
        if queued + expected > MAX_BACKLOG_BYTES {
            self.shared
                .queued_bytes
                .fetch_sub(expected, Ordering::AcqRel);
            self.shared.dropped_updates.fetch_add(1, Ordering::Relaxed);
            return Err(DisplayError::Backlog);
        }
        self.send(Command::Update {
            header: VhostUserGpuUpdate {
                scanout_id,
                x,
                y,
                width,
                height,
            },
            pixels,
        })
    }

    /// Sets the cursor image (64x64 x8r8g8b8, with alpha in the top byte) and its position.
    pub fn cursor_update(
        &self,
        scanout_id: u32,
        (x, y): (u32, u32),
        (hot_x, hot_y): (u32, u32),
        image: &[u8],
    ) -> Result<(), DisplayError> {
        scanout_index(scanout_id)?;
        let image: Box<[u8; CURSOR_BYTES]> =
            image
                .to_vec()
                .try_into()
                .map_err(|v: Vec<u8>| DisplayError::PixelCount {
                    got: v.len(),
                    expected: CURSOR_BYTES,
                })?;
        self.send(Command::CursorUpdate(
            VhostUserGpuCursorUpdate {
                pos: VhostUserGpuCursorPos { scanout_id, x, y },
                hot_x,
                hot_y,
            },
            image,
        ))
    }

    /// Moves the cursor; `visible == false` hides it.
    pub fn cursor_move(
        &self,
        scanout_id: u32,
        (x, y): (u32, u32),
        visible: bool,
    ) -> Result<(), DisplayError> {
        scanout_index(scanout_id)?;
        let pos = VhostUserGpuCursorPos { scanout_id, x, y };
        self.send(if visible {
            Command::CursorPos(pos)
        } else {
            Command::CursorHide(pos)
        })
    }

    /// Asks the frontend for its preferred display modes, waiting at most `timeout`.
    pub fn display_info(&self, timeout: Duration) -> Result<Vec<DisplayMode>, DisplayError> {
        let (reply, answer) = channel();
        self.send(Command::DisplayInfo(reply))?;
        answer.recv_timeout(timeout).map_err(|e| match e {
            std::sync::mpsc::RecvTimeoutError::Timeout => DisplayError::NoAnswer,
            std::sync::mpsc::RecvTimeoutError::Disconnected => DisplayError::Closed,
        })
    }

    /// Whether pixels of an earlier update are still waiting to be written: a sender that
    /// keeps at most one frame in flight waits for this to turn false, so the frontend always
    /// gets the newest content rather than a backlog.
    pub fn update_in_flight(&self) -> bool {
        self.shared.queued_bytes.load(Ordering::Acquire) > 0
    }

    /// Updates dropped because the backlog was full.
    pub fn dropped_updates(&self) -> u64 {
        self.shared.dropped_updates.load(Ordering::Relaxed)
    }

    fn send(&self, command: Command) -> Result<(), DisplayError> {
        self.commands
            .send(command)
            .map_err(|_| DisplayError::Closed)
    }
}

fn scanout_index(scanout_id: u32) -> Result<usize, DisplayError> {
    let index = scanout_id as usize;
    if index < VIRTIO_GPU_MAX_SCANOUTS {
        Ok(index)
    } else {
        Err(DisplayError::NoSuchScanout(scanout_id))
    }
}

/// The writer thread: negotiates, then sends queued messages until the socket breaks or every
/// [`DisplaySocket`] is dropped.
fn write_loop(backend: &GpuBackend, commands: &Receiver<Command>, shared: &Shared) {
    if let Err(e) = backend
        .get_protocol_features()
        .and_then(|_| backend.set_protocol_features(&VhostUserU64::new(0)))
    {
        log::warn!("vhost-user-gpu display socket: feature negotiation failed: {e}");
        return;
    }
    for command in commands {
        let sent = match command {
            Command::Scanout(scanout) => backend.set_scanout(&scanout),
            Command::Update { header, pixels } => {
                shared
                    .queued_bytes
                    .fetch_sub(pixels.len(), Ordering::AcqRel);
                send_update(backend, header, &pixels)
            }
            Command::CursorUpdate(update, image) => backend.cursor_update(&update, &image),
            Command::CursorPos(pos) => backend.cursor_pos(&pos),
            Command::CursorHide(pos) => backend.cursor_pos_hide(&pos),
            Command::DisplayInfo(reply) => backend.get_display_info().map(|info| {
                let modes = info
                    .pmodes
                    .iter()
                    .map(|m| DisplayMode {
                        x: m.r.x,
                        y: m.r.y,
                        width: m.r.width,
                        height: m.r.height,
                        enabled: m.enabled != 0,
                    })
                    .collect();
                // The asker may have given up waiting; that is its choice.
                let _ = reply.send(modes);
            }),
        };
        if let Err(e) = sent {
            log::warn!("vhost-user-gpu display socket closed: {e}");
            return;
        }
    }
}

/// Sends one rectangle as UPDATE messages of at most [`MAX_UPDATE_PAYLOAD`] bytes each, cut
/// into strips of whole rows.
fn send_update(
    backend: &GpuBackend,
    header: VhostUserGpuUpdate,
    pixels: &[u8],
) -> std::io::Result<()> {
    let row_bytes = header.width as usize * 4;
    let rows_per_strip = (MAX_UPDATE_PAYLOAD / row_bytes).max(1);
    for (strip, chunk) in pixels.chunks(rows_per_strip * row_bytes).enumerate() {
        let strip_header = VhostUserGpuUpdate {
            y: header.y + (strip * rows_per_strip) as u32,
            height: (chunk.len() / row_bytes) as u32,
            ..header
        };
        backend.update_scanout(&strip_header, chunk)?;
    }
    Ok(())
}
