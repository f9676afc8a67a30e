//! The viogpudo (virtio-win 2D display driver) replay against the real jailed ray-gpu:
//! spawned by the vmm library with the repository's policy and kill-process, served over a
//! socketpair at descriptor 4; pixels checked on the display socket (UPDATE messages) and
//! through the supervisor's sealed-memfd screenshot.

mod jailed_gpu;

use control::messages::RendererMode;
use jail::ExitStatus;

use jailed_gpu::support::gpu_cmd::*;
use jailed_gpu::support::viogpudo::{self, HEIGHT, WIDTH};

#[test]
fn viogpudo_2d_session_reaches_display_and_screenshot_through_the_jail() {
    let mut gpu = jailed_gpu::spawn(RendererMode::TwoD, 0);

    let presented = viogpudo::bring_up_and_present(&mut gpu.session);
    viogpudo::wait_for_display(&gpu.session);
    let screenshot = gpu.process.screenshot().expect("a valid screenshot");
    let seccomp_mode = gpu.process.status().expect("status").seccomp;
    let exit = gpu.disconnect();

    assert_eq!(response_type(&presented.edid), RESP_OK_EDID);
    assert_eq!(response_type(&presented.display_info), RESP_OK_DISPLAY_INFO);
    assert_eq!(response_type(&presented.attached), RESP_OK_NODATA);
    assert_eq!((screenshot.width, screenshot.height), (WIDTH, HEIGHT));
    assert!(
        screenshot.pixels == viogpudo::expected(),
        "the screenshot matches what the guest drew"
    );
    assert_eq!(seccomp_mode, 2, "the filter was on while serving");
    assert_eq!(
        exit,
        ExitStatus::Exited(0),
        "ray-gpu exits 0 when the frontend leaves"
    );
}
