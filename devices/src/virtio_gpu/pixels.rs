//! Converting resource pixels to the byte order displays take.

use super::protocol::{
    FORMAT_A8B8G8R8_UNORM, FORMAT_A8R8G8B8_UNORM, FORMAT_R8G8B8A8_UNORM, FORMAT_R8G8B8X8_UNORM,
    FORMAT_X8B8G8R8_UNORM, FORMAT_X8R8G8B8_UNORM,
};

/// Whether the format has no alpha channel.
fn is_opaque(format: u32) -> bool {
    use super::protocol::FORMAT_B8G8R8X8_UNORM;
    matches!(
        format,
        FORMAT_B8G8R8X8_UNORM
            | FORMAT_X8R8G8B8_UNORM
            | FORMAT_X8B8G8R8_UNORM
            | FORMAT_R8G8B8X8_UNORM
    )
}

/// Rewrites `pixels` (4 bytes each, in `format`'s memory order) in place to B, G, R, A memory
/// order; formats without alpha get an alpha of 0xff. Unknown formats are left as they are.
pub fn to_bgra(format: u32, pixels: &mut [u8]) {
    let order: [usize; 4] = match format {
        FORMAT_A8R8G8B8_UNORM | FORMAT_X8R8G8B8_UNORM => [3, 2, 1, 0],
        FORMAT_R8G8B8A8_UNORM | FORMAT_R8G8B8X8_UNORM => [2, 1, 0, 3],
        FORMAT_A8B8G8R8_UNORM | FORMAT_X8B8G8R8_UNORM => [1, 2, 3, 0],
        _ => [0, 1, 2, 3],
    };
    let opaque = is_opaque(format);
    if order == [0, 1, 2, 3] {
        // Already B, G, R, A/X (the guests' framebuffer format): at most the alpha changes.
        if opaque {
            pixels.chunks_exact_mut(4).for_each(|pixel| pixel[3] = 0xff);
        }
        return;
    }
    for pixel in pixels.chunks_exact_mut(4) {
        let source = [pixel[0], pixel[1], pixel[2], pixel[3]];
        for (out, index) in pixel.iter_mut().zip(order) {
            *out = source[index];
        }
        if opaque {
            pixel[3] = 0xff;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::protocol::{FORMAT_B8G8R8A8_UNORM, FORMAT_B8G8R8X8_UNORM};
    use super::*;

    #[test]
    fn to_bgra_keeps_b8g8r8a8() {
        let mut pixel = [1, 2, 3, 4];

        to_bgra(FORMAT_B8G8R8A8_UNORM, &mut pixel);

        assert_eq!(pixel, [1, 2, 3, 4]);
    }

    #[test]
    fn to_bgra_makes_b8g8r8x8_opaque() {
        let mut pixel = [1, 2, 3, 0];

        to_bgra(FORMAT_B8G8R8X8_UNORM, &mut pixel);

        assert_eq!(pixel, [1, 2, 3, 0xff]);
    }

    #[test]
    fn to_bgra_swaps_r8g8b8a8() {
        let mut pixel = [0x10, 0x20, 0x30, 0x40];

        to_bgra(FORMAT_R8G8B8A8_UNORM, &mut pixel);

        assert_eq!(pixel, [0x30, 0x20, 0x10, 0x40]);
    }

    #[test]
    fn to_bgra_reverses_a8r8g8b8() {
        let mut pixel = [0x40, 0x30, 0x20, 0x10];

        to_bgra(FORMAT_A8R8G8B8_UNORM, &mut pixel);

        assert_eq!(pixel, [0x10, 0x20, 0x30, 0x40]);
    }

    #[test]
    fn to_bgra_rotates_x8b8g8r8() {
        let mut pixel = [0x00, 0x10, 0x20, 0x30];

        to_bgra(FORMAT_X8B8G8R8_UNORM, &mut pixel);

        assert_eq!(pixel, [0x10, 0x20, 0x30, 0xff]);
    }
}
