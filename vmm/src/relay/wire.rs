//! One side of the vhost-user socket: reading and writing whole messages (12-byte header,
//! payload, descriptors), bounded in size, descriptor count and time.
//!
//! Both sockets are non-blocking; every wait is a `poll` on the socket and the relay's stop
//! eventfd with a deadline, so a peer that sends half a message, or stops reading, costs the
//! relay at most the deadline and never blocks it for ever.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

use super::error::RelayError;
use super::rules::request_name;
use super::Side;

/// Size of the vhost-user message header: request, flags and size, each a native `u32`.
pub(crate) const HEADER_SIZE: usize = 12;
/// The largest payload accepted from either side (the `vhost` crate's `MAX_MSG_SIZE`). A
/// header announcing more is refused before a byte of the payload is read.
pub(crate) const MAX_PAYLOAD: usize = 4096;
/// The most descriptors one message may carry (SET_MEM_TABLE with 8 regions). More make the
/// kernel truncate the control data, which is a violation.
pub(crate) const MAX_FDS: usize = 8;

/// Header flags: the version field (bits 0-1), which must be 1.
pub(crate) const VERSION_MASK: u32 = 0x3;
/// The only protocol version.
pub(crate) const VERSION_1: u32 = 0x1;
/// Header flag: this message is a reply.
pub(crate) const FLAG_REPLY: u32 = 0x4;
/// Header flag: the frontend asks for a `u64` acknowledgement (REPLY_ACK).
pub(crate) const FLAG_NEED_REPLY: u32 = 0x8;

/// A vhost-user message header, as it travels (little-endian on the hosts we run on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub request: u32,
    pub flags: u32,
    pub size: u32,
}

impl Header {
    /// Decodes the 12 header bytes.
    pub fn from_bytes(bytes: &[u8; HEADER_SIZE]) -> Header {
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        Header {
            request: word(0),
            flags: word(4),
            size: word(8),
        }
    }

    /// Encodes the header into its 12 bytes.
    pub fn to_bytes(self) -> [u8; HEADER_SIZE] {
        let mut bytes = [0u8; HEADER_SIZE];
        bytes[0..4].copy_from_slice(&self.request.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.flags.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.size.to_le_bytes());
        bytes
    }
}

/// One whole message: its header, exactly `header.size` payload bytes, and the descriptors
/// that came with it (owned: dropping the message closes them).
#[derive(Debug)]
pub(crate) struct Message {
    pub header: Header,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// What a wait on a socket ended with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WaitResult {
    /// The socket has the events asked for (or an error or hang-up to read).
    Ready,
    /// The relay was asked to stop.
    Stopped,
    /// The deadline passed.
    TimedOut,
}

/// Waits until `sock` has `events` (or an error/hang-up), the stop eventfd is signalled, or
/// `deadline` passes (`None`: no deadline).
pub(crate) fn wait(
    sock: BorrowedFd<'_>,
    events: PollFlags,
    stop: BorrowedFd<'_>,
    deadline: Option<Instant>,
) -> io::Result<WaitResult> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(WaitResult::TimedOut);
                }
                poll_timeout(deadline - now)
            }
        };
        let mut fds = [
            PollFd::new(stop, PollFlags::POLLIN),
            PollFd::new(sock, events),
        ];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) => {
                if fds[0].any().unwrap_or(false) {
                    return Ok(WaitResult::Stopped);
                }
                if fds[1].any().unwrap_or(false) {
                    return Ok(WaitResult::Ready);
                }
            }
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// A poll timeout of at least `left` (rounded up to the next millisecond, capped).
pub(crate) fn poll_timeout(left: Duration) -> PollTimeout {
    let millis = left.as_millis().saturating_add(1).min(i32::MAX as u128);
    PollTimeout::try_from(millis as i32).unwrap_or(PollTimeout::MAX)
}

/// Space for the control data of [`MAX_FDS`] descriptors, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct ControlBuffer([u8; 64]);

