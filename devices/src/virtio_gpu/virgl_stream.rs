//! A builder for virgl command streams: the buffers a guest's Gallium driver puts in
//! SUBMIT_3D (virglrenderer's `virgl_protocol.h`).
//!
//! Each command is one header dword, `cmd | object_type << 8 | length << 16` with the number
//! of dwords that follow, then those dwords. The builder covers what a test or a driver replay
//! needs to clear a render target and draw with TGSI text shaders; [`VirglStream::raw`] appends
//! anything else.
//!
//! ```
//! use devices::virtio_gpu::virgl_stream::{VirglStream, PIPE_CLEAR_COLOR0};
//! let mut stream = VirglStream::new();
//! stream
//!     .create_surface(1, 10, 2, 0, 0)
//!     .set_framebuffer_state(0, &[1])
//!     .clear(PIPE_CLEAR_COLOR0, [1.0, 0.0, 0.0, 1.0], 0.0, 0);
//! assert_eq!(stream.len_dwords(), 6 + 4 + 9);
//! ```

/// `virgl_context_cmd` values.
pub const CCMD_NOP: u32 = 0;
pub const CCMD_CREATE_OBJECT: u32 = 1;
pub const CCMD_BIND_OBJECT: u32 = 2;
pub const CCMD_DESTROY_OBJECT: u32 = 3;
pub const CCMD_SET_VIEWPORT_STATE: u32 = 4;
pub const CCMD_SET_FRAMEBUFFER_STATE: u32 = 5;
pub const CCMD_SET_VERTEX_BUFFERS: u32 = 6;
pub const CCMD_CLEAR: u32 = 7;
pub const CCMD_DRAW_VBO: u32 = 8;
pub const CCMD_RESOURCE_INLINE_WRITE: u32 = 9;
pub const CCMD_BIND_SHADER: u32 = 31;

/// `virgl_object_type` values.
pub const OBJECT_BLEND: u32 = 1;
pub const OBJECT_RASTERIZER: u32 = 2;
pub const OBJECT_DSA: u32 = 3;
pub const OBJECT_SHADER: u32 = 4;
pub const OBJECT_VERTEX_ELEMENTS: u32 = 5;
pub const OBJECT_SURFACE: u32 = 8;

/// `virgl_shader_stage` values.
pub const SHADER_VERTEX: u32 = 0;
pub const SHADER_FRAGMENT: u32 = 1;

/// `PIPE_CLEAR_*` bits.
pub const PIPE_CLEAR_DEPTH: u32 = 1 << 0;
pub const PIPE_CLEAR_STENCIL: u32 = 1 << 1;
pub const PIPE_CLEAR_COLOR0: u32 = 1 << 2;

/// `PIPE_PRIM_TRIANGLES`.
pub const PIPE_PRIM_TRIANGLES: u32 = 4;

/// virgl formats used by the helpers (same numbering as gallium's `pipe_format`).
pub const FORMAT_B8G8R8A8_UNORM: u32 = 1;
pub const FORMAT_B8G8R8X8_UNORM: u32 = 2;
pub const FORMAT_R32G32_FLOAT: u32 = 29;
pub const FORMAT_R32G32B32_FLOAT: u32 = 30;
pub const FORMAT_R32G32B32A32_FLOAT: u32 = 31;
pub const FORMAT_R8_UNORM: u32 = 64;

/// Resource targets and bind flags for RESOURCE_CREATE_3D.
pub const PIPE_BUFFER: u32 = 0;
pub const PIPE_TEXTURE_2D: u32 = 2;
pub const BIND_RENDER_TARGET: u32 = 1 << 1;
pub const BIND_SAMPLER_VIEW: u32 = 1 << 3;
pub const BIND_VERTEX_BUFFER: u32 = 1 << 4;
pub const BIND_SCANOUT: u32 = 1 << 18;

/// Token budget given to virglrenderer for parsing a text shader; it allocates this many
/// TGSI tokens (plus a margin), so it only has to be an upper bound.
const SHADER_TOKENS: u32 = 1024;

/// One vertex element: where an attribute comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VertexElement {
    pub src_offset: u32,
    pub instance_divisor: u32,
    pub vertex_buffer_index: u32,
    pub src_format: u32,
}

/// One vertex buffer binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VertexBuffer {
    pub stride: u32,
    pub offset: u32,
    pub resource_id: u32,
}

/// A command stream under construction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirglStream {
    dwords: Vec<u32>,
}

/// The header dword of a command.
pub fn cmd0(cmd: u32, object: u32, len: u32) -> u32 {
    cmd | (object << 8) | (len << 16)
}

