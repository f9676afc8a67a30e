//! What the process can see from inside its jail, collected with the filter on, for
//! `ToGpu::Report`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use control::messages::{SandboxView, VisibleFile};

/// Deepest directory level walked below `/`.
const MAX_DEPTH: usize = 8;
/// Most paths listed; the walk stops there (about 100 bytes each on the tube, whose messages
/// are capped at 1 MiB).
const MAX_ENTRIES: usize = 8_000;

const RLIMITS: &[(&str, libc::__rlimit_resource_t)] = &[
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
];

/// Collects the view: the file tree, descriptors, limits, cgroup and ids.
pub fn collect() -> SandboxView {
    let mut files = Vec::new();
    walk(Path::new("/"), 0, &mut files);
    SandboxView {
        files,
        fds: descriptors(),
        rlimits: rlimits(),
        cgroup: std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        uid: unsafe { libc::getuid() },
        gid: unsafe { libc::getgid() },
    }
}

/// Depth-first listing, skipping the per-process directories of /proc (numbers, `self`,
/// `thread-self` are listed but not entered).
fn walk(dir: &Path, depth: usize, out: &mut Vec<VisibleFile>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        if out.len() >= MAX_ENTRIES {
            return;
        }
        let path = entry.path();
        let kind = entry.file_type().map(kind_of).unwrap_or('?');
        out.push(VisibleFile {
            path: path.to_string_lossy().into_owned(),
            kind,
            writable: writable(&path),
        });
        let per_process = dir == Path::new("/proc");
        if kind == 'd' && depth < MAX_DEPTH && !per_process {
            walk(&path, depth + 1, out);
        }
    }
}

fn kind_of(t: std::fs::FileType) -> char {
    use std::os::unix::fs::FileTypeExt;
    match () {
        _ if t.is_dir() => 'd',
        _ if t.is_symlink() => 'l',
        _ if t.is_file() => 'f',
        _ if t.is_char_device() => 'c',
        _ if t.is_block_device() => 'b',
        _ if t.is_socket() => 's',
        _ if t.is_fifo() => 'p',
        _ => '?',
    }
}

/// Whether this process could write `path` (mount and permissions both), per access(2).
fn writable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Open descriptors and what they point at (the listing's own descriptor is gone by the time
/// the links are read, and is left out).
fn descriptors() -> Vec<(i32, String)> {
    let numbers: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    numbers
        .into_iter()
        .filter_map(|fd| {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect()
}

fn rlimits() -> Vec<(String, Option<u64>, Option<u64>)> {
    let finite = |v: libc::rlim64_t| (v != libc::RLIM64_INFINITY).then_some(v);
    RLIMITS
        .iter()
        .filter_map(|&(name, resource)| {
            let mut limit = libc::rlimit64 {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `limit` is a valid rlimit64 for the kernel to fill; checked below.
            let rc = unsafe { libc::getrlimit64(resource, &mut limit) };
            (rc == 0).then(|| {
                (
                    name.to_string(),
                    finite(limit.rlim_cur),
                    finite(limit.rlim_max),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimits_name_every_limit_asked_for() {
        let limits = rlimits();

        let names: Vec<&str> = limits.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, RLIMITS.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    }

    #[test]
    fn descriptors_include_standard_input() {
        let fds = descriptors();

        assert!(fds.iter().any(|(fd, _)| *fd == 0), "{fds:?}");
    }
}
