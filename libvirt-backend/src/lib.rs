//! `ray-gpu-backend`: the jailed GPU as a vhost-user GPU backend program, the kind libvirt
//! starts for `<video><driver name='vhostuser'/></video>` (and QEMU's users start by hand).
//!
//! It follows QEMU's vhost-user backend program conventions ([`args`], [`capabilities`]) and
//! is, for one VM, what rayvmm is for its GPU: an unjailed, unprivileged supervisor that spawns
//! ray-gpu in its jail, checks the jail from /proc, relays and checks every vhost-user message
//! between QEMU and ray-gpu, and keeps QEMU's display socket ([`supervisor`]).

pub mod args;
pub mod capabilities;
pub mod frontend;
pub mod locate;
pub mod report;
pub mod supervisor;