impl VirglStream {
    pub fn new() -> VirglStream {
        VirglStream::default()
    }

    /// Appends command `cmd` on object type `object` with `body` as its dwords.
    pub fn raw(&mut self, cmd: u32, object: u32, body: &[u32]) -> &mut Self {
        self.dwords.push(cmd0(cmd, object, body.len() as u32));
        self.dwords.extend_from_slice(body);
        self
    }

    /// A no-op (one header dword, no body).
    pub fn nop(&mut self) -> &mut Self {
        self.raw(CCMD_NOP, 0, &[])
    }

    /// A surface `handle` over level `level`, layers `first_layer..=last_layer` of texture
    /// resource `resource_id`, viewed as `format`.
    pub fn create_surface(
        &mut self,
        handle: u32,
        resource_id: u32,
        format: u32,
        level: u32,
        layers: u32,
    ) -> &mut Self {
        self.raw(
            CCMD_CREATE_OBJECT,
            OBJECT_SURFACE,
            &[handle, resource_id, format, level, layers],
        )
    }

    /// Binds colour buffers `cbufs` (surface handles) and depth surface `zsurf` (0: none).
    pub fn set_framebuffer_state(&mut self, zsurf: u32, cbufs: &[u32]) -> &mut Self {
        let mut body = vec![cbufs.len() as u32, zsurf];
        body.extend_from_slice(cbufs);
        self.raw(CCMD_SET_FRAMEBUFFER_STATE, 0, &body)
    }

    /// Clears the `buffers` (`PIPE_CLEAR_*`) of the bound framebuffer.
    pub fn clear(&mut self, buffers: u32, rgba: [f32; 4], depth: f64, stencil: u32) -> &mut Self {
        let depth = depth.to_bits();
        let body = [
            buffers,
            rgba[0].to_bits(),
            rgba[1].to_bits(),
            rgba[2].to_bits(),
            rgba[3].to_bits(),
            depth as u32,
            (depth >> 32) as u32,
            stencil,
        ];
        self.raw(CCMD_CLEAR, 0, &body)
    }

    /// Viewport 0 covering `width` x `height` with depth range 0..1.
    pub fn set_viewport(&mut self, width: f32, height: f32) -> &mut Self {
        let half = |v: f32| (v / 2.0).to_bits();
        let body = [
            0,
            half(width),
            half(height),
            0.5f32.to_bits(),
            half(width),
            half(height),
            0.5f32.to_bits(),
        ];
        self.raw(CCMD_SET_VIEWPORT_STATE, 0, &body)
    }

    /// A blend state `handle` that writes all channels of colour buffer 0 without blending.
    pub fn create_blend_opaque(&mut self, handle: u32) -> &mut Self {
        let mut body = vec![handle, 0, 0, 0xf << 27];
        body.extend_from_slice(&[0; 7]);
        self.raw(CCMD_CREATE_OBJECT, OBJECT_BLEND, &body)
    }

    /// A depth-stencil-alpha state `handle` with every test off.
    pub fn create_dsa_disabled(&mut self, handle: u32) -> &mut Self {
        self.raw(CCMD_CREATE_OBJECT, OBJECT_DSA, &[handle, 0, 0, 0, 0])
    }

    /// A rasterizer state `handle`: no culling, filled, depth clip, half-pixel centres.
    pub fn create_rasterizer_default(&mut self, handle: u32) -> &mut Self {
        const DEPTH_CLIP: u32 = 1 << 1;
        const HALF_PIXEL_CENTER: u32 = 1 << 29;
        let one = 1.0f32.to_bits();
        self.raw(
            CCMD_CREATE_OBJECT,
            OBJECT_RASTERIZER,
            &[
                handle,
                DEPTH_CLIP | HALF_PIXEL_CENTER,
                one,
                0,
                0,
                one,
                0,
                0,
                0,
            ],
        )
    }

    /// Binds object `handle` of type `object`.
    pub fn bind_object(&mut self, object: u32, handle: u32) -> &mut Self {
        self.raw(CCMD_BIND_OBJECT, object, &[handle])
    }

