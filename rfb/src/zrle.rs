//! The ZRLE encoding (RFC 6143, section 7.7.6): a rectangle cut into 64x64 tiles, each tile
//! sent the cheapest of five ways, and everything through one zlib stream per viewer.
//!
//! Raw pixels cost 3 MB per 1024x768 frame, too much for an SSH tunnel over a real network;
//! ZRLE is the compressed encoding that common viewers (TigerVNC, RealVNC, libvncclient,
//! vncdotool, vncsnapshot) all decode. A guest's desktop is mostly flat colour, text and
//! gradients, which the run-length and palette forms of a tile shrink before zlib sees them.
//!
//! The zlib stream lasts as long as the connection: the viewer keeps one inflater, so each
//! rectangle's data ends with a sync flush (everything so far can be decoded) and never with
//! the end of the stream.

use std::ops::Range;

use flate2::{Compress, Compression, FlushCompress};
use thiserror::Error;

use crate::client_message::Region;
use crate::image::Image;
use crate::pixel_format::PixelFormat;

/// Edge of a ZRLE tile.
const TILE: u16 = 64;
/// Most colours a palette tile can have (the subencoding's low 7 bits).
const MAX_PALETTE: usize = 127;
/// Most colours a packed palette tile can have (4 bits per index).
const MAX_PACKED_PALETTE: usize = 16;
/// zlib level: the fastest. Tiles are already run-length and palette coded, so the higher
/// levels buy little for much CPU, spent on every frame for every viewer: on the benchmark's
/// 1280x800 desktop, level 2 took 2.5 times as long as level 1 for 4% fewer bytes, level 6
/// 25 times as long for 6% fewer.
const LEVEL: u32 = 1;
/// Spare room kept in the output before each deflate call.
const DEFLATE_ROOM: usize = 64 * 1024;

/// Why a rectangle could not be ZRLE-encoded.
#[derive(Debug, Error)]
pub enum ZrleError {
    #[error("rectangle {width}x{height} at {x},{y} is not inside the {image_width}x{image_height} frame")]
    OutsideImage {
        x: u16,
        y: u16,
        width: u16,
        height: u16,
        image_width: u16,
        image_height: u16,
    },
    #[error("a ZRLE rectangle's compressed data is {0} bytes, more than its 32-bit length holds")]
    TooLong(usize),
    #[error("zlib compression failed: {0}")]
    Deflate(#[from] flate2::CompressError),
}

/// One viewer's ZRLE encoder: its zlib stream, which must outlive every rectangle sent on the
/// connection, and scratch space reused from tile to tile.
///
/// Memory held: the compressor's state (a few hundred KiB) and a buffer as large as the
/// largest rectangle's compressed data, which the server bounds by cutting wide or tall
/// regions into smaller rectangles.
///
/// The server makes one for each viewer that lists ZRLE; it is public so that tests and the
/// benchmark can encode without a socket.
pub struct ZrleEncoder {
    deflate: Compress,
    /// The rectangle being encoded: its 4-byte length, then its zlib bytes.
    out: Vec<u8>,
    tile: Tile,
}

impl Default for ZrleEncoder {
    fn default() -> Self {
        ZrleEncoder::new()
    }
}

impl ZrleEncoder {
    /// An encoder at the start of a connection's zlib stream.
    pub fn new() -> ZrleEncoder {
        ZrleEncoder {
            deflate: Compress::new(Compression::new(LEVEL), true),
            out: Vec::new(),
            tile: Tile::default(),
        }
    }

