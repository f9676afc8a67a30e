//! What virtio-win's display driver (viogpudo) sends to bring up its framebuffer and present,
//! replayed on a [`Session`] (command order and habits: see replay_viogpudo_2d.rs).

use std::time::Duration;

use super::display_peer::DisplayMessage;
use super::gpu_cmd::*;
use super::session::{expected_frame, Session};

pub const WIDTH: u32 = 1024;
pub const HEIGHT: u32 = 768;
pub const FB_ID: u32 = 1;
pub const CURSOR_ID: u32 = 2;
pub const BLUE: [u8; 4] = [0xff, 0x00, 0x00, 0xff];
pub const RED: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// The dirty rectangle of the present, `(x, y, width, height)`.
pub const DIRTY: (u32, u32, u32, u32) = (100, 50, 64, 32);
/// Where the cursor is moved to, and its hot spot.
pub const CURSOR_AT: (u32, u32) = (200, 300);
pub const CURSOR_HOT: (u32, u32) = (3, 4);

/// The responses of a bring-up and present.
pub struct Presented {
    pub edid: Vec<u8>,
    pub display_info: Vec<u8>,
    pub attached: Vec<u8>,
}

/// The frame the guest drew: blue with the red dirty rectangle.
pub fn expected() -> Vec<u8> {
    expected_frame(
        WIDTH,
        HEIGHT,
        &[((0, 0, WIDTH, HEIGHT), BLUE), (DIRTY, RED)],
    )
}

/// BuildModeList (GET_EDID although EDID was not acked, GET_DISPLAY_INFO),
/// CreateFrameBufferObj (B8G8R8X8 resource, scattered backing, SET_SCANOUT, full transfer and
/// flush), a dirty-rectangle present, SetPointerShape and SetPointerPosition.
pub fn bring_up_and_present(session: &mut Session) -> Presented {
    let pitch = u64::from(WIDTH) * 4;
    let full = Rect(0, 0, WIDTH, HEIGHT);
    let edid = session.command(&[get_edid(0)], 24 + 8 + 1024);
    let display_info = session.command(&[get_display_info()], 24 + 16 * 24);
    session.ok(resource_create_2d(
        FB_ID,
        FORMAT_B8G8R8X8_UNORM,
        WIDTH,
        HEIGHT,
    ));
    let (pages, entry_parts) = session.scattered_backing(pitch * u64::from(HEIGHT));
    let mut attach = vec![attach_backing(FB_ID, pages.len() as u32)];
    attach.extend(entry_parts);
    let attached = session.command(&attach, HEADER as u32);
    session.paint(&pages, pitch, (0, 0, WIDTH, HEIGHT), BLUE);
    session.ok(set_scanout(0, FB_ID, full));
    session.ok(transfer_to_host_2d(FB_ID, full, 0));
    session.ok(resource_flush(FB_ID, full));
    session.paint(&pages, pitch, DIRTY, RED);
    let (x, y, w, h) = DIRTY;
    let offset = u64::from(y) * pitch + u64::from(x) * 4;
    session.ok(transfer_to_host_2d(FB_ID, Rect(x, y, w, h), offset));
    session.ok(resource_flush(FB_ID, Rect(x, y, w, h)));
    session.ok(resource_create_2d(CURSOR_ID, FORMAT_B8G8R8A8_UNORM, 64, 64));
    let (cursor_pages, cursor_parts) = session.scattered_backing(64 * 64 * 4);
    let mut attach_cursor = vec![attach_backing(CURSOR_ID, cursor_pages.len() as u32)];
    attach_cursor.extend(cursor_parts);
    session.command(&attach_cursor, HEADER as u32);
    session.paint(&cursor_pages, 256, (0, 0, 64, 64), [0x10, 0x20, 0x30, 0xff]);
    session.ok(transfer_to_host_2d(CURSOR_ID, Rect(0, 0, 64, 64), 0));
    session.cursor_command(cursor(UPDATE_CURSOR, 0, 0, 0, CURSOR_ID, CURSOR_HOT));
    let (cx, cy) = CURSOR_AT;
    session.cursor_command(cursor(MOVE_CURSOR, 0, cx, cy, CURSOR_ID, (0, 0)));
    Presented {
        edid,
        display_info,
        attached,
    }
}

/// Waits until the display peer shows the expected frame on scanout 0 and the moved cursor.
pub fn wait_for_display(session: &Session) {
    let expected = expected();
    let (x, y) = CURSOR_AT;
    session.display.wait_for(Duration::from_secs(10), |state| {
        state
            .framebuffers
            .get(&0)
            .is_some_and(|fb| fb.2 == expected)
            && state
                .messages
                .contains(&DisplayMessage::CursorPos { scanout: 0, x, y })
    });
}
