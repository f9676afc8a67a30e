//! `ray-seccomp`: compile, audit, check, diff and learn minijail-syntax seccomp policies.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use seccomp::{audit, diff, learn, DefaultAction, Policy, SeccompData};

/// Compile, audit, check, diff and learn seccomp policies (minijail syntax, x86_64).
#[derive(Parser)]
#[command(name = "ray-seccomp", version)]
struct Cli {
    /// Print machine-readable JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a policy to the raw sock_filter array seccomp(2) takes.
    Compile {
        /// The policy file.
        policy: PathBuf,
        /// Where to write the program.
        #[arg(short, long)]
        output: PathBuf,
        /// What happens to syscalls the policy does not allow.
        #[arg(long, value_enum, default_value_t = Default::Kill)]
        default_action: Default,
        /// Directory to look up `@include`d files in (repeatable).
        #[arg(short = 'I', long = "include")]
        include: Vec<PathBuf>,
    },
    /// List every allowed syscall with its constraints and a risk rating.
    Audit {
        /// The policy files.
        #[arg(required = true)]
        policies: Vec<PathBuf>,
        /// Directory to look up `@include`d files in (repeatable).
        #[arg(short = 'I', long = "include")]
        include: Vec<PathBuf>,
    },
    /// Run the compiled program on one syscall: exit 0 if it runs, 1 if not, 2 on errors.
    Check {
        /// The policy file.
        policy: PathBuf,
        /// Syscall name or number.
        syscall: String,
        /// Arguments: numbers or constant expressions (`AF_INET`, `PROT_READ|PROT_EXEC`).
        args: Vec<String>,
        /// What happens to syscalls the policy does not allow.
        #[arg(long, value_enum, default_value_t = Default::Kill)]
        default_action: Default,
        /// Directory to look up `@include`d files in (repeatable).
        #[arg(short = 'I', long = "include")]
        include: Vec<PathBuf>,
    },
    /// What became allowed or forbidden going from policy A to policy B.
    Diff {
        /// The old policy.
        a: PathBuf,
        /// The new policy.
        b: PathBuf,
        /// Directory to look up `@include`d files in (repeatable).
        #[arg(short = 'I', long = "include")]
        include: Vec<PathBuf>,
    },
    /// Write the minimal policy for what an `strace -f` log shows.
    Learn {
        /// The strace log.
        trace: PathBuf,
        /// An existing policy: list its rules that the trace never needed.
        #[arg(long)]
        existing: Option<PathBuf>,
        /// Directory to look up `@include`d files of the existing policy in (repeatable).
        #[arg(short = 'I', long = "include")]
        include: Vec<PathBuf>,
    },
}

/// `--default-action` values.
#[derive(Clone, Copy, ValueEnum)]
enum Default {
    /// Kill the process.
    Kill,
    /// Send SIGSYS (trap-and-report).
    Trap,
    /// Allow and log (learning only).
    Log,
}