    /// Encodes `region` of `image` in `format` and returns the rectangle's ZRLE data as it
    /// goes on the wire after the rectangle header: the compressed length (32 bits, big
    /// endian), then the zlib bytes, ending with a sync flush.
    pub fn encode(
        &mut self,
        image: &Image,
        region: Region,
        format: &PixelFormat,
    ) -> Result<&[u8], ZrleError> {
        let x_end = u32::from(region.x) + u32::from(region.width);
        let y_end = u32::from(region.y) + u32::from(region.height);
        if x_end > u32::from(image.width()) || y_end > u32::from(image.height()) {
            return Err(ZrleError::OutsideImage {
                x: region.x,
                y: region.y,
                width: region.width,
                height: region.height,
                image_width: image.width(),
                image_height: image.height(),
            });
        }
        let cpixel = CpixelWriter::new(format);
        self.out.clear();
        self.out.extend_from_slice(&[0; 4]);
        let mut y = u32::from(region.y);
        while y < y_end {
            let height = (y_end - y).min(u32::from(TILE)) as u16;
            let mut x = u32::from(region.x);
            while x < x_end {
                let width = (x_end - x).min(u32::from(TILE)) as u16;
                let tile = Region {
                    x: x as u16,
                    y: y as u16,
                    width,
                    height,
                };
                self.tile.load(image, tile, format);
                self.tile.encode(usize::from(width), &cpixel);
                deflate(
                    &mut self.deflate,
                    &self.tile.encoded,
                    &mut self.out,
                    FlushCompress::None,
                )?;
                x += u32::from(width);
            }
            y += u32::from(height);
        }
        deflate(&mut self.deflate, &[], &mut self.out, FlushCompress::Sync)?;
        let length = self.out.len() - 4;
        let length32 = u32::try_from(length).map_err(|_| ZrleError::TooLong(length))?;
        self.out[..4].copy_from_slice(&length32.to_be_bytes());
        Ok(&self.out)
    }
}

/// Feeds `input` to the zlib stream, appending what comes out to `out`; with
/// [`FlushCompress::Sync`], until everything fed so far has come out.
fn deflate(
    deflate: &mut Compress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    flush: FlushCompress,
) -> Result<(), ZrleError> {
    loop {
        if out.capacity() - out.len() < DEFLATE_ROOM {
            out.reserve(DEFLATE_ROOM.max(input.len()));
        }
        let before = deflate.total_in();
        deflate.compress_vec(input, out, flush)?;
        let consumed = usize::try_from(deflate.total_in() - before)
            .expect("consumed no more than the input's length");
        input = &input[consumed..];
        // Room left over means the compressor had nothing more to write.
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

/// Which bytes of a pixel, as it lies on the wire, make its CPIXEL: all of them, except
/// for 32-bit true colour of depth 24 or less whose colours all lie in the low three or the
/// high three bytes, where only those three are sent (RFC 6143, section 7.7.6).
fn compressed_pixel(format: &PixelFormat) -> Range<usize> {
    let bytes = format.bytes_per_pixel();
    if format.bits_per_pixel != 32 || format.depth > 24 {
        return 0..bytes;
    }
    let colour_bits = u64::from(format.red_max) << format.red_shift
        | u64::from(format.green_max) << format.green_shift
        | u64::from(format.blue_max) << format.blue_shift;
    let fits_low = colour_bits < 1 << 24;
    let fits_high = colour_bits & 0xff == 0;
    // The unused byte is the high one (low three used) or the low one (high three used);
    // on the wire it comes first or last according to the byte order.
    match (fits_low, fits_high, format.big_endian) {
        (true, _, false) | (false, true, true) => 0..3,
        (true, _, true) | (false, true, false) => 1..4,
        (false, false, _) => 0..bytes,
    }
}

/// Colours seen in a tile, in order of first appearance, with a small open-addressing table
/// to find a colour's index without searching the list.
struct Palette {
    colours: Vec<u32>,
    /// Index + 1 of the colour hashed to each slot; 0 for an empty slot.
    slots: [u8; 256],
}

impl Default for Palette {
    fn default() -> Self {
        Palette {
            colours: Vec::with_capacity(MAX_PALETTE),
            slots: [0; 256],
        }
    }
}

impl Palette {
    fn clear(&mut self) {
        self.colours.clear();
        self.slots = [0; 256];
    }

    /// The index of `colour`, added when new; `None` when it would be colour 128.
    fn index(&mut self, colour: u32) -> Option<u8> {
        // Fibonacci hashing: the top byte of the product spreads nearby colours apart.
        let mut slot = usize::from((colour.wrapping_mul(0x9e37_79b1) >> 24) as u8);
        loop {
            match self.slots[slot] {
                0 => break,
                entry if self.colours[usize::from(entry - 1)] == colour => {
                    return Some(entry - 1);
                }
                _ => slot = (slot + 1) % self.slots.len(),
            }
        }
        if self.colours.len() == MAX_PALETTE {
            return None;
        }
        self.colours.push(colour);
        let index = (self.colours.len() - 1) as u8;
        self.slots[slot] = index + 1;
        Some(index)
    }
}

/// How one tile is sent (the subencoding byte's forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Raw,
    Solid,
    /// Palette, then indices of 1, 2 or 4 bits, each row padded to a byte.
    PackedPalette {
        bits: usize,
    },
    /// Runs of (CPIXEL, length).
    PlainRle,
    /// Palette, then runs of (index, length), a run of one being the index alone.
    PaletteRle,
}

/// Writes a pixel value's CPIXEL: the value's bytes in the format's order, less the unused
/// one where [`compressed_pixel`] drops it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CpixelWriter {
    big_endian: bool,
    /// Which of the value's four bytes (in the format's order) are sent.
    bytes: Range<usize>,
}

impl CpixelWriter {
    fn new(format: &PixelFormat) -> CpixelWriter {
        let wire = compressed_pixel(format);
        // A big-endian value's wire bytes are the last of its four; a little-endian one's
        // the first.
        let skip = match format.big_endian {
            true => 4 - format.bytes_per_pixel(),
            false => 0,
        };
        CpixelWriter {
            big_endian: format.big_endian,
            bytes: wire.start + skip..wire.end + skip,
        }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn push(&self, out: &mut Vec<u8>, value: u32) {
        let bytes = match self.big_endian {
            true => value.to_be_bytes(),
            false => value.to_le_bytes(),
        };
        out.extend_from_slice(&bytes[self.bytes.clone()]);
    }
}

/// One tile's pixels and the scratch space to encode it, kept between tiles.
#[derive(Default)]
struct Tile {
    /// The tile's pixel values in the viewer's format, row by row.
    values: Vec<u32>,
    /// Palette indices, one per pixel, for a packed palette.
    indices: Vec<u8>,
    palette: Palette,
    /// The tile's ZRLE bytes, before zlib.
    encoded: Vec<u8>,
}

impl Tile {
    /// Converts `region` of `image` (at most one tile) to the viewer's format.
    fn load(&mut self, image: &Image, region: Region, format: &PixelFormat) {
        self.values.clear();
        for y in region.y..region.y + region.height {
            format.pixel_values(image.span(region.x, y, region.width), &mut self.values);
        }
    }

