//! What the relay lets through: the table of frontend requests it carries (payload size,
//! descriptors and their kinds, whether a reply follows), the checks of their fields, and the
//! check of each backend reply against the request it answers.
//!
//! Numbers and payload layouts follow the vhost-user specification (checked against the
//! `vhost` crate 0.18, `FrontendReq`). A request not in [`RULES`] is refused: logging,
//! backend requests, inflight tracking, postcopy, crypto, IOTLB, device state, shared
//! objects and the net-only requests are nothing QEMU's vhost-user-gpu needs.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use super::error::RelayError;
use super::wire::{Header, Message, FLAG_NEED_REPLY, FLAG_REPLY, VERSION_1, VERSION_MASK};

/// Frontend request codes the relay knows by number.
pub(crate) mod req {
    pub const GET_FEATURES: u32 = 1;
    pub const SET_FEATURES: u32 = 2;
    pub const SET_OWNER: u32 = 3;
    pub const RESET_OWNER: u32 = 4;
    pub const SET_MEM_TABLE: u32 = 5;
    pub const SET_VRING_NUM: u32 = 8;
    pub const SET_VRING_ADDR: u32 = 9;
    pub const SET_VRING_BASE: u32 = 10;
    pub const GET_VRING_BASE: u32 = 11;
    pub const SET_VRING_KICK: u32 = 12;
    pub const SET_VRING_CALL: u32 = 13;
    pub const SET_VRING_ERR: u32 = 14;
    pub const GET_PROTOCOL_FEATURES: u32 = 15;
    pub const SET_PROTOCOL_FEATURES: u32 = 16;
    pub const GET_QUEUE_NUM: u32 = 17;
    pub const SET_VRING_ENABLE: u32 = 18;
    pub const GET_CONFIG: u32 = 24;
    pub const SET_CONFIG: u32 = 25;
    pub const GPU_SET_SOCKET: u32 = 33;
    pub const RESET_DEVICE: u32 = 34;
    pub const GET_MAX_MEM_SLOTS: u32 = 36;
    pub const ADD_MEM_REG: u32 = 37;
    pub const REM_MEM_REG: u32 = 38;
    pub const SET_STATUS: u32 = 39;
    pub const GET_STATUS: u32 = 40;
}

/// The name of a frontend request code, for messages ("UNKNOWN" outside the spec's list).
pub(crate) fn request_name(code: u32) -> &'static str {
    const NAMES: [&str; 44] = [
        "GET_FEATURES",
        "SET_FEATURES",
        "SET_OWNER",
        "RESET_OWNER",
        "SET_MEM_TABLE",
        "SET_LOG_BASE",
        "SET_LOG_FD",
        "SET_VRING_NUM",
        "SET_VRING_ADDR",
        "SET_VRING_BASE",
        "GET_VRING_BASE",
        "SET_VRING_KICK",
        "SET_VRING_CALL",
        "SET_VRING_ERR",
        "GET_PROTOCOL_FEATURES",
        "SET_PROTOCOL_FEATURES",
        "GET_QUEUE_NUM",
        "SET_VRING_ENABLE",
        "SEND_RARP",
        "NET_SET_MTU",
        "SET_BACKEND_REQ_FD",
        "IOTLB_MSG",
        "SET_VRING_ENDIAN",
        "GET_CONFIG",
        "SET_CONFIG",
        "CREATE_CRYPTO_SESSION",
        "CLOSE_CRYPTO_SESSION",
        "POSTCOPY_ADVISE",
        "POSTCOPY_LISTEN",
        "POSTCOPY_END",
        "GET_INFLIGHT_FD",
        "SET_INFLIGHT_FD",
        "GPU_SET_SOCKET",
        "RESET_DEVICE",
        "VRING_KICK",
        "GET_MAX_MEM_SLOTS",
        "ADD_MEM_REG",
        "REM_MEM_REG",
        "SET_STATUS",
        "GET_STATUS",
        "GET_SHARED_OBJECT",
        "SET_DEVICE_STATE_FD",
        "CHECK_DEVICE_STATE",
        "GET_SHMEM_CONFIG",
    ];
    code.checked_sub(1)
        .and_then(|i| NAMES.get(i as usize))
        .copied()
        .unwrap_or("UNKNOWN")
}

