//! Containment while a real guest renders (kmscube on virgl): the probe build of the jailed
//! ray-gpu takes memory, threads or descriptors until the jail's limit refuses one
//! (`RAYOS_GPU_FAULT=balloon|threads|descriptors`, 5 s after the first frame), says where it
//! was stopped, gives it back and serves on. Each limit holds at its bound, the renderer
//! survives it, and rayvmm and the guest go on to the end (exit 0, every frame drawn).

mod guest_support;

use std::sync::{Mutex, MutexGuard};

use guest_support::{linux_args, scratch_dir, Finished, Rayvmm, GUEST_TIMEOUT};

/// kmscube's frames: long enough (tens of seconds under TCG) for the fault to strike mid-run.
const FRAMES: &str = "rayos.frames=900";

/// One guest at a time: the limits are per user, and guests run one after the other anyway.
fn one_guest() -> MutexGuard<'static, ()> {
    static ONE_GUEST: Mutex<()> = Mutex::new(());
    ONE_GUEST
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the 3D guest with the probe ray-gpu injecting `fault`, and `extra` rayvmm flags.
fn contained(name: &str, fault: &str, extra: &[&str]) -> Finished {
    let _turn = one_guest();
    let dir = scratch_dir(name);
    let mut args = linux_args(&dir, "kmscube", true, FRAMES);
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend([
        "--ray-gpu".to_string(),
        integration::binaries::ray_gpu_probe().display().to_string(),
    ]);
    Rayvmm::start_with_env(&args, &[("RAYOS_GPU_FAULT", fault)]).finish(GUEST_TIMEOUT)
}

/// The number in ray-gpu's `fault: ... after N ...` line.
fn taken(log: &str, what: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains(&format!("ray-gpu: fault: {what} refused after ")))
        .unwrap_or_else(|| panic!("no '{what} refused' line in:\n{log}"));
    let after = line.split(" refused after ").nth(1).unwrap_or_default();
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

#[test]
fn gpu_process_that_balloons_is_stopped_at_its_memory_limit_and_the_guest_renders_on() {
    let done = contained(
        "containment-memory",
        "balloon",
        &["--gpu-memory-limit", "1G"],
    );

    let more = taken(&done.log, "memory");
    eprintln!("ray-gpu mapped {more} MiB more before its 1 GiB limit refused");
    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert!(
        done.log.contains("Cannot allocate memory (os error 12)"),
        "{}",
        done.log
    );
    assert!((512..1024).contains(&more), "{more} MiB");
    assert_eq!(done.result("kmscube_frames"), "900");
}

#[test]
fn gpu_process_that_starts_threads_is_stopped_at_its_thread_limit_and_the_guest_renders_on() {
    let done = contained("containment-threads", "threads", &[]);

    let more = taken(&done.log, "thread");
    eprintln!("ray-gpu started {more} more threads before its limit of 128 refused");
    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert!(
        done.log
            .contains("Resource temporarily unavailable (os error 11)"),
        "{}",
        done.log
    );
    assert!((1..128).contains(&more), "{more} threads");
    assert_eq!(done.result("kmscube_frames"), "900");
}

#[test]
fn gpu_process_that_opens_descriptors_is_stopped_at_its_descriptor_limit_and_the_guest_renders_on()
{
    let done = contained("containment-descriptors", "descriptors", &[]);

    let more = taken(&done.log, "descriptor");
    eprintln!("ray-gpu opened {more} more descriptors before its limit of 1024 refused");
    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert!(
        done.log.contains("Too many open files (os error 24)"),
        "{}",
        done.log
    );
    assert!((512..1024).contains(&more), "{more} descriptors");
    assert_eq!(done.result("kmscube_frames"), "900");
}

/// The nice value of every thread of process `pid` (field 19 of each task's stat).
fn thread_nice_values(pid: u32) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process's threads");
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name.split_whitespace().nth(16)?.parse().ok()
        })
        .collect()
}

#[test]
fn gpu_process_spinning_eight_threads_at_nice_5_leaves_rayvmm_and_the_guest_running() {
    let _turn = one_guest();
    let dir = scratch_dir("containment-cpu");
    let mut args = linux_args(&dir, "kmscube", true, FRAMES);
    args.extend(
        [
            "--gpu-nice",
            "5",
            "--ray-gpu",
            &integration::binaries::ray_gpu_probe().display().to_string(),
        ]
        .map(String::from),
    );
    let mut run = Rayvmm::start_with_env(&args, &[("RAYOS_GPU_FAULT", "spin")]);
    let gpu: u32 = run
        .wait_for_log_word_after("(pid ", GUEST_TIMEOUT)
        .and_then(|w| w.trim_end_matches([',', ')']).parse().ok())
        .expect("ray-gpu's pid in rayvmm's log");
    assert!(run.wait_for_serial("RAYOS-RESULT connector=", GUEST_TIMEOUT));
    let nice = thread_nice_values(gpu);

    let done = run.finish(GUEST_TIMEOUT);

    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert!(
        done.log
            .contains("ray-gpu: fault: spinning 8 threads for 10 s"),
        "{}",
        done.log
    );
    assert!(!nice.is_empty() && nice.iter().all(|&n| n == 5), "{nice:?}");
    assert_eq!(done.result("kmscube_frames"), "900");
}
