//! Benchmark of the jailed ray-gpu as a guest sees it: the real process in its real jail
//! (kill-process filter, software-rendering policy, virglrenderer on llvmpipe here), driven
//! over vhost-user by the test frontend, every command through guest rings, kick eventfds and
//! call eventfds.
//!
//! Prints: small-command latency (median, p99) and commands/s one at a time and in batches,
//! fenced SUBMIT_3D latency, and TRANSFER_TO_HOST_2D bandwidth for 1080p and 4K frames next
//! to a memcpy of the same bytes measured in the same run.
//!
//! `cargo build -p gpu-process && cargo bench -p integration --bench jailed_gpu`

#[path = "../tests/jailed_gpu/mod.rs"]
mod jailed_gpu;

use std::hint::black_box;
use std::time::{Duration, Instant};

use control::messages::RendererMode;

use jailed_gpu::support::gpu_cmd::*;
use jailed_gpu::support::guest::Buffer;
use jailed_gpu::support::session::Session;
use jailed_gpu::support::virgl;

const SMALL_COMMANDS: usize = 5000;
const BATCH: usize = 64;
const SUBMITS: usize = 1000;
const FRAMES: usize = 20;

/// Median and 99th percentile of `samples`.
fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    (samples[samples.len() / 2], p99)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A command placed once in guest memory, sent again and again.
fn placed(session: &mut Session, command: Vec<u8>, response_len: u32) -> Vec<Buffer> {
    let mut buffers = session.place(&[command]);
    let response = session.ram.alloc(u64::from(response_len), 8);
    buffers.push(Buffer::writable(response, response_len));
    buffers
}

fn timed_roundtrips(session: &mut Session, buffers: &[Buffer], count: usize) -> Vec<Duration> {
    (0..count)
        .map(|_| {
            let start = Instant::now();
            session.control.roundtrip(&session.ram, buffers);
            start.elapsed()
        })
        .collect()
}

fn small_commands(session: &mut Session) {
    let buffers = placed(session, get_display_info(), 24 + 16 * 24);
    timed_roundtrips(session, &buffers, 200);
    let started = Instant::now();
    let samples = timed_roundtrips(session, &buffers, SMALL_COMMANDS);
    let rate = SMALL_COMMANDS as f64 / started.elapsed().as_secs_f64();
    let (median, p99) = stats(samples);
    println!(
        "GET_DISPLAY_INFO one at a time: {rate:.0} commands/s, latency median {:.1} us, p99 {:.1} us",
        micros(median),
        micros(p99)
    );
    let started = Instant::now();
    for _ in 0..SMALL_COMMANDS / BATCH {
        for _ in 0..BATCH {
            session.control.push(&session.ram, &buffers);
        }
        session.control.notify();
        for _ in 0..BATCH {
            session
                .control
                .wait_used(&session.ram, Duration::from_secs(10));
        }
    }
    let sent = SMALL_COMMANDS / BATCH * BATCH;
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    println!("GET_DISPLAY_INFO in batches of {BATCH} per kick: {rate:.0} commands/s");
}

fn fenced_submits(session: &mut Session) {
    session.ok(ctx_create(1, "bench"));
    let mut samples = Vec::with_capacity(SUBMITS);
    for fence in 0..SUBMITS as u64 + 50 {
        let buffers = placed(
            session,
            submit_3d(1, Some(fence + 1), &virgl::nops(1)),
            HEADER as u32,
        );
        let start = Instant::now();
        session.control.roundtrip(&session.ram, &buffers);
        if fence >= 50 {
            samples.push(start.elapsed());
        }
    }
    let (median, p99) = stats(samples);
    println!(
        "SUBMIT_3D (1 NOP) with FLAG_FENCE, response after the fence signals: median {:.1} us, p99 {:.1} us",
        micros(median),
        micros(p99)
    );
}

fn transfers(session: &mut Session, id: u32, (width, height): (u32, u32), label: &str) {
    let bytes = u64::from(width) * u64::from(height) * 4;
    session.ok(resource_create_2d(id, FORMAT_B8G8R8X8_UNORM, width, height));
    let backing = session.ram.alloc(bytes, 4096);
    session.ram.write(backing, &vec![0x5a; bytes as usize]);
    let attach = [
        attach_backing(id, 1),
        mem_entries(&[(backing, bytes as u32)]),
    ];
    let response = session.command(&attach, HEADER as u32);
    assert_eq!(response_type(&response), RESP_OK_NODATA);
    let buffers = placed(
        session,
        transfer_to_host_2d(id, Rect(0, 0, width, height), 0),
        HEADER as u32,
    );
    timed_roundtrips(session, &buffers, 2);
    let (transfer, _) = stats(timed_roundtrips(session, &buffers, FRAMES));

    let source = vec![0x5au8; bytes as usize];
    let mut destination = vec![0u8; bytes as usize];
    let copies: Vec<Duration> = (0..FRAMES)
        .map(|_| {
            let start = Instant::now();
            destination.copy_from_slice(black_box(&source));
            black_box(&destination);
            start.elapsed()
        })
        .collect();
    let (copy, _) = stats(copies);
    let gib = |d: Duration| bytes as f64 / d.as_secs_f64() / f64::from(1u32 << 30);
    println!(
        "TRANSFER_TO_HOST_2D {label} ({:.1} MiB): median {:.2} ms = {:.2} GiB/s; memcpy of the same bytes {:.2} ms = {:.2} GiB/s; transfer/memcpy time {:.1}x",
        bytes as f64 / f64::from(1u32 << 20),
        transfer.as_secs_f64() * 1e3,
        gib(transfer),
        copy.as_secs_f64() * 1e3,
        gib(copy),
        transfer.as_secs_f64() / copy.as_secs_f64()
    );
}

fn main() {
    let mut gpu = jailed_gpu::spawn(RendererMode::Virgl, VIRTIO_GPU_F_VIRGL);
    println!(
        "jailed ray-gpu, renderer: {}; policy {}",
        gpu.process.ready_info().renderer,
        gpu.process.policy().name
    );
    small_commands(&mut gpu.session);
    fenced_submits(&mut gpu.session);
    transfers(&mut gpu.session, 100, (1920, 1080), "1080p");
    transfers(&mut gpu.session, 101, (3840, 2160), "4K");
    let exit = gpu.disconnect();
    println!("ray-gpu after the frontend left: {exit:?}");
}
