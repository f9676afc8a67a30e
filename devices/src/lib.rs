//! The virtio-gpu device model, independent of any transport and any process boundary.
//!
//! ray-gpu serves it to the guest through `vhost-user-device`; the supervisor never links it
//! (it shares only the `control` crate with the GPU process).

pub mod virtio_gpu;
