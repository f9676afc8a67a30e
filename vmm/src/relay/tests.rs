//! The relay against a fake QEMU and a fake (often hostile) ray-gpu, both driven by the test
//! over real socketpairs.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use nix::cmsg_space;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};

use super::{FileIdentity, Relay, RelayConfig, RelayEvent, Side};

/// How long the test waits for anything the relay should do at once.
const PATIENCE: Duration = Duration::from_secs(5);
/// The reply and message bound of the tests that check them (the others get [`PATIENCE`], so
/// a loaded machine does not make them fail).
const SHORT_TIMEOUT: Duration = Duration::from_millis(200);

const GET_FEATURES: u32 = 1;
const SET_OWNER: u32 = 3;
const SET_MEM_TABLE: u32 = 5;
const SET_LOG_BASE: u32 = 6;
const SET_VRING_NUM: u32 = 8;
const GET_VRING_BASE: u32 = 11;
const SET_VRING_KICK: u32 = 12;
const SET_VRING_CALL: u32 = 13;
const GET_PROTOCOL_FEATURES: u32 = 15;
const SET_PROTOCOL_FEATURES: u32 = 16;
const GET_QUEUE_NUM: u32 = 17;
const GET_CONFIG: u32 = 24;
const GPU_SET_SOCKET: u32 = 33;

const VERSION: u32 = 0x1;
const REPLY: u32 = 0x5;
const NEED_REPLY: u32 = 0x9;

/// The virtio features the fake backend offers (VERSION_1, PROTOCOL_FEATURES, some GPU bits).
const FEATURES: u64 = (1 << 32) | (1 << 30) | 0b11;
/// MQ, REPLY_ACK, CONFIG, CONFIGURE_MEM_SLOTS: what ray-gpu offers.
const PROTOCOL_FEATURES: u64 = 0x1 | 0x8 | 0x200 | 0x8000;
/// Guest RAM size in tests.
const RAM_SIZE: u64 = 1 << 20;

/// A relay between a fake QEMU (`qemu`) and a fake ray-gpu (`gpu`).
struct Harness {
    qemu: UnixStream,
    gpu: UnixStream,
    events: Receiver<RelayEvent>,
    ram: File,
    _relay: Relay,
}

fn start() -> Harness {
    start_with_timeout(PATIENCE)
}

/// A relay whose reply and message bounds are `timeout`.
fn start_with_timeout(timeout: Duration) -> Harness {
    start_with_config(|ram| RelayConfig {
        guest_ram: FileIdentity::of(ram).unwrap().into(),
        reply_timeout: timeout,
        io_timeout: timeout,
    })
}

/// A relay configured by `config`, given the harness's guest RAM.
fn start_with_config(config: impl FnOnce(&File) -> RelayConfig) -> Harness {
    let ram = File::from(memfd_create("guest-ram", MFdFlags::MFD_CLOEXEC).unwrap());
    ram.set_len(RAM_SIZE).unwrap();
    let (qemu, engine) = UnixStream::pair().unwrap();
    let (gpu, backend) = UnixStream::pair().unwrap();
    qemu.set_read_timeout(Some(PATIENCE)).unwrap();
    gpu.set_read_timeout(Some(PATIENCE)).unwrap();
    let config = config(&ram);
    let (sender, events) = mpsc::channel();
    let relay = Relay::spawn(
        engine,
        backend,
        config,
        Box::new(move |event| {
            let _ = sender.send(event);
        }),
    )
    .unwrap();
    Harness {
        qemu,
        gpu,
        events,
        ram,
        _relay: relay,
    }
}

