//! `rayvmm replay`: drives the jailed ray-gpu with a recording (`rayvmm run --record`) through
//! the real vhost-user data plane, checks each recorded frame and reports frames per second.

use std::fs::File;
use std::io::BufReader;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use control::display::DisplayMode;
use control::messages::{RendererMode, WORK_TIMEOUT_EXIT_CODE};
use jail::PassFd;
use replay::{Device, FrameSource, Pace, ReplayOptions, ReplayReport};
use serde::Serialize;

use crate::gpu_process::{GpuProcess, GpuSpawnConfig, VHOST_USER_FD};
use crate::sandbox_report::ActionArg;

/// `VIRTIO_GPU_F_VIRGL`: the recorded guest used 3D.
const VIRTIO_GPU_F_VIRGL: u64 = 1 << 0;

/// Command-line arguments of `rayvmm replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording (from `rayvmm run --record`).
    #[arg(value_name = "FILE.raygrec")]
    pub recording: PathBuf,
    /// Send commands as fast as the device takes them, or at the recorded pace.
    #[arg(long, value_enum, default_value_t = PaceArg::Fast)]
    pub pace: PaceArg,
    /// The largest difference per color channel a pixel may show and still match (0: exact,
    /// for the renderer that recorded; a few units across renderers).
    #[arg(long, default_value_t = 0)]
    pub tolerance: u8,
    /// The fraction of a frame's pixels that may differ by more than --tolerance (0 to 1;
    /// across renderers a few edge pixels round differently).
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub outliers: f64,
    /// The ray-gpu binary [default: next to rayvmm].
    #[arg(long = "ray-gpu", value_name = "PATH")]
    pub ray_gpu: Option<PathBuf>,
    /// The GPU to render on: an NVIDIA node (/dev/nvidia0) or a DRM render node; the replay
    /// stops if GL does not come up on it [default: none, llvmpipe].
    #[arg(long, value_name = "PATH")]
    pub gpu: Option<PathBuf>,
    /// Seccomp policy file [default: the policy for --gpu, else the software policy].
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// What the filter does with a call outside the policy: kill, or trap (report the call
    /// with its arguments, then exit; for deriving policies).
    #[arg(long, value_enum, default_value_t = ActionArg::Kill)]
    pub action: ActionArg,
    /// The GPU process's nice value, 0 to 19 (as `rayvmm run --gpu-nice`).
    #[arg(long = "gpu-nice", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=19), conflicts_with_all = ["gpu_weight", "gpu_priority"])]
    pub gpu_nice: i32,
    #[command(flatten)]
    pub share: crate::vm_config::GpuShareArgs,
    /// How long one command may run, or one fenced command wait for its fence, before the
    /// GPU process stops itself (as `rayvmm run --gpu-work-timeout`).
    #[arg(long = "gpu-work-timeout", value_name = "SECONDS|MSms", default_value = "1.8s", value_parser = work_timeout)]
    pub gpu_work_timeout: std::time::Duration,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--pace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaceArg {
    Fast,
    Recorded,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    recording: &'a Path,
    renderer: &'a str,
    gl_renderer: Option<&'a str>,
    spawn_to_ready_seconds: f64,
    /// The GPU process's peak resident memory (VmHWM) at the last frame check.
    gpu_process_peak_rss_mib: f64,
    #[serde(flatten)]
    replay: &'a ReplayReport,
    frames_match: bool,
    /// What the host's GPU scheduling did, when the replay was scheduled.
    scheduler: Option<SchedulerReport>,
}

/// `scheduler` in the JSON report.
#[derive(Debug, Serialize)]
struct SchedulerReport {
    weight: u32,
    priority: String,
    /// How often the GPU process was held, and for how long in all.
    holds: u64,
    held_ms: f64,
    /// The GPU process's GPU time while scheduled.
    gpu_ms: f64,
    /// Why scheduling stopped before the replay ended, if it did.
    error: Option<String>,
}

