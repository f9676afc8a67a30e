//! Replays, over vhost-user, what virtio-win's Windows display driver (viogpudo) sends, and
//! checks what reaches the display and the screenshot path.
//!
//! Command order followed (virtio-win/kvm-guest-drivers-windows, viogpu/viogpudo/viogpudo.cpp
//! at fbcc19d7):
//! - `BuildModeList` -> `ProcessEdid`: GET_EDID per scanout when the *host* offers
//!   VIRTIO_GPU_F_EDID (`virtio_is_feature_enabled(m_u64HostFeatures, ...)`), acked or not;
//!   then `GetDisplayInfo`: GET_DISPLAY_INFO, waited for synchronously;
//! - `CreateFrameBufferObj`: RESOURCE_CREATE_2D (B8G8R8X8 for D3DDDIFMT_X8R8G8B8),
//!   `GpuObjectAttach` -> ATTACH_BACKING with the framebuffer's scatter list, the entries in
//!   page-sized descriptors (viogpu_queue.cpp `QueueBuffer`), SET_SCANOUT, TRANSFER_TO_HOST_2D,
//!   RESOURCE_FLUSH of the whole screen;
//! - `ExecutePresentDisplayOnly`: per dirty rectangle TRANSFER_TO_HOST_2D with
//!   `offset = top * pitch + left * 4`, then RESOURCE_FLUSH of the rectangle;
//! - `SetPointerShape` -> `CreateCursor`/`UpdateCursor`: a 64x64 B8G8R8A8 resource, backing,
//!   TRANSFER_TO_HOST_2D, then UPDATE_CURSOR on the cursor queue; `SetPointerPosition`:
//!   MOVE_CURSOR;
//! - `DestroyFrameBufferObj`: DETACH_BACKING, RESOURCE_UNREF while still the scanout, then
//!   SET_SCANOUT(0, resource 0);
//! - the config interrupt DPC: events_read has VIRTIO_GPU_EVENT_DISPLAY -> GET_DISPLAY_INFO,
//!   then events_clear written.
//!
//! This runs the real device model (rutabaga's 2D component) behind the real vhost-user
//! backend in this process; the same replay through the jailed ray-gpu is future work.

mod support;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use devices::vhost_user::DeviceHandle;
use devices::virtio_gpu::{
    Backend, BackendConfig, DisplayMode, GpuConfig, RendererChoice, VirtioGpu,
};

use support::display_peer::{DisplayMessage, DisplayPeer};
use support::frontend::Frontend;
use support::gpu_cmd::*;
use support::guest::{Buffer, DriverQueue, GuestRam};

const WIDTH: u32 = 1024;
const HEIGHT: u32 = 768;
const PAGE: u64 = 4096;
const FB_ID: u32 = 1;
const CURSOR_ID: u32 = 2;

struct Guest {
    frontend: Frontend,
    ram: GuestRam,
    control: DriverQueue,
    cursor: DriverQueue,
    display: DisplayPeer,
    gpu: DeviceHandle<VirtioGpu>,
}

impl Guest {
    /// Sends one command (its parts in separate readable descriptors) and returns the
    /// response.
    fn command(&mut self, parts: &[Vec<u8>], response_len: u32) -> Vec<u8> {
        let mut buffers = Vec::new();
        for part in parts {
            let gpa = self.ram.alloc(part.len() as u64, 8);
            self.ram.write(gpa, part);
            buffers.push(Buffer::readable(gpa, part.len() as u32));
        }
        let response = self.ram.alloc(u64::from(response_len), 8);
        buffers.push(Buffer::writable(response, response_len));
        self.control.roundtrip(&self.ram, &buffers);
        self.ram.read(response, response_len as usize)
    }

    fn ok(&mut self, command: Vec<u8>) {
        let response = self.command(&[command], HEADER as u32);
        assert_eq!(response_type(&response), RESP_OK_NODATA);
    }

    fn cursor_command(&mut self, command: Vec<u8>) {
        let gpa = self.ram.alloc(command.len() as u64, 8);
        self.ram.write(gpa, &command);
        self.cursor
            .roundtrip(&self.ram, &[Buffer::readable(gpa, command.len() as u32)]);
    }

    /// Guest pages for `bytes`, every other page so no two entries are contiguous, with the
    /// entry list split into page-sized descriptors as viogpudo queues it.
    fn scattered_backing(&mut self, bytes: u64) -> (Vec<u64>, Vec<Vec<u8>>) {
        let count = bytes.div_ceil(PAGE);
        let base = self.ram.alloc(count * 2 * PAGE, PAGE);
        let pages: Vec<u64> = (0..count).map(|i| base + 2 * i * PAGE).collect();
        let entries: Vec<(u64, u32)> = pages.iter().map(|&p| (p, PAGE as u32)).collect();
        let list = mem_entries(&entries);
        let parts = list.chunks(PAGE as usize).map(<[u8]>::to_vec).collect();
        (pages, parts)
    }

