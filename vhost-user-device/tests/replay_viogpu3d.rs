//! Replays, over vhost-user to the in-process device on virglrenderer, what the Windows 3D
//! driver (viogpu3d) sends for a frame: capsets, context, 3D render target, a fenced
//! SUBMIT_3D of a real virgl stream (clear plus a shaded triangle), TRANSFER_FROM_HOST_3D.
//! The same replay against the jailed ray-gpu is integration/tests/replay_jailed_viogpu3d.rs.

mod support;

use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};

use devices::virtio_gpu::{Backend, BackendConfig, GpuConfig, RendererChoice, VirtioGpu};

use support::gpu_cmd::*;
use support::session::Session;
use support::viogpu3d::{self, CLEAR_BGRX, SIZE, TRIANGLE_BGRX};

/// A frontend session with the device served on its own thread. The thread must be joined
/// before the test returns: the renderer is torn down there, and a teardown still running
/// while the process exits trips libGLdispatch's thread accounting (an abort seen in CI).
fn start_virgl_session() -> (Session, JoinHandle<()>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || {
        let backend = Backend::init(&BackendConfig {
            renderer: RendererChoice::Virgl,
            surfaceless: None,
        })
        .expect("virglrenderer");
        let gpu = VirtioGpu::new(backend, GpuConfig::default()).expect("device");
        vhost_user_device::serve(theirs, gpu).expect("serving ends cleanly");
    });
    let session = Session::connect(
        ours,
        VIRTIO_GPU_F_VIRGL | VIRTIO_GPU_F_EDID,
        64 << 20,
        vec![(1024, 768)],
    );
    (session, server)
}

#[test]
fn viogpu3d_frame_clears_and_draws_a_triangle() {
    let (mut session, server) = start_virgl_session();

    let frame = viogpu3d::replay(&mut session, 7);
    let offered = session.offered;
    drop(session);
    server.join().unwrap();

    assert_ne!(offered & VIRTIO_GPU_F_VIRGL, 0, "VIRGL offered");
    assert!(frame
        .capset_infos
        .iter()
        .all(|r| response_type(r) == RESP_OK_CAPSET_INFO));
    assert_eq!(response_type(&frame.capset), RESP_OK_CAPSET);
    assert_eq!(frame.responses, vec![RESP_OK_NODATA; 8]);
    assert_eq!(frame.submit_fence, 7);
    assert_eq!(
        frame.pixel(0, 0),
        CLEAR_BGRX,
        "corner keeps the clear color"
    );
    assert_eq!(
        frame.pixel(SIZE / 2, SIZE / 2),
        TRIANGLE_BGRX,
        "center is inside the triangle"
    );
}
