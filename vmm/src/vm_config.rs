//! Configuration of `rayvmm run`: command-line flags and an equivalent JSON file.
//!
//! Both sources fill the same [`RunOptions`] (every field optional); flags override the file;
//! [`RunOptions::resolve`] checks the result and produces a [`RunConfig`] with every value
//! parsed and every default applied. JSON keys are the flag names without the leading `--`
//! (`"memory": "2G"`, `"3d": true`, `"display": "800x600"`); an unknown key is an error that
//! names it.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Default guest memory in MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 2048;
/// Default number of virtual CPUs.
pub const DEFAULT_CPUS: u32 = 2;
/// Default display size.
pub const DEFAULT_DISPLAY: DisplaySize = DisplaySize {
    width: 1024,
    height: 768,
};
/// Largest guest memory accepted, in MiB (1 TiB).
const MAX_MEMORY_MIB: u64 = 1 << 20;
/// Most virtual CPUs accepted.
const MAX_CPUS: u32 = 256;
/// Largest display edge accepted, in pixels: the largest the GPU device's EDID can describe
/// (the device refuses anything larger).
const MAX_DISPLAY_EDGE: u32 = control::display::MAX_DISPLAY_EDGE;

/// Why a configuration was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("reading config file {path}: {message}")]
    ReadFile { path: PathBuf, message: String },
    #[error("config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid memory size {0:?}: expected a number of MiB or a size such as 512M or 2G, at least 64M")]
    Memory(String),
    #[error("invalid CPU count {0}: expected 1 to {MAX_CPUS}")]
    Cpus(u32),
    #[error("invalid display size {0:?}: expected WIDTHxHEIGHT such as 1024x768, each 16 to {MAX_DISPLAY_EDGE}")]
    Display(String),
    #[error("invalid policy action {0:?}: expected kill or trap")]
    Action(String),
    #[error(
        "invalid VNC address {0:?}: expected HOST:DISPLAY (port 5900 + DISPLAY, 0 to 99) or \
         HOST::PORT (0: any free port), such as 127.0.0.1:0 or 127.0.0.1::5901"
    )]
    VncSyntax(String),
    #[error(
        "refusing VNC on {0}: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed"
    )]
    VncNotLoopback(String),
    #[error(
        "--vnc needs the jailed GPU (--gpu-backend ray-gpu): rayvmm's VNC server shows the \
         frames ray-gpu hands it, and the reference backend hands none"
    )]
    VncNeedsJailedGpu,
    #[error("nothing to boot: give --kernel (with optional --initrd and --append) or --firmware")]
    NoBootSource,
    #[error("--kernel and --firmware are alternatives: give one of them")]
    KernelAndFirmware,
    #[error("--{0} needs --kernel")]
    NeedsKernel(&'static str),
    #[error("--disk needs --firmware (a kernel boot takes its root from --initrd)")]
    DiskNeedsFirmware,
    #[error("{what} {path} does not exist or is not a regular file")]
    MissingFile { what: &'static str, path: PathBuf },
    #[error("--gpu {0}: neither an NVIDIA node (/dev/nvidiaN) nor a DRM render node (/dev/dri/renderDN)")]
    UnknownGpu(PathBuf),
    #[error("--gpu {0}: no such device node on this host")]
    MissingGpu(PathBuf),
    #[error("invalid GPU share: {0}")]
    GpuShare(String),
    #[error("--gpu-nice sets what --gpu-weight and --gpu-priority decide: give one or the others")]
    NiceAndShare,
    #[error("--gpu-ledger names where scheduled VMs meet, but this VM is not scheduled: give it a --gpu-weight or --gpu-priority too")]
    LedgerWithoutShare,
    #[error("invalid --gpu-nice {0}: expected 0 to 19 (the GPU process may only be given less CPU weight, never more)")]
    GpuNice(i32),
    #[error("invalid --gpu-memory-limit {0:?}: expected a size such as 512M or 8G, at least 64M")]
    GpuMemoryLimit(String),
    #[error("--gpu needs the jailed ray-gpu backend (the reference backend is 2D only)")]
    GpuNeedsJailedGpu,
    #[error("--record needs the jailed ray-gpu backend (the reference backend records nothing)")]
    RecordNeedsJailedGpu,
    #[error("invalid --record-limit {0:?}: expected a size such as 512M or 4G, at least 64M")]
    RecordLimit(String),
    #[error("invalid GPU backend {0:?}: expected ray-gpu or reference")]
    GpuBackend(String),
    #[error(
        "invalid liveness timeout {0:?}: expected seconds (such as 3 or 2.5s) or milliseconds \
         (such as 500ms), from 200ms to 600s"
    )]
    Liveness(String),
    #[error(
        "invalid GPU work timeout {0:?}: expected seconds (such as 1.8 or 1.8s) or milliseconds \
         (such as 1500ms), from 200ms to 600s"
    )]
    WorkTimeout(String),
}

/// Which policy action the GPU process's seccomp filter takes on a refused call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyAction {
    /// Kill the process (the production setting).
    #[default]
    Kill,
    /// Trap, report the call's name and arguments on the tube, then exit.
    Trap,
}

