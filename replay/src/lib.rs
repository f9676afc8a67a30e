//! Replays a recording (the `recording` crate) into a virtio-gpu device served over
//! vhost-user, as the guest drove it: guest RAM in a memfd shared with SET_MEM_TABLE, both
//! split virtqueues in it, kick and call eventfds. Commands go out in recorded order, as fast
//! as the device takes them or at the recorded pace; guest memory is written back before the
//! command that read it; each recorded scanout image is compared with what the device shows
//! at the same point.
//!
//! The replayed RAM has the recorded guest's layout (so recorded backing addresses stay
//! valid), and above it a staging area for the rings and the commands themselves.

mod guest;
mod queue;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use recording::{Frame, Queue, ReadError, Reader, Record};
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};

use guest::GuestRam;
use queue::DriverQueue;

const CONTROL_QUEUE_SIZE: u16 = 256;
const CURSOR_QUEUE_SIZE: u16 = 16;
/// Bytes above the recorded RAM for the rings and the commands in flight.
const STAGING_BYTES: u64 = 128 << 20;
/// How long the device may take to take a command, or to complete all of them at the end.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(20);
const VIRTIO_F_VERSION_1: u64 = 1 << 32;
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;
const CMD_RESOURCE_FLUSH: u32 = 0x0104;
/// `VIRTIO_GPU_FLAG_FENCE` in a request header's flags.
const FLAG_FENCE: u32 = 1;
/// Response types from here on are errors (`VIRTIO_GPU_RESP_ERR_UNSPEC`).
const RESP_ERR_FIRST: u32 = 0x1200;

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Recording(#[from] ReadError),
    #[error("the recording has no {0} record before its first command")]
    MissingSetup(&'static str),
    #[error("record {index}: the guest memory map changed mid-recording (memory hotplug), which replay does not support")]
    MemoryMapChanged { index: u64 },
    #[error("the recorded guest memory ends at {0:#x}, too large to map here")]
    RamTooLarge(u64),
    #[error("guest range {gpa:#x}+{len:#x} lies outside the replayed RAM of {size:#x} bytes")]
    OutsideRam { gpa: u64, len: u64, size: u64 },
    #[error("record {index}: a command of {len} bytes does not fit the staging area")]
    CommandTooLarge { index: u64, len: u64 },
    #[error("guest RAM: {what}: {source}")]
    Memory {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("eventfd: {0}")]
    Eventfd(#[source] std::io::Error),
    #[error("vhost-user {what}: {source}")]
    Vhost {
        what: &'static str,
        #[source]
        source: vhost::Error,
    },
    #[error("the device returned a used entry for descriptor {0}, which is not a chain in flight")]
    BadUsed(u32),
    #[error("the queue has no free descriptor")]
    QueueFull,
    #[error("the device took no command for {0:?} (stuck at record {1})")]
    Stalled(Duration, u64),
    #[error("the device closed its vhost-user connection (at record {0})")]
    Disconnected(u64),
    #[error("duplicating the vhost-user socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("taking the device's frame at record {index}: {message}")]
    FrameSource { index: u64, message: String },
}

/// How fast commands go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the device takes them.
    Fast,
    /// When the guest sent them.
    Recorded,
}

/// What the device shows, taken by whoever owns it (through the control tube for a jailed
/// process, directly for one in this process).
pub trait FrameSource {
    /// The scanout's `(width, height, B G R X pixels)`, or `None` if it shows nothing.
    fn frame(&mut self) -> Result<Option<(u32, u32, Vec<u8>)>, String>;
}

/// How a recorded frame compared with the replayed one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FrameCheck {
    /// Commands replayed before it.
    pub after: u64,
    pub width: u32,
    pub height: u32,
    /// Pixels whose largest channel difference is over the tolerance.
    pub differing_pixels: u64,
    /// How many such pixels the options allow.
    pub allowed_pixels: u64,
    /// The largest channel difference anywhere.
    pub max_difference: u8,
    /// The device showed nothing, or another size.
    pub missing: bool,
}