/// `VHOST_USER_F_PROTOCOL_FEATURES`: the virtio feature bit that says the backend speaks the
/// protocol-feature negotiation (and so may acknowledge with REPLY_ACK).
pub(crate) const VIRTIO_F_PROTOCOL_FEATURES: u64 = 1 << 30;
/// Protocol feature REPLY_ACK.
pub(crate) const PROTOCOL_F_REPLY_ACK: u64 = 1 << 3;
/// The protocol features the relay carries: MQ, REPLY_ACK, CONFIG, RESET_DEVICE,
/// CONFIGURE_MEM_SLOTS and STATUS. Others are removed from the backend's offer, so QEMU never
/// turns on a feature whose requests the relay would refuse.
pub(crate) const RELAYED_PROTOCOL_FEATURES: u64 =
    (1 << 0) | PROTOCOL_F_REPLY_ACK | (1 << 9) | (1 << 13) | (1 << 15) | (1 << 16);

/// Memory regions in one SET_MEM_TABLE (QEMU's `VHOST_MEMORY_BASELINE_NREGIONS`).
pub(crate) const MAX_REGIONS: usize = 8;
/// Bytes of one memory region description.
const REGION_SIZE: usize = 32;
/// Bytes of the VhostUserConfig header before the config bytes.
const CONFIG_HEADER_SIZE: usize = 12;
/// End (exclusive) of the configuration space a GET/SET_CONFIG may address.
const CONFIG_SPACE_END: u64 = 0x1000;
/// Largest virtqueue size (virtio's limit for split rings).
const MAX_VRING_SIZE: u32 = 32768;
/// SET_VRING_KICK/CALL/ERR: the low byte is the vring index.
const VRING_INDEX_MASK: u64 = 0xff;
/// SET_VRING_KICK/CALL/ERR: no descriptor comes with the message.
const VRING_NOFD: u64 = 0x100;

/// Identity of a file: the device and inode numbers `fstat` reports. The relay recognises the
/// guest-RAM memfd by it, whatever descriptor number or open file description QEMU uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileIdentity {
    /// The identity of the file behind `fd`.
    pub fn of(fd: impl AsFd) -> io::Result<FileIdentity> {
        let stat = nix::sys::stat::fstat(fd.as_fd())?;
        Ok(FileIdentity {
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    }
}

/// Which files memory-region messages may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestRam {
    /// Exactly this file: the guest-RAM memfd the supervisor made and owns (rayvmm).
    File(FileIdentity),
    /// Any memfd: a regular file whose `/proc/self/fd` link reads `/memfd:...`. For a
    /// supervisor that does not own guest RAM (under libvirt, QEMU makes it), so it cannot
    /// tell guest RAM from another memfd QEMU might pass.
    AnyMemfd,
}

impl From<FileIdentity> for GuestRam {
    fn from(identity: FileIdentity) -> GuestRam {
        GuestRam::File(identity)
    }
}

/// The kinds of descriptor a frontend request may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// The guest-RAM memfd (same device and inode as the configured identity).
    GuestRam,
    /// An eventfd (kick, call, err).
    EventFd,
    /// A connected unix stream socket (the display socket).
    UnixSocket,
}

impl FdKind {
    fn describe(self, guest_ram: GuestRam) -> &'static str {
        match self {
            FdKind::GuestRam if guest_ram == GuestRam::AnyMemfd => "a memfd",
            FdKind::GuestRam => "the guest-RAM memfd",
            FdKind::EventFd => "an eventfd",
            FdKind::UnixSocket => "a unix stream socket",
        }
    }
}

