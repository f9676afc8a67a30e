//! State shared by the request handler and the serving loop (both on the serving thread): the
//! device model, the memory table and the vrings.

use virtio_queue::QueueT;

use super::device::DeviceModel;
use super::memory::MemoryTable;
use super::vring::Vring;

/// The device, its memory and its rings.
pub struct Core<D> {
    pub device: D,
    pub memory: MemoryTable,
    pub vrings: Vec<Vring>,
}

impl<D: DeviceModel> Core<D> {
    /// A core for `device`, with one (stopped) vring per queue.
    pub fn new(device: D) -> Self {
        let vrings = (0..device.queue_count())
            .map(|_| Vring::default())
            .collect();
        Core {
            device,
            memory: MemoryTable::default(),
            vrings,
        }
    }

    /// Serves queue `index`: lets the device consume what is available and interrupts the
    /// driver when the device says so.
    pub fn process_queue(&mut self, index: usize) {
        let Some(vring) = self.vrings.get_mut(index) else {
            return;
        };
        if !vring.is_active() {
            return;
        }
        let memory = self.memory.memory();
        if !vring.queue().is_valid(memory.as_ref()) {
            log::warn!("vhost-user: queue {index} lies outside guest memory; not processed");
            vring.signal_error();
            return;
        }
        if self
            .device
            .process_queue(memory.as_ref(), vring.queue_mut(), index)
        {
            vring.signal_used();
        }
    }

    /// Serves ring `index` after its kick descriptor (of `generation`) fired; a kick from a
    /// descriptor that was replaced since is ignored.
    pub fn kicked(&mut self, index: usize, generation: u32) {
        let Some(vring) = self.vrings.get_mut(index) else {
            return;
        };
        if vring.kick_generation() != generation || vring.kick().is_none() {
            return;
        }
        vring.clear_kick();
        self.process_queue(index);
    }

    /// Completes fenced commands on the control queue after the device's fence event fired.
    pub fn process_fences(&mut self) {
        let memory = self.memory.memory();
        let Some(vring) = self.vrings.first_mut() else {
            return;
        };
        if !vring.is_active() || !vring.queue().is_valid(memory.as_ref()) {
            // The worker waits for the fence event edge-triggered, and the handler calls this
            // again when the ring starts, so completions are delivered then.
            return;
        }
        if self
            .device
            .process_fences(memory.as_ref(), vring.queue_mut())
        {
            vring.signal_used();
        }
    }

    /// Tells the device the guest memory map changed.
    pub fn memory_changed(&mut self) {
        let memory = self.memory.memory();
        self.device.memory_changed(memory.as_ref());
    }

    /// Back to a freshly created device: no memory, stopped rings, a reset model.
    pub fn reset(&mut self) {
        self.device.reset();
        self.vrings.iter_mut().for_each(Vring::reset);
        self.memory = MemoryTable::default();
    }
}