/// Replays; exit 0 when every recorded frame matched, 1 when one did not.
pub fn main(args: &ReplayArgs) -> Result<i32> {
    let file = File::open(&args.recording)
        .with_context(|| format!("opening {}", args.recording.display()))?;
    let opened = replay::open(BufReader::with_capacity(1 << 20, file))
        .with_context(|| format!("reading {}", args.recording.display()))?;
    let binary = crate::gpu_process::ray_gpu_binary(args.ray_gpu.as_deref())?;
    let policy = match &args.policy {
        Some(path) => path.clone(),
        None => crate::policy::policy_for_gpu(args.gpu.as_deref())?,
    };
    let devices: Vec<PathBuf> = args.gpu.iter().cloned().collect();
    let mut config = GpuSpawnConfig::new(&binary, &policy, &devices);
    config.action = args.action.into();
    let schedule = crate::vm_config::gpu_schedule(
        args.share.gpu_weight,
        args.share.gpu_priority.as_deref(),
        args.share.gpu_ledger.as_deref(),
    )?;
    config.jail.nice = schedule.as_ref().map_or(args.gpu_nice, |s| s.share.nice());
    config.renderer = match opened.preamble.features & VIRTIO_GPU_F_VIRGL {
        0 => RendererMode::TwoD,
        _ => RendererMode::Virgl,
    };
    config.display = Some(recorded_display(&opened.preamble.info));
    config.required_gpu = args
        .gpu
        .clone()
        .filter(|_| config.renderer == RendererMode::Virgl);
    config.ready_timeout = std::time::Duration::from_secs(60);
    config.work_timeout = Some(args.gpu_work_timeout);
    let (ours, theirs) = UnixStream::pair().context("creating the vhost-user socketpair")?;
    let spawn_started = Instant::now();
    let process = GpuProcess::spawn_with_fds(
        &config,
        &[PassFd {
            source: theirs.as_fd(),
            target: VHOST_USER_FD,
        }],
    )
    .context("spawning the jailed GPU process")?;
    let spawn_to_ready = spawn_started.elapsed().as_secs_f64();
    let scheduling = match &schedule {
        Some(schedule) => Some(
            process
                .join_scheduling(schedule)
                .map_err(anyhow::Error::msg)
                .context("joining the host's GPU scheduling")?,
        ),
        None => None,
    };
    drop(theirs);
    let renderer = process.ready_info().renderer.clone();
    let gl_renderer = process.ready_info().gl_renderer.clone();
    let mut frames = JailedFrames {
        process,
        peak_rss_kib: 0,
    };
    let options = ReplayOptions {
        pace: match args.pace {
            PaceArg::Fast => Pace::Fast,
            PaceArg::Recorded => Pace::Recorded,
        },
        tolerance: args.tolerance,
        outliers: args.outliers,
    };
    let replayed = replay::replay(
        opened,
        Device {
            socket: ours,
            frames: &mut frames,
        },
        options,
    );
    let report = match replayed {
        Ok(report) => report,
        Err(e) => {
            // Say how the GPU process ended, when that is why (a refused call in trap mode).
            let exit = frames
                .process
                .wait_timeout(std::time::Duration::from_secs(3))
                .ok()
                .flatten();
            let err =
                anyhow::Error::new(e).context(format!("replaying {}", args.recording.display()));
            return Err(match exit {
                Some(exit) if exit.status == jail::ExitStatus::Exited(WORK_TIMEOUT_EXIT_CODE) => {
                    err.context(format!(
                    "the GPU process stopped the guest's GPU work: it did not finish within the \
                     GPU work timeout ({:.1} s)",
                    args.gpu_work_timeout.as_secs_f64()
                ))
                }
                Some(exit) => err.context(format!("the GPU process {exit}")),
                None => err,
            });
        }
    };
    let scheduled = scheduling
        .map(scheduler::Member::leave)
        .zip(schedule)
        .map(|(stats, schedule)| (schedule.share, stats));
    if let Some(error) = scheduled.as_ref().and_then(|(_, s)| s.error.as_ref()) {
        eprintln!("rayvmm: the replay ran unscheduled after: {error}");
    }
    let peak_rss_mib = frames.peak_rss_kib as f64 / 1024.0;
    if args.json {
        let json = JsonReport {
            recording: &args.recording,
            renderer: &renderer,
            gl_renderer: gl_renderer.as_deref(),
            spawn_to_ready_seconds: spawn_to_ready,
            gpu_process_peak_rss_mib: peak_rss_mib,
            replay: &report,
            frames_match: report.frames_match(),
            scheduler: scheduled.map(|(share, stats)| SchedulerReport {
                weight: share.weight,
                priority: share.priority.to_string(),
                holds: stats.holds,
                held_ms: stats.held.as_secs_f64() * 1e3,
                gpu_ms: stats.gpu_time.as_secs_f64() * 1e3,
                error: stats.error,
            }),
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", summary(&report, &renderer));
        if let Some((share, stats)) = &scheduled {
            println!("GPU scheduling ({share}): {stats}");
        }
    }
    Ok(i32::from(!report.frames_match()))
}

/// `1.8`, `1.8s` or `1500ms`, from 200 ms to 600 s.
fn work_timeout(text: &str) -> Result<std::time::Duration, String> {
    crate::vm_config::parse_timeout(text)
        .ok_or_else(|| format!("{text:?} is not a time from 200ms to 600s (such as 1.8s)"))
}

/// A number from 0 to 1.
fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a fraction from 0 to 1")),
    }
}