    /// Encodes the loaded tile, `width` pixels wide, into `encoded`, in the form that comes
    /// out smallest before zlib (one pass over its runs to count, one to write).
    fn encode(&mut self, width: usize, cpixel: &CpixelWriter) {
        let form = self.analyse(width, cpixel.len());
        let palette_len = self.palette.colours.len() as u8;
        self.encoded.clear();
        let out = &mut self.encoded;
        let values = &self.values;
        match form {
            Form::Raw => {
                out.push(0);
                values.iter().for_each(|&v| cpixel.push(out, v));
            }
            Form::Solid => {
                out.push(1);
                cpixel.push(out, values[0]);
            }
            Form::PackedPalette { bits } => {
                out.push(palette_len);
                (self.palette.colours.iter()).for_each(|&c| cpixel.push(out, c));
                self.indices.clear();
                for run in values.chunk_by(|a, b| a == b) {
                    let index = self.palette.index(run[0]).expect("a colour of the palette");
                    (self.indices).extend(std::iter::repeat_n(index, run.len()));
                }
                for row in self.indices.chunks(width) {
                    pack_row(out, row, bits);
                }
            }
            Form::PlainRle => {
                out.push(128);
                for run in values.chunk_by(|a, b| a == b) {
                    cpixel.push(out, run[0]);
                    push_run_length(out, run.len());
                }
            }
            Form::PaletteRle => {
                out.push(128 | palette_len);
                (self.palette.colours.iter()).for_each(|&c| cpixel.push(out, c));
                for run in values.chunk_by(|a, b| a == b) {
                    let index = self.palette.index(run[0]).expect("a colour of the palette");
                    match run.len() {
                        1 => out.push(index),
                        len => {
                            out.push(index | 0x80);
                            push_run_length(out, len);
                        }
                    }
                }
            }
        }
    }