/// Checks that `fd` is of `kind`; on success returns the file's size (for guest RAM, to
/// bound the regions), else what it is instead.
fn check_fd_kind(fd: BorrowedFd<'_>, kind: FdKind, guest_ram: GuestRam) -> Result<u64, String> {
    let stat = nix::sys::stat::fstat(fd).map_err(|errno| format!("fstat failed: {errno}"))?;
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    match (kind, guest_ram) {
        (FdKind::GuestRam, GuestRam::AnyMemfd) => {
            if stat.st_mode & libc::S_IFMT != libc::S_IFREG {
                return Err(format!("file mode {:#o}", stat.st_mode));
            }
            let link = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map_err(|err| format!("/proc/self/fd unreadable: {err}"))?;
            if link.as_os_str().as_encoded_bytes().starts_with(b"/memfd:") {
                Ok(size)
            } else {
                Err(link.display().to_string())
            }
        }
        (FdKind::GuestRam, GuestRam::File(guest_ram)) => {
            let found = FileIdentity {
                dev: stat.st_dev,
                ino: stat.st_ino,
            };
            if found == guest_ram {
                Ok(size)
            } else {
                Err(format!("device {} inode {}", found.dev, found.ino))
            }
        }
        (FdKind::EventFd, _) => {
            let link = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map_err(|err| format!("/proc/self/fd unreadable: {err}"))?;
            if link.as_os_str() == "anon_inode:[eventfd]" {
                Ok(size)
            } else {
                Err(link.display().to_string())
            }
        }
        (FdKind::UnixSocket, _) => {
            if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
                return Err(format!("file mode {:#o}", stat.st_mode));
            }
            let domain = socket_option(fd, libc::SO_DOMAIN)?;
            let kind = socket_option(fd, libc::SO_TYPE)?;
            if domain == libc::AF_UNIX && kind == libc::SOCK_STREAM {
                Ok(size)
            } else {
                Err(format!("socket of domain {domain} type {kind}"))
            }
        }
    }
}

/// An integer socket option of level SOL_SOCKET.
fn socket_option(fd: BorrowedFd<'_>, option: libc::c_int) -> Result<libc::c_int, String> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and `len` holds `value`'s size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(format!("getsockopt failed: {}", io::Error::last_os_error()))
    }
}

/// The payload size a request must have.
#[derive(Clone, Copy, Debug)]
enum PayloadRule {
    /// Exactly this many bytes.
    Exact(usize),
    /// SET_MEM_TABLE: 8 bytes, then 32 per region the first `u32` counts.
    MemTable,
    /// GET/SET_CONFIG: 12 bytes, then the `size` field's count of config bytes.
    Config,
}

/// The descriptors a request must carry.
#[derive(Clone, Copy, Debug)]
enum FdRule {
    None,
    /// Exactly one of this kind.
    One(FdKind),
    /// None or one of this kind (REM_MEM_REG: the spec lets old frontends attach one).
    AtMostOne(FdKind),
    /// SET_VRING_KICK/CALL/ERR: one eventfd, or none when the NOFD bit is set.
    VringFd,
    /// SET_MEM_TABLE: one guest-RAM memfd per region.
    PerRegion,
}

/// The shape of the reply a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyShape {
    /// A `u64` (features, counts, status, or a REPLY_ACK acknowledgement).
    U64,
    /// GET_VRING_BASE: `{index u32, num u32}` for the index asked.
    VringState { index: u32 },
    /// GET_CONFIG: the request's header with `size` config bytes, or with size 0 (failure).
    Config { offset: u32, size: u32 },
}

/// When a request gets a reply.
#[derive(Clone, Copy, Debug)]
enum ReplyRule {
    /// Always (the GET_* requests); the shape's fields come from the request.
    Always,
    /// Only a `u64` acknowledgement, when NEED_REPLY is set.
    OnNeedReply,
}

/// How one frontend request is checked.
#[derive(Clone, Copy, Debug)]
struct Rule {
    code: u32,
    payload: PayloadRule,
    fds: FdRule,
    reply: ReplyRule,
}

const fn rule(code: u32, payload: PayloadRule, fds: FdRule, reply: ReplyRule) -> Rule {
    Rule {
        code,
        payload,
        fds,
        reply,
    }
}

use FdRule as F;
use PayloadRule as P;
use ReplyRule as R;

