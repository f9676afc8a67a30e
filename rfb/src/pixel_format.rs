//! Pixel formats a viewer may ask for, and the conversion of RGB pixels into them.
//!
//! RFB lets each viewer choose how pixels travel: bits per pixel, byte order, and where each
//! colour channel sits. The format arrives from the network, so it is checked before any
//! pixel is converted with it.

use thiserror::Error;

/// Size of a PIXEL_FORMAT structure on the wire.
pub const PIXEL_FORMAT_LEN: usize = 16;

/// Why a viewer's pixel format cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PixelFormatError {
    #[error("bits per pixel {0} is not 8, 16 or 32")]
    BitsPerPixel(u8),
    #[error("colour-map pixel formats are not supported (only true colour)")]
    ColourMap,
    #[error("{channel} channel (max {max}, shift {shift}) does not fit in {bits_per_pixel} bits")]
    Channel {
        channel: &'static str,
        max: u16,
        shift: u8,
        bits_per_pixel: u8,
    },
}

/// A true-colour pixel format (RFC 6143, section 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub red_max: u16,
    pub green_max: u16,
    pub blue_max: u16,
    pub red_shift: u8,
    pub green_shift: u8,
    pub blue_shift: u8,
}

impl Default for PixelFormat {
    /// The format the server announces: 32 bits, little-endian x8r8g8b8, which is also how
    /// the GPU's scanout lies in memory.
    fn default() -> Self {
        PixelFormat {
            bits_per_pixel: 32,
            depth: 24,
            big_endian: false,
            red_max: 255,
            green_max: 255,
            blue_max: 255,
            red_shift: 16,
            green_shift: 8,
            blue_shift: 0,
        }
    }
}

impl PixelFormat {
    /// Decodes and checks a PIXEL_FORMAT structure.
    pub fn decode(bytes: &[u8; PIXEL_FORMAT_LEN]) -> Result<PixelFormat, PixelFormatError> {
        let u16_at = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        if bytes[3] == 0 {
            return Err(PixelFormatError::ColourMap);
        }
        let format = PixelFormat {
            bits_per_pixel: bytes[0],
            depth: bytes[1],
            big_endian: bytes[2] != 0,
            red_max: u16_at(4),
            green_max: u16_at(6),
            blue_max: u16_at(8),
            red_shift: bytes[10],
            green_shift: bytes[11],
            blue_shift: bytes[12],
        };
        format.check()?;
        Ok(format)
    }

    /// The PIXEL_FORMAT structure for this format.
    pub fn encode(&self) -> [u8; PIXEL_FORMAT_LEN] {
        let mut out = [0u8; PIXEL_FORMAT_LEN];
        out[0] = self.bits_per_pixel;
        out[1] = self.depth;
        out[2] = u8::from(self.big_endian);
        out[3] = 1;
        out[4..6].copy_from_slice(&self.red_max.to_be_bytes());
        out[6..8].copy_from_slice(&self.green_max.to_be_bytes());
        out[8..10].copy_from_slice(&self.blue_max.to_be_bytes());
        out[10] = self.red_shift;
        out[11] = self.green_shift;
        out[12] = self.blue_shift;
        out
    }

    fn check(&self) -> Result<(), PixelFormatError> {
        if !matches!(self.bits_per_pixel, 8 | 16 | 32) {
            return Err(PixelFormatError::BitsPerPixel(self.bits_per_pixel));
        }
        let channels = [
            ("red", self.red_max, self.red_shift),
            ("green", self.green_max, self.green_shift),
            ("blue", self.blue_max, self.blue_shift),
        ];
        for (channel, max, shift) in channels {
            let fits = max != 0
                && shift < self.bits_per_pixel
                && (u64::from(max) << shift) >> self.bits_per_pixel == 0;
            if !fits {
                return Err(PixelFormatError::Channel {
                    channel,
                    max,
                    shift,
                    bits_per_pixel: self.bits_per_pixel,
                });
            }
        }
        Ok(())
    }

