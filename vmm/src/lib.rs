//! rayvmm: the supervisor. It builds the GPU process's jail, spawns and watches it, and runs
//! guests on it.

pub mod jail;
pub mod probe;
pub mod engine;
pub mod run;
pub mod vm;
pub mod vm_config;
