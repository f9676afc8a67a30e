//! Noisy neighbours: several VMs' jailed GPU processes on one host's GPU (llvmpipe here: the
//! host's CPUs), each driven by `rayvmm replay` of a recording, with the host scheduler's
//! shares off (every VM unscheduled, its GPU process at nice 0) and on (each VM's weight and
//! priority given to `rayvmm replay --gpu-weight --gpu-priority`: admission through a ledger
//! shared by the scenario's VMs, and the share's nice value), in one run:
//!
//! 1. the victim alone: kmscube replayed at its recorded pace (a fixed demand), in a loop;
//! 2. the victim beside an aggressor that (a) floods heavy submits (glmark2 replayed as fast
//!    as the device takes it), (b) submits one long draw after another (a synthetic guest whose
//!    single draw takes about 1.5 s alone), (c) submits a draw that never finishes (stopped by
//!    the GPU work timeout, 1.8 s, and started again); each with shares off, then on (victim
//!    interactive, aggressor batch);
//! 3. two saturating VMs (glmark2 as fast as possible each) with shares off, then weights 1:1
//!    and 2:1, in `NEIGHBOURS_ROUNDS` (default 3) interleaved rounds: their throughputs are
//!    compared round by round.
//!
//! Measured per VM: presented frames per second; how late frames were (from when a
//! RESOURCE_FLUSH was due, at the recorded pace for the victim, to its completion: for a VM
//! with a fixed demand, what a frame took beyond its recorded frame time is at most this),
//! p50, p99 and worst; the longest fence wait; how often the work timeout stopped its GPU
//! process; its GPU time (its ray-gpu's CPU time, read from /proc every 100 ms) per 1 s
//! window, and from it Min/Max, Jain's index and the share ratio; the saturating VMs' total
//! frames per second.
//! Written as tables and target checks to stdout and `neighbours.md`, as `neighbours.json`,
//! and as two pictures (`neighbours.png`: GPU time per window; `neighbours-frames.png`: frame
//! times), in `BENCH_OUT` (default `target/bench`).
//!
//! `NEIGHBOURS_SECONDS` (default 15) is each scenario's (and round's) length;
//! `NEIGHBOURS_ONLY=TEXT` runs only the scenarios whose title contains TEXT. Needs the recordings
//! (`scripts/record-guests.sh`, or `NEIGHBOURS_RECORDINGS`) and `target/release/rayvmm`
//! (`RAYVMM_BIN`); `NEIGHBOURS_GPU` renders every VM on that GPU node (see [`Replayer`]).
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

#[path = "../tests/jailed_gpu/mod.rs"]
mod jailed_gpu;
#[path = "report/neighbours_plot.rs"]
mod plot;
#[path = "report/mod.rs"]
mod report;

use jailed_gpu::busy_recording;
use jailed_gpu::support::virgl::Work;

/// How often GPU time is sampled, and the fairness window.
const SAMPLE: Duration = Duration::from_millis(100);
const WINDOW: usize = 10;
/// How long the aggressor's long draw should take alone.
const LONG_DRAW: Duration = Duration::from_millis(1500);
/// The iterations per pixel of the two draws the long draw is calibrated from.
const CALIBRATION_ITERATIONS: (u32, u32) = (1000, 4000);
/// What `rayvmm replay` says when the GPU work timeout stopped the GPU process.
const STOPPED_BY_WORK_TIMEOUT: &str = "did not finish within the GPU work timeout";

/// How every VM's `rayvmm replay` runs: which binary, on which GPU, how frames compare.
#[derive(Clone)]
struct Replayer {
    rayvmm: PathBuf,
    args: Vec<String>,
    /// The GPU ledger the scheduled VMs share.
    ledger: PathBuf,
}

