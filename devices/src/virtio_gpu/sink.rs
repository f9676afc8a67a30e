//! Where the device sends what the guest displays. The transport implements [`DisplaySink`]
//! (for vhost-user-gpu: the display socket toward QEMU).

/// Width and height of a cursor image.
pub const CURSOR_DIM: usize = 64;
/// Bytes of a cursor image: 64x64 pixels of 4 bytes.
pub const CURSOR_BYTES: usize = CURSOR_DIM * CURSOR_DIM * 4;

/// A 64x64 cursor image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorImage {
    /// Hot spot, in pixels from the top-left corner.
    pub hot_x: u32,
    pub hot_y: u32,
    /// 64x64 pixels, rows of 256 bytes, each pixel B, G, R, A in memory (pixman's a8r8g8b8
    /// on a little-endian host). Areas outside the guest's cursor resource are transparent.
    pub pixels: Vec<u8>,
}

/// Hears of changes to what the displays show. Every call's arguments are already checked:
/// scanout ids exist and cursor images have [`CURSOR_BYTES`] bytes. Pixels are not pushed
/// here: consumers take them when they want them ([`super::VirtioGpu::take_frame`]).
pub trait DisplaySink {
    /// Scanout `scanout_id` now shows a `width` x `height` image, or nothing (`None`).
    fn scanout(&mut self, scanout_id: u32, size: Option<(u32, u32)>);
    /// The cursor on scanout `scanout_id` is at (`x`, `y`) and shows `image`, or is hidden
    /// (`None`).
    fn cursor_update(&mut self, scanout_id: u32, x: u32, y: u32, image: Option<&CursorImage>);
    /// The cursor on scanout `scanout_id` moved to (`x`, `y`).
    fn cursor_move(&mut self, scanout_id: u32, x: u32, y: u32);
}

/// A sink that drops everything: the device still keeps the scanout contents, which
/// [`super::VirtioGpu::take_frame`] returns.
#[derive(Debug, Default)]
pub struct NullSink;

impl DisplaySink for NullSink {
    fn scanout(&mut self, _scanout_id: u32, _size: Option<(u32, u32)>) {}
    fn cursor_update(&mut self, _scanout_id: u32, _x: u32, _y: u32, _image: Option<&CursorImage>) {}
    fn cursor_move(&mut self, _scanout_id: u32, _x: u32, _y: u32) {}
}
