//! The viewer side of RFB, just enough to check and measure what the server sends: shared
//! by the session tests and the throughput benchmark.
#![allow(dead_code)]

pub mod zrle;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rfb::PixelFormat;
use zrle::ZrleDecoder;

const TIMEOUT: Duration = Duration::from_secs(10);

/// 16-bit r5g6b5, little-endian: a format that takes the general conversion path.
pub const RGB565: PixelFormat = PixelFormat {
    bits_per_pixel: 16,
    depth: 16,
    big_endian: false,
    red_max: 31,
    green_max: 63,
    blue_max: 31,
    red_shift: 11,
    green_shift: 5,
    blue_shift: 0,
};

/// Encoding numbers the server may send.
pub const RAW: i32 = 0;
pub const ZRLE: i32 = 16;
pub const DESKTOP_SIZE: i32 = -223;

/// A rectangle of a FramebufferUpdate; a ZRLE rectangle's pixels are decoded (the bytes
/// Raw would have carried).
#[derive(Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
    pub encoding: i32,
    pub pixels: Vec<u8>,
}

/// The viewer side of the protocol, just enough to check what the server sends.
pub struct Viewer {
    pub stream: TcpStream,
    pub width: u16,
    pub height: u16,
    /// The pixel format in force: the server's, until the viewer sets its own.
    pub format: PixelFormat,
    zrle: ZrleDecoder,
}

impl Viewer {
    pub fn connect(address: SocketAddr, version: &[u8; 12]) -> Viewer {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut greeting = [0u8; 12];
        stream.read_exact(&mut greeting).unwrap();
        assert_eq!(&greeting, b"RFB 003.008\n");
        stream.write_all(version).unwrap();
        let mut security = [0u8; 2];
        stream.read_exact(&mut security).unwrap();
        assert_eq!(security, [1, 1]);
        stream.write_all(&[1]).unwrap();
        let result_len = if version == b"RFB 003.008\n" { 4 } else { 0 };
        let mut result = vec![0u8; result_len];
        stream.read_exact(&mut result).unwrap();
        assert!(result.iter().all(|&b| b == 0));
        stream.write_all(&[1]).unwrap();
        let mut init = [0u8; 24];
        stream.read_exact(&mut init).unwrap();
        let name_len = u32::from_be_bytes(init[20..24].try_into().unwrap()) as usize;
        let mut name = vec![0u8; name_len];
        stream.read_exact(&mut name).unwrap();
        Viewer {
            stream,
            width: u16::from_be_bytes([init[0], init[1]]),
            height: u16::from_be_bytes([init[2], init[3]]),
            format: PixelFormat::decode(init[4..20].try_into().unwrap()).unwrap(),
            zrle: ZrleDecoder::default(),
        }
    }

    pub fn set_encodings(&mut self, encodings: &[i32]) {
        let mut message = vec![2, 0];
        message.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
        for encoding in encodings {
            message.extend_from_slice(&encoding.to_be_bytes());
        }
        self.stream.write_all(&message).unwrap();
    }

    pub fn set_pixel_format(&mut self, format: &PixelFormat) {
        let mut message = vec![0, 0, 0, 0];
        message.extend_from_slice(&format.encode());
        self.stream.write_all(&message).unwrap();
        self.format = *format;
    }

    pub fn request(&mut self, incremental: bool) {
        let mut message = vec![3, u8::from(incremental), 0, 0, 0, 0];
        message.extend_from_slice(&self.width.to_be_bytes());
        message.extend_from_slice(&self.height.to_be_bytes());
        self.stream.write_all(&message).unwrap();
    }

    /// Reads one FramebufferUpdate, decoding its ZRLE rectangles.
    pub fn read_update(&mut self) -> Vec<Rect> {
        let count = self.read_update_header();
        (0..count)
            .map(|_| {
                let (mut rect, data) = self.read_rect();
                rect.pixels = match rect.encoding {
                    ZRLE => {
                        let format = self.format;
                        (self.zrle)
                            .decode(&data, rect.width, rect.height, &format)
                            .pixels
                    }
                    _ => data,
                };
                rect
            })
            .collect()
    }

    /// Reads one FramebufferUpdate without decoding it (as a benchmark's viewer, whose own
    /// decoding is not what is measured) and returns its size on the wire.
    pub fn read_update_bytes(&mut self) -> usize {
        let count = self.read_update_header();
        let rects: usize = (0..count)
            .map(|_| {
                let (rect, data) = self.read_rect();
                let length_field = if rect.encoding == ZRLE { 4 } else { 0 };
                12 + length_field + data.len()
            })
            .sum();
        4 + rects
    }

    fn read_update_header(&mut self) -> u16 {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).unwrap();
        assert_eq!(header[0], 0, "FramebufferUpdate");
        u16::from_be_bytes([header[2], header[3]])
    }

    /// One rectangle's header, and its data as sent: Raw pixels, or ZRLE's length and zlib
    /// bytes.
    fn read_rect(&mut self) -> (Rect, Vec<u8>) {
        let mut h = [0u8; 12];
        self.stream.read_exact(&mut h).unwrap();
        let at = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let encoding = i32::from_be_bytes(h[8..12].try_into().unwrap());
        let (width, height) = (at(4), at(6));
        let len = match encoding {
            RAW => usize::from(width) * usize::from(height) * self.format.bytes_per_pixel(),
            ZRLE => {
                let mut length = [0u8; 4];
                self.stream.read_exact(&mut length).unwrap();
                u32::from_be_bytes(length) as usize
            }
            DESKTOP_SIZE => 0,
            other => panic!("the server sent encoding {other}"),
        };
        let mut data = vec![0u8; len];
        self.stream.read_exact(&mut data).unwrap();
        let rect = Rect {
            x: at(0),
            y: at(2),
            width,
            height,
            encoding,
            pixels: Vec::new(),
        };
        (rect, data)
    }

    /// Reads until the server closes the connection; true when it does within the timeout.
    pub fn closed_by_server(&mut self) -> bool {
        let mut rest = Vec::new();
        self.stream.read_to_end(&mut rest).is_ok()
    }
}
