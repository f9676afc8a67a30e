//! A small virtio driver over synthetic guest memory, for the virtio-gpu tests and benches:
//! it lays out split virtqueues, writes requests, posts descriptor chains (well-formed or
//! hostile) and reads back the used ring and the responses.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use devices::virtio_gpu::protocol::{CtrlHeader, HEADER_SIZE};
use devices::virtio_gpu::{CursorImage, DisplaySink, QueueKind, VirtioGpu};
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

/// Entries of each test queue.
pub const QUEUE_SIZE: u16 = 256;
/// Guest memory size.
pub const MEM_SIZE: usize = 128 << 20;
/// Where request and response buffers start.
const DATA_START: u64 = 0x10000;

/// One descriptor of a chain to post.
#[derive(Clone, Copy, Debug)]
pub enum Desc {
    /// Device-readable buffer.
    Read(u64, u32),
    /// Device-writable buffer.
    Write(u64, u32),
}

/// A split virtqueue laid out in guest memory, seen from the driver's side.
pub struct TestQueue {
    pub queue: Queue,
    desc_table: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
    last_used: u16,
}

impl TestQueue {
    fn new(base: u64) -> TestQueue {
        let desc_table = base;
        let avail = base + 16 * u64::from(QUEUE_SIZE);
        let used = avail + 0x1000;
        let mut queue = Queue::new(QUEUE_SIZE).unwrap();
        queue.set_size(QUEUE_SIZE);
        queue.set_desc_table_address(Some(desc_table as u32), Some(0));
        queue.set_avail_ring_address(Some(avail as u32), Some(0));
        queue.set_used_ring_address(Some(used as u32), Some(0));
        queue.set_ready(true);
        TestQueue {
            queue,
            desc_table,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            last_used: 0,
        }
    }

    /// Writes descriptor `index`.
    pub fn write_desc(
        &self,
        mem: &GuestMemoryMmap,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let at = GuestAddress(self.desc_table + 16 * u64::from(index));
        mem.write_obj(addr, at).unwrap();
        mem.write_obj(len, at.unchecked_add(8)).unwrap();
        mem.write_obj(flags, at.unchecked_add(12)).unwrap();
        mem.write_obj(next, at.unchecked_add(14)).unwrap();
    }

    /// Makes the chain starting at descriptor `head` available.
    pub fn make_available(&mut self, mem: &GuestMemoryMmap, head: u16) {
        let slot = u64::from(self.avail_idx % QUEUE_SIZE);
        mem.write_obj(head, GuestAddress(self.avail + 4 + 2 * slot))
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_obj(self.avail_idx, GuestAddress(self.avail + 2))
            .unwrap();
    }

    /// Posts `descs` as one chain; returns its head index.
    pub fn post(&mut self, mem: &GuestMemoryMmap, descs: &[Desc]) -> u16 {
        let head = self.next_desc;
        for (i, desc) in descs.iter().enumerate() {
            let index = (head + i as u16) % QUEUE_SIZE;
            let next = (index + 1) % QUEUE_SIZE;
            let more = if i + 1 < descs.len() {
                VRING_DESC_F_NEXT as u16
            } else {
                0
            };
            let (addr, len, write) = match *desc {
                Desc::Read(addr, len) => (addr, len, 0),
                Desc::Write(addr, len) => (addr, len, VRING_DESC_F_WRITE as u16),
            };
            self.write_desc(mem, index, addr, len, more | write, next);
        }
        self.next_desc = (head + descs.len() as u16) % QUEUE_SIZE;
        self.make_available(mem, head);
        head
    }

    /// Used-ring entries (head index, length) added since the last call.
    pub fn take_used(&mut self, mem: &GuestMemoryMmap) -> Vec<(u32, u32)> {
        let used_idx: u16 = mem.read_obj(GuestAddress(self.used + 2)).unwrap();
        let mut out = Vec::new();
        while self.last_used != used_idx {
            let slot = u64::from(self.last_used % QUEUE_SIZE);
            let at = GuestAddress(self.used + 4 + 8 * slot);
            let id: u32 = mem.read_obj(at).unwrap();
            let len: u32 = mem.read_obj(at.unchecked_add(4)).unwrap();
            out.push((id, len));
            self.last_used = self.last_used.wrapping_add(1);
        }
        out
    }
}

/// Guest memory with the control and cursor queues and a bump allocator for buffers.
pub struct Guest {
    pub mem: GuestMemoryMmap,
    pub control: TestQueue,
    pub cursor: TestQueue,
    next_data: u64,
}

impl Default for Guest {
    fn default() -> Self {
        Guest::new()
    }
}

impl Guest {
    pub fn new() -> Guest {
        Guest {
            mem: GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap(),
            control: TestQueue::new(0),
            cursor: TestQueue::new(0x8000),
            next_data: DATA_START,
        }
    }

