//! The work watchdog of the real jailed ray-gpu: a guest draw that never finishes (a fragment
//! shader looping for ever, sent in a fenced SUBMIT_3D) is stopped when its fence has waited
//! longer than the work timeout: the GPU process exits with `WORK_TIMEOUT_EXIT_CODE` (3), so
//! only the guilty VM's GPU process ends; work that finishes in time is answered as usual.

mod jailed_gpu;

use std::time::{Duration, Instant};

use control::messages::{RendererMode, WORK_TIMEOUT_EXIT_CODE};
use jail::ExitStatus;

use jailed_gpu::support::gpu_cmd::*;
use jailed_gpu::support::guest::Buffer;
use jailed_gpu::support::virgl::{self, Work};
use jailed_gpu::JailedGpu;

const CTX: u32 = 1;
const TARGET: u32 = 10;
const VERTEX_BUFFER: u32 = 11;
const SIZE: u32 = 256;
const WORK_TIMEOUT: Duration = Duration::from_millis(600);

/// A jailed ray-gpu with the work timeout, a context and a render target with its vertex
/// buffer attached.
fn gpu_with_target() -> JailedGpu {
    let mut gpu = jailed_gpu::spawn_configured(RendererMode::Virgl, VIRTIO_GPU_F_VIRGL, |c| {
        c.work_timeout = Some(WORK_TIMEOUT)
    })
    .expect("the jailed GPU process becomes ready");
    let session = &mut gpu.session;
    session.ok(ctx_create(CTX, "busy"));
    session.ok(resource_create_3d(
        TARGET,
        FORMAT_B8G8R8X8_UNORM,
        virgl::BIND_RENDER_TARGET,
        SIZE,
        SIZE,
    ));
    session.ok(virgl::resource_create_vertex_buffer(
        VERTEX_BUFFER,
        virgl::TRIANGLE_VERTEX_BYTES,
    ));
    session.ok(ctx_attach_resource(CTX, TARGET));
    session.ok(ctx_attach_resource(CTX, VERTEX_BUFFER));
    gpu
}

#[test]
fn endless_draw_is_stopped_by_the_work_watchdog_with_exit_3_after_its_timeout() {
    let mut gpu = gpu_with_target();
    let stream = virgl::busy_draw(TARGET, VERTEX_BUFFER, (SIZE, SIZE), Work::Endless);
    let session = &mut gpu.session;
    let mut buffers = session.place(&[submit_3d(CTX, Some(7), &stream)]);
    let response = session.ram.alloc(HEADER as u64, 8);
    buffers.push(Buffer::writable(response, HEADER as u32));

    session.control.push(&session.ram, &buffers);
    session.control.notify();
    let sent = Instant::now();
    let exit = gpu.process.wait_timeout(Duration::from_secs(30));
    let stopped_after = sent.elapsed();

    let status = exit
        .expect("waiting for ray-gpu")
        .map(|report| report.status);
    assert_eq!(status, Some(ExitStatus::Exited(WORK_TIMEOUT_EXIT_CODE)));
    assert!(
        stopped_after >= WORK_TIMEOUT && stopped_after < Duration::from_secs(10),
        "stopped after {stopped_after:?}"
    );
}

#[test]
fn draw_that_finishes_within_the_work_timeout_is_answered_and_the_process_serves_on() {
    let mut gpu = gpu_with_target();
    let stream = virgl::busy_draw(TARGET, VERTEX_BUFFER, (SIZE, SIZE), Work::Iterations(16));

    let response = gpu
        .session
        .command(&[submit_3d(CTX, Some(8), &stream)], HEADER as u32);
    std::thread::sleep(WORK_TIMEOUT * 2);
    let exit = gpu.disconnect();

    assert_eq!(response_type(&response), RESP_OK_NODATA);
    assert_eq!(exit, ExitStatus::Exited(0));
}