/// A message's bytes: header then payload.
fn message(request: u32, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&request.to_le_bytes());
    bytes.extend_from_slice(&flags.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A message whose payload is one `u64`.
fn message_u64(request: u32, flags: u32, value: u64) -> Vec<u8> {
    message(request, flags, &value.to_le_bytes())
}

/// A message whose payload is two `u32`s (a vring state).
fn message_pair(request: u32, flags: u32, first: u32, second: u32) -> Vec<u8> {
    let mut payload = first.to_le_bytes().to_vec();
    payload.extend_from_slice(&second.to_le_bytes());
    message(request, flags, &payload)
}

/// A SET_MEM_TABLE payload of one region per `(guest address, size, offset)`.
fn mem_table(regions: &[(u64, u64, u64)]) -> Vec<u8> {
    let mut payload = (regions.len() as u32).to_le_bytes().to_vec();
    payload.extend_from_slice(&0u32.to_le_bytes());
    for &(guest, size, offset) in regions {
        for value in [guest, size, 0x7f00_0000_0000 + guest, offset] {
            payload.extend_from_slice(&value.to_le_bytes());
        }
    }
    payload
}

/// A GET_CONFIG payload (or reply) for `data` at `offset`.
fn config(offset: u32, data: &[u8]) -> Vec<u8> {
    let mut payload = offset.to_le_bytes().to_vec();
    payload.extend_from_slice(&(data.len() as u32).to_le_bytes());
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.extend_from_slice(data);
    payload
}

/// Sends `bytes` in one go with `fds` attached.
fn send(sock: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    let sent = sendmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &[IoSlice::new(bytes)],
        cmsgs,
        MsgFlags::empty(),
        None,
    )
    .unwrap();
    assert_eq!(sent, bytes.len());
}

/// Receives one whole message (header and payload bytes) and the descriptors that came with
/// it, waiting at most [`PATIENCE`].
fn receive(sock: &UnixStream) -> (Vec<u8>, Vec<OwnedFd>) {
    let mut header = [0u8; 12];
    let mut space = cmsg_space!([RawFd; 8]);
    let mut fds = Vec::new();
    {
        let mut iov = [IoSliceMut::new(&mut header)];
        let msg = recvmsg::<UnixAddr>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        assert_eq!(msg.bytes, 12, "short or missing header");
        for cmsg in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: SCM_RIGHTS installed these descriptors in this process for us alone.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
    }
    let size = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
    let mut bytes = header.to_vec();
    bytes.resize(12 + size, 0);
    (&*sock).read_exact(&mut bytes[12..]).unwrap();
    (bytes, fds)
}

/// Receives one message without descriptors.
fn receive_bytes(sock: &UnixStream) -> Vec<u8> {
    let (bytes, fds) = receive(sock);
    assert!(fds.is_empty(), "unexpected descriptors");
    bytes
}

/// Whether the peer closed: the next read returns end of file.
fn closed(sock: &UnixStream) -> bool {
    let mut byte = [0u8; 1];
    matches!((&*sock).read(&mut byte), Ok(0))
}

/// The next event, in words (display sockets as "display socket").
fn next_event(harness: &Harness) -> String {
    match harness
        .events
        .recv_timeout(PATIENCE)
        .expect("no event from the relay")
    {
        RelayEvent::DisplaySocket(_) => "display socket".to_string(),
        RelayEvent::FrontendViolation(why) => format!("frontend violation: {why}"),
        RelayEvent::BackendViolation(why) => format!("backend violation: {why}"),
        RelayEvent::Closed { side } => format!("closed: {side:?}"),
        RelayEvent::Failed(why) => format!("failed: {why}"),
    }
}

/// Sends `request` from QEMU and answers `reply` from ray-gpu; returns what each received.
fn exchange(harness: &Harness, request: &[u8], reply: &[u8]) -> (Vec<u8>, Vec<u8>) {
    send(&harness.qemu, request, &[]);
    let at_gpu = receive_bytes(&harness.gpu);
    send(&harness.gpu, reply, &[]);
    let at_qemu = receive_bytes(&harness.qemu);
    (at_gpu, at_qemu)
}