    /// Bytes one pixel takes on the wire.
    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// Appends `rgb` (8 bits per channel, 3 bytes per pixel) converted to this format.
    pub fn convert_rgb(&self, rgb: &[u8], out: &mut Vec<u8>) {
        if self.is_default_layout() {
            // The common case, byte for byte: B, G, R, 0 (or 0, R, G, B big-endian).
            out.reserve(rgb.len() / 3 * 4);
            for px in rgb.chunks_exact(3) {
                let bytes = match self.big_endian {
                    false => [px[2], px[1], px[0], 0],
                    true => [0, px[0], px[1], px[2]],
                };
                out.extend_from_slice(&bytes);
            }
            return;
        }
        let bytes = self.bytes_per_pixel();
        out.reserve(rgb.len() / 3 * bytes);
        for px in rgb.chunks_exact(3) {
            let wide = self.value(px).to_le_bytes();
            match self.big_endian {
                false => out.extend_from_slice(&wide[..bytes]),
                true => out.extend(wide[..bytes].iter().rev()),
            }
        }
    }

    /// Appends the value of each pixel of `rgb` in this format: the number whose low
    /// `bits_per_pixel` bits travel, in the format's byte order. Encoders that compare
    /// pixels (ZRLE's runs and palettes) work on these rather than on bytes.
    pub(crate) fn pixel_values(&self, rgb: &[u8], out: &mut Vec<u32>) {
        if self.is_default_layout() {
            out.extend(
                (rgb.chunks_exact(3))
                    .map(|p| u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2])),
            );
            return;
        }
        out.extend(rgb.chunks_exact(3).map(|px| self.value(px)));
    }

    /// One RGB pixel's value in this format.
    fn value(&self, px: &[u8]) -> u32 {
        scale(px[0], self.red_max) << self.red_shift
            | scale(px[1], self.green_max) << self.green_shift
            | scale(px[2], self.blue_max) << self.blue_shift
    }

    fn is_default_layout(&self) -> bool {
        self.bits_per_pixel == 32
            && (self.red_max, self.green_max, self.blue_max) == (255, 255, 255)
            && (self.red_shift, self.green_shift, self.blue_shift) == (16, 8, 0)
    }
}

