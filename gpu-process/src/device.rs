//! The virtio-gpu device ray-gpu serves over vhost-user, and the tube requests that reach it.
//!
//! Order (DESIGN.md, "The jail"): [`Device::init`] brings the renderer up and builds the
//! device on the main thread *before* the seccomp filter, without reading anything from the
//! vhost-user socket; after the filter, the tube is served on a second thread
//! ([`serve_tube`]) and the vhost-user frontend on the main thread ([`Device::serve`]), which
//! owns the renderer (rutabaga is not `Send`, and its GL context belongs to that thread). Jobs
//! from the tube thread (screenshots) run on the main thread through a [`DeviceHandle`].

use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use control::display::DisplayMode as RequestedMode;
use control::messages::{
    CursorReply, DeviceProgress, FrameRect, FrameReply, FromGpu, RendererMode, ToGpu,
};
use control::tube::{Tube, TubeError};
use devices::virtio_gpu::{
    Backend, BackendConfig, CursorChange, DisplayMode, FrameChange, GpuConfig, GpuError, Recorder,
    RendererChoice, VirtioGpu, WorkAge,
};
use nix::sys::stat::{fstat, SFlag};
use vhost_user_device::DeviceHandle;

use crate::frame_buffer::FrameBuffer;

/// The virtio-gpu device, built and ready to serve its vhost-user socket.
pub struct Device {
    served: vhost_user_device::Backend<VirtioGpu>,
    socket: UnixStream,
    description: String,
    gl_renderer: Option<String>,
    work_age: Arc<WorkAge>,
}

impl Device {
    /// Brings up the renderer `mode` asks for and the device around it, with one display of
    /// mode `display` (`None`: the device's default), to be served on the vhost-user socket at
    /// descriptor `vhost_user_fd`. Reads nothing from the socket.
    ///
    /// `Virgl` falls back to the 2D renderer when virglrenderer does not come up with its
    /// capsets; [`Device::description`] says so, with the reason.
    pub fn init(
        mode: RendererMode,
        vhost_user_fd: i32,
        display: Option<RequestedMode>,
        record_fd: Option<i32>,
    ) -> Result<Device> {
        let socket = socket_at(vhost_user_fd)?;
        let record_to = record_fd.map(pipe_at).transpose()?;
        // Checked before the renderer comes up: a mode the device refuses costs no GL start.
        let config = gpu_config(display);
        config.validate().context("refusing the display mode")?;
        let renderer = match mode {
            RendererMode::None => bail!("a vhost-user socket was passed but no renderer asked for"),
            RendererMode::Virgl => RendererChoice::VirglOrTwoD,
            RendererMode::TwoD => RendererChoice::TwoD,
        };
        let backend = Backend::init(&BackendConfig {
            renderer,
            surfaceless: None,
        })
        .context("starting the renderer")?;
        let description = backend.info().to_string();
        let gl_renderer = backend.info().gl_renderer.clone();
        let mut gpu = VirtioGpu::new(backend, config).context("building the device")?;
        if let Some(pipe) = record_to {
            let info = format!(
                "{{\"recorder\": \"ray-gpu {}\", \"renderer\": {:?}}}",
                env!("CARGO_PKG_VERSION"),
                description
            );
            gpu.set_recorder(Recorder::new(Box::new(pipe), &info));
        }
        let work_age = gpu.work_age();
        let served =
            vhost_user_device::Backend::new(gpu).context("building the vhost-user backend")?;
        Ok(Device {
            served,
            socket,
            description,
            gl_renderer,
            work_age,
        })
    }

    /// The renderer that came up, for the Ready message.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The host GL renderer under virgl, when virgl came up.
    pub fn gl_renderer(&self) -> Option<&str> {
        self.gl_renderer.as_deref()
    }

    /// How long the device's oldest unfinished guest work has waited, for the watchdog.
    pub fn work_age(&self) -> Arc<WorkAge> {
        Arc::clone(&self.work_age)
    }

    /// A handle for the tube thread.
    pub fn handle(&self) -> DeviceHandle<VirtioGpu> {
        self.served.handle()
    }

