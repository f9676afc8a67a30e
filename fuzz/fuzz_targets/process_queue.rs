//! Whole-queue processing with the 2D renderer over guest memory the input fills: the
//! descriptor table, the available ring and every buffer are the fuzzer's. The device must
//! never panic, must keep its host memory under the limit, and must keep answering.
#![no_main]

use devices::virtio_gpu::{
    Backend, BackendConfig, GpuConfig, Limits, QueueKind, RendererChoice, VirtioGpu,
};
use libfuzzer_sys::fuzz_target;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest memory size; the input is copied to its start.
const MEM_SIZE: usize = 0x10000;
const QUEUE_SIZE: u16 = 16;
/// Ring layout (the seeds in corpus/process_queue follow it): descriptor table at 0, the
/// available ring at 0x100, the used ring at 0x200; the cursor queue's at +0x800.
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x100;
const USED: u64 = 0x200;
const CURSOR_OFFSET: u64 = 0x800;
const MAX_HOST_BYTES: u64 = 8 << 20;

fn queue(base: u64) -> Queue {
    let mut queue = Queue::new(QUEUE_SIZE).unwrap();
    queue.set_size(QUEUE_SIZE);
    queue.set_desc_table_address(Some((base + DESC) as u32), Some(0));
    queue.set_avail_ring_address(Some((base + AVAIL) as u32), Some(0));
    queue.set_used_ring_address(Some((base + USED) as u32), Some(0));
    queue.set_ready(true);
    queue
}

fuzz_target!(|data: &[u8]| {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
    mem.write_slice(&data[..data.len().min(MEM_SIZE)], GuestAddress(0))
        .unwrap();
    let backend = Backend::init(&BackendConfig {
        renderer: RendererChoice::TwoD,
        surfaceless: None,
    })
    .unwrap();
    let config = GpuConfig {
        limits: Limits {
            max_host_bytes: MAX_HOST_BYTES,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut gpu = VirtioGpu::new(backend, config).unwrap();
    let mut control = queue(0);
    let mut cursor = queue(CURSOR_OFFSET);

    // Queue errors (rings outside memory) are allowed; panics are not.
    let _ = gpu.process_queue(&mem, &mut control, QueueKind::Control);
    let _ = gpu.process_queue(&mem, &mut cursor, QueueKind::Cursor);
    let _ = gpu.process_fences(&mem, &mut control);
    let _ = gpu.scanout_pixels(0);

    assert!(gpu.host_bytes_in_use() <= MAX_HOST_BYTES);
    gpu.reset();
    assert_eq!((gpu.resource_count(), gpu.host_bytes_in_use()), (0, 0));
});
