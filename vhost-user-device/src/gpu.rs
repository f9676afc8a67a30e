//! The virtio-gpu model served over vhost-user: [`DeviceModel`] for [`VirtioGpu`], and the
//! model's [`DisplaySink`] over the display socket.

use std::os::fd::{AsRawFd, BorrowedFd};

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use crate::device::DeviceModel;
use devices::virtio_gpu::protocol::ConfigSpace;
use devices::virtio_gpu::{CursorImage, DisplaySink, FrameChange, QueueKind, VirtioGpu};
use qemu_display::DisplaySocket;

/// Size of `virtio_gpu_config`.
const CONFIG_SIZE: u64 = std::mem::size_of::<ConfigSpace>() as u64;

impl DeviceModel for VirtioGpu {
    fn queue_count(&self) -> usize {
        2
    }

    fn features(&self) -> u64 {
        self.device_features()
    }

    fn ack_features(&mut self, features: u64) {
        VirtioGpu::ack_features(self, features);
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) -> bool {
        VirtioGpu::read_config(self, offset, data);
        true
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) -> bool {
        let inside = offset
            .checked_add(data.len() as u64)
            .is_some_and(|end| end <= CONFIG_SIZE);
        if inside {
            VirtioGpu::write_config(self, offset, data);
        }
        inside
    }

    fn set_display(&mut self, display: DisplaySocket) {
        self.set_display_sink(Box::new(DisplayOut(display)));
    }

    fn frame_pending(&self, shown: u64) -> bool {
        self.frame_generation(0).is_some_and(|now| now != shown)
    }

    fn present(&mut self, display: &DisplaySocket, shown: u64) -> u64 {
        match self.take_frame(0, shown) {
            Ok(FrameChange::Unchanged) => shown,
            Ok(FrameChange::Disabled { generation }) => generation,
            Ok(FrameChange::Pixels(frame)) => {
                let r = frame.rect;
                report(display.update(0, (r.x, r.y, r.width, r.height), &frame.pixels));
                frame.generation
            }
            Err(e) => {
                log::warn!("virtio-gpu: reading back scanout 0 for the display: {e}");
                // Not retried until the guest changes the frame again.
                self.frame_generation(0).unwrap_or(shown)
            }
        }
    }

    fn process_queue(&mut self, memory: &GuestMemoryMmap, queue: &mut Queue, index: usize) -> bool {
        let kind = if index == 0 {
            QueueKind::Control
        } else {
            QueueKind::Cursor
        };
        VirtioGpu::process_queue(self, memory, queue, kind).unwrap_or_else(|e| {
            log::warn!("virtio-gpu: queue {index}: {e}");
            true
        })
    }

    fn fence_event(&self) -> Option<BorrowedFd<'_>> {
        let raw = VirtioGpu::fence_event(self).as_raw_fd();
        // SAFETY: the eventfd belongs to the model and lives as long as `self`, which the
        // returned borrow cannot outlive.
        Some(unsafe { BorrowedFd::borrow_raw(raw) })
    }

    fn process_fences(&mut self, memory: &GuestMemoryMmap, queue: &mut Queue) -> bool {
        VirtioGpu::process_fences(self, memory, queue).unwrap_or_else(|e| {
            log::warn!("virtio-gpu: fences: {e}");
            true
        })
    }

    fn memory_changed(&mut self, memory: &GuestMemoryMmap) {
        self.remap_backings(memory);
    }

    fn reset(&mut self) {
        VirtioGpu::reset(self);
    }

    fn disconnected(&mut self) {
        self.finish_recording();
    }
}

/// Messages the socket refuses were already refused by the model's own checks; one that
/// still fails (the frontend went away, the backlog is full) is logged and dropped.
/// A closed socket was already reported once by the writer (the frontend is going away), so
/// each later message dropped for it is only a debug line.
fn report(result: Result<(), qemu_display::DisplayError>) {
    match result {
        Ok(()) => {}
        Err(e @ qemu_display::DisplayError::Closed) => {
            log::debug!("vhost-user-gpu display: {e}")
        }
        Err(e) => log::warn!("vhost-user-gpu display: {e}"),
    }
}

/// The model's scanout and cursor changes, sent on the display socket.
struct DisplayOut(DisplaySocket);

impl DisplaySink for DisplayOut {
    fn scanout(&mut self, scanout_id: u32, size: Option<(u32, u32)>) {
        let (width, height) = size.unwrap_or((0, 0));
        report(DisplaySocket::scanout(&self.0, scanout_id, width, height));
    }

    fn cursor_update(&mut self, scanout_id: u32, x: u32, y: u32, image: Option<&CursorImage>) {
        report(match image {
            Some(image) => DisplaySocket::cursor_update(
                &self.0,
                scanout_id,
                (x, y),
                (image.hot_x, image.hot_y),
                &image.pixels,
            ),
            None => DisplaySocket::cursor_move(&self.0, scanout_id, (x, y), false),
        });
    }

    fn cursor_move(&mut self, scanout_id: u32, x: u32, y: u32) {
        report(DisplaySocket::cursor_move(
            &self.0,
            scanout_id,
            (x, y),
            true,
        ));
    }
}
