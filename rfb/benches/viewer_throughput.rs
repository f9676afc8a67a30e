//! How fast the RFB server delivers frames to one viewer over loopback TCP, and how many
//! bytes a frame costs, against the fastest the same bytes can travel: a plain TCP copy of a
//! whole 32-bit frame, measured in the same run.
//!
//! Raw cases, frames per second and the ratio to that copy:
//! - every pixel changing each frame (the whole frame travels, converted to the default format);
//! - one 64x64 tile changing (the server compares the frames and sends only that tile);
//! - every pixel changing, in a 16-bit pixel format (the general conversion path).
//!
//! Raw against ZRLE, each measured in the same run, frames per second and bytes per frame,
//! with ZRLE's ratios to Raw:
//! - a guest desktop (wallpaper gradient, panel, windows of anti-aliased text, a terminal,
//!   a photo) changing everywhere each frame (every channel's lowest bit flips, so every
//!   tile is sent and the picture stays the same kind);
//! - noise changing everywhere (ZRLE's worst case: every tile raw, zlib finds nothing);
//! - one 64x64 tile of text changing on that desktop.
//!
//! The viewer reads each update whole but does not decode it: what is measured is the
//! server's comparing, converting, encoding and sending. The ZRLE encoder is also timed
//! alone on the whole-frame pictures, cut as the server cuts them (rows of 64x64 tiles). "at 100 Mbit/s" is the frame rate
//! a link of that speed (an SSH tunnel on a fast LAN) could carry at those bytes per frame.
//!
//! `cargo bench -p rfb --bench viewer_throughput [-- FRAMES]` (default 120 frames per case).

#[path = "../tests/viewer/mod.rs"]
mod viewer;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rfb::{FrameStore, Image, PixelFormat, Region, Server, ServerOptions, ZrleEncoder};
use viewer::{Viewer, RAW, RGB565, ZRLE};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 800;
/// Bytes per second of a 100 Mbit/s link.
const LINK_100_MBIT: f64 = 100e6 / 8.0;

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

fn image(rgb: Vec<u8>) -> Image {
    Image::new(WIDTH, HEIGHT, rgb).unwrap()
}

/// Two flat frames that differ everywhere, or only in one tile.
fn flat(whole: bool) -> [Image; 2] {
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
    [image(base), image(other)]
}

/// A small fast hash, for the pictures' pseudo-random parts.
fn hash(a: u32, b: u32) -> u32 {
    let v = a.wrapping_mul(0x9e37_79b1) ^ b.wrapping_mul(0x85eb_ca77);
    let v = (v ^ (v >> 15)).wrapping_mul(0x2c1b_3c6d);
    v ^ (v >> 12)
}

/// Mixes `ink` over `paper` by `alpha` (0 to 255).
fn blend(paper: [u8; 3], ink: [u8; 3], alpha: u32) -> [u8; 3] {
    [0, 1, 2]
        .map(|c| ((u32::from(paper[c]) * (255 - alpha) + u32::from(ink[c]) * alpha) / 255) as u8)
}

/// Text on a line: glyph cells of 8x16 pixels, 6x11 of ink each, in words, anti-aliased to
/// five levels of coverage (what a desktop's font renderer makes). `None` off the ink.
fn text_coverage(x: u32, y: u32, line_seed: u32, line_length: u32) -> Option<u32> {
    let (cell, gx, gy) = (x / 8, x % 8, y % 16);
    if cell >= line_length || gx >= 6 || !(3..14).contains(&gy) {
        return None;
    }
    let glyph = hash(line_seed, cell);
    // Spaces between words.
    if glyph.is_multiple_of(7) {
        return None;
    }
    let bit = hash(glyph % 96, gy * 8 + gx);
    match bit % 8 {
        0..=3 => None,
        level => Some(level * 51 - 51),
    }
}

/// A guest desktop, `WIDTH` x `HEIGHT`: gradient wallpaper, a top panel with a menu and a
/// clock, a text editor, a terminal, a photo viewer and a dock.
fn desktop() -> Vec<u8> {
    let mut rgb = Vec::with_capacity((WIDTH * HEIGHT * 3) as usize);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            rgb.extend_from_slice(&desktop_pixel(x, y));
        }
    }
    rgb
}

