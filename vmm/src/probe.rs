//! Escape probes: spawn a jailed probe build of ray-gpu, have it attempt a technique or a list
//! of raw system calls, and report what happened.
//!
//! Each attempt runs in a fresh GPU process (a technique may kill it, and one attempt must not
//! see what an earlier one did). What happened is either what the probe reported (success, an
//! errno, a refusal) or how the process died (SIGSYS from the filter, SIGXFSZ, an exit code),
//! from the jail's exit report.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use control::messages::{FromGpu, RendererMode, ToGpu};
use control::probe::{
    technique, ProbeOutcome, ProbeRequest, RawSyscall, TechniqueRequest, TECHNIQUES,
};
use control::tube::TubeError;
use seccomp::DefaultAction;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::gpu_process::{ExitReport, GpuError, GpuProcess, GpuSpawnConfig};
use crate::policy;
use jail::ExitStatus;

/// How long one probe may take from request to answer (or death).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a dying probe process gets to be reaped after its tube closes.
const DEATH_GRACE: Duration = Duration::from_secs(5);

/// Why a probe could not be carried out (as opposed to what it found).
#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("unknown technique {0:?} (rayvmm probe --list shows them)")]
    UnknownTechnique(String),
    #[error("spawning the jailed probe process: {0}")]
    Spawn(#[source] Box<GpuError>),
    #[error("talking to the probe process: {0}")]
    Request(#[source] Box<GpuError>),
    #[error("the probe process answered {0} instead of a probe report")]
    Unexpected(String),
    #[error("the probe answered {got} outcomes for {asked} requests")]
    Count { got: usize, asked: usize },
}

/// Where the probe build is and what jails it.
#[derive(Debug, Clone)]
pub struct ProbeSetup {
    /// The probe build of ray-gpu (`cargo build -p gpu-process --features probe`).
    pub gpu_binary: PathBuf,
    /// The seccomp policy its filter is compiled from.
    pub policy: PathBuf,
    /// An abstract unix socket listening on the host, for `connect_abstract_unix`.
    pub abstract_socket: Option<String>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Trap refused calls and report which one (diagnosis) instead of killing outright.
    pub trap: bool,
    /// The renderer brought up before the filter (the probe then attacks from a process
    /// that holds the GL stack, as in production).
    pub renderer: RendererMode,
    /// The GPU given to the process (its nodes in the jail, GL required on it).
    pub gpu: Option<PathBuf>,
}

/// What one attempt came to, as observed from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The probe reported this outcome and survived.
    Reported(ProbeOutcome),
    /// The process died before answering; in trap mode, with the call its filter refused.
    Died {
        status: ExitStatus,
        blocked: Option<String>,
    },
    /// Neither an answer nor a death within the timeout; the process was killed.
    TimedOut,
}

impl Observed {
    /// The short label results are compared by: `ok`, an errno name (`EPERM`), a signal name
    /// (`SIGSYS`), `exit N`, `refused` or `timeout`.
    pub fn label(&self) -> String {
        match self {
            Observed::Reported(ProbeOutcome::Succeeded(_)) => "ok".into(),
            Observed::Reported(ProbeOutcome::Errno(n)) => errno_name(*n),
            Observed::Reported(ProbeOutcome::Refused(_)) => "refused".into(),
            // In trap mode the process exits after reporting; kill mode would have been SIGSYS.
            Observed::Died {
                blocked: Some(_), ..
            } => signal_name(libc::SIGSYS),
            Observed::Died {
                status: ExitStatus::Signaled(sig),
                ..
            } => signal_name(*sig),
            Observed::Died {
                status: ExitStatus::Exited(code),
                ..
            } => format!("exit {code}"),
            Observed::TimedOut => "timeout".into(),
        }
    }

