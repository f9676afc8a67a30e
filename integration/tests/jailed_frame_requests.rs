//! Frames on demand under load, against the real jailed ray-gpu in trap mode: rayvmm's frame
//! requests (answered on the thread that serves the device) race the guest's transfers and
//! flushes for seconds, as the frame pump races a rendering guest. A system call the filter
//! refuses on any of those paths (a rare one, such as the yield of a contended channel) ends
//! the process with the call named, which fails the test.

mod jailed_gpu;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use control::messages::RendererMode;
use jail::ExitStatus;
use seccomp::DefaultAction;
use vmm::gpu_process::{FrameBuffer, FrameUpdate};

use jailed_gpu::support::gpu_cmd::*;
use jailed_gpu::support::viogpudo::{self, FB_ID, HEIGHT, WIDTH};

/// How long the guest side and the frame side race.
const RACE: Duration = Duration::from_secs(8);

#[test]
fn frame_requests_racing_guest_flushes_never_trip_the_filter() {
    let gpu = jailed_gpu::spawn_with_action(
        RendererMode::Virgl,
        VIRTIO_GPU_F_VIRGL,
        None,
        DefaultAction::Trap,
    )
    .expect("the jailed GPU process becomes ready");
    let jailed_gpu::JailedGpu {
        mut process,
        mut session,
    } = gpu;
    viogpudo::bring_up_and_present(&mut session);
    let racing = Arc::new(AtomicBool::new(true));
    let frames_racing = Arc::clone(&racing);
    let frames = std::thread::spawn(move || {
        let mut buffer = FrameBuffer::new(u64::from(WIDTH * HEIGHT * 4)).unwrap();
        let (mut since, mut pixels, mut failure) = (0, 0u32, None);
        while frames_racing.load(Ordering::Acquire) && failure.is_none() {
            match process.frame(&mut buffer, (since, 0), Duration::from_secs(10)) {
                Ok((FrameUpdate::Pixels { generation, .. }, _, _)) => {
                    since = generation;
                    pixels += 1;
                }
                Ok(_) => {}
                Err(e) => failure = Some(e.to_string()),
            }
        }
        (process, pixels, failure)
    });

    let started = Instant::now();
    let full = Rect(0, 0, WIDTH, HEIGHT);
    let mut flushes = 0u32;
    while started.elapsed() < RACE {
        session.ok(transfer_to_host_2d(FB_ID, full, 0));
        session.ok(resource_flush(FB_ID, full));
        flushes += 1;
    }
    racing.store(false, Ordering::Release);
    let (mut process, pixels, failure) = frames.join().unwrap();
    drop(session);
    let exit = process
        .wait_timeout(Duration::from_secs(10))
        .ok()
        .flatten()
        .map(|report| report.status);

    eprintln!("{flushes} flushes, {pixels} frames with pixels");
    assert_eq!(failure, None);
    assert!(
        pixels > 10 && flushes > 10,
        "{pixels} frames, {flushes} flushes"
    );
    assert_eq!(exit, Some(ExitStatus::Exited(0)));
}
