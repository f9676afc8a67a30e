//! Spawn benchmark: time from spawn to Ready with the seccomp filter on, for the jailed GPU
//! process, next to baselines measured in the same run, and the jailed process's memory.
//!
//! `cargo build --release -p gpu-process && cargo bench -p vmm --bench spawn`
//! (the benchmark runs the ray-gpu in its own target directory; `SPAWN_BENCH_RUNS` sets N).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use control::messages::{FromGpu, StartConfig, ToGpu};
use control::tube::Tube;
use seccomp::DefaultAction;
use vmm::gpu_process::{GpuProcess, GpuSpawnConfig};

fn main() {
    let runs: usize = std::env::var("SPAWN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let binary = ray_gpu();
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ray_gpu_none.policy");
    let config = GpuSpawnConfig::new(&binary, &policy, &[]);
    let filter = vmm::policy::compile(&policy, DefaultAction::KillProcess)
        .expect("compiling the fixture policy")
        .filter;

    // Interleaved, so drift in the machine's load hits every series alike.
    let mut jailed = Vec::new();
    let mut plain = Vec::new();
    let mut true_exec = Vec::new();
    let mut rss = Vec::new();
    let mut hwm = Vec::new();
    let mut plain_rss = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let gpu = GpuProcess::spawn(&config).expect("spawning the jailed ray-gpu");
        jailed.push(started.elapsed());
        let status = gpu.status().expect("reading the jailed process's status");
        rss.push(status.vm_rss_kib);
        hwm.push(status.vm_hwm_kib);
        drop(gpu);

        let (elapsed, kib) = plain_spawn_to_ready(&binary, &filter);
        plain.push(elapsed);
        plain_rss.push(kib);

        let started = Instant::now();
        Command::new("/bin/true")
            .status()
            .expect("running /bin/true");
        true_exec.push(started.elapsed());
    }

    println!(
        "spawn to Ready with the filter on, {runs} runs ({})",
        binary.display()
    );
    println!("{:<44} {:>10} {:>10} {:>10}", "", "median", "p90", "min");
    let jailed_median = row("jailed ray-gpu (rayvmm jail + verify)", &mut jailed);
    let plain_median = row("plain fork+exec ray-gpu, same filter", &mut plain);
    let true_median = row("fork+exec+wait /bin/true", &mut true_exec);
    println!(
        "jail overhead: {:.1}x plain ray-gpu, {:.1}x /bin/true (medians)",
        ratio(jailed_median, plain_median),
        ratio(jailed_median, true_median)
    );
    println!(
        "memory after Ready: jailed VmRSS median {} KiB (VmHWM {} KiB); plain VmRSS {} KiB",
        median_u64(&mut rss),
        median_u64(&mut hwm),
        median_u64(&mut plain_rss)
    );
}

/// ray-gpu of the profile this benchmark was built in (target/<profile>/ray-gpu).
fn ray_gpu() -> PathBuf {
    let exe = std::env::current_exe().expect("locating the benchmark");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("benchmark in target/<profile>/deps")
        .join("ray-gpu");
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --release -p gpu-process` first",
        path.display()
    );
    path
}

/// Unjailed baseline: fork+exec ray-gpu with the tube at fd 3, send the same Start (same
/// filter), wait for Ready. Returns the time and the process's VmRSS in KiB.
fn plain_spawn_to_ready(binary: &Path, filter: &[u64]) -> (Duration, u64) {
    let started = Instant::now();
    let (tube, child_end) = Tube::pair().expect("tube pair");
    let child_end = OwnedFd::from(child_end);
    let raw = child_end.as_raw_fd();
    let mut command = Command::new(binary);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only calls dup2, which is
    // async-signal-safe; the tube's descriptor is above 3 (0-2 are stdio, 3 is taken by the
    // socketpair's other end), so dup2 makes a new, inheritable fd 3.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("spawning plain ray-gpu");
    drop(child_end);
    let start = StartConfig {
        policy_name: "fixture".into(),
        seccomp_filter: filter.to_vec(),
        ..StartConfig::default()
    };
    tube.send(&ToGpu::Start(start)).expect("sending Start");
    let ready = tube.recv::<FromGpu>().expect("waiting for Ready");
    let elapsed = started.elapsed();
    assert!(matches!(ready, FromGpu::Ready(_)), "{ready:?}");
    let kib = jail::verify::ProcStatus::read(child.id() as i32)
        .map(|s| s.vm_rss_kib)
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    (elapsed, kib)
}

/// Prints one row; returns the median.
fn row(name: &str, samples: &mut [Duration]) -> Duration {
    samples.sort();
    let median = samples[samples.len() / 2];
    let p90 = samples[(samples.len() * 9 / 10).min(samples.len() - 1)];
    println!(
        "{name:<44} {:>8.2}ms {:>8.2}ms {:>8.2}ms",
        ms(median),
        ms(p90),
        ms(samples[0])
    );
    median
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn median_u64(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}
