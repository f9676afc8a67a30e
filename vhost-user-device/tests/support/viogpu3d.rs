//! What the Windows 3D driver (viogpu3d) sends for one frame, replayed on a [`Session`]:
//! capsets, a context, a 3D render target with guest backing, a vertex buffer, a fenced
//! SUBMIT_3D of a clear and a triangle, and TRANSFER_FROM_HOST_3D of the result.

use super::gpu_cmd::*;
use super::session::Session;
use super::virgl;

/// Side of the square render target.
pub const SIZE: u32 = 64;
pub const CTX: u32 = 1;
pub const TARGET: u32 = 10;
pub const VERTEX_BUFFER: u32 = 11;
/// virgl2, the capset viogpu3d's user-mode driver asks for.
pub const CAPSET_VIRGL2: u32 = 2;
/// Clear color (RGBA) and how the target stores it (B, G, R, X).
pub const CLEAR: [f32; 4] = [0.0, 0.0, 1.0, 1.0];
pub const CLEAR_BGRX: [u8; 4] = [0xff, 0x00, 0x00, 0xff];
/// Triangle color (RGBA) and how the target stores it.
pub const TRIANGLE: [f32; 4] = [0.0, 1.0, 0.0, 1.0];
pub const TRIANGLE_BGRX: [u8; 4] = [0x00, 0xff, 0x00, 0xff];

/// The responses and pixels of one replayed frame.
pub struct Frame3d {
    /// GET_CAPSET_INFO for each index the device reported, then GET_CAPSET of virgl2.
    pub capset_infos: Vec<Vec<u8>>,
    pub capset: Vec<u8>,
    /// Response types of CTX_CREATE, both RESOURCE_CREATE_3D, ATTACH_BACKING, both
    /// CTX_ATTACH_RESOURCE, the fenced SUBMIT_3D and TRANSFER_FROM_HOST_3D.
    pub responses: Vec<u32>,
    /// Fence id echoed by the fenced SUBMIT_3D response.
    pub submit_fence: u64,
    /// The render target read back into guest backing: rows of `SIZE * 4` bytes.
    pub pixels: Vec<u8>,
}

impl Frame3d {
    /// The pixel at `(x, y)` as B, G, R, X.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let at = ((y * SIZE + x) * 4) as usize;
        self.pixels[at..at + 4].try_into().unwrap()
    }
}

/// Number of capsets in config space (`num_capsets` at offset 12).
fn capset_count(session: &Session) -> u32 {
    le32(&session.frontend.get_config(12, 4), 0)
}

/// Replays the frame; `fence` is the id of the fenced submit.
pub fn replay(session: &mut Session, fence: u64) -> Frame3d {
    let capset_infos: Vec<Vec<u8>> = (0..capset_count(session))
        .map(|i| session.command(&[get_capset_info(i)], (HEADER + 16) as u32))
        .collect();
    let virgl2 = capset_infos
        .iter()
        .find(|r| le32(r, HEADER) == CAPSET_VIRGL2)
        .expect("the device reports the virgl2 capset");
    let (version, size) = (le32(virgl2, HEADER + 4), le32(virgl2, HEADER + 8));
    let capset = session.command(&[get_capset(CAPSET_VIRGL2, version)], HEADER as u32 + size);

    let bytes = SIZE * SIZE * 4;
    let backing = session.ram.alloc(u64::from(bytes), 4096);
    let mut responses = Vec::new();
    let mut send = |session: &mut Session, parts: &[Vec<u8>]| {
        let response = session.command(parts, HEADER as u32);
        responses.push(response_type(&response));
        response
    };
    send(session, &[ctx_create(CTX, "viogpu3d")]);
    send(
        session,
        &[resource_create_3d(
            TARGET,
            FORMAT_B8G8R8X8_UNORM,
            virgl::BIND_RENDER_TARGET,
            SIZE,
            SIZE,
        )],
    );
    send(
        session,
        &[virgl::resource_create_vertex_buffer(
            VERTEX_BUFFER,
            virgl::TRIANGLE_VERTEX_BYTES,
        )],
    );
    send(
        session,
        &[attach_backing(TARGET, 1), mem_entries(&[(backing, bytes)])],
    );
    send(session, &[ctx_attach_resource(CTX, TARGET)]);
    send(session, &[ctx_attach_resource(CTX, VERTEX_BUFFER)]);
    let stream = virgl::clear_and_triangle(TARGET, VERTEX_BUFFER, (SIZE, SIZE), CLEAR, TRIANGLE);
    let submitted = send(session, &[submit_3d(CTX, Some(fence), &stream)]);
    send(
        session,
        &[transfer_from_host_3d(
            CTX,
            TARGET,
            None,
            (SIZE, SIZE),
            SIZE * 4,
        )],
    );
    Frame3d {
        capset_infos,
        capset,
        responses,
        submit_fence: u64::from_le_bytes(submitted[8..16].try_into().unwrap()),
        pixels: session.ram.read(backing, bytes as usize),
    }
}
