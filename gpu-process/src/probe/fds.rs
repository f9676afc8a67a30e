//! Descriptors the process holds: exactly the ones the supervisor passed, nothing leaked.

use control::probe::TechniqueRequest;

use super::sys::{self, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[("list_fds", list_fds)];

/// Every open descriptor as `FD:TYPE`, space-separated in ascending order (e.g. `3:sock`);
/// an anonymous inode (eventfd, timerfd ...) is named by its `/proc/self/fd` link instead
/// (`4:anon_inode:[eventfd]`), since its type says nothing.
fn list_fds(_: &TechniqueRequest) -> Attempt {
    let listed: Vec<String> = sys::open_fds()
        .into_iter()
        .map(|(fd, kind)| match kind {
            "other" => format!("{fd}:{}", fd_link(fd).unwrap_or_else(|_| kind.into())),
            _ => format!("{fd}:{kind}"),
        })
        .collect();
    Ok(listed.join(" "))
}

/// What `/proc/self/fd/FD` points at.
fn fd_link(fd: i32) -> Result<String, i32> {
    let link = sys::path(&format!("/proc/self/fd/{fd}"));
    let mut target = [0u8; 256];
    // SAFETY: `link` is NUL-terminated and `target` is writable for the length passed.
    let len = unsafe {
        sys::syscall(
            libc::SYS_readlink,
            &[
                sys::addr_of_cstr(&link),
                sys::addr_of_mut(&mut target),
                target.len() as u64,
            ],
        )
    }?;
    Ok(String::from_utf8_lossy(&target[..len as usize]).into_owned())
}
