//! A real virgl (Gallium) command stream, as a guest's virgl driver (Mesa's, or viogpu3d's
//! user-mode driver) encodes it: a render-target surface, blend / depth-stencil-alpha /
//! rasterizer state, TGSI vertex and fragment shaders, vertex elements and a vertex buffer
//! filled inline, a viewport, a clear and one triangle; or a draw that keeps the GPU busy
//! (a looping fragment shader over the whole target) for the scheduler's tests and benchmark.
//!
//! Encoding from virglrenderer's `src/virgl_protocol.h` and Mesa's
//! `src/gallium/drivers/virgl/virgl_encode.c`: each command is a header
//! `cmd | object_type << 8 | length << 16` followed by `length` dwords.

// Context commands (enum virgl_context_cmd).
const CREATE_OBJECT: u32 = 1;
const BIND_OBJECT: u32 = 2;
const SET_VIEWPORT_STATE: u32 = 4;
const SET_FRAMEBUFFER_STATE: u32 = 5;
const SET_VERTEX_BUFFERS: u32 = 6;
const CLEAR: u32 = 7;
const DRAW_VBO: u32 = 8;
const RESOURCE_INLINE_WRITE: u32 = 9;
const BIND_SHADER: u32 = 31;

// Object types (enum virgl_object_type).
const OBJECT_BLEND: u32 = 1;
const OBJECT_RASTERIZER: u32 = 2;
const OBJECT_DSA: u32 = 3;
const OBJECT_SHADER: u32 = 4;
const OBJECT_VERTEX_ELEMENTS: u32 = 5;
const OBJECT_SURFACE: u32 = 8;

const SHADER_VERTEX: u32 = 0;
const SHADER_FRAGMENT: u32 = 1;
const FORMAT_R32G32B32A32_FLOAT: u32 = 31;
const PRIM_TRIANGLES: u32 = 4;
const CLEAR_COLOR0: u32 = 1 << 2;
/// An upper bound on the shaders' TGSI tokens: virglrenderer sizes its parse buffer by it.
const SHADER_TOKENS: u32 = 300;

/// PIPE_BUFFER, the target of a vertex buffer resource.
pub const TARGET_BUFFER: u32 = 0;
/// PIPE_BIND_RENDER_TARGET.
pub const BIND_RENDER_TARGET: u32 = 1 << 1;
/// PIPE_BIND_VERTEX_BUFFER.
pub const BIND_VERTEX_BUFFER: u32 = 1 << 4;
/// VIRGL_FORMAT_R8_UNORM, the format of buffer resources.
pub const FORMAT_R8_UNORM: u32 = 64;
/// Bytes of the triangle's vertex buffer: 3 vertices of position and color (8 floats).
pub const TRIANGLE_VERTEX_BYTES: u32 = 3 * 8 * 4;

const VERTEX_SHADER: &str = "VERT
DCL IN[0]
DCL IN[1]
DCL OUT[0], POSITION
DCL OUT[1], COLOR
  0: MOV OUT[0], IN[0]
  1: MOV OUT[1], IN[1]
  2: END
";

const FRAGMENT_SHADER: &str = "FRAG
PROPERTY FS_COLOR0_WRITES_ALL_CBUFS 1
DCL IN[0], COLOR, PERSPECTIVE
DCL OUT[0], COLOR
  0: MOV OUT[0], IN[0]
  1: END
";

/// Object handles the stream creates (per context).
const SURFACE: u32 = 1;
const BLEND: u32 = 2;
const DSA: u32 = 3;
const RASTERIZER: u32 = 4;
const VS: u32 = 5;
const FS: u32 = 6;
const VERTEX_ELEMENTS: u32 = 7;

/// A virgl command stream under construction.
#[derive(Default)]
pub struct Stream(Vec<u32>);

impl Stream {
    fn cmd(&mut self, cmd: u32, object: u32, body: &[u32]) -> &mut Stream {
        self.0.push(cmd | object << 8 | (body.len() as u32) << 16);
        self.0.extend_from_slice(body);
        self
    }

    fn create(&mut self, object: u32, body: &[u32]) -> &mut Stream {
        self.cmd(CREATE_OBJECT, object, body)
    }

    fn bind(&mut self, object: u32, handle: u32) -> &mut Stream {
        self.cmd(BIND_OBJECT, object, &[handle])
    }