/// Negotiates features with REPLY_ACK, as QEMU does first.
fn negotiate(harness: &Harness) {
    exchange(
        harness,
        &message(GET_FEATURES, VERSION, &[]),
        &message_u64(GET_FEATURES, REPLY, FEATURES),
    );
    exchange(
        harness,
        &message(GET_PROTOCOL_FEATURES, VERSION, &[]),
        &message_u64(GET_PROTOCOL_FEATURES, REPLY, PROTOCOL_FEATURES),
    );
    send(
        &harness.qemu,
        &message_u64(SET_PROTOCOL_FEATURES, VERSION, PROTOCOL_FEATURES),
        &[],
    );
    receive_bytes(&harness.gpu);
}

/// The next event, which must be a display socket.
fn display_socket(harness: &Harness) -> UnixStream {
    match harness
        .events
        .recv_timeout(PATIENCE)
        .expect("no event from the relay")
    {
        RelayEvent::DisplaySocket(socket) => socket,
        other => panic!("expected the display socket, got {other:?}"),
    }
}

fn eventfd() -> EventFd {
    EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).unwrap()
}

// ---- well-formed traffic ----

#[test]
fn negotiation_is_forwarded_byte_exact_both_ways() {
    let harness = start();
    let requests = [
        message(GET_FEATURES, VERSION, &[]),
        message(GET_PROTOCOL_FEATURES, VERSION, &[]),
        message(GET_QUEUE_NUM, VERSION, &[]),
    ];
    let replies = [
        message_u64(GET_FEATURES, REPLY, FEATURES),
        message_u64(GET_PROTOCOL_FEATURES, REPLY, PROTOCOL_FEATURES),
        message_u64(GET_QUEUE_NUM, REPLY, 2),
    ];

    let seen: Vec<(Vec<u8>, Vec<u8>)> = requests
        .iter()
        .zip(&replies)
        .map(|(q, r)| exchange(&harness, q, r))
        .collect();

    let expected: Vec<(Vec<u8>, Vec<u8>)> = requests.into_iter().zip(replies).collect();
    assert_eq!(seen, expected);
}

#[test]
fn requests_without_reply_are_forwarded_byte_exact() {
    let harness = start();
    negotiate(&harness);
    let owner = message(SET_OWNER, VERSION, &[]);
    let ring = message_pair(SET_VRING_NUM, VERSION, 0, 256);

    send(&harness.qemu, &owner, &[]);
    send(&harness.qemu, &ring, &[]);

    assert_eq!(receive_bytes(&harness.gpu), owner);
    assert_eq!(receive_bytes(&harness.gpu), ring);
}

#[test]
fn need_reply_ack_is_forwarded_back_to_qemu() {
    let harness = start();
    negotiate(&harness);
    let request = message_pair(SET_VRING_NUM, NEED_REPLY, 0, 256);
    let ack = message_u64(SET_VRING_NUM, REPLY, 0);

    let seen = exchange(&harness, &request, &ack);

    assert_eq!(seen, (request, ack));
}

#[test]
fn get_config_and_its_reply_are_forwarded_byte_exact() {
    let harness = start();
    negotiate(&harness);
    let request = message(GET_CONFIG, VERSION, &config(0, &[0u8; 24]));
    let reply = message(GET_CONFIG, REPLY, &config(0, &[7u8; 24]));

    let seen = exchange(&harness, &request, &reply);

    assert_eq!(seen, (request, reply));
}

#[test]
fn get_vring_base_and_its_reply_are_forwarded_byte_exact() {
    let harness = start();
    let request = message_pair(GET_VRING_BASE, VERSION, 1, 0);
    let reply = message_pair(GET_VRING_BASE, REPLY, 1, 42);

    let seen = exchange(&harness, &request, &reply);

    assert_eq!(seen, (request, reply));
}

