//! `rayvmm sandbox-report`: spawn the jailed GPU process and print what it is confined to,
//! as seen from outside (status, namespaces, id maps) and from inside (files, descriptors,
//! limits, cgroup, ids).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use control::messages::{SandboxView, ToGpu};
use seccomp::DefaultAction;
use serde::Serialize;

use crate::gpu_process::{GpuProcess, GpuSpawnConfig};
use crate::policy;
use jail::verify::{NamespaceLink, ProcStatus};
use jail::{ChildStderr, JailIds};

/// What the report says where no delegated cgroup v2 directory is configured.
pub const NO_CGROUP: &str = "no delegated cgroup v2: rlimits only";

/// Deepest level of the file tree the text report lists entry by entry.
const TEXT_TREE_DEPTH: usize = 3;

/// Command-line arguments of `rayvmm sandbox-report`.
#[derive(Debug, Args)]
pub struct SandboxReportArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Seccomp policy file (default: policies/x86_64/gpu_device_software.policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Directory holding the policies (default: $RAYOS_POLICY_DIR, else ../../policies
    /// beside this executable).
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
    /// The ray-gpu binary (default: ray-gpu beside this executable).
    #[arg(long, value_name = "PATH")]
    pub gpu_binary: Option<PathBuf>,
    /// A GPU device node to give the process (repeatable; missing ones are skipped).
    #[arg(long = "device", value_name = "PATH")]
    pub devices: Vec<PathBuf>,
    /// The GPU to render on (/dev/nvidia0, /dev/dri/renderD128): given to the process,
    /// virgl brought up on it before the report (refused if GL comes up elsewhere), and its
    /// policy used unless --policy names another.
    #[arg(long, value_name = "PATH")]
    pub gpu: Option<PathBuf>,
    /// Host uid of the jailed process (default: nobody for root, else your own).
    #[arg(long, requires = "gid")]
    pub uid: Option<u32>,
    /// Host gid of the jailed process.
    #[arg(long, requires = "uid")]
    pub gid: Option<u32>,
    /// What the filter does with a call outside the policy.
    #[arg(long, value_enum, default_value_t = ActionArg::Kill)]
    pub action: ActionArg,
    /// Let the process write to this terminal's standard error (debugging).
    #[arg(long)]
    pub child_stderr: bool,
    /// Bring virglrenderer up before the filter, as a VM's GPU process does, so the report
    /// shows the renderer that came up on the given devices (default: no renderer).
    #[arg(long)]
    pub virgl: bool,
}

/// The filter's default action, as spelled on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    Kill,
    Trap,
    Log,
}

impl From<ActionArg> for DefaultAction {
    fn from(a: ActionArg) -> DefaultAction {
        match a {
            ActionArg::Kill => DefaultAction::KillProcess,
            ActionArg::Trap => DefaultAction::Trap,
            ActionArg::Log => DefaultAction::Log,
        }
    }
}

/// Everything the report shows.
#[derive(Debug, Serialize)]
pub struct SandboxReport {
    pub gpu_binary: PathBuf,
    pub pid: i32,
    pub policy: PolicySummary,
    pub namespaces: Vec<NamespaceLink>,
    pub uid_map: String,
    pub gid_map: String,
    pub status: ProcStatus,
    pub landlock_enforced: bool,
    pub renderer: String,
    /// The cgroup directory the process was put in, or [`NO_CGROUP`].
    pub cgroup: String,
    /// What the process sees from inside.
    pub inside: SandboxView,
}

/// The policy the filter was compiled from.
#[derive(Debug, Serialize)]
pub struct PolicySummary {
    pub name: String,
    pub path: PathBuf,
    pub syscalls: usize,
    pub action: &'static str,
}

/// Runs the command; returns the exit code.
pub fn main(args: &SandboxReportArgs) -> Result<i32> {
    let config = spawn_config(args)?;
    let mut gpu = GpuProcess::spawn(&config).context("spawning the jailed GPU process")?;
    let inside = gpu
        .request_report()
        .context("asking the GPU process for its view")?;
    let report = SandboxReport {
        gpu_binary: config.jail.program.clone(),
        pid: gpu.pid(),
        policy: PolicySummary {
            name: gpu.policy().name.clone(),
            path: gpu.policy().path.clone(),
            syscalls: gpu.policy().syscall_count,
            action: policy::action_name(gpu.policy().action),
        },
        namespaces: gpu.confinement().namespaces.clone(),
        uid_map: gpu.confinement().uid_map.clone(),
        gid_map: gpu.confinement().gid_map.clone(),
        status: gpu.confinement().status.clone(),
        landlock_enforced: gpu.ready_info().landlock_enforced,
        renderer: gpu.ready_info().renderer.clone(),
        cgroup: config
            .jail
            .cgroup
            .as_ref()
            .map_or_else(|| NO_CGROUP.to_string(), |c| c.parent.display().to_string()),
        inside,
    };
    let _ = gpu.tube().send(&ToGpu::Shutdown);
    let exit = gpu.wait_timeout(std::time::Duration::from_secs(5))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
        if let Some(exit) = exit {
            println!("GPU process {exit} after the report.");
        }
    }
    Ok(0)
}

