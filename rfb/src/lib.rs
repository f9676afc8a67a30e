//! A view-only RFB (VNC) server: whoever owns it publishes frames into a [`FrameStore`],
//! and every connected viewer is sent the parts that changed, in the pixel format it asked
//! for.
//!
//! It exists because QEMU cannot serve a vhost-user GPU's display over VNC without a DMA-BUF
//! capable display (a DRM render node), and because a server that only sends pixels and
//! drops all input gives a watcher nothing to reach the guest with. It speaks RFB 3.3, 3.7
//! and 3.8 with security type None, so it must only listen where the owner trusts every
//! local user (rayvmm allows loopback addresses only); encodings are ZRLE (for a viewer
//! that lists it: compressed, fit for a tunnel over a real network) and Raw, plus the
//! DesktopSize pseudo-encoding.

mod client_message;
mod frame_store;
mod handshake;
mod image;
mod pixel_format;
mod server;
mod update;
mod zrle;

pub use client_message::{read_client_message, ClientMessage, MessageError, Region, MAX_CUT_TEXT};
pub use frame_store::FrameStore;
pub use handshake::{serve_handshake, Admission, HandshakeError, ServerInit, Version};
pub use image::{Image, ImageError};
pub use pixel_format::{PixelFormat, PixelFormatError};
pub use server::{Server, ServerOptions, ViewerEvent, ViewerEvents};
pub use zrle::{ZrleEncoder, ZrleError};