    /// Counts the tile's colours and runs (runs continue from one row onto the next) and
    /// picks the form with the fewest bytes.
    fn analyse(&mut self, width: usize, cpixel_len: usize) -> Form {
        self.palette.clear();
        let mut overflowed = false;
        // Bytes the runs take as plain RLE and as palette RLE (palettes not counted).
        let (mut plain_rle, mut palette_rle) = (0usize, 0usize);
        for run in self.values.chunk_by(|a, b| a == b) {
            plain_rle += cpixel_len + run_length_bytes(run.len());
            palette_rle += palette_run_bytes(run.len());
            overflowed = overflowed || self.palette.index(run[0]).is_none();
        }
        let colours = self.palette.colours.len();
        if !overflowed && colours == 1 {
            return Form::Solid;
        }
        let palette_bytes = colours * cpixel_len;
        let rows = self.values.len() / width;
        let mut best = (Form::Raw, self.values.len() * cpixel_len);
        let mut consider = |form: Form, bytes: usize| {
            if bytes < best.1 {
                best = (form, bytes);
            }
        };
        consider(Form::PlainRle, plain_rle);
        if !overflowed {
            consider(Form::PaletteRle, palette_bytes + palette_rle);
        }
        if !overflowed && colours <= MAX_PACKED_PALETTE {
            let bits = packed_bits(colours);
            let packed = palette_bytes + rows * (width * bits).div_ceil(8);
            consider(Form::PackedPalette { bits }, packed);
        }
        best.0
    }
}

/// Bits per index of a packed palette of `colours` (2 to 16) colours.
fn packed_bits(colours: usize) -> usize {
    match colours {
        0..=2 => 1,
        3..=4 => 2,
        _ => 4,
    }
}

/// Appends one row of palette indices, `bits` each, most significant first, padded with
/// zero bits to a whole byte.
fn pack_row(out: &mut Vec<u8>, row: &[u8], bits: usize) {
    let (mut byte, mut filled) = (0u8, 0);
    for &index in row {
        byte = byte << bits | index;
        filled += bits;
        if filled == 8 {
            out.push(byte);
            (byte, filled) = (0, 0);
        }
    }
    if filled > 0 {
        out.push(byte << (8 - filled));
    }
}

/// Bytes a run length takes: (length - 1) as a sum of bytes, every one 255 but the last.
fn run_length_bytes(len: usize) -> usize {
    (len - 1) / 255 + 1
}

/// Bytes a run takes in palette RLE: its index alone for one pixel, else the index and its
/// length.
fn palette_run_bytes(len: usize) -> usize {
    match len {
        1 => 1,
        _ => 1 + run_length_bytes(len),
    }
}

fn push_run_length(out: &mut Vec<u8>, len: usize) {
    let mut rest = len - 1;
    while rest >= 255 {
        out.push(255);
        rest -= 255;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(bits_per_pixel: u8, depth: u8, shifts: [u8; 3], big_endian: bool) -> PixelFormat {
        PixelFormat {
            bits_per_pixel,
            depth,
            big_endian,
            red_shift: shifts[0],
            green_shift: shifts[1],
            blue_shift: shifts[2],
            ..PixelFormat::default()
        }
    }

    #[test]
    fn little_endian_colours_in_the_low_three_bytes_send_the_first_three() {
        let cpixel = compressed_pixel(&format(32, 24, [16, 8, 0], false));

        assert_eq!(cpixel, 0..3);
    }

    #[test]
    fn big_endian_colours_in_the_low_three_bytes_send_the_last_three() {
        let cpixel = compressed_pixel(&format(32, 24, [16, 8, 0], true));

        assert_eq!(cpixel, 1..4);
    }

    #[test]
    fn little_endian_colours_in_the_high_three_bytes_send_the_last_three() {
        let cpixel = compressed_pixel(&format(32, 24, [24, 16, 8], false));

        assert_eq!(cpixel, 1..4);
    }

    #[test]
    fn big_endian_colours_in_the_high_three_bytes_send_the_first_three() {
        let cpixel = compressed_pixel(&format(32, 24, [24, 16, 8], true));

        assert_eq!(cpixel, 0..3);
    }

    #[test]
    fn depth_over_24_sends_whole_pixels() {
        let cpixel = compressed_pixel(&format(32, 32, [16, 8, 0], false));

        assert_eq!(cpixel, 0..4);
    }

    #[test]
    fn colours_spanning_all_four_bytes_send_whole_pixels() {
        let cpixel = compressed_pixel(&format(32, 24, [24, 8, 0], false));

        assert_eq!(cpixel, 0..4);
    }

    #[test]
    fn sixteen_bit_pixels_are_sent_whole() {
        let rgb565 = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
            big_endian: false,
        };

        assert_eq!(compressed_pixel(&rgb565), 0..2);
    }

    #[test]
    fn big_endian_16_bit_cpixels_are_the_values_low_two_bytes_high_first() {
        let rgb565_be = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            big_endian: true,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
        };
        let mut out = Vec::new();

        CpixelWriter::new(&rgb565_be).push(&mut out, 0xf800);

        assert_eq!(out, [0xf8, 0x00]);
    }

