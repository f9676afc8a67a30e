//! Descriptors the process holds: exactly the ones the supervisor passed, nothing leaked.

use devices::probe_protocol::TechniqueRequest;

use super::sys::{self, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[("list_fds", list_fds)];

/// Every open descriptor as `FD:TYPE`, space-separated in ascending order (e.g. `3:sock`).
fn list_fds(_: &TechniqueRequest) -> Attempt {
    let listed: Vec<String> = sys::open_fds()
        .into_iter()
        .map(|(fd, kind)| format!("{fd}:{kind}"))
        .collect();
    Ok(listed.join(" "))
}
