//! The vhost-user connection to the frontend (QEMU): an inherited socket (`--fd=N`, what
//! libvirt passes) or one accepted on a path (`--socket-path`). Each is checked before use, so
//! a wrong descriptor or path fails at start with a line naming it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{getpeername, getsockopt, sockopt, SockType, UnixAddr};
use nix::sys::stat::{fstat, SFlag};
use thiserror::Error;

/// Why there is no usable frontend connection.
#[derive(Debug, Error)]
pub enum FrontendError {
    #[error("--fd={0}: descriptor is not open")]
    NotOpen(RawFd),
    #[error("--fd={fd}: {what}, not a connected unix stream socket")]
    NotUnixStream { fd: RawFd, what: String },
    #[error("--socket-path={}: {what}", path.display())]
    Path { path: PathBuf, what: String },
    #[error("--socket-path={}: accepting the frontend failed: {source}", path.display())]
    Accept {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Takes the inherited descriptor `fd` as the frontend connection, after checking that it is a
/// connected unix stream socket. It is marked close-on-exec: it goes to no child.
pub fn inherited(fd: RawFd) -> Result<UnixStream, FrontendError> {
    let flags = fcntl(borrow(fd), FcntlArg::F_GETFD).map_err(|_| FrontendError::NotOpen(fd))?;
    // SAFETY: `fd` is open (F_GETFD succeeded) and was handed to this program for the frontend
    // alone; nothing else in this process owns it, so taking ownership closes it exactly once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let not_stream = |what: String| FrontendError::NotUnixStream { fd, what };
    let mode = fstat(&owned)
        .map_err(|e| not_stream(format!("fstat failed ({e})")))?
        .st_mode;
    if SFlag::from_bits_truncate(mode & libc::S_IFMT) != SFlag::S_IFSOCK {
        return Err(not_stream(format!("file mode {mode:#o}")));
    }
    let domain = socket_domain(owned.as_fd()).map_err(|e| not_stream(e.to_string()))?;
    let kind = getsockopt(&owned, sockopt::SockType).map_err(|e| not_stream(e.to_string()))?;
    if domain != libc::AF_UNIX || kind != SockType::Stream {
        return Err(not_stream(format!(
            "socket of domain {domain} type {kind:?}"
        )));
    }
    if getpeername::<UnixAddr>(owned.as_raw_fd()) == Err(Errno::ENOTCONN) {
        return Err(not_stream("unconnected socket".into()));
    }
    let flags = FdFlag::from_bits_truncate(flags) | FdFlag::FD_CLOEXEC;
    fcntl(&owned, FcntlArg::F_SETFD(flags)).map_err(|e| not_stream(e.to_string()))?;
    Ok(UnixStream::from(owned))
}

/// A listening socket at `--socket-path`, waiting for its one frontend.
pub struct Listening {
    listener: UnixListener,
    path: PathBuf,
}

/// Listens on `path`: a stale socket there is replaced; any other file is refused.
pub fn listen(path: &Path) -> Result<Listening, FrontendError> {
    let fail = |what: String| FrontendError::Path {
        path: path.to_path_buf(),
        what,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| fail(format!("removing the old socket: {e}")))?
        }
        Ok(_) => return Err(fail("exists and is not a socket".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let listener = UnixListener::bind(path).map_err(|e| fail(format!("bind failed: {e}")))?;
    Ok(Listening {
        listener,
        path: path.to_path_buf(),
    })
}

impl Listening {
    /// Waits for the frontend's connection, polling `stop` every `tick` (a stop request ends
    /// the wait with `Ok(None)`). The path is removed once the connection is taken.
    pub fn accept_one(
        self,
        tick: Duration,
        stop: impl Fn() -> bool,
    ) -> Result<Option<UnixStream>, FrontendError> {
        let accept_failed = |source: io::Error| FrontendError::Accept {
            path: self.path.clone(),
            source,
        };
        let timeout = PollTimeout::try_from(tick).unwrap_or(PollTimeout::MAX);
        loop {
            if stop() {
                let _ = std::fs::remove_file(&self.path);
                return Ok(None);
            }
            let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => break,
                Err(e) => return Err(accept_failed(e.into())),
            }
        }
        let (stream, _) = self.listener.accept().map_err(accept_failed)?;
        let _ = std::fs::remove_file(&self.path);
        Ok(Some(stream))
    }
}

/// Borrows a raw descriptor number for a system call that only inspects it.
fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the borrow is used only for fcntl(F_GETFD), which fails cleanly with EBADF on a
    // closed number; nothing is read from or written to the descriptor through it.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// `SO_DOMAIN` of a socket.
fn socket_domain(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and `len` holds `value`'s size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::IntoRawFd;

    #[test]
    fn an_inherited_socketpair_end_becomes_the_frontend() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let fd = ours.into_raw_fd();

        let mut frontend = inherited(fd).unwrap();
        (&theirs).write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        frontend.read_exact(&mut got).unwrap();

        assert_eq!(&got, b"hi");
        let flags = fcntl(&frontend, FcntlArg::F_GETFD).unwrap();
        assert!(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
    }

    #[test]
    fn a_closed_descriptor_is_named() {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let fd = ours.into_raw_fd();
        // SAFETY: `fd` came from into_raw_fd above and is closed once, here.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });

        let err = inherited(fd).unwrap_err();

        assert_eq!(
            err.to_string(),
            format!("--fd={fd}: descriptor is not open")
        );
    }

    #[test]
    fn a_regular_file_is_not_a_frontend() {
        let file = tempfile::tempfile().unwrap();
        let fd = file.into_raw_fd();

        let err = inherited(fd).unwrap_err();

        assert!(
            err.to_string()
                .starts_with(&format!("--fd={fd}: file mode")),
            "{err}"
        );
    }

    #[test]
    fn a_datagram_socket_is_not_a_frontend() {
        let (ours, _theirs) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let fd = ours.into_raw_fd();

        let err = inherited(fd).unwrap_err();

        assert!(err.to_string().contains("type Datagram"), "{err}");
    }

    #[test]
    fn socket_path_accepts_one_connection_and_removes_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpu.sock");
        let listening = listen(&path).unwrap();

        let client = UnixStream::connect(&path).unwrap();
        let accepted = listening
            .accept_one(Duration::from_millis(10), || false)
            .unwrap()
            .expect("a connection");
        (&client).write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        (&accepted).read_exact(&mut byte).unwrap();

        assert_eq!(&byte, b"x");
        assert!(!path.exists());
    }

    #[test]
    fn socket_path_that_is_a_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpu.sock");
        std::fs::write(&path, b"keep me").unwrap();

        let err = listen(&path).err().expect("refused");

        assert!(
            err.to_string().ends_with("exists and is not a socket"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }

    #[test]
    fn a_stop_request_ends_the_wait_for_a_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpu.sock");
        let listening = listen(&path).unwrap();

        let accepted = listening
            .accept_one(Duration::from_millis(10), || true)
            .unwrap();

        assert!(accepted.is_none());
        assert!(!path.exists());
    }
}
