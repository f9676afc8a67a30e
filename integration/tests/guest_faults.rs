//! Faults in the jailed GPU process, in QEMU and around rayvmm while a real guest renders
//! (kmscube on virgl): each is detected within its bound, said plainly, ends rayvmm with its
//! documented exit status (or, for a screenshot that cannot be written, lets the VM run on),
//! and leaves no process and no file behind.

mod guest_support;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use guest_support::{
    adopt_orphans, linux_args, listing, living_orphans, scratch_dir, Finished, Rayvmm,
    GUEST_TIMEOUT,
};

/// How long a child of rayvmm may take to die after rayvmm exits (its parent-death signal
/// is delivered then) before it counts as left behind.
const ORPHAN_SETTLE: Duration = Duration::from_secs(2);

/// One guest at a time: several TCG guests on this machine's cores would make the detection
/// times measure the load, and the orphan check would see another test's children.
fn one_guest() -> MutexGuard<'static, ()> {
    static ONE_GUEST: Mutex<()> = Mutex::new(());
    adopt_orphans();
    ONE_GUEST
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What one fault run saw.
struct FaultRun {
    done: Finished,
    /// From the fault to rayvmm's exit.
    detected_after: Duration,
    /// Processes still alive after rayvmm's exit: `pid comm`.
    leftovers: Vec<String>,
    /// What is left in the run's scratch directory.
    files: Vec<String>,
}

