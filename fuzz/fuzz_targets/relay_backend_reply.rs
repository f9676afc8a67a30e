//! rayvmm's vhost-user relay, backend side: a well-behaved "QEMU" sends requests that get a
//! reply through a real `vmm::relay::Relay` over socketpairs, and "ray-gpu" (possibly
//! compromised) answers each with the fuzzer's bytes and descriptors. The relay's reading of
//! the backend and its reply rules (code, flags, size, no descriptors, the fields of vring
//! state and config replies, masking of protocol features) all run. Must never panic or
//! hang; the request must reach ray-gpu unchanged; whatever reaches QEMU must be exactly the
//! reply it asked for; and the relay must never blame the correct QEMU.
//!
//! Input: a mode byte (bit 0: negotiate REPLY_ACK first), then rounds: a request selector
//! byte and a u64 parameter; for requests that get a reply, a descriptor spec byte (as in
//! relay_frontend_request) and the reply: a 12-byte header, then as many payload bytes as its
//! size field says (when fewer remain, they are sent and ray-gpu closes its side).
#![no_main]

mod common;

use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use common::{
    encode, fd_spec, make_fd, read_message, send_with_fds, Input, FLAG_NEED_REPLY, FLAG_REPLY,
    HEADER_SIZE, VERSION_1,
};
use libfuzzer_sys::fuzz_target;
use vmm::relay::{GuestRam, Relay, RelayConfig, RelayEvent, Side};

const GET_FEATURES: u32 = 1;
const SET_FEATURES: u32 = 2;
const SET_VRING_NUM: u32 = 8;
const GET_VRING_BASE: u32 = 11;
const GET_PROTOCOL_FEATURES: u32 = 15;
const SET_PROTOCOL_FEATURES: u32 = 16;
const GET_QUEUE_NUM: u32 = 17;
const GET_CONFIG: u32 = 24;
const GET_MAX_MEM_SLOTS: u32 = 36;
const GET_STATUS: u32 = 40;
const PROTOCOL_FEATURES_BIT: u64 = 1 << 30;
const REPLY_ACK: u64 = 1 << 3;
/// What the relay lets QEMU see of the backend's protocol features.
const RELAYED_PROTOCOL_FEATURES: u64 =
    (1 << 0) | REPLY_ACK | (1 << 9) | (1 << 13) | (1 << 15) | (1 << 16);
const MAX_PAYLOAD: usize = 4096;

/// The reply QEMU waits for.
#[derive(Clone, Copy, Debug)]
enum Shape {
    U64,
    VringState { index: u32 },
    Config { offset: u32, size: u32 },
}

/// QEMU's side of the negotiation, as it learns it from the replies it gets.
#[derive(Default)]
struct Frontend {
    backend_has_protocol_features: bool,
    offered: u64,
    acked: u64,
}

impl Frontend {
    /// Whether NEED_REPLY gets an acknowledgement (the rule QEMU and the relay follow).
    fn reply_ack(&self) -> bool {
        self.backend_has_protocol_features && self.acked & REPLY_ACK != 0
    }
}

struct Peers {
    engine: UnixStream,
    gpu: UnixStream,
}

impl Peers {
    /// QEMU sends a request; it must reach ray-gpu unchanged.
    fn request(&self, request: u32, flags: u32, payload: &[u8]) -> bool {
        if send_with_fds(&self.engine, &encode(request, flags, payload), &[]).is_err() {
            return false;
        }
        match read_message(&self.gpu, MAX_PAYLOAD) {
            Ok(Some(fwd)) => {
                assert_eq!((fwd.request, fwd.flags, fwd.fds), (request, flags, 0));
                assert_eq!(fwd.payload, payload);
                true
            }
            other => panic!("request {request} flags {flags:#x} was not forwarded: {other:?}"),
        }
    }

    /// Checks what reaches QEMU after ray-gpu answered; false when the relay ended instead.
    fn reply(&self, frontend: &mut Frontend, request: u32, shape: Shape) -> bool {
        let Ok(Some(reply)) = read_message(&self.engine, MAX_PAYLOAD) else {
            return false;
        };
        assert_eq!(reply.request, request, "{reply:?}");
        assert_eq!(reply.flags, VERSION_1 | FLAG_REPLY, "{reply:?}");
        assert_eq!(reply.fds, 0, "{reply:?}");
        let p = &reply.payload;
        let u32_at = |at: usize| u32::from_le_bytes(p[at..at + 4].try_into().unwrap());
        match shape {
            Shape::U64 => assert_eq!(p.len(), 8, "{reply:?}"),
            Shape::VringState { index } => {
                assert_eq!(p.len(), 8, "{reply:?}");
                assert_eq!(u32_at(0), index, "{reply:?}");
            }
            Shape::Config { offset, size } => {
                assert!(p.len() == 12 || p.len() == 12 + size as usize, "{reply:?}");
                assert_eq!(u32_at(0), offset, "{reply:?}");
                assert_eq!(u32_at(4) as usize, p.len() - 12, "{reply:?}");
            }
        }
        let value = || u64::from_le_bytes(p[..8].try_into().unwrap());
        match request {
            GET_FEATURES => {
                frontend.backend_has_protocol_features = value() & PROTOCOL_FEATURES_BIT != 0
            }
            GET_PROTOCOL_FEATURES => {
                assert_eq!(value() & !RELAYED_PROTOCOL_FEATURES, 0, "{reply:?}");
                frontend.offered = value();
            }
            _ => {}
        }
        true
    }

    /// ray-gpu answers correctly (for the preamble).
    fn good_reply(&self, request: u32, value: u64) {
        let reply = encode(request, VERSION_1 | FLAG_REPLY, &value.to_le_bytes());
        send_with_fds(&self.gpu, &reply, &[]).unwrap();
    }
}

