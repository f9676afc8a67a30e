//! One packet on the control tube, as the receiving end sees it: arbitrary bytes (and up to
//! three descriptors) sent on a real tube pair, received and deserialised as `FromGpu` (what
//! rayvmm reads from the jailed GPU process) or `ToGpu` (what ray-gpu reads). Must never
//! panic; what is accepted must survive a round trip through the tube again; descriptors that
//! arrive must all be closed (none leak, whatever the message says about them: the count of
//! open descriptors is the same after each input as before it).
//!
//! Input: a flags byte (bit 0: `ToGpu` instead of `FromGpu`; bits 1-2: descriptors attached;
//! bits 3-4: descriptors the receiver accepts), then the packet.
#![no_main]

use std::os::fd::{AsFd, OwnedFd};

use control::messages::{FromGpu, ToGpu};
use control::tube::{Tube, TubeError, DEFAULT_MAX_MESSAGE_BYTES};
use libfuzzer_sys::fuzz_target;

mod common;

fn round_trip<T>(sender: &Tube, receiver: &Tube, msg: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let bytes = serde_json::to_vec(msg).expect("an accepted message serialises");
    if bytes.len() > DEFAULT_MAX_MESSAGE_BYTES {
        return;
    }
    sender.send(msg).expect("an accepted message can be sent");
    let again: T = receiver
        .recv()
        .expect("an accepted message is accepted again");
    assert_eq!(
        serde_json::to_vec(&again).unwrap(),
        bytes,
        "round trip changed {msg:?}"
    );
}

fn run(data: &[u8]) {
    let Some((&flags, packet)) = data.split_first() else {
        return;
    };
    let to_gpu = flags & 1 != 0;
    let attached = usize::from((flags >> 1) & 3);
    let accepted = usize::from((flags >> 3) & 3);
    let (sender, receiver) = Tube::pair().unwrap();
    let files: Vec<OwnedFd> = (0..attached)
        .map(|_| std::fs::File::open("/dev/null").unwrap().into())
        .collect();
    let borrowed: Vec<_> = files.iter().map(|f| f.as_fd()).collect();
    sender.send_bytes(packet, &borrowed).unwrap();
    drop(files);

    if to_gpu {
        match receiver.recv_with_fds::<ToGpu>(accepted) {
            Ok((msg, mut fds)) => {
                assert!(fds.len() <= accepted);
                if let ToGpu::Start(start) = &msg {
                    // ray-gpu takes the vhost-user socket by the index the message names.
                    if let Some(index) = start.vhost_user_fd {
                        let _ = usize::try_from(index).map(|i| fds.take(i));
                    }
                }
                round_trip(&sender, &receiver, &msg);
            }
            Err(TubeError::Malformed(_))
            | Err(TubeError::TooManyFds { .. })
            | Err(TubeError::UnexpectedFds { .. })
            | Err(TubeError::Disconnected) => {}
            Err(other) => panic!("unexpected tube error: {other}"),
        }
    } else {
        match receiver.recv_with_fds::<FromGpu>(accepted) {
            Ok((msg, fds)) => {
                assert!(fds.len() <= accepted);
                round_trip(&sender, &receiver, &msg);
            }
            Err(TubeError::Malformed(_))
            | Err(TubeError::TooManyFds { .. })
            | Err(TubeError::UnexpectedFds { .. })
            | Err(TubeError::Disconnected) => {}
            Err(other) => panic!("unexpected tube error: {other}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() > DEFAULT_MAX_MESSAGE_BYTES {
        return;
    }
    // Counted inside the input: libFuzzer itself opens descriptors between inputs (its
    // symbolizer's pipes).
    let before = common::open_fds();
    run(data);
    assert_eq!(common::open_fds(), before, "a descriptor leaked");
});
