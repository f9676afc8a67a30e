//! The control tube: typed messages between rayvmm and the jailed GPU process.
//!
//! A tube is one end of an `AF_UNIX`/`SOCK_SEQPACKET` socketpair. Every message is one
//! packet holding a serde_json document, optionally with file descriptors attached with
//! `SCM_RIGHTS`; messages refer to those descriptors by their index in the attached list.
//!
//! Both ends treat the peer as hostile: the size of a message and the number of descriptors
//! are capped on sending and on receiving, truncation of either is detected, descriptors are
//! received close-on-exec, and descriptors that arrive where none (or fewer) were expected are
//! closed before the error is returned, so a peer cannot make the other side leak them.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// Largest message, in bytes, that a tube sends or accepts unless configured otherwise.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Most descriptors one message may carry unless configured otherwise.
pub const DEFAULT_MAX_FDS: usize = 16;
/// Hard ceiling on descriptors per message, whatever the configuration (kernel: SCM_MAX_FD).
pub const FD_CEILING: usize = 253;

/// Why a tube operation failed.
#[derive(Debug, Error)]
pub enum TubeError {
    #[error("creating the tube's socketpair failed: {0}")]
    Create(#[source] io::Error),
    #[error("the descriptor given as a tube is not an AF_UNIX SOCK_SEQPACKET socket")]
    NotSeqpacket,
    #[error("inspecting the tube's socket failed: {0}")]
    Inspect(#[source] io::Error),
    #[error("the peer closed its end of the tube")]
    Disconnected,
    #[error("message of {size} bytes exceeds the tube's limit of {limit} bytes")]
    Oversized { size: usize, limit: usize },
    #[error("message carries {count} file descriptors, more than the {limit} allowed")]
    TooManyFds { count: usize, limit: usize },
    #[error("received {count} file descriptors that nobody asked for; they were closed")]
    UnexpectedFds { count: usize },
    #[error("malformed message: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("message referred to descriptor index {index}, but only {count} arrived")]
    BadFdIndex { index: usize, count: usize },
    #[error("no message arrived within {0:?}")]
    Timeout(Duration),
    #[error("sending on the tube failed: {0}")]
    Send(#[source] io::Error),
    #[error("receiving on the tube failed: {0}")]
    Recv(#[source] io::Error),
    #[error("setting the tube's receive timeout failed: {0}")]
    SetTimeout(#[source] io::Error),
}

/// Result of a tube operation.
pub type Result<T> = std::result::Result<T, TubeError>;

/// Descriptors received with a message, taken out by the index the message names.
///
/// Descriptors that are never taken are closed when this is dropped.
#[derive(Debug, Default)]
pub struct ReceivedFds {
    fds: Vec<Option<OwnedFd>>,
}

impl ReceivedFds {
    /// Number of descriptors that arrived with the message.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Whether no descriptor arrived.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Takes the descriptor at `index`; each index can be taken once.
    pub fn take(&mut self, index: usize) -> Result<OwnedFd> {
        let count = self.fds.len();
        self.fds
            .get_mut(index)
            .and_then(Option::take)
            .ok_or(TubeError::BadFdIndex { index, count })
    }
}

/// One end of a control tube.
#[derive(Debug)]
pub struct Tube {
    socket: OwnedFd,
    max_message_bytes: usize,
    max_fds: usize,
    recv_timeout: Option<Duration>,
}

impl Tube {
    /// Creates a connected pair of tubes, both close-on-exec, with the default limits.
    pub fn pair() -> Result<(Tube, Tube)> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two ints for the kernel to fill; the return value
        // is checked before the descriptors are used.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(TubeError::Create(io::Error::last_os_error()));
        }
        // SAFETY: socketpair succeeded, so both descriptors are open and owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Tube::wrap(a), Tube::wrap(b)))
    }

    /// Wraps an inherited descriptor, refusing anything but an `AF_UNIX` `SOCK_SEQPACKET` socket.
    pub fn from_fd(socket: OwnedFd) -> Result<Tube> {
        let domain = socket_option(socket.as_fd(), libc::SO_DOMAIN)?;
        let kind = socket_option(socket.as_fd(), libc::SO_TYPE)?;
        if domain != libc::AF_UNIX || kind != libc::SOCK_SEQPACKET {
            return Err(TubeError::NotSeqpacket);
        }
        Ok(Tube::wrap(socket))
    }

    fn wrap(socket: OwnedFd) -> Tube {
        Tube {
            socket,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_fds: DEFAULT_MAX_FDS,
            recv_timeout: None,
        }
    }

    /// Sets the largest message, in bytes, this end sends or accepts.
    pub fn set_max_message_bytes(&mut self, limit: usize) {
        self.max_message_bytes = limit.max(1);
    }

    /// Sets the most descriptors one message may carry, at most [`FD_CEILING`].
    pub fn set_max_fds(&mut self, limit: usize) {
        self.max_fds = limit.min(FD_CEILING);
    }

    /// Makes `recv` give up with [`TubeError::Timeout`] after `timeout`; `None` waits forever.
    pub fn set_recv_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        let tv = match timeout {
            Some(t) => libc::timeval {
                tv_sec: t.as_secs().try_into().unwrap_or(libc::time_t::MAX),
                tv_usec: t.subsec_micros().into(),
            },
            None => libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
        };
        // SAFETY: `tv` is a valid timeval that outlives the call, and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(TubeError::SetTimeout(io::Error::last_os_error()));
        }
        self.recv_timeout = timeout;
        Ok(())
    }

    /// Sends `msg` with no descriptors.
    pub fn send<T: Serialize>(&self, msg: &T) -> Result<()> {
        self.send_with_fds(msg, &[])
    }

    /// Sends `msg` with `fds` attached; the message refers to them by index into `fds`.
    pub fn send_with_fds<T: Serialize>(&self, msg: &T, fds: &[BorrowedFd<'_>]) -> Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(TubeError::Malformed)?;
        self.send_bytes(&bytes, fds)
    }

    /// Sends already-encoded bytes as one packet; used by `send_with_fds` and by tests that
    /// play a hostile peer.
    pub fn send_bytes(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        if bytes.len() > self.max_message_bytes {
            return Err(TubeError::Oversized {
                size: bytes.len(),
                limit: self.max_message_bytes,
            });
        }
        if fds.len() > self.max_fds {
            return Err(TubeError::TooManyFds {
                count: fds.len(),
                limit: self.max_fds,
            });
        }
        let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let fd_bytes = std::mem::size_of_val(raw.as_slice());
        // SAFETY: CMSG_SPACE only computes a size from its argument.
        let space = if raw.is_empty() {
            0
        } else {
            unsafe { libc::CMSG_SPACE(fd_bytes as u32) as usize }
        };
        let mut control = vec![0u64; space.div_ceil(size_of::<u64>())];
        let mut iov = libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut hdr: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        if !raw.is_empty() {
            hdr.msg_control = control.as_mut_ptr().cast();
            hdr.msg_controllen = space as _;
            // SAFETY: the control buffer is CMSG_SPACE(fd_bytes) long and 8-byte aligned, so
            // CMSG_FIRSTHDR returns a header inside it with room for `fd_bytes` of data, which
            // is exactly what is copied into CMSG_DATA.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&hdr);
                (*cmsg).cmsg_level = libc::SOL_SOCKET;
                (*cmsg).cmsg_type = libc::SCM_RIGHTS;
                (*cmsg).cmsg_len = libc::CMSG_LEN(fd_bytes as u32) as _;
                std::ptr::copy_nonoverlapping(
                    raw.as_ptr().cast::<u8>(),
                    libc::CMSG_DATA(cmsg),
                    fd_bytes,
                );
            }
        }
        loop {
            // SAFETY: `hdr` points at `iov` and `control`, both alive for the call; the kernel
            // only reads them.
            let rc = unsafe { libc::sendmsg(self.socket.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL) };
            if rc >= 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EPIPE) | Some(libc::ECONNRESET) | Some(libc::ENOTCONN) => {
                    return Err(TubeError::Disconnected)
                }
                Some(libc::EMSGSIZE) => {
                    return Err(TubeError::Oversized {
                        size: bytes.len(),
                        limit: self.max_message_bytes,
                    })
                }
                _ => return Err(TubeError::Send(err)),
            }
        }
    }

    /// Receives a message that must carry no descriptors; any that arrive are closed and the
    /// message is refused with [`TubeError::UnexpectedFds`].
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
        self.recv_with_fds(0).map(|(msg, _)| msg)
    }

    /// Receives a message carrying at most `max_fds` descriptors (and never more than this
    /// end's limit). More than that: all are closed and the message is refused.
    pub fn recv_with_fds<T: DeserializeOwned>(&self, max_fds: usize) -> Result<(T, ReceivedFds)> {
        let (bytes, fds) = self.recv_bytes()?;
        if fds.len() > max_fds {
            return Err(if max_fds == 0 {
                TubeError::UnexpectedFds { count: fds.len() }
            } else {
                TubeError::TooManyFds {
                    count: fds.len(),
                    limit: max_fds,
                }
            });
        }
        let msg = serde_json::from_slice(&bytes).map_err(TubeError::Malformed)?;
        Ok((msg, fds))
    }

    /// Receives one raw packet and its descriptors, enforcing this end's limits.
    pub fn recv_bytes(&self) -> Result<(Vec<u8>, ReceivedFds)> {
        // One byte more than the limit, so a packet of exactly the limit is not flagged.
        let mut buf = vec![0u8; self.max_message_bytes + 1];
        // Room for one more descriptor than allowed, so an excess is seen, not just cut off.
        let fd_room = (self.max_fds + 1).min(FD_CEILING) * size_of::<RawFd>();
        // SAFETY: CMSG_SPACE only computes a size from its argument.
        let space = unsafe { libc::CMSG_SPACE(fd_room as u32) } as usize;
        let mut control = vec![0u64; space.div_ceil(size_of::<u64>())];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut hdr: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = space as _;
        let size = loop {
            // SAFETY: `hdr` describes `buf` and `control`, both alive and writable for their
            // full lengths during the call.
            let rc = unsafe {
                libc::recvmsg(
                    self.socket.as_raw_fd(),
                    &mut hdr,
                    libc::MSG_CMSG_CLOEXEC | libc::MSG_TRUNC,
                )
            };
            if rc >= 0 {
                break rc as usize;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    return Err(TubeError::Timeout(self.recv_timeout.unwrap_or_default()))
                }
                Some(libc::ECONNRESET) => return Err(TubeError::Disconnected),
                _ => return Err(TubeError::Recv(err)),
            }
        };
        // Take ownership of every descriptor first, so each path below closes them.
        let fds = ReceivedFds {
            fds: take_rights(&hdr).into_iter().map(Some).collect(),
        };
        if hdr.msg_flags & libc::MSG_CTRUNC != 0 || fds.len() > self.max_fds {
            return Err(TubeError::TooManyFds {
                count: fds.len(),
                limit: self.max_fds,
            });
        }
        if hdr.msg_flags & libc::MSG_TRUNC != 0 || size > self.max_message_bytes {
            return Err(TubeError::Oversized {
                size,
                limit: self.max_message_bytes,
            });
        }
        if size == 0 {
            return Err(TubeError::Disconnected);
        }
        buf.truncate(size);
        Ok((buf, fds))
    }
}

