//! rayvmm: the supervisor. It builds the GPU process's jail, spawns and watches it, and runs
//! guests on it.

pub mod engine;
pub mod gpu_process;
pub mod policy;
pub mod probe;
pub mod recording;
pub mod relay;
pub mod replay;
pub mod run;
pub mod sandbox_report;
pub mod vm;
pub mod vm_config;
