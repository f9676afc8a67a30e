//! virtio-gpu device benchmark, in process (no transport): command rate and latency of small
//! commands through `process_queue`, TRANSFER_TO_HOST_2D bandwidth next to a memcpy of the
//! same bytes, and SUBMIT_3D + fence latency on virglrenderer.
//!
//! `cargo bench -p devices --bench virtio_gpu [-- --quick]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use devices::virtio_gpu::protocol::*;
use devices::virtio_gpu::virgl_stream::{self as vs, VirglStream};
use devices::virtio_gpu::{
    Backend, BackendConfig, GpuConfig, QueueKind, RendererChoice, VirtioGpu,
};
use vm_memory::ByteValued;

fn device(renderer: RendererChoice) -> VirtioGpu {
    let backend = Backend::init(&BackendConfig {
        renderer,
        surfaceless: None,
    })
    .expect("renderer");
    VirtioGpu::new(backend, GpuConfig::default()).unwrap()
}

/// (median, p99) of `samples`.
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Latency of one command posted and processed alone, and the rate when `batch` commands
/// are processed per call.
fn small_command(
    gpu: &mut VirtioGpu,
    name: &str,
    kind: QueueKind,
    req: &[u8],
    resp_len: usize,
    iterations: usize,
) {
    let mut guest = Guest::new();
    let req_addr = guest.alloc(req, req.len());
    let resp_addr = guest.alloc(&[], resp_len.max(1));
    let mut chain = vec![Desc::Read(req_addr, req.len() as u32)];
    if resp_len > 0 {
        chain.push(Desc::Write(resp_addr, resp_len as u32));
    }
    let mem = guest.mem.clone();
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        guest.queue(kind).post(&mem, &chain);
        let start = Instant::now();
        guest.process(gpu, kind);
        samples.push(start.elapsed());
        guest.queue(kind).take_used(&mem);
    }
    let batch = 64;
    let rounds = iterations / batch;
    let start = Instant::now();
    for _ in 0..rounds {
        for _ in 0..batch {
            guest.queue(kind).post(&mem, &chain);
        }
        guest.process(gpu, kind);
        guest.queue(kind).take_used(&mem);
    }
    let rate = (rounds * batch) as f64 / start.elapsed().as_secs_f64();
    let (median, p99) = percentiles(&mut samples);
    println!(
        "{name:<24} latency median {:>7.2} us  p99 {:>7.2} us   batched({batch}) {:>10.0} cmds/s",
        micros(median),
        micros(p99),
        rate
    );
}

fn transfer_bandwidth(
    gpu: &mut VirtioGpu,
    label: &str,
    width: u32,
    height: u32,
    iterations: usize,
) {
    let mut guest = Guest::new();
    let bytes = (width * height * 4) as usize;
    let create = ResourceCreate2d {
        resource_id: 1,
        format: FORMAT_B8G8R8X8_UNORM,
        width,
        height,
    };
    assert_eq!(
        guest.send_for_type(
            gpu,
            QueueKind::Control,
            &request(header(CMD_RESOURCE_CREATE_2D), create, &[])
        ),
        RESP_OK_NODATA
    );
    let backing = guest.alloc(&vec![0x5a; bytes], bytes);
    let entry = MemEntry {
        addr: backing,
        length: bytes as u32,
        padding: 0,
    };
    let attach = ResourceAttachBacking {
        resource_id: 1,
        nr_entries: 1,
    };
    assert_eq!(
        guest.send_for_type(
            gpu,
            QueueKind::Control,
            &request(
                header(CMD_RESOURCE_ATTACH_BACKING),
                attach,
                entry.as_slice()
            )
        ),
        RESP_OK_NODATA
    );
    let transfer = TransferToHost2d {
        r: Rect {
            x: 0,
            y: 0,
            width,
            height,
        },
        offset: 0,
        resource_id: 1,
        padding: 0,
    };
    let req = request(header(CMD_TRANSFER_TO_HOST_2D), transfer, &[]);
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let resp = guest.send_for_type(gpu, QueueKind::Control, &req);
        samples.push(start.elapsed());
        assert_eq!(resp, RESP_OK_NODATA);
    }
    let source = vec![0x5au8; bytes];
    let mut dest = vec![0u8; bytes];
    let mut copies = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        dest.copy_from_slice(std::hint::black_box(&source));
        std::hint::black_box(&dest);
        copies.push(start.elapsed());
    }
    let (transfer_median, _) = percentiles(&mut samples);
    let (copy_median, _) = percentiles(&mut copies);
    let gbps = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
    println!(
        "TRANSFER_TO_HOST_2D {label:<5} {:>7.2} ms  {:>6.2} GB/s   memcpy {:>6.2} ms {:>6.2} GB/s   ratio {:.2}",
        transfer_median.as_secs_f64() * 1e3,
        gbps(transfer_median),
        copy_median.as_secs_f64() * 1e3,
        gbps(copy_median),
        transfer_median.as_secs_f64() / copy_median.as_secs_f64()
    );
    gpu.reset();
}