impl FrameCheck {
    /// Whether the frame matched within the tolerance.
    pub fn matches(&self) -> bool {
        !self.missing && self.differing_pixels <= self.allowed_pixels
    }
}

/// What a replay did and measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayReport {
    pub commands: u64,
    /// RESOURCE_FLUSH commands: the frames the guest presented.
    pub flushes: u64,
    /// Commands the device answered with an error.
    pub error_responses: u64,
    /// Bytes of guest memory written back.
    pub memory_bytes: u64,
    /// Time spent replaying, frame checks excluded.
    pub seconds: f64,
    /// Presented frames per second of replay time.
    pub fps: f64,
    pub frames: Vec<FrameCheck>,
    /// The recording ended at a device reset; what followed was not replayed.
    pub stopped_at_reset: bool,
    /// Microseconds between one presented frame (a completed RESOURCE_FLUSH) and the next,
    /// less the time frame checks took between them: the frame times a guest would see.
    pub frame_intervals_us: Vec<u64>,
    /// Microseconds from when each frame was due (its RESOURCE_FLUSH sent; at the recorded
    /// pace, the moment the guest sent it) to its completion: how late frames were presented.
    pub frame_latency_us: Vec<u64>,
    /// Fenced commands answered.
    pub fences: u64,
    /// Microseconds from sending a fenced command to seeing it answered: the 99th percentile
    /// and the longest (a Windows guest resets its GPU past 2 s).
    pub fence_us_p99: u64,
    pub fence_us_max: u64,
}

impl ReplayReport {
    /// Whether every recorded frame matched.
    pub fn frames_match(&self) -> bool {
        !self.frames.is_empty() && self.frames.iter().all(FrameCheck::matches)
    }
}

/// Replay options.
#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    pub pace: Pace,
    /// The largest per-channel difference a pixel may show and still match (0: exact).
    pub tolerance: u8,
    /// The fraction of a frame's pixels that may differ by more (0: none). Across renderers,
    /// rasterization may round a few edge pixels differently.
    pub outliers: f64,
}

/// The first records of a recording, read before any command: what the device must offer.
#[derive(Debug, Clone, Default)]
pub struct Preamble {
    pub info: Vec<String>,
    pub memory_map: Vec<(u64, u64)>,
    pub features: u64,
}

/// Reads the records up to the first command; the replayer takes them over.
pub struct Opened<R: Read> {
    reader: Reader<R>,
    pub preamble: Preamble,
    pending: Vec<Record>,
}

/// Opens a recording and reads its preamble (Info, MemoryMap, Features, memory before the
/// first command).
pub fn open<R: Read>(input: R) -> Result<Opened<R>, ReplayError> {
    let mut reader = Reader::new(input)?;
    let mut preamble = Preamble::default();
    let (mut map, mut features) = (None, None);
    let mut pending = Vec::new();
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Info(text) => preamble.info.push(text),
            Record::MemoryMap(regions) if map.is_none() => map = Some(regions),
            Record::Features(f) if features.is_none() => features = Some(f),
            other => {
                let first_command = matches!(other, Record::Command { .. } | Record::End { .. });
                pending.push(other);
                if first_command {
                    break;
                }
            }
        }
    }
    preamble.memory_map = map.ok_or(ReplayError::MissingSetup("MemoryMap"))?;
    preamble.features = features.ok_or(ReplayError::MissingSetup("Features"))?;
    Ok(Opened {
        reader,
        preamble,
        pending,
    })
}

/// The device end: the connected vhost-user socket and where its frames come from.
pub struct Device<'a> {
    pub socket: UnixStream,
    pub frames: &'a mut dyn FrameSource,
}

