//! A minimal vhost-user frontend, written against the wire format so that tests can send
//! exactly what QEMU sends, and also what it never would.
//!
//! Wire format (vhost-user specification): a 12-byte header `{request: u32, flags: u32,
//! size: u32}` then `size` bytes of payload; descriptors ride along with SCM_RIGHTS. Flags:
//! version 1 in bits 0-1, REPLY 0x4, NEED_REPLY 0x8.

use std::io::{IoSlice, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

pub const GET_FEATURES: u32 = 1;
pub const SET_FEATURES: u32 = 2;
pub const SET_OWNER: u32 = 3;
pub const SET_MEM_TABLE: u32 = 5;
pub const SET_VRING_NUM: u32 = 8;
pub const SET_VRING_ADDR: u32 = 9;
pub const SET_VRING_BASE: u32 = 10;
pub const GET_VRING_BASE: u32 = 11;
pub const SET_VRING_KICK: u32 = 12;
pub const SET_VRING_CALL: u32 = 13;
pub const GET_PROTOCOL_FEATURES: u32 = 15;
pub const SET_PROTOCOL_FEATURES: u32 = 16;
pub const GET_QUEUE_NUM: u32 = 17;
pub const SET_VRING_ENABLE: u32 = 18;
pub const GET_CONFIG: u32 = 24;
pub const SET_CONFIG: u32 = 25;
pub const GPU_SET_SOCKET: u32 = 33;
pub const GET_MAX_MEM_SLOTS: u32 = 36;

const VERSION: u32 = 0x1;
const REPLY: u32 = 0x4;
const NEED_REPLY: u32 = 0x8;

pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// `VIRTIO_F_RING_RESET`: QEMU 10's vhost-user-gpu-pci sends it in SET_FEATURES when a Linux
/// driver acks it, whether or not the backend offered it.
pub const VIRTIO_F_RING_RESET: u64 = 1 << 40;
pub const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;
pub const PROTOCOL_F_MQ: u64 = 0x1;
pub const PROTOCOL_F_REPLY_ACK: u64 = 0x8;
pub const PROTOCOL_F_CONFIG: u64 = 0x200;
pub const PROTOCOL_F_CONFIGURE_MEM_SLOTS: u64 = 0x8000;

/// One memory region of a SET_MEM_TABLE message.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    pub guest_phys_addr: u64,
    pub size: u64,
    pub user_addr: u64,
    pub mmap_offset: u64,
}

/// The frontend end of a vhost-user connection.
pub struct Frontend {
    socket: UnixStream,
}

impl Frontend {
    /// Wraps a connected stream; replies are awaited for at most five seconds.
    pub fn new(socket: UnixStream) -> Frontend {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set a read timeout");
        Frontend { socket }
    }

    /// Sends one message with `fds` attached.
    pub fn send(&self, request: u32, flags: u32, payload: &[u8], fds: &[RawFd]) {
        let mut header = Vec::with_capacity(12);
        header.extend_from_slice(&request.to_ne_bytes());
        header.extend_from_slice(&(flags | VERSION).to_ne_bytes());
        header.extend_from_slice(&(payload.len() as u32).to_ne_bytes());
        let iov = [IoSlice::new(&header), IoSlice::new(payload)];
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        sendmsg::<UnixAddr>(
            self.socket.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::empty(),
            None,
        )
        .expect("send a vhost-user message");
    }

    /// Reads one reply to `request` and returns its payload.
    pub fn reply(&self, request: u32) -> Vec<u8> {
        let mut header = [0u8; 12];
        (&self.socket)
            .read_exact(&mut header)
            .expect("a reply header");
        let code = u32::from_ne_bytes(header[0..4].try_into().unwrap());
        let flags = u32::from_ne_bytes(header[4..8].try_into().unwrap());
        let size = u32::from_ne_bytes(header[8..12].try_into().unwrap());
        assert_eq!((code, flags & REPLY), (request, REPLY), "reply header");
        let mut payload = vec![0u8; size as usize];
        (&self.socket)
            .read_exact(&mut payload)
            .expect("a reply payload");
        payload
    }

    /// Sends a request that expects an answer (GET_*) and returns the answer.
    pub fn query(&self, request: u32, payload: &[u8]) -> Vec<u8> {
        self.send(request, 0, payload, &[]);
        self.reply(request)
    }

    /// A GET_* request answered with one u64.
    pub fn query_u64(&self, request: u32) -> u64 {
        u64::from_ne_bytes(self.query(request, &[]).try_into().expect("a u64 reply"))
    }

    /// Sends a request with NEED_REPLY (REPLY_ACK must be negotiated) and returns whether the
    /// backend accepted it.
    pub fn request(&self, request: u32, payload: &[u8], fds: &[RawFd]) -> bool {
        self.send(request, NEED_REPLY, payload, fds);
        let ack = self.reply(request);
        u64::from_ne_bytes(ack.try_into().expect("a u64 ack")) == 0
    }

