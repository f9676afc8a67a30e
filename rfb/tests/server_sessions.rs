//! The server over real loopback TCP, driven by a minimal viewer written here: what each kind
//! of viewer is sent, and how misbehaving viewers are dropped.

mod viewer;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use rfb::{FrameStore, Image, PixelFormat, Server, ServerOptions, Version, ViewerEvent};
use viewer::{Rect, Viewer, DESKTOP_SIZE, RAW, RGB565, ZRLE};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A server on an ephemeral loopback port, its store, and its viewer events.
struct Fixture {
    server: Server,
    store: Arc<FrameStore>,
    events: Receiver<ViewerEvent>,
}

fn start(initial: Image, options: ServerOptions) -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let store = FrameStore::new(initial);
    let (tx, events) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let server = Server::start(
        listener,
        Arc::clone(&store),
        options,
        Arc::new(move |e| {
            let _ = tx.lock().unwrap().send(e);
        }),
    )
    .unwrap();
    Fixture {
        server,
        store,
        events,
    }
}

/// Acts as the frame producer once: waits for a viewer's demand, then publishes `image`, or
/// the latest frame again when `None`.
fn produce(store: &FrameStore, image: Option<Image>) {
    assert!(
        store.wait_for_demand(TIMEOUT),
        "no viewer asked for a frame"
    );
    match image {
        Some(image) => store.publish(image),
        None => store.publish_unchanged(),
    }
}

/// An image whose every pixel is `rgb`.
fn filled(width: u32, height: u32, rgb: [u8; 3]) -> Image {
    Image::new(width, height, rgb.repeat((width * height) as usize)).unwrap()
}

/// RGB bytes of a `width` x `height` picture with flat areas, stripes, a gradient and noise,
/// so that a ZRLE update holds tiles of several kinds.
fn picture_rgb(width: u16, height: u16, seed: u8) -> Vec<u8> {
    let (w, h) = (usize::from(width), usize::from(height));
    (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            let noise = (i as u32).wrapping_mul(2_654_435_761) >> 8;
            match (x * 4 / w, y * 2 / h) {
                (0, _) => [seed, 40, 90],
                (1, _) => [255 * (y % 2) as u8, 255, seed],
                (2, _) => [(x * 255 / w) as u8, (y * 255 / h) as u8, seed],
                _ => noise.to_le_bytes()[..3].try_into().unwrap(),
            }
        })
        .collect()
}

/// The default-format (B, G, R, 0) pixels Raw would send for a region of `rgb`, an image
/// `width` pixels wide.
fn default_pixels(rgb: &[u8], width: u16, x: u16, y: u16, w: u16, h: u16) -> Vec<u8> {
    let mut out = Vec::new();
    for row in y..y + h {
        let start = (usize::from(row) * usize::from(width) + usize::from(x)) * 3;
        let span = &rgb[start..start + usize::from(w) * 3];
        PixelFormat::default().convert_rgb(span, &mut out);
    }
    out
}

fn zrle_rect(rgb: &[u8], width: u16, x: u16, y: u16, w: u16, h: u16) -> Rect {
    Rect {
        x,
        y,
        width: w,
        height: h,
        encoding: ZRLE,
        pixels: default_pixels(rgb, width, x, y, w, h),
    }
}

fn raw_rect(x: u16, y: u16, width: u16, height: u16, pixel: &[u8]) -> Rect {
    Rect {
        x,
        y,
        width,
        height,
        encoding: RAW,
        pixels: pixel.repeat(usize::from(width) * usize::from(height)),
    }
}

