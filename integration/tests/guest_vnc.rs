//! rayvmm's own VNC server (`--vnc 127.0.0.1::0`, fed by the jailed GPU process's frames)
//! serves real, unmodified VNC clients what the guest shows:
//! - vncdotool (Python, RFB 3.8, Raw + DesktopSize) captures a frame pixel-identical to the
//!   screenshot rayvmm writes on SIGUSR1 (both 800x600, every RGB value equal), and the four
//!   colour bands the guest painted are exact in it;
//! - vncdotool offering ZRLE gets ZRLE: its library decodes ZRLE, but its command line offers
//!   only Raw, so the test runs `vncdo` with the client's encoding set to ZRLE (as a program
//!   using vncdotool would). Its own log (`-v`) names every rectangle it received as ZRLE,
//!   and its capture is pixel-identical to the screenshot too;
//! - vncsnapshot (C, TightVNC 1.2, RFB 3.3, asks for its own pixel format and a list of
//!   encodings led by ones the server does not have) gets the same bands, within JPEG error;
//! - vncsnapshot told `-encodings "zrle raw"`, through a tap that keeps what the server sent
//!   it, is sent nothing but ZRLE rectangles, and saves a JPEG byte-identical to its Raw one.
//!
//! One Linux guest (2D workload, `--display 800x600`, held 40 s after it has painted) serves
//! every client run: a guest boot under TCG costs far more than the captures. The clients come
//! from scripts/setup-guest-tools.sh; when one is missing the test fails saying so.

mod guest_support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
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

/// RFB's number for the ZRLE encoding.
const ZRLE: i32 = 16;
/// Rows of 64x64 tiles in the 800x600 frame: the server sends a whole-frame ZRLE update as
/// one rectangle per row (the frame is narrower than its widest ZRLE rectangle).
const TILE_ROWS: u32 = 10;
/// `vncdo`, offering ZRLE where its command line offers Raw (then DesktopSize and its other
/// pseudo-encodings, as usual). vncdotool's client class names the one real encoding it
/// offers in a class attribute; the command line has no option for it.
const VNCDO_OFFERING_ZRLE: &str = "import sys\n\
    from vncdotool.client import VNCDoToolClient\n\
    from vncdotool.rfb import Encoding\n\
    VNCDoToolClient.encoding = Encoding.ZRLE\n\
    from vncdotool.command import vncdo\n\
    sys.argv[0] = 'vncdo'\n\
    vncdo()\n";

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

/// The rectangles `vncdo -v` logged receiving, as `x=0 y=0 w=800 h=64 <Encoding.ZRLE: 16>`.
fn vncdo_rectangles(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            line.split_once("twisted:x=")
                .map(|(_, rest)| format!("x={rest}"))
        })
        .collect()
}

/// What `vncdo -v` logs for a whole-frame ZRLE update: one rectangle per row of tiles.
fn zrle_tile_rows((width, height): (u32, u32)) -> Vec<String> {
    (0..TILE_ROWS)
        .map(|row| {
            let y = row * 64;
            let h = (height - y).min(64);
            format!("x=0 y={y} w={width} h={h} <Encoding.ZRLE: 16>")
        })
        .collect()
}

/// A relay between one VNC client and the server that keeps a copy of what the server sent,
/// so that the test sees the encodings on the wire.
struct Tap {
    address: SocketAddr,
    sent: Receiver<Vec<u8>>,
}

impl Tap {
    /// Relays the first connection to the tap to `server`.
    fn start(server: SocketAddr) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the tap");
        let address = listener.local_addr().expect("the tap's address");
        let (done, sent) = mpsc::channel();
        std::thread::spawn(move || {
            let (client, _) = listener.accept().expect("the client connects to the tap");
            let upstream = TcpStream::connect(server).expect("the tap reaches the VNC server");
            upstream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
            let mut from_client = client.try_clone().unwrap();
            let mut to_server = upstream.try_clone().unwrap();
            let requests = std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_server);
                let _ = to_server.shutdown(Shutdown::Write);
            });
            let (mut from_server, mut to_client) = (upstream, client);
            let mut copy = Vec::new();
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = from_server.read(&mut buffer) {
                copy.extend_from_slice(&buffer[..n]);
                if to_client.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            let _ = to_client.shutdown(Shutdown::Both);
            let _ = requests.join();
            let _ = done.send(copy);
        });
        Tap { address, sent }
    }

    /// Everything the server sent through the tap, once the connection has ended.
    fn server_sent(&self) -> Vec<u8> {
        self.sent
            .recv_timeout(CLIENT_TIMEOUT)
            .expect("the tapped connection never ended")
    }
}