/// The display size the recorded guest had (rayvmm's Info record), else the default.
fn recorded_display(info: &[String]) -> DisplayMode {
    info.iter()
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .filter_map(|v| v.get("display")?.as_str().map(str::to_owned))
        .find_map(|d| {
            let (w, h) = d.split_once('x')?;
            Some(DisplayMode {
                width: w.parse().ok()?,
                height: h.parse().ok()?,
            })
        })
        .unwrap_or(DisplayMode {
            width: 1024,
            height: 768,
        })
}

/// The human summary: one line of speed, one of frames.
fn summary(report: &ReplayReport, renderer: &str) -> String {
    let matched = report.frames.iter().filter(|f| f.matches()).count();
    let mut out = format!(
        "replayed {} commands ({} frames presented) in {:.2} s: {:.1} fps on {renderer}\n",
        report.commands, report.flushes, report.seconds, report.fps
    );
    out += &format!(
        "frames: {matched} of {} recorded frames match",
        report.frames.len()
    );
    for f in report.frames.iter().filter(|f| !f.matches()) {
        out += &match f.missing {
            true => format!("; after command {}: no such frame shown", f.after),
            false => format!(
                "; after command {}: {} pixels differ (largest difference {})",
                f.after, f.differing_pixels, f.max_difference
            ),
        };
    }
    if report.fences > 0 {
        out += &format!(
            "\nfences: {}, answered within {:.1} ms (99%), longest {:.1} ms",
            report.fences,
            report.fence_us_p99 as f64 / 1000.0,
            report.fence_us_max as f64 / 1000.0
        );
    }
    if report.error_responses > 0 {
        out += &format!(
            "\nthe device answered {} commands with an error",
            report.error_responses
        );
    }
    if report.stopped_at_reset {
        out += "\nthe recording continues after a device reset; replayed up to it";
    }
    out + "\n"
}

/// Frames from the jailed process, through the tube (a sealed memfd per frame); its peak
/// memory is read at each.
struct JailedFrames {
    process: GpuProcess,
    peak_rss_kib: u64,
}

impl FrameSource for JailedFrames {
    fn frame(&mut self) -> Result<Option<(u32, u32, Vec<u8>)>, String> {
        if let Ok(status) = self.process.status() {
            self.peak_rss_kib = status.vm_hwm_kib;
        }
        match self.process.screenshot() {
            Ok(frame) => Ok(Some((frame.width, frame.height, frame.pixels))),
            Err(e) => Err(e.to_string()),
        }
    }
}
