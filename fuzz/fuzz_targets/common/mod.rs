//! What several targets share: a reader over the fuzzer's bytes, descriptors of the kinds a
//! vhost-user peer sends, and raw vhost-user framing (header + payload, SCM_RIGHTS) on a
//! unix stream socket.
#![allow(dead_code)]

use std::io::{self, Read};
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Bytes of a vhost-user header: request, flags, size (u32 each, little endian).
pub const HEADER_SIZE: usize = 12;
/// Flag bits: version 1, REPLY, NEED_REPLY.
pub const VERSION_1: u32 = 0x1;
pub const FLAG_REPLY: u32 = 0x4;
pub const FLAG_NEED_REPLY: u32 = 0x8;

/// Reads fields off the front of the input; missing bytes read as zero.
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let got = self.bytes(N);
        out[..got.len()].copy_from_slice(got);
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.0.len())
    }
}

/// Size of the memfds handed out as "guest RAM".
pub const MEMFD_BYTES: u64 = 0x10000;

/// The kinds of descriptor a fuzz input can attach (2 bits).
#[derive(Clone, Copy, Debug)]
pub enum FdKind {
    /// A memfd of [`MEMFD_BYTES`] (what guest RAM is).
    Memfd,
    /// An eventfd, already signalled (a kick that fires).
    EventFd,
    /// A connected unix stream socket whose peer is gone.
    UnixSocket,
    /// /dev/null: a descriptor of no kind the protocol uses.
    DevNull,
}

impl FdKind {
    pub fn from_bits(bits: u8) -> FdKind {
        match bits & 3 {
            0 => FdKind::Memfd,
            1 => FdKind::EventFd,
            2 => FdKind::UnixSocket,
            _ => FdKind::DevNull,
        }
    }
}

fn owned(raw: RawFd) -> OwnedFd {
    assert!(
        raw >= 0,
        "creating a descriptor: {}",
        io::Error::last_os_error()
    );
    // SAFETY: `raw` was just returned by the kernel and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// A memfd of [`MEMFD_BYTES`], filled with `fill` from its start.
pub fn memfd(fill: &[u8]) -> OwnedFd {
    // SAFETY: a NUL-terminated name and valid flags.
    let fd = owned(unsafe { libc::memfd_create(c"fuzz-ram".as_ptr(), libc::MFD_CLOEXEC) });
    // SAFETY: `fd` is an open memfd.
    assert_eq!(
        unsafe { libc::ftruncate(fd.as_raw_fd(), MEMFD_BYTES as i64) },
        0
    );
    if !fill.is_empty() {
        let len = fill.len().min(MEMFD_BYTES as usize);
        // SAFETY: `fill` is valid for `len` bytes.
        unsafe { libc::pwrite(fd.as_raw_fd(), fill.as_ptr().cast(), len, 0) };
    }
    fd
}

/// A descriptor of `kind`.
pub fn make_fd(kind: FdKind) -> OwnedFd {
    match kind {
        FdKind::Memfd => memfd(&[]),
        FdKind::EventFd => {
            // SAFETY: plain flags.
            let fd = owned(unsafe { libc::eventfd(1, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) });
            fd
        }
        FdKind::UnixSocket => {
            let (a, _b) = UnixStream::pair().expect("socketpair");
            a.into()
        }
        FdKind::DevNull => std::fs::File::open("/dev/null").expect("/dev/null").into(),
    }
}

/// One `sendmsg` of `bytes` with `fds` attached (blocking; the caller keeps inputs small
/// enough for the socket's buffer).
pub fn send_with_fds(sock: &UnixStream, bytes: &[u8], fds: &[OwnedFd]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let fd_bytes = size_of::<RawFd>() * raw.len();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = if raw.is_empty() {
        0
    } else {
        (unsafe { libc::CMSG_SPACE(fd_bytes as u32) }) as usize
    };
    let mut control = vec![0u64; space.div_ceil(8)];
    // A stream socket carries no descriptors without at least one byte.
    let mut sent = 0;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        let mut iov = libc::iovec {
            iov_base: rest.as_ptr() as *mut _,
            iov_len: rest.len(),
        };
        // SAFETY: all-zero is a valid empty msghdr.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        if sent == 0 && !raw.is_empty() {
            hdr.msg_control = control.as_mut_ptr().cast();
            hdr.msg_controllen = space as _;
            // SAFETY: the control buffer has room for one cmsg of `fd_bytes`.
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
        // SAFETY: `hdr` points at live buffers.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        sent += n as usize;
    }
    Ok(())
}