#[test]
fn protocol_features_the_relay_does_not_carry_are_hidden_from_qemu() {
    let harness = start();
    let backend_req_and_inflight = (1 << 5) | (1 << 12);

    let (_, at_qemu) = exchange(
        &harness,
        &message(GET_PROTOCOL_FEATURES, VERSION, &[]),
        &message_u64(
            GET_PROTOCOL_FEATURES,
            REPLY,
            PROTOCOL_FEATURES | backend_req_and_inflight,
        ),
    );

    assert_eq!(
        at_qemu,
        message_u64(GET_PROTOCOL_FEATURES, REPLY, PROTOCOL_FEATURES)
    );
}

#[test]
fn mem_table_memfd_arrives_as_the_same_inode() {
    let harness = start();
    let request = message(SET_MEM_TABLE, VERSION, &mem_table(&[(0, RAM_SIZE, 0)]));

    send(&harness.qemu, &request, &[harness.ram.as_fd()]);
    let (bytes, fds) = receive(&harness.gpu);

    let identities: Vec<FileIdentity> =
        fds.iter().map(|fd| FileIdentity::of(fd).unwrap()).collect();
    assert_eq!(bytes, request);
    assert_eq!(identities, vec![FileIdentity::of(&harness.ram).unwrap()]);
}

#[test]
fn kick_eventfd_arrives_as_the_same_eventfd() {
    let harness = start();
    let kick = eventfd();
    let request = message_u64(SET_VRING_KICK, VERSION, 0);

    send(&harness.qemu, &request, &[kick.as_fd()]);
    let (bytes, mut fds) = receive(&harness.gpu);
    kick.write(3).unwrap();
    let mut counter = [0u8; 8];
    File::from(fds.remove(0)).read_exact(&mut counter).unwrap();

    assert_eq!(bytes, request);
    assert_eq!(u64::from_le_bytes(counter), 3);
}

#[test]
fn call_without_fd_is_forwarded_when_nofd_is_set() {
    let harness = start();
    let request = message_u64(SET_VRING_CALL, VERSION, 0x100);

    send(&harness.qemu, &request, &[]);

    assert_eq!(receive(&harness.gpu).0, request);
}

#[test]
fn config_failure_reply_without_config_bytes_is_forwarded() {
    let harness = start();
    negotiate(&harness);
    let request = message(GET_CONFIG, VERSION, &config(0, &[0u8; 24]));
    let failure = message(GET_CONFIG, REPLY, &config(0, &[]));

    let seen = exchange(&harness, &request, &failure);

    assert_eq!(seen, (request, failure));
}

// ---- the display socket ----

#[test]
fn display_socket_is_kept_for_rayvmm_and_never_forwarded() {
    let harness = start();
    let (qemu_display, relay_display) = UnixStream::pair().unwrap();
    let next = message(GET_FEATURES, VERSION, &[]);

    send(
        &harness.qemu,
        &message(GPU_SET_SOCKET, VERSION, &[]),
        &[relay_display.as_fd()],
    );
    send(&harness.qemu, &next, &[]);
    let mut kept = display_socket(&harness);
    kept.write_all(b"frame").unwrap();
    let mut seen = [0u8; 5];
    (&qemu_display).read_exact(&mut seen).unwrap();

    assert_eq!(&seen, b"frame");
    assert_eq!(receive_bytes(&harness.gpu), next);
}

#[test]
fn display_socket_with_need_reply_is_acked_by_the_relay() {
    let harness = start();
    negotiate(&harness);
    let (_qemu_display, relay_display) = UnixStream::pair().unwrap();

    send(
        &harness.qemu,
        &message(GPU_SET_SOCKET, NEED_REPLY, &[]),
        &[relay_display.as_fd()],
    );
    let at_qemu = receive_bytes(&harness.qemu);

    assert_eq!(at_qemu, message_u64(GPU_SET_SOCKET, REPLY, 0));
    assert_eq!(next_event(&harness), "display socket");
}

#[test]
fn display_socket_that_is_not_a_socket_is_refused() {
    let harness = start();
    let kick = eventfd();

    send(
        &harness.qemu,
        &message(GPU_SET_SOCKET, VERSION, &[]),
        &[kick.as_fd()],
    );

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU sent GPU_SET_SOCKET whose descriptor 0 is not a unix stream socket: \
         file mode 0o600"
    );
}

