//! The virtio-gpu device and the control tube shared by rayvmm and ray-gpu.
