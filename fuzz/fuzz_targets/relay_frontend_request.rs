//! rayvmm's vhost-user relay, frontend side: arbitrary bytes and descriptors written by
//! "QEMU" into a real `vmm::relay::Relay` running over socketpairs, with a well-behaved fake
//! ray-gpu behind it that answers what it is asked. The relay's reading (header, payload,
//! descriptor count, timeouts) and its request rules (codes, flags, sizes, descriptor kinds,
//! fields, the REPLY_ACK negotiation) all run. Must never panic or hang; what reaches
//! ray-gpu must be a checked request; what reaches QEMU must be a reply; and since the fake
//! ray-gpu is correct, the relay must never blame it.
//!
//! Input: a mode byte (bit 0: guest RAM is one given memfd, else any memfd), then writes:
//! a spec byte (bits 0-1: descriptor count, plus 8 with bit 4; bits 2-3: kind: guest-RAM
//! memfd, signalled eventfd, unix stream socket, /dev/null), a u16 length, that many bytes.
#![no_main]

mod common;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use common::{
    chunks, encode, make_fd, memfd, read_message, send_with_fds, FdKind, Input, Message,
    FLAG_NEED_REPLY, FLAG_REPLY, VERSION_1,
};
use libfuzzer_sys::fuzz_target;
use vmm::relay::{FileIdentity, GuestRam, Relay, RelayConfig, RelayEvent, Side};

/// Requests the relay carries (vmm/src/relay/rules.rs); GPU_SET_SOCKET (33) is kept back.
const CARRIED: &[u32] = &[
    1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 25, 34, 36, 37, 38, 39, 40,
];

/// The fake ray-gpu's answer, as the vhost crate's backend gives it.
fn answer(msg: &Message) -> Option<Vec<u8>> {
    let flags = VERSION_1 | FLAG_REPLY;
    let u64_reply = |v: u64| Some(encode(msg.request, flags, &v.to_le_bytes()));
    match msg.request {
        1 => u64_reply((1 << 30) | (1 << 32) | 1),
        15 => u64_reply(0xffff_ffff),
        17 => u64_reply(2),
        36 => u64_reply(8),
        40 => u64_reply(0xf),
        11 => {
            let mut payload = msg.payload[..4].to_vec();
            payload.extend_from_slice(&0u32.to_le_bytes());
            Some(encode(msg.request, flags, &payload))
        }
        24 => {
            let mut payload = msg.payload[..12].to_vec();
            let size = u32::from_le_bytes(msg.payload[4..8].try_into().unwrap()) as usize;
            payload.resize(12 + size, 0);
            Some(encode(msg.request, flags, &payload))
        }
        _ if msg.flags & FLAG_NEED_REPLY != 0 => u64_reply(0),
        _ => None,
    }
}

fn poll_in(fds: &mut [libc::pollfd]) -> usize {
    for fd in fds.iter_mut() {
        fd.revents = 0;
    }
    // SAFETY: `fds` is a valid array of pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, 5000) };
    assert!(n != 0, "the relay neither answered nor ended within 5 s");
    n.max(0) as usize
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mode = input.u8();
    let guest_ram_fd = memfd(&[]);
    let guest_ram = if mode & 1 != 0 {
        GuestRam::File(FileIdentity::of(guest_ram_fd.as_fd()).unwrap())
    } else {
        GuestRam::AnyMemfd
    };
    let writes = chunks(&mut input, 64);

    let (engine_end, engine) = UnixStream::pair().unwrap();
    let (gpu_end, gpu) = UnixStream::pair().unwrap();
    let (events_tx, events) = mpsc::channel();
    let config = RelayConfig {
        guest_ram,
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

    // QEMU writes everything, then closes its sending side (the inputs are far smaller than
    // the socket's buffer, so this never waits on the relay).
    for write in &writes {
        let fds: Vec<OwnedFd> = write
            .fds
            .iter()
            .map(|&kind| match kind {
                FdKind::Memfd => guest_ram_fd.try_clone().unwrap(),
                other => make_fd(other),
            })
            .collect();
        if send_with_fds(&engine, write.bytes, &fds).is_err() {
            break;
        }
    }
    let _ = engine.shutdown(std::net::Shutdown::Write);

    // ray-gpu answers; QEMU reads the replies; until the relay closes both.
    let mut pollfds = [
        libc::pollfd {
            fd: gpu.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: engine.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    while pollfds.iter().any(|p| p.fd >= 0) {
        poll_in(&mut pollfds);
        if pollfds[0].revents != 0 {
            match read_message(&gpu, 4096) {
                Ok(Some(msg)) => {
                    assert_eq!(msg.flags & !FLAG_NEED_REPLY, VERSION_1, "forwarded {msg:?}");
                    assert!(CARRIED.contains(&msg.request), "forwarded {msg:?}");
                    assert!(msg.fds <= 8, "forwarded {msg:?}");
                    if let Some(reply) = answer(&msg) {
                        if send_with_fds(&gpu, &reply, &[]).is_err() {
                            pollfds[0].fd = -1;
                        }
                    }
                }
                Ok(None) | Err(_) => pollfds[0].fd = -1,
            }
        }
        if pollfds[1].revents != 0 {
            match read_message(&engine, 4096 + 12) {
                Ok(Some(reply)) => {
                    if common::verbose() {
                        eprintln!("QEMU got {reply:?}");
                    }
                    assert_eq!(reply.flags, VERSION_1 | FLAG_REPLY, "replied {reply:?}");
                    assert_eq!(reply.fds, 0, "replied {reply:?}");
                }
                Ok(None) | Err(_) => pollfds[1].fd = -1,
            }
        }
    }
    drop(relay);
    for event in events.try_iter() {
        if common::verbose() {
            eprintln!("relay event: {event:?}");
        }
        match event {
            RelayEvent::BackendViolation(why) => panic!("a correct backend was blamed: {why}"),
            RelayEvent::Failed(why) => panic!("the relay failed: {why}"),
            RelayEvent::Closed { side: Side::Gpu } => panic!("the relay saw ray-gpu close"),
            RelayEvent::DisplaySocket(_)
            | RelayEvent::FrontendViolation(_)
            | RelayEvent::Closed { side: Side::Engine } => {}
        }
    }
});