// ---- frontend refusals ----

#[test]
fn mem_table_region_fd_that_is_not_guest_ram_is_refused() {
    let harness = start();
    let other = File::from(memfd_create("not-ram", MFdFlags::MFD_CLOEXEC).unwrap());
    other.set_len(RAM_SIZE).unwrap();
    let other_id = FileIdentity::of(&other).unwrap();

    send(
        &harness.qemu,
        &message(SET_MEM_TABLE, VERSION, &mem_table(&[(0, RAM_SIZE, 0)])),
        &[other.as_fd()],
    );

    assert_eq!(
        next_event(&harness),
        format!(
            "frontend violation: QEMU sent SET_MEM_TABLE whose descriptor 0 is not the guest-RAM memfd: \
             device {} inode {}",
            other_id.dev, other_id.ino
        )
    );
    assert!(closed(&harness.gpu));
}

#[test]
fn mem_table_region_beyond_guest_ram_is_refused() {
    let harness = start();

    send(
        &harness.qemu,
        &message(SET_MEM_TABLE, VERSION, &mem_table(&[(0, RAM_SIZE, 0x1000)])),
        &[harness.ram.as_fd()],
    );

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU sent SET_MEM_TABLE with region at offset 0x1000 of size 0x100000 \
         beyond the guest RAM's 0x100000 bytes"
    );
    assert!(closed(&harness.gpu));
}

#[test]
fn kick_fd_that_is_not_an_eventfd_is_refused() {
    let harness = start();

    send(
        &harness.qemu,
        &message_u64(SET_VRING_KICK, VERSION, 0),
        &[harness.ram.as_fd()],
    );

    assert!(next_event(&harness).starts_with(
        "frontend violation: QEMU sent SET_VRING_KICK whose descriptor 0 is not an eventfd: /memfd:guest-ram"
    ));
    assert!(closed(&harness.gpu));
}

#[test]
fn fd_count_that_differs_from_the_mem_table_is_refused() {
    let harness = start();
    let regions = mem_table(&[(0, RAM_SIZE / 2, 0), (RAM_SIZE, RAM_SIZE / 2, RAM_SIZE / 2)]);

    send(
        &harness.qemu,
        &message(SET_MEM_TABLE, VERSION, &regions),
        &[harness.ram.as_fd()],
    );

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU sent SET_MEM_TABLE with 1 descriptors, expected 2"
    );
    assert!(closed(&harness.gpu));
}

#[test]
fn fd_with_nofd_vring_message_is_refused() {
    let harness = start();
    let call = eventfd();

    send(
        &harness.qemu,
        &message_u64(SET_VRING_CALL, VERSION, 0x100),
        &[call.as_fd()],
    );

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU sent SET_VRING_CALL with 1 descriptors, expected 0"
    );
}

#[test]
fn mem_table_with_more_than_eight_regions_is_refused() {
    let harness = start();
    let regions: Vec<(u64, u64, u64)> = (0..9).map(|i| (i * 0x1000, 0x1000, i * 0x1000)).collect();

    send(
        &harness.qemu,
        &message(SET_MEM_TABLE, VERSION, &mem_table(&regions)),
        &[],
    );

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU sent SET_MEM_TABLE with 9 regions (1 to 8 allowed)"
    );
}

#[test]
fn unknown_request_is_refused() {
    let harness = start();

    send(&harness.qemu, &message(99, VERSION, &[]), &[]);

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU sent UNKNOWN (99), a request the relay does not carry"
    );
    assert!(closed(&harness.gpu));
}

#[test]
fn log_base_request_is_refused() {
    let harness = start();

    send(&harness.qemu, &message_u64(SET_LOG_BASE, VERSION, 0), &[]);

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU sent SET_LOG_BASE (6), a request the relay does not carry"
    );
}

