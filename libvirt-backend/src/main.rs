//! `ray-gpu-backend`: see the library's documentation and `--help`.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context};
use jail::{render_nodes, DRI_DIR};
use libvirt_backend::args::{self, Command, Frontend, ServeOptions, USAGE};
use libvirt_backend::capabilities;
use libvirt_backend::frontend::{self, Listening};
use libvirt_backend::locate::{self, RAY_GPU_ENV};
use libvirt_backend::report::{self, say};
use libvirt_backend::supervisor::{Backend, BackendConfig, Signals};

/// How often a wait for QEMU's connection looks for a stop signal.
const ACCEPT_TICK: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    report::init();
    let command = match args::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            say(&format!("{e} (see --help)"));
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Help => {
            print!("{USAGE}");
            Ok(0)
        }
        Command::PrintCapabilities => {
            let has_node = !render_nodes(Path::new(DRI_DIR)).is_empty();
            println!("{}", capabilities::document(has_node));
            Ok(0)
        }
        Command::Serve(options) => serve(&options),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            say(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// QEMU's connection before it is served.
enum Pending {
    Connected(UnixStream),
    Listening(Listening),
}

/// Checks everything it needs, starts ray-gpu in its jail, then serves QEMU until the end;
/// returns the exit status.
fn serve(options: &ServeOptions) -> anyhow::Result<u8> {
    let exe = std::env::current_exe().context("locating this program")?;
    let ray_gpu = locate::ray_gpu(
        options.ray_gpu.as_deref(),
        std::env::var_os(RAY_GPU_ENV).as_deref(),
        &exe,
    )?;
    let policy = locate::policy(&exe, locate::policy_dir_env_set())?;
    let devices = match &options.render_node {
        Some(node) => {
            check_render_node(node)?;
            vec![node.clone()]
        }
        None => render_nodes(Path::new(DRI_DIR)),
    };
    // This supervisor never needs to gain privileges; nothing it runs may either.
    nix::sys::prctl::set_no_new_privs().context("setting no_new_privs")?;

    let (events, queue) = mpsc::channel();
    let signals = Signals::listen(events.clone())?;
    let pending = match &options.frontend {
        Frontend::Fd(fd) => Pending::Connected(frontend::inherited(*fd)?),
        Frontend::SocketPath(path) => Pending::Listening(frontend::listen(path)?),
    };
    let (relay_end, gpu_end) =
        UnixStream::pair().context("creating ray-gpu's vhost-user socketpair")?;
    let config = BackendConfig {
        ray_gpu,
        policy,
        virgl: options.virgl,
        devices,
        display: Default::default(),
    };
    let backend = Backend::start(&config, gpu_end.into(), events, queue)?;
    say(&format!("GPU: {}", backend.describe()));
    let frontend = match pending {
        Pending::Connected(stream) => stream,
        Pending::Listening(listening) => {
            match listening.accept_one(ACCEPT_TICK, || signals.stop_requested())? {
                Some(stream) => stream,
                None => {
                    say("stopped before QEMU connected");
                    return Ok(0);
                }
            }
        }
    };
    let ending = backend.serve(frontend, relay_end)?;
    say(&ending.describe());
    Ok(ending.exit_code())
}

/// `--render-node` must name a character device.
fn check_render_node(node: &Path) -> anyhow::Result<()> {
    let meta =
        std::fs::metadata(node).with_context(|| format!("--render-node={}", node.display()))?;
    if !meta.file_type().is_char_device() {
        bail!("--render-node={}: not a character device", node.display());
    }
    Ok(())
}