/// An 8-bit channel value scaled to `0..=max`, rounded to nearest.
fn scale(value: u8, max: u16) -> u32 {
    (u32::from(value) * u32::from(max) + 127) / 255
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rgb565() -> PixelFormat {
        PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            big_endian: false,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
        }
    }

    #[test]
    fn default_format_round_trips_through_the_wire_structure() {
        let format = PixelFormat::default();

        let decoded = PixelFormat::decode(&format.encode()).unwrap();

        assert_eq!(decoded, format);
    }

    #[test]
    fn default_format_sends_the_scanouts_own_byte_order() {
        let mut out = Vec::new();

        PixelFormat::default().convert_rgb(&[0x11, 0x22, 0x33], &mut out);

        assert_eq!(out, [0x33, 0x22, 0x11, 0]);
    }

    #[test]
    fn big_endian_32_bit_format_puts_the_unused_byte_first() {
        let format = PixelFormat {
            big_endian: true,
            ..PixelFormat::default()
        };
        let mut out = Vec::new();

        format.convert_rgb(&[0x11, 0x22, 0x33], &mut out);

        assert_eq!(out, [0, 0x11, 0x22, 0x33]);
    }

    #[test]
    fn rgb565_scales_each_channel_and_packs_little_endian() {
        let mut out = Vec::new();

        rgb565().convert_rgb(&[255, 0, 255, 0, 255, 0], &mut out);

        assert_eq!(out, [0x1f, 0xf8, 0xe0, 0x07]);
    }

    #[test]
    fn bgr233_fits_one_byte() {
        let format = PixelFormat {
            bits_per_pixel: 8,
            depth: 8,
            big_endian: false,
            red_max: 7,
            green_max: 7,
            blue_max: 3,
            red_shift: 0,
            green_shift: 3,
            blue_shift: 6,
        };
        let mut out = Vec::new();

        format.convert_rgb(&[255, 255, 255, 255, 0, 0], &mut out);

        assert_eq!(out, [0xff, 0x07]);
    }

    #[test]
    fn default_layout_values_hold_red_green_blue_from_high_to_low() {
        let mut values = Vec::new();

        PixelFormat::default().pixel_values(&[0x11, 0x22, 0x33], &mut values);

        assert_eq!(values, [0x11_2233]);
    }

    #[test]
    fn colour_map_format_is_refused() {
        let mut bytes = PixelFormat::default().encode();
        bytes[3] = 0;

        assert_eq!(
            PixelFormat::decode(&bytes),
            Err(PixelFormatError::ColourMap)
        );
    }

    #[test]
    fn bits_per_pixel_other_than_8_16_32_is_refused() {
        let mut bytes = PixelFormat::default().encode();
        bytes[0] = 24;

        assert_eq!(
            PixelFormat::decode(&bytes),
            Err(PixelFormatError::BitsPerPixel(24))
        );
    }

    #[test]
    fn channel_shifted_past_the_pixel_is_refused() {
        let format = PixelFormat {
            red_shift: 11,
            ..rgb565()
        };
        let mut bytes = format.encode();
        bytes[4..6].copy_from_slice(&63u16.to_be_bytes());

        assert_eq!(
            PixelFormat::decode(&bytes),
            Err(PixelFormatError::Channel {
                channel: "red",
                max: 63,
                shift: 11,
                bits_per_pixel: 16
            })
        );
    }

    #[test]
    fn zero_channel_max_is_refused() {
        let mut bytes = PixelFormat::default().encode();
        bytes[8..10].copy_from_slice(&0u16.to_be_bytes());

        assert!(matches!(
            PixelFormat::decode(&bytes),
            Err(PixelFormatError::Channel {
                channel: "blue",
                ..
            })
        ));
    }

    /// A channel of 1 to `bits` bits at any shift that keeps it inside the pixel.
    fn channel(bits: u8) -> impl Strategy<Value = (u16, u8)> {
        (1..=bits.min(16))
            .prop_flat_map(move |width| (Just(((1u32 << width) - 1) as u16), 0..=bits - width))
    }

    fn valid_format() -> impl Strategy<Value = PixelFormat> {
        prop_oneof![Just(8u8), Just(16u8), Just(32u8)].prop_flat_map(|bits| {
            (channel(bits), channel(bits), channel(bits)).prop_map(move |(r, g, b)| PixelFormat {
                bits_per_pixel: bits,
                depth: bits,
                big_endian: false,
                red_max: r.0,
                green_max: g.0,
                blue_max: b.0,
                red_shift: r.1,
                green_shift: g.1,
                blue_shift: b.1,
            })
        })
    }

    proptest! {
        #[test]
        fn fast_path_matches_the_general_conversion(rgb in proptest::collection::vec(any::<u8>(), 0..64), big_endian: bool) {
            let format = PixelFormat { big_endian, ..PixelFormat::default() };
            let mut fast = Vec::new();

            format.convert_rgb(&rgb[..rgb.len() / 3 * 3], &mut fast);

            let expected: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| {
                let v = u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]);
                match big_endian { false => v.to_le_bytes(), true => v.to_be_bytes() }
            }).collect();
            prop_assert_eq!(fast, expected);
        }

        #[test]
        fn pixel_values_travel_as_the_converted_bytes(format in valid_format(), big_endian: bool, rgb in proptest::collection::vec(any::<u8>(), 0..48)) {
            let format = PixelFormat { big_endian, ..format };
            let whole = &rgb[..rgb.len() / 3 * 3];
            let (mut bytes, mut values) = (Vec::new(), Vec::new());

            format.convert_rgb(whole, &mut bytes);
            format.pixel_values(whole, &mut values);

            let bpp = format.bytes_per_pixel();
            let from_values: Vec<u8> = values.iter().flat_map(|v| match big_endian {
                false => v.to_le_bytes()[..bpp].to_vec(),
                true => v.to_be_bytes()[4 - bpp..].to_vec(),
            }).collect();
            prop_assert_eq!(from_values, bytes);
        }

        #[test]
        fn every_valid_format_converts_to_whole_pixels(format in valid_format(), big_endian: bool, rgb in proptest::collection::vec(any::<u8>(), 0..48)) {
            let format = PixelFormat { big_endian, ..format };
            let whole = &rgb[..rgb.len() / 3 * 3];
            let mut out = Vec::new();

            format.convert_rgb(whole, &mut out);

            prop_assert_eq!(PixelFormat::decode(&format.encode()), Ok(format));
            prop_assert_eq!(out.len(), whole.len() / 3 * format.bytes_per_pixel());
        }
    }
}