fn spawn_config(args: &SandboxReportArgs) -> Result<GpuSpawnConfig> {
    let gpu_binary = crate::gpu_process::ray_gpu_binary(args.gpu_binary.as_deref())?;
    let policy = match (&args.policy, &args.policy_dir, &args.gpu) {
        (Some(path), _, _) => path.clone(),
        (None, Some(dir), None) => dir.join(policy::SOFTWARE_POLICY),
        (None, _, Some(gpu)) => policy::policy_for_gpu(Some(gpu))?,
        (None, None, None) => policy::default_policy()?,
    };
    let mut devices = args.devices.clone();
    devices.extend(args.gpu.iter().cloned());
    let mut config = GpuSpawnConfig::new(&gpu_binary, &policy, &devices);
    config.action = args.action.into();
    if args.virgl || args.gpu.is_some() {
        config.renderer = control::messages::RendererMode::Virgl;
    }
    config.required_gpu = args.gpu.clone();
    if let (Some(uid), Some(gid)) = (args.uid, args.gid) {
        config.jail.ids = JailIds {
            uid,
            gid,
            supplementary_gids: Vec::new(),
        };
    }
    if args.child_stderr {
        config.jail.stderr = ChildStderr::Inherit;
    }
    Ok(config)
}

/// The human-readable report.
pub fn render_text(r: &SandboxReport) -> String {
    let mut out = String::new();
    let yes = |b: bool| if b { "yes" } else { "NO" };
    let s = &r.status;
    let _ = writeln!(
        out,
        "GPU process {} (pid {}, pid {} inside)",
        r.gpu_binary.display(),
        r.pid,
        s.pid_inside().unwrap_or(-1)
    );
    let _ = writeln!(out, "\nConfinement (from /proc/{}/status)", r.pid);
    let _ = writeln!(
        out,
        "  seccomp           {} ({} filter(s))",
        seccomp_mode(s.seccomp),
        s.seccomp_filters
    );
    let _ = writeln!(
        out,
        "  policy            {} ({} syscalls, default action {}) from {}",
        r.policy.name,
        r.policy.syscalls,
        r.policy.action,
        r.policy.path.display()
    );
    let _ = writeln!(out, "  no_new_privs      {}", yes(s.no_new_privs));
    let _ = writeln!(
        out,
        "  capabilities      eff {:016x} prm {:016x} inh {:016x} bnd {:016x} amb {:016x}",
        s.cap_eff, s.cap_prm, s.cap_inh, s.cap_bnd, s.cap_amb
    );
    let _ = writeln!(
        out,
        "  landlock          {}",
        if r.landlock_enforced {
            "enforced"
        } else {
            "not enforced (kernel lacks Landlock)"
        }
    );
    let _ = writeln!(out, "  cgroup            {}", r.cgroup);
    let _ = writeln!(out, "  renderer          {}", r.renderer);
    let _ = writeln!(
        out,
        "  memory            VmRSS {} KiB, VmHWM {} KiB",
        s.vm_rss_kib, s.vm_hwm_kib
    );

    let _ = writeln!(
        out,
        "\nNamespaces        {:<24} {:<24}",
        "GPU process", "rayvmm"
    );
    for ns in &r.namespaces {
        let mark = if ns.is_separate() { "own" } else { "SHARED" };
        let _ = writeln!(
            out,
            "  {:<8} {:<6} {:<24} {:<24}",
            ns.kind, mark, ns.child, ns.supervisor
        );
    }
    let _ = writeln!(out, "\nIdentity (inside -> host, count)");
    let _ = writeln!(out, "  uid_map  {}", r.uid_map.trim());
    let _ = writeln!(out, "  gid_map  {}", r.gid_map.trim().replace('\n', "; "));
    let _ = writeln!(
        out,
        "  inside   uid {} gid {}; host uids {:?} gids {:?}",
        r.inside.uid, r.inside.gid, s.uids, s.gids
    );

    let _ = writeln!(out, "\nDescriptors inside");
    for (fd, target) in &r.inside.fds {
        let _ = writeln!(out, "  {fd:>3}  {target}");
    }
    let _ = writeln!(out, "\nResource limits inside (soft / hard)");
    for (name, soft, hard) in &r.inside.rlimits {
        let _ = writeln!(
            out,
            "  {:<18} {:>14} / {}",
            name,
            limit(*soft),
            limit(*hard)
        );
    }
    let _ = writeln!(
        out,
        "\nCgroup membership inside\n  {}",
        r.inside.cgroup.trim().replace('\n', "\n  ")
    );
    render_tree(&mut out, &r.inside);
    out
}

fn render_tree(out: &mut String, view: &SandboxView) {
    let depth = |p: &str| Path::new(p).components().count() - 1;
    let writable = view.files.iter().filter(|f| f.writable).count();
    let _ = writeln!(
        out,
        "\nFile tree inside ({} paths, {} writable; listed to depth {}, deeper ones counted)",
        view.files.len(),
        writable,
        TEXT_TREE_DEPTH
    );
    for file in view
        .files
        .iter()
        .filter(|f| depth(&f.path) <= TEXT_TREE_DEPTH)
    {
        let below = if file.kind == 'd' && depth(&file.path) == TEXT_TREE_DEPTH {
            let prefix = format!("{}/", file.path);
            let n = view
                .files
                .iter()
                .filter(|f| f.path.starts_with(&prefix))
                .count();
            format!("  [{n} below]")
        } else {
            String::new()
        };
        let rw = if file.writable { "rw" } else { "ro" };
        let _ = writeln!(out, "  {} {}  {}{}", file.kind, rw, file.path, below);
    }
}

fn seccomp_mode(mode: u32) -> &'static str {
    match mode {
        0 => "OFF",
        1 => "strict",
        2 => "filter",
        _ => "unknown",
    }
}

fn limit(value: Option<u64>) -> String {
    value.map_or_else(|| "unlimited".to_string(), |v| v.to_string())
}