    /// Writes `pixels` (rows of `width * 4` bytes) into the scattered pages at `(x, y)`.
    fn paint(&self, pages: &[u64], pitch: u64, (x, y, w, h): (u32, u32, u32, u32), color: [u8; 4]) {
        for row in y..y + h {
            for col in x..x + w {
                let offset = u64::from(row) * pitch + u64::from(col) * 4;
                let gpa = pages[(offset / PAGE) as usize] + offset % PAGE;
                self.ram.write(gpa, &color);
            }
        }
    }
}

/// A rectangle `(x, y, width, height)` filled with one B, G, R, X color.
type Fill = ((u32, u32, u32, u32), [u8; 4]);

fn expected_frame(rects: &[Fill]) -> Vec<u8> {
    let mut frame = vec![0u8; (WIDTH * HEIGHT * 4) as usize];
    for &((x, y, w, h), color) in rects {
        for row in y..y + h {
            for col in x..x + w {
                let i = ((row * WIDTH + col) * 4) as usize;
                frame[i..i + 4].copy_from_slice(&color);
            }
        }
    }
    frame
}

fn start_guest() -> Guest {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let backend = Backend::init(&BackendConfig {
            renderer: RendererChoice::TwoD,
            surfaceless: Some(true),
        })
        .expect("2D renderer");
        let gpu = VirtioGpu::new(backend, GpuConfig::default()).expect("device");
        let served = devices::vhost_user::Backend::new(gpu).expect("backend");
        handle_tx.send(served.handle()).unwrap();
        served.serve(theirs)
    });
    let gpu = handle_rx.recv().unwrap();
    let frontend = Frontend::new(ours);
    // viogpudo acks neither EDID nor VIRGL here.
    let offered = frontend.negotiate(0);
    assert_ne!(offered & VIRTIO_GPU_F_EDID, 0, "the device offers EDID");
    let ram = GuestRam::new(64 << 20);
    assert!(frontend.set_mem_table(&[ram.region()], &[ram.file.as_raw_fd()]));
    let (display_ours, display_theirs) = UnixStream::pair().unwrap();
    assert!(frontend.set_gpu_socket(display_theirs.as_raw_fd()));
    let display = DisplayPeer::start(display_ours, vec![(WIDTH, HEIGHT)]);
    let control = DriverQueue::setup(&frontend, 0, 256);
    let cursor = DriverQueue::setup(&frontend, 1, 16);
    Guest {
        frontend,
        ram,
        control,
        cursor,
        display,
        gpu,
    }
}