fn wait_readable(fd: &impl std::os::fd::AsRawFd) {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call and nfds is 1.
    unsafe { libc::poll(&mut pfd, 1, 1000) };
}

fn submit_fence_latency(gpu: &mut VirtioGpu, iterations: usize) {
    let mut guest = Guest::new();
    let mut ctx = header(CMD_CTX_CREATE);
    ctx.ctx_id = 1;
    let body = CtxCreate {
        context_init: CAPSET_VIRGL2,
        ..Default::default()
    };
    assert_eq!(
        guest.send_for_type(gpu, QueueKind::Control, &request(ctx, body, &[])),
        RESP_OK_NODATA
    );
    let create = ResourceCreate3d {
        resource_id: 2,
        target: vs::PIPE_TEXTURE_2D,
        format: vs::FORMAT_B8G8R8A8_UNORM,
        bind: vs::BIND_RENDER_TARGET,
        width: 256,
        height: 256,
        depth: 1,
        array_size: 1,
        ..Default::default()
    };
    assert_eq!(
        guest.send_for_type(
            gpu,
            QueueKind::Control,
            &request(header(CMD_RESOURCE_CREATE_3D), create, &[])
        ),
        RESP_OK_NODATA
    );
    let mut attach = header(CMD_CTX_ATTACH_RESOURCE);
    attach.ctx_id = 1;
    let rid = ResourceId {
        resource_id: 2,
        padding: 0,
    };
    assert_eq!(
        guest.send_for_type(gpu, QueueKind::Control, &request(attach, rid, &[])),
        RESP_OK_NODATA
    );
    let mut stream = VirglStream::new();
    stream
        .create_surface(1, 2, vs::FORMAT_B8G8R8A8_UNORM, 0, 0)
        .set_framebuffer_state(0, &[1]);
    let mut setup = header(CMD_SUBMIT_3D);
    setup.ctx_id = 1;
    let bytes = stream.to_bytes();
    let setup_body = CmdSubmit {
        size: bytes.len() as u32,
        padding: 0,
    };
    assert_eq!(
        guest.send_for_type(gpu, QueueKind::Control, &request(setup, setup_body, &bytes)),
        RESP_OK_NODATA
    );

    let mut clear = VirglStream::new();
    clear.clear(vs::PIPE_CLEAR_COLOR0, [0.2, 0.4, 0.6, 1.0], 0.0, 0);
    let clear = clear.to_bytes();
    let mem = guest.mem.clone();
    let mut samples = Vec::with_capacity(iterations);
    for fence in 0..iterations as u64 {
        let mut hdr = header(CMD_SUBMIT_3D);
        hdr.ctx_id = 1;
        hdr.flags = FLAG_FENCE;
        hdr.fence_id = fence + 1;
        let body = CmdSubmit {
            size: clear.len() as u32,
            padding: 0,
        };
        let req = request(hdr, body, &clear);
        guest.free_all();
        let start = Instant::now();
        guest.post_request(QueueKind::Control, &req, HEADER_SIZE);
        guest.process(gpu, QueueKind::Control);
        let mut used = guest.control.take_used(&mem);
        while used.is_empty() {
            wait_readable(gpu.fence_event());
            gpu.process_fences(&mem, &mut guest.control.queue).unwrap();
            used = guest.control.take_used(&mem);
        }
        samples.push(start.elapsed());
    }
    let (median, p99) = percentiles(&mut samples);
    println!(
        "SUBMIT_3D(clear)+fence   latency median {:>7.2} us  p99 {:>7.2} us",
        micros(median),
        micros(p99)
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 200 } else { 5000 };
    let frames = if quick { 5 } else { 30 };

    let mut gpu = device(RendererChoice::TwoD);
    println!("-- 2D renderer (rutabaga 2D) --");
    let cursor = UpdateCursor {
        pos: CursorPos {
            scanout_id: 0,
            x: 10,
            y: 20,
            padding: 0,
        },
        ..Default::default()
    };
    small_command(
        &mut gpu,
        "MOVE_CURSOR",
        QueueKind::Cursor,
        &request(header(CMD_MOVE_CURSOR), cursor, &[]),
        0,
        n,
    );
    small_command(
        &mut gpu,
        "GET_DISPLAY_INFO",
        QueueKind::Control,
        &bare(CMD_GET_DISPLAY_INFO),
        408,
        n,
    );
    transfer_bandwidth(&mut gpu, "1080p", 1920, 1080, frames);
    transfer_bandwidth(&mut gpu, "4K", 3840, 2160, frames);
    drop(gpu);

    println!("-- virgl renderer (virglrenderer, headless EGL) --");
    let mut gpu = device(RendererChoice::Virgl);
    small_command(
        &mut gpu,
        "GET_DISPLAY_INFO",
        QueueKind::Control,
        &bare(CMD_GET_DISPLAY_INFO),
        408,
        n,
    );
    transfer_bandwidth(&mut gpu, "1080p", 1920, 1080, frames);
    transfer_bandwidth(&mut gpu, "4K", 3840, 2160, frames);
    submit_fence_latency(&mut gpu, if quick { 50 } else { 500 });
}