    /// What the probe said beyond the label (what it reached, why it refused).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Observed::Reported(ProbeOutcome::Succeeded(d))
            | Observed::Reported(ProbeOutcome::Refused(d))
            | Observed::Died {
                blocked: Some(d), ..
            } => Some(d),
            _ => None,
        }
    }
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail() {
            Some(detail) => write!(f, "{} ({detail})", self.label()),
            None => write!(f, "{}", self.label()),
        }
    }
}

/// The symbolic name of an errno (`EPERM`), or `errno N` for one the table lacks.
pub fn errno_name(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => format!("errno {errno}"),
        known => format!("{known:?}"),
    }
}

/// The name of a signal (`SIGSYS`), or `signal N`.
pub fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

/// Attempts the technique `name` in a fresh jailed probe process.
pub fn run_technique(setup: &ProbeSetup, name: &str) -> Result<Observed, ProbeError> {
    technique(name).ok_or_else(|| ProbeError::UnknownTechnique(name.into()))?;
    let request = ProbeRequest::Technique(TechniqueRequest {
        name: name.into(),
        supervisor_pid: std::process::id() as i32,
        abstract_socket: setup.abstract_socket.clone(),
    });
    attempt(setup, &request)
}

/// Makes one raw system call in a fresh jailed probe process.
pub fn run_raw_syscall(setup: &ProbeSetup, call: RawSyscall) -> Result<Observed, ProbeError> {
    attempt(setup, &ProbeRequest::RawSyscalls(vec![call]))
}

fn attempt(setup: &ProbeSetup, request: &ProbeRequest) -> Result<Observed, ProbeError> {
    let devices: Vec<PathBuf> = setup.gpu.iter().cloned().collect();
    let mut config = GpuSpawnConfig::new(&setup.gpu_binary, &setup.policy, &devices);
    config.request_timeout = setup.timeout;
    config.renderer = setup.renderer;
    config.required_gpu = setup.gpu.clone();
    config.ready_timeout = Duration::from_secs(60);
    if setup.trap {
        config.action = DefaultAction::Trap;
    }
    let mut process = GpuProcess::spawn(&config).map_err(|e| ProbeError::Spawn(Box::new(e)))?;
    match process.request(&ToGpu::Probe(request.clone())) {
        Ok(FromGpu::Probe(report)) => {
            let mut outcomes = report.outcomes.into_iter();
            match (outcomes.next(), outcomes.len()) {
                (Some(outcome), 0) => Ok(Observed::Reported(outcome)),
                (first, rest) => Err(ProbeError::Count {
                    got: usize::from(first.is_some()) + rest,
                    asked: 1,
                }),
            }
        }
        Ok(FromGpu::BlockedSyscall(_)) | Err(GpuError::Tube(TubeError::Disconnected)) => {
            died(&mut process)
        }
        Err(GpuError::Tube(TubeError::Timeout(_))) => {
            process.kill().map_err(request_failed)?;
            Ok(Observed::TimedOut)
        }
        Ok(other) => Err(ProbeError::Unexpected(format!("{other:?}"))),
        Err(err) => Err(request_failed(err)),
    }
}

fn request_failed(err: GpuError) -> ProbeError {
    ProbeError::Request(Box::new(err))
}

fn died(process: &mut GpuProcess) -> Result<Observed, ProbeError> {
    let exit: Option<ExitReport> = process.wait_timeout(DEATH_GRACE).map_err(request_failed)?;
    match exit {
        Some(exit) => Ok(Observed::Died {
            status: exit.status,
            blocked: exit.blocked.map(|b| format!("refused {b}")),
        }),
        None => process
            .kill()
            .map(|_| Observed::TimedOut)
            .map_err(request_failed),
    }
}

/// One entry of a raw-syscall JSON file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RawCase {
    /// What the entry is called in the results.
    pub name: String,
    /// The system call: its number or its name.
    pub nr: Symbol,
    /// Up to six arguments: numbers (negative ones too) or constant names (`AF_INET`,
    /// `PROT_READ|PROT_EXEC`); missing ones are 0.
    #[serde(default)]
    pub args: Vec<Symbol>,
    /// The expected label: `SIGSYS`, `EPERM`, `ENOSYS`, `ok` ...
    pub expect: String,
}