/// Every frontend request the relay carries.
const RULES: &[Rule] = &[
    rule(req::GET_FEATURES, P::Exact(0), F::None, R::Always),
    rule(req::SET_FEATURES, P::Exact(8), F::None, R::OnNeedReply),
    rule(req::SET_OWNER, P::Exact(0), F::None, R::OnNeedReply),
    rule(req::RESET_OWNER, P::Exact(0), F::None, R::OnNeedReply),
    rule(
        req::SET_MEM_TABLE,
        P::MemTable,
        F::PerRegion,
        R::OnNeedReply,
    ),
    rule(req::SET_VRING_NUM, P::Exact(8), F::None, R::OnNeedReply),
    rule(req::SET_VRING_ADDR, P::Exact(40), F::None, R::OnNeedReply),
    rule(req::SET_VRING_BASE, P::Exact(8), F::None, R::OnNeedReply),
    rule(req::GET_VRING_BASE, P::Exact(8), F::None, R::Always),
    rule(req::SET_VRING_KICK, P::Exact(8), F::VringFd, R::OnNeedReply),
    rule(req::SET_VRING_CALL, P::Exact(8), F::VringFd, R::OnNeedReply),
    rule(req::SET_VRING_ERR, P::Exact(8), F::VringFd, R::OnNeedReply),
    rule(req::GET_PROTOCOL_FEATURES, P::Exact(0), F::None, R::Always),
    rule(
        req::SET_PROTOCOL_FEATURES,
        P::Exact(8),
        F::None,
        R::OnNeedReply,
    ),
    rule(req::GET_QUEUE_NUM, P::Exact(0), F::None, R::Always),
    rule(req::SET_VRING_ENABLE, P::Exact(8), F::None, R::OnNeedReply),
    rule(req::GET_CONFIG, P::Config, F::None, R::Always),
    rule(req::SET_CONFIG, P::Config, F::None, R::OnNeedReply),
    rule(
        req::GPU_SET_SOCKET,
        P::Exact(0),
        F::One(FdKind::UnixSocket),
        R::OnNeedReply,
    ),
    rule(req::RESET_DEVICE, P::Exact(0), F::None, R::OnNeedReply),
    rule(req::GET_MAX_MEM_SLOTS, P::Exact(0), F::None, R::Always),
    rule(
        req::ADD_MEM_REG,
        P::Exact(40),
        F::One(FdKind::GuestRam),
        R::OnNeedReply,
    ),
    rule(
        req::REM_MEM_REG,
        P::Exact(40),
        F::AtMostOne(FdKind::GuestRam),
        R::OnNeedReply,
    ),
    rule(req::SET_STATUS, P::Exact(8), F::None, R::OnNeedReply),
    rule(req::GET_STATUS, P::Exact(0), F::None, R::Always),
];

/// Little-endian `u32` at `at` (the caller checked the payload's size).
fn u32_at(payload: &[u8], at: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&payload[at..at + 4]);
    u32::from_le_bytes(bytes)
}

/// Little-endian `u64` at `at` (the caller checked the payload's size).
fn u64_at(payload: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&payload[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// What the relay learned from the negotiation so far: whether REPLY_ACK is on (so NEED_REPLY
/// gets an answer), and which protocol features were offered to QEMU.
#[derive(Debug, Default)]
pub(crate) struct Negotiation {
    /// The backend's GET_FEATURES reply had `VHOST_USER_F_PROTOCOL_FEATURES`.
    backend_has_protocol_features: bool,
    /// The protocol features QEMU was offered (the backend's, masked to the relayed ones).
    offered_protocol_features: u64,
    /// The protocol features QEMU acknowledged with SET_PROTOCOL_FEATURES.
    acked_protocol_features: u64,
}

impl Negotiation {
    /// Whether a request with NEED_REPLY gets a `u64` acknowledgement: the rule the backend
    /// (the `vhost` crate) and QEMU both follow.
    pub fn reply_ack(&self) -> bool {
        self.backend_has_protocol_features
            && self.acked_protocol_features & PROTOCOL_F_REPLY_ACK != 0
    }
}

/// What to do with a frontend request that passed its checks.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Forward it to the backend; if `reply` is set, wait for that reply and forward it back.
    Forward { reply: Option<ReplyShape> },
    /// GPU_SET_SOCKET: keep the socket for rayvmm; acknowledge it to QEMU if `ack`.
    KeepDisplaySocket { ack: bool },
}

/// The reply the relay waits for: which request it answers and its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expected {
    pub code: u32,
    pub shape: ReplyShape,
}