/// Replays `opened` into the device; see the crate documentation.
pub fn replay<R: Read>(
    opened: Opened<R>,
    device: Device<'_>,
    options: ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let Opened {
        mut reader,
        preamble,
        pending,
    } = opened;
    let mut session = Session::connect(device.socket, &preamble)?;
    let mut report = ReplayReport {
        commands: 0,
        flushes: 0,
        error_responses: 0,
        memory_bytes: 0,
        seconds: 0.0,
        fps: 0.0,
        frames: Vec::new(),
        stopped_at_reset: false,
        frame_intervals_us: Vec::new(),
        frame_latency_us: Vec::new(),
        fences: 0,
        fence_us_p99: 0,
        fence_us_max: 0,
    };
    let started = Instant::now();
    let mut first_at = None;
    let mut index = 0u64;
    let records = pending
        .into_iter()
        .map(Ok)
        .chain(std::iter::from_fn(|| reader.next_record().transpose()));
    for record in records {
        let record = record?;
        match record {
            Record::Info(_) | Record::Features(_) => {}
            Record::MemoryMap(map) if map == preamble.memory_map => {}
            Record::MemoryMap(_) => return Err(ReplayError::MemoryMapChanged { index }),
            Record::Memory { gpa, bytes } => {
                session.settle(index)?;
                session.ram.write(gpa, &bytes)?;
                report.memory_bytes += bytes.len() as u64;
            }
            Record::Command {
                queue,
                at_us,
                response_len,
                request,
            } => {
                let mut due = Instant::now();
                if options.pace == Pace::Recorded {
                    let first = *first_at.get_or_insert(at_us);
                    due = started
                        + session.checking
                        + Duration::from_micros(at_us.saturating_sub(first));
                    session.wait_until(due, index)?;
                }
                let flush = command_type(&request) == Some(CMD_RESOURCE_FLUSH);
                report.flushes += u64::from(flush);
                session.send(index, queue, &request, response_len, flush.then_some(due))?;
                report.commands += 1;
            }
            Record::Frame(frame) => {
                let check_started = Instant::now();
                // Every command taken and every fence signalled: the renderer has finished
                // what the frame shows (outside the timed replay).
                session.settle(index)?;
                session.drain(index)?;
                let shown = device
                    .frames
                    .frame()
                    .map_err(|message| ReplayError::FrameSource { index, message })?;
                report.frames.push(compare(&frame, shown, &options));
                session.checking += check_started.elapsed();
            }
            Record::Reset { .. } if report.commands == 0 => {}
            Record::Reset { .. } => {
                report.stopped_at_reset = true;
                break;
            }
            Record::End { .. } => break,
        }
        session.reap()?;
        index += 1;
    }
    session.drain(index)?;
    report.error_responses = session.errors;
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    report.frame_intervals_us = session
        .presented
        .windows(2)
        .map(|w| micros((w[1].1 - w[0].1).saturating_sub(w[1].2 - w[0].2)))
        .collect();
    report.frame_latency_us = session
        .presented
        .iter()
        .map(|&(due, done, _)| micros(done.saturating_duration_since(due)))
        .collect();
    let mut fence_waits: Vec<u64> = session.fence_waits.iter().map(|&d| micros(d)).collect();
    fence_waits.sort_unstable();
    report.fences = fence_waits.len() as u64;
    report.fence_us_p99 = fence_waits
        .get((fence_waits.len().saturating_sub(1) * 99) / 100)
        .copied()
        .unwrap_or(0);
    report.fence_us_max = fence_waits.last().copied().unwrap_or(0);
    report.seconds = (started.elapsed() - session.checking).as_secs_f64();
    report.fps = report.flushes as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// Whether the request asks for a fence (`flags`, the second u32 of its header).
fn is_fenced(request: &[u8]) -> bool {
    request.get(4..8).is_some_and(|flags| {
        u32::from_le_bytes(flags.try_into().expect("four bytes")) & FLAG_FENCE != 0
    })
}

/// The request's command type (the first u32 of its header).
fn command_type(request: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(request.get(0..4)?.try_into().ok()?))
}