/// Receives what is there (at most `buf.len()` bytes) without blocking, adding any
/// descriptors that came with it to `fds`. Returns the byte count (0: the peer closed) and
/// whether the kernel truncated the control data (too many descriptors; those that did
/// arrive are in `fds`, so they are closed with it).
fn recv_some(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<(usize, bool)> {
    // SAFETY: CMSG_SPACE only computes a size from its argument.
    let needed =
        unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut control = ControlBuffer([0u8; 64]);
    debug_assert!(needed <= control.0.len());
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty header; the fields we need are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = needed as _;
    let flags = libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT;
    let received = loop {
        // SAFETY: `msg` points at `iov` (into `buf`, valid for `buf.len()` bytes) and at
        // `control` (valid for `needed` bytes); both outlive the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    // Take ownership of every descriptor the kernel installed, before anything can fail.
    // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/CMSG_NXTHDR stay within
    // `msg_controllen`, which the kernel set to what it wrote into `control`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null and points into `control` (see above).
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN only computes a size.
            let data_offset = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = (header.cmsg_len as usize).saturating_sub(data_offset)
                / std::mem::size_of::<RawFd>();
            // SAFETY: CMSG_DATA points at `count` descriptors inside this cmsg.
            let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
            for i in 0..count {
                // SAFETY: in bounds (see above); the data may be unaligned.
                let raw = unsafe { data.add(i).read_unaligned() };
                // SAFETY: SCM_RIGHTS installed `raw` as a new descriptor of this process,
                // owned by nobody else: we take sole ownership.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    let truncated = msg.msg_flags & libc::MSG_CTRUNC != 0;
    Ok((received, truncated))
}

/// A message being read: where from, until when, and what has arrived so far.
struct Incoming<'a> {
    sock: BorrowedFd<'a>,
    side: Side,
    stop: BorrowedFd<'a>,
    timeout: Duration,
    deadline: Instant,
    fds: Vec<OwnedFd>,
    /// Bytes of the message read so far.
    got: usize,
    /// Bytes the message has in all, as far as known (the header only, until it is read).
    expected: usize,
}

impl Incoming<'_> {
    /// Fills `buf` before the deadline, collecting descriptors.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RelayError> {
        let side = self.side;
        let mut filled = 0;
        while filled < buf.len() {
            match recv_some(self.sock, &mut buf[filled..], &mut self.fds) {
                Ok((_, true)) => return Err(RelayError::TooManyFds { side, max: MAX_FDS }),
                Ok((0, false)) if self.got == 0 => return Err(RelayError::PeerClosed { side }),
                Ok((0, false)) => {
                    return Err(RelayError::Truncated {
                        side,
                        got: self.got,
                        expected: self.expected,
                    })
                }
                Ok((n, false)) => {
                    filled += n;
                    self.got += n;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    let waited = wait(self.sock, PollFlags::POLLIN, self.stop, Some(self.deadline));
                    match waited.map_err(RelayError::Poll)? {
                        WaitResult::Ready => {}
                        WaitResult::Stopped => return Err(RelayError::Stopped),
                        WaitResult::TimedOut => {
                            return Err(RelayError::ReadTimeout {
                                side,
                                got: self.got,
                                timeout: self.timeout,
                            })
                        }
                    }
                }
                Err(err) if is_disconnect(&err) => return Err(RelayError::PeerClosed { side }),
                Err(source) => return Err(RelayError::Recv { side, source }),
            }
        }
        Ok(())
    }
}

/// Whether a socket error means the peer went away.
fn is_disconnect(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ENOTCONN)
    )
}

/// Reads one whole message from `sock` within `timeout`: the header, then (if its size is at
/// most [`MAX_PAYLOAD`]) the payload. Descriptors may come with any part of it; more than
/// [`MAX_FDS`] in one go is a violation. A peer that closes before the first byte is
/// [`RelayError::PeerClosed`]; one that closes later is [`RelayError::Truncated`].
pub(crate) fn read_message(
    sock: &UnixStream,
    side: Side,
    stop: BorrowedFd<'_>,
    timeout: Duration,
) -> Result<Message, RelayError> {
    let mut incoming = Incoming {
        sock: sock.as_fd(),
        side,
        stop,
        timeout,
        deadline: Instant::now() + timeout,
        fds: Vec::new(),
        got: 0,
        expected: HEADER_SIZE,
    };
    let mut header_bytes = [0u8; HEADER_SIZE];
    incoming.fill(&mut header_bytes)?;
    let header = Header::from_bytes(&header_bytes);
    let size = header.size as usize;
    if size > MAX_PAYLOAD {
        return Err(RelayError::Oversized {
            side,
            request: request_name(header.request),
            code: header.request,
            size: header.size,
            max: MAX_PAYLOAD,
        });
    }
    incoming.expected = HEADER_SIZE + size;
    let mut payload = vec![0u8; size];
    incoming.fill(&mut payload)?;
    Ok(Message {
        header,
        payload,
        fds: incoming.fds,
    })
}

/// Writes one whole message to `sock` within `timeout`, the descriptors riding with its
/// first byte. A peer that does not take it in time is [`RelayError::WriteTimeout`].
pub(crate) fn write_message(
    sock: &UnixStream,
    side: Side,
    stop: BorrowedFd<'_>,
    timeout: Duration,
    header: Header,
    payload: &[u8],
    fds: &[OwnedFd],
) -> Result<(), RelayError> {
    let deadline = Instant::now() + timeout;
    let header_bytes = header.to_bytes();
    let raw_fds: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let total = HEADER_SIZE + payload.len();
    let mut sent = 0;
    while sent < total {
        let iov: [IoSlice<'_>; 2] = if sent < HEADER_SIZE {
            [IoSlice::new(&header_bytes[sent..]), IoSlice::new(payload)]
        } else {
            [
                IoSlice::new(&[]),
                IoSlice::new(&payload[sent - HEADER_SIZE..]),
            ]
        };
        let rights = [ControlMessage::ScmRights(&raw_fds)];
        let cmsgs: &[ControlMessage<'_>] = if sent == 0 && !raw_fds.is_empty() {
            &rights
        } else {
            &[]
        };
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, cmsgs, flags, None) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let waited = wait(sock.as_fd(), PollFlags::POLLOUT, stop, Some(deadline));
                match waited.map_err(RelayError::Poll)? {
                    WaitResult::Ready => {}
                    WaitResult::Stopped => return Err(RelayError::Stopped),
                    WaitResult::TimedOut => return Err(RelayError::WriteTimeout { side, timeout }),
                }
            }
            Err(Errno::EPIPE) | Err(Errno::ECONNRESET) | Err(Errno::ENOTCONN) => {
                return Err(RelayError::PeerClosed { side })
            }
            Err(errno) => {
                return Err(RelayError::Send {
                    side,
                    source: errno.into(),
                })
            }
        }
    }
    Ok(())
}
