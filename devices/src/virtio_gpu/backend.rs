//! The renderer behind the device: rutabaga_gfx with virglrenderer (3D) or its 2D component.
//!
//! [`Backend::init`] does everything that happens only at start-up (loading the GL stack,
//! creating the EGL display, spawning virglrenderer's threads), so the GPU process can call it
//! before installing its seccomp filter. virglrenderer can be initialised once per process,
//! and rutabaga's `build()` may come up without the virgl capsets; the capset list is checked
//! before VIRGL is reported.
//!
//! Rutabaga is neither `Send` nor `Sync`, and GL contexts are bound to the thread that made
//! them current: create the backend on the thread that will serve the queues.

use std::io::IoSliceMut;
use std::path::Path;
use std::sync::Arc;

use rutabaga_gfx::{
    ResourceCreate3D, ResourceCreateBlob, Rutabaga, RutabagaBuilder, RutabagaComponentType,
    RutabagaError, RutabagaFence, RutabagaFenceHandler, RutabagaIovec, Transfer3D,
    RUTABAGA_PIPE_BIND_RENDER_TARGET, RUTABAGA_PIPE_TEXTURE_2D,
};
use thiserror::Error;

use super::error::{GpuError, GpuResult};
use super::fence::FenceSignals;
use super::protocol::{Rect, CAPSET_VIRGL, CAPSET_VIRGL2};

/// Which renderer to bring up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RendererChoice {
    /// The 2D component only.
    TwoD,
    /// virglrenderer, or fail.
    Virgl,
    /// virglrenderer if it comes up with the virgl capsets, else the 2D component.
    VirglOrTwoD,
}

/// How to bring the renderer up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    pub renderer: RendererChoice,
    /// Use EGL's surfaceless platform (no render node: Mesa llvmpipe). `None` picks it when
    /// `/dev/dri` holds no render node.
    pub surfaceless: Option<bool>,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            renderer: RendererChoice::VirglOrTwoD,
            surfaceless: None,
        }
    }
}

/// The renderer that came up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RendererKind {
    /// rutabaga's 2D component: 2D resources only, no contexts.
    TwoD,
    /// virglrenderer with the virgl and virgl2 capsets.
    Virgl,
}

/// One capability set the renderer offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapsetInfo {
    pub id: u32,
    pub max_version: u32,
    pub max_size: u32,
}

/// What [`Backend::init`] brought up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendInfo {
    pub kind: RendererKind,
    pub capsets: Vec<CapsetInfo>,
    /// Whether EGL runs surfaceless (no render node).
    pub surfaceless: bool,
    /// Why virgl was not used, when it was asked for and the 2D component came up instead.
    pub fallback_reason: Option<String>,
    /// The host GL renderer virglrenderer runs on (its GL_RENDERER, as the guest sees it in
    /// the virgl2 capset), when virgl came up.
    pub gl_renderer: Option<String>,
}

/// `virgl (capsets 1 v1, 2 v2; EGL surfaceless; GL LLVMPIPE (...))` or
/// `2D (virgl unavailable: ...)`: what came up, in the words ray-gpu's Ready uses.
impl std::fmt::Display for BackendInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind, &self.fallback_reason) {
            (RendererKind::Virgl, _) => {
                let capsets: Vec<String> = self
                    .capsets
                    .iter()
                    .map(|c| format!("{} v{}", c.id, c.max_version))
                    .collect();
                let egl = match self.surfaceless {
                    true => "EGL surfaceless",
                    false => "render node",
                };
                let gl = self.gl_renderer.as_deref().unwrap_or("unknown");
                write!(f, "virgl (capsets {}; {egl}; GL {gl})", capsets.join(", "))
            }
            (RendererKind::TwoD, Some(reason)) => write!(f, "2D (virgl unavailable: {reason})"),
            (RendererKind::TwoD, None) => write!(f, "2D"),
        }
    }
}

/// Where virglrenderer 0.10 puts the host's GL_RENDERER in the virgl2 capset
/// (`virgl_caps_v2.renderer`, 64 bytes, NUL-terminated).
const CAPS_V2_RENDERER: std::ops::Range<usize> = 696..760;