fn compare(
    recorded: &Frame,
    shown: Option<(u32, u32, Vec<u8>)>,
    options: &ReplayOptions,
) -> FrameCheck {
    let pixels = u64::from(recorded.width) * u64::from(recorded.height);
    let tolerance = options.tolerance;
    let mut check = FrameCheck {
        after: recorded.after,
        width: recorded.width,
        height: recorded.height,
        differing_pixels: 0,
        allowed_pixels: (pixels as f64 * options.outliers.clamp(0.0, 1.0)) as u64,
        max_difference: 0,
        missing: true,
    };
    let Some((width, height, pixels)) = shown else {
        return check;
    };
    if (width, height) != (recorded.width, recorded.height) || pixels.len() != recorded.pixels.len()
    {
        return check;
    }
    check.missing = false;
    for (a, b) in recorded.pixels.chunks_exact(4).zip(pixels.chunks_exact(4)) {
        // B, G, R; the X byte is undefined.
        let worst = (0..3).map(|i| a[i].abs_diff(b[i])).max().unwrap_or(0);
        check.max_difference = check.max_difference.max(worst);
        if worst > tolerance {
            check.differing_pixels += 1;
        }
    }
    check
}

/// A response slot and the staging bytes a chain in flight holds.
struct InFlight {
    response: u64,
    /// For a RESOURCE_FLUSH (its completion presents a frame): when it was due.
    flush: Option<Instant>,
    /// For a fenced command: when it was sent.
    fenced: Option<Instant>,
}

/// The frontend's side of one replay: connection, RAM, queues, staging allocator.
struct Session {
    frontend: Frontend,
    /// The same socket, watched for the device hanging up.
    watch: UnixStream,
    ram: GuestRam,
    queues: [DriverQueue; 2],
    in_flight: [std::collections::HashMap<u16, InFlight>; 2],
    staging_start: u64,
    staging_next: u64,
    event_idx: bool,
    /// Commands the device answered with an error.
    errors: u64,
    /// When each RESOURCE_FLUSH was due (sent, or scheduled at the recorded pace), when it
    /// completed, and how long frame checks had taken by then.
    presented: Vec<(Instant, Instant, Duration)>,
    /// Time spent checking frames (outside the timed replay).
    checking: Duration,
    /// How long each fenced command took from being sent to being seen answered.
    fence_waits: Vec<Duration>,
}