#[test]
fn oversized_request_is_refused_before_its_payload_is_read() {
    let harness = start();
    let mut header = message(SET_OWNER, VERSION, &[]);
    header[8..12].copy_from_slice(&4097u32.to_le_bytes());

    send(&harness.qemu, &header, &[]);

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU (vhost-user frontend) sent SET_OWNER (3) announcing 4097 payload bytes, \
         more than the 4096 allowed"
    );
    assert!(closed(&harness.gpu));
}

#[test]
fn wrong_payload_size_is_refused() {
    let harness = start();

    send(
        &harness.qemu,
        &message(SET_VRING_NUM, VERSION, &[0u8; 4]),
        &[],
    );

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU sent SET_VRING_NUM with 4 payload bytes, expected 8"
    );
}

#[test]
fn need_reply_before_reply_ack_is_refused() {
    let harness = start();

    send(&harness.qemu, &message(SET_OWNER, NEED_REPLY, &[]), &[]);

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU sent SET_OWNER with NEED_REPLY before REPLY_ACK was negotiated"
    );
}

// ---- backend violations ----

#[test]
fn reply_nobody_asked_for_is_a_backend_violation() {
    let harness = start();

    send(
        &harness.gpu,
        &message_u64(GET_FEATURES, REPLY, FEATURES),
        &[],
    );

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu sent GET_FEATURES (1, flags 0x5) while no reply was awaited"
    );
    assert!(closed(&harness.qemu));
}

#[test]
fn flood_of_unsolicited_messages_is_a_backend_violation() {
    let harness = start();
    let flood: Vec<u8> = (0..200)
        .flat_map(|_| message(20, VERSION, &[0u8; 64]))
        .collect();

    (&harness.gpu).write_all(&flood).unwrap();

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu sent NET_SET_MTU (20, flags 0x1) while no reply was awaited"
    );
    assert!(closed(&harness.qemu));
}

#[test]
fn reply_with_wrong_request_code_is_a_backend_violation() {
    let harness = start();

    send(&harness.qemu, &message(GET_FEATURES, VERSION, &[]), &[]);
    receive_bytes(&harness.gpu);
    send(&harness.gpu, &message_u64(GET_QUEUE_NUM, REPLY, 1), &[]);

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu answered GET_QUEUE_NUM (17) while the reply to GET_FEATURES was awaited"
    );
    assert!(closed(&harness.qemu));
}

#[test]
fn reply_too_big_is_a_backend_violation() {
    let harness = start();

    send(&harness.qemu, &message(GET_FEATURES, VERSION, &[]), &[]);
    receive_bytes(&harness.gpu);
    send(&harness.gpu, &message(GET_FEATURES, REPLY, &[0u8; 16]), &[]);

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu replied to GET_FEATURES with 16 payload bytes, expected 8"
    );
    assert!(closed(&harness.qemu));
}

#[test]
fn reply_too_small_is_a_backend_violation() {
    let harness = start();

    send(&harness.qemu, &message(GET_FEATURES, VERSION, &[]), &[]);
    receive_bytes(&harness.gpu);
    send(&harness.gpu, &message(GET_FEATURES, REPLY, &[0u8; 4]), &[]);

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu replied to GET_FEATURES with 4 payload bytes, expected 8"
    );
}

#[test]
fn config_reply_of_another_size_than_asked_is_a_backend_violation() {
    let harness = start();
    negotiate(&harness);

    send(
        &harness.qemu,
        &message(GET_CONFIG, VERSION, &config(0, &[0u8; 24])),
        &[],
    );
    receive_bytes(&harness.gpu);
    send(
        &harness.gpu,
        &message(GET_CONFIG, REPLY, &config(0, &[0u8; 40])),
        &[],
    );

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu replied to GET_CONFIG with 52 payload bytes, expected 36 (or 12 for a failure)"
    );
}

