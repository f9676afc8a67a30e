//! `rayvmm replay` of a synthetic guest that keeps the GPU busy (`jailed_gpu::busy_recording`)
//! into the real jailed ray-gpu: a long draw finishes, shows the color its shader computed and
//! reports how long its fence waited; a draw that never finishes is stopped by the GPU work
//! timeout, and the replay names it.

mod guest_support;
mod jailed_gpu;

use std::path::PathBuf;

use guest_support::{replay, replay_json, scratch_dir};
use jailed_gpu::busy_recording;
use jailed_gpu::support::virgl::Work;

fn recording(name: &str, work: Work, draws: u32) -> PathBuf {
    let path = scratch_dir(&format!("busy-{name}")).join(format!("{name}.raygrec"));
    busy_recording::write(&path, work, draws).expect("writing the synthetic recording");
    path
}

#[test]
fn replayed_busy_draws_show_the_color_their_shader_computed_and_report_fence_waits() {
    let path = recording("draws", Work::Iterations(200), 3);

    let report = replay_json(&path, &["--tolerance", "2"]);

    assert_eq!(report["frames_match"], true, "{report:#}");
    assert_eq!(report["fences"], 3, "{report:#}");
    assert!(report["fence_us_max"].as_u64().unwrap() > 0, "{report:#}");
}

#[test]
fn replayed_endless_draw_is_stopped_by_the_gpu_work_timeout_and_the_replay_says_so() {
    let path = recording("endless", Work::Endless, 1);

    let run = replay(&path, &["--gpu-work-timeout", "600ms"]);

    assert_eq!(run.code, Some(2), "{}", run.output);
    assert!(
        run.output.contains(
            "the GPU process stopped the guest's GPU work: it did not finish within the GPU \
             work timeout (0.6 s)"
        ),
        "{}",
        run.output
    );
}
