//! Noisy neighbours: several VMs' jailed GPU processes on one host's GPU (llvmpipe here: the
//! host's CPUs), each driven by `rayvmm replay` of a recorded guest, with the host scheduler's
//! shares off (every GPU process at the default weight) and on (each VM's configured weight
//! and priority as its GPU process's nice value, `scheduler::Share`), in one run:
//!
//! 1. the victim alone: kmscube replayed at its recorded pace (a fixed demand), in a loop;
//! 2. the victim beside an aggressor flooding heavy submits (glmark2 replayed as fast as the
//!    device takes it, in a loop), shares off, then on (victim interactive, aggressor batch);
//! 3. two saturating VMs (glmark2 as fast as possible each) with weights 1:1, then 2:1.
//!
//! Measured: each VM's presented frames per second and how late its frames were (p50, p99,
//! worst: from when a RESOURCE_FLUSH was due, at the recorded pace for the victim, to its
//! completion); each VM's GPU time (its ray-gpu's CPU time, read from /proc every 100 ms) per
//! 1 s window, and from it Min/Max, Jain's index and the
//! share ratio; the saturating VMs' total frames per second. Written as a table to stdout and
//! `neighbours.md`, and as `neighbours.json`, in `BENCH_OUT` (default `target/bench`).
//!
//! `NEIGHBOURS_SECONDS` (default 15) is each scenario's length. Needs the recordings
//! (`scripts/record-guests.sh`) and `target/release/rayvmm` (`RAYVMM_BIN`).
//!
//! `cargo build --release -p vmm -p gpu-process && cargo bench -p integration --bench neighbours`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scheduler::{jain, min_over_max, Priority, Share};
use serde_json::{json, Value};

#[path = "report/neighbours_plot.rs"]
mod plot;
#[path = "report/mod.rs"]
mod report;

/// How often GPU time is sampled, and the fairness window.
const SAMPLE: Duration = Duration::from_millis(100);
const WINDOW: usize = 10;

/// One VM of a scenario.
#[derive(Clone)]
struct Vm {
    name: &'static str,
    recording: PathBuf,
    paced: bool,
    share: Option<Share>,
}

/// What one VM did during a scenario.
#[derive(Default)]
struct VmResult {
    frames: u64,
    /// How late each frame was presented (from when it was due).
    latency_us: Vec<u64>,
    /// GPU time per sample period.
    gpu_time: Vec<Duration>,
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let recordings = root.join(".cache/recordings");
    let (kmscube, glmark2) = (
        recordings.join("kmscube.raygrec"),
        recordings.join("glmark2.raygrec"),
    );
    if !kmscube.is_file() || !glmark2.is_file() {
        println!("neighbours benchmark skipped: no recordings in {recordings:?} (bash scripts/record-guests.sh makes them)");
        return;
    }
    let rayvmm = std::env::var("RAYVMM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release/rayvmm"));
    let seconds: u64 = std::env::var("NEIGHBOURS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let length = Duration::from_secs(seconds);
    let vm = |name, recording: &Path, paced, share| Vm {
        name,
        recording: recording.to_path_buf(),
        paced,
        share,
    };
    let share = |w, p| Some(Share::new(w, p).expect("a valid share"));
    let scenarios: Vec<(&str, Vec<Vm>)> = vec![
        ("victim alone", vec![vm("victim", &kmscube, true, None)]),
        (
            "victim + flooding aggressor, shares off",
            vec![
                vm("victim", &kmscube, true, None),
                vm("aggressor", &glmark2, false, None),
            ],
        ),
        (
            "victim + flooding aggressor, shares on (interactive / batch)",
            vec![
                vm("victim", &kmscube, true, share(100, Priority::Interactive)),
                vm("aggressor", &glmark2, false, share(100, Priority::Batch)),
            ],
        ),
        (
            "two saturating VMs, weights 1:1",
            vec![
                vm("a", &glmark2, false, share(100, Priority::Normal)),
                vm("b", &glmark2, false, share(100, Priority::Normal)),
            ],
        ),
        (
            "two saturating VMs, weights 2:1",
            vec![
                vm("a", &glmark2, false, share(100, Priority::Normal)),
                vm("b", &glmark2, false, share(50, Priority::Normal)),
            ],
        ),
    ];
    let mut report = Vec::new();
    for (title, vms) in &scenarios {
        println!("{title}: {seconds} s ...");
        let results = run_scenario(&rayvmm, vms, length);
        report.push(summarise(title, vms, &results, length));
    }
    let table = table(&report);
    print!("{table}");
    let json = json!({ "seconds": seconds, "scenarios": report });
    report::write(&root, "neighbours", &json, &table);
    let png = report::out_dir(&root).join("neighbours.png");
    match plot::gpu_time_panels(&report, &png) {
        Ok(()) => println!("plot: {}", png.display()),
        Err(e) => println!("plot not written: {e}"),
    }
}