impl FromStr for PolicyAction {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kill" => Ok(PolicyAction::Kill),
            "trap" => Ok(PolicyAction::Trap),
            other => Err(ConfigError::Action(other.to_string())),
        }
    }
}

/// Which program serves the vhost-user GPU device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuBackendKind {
    /// The jailed `ray-gpu` (the product).
    #[default]
    RayGpu,
    /// QEMU's unjailed reference backend `/usr/lib/qemu/vhost-user-gpu` (2D only): for
    /// comparison and for bringing up the engine; never for untrusted guests.
    Reference,
}

impl FromStr for GpuBackendKind {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ray-gpu" => Ok(GpuBackendKind::RayGpu),
            "reference" => Ok(GpuBackendKind::Reference),
            other => Err(ConfigError::GpuBackend(other.to_string())),
        }
    }
}

/// Width and height of the guest's display, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplaySize {
    pub width: u32,
    pub height: u32,
}

impl FromStr for DisplaySize {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::Display(s.to_string());
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let width: u32 = w.trim().parse().map_err(|_| bad())?;
        let height: u32 = h.trim().parse().map_err(|_| bad())?;
        let ok = |v: u32| (16..=MAX_DISPLAY_EDGE).contains(&v);
        if !ok(width) || !ok(height) {
            return Err(bad());
        }
        Ok(DisplaySize { width, height })
    }
}

impl fmt::Display for DisplaySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Highest VNC display number accepted in `HOST:DISPLAY`.
const MAX_VNC_DISPLAY: u16 = 99;
/// TCP port of VNC display 0.
const VNC_BASE_PORT: u16 = 5900;

/// A VNC server address that only this machine can reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopbackVnc {
    /// The host as given, without brackets (`127.0.0.1`, `::1`, `localhost`).
    pub host: String,
    /// TCP port; 0 lets the system pick a free one.
    pub port: u16,
}

impl FromStr for LoopbackVnc {
    type Err = ConfigError;

