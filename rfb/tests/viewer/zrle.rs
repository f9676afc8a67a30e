//! A ZRLE decoder (RFC 6143, section 7.7.6), written from the RFC apart from the server's
//! encoder so that each checks the other: one zlib inflater for the whole connection, and
//! every tile parsed back into pixels in the viewer's format, as Raw would have sent them.

use flate2::{Decompress, FlushDecompress};
use rfb::PixelFormat;

const TILE: usize = 64;

/// One decoded rectangle.
#[derive(Debug)]
pub struct Decoded {
    /// Row-major pixels in the viewer's format, the bytes Raw would have carried.
    pub pixels: Vec<u8>,
    /// Each tile's subencoding byte, in the order sent.
    pub subencodings: Vec<u8>,
}

/// The viewer's side of one connection's ZRLE stream.
pub struct ZrleDecoder {
    inflater: Decompress,
}

impl Default for ZrleDecoder {
    fn default() -> Self {
        ZrleDecoder {
            inflater: Decompress::new(true),
        }
    }
}

impl ZrleDecoder {
    /// Decodes the zlib bytes of one `width` x `height` rectangle (what follows its length);
    /// panics on anything malformed, or when the bytes hold more or less than its tiles.
    pub fn decode(
        &mut self,
        zlib: &[u8],
        width: u16,
        height: u16,
        format: &PixelFormat,
    ) -> Decoded {
        let data = self.inflate(zlib);
        let (width, height) = (usize::from(width), usize::from(height));
        let bytes = format.bytes_per_pixel();
        let mut reader = Reader {
            data: &data,
            at: 0,
            layout: CpixelLayout::of(format),
        };
        let mut pixels = vec![0u8; width * height * bytes];
        let mut subencodings = Vec::new();
        for tile_y in (0..height).step_by(TILE) {
            for tile_x in (0..width).step_by(TILE) {
                let tile_w = TILE.min(width - tile_x);
                let tile_h = TILE.min(height - tile_y);
                let subencoding = reader.byte();
                subencodings.push(subencoding);
                let tile = reader.tile(subencoding, tile_w, tile_h);
                for (i, pixel) in tile.iter().enumerate() {
                    let (x, y) = (tile_x + i % tile_w, tile_y + i / tile_w);
                    let at = (y * width + x) * bytes;
                    pixels[at..at + bytes].copy_from_slice(pixel);
                }
            }
        }
        assert_eq!(
            reader.at,
            data.len(),
            "bytes left over after the rectangle's tiles"
        );
        Decoded {
            pixels,
            subencodings,
        }
    }

    /// Everything `zlib` inflates to; the stream must have been flushed at its end.
    fn inflate(&mut self, zlib: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(zlib.len() * 4 + 4096);
        let mut input = zlib;
        loop {
            let before = self.inflater.total_in();
            self.inflater
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
                .expect("the rectangle's zlib data inflates");
            input = &input[(self.inflater.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(out.capacity());
        }
    }
}

/// How a CPIXEL becomes a pixel: its length, and where a 32-bit pixel's unused byte goes.
#[derive(Clone, Copy)]
struct CpixelLayout {
    len: usize,
    /// For 3-byte CPIXELs: the zero byte comes first on the wire (else last).
    zero_first: bool,
}

impl CpixelLayout {
    fn of(format: &PixelFormat) -> CpixelLayout {
        let whole = CpixelLayout {
            len: format.bytes_per_pixel(),
            zero_first: false,
        };
        if format.bits_per_pixel != 32 || format.depth > 24 {
            return whole;
        }
        let used = (u32::from(format.red_max) << format.red_shift)
            | (u32::from(format.green_max) << format.green_shift)
            | (u32::from(format.blue_max) << format.blue_shift);
        let unused_byte_is_high = used >> 24 == 0;
        let unused_byte_is_low = used & 0xff == 0;
        // Little-endian sends the low byte first, big-endian the high byte first.
        match (unused_byte_is_high, unused_byte_is_low) {
            (true, _) => CpixelLayout {
                len: 3,
                zero_first: format.big_endian,
            },
            (false, true) => CpixelLayout {
                len: 3,
                zero_first: !format.big_endian,
            },
            (false, false) => whole,
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    layout: CpixelLayout,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let byte = *self
            .data
            .get(self.at)
            .expect("the rectangle's data ends early");
        self.at += 1;
        byte
    }

    /// One CPIXEL, as the pixel's wire bytes.
    fn pixel(&mut self) -> Vec<u8> {
        let cpixel: Vec<u8> = (0..self.layout.len).map(|_| self.byte()).collect();
        match (self.layout.len, self.layout.zero_first) {
            (3, true) => [&[0][..], &cpixel].concat(),
            (3, false) => [&cpixel[..], &[0]].concat(),
            _ => cpixel,
        }
    }

    fn palette(&mut self, size: usize) -> Vec<Vec<u8>> {
        (0..size).map(|_| self.pixel()).collect()
    }

    /// A run's length: bytes summed until one is not 255, plus one.
    fn run_length(&mut self) -> usize {
        let mut length = 1;
        loop {
            let byte = self.byte();
            length += usize::from(byte);
            if byte != 255 {
                return length;
            }
        }
    }

    /// The pixels of one `width` x `height` tile, row-major.
    fn tile(&mut self, subencoding: u8, width: usize, height: usize) -> Vec<Vec<u8>> {
        let count = width * height;
        let palette_size = usize::from(subencoding & 0x7f);
        let tile = match subencoding {
            0 => (0..count).map(|_| self.pixel()).collect(),
            1 => vec![self.pixel(); count],
            2..=16 => {
                let palette = self.palette(palette_size);
                let bits = match palette_size {
                    2 => 1,
                    3 | 4 => 2,
                    _ => 4,
                };
                let mut tile = Vec::with_capacity(count);
                for _ in 0..height {
                    let row_bytes: Vec<u8> = (0..(width * bits).div_ceil(8))
                        .map(|_| self.byte())
                        .collect();
                    for x in 0..width {
                        let bit = x * bits;
                        let index =
                            (row_bytes[bit / 8] >> (8 - bits - bit % 8)) & ((1 << bits) - 1);
                        tile.push(palette[usize::from(index)].clone());
                    }
                }
                tile
            }
            128 => {
                let mut tile = Vec::with_capacity(count);
                while tile.len() < count {
                    let pixel = self.pixel();
                    let length = self.run_length();
                    tile.extend(std::iter::repeat_n(pixel, length));
                }
                tile
            }
            130..=255 => {
                let palette = self.palette(palette_size);
                let mut tile = Vec::with_capacity(count);
                while tile.len() < count {
                    let index = self.byte();
                    let length = match index & 0x80 {
                        0 => 1,
                        _ => self.run_length(),
                    };
                    let pixel = &palette[usize::from(index & 0x7f)];
                    tile.extend(std::iter::repeat_n(pixel.clone(), length));
                }
                tile
            }
            other => panic!("subencoding {other} is not one the RFC defines"),
        };
        assert_eq!(tile.len(), count, "a run goes past the tile's end");
        tile
    }
}