#[test]
fn viogpudo_2d_session_reaches_display_and_screenshot() {
    let mut guest = start_guest();
    let pitch = u64::from(WIDTH) * 4;
    let full = Rect(0, 0, WIDTH, HEIGHT);
    let blue = [0xff, 0x00, 0x00, 0xff];
    let red = [0x00, 0x00, 0xff, 0xff];

    // BuildModeList: GET_EDID although EDID was not acked, then GET_DISPLAY_INFO.
    let edid = guest.command(&[get_edid(0)], 24 + 8 + 1024);
    let info = guest.command(&[get_display_info()], 24 + 16 * 24);
    // CreateFrameBufferObj.
    guest.ok(resource_create_2d(
        FB_ID,
        FORMAT_B8G8R8X8_UNORM,
        WIDTH,
        HEIGHT,
    ));
    let (pages, entry_parts) = guest.scattered_backing(pitch * u64::from(HEIGHT));
    let mut attach = vec![attach_backing(FB_ID, pages.len() as u32)];
    attach.extend(entry_parts);
    let attached = guest.command(&attach, HEADER as u32);
    guest.paint(&pages, pitch, (0, 0, WIDTH, HEIGHT), blue);
    guest.ok(set_scanout(0, FB_ID, full));
    guest.ok(transfer_to_host_2d(FB_ID, full, 0));
    guest.ok(resource_flush(FB_ID, full));
    // A dirty-rectangle present.
    let dirty = (100, 50, 64, 32);
    guest.paint(&pages, pitch, dirty, red);
    let offset = u64::from(dirty.1) * pitch + u64::from(dirty.0) * 4;
    guest.ok(transfer_to_host_2d(FB_ID, Rect(100, 50, 64, 32), offset));
    guest.ok(resource_flush(FB_ID, Rect(100, 50, 64, 32)));
    // SetPointerShape then SetPointerPosition.
    guest.ok(resource_create_2d(CURSOR_ID, FORMAT_B8G8R8A8_UNORM, 64, 64));
    let (cursor_pages, cursor_parts) = guest.scattered_backing(64 * 64 * 4);
    let mut attach_cursor = vec![attach_backing(CURSOR_ID, cursor_pages.len() as u32)];
    attach_cursor.extend(cursor_parts);
    guest.command(&attach_cursor, HEADER as u32);
    guest.paint(&cursor_pages, 256, (0, 0, 64, 64), [0x10, 0x20, 0x30, 0xff]);
    guest.ok(transfer_to_host_2d(CURSOR_ID, Rect(0, 0, 64, 64), 0));
    guest.cursor_command(cursor(UPDATE_CURSOR, 0, 0, 0, CURSOR_ID, (3, 4)));
    guest.cursor_command(cursor(MOVE_CURSOR, 0, 200, 300, CURSOR_ID, (0, 0)));

    let expected = expected_frame(&[((0, 0, WIDTH, HEIGHT), blue), (dirty, red)]);
    let screenshot = guest
        .gpu
        .with(|gpu| gpu.scanout_pixels(0))
        .unwrap()
        .expect("scanout 0 shows the framebuffer");
    guest.display.wait_for(Duration::from_secs(10), |state| {
        state
            .framebuffers
            .get(&0)
            .is_some_and(|fb| fb.2 == expected)
            && state.messages.contains(&DisplayMessage::CursorPos {
                scanout: 0,
                x: 200,
                y: 300,
            })
    });
    assert_eq!(response_type(&edid), RESP_OK_EDID);
    assert_eq!(response_type(&info), RESP_OK_DISPLAY_INFO);
    assert_eq!(
        (
            le32(&info, 24 + 8),
            le32(&info, 24 + 12),
            le32(&info, 24 + 16)
        ),
        (WIDTH, HEIGHT, 1)
    );
    assert_eq!(response_type(&attached), RESP_OK_NODATA);
    assert_eq!((screenshot.width, screenshot.height), (WIDTH, HEIGHT));
    assert!(
        screenshot.pixels == expected,
        "screenshot matches what the guest drew"
    );
    assert!(guest
        .display
        .with(|state| state.messages.iter().any(|m| matches!(
            m,
            DisplayMessage::CursorUpdate {
                hot_x: 3,
                hot_y: 4,
                ..
            }
        ))));
}

#[test]
fn viogpudo_unrefs_the_scanout_resource_before_disabling_the_scanout() {
    let mut guest = start_guest();
    guest.ok(resource_create_2d(
        FB_ID,
        FORMAT_B8G8R8X8_UNORM,
        WIDTH,
        HEIGHT,
    ));
    let (pages, entry_parts) = guest.scattered_backing(u64::from(WIDTH * HEIGHT * 4));
    let mut attach = vec![attach_backing(FB_ID, pages.len() as u32)];
    attach.extend(entry_parts);
    guest.command(&attach, HEADER as u32);
    guest.ok(set_scanout(0, FB_ID, Rect(0, 0, WIDTH, HEIGHT)));

    // DestroyFrameBufferObj(bReset = TRUE).
    let detached = guest.command(&[detach_backing(FB_ID)], HEADER as u32);
    let unref = guest.command(&[resource_unref(FB_ID)], HEADER as u32);
    let disabled = guest.command(&[set_scanout(0, 0, Rect(0, 0, 0, 0))], HEADER as u32);

    assert_eq!(
        [
            response_type(&detached),
            response_type(&unref),
            response_type(&disabled)
        ],
        [RESP_OK_NODATA; 3]
    );
    guest.display.wait_for(Duration::from_secs(5), |state| {
        state.messages.contains(&DisplayMessage::Scanout {
            scanout: 0,
            width: 0,
            height: 0,
        })
    });
}

#[test]
fn display_change_event_is_answered_with_the_new_mode() {
    let mut guest = start_guest();
    guest
        .gpu
        .with(|gpu| {
            gpu.set_display_mode(
                0,
                DisplayMode {
                    width: 1280,
                    height: 800,
                },
            )
        })
        .unwrap()
        .unwrap();

    // The config interrupt DPC: read events_read, GET_DISPLAY_INFO, write events_clear.
    let events = le32(&guest.frontend.get_config(0, 16), 0);
    let info = guest.command(&[get_display_info()], 24 + 16 * 24);
    let cleared = guest.frontend.set_config(4, &1u32.to_le_bytes());
    let events_after = le32(&guest.frontend.get_config(0, 16), 0);

    assert_eq!(events & 1, 1);
    assert_eq!((le32(&info, 24 + 8), le32(&info, 24 + 12)), (1280, 800));
    assert!(cleared);
    assert_eq!(events_after & 1, 0);
}
