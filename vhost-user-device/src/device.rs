//! What the vhost-user backend needs from the device model behind it.
//!
//! The backend owns the transport (features, rings, memory, eventfds); the model owns the
//! device's meaning (its feature bits, config space, what a descriptor chain asks for). Keeping
//! the seam this narrow lets the same backend serve the virtio-gpu model and, in tests, small
//! stand-ins.

use std::os::fd::BorrowedFd;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use qemu_display::DisplaySocket;

/// A virtio device model that a vhost-user backend can serve. It is used only on the thread
/// that serves it, so it need not be `Send`.
pub trait DeviceModel: 'static {
    /// Number of virtqueues (GET_QUEUE_NUM).
    fn queue_count(&self) -> usize;

    /// The device-specific feature bits it offers; the backend adds the transport bits
    /// (`VIRTIO_F_VERSION_1`, `VHOST_USER_F_PROTOCOL_FEATURES`, ring features).
    fn features(&self) -> u64;

    /// The feature bits the driver accepted (only bits from [`DeviceModel::features`]).
    fn ack_features(&mut self, features: u64);

    /// Fills `data` from config space at `offset`; false if the range is outside it.
    fn read_config(&self, offset: u64, data: &mut [u8]) -> bool;

    /// A driver write to config space at `offset`; false if the range is outside it.
    fn write_config(&mut self, offset: u64, data: &[u8]) -> bool;

    /// The frontend gave a display socket (VHOST_USER_GPU_SET_SOCKET).
    fn set_display(&mut self, display: DisplaySocket);

    /// Whether the display lacks what the device shows now, given that it last got
    /// generation `shown` (see [`DeviceModel::present`]).
    fn frame_pending(&self, _shown: u64) -> bool {
        false
    }

    /// Sends `display` what changed since generation `shown` and returns the generation it
    /// shows now. The backend calls it at most at the display's refresh rate, so pixels are
    /// read back only as often as a display can show them, never on the guest's flush.
    fn present(&mut self, _display: &DisplaySocket, shown: u64) -> u64 {
        shown
    }

    /// Processes the available descriptor chains of queue `index`. Returns whether the driver
    /// must be interrupted: used entries were added and, with `VIRTIO_RING_F_EVENT_IDX`, the
    /// driver asked for it (the model applies `Queue::needs_notification` and the
    /// disable/enable-notification loop itself).
    fn process_queue(&mut self, memory: &GuestMemoryMmap, queue: &mut Queue, index: usize) -> bool;

    /// A descriptor that becomes readable when fenced work completes, if the model has one.
    fn fence_event(&self) -> Option<BorrowedFd<'_>>;

    /// Completes fenced commands on the control queue (index 0) once [`fence_event`] fired;
    /// clears that event. Returns whether the driver must be interrupted, as for
    /// [`DeviceModel::process_queue`].
    ///
    /// [`fence_event`]: DeviceModel::fence_event
    fn process_fences(&mut self, memory: &GuestMemoryMmap, queue: &mut Queue) -> bool;

    /// The guest memory map changed (SET_MEM_TABLE, ADD/REM_MEM_REG): re-resolve anything
    /// that holds guest addresses.
    fn memory_changed(&mut self, _memory: &GuestMemoryMmap) {}

    /// The frontend reset the device: drop every resource and pending command.
    fn reset(&mut self);

    /// The frontend went away (disconnected, or the connection broke).
    fn disconnected(&mut self) {}
}
