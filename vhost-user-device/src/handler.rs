//! The vhost-user request handler: answers each frontend message, checking every index,
//! size, address and descriptor first. The vhost crate decodes the messages (and checks their
//! framing); this module decides what they mean for the device.
//!
//! What is offered:
//! - virtio features: the model's, plus `VIRTIO_F_VERSION_1`, `VIRTIO_RING_F_INDIRECT_DESC`,
//!   `VIRTIO_RING_F_EVENT_IDX` and `VHOST_USER_F_PROTOCOL_FEATURES`;
//! - protocol features: `MQ` (GET_QUEUE_NUM), `CONFIG` (GET/SET_CONFIG), `CONFIGURE_MEM_SLOTS`
//!   (ADD/REM_MEM_REG) and `REPLY_ACK` (added by the vhost crate).
//!
//! Not offered: `BACKEND_REQ`, so no config-change message toward the frontend. vhost 0.18's
//! `Backend` has no sender for `VHOST_USER_BACKEND_CONFIG_CHANGE_MSG`, and QEMU's
//! vhost-user-gpu does not need one: it keeps `events_read`/`num_scanouts` of the GPU config
//! itself (hw/display/vhost-user-gpu.c, `vhost_user_gpu_get_config`: "those fields are managed
//! by qemu") and raises the config interrupt from its own UI; the model then learns the new
//! modes by GET_DISPLAY_INFO on the display socket.

use std::cell::RefCell;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use vhost::vhost_user::message::{
    VhostTransferStateDirection, VhostTransferStatePhase, VhostUserConfigFlags, VhostUserInflight,
    VhostUserLog, VhostUserMemoryRegion, VhostUserProtocolFeatures, VhostUserShMemConfig,
    VhostUserSharedMsg, VhostUserSingleMemoryRegion, VhostUserVirtioFeatures,
    VhostUserVringAddrFlags, VhostUserVringState,
};
use vhost::vhost_user::VhostUserBackendReqHandlerMut;
use vhost::vhost_user::{Error as VhostError, GpuBackend, Result as VhostResult};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::QueueT;

use crate::core::Core;
use crate::device::DeviceModel;
use crate::memory::{RegionSpec, MAX_REGIONS};
use crate::vring::Vring;
use crate::worker::Kicks;
use qemu_display::DisplaySocket;

/// `VIRTIO_F_VERSION_1`.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// `VIRTIO_RING_F_INDIRECT_DESC`.
pub const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
/// `VIRTIO_RING_F_EVENT_IDX`.
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;

/// The transport features this backend adds to the model's.
pub const TRANSPORT_FEATURES: u64 = VIRTIO_F_VERSION_1
    | VIRTIO_RING_F_INDIRECT_DESC
    | VIRTIO_RING_F_EVENT_IDX
    | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits();

/// The protocol features this backend offers.
pub fn protocol_features() -> VhostUserProtocolFeatures {
    VhostUserProtocolFeatures::MQ
        | VhostUserProtocolFeatures::CONFIG
        | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS
        | VhostUserProtocolFeatures::REPLY_ACK
}

/// Turns a refusal into the vhost crate's error, keeping the reason for the log.
fn refuse(reason: impl std::fmt::Display) -> VhostError {
    let message = reason.to_string();
    log::warn!("vhost-user request refused: {message}");
    VhostError::ReqHandlerError(std::io::Error::other(message))
}

/// Answers the frontend's requests for one connection.
pub struct Handler<D> {
    core: Rc<RefCell<Core<D>>>,
    kicks: Kicks,
    acked_features: u64,
    acked_protocol_features: u64,
}

impl<D: DeviceModel> Handler<D> {
    /// A handler for `core`, registering kick descriptors in `kicks`.
    pub fn new(core: Rc<RefCell<Core<D>>>, kicks: Kicks) -> Self {
        Handler {
            core,
            kicks,
            acked_features: 0,
            acked_protocol_features: 0,
        }
    }

    fn offered_features(&self) -> u64 {
        self.core.borrow_mut().device.features() | TRANSPORT_FEATURES
    }

    fn protocol_features_acked(&self) -> bool {
        self.acked_features & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() != 0
    }

    /// Runs `f` on ring `index` after checking the index.
    fn with_vring<T>(
        &mut self,
        index: u32,
        f: impl FnOnce(&mut Vring, &Kicks) -> VhostResult<T>,
    ) -> VhostResult<T> {
        let mut core = self.core.borrow_mut();
        let count = core.vrings.len();
        let vring = core
            .vrings
            .get_mut(index as usize)
            .ok_or_else(|| refuse(format!("ring index {index} (the device has {count})")))?;
        f(vring, &self.kicks)
    }

    fn reset(&mut self) {
        let mut core = self.core.borrow_mut();
        for vring in &core.vrings {
            if let Some(kick) = vring.kick() {
                self.kicks.unwatch(kick.as_raw_fd());
            }
        }
        core.reset();
        self.acked_features = 0;
    }
}

impl<D: DeviceModel> VhostUserBackendReqHandlerMut for Handler<D> {
    fn set_owner(&mut self) -> VhostResult<()> {
        Ok(())
    }

