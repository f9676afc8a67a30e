//! Building the 64x64 cursor image from a guest resource.

use super::pixels::to_bgra;
use super::sink::{CursorImage, CURSOR_BYTES, CURSOR_DIM};

/// Places `pixels` (a `width` x `height` image in `format`, tightly packed) at the top-left of
/// a transparent 64x64 image in B, G, R, A order. Parts beyond 64x64 are cut off.
pub fn cursor_image(
    format: u32,
    width: u32,
    height: u32,
    mut pixels: Vec<u8>,
    hot_x: u32,
    hot_y: u32,
) -> CursorImage {
    to_bgra(format, &mut pixels);
    let mut image = vec![0u8; CURSOR_BYTES];
    let row_bytes = (width as usize).min(CURSOR_DIM) * 4;
    let src_stride = width as usize * 4;
    for row in 0..(height as usize).min(CURSOR_DIM) {
        let src = &pixels[row * src_stride..row * src_stride + row_bytes];
        image[row * CURSOR_DIM * 4..row * CURSOR_DIM * 4 + row_bytes].copy_from_slice(src);
    }
    CursorImage {
        hot_x,
        hot_y,
        pixels: image,
    }
}

#[cfg(test)]
mod tests {
    use super::super::protocol::FORMAT_B8G8R8A8_UNORM;
    use super::*;

    #[test]
    fn cursor_image_pads_small_resource_with_transparency() {
        let pixels = vec![0xaa; 2 * 2 * 4];

        let image = cursor_image(FORMAT_B8G8R8A8_UNORM, 2, 2, pixels, 1, 1);

        assert_eq!(
            (
                &image.pixels[0..8],
                &image.pixels[8..12],
                &image.pixels[256..264],
                image.pixels.len()
            ),
            (&[0xaa; 8][..], &[0u8; 4][..], &[0xaa; 8][..], CURSOR_BYTES)
        );
    }
}