/// A number, or a name the seccomp crate's tables resolve. A register holds 64 bits, so an
/// argument may be written signed (`-20`) or unsigned (`18446744073709551596`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Symbol {
    Number(i64),
    Unsigned(u64),
    Name(String),
}

/// Why a raw-syscall file could not be used.
#[derive(Debug, Error)]
pub enum RawFileError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{case}: unknown system call {name:?}")]
    UnknownSyscall { case: String, name: String },
    #[error("{case}: unknown constant {name:?}")]
    UnknownConstant { case: String, name: String },
    #[error("{case}: {count} arguments given, at most 6")]
    TooManyArgs { case: String, count: usize },
}

/// Reads a raw-syscall JSON file (an array of [`RawCase`]).
pub fn read_raw_cases(path: &Path) -> Result<Vec<RawCase>, RawFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| RawFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| RawFileError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

impl RawCase {
    /// The call with every name resolved.
    pub fn resolve(&self) -> Result<RawSyscall, RawFileError> {
        let nr = match &self.nr {
            Symbol::Number(n) => *n,
            Symbol::Unsigned(n) => *n as i64,
            Symbol::Name(name) => {
                seccomp::syscall_number(name).ok_or_else(|| RawFileError::UnknownSyscall {
                    case: self.name.clone(),
                    name: name.clone(),
                })?
            }
        };
        if self.args.len() > 6 {
            return Err(RawFileError::TooManyArgs {
                case: self.name.clone(),
                count: self.args.len(),
            });
        }
        let mut args = [0u64; 6];
        for (slot, arg) in args.iter_mut().zip(&self.args) {
            *slot = self.value(arg)?;
        }
        Ok(RawSyscall { nr, args })
    }

    fn value(&self, arg: &Symbol) -> Result<u64, RawFileError> {
        match arg {
            Symbol::Number(n) => Ok(*n as u64),
            Symbol::Unsigned(n) => Ok(*n),
            Symbol::Name(text) => text.split('|').map(str::trim).try_fold(0u64, |acc, name| {
                seccomp::constant(name).map(|v| acc | v).ok_or_else(|| {
                    RawFileError::UnknownConstant {
                        case: self.name.clone(),
                        name: name.into(),
                    }
                })
            }),
        }
    }
}

/// One line of `rayvmm probe-syscalls` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawResult {
    pub name: String,
    pub nr: i64,
    pub outcome: String,
    pub expected: String,
    pub pass: bool,
}

/// Runs every case, each in a fresh jailed process, writing one JSON result per line to
/// `out`; returns whether every outcome was the expected one.
pub fn run_raw_cases(
    setup: &ProbeSetup,
    cases: &[RawCase],
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let calls = cases
        .iter()
        .map(RawCase::resolve)
        .collect::<Result<Vec<_>, _>>()?;
    let mut all_pass = true;
    for (case, call) in cases.iter().zip(calls) {
        let observed =
            run_raw_syscall(setup, call).with_context(|| format!("raw syscall {}", case.name))?;
        let result = RawResult {
            name: case.name.clone(),
            nr: call.nr,
            outcome: observed.label(),
            expected: case.expect.clone(),
            pass: observed.label() == case.expect,
        };
        all_pass &= result.pass;
        writeln!(out, "{}", serde_json::to_string(&result)?)?;
    }
    Ok(all_pass)
}

/// `rayvmm probe`: attempt a named escape technique, or list them.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The technique to attempt.
    #[arg(long, value_name = "NAME", required_unless_present = "list")]
    pub technique: Option<String>,
    /// List every technique with what it does.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub setup: SetupArgs,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `rayvmm probe-syscalls`: run a JSON file of raw system calls, each in a fresh jail.