impl AsFd for Tube {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for Tube {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl From<Tube> for OwnedFd {
    fn from(tube: Tube) -> OwnedFd {
        tube.socket
    }
}

/// Takes ownership of every descriptor in the `SCM_RIGHTS` messages of a received header.
fn take_rights(hdr: &libc::msghdr) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    // SAFETY: `hdr` was filled by a successful recvmsg, so its control buffer and length
    // describe valid cmsg headers; CMSG_FIRSTHDR/CMSG_NXTHDR stay within msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null and points at a header inside the control buffer.
        let (level, kind, len) =
            unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len) };
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) only computes the header size.
            let header = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = len.saturating_sub(header) / size_of::<RawFd>();
            // SAFETY: CMSG_DATA points at `count` descriptors written by the kernel (it may be
            // unaligned for RawFd, hence read_unaligned).
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
            for i in 0..count {
                // SAFETY: `i < count`, so the read stays inside this cmsg's data; the kernel
                // installed each descriptor in our table and nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(data.add(i).read_unaligned()) });
            }
        }
        // SAFETY: as above, CMSG_NXTHDR returns null past the end of the control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
    }
    fds
}

fn socket_option(fd: BorrowedFd<'_>, option: libc::c_int) -> Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return Err(if err.raw_os_error() == Some(libc::ENOTSOCK) {
            TubeError::NotSeqpacket
        } else {
            TubeError::Inspect(err)
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::fs::File;
    use std::os::fd::AsFd;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        seq: u32,
        fd: Option<usize>,
    }

    /// A descriptor whose `/proc/self/fd` link names `tag`, so a test can count its copies
    /// without racing the other tests' descriptors.
    fn marked_fd(tag: &str) -> OwnedFd {
        let name = std::ffi::CString::new(tag).unwrap();
        // SAFETY: `name` is a valid NUL-terminated string; the result is checked.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: memfd_create returned a new descriptor that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    fn copies_open(tag: &str) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().contains(&format!("memfd:{tag} ")))
            .count()
    }

    #[test]
    fn message_round_trips() {
        let (a, b) = Tube::pair().unwrap();

        a.send(&Ping { seq: 7, fd: None }).unwrap();
        let got: Ping = b.recv().unwrap();

        assert_eq!(got, Ping { seq: 7, fd: None });
    }

    #[test]
    fn descriptor_arrives_by_index_and_close_on_exec() {
        let (a, b) = Tube::pair().unwrap();
        let file = File::open("/proc/self/exe").unwrap();

        a.send_with_fds(
            &Ping {
                seq: 1,
                fd: Some(0),
            },
            &[file.as_fd()],
        )
        .unwrap();
        let (msg, mut fds): (Ping, _) = b.recv_with_fds(1).unwrap();
        let fd = fds.take(msg.fd.unwrap()).unwrap();

        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    #[test]
    fn recv_reports_disconnected_when_peer_closes() {
        let (a, b) = Tube::pair().unwrap();
        drop(a);

        let err = b.recv::<Ping>().unwrap_err();

        assert!(matches!(err, TubeError::Disconnected), "{err}");
    }

    #[test]
    fn send_reports_disconnected_when_peer_closed() {
        let (a, b) = Tube::pair().unwrap();
        drop(b);

        let err = a.send(&Ping { seq: 1, fd: None }).unwrap_err();

        assert!(matches!(err, TubeError::Disconnected), "{err}");
    }

    #[test]
    fn send_refuses_oversized_message() {
        let (mut a, _b) = Tube::pair().unwrap();
        a.set_max_message_bytes(8);

        let err = a
            .send(&Ping {
                seq: 123456,
                fd: None,
            })
            .unwrap_err();

        assert!(
            matches!(err, TubeError::Oversized { limit: 8, .. }),
            "{err}"
        );
    }

    #[test]
    fn recv_refuses_oversized_message_and_keeps_serving() {
        let (a, mut b) = Tube::pair().unwrap();
        b.set_max_message_bytes(32);
        a.send_bytes(&[b'x'; 64], &[]).unwrap();
        a.send(&Ping { seq: 2, fd: None }).unwrap();

        let err = b.recv::<Ping>().unwrap_err();
        let next: Ping = b.recv().unwrap();

        assert!(
            matches!(
                err,
                TubeError::Oversized {
                    size: 64,
                    limit: 32
                }
            ),
            "{err}"
        );
        assert_eq!(next.seq, 2);
    }

    #[test]
    fn send_refuses_too_many_fds() {
        let (mut a, _b) = Tube::pair().unwrap();
        a.set_max_fds(1);
        let file = File::open("/proc/self/exe").unwrap();

        let err = a
            .send_with_fds(&Ping { seq: 1, fd: None }, &[file.as_fd(), file.as_fd()])
            .unwrap_err();

        assert!(
            matches!(err, TubeError::TooManyFds { count: 2, limit: 1 }),
            "{err}"
        );
    }

    #[test]
    fn recv_refuses_too_many_fds_and_closes_them() {
        let (a, mut b) = Tube::pair().unwrap();
        b.set_max_fds(2);
        let file = marked_fd("recv-refuses-too-many-fds-and-closes-the");
        let sent = [file.as_fd(), file.as_fd(), file.as_fd(), file.as_fd()];
        a.send_with_fds(&Ping { seq: 1, fd: None }, &sent).unwrap();

        let err = b.recv_with_fds::<Ping>(2).unwrap_err();

        assert!(matches!(err, TubeError::TooManyFds { .. }), "{err}");
        assert_eq!(copies_open("recv-refuses-too-many-fds-and-closes-the"), 1);
    }

    #[test]
    fn recv_refuses_more_fds_than_the_caller_expects_and_closes_them() {
        let (a, b) = Tube::pair().unwrap();
        let file = marked_fd("recv-refuses-more-fds-than-the-caller-ex");
        a.send_with_fds(&Ping { seq: 1, fd: None }, &[file.as_fd(), file.as_fd()])
            .unwrap();

        let err = b.recv_with_fds::<Ping>(1).unwrap_err();

        assert!(
            matches!(err, TubeError::TooManyFds { count: 2, limit: 1 }),
            "{err}"
        );
        assert_eq!(copies_open("recv-refuses-more-fds-than-the-caller-ex"), 1);
    }

    #[test]
    fn recv_closes_fds_nobody_asked_for() {
        let (a, b) = Tube::pair().unwrap();
        let file = marked_fd("recv-closes-fds-nobody-asked-for");
        a.send_with_fds(&Ping { seq: 1, fd: None }, &[file.as_fd()])
            .unwrap();

        let err = b.recv::<Ping>().unwrap_err();

        assert!(
            matches!(err, TubeError::UnexpectedFds { count: 1 }),
            "{err}"
        );
        assert_eq!(copies_open("recv-closes-fds-nobody-asked-for"), 1);
    }

    #[test]
    fn recv_reports_malformed_json() {
        let (a, b) = Tube::pair().unwrap();
        a.send_bytes(b"{\"seq\": ", &[]).unwrap();

        let err = b.recv::<Ping>().unwrap_err();

        assert!(matches!(err, TubeError::Malformed(_)), "{err}");
    }

    #[test]
    fn recv_reports_wrong_shape_as_malformed() {
        let (a, b) = Tube::pair().unwrap();
        a.send_bytes(b"{\"seq\": \"seven\"}", &[]).unwrap();

        let err = b.recv::<Ping>().unwrap_err();

        assert!(matches!(err, TubeError::Malformed(_)), "{err}");
    }

    #[test]
    fn unused_received_fds_are_closed_on_drop() {
        let (a, b) = Tube::pair().unwrap();
        let file = marked_fd("unused-received-fds-are-closed-on-drop");
        a.send_with_fds(&Ping { seq: 1, fd: None }, &[file.as_fd(), file.as_fd()])
            .unwrap();

        let (_msg, fds) = b.recv_with_fds::<Ping>(2).unwrap();
        drop(fds);

        assert_eq!(copies_open("unused-received-fds-are-closed-on-drop"), 1);
    }

    #[test]
    fn take_rejects_index_out_of_range() {
        let mut fds = ReceivedFds::default();

        let err = fds.take(3).unwrap_err();

        assert!(
            matches!(err, TubeError::BadFdIndex { index: 3, count: 0 }),
            "{err}"
        );
    }

    #[test]
    fn recv_times_out() {
        let (_a, mut b) = Tube::pair().unwrap();
        b.set_recv_timeout(Some(Duration::from_millis(20))).unwrap();

        let err = b.recv::<Ping>().unwrap_err();

        assert!(matches!(err, TubeError::Timeout(_)), "{err}");
    }

    #[test]
    fn from_fd_refuses_a_stream_socket() {
        let (s, _t) = std::os::unix::net::UnixStream::pair().unwrap();

        let err = Tube::from_fd(OwnedFd::from(s)).unwrap_err();

        assert!(matches!(err, TubeError::NotSeqpacket), "{err}");
    }

    #[test]
    fn from_fd_refuses_a_regular_file() {
        let file = File::open("/proc/self/exe").unwrap();

        let err = Tube::from_fd(OwnedFd::from(file)).unwrap_err();

        assert!(matches!(err, TubeError::NotSeqpacket), "{err}");
    }
}
