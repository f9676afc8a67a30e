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
//! backend in this process; the same replay through the jailed ray-gpu is
//! integration/tests/replay_jailed_viogpudo.rs (both run support/viogpudo.rs).

mod support;

use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use devices::virtio_gpu::{
    Backend, BackendConfig, DisplayMode, GpuConfig, RendererChoice, VirtioGpu,
};
use vhost_user_device::DeviceHandle;

use support::display_peer::DisplayMessage;
use support::gpu_cmd::*;
use support::session::Session;
use support::viogpudo::{self, CURSOR_HOT, FB_ID, HEIGHT, WIDTH};

struct Guest {
    session: Session,
    gpu: DeviceHandle<VirtioGpu>,
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
        let served = vhost_user_device::Backend::new(gpu).expect("backend");
        handle_tx.send(served.handle()).unwrap();
        served.serve(theirs)
    });
    let gpu = handle_rx.recv().unwrap();
    // viogpudo acks neither EDID nor VIRGL here.
    let session = Session::connect(ours, 0, 64 << 20, vec![(WIDTH, HEIGHT)]);
    assert_ne!(
        session.offered & VIRTIO_GPU_F_EDID,
        0,
        "the device offers EDID"
    );
    Guest { session, gpu }
}

#[test]
fn viogpudo_2d_session_reaches_display_and_screenshot() {
    let mut guest = start_guest();

    let presented = viogpudo::bring_up_and_present(&mut guest.session);
    let screenshot = guest
        .gpu
        .with(|gpu| gpu.scanout_pixels(0))
        .unwrap()
        .expect("scanout 0 shows the framebuffer");
    viogpudo::wait_for_display(&guest.session);

    let info = &presented.display_info;
    assert_eq!(response_type(&presented.edid), RESP_OK_EDID);
    assert_eq!(response_type(info), RESP_OK_DISPLAY_INFO);
    assert_eq!(
        (le32(info, 24 + 8), le32(info, 24 + 12), le32(info, 24 + 16)),
        (WIDTH, HEIGHT, 1)
    );
    assert_eq!(response_type(&presented.attached), RESP_OK_NODATA);
    assert_eq!((screenshot.width, screenshot.height), (WIDTH, HEIGHT));
    assert!(
        screenshot.pixels == viogpudo::expected(),
        "screenshot matches what the guest drew"
    );
    assert!(guest
        .session
        .display
        .with(|state| state.messages.iter().any(|m| matches!(
            m,
            DisplayMessage::CursorUpdate {
                hot_x: 3,
                hot_y: 4,
                ..
            }
        ))));
    assert_eq!(CURSOR_HOT, (3, 4));
}

#[test]
fn viogpudo_unrefs_the_scanout_resource_before_disabling_the_scanout() {
    let mut guest = start_guest();
    guest.session.ok(resource_create_2d(
        FB_ID,
        FORMAT_B8G8R8X8_UNORM,
        WIDTH,
        HEIGHT,
    ));
    let (pages, entry_parts) = guest
        .session
        .scattered_backing(u64::from(WIDTH * HEIGHT * 4));
    let mut attach = vec![attach_backing(FB_ID, pages.len() as u32)];
    attach.extend(entry_parts);
    guest.session.command(&attach, HEADER as u32);
    guest
        .session
        .ok(set_scanout(0, FB_ID, Rect(0, 0, WIDTH, HEIGHT)));

    // DestroyFrameBufferObj(bReset = TRUE).
    let detached = guest
        .session
        .command(&[detach_backing(FB_ID)], HEADER as u32);
    let unref = guest
        .session
        .command(&[resource_unref(FB_ID)], HEADER as u32);
    let disabled = guest
        .session
        .command(&[set_scanout(0, 0, Rect(0, 0, 0, 0))], HEADER as u32);

    assert_eq!(
        [
            response_type(&detached),
            response_type(&unref),
            response_type(&disabled)
        ],
        [RESP_OK_NODATA; 3]
    );
    guest
        .session
        .display
        .wait_for(Duration::from_secs(5), |state| {
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
    let events = le32(&guest.session.frontend.get_config(0, 16), 0);
    let info = guest.session.command(&[get_display_info()], 24 + 16 * 24);
    let cleared = guest.session.frontend.set_config(4, &1u32.to_le_bytes());
    let events_after = le32(&guest.session.frontend.get_config(0, 16), 0);

    assert_eq!(events & 1, 1);
    assert_eq!((le32(&info, 24 + 8), le32(&info, 24 + 12)), (1280, 800));
    assert!(cleared);
    assert_eq!(events_after & 1, 0);
}