/// One frontend write: the bytes and the descriptors riding with them.
pub struct Chunk<'a> {
    pub bytes: &'a [u8],
    pub fds: Vec<FdKind>,
}

/// Descriptors a spec byte asks for: bits 0-1 a count (0 to 3), plus 8 when bit 4 is set (more
/// than the relay's 8 per message), all of the kind in bits 2-3.
pub fn fd_spec(spec: u8) -> Vec<FdKind> {
    let count = usize::from(spec & 3) + if spec & 0x10 != 0 { 8 } else { 0 };
    vec![FdKind::from_bits(spec >> 2); count]
}

/// Splits the input into writes: a spec byte (see [`fd_spec`]), a u16 length, that many
/// bytes. At most `max_chunks`.
pub fn chunks<'a>(input: &mut Input<'a>, max_chunks: usize) -> Vec<Chunk<'a>> {
    let mut out = Vec::new();
    while !input.is_empty() && out.len() < max_chunks {
        let spec = input.u8();
        let len = input.u16() as usize;
        let bytes = input.bytes(len);
        out.push(Chunk {
            bytes,
            fds: fd_spec(spec),
        });
    }
    out
}

/// Reads exactly `buf.len()` bytes, closing any descriptors that come along; false at EOF.
fn read_exact_dropping_fds(sock: &UnixStream, buf: &mut [u8], fds: &mut usize) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        let mut control = [0u64; 16];
        let rest = &mut buf[filled..];
        let mut iov = libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        // SAFETY: all-zero is a valid empty msghdr.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `hdr` points at live, writable buffers.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // SAFETY: the kernel filled `control`; the CMSG macros stay inside msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                        / size_of::<RawFd>();
                    let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                    for i in 0..count {
                        drop(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                        *fds += 1;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
            }
        }
        if n == 0 {
            if filled == 0 {
                return Ok(false);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "message cut short",
            ));
        }
        filled += n as usize;
    }
    Ok(true)
}

/// One vhost-user message as a peer sees it.
#[derive(Debug)]
pub struct Message {
    pub request: u32,
    pub flags: u32,
    pub payload: Vec<u8>,
    /// Descriptors that came with it (closed on arrival).
    pub fds: usize,
}

/// Reads one whole message (blocking); `None` at a clean EOF. Payloads larger than `max`
/// are an error.
pub fn read_message(sock: &UnixStream, max: usize) -> io::Result<Option<Message>> {
    let mut header = [0u8; HEADER_SIZE];
    let mut fds = 0;
    if !read_exact_dropping_fds(sock, &mut header, &mut fds)? {
        return Ok(None);
    }
    let word = |i: usize| u32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().unwrap());
    let size = word(2) as usize;
    if size > max {
        return Err(io::Error::other(format!("payload of {size} bytes")));
    }
    let mut payload = vec![0u8; size];
    if !read_exact_dropping_fds(sock, &mut payload, &mut fds)? {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no payload"));
    }
    Ok(Some(Message {
        request: word(0),
        flags: word(1),
        payload,
        fds,
    }))
}

/// Encodes a message: header then payload.
pub fn encode(request: u32, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SIZE + payload.len());
    out.extend_from_slice(&request.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads everything left on a stream, dropping it (used to drain a peer).
pub fn drain(mut sock: &UnixStream) {
    let mut buf = [0u8; 4096];
    while matches!(sock.read(&mut buf), Ok(n) if n > 0) {}
}

/// Whether to describe what happened to each input on stderr (`RAYOS_FUZZ_VERBOSE=1`): for
/// checking that seeds reach what they are meant to.
pub fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("RAYOS_FUZZ_VERBOSE").is_some())
}

/// Threads of this process now (/proc/self/status).
pub fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (at most `limit`) for threads started by this input, and detached by the code under
/// test, to end; false if some are still running. Without it a thread still exiting when the
/// input ends shows as a leak to LeakSanitizer.
pub fn wait_for_threads(baseline: usize, limit: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while threads() > baseline {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
    true
}

/// Descriptors open in this process now (/proc/self/fd, less the one reading it).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count().saturating_sub(1))
        .unwrap_or(0)
}