#[test]
fn reply_announcing_a_huge_size_is_a_backend_violation() {
    let harness = start();

    send(&harness.qemu, &message(GET_FEATURES, VERSION, &[]), &[]);
    receive_bytes(&harness.gpu);
    let mut lying = message_u64(GET_FEATURES, REPLY, FEATURES);
    lying[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    send(&harness.gpu, &lying, &[]);

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu (vhost-user backend) sent GET_FEATURES (1) announcing 4294967295 payload \
         bytes, more than the 4096 allowed"
    );
}

#[test]
fn reply_without_reply_flag_is_a_backend_violation() {
    let harness = start();

    send(&harness.qemu, &message(GET_FEATURES, VERSION, &[]), &[]);
    receive_bytes(&harness.gpu);
    send(
        &harness.gpu,
        &message_u64(GET_FEATURES, VERSION, FEATURES),
        &[],
    );

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu replied to GET_FEATURES with header flags 0x1 (expected 0x5)"
    );
}

#[test]
fn reply_with_fds_attached_is_a_backend_violation() {
    let harness = start();
    let smuggled = eventfd();

    send(&harness.qemu, &message(GET_FEATURES, VERSION, &[]), &[]);
    receive_bytes(&harness.gpu);
    send(
        &harness.gpu,
        &message_u64(GET_FEATURES, REPLY, FEATURES),
        &[smuggled.as_fd()],
    );

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu replied to GET_FEATURES with 1 descriptors attached"
    );
    assert!(closed(&harness.qemu));
}

#[test]
fn reply_with_more_descriptors_than_any_message_may_carry_is_a_backend_violation() {
    let harness = start();
    let smuggled: Vec<EventFd> = (0..12).map(|_| eventfd()).collect();
    let fds: Vec<BorrowedFd<'_>> = smuggled.iter().map(AsFd::as_fd).collect();

    send(&harness.qemu, &message(GET_FEATURES, VERSION, &[]), &[]);
    receive_bytes(&harness.gpu);
    send(
        &harness.gpu,
        &message_u64(GET_FEATURES, REPLY, FEATURES),
        &fds,
    );

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu (vhost-user backend) sent more than 8 descriptors with one message"
    );
}

#[test]
fn truncated_reply_then_close_is_a_backend_violation() {
    let mut harness = start();

    send(&harness.qemu, &message(GET_FEATURES, VERSION, &[]), &[]);
    receive_bytes(&harness.gpu);
    send(
        &harness.gpu,
        &message_u64(GET_FEATURES, REPLY, FEATURES)[..16],
        &[],
    );
    harness.gpu = UnixStream::pair().unwrap().0;

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu (vhost-user backend) closed its vhost-user socket in the middle of a \
         message (16 of 20 bytes read)"
    );
    assert!(closed(&harness.qemu));
}

#[test]
fn no_reply_within_the_bound_is_a_backend_violation() {
    let harness = start_with_timeout(SHORT_TIMEOUT);

    send(&harness.qemu, &message(GET_FEATURES, VERSION, &[]), &[]);
    receive_bytes(&harness.gpu);

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu did not reply to GET_FEATURES within 200ms"
    );
    assert!(closed(&harness.qemu));
}

#[test]
fn half_a_reply_that_never_finishes_is_a_backend_violation() {
    let harness = start_with_timeout(SHORT_TIMEOUT);

    send(&harness.qemu, &message(GET_FEATURES, VERSION, &[]), &[]);
    receive_bytes(&harness.gpu);
    send(
        &harness.gpu,
        &message_u64(GET_FEATURES, REPLY, FEATURES)[..6],
        &[],
    );

    assert_eq!(
        next_event(&harness),
        "backend violation: ray-gpu (vhost-user backend) sent a partial message (6 bytes) and nothing more \
         within 200ms"
    );
}

// ---- ends ----

#[test]
fn backend_closing_is_reported_as_closed() {
    let mut harness = start();

    harness.gpu = UnixStream::pair().unwrap().0;

    assert_eq!(next_event(&harness), format!("closed: {:?}", Side::Gpu));
    assert!(closed(&harness.qemu));
}

