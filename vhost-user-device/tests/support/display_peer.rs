//! The frontend's end of the vhost-user-gpu display socket, as QEMU plays it: answers
//! GET_PROTOCOL_FEATURES and GET_DISPLAY_INFO, records everything else, and paints UPDATE
//! pixels into a framebuffer per scanout so tests can compare what reached the display.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const GET_PROTOCOL_FEATURES: u32 = 1;
pub const SET_PROTOCOL_FEATURES: u32 = 2;
pub const GET_DISPLAY_INFO: u32 = 3;
pub const CURSOR_POS: u32 = 4;
pub const CURSOR_POS_HIDE: u32 = 5;
pub const CURSOR_UPDATE: u32 = 6;
pub const SCANOUT: u32 = 7;
pub const UPDATE: u32 = 8;
const REPLY: u32 = 0x4;

/// A message the backend sent on the display socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisplayMessage {
    GetProtocolFeatures,
    SetProtocolFeatures(u64),
    GetDisplayInfo,
    CursorPos {
        scanout: u32,
        x: u32,
        y: u32,
    },
    CursorHide {
        scanout: u32,
    },
    CursorUpdate {
        scanout: u32,
        x: u32,
        y: u32,
        hot_x: u32,
        hot_y: u32,
        image: Vec<u8>,
    },
    Scanout {
        scanout: u32,
        width: u32,
        height: u32,
    },
    Update {
        scanout: u32,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        bytes: usize,
    },
    Other(u32),
}

/// What the display has seen.
#[derive(Default)]
pub struct DisplayState {
    pub messages: Vec<DisplayMessage>,
    /// Per scanout: width, height, x8r8g8b8 pixels.
    pub framebuffers: HashMap<u32, (u32, u32, Vec<u8>)>,
    /// Modes answered to GET_DISPLAY_INFO: (width, height) per enabled scanout.
    pub modes: Vec<(u32, u32)>,
    pub closed: bool,
}

/// The display socket's frontend end, served on a thread.
#[derive(Clone)]
pub struct DisplayPeer {
    state: Arc<(Mutex<DisplayState>, Condvar)>,
}

impl DisplayPeer {
    /// Serves `socket`, answering GET_DISPLAY_INFO with `modes`.
    pub fn start(socket: UnixStream, modes: Vec<(u32, u32)>) -> DisplayPeer {
        let state = Arc::new((
            Mutex::new(DisplayState {
                modes,
                ..DisplayState::default()
            }),
            Condvar::new(),
        ));
        let peer = DisplayPeer {
            state: Arc::clone(&state),
        };
        thread::spawn(move || serve(socket, &state));
        peer
    }

    /// Changes the modes answered from now on (a display resize at the frontend).
    pub fn set_modes(&self, modes: Vec<(u32, u32)>) {
        self.state.0.lock().unwrap().modes = modes;
    }

    /// Waits until `done` holds for the state, or panics after `timeout`.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&DisplayState) -> bool) {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().unwrap();
        while !done(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "display state not reached in {timeout:?}");
            state = changed.wait_timeout(state, left).unwrap().0;
        }
    }

    /// Runs `f` on the current state.
    pub fn with<R>(&self, f: impl FnOnce(&DisplayState) -> R) -> R {
        f(&self.state.0.lock().unwrap())
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_ne_bytes(bytes[offset..offset + 4].try_into().unwrap())
}

fn reply(socket: &mut UnixStream, request: u32, payload: &[u8]) {
    let mut message = Vec::with_capacity(12 + payload.len());
    message.extend_from_slice(&request.to_ne_bytes());
    message.extend_from_slice(&REPLY.to_ne_bytes());
    message.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
    message.extend_from_slice(payload);
    socket.write_all(&message).expect("display reply");
}

/// A `virtio_gpu_resp_display_info`: 24-byte header then 16 `{rect, enabled, flags}`.
fn display_info(modes: &[(u32, u32)]) -> Vec<u8> {
    let mut payload = vec![0u8; 24];
    payload[0..4].copy_from_slice(&0x1101u32.to_le_bytes());
    for i in 0..16 {
        let (width, height) = modes.get(i).copied().unwrap_or((0, 0));
        for v in [0, 0, width, height, u32::from(width != 0), 0] {
            payload.extend_from_slice(&v.to_ne_bytes());
        }
    }
    payload
}

fn serve(mut socket: UnixStream, state: &(Mutex<DisplayState>, Condvar)) {
    loop {
        let mut header = [0u8; 12];
        if socket.read_exact(&mut header).is_err() {
            break;
        }
        let request = u32_at(&header, 0);
        let mut payload = vec![0u8; u32_at(&header, 8) as usize];
        if socket.read_exact(&mut payload).is_err() {
            break;
        }
        let message = match request {
            GET_PROTOCOL_FEATURES => {
                reply(&mut socket, request, &0u64.to_ne_bytes());
                DisplayMessage::GetProtocolFeatures
            }
            SET_PROTOCOL_FEATURES => DisplayMessage::SetProtocolFeatures(u64::from_ne_bytes(
                payload[..8].try_into().unwrap(),
            )),
            GET_DISPLAY_INFO => {
                let modes = state.0.lock().unwrap().modes.clone();
                reply(&mut socket, request, &display_info(&modes));
                DisplayMessage::GetDisplayInfo
            }
            CURSOR_POS => DisplayMessage::CursorPos {
                scanout: u32_at(&payload, 0),
                x: u32_at(&payload, 4),
                y: u32_at(&payload, 8),
            },
            CURSOR_POS_HIDE => DisplayMessage::CursorHide {
                scanout: u32_at(&payload, 0),
            },
            CURSOR_UPDATE => DisplayMessage::CursorUpdate {
                scanout: u32_at(&payload, 0),
                x: u32_at(&payload, 4),
                y: u32_at(&payload, 8),
                hot_x: u32_at(&payload, 12),
                hot_y: u32_at(&payload, 16),
                image: payload[20..].to_vec(),
            },
            SCANOUT => {
                let (scanout, width, height) = (
                    u32_at(&payload, 0),
                    u32_at(&payload, 4),
                    u32_at(&payload, 8),
                );
                state.0.lock().unwrap().framebuffers.insert(
                    scanout,
                    (width, height, vec![0; width as usize * height as usize * 4]),
                );
                DisplayMessage::Scanout {
                    scanout,
                    width,
                    height,
                }
            }
            UPDATE => {
                let (scanout, x, y, width, height) = (
                    u32_at(&payload, 0),
                    u32_at(&payload, 4),
                    u32_at(&payload, 8),
                    u32_at(&payload, 12),
                    u32_at(&payload, 16),
                );
                let pixels = &payload[20..];
                let mut guard = state.0.lock().unwrap();
                let (fb_width, _, fb) = guard
                    .framebuffers
                    .get_mut(&scanout)
                    .expect("UPDATE for a scanout never announced");
                let row = width as usize * 4;
                for r in 0..height as usize {
                    let dst = ((y as usize + r) * *fb_width as usize + x as usize) * 4;
                    fb[dst..dst + row].copy_from_slice(&pixels[r * row..(r + 1) * row]);
                }
                DisplayMessage::Update {
                    scanout,
                    x,
                    y,
                    width,
                    height,
                    bytes: pixels.len(),
                }
            }
            other => DisplayMessage::Other(other),
        };
        state.0.lock().unwrap().messages.push(message);
        state.1.notify_all();
    }
    state.0.lock().unwrap().closed = true;
    state.1.notify_all();
}
