//! Escape-probe requests and reports carried on the control tube. Only a `probe` build of
//! ray-gpu acts on them; a release build answers with an error.

use serde::{Deserialize, Serialize};

/// What the probe should attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ProbeRequest {
    /// A named escape technique.
    Technique(String),
    /// Raw system calls, run in order.
    RawSyscalls(Vec<RawSyscall>),
}

/// One raw system call: number and six arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawSyscall {
    pub nr: i64,
    pub args: [u64; 6],
}

/// What an attempt came to, as seen by the probe itself (a kill is seen by the supervisor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeOutcome {
    /// The call or technique succeeded, with what it returned or found.
    Succeeded(String),
    /// It failed with this errno.
    Errno(i32),
}

/// The probe's answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    pub outcomes: Vec<ProbeOutcome>,
}
