//! Recording what the guest sends the device (the `recording` crate's format): every command
//! in order, the guest memory the device is about to read, the features and memory map, and
//! scanout images to check a replay against.
//!
//! Guest memory is recorded by difference: before each command that can read guest memory
//! (transfers to the host, 3D submissions, whose copy-transfers read backings too), every page
//! attached as a backing is compared with what was recorded last, and only pages that changed
//! are written. The recording therefore holds exactly what the device could have read.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use recording::{Frame, Queue, Record};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryBackend, GuestMemoryRegion};

use super::protocol::MemEntry;

const PAGE: u64 = 4096;
/// Changed pages next to each other travel in one Memory record of at most this many bytes.
const MAX_MEMORY_RECORD: usize = 1 << 20;
/// Scanout images are recorded at most this often while the guest renders (and once more
/// when the recording of a device session ends).
const FRAME_INTERVAL: Duration = Duration::from_secs(1);

/// Writes a recording of the device's guest to `out`. A write that fails ends the recording
/// (logged once); the device goes on.
pub struct Recorder {
    out: Option<Box<dyn Write + Send>>,
    started: Instant,
    buffer: Vec<u8>,
    /// The content of every guest page recorded so far, by guest address.
    pages: HashMap<u64, Box<[u8]>>,
    features: Option<u64>,
    memory_map: Option<Vec<(u64, u64)>>,
    commands: u64,
    /// Commands recorded since the last Frame record (a final frame is owed when > 0).
    since_frame: u64,
    last_frame: Option<Instant>,
}

impl Recorder {
    /// Records to `out` (ray-gpu: the pipe to rayvmm), starting with an Info record.
    pub fn new(out: Box<dyn Write + Send>, info: &str) -> Recorder {
        let mut recorder = Recorder {
            out: Some(out),
            started: Instant::now(),
            buffer: Vec::new(),
            pages: HashMap::new(),
            features: None,
            memory_map: None,
            commands: 0,
            since_frame: 0,
            last_frame: None,
        };
        recorder.emit(&Record::Info(info.to_owned()));
        recorder
    }

    /// Whether records still go out.
    pub fn is_recording(&self) -> bool {
        self.out.is_some()
    }

    fn emit(&mut self, record: &Record) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        self.buffer.clear();
        let written = record
            .encode(&mut self.buffer)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
            .and_then(|()| out.write_all(&self.buffer));
        if let Err(e) = written {
            log::warn!("virtio-gpu: recording stopped: {e}");
            self.out = None;
        }
    }

    /// Records the memory map and acked features when they changed.
    pub fn setup<M: GuestMemory>(&mut self, mem: &M, features: u64) {
        let map: Vec<(u64, u64)> = mem
            .physical_memory()
            .map(|physical| {
                physical
                    .iter()
                    .map(|region| (region.start_addr().0, region.len()))
                    .collect()
            })
            .unwrap_or_default();
        if self.memory_map.as_ref() != Some(&map) {
            self.emit(&Record::MemoryMap(map.clone()));
            self.memory_map = Some(map);
            self.pages.clear();
        }
        if self.features != Some(features) {
            self.emit(&Record::Features(features));
            self.features = Some(features);
        }
    }

    /// Records every page of `backings` whose content changed since it was last recorded.
    pub fn memory<'a, M: GuestMemory>(
        &mut self,
        mem: &M,
        backings: impl Iterator<Item = &'a [MemEntry]>,
    ) {
        let mut page = vec![0u8; PAGE as usize];
        let mut run: Option<(u64, Vec<u8>)> = None;
        for entry in backings.flatten() {
            let (addr, len) = (entry.addr, u64::from(entry.length));
            let Some(end) = addr.checked_add(len) else {
                continue;
            };
            let mut at = addr - addr % PAGE;
            while at < end {
                let changed = mem.read_slice(&mut page, GuestAddress(at)).is_ok()
                    && self.pages.get(&at).is_none_or(|old| **old != *page);
                if changed {
                    self.pages.insert(at, page.clone().into_boxed_slice());
                    match run.as_mut() {
                        Some((start, bytes))
                            if *start + bytes.len() as u64 == at
                                && bytes.len() < MAX_MEMORY_RECORD =>
                        {
                            bytes.extend_from_slice(&page)
                        }
                        _ => {
                            if let Some((gpa, bytes)) = run.replace((at, page.clone())) {
                                self.emit(&Record::Memory { gpa, bytes });
                            }
                        }
                    }
                }
                at += PAGE;
            }
        }
        if let Some((gpa, bytes)) = run {
            self.emit(&Record::Memory { gpa, bytes });
        }
    }

    /// Records one command as the driver queued it (its whole readable part).
    pub fn command(&mut self, cursor_queue: bool, request: &[u8], response_len: usize) {
        let queue = if cursor_queue {
            Queue::Cursor
        } else {
            Queue::Control
        };
        self.emit(&Record::Command {
            queue,
            at_us: self.elapsed_us(),
            response_len: u32::try_from(response_len).unwrap_or(u32::MAX),
            request: request.to_vec(),
        });
        self.commands += 1;
        self.since_frame += 1;
    }

    /// Whether a scanout image is due after a flush (one a second).
    pub fn frame_due(&self) -> bool {
        self.last_frame
            .is_none_or(|last| last.elapsed() >= FRAME_INTERVAL)
    }

    /// Whether commands came since the last scanout image.
    pub fn frame_owed(&self) -> bool {
        self.since_frame > 0
    }

    /// Records what the scanout shows now (B, G, R, X).
    pub fn frame(&mut self, width: u32, height: u32, pixels: Vec<u8>) {
        self.emit(&Record::Frame(Frame {
            after: self.commands,
            width,
            height,
            pixels,
        }));
        self.since_frame = 0;
        self.last_frame = Some(Instant::now());
    }

    /// The driver reset the device: what was attached is gone.
    pub fn reset(&mut self) {
        self.emit(&Record::Reset {
            at_us: self.elapsed_us(),
        });
        self.features = None;
    }

    /// Flushes what was written (the session ended).
    pub fn flush(&mut self) {
        if let Some(out) = self.out.as_mut() {
            if let Err(e) = out.flush() {
                log::warn!("virtio-gpu: recording stopped: {e}");
                self.out = None;
            }
        }
    }

    fn elapsed_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}
