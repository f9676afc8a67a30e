//! The host's GPU scheduling (`--gpu-weight`, `--gpu-priority`, `--gpu-ledger`) with real
//! jailed ray-gpu processes driven by `rayvmm replay`: of two VMs that share a ledger the one
//! that runs ahead of its share is held (how far shares match their weights is the
//! neighbours benchmark's to measure), a VM alone is never held, and a ledger other users
//! could write to is refused.

mod guest_support;
mod jailed_gpu;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use guest_support::{replay, replay_json, scratch_dir};
use jailed_gpu::busy_recording;
use jailed_gpu::support::virgl::Work;

/// Ten draws of about 130 ms each on llvmpipe alone.
fn busy_draws(name: &str) -> PathBuf {
    let path = scratch_dir(&format!("scheduling-{name}")).join("draws.raygrec");
    busy_recording::write(&path, Work::Iterations(200), 10).expect("writing the recording");
    path
}

fn scheduled(ledger: &Path, weight: &'static str) -> Vec<String> {
    [
        "--tolerance",
        "2",
        // The light VM's draws run at a sixth of the GPU: not this test's subject.
        "--gpu-work-timeout",
        "60s",
        "--gpu-priority",
        "normal",
        "--gpu-weight",
        weight,
        "--gpu-ledger",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([ledger.display().to_string()])
    .collect()
}

fn replay_scheduled(path: &Path, args: &[String]) -> serde_json::Value {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    replay_json(path, &args)
}

#[test]
fn vm_sharing_a_ledger_with_a_heavier_one_is_held_and_both_render_right() {
    let path = busy_draws("pair");
    let ledger = scratch_dir("scheduling-pair-ledger").join("ledger");
    let (heavy_args, light_args) = (scheduled(&ledger, "100"), scheduled(&ledger, "20"));

    let (heavy, light) = std::thread::scope(|s| {
        let heavy = s.spawn(|| replay_scheduled(&path, &heavy_args));
        let light = s.spawn(|| replay_scheduled(&path, &light_args));
        (heavy.join().unwrap(), light.join().unwrap())
    });

    assert_eq!(
        (heavy["frames_match"].clone(), light["frames_match"].clone()),
        (true.into(), true.into())
    );
    assert!(
        light["scheduler"]["holds"].as_u64().unwrap() > 0,
        "heavy: {:#}\nlight: {:#}",
        heavy["scheduler"],
        light["scheduler"]
    );
}

#[test]
fn vm_alone_in_its_ledger_is_never_held() {
    let path = busy_draws("alone");
    let ledger = scratch_dir("scheduling-alone-ledger").join("ledger");

    let report = replay_scheduled(&path, &scheduled(&ledger, "10"));

    assert_eq!(
        (
            report["frames_match"].clone(),
            report["scheduler"]["holds"].clone()
        ),
        (true.into(), 0.into()),
        "{report:#}"
    );
}

#[test]
fn ledger_other_users_can_write_to_is_refused_by_name() {
    let path = busy_draws("open-ledger");
    let ledger = scratch_dir("scheduling-open-ledger-dir").join("ledger");
    std::fs::create_dir_all(&ledger).unwrap();
    std::fs::set_permissions(&ledger, std::fs::Permissions::from_mode(0o777)).unwrap();
    let args = scheduled(&ledger, "100");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let run = replay(&path, &args);

    assert_eq!(run.code, Some(2), "{}", run.output);
    assert!(
        run.output.contains(&format!(
            "the GPU ledger {} is not a directory owned by this user and closed to others",
            ledger.display()
        )),
        "{}",
        run.output
    );
}

#[test]
fn ledger_without_a_weight_or_priority_is_refused() {
    let path = busy_draws("no-share");

    let run = replay(&path, &["--gpu-ledger", "/dev/shm/unused-ledger"]);

    assert_eq!(run.code, Some(2), "{}", run.output);
    assert!(
        run.output
            .contains("give it a --gpu-weight or --gpu-priority too"),
        "{}",
        run.output
    );
}
