//! Replay benchmark: the recorded guests (kmscube, a short glmark2 set) replayed as fast as
//! the device takes them into the jailed ray-gpu (`rayvmm replay`, a fresh process in its jail
//! per replay) and into the same device code unjailed (`--in-process`: a fresh process of this
//! benchmark serving `devices::virtio_gpu` on a thread over a socketpair, no jail, no filter).
//! Rounds interleave the two, alternating which goes first; each round gives one fps per
//! series, and the report gives medians with the spread and the jailed/unjailed ratio.
//!
//! Environment:
//! - `REPLAY_RECORDINGS`: recordings, `:`-separated [default: `.cache/recordings/kmscube.raygrec`
//!   and `glmark2.raygrec`, made by `scripts/record-guests.sh`];
//! - `REPLAY_ROUNDS` [default 5]; `REPLAY_GPU`: a GPU node for the jailed replay (`--gpu`);
//! - `RAYVMM_BIN` [default: `target/release/rayvmm`]; `BENCH_OUT` [default `target/bench`];
//! - `REPLAY_LABEL`: a name for this configuration in the report files [default `llvmpipe`];
//! - `REPLAY_TOLERANCE`, `REPLAY_OUTLIERS`: how frames are compared (`rayvmm replay
//!   --tolerance/--outliers`) [default 0: pixel-exact, for recordings made on this renderer].
//!
//! Writes `replay-<label>.json` and `replay-<label>.md` to `BENCH_OUT`.
//!
//! `cargo build --release -p vmm -p gpu-process && cargo bench -p integration --bench replay`

use std::fmt::Write as _;
use std::fs::File;
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Instant;

use devices::virtio_gpu::{Backend, BackendConfig, RendererChoice, VirtioGpu};
use replay::{Device, FrameSource, Pace, ReplayOptions};
use serde_json::{json, Value};
use vhost_user_device::DeviceHandle;

#[path = "report/mod.rs"]
mod report;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--in-process") {
        let path = args.get(at + 1).expect("--in-process FILE");
        println!("{}", in_process(Path::new(path)));
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let recordings: Vec<PathBuf> = match std::env::var("REPLAY_RECORDINGS") {
        Ok(list) => list.split(':').map(PathBuf::from).collect(),
        Err(_) => ["kmscube", "glmark2"]
            .iter()
            .map(|n| root.join(format!(".cache/recordings/{n}.raygrec")))
            .collect(),
    };
    let missing: Vec<&PathBuf> = recordings.iter().filter(|p| !p.is_file()).collect();
    if !missing.is_empty() {
        println!("replay benchmark skipped: no recording at {missing:?} (bash scripts/record-guests.sh makes them)");
        return;
    }
    let rounds: usize = env_or("REPLAY_ROUNDS", "5").parse().expect("REPLAY_ROUNDS");
    let gpu = std::env::var("REPLAY_GPU").ok();
    let label = env_or("REPLAY_LABEL", "llvmpipe");
    let rayvmm = std::env::var("RAYVMM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/release/rayvmm"));
    let me = std::env::current_exe().expect("this benchmark's path");

    let mut results: Vec<Value> = Vec::new();
    for recording in &recordings {
        let name = recording
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let (mut jailed, mut unjailed) = (Vec::new(), Vec::new());
        let mut last = (Value::Null, Value::Null);
        for round in 0..rounds {
            let mut jailed_cmd = Command::new(&rayvmm);
            jailed_cmd.args(["replay", "--json"]).arg(recording);
            jailed_cmd.args(["--tolerance", &env_or("REPLAY_TOLERANCE", "0")]);
            jailed_cmd.args(["--outliers", &env_or("REPLAY_OUTLIERS", "0")]);
            if let Some(gpu) = &gpu {
                jailed_cmd.args(["--gpu", gpu]);
            }
            let mut unjailed_cmd = Command::new(&me);
            unjailed_cmd.arg("--in-process").arg(recording);
            // The jail's GL environment (jail::default_env, and NVIDIA's cache switch): no
            // shader cache on disk, so both sides compile their shaders, and what differs is
            // the jail alone.
            unjailed_cmd
                .env("MESA_SHADER_CACHE_DISABLE", "true")
                .env("__GL_SHADER_DISK_CACHE", "0");
            let order = [(true, &mut jailed_cmd), (false, &mut unjailed_cmd)];
            let order: Vec<_> = match round % 2 {
                0 => order.into_iter().collect(),
                _ => order.into_iter().rev().collect(),
            };
            for (is_jailed, cmd) in order {
                let report = run_json(cmd);
                assert_eq!(report["frames_match"], true, "{name}: {report:#}");
                let fps = report["fps"].as_f64().expect("fps");
                match is_jailed {
                    true => (jailed.push(fps), last.0 = report),
                    false => (unjailed.push(fps), last.1 = report),
                };
            }
            println!(
                "{name} round {}: jailed {:.1} fps, unjailed {:.1} fps",
                round + 1,
                jailed[round],
                unjailed[round]
            );
        }
        results.push(json!({
            "recording": name,
            "commands": last.0["commands"],
            "frames_presented": last.0["flushes"],
            "frames_checked": last.0["frames"].as_array().map_or(0, Vec::len),
            "renderer_jailed": last.0["renderer"],
            "renderer_unjailed": last.1["renderer"],
            "jailed_fps": summary(&jailed),
            "unjailed_fps": summary(&unjailed),
            "jailed_over_unjailed": median(&jailed) / median(&unjailed),
            "spawn_to_ready_seconds": last.0["spawn_to_ready_seconds"],
            "gl_start_seconds_unjailed": last.1["gl_start_seconds"],
            "gpu_process_peak_rss_mib": last.0["gpu_process_peak_rss_mib"],
            "unjailed_process_peak_rss_mib": last.1["process_peak_rss_mib"],
        }));
    }
    let report = json!({ "label": label, "rounds": rounds, "gpu": gpu, "results": results });
    let table = table(&report);
    print!("{table}");
    report::write(&root, &format!("replay-{label}"), &report, &table);
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Runs a command that prints one JSON report and returns it.
fn run_json(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("run the replay");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{cmd:?} printed no report ({e}): {text}"))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn summary(values: &[f64]) -> Value {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    json!({ "median": median(values), "min": min, "max": max, "rounds": values })
}

