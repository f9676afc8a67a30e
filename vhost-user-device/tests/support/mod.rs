//! Test support shared by the vhost-user tests, the driver replays and the benchmark: a
//! vhost-user frontend that speaks the wire format, guest RAM with split virtqueues, and the
//! frontend's end of the display socket.
#![allow(dead_code)]

pub mod display_peer;
pub mod frontend;
pub mod gpu_cmd;
pub mod guest;
pub mod session;
pub mod viogpu3d;
pub mod viogpudo;
pub mod virgl;
