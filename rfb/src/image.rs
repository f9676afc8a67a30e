//! The picture a server shows: RGB, 8 bits per channel, rows top to bottom, no padding.

use thiserror::Error;

/// Why pixels cannot form an [`Image`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImageError {
    #[error("image size {width}x{height} is empty or larger than 65535 per edge")]
    Size { width: u32, height: u32 },
    #[error("image {width}x{height} needs {needed} bytes of RGB, got {got}")]
    Length {
        width: u32,
        height: u32,
        needed: usize,
        got: usize,
    },
}

/// An RGB image whose size fits RFB's 16-bit framebuffer dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    width: u16,
    height: u16,
    rgb: Vec<u8>,
}

impl Image {
    /// Wraps `rgb` (3 bytes per pixel) as a `width` x `height` image.
    pub fn new(width: u32, height: u32, rgb: Vec<u8>) -> Result<Image, ImageError> {
        let size = || ImageError::Size { width, height };
        let w = u16::try_from(width).map_err(|_| size())?;
        let h = u16::try_from(height).map_err(|_| size())?;
        if w == 0 || h == 0 {
            return Err(size());
        }
        let needed = usize::from(w) * usize::from(h) * 3;
        if rgb.len() != needed {
            return Err(ImageError::Length {
                width,
                height,
                needed,
                got: rgb.len(),
            });
        }
        Ok(Image {
            width: w,
            height: h,
            rgb,
        })
    }

    /// A black image, shown before the guest has displayed anything.
    pub fn black(width: u16, height: u16) -> Image {
        let width = width.max(1);
        let height = height.max(1);
        Image {
            width,
            height,
            rgb: vec![0; usize::from(width) * usize::from(height) * 3],
        }
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    pub fn height(&self) -> u16 {
        self.height
    }

    /// The pixels of row `y` from column `x`, `width` of them.
    pub(crate) fn span(&self, x: u16, y: u16, width: u16) -> &[u8] {
        let start = (usize::from(y) * usize::from(self.width) + usize::from(x)) * 3;
        &self.rgb[start..start + usize::from(width) * 3]
    }

    /// This image cut or padded with black to `width` x `height`, for a viewer that cannot
    /// follow a size change.
    pub(crate) fn fitted(&self, width: u16, height: u16) -> Image {
        let mut out = Image::black(width, height);
        let copy_w = self.width.min(out.width);
        for y in 0..self.height.min(out.height) {
            let start = usize::from(y) * usize::from(out.width) * 3;
            out.rgb[start..start + usize::from(copy_w) * 3]
                .copy_from_slice(self.span(0, y, copy_w));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_of_the_wrong_length_is_refused() {
        let err = Image::new(2, 2, vec![0; 11]).unwrap_err();

        assert_eq!(
            err,
            ImageError::Length {
                width: 2,
                height: 2,
                needed: 12,
                got: 11
            }
        );
    }

    #[test]
    fn edges_beyond_sixteen_bits_are_refused() {
        let err = Image::new(70000, 1, Vec::new()).unwrap_err();

        assert_eq!(
            err,
            ImageError::Size {
                width: 70000,
                height: 1
            }
        );
    }

    #[test]
    fn fitting_crops_the_right_and_pads_the_bottom_with_black() {
        let image = Image::new(2, 1, vec![1, 1, 1, 2, 2, 2]).unwrap();

        let fitted = image.fitted(1, 2);

        assert_eq!(fitted, Image::new(1, 2, vec![1, 1, 1, 0, 0, 0]).unwrap());
    }
}
