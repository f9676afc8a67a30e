//! The virtio-gpu device model (virtio 1.2/1.3 §5.7), independent of the transport.
//!
//! - [`protocol`]: the wire structures and request decoding;
//! - `chain`: reading requests from and writing responses to descriptor chains;
//! - [`VirtioGpu`]: resources, contexts, scanouts, cursor, fences and the command handlers;
//! - [`Backend`]: the renderer (rutabaga_gfx with virglrenderer, or its 2D component);
//! - [`DisplaySink`]: where the transport hears of scanout and cursor changes;
//! - [`VirtioGpu::take_frame`]: frames on demand: a flush records what changed, a consumer
//!   reads back only what it has not seen, at its own pace;
//! - [`edid`]: the EDID blocks reported for each scanout;
//! - [`virgl_stream`]: a builder for virgl command streams (tests and driver replays);
//! - [`WorkAge`]: how long the oldest unfinished guest work has waited, for a watchdog.
//!
//! Typical use by a transport:
//! ```ignore
//! let backend = Backend::init(&BackendConfig::default())?;   // before seccomp
//! let mut gpu = VirtioGpu::new(backend, GpuConfig::default())?;
//! gpu.set_display_sink(Box::new(my_sink));
//! // on a kick of queue 0 / 1:
//! if gpu.process_queue(&mem, &mut queue0, QueueKind::Control)? { signal_used_queue(0) }
//! // when gpu.fence_event() is readable:
//! if gpu.process_fences(&mem, &mut queue0)? { signal_used_queue(0) }
//! ```

mod backend;
mod chain;
mod config;
mod cursor;
mod device;
pub mod edid;
mod error;
mod fence;
mod frames;
mod pixels;
pub mod protocol;
mod recorder;
mod resources;
mod scanout;
mod sink;
pub mod virgl_stream;
mod work_age;

pub use backend::{
    Backend, BackendConfig, BackendError, BackendInfo, CapsetInfo, RendererChoice, RendererKind,
};
pub use chain::{ChainError, MAX_DESCRIPTORS};
pub use config::{ConfigError, DisplayMode, GpuConfig, Limits};
pub use device::{QueueError, QueueKind, ScanoutImage, VirtioGpu};
pub use error::GpuError;
pub use frames::{CursorChange, FrameChange, FramePixels};
pub use recorder::Recorder;
pub use sink::{CursorImage, DisplaySink, NullSink, CURSOR_BYTES, CURSOR_DIM};
pub use work_age::{Waiting, WorkAge};