    /// GET_FEATURES, GET/SET_PROTOCOL_FEATURES (with REPLY_ACK), SET_OWNER, SET_FEATURES:
    /// what QEMU does first. Returns the features the backend offered.
    pub fn negotiate(&self, wanted_device_features: u64) -> u64 {
        let offered = self.negotiate_protocol();
        let acked = offered
            & (VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES | wanted_device_features);
        assert!(
            self.request(SET_FEATURES, &acked.to_ne_bytes(), &[]),
            "SET_FEATURES accepted"
        );
        offered
    }

    /// GET_FEATURES, GET/SET_PROTOCOL_FEATURES (with REPLY_ACK) and SET_OWNER, leaving
    /// SET_FEATURES to the caller. Returns the features the backend offered.
    pub fn negotiate_protocol(&self) -> u64 {
        let offered = self.query_u64(GET_FEATURES);
        let protocol = self.query_u64(GET_PROTOCOL_FEATURES);
        self.send(
            SET_PROTOCOL_FEATURES,
            0,
            &(protocol
                & (PROTOCOL_F_MQ
                    | PROTOCOL_F_REPLY_ACK
                    | PROTOCOL_F_CONFIG
                    | PROTOCOL_F_CONFIGURE_MEM_SLOTS))
                .to_ne_bytes(),
            &[],
        );
        assert!(self.request(SET_OWNER, &[], &[]), "SET_OWNER accepted");
        offered
    }

    /// SET_FEATURES as QEMU sends it: without NEED_REPLY, so a refusal goes unseen.
    pub fn set_features(&self, features: u64) {
        self.send(SET_FEATURES, 0, &features.to_ne_bytes(), &[]);
    }

    /// SET_MEM_TABLE with one descriptor per region.
    pub fn set_mem_table(&self, regions: &[Region], fds: &[RawFd]) -> bool {
        let mut payload = Vec::new();
        payload.extend_from_slice(&(regions.len() as u32).to_ne_bytes());
        payload.extend_from_slice(&0u32.to_ne_bytes());
        for r in regions {
            for v in [r.guest_phys_addr, r.size, r.user_addr, r.mmap_offset] {
                payload.extend_from_slice(&v.to_ne_bytes());
            }
        }
        self.request(SET_MEM_TABLE, &payload, fds)
    }

    /// A `{index, num}` vring state request.
    pub fn vring_state(&self, request: u32, index: u32, num: u32) -> bool {
        self.request(request, &vring_state(index, num), &[])
    }

    /// SET_VRING_ADDR with frontend virtual addresses.
    pub fn set_vring_addr(&self, index: u32, desc: u64, used: u64, avail: u64) -> bool {
        let mut payload = Vec::new();
        payload.extend_from_slice(&index.to_ne_bytes());
        payload.extend_from_slice(&0u32.to_ne_bytes());
        for v in [desc, used, avail, 0u64] {
            payload.extend_from_slice(&v.to_ne_bytes());
        }
        self.request(SET_VRING_ADDR, &payload, &[])
    }

    /// SET_VRING_KICK / SET_VRING_CALL with an eventfd.
    pub fn set_vring_fd(&self, request: u32, index: u8, fd: RawFd) -> bool {
        self.request(request, &u64::from(index).to_ne_bytes(), &[fd])
    }

    /// GET_VRING_BASE: stops the ring, returns its next available index.
    pub fn get_vring_base(&self, index: u32) -> u32 {
        let reply = self.query(GET_VRING_BASE, &vring_state(index, 0));
        u32::from_ne_bytes(reply[4..8].try_into().unwrap())
    }

    /// GET_CONFIG of `size` bytes at `offset`; an empty answer means refused.
    pub fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let mut payload = Vec::new();
        for v in [offset, size, 0] {
            payload.extend_from_slice(&v.to_ne_bytes());
        }
        payload.resize(12 + size as usize, 0);
        let reply = self.query(GET_CONFIG, &payload);
        reply[12..].to_vec()
    }

    /// SET_CONFIG of `data` at `offset`.
    pub fn set_config(&self, offset: u32, data: &[u8]) -> bool {
        let mut payload = Vec::new();
        for v in [offset, data.len() as u32, 0] {
            payload.extend_from_slice(&v.to_ne_bytes());
        }
        payload.extend_from_slice(data);
        self.request(SET_CONFIG, &payload, &[])
    }

    /// VHOST_USER_GPU_SET_SOCKET.
    pub fn set_gpu_socket(&self, fd: RawFd) -> bool {
        self.request(GPU_SET_SOCKET, &[], &[fd])
    }
}

fn vring_state(index: u32, num: u32) -> Vec<u8> {
    let mut payload = index.to_ne_bytes().to_vec();
    payload.extend_from_slice(&num.to_ne_bytes());
    payload
}
