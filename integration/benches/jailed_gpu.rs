//! Benchmark of the jailed ray-gpu as a guest sees it: the real process in its real jail
//! (kill-process filter, software-rendering policy, virglrenderer on llvmpipe here), driven
//! over vhost-user by the test frontend, every command through guest rings, kick eventfds and
//! call eventfds.
//!
//! First, single runs: small-command latency (median, p99) and commands/s one at a time and
//! in batches, fenced SUBMIT_3D latency, and TRANSFER_TO_HOST_2D bandwidth for 1080p and 4K
//! frames next to a memcpy of the same bytes.
//!
//! Then the data-plane comparison (`data_plane`): rounds in which every series is measured,
//! series compared with each other taking turns sample by sample, each measurement against
//! a baseline of the same rounds:
//! - a GET_DISPLAY_INFO round trip through the jailed ray-gpu against the floor, an eventfd
//!   ping-pong with a second process (target: at most 1.5x its time);
//! - TRANSFER_TO_HOST_2D of a 1080p and a 4K frame against a memcpy of the same bytes
//!   (target: at least 0.8x its bandwidth);
//! - the jailed ray-gpu against the same device code served unjailed on a thread of this
//!   process, small round trips and 1080p transfers (target: at least 0.97x its throughput).
//!
//! It prints the round medians and a table (median, spread, baseline, ratio, target) and
//! writes them to `data_plane.md` and `data_plane.json` in `$BENCH_OUT` (default
//! `target/bench/`). `DATA_PLANE_ROUNDS` sets the number of rounds (default 7,
//! after one unrecorded warm-up round).
//!
//! `cargo build --release -p gpu-process &&
//!  RAY_GPU_BIN=$PWD/target/release/ray-gpu cargo bench -p integration --bench jailed_gpu`

#[path = "../tests/jailed_gpu/mod.rs"]
mod jailed_gpu;

mod data_plane;

use std::hint::black_box;
use std::time::{Duration, Instant};

use control::messages::RendererMode;

use data_plane::floor::EventfdPingPong;
use data_plane::in_process::InProcessGpu;
use data_plane::{Comparison, Metric, RunInfo, Series, Target};
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

/// Creates a `width x height` B8G8R8X8 resource `id` backed by one contiguous guest range
/// filled with a pattern, and returns its TRANSFER_TO_HOST_2D of the whole frame, placed once
/// in guest memory to be sent again and again.
fn frame_transfer(session: &mut Session, id: u32, (width, height): (u32, u32)) -> Vec<Buffer> {
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
    placed(
        session,
        transfer_to_host_2d(id, Rect(0, 0, width, height), 0),
        HEADER as u32,
    )
}

/// Times one memcpy of `source` into `destination`.
fn timed_memcpy(source: &[u8], destination: &mut [u8]) -> Duration {
    let start = Instant::now();
    destination.copy_from_slice(black_box(source));
    black_box(&destination);
    start.elapsed()
}