/// Runs every VM of a scenario for `length`, each replaying its recording again and again,
/// while a sampler reads each VM's GPU time.
fn run_scenario(rayvmm: &Path, vms: &[Vm], length: Duration) -> Vec<VmResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let current: Vec<Arc<Mutex<Option<u32>>>> =
        vms.iter().map(|_| Arc::new(Mutex::new(None))).collect();
    let drivers: Vec<_> = vms
        .iter()
        .zip(&current)
        .map(|(vm, pid)| {
            let (vm, pid, stop, rayvmm) =
                (vm.clone(), pid.clone(), stop.clone(), rayvmm.to_owned());
            std::thread::spawn(move || drive(&rayvmm, &vm, &pid, &stop))
        })
        .collect();
    let mut gpu_time: Vec<Vec<Duration>> = vec![Vec::new(); vms.len()];
    let mut last: Vec<HashMap<u32, Duration>> = vec![HashMap::new(); vms.len()];
    let started = Instant::now();
    while started.elapsed() < length {
        std::thread::sleep(SAMPLE);
        for (i, pid) in current.iter().enumerate() {
            let root = *pid.lock().unwrap();
            let used = root.map_or(Duration::ZERO, |p| tree_time_delta(p, &mut last[i]));
            gpu_time[i].push(used);
        }
    }
    stop.store(true, Ordering::SeqCst);
    drivers
        .into_iter()
        .zip(gpu_time)
        .map(|(driver, gpu_time)| {
            let (frames, latency_us) = driver.join().expect("a replay driver");
            VmResult {
                frames,
                latency_us,
                gpu_time,
            }
        })
        .collect()
}

/// Replays `vm`'s recording until told to stop; returns the frames presented and how late
/// each was. `pid` holds the running `rayvmm replay`'s pid.
fn drive(rayvmm: &Path, vm: &Vm, pid: &Mutex<Option<u32>>, stop: &AtomicBool) -> (u64, Vec<u64>) {
    let (mut frames, mut intervals) = (0, Vec::new());
    while !stop.load(Ordering::SeqCst) {
        let mut cmd = Command::new(rayvmm);
        cmd.args(["replay", "--json"]).arg(&vm.recording);
        if vm.paced {
            cmd.args(["--pace", "recorded"]);
        }
        if let Some(share) = vm.share {
            cmd.args(["--gpu-nice", &share.nice().to_string()]);
        }
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rayvmm replay");
        *pid.lock().unwrap() = Some(child.id());
        let out = child.wait_with_output().expect("rayvmm replay ends");
        *pid.lock().unwrap() = None;
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: no report ({e}): {}",
                vm.name,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(report["frames_match"], true, "{}: {report:#}", vm.name);
        frames += report["flushes"].as_u64().unwrap_or(0);
        intervals.extend(
            report["frame_latency_us"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64),
        );
    }
    (frames, intervals)
}

/// GPU time used since the last call by the jailed ray-gpu of `rayvmm replay` `root` (its
/// children: the replayer itself stands for the guest, whose CPU time is not GPU time).
fn tree_time_delta(root: u32, last: &mut HashMap<u32, Duration>) -> Duration {
    let mut used = Duration::ZERO;
    for pid in children(root) {
        if let Some(now) = scheduler::gpu_time(pid) {
            let before = last.insert(pid, now).unwrap_or_default();
            used += now.saturating_sub(before);
        }
    }
    used
}

/// The direct children of `pid`, from /proc/PID/task/*/children.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    match sorted.is_empty() {
        true => 0.0,
        false => sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0,
    }
}

