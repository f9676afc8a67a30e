//! The viogpu3d (Windows 3D driver) replay against the real jailed ray-gpu on virglrenderer
//! (EGL surfaceless on llvmpipe here, the render node where one exists): capsets, context,
//! 3D render target, a fenced SUBMIT_3D of a real virgl stream (clear plus a triangle drawn
//! with TGSI shaders), TRANSFER_FROM_HOST_3D; pixels asserted in guest memory.

mod jailed_gpu;

use control::messages::RendererMode;
use jail::ExitStatus;

use jailed_gpu::support::gpu_cmd::*;
use jailed_gpu::support::viogpu3d::{self, CLEAR_BGRX, SIZE, TRIANGLE_BGRX};

#[test]
fn viogpu3d_frame_is_rendered_by_virglrenderer_inside_the_jail() {
    let mut gpu = jailed_gpu::spawn(RendererMode::Virgl, VIRTIO_GPU_F_VIRGL);

    let frame = viogpu3d::replay(&mut gpu.session, 42);
    let renderer = gpu.process.ready_info().renderer.clone();
    let exit = gpu.disconnect();

    assert!(renderer.starts_with("virgl"), "Ready says {renderer}");
    assert_eq!(frame.responses, vec![RESP_OK_NODATA; 8]);
    assert_eq!(response_type(&frame.capset), RESP_OK_CAPSET);
    assert_eq!(
        frame.submit_fence, 42,
        "the fenced response echoes its fence"
    );
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
    assert_eq!(exit, ExitStatus::Exited(0));
}
