//! The guest side for tests: RAM in a memfd shared with the backend, split virtqueues laid
//! out in it, and a driver that writes descriptor chains, kicks, and reads the used ring.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::frontend::{
    Frontend, Region, SET_VRING_BASE, SET_VRING_CALL, SET_VRING_ENABLE, SET_VRING_KICK,
    SET_VRING_NUM,
};

/// Where the frontend pretends to have mapped guest RAM (vring addresses are given in this
/// address space and the backend translates them).
pub const USER_BASE: u64 = 0x7f00_0000_0000;
/// First guest address handed out for buffers; below it live the rings.
const DATA_START: u64 = 0x10_0000;
/// Guest address of queue `i`'s rings: `RING_BASE + i * RING_STRIDE`.
const RING_BASE: u64 = 0x1_0000;
const RING_STRIDE: u64 = 0x1_0000;

const VIRTQ_DESC_F_NEXT: u16 = 1;
const VIRTQ_DESC_F_WRITE: u16 = 2;

/// Guest RAM: one memfd, mapped here as well.
pub struct GuestRam {
    pub file: File,
    pub memory: GuestMemoryMmap,
    pub size: u64,
    next_free: u64,
}

impl GuestRam {
    /// `size` bytes of zeroed guest RAM at guest address 0.
    pub fn new(size: u64) -> GuestRam {
        let fd = nix::sys::memfd::memfd_create("guest-ram", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .expect("memfd_create");
        let file = File::from(fd);
        file.set_len(size).expect("size guest RAM");
        let mapping = MmapRegion::from_file(
            FileOffset::new(file.try_clone().expect("dup"), 0),
            size as usize,
        )
        .expect("map guest RAM");
        let region = GuestRegionMmap::new(mapping, GuestAddress(0)).expect("region");
        let memory = GuestMemoryMmap::from_regions(vec![region]).expect("guest memory");
        GuestRam {
            file,
            memory,
            size,
            next_free: DATA_START,
        }
    }

    /// The SET_MEM_TABLE region describing this RAM.
    pub fn region(&self) -> Region {
        Region {
            guest_phys_addr: 0,
            size: self.size,
            user_addr: USER_BASE,
            mmap_offset: 0,
        }
    }

    /// Hands out `len` bytes of guest memory aligned to `align`.
    pub fn alloc(&mut self, len: u64, align: u64) -> u64 {
        let start = self.next_free.div_ceil(align) * align;
        assert!(start + len <= self.size, "guest RAM exhausted");
        self.next_free = start + len;
        start
    }

    /// Writes `bytes` at `gpa`.
    pub fn write(&self, gpa: u64, bytes: &[u8]) {
        self.memory
            .write_slice(bytes, GuestAddress(gpa))
            .expect("write guest memory");
    }

    /// Reads `len` bytes at `gpa`.
    pub fn read(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        self.memory
            .read_slice(&mut bytes, GuestAddress(gpa))
            .expect("read guest memory");
        bytes
    }
}

/// One buffer of a descriptor chain.
#[derive(Clone, Copy, Debug)]
pub struct Buffer {
    pub gpa: u64,
    pub len: u32,
    pub device_writes: bool,
}

impl Buffer {
    pub fn readable(gpa: u64, len: u32) -> Buffer {
        Buffer {
            gpa,
            len,
            device_writes: false,
        }
    }