    /// Parses `HOST:DISPLAY` or `HOST::PORT`; an IPv6 host is written in brackets.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ConfigError::VncSyntax(s.to_string());
        let (host, rest) = match s.strip_prefix('[') {
            Some(bracketed) => {
                let (host, rest) = bracketed.split_once(']').ok_or_else(syntax)?;
                (host, rest)
            }
            None => match s.find(':') {
                Some(colon) => s.split_at(colon),
                None => return Err(syntax()),
            },
        };
        let port = match (rest.strip_prefix("::"), rest.strip_prefix(':')) {
            (Some(port), _) => port.parse::<u16>().map_err(|_| syntax())?,
            (None, Some(display)) => {
                let display: u16 = display.parse().map_err(|_| syntax())?;
                if display > MAX_VNC_DISPLAY {
                    return Err(syntax());
                }
                VNC_BASE_PORT + display
            }
            (None, None) => return Err(syntax()),
        };
        let loopback = match host {
            "localhost" => true,
            "" => return Err(ConfigError::VncNotLoopback("all addresses".to_string())),
            _ => host.parse::<IpAddr>().map_err(|_| syntax())?.is_loopback(),
        };
        if !loopback {
            return Err(ConfigError::VncNotLoopback(host.to_string()));
        }
        Ok(LoopbackVnc {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for LoopbackVnc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => write!(f, "[{}]:{}", self.host, self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Parses a memory size: plain numbers are MiB; suffixes K, M, G, T (optionally with `iB`).
pub fn parse_memory_mib(s: &str) -> Result<u64, ConfigError> {
    let bad = || ConfigError::Memory(s.to_string());
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mib = match unit {
        "" | "M" | "m" => Some(n),
        "G" | "g" => n.checked_mul(1024),
        "T" | "t" => n.checked_mul(1024 * 1024),
        "K" | "k" if n.is_multiple_of(1024) => Some(n / 1024),
        _ => None,
    }
    .ok_or_else(bad)?;
    if !(64..=MAX_MEMORY_MIB).contains(&mib) {
        return Err(bad());
    }
    Ok(mib)
}

/// The options of `rayvmm run`, each optional, as a JSON config file holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    pub memory: Option<String>,
    pub cpus: Option<u32>,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    pub firmware: Option<PathBuf>,
    pub disk: Option<PathBuf>,
    pub display: Option<String>,
    #[serde(rename = "3d")]
    pub three_d: Option<bool>,
    pub action: Option<String>,
    pub screenshot: Option<PathBuf>,
    pub vnc: Option<String>,
    pub qemu: Option<PathBuf>,
    #[serde(rename = "gpu-backend")]
    pub gpu_backend: Option<String>,
    #[serde(rename = "ray-gpu")]
    pub ray_gpu: Option<PathBuf>,
    #[serde(rename = "liveness-timeout")]
    pub liveness_timeout: Option<String>,
    #[serde(rename = "gpu-work-timeout")]
    pub gpu_work_timeout: Option<String>,
    pub record: Option<PathBuf>,
    #[serde(rename = "record-limit")]
    pub record_limit: Option<String>,
    pub gpu: Option<PathBuf>,
    #[serde(rename = "gpu-memory-limit")]
    pub gpu_memory_limit: Option<String>,
    #[serde(rename = "gpu-nice")]
    pub gpu_nice: Option<i32>,
    #[serde(rename = "gpu-weight")]
    pub gpu_weight: Option<u32>,
    #[serde(rename = "gpu-priority")]
    pub gpu_priority: Option<String>,
    #[serde(rename = "gpu-ledger")]
    pub gpu_ledger: Option<PathBuf>,
}

/// Command-line flags of `rayvmm run`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// JSON file with the same options (keys are the flag names: "memory", "3d", ...);
    /// flags given on the command line override it.
    #[arg(long, value_name = "FILE.json")]
    pub config: Option<PathBuf>,
    /// Guest memory: MiB, or with a suffix (512M, 2G) [default: 2G].
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Virtual CPUs [default: 2].
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,
    /// Linux kernel image to boot directly.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initial ramdisk for --kernel.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line for --kernel.
    #[arg(long, value_name = "CMDLINE")]
    pub append: Option<String>,
    /// UEFI firmware (OVMF) to boot instead of a kernel.
    #[arg(long, value_name = "PATH")]
    pub firmware: Option<PathBuf>,
    /// Raw disk image for --firmware (attached read-only-safe as a snapshot).
    #[arg(long, value_name = "PATH")]
    pub disk: Option<PathBuf>,
    /// Display size offered to the guest, WIDTHxHEIGHT [default: 1024x768].
    #[arg(long, value_name = "WxH")]
    pub display: Option<String>,
    /// Offer VirGL 3D to the guest [default].
    #[arg(long = "3d", overrides_with = "no_3d")]
    pub three_d: bool,
    /// 2D only: do not offer VirGL.
    #[arg(long = "no-3d", overrides_with = "three_d")]
    pub no_3d: bool,
    /// What the GPU process's seccomp filter does on a refused call: kill, or trap (report the
    /// call's name and arguments, then exit) [default: kill].
    #[arg(long, value_name = "kill|trap")]
    pub action: Option<String>,
    /// Write the scanout as PNG here at exit; each SIGUSR1 while running writes one beside it,
    /// numbered (PATH-1.png, PATH-2.png ...).
    #[arg(long, value_name = "PATH.png")]
    pub screenshot: Option<PathBuf>,
    /// Serve the guest's display to VNC viewers, view-only, on a loopback address:
    /// HOST:DISPLAY (port 5900 + DISPLAY) or HOST::PORT (0: any free port).
    #[arg(long, value_name = "HOST:DISPLAY|HOST::PORT")]
    pub vnc: Option<String>,
    /// QEMU binary (version 8 or later) [default: qemu-system-x86_64 from PATH].
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,
    /// vhost-user GPU server: ray-gpu (jailed), or reference (QEMU's unjailed
    /// vhost-user-gpu, 2D, for comparison) [default: ray-gpu].
    #[arg(long = "gpu-backend", value_name = "ray-gpu|reference")]
    pub gpu_backend: Option<String>,
    /// The ray-gpu binary [default: next to rayvmm].
    #[arg(long = "ray-gpu", value_name = "PATH")]
    pub ray_gpu: Option<PathBuf>,
    /// How long the jailed GPU process may go without answering, or with fenced commands
    /// pending and none answered, before rayvmm stops it and the VM (exit 3) [default: 5s].
    #[arg(long = "liveness-timeout", value_name = "SECONDS|MSms")]
    pub liveness_timeout: Option<String>,
    /// How long one guest GPU command may run, or one fenced command wait for its fence,
    /// before the GPU process stops it and the VM (exit 3): a draw that does not finish stops
    /// only its own VM. Below Windows' TdrDelay (2 s) [default: 1.8s].
    #[arg(long = "gpu-work-timeout", value_name = "SECONDS|MSms")]
    pub gpu_work_timeout: Option<String>,
    /// Record every command the guest sends the GPU, the guest memory it reads and scanout
    /// images, to this file (replay it with `rayvmm replay`); needs the jailed ray-gpu.
    #[arg(long, value_name = "FILE.raygrec")]
    pub record: Option<PathBuf>,
    /// Stop recording when the file reaches this size (512M, 4G) [default: 4G].
    #[arg(long = "record-limit", value_name = "SIZE")]
    pub record_limit: Option<String>,
    /// The GPU to render on: an NVIDIA node (/dev/nvidia0) or a DRM render node
    /// (/dev/dri/renderD128); the run stops if GL does not come up on it [default: none,
    /// software rendering with llvmpipe].
    #[arg(long, value_name = "PATH")]
    pub gpu: Option<PathBuf>,
    /// The most private memory the GPU process may map (RLIMIT_DATA: 512M, 8G); past it its
    /// allocations fail and it cannot grow [default: 8G].
    #[arg(long = "gpu-memory-limit", value_name = "SIZE")]
    pub gpu_memory_limit: Option<String>,
    /// The GPU process's nice value, 0 to 19: each step gives its threads 1/1.25 of the CPU
    /// weight of QEMU's and rayvmm's when the CPUs are contended [default: 0].
    #[arg(long = "gpu-nice", value_name = "N")]
    pub gpu_nice: Option<i32>,
    #[command(flatten)]
    pub share: GpuShareArgs,
}

/// The flags that schedule a VM with the host's other scheduled VMs (`rayvmm run` and
/// `rayvmm replay`).
#[derive(Debug, Clone, Default, Args)]
pub struct GpuShareArgs {
    /// This VM's share of the host's GPU against other scheduled VMs', 1 to 100: admission
    /// through the GPU ledger, and the GPU process's CPU weight [default: 100].
    #[arg(long = "gpu-weight", value_name = "1-100")]
    pub gpu_weight: Option<u32>,
    /// interactive, normal or batch: how this VM's GPU work ranks beside others' of the same
    /// weight [default: interactive].
    #[arg(long = "gpu-priority", value_name = "interactive|normal|batch")]
    pub gpu_priority: Option<String>,
    /// The host's GPU ledger, where the VMs given a --gpu-weight or --gpu-priority publish
    /// their GPU time and are held while over their share [default:
    /// $XDG_RUNTIME_DIR/rayos-gpu-ledger, else /dev/shm/rayos-gpu-ledger-UID].
    #[arg(long = "gpu-ledger", value_name = "DIR")]
    pub gpu_ledger: Option<PathBuf>,
}

impl RunArgs {
    /// The flags given on the command line, as options.
    pub fn options(&self) -> RunOptions {
        let three_d = match (self.three_d, self.no_3d) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        RunOptions {
            memory: self.memory.clone(),
            cpus: self.cpus,
            kernel: self.kernel.clone(),
            initrd: self.initrd.clone(),
            append: self.append.clone(),
            firmware: self.firmware.clone(),
            disk: self.disk.clone(),
            display: self.display.clone(),
            three_d,
            action: self.action.clone(),
            screenshot: self.screenshot.clone(),
            vnc: self.vnc.clone(),
            qemu: self.qemu.clone(),
            gpu_backend: self.gpu_backend.clone(),
            ray_gpu: self.ray_gpu.clone(),
            liveness_timeout: self.liveness_timeout.clone(),
            gpu_work_timeout: self.gpu_work_timeout.clone(),
            record: self.record.clone(),
            record_limit: self.record_limit.clone(),
            gpu: self.gpu.clone(),
            gpu_memory_limit: self.gpu_memory_limit.clone(),
            gpu_nice: self.gpu_nice,
            gpu_weight: self.share.gpu_weight,
            gpu_priority: self.share.gpu_priority.clone(),
            gpu_ledger: self.share.gpu_ledger.clone(),
        }
    }

    /// Reads the config file (if any), lays the flags over it and resolves the result.
    pub fn resolve(&self) -> Result<RunConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => RunOptions::from_file(path)?,
            None => RunOptions::default(),
        };
        self.options().over(file).resolve()
    }
}

