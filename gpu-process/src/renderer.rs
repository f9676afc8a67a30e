//! The renderer seam: whatever must start before the seccomp filter goes on.
//!
//! The virtio-gpu device (rutabaga/virglrenderer) plugs in here: `start` runs after Landlock
//! and before the filter, so the policy needs no start-up-only calls, and before anything the
//! guest controls is read.

use devices::control::RendererMode;

/// Starts the renderer `mode` asks for; returns a description for the Ready message.
pub fn start(mode: RendererMode) -> Result<String, String> {
    match mode {
        RendererMode::None => Ok("none".into()),
        RendererMode::Virgl | RendererMode::TwoD => Err(format!(
            "renderer {mode:?} is not built into this ray-gpu yet"
        )),
    }
}
