//! Recordings of a synthetic guest that keeps the GPU busy, for `rayvmm replay`: the work
//! timeout's tests and the noisy-neighbour benchmark's aggressors (one long draw, a draw that
//! never finishes). Written with the `recording` crate in the format `rayvmm run --record`
//! writes, so they are replayed exactly as a recorded guest is.
//!
//! The guest: a virgl context, a 1024x768 render target with guest backing shown on scanout
//! 0, then per draw one fenced SUBMIT_3D of [`virgl::busy_draw`] and a RESOURCE_FLUSH. When
//! the draws finish, a recorded frame of the color the shader ends with lets the replay check
//! that the work really ran.

use std::io::BufWriter;
use std::path::Path;

use recording::{Frame, Queue, Record, Writer};

use super::support::gpu_cmd::*;
use super::support::virgl::{self, Work};

pub const WIDTH: u32 = 1024;
pub const HEIGHT: u32 = 768;
const CTX: u32 = 1;
const TARGET: u32 = 1;
const VERTEX_BUFFER: u32 = 2;
/// Guest RAM of the synthetic guest, and where the render target's backing lies in it.
const RAM_BYTES: u64 = 16 << 20;
const BACKING_AT: u64 = 1 << 20;

/// Writes the recording of `draws` busy draws of `work` each to `path`.
pub fn write(path: &Path, work: Work, draws: u32) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut out = Writer::new(BufWriter::new(file))?;
    out.write(&Record::Info(format!(
        "{{\"guest\": \"synthetic busy draws ({work:?} x {draws})\", \"display\": \"{WIDTH}x{HEIGHT}\"}}"
    )))?;
    out.write(&Record::MemoryMap(vec![(0, RAM_BYTES)]))?;
    out.write(&Record::Features(VIRTIO_GPU_F_VIRGL))?;
    let whole = Rect(0, 0, WIDTH, HEIGHT);
    let mut commands = vec![
        ctx_create(CTX, "busy"),
        resource_create_3d(
            TARGET,
            FORMAT_B8G8R8X8_UNORM,
            virgl::BIND_RENDER_TARGET,
            WIDTH,
            HEIGHT,
        ),
        virgl::resource_create_vertex_buffer(VERTEX_BUFFER, virgl::TRIANGLE_VERTEX_BYTES),
        [
            attach_backing(TARGET, 1),
            mem_entries(&[(BACKING_AT, WIDTH * HEIGHT * 4)]),
        ]
        .concat(),
        ctx_attach_resource(CTX, TARGET),
        ctx_attach_resource(CTX, VERTEX_BUFFER),
        set_scanout(0, TARGET, whole),
    ];
    let stream = virgl::busy_draw(TARGET, VERTEX_BUFFER, (WIDTH, HEIGHT), work);
    for draw in 0..draws {
        commands.push(submit_3d(CTX, Some(u64::from(draw) + 1), &stream));
        commands.push(resource_flush(TARGET, whole));
    }
    let count = commands.len() as u64;
    for (at, request) in commands.into_iter().enumerate() {
        out.write(&Record::Command {
            queue: Queue::Control,
            at_us: at as u64 * 1000,
            response_len: HEADER as u32,
            request,
        })?;
    }
    if let Work::Iterations(n) = work {
        out.write(&Record::Frame(Frame {
            after: count,
            width: WIDTH,
            height: HEIGHT,
            pixels: expected_pixels(n),
        }))?;
    }
    out.finish()?;
    Ok(())
}

/// The target after a draw of `iterations`: every pixel the start color scaled by
/// `DECAY^iterations`, as B, G, R, X.
fn expected_pixels(iterations: u32) -> Vec<u8> {
    let scale = f64::from(virgl::BUSY_DECAY).powf(f64::from(iterations));
    let [r, g, b, _] = virgl::BUSY_COLOR.map(|c| (f64::from(c) * scale * 255.0).round() as u8);
    [b, g, r, 0xff].repeat((WIDTH * HEIGHT) as usize)
}
