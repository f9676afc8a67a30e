//! rayvmm: the supervisor. It builds the GPU process's jail, spawns and watches it, and runs
//! guests on it.

pub mod probe;
