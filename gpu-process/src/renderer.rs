//! The renderer seam without a device: whatever must start before the seccomp filter goes on
//! when no vhost-user socket was passed (sandbox reports and escape tests of a process that
//! has the GL stack loaded). With a socket, `device` brings the renderer up inside the
//! device instead.

use control::messages::RendererMode;
use devices::virtio_gpu::{Backend, BackendConfig, RendererChoice};

/// Starts the renderer `mode` asks for and keeps it loaded for the life of the process;
/// returns a description and the GL renderer for the Ready message.
pub fn start(mode: RendererMode) -> Result<(String, Option<String>), String> {
    let renderer = match mode {
        RendererMode::None => return Ok(("none".into(), None)),
        RendererMode::Virgl => RendererChoice::VirglOrTwoD,
        RendererMode::TwoD => RendererChoice::TwoD,
    };
    let backend = Backend::init(&BackendConfig {
        renderer,
        surfaceless: None,
    })
    .map_err(|e| format!("starting the renderer: {e}"))?;
    let description = format!("{} (no device served)", backend.info());
    let gl_renderer = backend.info().gl_renderer.clone();
    // Kept, never torn down: the process ends with _exit or a signal.
    Box::leak(Box::new(backend));
    Ok((description, gl_renderer))
}