    /// A shader `handle` for `stage` (`SHADER_*`) from TGSI text.
    pub fn create_shader(&mut self, handle: u32, stage: u32, tgsi: &str) -> &mut Self {
        let mut text = tgsi.as_bytes().to_vec();
        text.push(0);
        let text_len = text.len() as u32;
        text.resize(text.len().div_ceil(4) * 4, 0);
        let mut body = vec![handle, stage, text_len & 0x7fff_ffff, SHADER_TOKENS, 0];
        body.extend(
            text.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        self.raw(CCMD_CREATE_OBJECT, OBJECT_SHADER, &body)
    }

    /// Binds shader `handle` to `stage`.
    pub fn bind_shader(&mut self, handle: u32, stage: u32) -> &mut Self {
        self.raw(CCMD_BIND_SHADER, 0, &[handle, stage])
    }

    /// A vertex elements state `handle`.
    pub fn create_vertex_elements(&mut self, handle: u32, elements: &[VertexElement]) -> &mut Self {
        let mut body = vec![handle];
        for e in elements {
            body.extend_from_slice(&[
                e.src_offset,
                e.instance_divisor,
                e.vertex_buffer_index,
                e.src_format,
            ]);
        }
        self.raw(CCMD_CREATE_OBJECT, OBJECT_VERTEX_ELEMENTS, &body)
    }

    /// Binds vertex buffers from slot 0.
    pub fn set_vertex_buffers(&mut self, buffers: &[VertexBuffer]) -> &mut Self {
        let body: Vec<u32> = buffers
            .iter()
            .flat_map(|b| [b.stride, b.offset, b.resource_id])
            .collect();
        self.raw(CCMD_SET_VERTEX_BUFFERS, 0, &body)
    }

    /// Writes `data` into buffer resource `resource_id` at byte `offset`.
    pub fn buffer_inline_write(&mut self, resource_id: u32, offset: u32, data: &[u8]) -> &mut Self {
        let mut body = vec![
            resource_id,
            0,
            0,
            0,
            0,
            offset,
            0,
            0,
            data.len() as u32,
            1,
            1,
        ];
        let mut padded = data.to_vec();
        padded.resize(data.len().div_ceil(4) * 4, 0);
        body.extend(
            padded
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        self.raw(CCMD_RESOURCE_INLINE_WRITE, 0, &body)
    }

    /// Draws `count` vertices from `start` as primitive `mode` (`PIPE_PRIM_*`), not indexed.
    pub fn draw_arrays(&mut self, mode: u32, start: u32, count: u32) -> &mut Self {
        let max_index = (start + count).saturating_sub(1);
        self.raw(
            CCMD_DRAW_VBO,
            0,
            &[start, count, mode, 0, 1, 0, 0, 0, 0, 0, max_index, 0],
        )
    }

    /// Number of dwords so far.
    pub fn len_dwords(&self) -> usize {
        self.dwords.len()
    }

    /// The dwords so far.
    pub fn dwords(&self) -> &[u32] {
        &self.dwords
    }

    /// The stream as SUBMIT_3D bytes (little-endian dwords).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.dwords.iter().flat_map(|d| d.to_le_bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_packs_command_object_and_length() {
        assert_eq!(cmd0(CCMD_CREATE_OBJECT, OBJECT_SURFACE, 5), 0x0005_0801);
    }

    #[test]
    fn clear_encodes_color_as_float_bits_and_depth_as_two_dwords() {
        let mut stream = VirglStream::new();

        stream.clear(PIPE_CLEAR_COLOR0, [1.0, 0.0, 0.0, 1.0], 1.0, 7);

        assert_eq!(
            stream.dwords(),
            &[
                cmd0(CCMD_CLEAR, 0, 8),
                4,
                0x3f80_0000,
                0,
                0,
                0x3f80_0000,
                0,
                0x3ff0_0000,
                7
            ]
        );
    }

    #[test]
    fn shader_text_is_nul_terminated_and_padded() {
        let mut stream = VirglStream::new();

        stream.create_shader(3, SHADER_FRAGMENT, "FRAG");

        assert_eq!(
            stream.dwords(),
            &[
                cmd0(CCMD_CREATE_OBJECT, OBJECT_SHADER, 7),
                3,
                1,
                5,
                SHADER_TOKENS,
                0,
                u32::from_le_bytes(*b"FRAG"),
                0
            ]
        );
    }

    #[test]
    fn framebuffer_state_lists_color_buffers_after_depth() {
        let mut stream = VirglStream::new();

        stream.set_framebuffer_state(9, &[1, 2]);

        assert_eq!(
            stream.dwords(),
            &[cmd0(CCMD_SET_FRAMEBUFFER_STATE, 0, 4), 2, 9, 1, 2]
        );
    }

    #[test]
    fn inline_write_pads_data_to_dwords() {
        let mut stream = VirglStream::new();

        stream.buffer_inline_write(4, 8, &[1, 2, 3]);

        assert_eq!(
            stream.dwords(),
            &[
                cmd0(CCMD_RESOURCE_INLINE_WRITE, 0, 12),
                4,
                0,
                0,
                0,
                0,
                8,
                0,
                0,
                3,
                1,
                1,
                0x0003_0201
            ]
        );
    }
}
