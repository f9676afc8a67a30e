//! Faults in the jailed GPU process and in QEMU while a real guest renders (kmscube on virgl):
//! each is detected within its bound, said plainly, ends rayvmm with its documented exit
//! status, and leaves no process behind.

mod guest_support;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use guest_support::{linux_args, scratch_dir, Finished, Rayvmm, GUEST_TIMEOUT};

/// What one fault run saw.
struct FaultRun {
    done: Finished,
    /// From the fault to rayvmm's exit.
    detected_after: Duration,
    leftovers: Vec<u32>,
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
}

/// Boots the 3D guest with `extra` rayvmm flags, brings about `cause` while kmscube renders,
/// and waits for rayvmm to end.
fn fault(name: &str, cause: Cause, extra: &[&str]) -> FaultRun {
    // One guest at a time: several TCG guests on this machine's cores would make the
    // detection times measure the load.
    static ONE_GUEST: Mutex<()> = Mutex::new(());
    let _turn = ONE_GUEST
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = scratch_dir(name);
    let mut args = linux_args(&dir, "kmscube", true, "rayos.frames=1000000");
    args.extend(extra.iter().map(|a| a.to_string()));
    let probe = integration::binaries::ray_gpu_probe().display().to_string();
    let mut run = match cause {
        Cause::Signal(_) | Cause::SignalEngine(_) => Rayvmm::start(&args),
        Cause::Injected(fault) => {
            args.extend(["--ray-gpu".to_string(), probe]);
            Rayvmm::start_with_env(&args, &[("RAYOS_GPU_FAULT", fault)])
        }
    };
    let gpu = pid_after(&mut run, "(pid ");
    let qemu = pid_after(&mut run, "VM running: QEMU pid ");
    assert!(run.wait_for_serial("RAYOS-RESULT connector=", GUEST_TIMEOUT));
    std::thread::sleep(Duration::from_secs(3));

    let struck = Instant::now();
    let target = match cause {
        Cause::Signal(signal) => Some((signal, gpu)),
        Cause::SignalEngine(signal) => Some((signal, qemu)),
        Cause::Injected(_) => None,
    };
    if let Some((signal, pid)) = target {
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {pid}");
    }
    let done = run.finish(Duration::from_secs(90));

    FaultRun {
        detected_after: struck.elapsed(),
        leftovers: [gpu, qemu]
            .into_iter()
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
            .collect(),
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
        assert_eq!(self.leftovers, Vec::<u32>::new());
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
        &["--liveness-timeout", "2s"],
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