/// How the guest boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootSource {
    /// Direct Linux boot.
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        append: String,
    },
    /// UEFI firmware, optionally with a disk.
    Firmware {
        firmware: PathBuf,
        disk: Option<PathBuf>,
    },
}

/// A checked, complete `rayvmm run` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    pub memory_mib: u64,
    pub cpus: u32,
    pub boot: BootSource,
    pub display: DisplaySize,
    pub three_d: bool,
    pub action: PolicyAction,
    pub screenshot: Option<PathBuf>,
    /// Where rayvmm serves the display to VNC viewers, if anywhere.
    pub vnc: Option<LoopbackVnc>,
    pub qemu: PathBuf,
    pub gpu_backend: GpuBackendKind,
    pub ray_gpu: Option<PathBuf>,
    /// The jailed GPU process's liveness bound.
    pub liveness_timeout: Duration,
    /// How long one guest GPU command may run or one fence wait.
    pub gpu_work_timeout: Duration,
    /// Where to record the guest's GPU commands.
    pub record: Option<PathBuf>,
    /// The recording's size bound in bytes.
    pub record_limit: u64,
    /// The GPU to render on; `None`: software rendering.
    pub gpu: Option<PathBuf>,
    /// The GPU process's RLIMIT_DATA in bytes; `None`: the jail's default.
    pub gpu_memory_limit: Option<u64>,
    /// The GPU process's nice value.
    pub gpu_nice: i32,
    /// How the host's GPU scheduler admits this VM's GPU work; `None`: unscheduled.
    pub gpu_schedule: Option<GpuSchedule>,
}

