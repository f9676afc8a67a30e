//! The few system-call helpers every technique shares.

use std::ffi::CString;
use std::io;

use control::probe::TechniqueRequest;

/// What a technique came to: what it reached, or the errno of the step that failed.
pub(super) type Attempt = Result<String, i32>;

/// A named technique.
pub(super) type Technique = fn(&TechniqueRequest) -> Attempt;

/// The calling thread's errno after a failed call.
pub(super) fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Makes system call `nr` with up to six arguments (missing ones are 0) and returns its
/// result or its errno.
///
/// # Safety
/// Every argument the kernel treats as an address must point at memory valid for what that
/// call does with it, and the call's effect on this process (unmapping, replacing the image,
/// forking on the current stack) must be one the caller handles.
pub(super) unsafe fn syscall(nr: i64, args: &[u64]) -> Result<i64, i32> {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    // SAFETY: the caller vouches for the arguments (see this function's contract).
    let rc = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(rc)
    }
}

/// Makes a system call whose arguments are plain numbers, never addresses, and which neither
/// unmaps memory nor forks: the kernel reads and writes none of this process's memory.
pub(super) fn scalar(nr: i64, args: &[u64]) -> Result<i64, i32> {
    // SAFETY: no argument is an address (this function's contract), so the kernel touches
    // none of our memory; callers do not pass calls that change the address space.
    unsafe { syscall(nr, args) }
}

/// Converts a signed value (an fd, a pid, `-1`) to the register form a system call takes.
pub(super) fn reg(value: i64) -> u64 {
    value as u64
}

/// A path as a C string; the probe's own paths never hold a NUL byte.
pub(super) fn path(text: &str) -> CString {
    CString::new(text).expect("probe paths hold no NUL byte")
}

/// The address of a C string, for a system call argument.
pub(super) fn addr_of_cstr(text: &CString) -> u64 {
    text.as_ptr() as u64
}

/// The address of a value, for a system call argument.
pub(super) fn addr_of<T>(value: &T) -> u64 {
    value as *const T as u64
}

/// The address of a mutable value, for a system call that writes into it.
pub(super) fn addr_of_mut<T>(value: &mut T) -> u64 {
    value as *mut T as u64
}

/// Opens `text` with `flags` (close-on-exec added) and mode 0600, returning the descriptor.
pub(super) fn open(text: &str, flags: i32) -> Result<i32, i32> {
    let name = path(text);
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let fd = unsafe {
        syscall(
            libc::SYS_openat,
            &[
                reg(libc::AT_FDCWD.into()),
                addr_of_cstr(&name),
                reg((flags | libc::O_CLOEXEC).into()),
                0o600,
            ],
        )
    }?;
    Ok(fd as i32)
}

/// Closes a descriptor a technique opened; a failure to close changes no outcome.
pub(super) fn close(fd: i64) {
    let _ = scalar(libc::SYS_close, &[reg(fd)]);
}

/// Opens `text` and reports success as what the technique reached.
pub(super) fn open_reached(text: &str, flags: i32) -> Attempt {
    let fd = open(text, flags)?;
    close(fd.into());
    Ok(format!("opened {text}"))
}

/// Makes a call with plain-number arguments and reports its return value.
pub(super) fn scalar_reached(nr: i64, args: &[u64]) -> Attempt {
    scalar(nr, args).map(|rc| format!("returned {rc}"))
}

/// The file type of an open descriptor, or `None` if it is not open.
pub(super) fn fd_kind(fd: i32) -> Option<&'static str> {
    // SAFETY: stat is plain data; all-zero is a valid value for the kernel to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat buffer for the duration of the call.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some(match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => "sock",
        libc::S_IFCHR => "chr",
        libc::S_IFBLK => "blk",
        libc::S_IFREG => "reg",
        libc::S_IFDIR => "dir",
        libc::S_IFIFO => "fifo",
        libc::S_IFLNK => "lnk",
        _ => "other",
    })
}

/// Highest descriptor number [`open_fds`] looks at, exclusive. Fixed, not read from
/// RLIMIT_NOFILE: the policies do not allow prlimit64, and the jail's limit is lower.
const FD_SCAN_LIMIT: i32 = 1 << 16;

/// Every open descriptor below [`FD_SCAN_LIMIT`], with its type.
pub(super) fn open_fds() -> Vec<(i32, &'static str)> {
    (0..FD_SCAN_LIMIT)
        .filter_map(|fd| fd_kind(fd).map(|kind| (fd, kind)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_reports_enoent_for_a_missing_path() {
        let result = open("/nonexistent/rayos-probe", libc::O_RDONLY);

        assert_eq!(result, Err(libc::ENOENT));
    }

    #[test]
    fn fd_kind_is_none_for_a_closed_descriptor() {
        assert_eq!(fd_kind(-1), None);
    }

    #[test]
    fn open_fds_lists_a_socket_this_process_holds() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&a);

        let fds = open_fds();

        assert!(fds.contains(&(fd, "sock")), "{fds:?}");
    }
}