/// How the fault is brought about.
enum Cause {
    /// A signal sent to ray-gpu from the host while kmscube renders.
    Signal(&'static str),
    /// A signal sent to QEMU while kmscube renders.
    SignalEngine(&'static str),
    /// A fault the probe build of ray-gpu injects on the thread that serves the device, 5 s
    /// after the first frame (`RAYOS_GPU_FAULT`, gpu-process/src/fault.rs).
    Injected(&'static str),
    /// The same, for a fault that says when it strikes: the time is taken from that line of
    /// ray-gpu's log.
    Announced {
        fault: &'static str,
        says: &'static str,
    },
}

/// Boots the 3D guest with `extra` rayvmm flags, brings about `cause` while kmscube renders,
/// and waits for rayvmm to end.
fn fault(name: &str, cause: Cause, extra: &[&str]) -> FaultRun {
    let _turn = one_guest();
    let dir = scratch_dir(name);
    let mut args = linux_args(&dir, "kmscube", true, "rayos.frames=1000000");
    args.extend(extra.iter().map(|a| a.to_string()));
    let probe = integration::binaries::ray_gpu_probe().display().to_string();
    let mut run = match cause {
        Cause::Signal(_) | Cause::SignalEngine(_) => Rayvmm::start(&args),
        Cause::Injected(fault) | Cause::Announced { fault, .. } => {
            args.extend(["--ray-gpu".to_string(), probe]);
            Rayvmm::start_with_env(&args, &[("RAYOS_GPU_FAULT", fault)])
        }
    };
    let gpu = pid_after(&mut run, "(pid ");
    let qemu = pid_after(&mut run, "VM running: QEMU pid ");
    assert!(run.wait_for_serial("RAYOS-RESULT connector=", GUEST_TIMEOUT));
    std::thread::sleep(Duration::from_secs(3));

    if let Cause::Announced { says, .. } = cause {
        assert!(
            run.wait_for_log_count(says, 1, Duration::from_secs(60)),
            "ray-gpu never said {says:?}"
        );
    }
    let struck = Instant::now();
    let target = match cause {
        Cause::Signal(signal) => Some((signal, gpu)),
        Cause::SignalEngine(signal) => Some((signal, qemu)),
        Cause::Injected(_) | Cause::Announced { .. } => None,
    };
    if let Some((signal, pid)) = target {
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {pid}");
    }
    let done = run.finish(Duration::from_secs(90));

    let detected_after = struck.elapsed();
    eprintln!("{name}: rayvmm ended {detected_after:?} after the fault");

    FaultRun {
        detected_after,
        // Every child of rayvmm that outlives it is adopted by this process.
        leftovers: living_orphans(ORPHAN_SETTLE),
        files: listing(&dir),
        done,
    }
}

fn pid_after(run: &mut Rayvmm, prefix: &str) -> u32 {
    run.wait_for_log_word_after(prefix, GUEST_TIMEOUT)
        .and_then(|w| w.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("rayvmm names a pid after {prefix:?}"))
}

const STALLED: &str = "the GPU process stopped making progress: the thread that serves the \
                       device did not answer a frame request within";

impl FaultRun {
    /// rayvmm ended with `code`, said `said`, within `bound` of the fault, leaving no process.
    fn assert_ended(&self, code: i32, said: &str, bound: Duration) {
        assert_eq!(self.done.code, Some(code), "rayvmm log:\n{}", self.done.log);
        assert!(
            self.done.log.contains(said),
            "rayvmm log:\n{}",
            self.done.log
        );
        assert!(self.detected_after < bound, "{:?}", self.detected_after);
        assert_eq!(self.leftovers, Vec::<String>::new());
        assert_eq!(self.files, Vec::<String>::new());
    }
}

#[test]
fn stopped_gpu_process_is_detected_within_the_liveness_bound_and_ends_the_vm_with_3() {
    let run = fault(
        "fault-sigstop",
        Cause::Signal("STOP"),
        &["--liveness-timeout", "2s"],
    );

    run.assert_ended(3, STALLED, Duration::from_secs(20));
}

#[test]
fn endless_loop_in_the_gpu_process_is_detected_within_the_liveness_bound_and_ends_the_vm_with_3() {
    let run = fault(
        "fault-hang",
        Cause::Injected("hang"),
        // The fences the hung thread no longer returns would otherwise trip the GPU work
        // timeout first; this test is about the liveness bound.
        &["--liveness-timeout", "2s", "--gpu-work-timeout", "60s"],
    );

    run.assert_ended(3, STALLED, Duration::from_secs(30));
}

#[test]
fn killed_gpu_process_ends_the_vm_with_1_naming_the_signal() {
    let run = fault("fault-sigkill", Cause::Signal("KILL"), &[]);

    run.assert_ended(
        1,
        "the GPU process was killed by SIGKILL",
        Duration::from_secs(20),
    );
}

#[test]
fn crash_in_the_gpu_process_ends_the_vm_with_1_naming_sigsegv() {
    let run = fault("fault-segv", Cause::Injected("segv"), &[]);

    run.assert_ended(
        1,
        "the GPU process was killed by SIGSEGV",
        Duration::from_secs(30),
    );
}

#[test]
fn abort_in_the_gpu_process_ends_the_vm_with_1_naming_how_it_died() {
    let run = fault("fault-abort", Cause::Injected("abort"), &[]);

    run.assert_ended(
        1,
        "the GPU process was killed by SIG",
        Duration::from_secs(30),
    );
}

#[test]
fn stopped_qemu_is_detected_within_the_liveness_bound_and_ends_the_vm_with_3() {
    let run = fault(
        "fault-qemu-sigstop",
        Cause::SignalEngine("STOP"),
        &["--liveness-timeout", "2s"],
    );

    run.assert_ended(
        3,
        "the engine (QEMU) stopped making progress: it did not answer QMP within",
        Duration::from_secs(20),
    );
}

#[test]
fn killed_qemu_ends_the_vm_with_1_naming_the_signal() {
    let run = fault("fault-qemu-sigkill", Cause::SignalEngine("KILL"), &[]);

    run.assert_ended(
        1,
        "the engine (QEMU) was killed by SIGKILL",
        Duration::from_secs(20),
    );
}

#[test]
fn gpu_process_that_closes_its_control_tube_and_lives_on_is_detected_and_ends_the_vm_with_3() {
    let run = fault(
        "fault-close-tube",
        Cause::Announced {
            fault: "close-tube",
            says: "fault: closing the control tube",
        },
        &[],
    );

    run.assert_ended(
        3,
        "the GPU process stopped making progress: it closed its control tube",
        Duration::from_secs(5),
    );
}

/// `prlimit` wrapping rayvmm with a soft descriptor limit of `soft` (the hard limit stays
/// at 1024, the jail's own limit for ray-gpu, which a process may not raise above its hard
/// limit).
fn descriptor_limit(soft: u32) -> Vec<String> {
    vec!["prlimit".into(), format!("--nofile={soft}:1024")]
}

#[test]
fn rayvmm_out_of_descriptors_says_what_it_could_not_open_exits_2_and_leaves_nothing() {
    let _turn = one_guest();
    let dir = scratch_dir("fault-nofile");
    let args = linux_args(&dir, "kmscube", true, "rayos.frames=10");

    let done =
        Rayvmm::start_wrapped(&descriptor_limit(20), &args, &[]).finish(Duration::from_secs(60));

    assert_eq!(done.code, Some(2), "rayvmm log:\n{}", done.log);
    assert!(
        done.log.contains(
            "starting the GPU process failed: building the jail: preparing the child's \
             descriptors failed: Too many open files (os error 24)"
        ),
        "rayvmm log:\n{}",
        done.log
    );
    assert_eq!(living_orphans(ORPHAN_SETTLE), Vec::<String>::new());
    assert_eq!(listing(&dir), Vec::<String>::new());
}

#[test]
fn rayvmm_under_a_descriptor_limit_of_40_starts_qemu_and_runs_the_guest_to_its_end() {
    // Moving QEMU's inherited descriptors into place asked for numbers from 64 up, which a
    // limit of 64 or below refused with EINVAL: "starting qemu-system-x86_64 failed: Invalid
    // argument".
    let _turn = one_guest();
    let dir = scratch_dir("nofile-40");
    let args = linux_args(&dir, "kmscube", true, "rayos.frames=10");

    let done = Rayvmm::start_wrapped(&descriptor_limit(40), &args, &[]).finish(GUEST_TIMEOUT);

    assert_eq!(done.code, Some(0), "rayvmm log:\n{}", done.log);
    assert_eq!(done.result("kmscube_frames"), "10");
    assert_eq!(living_orphans(ORPHAN_SETTLE), Vec::<String>::new());
}

/// What a SIGUSR1 screenshot onto a full file system did.
struct FullDiskRun {
    /// The screenshot rayvmm was asked for.
    shot: String,
    /// rayvmm was still running a second after it reported the failure.
    ran_on: bool,
    /// What the full file system held after the failure.
    left_on_disk: Vec<String>,
    /// How rayvmm ended after SIGTERM.
    done: Finished,
    leftovers: Vec<String>,
}

/// Boots the 3D guest with its screenshots going to a 4 KiB tmpfs (mounted in a mount
/// namespace of rayvmm's own, so nothing outside sees it; needs CAP_SYS_ADMIN), asks for a
/// screenshot with SIGUSR1 while kmscube renders, looks at the file system through
/// /proc/PID/root, and stops rayvmm with SIGTERM.
fn full_disk_screenshot(name: &str) -> FullDiskRun {
    let _turn = one_guest();
    let dir = scratch_dir(name);
    let full = dir.join("full");
    std::fs::create_dir(&full).unwrap_or_else(|e| panic!("create {}: {e}", full.display()));
    let mut args = linux_args(&dir, "kmscube", true, "rayos.frames=1000000");
    let screenshot = args.iter().position(|a| a == "--screenshot").unwrap() + 1;
    args[screenshot] = full.join("shot.png").display().to_string();
    let mount = "mount -t tmpfs -o size=4k rayos-full \"$0\" && exec \"$@\"";
    let wrapper: Vec<String> = ["unshare", "--mount", "--propagation", "private", "sh", "-c"]
        .into_iter()
        .map(String::from)
        .chain([mount.to_string(), full.display().to_string()])
        .collect();
    let mut run = Rayvmm::start_wrapped(&wrapper, &args, &[]);
    assert!(run.wait_for_serial("RAYOS-RESULT connector=", GUEST_TIMEOUT));
    std::thread::sleep(Duration::from_secs(3));

    run.signal("USR1");
    let shot = full.join("shot-1.png").display().to_string();
    let failure = format!("writing screenshot {shot}: ");
    assert!(
        run.wait_for_log_count(&failure, 1, Duration::from_secs(30)),
        "rayvmm never said {failure:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    let ran_on = run.running();
    let seen_by_rayvmm = Path::new(&format!("/proc/{}/root", run.pid())).join(
        full.strip_prefix("/")
            .expect("the scratch directory is absolute"),
    );
    let left_on_disk = listing(&seen_by_rayvmm);
    run.signal("TERM");
    let done = run.finish(Duration::from_secs(60));

    FullDiskRun {
        shot,
        ran_on,
        left_on_disk,
        done,
        leftovers: living_orphans(ORPHAN_SETTLE),
    }
}

#[test]
fn screenshot_onto_a_full_disk_is_reported_naming_the_file_and_enospc_and_the_vm_runs_on() {
    let run = full_disk_screenshot("fault-full-disk");

    let said = format!(
        "writing screenshot {}: encoding PNG failed: No space left on device (os error 28)",
        run.shot
    );
    assert!(
        run.done.log.contains(&said),
        "rayvmm log:\n{}",
        run.done.log
    );
    assert!(run.ran_on, "rayvmm log:\n{}", run.done.log);
    assert_eq!(
        run.done.code,
        Some(128 + 15),
        "rayvmm log:\n{}",
        run.done.log
    );
    assert_eq!(run.leftovers, Vec::<String>::new());
}

#[test]
fn screenshot_onto_a_full_disk_leaves_no_partial_file() {
    let run = full_disk_screenshot("fault-full-disk-partial");

    assert_eq!(run.left_on_disk, Vec::<String>::new());
}