/// The GPU scheduling that `--gpu-weight`, `--gpu-priority` and `--gpu-ledger` ask for;
/// `None` when neither a weight nor a priority is given (the VM is not scheduled).
pub fn gpu_schedule(
    weight: Option<u32>,
    priority: Option<&str>,
    ledger: Option<&Path>,
) -> Result<Option<GpuSchedule>, ConfigError> {
    if weight.is_none() && priority.is_none() {
        return match ledger {
            Some(_) => Err(ConfigError::LedgerWithoutShare),
            None => Ok(None),
        };
    }
    let priority = match priority {
        Some(p) => p
            .parse()
            .map_err(|e: scheduler::ShareError| ConfigError::GpuShare(e.to_string()))?,
        None => scheduler::Priority::Interactive,
    };
    let share = scheduler::Share::new(weight.unwrap_or(scheduler::MAX_WEIGHT), priority)
        .map_err(|e| ConfigError::GpuShare(e.to_string()))?;
    Ok(Some(GpuSchedule {
        share,
        ledger: ledger.map_or_else(scheduler::default_ledger_dir, Path::to_path_buf),
    }))
}

/// A VM's place in the host's GPU scheduling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSchedule {
    pub share: scheduler::Share,
    /// The ledger directory the host's scheduled VMs share.
    pub ledger: PathBuf,
}

impl RunOptions {
    /// Parses a JSON config file; unknown keys are an error naming the key.
    pub fn from_file(path: &Path) -> Result<RunOptions, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ReadFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        RunOptions::from_json(&text).map_err(|message| ConfigError::ParseFile {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses the JSON text of a config file.
    pub fn from_json(text: &str) -> Result<RunOptions, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// These options, with anything unset taken from `base`.
    pub fn over(self, base: RunOptions) -> RunOptions {
        RunOptions {
            memory: self.memory.or(base.memory),
            cpus: self.cpus.or(base.cpus),
            kernel: self.kernel.or(base.kernel),
            initrd: self.initrd.or(base.initrd),
            append: self.append.or(base.append),
            firmware: self.firmware.or(base.firmware),
            disk: self.disk.or(base.disk),
            display: self.display.or(base.display),
            three_d: self.three_d.or(base.three_d),
            action: self.action.or(base.action),
            screenshot: self.screenshot.or(base.screenshot),
            vnc: self.vnc.or(base.vnc),
            qemu: self.qemu.or(base.qemu),
            gpu_backend: self.gpu_backend.or(base.gpu_backend),
            ray_gpu: self.ray_gpu.or(base.ray_gpu),
            liveness_timeout: self.liveness_timeout.or(base.liveness_timeout),
            gpu_work_timeout: self.gpu_work_timeout.or(base.gpu_work_timeout),
            record: self.record.or(base.record),
            record_limit: self.record_limit.or(base.record_limit),
            gpu: self.gpu.or(base.gpu),
            gpu_memory_limit: self.gpu_memory_limit.or(base.gpu_memory_limit),
            gpu_nice: self.gpu_nice.or(base.gpu_nice),
            gpu_weight: self.gpu_weight.or(base.gpu_weight),
            gpu_priority: self.gpu_priority.or(base.gpu_priority),
            gpu_ledger: self.gpu_ledger.or(base.gpu_ledger),
        }
    }

    /// Checks every value and applies the defaults.
    pub fn resolve(self) -> Result<RunConfig, ConfigError> {
        let memory_mib = match &self.memory {
            Some(m) => parse_memory_mib(m)?,
            None => DEFAULT_MEMORY_MIB,
        };
        let cpus = self.cpus.unwrap_or(DEFAULT_CPUS);
        if !(1..=MAX_CPUS).contains(&cpus) {
            return Err(ConfigError::Cpus(cpus));
        }
        let display = match &self.display {
            Some(d) => d.parse()?,
            None => DEFAULT_DISPLAY,
        };
        let action = match &self.action {
            Some(a) => a.parse()?,
            None => PolicyAction::default(),
        };
        let gpu_backend = match &self.gpu_backend {
            Some(g) => g.parse()?,
            None => GpuBackendKind::default(),
        };
        let vnc = match &self.vnc {
            Some(v) => Some(v.parse::<LoopbackVnc>()?),
            None => None,
        };
        if vnc.is_some() && gpu_backend == GpuBackendKind::Reference {
            return Err(ConfigError::VncNeedsJailedGpu);
        }
        let liveness_timeout = match &self.liveness_timeout {
            Some(t) => parse_timeout(t).ok_or_else(|| ConfigError::Liveness(t.clone()))?,
            None => DEFAULT_LIVENESS_TIMEOUT,
        };
        let gpu_work_timeout = match &self.gpu_work_timeout {
            Some(t) => parse_timeout(t).ok_or_else(|| ConfigError::WorkTimeout(t.clone()))?,
            None => DEFAULT_GPU_WORK_TIMEOUT,
        };
        if self.record.is_some() && gpu_backend == GpuBackendKind::Reference {
            return Err(ConfigError::RecordNeedsJailedGpu);
        }
        let record_limit = match &self.record_limit {
            Some(limit) => parse_memory_mib(limit)
                .map_err(|_| ConfigError::RecordLimit(limit.clone()))?
                .saturating_mul(1 << 20),
            None => crate::recording::DEFAULT_LIMIT_BYTES,
        };
        if let Some(gpu) = &self.gpu {
            if crate::gpu_process::GpuKind::of(gpu).is_none() {
                return Err(ConfigError::UnknownGpu(gpu.clone()));
            }
            if !gpu.exists() {
                return Err(ConfigError::MissingGpu(gpu.clone()));
            }
            if gpu_backend == GpuBackendKind::Reference {
                return Err(ConfigError::GpuNeedsJailedGpu);
            }
        }
        let gpu_memory_limit = match &self.gpu_memory_limit {
            Some(limit) => Some(
                parse_memory_mib(limit)
                    .map_err(|_| ConfigError::GpuMemoryLimit(limit.clone()))?
                    .saturating_mul(1 << 20),
            ),
            None => None,
        };
        let gpu_schedule = gpu_schedule(
            self.gpu_weight,
            self.gpu_priority.as_deref(),
            self.gpu_ledger.as_deref(),
        )?;
        let share = gpu_schedule.as_ref().map(|s| s.share);
        let gpu_nice = match (self.gpu_nice, share) {
            (Some(_), Some(_)) => return Err(ConfigError::NiceAndShare),
            (Some(nice), None) => nice,
            (None, Some(share)) => share.nice(),
            (None, None) => 0,
        };
        if !(0..=19).contains(&gpu_nice) {
            return Err(ConfigError::GpuNice(gpu_nice));
        }
        let boot = self.boot_source()?;
        Ok(RunConfig {
            memory_mib,
            cpus,
            boot,
            display,
            three_d: self.three_d.unwrap_or(true),
            action,
            screenshot: self.screenshot,
            vnc,
            qemu: self
                .qemu
                .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64")),
            gpu_backend,
            ray_gpu: self.ray_gpu,
            liveness_timeout,
            gpu_work_timeout,
            record: self.record,
            record_limit,
            gpu: self.gpu,
            gpu_memory_limit,
            gpu_nice,
            gpu_schedule,
        })
    }

    fn boot_source(&self) -> Result<BootSource, ConfigError> {
        match (&self.kernel, &self.firmware) {
            (Some(_), Some(_)) => Err(ConfigError::KernelAndFirmware),
            (None, None) => Err(ConfigError::NoBootSource),
            (Some(kernel), None) => {
                if self.disk.is_some() {
                    return Err(ConfigError::DiskNeedsFirmware);
                }
                require_file("kernel", kernel)?;
                if let Some(initrd) = &self.initrd {
                    require_file("initrd", initrd)?;
                }
                Ok(BootSource::Kernel {
                    kernel: kernel.clone(),
                    initrd: self.initrd.clone(),
                    append: self.append.clone().unwrap_or_default(),
                })
            }
            (None, Some(firmware)) => {
                if self.initrd.is_some() {
                    return Err(ConfigError::NeedsKernel("initrd"));
                }
                if self.append.is_some() {
                    return Err(ConfigError::NeedsKernel("append"));
                }
                require_file("firmware", firmware)?;
                if let Some(disk) = &self.disk {
                    require_file("disk", disk)?;
                }
                Ok(BootSource::Firmware {
                    firmware: firmware.clone(),
                    disk: self.disk.clone(),
                })
            }
        }
    }
}

fn require_file(what: &'static str, path: &Path) -> Result<(), ConfigError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(ConfigError::MissingFile {
            what,
            path: path.to_path_buf(),
        })
    }
}