impl Replayer {
    /// `RAYVMM_BIN` (default `target/release/rayvmm`); `NEIGHBOURS_GPU` (a GPU node every
    /// replay renders on; default none, llvmpipe); `NEIGHBOURS_TOLERANCE` and
    /// `NEIGHBOURS_OUTLIERS` (default 2 and 0: the synthetic draws' colours are computed, not
    /// recorded; across renderers the recorded guests need more).
    fn from_env(root: &Path) -> Replayer {
        let env = |name: &str, default: &str| std::env::var(name).unwrap_or(default.into());
        let mut args = vec![
            "--tolerance".to_string(),
            env("NEIGHBOURS_TOLERANCE", "2"),
            "--outliers".into(),
            env("NEIGHBOURS_OUTLIERS", "0"),
        ];
        if let Ok(gpu) = std::env::var("NEIGHBOURS_GPU") {
            args.extend(["--gpu".into(), gpu]);
        }
        let rayvmm = std::env::var("RAYVMM_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join("target/release/rayvmm"));
        Replayer {
            rayvmm,
            args,
            // On tmpfs, as the default ledger is: every scheduled VM rewrites its record
            // 100 times a second.
            ledger: PathBuf::from(format!(
                "/dev/shm/rayos-neighbours-ledger-{}",
                std::process::id()
            )),
        }
    }

    /// Whether to run the endless-draw aggressor: `NEIGHBOURS_ENDLESS=1` or `0`; by default
    /// only without a GPU node (llvmpipe), where stopping its GPU process ends the draw.
    fn endless_draws(&self) -> bool {
        match std::env::var("NEIGHBOURS_ENDLESS") {
            Ok(value) => value == "1",
            Err(_) => !self.args.iter().any(|a| a == "--gpu"),
        }
    }

    /// `rayvmm replay --json` of `recording` with the common arguments.
    fn command(&self, recording: &Path) -> Command {
        let mut command = Command::new(&self.rayvmm);
        command
            .args(["replay", "--json"])
            .args(&self.args)
            .arg(recording);
        command
    }
}

/// How a VM's replays end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Every frame presented and matching.
    Completes,
    /// Its GPU process stopped by the GPU work timeout (a draw that never finishes).
    StoppedByWorkTimeout,
}

/// One VM of a scenario.
#[derive(Clone)]
struct Vm {
    name: &'static str,
    recording: PathBuf,
    paced: bool,
    share: Option<Share>,
    ending: Ending,
}

/// What one VM did during a scenario.
#[derive(Default)]
struct VmResult {
    frames: u64,
    /// Wall time of the replays that presented them (spawn to exit): frames per second are
    /// counted over these, not over the scenario, so a replay cut off at its end counts
    /// neither its frames nor its time.
    replaying: Duration,
    /// How late each frame was presented (from when it was due).
    latency_us: Vec<u64>,
    /// The longest any fence waited, over every replay.
    fence_max_us: u64,
    /// Replays whose GPU process the work timeout stopped.
    stopped: u64,
    /// Replays that ended otherwise than the VM's [`Ending`] says.
    failures: Vec<String>,
    /// GPU time per sample period.
    gpu_time: Vec<Duration>,
    /// How long the host scheduler held its GPU processes, over every replay.
    held: Duration,
    /// The replays' own replaying time (`seconds`: from the first command to the last, frame
    /// checks excluded), without each replay's start-up and end.
    replaying_only: Duration,
}

impl VmResult {
    /// Presented frames per second of replaying.
    fn fps(&self) -> f64 {
        self.frames as f64 / self.replaying.as_secs_f64().max(1e-9)
    }

    /// Presented frames per second of the replays' own replaying time: the GPU work's rate,
    /// without the unscheduled start-up of every replay (reading the recording, the jail,
    /// GL), which a VM pays once, not every second.
    fn fps_replaying(&self) -> f64 {
        self.frames as f64 / self.replaying_only.as_secs_f64().max(1e-9)
    }

