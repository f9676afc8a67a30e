//! A captured scanout image and its encodings: PPM in (QEMU's `screendump`), XRGB8888 in
//! (the GPU process's screenshot), PNG out.
//!
//! Input comes from child processes, so every size is checked before anything is allocated.

use std::io::Write;

use thiserror::Error;

/// Largest image edge accepted from a child, in pixels.
pub const MAX_EDGE: u32 = 16384;

/// Why an image could not be decoded or encoded.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("not a binary PPM (P6) image")]
    NotPpm,
    #[error("PPM header is malformed")]
    BadHeader,
    #[error("image size {width}x{height} is empty or larger than {MAX_EDGE} per edge")]
    BadSize { width: u32, height: u32 },
    #[error("PPM max value {0} is not 255")]
    BadMaxValue(u32),
    #[error("pixel data holds {got} bytes, {needed} needed")]
    ShortData { got: usize, needed: usize },
    #[error("row stride {stride} is smaller than a row ({row} bytes)")]
    BadStride { stride: usize, row: usize },
    #[error("encoding PNG failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// An RGB image, 8 bits per channel, rows top to bottom, no padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

fn check_size(width: u32, height: u32) -> Result<usize, FrameError> {
    if width == 0 || height == 0 || width > MAX_EDGE || height > MAX_EDGE {
        return Err(FrameError::BadSize { width, height });
    }
    Ok(width as usize * height as usize * 3)
}

impl Frame {
    /// Decodes a binary PPM (`P6`, max value 255), as QEMU's `screendump` writes it.
    pub fn from_ppm(data: &[u8]) -> Result<Frame, FrameError> {
        if !data.starts_with(b"P6") {
            return Err(FrameError::NotPpm);
        }
        let mut pos = 2;
        let mut fields = [0u32; 3];
        for field in &mut fields {
            // Whitespace and comments, then decimal digits.
            loop {
                match data.get(pos) {
                    Some(c) if c.is_ascii_whitespace() => pos += 1,
                    Some(b'#') => {
                        while data.get(pos).is_some_and(|&c| c != b'\n') {
                            pos += 1;
                        }
                    }
                    _ => break,
                }
            }
            let start = pos;
            while data.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
            let digits =
                std::str::from_utf8(&data[start..pos]).map_err(|_| FrameError::BadHeader)?;
            *field = digits.parse().map_err(|_| FrameError::BadHeader)?;
        }
        // Exactly one whitespace byte separates the header from the pixels.
        if !data.get(pos).is_some_and(u8::is_ascii_whitespace) {
            return Err(FrameError::BadHeader);
        }
        pos += 1;
        let [width, height, max] = fields;
        if max != 255 {
            return Err(FrameError::BadMaxValue(max));
        }
        let needed = check_size(width, height)?;
        let pixels = &data[pos..];
        if pixels.len() < needed {
            return Err(FrameError::ShortData {
                got: pixels.len(),
                needed,
            });
        }
        Ok(Frame {
            width,
            height,
            rgb: pixels[..needed].to_vec(),
        })
    }

    /// Converts little-endian XRGB8888 pixels (bytes B, G, R, X) with the given row stride.
    pub fn from_xrgb8888(
        width: u32,
        height: u32,
        stride: usize,
        data: &[u8],
    ) -> Result<Frame, FrameError> {
        let needed_rgb = check_size(width, height)?;
        let row = width as usize * 4;
        if stride < row {
            return Err(FrameError::BadStride { stride, row });
        }
        let needed = stride * (height as usize - 1) + row;
        if data.len() < needed {
            return Err(FrameError::ShortData {
                got: data.len(),
                needed,
            });
        }
        let mut rgb = Vec::with_capacity(needed_rgb);
        for y in 0..height as usize {
            for px in data[y * stride..y * stride + row].chunks_exact(4) {
                rgb.extend_from_slice(&[px[2], px[1], px[0]]);
            }
        }
        Ok(Frame { width, height, rgb })
    }

    /// Writes the image as an RGB PNG.
    pub fn write_png<W: Write>(&self, out: W) -> Result<(), FrameError> {
        let mut encoder = png::Encoder::new(out, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.rgb)?;
        writer.finish()?;
        Ok(())
    }

    /// Number of distinct colours (a uniform image has one).
    pub fn distinct_colours(&self) -> usize {
        let mut colours: Vec<[u8; 3]> = self
            .rgb
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        colours.sort_unstable();
        colours.dedup();
        colours.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_decodes_header_with_comment() {
        let data = b"P6\n# made by QEMU\n2 1\n255\n\x01\x02\x03\x04\x05\x06";

        let frame = Frame::from_ppm(data).unwrap();

        assert_eq!(
            frame,
            Frame {
                width: 2,
                height: 1,
                rgb: vec![1, 2, 3, 4, 5, 6]
            }
        );
    }

    #[test]
    fn ppm_with_too_few_pixels_is_refused() {
        let data = b"P6 4 4 255\n\x00\x00\x00";

        let err = Frame::from_ppm(data).unwrap_err();

        assert!(matches!(err, FrameError::ShortData { got: 3, needed: 48 }));
    }

    #[test]
    fn ppm_with_huge_size_is_refused_before_allocating() {
        let data = b"P6 100000 100000 255\n";

        let err = Frame::from_ppm(data).unwrap_err();

        assert!(matches!(err, FrameError::BadSize { .. }));
    }

    #[test]
    fn xrgb_conversion_honours_stride_and_byte_order() {
        // Two rows of one pixel each, stride 8: B G R X then padding.
        let data = [3, 2, 1, 0, 9, 9, 9, 9, 6, 5, 4, 0];

        let frame = Frame::from_xrgb8888(1, 2, 8, &data).unwrap();

        assert_eq!(frame.rgb, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn png_round_trips_size() {
        let frame = Frame {
            width: 3,
            height: 2,
            rgb: vec![7; 18],
        };
        let mut bytes = Vec::new();

        frame.write_png(&mut bytes).unwrap();

        let info = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap()
            .info()
            .clone();
        assert_eq!((info.width, info.height), (3, 2));
    }

    #[test]
    fn distinct_colours_counts_unique_pixels() {
        let frame = Frame {
            width: 3,
            height: 1,
            rgb: vec![0, 0, 0, 255, 0, 0, 0, 0, 0],
        };

        assert_eq!(frame.distinct_colours(), 2);
    }
}