/// How long the GPU process may stall before rayvmm stops it, unless configured.
pub const DEFAULT_LIVENESS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one guest GPU command may run or one fence wait, unless configured: below
/// Windows' TdrDelay (2 s), after which the guest resets its GPU anyway.
pub const DEFAULT_GPU_WORK_TIMEOUT: Duration = Duration::from_millis(1800);

/// `3`, `2.5s` or `500ms`, from 200 ms to 600 s; `None` for anything else.
pub(crate) fn parse_timeout(text: &str) -> Option<Duration> {
    let trimmed = text.trim();
    let seconds: f64 = match trimmed.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().ok()? / 1000.0,
        None => trimmed.strip_suffix('s').unwrap_or(trimmed).parse().ok()?,
    };
    (0.2..=600.0)
        .contains(&seconds)
        .then(|| Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_accept_seconds_and_milliseconds() {
        let parsed: Vec<Duration> = ["3", "2.5s", "500ms"]
            .iter()
            .map(|t| parse_timeout(t).unwrap())
            .collect();

        assert_eq!(
            parsed,
            vec![
                Duration::from_secs(3),
                Duration::from_millis(2500),
                Duration::from_millis(500)
            ]
        );
    }

    #[test]
    fn timeouts_outside_their_range_are_refused() {
        let results: Vec<Option<Duration>> = ["0", "100ms", "601", "soon"]
            .iter()
            .map(|t| parse_timeout(t))
            .collect();

        assert_eq!(results, vec![None; 4]);
    }

    #[test]
    fn gpu_work_timeout_outside_its_range_is_refused_naming_it() {
        let options = RunOptions {
            gpu_work_timeout: Some("5ms".into()),
            ..firmware_options()
        };

        let message = options.resolve().unwrap_err().to_string();

        assert!(message.contains("GPU work timeout \"5ms\""), "{message}");
    }

    #[test]
    fn liveness_timeout_outside_its_range_is_refused_naming_it() {
        let results: Vec<String> = ["0", "100ms", "601", "soon"]
            .iter()
            .map(|t| {
                RunOptions {
                    liveness_timeout: Some(t.to_string()),
                    ..firmware_options()
                }
                .resolve()
                .unwrap_err()
                .to_string()
            })
            .collect();

        assert!(results
            .iter()
            .zip(["\"0\"", "\"100ms\"", "\"601\"", "\"soon\""])
            .all(|(message, named)| message.contains(named)));
    }

    fn firmware_options() -> RunOptions {
        RunOptions {
            firmware: Some(PathBuf::from("/proc/self/exe")),
            ..RunOptions::default()
        }
    }

    #[test]
    fn memory_sizes_accept_mib_and_suffixes() {
        let parsed: Vec<u64> = ["512", "512M", "2G", "2GiB", "1048576K"]
            .iter()
            .map(|s| parse_memory_mib(s).unwrap())
            .collect();

        assert_eq!(parsed, vec![512, 512, 2048, 2048, 1024]);
    }

    #[test]
    fn memory_sizes_reject_garbage_and_tiny_values() {
        let results: Vec<bool> = ["", "2Q", "-1", "1", "G"]
            .iter()
            .map(|s| parse_memory_mib(s).is_err())
            .collect();

        assert_eq!(results, vec![true; 5]);
    }

    #[test]
    fn display_size_parses_width_by_height() {
        let size: DisplaySize = "1280x800".parse().unwrap();

        assert_eq!(
            size,
            DisplaySize {
                width: 1280,
                height: 800
            }
        );
    }

    #[test]
    fn display_size_rejects_zero_edge() {
        let err = "0x768".parse::<DisplaySize>().unwrap_err();

        assert_eq!(err, ConfigError::Display("0x768".to_string()));
    }

    #[test]
    fn vnc_display_numbers_map_to_ports_from_5900() {
        let addresses: Vec<LoopbackVnc> = ["127.0.0.1:0", "localhost:3", "[::1]:1", "127.1.2.3:99"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();

        let shown: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.1:5900",
                "localhost:5903",
                "[::1]:5901",
                "127.1.2.3:5999"
            ]
        );
    }

    #[test]
    fn vnc_double_colon_gives_the_port_itself() {
        let addresses: Vec<LoopbackVnc> = ["127.0.0.1::5901", "[::1]::0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();

        assert_eq!(
            addresses,
            [
                LoopbackVnc {
                    host: "127.0.0.1".into(),
                    port: 5901
                },
                LoopbackVnc {
                    host: "::1".into(),
                    port: 0
                }
            ]
        );
    }

    #[test]
    fn vnc_display_number_past_99_is_refused() {
        let err = "127.0.0.1:100".parse::<LoopbackVnc>().unwrap_err();

        assert_eq!(err, ConfigError::VncSyntax("127.0.0.1:100".into()));
    }

    #[test]
    fn vnc_refuses_non_loopback_address() {
        let err = "0.0.0.0:0".parse::<LoopbackVnc>().unwrap_err();

        assert_eq!(err, ConfigError::VncNotLoopback("0.0.0.0".to_string()));
    }

    #[test]
    fn vnc_refuses_empty_host_that_would_listen_everywhere() {
        let err = "::5900".parse::<LoopbackVnc>().unwrap_err();

        assert_eq!(err, ConfigError::VncNotLoopback("all addresses".into()));
    }

    #[test]
    fn vnc_refuses_a_host_name_other_than_localhost() {
        let err = "example.com:0".parse::<LoopbackVnc>().unwrap_err();

        assert_eq!(err, ConfigError::VncSyntax("example.com:0".into()));
    }

    #[test]
    fn vnc_on_loopback_resolves_into_the_config() {
        let options = RunOptions {
            vnc: Some("127.0.0.1::0".into()),
            ..firmware_options()
        };

        let config = options.resolve().unwrap();

        assert_eq!(
            config.vnc,
            Some(LoopbackVnc {
                host: "127.0.0.1".into(),
                port: 0
            })
        );
    }

    #[test]
    fn gpu_weight_and_priority_become_the_gpu_process_nice_value() {
        let options = RunOptions {
            gpu_weight: Some(50),
            gpu_priority: Some("batch".into()),
            ..firmware_options()
        };

        assert_eq!(options.resolve().map(|c| c.gpu_nice), Ok(11));
    }

    #[test]
    fn gpu_weight_schedules_the_vm_in_the_named_ledger() {
        let options = RunOptions {
            gpu_weight: Some(50),
            gpu_ledger: Some("/run/ledger".into()),
            ..firmware_options()
        };

        let schedule = options.resolve().map(|c| c.gpu_schedule);

        assert_eq!(
            schedule,
            Ok(Some(GpuSchedule {
                share: scheduler::Share::new(50, scheduler::Priority::Interactive).unwrap(),
                ledger: "/run/ledger".into(),
            }))
        );
    }

    #[test]
    fn vm_without_a_weight_or_priority_is_not_scheduled() {
        let schedule = firmware_options().resolve().map(|c| c.gpu_schedule);

        assert_eq!(schedule, Ok(None));
    }

    #[test]
    fn gpu_ledger_without_a_weight_or_priority_is_refused() {
        let options = RunOptions {
            gpu_ledger: Some("/run/ledger".into()),
            ..firmware_options()
        };

        assert_eq!(options.resolve(), Err(ConfigError::LedgerWithoutShare));
    }

    #[test]
    fn gpu_nice_with_a_gpu_weight_is_refused() {
        let options = RunOptions {
            gpu_nice: Some(3),
            gpu_weight: Some(50),
            ..firmware_options()
        };

        assert_eq!(options.resolve(), Err(ConfigError::NiceAndShare));
    }

    #[test]
    fn gpu_nice_below_zero_is_refused() {
        let options = RunOptions {
            gpu_nice: Some(-5),
            ..firmware_options()
        };

        assert_eq!(options.resolve(), Err(ConfigError::GpuNice(-5)));
    }

    #[test]
    fn vnc_with_the_reference_backend_is_refused() {
        let options = RunOptions {
            vnc: Some("127.0.0.1:0".into()),
            gpu_backend: Some("reference".into()),
            ..firmware_options()
        };

        assert_eq!(options.resolve(), Err(ConfigError::VncNeedsJailedGpu));
    }

    #[test]
    fn vnc_on_a_public_address_is_refused_as_public() {
        let options = RunOptions {
            vnc: Some("0.0.0.0:0".into()),
            ..firmware_options()
        };

        assert_eq!(
            options.resolve(),
            Err(ConfigError::VncNotLoopback("0.0.0.0".into()))
        );
    }

    #[test]
    fn display_edge_beyond_the_edid_limit_is_refused() {
        let err = "4096x600".parse::<DisplaySize>().unwrap_err();

        assert_eq!(err, ConfigError::Display("4096x600".into()));
        assert!(err.to_string().contains("16 to 4095"), "{err}");
    }

    #[test]
    fn display_edge_at_the_edid_limit_is_accepted() {
        let size: DisplaySize = "4095x4095".parse().unwrap();

        assert_eq!((size.width, size.height), (4095, 4095));
    }

    #[test]
    fn json_unknown_key_is_named_in_the_error() {
        let err = RunOptions::from_json(r#"{"memory": "1G", "memroy": "2G"}"#).unwrap_err();

        assert!(err.contains("memroy"), "{err}");
    }

    #[test]
    fn json_keys_match_flag_names() {
        let json = r#"{"memory":"1G","cpus":1,"display":"800x600","3d":false,"action":"trap",
                       "gpu-backend":"reference","firmware":"/proc/self/exe"}"#;

        let config = RunOptions::from_json(json).unwrap().resolve().unwrap();

        assert_eq!(
            (
                config.memory_mib,
                config.cpus,
                config.display.to_string(),
                config.three_d,
                config.action,
                config.gpu_backend
            ),
            (
                1024,
                1,
                "800x600".to_string(),
                false,
                PolicyAction::Trap,
                GpuBackendKind::Reference
            )
        );
    }

    #[test]
    fn flags_override_the_config_file() {
        let file = RunOptions {
            memory: Some("1G".into()),
            cpus: Some(4),
            ..firmware_options()
        };
        let flags = RunOptions {
            memory: Some("3G".into()),
            ..RunOptions::default()
        };

        let config = flags.over(file).resolve().unwrap();

        assert_eq!((config.memory_mib, config.cpus), (3072, 4));
    }

    #[test]
    fn no_3d_flag_turns_3d_off() {
        let args = RunArgs {
            no_3d: true,
            ..RunArgs::default()
        };

        assert_eq!(args.options().three_d, Some(false));
    }

    #[test]
    fn kernel_and_firmware_together_are_refused() {
        let options = RunOptions {
            kernel: Some(PathBuf::from("/proc/self/exe")),
            ..firmware_options()
        };

        assert_eq!(options.resolve(), Err(ConfigError::KernelAndFirmware));
    }

    #[test]
    fn missing_boot_source_is_refused() {
        assert_eq!(
            RunOptions::default().resolve(),
            Err(ConfigError::NoBootSource)
        );
    }

    #[test]
    fn missing_kernel_file_is_named() {
        let options = RunOptions {
            kernel: Some(PathBuf::from("/nonexistent/vmlinuz")),
            ..RunOptions::default()
        };

        assert_eq!(
            options.resolve(),
            Err(ConfigError::MissingFile {
                what: "kernel",
                path: PathBuf::from("/nonexistent/vmlinuz")
            })
        );
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let config = firmware_options().resolve().unwrap();

        assert_eq!(
            (
                config.memory_mib,
                config.cpus,
                config.display,
                config.three_d,
                config.action
            ),
            (
                DEFAULT_MEMORY_MIB,
                DEFAULT_CPUS,
                DEFAULT_DISPLAY,
                true,
                PolicyAction::Kill
            )
        );
    }
}
