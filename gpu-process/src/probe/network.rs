//! Reaching a network or another host-side socket.

use control::probe::TechniqueRequest;

use super::sys::{self, addr_of, reg, scalar, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("socket_af_inet", socket_af_inet),
    ("socket_af_inet6", socket_af_inet6),
    ("socket_af_netlink", socket_af_netlink),
    ("socket_af_packet", socket_af_packet),
    ("socket_af_vsock", socket_af_vsock),
    ("socket_af_unix", socket_af_unix),
    ("connect_abstract_unix", connect_abstract_unix),
    ("connect_nscd_socket", connect_nscd_socket),
];

/// The abstract socket tried when the request names none.
pub(super) const DEFAULT_ABSTRACT_SOCKET: &str = "rayos-escape-test";

fn socket_af_inet(_: &TechniqueRequest) -> Attempt {
    open_socket(libc::AF_INET, libc::SOCK_STREAM, 0)
}

fn socket_af_inet6(_: &TechniqueRequest) -> Attempt {
    open_socket(libc::AF_INET6, libc::SOCK_DGRAM, 0)
}

fn socket_af_netlink(_: &TechniqueRequest) -> Attempt {
    open_socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)
}

fn socket_af_packet(_: &TechniqueRequest) -> Attempt {
    open_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
}

fn socket_af_vsock(_: &TechniqueRequest) -> Attempt {
    open_socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0)
}

fn socket_af_unix(_: &TechniqueRequest) -> Attempt {
    open_socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)
}

fn connect_abstract_unix(req: &TechniqueRequest) -> Attempt {
    let name = req
        .abstract_socket
        .as_deref()
        .unwrap_or(DEFAULT_ABSTRACT_SOCKET);
    // An abstract address: a NUL byte, then the name, with no terminator.
    connect_unix(&[&[0u8][..], name.as_bytes()].concat())
}

fn connect_nscd_socket(_: &TechniqueRequest) -> Attempt {
    connect_unix(b"/var/run/nscd/socket\0")
}

fn open_socket(domain: i32, kind: i32, protocol: i32) -> Attempt {
    let fd = new_socket(domain, kind, protocol)?;
    sys::close(fd);
    Ok("created a socket".into())
}

fn new_socket(domain: i32, kind: i32, protocol: i32) -> Result<i64, i32> {
    scalar(
        libc::SYS_socket,
        &[
            reg(domain.into()),
            reg((kind | libc::SOCK_CLOEXEC).into()),
            reg(protocol.into()),
        ],
    )
}

/// Connects an `AF_UNIX` stream socket to `path` (a filesystem path with its NUL, or an
/// abstract name starting with NUL).
fn connect_unix(path: &[u8]) -> Attempt {
    // SAFETY: sockaddr_un is plain data; all-zero is a valid (unnamed) address.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let room = addr.sun_path.len().min(path.len());
    for (dst, src) in addr.sun_path.iter_mut().zip(&path[..room]) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + room;
    let fd = new_socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)?;
    // SAFETY: `addr` is a valid sockaddr_un, readable for `len` bytes during the call.
    let result = unsafe { sys::syscall(libc::SYS_connect, &[reg(fd), addr_of(&addr), len as u64]) };
    sys::close(fd);
    result.map(|_| "connected".into())
}