    fn reset_owner(&mut self) -> VhostResult<()> {
        self.reset();
        Ok(())
    }

    fn reset_device(&mut self) -> VhostResult<()> {
        self.reset();
        Ok(())
    }

    fn get_features(&mut self) -> VhostResult<u64> {
        Ok(self.offered_features())
    }

    fn set_features(&mut self, features: u64) -> VhostResult<()> {
        // QEMU passes some bits through from its own transport without asking the backend:
        // QEMU 10's vhost-user-gpu-pci sets VIRTIO_F_RING_RESET (bit 40) whenever a Linux
        // driver acks it, although GET_FEATURES never offered it. SET_FEATURES has no reply
        // unless REPLY_ACK is asked for, so refusing the whole message would go unnoticed and
        // leave the driver's real choices (EVENT_IDX above all) unapplied: the rings would then
        // never write `avail_event`, and a driver that waits for interrupts would stop kicking
        // after its first request. Keep what was offered and ignore the rest, as libvhost-user
        // does.
        let offered = self.offered_features();
        let unknown = features & !offered;
        if unknown != 0 {
            log::info!("vhost-user: ignoring features {unknown:#x}, which were never offered");
        }
        let features = features & offered;
        self.acked_features = features;
        let enable_all = !self.protocol_features_acked();
        let event_idx = features & VIRTIO_RING_F_EVENT_IDX != 0;
        let mut core = self.core.borrow_mut();
        let device_features = core.device.features();
        core.device.ack_features(features & device_features);
        for vring in &mut core.vrings {
            vring.set_event_idx(event_idx);
            if enable_all {
                vring.set_enabled(true);
            }
        }
        Ok(())
    }

    fn set_mem_table(
        &mut self,
        regions: &[VhostUserMemoryRegion],
        files: Vec<File>,
        _postcopy_listening: Option<bool>,
    ) -> VhostResult<Option<Vec<u64>>> {
        if regions.len() != files.len() {
            return Err(refuse(
                "memory table: regions and descriptors differ in number",
            ));
        }
        let specs: Vec<RegionSpec> = regions.iter().map(region_spec).collect();
        let mut core = self.core.borrow_mut();
        core.memory.replace(&specs, files).map_err(refuse)?;
        core.memory_changed();
        Ok(None)
    }

    fn set_vring_num(&mut self, index: u32, num: u32) -> VhostResult<()> {
        self.with_vring(index, |vring, _| vring.set_size(num).map_err(refuse))
    }

    fn set_vring_addr(
        &mut self,
        index: u32,
        _flags: VhostUserVringAddrFlags,
        descriptor: u64,
        used: u64,
        available: u64,
        _log: u64,
    ) -> VhostResult<()> {
        let mut core = self.core.borrow_mut();
        let Core { memory, vrings, .. } = &mut *core;
        let count = vrings.len();
        let vring = vrings
            .get_mut(index as usize)
            .ok_or_else(|| refuse(format!("ring index {index} (the device has {count})")))?;
        let size = u64::from(vring.queue().size());
        let desc_len = size * std::mem::size_of::<Descriptor>() as u64;
        let avail_len = 6 + 2 * size;
        let used_len = 6 + 8 * size;
        let desc = memory.user_to_guest(descriptor, desc_len).map_err(refuse)?;
        let avail = memory.user_to_guest(available, avail_len).map_err(refuse)?;
        let used = memory.user_to_guest(used, used_len).map_err(refuse)?;
        vring.set_addresses(desc, avail, used).map_err(refuse)
    }

    fn set_vring_base(&mut self, index: u32, base: u32) -> VhostResult<()> {
        self.with_vring(index, |vring, _| vring.set_base(base).map_err(refuse))
    }

    fn get_vring_base(&mut self, index: u32) -> VhostResult<VhostUserVringState> {
        self.with_vring(index, |vring, kicks| {
            if let Some(kick) = vring.kick() {
                kicks.unwatch(kick.as_raw_fd());
            }
            Ok(VhostUserVringState::new(index, u32::from(vring.stop())))
        })
    }

    fn set_vring_kick(&mut self, index: u8, fd: Option<File>) -> VhostResult<()> {
        let kick = fd.ok_or_else(|| refuse("ring polling without a kick eventfd"))?;
        let mut core = self.core.borrow_mut();
        let count = core.vrings.len();
        let vring = core
            .vrings
            .get_mut(usize::from(index))
            .ok_or_else(|| refuse(format!("ring index {index} (the device has {count})")))?;
        if let Some(old) = vring.kick() {
            self.kicks.unwatch(old.as_raw_fd());
        }
        let raw = kick.as_raw_fd();
        let generation = vring.start(kick).map_err(refuse)?;
        self.kicks
            .watch(raw, usize::from(index), generation)
            .map_err(refuse)?;
        // Work may have been queued (or fences completed) while the ring was stopped.
        core.process_queue(usize::from(index));
        if index == 0 {
            core.process_fences();
        }
        Ok(())
    }

