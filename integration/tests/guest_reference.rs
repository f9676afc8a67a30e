//! Reference runs: the same guests on QEMU's own in-process GPU devices (guest/run-reference.sh:
//! `virtio-gpu-pci` for 2D; `virtio-gpu-gl-pci` with `-display sdl,gl=on` on a private Xvfb
//! for 3D) give the same visible result as the jailed GPU process.

mod guest_support;

use std::collections::BTreeSet;
use std::time::Duration;

use guest_support::{linux_args, picture, richest_picture, scratch_dir, Rayvmm, GUEST_TIMEOUT};

#[test]
fn linux_2d_matches_the_in_process_virtio_gpu_reference() {
    let dir = scratch_dir("reference-2d");
    let reference_shot = dir.join("reference.png");
    let (reference_code, reference) = guest_support::reference_run(
        "2d",
        &[
            "--workload",
            "2d",
            "--screendump",
            &reference_shot.display().to_string(),
        ],
    );

    let done = Rayvmm::start(&linux_args(&dir, "2d", false, "")).finish(GUEST_TIMEOUT);

    let ours = picture(&dir.join("final.png"));
    let theirs = picture(&reference_shot);
    let our_keys: BTreeSet<&String> = done.results.keys().collect();
    let their_keys: BTreeSet<&String> = reference.keys().collect();
    eprintln!("2d: ours {ours:?}, reference {theirs:?}");
    assert_eq!(reference_code, Some(0));
    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert_eq!(our_keys, their_keys);
    assert_eq!(done.result("fb_size"), reference["fb_size"]);
    assert_eq!((ours.width, ours.height), (theirs.width, theirs.height));
    assert_eq!(ours.colours, theirs.colours);
}

#[test]
fn linux_3d_kmscube_matches_the_in_process_virgl_reference() {
    let dir = scratch_dir("reference-3d");
    let reference_shot = dir.join("reference.png");
    let (reference_code, reference) = guest_support::reference_run(
        "gl",
        &[
            "--workload",
            "kmscube",
            "--frames",
            "120",
            "--screendump",
            &reference_shot.display().to_string(),
        ],
    );
    let mut run = Rayvmm::start(&linux_args(&dir, "kmscube", true, "rayos.frames=400"));

    run.screenshots_until_exit(Duration::from_secs(2), GUEST_TIMEOUT);
    let done = run.finish(Duration::from_secs(30));

    let ours = richest_picture(&done.screenshots());
    let theirs = picture(&reference_shot);
    let our_keys: BTreeSet<&String> = done.results.keys().collect();
    let their_keys: BTreeSet<&String> = reference.keys().collect();
    eprintln!(
        "3d: ours {ours:?} at {} fps, reference {theirs:?} at {} fps",
        done.result("kmscube_fps"),
        reference["kmscube_fps"]
    );
    assert_eq!(reference_code, Some(0));
    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert_eq!(our_keys, their_keys);
    assert!(reference["gl_renderer"].starts_with("virgl ("));
    assert_eq!(
        done.result("gl_renderer").split(" (").next(),
        reference["gl_renderer"].split(" (").next()
    );
    assert!(
        ours.colours > 1 && theirs.colours > 1,
        "{ours:?} {theirs:?}"
    );
}