    fn shader(&mut self, handle: u32, kind: u32, text: &str) -> &mut Stream {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(0);
        let total = bytes.len() as u32;
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        // Generously above the tokens the text makes (at most one per four characters).
        let tokens = SHADER_TOKENS.max(total);
        let mut body = vec![handle, kind, total, tokens, 0];
        body.extend(words(&bytes));
        self.create(OBJECT_SHADER, &body);
        self.cmd(BIND_SHADER, 0, &[handle, kind])
    }

    /// The stream as bytes for SUBMIT_3D.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

fn words(bytes: &[u8]) -> impl Iterator<Item = u32> + '_ {
    bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("padded to whole dwords")))
}

fn float(v: f32) -> u32 {
    v.to_bits()
}

/// The stream that clears render target `target` (`width x height`, B8G8R8X8) to `clear` and
/// draws a triangle of `color` around its center, from vertices written inline into the
/// buffer resource `vertex_buffer` ([`TRIANGLE_VERTEX_BYTES`] bytes). Colors are RGBA.
pub fn clear_and_triangle(
    target: u32,
    vertex_buffer: u32,
    size: (u32, u32),
    clear: [f32; 4],
    color: [f32; 4],
) -> Vec<u8> {
    let center = [[-0.5, -0.5], [0.5, -0.5], [0.0, 0.5]];
    clear_and_draw(
        target,
        vertex_buffer,
        size,
        clear,
        (center, color),
        FRAGMENT_SHADER,
    )
}

/// The color a [`busy_draw`] starts each pixel from (RGBA); each iteration scales it by
/// [`BUSY_DECAY`].
pub const BUSY_COLOR: [f32; 4] = [0.2, 0.6, 1.0, 1.0];
pub const BUSY_DECAY: f32 = 0.9999;

/// How much work each pixel of a [`busy_draw`] does.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// A loop of this many iterations.
    Iterations(u32),
    /// Two nested loops whose counters can never reach their bound (a float counter stops
    /// growing at 2^24): a draw that never finishes.
    Endless,
}

/// The stream that clears `target` and draws one triangle covering all of it with a fragment
/// shader that loops per pixel as `work` says: GPU work whose length the caller chooses, or
/// that never ends.
pub fn busy_draw(target: u32, vertex_buffer: u32, size: (u32, u32), work: Work) -> Vec<u8> {
    let whole = [[-1.0, -1.0], [3.0, -1.0], [-1.0, 3.0]];
    let shader = match work {
        Work::Iterations(n) => looping_fragment_shader(1, n as f32),
        Work::Endless => looping_fragment_shader(2, 1.0e8),
    };
    let black = [0.0, 0.0, 0.0, 1.0];
    let color = BUSY_COLOR;
    clear_and_draw(target, vertex_buffer, size, black, (whole, color), &shader)
}

/// A fragment shader that runs `depth` nested loops, each until its counter reaches `bound`,
/// scaling the color a little each innermost iteration (so no compiler drops the loops).
fn looping_fragment_shader(depth: usize, bound: f32) -> String {
    let mut lines = vec![
        "FRAG".to_string(),
        "PROPERTY FS_COLOR0_WRITES_ALL_CBUFS 1".into(),
        "DCL IN[0], COLOR, PERSPECTIVE".into(),
        "DCL OUT[0], COLOR".into(),
        format!("DCL TEMP[0..{depth}]"),
        format!("IMM[0] FLT32 {{ 0.0000, 1.0000, {BUSY_DECAY:.4}, {bound:.4} }}"),
        "MOV TEMP[0], IN[0]".into(),
    ];
    for level in 1..=depth {
        lines.extend([
            format!("MOV TEMP[{level}].x, IMM[0].xxxx"),
            "BGNLOOP".into(),
            format!("SGE TEMP[{level}].y, TEMP[{level}].xxxx, IMM[0].wwww"),
            format!("IF TEMP[{level}].yyyy"),
            "BRK".into(),
            "ENDIF".into(),
        ]);
    }
    lines.push("MAD TEMP[0], TEMP[0], IMM[0].zzzz, IMM[0].xxxx".into());
    for level in (1..=depth).rev() {
        lines.extend([
            format!("ADD TEMP[{level}].x, TEMP[{level}].xxxx, IMM[0].yyyy"),
            "ENDLOOP".into(),
        ]);
    }
    lines.extend(["MOV OUT[0], TEMP[0]".into(), "END".into()]);
    lines.join("\n") + "\n"
}