#[derive(Debug, Clone, Args)]
pub struct ProbeSyscallsArgs {
    /// The JSON file: `[{"name", "nr", "args", "expect"}, ...]`.
    #[arg(value_name = "FILE.json")]
    pub file: PathBuf,
    #[command(flatten)]
    pub setup: SetupArgs,
}

/// What both probe commands need to spawn a probe process.
#[derive(Debug, Clone, Args)]
pub struct SetupArgs {
    /// The probe build of ray-gpu (`cargo build -p gpu-process --features probe
    /// --target-dir target/probe` gives target/probe/debug/ray-gpu).
    #[arg(long, value_name = "PATH")]
    pub gpu_binary: Option<PathBuf>,
    /// The seccomp policy (default: the software-rendering policy).
    #[arg(long, value_name = "PATH")]
    pub policy: Option<PathBuf>,
    /// An abstract unix socket listening on the host (for `connect_abstract_unix`).
    #[arg(long, value_name = "NAME")]
    pub abstract_socket: Option<String>,
    /// Trap refused calls and name the one refused (diagnosis; the label stays SIGSYS).
    #[arg(long)]
    pub trap: bool,
    /// Bring up virglrenderer before the filter, as production does (default: no renderer).
    #[arg(long)]
    pub virgl: bool,
    /// Attack from a process rendering on this GPU (/dev/nvidia0, /dev/dri/renderD128): its
    /// nodes in the jail, virgl up on it, its policy unless --policy names another.
    #[arg(long, value_name = "PATH")]
    pub gpu: Option<PathBuf>,
    /// Seconds one attempt may take.
    #[arg(long, value_name = "SECONDS", default_value_t = PROBE_TIMEOUT.as_secs())]
    pub timeout: u64,
}

impl SetupArgs {
    fn resolve(&self) -> anyhow::Result<ProbeSetup> {
        let Some(gpu_binary) = self.gpu_binary.clone() else {
            bail!(
                "--gpu-binary is required: the probe build of ray-gpu (target/probe/debug/ray-gpu)"
            );
        };
        let policy = match &self.policy {
            Some(path) => path.clone(),
            None => policy::policy_for_gpu(self.gpu.as_deref())?,
        };
        Ok(ProbeSetup {
            gpu_binary,
            policy,
            abstract_socket: self.abstract_socket.clone(),
            timeout: Duration::from_secs(self.timeout),
            trap: self.trap,
            renderer: if self.virgl || self.gpu.is_some() {
                RendererMode::Virgl
            } else {
                RendererMode::None
            },
            gpu: self.gpu.clone(),
        })
    }
}

/// The JSON form of `rayvmm probe --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechniqueResult {
    pub technique: String,
    pub policy: String,
    pub outcome: String,
    pub detail: Option<String>,
}

/// Runs `rayvmm probe`; returns the exit code (0: the attempt was carried out and reported).
pub fn main_probe(args: &ProbeArgs) -> anyhow::Result<i32> {
    if args.list {
        for t in TECHNIQUES {
            println!(
                "{:<34} {:<17} {}",
                t.name,
                format!("{:?}", t.category),
                t.description
            );
        }
        return Ok(0);
    }
    let name = args.technique.as_deref().unwrap_or_default();
    let setup = args.setup.resolve()?;
    let observed = run_technique(&setup, name).with_context(|| format!("probe {name}"))?;
    let result = TechniqueResult {
        technique: name.into(),
        policy: setup.policy.display().to_string(),
        outcome: observed.label(),
        detail: observed.detail().map(str::to_string),
    };
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!("{name}: {observed}");
    }
    Ok(0)
}