fn desktop_pixel(x: u32, y: u32) -> [u8; 3] {
    let inside = |left: u32, top: u32, w: u32, h: u32| {
        (left..left + w).contains(&x) && (top..top + h).contains(&y)
    };
    let text = |paper: [u8; 3], ink: [u8; 3], left: u32, top: u32, seed: u32| {
        let (tx, ty) = (x - left, y - top);
        let line = ty / 18;
        let length = 20 + hash(seed, line) % 60;
        match text_coverage(tx, ty % 18, hash(seed + 1, line), length) {
            Some(alpha) => blend(paper, ink, alpha),
            None => paper,
        }
    };
    if y < 28 {
        let panel = [40, 42, 48];
        return match (x, y) {
            (12..=400, 6..=21) => text(panel, [230, 230, 230], 12, 6, 1),
            (1180..=1270, 6..=21) => text(panel, [230, 230, 230], 1180, 6, 2),
            _ => panel,
        };
    }
    if y >= HEIGHT - 52 {
        let slot = x.wrapping_sub(400) / 56;
        let within = (x.wrapping_sub(400) % 56, y - (HEIGHT - 52));
        return match (slot < 8, within) {
            (true, (4..=51, 2..=49)) => [
                (slot * 30 + within.1 * 2) as u8,
                (200 - slot * 20) as u8,
                (within.0 * 4) as u8,
            ],
            _ => [30, 32, 38],
        };
    }
    // Text editor: title bar, then dark text on white.
    if inside(120, 80, 700, 30) {
        return text([225, 225, 228], [20, 20, 20], 130, 86, 3);
    }
    if inside(120, 110, 700, 500) {
        return match (140..800).contains(&x) && y >= 120 {
            true => text([255, 255, 255], [24, 24, 24], 140, 120, 4),
            false => [255, 255, 255],
        };
    }
    // Terminal: light grey and green text on black.
    if inside(560, 330, 660, 24) {
        return [60, 60, 64];
    }
    if inside(560, 354, 660, 380) {
        let ink = match (y - 360) / 18 % 5 {
            0 => [120, 220, 120],
            _ => [200, 200, 200],
        };
        return match x >= 570 && y >= 360 {
            true => text([0, 0, 0], ink, 570, 360, 5),
            false => [0, 0, 0],
        };
    }
    // Photo viewer: a smooth picture with sensor noise.
    if inside(880, 60, 360, 250) {
        let (px, py) = (x - 880, y - 60);
        let grain = hash(px, py) % 7;
        return [
            (80 + px / 3 + grain) as u8,
            (120 + (py * py) / 600 + grain) as u8,
            (200 - py / 2 + grain) as u8,
        ];
    }
    // Wallpaper: a diagonal gradient.
    let t = (x + y) / 8;
    [(10 + t / 3) as u8, (40 + t / 4) as u8, (90 + t / 5) as u8]
}

/// The desktop, and the same desktop with every channel's lowest bit flipped: every pixel
/// changes, the picture stays the same kind.
fn desktop_changing_everywhere() -> [Image; 2] {
    let first = desktop();
    let second = first.iter().map(|b| b ^ 1).collect();
    [image(first), image(second)]
}

/// The desktop, and the same with the editor's text in one 64x64 tile changed.
fn desktop_changing_one_tile() -> [Image; 2] {
    let first = desktop();
    let mut second = first.clone();
    for y in 128..192u32 {
        for x in 192..256u32 {
            let at = ((y * WIDTH + x) * 3) as usize;
            let line = (y - 128) / 18;
            let glyphs = text_coverage(x - 192, (y - 128) % 18, hash(77, line), 80);
            let pixel = glyphs.map_or([255; 3], |a| blend([255; 3], [24; 3], a));
            second[at..at + 3].copy_from_slice(&pixel);
        }
    }
    [image(first), image(second)]
}

/// Two frames of noise.
fn noise() -> [Image; 2] {
    [1, 2].map(|seed| {
        let rgb = (0..WIDTH * HEIGHT)
            .flat_map(|i| hash(seed, i).to_le_bytes()[..3].to_vec())
            .collect();
        image(rgb)
    })
}

/// Makes the two frames a case alternates between.
type Pictures = fn() -> [Image; 2];