/// The GL_RENDERER string of a virgl2 capset: printable text up to its NUL, if any.
pub fn gl_renderer_of(caps_v2: &[u8]) -> Option<String> {
    let field = caps_v2.get(CAPS_V2_RENDERER)?;
    let text = field.split(|&b| b == 0).next()?;
    let printable = !text.is_empty() && text.iter().all(|b| (b' '..=b'~').contains(b));
    printable.then(|| String::from_utf8_lossy(text).into_owned())
}

/// The renderer could not be brought up.
#[derive(Debug, Error)]
pub enum BackendError {
    /// The fence eventfd could not be created.
    #[error("cannot create the fence eventfd: {0}")]
    EventFd(#[source] std::io::Error),
    /// rutabaga's build failed.
    #[error("cannot start the {component} renderer: {source}")]
    Build {
        component: &'static str,
        #[source]
        source: RutabagaError,
    },
    /// virglrenderer came up without the virgl2 capset (rutabaga falls back silently).
    #[error("virglrenderer came up without the virgl2 capset (capsets: {0:?})")]
    NoVirglCapset(Vec<u32>),
}

/// The renderer and the record of its fence completions.
pub struct Backend {
    rutabaga: Rutabaga,
    info: BackendInfo,
    signals: Arc<FenceSignals>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("info", &self.info).finish()
    }
}

/// Whether a DRM render node exists.
fn has_render_node() -> bool {
    std::fs::read_dir(Path::new("/dev/dri"))
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        })
        .unwrap_or(false)
}

fn fence_handler(signals: &Arc<FenceSignals>) -> RutabagaFenceHandler {
    let signals = Arc::clone(signals);
    RutabagaFenceHandler::new(move |fence: RutabagaFence| signals.signal(fence))
}

fn capsets_of(rutabaga: &Rutabaga) -> Vec<CapsetInfo> {
    (0..rutabaga.get_num_capsets())
        .filter_map(|index| rutabaga.get_capset_info(index).ok())
        .map(|(id, max_version, max_size)| CapsetInfo {
            id,
            max_version,
            max_size,
        })
        .collect()
}

fn build_2d(signals: &Arc<FenceSignals>) -> Result<Rutabaga, BackendError> {
    RutabagaBuilder::new(RutabagaComponentType::Rutabaga2D, 0)
        .build(fence_handler(signals), None)
        .map_err(|source| BackendError::Build {
            component: "2D",
            source,
        })
}

fn build_virgl(signals: &Arc<FenceSignals>, surfaceless: bool) -> Result<Rutabaga, BackendError> {
    let capset_mask = (1u64 << CAPSET_VIRGL) | (1u64 << CAPSET_VIRGL2);
    let rutabaga = RutabagaBuilder::new(RutabagaComponentType::VirglRenderer, capset_mask)
        .set_use_egl(true)
        .set_use_gles(true)
        .set_use_surfaceless(surfaceless)
        .build(fence_handler(signals), None)
        .map_err(|source| BackendError::Build {
            component: "virgl",
            source,
        })?;
    let ids: Vec<u32> = capsets_of(&rutabaga).iter().map(|c| c.id).collect();
    if !ids.contains(&CAPSET_VIRGL2) {
        return Err(BackendError::NoVirglCapset(ids));
    }
    Ok(rutabaga)
}

impl Backend {
    /// Brings the renderer up. Call it once per process, before the seccomp filter, on the
    /// thread that will serve the device.
    pub fn init(config: &BackendConfig) -> Result<Backend, BackendError> {
        let signals = FenceSignals::new().map_err(BackendError::EventFd)?;
        let surfaceless = config.surfaceless.unwrap_or_else(|| !has_render_node());
        let (rutabaga, kind, fallback_reason) = match config.renderer {
            RendererChoice::TwoD => (build_2d(&signals)?, RendererKind::TwoD, None),
            RendererChoice::Virgl => (
                build_virgl(&signals, surfaceless)?,
                RendererKind::Virgl,
                None,
            ),
            RendererChoice::VirglOrTwoD => match build_virgl(&signals, surfaceless) {
                Ok(rutabaga) => (rutabaga, RendererKind::Virgl, None),
                Err(e) => {
                    log::warn!("virtio-gpu: 3D unavailable, using the 2D renderer: {e}");
                    (build_2d(&signals)?, RendererKind::TwoD, Some(e.to_string()))
                }
            },
        };
        let capsets = match kind {
            RendererKind::TwoD => Vec::new(),
            RendererKind::Virgl => capsets_of(&rutabaga),
        };
        let gl_renderer = capsets
            .iter()
            .find(|c| c.id == CAPSET_VIRGL2)
            .and_then(|c| rutabaga.get_capset(c.id, c.max_version).ok())
            .and_then(|caps| gl_renderer_of(&caps));
        Ok(Backend {
            rutabaga,
            info: BackendInfo {
                kind,
                capsets,
                surfaceless,
                fallback_reason,
                gl_renderer,
            },
            signals,
        })
    }