fn transfers(session: &mut Session, id: u32, (width, height): (u32, u32), label: &str) {
    let bytes = u64::from(width) * u64::from(height) * 4;
    let buffers = frame_transfer(session, id, (width, height));
    timed_roundtrips(session, &buffers, 2);
    let (transfer, _) = stats(timed_roundtrips(session, &buffers, FRAMES));

    let source = vec![0x5au8; bytes as usize];
    let mut destination = vec![0u8; bytes as usize];
    let copies: Vec<Duration> = (0..FRAMES)
        .map(|_| timed_memcpy(&source, &mut destination))
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

/// Guest RAM of the in-process session and the display mode its display socket answers with:
/// what `jailed_gpu::spawn` gives the jailed session.
const RAM_BYTES: u64 = 256 << 20;
const MODES: [(u32, u32); 1] = [(1024, 768)];

/// Rounds of the comparison unless `DATA_PLANE_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: usize = 7;
/// Untimed and timed operations per round: small round trips, 1080p and 4K transfers (and
/// their memcpys).
const SMALL_PER_ROUND: (usize, usize) = (200, 2000);
const HD_PER_ROUND: (usize, usize) = (2, 12);
const UHD_PER_ROUND: (usize, usize) = (1, 6);

/// The frame sizes the transfers move.
#[derive(Clone, Copy)]
enum Frame {
    Hd,
    Uhd,
}

impl Frame {
    fn size(self) -> (u32, u32) {
        match self {
            Frame::Hd => (1920, 1080),
            Frame::Uhd => (3840, 2160),
        }
    }

    fn bytes(self) -> u64 {
        let (width, height) = self.size();
        u64::from(width) * u64::from(height) * 4
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Which device serves a command.
#[derive(Clone, Copy)]
enum Side {
    Jailed,
    InProcess,
}

/// One timed operation of the comparison.
enum Op {
    /// The eventfd ping-pong with a second process.
    Floor,
    /// One GET_DISPLAY_INFO, kicked and waited for.
    Small(Side),
    /// One TRANSFER_TO_HOST_2D of a whole frame, kicked and waited for.
    Transfer(Side, Frame),
    /// One memcpy of a frame's bytes between two host buffers.
    Memcpy(Frame),
}

/// A device's commands, placed in its session's guest memory once.
struct Placed {
    small: Vec<Buffer>,
    /// The frame transfers, by `Frame::index` (`None`: not measured on this side).
    transfers: [Option<Vec<Buffer>>; 2],
}

impl Placed {
    /// Places a GET_DISPLAY_INFO and a transfer of each of `frames` (resources from
    /// `first_id` on), and checks the device answers them as expected.
    fn new(session: &mut Session, first_id: u32, frames: &[Frame]) -> Placed {
        let small = placed(session, get_display_info(), 24 + 16 * 24);
        session.control.roundtrip(&session.ram, &small);
        let response = small.last().expect("a response buffer");
        let answer = session.ram.read(response.gpa, response.len as usize);
        assert_eq!(response_type(&answer), RESP_OK_DISPLAY_INFO);
        let mut transfers = [None, None];
        for (id, frame) in (first_id..).zip(frames) {
            let buffers = frame_transfer(session, id, frame.size());
            session.control.roundtrip(&session.ram, &buffers);
            let response = buffers.last().expect("a response buffer");
            let answer = session.ram.read(response.gpa, response.len as usize);
            assert_eq!(response_type(&answer), RESP_OK_NODATA);
            transfers[frame.index()] = Some(buffers);
        }
        Placed { small, transfers }
    }

    fn transfer(&self, frame: Frame) -> &[Buffer] {
        self.transfers[frame.index()]
            .as_deref()
            .expect("that frame is placed on this side")
    }
}

/// Times one round trip of the chain `buffers` on the control queue.
fn timed_roundtrip(session: &mut Session, buffers: &[Buffer]) -> Duration {
    let start = Instant::now();
    session.control.roundtrip(&session.ram, buffers);
    start.elapsed()
}

/// The interleaved comparison of the jailed ray-gpu against the floor, memcpy and the same
/// device in-process (see the file's doc comment); prints and writes the report.
fn compare(floor: &EventfdPingPong, jailed: &mut Session, renderer: &str) {
    let rounds = std::env::var("DATA_PLANE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(DEFAULT_ROUNDS);
    let mut in_process = InProcessGpu::start(VIRTIO_GPU_F_VIRGL, RAM_BYTES, MODES.to_vec());
    let info = RunInfo::starting(
        rounds,
        jailed_gpu::ray_gpu(),
        renderer.to_owned(),
        in_process.renderer.clone(),
    );
    println!(
        "\ndata plane: {rounds} interleaved rounds; jailed: {}; in-process: {}",
        info.jailed_renderer, info.in_process_renderer
    );
    if info.ray_gpu.components().any(|c| c.as_os_str() == "debug") {
        println!(
            "warning: {} looks like a debug build; the in-process device is optimised, so \
             the jailed/unjailed ratios compare different builds",
            info.ray_gpu.display()
        );
    }

    let on_jailed = Placed::new(jailed, 200, &[Frame::Hd, Frame::Uhd]);
    let on_in_process = Placed::new(&mut in_process.session, 200, &[Frame::Hd]);
    let mut copies: Vec<(Vec<u8>, Vec<u8>)> = [Frame::Hd, Frame::Uhd]
        .iter()
        .map(|f| {
            (
                vec![0x5au8; f.bytes() as usize],
                vec![0u8; f.bytes() as usize],
            )
        })
        .collect();

    let hd = Some(Frame::Hd.bytes());
    let uhd = Some(Frame::Uhd.bytes());
    let mut series = vec![
        Series::new(
            (
                "small",
                "floor",
                "eventfd ping-pong with a second process (floor)",
            ),
            Op::Floor,
            SMALL_PER_ROUND,
            None,
        ),
        Series::new(
            (
                "small",
                "small_jailed",
                "GET_DISPLAY_INFO round trip, jailed ray-gpu",
            ),
            Op::Small(Side::Jailed),
            SMALL_PER_ROUND,
            None,
        ),
        Series::new(
            (
                "small",
                "small_in_process",
                "GET_DISPLAY_INFO round trip, same device in-process",
            ),
            Op::Small(Side::InProcess),
            SMALL_PER_ROUND,
            None,
        ),
        Series::new(
            ("1080p", "memcpy_1080p", "memcpy of a 1080p frame (7.9 MiB)"),
            Op::Memcpy(Frame::Hd),
            HD_PER_ROUND,
            hd,
        ),
        Series::new(
            (
                "1080p",
                "transfer_1080p_jailed",
                "TRANSFER_TO_HOST_2D 1080p, jailed ray-gpu",
            ),
            Op::Transfer(Side::Jailed, Frame::Hd),
            HD_PER_ROUND,
            hd,
        ),
        Series::new(
            (
                "1080p",
                "transfer_1080p_in_process",
                "TRANSFER_TO_HOST_2D 1080p, same device in-process",
            ),
            Op::Transfer(Side::InProcess, Frame::Hd),
            HD_PER_ROUND,
            hd,
        ),
        Series::new(
            ("4K", "memcpy_4k", "memcpy of a 4K frame (31.6 MiB)"),
            Op::Memcpy(Frame::Uhd),
            UHD_PER_ROUND,
            uhd,
        ),
        Series::new(
            (
                "4K",
                "transfer_4k_jailed",
                "TRANSFER_TO_HOST_2D 4K, jailed ray-gpu",
            ),
            Op::Transfer(Side::Jailed, Frame::Uhd),
            UHD_PER_ROUND,
            uhd,
        ),
    ];
    let comparisons = [
        Comparison {
            label: "small-command round trip, jailed vs floor",
            measured: "small_jailed",
            baseline: "floor",
            metric: Metric::Latency,
            target: Target::AtMost(1.5),
        },
        Comparison {
            label: "TRANSFER_TO_HOST_2D 1080p, jailed vs memcpy",
            measured: "transfer_1080p_jailed",
            baseline: "memcpy_1080p",
            metric: Metric::Bandwidth,
            target: Target::AtLeast(0.8),
        },
        Comparison {
            label: "TRANSFER_TO_HOST_2D 4K, jailed vs memcpy",
            measured: "transfer_4k_jailed",
            baseline: "memcpy_4k",
            metric: Metric::Bandwidth,
            target: Target::AtLeast(0.8),
        },
        Comparison {
            label: "small-command round trips, jailed vs unjailed",
            measured: "small_jailed",
            baseline: "small_in_process",
            metric: Metric::Rate,
            target: Target::AtLeast(0.97),
        },
        Comparison {
            label: "TRANSFER_TO_HOST_2D 1080p, jailed vs unjailed",
            measured: "transfer_1080p_jailed",
            baseline: "transfer_1080p_in_process",
            metric: Metric::Bandwidth,
            target: Target::AtLeast(0.97),
        },
    ];

    let unjailed = &mut in_process.session;
    data_plane::run_rounds(&mut series, rounds, |op| match *op {
        Op::Floor => floor.roundtrip(),
        Op::Small(Side::Jailed) => timed_roundtrip(jailed, &on_jailed.small),
        Op::Small(Side::InProcess) => timed_roundtrip(unjailed, &on_in_process.small),
        Op::Transfer(Side::Jailed, frame) => timed_roundtrip(jailed, on_jailed.transfer(frame)),
        Op::Transfer(Side::InProcess, frame) => {
            timed_roundtrip(unjailed, on_in_process.transfer(frame))
        }
        Op::Memcpy(frame) => {
            let (source, destination) = &mut copies[frame.index()];
            timed_memcpy(source, destination)
        }
    });
    data_plane::report(&info, &series, &comparisons);
    in_process.stop();
}

fn main() {
    // Forked first, while this process still has a single thread.
    let floor = EventfdPingPong::start();
    let mut gpu = jailed_gpu::spawn(RendererMode::Virgl, VIRTIO_GPU_F_VIRGL);
    let renderer = gpu.process.ready_info().renderer.clone();
    println!(
        "jailed ray-gpu, renderer: {renderer}; policy {}",
        gpu.process.policy().name
    );
    assert!(
        renderer.starts_with("virgl"),
        "the jailed ray-gpu must run virgl to be compared with the in-process device"
    );
    small_commands(&mut gpu.session);
    fenced_submits(&mut gpu.session);
    transfers(&mut gpu.session, 100, (1920, 1080), "1080p");
    transfers(&mut gpu.session, 101, (3840, 2160), "4K");
    compare(&floor, &mut gpu.session, &renderer);
    drop(floor);
    let exit = gpu.disconnect();
    println!("ray-gpu after the frontend left: {exit:?}");
}
