//! Linux guest, 2D: the guest's virtio_gpu driver binds to the device served by the GPU
//! process, fbcon comes up on it, and what the guest draws reaches rayvmm's screenshot. The
//! display size is `--display 800x600`, not the default: the guest's mode comes from the
//! device's own display info and EDID (the usual `drm.edid_firmware` override is cleared), so
//! an 800x600 frame shows that rayvmm's size reached the jailed device.

mod guest_support;

use guest_support::{linux_args, picture, scratch_dir, Rayvmm, GUEST_TIMEOUT};

#[test]
fn linux_2d_guest_binds_virtio_gpu_and_its_framebuffer_reaches_the_screenshot() {
    let dir = scratch_dir("linux-2d");
    let mut args = linux_args(&dir, "2d", false, "drm.edid_firmware=");
    args.extend(["--display".to_string(), "800x600".to_string()]);
    let run = Rayvmm::start(&args);

    let done = run.finish(GUEST_TIMEOUT);

    let shot = picture(&dir.join("final.png"));
    eprintln!("linux 2d: {:.1} s, screenshot {shot:?}", done.seconds);
    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert!(done.serial.contains("RAYOS-DONE status=ok"));
    assert!(done.result("drm_driver").starts_with("virtio_gpu"));
    assert_eq!(done.result("fb_name"), "virtio_gpudrmfb");
    assert_eq!(done.result("fb_pattern"), "bands red,green,blue,white");
    assert_eq!(done.result("fb_size"), "800,600");
    assert_eq!((shot.width, shot.height), (800, 600));
    assert!(shot.colours >= 4, "{shot:?}");
}