    /// Serves the frontend on this thread until it disconnects (`Ok`) or the connection
    /// breaks.
    pub fn serve(self) -> Result<()> {
        self.served
            .serve(self.socket)
            .context("serving the vhost-user frontend")
    }
}

/// The device's configuration: its defaults, with one display of mode `display` when the
/// supervisor asked for one.
fn gpu_config(display: Option<RequestedMode>) -> GpuConfig {
    let mode = display.map_or_else(DisplayMode::default, |m| DisplayMode {
        width: m.width,
        height: m.height,
    });
    GpuConfig {
        displays: vec![mode],
        ..GpuConfig::default()
    }
}

/// Takes descriptor `fd` as the recording pipe; refuses anything that is not a pipe.
fn pipe_at(fd: i32) -> Result<std::fs::File> {
    // SAFETY: the supervisor passes the recording pipe at this number and nothing else uses
    // it; ownership is taken once, here.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let stat = fstat(owned.as_fd())
        .with_context(|| format!("descriptor {fd} (the recording pipe) is not open"))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFIFO {
        bail!("descriptor {fd} (the recording pipe) is not a pipe");
    }
    Ok(std::fs::File::from(owned))
}

/// Takes descriptor `fd` as the vhost-user socket; refuses anything that is not a socket.
fn socket_at(fd: i32) -> Result<UnixStream> {
    // SAFETY: the supervisor passes the vhost-user socket at this number and nothing else
    // uses it; ownership is taken once, here.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let stat = fstat(owned.as_fd())
        .with_context(|| format!("descriptor {fd} (the vhost-user socket) is not open"))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        bail!("descriptor {fd} (the vhost-user socket) is not a socket");
    }
    Ok(UnixStream::from(owned))
}

/// Answers tube requests until Shutdown (`Ok(true)`) or until the supervisor goes away
/// (`Ok(false)`). `device` reaches the served device for screenshots, when there is one.
pub fn serve_tube(tube: &Tube, device: Option<&DeviceHandle<VirtioGpu>>) -> Result<bool> {
    let mut frame_buffer: Option<FrameBuffer> = None;
    loop {
        // At most one descriptor: the memfd a Screenshot or Frame request carries. Any that
        // come with another request are closed when `fds` goes out of scope.
        let (request, mut fds) = match tube.recv_with_fds::<ToGpu>(1) {
            Ok(received) => received,
            Err(TubeError::Disconnected) => return Ok(false),
            Err(err) => {
                tube.send(&FromGpu::Error(format!("bad request: {err}")))?;
                continue;
            }
        };
        match request {
            ToGpu::Report => tube.send(&FromGpu::Report(crate::view::collect()))?,
            ToGpu::Probe(request) => tube.send(&crate::probe(&request))?,
            ToGpu::Screenshot => match screenshot(device, fds.take(0)) {
                Ok((width, height)) => tube.send(&FromGpu::Screenshot { width, height })?,
                Err(err) => tube.send(&FromGpu::Error(format!("screenshot: {err:#}")))?,
            },
            ToGpu::Frame {
                since,
                cursor_since,
                new_buffer,
            } => {
                if let Some(bytes) = new_buffer {
                    let mapped = fds
                        .take(0)
                        .map_err(anyhow::Error::from)
                        .and_then(|fd| FrameBuffer::map(fd, bytes));
                    match mapped {
                        Ok(buffer) => frame_buffer = Some(buffer),
                        Err(err) => {
                            tube.send(&FromGpu::Error(format!("frame buffer: {err:#}")))?;
                            continue;
                        }
                    }
                }
                match frame(device, &mut frame_buffer, since, cursor_since) {
                    Ok((frame, cursor, progress)) => {
                        tube.send(&FromGpu::Frame(frame, cursor, progress))?
                    }
                    Err(err) => tube.send(&FromGpu::Error(format!("frame: {err:#}")))?,
                }
            }
            ToGpu::Shutdown => {
                // A recording gets its last frame before the process ends.
                if let Some(device) = device {
                    let _ = device.with(VirtioGpu::finish_recording);
                }
                return Ok(true);
            }
            ToGpu::Start(_) => tube.send(&FromGpu::Error("already started".into()))?,
        }
    }
}

