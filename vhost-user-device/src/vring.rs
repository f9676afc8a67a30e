//! One virtqueue as the frontend configures it over vhost-user: its size, ring addresses,
//! base index, the kick, call and error eventfds, and whether it is started and enabled.
//!
//! A ring is *started* by SET_VRING_KICK and stopped by GET_VRING_BASE; with
//! `VHOST_USER_F_PROTOCOL_FEATURES` negotiated it also starts *disabled* until
//! SET_VRING_ENABLE 1 (vhost-user specification, "Starting and stopping rings"). The backend
//! touches a ring only while it is both started and enabled.

use std::fs::File;
use std::io::{Read, Write};

use thiserror::Error;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;

/// Largest ring the backend accepts.
pub const MAX_QUEUE_SIZE: u16 = 1024;

/// Why a vring request was refused.
#[derive(Debug, Error)]
pub enum VringError {
    #[error("queue size {0} is not a power of two between 1 and {MAX_QUEUE_SIZE}")]
    Size(u32),
    #[error("ring base {0} does not fit a 16-bit index")]
    Base(u32),
    #[error("ring address {addr:#x} is misaligned for the {part}")]
    Align { part: &'static str, addr: u64 },
    #[error("the ring's {0} is not set")]
    Unset(&'static str),
}

/// One virtqueue's vhost-user state.
#[derive(Debug)]
pub struct Vring {
    queue: Queue,
    kick: Option<File>,
    /// Bumped each time the kick descriptor changes, so a stale readiness event is ignored.
    kick_generation: u32,
    call: Option<File>,
    err: Option<File>,
    enabled: bool,
    started: bool,
    addresses_set: bool,
}

impl Default for Vring {
    fn default() -> Self {
        Vring {
            // MAX_QUEUE_SIZE is a nonzero power of two, which is all Queue::new checks.
            queue: Queue::new(MAX_QUEUE_SIZE).expect("a valid maximum queue size"),
            kick: None,
            kick_generation: 0,
            call: None,
            err: None,
            enabled: false,
            started: false,
            addresses_set: false,
        }
    }
}

impl Vring {
    /// SET_VRING_NUM.
    pub fn set_size(&mut self, num: u32) -> Result<(), VringError> {
        let size = u16::try_from(num).map_err(|_| VringError::Size(num))?;
        self.queue
            .try_set_size(size)
            .map_err(|_| VringError::Size(num))
    }

    /// SET_VRING_ADDR, with the addresses already translated to guest physical addresses.
    pub fn set_addresses(
        &mut self,
        desc: GuestAddress,
        avail: GuestAddress,
        used: GuestAddress,
    ) -> Result<(), VringError> {
        let misaligned = |part, addr: GuestAddress| VringError::Align { part, addr: addr.0 };
        self.queue
            .try_set_desc_table_address(desc)
            .map_err(|_| misaligned("descriptor table", desc))?;
        self.queue
            .try_set_avail_ring_address(avail)
            .map_err(|_| misaligned("available ring", avail))?;
        self.queue
            .try_set_used_ring_address(used)
            .map_err(|_| misaligned("used ring", used))?;
        self.addresses_set = true;
        Ok(())
    }

    /// SET_VRING_BASE: where the device resumes reading the available ring.
    pub fn set_base(&mut self, base: u32) -> Result<(), VringError> {
        let base = u16::try_from(base).map_err(|_| VringError::Base(base))?;
        self.queue.set_next_avail(base);
        self.queue.set_next_used(base);
        Ok(())
    }

    /// GET_VRING_BASE: stops the ring and returns the next available index.
    pub fn stop(&mut self) -> u16 {
        self.started = false;
        self.queue.set_ready(false);
        self.kick = None;
        self.kick_generation = self.kick_generation.wrapping_add(1);
        self.queue.next_avail()
    }

    /// SET_VRING_KICK: installs the kick eventfd and starts the ring. Returns the generation
    /// that readiness events for this descriptor carry.
    pub fn start(&mut self, kick: File) -> Result<u32, VringError> {
        if !self.addresses_set {
            return Err(VringError::Unset("addresses"));
        }
        self.kick = Some(kick);
        self.kick_generation = self.kick_generation.wrapping_add(1);
        self.started = true;
        self.queue.set_ready(true);
        Ok(self.kick_generation)
    }

    /// SET_VRING_CALL.
    pub fn set_call(&mut self, call: Option<File>) {
        self.call = call;
    }

    /// SET_VRING_ERR.
    pub fn set_err(&mut self, err: Option<File>) {
        self.err = err;
    }

    /// SET_VRING_ENABLE.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// Turns on `VIRTIO_RING_F_EVENT_IDX` handling.
    pub fn set_event_idx(&mut self, enabled: bool) {
        self.queue.set_event_idx(enabled);
    }

    /// Whether the backend may process this ring now.
    pub fn is_active(&self) -> bool {
        self.started && self.enabled
    }

    /// The kick eventfd, if the ring is started.
    pub fn kick(&self) -> Option<&File> {
        self.kick.as_ref()
    }

    /// The generation of the current kick descriptor.
    pub fn kick_generation(&self) -> u32 {
        self.kick_generation
    }

    /// Consumes a pending kick so the eventfd stops being readable.
    pub fn clear_kick(&mut self) {
        let mut counter = [0u8; 8];
        if let Some(kick) = self.kick.as_mut() {
            // The descriptor was reported readable, so this does not block; a failure only
            // means there was nothing to consume.
            let _ = kick.read(&mut counter);
        }
    }

    /// Interrupts the driver through the call eventfd.
    pub fn signal_used(&mut self) {
        if let Some(call) = self.call.as_mut() {
            // An eventfd write fails only if the counter would overflow, in which case the
            // frontend has an interrupt pending anyway.
            let _ = call.write(&1u64.to_ne_bytes());
        }
    }

    /// Reports a ring error through the error eventfd.
    pub fn signal_error(&mut self) {
        if let Some(err) = self.err.as_mut() {
            let _ = err.write(&1u64.to_ne_bytes());
        }
    }

    /// The virtqueue, for device code.
    pub fn queue_mut(&mut self) -> &mut Queue {
        &mut self.queue
    }

    /// The virtqueue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Back to the state of a fresh ring (RESET_OWNER / RESET_DEVICE).
    pub fn reset(&mut self) {
        let generation = self.kick_generation.wrapping_add(1);
        *self = Vring::default();
        self.kick_generation = generation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_that_is_not_a_power_of_two_is_refused() {
        let mut vring = Vring::default();

        let result = vring.set_size(100);

        assert!(matches!(result, Err(VringError::Size(100))));
    }

    #[test]
    fn size_above_the_maximum_is_refused() {
        let mut vring = Vring::default();

        let result = vring.set_size(2048);

        assert!(matches!(result, Err(VringError::Size(2048))));
    }

    #[test]
    fn base_above_sixteen_bits_is_refused() {
        let mut vring = Vring::default();

        let result = vring.set_base(0x1_0000);

        assert!(matches!(result, Err(VringError::Base(0x1_0000))));
    }

    #[test]
    fn misaligned_descriptor_table_is_refused() {
        let mut vring = Vring::default();

        let result = vring.set_addresses(GuestAddress(0x1001), GuestAddress(0), GuestAddress(0));

        assert!(matches!(result, Err(VringError::Align { .. })));
    }

    #[test]
    fn ring_without_addresses_cannot_start() {
        let mut vring = Vring::default();
        let kick = tempfile::tempfile().unwrap();

        let result = vring.start(kick);

        assert!(matches!(result, Err(VringError::Unset(_))));
    }

    #[test]
    fn stopping_returns_the_base_that_was_set() {
        let mut vring = Vring::default();
        vring.set_base(42).unwrap();

        let base = vring.stop();

        assert_eq!(base, 42);
    }
}