    pub fn writable(gpa: u64, len: u32) -> Buffer {
        Buffer {
            gpa,
            len,
            device_writes: true,
        }
    }
}

/// A split virtqueue driven from the guest side.
pub struct DriverQueue {
    pub index: u32,
    pub size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
    pub kick: EventFd,
    pub call: EventFd,
}

impl DriverQueue {
    /// Lays out queue `index` of `size` entries and configures it on the backend: NUM, ADDR,
    /// BASE, CALL, KICK, ENABLE (the order QEMU's vhost_virtqueue_start uses).
    pub fn setup(frontend: &Frontend, index: u32, size: u16) -> DriverQueue {
        let desc = RING_BASE + u64::from(index) * RING_STRIDE;
        let avail = desc + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size)).div_ceil(4) * 4;
        let queue = DriverQueue {
            index,
            size,
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            used_seen: 0,
            kick: EventFd::new(EFD_NONBLOCK).expect("kick eventfd"),
            call: EventFd::new(EFD_NONBLOCK).expect("call eventfd"),
        };
        assert!(frontend.vring_state(SET_VRING_NUM, index, u32::from(size)));
        assert!(frontend.set_vring_addr(
            index,
            USER_BASE + desc,
            USER_BASE + used,
            USER_BASE + avail
        ));
        assert!(frontend.vring_state(SET_VRING_BASE, index, 0));
        assert!(frontend.set_vring_fd(SET_VRING_CALL, index as u8, queue.call.as_raw_fd()));
        assert!(frontend.set_vring_fd(SET_VRING_KICK, index as u8, queue.kick.as_raw_fd()));
        assert!(frontend.vring_state(SET_VRING_ENABLE, index, 1));
        queue
    }

    /// Writes a descriptor chain and publishes it in the available ring (no kick).
    pub fn push(&mut self, ram: &GuestRam, buffers: &[Buffer]) -> u16 {
        let head = self.next_desc;
        for (i, buffer) in buffers.iter().enumerate() {
            let slot = (self.next_desc) % self.size;
            let next = (slot + 1) % self.size;
            let mut flags = 0;
            if i + 1 < buffers.len() {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            if buffer.device_writes {
                flags |= VIRTQ_DESC_F_WRITE;
            }
            let mut entry = Vec::with_capacity(16);
            entry.extend_from_slice(&buffer.gpa.to_le_bytes());
            entry.extend_from_slice(&buffer.len.to_le_bytes());
            entry.extend_from_slice(&flags.to_le_bytes());
            entry.extend_from_slice(&next.to_le_bytes());
            ram.write(self.desc + 16 * u64::from(slot), &entry);
            self.next_desc = next;
        }
        let ring_slot = self.avail + 4 + 2 * u64::from(self.avail_idx % self.size);
        ram.write(ring_slot, &head.to_le_bytes());
        fence(Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        ram.write(self.avail + 2, &self.avail_idx.to_le_bytes());
        head
    }

    /// Notifies the device.
    pub fn notify(&self) {
        self.kick.write(1).expect("kick");
    }

    /// Waits for the next used entry; returns `(descriptor head, bytes written)`.
    pub fn wait_used(&mut self, ram: &GuestRam, timeout: Duration) -> (u32, u32) {
        let deadline = Instant::now() + timeout;
        loop {
            let used_idx = u16::from_le_bytes(ram.read(self.used + 2, 2).try_into().unwrap());
            if used_idx != self.used_seen {
                fence(Ordering::Acquire);
                let slot = self.used + 4 + 8 * u64::from(self.used_seen % self.size);
                let elem = ram.read(slot, 8);
                self.used_seen = self.used_seen.wrapping_add(1);
                return (
                    u32::from_le_bytes(elem[0..4].try_into().unwrap()),
                    u32::from_le_bytes(elem[4..8].try_into().unwrap()),
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "queue {}: no used entry in {timeout:?}",
                self.index
            );
            wait_readable(self.call.as_raw_fd(), left.min(Duration::from_millis(50)));
            let _ = self.call.read();
        }
    }

    /// Pushes a chain, kicks, and waits for it to be used.
    pub fn roundtrip(&mut self, ram: &GuestRam, buffers: &[Buffer]) -> (u32, u32) {
        self.push(ram, buffers);
        self.notify();
        self.wait_used(ram, Duration::from_secs(10))
    }

    /// The used index the driver has consumed up to.
    pub fn used_seen(&self) -> u16 {
        self.used_seen
    }

    /// `avail_event`, which the device writes after the used ring (VIRTIO_RING_F_EVENT_IDX).
    pub fn avail_event(&self, ram: &GuestRam) -> u16 {
        let at = self.used + 4 + 8 * u64::from(self.size);
        u16::from_le_bytes(ram.read(at, 2).try_into().unwrap())
    }

    /// Writes `used_event`, after the available ring: "interrupt me once the used index
    /// passes this".
    pub fn set_used_event(&self, ram: &GuestRam, value: u16) {
        ram.write(
            self.avail + 4 + 2 * u64::from(self.size),
            &value.to_le_bytes(),
        );
        fence(Ordering::SeqCst);
    }

    /// Publishes a chain and kicks only if `avail_event` asks for it, as Linux's
    /// `virtqueue_kick_prepare` does with VIRTIO_RING_F_EVENT_IDX. Returns whether it kicked.
    pub fn push_and_kick_with_event_idx(&mut self, ram: &GuestRam, buffers: &[Buffer]) -> bool {
        let old = self.avail_idx;
        self.push(ram, buffers);
        fence(Ordering::SeqCst);
        let new = self.avail_idx;
        let event = self.avail_event(ram);
        // vring_need_event(event, new, old)
        let kick = new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old);
        if kick {
            self.notify();
        }
        kick
    }

    /// Waits for an interrupt (the call eventfd) without ever polling the used ring first,
    /// as an interrupt-driven driver (Linux) does, then takes the next used entry and asks
    /// for an interrupt on the one after (`used_event`, as `virtqueue_enable_cb` does).
    pub fn wait_interrupt(&mut self, ram: &GuestRam, timeout: Duration) -> Option<(u32, u32)> {
        if !wait_readable(self.call.as_raw_fd(), timeout) {
            return None;
        }
        let _ = self.call.read();
        fence(Ordering::Acquire);
        let used_idx = u16::from_le_bytes(ram.read(self.used + 2, 2).try_into().unwrap());
        if used_idx == self.used_seen {
            return None;
        }
        let slot = self.used + 4 + 8 * u64::from(self.used_seen % self.size);
        let elem = ram.read(slot, 8);
        self.used_seen = self.used_seen.wrapping_add(1);
        self.set_used_event(ram, self.used_seen);
        Some((
            u32::from_le_bytes(elem[0..4].try_into().unwrap()),
            u32::from_le_bytes(elem[4..8].try_into().unwrap()),
        ))
    }
}

/// Waits until `fd` is readable or `timeout` passes; returns whether it became readable.
fn wait_readable(fd: RawFd, timeout: Duration) -> bool {
    // SAFETY: `fd` is owned by the caller's EventFd, which outlives this call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut fds = [PollFd::new(borrowed, PollFlags::POLLIN)];
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    poll(&mut fds, PollTimeout::from(millis)).is_ok_and(|ready| ready > 0)
}