    fn set_vring_call(&mut self, index: u8, fd: Option<File>) -> VhostResult<()> {
        self.with_vring(u32::from(index), |vring, _| {
            vring.set_call(fd);
            Ok(())
        })
    }

    fn set_vring_err(&mut self, index: u8, fd: Option<File>) -> VhostResult<()> {
        self.with_vring(u32::from(index), |vring, _| {
            vring.set_err(fd);
            Ok(())
        })
    }

    fn get_protocol_features(&mut self) -> VhostResult<VhostUserProtocolFeatures> {
        Ok(protocol_features())
    }

    fn set_protocol_features(&mut self, features: u64) -> VhostResult<()> {
        let offered = protocol_features().bits();
        if features & !offered != 0 {
            return Err(refuse(format!(
                "protocol features {:#x} were never offered",
                features & !offered
            )));
        }
        self.acked_protocol_features = features;
        Ok(())
    }

    fn get_queue_num(&mut self) -> VhostResult<u64> {
        Ok(self.core.borrow_mut().vrings.len() as u64)
    }

    fn set_vring_enable(&mut self, index: u32, enable: bool) -> VhostResult<()> {
        let mut core = self.core.borrow_mut();
        let count = core.vrings.len();
        core.vrings
            .get_mut(index as usize)
            .ok_or_else(|| refuse(format!("ring index {index} (the device has {count})")))?
            .set_enabled(enable);
        if enable {
            core.process_queue(index as usize);
            if index == 0 {
                core.process_fences();
            }
        }
        Ok(())
    }

    fn get_config(
        &mut self,
        offset: u32,
        size: u32,
        _flags: VhostUserConfigFlags,
    ) -> VhostResult<Vec<u8>> {
        let mut data = vec![0u8; size as usize];
        if !self
            .core
            .borrow_mut()
            .device
            .read_config(u64::from(offset), &mut data)
        {
            return Err(refuse(format!(
                "config read of {size} bytes at {offset} is outside config space"
            )));
        }
        Ok(data)
    }

    fn set_config(
        &mut self,
        offset: u32,
        buf: &[u8],
        _flags: VhostUserConfigFlags,
    ) -> VhostResult<()> {
        if !self
            .core
            .borrow_mut()
            .device
            .write_config(u64::from(offset), buf)
        {
            return Err(refuse(format!(
                "config write of {} bytes at {offset} is outside config space",
                buf.len()
            )));
        }
        Ok(())
    }

    fn set_gpu_socket(&mut self, gpu_backend: GpuBackend) -> VhostResult<()> {
        let display = DisplaySocket::start(gpu_backend).map_err(refuse)?;
        self.core.borrow_mut().set_display(display);
        Ok(())
    }

    fn get_shared_object(&mut self, _uuid: VhostUserSharedMsg) -> VhostResult<File> {
        Err(refuse("GET_SHARED_OBJECT is not supported"))
    }

    fn get_inflight_fd(
        &mut self,
        _inflight: &VhostUserInflight,
    ) -> VhostResult<(VhostUserInflight, File)> {
        Err(refuse("inflight tracking is not supported"))
    }

    fn set_inflight_fd(&mut self, _inflight: &VhostUserInflight, _file: File) -> VhostResult<()> {
        Err(refuse("inflight tracking is not supported"))
    }

    fn get_max_mem_slots(&mut self) -> VhostResult<u64> {
        Ok(MAX_REGIONS as u64)
    }

    fn add_mem_region(
        &mut self,
        region: &VhostUserSingleMemoryRegion,
        fd: File,
        _postcopy_listening: Option<bool>,
    ) -> VhostResult<Option<u64>> {
        let mut core = self.core.borrow_mut();
        core.memory.add(&region_spec(region), fd).map_err(refuse)?;
        core.memory_changed();
        Ok(None)
    }

    fn remove_mem_region(&mut self, region: &VhostUserSingleMemoryRegion) -> VhostResult<()> {
        let mut core = self.core.borrow_mut();
        core.memory
            .remove(region.guest_phys_addr, region.memory_size)
            .map_err(refuse)?;
        core.memory_changed();
        Ok(())
    }

    fn set_device_state_fd(
        &mut self,
        _direction: VhostTransferStateDirection,
        _phase: VhostTransferStatePhase,
        _fd: File,
    ) -> VhostResult<Option<File>> {
        Err(refuse("device state transfer (migration) is not supported"))
    }

    fn check_device_state(&mut self) -> VhostResult<()> {
        Err(refuse("device state transfer (migration) is not supported"))
    }

    fn get_shmem_config(&mut self) -> VhostResult<VhostUserShMemConfig> {
        Err(refuse("shared memory regions are not supported"))
    }

    fn set_log_base(&mut self, _log: &VhostUserLog, _file: File) -> VhostResult<()> {
        Err(refuse("dirty logging is not supported"))
    }
}

fn region_spec(region: &VhostUserMemoryRegion) -> RegionSpec {
    RegionSpec {
        guest_phys_addr: region.guest_phys_addr,
        size: region.memory_size,
        user_addr: region.user_addr,
        mmap_offset: region.mmap_offset,
    }
}