/// Runs `rayvmm probe-syscalls`; returns 0 if every call came out as expected, 1 otherwise.
pub fn main_probe_syscalls(args: &ProbeSyscallsArgs) -> anyhow::Result<i32> {
    let setup = args.setup.resolve()?;
    let cases = read_raw_cases(&args.file)?;
    let all_pass = run_raw_cases(&setup, &cases, &mut std::io::stdout().lock())?;
    Ok(if all_pass { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(nr: Symbol, args: Vec<Symbol>) -> RawCase {
        RawCase {
            name: "case".into(),
            nr,
            args,
            expect: "SIGSYS".into(),
        }
    }

    fn died(status: ExitStatus, blocked: Option<&str>) -> Observed {
        Observed::Died {
            status,
            blocked: blocked.map(str::to_string),
        }
    }

    #[test]
    fn raw_case_resolves_names_and_or_combinations() {
        let raw = case(
            Symbol::Name("mmap".into()),
            vec![
                Symbol::Number(0),
                Symbol::Number(4096),
                Symbol::Name("PROT_READ|PROT_EXEC".into()),
                Symbol::Number(-1),
            ],
        );

        let call = raw.resolve().unwrap();

        assert_eq!(
            call,
            RawSyscall {
                nr: libc::SYS_mmap,
                args: [
                    0,
                    4096,
                    (libc::PROT_READ | libc::PROT_EXEC) as u64,
                    u64::MAX,
                    0,
                    0
                ],
            }
        );
    }

    #[test]
    fn raw_case_takes_arguments_written_unsigned_above_i64_max() {
        let json = r#"{"name": "case", "nr": "close", "args": [18446744073709551596, -20],
                       "expect": "EBADF"}"#;

        let call = serde_json::from_str::<RawCase>(json)
            .unwrap()
            .resolve()
            .unwrap();

        assert_eq!(call.args[..2], [(-20i64) as u64, (-20i64) as u64]);
    }

    #[test]
    fn raw_case_names_an_unknown_syscall() {
        let err = case(Symbol::Name("no_such_call".into()), vec![])
            .resolve()
            .unwrap_err();

        assert_eq!(
            err.to_string(),
            "case: unknown system call \"no_such_call\""
        );
    }

    #[test]
    fn raw_case_names_an_unknown_constant() {
        let err = case(Symbol::Number(41), vec![Symbol::Name("AF_NOPE".into())])
            .resolve()
            .unwrap_err();

        assert_eq!(err.to_string(), "case: unknown constant \"AF_NOPE\"");
    }

    #[test]
    fn raw_case_refuses_more_than_six_arguments() {
        let err = case(Symbol::Number(0), vec![Symbol::Number(0); 7])
            .resolve()
            .unwrap_err();

        assert!(
            matches!(err, RawFileError::TooManyArgs { count: 7, .. }),
            "{err}"
        );
    }

    #[test]
    fn observed_labels_name_errnos_signals_and_exits() {
        let table = [
            (
                Observed::Reported(ProbeOutcome::Succeeded("x".into())),
                "ok",
            ),
            (
                Observed::Reported(ProbeOutcome::Errno(libc::EPERM)),
                "EPERM",
            ),
            (
                Observed::Reported(ProbeOutcome::Refused("x".into())),
                "refused",
            ),
            (died(ExitStatus::Signaled(libc::SIGSYS), None), "SIGSYS"),
            (died(ExitStatus::Exited(42), None), "exit 42"),
            (
                died(ExitStatus::Exited(159), Some("refused socket")),
                "SIGSYS",
            ),
            (Observed::TimedOut, "timeout"),
        ];

        let labels: Vec<(String, &str)> =
            table.iter().map(|(o, want)| (o.label(), *want)).collect();

        assert!(labels.iter().all(|(got, want)| got == want), "{labels:?}");
    }

    #[test]
    fn unknown_technique_is_refused_before_spawning() {
        let setup = ProbeSetup {
            gpu_binary: PathBuf::from("/nonexistent"),
            policy: PathBuf::from("/nonexistent"),
            abstract_socket: None,
            timeout: Duration::from_secs(1),
            trap: false,
            renderer: RendererMode::None,
            gpu: None,
        };

        let err = run_technique(&setup, "no_such_technique").unwrap_err();

        assert!(matches!(err, ProbeError::UnknownTechnique(_)), "{err}");
    }
}
