//! What the vhost-user data plane costs: a frontend in this process drives the backend over a
//! real socketpair, real kick/call eventfds and a shared memfd, and a stand-in device answers.
//!
//! - small commands: one 24-byte request, one 24-byte response, round trip by round trip
//!   (median and p99 latency), and in batches of 64 per kick (commands per second);
//! - bulk transfer: the device copies a 1080p and a 4K B8G8R8X8 frame out of scattered 4 KiB
//!   guest pages into a host buffer, as TRANSFER_TO_HOST_2D does, compared with one memcpy of
//!   the same bytes measured in the same run.
//!
//! Run: `cargo bench -p vhost-user-device --bench vhost_user_transport`

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use vhost_user_device::{Backend, DeviceModel, DisplaySocket};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use support::frontend::Frontend;
use support::guest::{Buffer, DriverQueue, GuestRam};

const PAGE: u64 = 4096;

/// Answers every chain with a 24-byte header; a chain whose request is a list of
/// `(address, length)` entries also gets those guest bytes copied into its host buffer.
#[derive(Default)]
struct CopyDevice {
    host: Vec<u8>,
}

impl DeviceModel for CopyDevice {
    fn queue_count(&self) -> usize {
        2
    }
    fn features(&self) -> u64 {
        0
    }
    fn ack_features(&mut self, _: u64) {}
    fn read_config(&self, _: u64, _: &mut [u8]) -> bool {
        false
    }
    fn write_config(&mut self, _: u64, _: &[u8]) -> bool {
        false
    }
    fn set_display(&mut self, _: DisplaySocket) {}
    fn process_queue(&mut self, memory: &GuestMemoryMmap, queue: &mut Queue, _: usize) -> bool {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(memory) {
            let head = chain.head_index();
            let mut reader = chain.clone().reader(memory).expect("reader");
            let mut writer = chain.writer(memory).expect("writer");
            let mut request = vec![0u8; reader.available_bytes()];
            reader.read_exact(&mut request).expect("request");
            let mut offset = 0;
            for entry in request[24..].chunks_exact(16) {
                let addr = u64::from_le_bytes(entry[0..8].try_into().unwrap());
                let len = u32::from_le_bytes(entry[8..12].try_into().unwrap()) as usize;
                memory
                    .read_slice(&mut self.host[offset..offset + len], GuestAddress(addr))
                    .expect("copy from guest");
                offset += len;
            }
            std::io::Write::write_all(&mut writer, &[0u8; 24]).expect("response");
            queue.add_used(memory, head, 24).expect("used");
            used = true;
        }
        used
    }
    fn fence_event(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    fn process_fences(&mut self, _: &GuestMemoryMmap, _: &mut Queue) -> bool {
        false
    }
    fn reset(&mut self) {}
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    thread::spawn(move || {
        let device = CopyDevice {
            host: vec![0; 3840 * 2160 * 4],
        };
        Backend::new(device).expect("backend").serve(theirs)
    });
    let frontend = Frontend::new(ours);
    frontend.negotiate(0);
    let mut ram = GuestRam::new(256 << 20);
    assert!(frontend.set_mem_table(&[ram.region()], &[ram.file.as_raw_fd()]));
    let mut queue = DriverQueue::setup(&frontend, 0, 1024);
    let request = ram.alloc(24, 8);
    let response = ram.alloc(24, 8);
    ram.write(request, &[0u8; 24]);
    let small = [
        Buffer::readable(request, 24),
        Buffer::writable(response, 24),
    ];

    // Small commands, one at a time.
    for _ in 0..1000 {
        queue.roundtrip(&ram, &small);
    }
    let rounds = 20_000;
    let mut latencies = Vec::with_capacity(rounds);
    let start = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        queue.roundtrip(&ram, &small);
        latencies.push(t.elapsed());
    }
    let total = start.elapsed();
    latencies.sort();
    println!(
        "small command round trip: {:.0} commands/s, median {:?}, p99 {:?} ({rounds} commands)",
        rounds as f64 / total.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );

    // Small commands, 64 per kick.
    let batches = 500;
    let start = Instant::now();
    for _ in 0..batches {
        for _ in 0..64 {
            queue.push(&ram, &small);
        }
        queue.notify();
        for _ in 0..64 {
            queue.wait_used(&ram, Duration::from_secs(10));
        }
    }
    println!(
        "small commands, 64 per kick: {:.0} commands/s",
        f64::from(batches * 64) / start.elapsed().as_secs_f64()
    );

    // Bulk copies out of scattered guest pages.
    for (name, width, height) in [("1080p", 1920u64, 1080u64), ("4K", 3840, 2160)] {
        let bytes = width * height * 4;
        let pages = bytes.div_ceil(PAGE);
        // Every other page, so no two entries are contiguous (as a guest's framebuffer SG list).
        let frame = ram.alloc(pages * 2 * PAGE, PAGE);
        let mut entries = vec![0u8; 24];
        for i in 0..pages {
            let len = PAGE.min(bytes - i * PAGE);
            entries.extend_from_slice(&(frame + i * 2 * PAGE).to_le_bytes());
            entries.extend_from_slice(&(len as u32).to_le_bytes());
            entries.extend_from_slice(&0u32.to_le_bytes());
        }
        let list = ram.alloc(entries.len() as u64, 8);
        ram.write(list, &entries);
        let chain = [
            Buffer::readable(list, entries.len() as u32),
            Buffer::writable(response, 24),
        ];
        let source = vec![0x5au8; bytes as usize];
        let mut destination = vec![0u8; bytes as usize];
        let reps = 30;
        queue.roundtrip(&ram, &chain);
        let start = Instant::now();
        for _ in 0..reps {
            queue.roundtrip(&ram, &chain);
        }
        let through_backend = start.elapsed() / reps;
        let start = Instant::now();
        for _ in 0..reps {
            destination.copy_from_slice(std::hint::black_box(&source));
            std::hint::black_box(&mut destination);
        }
        let memcpy = start.elapsed() / reps;
        let gib = |d: Duration| bytes as f64 / d.as_secs_f64() / f64::from(1 << 30);
        println!(
            "{name} frame ({bytes} bytes, {pages} scattered pages): backend {:?} ({:.2} GiB/s), \
             memcpy {:?} ({:.2} GiB/s), ratio {:.2}",
            through_backend,
            gib(through_backend),
            memcpy,
            gib(memcpy),
            through_backend.as_secs_f64() / memcpy.as_secs_f64()
        );
    }
}
