//! UEFI: OVMF (the firmware a Windows guest boots through) finds our GPU, uses it as its
//! display, and draws through the GPU process; a screenshot taken on request shows it.

mod guest_support;

use std::time::Duration;

use guest_support::{gpu_backend, ovmf, picture, scratch_dir, Rayvmm, GUEST_TIMEOUT};

#[test]
fn uefi_firmware_draws_its_screen_through_the_gpu_process() {
    let dir = scratch_dir("uefi");
    let shot_path = dir.join("uefi.png");
    let mut run = Rayvmm::start(&[
        "--firmware".into(),
        ovmf().display().to_string(),
        "--memory".into(),
        "512M".into(),
        "--gpu-backend".into(),
        gpu_backend(),
        "--screenshot".into(),
        shot_path.display().to_string(),
    ]);
    let shell = run.wait_for_serial("Shell>", GUEST_TIMEOUT);

    run.signal("USR1");
    let shot_taken = run.wait_for_log_count(" written to ", 1, Duration::from_secs(30));
    run.signal("TERM");
    let done = run.finish(Duration::from_secs(60));

    let shot = picture(&dir.join("uefi-1.png"));
    eprintln!("uefi: {:.1} s, screenshot {shot:?}", done.seconds);
    assert!(
        shell,
        "the UEFI shell never came up; serial:\n{}",
        done.serial
    );
    assert!(shot_taken, "no screenshot; log:\n{}", done.log);
    assert_eq!(done.code, Some(128 + 15), "rayvmm log:\n{}", done.log);
    assert_eq!((shot.width, shot.height), (1024, 768));
    assert!(shot.colours > 1, "uniform screenshot {shot:?}");
}