    /// Adds another round's results; GPU time is cut to whole windows first, so windows
    /// never straddle two rounds.
    fn absorb(&mut self, other: VmResult) {
        self.frames += other.frames;
        self.replaying += other.replaying;
        self.latency_us.extend(other.latency_us);
        self.fence_max_us = self.fence_max_us.max(other.fence_max_us);
        self.stopped += other.stopped;
        self.failures.extend(other.failures);
        let whole = other.gpu_time.len() / WINDOW * WINDOW;
        self.gpu_time.extend(&other.gpu_time[..whole]);
        self.held += other.held;
        self.replaying_only += other.replaying_only;
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let recordings = std::env::var("NEIGHBOURS_RECORDINGS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".cache/recordings"));
    let (kmscube, glmark2) = (
        recordings.join("kmscube.raygrec"),
        recordings.join("glmark2.raygrec"),
    );
    if !kmscube.is_file() || !glmark2.is_file() {
        println!("neighbours benchmark skipped: no recordings in {recordings:?} (bash scripts/record-guests.sh makes them)");
        return;
    }
    let out = report::out_dir(&root);
    std::fs::create_dir_all(&out).expect("create the report directory");
    let replayer = Replayer::from_env(&root);
    let seconds: u64 = std::env::var("NEIGHBOURS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let length = Duration::from_secs(seconds);
    println!("calibrating the long draw ...");
    let (long_draw, long_draw_alone) = long_draw_recording(&replayer, &out);
    println!("long draw: {:.2} s alone", long_draw_alone.as_secs_f64());
    let endless = out.join("busy-endless.raygrec");
    busy_recording::write(&endless, Work::Endless, 1).expect("write the endless draw");
    let vm = |name, recording: &Path, paced, share| Vm {
        name,
        recording: recording.to_path_buf(),
        paced,
        share,
        ending: Ending::Completes,
    };
    let share = |w, p| Some(Share::new(w, p).expect("a valid share"));
    let victim = |on: bool| {
        vm(
            "victim",
            &kmscube,
            true,
            on.then(|| share(100, Priority::Interactive)).flatten(),
        )
    };
    let aggressor = |recording: &Path, on: bool| Vm {
        ending: match recording == endless {
            true => Ending::StoppedByWorkTimeout,
            false => Ending::Completes,
        },
        ..vm(
            "aggressor",
            recording,
            false,
            on.then(|| share(100, Priority::Batch)).flatten(),
        )
    };
    let mut scenarios: Vec<(String, Vec<Vm>)> = vec![("victim alone".into(), vec![victim(false)])];
    let mut aggressors = vec![
        ("(a) flooding aggressor", &glmark2),
        ("(b) 1.5 s draws", &long_draw),
    ];
    match replayer.endless_draws() {
        true => aggressors.push(("(c) endless draw", &endless)),
        false => println!(
            "(c) endless draw: not run on a hardware GPU (NEIGHBOURS_ENDLESS=1 runs it): on the \
             H200 its shader kept the GPU busy after the watchdog stopped its GPU process, and \
             every other VM's work waited past the GPU work timeout"
        ),
    }
    for (what, recording) in aggressors {
        for on in [false, true] {
            let shares = ["shares off", "shares on"][usize::from(on)];
            scenarios.push((
                format!("victim + {what}, {shares}"),
                vec![victim(on), aggressor(recording, on)],
            ));
        }
    }
    let mut saturating: Vec<(String, Vec<Vm>)> = Vec::new();
    for (title, weights) in [
        ("two saturating VMs, shares off", None),
        ("two saturating VMs, weights 1:1", Some((100, 100))),
        ("two saturating VMs, weights 2:1", Some((100, 50))),
    ] {
        let pick = |w: Option<u32>| w.and_then(|w| share(w, Priority::Normal));
        saturating.push((
            title.into(),
            vec![
                vm("a", &glmark2, false, pick(weights.map(|w| w.0))),
                vm("b", &glmark2, false, pick(weights.map(|w| w.1))),
            ],
        ));
    }
    let only = std::env::var("NEIGHBOURS_ONLY").ok();
    let chosen = |title: &String| only.as_deref().is_none_or(|o| title.contains(o));
    let mut report = Vec::new();
    for (title, vms) in scenarios.iter().filter(|(t, _)| chosen(t)) {
        println!("{title}: {seconds} s ...");
        let results = run_scenario(&replayer, vms, length);
        report.push(summarise(title, vms, &results));
    }
    // The saturating pairs' throughput is compared between scenarios, so they run in
    // interleaved rounds and each round's totals are kept.
    let rounds: usize = std::env::var("NEIGHBOURS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let pairs: Vec<&(String, Vec<Vm>)> = saturating.iter().filter(|(t, _)| chosen(t)).collect();
    let mut merged: Vec<Vec<VmResult>> = pairs
        .iter()
        .map(|(_, vms)| vms.iter().map(|_| VmResult::default()).collect())
        .collect();
    let mut round_fps: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
    let mut round_fps_replaying: Vec<Vec<f64>> = vec![Vec::new(); pairs.len()];
    for round in 1..=rounds {
        for (i, (title, vms)) in pairs.iter().enumerate() {
            println!("{title}, round {round} of {rounds}: {seconds} s ...");
            let results = run_scenario(&replayer, vms, length);
            round_fps[i].push(results.iter().map(VmResult::fps).sum());
            round_fps_replaying[i].push(results.iter().map(VmResult::fps_replaying).sum());
            for (total, result) in merged[i].iter_mut().zip(results) {
                total.absorb(result);
            }
        }
    }
    for (i, (title, vms)) in pairs.iter().enumerate() {
        let mut summary = summarise(title, vms, &merged[i]);
        summary["total_fps_rounds"] = json!(round_fps[i]);
        summary["total_fps_replaying_rounds"] = json!(round_fps_replaying[i]);
        report.push(summary);
    }
    let _ = std::fs::remove_dir_all(&replayer.ledger);
    let mut text = table(&report);
    text += &targets(&report);
    print!("{text}");
    let json = json!({
        "seconds": seconds,
        "long_draw_alone_seconds": long_draw_alone.as_secs_f64(),
        "scenarios": report,
    });
    report::write(&root, "neighbours", &json, &text);
    for (name, draw) in [
        ("neighbours.png", plot::gpu_time_panels as PlotFn),
        ("neighbours-frames.png", plot::frame_time_panels),
    ] {
        let png = out.join(name);
        match draw(&report, &png) {
            Ok(()) => println!("plot: {}", png.display()),
            Err(e) => println!("plot not written: {e}"),
        }
    }
}

type PlotFn = fn(&[Value], &Path) -> Result<(), String>;

/// Writes the aggressor's long-draw recording into `out`: one draw whose iterations per
/// pixel make it take about [`LONG_DRAW`] alone. A draw's fence waits a fixed part (shader
/// compilation, the first frame) plus a part proportional to its iterations, so two
/// calibration draws give both. Returns its path and how long its fence waited alone.
fn long_draw_recording(replayer: &Replayer, out: &Path) -> (PathBuf, Duration) {
    let path = out.join("busy-long-draw.raygrec");
    let wait = |iterations: u32| {
        busy_recording::write(&path, Work::Iterations(iterations), 1).expect("write the long draw");
        solo_fence_wait(replayer, &path).as_secs_f64()
    };
    let (low, high) = CALIBRATION_ITERATIONS;
    let (t_low, t_high) = (wait(low), wait(high));
    let per_iteration = ((t_high - t_low) / f64::from(high - low)).max(1e-7);
    let fixed = t_low - per_iteration * f64::from(low);
    let iterations = ((LONG_DRAW.as_secs_f64() - fixed) / per_iteration).clamp(10.0, 1e6);
    let alone = wait(iterations as u32);
    (path.clone(), Duration::from_secs_f64(alone))
}

/// The longest fence wait of one replay of `recording` alone.
fn solo_fence_wait(replayer: &Replayer, recording: &Path) -> Duration {
    let output = replayer
        .command(recording)
        .output()
        .expect("run rayvmm replay");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(report["frames_match"], true, "{report:#}");
    Duration::from_micros(report["fence_us_max"].as_u64().unwrap_or(0))
}

/// Runs every VM of a scenario for `length`, each replaying its recording again and again,
/// while a sampler reads each VM's GPU time.
fn run_scenario(replayer: &Replayer, vms: &[Vm], length: Duration) -> Vec<VmResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let current: Vec<Arc<Mutex<Option<u32>>>> =
        vms.iter().map(|_| Arc::new(Mutex::new(None))).collect();
    let drivers: Vec<_> = vms
        .iter()
        .zip(&current)
        .map(|(vm, pid)| {
            let (vm, pid, stop, replayer) =
                (vm.clone(), pid.clone(), stop.clone(), replayer.clone());
            std::thread::spawn(move || drive(&replayer, &vm, &pid, &stop))
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
        .map(|(driver, gpu_time)| VmResult {
            gpu_time,
            ..driver.join().expect("a replay driver")
        })
        .collect()
}

/// Replays `vm`'s recording until told to stop; returns what its replays measured. `pid`
/// holds the running `rayvmm replay`'s pid.
fn drive(replayer: &Replayer, vm: &Vm, pid: &Mutex<Option<u32>>, stop: &AtomicBool) -> VmResult {
    let mut result = VmResult::default();
    while !stop.load(Ordering::SeqCst) {
        let mut cmd = replayer.command(&vm.recording);
        if vm.paced {
            cmd.args(["--pace", "recorded"]);
        }
        if let Some(share) = vm.share {
            cmd.args(["--gpu-weight", &share.weight.to_string()])
                .args(["--gpu-priority", &share.priority.to_string()])
                .arg("--gpu-ledger")
                .arg(&replayer.ledger);
        }
        let started = Instant::now();
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rayvmm replay");
        *pid.lock().unwrap() = Some(child.id());
        let out = child.wait_with_output().expect("rayvmm replay ends");
        *pid.lock().unwrap() = None;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if vm.ending == Ending::StoppedByWorkTimeout {
            match out.status.code() == Some(2) && stderr.contains(STOPPED_BY_WORK_TIMEOUT) {
                true => result.stopped += 1,
                false => result.failures.push(format!("{}: {stderr}", out.status)),
            }
            continue;
        }
        let report: Value = match serde_json::from_slice(&out.stdout) {
            Ok(report) => report,
            Err(e) => {
                result.failures.push(format!("no report ({e}): {stderr}"));
                continue;
            }
        };
        if report["frames_match"] != true || report["error_responses"] != 0 {
            result
                .failures
                .push(format!("frames or responses wrong: {stderr}"));
        }
        let numbers = |key: &str| -> Vec<u64> {
            report[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
                .collect()
        };
        result.frames += report["flushes"].as_u64().unwrap_or(0);
        result.held +=
            Duration::from_secs_f64(report["scheduler"]["held_ms"].as_f64().unwrap_or(0.0) / 1e3);
        result.replaying += started.elapsed();
        result.replaying_only += Duration::from_secs_f64(report["seconds"].as_f64().unwrap_or(0.0));
        result.latency_us.extend(numbers("frame_latency_us"));
        let fence_max = report["fence_us_max"].as_u64().unwrap_or(0);
        result.fence_max_us = result.fence_max_us.max(fence_max);
    }
    result
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

/// Per VM: fps, lateness, fences, stops and GPU time; for the scenario:
/// GPU-time shares per window and fairness.
fn summarise(title: &str, vms: &[Vm], results: &[VmResult]) -> Value {
    let per_vm: Vec<Value> = vms
        .iter()
        .zip(results)
        .map(|(vm, r)| {
            let mut late = r.latency_us.clone();
            late.sort_unstable();
            let total: Duration = r.gpu_time.iter().sum();
            let per_window: Vec<f64> = r
                .gpu_time
                .chunks_exact(WINDOW)
                .map(|w| w.iter().sum::<Duration>().as_secs_f64())
                .collect();
            let series: Vec<f64> = r
                .latency_us
                .iter()
                .map(|&us| (us as f64 / 100.0).round() / 10.0)
                .collect();
            json!({
                "vm": vm.name,
                "nice": vm.share.map_or(0, |s| s.nice()),
                "share": vm.share.map_or("unscheduled".into(), |s| format!("{} {}", s.weight, s.priority)),
                "held_seconds": r.held.as_secs_f64(),
                "fps": r.fps(),
                "fps_replaying": r.fps_replaying(),
                "late_ms": series,
                "late_ms_p50": percentile(&late, 0.50),
                "late_ms_p99": percentile(&late, 0.99),
                "late_ms_max": percentile(&late, 1.0),
                "fence_ms_max": r.fence_max_us as f64 / 1000.0,
                "stopped_by_work_timeout": r.stopped,
                "failures": r.failures.iter().take(3).collect::<Vec<_>>(),
                "failure_count": r.failures.len(),
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
            .map(|vm| vm.share.map_or(1.0, |s| s.effective_weight()))
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
        "total_fps_replaying": per_vm.iter().filter_map(|v| v["fps_replaying"].as_f64()).sum::<f64>(),
    })
}

fn table(report: &[Value]) -> String {
    let mut out = String::from(
        "\n| scenario | VM (share, nice) | fps | lateness ms p50 / p99 / max | longest fence ms | stopped | failed | GPU s | held s |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in report {
        for v in s["vms"].as_array().unwrap() {
            let f = |key: &str| v[key].as_f64().unwrap_or(0.0);
            out += &format!(
                "| {} | {} ({}, nice {}) | {:.1} | {:.1} / {:.1} / {:.1} | {:.1} | {} | {} | {:.2} | {:.2} |\n",
                s["scenario"].as_str().unwrap(),
                v["vm"].as_str().unwrap(),
                v["share"].as_str().unwrap(),
                v["nice"],
                f("fps"),
                f("late_ms_p50"),
                f("late_ms_p99"),
                f("late_ms_max"),
                f("fence_ms_max"),
                v["stopped_by_work_timeout"],
                v["failure_count"],
                f("gpu_seconds"),
                f("held_seconds"),
            );
        }
    }
    out += "\n| scenario | 1 s windows | weighted Min/Max median (worst) | weighted Jain median (worst) | GPU-time ratio a/b | total fps | total fps replaying |\n|---|---|---|---|---|---|---|\n";
    for s in report.iter().filter(|s| {
        s["scenario"]
            .as_str()
            .unwrap()
            .starts_with("two saturating")
    }) {
        out += &format!(
            "| {} | {} | {:.3} ({:.3}) | {:.3} ({:.3}) | {:.2} | {:.1} | {:.1} |\n",
            s["scenario"].as_str().unwrap(),
            s["windows"],
            s["weighted_min_over_max_median"].as_f64().unwrap(),
            s["weighted_min_over_max_worst"].as_f64().unwrap(),
            s["weighted_jain_median"].as_f64().unwrap(),
            s["weighted_jain_worst"].as_f64().unwrap(),
            s["gpu_time_ratio_median"].as_f64().unwrap(),
            s["total_fps"].as_f64().unwrap(),
            s["total_fps_replaying"].as_f64().unwrap(),
        );
    }
    out
}

/// Issue 12's targets, each with what this run measured, with the host scheduler's shares
/// off and on.
fn targets(report: &[Value]) -> String {
    let scenario = |title: &str| {
        report
            .iter()
            .find(|s| s["scenario"].as_str() == Some(title))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let vm = |title: &str, name: &str| {
        scenario(title)["vms"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["vm"].as_str() == Some(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let num = |v: &Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
    let solo = vm("victim alone", "victim");
    let (solo_fps, solo_p99) = (num(&solo, "fps"), num(&solo, "late_ms_p99"));
    let mut rows: Vec<(String, String, f64, f64, bool)> = Vec::new();
    let mut both =
        |target: String, what: &str, value: &dyn Fn(&str) -> f64, met: &dyn Fn(f64) -> bool| {
            let off = value(&format!("{what}, shares off"));
            let on = value(&format!("{what}, shares on"));
            rows.push((target, String::new(), off, on, met(on)));
        };
    let victim_of = |title: &str| vm(title, "victim");
    both(
        "(a) victim fps / solo >= 0.95".into(),
        "victim + (a) flooding aggressor",
        &|t| num(&victim_of(t), "fps") / solo_fps,
        &|v| v >= 0.95,
    );
    for (tag, what) in [
        ("(a)", "victim + (a) flooding aggressor"),
        ("(b)", "victim + (b) 1.5 s draws"),
    ] {
        both(
            format!(
                "{tag} victim p99 lateness ms <= solo p99 + 16.7 ({:.1})",
                solo_p99 + 16.7
            ),
            what,
            &|t| num(&victim_of(t), "late_ms_p99"),
            &|v| v <= solo_p99 + 16.7,
        );
        both(
            format!("{tag} victim worst lateness ms <= 100"),
            what,
            &|t| num(&victim_of(t), "late_ms_max"),
            &|v| v <= 100.0,
        );
    }
    let endless = "victim + (c) endless draw";
    both(
        "(c) victim stall (worst lateness) ms <= 500".into(),
        endless,
        &|t| num(&victim_of(t), "late_ms_max"),
        &|v| v <= 500.0,
    );
    both(
        "(c) victim longest fence ms <= 2000".into(),
        endless,
        &|t| num(&victim_of(t), "fence_ms_max"),
        &|v| v <= 2000.0,
    );
    both(
        "(c) aggressor GPU processes stopped by the work timeout (>= 1)".into(),
        endless,
        &|t| num(&vm(t, "aggressor"), "stopped_by_work_timeout"),
        &|v| v >= 1.0,
    );
    both(
        "(c) victim replays failed or stopped (0)".into(),
        endless,
        &|t| {
            let v = victim_of(t);
            num(&v, "failure_count") + num(&v, "stopped_by_work_timeout")
        },
        &|v| v == 0.0,
    );
    let pair = |title: &str, key: &str| num(&scenario(title), key);
    for (target, title, key, met) in [
        (
            "1:1 GPU-time Min/Max >= 0.97",
            "two saturating VMs, weights 1:1",
            "weighted_min_over_max_median",
            0.97,
        ),
        (
            "1:1 Jain's index >= 0.99",
            "two saturating VMs, weights 1:1",
            "weighted_jain_median",
            0.99,
        ),
    ] {
        let value = pair(title, key);
        rows.push((
            target.into(),
            "median of 1 s windows".into(),
            f64::NAN,
            value,
            value >= met,
        ));
    }
    let ratio = pair("two saturating VMs, weights 2:1", "gpu_time_ratio_median");
    rows.push((
        "2:1 GPU-time ratio within 5% of 2".into(),
        "median of 1 s windows".into(),
        pair("two saturating VMs, shares off", "gpu_time_ratio_median"),
        ratio,
        (ratio - 2.0).abs() <= 0.1,
    ));
    for (key, measure) in [
        ("total_fps_rounds", "total fps"),
        (
            "total_fps_replaying_rounds",
            "total fps while replaying (each replay's start-up left out)",
        ),
    ] {
        let rounds = |title: &str| -> Vec<f64> {
            scenario(title)[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect()
        };
        let unscheduled = rounds("two saturating VMs, shares off");
        for title in [
            "two saturating VMs, weights 1:1",
            "two saturating VMs, weights 2:1",
        ] {
            let mut ratios: Vec<f64> = rounds(title)
                .iter()
                .zip(&unscheduled)
                .map(|(on, off)| on / off)
                .collect();
            ratios.sort_by(f64::total_cmp);
            let value = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
            rows.push((
                format!(
                    "{} throughput / shares off >= 0.96",
                    title.trim_start_matches("two saturating VMs, ")
                ),
                format!(
                    "{measure}, median of {} rounds ({:.3} to {:.3})",
                    ratios.len(),
                    ratios.first().copied().unwrap_or(f64::NAN),
                    ratios.last().copied().unwrap_or(f64::NAN)
                ),
                1.0,
                value,
                value >= 0.96,
            ));
        }
    }
    let mut out = String::from(
        "\n| target | note | shares off | shares on | met (on) |\n|---|---|---|---|---|\n",
    );
    for (target, note, off, on, met) in rows {
        let show = |v: f64| match v.is_nan() {
            true => "-".to_string(),
            false => format!("{v:.3}"),
        };
        out += &format!(
            "| {target} | {note} | {} | {} | {} |\n",
            show(off),
            show(on),
            ["no", "yes"][usize::from(met)]
        );
    }
    out
}
