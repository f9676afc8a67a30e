//! The GPU process's rendering work without the jail, for tracing which system calls the
//! headless GL stack makes (policies/x86_64/README.md): virglrenderer through rutabaga_gfx
//! on EGL surfaceless, a VIRGL2 context, a render-target resource, a clear of it through a
//! framebuffer surface, a fence on the global timeline, and a readback of the cleared pixels.
//!
//! `strace -f -o TRACE target/debug/examples/gl_workload`, then `ray-seccomp learn TRACE`;
//! the `getppid` call in the trace marks the end of renderer initialisation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rutabaga_gfx::{
    ResourceCreate3D, RutabagaBuilder, RutabagaComponentType, RutabagaFence, RutabagaFenceHandler,
    RutabagaIovec, Transfer3D, RUTABAGA_CAPSET_VIRGL2, RUTABAGA_FLAG_FENCE,
    RUTABAGA_PIPE_BIND_RENDER_TARGET, RUTABAGA_PIPE_TEXTURE_2D,
};

const CTX: u32 = 1;
const RESOURCE: u32 = 1;
const SIZE: u32 = 64;
/// `VIRGL_FORMAT_B8G8R8X8_UNORM` (virgl_hw.h).
const B8G8R8X8: u32 = 2;
/// virgl_protocol.h command and object numbers used by the clear.
const VIRGL_CCMD_CREATE_OBJECT: u32 = 1;
const VIRGL_CCMD_SET_FRAMEBUFFER_STATE: u32 = 5;
const VIRGL_CCMD_CLEAR: u32 = 7;
const VIRGL_OBJECT_SURFACE: u32 = 8;
/// `PIPE_CLEAR_COLOR0` (p_defines.h).
const PIPE_CLEAR_COLOR0: u32 = 1 << 2;
const SURFACE_HANDLE: u32 = 1;
const FENCE_ID: u64 = 1;

fn command(cmd: u32, object: u32, payload: &[u32]) -> Vec<u32> {
    let mut words = vec![(payload.len() as u32) << 16 | object << 8 | cmd];
    words.extend_from_slice(payload);
    words
}

fn clear_commands() -> Vec<u8> {
    let red = 1.0f32.to_bits();
    let zero = 0.0f32.to_bits();
    let words = [
        command(
            VIRGL_CCMD_CREATE_OBJECT,
            VIRGL_OBJECT_SURFACE,
            &[SURFACE_HANDLE, RESOURCE, B8G8R8X8, 0, 0],
        ),
        command(VIRGL_CCMD_SET_FRAMEBUFFER_STATE, 0, &[1, 0, SURFACE_HANDLE]),
        command(
            VIRGL_CCMD_CLEAR,
            0,
            &[PIPE_CLEAR_COLOR0, red, zero, zero, zero, 0, 0, 0],
        ),
    ]
    .concat();
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn main() -> Result<()> {
    let signalled = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&signalled);
    let fence_handler = RutabagaFenceHandler::new(move |fence: RutabagaFence| {
        seen.store(fence.fence_id, Ordering::SeqCst);
    });
    let mut rutabaga = RutabagaBuilder::new(RutabagaComponentType::VirglRenderer, 0)
        .set_use_egl(true)
        .set_use_gles(true)
        .set_use_surfaceless(true)
        .build(fence_handler, None)
        .context("virglrenderer init")?;
    // A marker in the trace: everything after it is what the process does once its filter
    // would be installed (ray-gpu brings the renderer up before the filter).
    let _ = std::os::unix::process::parent_id();
    for index in 0..rutabaga.get_num_capsets() {
        let (id, version, _) = rutabaga.get_capset_info(index).context("capset info")?;
        rutabaga.get_capset(id, version).context("capset")?;
    }
    rutabaga
        .create_context(CTX, RUTABAGA_CAPSET_VIRGL2, None)
        .context("context")?;
    let create = ResourceCreate3D {
        target: RUTABAGA_PIPE_TEXTURE_2D,
        format: B8G8R8X8,
        bind: RUTABAGA_PIPE_BIND_RENDER_TARGET,
        width: SIZE,
        height: SIZE,
        depth: 1,
        array_size: 1,
        last_level: 0,
        nr_samples: 0,
        flags: 0,
    };
    rutabaga
        .resource_create_3d(RESOURCE, create)
        .context("resource")?;
    let mut backing = vec![0u8; (SIZE * SIZE * 4) as usize];
    let iovec = RutabagaIovec {
        base: backing.as_mut_ptr().cast(),
        len: backing.len(),
    };
    rutabaga
        .attach_backing(RESOURCE, vec![iovec])
        .context("backing")?;
    rutabaga
        .context_attach_resource(CTX, RESOURCE)
        .context("attach")?;
    rutabaga
        .submit_command(CTX, &mut clear_commands())
        .context("clear")?;
    rutabaga
        .create_fence(RutabagaFence {
            flags: RUTABAGA_FLAG_FENCE,
            fence_id: FENCE_ID,
            ctx_id: 0,
            ring_idx: 0,
        })
        .context("fence")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while signalled.load(Ordering::SeqCst) < FENCE_ID {
        if Instant::now() > deadline {
            bail!("fence {FENCE_ID} did not signal");
        }
        rutabaga.event_poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    let transfer = Transfer3D::new_2d(0, 0, SIZE, SIZE);
    rutabaga
        .transfer_read(CTX, RESOURCE, transfer, None)
        .context("readback")?;
    println!(
        "capsets {}, first pixel {:02x?}",
        rutabaga.get_num_capsets(),
        &backing[..4]
    );
    Ok(())
}
