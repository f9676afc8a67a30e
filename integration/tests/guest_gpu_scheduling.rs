//! Two Linux guests scheduled on one GPU ledger (`rayvmm run --gpu-weight --gpu-ledger`): both
//! render kmscube through their jailed GPU processes to a clean exit while their supervisors
//! account, hold and continue them, and each VM leaves the ledger when it ends.

mod guest_support;

use std::path::Path;

use guest_support::{linux_args, scratch_dir, Rayvmm, GUEST_TIMEOUT};

fn scheduled_kmscube(dir: &Path, weight: &str, ledger: &Path) -> Vec<String> {
    let mut args = linux_args(dir, "kmscube", true, "rayos.frames=200");
    args.extend(
        [
            "--gpu-weight",
            weight,
            "--gpu-priority",
            "normal",
            "--gpu-ledger",
        ]
        .map(String::from),
    );
    args.push(ledger.display().to_string());
    args
}

#[test]
fn two_scheduled_guests_render_to_a_clean_exit_and_leave_the_ledger() {
    let ledger = scratch_dir("gpu-scheduling-ledger").join("ledger");
    let (dir_a, dir_b) = (
        scratch_dir("gpu-scheduling-a"),
        scratch_dir("gpu-scheduling-b"),
    );
    let a = Rayvmm::start(&scheduled_kmscube(&dir_a, "100", &ledger));
    let b = Rayvmm::start(&scheduled_kmscube(&dir_b, "50", &ledger));

    let (a, b) = (a.finish(GUEST_TIMEOUT), b.finish(GUEST_TIMEOUT));

    let records_left = std::fs::read_dir(&ledger)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vm-"))
        .count();
    assert_eq!(
        (a.code, b.code),
        (Some(0), Some(0)),
        "a:\n{}\nb:\n{}",
        a.log,
        b.log
    );
    assert_eq!(
        (a.result("kmscube_frames"), b.result("kmscube_frames")),
        ("200", "200")
    );
    for (done, share) in [(&a, "weight 100, normal"), (&b, "weight 50, normal")] {
        assert!(
            done.log
                .contains(&format!("GPU share {share}, ledger {}", ledger.display()))
                && done
                    .log
                    .contains("GPU scheduling: the GPU process was held"),
            "{}",
            done.log
        );
    }
    assert_eq!(records_left, 0);
}
