//! The display size rayvmm asks for (`--display`) reaches the jailed ray-gpu's device: its
//! StartConfig carries the mode, GET_DISPLAY_INFO reports it, and a mode the device's EDID
//! cannot describe stops the process before it serves anything.

mod jailed_gpu;

use control::display::DisplayMode;
use control::messages::RendererMode;
use jail::ExitStatus;

use jailed_gpu::support::gpu_cmd::*;

/// `virtio_gpu_resp_display_info`: the header, then 16 `{rect, enabled, flags}` of 24 bytes.
const DISPLAY_INFO_BYTES: u32 = HEADER as u32 + 16 * 24;

/// Scanout 0's width and height in a display info response (its rect follows x and y).
fn first_mode(response: &[u8]) -> (u32, u32) {
    let word = |at: usize| u32::from_le_bytes(response[at..at + 4].try_into().unwrap());
    (word(HEADER + 8), word(HEADER + 12))
}

#[test]
fn display_mode_from_start_config_is_what_get_display_info_reports() {
    let mode = DisplayMode {
        width: 800,
        height: 600,
    };
    let mut gpu = jailed_gpu::spawn_with_display(RendererMode::TwoD, 0, Some(mode))
        .expect("the jailed GPU process becomes ready");

    let response = gpu
        .session
        .command(&[get_display_info()], DISPLAY_INFO_BYTES);
    let exit = gpu.disconnect();

    assert_eq!(response_type(&response), RESP_OK_DISPLAY_INFO);
    assert_eq!(first_mode(&response), (800, 600));
    assert_eq!(exit, ExitStatus::Exited(0));
}

#[test]
fn display_mode_beyond_the_edid_limit_stops_the_gpu_process_with_the_mode_named() {
    let mode = DisplayMode {
        width: 4096,
        height: 600,
    };

    let err = jailed_gpu::spawn_with_display(RendererMode::TwoD, 0, Some(mode))
        .err()
        .expect("ray-gpu refuses the mode");

    assert!(err.to_string().contains("4096x600"), "{err}");
}