impl Session {
    fn connect(socket: UnixStream, preamble: &Preamble) -> Result<Session, ReplayError> {
        let vhost = |what| move |source| ReplayError::Vhost { what, source };
        let ram_end = preamble
            .memory_map
            .iter()
            .map(|&(gpa, size)| gpa.saturating_add(size))
            .max()
            .unwrap_or(0);
        let staging_start = ram_end.div_ceil(4096) * 4096;
        let size = staging_start
            .checked_add(STAGING_BYTES)
            .ok_or(ReplayError::RamTooLarge(ram_end))?;
        let ram = GuestRam::new(size)?;
        let watch = socket.try_clone().map_err(ReplayError::Socket)?;
        let mut frontend = Frontend::from_stream(socket, 2);
        let offered = frontend.get_features().map_err(vhost("GET_FEATURES"))?;
        frontend.set_owner().map_err(vhost("SET_OWNER"))?;
        if offered & VHOST_USER_F_PROTOCOL_FEATURES != 0 {
            let protocol = frontend
                .get_protocol_features()
                .map_err(vhost("GET_PROTOCOL_FEATURES"))?;
            frontend
                .set_protocol_features(
                    protocol
                        & (VhostUserProtocolFeatures::MQ
                            | VhostUserProtocolFeatures::REPLY_ACK
                            | VhostUserProtocolFeatures::CONFIG),
                )
                .map_err(vhost("SET_PROTOCOL_FEATURES"))?;
        }
        let transport =
            VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX | VHOST_USER_F_PROTOCOL_FEATURES;
        let acked = offered & (preamble.features | transport);
        frontend
            .set_features(acked)
            .map_err(vhost("SET_FEATURES"))?;
        frontend
            .set_mem_table(&[VhostUserMemoryRegionInfo {
                guest_phys_addr: 0,
                memory_size: size,
                userspace_addr: ram.host_address(),
                mmap_offset: 0,
                mmap_handle: ram.file().as_raw_fd(),
            }])
            .map_err(vhost("SET_MEM_TABLE"))?;
        let control = DriverQueue::new(staging_start, CONTROL_QUEUE_SIZE)?;
        let cursor_base = staging_start + DriverQueue::footprint(CONTROL_QUEUE_SIZE);
        let cursor = DriverQueue::new(cursor_base.div_ceil(4096) * 4096, CURSOR_QUEUE_SIZE)?;
        let staging_next =
            (cursor.used + DriverQueue::footprint(CURSOR_QUEUE_SIZE)).div_ceil(4096) * 4096;
        let queues = [control, cursor];
        for (index, queue) in queues.iter().enumerate() {
            let host = |gpa: u64| ram.host_address() + gpa;
            frontend
                .set_vring_num(index, queue.size)
                .map_err(vhost("SET_VRING_NUM"))?;
            frontend
                .set_vring_addr(
                    index,
                    &VringConfigData {
                        queue_max_size: queue.size,
                        queue_size: queue.size,
                        flags: 0,
                        desc_table_addr: host(queue.desc),
                        used_ring_addr: host(queue.used),
                        avail_ring_addr: host(queue.avail),
                        log_addr: None,
                    },
                )
                .map_err(vhost("SET_VRING_ADDR"))?;
            frontend
                .set_vring_base(index, 0)
                .map_err(vhost("SET_VRING_BASE"))?;
            frontend
                .set_vring_call(index, &queue.call)
                .map_err(vhost("SET_VRING_CALL"))?;
            frontend
                .set_vring_kick(index, &queue.kick)
                .map_err(vhost("SET_VRING_KICK"))?;
            if acked & VHOST_USER_F_PROTOCOL_FEATURES != 0 {
                frontend
                    .set_vring_enable(index, true)
                    .map_err(vhost("SET_VRING_ENABLE"))?;
            }
        }
        Ok(Session {
            frontend,
            watch,
            ram,
            queues,
            in_flight: Default::default(),
            staging_start: staging_next,
            staging_next,
            event_idx: acked & VIRTIO_RING_F_EVENT_IDX != 0,
            errors: 0,
            presented: Vec::new(),
            checking: Duration::ZERO,
            fence_waits: Vec::new(),
        })
    }

    /// Places a command and its response slot, publishes and kicks.
    fn send(
        &mut self,
        index: u64,
        queue: Queue,
        request: &[u8],
        response_len: u32,
        flush: Option<Instant>,
    ) -> Result<(), ReplayError> {
        let q = match queue {
            Queue::Control => 0,
            Queue::Cursor => 1,
        };
        let needed = request.len() as u64 + u64::from(response_len) + 16;
        if needed > self.ram.size() - self.staging_start {
            return Err(ReplayError::CommandTooLarge { index, len: needed });
        }
        if self.staging_next + needed > self.ram.size() {
            // Wrap around once nothing in flight uses the staging area.
            self.drain(index)?;
            self.staging_next = self.staging_start;
        }
        let wait_started = Instant::now();
        while !self.queues[q].has_room(2) {
            self.wait_call(q, index, wait_started)?;
        }
        let request_at = self.staging_next;
        let response_at = (request_at + request.len() as u64).div_ceil(8) * 8;
        self.staging_next = (response_at + u64::from(response_len)).div_ceil(8) * 8;
        self.ram.write(request_at, request)?;
        let mut buffers = vec![(request_at, request.len() as u32, false)];
        if response_len > 0 {
            buffers.push((response_at, response_len, true));
        }
        let head = self.queues[q].push(&self.ram, &buffers)?;
        self.in_flight[q].insert(
            head,
            InFlight {
                response: response_at,
                flush,
                fenced: is_fenced(request).then(Instant::now),
            },
        );
        self.queues[q].notify()
    }

