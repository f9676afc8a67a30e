//! State shared by the request handler and the serving loop (both on the serving thread): the
//! device model, the memory table and the vrings.

use std::time::{Duration, Instant};

use virtio_queue::QueueT;

use crate::device::DeviceModel;
use crate::memory::MemoryTable;
use crate::vring::Vring;
use qemu_display::DisplaySocket;

/// Shortest time between two frames sent to the display: a 60 Hz monitor's refresh.
pub const FRAME_INTERVAL: Duration = Duration::from_micros(16_667);

/// The device, its memory and its rings.
pub struct Core<D> {
    pub device: D,
    pub memory: MemoryTable,
    pub vrings: Vec<Vring>,
    display: Option<Presenter>,
}

/// The display socket and what it was last sent.
struct Presenter {
    socket: DisplaySocket,
    shown: u64,
    last: Option<Instant>,
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
            display: None,
        }
    }

    /// From now on frames go to `socket`, paced by [`Core::present`].
    pub fn set_display(&mut self, socket: DisplaySocket) {
        self.device.set_display(socket.clone());
        self.display = Some(Presenter {
            socket,
            shown: 0,
            last: None,
        });
    }

    /// Sends the display the newest frame if it lacks it and a refresh interval has passed
    /// since the last one. Returns how long until a frame still pending is due (`None`:
    /// nothing pending), so the last frame is always delivered.
    pub fn present(&mut self) -> Option<Duration> {
        let presenter = self.display.as_mut()?;
        if !self.device.frame_pending(presenter.shown) {
            return None;
        }
        let now = Instant::now();
        if let Some(wait) = presenter
            .last
            .and_then(|last| FRAME_INTERVAL.checked_sub(now.duration_since(last)))
            .filter(|wait| !wait.is_zero())
        {
            return Some(wait);
        }
        presenter.shown = self.device.present(&presenter.socket, presenter.shown);
        presenter.last = Some(now);
        None
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
