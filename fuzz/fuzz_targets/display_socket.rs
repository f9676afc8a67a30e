//! The display path toward QEMU: arbitrary scanout, update, cursor and display-info calls on
//! a real `qemu_display::DisplaySocket` (what ray-gpu's device model drives), written by its
//! writer thread onto a socketpair whose other end plays QEMU's vhost-user-gpu display
//! socket. `DisplaySocket` must refuse what does not fit (unknown scanouts, rectangles outside
//! the announced size, wrong pixel counts) and never panic; what QEMU receives must be well
//! formed: every UPDATE inside the last SCANOUT size of its scanout, its payload exactly its
//! rectangle's pixels and at most `MAX_UPDATE_PAYLOAD`; every cursor image 64x64.
//!
//! Input: 408 bytes of QEMU's GET_DISPLAY_INFO answer, then operations: an op byte and its
//! fields (see `run`).
#![no_main]

mod common;

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use common::{encode, read_message, send_with_fds, Input, FLAG_REPLY};
use libfuzzer_sys::fuzz_target;
use qemu_display::{DisplayError, DisplaySocket, CURSOR_BYTES, MAX_UPDATE_PAYLOAD};

const GET_PROTOCOL_FEATURES: u32 = 1;
const SET_PROTOCOL_FEATURES: u32 = 2;
const GET_DISPLAY_INFO: u32 = 3;
const CURSOR_POS: u32 = 4;
const CURSOR_POS_HIDE: u32 = 5;
const CURSOR_UPDATE: u32 = 6;
const SCANOUT: u32 = 7;
const UPDATE: u32 = 8;
const DISPLAY_INFO_BYTES: usize = 24 + 16 * 24;
/// Largest pixel buffer an input may ask for (a few strips of `MAX_UPDATE_PAYLOAD`).
const MAX_PIXELS: usize = 4 << 20;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// QEMU's end: answers the two requests that want answers and checks every message.
fn qemu(socket: UnixStream, display_info: Vec<u8>) {
    let mut scanouts: HashMap<u32, (u32, u32)> = HashMap::new();
    loop {
        let msg = match read_message(&socket, 64 << 20) {
            Ok(Some(msg)) => msg,
            Ok(None) => return,
            Err(err) => panic!("QEMU got a broken message: {err}"),
        };
        let p = &msg.payload;
        match msg.request {
            GET_PROTOCOL_FEATURES => {
                let reply = encode(msg.request, FLAG_REPLY, &0u64.to_le_bytes());
                let _ = send_with_fds(&socket, &reply, &[]);
            }
            SET_PROTOCOL_FEATURES => assert_eq!(p.len(), 8),
            GET_DISPLAY_INFO => {
                assert!(p.is_empty());
                let reply = encode(msg.request, FLAG_REPLY, &display_info);
                let _ = send_with_fds(&socket, &reply, &[]);
            }
            CURSOR_POS | CURSOR_POS_HIDE => {
                assert_eq!(p.len(), 12);
                assert!(u32_at(p, 0) < 16);
            }
            CURSOR_UPDATE => {
                assert_eq!(p.len(), 20 + CURSOR_BYTES);
                assert!(u32_at(p, 0) < 16);
            }
            SCANOUT => {
                assert_eq!(p.len(), 12);
                let (id, width, height) = (u32_at(p, 0), u32_at(p, 4), u32_at(p, 8));
                assert!(id < 16);
                scanouts.insert(id, (width, height));
            }
            UPDATE => {
                assert!(p.len() >= 20);
                let (id, x, y, w, h) = (
                    u32_at(p, 0),
                    u32_at(p, 4),
                    u32_at(p, 8),
                    u32_at(p, 12),
                    u32_at(p, 16),
                );
                let (sw, sh) = *scanouts
                    .get(&id)
                    .unwrap_or_else(|| panic!("UPDATE of scanout {id} before its SCANOUT"));
                assert!(w > 0 && h > 0, "empty UPDATE {w}x{h}");
                assert!(
                    u64::from(x) + u64::from(w) <= u64::from(sw),
                    "UPDATE outside"
                );
                assert!(
                    u64::from(y) + u64::from(h) <= u64::from(sh),
                    "UPDATE outside"
                );
                assert_eq!(p.len() - 20, w as usize * h as usize * 4);
                assert!(p.len() - 20 <= MAX_UPDATE_PAYLOAD.max(w as usize * 4));
            }
            other => panic!("unexpected display message {other}"),
        }
    }
}