/// Clears `target` to `clear` and draws the triangle `positions` in `color` with `fragment`.
fn clear_and_draw(
    target: u32,
    vertex_buffer: u32,
    (width, height): (u32, u32),
    clear: [f32; 4],
    (positions, color): ([[f32; 2]; 3], [f32; 4]),
    fragment: &str,
) -> Vec<u8> {
    let mut s = Stream::default();
    // Render target: a surface of level 0, layer 0, bound as the only color buffer.
    s.create(OBJECT_SURFACE, &[SURFACE, target, 2, 0, 0]);
    s.cmd(SET_FRAMEBUFFER_STATE, 0, &[1, 0, SURFACE]);
    // No blending, all channels written (colormask at bit 27 of render target 0).
    let mut blend = vec![BLEND, 0, 0, 0xf << 27];
    blend.resize(11, 0);
    s.create(OBJECT_BLEND, &blend).bind(OBJECT_BLEND, BLEND);
    // Depth, stencil and alpha tests off.
    s.create(OBJECT_DSA, &[DSA, 0, 0, 0, 0])
        .bind(OBJECT_DSA, DSA);
    // Filled, not culled; depth clip, half-pixel centers, bottom edge rule (GL's).
    let rs_s0 = 1 << 1 | 1 << 29 | 1 << 30;
    s.create(
        OBJECT_RASTERIZER,
        &[RASTERIZER, rs_s0, float(1.0), 0, 0, float(1.0), 0, 0, 0],
    )
    .bind(OBJECT_RASTERIZER, RASTERIZER);
    s.shader(VS, SHADER_VERTEX, VERTEX_SHADER);
    s.shader(FS, SHADER_FRAGMENT, fragment);
    // Two vec4 attributes from buffer 0: position at 0, color at 16.
    s.create(
        OBJECT_VERTEX_ELEMENTS,
        &[
            VERTEX_ELEMENTS,
            0,
            0,
            0,
            FORMAT_R32G32B32A32_FLOAT,
            16,
            0,
            0,
            FORMAT_R32G32B32A32_FLOAT,
        ],
    )
    .bind(OBJECT_VERTEX_ELEMENTS, VERTEX_ELEMENTS);
    let mut vertices = Vec::new();
    for [x, y] in positions {
        vertices.extend([x, y, 0.0, 1.0].map(float));
        vertices.extend(color.map(float));
    }
    let mut inline = vec![
        vertex_buffer,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        TRIANGLE_VERTEX_BYTES,
        1,
        1,
    ];
    inline.extend(vertices);
    s.cmd(RESOURCE_INLINE_WRITE, 0, &inline);
    s.cmd(SET_VERTEX_BUFFERS, 0, &[32, 0, vertex_buffer]);
    let (w, h) = (width as f32 / 2.0, height as f32 / 2.0);
    s.cmd(
        SET_VIEWPORT_STATE,
        0,
        &[
            0,
            float(w),
            float(h),
            float(0.5),
            float(w),
            float(h),
            float(0.5),
        ],
    );
    let mut clear_body = vec![CLEAR_COLOR0];
    clear_body.extend(clear.map(float));
    clear_body.extend([0, 0, 0]);
    s.cmd(CLEAR, 0, &clear_body);
    s.cmd(
        DRAW_VBO,
        0,
        &[0, 3, PRIM_TRIANGLES, 0, 1, 0, 0, 0, 0, 0, 2, 0],
    );
    s.bytes()
}

/// A stream of `count` NOPs (the smallest valid submission).
pub fn nops(count: usize) -> Vec<u8> {
    vec![0u8; count * 4]
}

/// RESOURCE_CREATE_3D of a buffer of `bytes` bytes bound as a vertex buffer.
pub fn resource_create_vertex_buffer(id: u32, bytes: u32) -> Vec<u8> {
    use super::gpu_cmd::{Cmd, RESOURCE_CREATE_3D};
    Cmd::new(RESOURCE_CREATE_3D, 0, None)
        .u32(id)
        .u32(TARGET_BUFFER)
        .u32(FORMAT_R8_UNORM)
        .u32(BIND_VERTEX_BUFFER)
        .u32(bytes)
        .u32(1)
        .u32(1)
        .u32(1)
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(0)
        .build()
}
