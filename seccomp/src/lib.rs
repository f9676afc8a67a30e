//! minijail's seccomp policy language for x86_64: parser, compiler (through seccompiler),
//! a BPF interpreter to check compiled programs, and the analyses behind `ray-seccomp`
//! (audit, diff, learning a policy from an strace log).
//!
//! ```no_run
//! use seccomp::{Policy, DefaultAction};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::from_file("gpu.policy".as_ref(), &[])?;
//! let program = policy.compile(DefaultAction::KillProcess)?;
//! // In the child: seccompiler::apply_filter(&program)?;
//! let wire = seccomp::bpf_to_words(&program); // Vec<u64> for a JSON tube
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod action;
pub mod audit;
mod bpf;
mod compiler;
pub mod diff;
mod error;
mod generated;
pub mod learn;
mod lexer;
mod parser;
mod policy;
mod probe;
mod tables;

pub use action::{Action, DefaultAction};
pub use bpf::{
    bpf_from_bytes, bpf_from_words, bpf_to_bytes, bpf_to_words, run as run_bpf, BpfError,
    SeccompData, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT,
};
pub use error::{CompileError, Location, PolicyError};
pub use parser::parse_value;
pub use policy::{Clause, Comparison, Definition, Op, Policy, SyscallRule};
pub use seccompiler::{sock_filter, BpfProgram};
pub use tables::{constant, syscall_name, syscall_number};

impl Policy {
    /// Compiles the policy to a BPF program for x86_64; syscalls the policy does not allow
    /// get `default`. Foreign architectures and x32 syscalls always kill the process.
    pub fn compile(&self, default: DefaultAction) -> Result<BpfProgram, CompileError> {
        compiler::compile(self, default)
    }
}

/// Runs `program` on `data` and decodes the verdict.
pub fn check(program: &[sock_filter], data: &SeccompData) -> Result<Action, BpfError> {
    bpf::run(program, data).map(Action::from_ret)
}