/// Per VM: fps and frame times; for the scenario: GPU-time shares per window and fairness.
fn summarise(title: &str, vms: &[Vm], results: &[VmResult], length: Duration) -> Value {
    let per_vm: Vec<Value> = vms
        .iter()
        .zip(results)
        .map(|(vm, r)| {
            let mut sorted = r.latency_us.clone();
            sorted.sort_unstable();
            let total: Duration = r.gpu_time.iter().sum();
            let per_window: Vec<f64> = r
                .gpu_time
                .chunks_exact(WINDOW)
                .map(|w| w.iter().sum::<Duration>().as_secs_f64())
                .collect();
            json!({
                "vm": vm.name,
                "nice": vm.share.map_or(0, |s| s.nice()),
                "fps": r.frames as f64 / length.as_secs_f64(),
                "late_ms_p50": percentile(&sorted, 0.50),
                "late_ms_p99": percentile(&sorted, 0.99),
                "late_ms_max": percentile(&sorted, 1.0),
                "gpu_seconds": total.as_secs_f64(),
                "gpu_seconds_per_window": per_window,
            })
        })
        .collect();
    // GPU-time shares per 1 s window, among the VMs of the scenario.
    let windows = results.iter().map(|r| r.gpu_time.len()).min().unwrap_or(0) / WINDOW;
    let mut min_max = Vec::new();
    let mut jains = Vec::new();
    let mut ratios = Vec::new();
    for w in 0..windows {
        let used: Vec<f64> = results
            .iter()
            .map(|r| {
                r.gpu_time[w * WINDOW..(w + 1) * WINDOW]
                    .iter()
                    .sum::<Duration>()
                    .as_secs_f64()
            })
            .collect();
        let weights: Vec<f64> = vms
            .iter()
            .map(|vm| 1.25f64.powi(-vm.share.map_or(0, |s| s.nice())))
            .collect();
        let normalised: Vec<f64> = used.iter().zip(&weights).map(|(u, w)| u / w).collect();
        min_max.push(min_over_max(&normalised));
        jains.push(jain(&normalised));
        if used.len() == 2 && used[1] > 0.0 {
            ratios.push(used[0] / used[1]);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let worst = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    json!({
        "scenario": title,
        "vms": per_vm,
        "windows": windows,
        "weighted_min_over_max_median": median(min_max.clone()),
        "weighted_min_over_max_worst": worst(&min_max),
        "weighted_jain_median": median(jains.clone()),
        "weighted_jain_worst": worst(&jains),
        "gpu_time_ratio_median": median(ratios),
        "total_fps": per_vm.iter().filter_map(|v| v["fps"].as_f64()).sum::<f64>(),
    })
}

fn table(report: &[Value]) -> String {
    let mut out = String::from(
        "\n| scenario | VM (nice) | fps | frame lateness ms p50 / p99 / max | GPU s |\n|---|---|---|---|---|\n",
    );
    for s in report {
        for v in s["vms"].as_array().unwrap() {
            out += &format!(
                "| {} | {} ({}) | {:.1} | {:.1} / {:.1} / {:.1} | {:.2} |\n",
                s["scenario"].as_str().unwrap(),
                v["vm"].as_str().unwrap(),
                v["nice"],
                v["fps"].as_f64().unwrap(),
                v["late_ms_p50"].as_f64().unwrap(),
                v["late_ms_p99"].as_f64().unwrap(),
                v["late_ms_max"].as_f64().unwrap(),
                v["gpu_seconds"].as_f64().unwrap(),
            );
        }
    }
    out += "\n| scenario | 1 s windows | weighted Min/Max median (worst) | weighted Jain median (worst) | GPU-time ratio a/b | total fps |\n|---|---|---|---|---|---|\n";
    for s in report
        .iter()
        .filter(|s| s["vms"].as_array().unwrap().len() > 1)
    {
        out += &format!(
            "| {} | {} | {:.3} ({:.3}) | {:.3} ({:.3}) | {:.2} | {:.1} |\n",
            s["scenario"].as_str().unwrap(),
            s["windows"],
            s["weighted_min_over_max_median"].as_f64().unwrap(),
            s["weighted_min_over_max_worst"].as_f64().unwrap(),
            s["weighted_jain_median"].as_f64().unwrap(),
            s["weighted_jain_worst"].as_f64().unwrap(),
            s["gpu_time_ratio_median"].as_f64().unwrap(),
            s["total_fps"].as_f64().unwrap(),
        );
    }
    out
}