fn rect(input: &mut Input) -> (u32, u32, u32, u32) {
    (
        u32::from(input.u16()),
        u32::from(input.u16()),
        u32::from(input.u16()),
        u32::from(input.u16()),
    )
}

fn run(data: &[u8]) {
    let mut input = Input(data);
    let mut display_info = input.bytes(DISPLAY_INFO_BYTES).to_vec();
    display_info.resize(DISPLAY_INFO_BYTES, 0);
    let threads = common::threads();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let peer = thread::spawn(move || qemu(theirs, display_info));
    let display = DisplaySocket::from_stream(ours).unwrap();
    // Scanout sizes as the caller announced them, to check DisplaySocket's verdicts.
    let mut sizes: HashMap<u32, (u32, u32)> = HashMap::new();

    let mut ops = 0;
    while !input.is_empty() && ops < 64 {
        ops += 1;
        let op = input.u8();
        // Scanout ids 0..20: 16 exist.
        let id = u32::from(input.u8() % 20);
        match op % 6 {
            0 => {
                let (width, height) = (u32::from(input.u16()), u32::from(input.u16()));
                let result = display.scanout(id, width, height);
                if id >= 16 {
                    assert_eq!(result, Err(DisplayError::NoSuchScanout(id)));
                } else if width != 0 && height != 0 {
                    sizes.insert(id, (width, height));
                } else {
                    sizes.remove(&id);
                }
            }
            1 | 2 => {
                let (x, y, width, height) = rect(&mut input);
                let exact = width as usize * height as usize * 4;
                let len = if input.u8() & 1 == 0 {
                    exact
                } else {
                    usize::from(input.u16())
                };
                if len > MAX_PIXELS {
                    continue;
                }
                let pixels = vec![0x7f; len];
                let result = if op % 6 == 1 {
                    display.update(id, (x, y, width, height), &pixels)
                } else {
                    display.update_owned(id, (x, y, width, height), pixels)
                };
                let fits = sizes
                    .get(&id)
                    .is_some_and(|&(sw, sh)| x + width <= sw && y + height <= sh);
                if result.is_ok() || result == Err(DisplayError::Backlog) {
                    assert!(id < 16 && fits && len == exact, "accepted a bad update");
                } else if result != Err(DisplayError::Closed) {
                    assert!(id >= 16 || !fits || len != exact, "refused {result:?}");
                }
            }
            3 => {
                let (x, y, hot_x, hot_y) = rect(&mut input);
                let len = if input.u8() & 1 == 0 {
                    CURSOR_BYTES
                } else {
                    usize::from(input.u16())
                };
                let result = display.cursor_update(id, (x, y), (hot_x, hot_y), &vec![1; len]);
                if result.is_ok() {
                    assert!(id < 16 && len == CURSOR_BYTES);
                }
            }
            4 => {
                let (x, y) = (u32::from(input.u16()), u32::from(input.u16()));
                let visible = input.u8() & 1 != 0;
                let result = display.cursor_move(id, (x, y), visible);
                if result.is_ok() {
                    assert!(id < 16);
                }
            }
            _ => {
                if let Ok(modes) = display.display_info(Duration::from_secs(5)) {
                    assert_eq!(modes.len(), 16);
                }
            }
        }
    }
    assert!(display.dropped_updates() <= ops as u64);
    drop(display);
    peer.join().expect("QEMU's end panicked");
    // The writer thread is detached; with its `DisplaySocket` gone and QEMU's end closed, it
    // must end.
    assert!(
        common::wait_for_threads(threads, Duration::from_secs(2)),
        "the display writer thread outlived its DisplaySocket"
    );
}

fuzz_target!(|data: &[u8]| run(data));
