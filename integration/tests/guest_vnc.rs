//! rayvmm's own VNC server (`--vnc 127.0.0.1::0`, fed by the jailed GPU process's frames)
//! serves real, unmodified VNC clients what the guest shows:
//! - vncdotool (Python, RFB 3.8, Raw + DesktopSize) captures a frame pixel-identical to the
//!   screenshot rayvmm writes on SIGUSR1 (both 800x600, every RGB value equal), and the four
//!   colour bands the guest painted are exact in it;
//! - vncsnapshot (C, TightVNC 1.2, RFB 3.3, asks for its own pixel format and a list of
//!   encodings led by ones the server does not have) gets the same bands, within JPEG error.
//!
//! One Linux guest (2D workload, `--display 800x600`, held 40 s after it has painted) serves
//! both clients: a guest boot under TCG costs far more than the captures. The clients come
//! from scripts/setup-guest-tools.sh; when one is missing the test fails saying so.

mod guest_support;

use std::process::Command;
use std::time::Duration;

use guest_support::{
    linux_args, pillow_samples, rgb_image, run_tool, scratch_dir, vncdo_binary, vncsnapshot_binary,
    Rayvmm, GUEST_TIMEOUT,
};

/// The guest's bands, top to bottom (guest/linux/init, workload `2d`).
const BANDS: [[u8; 3]; 4] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
/// The display size asked for, which the VNC frame must have.
const DISPLAY: (u32, u32) = (800, 600);
/// How far a JPEG sample may be from its band, per channel.
const JPEG_TOLERANCE: u8 = 24;
/// The longest one client run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The guest writes its bands into fbdev, whose pages reach the device by the kernel's
/// deferred flush; this leaves it time to land after `RAYOS-DONE` (printed right after).
const FLUSH_SETTLE: Duration = Duration::from_secs(2);

/// The centre of each horizontal quarter of a `width` x `height` frame, top to bottom: one
/// point in each band.
fn quarter_centres((width, height): (u32, u32)) -> Vec<(u32, u32)> {
    (0..4)
        .map(|i| (width / 2, i * height / 4 + height / 8))
        .collect()
}

/// rayvmm's `HOST:PORT` written as the clients take a port number: `HOST::PORT` (one colon
/// would mean a display number, port 5900 + N).
fn client_server(address: &str) -> String {
    let (host, port) = address
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in VNC address {address:?}"));
    format!("{host}::{port}")
}

/// The largest per-channel difference between two colours.
fn channel_distance(a: [u8; 3], b: [u8; 3]) -> u8 {
    a.iter().zip(b).map(|(x, y)| x.abs_diff(y)).max().unwrap()
}

#[test]
fn vnc_viewer_sees_the_same_frame_as_the_screenshot_and_an_rfb_3_3_snapshot_client_sees_the_bands()
{
    let dir = scratch_dir("vnc");
    let mut args = linux_args(&dir, "2d", false, "drm.edid_firmware= rayos.hold=40");
    args.extend(["--display", "800x600", "--vnc", "127.0.0.1::0"].map(String::from));
    let mut run = Rayvmm::start(&args);
    let address = run
        .wait_for_log_word_after("VNC server listening on ", GUEST_TIMEOUT)
        .expect("rayvmm never said where its VNC server listens");
    let server = client_server(&address);
    let painted = run.wait_for_serial("RAYOS-DONE", GUEST_TIMEOUT);
    std::thread::sleep(FLUSH_SETTLE);

    let vncdo = run_tool(
        Command::new(vncdo_binary())
            .args(["-s", &server, "capture"])
            .arg(dir.join("vnc.png")),
        CLIENT_TIMEOUT,
    );
    run.signal("USR1");
    let screenshot_taken = run.wait_for_log_count(" written to ", 1, Duration::from_secs(30));
    let vncsnapshot = run_tool(
        Command::new(vncsnapshot_binary())
            .args(["-quality", "100", &server])
            .arg(dir.join("vnc.jpg")),
        CLIENT_TIMEOUT,
    );
    let done = run.finish(GUEST_TIMEOUT);

    eprintln!("vnc: {address}, guest ran {:.1} s", done.seconds);
    assert!(painted, "the guest never printed RAYOS-DONE");
    assert_eq!(vncdo.code, Some(0), "vncdo failed:\n{}", vncdo.output);
    assert!(screenshot_taken, "no screenshot after SIGUSR1");
    assert_eq!(
        vncsnapshot.code,
        Some(0),
        "vncsnapshot failed:\n{}",
        vncsnapshot.output
    );
    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert_eq!(done.result("fb_pattern"), "bands red,green,blue,white");

    let viewed = rgb_image(&dir.join("vnc.png"));
    let screenshot = rgb_image(&dir.join("final-1.png"));
    let differing = (viewed.pixels.iter())
        .zip(&screenshot.pixels)
        .filter(|(a, b)| a != b)
        .count();
    let viewed_bands: Vec<[u8; 3]> = (quarter_centres(DISPLAY).into_iter())
        .map(|(x, y)| viewed.at(x, y))
        .collect();
    assert_eq!((viewed.width, viewed.height), DISPLAY);
    assert_eq!((screenshot.width, screenshot.height), DISPLAY);
    assert_eq!(
        differing, 0,
        "pixels differing between vnc.png and final-1.png"
    );
    assert_eq!(viewed_bands, BANDS);

    let (snapshot_size, snapshot_bands) =
        pillow_samples(&dir.join("vnc.jpg"), &quarter_centres(DISPLAY));
    let snapshot_off_by: Vec<u8> = (snapshot_bands.iter())
        .zip(BANDS)
        .map(|(&got, want)| channel_distance(got, want))
        .collect();
    assert_eq!(snapshot_size, DISPLAY);
    assert!(
        snapshot_off_by.iter().all(|&d| d <= JPEG_TOLERANCE),
        "vncsnapshot's bands {snapshot_bands:?} are off by {snapshot_off_by:?}, \
         more than {JPEG_TOLERANCE}"
    );
}