    /// Reserves `len` bytes (8-byte aligned) and fills them with `bytes` (zeros after).
    pub fn alloc(&mut self, bytes: &[u8], len: usize) -> u64 {
        let addr = self.next_data;
        self.next_data = (addr + len.max(bytes.len()) as u64 + 7) & !7;
        assert!(
            self.next_data <= MEM_SIZE as u64,
            "test guest memory exhausted"
        );
        self.mem.write_slice(bytes, GuestAddress(addr)).unwrap();
        addr
    }

    /// Forgets every buffer allocated so far (for loops that reuse the memory).
    pub fn free_all(&mut self) {
        self.next_data = DATA_START;
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.mem.read_slice(&mut out, GuestAddress(addr)).unwrap();
        out
    }

    pub fn queue(&mut self, kind: QueueKind) -> &mut TestQueue {
        match kind {
            QueueKind::Control => &mut self.control,
            QueueKind::Cursor => &mut self.cursor,
        }
    }

    /// Lets the device process `kind`'s queue.
    pub fn process(&mut self, gpu: &mut VirtioGpu, kind: QueueKind) -> bool {
        let mem = &self.mem;
        let queue = match kind {
            QueueKind::Control => &mut self.control.queue,
            QueueKind::Cursor => &mut self.cursor.queue,
        };
        gpu.process_queue(mem, queue, kind).unwrap()
    }

    /// Posts `request` with a `response_len`-byte response buffer without processing it;
    /// returns the response buffer's address.
    pub fn post_request(&mut self, kind: QueueKind, request: &[u8], response_len: usize) -> u64 {
        let req = self.alloc(request, request.len());
        let resp = self.alloc(&[], response_len);
        let mem = self.mem.clone();
        self.queue(kind).post(
            &mem,
            &[
                Desc::Read(req, request.len() as u32),
                Desc::Write(resp, response_len as u32),
            ],
        );
        resp
    }

    /// Sends one request and returns the response bytes the device reported as written.
    pub fn send(
        &mut self,
        gpu: &mut VirtioGpu,
        kind: QueueKind,
        request: &[u8],
        response_len: usize,
    ) -> Vec<u8> {
        let resp = self.post_request(kind, request, response_len);
        self.process(gpu, kind);
        let mem = self.mem.clone();
        let used = self.queue(kind).take_used(&mem);
        assert_eq!(used.len(), 1, "expected exactly one used buffer");
        self.read(resp, used[0].1 as usize)
    }

    /// Sends a request with a header-sized response and returns the response type.
    pub fn send_for_type(&mut self, gpu: &mut VirtioGpu, kind: QueueKind, request: &[u8]) -> u32 {
        response_type(&self.send(gpu, kind, request, HEADER_SIZE))
    }
}

/// A header for command `cmd`.
pub fn header(cmd: u32) -> CtrlHeader {
    CtrlHeader {
        type_: cmd,
        ..Default::default()
    }
}

/// The bytes of a request: `header`, `body`, then `tail`.
pub fn request<T: ByteValued>(header: CtrlHeader, body: T, tail: &[u8]) -> Vec<u8> {
    let mut bytes = header.as_slice().to_vec();
    bytes.extend_from_slice(body.as_slice());
    bytes.extend_from_slice(tail);
    bytes
}

/// A request that is only a header.
pub fn bare(cmd: u32) -> Vec<u8> {
    header(cmd).as_slice().to_vec()
}

/// The type field of a response (0 when the response is shorter than a header).
pub fn response_type(response: &[u8]) -> u32 {
    response
        .get(0..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// Reads a `T` from the start of `bytes`.
pub fn read_struct<T: ByteValued + Default>(bytes: &[u8]) -> T {
    let mut value = T::default();
    let len = std::mem::size_of::<T>();
    value.as_mut_slice().copy_from_slice(&bytes[..len]);
    value
}

/// What the device told the display.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkEvent {
    Scanout(u32, Option<(u32, u32)>),
    Cursor(u32, u32, u32, Option<CursorImage>),
    Move(u32, u32, u32),
}

/// A sink that records every call.
#[derive(Clone, Default)]
pub struct RecordingSink(pub Arc<Mutex<Vec<SinkEvent>>>);

impl RecordingSink {
    pub fn take(&self) -> Vec<SinkEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl DisplaySink for RecordingSink {
    fn scanout(&mut self, scanout_id: u32, size: Option<(u32, u32)>) {
        self.0
            .lock()
            .unwrap()
            .push(SinkEvent::Scanout(scanout_id, size));
    }
    fn cursor_update(&mut self, scanout_id: u32, x: u32, y: u32, image: Option<&CursorImage>) {
        self.0
            .lock()
            .unwrap()
            .push(SinkEvent::Cursor(scanout_id, x, y, image.cloned()));
    }
    fn cursor_move(&mut self, scanout_id: u32, x: u32, y: u32) {
        self.0
            .lock()
            .unwrap()
            .push(SinkEvent::Move(scanout_id, x, y));
    }
}
