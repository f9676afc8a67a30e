//! How fast the RFB server delivers frames to one viewer over loopback TCP, against the
//! fastest the same bytes can travel: a plain TCP copy of a whole 32-bit frame, measured in
//! the same run. Prints frames per second and the ratio for:
//! - every pixel changing each frame (the whole frame travels, converted to the default format);
//! - one 64x64 tile changing (the server compares the frames and sends only that tile);
//! - every pixel changing, in a 16-bit pixel format (the general conversion path).
//!
//! `cargo bench -p rfb --bench viewer_throughput [-- FRAMES]` (default 120 frames per case).

#[path = "../tests/viewer/mod.rs"]
mod viewer;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rfb::{FrameStore, Image, PixelFormat, Server, ServerOptions};
use viewer::{Viewer, RGB565};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 800;

/// Frames per second of a plain TCP copy of `frames` whole 32-bit frames.
fn tcp_baseline(frames: u32) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let frame = vec![0x5au8; (WIDTH * HEIGHT * 4) as usize];
    let sender = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        for _ in 0..frames {
            stream.write_all(&frame).unwrap();
        }
    });
    let mut stream = TcpStream::connect(address).unwrap();
    let mut buffer = vec![0u8; (WIDTH * HEIGHT * 4) as usize];
    let start = Instant::now();
    for _ in 0..frames {
        stream.read_exact(&mut buffer).unwrap();
    }
    let seconds = start.elapsed().as_secs_f64();
    sender.join().unwrap();
    f64::from(frames) / seconds
}

/// Two frames that differ everywhere, or only in one tile.
fn frames(whole: bool) -> [Image; 2] {
    let base = vec![0x20u8; (WIDTH * HEIGHT * 3) as usize];
    let mut other = base.clone();
    match whole {
        true => other.iter_mut().for_each(|b| *b = 0xc0),
        false => {
            for y in 128..192usize {
                let row = y * WIDTH as usize * 3;
                other[row + 128 * 3..row + 192 * 3].fill(0xc0);
            }
        }
    }
    [base, other].map(|rgb| Image::new(WIDTH, HEIGHT, rgb).unwrap())
}

/// Frames per second one viewer receives while a producer alternates between `images`,
/// publishing whenever the viewer waits for a frame.
fn served(frames: u32, images: [Image; 2], format: Option<PixelFormat>) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let store = FrameStore::new(Image::black(WIDTH as u16, HEIGHT as u16));
    let server = Server::start(
        listener,
        Arc::clone(&store),
        ServerOptions::default(),
        Arc::new(|_| {}),
    )
    .unwrap();
    let producer_store = Arc::clone(&store);
    let producer = std::thread::spawn(move || {
        let mut next = 0;
        while producer_store.wait_for_demand(Duration::from_secs(5)) {
            producer_store.publish(images[next].clone());
            next = 1 - next;
        }
    });
    let mut viewer = Viewer::connect(server.local_addr(), b"RFB 003.008\n");
    if let Some(format) = format {
        viewer.set_pixel_format(&format);
    }
    viewer.request(false);
    viewer.read_update();
    let start = Instant::now();
    for _ in 0..frames {
        viewer.request(true);
        viewer.read_update();
    }
    let seconds = start.elapsed().as_secs_f64();
    store.close();
    drop(server);
    producer.join().unwrap();
    f64::from(frames) / seconds
}

fn main() {
    let frames: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(120);
    let baseline = tcp_baseline(frames);
    println!("{WIDTH}x{HEIGHT}, {frames} frames per case, one viewer on loopback");
    println!("  baseline: plain TCP copy of 32-bit frames  {baseline:8.1} frames/s");
    let cases = [
        (
            "whole frame changes, default format",
            served(frames, self::frames(true), None),
        ),
        (
            "one 64x64 tile changes",
            served(frames, self::frames(false), None),
        ),
        (
            "whole frame changes, 16-bit format",
            served(frames, self::frames(true), Some(RGB565)),
        ),
    ];
    for (name, fps) in cases {
        println!(
            "  {name:<40} {fps:8.1} frames/s  ({:.2}x the baseline)",
            fps / baseline
        );
    }
}