    /// What came up.
    pub fn info(&self) -> &BackendInfo {
        &self.info
    }

    /// Whether 3D (contexts, 3D resources, submits) is available.
    pub fn is_3d(&self) -> bool {
        self.info.kind == RendererKind::Virgl
    }

    pub(crate) fn signals(&self) -> &Arc<FenceSignals> {
        &self.signals
    }

    pub(crate) fn capset(&self, id: u32, version: u32) -> GpuResult<Vec<u8>> {
        self.rutabaga
            .get_capset(id, version)
            .map_err(GpuError::backend("GET_CAPSET"))
    }

    pub(crate) fn create_2d(
        &mut self,
        id: u32,
        format: u32,
        width: u32,
        height: u32,
    ) -> GpuResult<()> {
        let create = ResourceCreate3D {
            target: RUTABAGA_PIPE_TEXTURE_2D,
            format,
            bind: RUTABAGA_PIPE_BIND_RENDER_TARGET,
            width,
            height,
            depth: 1,
            array_size: 1,
            last_level: 0,
            nr_samples: 0,
            flags: 0,
        };
        self.create_3d(id, create)
    }

    pub(crate) fn create_3d(&mut self, id: u32, create: ResourceCreate3D) -> GpuResult<()> {
        self.rutabaga
            .resource_create_3d(id, create)
            .map_err(GpuError::backend("RESOURCE_CREATE_3D"))
    }

    pub(crate) fn create_blob(
        &mut self,
        ctx_id: u32,
        id: u32,
        create: ResourceCreateBlob,
        iovecs: Option<Vec<RutabagaIovec>>,
    ) -> GpuResult<()> {
        self.rutabaga
            .resource_create_blob(ctx_id, id, create, iovecs, None)
            .map_err(GpuError::backend("RESOURCE_CREATE_BLOB"))
    }

    pub(crate) fn unref(&mut self, id: u32) -> GpuResult<()> {
        self.rutabaga
            .unref_resource(id)
            .map_err(GpuError::backend("RESOURCE_UNREF"))
    }

    pub(crate) fn attach_backing(&mut self, id: u32, iovecs: Vec<RutabagaIovec>) -> GpuResult<()> {
        self.rutabaga
            .attach_backing(id, iovecs)
            .map_err(GpuError::backend("RESOURCE_ATTACH_BACKING"))
    }

    pub(crate) fn detach_backing(&mut self, id: u32) -> GpuResult<()> {
        self.rutabaga
            .detach_backing(id)
            .map_err(GpuError::backend("RESOURCE_DETACH_BACKING"))
    }

    pub(crate) fn transfer_write(
        &mut self,
        ctx_id: u32,
        id: u32,
        transfer: Transfer3D,
    ) -> GpuResult<()> {
        self.rutabaga
            .transfer_write(ctx_id, id, transfer)
            .map_err(GpuError::backend("TRANSFER_TO_HOST"))
    }

    pub(crate) fn transfer_read_to_backing(
        &mut self,
        ctx_id: u32,
        id: u32,
        transfer: Transfer3D,
    ) -> GpuResult<()> {
        self.rutabaga
            .transfer_read(ctx_id, id, transfer, None)
            .map_err(GpuError::backend("TRANSFER_FROM_HOST_3D"))
    }

    /// Reads `rect` of resource `id` (4 bytes per pixel) as tightly packed rows. The
    /// rectangle must lie inside the resource.
    pub(crate) fn read_rect(&mut self, id: u32, rect: Rect) -> GpuResult<Vec<u8>> {
        let mut pixels = vec![0u8; rect.width as usize * 4 * rect.height as usize];
        self.read_rect_into(id, rect, &mut pixels)?;
        Ok(pixels)
    }