/// What one viewer saw in a case.
#[derive(Clone, Copy)]
struct Served {
    frames_per_second: f64,
    bytes_per_frame: f64,
}

/// One viewer receives `frames` updates while a producer alternates between `images`,
/// publishing whenever the viewer waits for a frame; the viewer lists `encodings`.
fn served(
    frames: u32,
    images: [Image; 2],
    format: Option<PixelFormat>,
    encodings: &[i32],
) -> Served {
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
    viewer.set_encodings(encodings);
    viewer.request(false);
    viewer.read_update_bytes();
    let mut bytes = 0;
    let start = Instant::now();
    for _ in 0..frames {
        viewer.request(true);
        bytes += viewer.read_update_bytes();
    }
    let seconds = start.elapsed().as_secs_f64();
    store.close();
    drop(server);
    producer.join().unwrap();
    Served {
        frames_per_second: f64::from(frames) / seconds,
        bytes_per_frame: bytes as f64 / f64::from(frames),
    }
}

/// Milliseconds the ZRLE encoder alone takes per whole `image`, encoding it `frames` times
/// in rectangles of one tile row, as the server sends it.
fn zrle_encode_ms(frames: u32, image: &Image) -> f64 {
    let mut encoder = ZrleEncoder::new();
    let format = PixelFormat::default();
    let start = Instant::now();
    for _ in 0..frames {
        for y in (0..image.height()).step_by(64) {
            let row = Region {
                x: 0,
                y,
                width: image.width(),
                height: (image.height() - y).min(64),
            };
            std::hint::black_box(encoder.encode(image, row, &format).unwrap());
        }
    }
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(frames)
}

fn print_case(name: &str, served: Served) {
    println!(
        "    {name:<5} {:8.1} frames/s  {:>11.0} bytes/frame  at 100 Mbit/s: {:8.1} frames/s",
        served.frames_per_second,
        served.bytes_per_frame,
        LINK_100_MBIT / served.bytes_per_frame,
    );
}

fn main() {
    let frames: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(120);
    let baseline = tcp_baseline(frames);
    println!("{WIDTH}x{HEIGHT}, {frames} frames per case, one viewer on loopback");
    println!("  baseline: plain TCP copy of 32-bit frames  {baseline:8.1} frames/s");
    let raw_cases = [
        (
            "whole frame changes, default format",
            served(frames, flat(true), None, &[RAW]),
        ),
        (
            "one 64x64 tile changes",
            served(frames, flat(false), None, &[RAW]),
        ),
        (
            "whole frame changes, 16-bit format",
            served(frames, flat(true), Some(RGB565), &[RAW]),
        ),
    ];
    for (name, case) in raw_cases {
        println!(
            "  {name:<40} {:8.1} frames/s  ({:.2}x the baseline)",
            case.frames_per_second,
            case.frames_per_second / baseline
        );
    }
    // Each case's name, its frames, and whether to time the encoder alone on its picture.
    let pictures: [(&str, Pictures, bool); 3] = [
        (
            "desktop, whole frame changes",
            desktop_changing_everywhere,
            true,
        ),
        ("noise, whole frame changes", noise, true),
        (
            "desktop, one 64x64 tile changes",
            desktop_changing_one_tile,
            false,
        ),
    ];
    println!("Raw against ZRLE (default format; ZRLE listed first, as viewers do)");
    for (name, picture, time_encoder) in pictures {
        let raw = served(frames, picture(), None, &[RAW]);
        let zrle = served(frames, picture(), None, &[ZRLE, RAW]);
        println!("  {name}");
        print_case("Raw", raw);
        print_case("ZRLE", zrle);
        println!(
            "    ZRLE/Raw: {:.2}x the frames/s, {:.4}x the bytes ({:.1}x smaller)",
            zrle.frames_per_second / raw.frames_per_second,
            zrle.bytes_per_frame / raw.bytes_per_frame,
            raw.bytes_per_frame / zrle.bytes_per_frame,
        );
        if time_encoder {
            let [first, _] = picture();
            let encode_ms = zrle_encode_ms(frames.min(30), &first);
            println!("    ZRLE encoder alone, whole {WIDTH}x{HEIGHT} picture: {encode_ms:.1} ms");
        }
    }
}