fn run(data: &[u8]) {
    let mut input = Input(data);
    let mode = input.u8();
    let (engine_end, engine) = UnixStream::pair().unwrap();
    let (gpu_end, gpu) = UnixStream::pair().unwrap();
    for sock in [&engine, &gpu] {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    let (events_tx, events) = mpsc::channel();
    let config = RelayConfig {
        guest_ram: GuestRam::AnyMemfd,
        reply_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(2),
    };
    let relay = Relay::spawn(
        engine_end,
        gpu_end,
        config,
        Box::new(move |event| {
            let _ = events_tx.send(event);
        }),
    )
    .unwrap();
    let peers = Peers { engine, gpu };
    let mut frontend = Frontend::default();

    if mode & 1 != 0 {
        assert!(peers.request(GET_FEATURES, VERSION_1, &[]));
        peers.good_reply(GET_FEATURES, PROTOCOL_FEATURES_BIT | 1 << 32);
        assert!(peers.reply(&mut frontend, GET_FEATURES, Shape::U64));
        assert!(peers.request(GET_PROTOCOL_FEATURES, VERSION_1, &[]));
        peers.good_reply(GET_PROTOCOL_FEATURES, 0xffff_ffff);
        assert!(peers.reply(&mut frontend, GET_PROTOCOL_FEATURES, Shape::U64));
        let acked = frontend.offered;
        assert!(peers.request(SET_PROTOCOL_FEATURES, VERSION_1, &acked.to_le_bytes()));
        frontend.acked = acked;
    }

    let mut alive = true;
    while alive && !input.is_empty() {
        let selector = input.u8();
        let param = input.u64();
        let need_reply = if frontend.reply_ack() {
            FLAG_NEED_REPLY
        } else {
            0
        };
        let (request, flags, payload, shape) = match selector % 10 {
            0 => (GET_FEATURES, VERSION_1, vec![], Some(Shape::U64)),
            1 => (GET_PROTOCOL_FEATURES, VERSION_1, vec![], Some(Shape::U64)),
            2 => (GET_QUEUE_NUM, VERSION_1, vec![], Some(Shape::U64)),
            3 => (GET_MAX_MEM_SLOTS, VERSION_1, vec![], Some(Shape::U64)),
            4 => (GET_STATUS, VERSION_1, vec![], Some(Shape::U64)),
            5 => {
                let index = param as u32 & 0xff;
                let mut payload = index.to_le_bytes().to_vec();
                payload.extend_from_slice(&0u32.to_le_bytes());
                (
                    GET_VRING_BASE,
                    VERSION_1,
                    payload,
                    Some(Shape::VringState { index }),
                )
            }
            6 => {
                let offset = param as u32 % 0x1000;
                let size = 1 + (param >> 32) as u32 % (0x1000 - offset).min(256);
                let mut payload = Vec::new();
                for word in [offset, size, 0] {
                    payload.extend_from_slice(&word.to_le_bytes());
                }
                payload.resize(12 + size as usize, 0);
                (
                    GET_CONFIG,
                    VERSION_1,
                    payload,
                    Some(Shape::Config { offset, size }),
                )
            }
            7 => {
                let shape = frontend.reply_ack().then_some(Shape::U64);
                (
                    SET_FEATURES,
                    VERSION_1 | need_reply,
                    param.to_le_bytes().to_vec(),
                    shape,
                )
            }
            8 => {
                let shape = frontend.reply_ack().then_some(Shape::U64);
                let mut payload = 0u32.to_le_bytes().to_vec();
                payload.extend_from_slice(&(1 + param as u32 % 1024).to_le_bytes());
                (SET_VRING_NUM, VERSION_1 | need_reply, payload, shape)
            }
            _ => {
                // QEMU acks only what it was offered.
                let acked = frontend.offered & param;
                frontend.acked = acked;
                (
                    SET_PROTOCOL_FEATURES,
                    VERSION_1,
                    acked.to_le_bytes().to_vec(),
                    None,
                )
            }
        };
        if !peers.request(request, flags, &payload) {
            break;
        }
        let Some(shape) = shape else {
            continue;
        };
        // ray-gpu's answer: the fuzzer's.
        let spec = input.u8();
        let header = input.bytes(HEADER_SIZE);
        let size = if header.len() == HEADER_SIZE {
            u32::from_le_bytes(header[8..12].try_into().unwrap()) as usize
        } else {
            usize::MAX
        };
        let complete = size <= MAX_PAYLOAD && input.0.len() >= size;
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(if complete {
            input.bytes(size)
        } else {
            input.rest()
        });
        let fds: Vec<OwnedFd> = fd_spec(spec).into_iter().map(make_fd).collect();
        if send_with_fds(&peers.gpu, &bytes, &fds).is_err() {
            break;
        }
        if !complete {
            let _ = peers.gpu.shutdown(Shutdown::Write);
        }
        alive = peers.reply(&mut frontend, request, shape);
    }
    drop(peers);
    drop(relay);
    for event in events.try_iter() {
        if common::verbose() {
            eprintln!("relay event: {event:?}");
        }
        match event {
            RelayEvent::FrontendViolation(why) => panic!("a correct frontend was blamed: {why}"),
            RelayEvent::Failed(why) => panic!("the relay failed: {why}"),
            RelayEvent::DisplaySocket(_)
            | RelayEvent::BackendViolation(_)
            | RelayEvent::Closed {
                side: Side::Engine | Side::Gpu,
            } => {}
        }
    }
}

fuzz_target!(|data: &[u8]| run(data));