    /// Reads `rect` of resource `id` into `pixels`, which holds exactly its tightly packed
    /// rows (`rect.width * 4` bytes each).
    pub(crate) fn read_rect_into(
        &mut self,
        id: u32,
        rect: Rect,
        pixels: &mut [u8],
    ) -> GpuResult<()> {
        if pixels.is_empty() {
            return Ok(());
        }
        match self.info.kind {
            RendererKind::Virgl => {
                let transfer = Transfer3D {
                    stride: rect.width * 4,
                    ..Transfer3D::new_2d(rect.x, rect.y, rect.width, rect.height)
                };
                self.rutabaga
                    .transfer_read(0, id, transfer, Some(IoSliceMut::new(pixels)))
                    .map_err(GpuError::backend("read pixels"))
            }
            RendererKind::TwoD => self.read_rect_2d(id, rect, pixels),
        }
    }

    /// The 2D component writes the rectangle at `y * stride + x * 4` of the destination, so
    /// rows are read one at a time with a zero stride into a window that starts `x * 4` bytes
    /// before the row's place, then copied out without the leading `x * 4` bytes.
    fn read_rect_2d(&mut self, id: u32, rect: Rect, pixels: &mut [u8]) -> GpuResult<()> {
        let row_bytes = rect.width as usize * 4;
        let lead = rect.x as usize * 4;
        let mut window = vec![0u8; lead + row_bytes];
        for (row, out) in (0..rect.height).zip(pixels.chunks_exact_mut(row_bytes)) {
            let transfer = Transfer3D::new_2d(rect.x, rect.y + row, rect.width, 1);
            self.rutabaga
                .transfer_read(0, id, transfer, Some(IoSliceMut::new(&mut window)))
                .map_err(GpuError::backend("read pixels"))?;
            out.copy_from_slice(&window[lead..]);
        }
        Ok(())
    }

    pub(crate) fn create_context(
        &mut self,
        ctx_id: u32,
        context_init: u32,
        name: Option<&str>,
    ) -> GpuResult<()> {
        self.rutabaga
            .create_context(ctx_id, context_init, name)
            .map_err(GpuError::backend("CTX_CREATE"))
    }

    pub(crate) fn destroy_context(&mut self, ctx_id: u32) -> GpuResult<()> {
        self.rutabaga
            .destroy_context(ctx_id)
            .map_err(GpuError::backend("CTX_DESTROY"))
    }

    pub(crate) fn context_attach(&mut self, ctx_id: u32, id: u32) -> GpuResult<()> {
        self.rutabaga
            .context_attach_resource(ctx_id, id)
            .map_err(GpuError::backend("CTX_ATTACH_RESOURCE"))
    }

    pub(crate) fn context_detach(&mut self, ctx_id: u32, id: u32) -> GpuResult<()> {
        self.rutabaga
            .context_detach_resource(ctx_id, id)
            .map_err(GpuError::backend("CTX_DETACH_RESOURCE"))
    }

    pub(crate) fn submit(&mut self, ctx_id: u32, commands: &mut [u8]) -> GpuResult<()> {
        self.rutabaga
            .submit_command(ctx_id, commands)
            .map_err(GpuError::backend("SUBMIT_3D"))
    }

    pub(crate) fn create_fence(&mut self, fence: RutabagaFence) -> GpuResult<()> {
        self.rutabaga
            .create_fence(fence)
            .map_err(GpuError::backend("fence"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps_with_renderer(name: &[u8]) -> Vec<u8> {
        let mut caps = vec![0xaau8; 1376];
        caps[CAPS_V2_RENDERER].fill(0);
        caps[CAPS_V2_RENDERER.start..CAPS_V2_RENDERER.start + name.len()].copy_from_slice(name);
        caps
    }

    #[test]
    fn gl_renderer_of_reads_the_name_up_to_its_nul() {
        let caps = caps_with_renderer(b"NVIDIA H200/PCIe/SSE2");

        assert_eq!(
            gl_renderer_of(&caps).as_deref(),
            Some("NVIDIA H200/PCIe/SSE2")
        );
    }

    #[test]
    fn gl_renderer_of_refuses_a_short_capset_and_unprintable_bytes() {
        let short = vec![0u8; 700];
        let binary = caps_with_renderer(&[0x01, 0x02]);

        assert_eq!(
            (gl_renderer_of(&short), gl_renderer_of(&binary)),
            (None, None)
        );
    }
}
