//! A split virtqueue driven from the guest's side: descriptor table, available and used
//! rings in guest RAM, free descriptors tracked, completion in any order.

use std::collections::HashMap;
use std::sync::atomic::{fence, Ordering};

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::guest::GuestRam;
use crate::ReplayError;

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;

/// One buffer of a chain: `(guest address, length, device writes it)`.
pub type Buffer = (u64, u32, bool);

/// A completed chain: its head and the bytes the device wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    pub head: u16,
    pub len: u32,
}

/// A split virtqueue of `size` entries laid out at `base` in guest RAM.
pub struct DriverQueue {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    free: Vec<u16>,
    chains: HashMap<u16, Vec<u16>>,
    avail_idx: u16,
    used_seen: u16,
    pub kick: EventFd,
    pub call: EventFd,
}

impl DriverQueue {
    /// Guest bytes a queue of `size` entries needs (rings 4-byte aligned).
    pub fn footprint(size: u16) -> u64 {
        let size = u64::from(size);
        let used = (16 * size + 6 + 2 * size).div_ceil(4) * 4;
        used + 6 + 8 * size
    }

    /// A queue whose rings start at guest address `base` (zeroed RAM).
    pub fn new(base: u64, size: u16) -> Result<DriverQueue, ReplayError> {
        let desc = base;
        let avail = desc + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size)).div_ceil(4) * 4;
        let eventfd = || EventFd::new(EFD_NONBLOCK).map_err(ReplayError::Eventfd);
        Ok(DriverQueue {
            size,
            desc,
            avail,
            used,
            free: (0..size).rev().collect(),
            chains: HashMap::new(),
            avail_idx: 0,
            used_seen: 0,
            kick: eventfd()?,
            call: eventfd()?,
        })
    }

    /// Chains the device has not completed yet.
    pub fn in_flight(&self) -> usize {
        self.chains.len()
    }

    /// Whether a chain of `buffers` descriptors fits now.
    pub fn has_room(&self, buffers: usize) -> bool {
        self.free.len() >= buffers
    }

    /// Writes a chain and publishes it; returns its head. The caller checks [`has_room`].
    ///
    /// [`has_room`]: DriverQueue::has_room
    pub fn push(&mut self, ram: &GuestRam, buffers: &[Buffer]) -> Result<u16, ReplayError> {
        let slots: Vec<u16> = (0..buffers.len())
            .map(|_| self.free.pop().ok_or(ReplayError::QueueFull))
            .collect::<Result<_, _>>()?;
        for (i, (&(gpa, len, device_writes), &slot)) in buffers.iter().zip(&slots).enumerate() {
            let mut flags = 0;
            let next = slots.get(i + 1).copied().unwrap_or(0);
            if i + 1 < slots.len() {
                flags |= DESC_F_NEXT;
            }
            if device_writes {
                flags |= DESC_F_WRITE;
            }
            let mut entry = [0u8; 16];
            entry[0..8].copy_from_slice(&gpa.to_le_bytes());
            entry[8..12].copy_from_slice(&len.to_le_bytes());
            entry[12..14].copy_from_slice(&flags.to_le_bytes());
            entry[14..16].copy_from_slice(&next.to_le_bytes());
            ram.write(self.desc + 16 * u64::from(slot), &entry)?;
        }
        let head = slots[0];
        let ring_slot = self.avail + 4 + 2 * u64::from(self.avail_idx % self.size);
        ram.write_u16(ring_slot, head)?;
        fence(Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        ram.write_u16(self.avail + 2, self.avail_idx)?;
        fence(Ordering::SeqCst);
        self.chains.insert(head, slots);
        Ok(head)
    }

    /// Notifies the device.
    pub fn notify(&self) -> Result<(), ReplayError> {
        self.kick.write(1).map_err(ReplayError::Eventfd)
    }

    /// Takes every completed chain, freeing its descriptors.
    pub fn take_used(&mut self, ram: &GuestRam) -> Result<Vec<Used>, ReplayError> {
        let mut done = Vec::new();
        let used_idx = ram.read_u16(self.used + 2)?;
        fence(Ordering::Acquire);
        while self.used_seen != used_idx {
            let slot = self.used + 4 + 8 * u64::from(self.used_seen % self.size);
            let elem = ram.read(slot, 8)?;
            let id = u32::from_le_bytes(elem[0..4].try_into().expect("four bytes"));
            let len = u32::from_le_bytes(elem[4..8].try_into().expect("four bytes"));
            let head = u16::try_from(id)
                .ok()
                .filter(|h| self.chains.contains_key(h))
                .ok_or(ReplayError::BadUsed(id))?;
            self.free
                .extend(self.chains.remove(&head).expect("checked above"));
            done.push(Used { head, len });
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        Ok(done)
    }

    /// Whether the device has taken every published chain from the available ring (it
    /// writes `avail_event` when it goes back to waiting: VIRTIO_RING_F_EVENT_IDX).
    pub fn all_taken(&self, ram: &GuestRam) -> Result<bool, ReplayError> {
        let avail_event = ram.read_u16(self.used + 4 + 8 * u64::from(self.size))?;
        Ok(avail_event == self.avail_idx)
    }
}
