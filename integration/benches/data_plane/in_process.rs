//! The same device code as the jailed ray-gpu, unjailed: `devices::virtio_gpu::VirtioGpu` on
//! virglrenderer, served by `vhost_user_device::serve` on a thread of this process over a
//! socketpair, driven by the same test frontend. The difference to the jailed one is the jail
//! (namespaces, seccomp filter, Landlock) and the process boundary, nothing else.
//!
//! virglrenderer can be initialised once per process: this is the one in the benchmark's
//! process (the jailed one lives in ray-gpu's).

use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};

use devices::virtio_gpu::{Backend, BackendConfig, GpuConfig, RendererChoice, VirtioGpu};

use crate::jailed_gpu::support::session::Session;

/// A driver session on the in-process device, and the thread serving it.
pub struct InProcessGpu {
    pub session: Session,
    /// What renderer came up, worded as ray-gpu words it in its Ready message.
    pub renderer: String,
    server: JoinHandle<()>,
}

impl InProcessGpu {
    /// Brings virglrenderer and the device up on a new thread (its GL context belongs to that
    /// thread), serves it there, and connects a session negotiating `wanted` with the same RAM
    /// and display mode as the jailed session.
    pub fn start(wanted: u64, ram_bytes: u64, modes: Vec<(u32, u32)>) -> InProcessGpu {
        let (ours, theirs) = UnixStream::pair().expect("vhost-user socketpair");
        let (told, description) = mpsc::channel();
        let server = thread::Builder::new()
            .name("in-process-gpu".into())
            .spawn(move || {
                let backend = Backend::init(&BackendConfig {
                    renderer: RendererChoice::Virgl,
                    surfaceless: None,
                })
                .expect("virglrenderer in the benchmark's process");
                let _ = told.send(backend.info().to_string());
                let gpu = VirtioGpu::new(backend, GpuConfig::default()).expect("the device");
                vhost_user_device::serve(theirs, gpu).expect("serving ends cleanly");
            })
            .expect("starting the in-process device's thread");
        let renderer = description
            .recv()
            .expect("the in-process renderer came up (see the panic above)");
        let session = Session::connect(ours, wanted, ram_bytes, modes);
        InProcessGpu {
            session,
            renderer,
            server,
        }
    }

    /// Disconnects and waits for the serving thread, which tears the renderer down. Must run
    /// before the process exits: a GL teardown still running during exit aborts in
    /// libGLdispatch.
    pub fn stop(self) {
        drop(self.session);
        self.server
            .join()
            .expect("the in-process device's thread ends cleanly");
    }
}