#[test]
fn a_full_request_gets_the_whole_frame_in_the_default_format() {
    let fixture = start(filled(3, 2, [10, 20, 30]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");

    viewer.request(false);
    produce(&fixture.store, None);
    let update = viewer.read_update();

    assert_eq!((viewer.width, viewer.height), (3, 2));
    assert_eq!(update, vec![raw_rect(0, 0, 3, 2, &[30, 20, 10, 0])]);
}

#[test]
fn an_incremental_request_is_answered_with_only_the_changed_tiles_of_the_next_frame() {
    let fixture = start(filled(100, 70, [0, 0, 0]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");
    viewer.request(false);
    produce(&fixture.store, None);
    viewer.read_update();
    let mut next = vec![0u8; 100 * 70 * 3];
    let at = (66 * 100 + 80) * 3;
    next[at..at + 3].copy_from_slice(&[255, 255, 255]);

    viewer.request(true);
    produce(&fixture.store, Some(Image::new(100, 70, next).unwrap()));
    let update = viewer.read_update();

    let rect = &update[0];
    assert_eq!(
        (update.len(), rect.x, rect.y, rect.width, rect.height),
        (1, 64, 64, 36, 6)
    );
    let white = (2 * 36 + 16) * 4;
    assert_eq!(&rect.pixels[white..white + 4], [255, 255, 255, 0]);
}

#[test]
fn an_unchanged_frame_leaves_an_incremental_request_waiting() {
    let fixture = start(filled(8, 8, [1, 2, 3]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");
    viewer.request(false);
    produce(&fixture.store, None);
    viewer.read_update();
    viewer.request(true);

    produce(&fixture.store, Some(filled(8, 8, [1, 2, 3])));
    produce(&fixture.store, Some(filled(8, 8, [9, 9, 9])));
    let update = viewer.read_update();

    assert_eq!(update, vec![raw_rect(0, 0, 8, 8, &[9, 9, 9, 0])]);
}

#[test]
fn a_request_is_answered_from_a_frame_newer_than_itself() {
    let fixture = start(filled(1, 1, [0, 0, 0]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");

    viewer.request(false);
    produce(&fixture.store, Some(filled(1, 1, [4, 5, 6])));
    let update = viewer.read_update();

    assert_eq!(update, vec![raw_rect(0, 0, 1, 1, &[6, 5, 4, 0])]);
}

#[test]
fn pixels_follow_the_viewers_pixel_format() {
    let fixture = start(filled(2, 1, [255, 0, 0]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");
    let rgb565 = PixelFormat {
        big_endian: true,
        ..RGB565
    };

    viewer.set_pixel_format(&rgb565);
    viewer.request(false);
    produce(&fixture.store, None);
    let update = viewer.read_update();

    assert_eq!(update, vec![raw_rect(0, 0, 2, 1, &[0xf8, 0x00])]);
}

#[test]
fn a_viewer_that_can_resize_is_told_the_new_size_before_new_pixels() {
    let fixture = start(filled(4, 4, [0, 0, 0]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");
    viewer.set_encodings(&[0, -223]);

    viewer.request(false);
    produce(&fixture.store, Some(filled(6, 2, [5, 5, 5])));
    let resize = viewer.read_update();
    (viewer.width, viewer.height) = (6, 2);
    viewer.request(false);
    produce(&fixture.store, None);
    let pixels = viewer.read_update();

    assert_eq!(
        resize,
        vec![Rect {
            x: 0,
            y: 0,
            width: 6,
            height: 2,
            encoding: DESKTOP_SIZE,
            pixels: Vec::new()
        }]
    );
    assert_eq!(pixels, vec![raw_rect(0, 0, 6, 2, &[5, 5, 5, 0])]);
}

#[test]
fn a_viewer_that_cannot_resize_sees_the_new_frame_cut_to_its_size() {
    let fixture = start(filled(2, 2, [0, 0, 0]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");

    viewer.request(false);
    produce(&fixture.store, Some(filled(3, 1, [7, 7, 7])));
    let update = viewer.read_update();

    let mut expected = raw_rect(0, 0, 2, 2, &[0, 0, 0, 0]);
    expected.pixels[..8].copy_from_slice(&[7, 7, 7, 0, 7, 7, 7, 0]);
    assert_eq!(update, vec![expected]);
}

#[test]
fn a_viewer_listing_zrle_decodes_a_full_and_then_an_incremental_update_exactly() {
    let first = picture_rgb(150, 100, 7);
    let initial = Image::new(150, 100, first.clone()).unwrap();
    let fixture = start(initial, ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");
    viewer.set_encodings(&[ZRLE, RAW, DESKTOP_SIZE]);
    viewer.request(false);
    produce(&fixture.store, None);
    let full = viewer.read_update();
    let mut second = first.clone();
    let at = (70 * 150 + 140) * 3;
    second[at..at + 3].copy_from_slice(&[1, 2, 3]);

    viewer.request(true);
    produce(
        &fixture.store,
        Some(Image::new(150, 100, second.clone()).unwrap()),
    );
    let incremental = viewer.read_update();

    assert_eq!(
        full,
        vec![
            zrle_rect(&first, 150, 0, 0, 150, 64),
            zrle_rect(&first, 150, 0, 64, 150, 36),
        ]
    );
    assert_eq!(incremental, vec![zrle_rect(&second, 150, 128, 64, 22, 36)]);
}

#[test]
fn zrle_is_preferred_wherever_the_viewer_lists_it() {
    let rgb = picture_rgb(40, 30, 1);
    let fixture = start(
        Image::new(40, 30, rgb.clone()).unwrap(),
        ServerOptions::default(),
    );
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");

    viewer.set_encodings(&[7, 5, RAW, 1, ZRLE, DESKTOP_SIZE]);
    viewer.request(false);
    produce(&fixture.store, None);
    let update = viewer.read_update();

    assert_eq!(update, vec![zrle_rect(&rgb, 40, 0, 0, 40, 30)]);
}

#[test]
fn a_viewer_listing_other_encodings_but_not_zrle_gets_raw() {
    let fixture = start(filled(2, 1, [1, 2, 3]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");

    viewer.set_encodings(&[1, 7, 6, 5, 4, 2, RAW]);
    viewer.request(false);
    produce(&fixture.store, None);
    let update = viewer.read_update();

    assert_eq!(update, vec![raw_rect(0, 0, 2, 1, &[3, 2, 1, 0])]);
}

#[test]
fn zrle_follows_the_viewers_16_bit_pixel_format() {
    let rgb = picture_rgb(70, 20, 3);
    let fixture = start(
        Image::new(70, 20, rgb.clone()).unwrap(),
        ServerOptions::default(),
    );
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");
    let mut expected = Vec::new();
    RGB565.convert_rgb(&rgb, &mut expected);

    viewer.set_pixel_format(&RGB565);
    viewer.set_encodings(&[ZRLE]);
    viewer.request(false);
    produce(&fixture.store, None);
    let update = viewer.read_update();

    assert_eq!(
        update,
        vec![Rect {
            x: 0,
            y: 0,
            width: 70,
            height: 20,
            encoding: ZRLE,
            pixels: expected
        }]
    );
}

#[test]
fn a_zrle_viewer_that_can_resize_is_told_the_new_size_then_sent_zrle() {
    let fixture = start(filled(4, 4, [0, 0, 0]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");
    viewer.set_encodings(&[ZRLE, DESKTOP_SIZE]);
    let bigger = picture_rgb(90, 70, 9);

    viewer.request(false);
    produce(
        &fixture.store,
        Some(Image::new(90, 70, bigger.clone()).unwrap()),
    );
    let resize = viewer.read_update();
    (viewer.width, viewer.height) = (90, 70);
    viewer.request(false);
    produce(&fixture.store, None);
    let pixels = viewer.read_update();

    assert_eq!(
        resize.iter().map(|r| r.encoding).collect::<Vec<_>>(),
        [DESKTOP_SIZE]
    );
    assert_eq!(
        pixels,
        vec![
            zrle_rect(&bigger, 90, 0, 0, 90, 64),
            zrle_rect(&bigger, 90, 0, 64, 90, 6),
        ]
    );
}

#[test]
fn one_viewer_more_than_allowed_is_refused_with_the_reason() {
    let options = ServerOptions {
        max_viewers: 1,
        ..ServerOptions::default()
    };
    let fixture = start(filled(2, 2, [0, 0, 0]), options);
    let _first = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");
    let mut second = TcpStream::connect(fixture.server.local_addr()).unwrap();
    second.set_read_timeout(Some(TIMEOUT)).unwrap();

    second.write_all(b"RFB 003.008\n").unwrap();
    let mut reply = Vec::new();
    second.read_to_end(&mut reply).unwrap();

    let mut expected = b"RFB 003.008\n\0".to_vec();
    let reason = b"too many viewers (1 connected)";
    expected.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    expected.extend_from_slice(reason);
    assert_eq!(reply, expected);
}

#[test]
fn connections_beyond_twice_the_viewer_limit_are_closed_unanswered() {
    let options = ServerOptions {
        max_viewers: 1,
        ..ServerOptions::default()
    };
    let fixture = start(filled(2, 2, [0, 0, 0]), options);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(fixture.server.local_addr()).unwrap();
            stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut greeting = [0u8; 12];
            stream.read_exact(&mut greeting).unwrap();
            stream
        })
        .collect();
    let mut extra = TcpStream::connect(fixture.server.local_addr()).unwrap();
    extra.set_read_timeout(Some(TIMEOUT)).unwrap();

    let mut reply = Vec::new();
    extra.read_to_end(&mut reply).unwrap();

    assert_eq!(held.len(), 2);
    assert!(reply.is_empty(), "got {reply:?}");
}

#[test]
fn a_viewer_that_stalls_in_the_handshake_is_dropped_at_the_timeout() {
    let options = ServerOptions {
        handshake_timeout: Duration::from_millis(200),
        ..ServerOptions::default()
    };
    let fixture = start(filled(2, 2, [0, 0, 0]), options);
    let mut silent = TcpStream::connect(fixture.server.local_addr()).unwrap();
    silent.set_read_timeout(Some(TIMEOUT)).unwrap();

    let mut greeting = Vec::new();
    silent.read_to_end(&mut greeting).unwrap();
    let event = fixture.events.recv_timeout(TIMEOUT).unwrap();

    assert_eq!(greeting, b"RFB 003.008\n");
    assert!(
        matches!(&event, ViewerEvent::Rejected { reason, .. } if reason.starts_with("connection failed during the handshake")),
        "{event:?}"
    );
}

#[test]
fn a_viewer_sending_an_unknown_message_is_disconnected_with_the_reason() {
    let fixture = start(filled(2, 2, [0, 0, 0]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");
    let connected = fixture.events.recv_timeout(TIMEOUT).unwrap();

    viewer.stream.write_all(&[200]).unwrap();
    let closed = viewer.closed_by_server();
    let event = fixture.events.recv_timeout(TIMEOUT).unwrap();

    assert!(matches!(
        connected,
        ViewerEvent::Connected {
            version: Version::V3_8,
            ..
        }
    ));
    assert!(closed);
    assert!(
        matches!(&event, ViewerEvent::Disconnected { reason, .. } if reason == "viewer sent unknown message type 200"),
        "{event:?}"
    );
}

#[test]
fn input_is_counted_and_dropped() {
    let fixture = start(filled(2, 2, [0, 0, 0]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.007\n");
    fixture.events.recv_timeout(TIMEOUT).unwrap();

    viewer
        .stream
        .write_all(&[4, 1, 0, 0, 0, 0, 0, 0x61])
        .unwrap();
    viewer.stream.write_all(&[5, 1, 0, 1, 0, 1]).unwrap();
    viewer.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let event = fixture.events.recv_timeout(TIMEOUT).unwrap();

    assert!(
        matches!(&event, ViewerEvent::Disconnected { ignored_input: 2, reason, .. } if reason == "viewer closed the connection"),
        "{event:?}"
    );
}

#[test]
fn dropping_the_server_disconnects_its_viewers() {
    let fixture = start(filled(2, 2, [0, 0, 0]), ServerOptions::default());
    let mut viewer = Viewer::connect(fixture.server.local_addr(), b"RFB 003.008\n");
    viewer.request(false);
    produce(&fixture.store, None);
    viewer.read_update();

    drop(fixture.server);

    assert!(viewer.closed_by_server());
}