fn table(report: &Value) -> String {
    let mut out = format!(
        "\nReplay fps, {} rounds ({}), median [min-max]:\n\n| recording | jailed | unjailed | jailed / unjailed | spawn to ready | GPU process peak RSS |\n|---|---|---|---|---|---|\n",
        report["rounds"], report["label"]
    );
    for r in report["results"].as_array().unwrap() {
        let cell = |v: &Value| {
            format!(
                "{:.1} [{:.1}-{:.1}]",
                v["median"].as_f64().unwrap(),
                v["min"].as_f64().unwrap(),
                v["max"].as_f64().unwrap()
            )
        };
        let _ = writeln!(
            out,
            "| {} ({} commands, {} frames, {} checked) | {} | {} | {:.3} | {:.2} s | {:.0} MiB |",
            r["recording"].as_str().unwrap(),
            r["commands"],
            r["frames_presented"],
            r["frames_checked"],
            cell(&r["jailed_fps"]),
            cell(&r["unjailed_fps"]),
            r["jailed_over_unjailed"].as_f64().unwrap(),
            r["spawn_to_ready_seconds"].as_f64().unwrap_or(0.0),
            r["gpu_process_peak_rss_mib"].as_f64().unwrap_or(0.0),
        );
    }
    let renderer = &report["results"][0]["renderer_jailed"];
    let _ = writeln!(out, "\nrenderer: {renderer}");
    out
}

/// Frames from the device served on this process's thread.
struct HandleFrames(DeviceHandle<VirtioGpu>);

impl FrameSource for HandleFrames {
    fn frame(&mut self) -> Result<Option<(u32, u32, Vec<u8>)>, String> {
        self.0
            .with(|gpu| gpu.scanout_pixels(0))
            .map(|image| image.map(|i| (i.width, i.height, i.pixels)))
            .map_err(|e| e.to_string())
    }
}

/// One unjailed replay of `path` in this process; returns its JSON report.
fn in_process(path: &Path) -> Value {
    let opened = replay::open(BufReader::with_capacity(
        1 << 20,
        File::open(path).expect("open the recording"),
    ))
    .expect("read the recording");
    let (ours, theirs) = UnixStream::pair().expect("vhost-user socketpair");
    let (told, ready) = mpsc::channel();
    let gl_started = Instant::now();
    let server = std::thread::spawn(move || {
        let backend = Backend::init(&BackendConfig {
            renderer: RendererChoice::VirglOrTwoD,
            surfaceless: None,
        })
        .expect("the renderer in this process");
        let description = backend.info().to_string();
        let gpu = VirtioGpu::new(backend, Default::default()).expect("the device");
        let served = vhost_user_device::Backend::new(gpu).expect("the vhost-user backend");
        let _ = told.send((served.handle(), description));
        served.serve(theirs).expect("serving ends cleanly");
    });
    let (handle, renderer) = ready.recv().expect("the renderer came up");
    let gl_start = gl_started.elapsed().as_secs_f64();
    let mut frames = HandleFrames(handle);
    let report = replay::replay(
        opened,
        Device {
            socket: ours,
            frames: &mut frames,
        },
        ReplayOptions {
            pace: Pace::Fast,
            tolerance: env_or("REPLAY_TOLERANCE", "0")
                .parse()
                .expect("REPLAY_TOLERANCE"),
            outliers: env_or("REPLAY_OUTLIERS", "0")
                .parse()
                .expect("REPLAY_OUTLIERS"),
        },
    )
    .expect("the unjailed replay");
    drop(frames);
    server.join().expect("the serving thread ends");
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let mut value = serde_json::to_value(&report).expect("the report serializes");
    value["frames_match"] = json!(report.frames_match());
    value["renderer"] = json!(renderer);
    value["gl_start_seconds"] = json!(gl_start);
    value["process_peak_rss_mib"] = json!(peak / 1024.0);
    value
}
