//! The `rayvmm run` command at the binary's edge: flags and config file in, exit code out.

use anyhow::Context;

use crate::vm;
use crate::vm_config::RunArgs;

/// Runs `rayvmm run` and returns the process exit code (see [`crate::vm`] for the table).
pub fn main(args: &RunArgs) -> anyhow::Result<i32> {
    let config = args.resolve().context("rayvmm run: bad configuration")?;
    let outcome = vm::run(&config).context("rayvmm run")?;
    eprintln!(
        "rayvmm: {} (exit code {})",
        outcome.summary, outcome.exit_code
    );
    Ok(outcome.exit_code)
}