/// Checks a frontend message against its rule and the negotiation, and records what it
/// negotiates. Returns what to do with it.
pub(crate) fn check_request(
    msg: &Message,
    guest_ram: GuestRam,
    negotiation: &mut Negotiation,
) -> Result<Action, RelayError> {
    let code = msg.header.request;
    let request = request_name(code);
    let flags = msg.header.flags;
    if flags & VERSION_MASK != VERSION_1 || flags & !(VERSION_MASK | FLAG_NEED_REPLY) != 0 {
        return Err(RelayError::RequestFlags {
            request,
            code,
            flags,
        });
    }
    let rule = RULES
        .iter()
        .find(|rule| rule.code == code)
        .ok_or(RelayError::NotCarried { request, code })?;
    check_payload_size(rule, request, &msg.payload)?;
    let file_sizes = check_fds(rule, request, msg, guest_ram)?;
    check_fields(code, request, &msg.payload, &file_sizes, negotiation)?;
    let need_reply = flags & FLAG_NEED_REPLY != 0;
    if need_reply && !negotiation.reply_ack() && matches!(rule.reply, ReplyRule::OnNeedReply) {
        return Err(RelayError::NeedReplyWithoutAck { request });
    }
    if code == req::SET_PROTOCOL_FEATURES {
        negotiation.acked_protocol_features = u64_at(&msg.payload, 0);
    }
    if code == req::GPU_SET_SOCKET {
        return Ok(Action::KeepDisplaySocket { ack: need_reply });
    }
    let reply = match rule.reply {
        ReplyRule::Always => Some(reply_shape(code, &msg.payload)),
        ReplyRule::OnNeedReply if need_reply => Some(ReplyShape::U64),
        ReplyRule::OnNeedReply => None,
    };
    Ok(Action::Forward { reply })
}

/// The reply shape of a request that always gets one.
fn reply_shape(code: u32, payload: &[u8]) -> ReplyShape {
    match code {
        req::GET_VRING_BASE => ReplyShape::VringState {
            index: u32_at(payload, 0),
        },
        req::GET_CONFIG => ReplyShape::Config {
            offset: u32_at(payload, 0),
            size: u32_at(payload, 4),
        },
        _ => ReplyShape::U64,
    }
}

fn check_payload_size(
    rule: &Rule,
    request: &'static str,
    payload: &[u8],
) -> Result<(), RelayError> {
    let size = payload.len();
    let wrong = |expected: String| RelayError::RequestSize {
        request,
        size,
        expected,
    };
    match rule.payload {
        PayloadRule::Exact(expected) if size != expected => Err(wrong(expected.to_string())),
        PayloadRule::Exact(_) => Ok(()),
        PayloadRule::MemTable => {
            if size < 8 {
                return Err(wrong("at least 8".to_string()));
            }
            let regions = u32_at(payload, 0) as usize;
            if regions == 0 || regions > MAX_REGIONS {
                return Err(RelayError::RequestField {
                    request,
                    detail: format!("{regions} regions (1 to {MAX_REGIONS} allowed)"),
                });
            }
            let expected = 8 + regions * REGION_SIZE;
            if size != expected {
                return Err(wrong(format!("{expected} for {regions} regions")));
            }
            Ok(())
        }
        PayloadRule::Config => {
            if size < CONFIG_HEADER_SIZE {
                return Err(wrong(format!("at least {CONFIG_HEADER_SIZE}")));
            }
            let config_size = u32_at(payload, 4) as usize;
            let expected = CONFIG_HEADER_SIZE + config_size;
            if size != expected {
                return Err(wrong(format!("{expected} for {config_size} config bytes")));
            }
            Ok(())
        }
    }
}

/// Checks the count and kind of each descriptor; returns the files' sizes (in order).
fn check_fds(
    rule: &Rule,
    request: &'static str,
    msg: &Message,
    guest_ram: GuestRam,
) -> Result<Vec<u64>, RelayError> {
    let got = msg.fds.len();
    let (allowed, kind): (std::ops::RangeInclusive<usize>, Option<FdKind>) = match rule.fds {
        FdRule::None => (0..=0, None),
        FdRule::One(kind) => (1..=1, Some(kind)),
        FdRule::AtMostOne(kind) => (0..=1, Some(kind)),
        FdRule::VringFd => {
            let count = usize::from(u64_at(&msg.payload, 0) & VRING_NOFD == 0);
            (count..=count, Some(FdKind::EventFd))
        }
        FdRule::PerRegion => {
            let count = u32_at(&msg.payload, 0) as usize;
            (count..=count, Some(FdKind::GuestRam))
        }
    };
    if !allowed.contains(&got) {
        let expected = if allowed.start() == allowed.end() {
            allowed.start().to_string()
        } else {
            format!("{} to {}", allowed.start(), allowed.end())
        };
        return Err(RelayError::FdCount {
            request,
            got,
            expected,
        });
    }
    let Some(kind) = kind else {
        return Ok(Vec::new());
    };
    msg.fds
        .iter()
        .enumerate()
        .map(|(index, fd)| {
            check_fd_kind(fd.as_fd(), kind, guest_ram).map_err(|found| RelayError::FdKind {
                request,
                index,
                expected: kind.describe(guest_ram),
                found,
            })
        })
        .collect()
}