/// Reads back what changed on scanout 0 since generation `since` (on the serving thread,
/// between two requests) straight into `buffer`, and says what changed about the cursor
/// since cursor generation `cursor_since`. The buffer travels to the serving thread and back.
fn frame(
    device: Option<&DeviceHandle<VirtioGpu>>,
    buffer: &mut Option<FrameBuffer>,
    since: u64,
    cursor_since: u64,
) -> Result<(FrameReply, CursorReply, DeviceProgress)> {
    let (Some(device), Some(mut mapped)) = (device, buffer.take()) else {
        let idle = DeviceProgress::default();
        return Ok((FrameReply::NoBuffer, CursorReply::Unchanged, idle));
    };
    let (change, cursor, progress, mapped) = device.with(move |gpu| {
        let progress = DeviceProgress {
            commands_answered: gpu.commands_answered(),
            fences_pending: gpu.pending_fences() as u64,
        };
        let change = gpu.take_frame_into(0, since, mapped.as_mut_slice());
        (change, gpu.take_cursor(cursor_since), progress, mapped)
    })?;
    *buffer = Some(mapped);
    let cursor = match cursor {
        CursorChange::Unchanged => CursorReply::Unchanged,
        CursorChange::Hidden { generation } => CursorReply::Hidden { generation },
        CursorChange::Moved { generation, x, y } => CursorReply::Moved { generation, x, y },
        CursorChange::Image {
            generation,
            x,
            y,
            image,
        } => CursorReply::Image {
            generation,
            x,
            y,
            hot_x: image.hot_x,
            hot_y: image.hot_y,
            pixels: image.pixels,
        },
    };
    let change = match change {
        Err(GpuError::FrameBufferTooSmall { needed, .. }) => {
            return Ok((FrameReply::TooLarge { bytes: needed }, cursor, progress));
        }
        other => other?,
    };
    #[cfg(feature = "probe")]
    if matches!(change, FrameChange::Pixels(_)) {
        // The fault strikes on the serving thread, as a crash of the renderer would.
        device.with(|_| crate::fault::frame_shown())?;
    }
    let frame = match change {
        FrameChange::Unchanged => FrameReply::Unchanged,
        FrameChange::Disabled { generation } => FrameReply::Disabled { generation },
        FrameChange::Pixels(frame) => FrameReply::Pixels {
            generation: frame.generation,
            width: frame.width,
            height: frame.height,
            rect: FrameRect {
                x: frame.rect.x,
                y: frame.rect.y,
                width: frame.rect.width,
                height: frame.rect.height,
            },
        },
    };
    Ok((frame, cursor, progress))
}

/// Writes scanout 0's pixels into the supervisor's `memfd`, returning the frame's size.
fn screenshot(
    device: Option<&DeviceHandle<VirtioGpu>>,
    memfd: Result<OwnedFd, TubeError>,
) -> Result<(u32, u32)> {
    let memfd = memfd.context("the request carried no memfd")?;
    let Some(device) = device else {
        bail!("no device is being served");
    };
    let image = device
        .with(|gpu| gpu.scanout_pixels(0))?
        .context("scanout 0 shows nothing")?;
    std::fs::File::from(memfd)
        .write_all(&image.pixels)
        .context("writing the pixels")?;
    Ok((image.width, image.height))
}

#[cfg(test)]
mod tests {
    use super::*;

    use devices::virtio_gpu::ConfigError;

    #[test]
    fn no_display_mode_gives_the_device_default() {
        let config = gpu_config(None);

        assert_eq!(config.displays, vec![DisplayMode::default()]);
    }

    #[test]
    fn display_mode_from_the_supervisor_is_the_one_display() {
        let mode = RequestedMode {
            width: 800,
            height: 600,
        };

        let config = gpu_config(Some(mode));

        assert_eq!(
            config.displays,
            vec![DisplayMode {
                width: 800,
                height: 600
            }]
        );
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn display_mode_beyond_the_edid_limit_is_refused() {
        let config = gpu_config(Some(RequestedMode {
            width: 4096,
            height: 600,
        }));

        let result = config.validate();

        assert_eq!(
            result,
            Err(ConfigError::DisplayMode {
                index: 0,
                width: 4096,
                height: 600
            })
        );
    }
}