    #[test]
    fn little_endian_24_bit_colour_cpixels_are_the_values_low_three_bytes_low_first() {
        let mut out = Vec::new();

        CpixelWriter::new(&PixelFormat::default()).push(&mut out, 0x11_2233);

        assert_eq!(out, [0x33, 0x22, 0x11]);
    }

    #[test]
    fn run_lengths_are_255s_then_the_remainder() {
        let mut out = Vec::new();

        for len in [1, 255, 256, 600] {
            push_run_length(&mut out, len);
        }

        assert_eq!(out, [0, 254, 255, 0, 255, 255, 89]);
    }

    #[test]
    fn packed_rows_are_padded_to_a_byte() {
        let mut out = Vec::new();

        pack_row(&mut out, &[1, 0, 1], 1);
        pack_row(&mut out, &[3, 2, 1], 2);
        pack_row(&mut out, &[15, 1, 9], 4);

        assert_eq!(out, [0b1010_0000, 0b1110_0100, 0xf1, 0x90]);
    }

    #[test]
    fn the_128th_colour_overflows_the_palette() {
        let mut palette = Palette::default();

        let indices: Vec<_> = (0..128u32).map(|c| palette.index(c * 4099)).collect();
        let again = palette.index(126 * 4099);

        assert_eq!(indices[126], Some(126));
        assert_eq!(indices[127], None);
        assert_eq!(again, Some(126));
    }

    #[test]
    fn a_region_past_the_frame_is_refused() {
        let image = Image::black(10, 10);
        let region = Region {
            x: 5,
            y: 0,
            width: 6,
            height: 1,
        };

        let err = ZrleEncoder::new()
            .encode(&image, region, &PixelFormat::default())
            .unwrap_err();

        assert!(matches!(err, ZrleError::OutsideImage { .. }), "{err}");
    }
}
