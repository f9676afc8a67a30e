//! Decoding of one virtio-gpu request from arbitrary bytes: must never panic, and what it
//! accepts must respect the limits.
#![no_main]

use devices::virtio_gpu::protocol::{decode_request, DecodeLimits, GpuCommand};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    if let Ok(request) = decode_request(data, &limits) {
        match request.command {
            GpuCommand::ResourceAttachBacking { entries, .. }
            | GpuCommand::ResourceCreateBlob { entries, .. } => {
                assert!(entries.len() <= limits.max_backing_entries as usize)
            }
            GpuCommand::Submit3d(commands) => {
                assert!(commands.len() <= limits.max_submit_bytes as usize)
            }
            _ => {}
        }
    }
});