impl From<Default> for DefaultAction {
    fn from(d: Default) -> DefaultAction {
        match d {
            Default::Kill => DefaultAction::KillProcess,
            Default::Trap => DefaultAction::Trap,
            Default::Log => DefaultAction::Log,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ray-seccomp: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let json = cli.json;
    match cli.command {
        Command::Compile {
            policy,
            output,
            default_action,
            include,
        } => compile(&policy, &output, default_action.into(), &include, json),
        Command::Audit { policies, include } => audit_all(&policies, &include, json),
        Command::Check {
            policy,
            syscall,
            args,
            default_action,
            include,
        } => check(
            &policy,
            &syscall,
            &args,
            default_action.into(),
            &include,
            json,
        ),
        Command::Diff { a, b, include } => diff_policies(&a, &b, &include, json),
        Command::Learn {
            trace,
            existing,
            include,
        } => learn_policy(&trace, existing.as_deref(), &include),
    }
}

fn load(path: &Path, include: &[PathBuf]) -> Result<Policy> {
    Policy::from_file(path, include).with_context(|| format!("loading policy {}", path.display()))
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    emit(&(text + "\n"))
}

/// Writes to stdout, turning a closed pipe into an error instead of a panic.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to standard output")
}

fn compile(
    path: &Path,
    output: &Path,
    default: DefaultAction,
    include: &[PathBuf],
    json: bool,
) -> Result<ExitCode> {
    let policy = load(path, include)?;
    let program = policy
        .compile(default)
        .with_context(|| format!("compiling {}", path.display()))?;
    fs::write(output, seccomp::bpf_to_bytes(&program))
        .with_context(|| format!("writing {}", output.display()))?;
    match json {
        true => print_json(&serde_json::json!({
            "policy": path, "output": output, "instructions": program.len(),
        }))?,
        false => emit(&format!(
            "{}: {} instructions written to {}\n",
            path.display(),
            program.len(),
            output.display()
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_all(paths: &[PathBuf], include: &[PathBuf], json: bool) -> Result<ExitCode> {
    let mut reports = Vec::new();
    for path in paths {
        let policy = load(path, include)?;
        let report =
            audit::audit(&policy).with_context(|| format!("compiling {}", path.display()))?;
        reports.push(report);
    }
    match json {
        true => print_json(&reports)?,
        false => emit(&reports.iter().map(audit_table).collect::<String>())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_table(report: &audit::Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "== {}", report.policy);
    let _ = writeln!(out, "{:<8} {:<22} CONSTRAINTS", "RISK", "SYSCALL");
    for s in report.syscalls.iter().filter(|s| s.allowed) {
        let constraints: Vec<&str> = s
            .constraints
            .iter()
            .map(|c| c.rsplit_once(": ").map_or(c.as_str(), |(_, text)| text))
            .collect();
        let _ = writeln!(
            out,
            "{:<8} {:<22} {}",
            s.risk,
            s.name,
            constraints.join(" ; ")
        );
    }
    let denied: Vec<String> = report
        .syscalls
        .iter()
        .filter(|s| !s.allowed)
        .map(|s| format!("{} ({})", s.name, s.otherwise))
        .collect();
    if !denied.is_empty() {
        let _ = writeln!(out, "named but never allowed: {}", denied.join(", "));
    }
    let _ = writeln!(out, "\nFINDINGS");
    for f in &report.findings {
        let _ = writeln!(out, "{:<8} {:<22} {}", f.risk, f.syscall, f.reason);
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\nsummary: {} syscalls named, {} allowed; findings: {} high, {} medium, {} low\n",
        s.syscalls, s.allowed, s.high, s.medium, s.low
    );
    out
}

fn check(
    path: &Path,
    syscall: &str,
    args: &[String],
    default: DefaultAction,
    include: &[PathBuf],
    json: bool,
) -> Result<ExitCode> {
    if args.len() > 6 {
        bail!("a syscall has at most 6 arguments, {} given", args.len());
    }
    let nr = seccomp::syscall_number(syscall)
        .or_else(|| syscall.parse::<i64>().ok())
        .ok_or_else(|| anyhow!("unknown syscall `{syscall}`"))?;
    let mut values = [0u64; 6];
    for (i, text) in args.iter().enumerate() {
        values[i] = seccomp::parse_value(text, &format!("argument {i}"))
            .with_context(|| format!("argument {i} `{text}`"))?;
    }
    let policy = load(path, include)?;
    let program = policy
        .compile(default)
        .with_context(|| format!("compiling {}", path.display()))?;
    let action = seccomp::check(&program, &SeccompData::x86_64(nr, values))
        .context("running the compiled program")?;
    let name = seccomp::syscall_name(nr).unwrap_or("?");
    match json {
        true => print_json(&serde_json::json!({
            "syscall": name, "nr": nr, "args": values, "action": action.to_string(), "runs": action.runs(),
        }))?,
        false => {
            let shown: Vec<String> = values[..args.len()]
                .iter()
                .map(|v| format!("{v:#x}"))
                .collect();
            emit(&format!("{name}({}) -> {action}\n", shown.join(", ")))?;
        }
    }
    Ok(match action.runs() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

fn diff_policies(a: &Path, b: &Path, include: &[PathBuf], json: bool) -> Result<ExitCode> {
    let old = load(a, include)?;
    let new = load(b, include)?;
    let report = diff::diff(&old, &new).context("compiling the policies")?;
    match json {
        true => print_json(&report)?,
        false => emit(&report.to_string())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn learn_policy(trace: &Path, existing: Option<&Path>, include: &[PathBuf]) -> Result<ExitCode> {
    let text = fs::read_to_string(trace).with_context(|| format!("reading {}", trace.display()))?;
    let observed = learn::parse_strace(&text);
    let existing = existing.map(|p| load(p, include)).transpose()?;
    emit(&learn::policy_text(&observed, existing.as_ref()))?;
    Ok(ExitCode::SUCCESS)
}