/// Checks one memory region description (32 bytes at `at`) against the size of its file.
fn check_region(payload: &[u8], at: usize, file_size: Option<u64>) -> Result<(), String> {
    let guest_phys_addr = u64_at(payload, at);
    let memory_size = u64_at(payload, at + 8);
    let userspace_addr = u64_at(payload, at + 16);
    let mmap_offset = u64_at(payload, at + 24);
    if memory_size == 0 {
        return Err(format!("region at {guest_phys_addr:#x} of size 0"));
    }
    if guest_phys_addr.checked_add(memory_size).is_none()
        || userspace_addr.checked_add(memory_size).is_none()
    {
        return Err(format!(
            "region at {guest_phys_addr:#x} of size {memory_size:#x} that wraps around"
        ));
    }
    let end = mmap_offset.checked_add(memory_size);
    match (end, file_size) {
        (None, _) => Err(format!("region offset {mmap_offset:#x} + size {memory_size:#x} that wraps around")),
        (Some(end), Some(file_size)) if end > file_size => Err(format!(
            "region at offset {mmap_offset:#x} of size {memory_size:#x} beyond the guest RAM's {file_size:#x} bytes"
        )),
        _ => Ok(()),
    }
}

/// Checks the fields of a request whose size and descriptors are right.
fn check_fields(
    code: u32,
    request: &'static str,
    payload: &[u8],
    file_sizes: &[u64],
    negotiation: &Negotiation,
) -> Result<(), RelayError> {
    let bad = |detail: String| RelayError::RequestField { request, detail };
    match code {
        req::SET_MEM_TABLE => {
            let padding = u32_at(payload, 4);
            if padding != 0 {
                return Err(bad(format!("padding {padding:#x}")));
            }
            for (i, size) in file_sizes.iter().enumerate() {
                check_region(payload, 8 + i * REGION_SIZE, Some(*size)).map_err(bad)?;
            }
        }
        req::ADD_MEM_REG | req::REM_MEM_REG => {
            let padding = u64_at(payload, 0);
            if padding != 0 {
                return Err(bad(format!("padding {padding:#x}")));
            }
            check_region(payload, 8, file_sizes.first().copied()).map_err(bad)?;
        }
        req::SET_VRING_NUM => {
            let num = u32_at(payload, 4);
            if num == 0 || num > MAX_VRING_SIZE {
                return Err(bad(format!(
                    "ring size {num} (1 to {MAX_VRING_SIZE} allowed)"
                )));
            }
        }
        req::SET_VRING_ENABLE => {
            let num = u32_at(payload, 4);
            if num > 1 {
                return Err(bad(format!("enable value {num} (0 or 1 allowed)")));
            }
        }
        req::SET_VRING_ADDR => {
            let flags = u32_at(payload, 4);
            if flags != 0 {
                return Err(bad(format!(
                    "vring flags {flags:#x} (logging is not carried)"
                )));
            }
        }
        req::SET_VRING_KICK | req::SET_VRING_CALL | req::SET_VRING_ERR => {
            let value = u64_at(payload, 0);
            if value & !(VRING_INDEX_MASK | VRING_NOFD) != 0 {
                return Err(bad(format!(
                    "value {value:#x} (only an index and NOFD allowed)"
                )));
            }
        }
        req::SET_PROTOCOL_FEATURES => {
            let acked = u64_at(payload, 0);
            let unoffered = acked & !negotiation.offered_protocol_features;
            if unoffered != 0 {
                return Err(bad(format!(
                    "protocol features {unoffered:#x} that were never offered"
                )));
            }
        }
        req::GET_CONFIG | req::SET_CONFIG => {
            let offset = u32_at(payload, 0);
            let size = u32_at(payload, 4);
            let flags = u32_at(payload, 8);
            if size == 0 || u64::from(offset) + u64::from(size) > CONFIG_SPACE_END {
                return Err(bad(format!(
                    "config offset {offset:#x} size {size:#x} (1 byte to {CONFIG_SPACE_END:#x} allowed)"
                )));
            }
            if flags > 1 {
                return Err(bad(format!("config flags {flags:#x}")));
            }
        }
        req::SET_STATUS => {
            let status = u64_at(payload, 0);
            if status > 0xff {
                return Err(bad(format!("device status {status:#x} (one byte allowed)")));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks a backend message that should be the reply `expected`, records what it negotiates,
/// and returns the message to forward to QEMU (GET_PROTOCOL_FEATURES masked to
/// [`RELAYED_PROTOCOL_FEATURES`], everything else as it came).
pub(crate) fn check_reply(
    expected: Expected,
    mut msg: Message,
    negotiation: &mut Negotiation,
) -> Result<Message, RelayError> {
    let request = request_name(expected.code);
    let header = msg.header;
    if header.request != expected.code {
        return Err(RelayError::WrongReply {
            expected: request,
            got: request_name(header.request),
            code: header.request,
        });
    }
    if header.flags != VERSION_1 | FLAG_REPLY {
        return Err(RelayError::ReplyFlags {
            request,
            flags: header.flags,
        });
    }
    if !msg.fds.is_empty() {
        return Err(RelayError::ReplyFds {
            request,
            count: msg.fds.len(),
        });
    }
    let size = msg.payload.len();
    let wrong_size = |expected: String| RelayError::ReplySize {
        request,
        size,
        expected,
    };
    let bad = |detail: String| RelayError::ReplyField { request, detail };
    match expected.shape {
        ReplyShape::U64 | ReplyShape::VringState { .. } if size != 8 => {
            return Err(wrong_size("8".to_string()))
        }
        ReplyShape::U64 | ReplyShape::VringState { .. } => {}
        ReplyShape::Config { size: asked, .. } => {
            let full = CONFIG_HEADER_SIZE + asked as usize;
            if size != full && size != CONFIG_HEADER_SIZE {
                return Err(wrong_size(format!(
                    "{full} (or {CONFIG_HEADER_SIZE} for a failure)"
                )));
            }
        }
    }
    match expected.shape {
        ReplyShape::VringState { index } => {
            let got = u32_at(&msg.payload, 0);
            if got != index {
                return Err(bad(format!("vring index {got}, asked for {index}")));
            }
        }
        ReplyShape::Config { offset, .. } => {
            let got_offset = u32_at(&msg.payload, 0);
            let got_size = u32_at(&msg.payload, 4) as usize;
            if got_offset != offset {
                return Err(bad(format!(
                    "config offset {got_offset:#x}, asked for {offset:#x}"
                )));
            }
            if got_size != size - CONFIG_HEADER_SIZE {
                return Err(bad(format!(
                    "config size field {got_size} for {} config bytes",
                    size - CONFIG_HEADER_SIZE
                )));
            }
        }
        ReplyShape::U64 => {}
    }
    match expected.code {
        req::GET_FEATURES => {
            negotiation.backend_has_protocol_features =
                u64_at(&msg.payload, 0) & VIRTIO_F_PROTOCOL_FEATURES != 0;
        }
        req::GET_PROTOCOL_FEATURES => {
            let offered = u64_at(&msg.payload, 0) & RELAYED_PROTOCOL_FEATURES;
            negotiation.offered_protocol_features = offered;
            msg.payload.copy_from_slice(&offered.to_le_bytes());
        }
        _ => {}
    }
    Ok(msg)
}

/// The header and payload of the relay's own `u64` acknowledgement of `code` (0: success).
pub(crate) fn ack(code: u32) -> (Header, [u8; 8]) {
    let header = Header {
        request: code,
        flags: VERSION_1 | FLAG_REPLY,
        size: 8,
    };
    (header, 0u64.to_le_bytes())
}