/// The encodings of the rectangles in what a server sent an RFB 3.3 client (version,
/// security type, ServerInit, then FramebufferUpdates), up to the first rectangle that is
/// not ZRLE (whose length would need the client's pixel format) or the end.
fn rfb_3_3_rectangle_encodings(sent: &[u8]) -> Vec<i32> {
    let u32_at = |at: usize| u32::from_be_bytes(sent[at..at + 4].try_into().unwrap()) as usize;
    // "RFB 003.008\n", the 4-byte security type, then ServerInit (its name's length at 20).
    let mut at = 12 + 4 + 24 + u32_at(12 + 4 + 20);
    let mut encodings = Vec::new();
    while at + 4 <= sent.len() {
        assert_eq!(
            sent[at], 0,
            "the server sent a message other than FramebufferUpdate"
        );
        let rectangles = u16::from_be_bytes([sent[at + 2], sent[at + 3]]);
        at += 4;
        for _ in 0..rectangles {
            let encoding = i32::from_be_bytes(sent[at + 8..at + 12].try_into().unwrap());
            encodings.push(encoding);
            at += 12;
            if encoding != ZRLE {
                return encodings;
            }
            at += 4 + u32_at(at);
        }
    }
    encodings
}

/// The largest per-channel difference between two colours.
fn channel_distance(a: [u8; 3], b: [u8; 3]) -> u8 {
    a.iter().zip(b).map(|(x, y)| x.abs_diff(y)).max().unwrap()
}

#[test]
fn vnc_viewers_see_the_same_frame_as_the_screenshot_raw_or_zrle_and_an_rfb_3_3_snapshot_client_sees_the_bands(
) {
    let dir = scratch_dir("vnc");
    let mut args = linux_args(&dir, "2d", false, "drm.edid_firmware= rayos.hold=40");
    args.extend(["--display", "800x600", "--vnc", "127.0.0.1::0"].map(String::from));
    let mut run = Rayvmm::start(&args);
    let address = run
        .wait_for_log_word_after("VNC server listening on ", GUEST_TIMEOUT)
        .expect("rayvmm never said where its VNC server listens");
    let server = client_server(&address);
    let server_address: SocketAddr = address.parse().expect("rayvmm's VNC address");
    let painted = run.wait_for_serial("RAYOS-DONE", GUEST_TIMEOUT);
    std::thread::sleep(FLUSH_SETTLE);

    let vncdo = run_tool(
        Command::new(vncdo_binary())
            .args(["-s", &server, "capture"])
            .arg(dir.join("vnc.png")),
        CLIENT_TIMEOUT,
    );
    let python = vncdo_binary().with_file_name("python");
    let vncdo_zrle = run_tool(
        Command::new(&python)
            .args(["-c", VNCDO_OFFERING_ZRLE, "-v", "-s", &server, "capture"])
            .arg(dir.join("vnc-zrle.png")),
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
    let tap = Tap::start(server_address);
    let vncsnapshot_zrle = run_tool(
        Command::new(vncsnapshot_binary())
            .args(["-quality", "100", "-encodings", "zrle raw"])
            .arg(client_server(&tap.address.to_string()))
            .arg(dir.join("vnc-zrle.jpg")),
        CLIENT_TIMEOUT,
    );
    let zrle_on_the_wire = rfb_3_3_rectangle_encodings(&tap.server_sent());
    let done = run.finish(GUEST_TIMEOUT);

    eprintln!("vnc: {address}, guest ran {:.1} s", done.seconds);
    assert!(painted, "the guest never printed RAYOS-DONE");
    assert_eq!(vncdo.code, Some(0), "vncdo failed:\n{}", vncdo.output);
    assert_eq!(
        vncdo_zrle.code,
        Some(0),
        "vncdo offering ZRLE failed:\n{}",
        vncdo_zrle.output
    );
    assert!(screenshot_taken, "no screenshot after SIGUSR1");
    assert_eq!(
        vncsnapshot.code,
        Some(0),
        "vncsnapshot failed:\n{}",
        vncsnapshot.output
    );
    assert_eq!(
        vncsnapshot_zrle.code,
        Some(0),
        "vncsnapshot asking for ZRLE failed:\n{}",
        vncsnapshot_zrle.output
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

    let viewed_zrle = rgb_image(&dir.join("vnc-zrle.png"));
    let differing_zrle = (viewed_zrle.pixels.iter())
        .zip(&screenshot.pixels)
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        vncdo_rectangles(&vncdo_zrle.output),
        zrle_tile_rows(DISPLAY),
        "vncdo's log:\n{}",
        vncdo_zrle.output
    );
    assert_eq!((viewed_zrle.width, viewed_zrle.height), DISPLAY);
    assert_eq!(
        differing_zrle, 0,
        "pixels differing between vnc-zrle.png and final-1.png"
    );

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

    let snapshot_raw = std::fs::read(dir.join("vnc.jpg")).expect("vnc.jpg");
    let snapshot_zrle = std::fs::read(dir.join("vnc-zrle.jpg")).expect("vnc-zrle.jpg");
    assert_eq!(zrle_on_the_wire, vec![ZRLE; TILE_ROWS as usize]);
    assert!(
        snapshot_zrle == snapshot_raw,
        "vncsnapshot's JPEG from ZRLE differs from its JPEG from Raw"
    );
}
