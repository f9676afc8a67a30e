//! rayvmm: the supervisor's command line.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rayvmm", about = "RayOS GPU sandbox supervisor")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a virtual machine whose GPU is the jailed ray-gpu (QEMU engine).
    Run(vmm::vm_config::RunArgs),
    /// Attempt a named escape technique in a jailed probe build of ray-gpu (or --list them).
    Probe(vmm::probe::ProbeArgs),
    /// Run a JSON file of raw system calls, each in a fresh jailed probe process.
    ProbeSyscalls(vmm::probe::ProbeSyscallsArgs),
    /// Spawn the jailed GPU process and print what it is confined to.
    SandboxReport(vmm::sandbox_report::SandboxReportArgs),
    /// Drive the jailed ray-gpu with a recording (from `run --record`) and check its frames.
    Replay(vmm::replay::ReplayArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => vmm::run::main(&args),
        Command::Probe(args) => vmm::probe::main_probe(&args),
        Command::ProbeSyscalls(args) => vmm::probe::main_probe_syscalls(&args),
        Command::SandboxReport(args) => vmm::sandbox_report::main(&args),
        Command::Replay(args) => vmm::replay::main(&args),
    }
    .unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        2
    });
    std::process::exit(code);
}
