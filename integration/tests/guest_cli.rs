//! `rayvmm run` refuses bad configurations with messages naming the problem, before it
//! starts anything.

mod guest_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use guest_support::{rayvmm_binary, repo_root};

fn data(name: &str) -> PathBuf {
    repo_root().join("integration/tests/data").join(name)
}

/// Runs `rayvmm run ARGS`; returns the exit code and stderr.
fn rayvmm_run(args: &[&str]) -> (Option<i32>, String) {
    rayvmm_run_in(&repo_root(), args)
}

/// Runs `rayvmm run ARGS` in directory `dir`.
fn rayvmm_run_in(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(rayvmm_binary())
        .current_dir(dir)
        .arg("run")
        .args(args)
        .output()
        .expect("run rayvmm");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn unknown_config_file_key_is_named() {
    let config = data("guest_bad_key.json");

    let (code, stderr) = rayvmm_run(&["--config", config.to_str().unwrap()]);

    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown field `screenshoot`"), "{stderr}");
}

#[test]
fn vnc_on_a_public_address_is_refused() {
    let firmware = data("guest_bad_key.json");

    let (code, stderr) = rayvmm_run(&[
        "--firmware",
        firmware.to_str().unwrap(),
        "--vnc",
        "0.0.0.0:0",
    ]);

    assert_eq!(code, Some(2));
    assert!(stderr.contains("refusing VNC on 0.0.0.0"), "{stderr}");
}

#[test]
fn vnc_with_the_reference_backend_is_refused() {
    let firmware = data("guest_bad_key.json");

    let (code, stderr) = rayvmm_run(&[
        "--firmware",
        firmware.to_str().unwrap(),
        "--gpu-backend",
        "reference",
        "--vnc",
        "127.0.0.1:0",
    ]);

    assert_eq!(code, Some(2));
    assert!(stderr.contains("--vnc needs the jailed GPU"), "{stderr}");
}

#[test]
fn display_beyond_the_edid_limit_is_refused_naming_it() {
    let firmware = data("guest_bad_key.json");

    let (code, stderr) = rayvmm_run(&[
        "--firmware",
        firmware.to_str().unwrap(),
        "--display",
        "4096x2160",
    ]);

    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("invalid display size \"4096x2160\""),
        "{stderr}"
    );
    assert!(stderr.contains("each 16 to 4095"), "{stderr}");
}

#[test]
fn missing_kernel_is_named() {
    let (code, stderr) = rayvmm_run(&["--kernel", "/nonexistent/vmlinuz"]);

    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("kernel /nonexistent/vmlinuz does not exist"),
        "{stderr}"
    );
}

#[test]
fn qemu_older_than_8_is_refused_with_the_fix() {
    let firmware = data("guest_bad_key.json");
    let qemu = data("guest_fake_qemu7.sh");

    let (code, stderr) = rayvmm_run(&[
        "--firmware",
        firmware.to_str().unwrap(),
        "--qemu",
        qemu.to_str().unwrap(),
    ]);

    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("is QEMU 7.2.22; rayvmm needs QEMU 8 or later"),
        "{stderr}"
    );
    assert!(stderr.contains("bookworm-backports"), "{stderr}");
}

#[test]
fn flags_override_the_config_file() {
    let config = data("guest_zero_cpus.json");

    let (_, from_file) = rayvmm_run_in(&data(""), &["--config", config.to_str().unwrap()]);
    let (_, overridden) = rayvmm_run_in(
        &data(""),
        &["--config", config.to_str().unwrap(), "--cpus", "1"],
    );

    assert!(from_file.contains("invalid CPU count 0"), "{from_file}");
    assert!(overridden.contains("is QEMU 7.2.22"), "{overridden}");
}
