//! Linux guest, 3D: Mesa's virgl driver in the guest renders through virglrenderer in the
//! jailed GPU process.

mod guest_support;

use std::time::Duration;

use guest_support::{linux_args, richest_picture, scratch_dir, Rayvmm, GUEST_TIMEOUT};

/// A kmscube frame is shaded: far more colours than a text console.
const RENDERED_FRAME_MIN_COLOURS: usize = 64;

#[test]
fn linux_3d_kmscube_renders_frames_on_virgl_and_a_screenshot_shows_one() {
    let dir = scratch_dir("linux-3d-kmscube");
    let mut run = Rayvmm::start(&linux_args(&dir, "kmscube", true, "rayos.frames=400"));

    run.screenshots_until_exit(Duration::from_secs(2), GUEST_TIMEOUT);
    let done = run.finish(Duration::from_secs(30));

    let shot = richest_picture(&done.screenshots());
    eprintln!(
        "kmscube: {:.1} s, {} fps, best screenshot {shot:?}",
        done.seconds,
        done.result("kmscube_fps")
    );
    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert!(done.serial.contains("RAYOS-DONE status=ok"));
    assert!(done.result("gl_renderer").starts_with("virgl ("));
    assert_eq!(done.result("kmscube_frames"), "400");
    assert_eq!((shot.width, shot.height), (1024, 768));
    assert!(shot.colours >= RENDERED_FRAME_MIN_COLOURS, "{shot:?}");
}

#[test]
fn linux_3d_glmark2_completes_a_short_set_with_a_score() {
    let dir = scratch_dir("linux-3d-glmark2");
    let run = Rayvmm::start(&linux_args(
        &dir,
        "glmark2",
        true,
        "rayos.duration=2 rayos.glmark2=build;texture",
    ));

    let done = run.finish(GUEST_TIMEOUT);

    let score: u32 = done.result("glmark2_score").parse().unwrap_or(0);
    eprintln!("glmark2: {:.1} s, score {score}", done.seconds);
    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert!(done.result("gl_renderer").starts_with("virgl ("));
    assert!(score > 0, "no glmark2 score:\n{}", done.serial);
}
