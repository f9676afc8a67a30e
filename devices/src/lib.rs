//! The virtio-gpu device and the control tube shared by rayvmm and ray-gpu.

pub mod control;
pub mod probe_protocol;
pub mod tube;
pub mod vhost_user;
pub mod virtio_gpu;