#[test]
fn qemu_closing_is_reported_as_closed() {
    let mut harness = start();

    harness.qemu = UnixStream::pair().unwrap().0;

    assert_eq!(next_event(&harness), format!("closed: {:?}", Side::Engine));
    assert!(closed(&harness.gpu));
}

#[test]
fn dropping_the_relay_stops_it_and_closes_both_sockets() {
    let harness = start();
    let Harness {
        qemu,
        gpu,
        events,
        _relay: relay,
        ..
    } = harness;

    drop(relay);

    assert!(closed(&qemu));
    assert!(closed(&gpu));
    assert!(events.try_recv().is_err());
}

// ---- a supervisor that does not own guest RAM (the libvirt backend) ----

/// A relay that accepts any memfd as guest RAM.
fn start_any_memfd() -> Harness {
    start_with_config(|_| RelayConfig {
        reply_timeout: PATIENCE,
        io_timeout: PATIENCE,
        ..RelayConfig::any_memfd()
    })
}

#[test]
fn any_memfd_mode_forwards_a_memfd_the_relay_did_not_make() {
    let harness = start_any_memfd();
    let qemus_ram = File::from(memfd_create("pc.ram", MFdFlags::MFD_CLOEXEC).unwrap());
    qemus_ram.set_len(RAM_SIZE).unwrap();
    let request = message(SET_MEM_TABLE, VERSION, &mem_table(&[(0, RAM_SIZE, 0)]));

    send(&harness.qemu, &request, &[qemus_ram.as_fd()]);
    let (bytes, fds) = receive(&harness.gpu);

    let identities: Vec<FileIdentity> =
        fds.iter().map(|fd| FileIdentity::of(fd).unwrap()).collect();
    assert_eq!(bytes, request);
    assert_eq!(identities, vec![FileIdentity::of(&qemus_ram).unwrap()]);
}

#[test]
fn any_memfd_mode_refuses_a_region_file_that_is_not_a_memfd() {
    let harness = start_any_memfd();
    let plain = tempfile::tempfile().unwrap();
    plain.set_len(RAM_SIZE).unwrap();

    send(
        &harness.qemu,
        &message(SET_MEM_TABLE, VERSION, &mem_table(&[(0, RAM_SIZE, 0)])),
        &[plain.as_fd()],
    );

    let event = next_event(&harness);
    assert!(
        event.starts_with(
            "frontend violation: QEMU sent SET_MEM_TABLE whose descriptor 0 is not a memfd: /"
        ),
        "{event}"
    );
    assert!(closed(&harness.gpu));
}

#[test]
fn any_memfd_mode_refuses_an_eventfd_as_guest_ram() {
    let harness = start_any_memfd();
    let not_ram = eventfd();

    send(
        &harness.qemu,
        &message(SET_MEM_TABLE, VERSION, &mem_table(&[(0, RAM_SIZE, 0)])),
        &[not_ram.as_fd()],
    );

    let event = next_event(&harness);
    assert!(
        event.starts_with("frontend violation: QEMU sent SET_MEM_TABLE whose descriptor 0 is not a memfd: file mode"),
        "{event}"
    );
}

#[test]
fn any_memfd_mode_still_bounds_regions_by_the_memfd_size() {
    let harness = start_any_memfd();
    let qemus_ram = File::from(memfd_create("pc.ram", MFdFlags::MFD_CLOEXEC).unwrap());
    qemus_ram.set_len(RAM_SIZE).unwrap();

    send(
        &harness.qemu,
        &message(SET_MEM_TABLE, VERSION, &mem_table(&[(0, RAM_SIZE, 0x1000)])),
        &[qemus_ram.as_fd()],
    );

    assert_eq!(
        next_event(&harness),
        "frontend violation: QEMU sent SET_MEM_TABLE with region at offset 0x1000 of size 0x100000 \
         beyond the guest RAM's 0x100000 bytes"
    );
}