    /// Takes completed chains, counting those answered with an error.
    fn reap(&mut self) -> Result<(), ReplayError> {
        for q in 0..2 {
            for used in self.queues[q].take_used(&self.ram)? {
                let Some(done) = self.in_flight[q].remove(&used.head) else {
                    continue;
                };
                if let Some(due) = done.flush {
                    self.presented.push((due, Instant::now(), self.checking));
                }
                if let Some(sent) = done.fenced {
                    self.fence_waits.push(sent.elapsed());
                }
                if used.len >= 4 {
                    let kind = self.ram.read(done.response, 4)?;
                    let kind = u32::from_le_bytes(kind.try_into().expect("four bytes"));
                    self.errors += u64::from(kind >= RESP_ERR_FIRST);
                }
            }
        }
        Ok(())
    }

    /// Waits until the device has taken (and run) every command sent so far, so that guest
    /// memory can change or the frame be read. With EVENT_IDX the device says so in
    /// `avail_event`; without it, every command must complete.
    fn settle(&mut self, index: u64) -> Result<(), ReplayError> {
        if !self.event_idx {
            return self.drain(index);
        }
        let started = Instant::now();
        for q in 0..2 {
            let mut spins = 0u32;
            while !self.queues[q].all_taken(&self.ram)? {
                if started.elapsed() > DEVICE_TIMEOUT {
                    return Err(ReplayError::Stalled(DEVICE_TIMEOUT, index));
                }
                spins += 1;
                if spins.is_multiple_of(1024) && self.peer_gone() {
                    return Err(ReplayError::Disconnected(index));
                }
                // A short wait is common (the device is on its way); past it, sleep rather
                // than spin, so the replayer does not take the CPU the renderer needs.
                match spins < 64 {
                    true => std::thread::yield_now(),
                    false => std::thread::sleep(Duration::from_micros(50)),
                }
            }
        }
        Ok(())
    }

    /// Waits until every chain in flight completed.
    fn drain(&mut self, index: u64) -> Result<(), ReplayError> {
        let started = Instant::now();
        self.reap()?;
        for q in 0..2 {
            while self.queues[q].in_flight() > 0 {
                self.wait_call(q, index, started)?;
            }
        }
        Ok(())
    }

    /// Waits for the device to signal queue `q` (or 10 ms), then takes completions.
    fn wait_call(&mut self, q: usize, index: u64, since: Instant) -> Result<(), ReplayError> {
        if since.elapsed() > DEVICE_TIMEOUT {
            return Err(ReplayError::Stalled(DEVICE_TIMEOUT, index));
        }
        self.wait_call_for(q, index, Duration::from_millis(10))
    }

    /// Waits until `due` (the recorded pace), taking completed chains as they come, so that
    /// a frame or fence is seen done when the device finished it, not when the wait ends.
    fn wait_until(&mut self, due: Instant, index: u64) -> Result<(), ReplayError> {
        loop {
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            self.wait_call_for(0, index, left.min(Duration::from_millis(10)))?;
        }
    }

    /// Waits up to `timeout` for queue `q`'s call eventfd, then takes completed chains.
    fn wait_call_for(
        &mut self,
        q: usize,
        index: u64,
        timeout: Duration,
    ) -> Result<(), ReplayError> {
        let millis = i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX);
        let mut fds = [
            libc::pollfd {
                fd: self.queues[q].call.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.watch.as_raw_fd(),
                events: libc::POLLRDHUP,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds on the stack, for descriptors this session owns.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, millis) };
        if fds[1].revents != 0 {
            return Err(ReplayError::Disconnected(index));
        }
        let _ = self.queues[q].call.read();
        self.reap()
    }

    /// Whether the device hung up its end of the connection.
    fn peer_gone(&self) -> bool {
        let mut fd = libc::pollfd {
            fd: self.watch.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack, for a socket this session owns.
        let ready = unsafe { libc::poll(&mut fd, 1, 0) };
        ready > 0 && fd.revents != 0
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // The backend stops using our RAM before it is unmapped.
        let _ = self.frontend.reset_owner();
    }
}
