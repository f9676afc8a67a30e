//! The device: queue processing and the command handlers.

use std::collections::BTreeMap;
use std::sync::Arc;

use rutabaga_gfx::{ResourceCreate3D, RutabagaFence, RutabagaIovec, Transfer3D};
use virtio_queue::{Queue, QueueT};
use vm_memory::Permissions;
use vm_memory::{ByteValued, GuestAddress, GuestMemory};

use super::backend::{Backend, BackendInfo};
use super::chain::ChainBuffers;
use super::config::{check_mode, ConfigError, DisplayMode, GpuConfig};
use super::cursor::cursor_image;
use super::edid::build_edid;
use super::error::{GpuError, GpuResult};
use super::fence::{FenceQueue, HeldResponse, Timeline};
use super::frames::{CursorChange, CursorTrack, FrameChange, FramePixels, FrameTrack};
use super::pixels::to_bgra;
use super::protocol::*;
use super::recorder::Recorder;
use super::resources::{virgl_bytes_per_pixel, Resource, ResourceKind, ResourceTable, FORMATS_2D};
use super::scanout::{display_info, Scanout};
use super::sink::{DisplaySink, NullSink};
use super::virgl_stream::PIPE_BUFFER;
use super::work_age::WorkAge;

/// Which of the device's two virtqueues a chain came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// Queue 0: every command except the cursor ones; fences apply here.
    Control,
    /// Queue 1: UPDATE_CURSOR and MOVE_CURSOR.
    Cursor,
}

/// The queue itself is unusable: the device cannot go on with it and the transport should
/// mark the device as needing a reset (VIRTIO_CONFIG_S_NEEDS_RESET).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The rings could not be accessed (they lie outside guest memory).
    #[error("virtqueue access failed: {0}")]
    Access(#[from] virtio_queue::Error),
    /// The available ring says there is work but yields no chain (its index is bogus); going
    /// on would spin forever.
    #[error("the available ring index is invalid")]
    BrokenAvailRing,
}

/// The current contents of a scanout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanoutImage {
    pub width: u32,
    pub height: u32,
    /// The format of the resource shown.
    pub format: u32,
    /// `width * height` pixels, rows of `width * 4` bytes, B, G, R, X in memory.
    pub pixels: Vec<u8>,
}

/// A successful command's answer.
enum Response {
    NoData,
    DisplayInfo(Box<RespDisplayInfo>),
    CapsetInfo(RespCapsetInfo),
    Capset(Vec<u8>),
    Edid(Box<RespEdid>),
    Uuid([u8; 16]),
}

impl Response {
    fn encode(self, request: &CtrlHeader) -> Vec<u8> {
        fn with_header<T: ByteValued>(
            mut body: T,
            header: &mut CtrlHeader,
            set: impl FnOnce(&mut T, CtrlHeader),
        ) -> Vec<u8> {
            set(&mut body, *header);
            body.as_slice().to_vec()
        }
        let mut header = response_header(RESP_OK_NODATA, request);
        match self {
            Response::NoData => header.as_slice().to_vec(),
            Response::DisplayInfo(info) => {
                header.type_ = RESP_OK_DISPLAY_INFO;
                with_header(*info, &mut header, |b, h| b.hdr = h)
            }
            Response::CapsetInfo(info) => {
                header.type_ = RESP_OK_CAPSET_INFO;
                with_header(info, &mut header, |b, h| b.hdr = h)
            }
            Response::Capset(data) => {
                header.type_ = RESP_OK_CAPSET;
                let mut bytes = header.as_slice().to_vec();
                bytes.extend_from_slice(&data);
                bytes
            }
            Response::Edid(edid) => {
                header.type_ = RESP_OK_EDID;
                with_header(*edid, &mut header, |b, h| b.hdr = h)
            }
            Response::Uuid(uuid) => {
                header.type_ = RESP_OK_RESOURCE_UUID;
                RespResourceUuid { hdr: header, uuid }.as_slice().to_vec()
            }
        }
    }
}

/// How a chain was finished.
enum Completion {
    /// Return it now with this many bytes written.
    Now(u32),
    /// Held until its fence signals.
    Held,
}

/// A virtio-gpu device model, independent of the transport.
///
/// The transport feeds it the two virtqueues ([`VirtioGpu::process_queue`]), polls
/// [`VirtioGpu::fence_event`] and then calls [`VirtioGpu::process_fences`], serves the config
/// space ([`VirtioGpu::read_config`], [`VirtioGpu::write_config`]) and the feature bits, and
/// receives display output through the [`DisplaySink`] it installs.
///
/// Resource backings are kept by the renderer as host pointers into guest memory: the
/// mapping passed to `process_queue` must stay mapped while backings are attached, and when
/// the guest memory map changes the transport must call [`VirtioGpu::remap_backings`].
pub struct VirtioGpu {
    backend: Backend,
    config: GpuConfig,
    acked_features: u64,
    resources: ResourceTable,
    contexts: BTreeMap<u32, u32>,
    scanouts: Vec<Scanout>,
    /// What each scanout's frame consumer has not seen yet.
    frames: Vec<FrameTrack>,
    /// The cursor of scanout 0, for consumers that take it ([`VirtioGpu::take_cursor`]).
    cursor: CursorTrack,
    /// Commands answered since the device was made (a supervisor watches it move).
    answered: u64,
    fences: FenceQueue,
    /// The control queue waits: `Limits::max_fences_in_flight` fences are pending, and
    /// fence processing takes the queue up again when one completes.
    fence_capped: bool,
    /// Responses released outside fence processing (a destroyed context's held fences).
    released: Vec<HeldResponse>,
    /// When the running command began and the oldest held response began to wait.
    work_age: Arc<WorkAge>,
    events_read: u32,
    uuid_seed: [u8; 16],
    uuid_counter: u64,
    sink: Box<dyn DisplaySink>,
    /// Where the guest's commands are recorded, when they are.
    recorder: Option<Recorder>,
}

impl std::fmt::Debug for VirtioGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioGpu")
            .field("backend", &self.backend)
            .field("resources", &self.resources.len())
            .field("contexts", &self.contexts.len())
            .finish()
    }
}

fn random_seed() -> [u8; 16] {
    let mut seed = [0u8; 16];
    // SAFETY: getrandom writes at most `seed.len()` bytes into the buffer it is given, which
    // is valid and exclusively borrowed for the call.
    let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if n != seed.len() as isize {
        // Uniqueness, not secrecy, is what resource UUIDs need; the counter provides it.
        log::warn!("virtio-gpu: getrandom failed; resource UUIDs will be predictable");
    }
    seed
}

/// Error for commands that need the 3D renderer.
const NEEDS_3D: GpuError = GpuError::Unsupported("3D commands need the virgl renderer");

impl VirtioGpu {
    /// Builds the device over a renderer from [`Backend::init`].
    pub fn new(backend: Backend, config: GpuConfig) -> Result<VirtioGpu, ConfigError> {
        config.validate()?;
        let scanouts: Vec<Scanout> = config.displays.iter().map(|m| Scanout::new(*m)).collect();
        let frames = vec![FrameTrack::default(); scanouts.len()];
        Ok(VirtioGpu {
            resources: ResourceTable::new(config.limits),
            backend,
            config,
            acked_features: 0,
            contexts: BTreeMap::new(),
            scanouts,
            frames,
            cursor: CursorTrack::default(),
            answered: 0,
            fences: FenceQueue::default(),
            fence_capped: false,
            released: Vec::new(),
            work_age: WorkAge::new(),
            events_read: 0,
            uuid_seed: random_seed(),
            uuid_counter: 0,
            sink: Box::new(NullSink),
            recorder: None,
        })
    }

    /// Records everything the guest sends from now on (see [`Recorder`]).
    pub fn set_recorder(&mut self, recorder: Recorder) {
        self.recorder = Some(recorder);
    }

    /// Ends a recording's device session (the frontend went away, or the supervisor stops
    /// the device): it gets its final scanout image and is flushed.
    pub fn finish_recording(&mut self) {
        self.end_recorded_session();
    }

    /// Records the scanout image owed since the last one, and flushes.
    fn end_recorded_session(&mut self) {
        if self.recorder.as_ref().is_some_and(Recorder::frame_owed) {
            self.record_frame();
        }
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.flush();
        }
    }

    fn record_frame(&mut self) {
        let image = self.scanout_pixels(0);
        if let (Some(recorder), Some(image)) = (self.recorder.as_mut(), image) {
            recorder.frame(image.width, image.height, image.pixels);
        }
    }

    /// Records a command (and first the guest memory it may read).
    fn record_command<M: GuestMemory>(
        &mut self,
        mem: &M,
        kind: QueueKind,
        raw: &[u8],
        response_len: usize,
        request: Option<&Request>,
    ) {
        let Some(recorder) = self.recorder.as_mut() else {
            return;
        };
        recorder.setup(mem, self.acked_features);
        let reads_memory = request.is_some_and(|r| {
            matches!(
                r.command,
                GpuCommand::TransferToHost2d(_)
                    | GpuCommand::TransferToHost3d(_)
                    | GpuCommand::Submit3d(_)
            )
        });
        if reads_memory {
            recorder.memory(mem, self.resources.backings());
        }
        recorder.command(kind == QueueKind::Cursor, raw, response_len);
    }

    /// Installs where display output goes (replacing the previous sink).
    pub fn set_display_sink(&mut self, sink: Box<dyn DisplaySink>) {
        self.sink = sink;
    }

    /// What the renderer brought up.
    pub fn backend_info(&self) -> &BackendInfo {
        self.backend.info()
    }

    /// The device feature bits (VIRTIO_GPU_F_*) this device offers; transport bits such as
    /// VIRTIO_F_VERSION_1 are the transport's to add. VIRGL is offered only when the virgl
    /// capsets came up; blobs are not offered (no host-visible memory region to map them).
    pub fn device_features(&self) -> u64 {
        let mut features = 0u64;
        if self.backend.is_3d() {
            features |= 1 << VIRTIO_GPU_F_VIRGL;
            if self.config.context_init {
                features |= 1 << VIRTIO_GPU_F_CONTEXT_INIT;
            }
        }
        if self.config.edid {
            features |= 1 << VIRTIO_GPU_F_EDID;
        }
        if self.config.resource_uuid {
            features |= 1 << VIRTIO_GPU_F_RESOURCE_UUID;
        }
        features
    }

    /// Records the features the driver acknowledged (only offered bits are kept).
    pub fn ack_features(&mut self, features: u64) {
        self.acked_features = features & self.device_features();
    }

    /// The features the driver acknowledged.
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    /// The configuration space as the driver reads it.
    pub fn config_space(&self) -> ConfigSpace {
        ConfigSpace {
            events_read: self.events_read,
            events_clear: 0,
            num_scanouts: self.scanouts.len() as u32,
            num_capsets: self.backend.info().capsets.len() as u32,
        }
    }

    /// Reads `data.len()` bytes of the configuration space at `offset`; bytes beyond it read
    /// as zero.
    pub fn read_config(&self, offset: u64, data: &mut [u8]) {
        let space = self.config_space();
        let bytes = space.as_slice();
        for (i, out) in data.iter_mut().enumerate() {
            let index = usize::try_from(offset).ok().and_then(|o| o.checked_add(i));
            *out = index.and_then(|i| bytes.get(i)).copied().unwrap_or(0);
        }
    }

    /// Handles a driver write to the configuration space: only `events_clear` is writable,
    /// and writing it clears those bits of `events_read`.
    pub fn write_config(&mut self, offset: u64, data: &[u8]) {
        const EVENTS_CLEAR: u64 = 4;
        if offset != EVENTS_CLEAR || data.len() != 4 {
            log::warn!(
                "virtio-gpu: ignoring config write of {} bytes at {offset}",
                data.len()
            );
            return;
        }
        let value = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        self.events_read &= !value;
    }

    /// Changes scanout `scanout_id`'s mode and raises VIRTIO_GPU_EVENT_DISPLAY; the transport
    /// then signals a configuration change to the driver.
    pub fn set_display_mode(
        &mut self,
        scanout_id: u32,
        mode: DisplayMode,
    ) -> Result<(), ConfigError> {
        let index = scanout_id as usize;
        let Some(scanout) = self.scanouts.get_mut(index) else {
            return Err(ConfigError::DisplayCount(index + 1));
        };
        check_mode(index, mode)?;
        scanout.mode = mode;
        self.config.displays[index] = mode;
        self.events_read |= EVENT_DISPLAY;
        Ok(())
    }

    /// The eventfd that becomes readable when a fence signals (from the renderer's thread);
    /// then call [`VirtioGpu::process_fences`] on the control queue.
    pub fn fence_event(&self) -> &vmm_sys_util::eventfd::EventFd {
        self.backend.signals().event()
    }

    /// Number of responses waiting for their fence.
    pub fn pending_fences(&self) -> usize {
        self.fences.len()
    }

    /// Commands answered so far (at once, or when their fence signalled): with
    /// [`VirtioGpu::pending_fences`], what a supervisor needs to see whether the device makes
    /// progress.
    pub fn commands_answered(&self) -> u64 {
        self.answered
    }

    /// How long the oldest unfinished guest work has waited, readable from any thread while
    /// this one is busy: what a watchdog needs to stop a draw that does not finish.
    pub fn work_age(&self) -> Arc<WorkAge> {
        Arc::clone(&self.work_age)
    }

    /// Host bytes the guest's resources hold.
    pub fn host_bytes_in_use(&self) -> u64 {
        self.resources.bytes_in_use()
    }

    /// Number of live resources.
    pub fn resource_count(&self) -> usize {
        self.resources.len()
    }

    /// Handles every available chain of `queue`. Returns whether the driver must be
    /// notified (used buffers were added and the driver did not suppress notifications).
    pub fn process_queue<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
        kind: QueueKind,
    ) -> Result<bool, QueueError> {
        let mut used = false;
        loop {
            queue.disable_notification(mem)?;
            let mut progressed = false;
            loop {
                if kind == QueueKind::Control && self.at_fence_cap(mem, queue, &mut used)? {
                    // Notifications stay off: the guest need not kick a queue that waits.
                    return Ok(used && queue.needs_notification(mem)?);
                }
                let Some(chain) = queue.pop_descriptor_chain(mem) else {
                    break;
                };
                progressed = true;
                let head_index = chain.head_index();
                self.work_age.command_started();
                let completion = self.handle_chain(mem, chain, head_index, kind);
                self.work_age.command_finished();
                self.publish_fence_age();
                match completion {
                    Completion::Now(len) => {
                        queue.add_used(mem, head_index, len)?;
                        self.answered += 1;
                        used = true;
                    }
                    Completion::Held => {}
                }
                used |= self.return_released(mem, queue)?;
            }
            if !queue.enable_notification(mem)? {
                break;
            }
            if !progressed {
                return Err(QueueError::BrokenAvailRing);
            }
        }
        if kind == QueueKind::Control {
            used |= self.return_signalled(mem, queue)?;
        }
        if used {
            return Ok(queue.needs_notification(mem)?);
        }
        Ok(false)
    }

    /// Returns to the control queue every held response whose fence has signalled. Call it
    /// when [`VirtioGpu::fence_event`] is readable. Returns whether to notify the driver.
    pub fn process_fences<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
    ) -> Result<bool, QueueError> {
        let used = self.return_signalled(mem, queue)? | self.return_released(mem, queue)?;
        let mut notify = used && queue.needs_notification(mem)?;
        if self.fence_capped && self.fences.len() < self.config.limits.max_fences_in_flight {
            self.fence_capped = false;
            notify |= self.process_queue(mem, queue, QueueKind::Control)?;
        }
        Ok(notify)
    }

    /// Whether the control queue must wait for a fence: at the cap, completed fences are
    /// returned first (setting `used`), and the queue waits only if that freed no room.
    fn at_fence_cap<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
        used: &mut bool,
    ) -> Result<bool, QueueError> {
        let cap = self.config.limits.max_fences_in_flight;
        if self.fences.len() < cap {
            return Ok(false);
        }
        *used |= self.return_signalled(mem, queue)?;
        self.fence_capped = self.fences.len() >= cap;
        Ok(self.fence_capped)
    }

    fn return_signalled<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
    ) -> Result<bool, QueueError> {
        let mut used = false;
        for (timeline, id) in self.backend.signals().take() {
            for response in self.fences.complete(timeline, id) {
                queue.add_used(mem, response.head_index, response.len)?;
                self.answered += 1;
                used = true;
            }
        }
        self.publish_fence_age();
        Ok(used)
    }

    /// Tells the watchdog when the oldest held response began to wait.
    fn publish_fence_age(&self) {
        self.work_age.set_oldest_fence(self.fences.oldest_held_at());
    }

    fn return_released<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: &mut Queue,
    ) -> Result<bool, QueueError> {
        let released = std::mem::take(&mut self.released);
        for response in &released {
            queue.add_used(mem, response.head_index, response.len)?;
            self.answered += 1;
        }
        Ok(!released.is_empty())
    }

    /// Reads, runs and answers one chain.
    fn handle_chain<M: GuestMemory>(
        &mut self,
        mem: &M,
        descriptors: impl IntoIterator<Item = virtio_queue::desc::split::Descriptor>,
        head_index: u16,
        kind: QueueKind,
    ) -> Completion {
        let (mut buffers, fault) = ChainBuffers::parse(mem, descriptors);
        if let Some(fault) = fault {
            return self.answer_error(
                mem,
                &buffers,
                &CtrlHeader::default(),
                &GpuError::Chain(fault),
            );
        }
        let mut header_bytes = [0u8; HEADER_SIZE];
        if let Err(e) = buffers.read_exact(mem, &mut header_bytes) {
            return self.answer_error(mem, &buffers, &CtrlHeader::default(), &GpuError::Chain(e));
        }
        let header = match decode_header(&header_bytes) {
            Ok(header) => header,
            Err(e) => return self.answer_error(mem, &buffers, &CtrlHeader::default(), &e.into()),
        };
        let raw = self
            .recorder
            .as_ref()
            .filter(|r| r.is_recording())
            .map(|_| buffers.peek_readable(mem));
        let request = self.read_request(mem, &mut buffers, header_bytes, kind);
        if let Some(raw) = raw {
            let mut whole = header_bytes.to_vec();
            whole.extend_from_slice(&raw);
            self.record_command(
                mem,
                kind,
                &whole,
                buffers.writable_len(),
                request.as_ref().ok(),
            );
        }
        let shows = request.as_ref().is_ok_and(|r| {
            matches!(
                r.command,
                GpuCommand::ResourceFlush(_) | GpuCommand::SetScanout(_)
            )
        });
        let response = request.and_then(|request| self.execute(mem, &request));
        if shows && self.recorder.as_ref().is_some_and(Recorder::frame_due) {
            self.record_frame();
        }
        let bytes = match response {
            Ok(response) => response.encode(&header),
            Err(e) => {
                log::debug!("virtio-gpu: command {:#x} failed: {e}", header.type_);
                response_header(e.response_type(), &header)
                    .as_slice()
                    .to_vec()
            }
        };
        let len = match buffers.write_response(mem, &bytes) {
            Ok(len) => len,
            Err(e) => {
                return self.answer_error(mem, &buffers, &header, &GpuError::Chain(e));
            }
        };
        if kind == QueueKind::Control && header.flags & FLAG_FENCE != 0 {
            return self.hold_for_fence(&header, HeldResponse { head_index, len });
        }
        Completion::Now(len)
    }

    /// Writes an error header if the writable part can take one.
    fn answer_error<M: GuestMemory>(
        &mut self,
        mem: &M,
        buffers: &ChainBuffers,
        request: &CtrlHeader,
        error: &GpuError,
    ) -> Completion {
        log::debug!("virtio-gpu: rejecting a request: {error}");
        let header = response_header(error.response_type(), request);
        Completion::Now(buffers.write_response(mem, header.as_slice()).unwrap_or(0))
    }

    /// Reads the request's body (fixed part, then the variable part once its size is known
    /// and checked against the limits and the bytes actually in the chain).
    fn read_request<M: GuestMemory>(
        &self,
        mem: &M,
        buffers: &mut ChainBuffers,
        header_bytes: [u8; HEADER_SIZE],
        kind: QueueKind,
    ) -> GpuResult<Request> {
        let header = decode_header(&header_bytes)?;
        let limits = self.config.limits.decode_limits();
        let fixed_size = fixed_body_size(header.type_)?;
        let mut bytes = header_bytes.to_vec();
        bytes.resize(HEADER_SIZE + fixed_size, 0);
        buffers
            .read_exact(mem, &mut bytes[HEADER_SIZE..])
            .map_err(|_| DecodeError::Truncated {
                cmd: header.type_,
                needed: HEADER_SIZE + fixed_size,
                available: HEADER_SIZE + buffers.readable_left(),
            })?;
        let trailing = trailing_size(header.type_, &bytes[HEADER_SIZE..], &limits)?;
        if trailing > buffers.readable_left() {
            return Err(DecodeError::Truncated {
                cmd: header.type_,
                needed: bytes.len() + trailing,
                available: bytes.len() + buffers.readable_left(),
            }
            .into());
        }
        let start = bytes.len();
        bytes.resize(start + trailing, 0);
        buffers.read_exact(mem, &mut bytes[start..])?;
        let request = decode_request(&bytes, &limits)?;
        let on_cursor_queue = kind == QueueKind::Cursor;
        if request.command.is_cursor() != on_cursor_queue {
            return Err(GpuError::WrongQueue(header.type_));
        }
        Ok(request)
    }

    /// Holds a written response until its fence signals, or returns it now if the renderer
    /// refuses the fence.
    fn hold_for_fence(&mut self, header: &CtrlHeader, response: HeldResponse) -> Completion {
        let on_ring = header.flags & FLAG_INFO_RING_IDX != 0;
        let timeline = if on_ring {
            Timeline::Context {
                ctx_id: header.ctx_id,
                ring_idx: header.ring_idx,
            }
        } else {
            Timeline::Global
        };
        let id = self.fences.next_id();
        self.fences.hold(timeline, id, response);
        // The global fence is ordered after the given context's work; 0 if there is none.
        let ctx_id = if on_ring || self.contexts.contains_key(&header.ctx_id) {
            header.ctx_id
        } else {
            0
        };
        let fence = RutabagaFence {
            flags: header.flags & (FLAG_FENCE | FLAG_INFO_RING_IDX),
            fence_id: id,
            ctx_id,
            ring_idx: header.ring_idx,
        };
        let refused = if on_ring && u32::from(header.ring_idx) >= 64 {
            Some(GpuError::InvalidParameter(format!(
                "ring index {} is above 63",
                header.ring_idx
            )))
        } else {
            self.backend.create_fence(fence).err()
        };
        match refused {
            None => Completion::Held,
            Some(e) => {
                log::debug!("virtio-gpu: fence refused, answering at once: {e}");
                self.fences.unhold_last(timeline);
                Completion::Now(response.len)
            }
        }
    }

    fn execute<M: GuestMemory>(&mut self, mem: &M, request: &Request) -> GpuResult<Response> {
        let ctx_id = request.header.ctx_id;
        match &request.command {
            GpuCommand::GetDisplayInfo => Ok(Response::DisplayInfo(Box::new(display_info(
                &self.scanouts,
            )))),
            GpuCommand::ResourceCreate2d(c) => self.resource_create_2d(c),
            GpuCommand::ResourceUnref(c) => self.resource_unref(c.resource_id),
            GpuCommand::SetScanout(c) => self.set_scanout(c),
            GpuCommand::ResourceFlush(c) => self.resource_flush(c),
            GpuCommand::TransferToHost2d(c) => self.transfer_to_host_2d(c),
            GpuCommand::ResourceAttachBacking {
                resource_id,
                entries,
            } => self.attach_backing(mem, *resource_id, entries),
            GpuCommand::ResourceDetachBacking(c) => self.detach_backing(c.resource_id),
            GpuCommand::GetCapsetInfo(c) => self.get_capset_info(c),
            GpuCommand::GetCapset(c) => self.get_capset(c),
            GpuCommand::GetEdid(c) => self.get_edid(c),
            GpuCommand::ResourceAssignUuid(c) => self.assign_uuid(c.resource_id),
            GpuCommand::ResourceCreateBlob { create, entries } => {
                self.create_blob(mem, ctx_id, create, entries)
            }
            GpuCommand::SetScanoutBlob(c) => self.set_scanout_blob(c),
            GpuCommand::CtxCreate(c) => self.ctx_create(ctx_id, c),
            GpuCommand::CtxDestroy => self.ctx_destroy(ctx_id),
            GpuCommand::CtxAttachResource(c) => self.ctx_resource(ctx_id, c.resource_id, true),
            GpuCommand::CtxDetachResource(c) => self.ctx_resource(ctx_id, c.resource_id, false),
            GpuCommand::ResourceCreate3d(c) => self.resource_create_3d(c),
            GpuCommand::TransferToHost3d(c) => self.transfer_3d(ctx_id, c, true),
            GpuCommand::TransferFromHost3d(c) => self.transfer_3d(ctx_id, c, false),
            GpuCommand::Submit3d(data) => self.submit_3d(ctx_id, data),
            GpuCommand::ResourceMapBlob(c) => self.map_blob(c.resource_id),
            GpuCommand::ResourceUnmapBlob(c) => self.map_blob(c.resource_id),
            GpuCommand::UpdateCursor(c) => self.update_cursor(c),
            GpuCommand::MoveCursor(c) => self.move_cursor(c),
        }
    }

    fn check_dimension(&self, what: &str, value: u32) -> GpuResult<()> {
        if value == 0 || value > self.config.limits.max_dimension {
            return Err(GpuError::InvalidParameter(format!(
                "{what} {value} is outside 1..={}",
                self.config.limits.max_dimension
            )));
        }
        Ok(())
    }

    fn scanout_index(&self, scanout_id: u32) -> GpuResult<usize> {
        let index = scanout_id as usize;
        if index >= self.scanouts.len() {
            return Err(GpuError::InvalidScanout(scanout_id));
        }
        Ok(index)
    }

    fn resource_create_2d(&mut self, c: &ResourceCreate2d) -> GpuResult<Response> {
        if !FORMATS_2D.contains(&c.format) {
            return Err(GpuError::InvalidParameter(format!(
                "2D format {} is not supported",
                c.format
            )));
        }
        self.check_dimension("width", c.width)?;
        self.check_dimension("height", c.height)?;
        let bytes = u64::from(c.width) * u64::from(c.height) * 4;
        self.resources.check_new(c.resource_id, bytes)?;
        self.backend
            .create_2d(c.resource_id, c.format, c.width, c.height)?;
        self.resources.insert(Resource {
            id: c.resource_id,
            kind: ResourceKind::TwoD,
            format: c.format,
            width: c.width,
            height: c.height,
            host_bytes: bytes,
            backing: None,
            uuid: None,
        });
        Ok(Response::NoData)
    }

    fn resource_unref(&mut self, resource_id: u32) -> GpuResult<Response> {
        self.resources.get(resource_id)?;
        // viogpudo unrefs its framebuffer while it is still shown: stop showing it first.
        let shown: Vec<usize> = (0..self.scanouts.len())
            .filter(|i| self.scanouts[*i].resource_id == resource_id)
            .collect();
        for index in shown {
            self.disable_scanout(index);
        }
        self.resources.remove(resource_id)?;
        self.backend.unref(resource_id)?;
        Ok(Response::NoData)
    }

    /// Resource `id`, if `r` lies inside it (`what` names the command for the log).
    fn resource_with_rect(&self, what: &str, id: u32, r: &Rect) -> GpuResult<&Resource> {
        let resource = self.resources.get(id)?;
        if !resource.contains(r.x, r.y, r.width, r.height) {
            return Err(GpuError::InvalidParameter(format!(
                "{what} rect {}x{}+{}+{} is not inside resource {id} ({}x{})",
                r.width, r.height, r.x, r.y, resource.width, resource.height
            )));
        }
        Ok(resource)
    }

    /// Stops scanout `index` showing anything and tells the sink.
    fn disable_scanout(&mut self, index: usize) {
        self.scanouts[index].disable();
        self.frames[index].layout_changed();
        self.sink.scanout(index as u32, None);
    }

    fn set_scanout(&mut self, c: &SetScanout) -> GpuResult<Response> {
        let index = self.scanout_index(c.scanout_id)?;
        if c.resource_id == 0 {
            self.disable_scanout(index);
            return Ok(Response::NoData);
        }
        let r = c.r;
        if r.width == 0 || r.height == 0 {
            return Err(GpuError::InvalidParameter("empty scanout rect".to_string()));
        }
        let resource = self.resource_with_rect("scanout", c.resource_id, &r)?;
        if !resource.is_scanout_format() {
            return Err(GpuError::InvalidParameter(format!(
                "resource {} (format {}) cannot be scanned out",
                c.resource_id, resource.format
            )));
        }
        let scanout = &mut self.scanouts[index];
        scanout.resource_id = c.resource_id;
        scanout.rect = r;
        self.frames[index].layout_changed();
        self.sink.scanout(c.scanout_id, Some((r.width, r.height)));
        Ok(Response::NoData)
    }

    /// Frames on demand: a flush only records what changed on each scanout that shows the
    /// resource; nothing is read back until a consumer asks ([`VirtioGpu::take_frame`]).
    fn resource_flush(&mut self, c: &ResourceFlush) -> GpuResult<Response> {
        let r = c.r;
        self.resource_with_rect("flush", c.resource_id, &r)?;
        for (scanout, frame) in self.scanouts.iter().zip(self.frames.iter_mut()) {
            if let Some((_, on_scanout)) = scanout.visible_part(c.resource_id, &r) {
                frame.flushed(on_scanout);
            }
        }
        Ok(Response::NoData)
    }

    fn transfer_to_host_2d(&mut self, c: &TransferToHost2d) -> GpuResult<Response> {
        let r = c.r;
        let resource = self.resource_with_rect("transfer", c.resource_id, &r)?;
        if resource.backing.is_none() {
            return Err(GpuError::Unsupported(
                "transfer to a resource without backing",
            ));
        }
        let stride = u64::from(resource.width) * 4;
        let rect_start = u64::from(r.y) * stride + u64::from(r.x) * 4;
        // The offset is where the rectangle's first pixel is in the backing (QEMU and
        // virglrenderer read it that way); the rectangle's last byte must not overflow.
        let overflow = u64::from(r.height)
            .checked_mul(stride)
            .and_then(|span| c.offset.checked_add(span))
            .is_none();
        if overflow {
            return Err(GpuError::InvalidParameter(format!(
                "transfer offset {:#x} overflows",
                c.offset
            )));
        }
        let offset = if self.backend.is_3d() {
            c.offset
        } else {
            // rutabaga's 2D component adds the rectangle's position itself.
            c.offset.checked_sub(rect_start).ok_or_else(|| {
                GpuError::InvalidParameter(format!(
                    "transfer offset {:#x} is before the rectangle's position {rect_start:#x}",
                    c.offset
                ))
            })?
        };
        let transfer = Transfer3D {
            offset,
            ..Transfer3D::new_2d(r.x, r.y, r.width, r.height)
        };
        self.backend.transfer_write(0, c.resource_id, transfer)?;
        Ok(Response::NoData)
    }

    /// Turns checked guest ranges into host iovecs, splitting ranges that cross regions.
    fn iovecs<M: GuestMemory>(
        mem: &M,
        resource_id: u32,
        entries: &[MemEntry],
    ) -> GpuResult<Vec<RutabagaIovec>> {
        let mut iovecs = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let outside = || GpuError::BackingOutsideMemory {
                resource_id,
                index,
                addr: entry.addr,
                len: u64::from(entry.length),
            };
            let len = entry.length as usize;
            if len == 0 || !mem.check_range(GuestAddress(entry.addr), len, Permissions::ReadWrite) {
                return Err(outside());
            }
            let slices = mem
                .get_slices(GuestAddress(entry.addr), len, Permissions::ReadWrite)
                .map_err(|_| outside())?;
            for slice in slices {
                let slice = slice.map_err(|_| outside())?;
                iovecs.push(RutabagaIovec {
                    base: slice.ptr_guard_mut().as_ptr().cast(),
                    len: slice.len(),
                });
            }
        }
        Ok(iovecs)
    }

    fn attach_backing<M: GuestMemory>(
        &mut self,
        mem: &M,
        resource_id: u32,
        entries: &[MemEntry],
    ) -> GpuResult<Response> {
        let resource = self.resources.get(resource_id)?;
        if resource.backing.is_some() {
            return Err(GpuError::InvalidParameter(format!(
                "resource {resource_id} already has a backing"
            )));
        }
        if resource.kind == ResourceKind::Blob {
            return Err(GpuError::InvalidParameter(format!(
                "blob resource {resource_id} cannot take a backing"
            )));
        }
        let iovecs = Self::iovecs(mem, resource_id, entries)?;
        self.resources.check_bytes(
            resource_id,
            entries.len() as u64 * super::resources::BACKING_ENTRY_COST,
        )?;
        self.backend.attach_backing(resource_id, iovecs)?;
        self.resources.set_backing(resource_id, entries.to_vec())?;
        Ok(Response::NoData)
    }

    fn detach_backing(&mut self, resource_id: u32) -> GpuResult<Response> {
        if self.resources.get(resource_id)?.backing.is_none() {
            return Err(GpuError::InvalidParameter(format!(
                "resource {resource_id} has no backing"
            )));
        }
        self.backend.detach_backing(resource_id)?;
        self.resources.take_backing(resource_id)?;
        Ok(Response::NoData)
    }

    /// Re-resolves every attached backing against `mem` (the guest memory map changed). A
    /// backing no longer inside guest memory is detached.
    pub fn remap_backings<M: GuestMemory>(&mut self, mem: &M) {
        for id in self.resources.ids() {
            let Ok(Some(entries)) = self.resources.take_backing(id) else {
                continue;
            };
            let _ = self.backend.detach_backing(id);
            let reattached = Self::iovecs(mem, id, &entries)
                .and_then(|iovecs| self.backend.attach_backing(id, iovecs))
                .and_then(|()| self.resources.set_backing(id, entries));
            if let Err(e) = reattached {
                log::warn!("virtio-gpu: resource {id} lost its backing on remap: {e}");
                let _ = self.backend.detach_backing(id);
            }
        }
    }

    fn get_capset_info(&self, c: &GetCapsetInfo) -> GpuResult<Response> {
        let capset = self
            .backend
            .info()
            .capsets
            .get(c.capset_index as usize)
            .ok_or_else(|| {
                GpuError::InvalidParameter(format!(
                    "capset index {} does not exist",
                    c.capset_index
                ))
            })?;
        Ok(Response::CapsetInfo(RespCapsetInfo {
            hdr: CtrlHeader::default(),
            capset_id: capset.id,
            capset_max_version: capset.max_version,
            capset_max_size: capset.max_size,
            padding: 0,
        }))
    }

    fn get_capset(&self, c: &GetCapset) -> GpuResult<Response> {
        let known = self
            .backend
            .info()
            .capsets
            .iter()
            .any(|cs| cs.id == c.capset_id && c.capset_version <= cs.max_version);
        if !known {
            return Err(GpuError::InvalidParameter(format!(
                "capset {} version {} does not exist",
                c.capset_id, c.capset_version
            )));
        }
        Ok(Response::Capset(
            self.backend.capset(c.capset_id, c.capset_version)?,
        ))
    }

    /// Answered whenever EDID is offered, acknowledged or not: viogpudo asks without
    /// acknowledging the feature.
    fn get_edid(&self, c: &GetEdid) -> GpuResult<Response> {
        if !self.config.edid {
            return Err(GpuError::Unsupported("EDID is not offered"));
        }
        let index = self.scanout_index(c.scanout)?;
        let mode = self.scanouts[index].mode;
        let edid = build_edid(mode.width, mode.height, &self.config.monitor_name);
        let mut response = RespEdid {
            size: edid.len() as u32,
            ..Default::default()
        };
        response.edid[..edid.len()].copy_from_slice(&edid);
        Ok(Response::Edid(Box::new(response)))
    }

    fn assign_uuid(&mut self, resource_id: u32) -> GpuResult<Response> {
        if !self.config.resource_uuid {
            return Err(GpuError::Unsupported("resource UUIDs are not offered"));
        }
        let fresh = self.next_uuid();
        let resource = self.resources.get_mut(resource_id)?;
        let uuid = *resource.uuid.get_or_insert(fresh);
        Ok(Response::Uuid(uuid))
    }

    /// A version-4-shaped UUID unique within this device: the per-device random seed with a
    /// counter mixed into its low bytes.
    fn next_uuid(&mut self) -> [u8; 16] {
        self.uuid_counter += 1;
        let mut uuid = self.uuid_seed;
        for (byte, counter) in uuid[8..].iter_mut().zip(self.uuid_counter.to_be_bytes()) {
            *byte ^= counter;
        }
        uuid[6] = (uuid[6] & 0x0f) | 0x40;
        // The variant bits overwrite the top of the counter's most significant byte, which
        // only matters after 2^62 UUIDs.
        uuid[8] = (uuid[8] & 0x3f) | 0x80;
        uuid
    }

    fn create_blob<M: GuestMemory>(
        &mut self,
        mem: &M,
        ctx_id: u32,
        c: &ResourceCreateBlob,
        entries: &[MemEntry],
    ) -> GpuResult<Response> {
        if !self.backend.is_3d() {
            return Err(NEEDS_3D);
        }
        if c.size == 0 || c.size > self.config.limits.max_host_bytes {
            return Err(GpuError::InvalidParameter(format!(
                "blob size {:#x} is out of range",
                c.size
            )));
        }
        let host_bytes = match c.blob_mem {
            BLOB_MEM_GUEST => 0,
            BLOB_MEM_HOST3D | BLOB_MEM_HOST3D_GUEST => c.size,
            other => {
                return Err(GpuError::InvalidParameter(format!(
                    "blob memory type {other} is unknown"
                )))
            }
        };
        if c.blob_mem != BLOB_MEM_GUEST && !self.contexts.contains_key(&ctx_id) {
            return Err(GpuError::UnknownContext(ctx_id));
        }
        let entry_cost = entries.len() as u64 * super::resources::BACKING_ENTRY_COST;
        self.resources
            .check_new(c.resource_id, host_bytes.saturating_add(entry_cost))?;
        let iovecs = if entries.is_empty() {
            None
        } else {
            Some(Self::iovecs(mem, c.resource_id, entries)?)
        };
        let create = rutabaga_gfx::ResourceCreateBlob {
            blob_mem: c.blob_mem,
            blob_flags: c.blob_flags,
            blob_id: c.blob_id,
            size: c.size,
        };
        self.backend
            .create_blob(ctx_id, c.resource_id, create, iovecs)?;
        self.resources.insert(Resource {
            id: c.resource_id,
            kind: ResourceKind::Blob,
            format: 0,
            width: 0,
            height: 0,
            host_bytes: host_bytes.saturating_add(entry_cost),
            backing: None,
            uuid: None,
        });
        Ok(Response::NoData)
    }

    fn set_scanout_blob(&mut self, c: &SetScanoutBlob) -> GpuResult<Response> {
        let index = self.scanout_index(c.scanout_id)?;
        if c.resource_id == 0 {
            self.disable_scanout(index);
            return Ok(Response::NoData);
        }
        self.resources.get(c.resource_id)?;
        Err(GpuError::Unsupported("blob scanouts"))
    }

    fn map_blob(&mut self, resource_id: u32) -> GpuResult<Response> {
        self.resources.get(resource_id)?;
        Err(GpuError::Unsupported(
            "mapping blobs needs a host-visible memory region, which this device does not have",
        ))
    }

    fn ctx_create(&mut self, ctx_id: u32, c: &CtxCreate) -> GpuResult<Response> {
        if !self.backend.is_3d() {
            return Err(NEEDS_3D);
        }
        if ctx_id == 0 {
            return Err(GpuError::UnknownContext(0));
        }
        if self.contexts.contains_key(&ctx_id) {
            return Err(GpuError::ContextIdInUse(ctx_id));
        }
        if self.contexts.len() >= self.config.limits.max_contexts {
            return Err(GpuError::TooManyContexts(self.config.limits.max_contexts));
        }
        let name_len = c.nlen as usize;
        if name_len > CTX_DEBUG_NAME_SIZE {
            return Err(GpuError::InvalidParameter(format!(
                "debug name length {name_len} is above 64"
            )));
        }
        let capset_id = c.context_init & CONTEXT_INIT_CAPSET_ID_MASK;
        let known = capset_id == 0
            || self
                .backend
                .info()
                .capsets
                .iter()
                .any(|cs| cs.id == capset_id);
        if !known {
            return Err(GpuError::InvalidParameter(format!(
                "context capset {capset_id} is not offered"
            )));
        }
        let name = String::from_utf8_lossy(&c.debug_name[..name_len]).replace('\0', "");
        let name = (!name.is_empty()).then_some(name.as_str());
        self.backend.create_context(ctx_id, c.context_init, name)?;
        self.contexts.insert(ctx_id, c.context_init);
        Ok(Response::NoData)
    }

    fn ctx_destroy(&mut self, ctx_id: u32) -> GpuResult<Response> {
        if self.contexts.remove(&ctx_id).is_none() {
            return Err(GpuError::UnknownContext(ctx_id));
        }
        self.backend.destroy_context(ctx_id)?;
        // Fences on the context's rings can no longer signal.
        let released = self.fences.release_context(ctx_id);
        self.released.extend(released);
        Ok(Response::NoData)
    }

    fn ctx_resource(&mut self, ctx_id: u32, resource_id: u32, attach: bool) -> GpuResult<Response> {
        if !self.contexts.contains_key(&ctx_id) {
            return Err(GpuError::UnknownContext(ctx_id));
        }
        self.resources.get(resource_id)?;
        if attach {
            self.backend.context_attach(ctx_id, resource_id)?;
        } else {
            self.backend.context_detach(ctx_id, resource_id)?;
        }
        Ok(Response::NoData)
    }

    /// Host bytes a 3D resource may take: every level, layer and sample at the format's size
    /// (mipmaps add at most a third; counted as doubling).
    fn bytes_3d(c: &ResourceCreate3d) -> Option<u64> {
        let pixels = u64::from(c.width)
            .checked_mul(u64::from(c.height))?
            .checked_mul(u64::from(c.depth))?
            .checked_mul(u64::from(c.array_size))?
            .checked_mul(u64::from(c.nr_samples.max(1)))?;
        // PIPE_BUFFER: the width is in bytes.
        let per_pixel = if c.target == PIPE_BUFFER {
            1
        } else {
            virgl_bytes_per_pixel(c.format)
        };
        let mip_factor = if c.last_level > 0 { 2 } else { 1 };
        pixels.checked_mul(per_pixel)?.checked_mul(mip_factor)
    }

    fn resource_create_3d(&mut self, c: &ResourceCreate3d) -> GpuResult<Response> {
        if !self.backend.is_3d() {
            return Err(NEEDS_3D);
        }
        if c.target == PIPE_BUFFER {
            // A buffer's width is its size in bytes (Mesa's vertex, index, uniform and staging
            // buffers run to megabytes): the host-memory budget bounds it, not a texture edge.
            if c.width == 0 {
                return Err(GpuError::InvalidParameter("buffer of 0 bytes".to_string()));
            }
        } else {
            self.check_dimension("width", c.width)?;
        }
        self.check_dimension("height", c.height)?;
        self.check_dimension("depth", c.depth)?;
        self.check_dimension("array size", c.array_size)?;
        if c.last_level > 15 || c.nr_samples > 32 {
            return Err(GpuError::InvalidParameter(format!(
                "last level {} or sample count {} is out of range",
                c.last_level, c.nr_samples
            )));
        }
        let bytes = Self::bytes_3d(c)
            .ok_or_else(|| GpuError::InvalidParameter("3D resource size overflows".to_string()))?;
        self.resources.check_new(c.resource_id, bytes)?;
        let create = ResourceCreate3D {
            target: c.target,
            format: c.format,
            bind: c.bind,
            width: c.width,
            height: c.height,
            depth: c.depth,
            array_size: c.array_size,
            last_level: c.last_level,
            nr_samples: c.nr_samples,
            flags: c.flags,
        };
        self.backend.create_3d(c.resource_id, create)?;
        self.resources.insert(Resource {
            id: c.resource_id,
            kind: ResourceKind::ThreeD,
            format: c.format,
            width: c.width,
            height: c.height,
            host_bytes: bytes,
            backing: None,
            uuid: None,
        });
        Ok(Response::NoData)
    }

    fn transfer_3d(
        &mut self,
        ctx_id: u32,
        c: &TransferHost3d,
        to_host: bool,
    ) -> GpuResult<Response> {
        if !self.backend.is_3d() {
            return Err(NEEDS_3D);
        }
        if ctx_id != 0 && !self.contexts.contains_key(&ctx_id) {
            return Err(GpuError::UnknownContext(ctx_id));
        }
        let resource = self.resources.get(c.resource_id)?;
        if resource.kind != ResourceKind::Blob && resource.backing.is_none() {
            return Err(GpuError::Unsupported(
                "3D transfer to or from a resource without backing",
            ));
        }
        let b = c.box_;
        let transfer = Transfer3D {
            x: b.x,
            y: b.y,
            z: b.z,
            w: b.w,
            h: b.h,
            d: b.d,
            level: c.level,
            stride: c.stride,
            layer_stride: c.layer_stride,
            offset: c.offset,
        };
        if to_host {
            self.backend
                .transfer_write(ctx_id, c.resource_id, transfer)?;
        } else {
            self.backend
                .transfer_read_to_backing(ctx_id, c.resource_id, transfer)?;
        }
        Ok(Response::NoData)
    }

    fn submit_3d(&mut self, ctx_id: u32, data: &[u8]) -> GpuResult<Response> {
        if !self.backend.is_3d() {
            return Err(NEEDS_3D);
        }
        if !self.contexts.contains_key(&ctx_id) {
            return Err(GpuError::UnknownContext(ctx_id));
        }
        // virglrenderer rejects an empty buffer (EFAULT) although there is nothing to do.
        if data.is_empty() {
            return Ok(Response::NoData);
        }
        let mut commands = data.to_vec();
        self.backend.submit(ctx_id, &mut commands)?;
        Ok(Response::NoData)
    }

    fn update_cursor(&mut self, c: &UpdateCursor) -> GpuResult<Response> {
        self.scanout_index(c.pos.scanout_id)?;
        if c.resource_id == 0 {
            if c.pos.scanout_id == 0 {
                self.cursor.set((c.pos.x, c.pos.y), None);
            }
            self.sink
                .cursor_update(c.pos.scanout_id, c.pos.x, c.pos.y, None);
            return Ok(Response::NoData);
        }
        let resource = self.resources.get(c.resource_id)?;
        if !resource.is_scanout_format() {
            return Err(GpuError::InvalidParameter(format!(
                "resource {} cannot be a cursor",
                c.resource_id
            )));
        }
        let rect = Rect {
            x: 0,
            y: 0,
            width: resource.width.min(CURSOR_SIZE),
            height: resource.height.min(CURSOR_SIZE),
        };
        let format = resource.format;
        let pixels = self.backend.read_rect(c.resource_id, rect)?;
        let image = cursor_image(format, rect.width, rect.height, pixels, c.hot_x, c.hot_y);
        if c.pos.scanout_id == 0 {
            self.cursor.set((c.pos.x, c.pos.y), Some(image.clone()));
        }
        self.sink
            .cursor_update(c.pos.scanout_id, c.pos.x, c.pos.y, Some(&image));
        Ok(Response::NoData)
    }

    fn move_cursor(&mut self, c: &UpdateCursor) -> GpuResult<Response> {
        self.scanout_index(c.pos.scanout_id)?;
        if c.pos.scanout_id == 0 {
            self.cursor.moved((c.pos.x, c.pos.y));
        }
        self.sink.cursor_move(c.pos.scanout_id, c.pos.x, c.pos.y);
        Ok(Response::NoData)
    }

    /// The pixels scanout `scanout_id` shows now (for screenshots), or `None` when it shows
    /// nothing.
    pub fn scanout_pixels(&mut self, scanout_id: u32) -> Option<ScanoutImage> {
        let scanout = *self.scanouts.get(scanout_id as usize)?;
        if scanout.resource_id == 0 {
            return None;
        }
        let format = self.resources.get(scanout.resource_id).ok()?.format;
        let mut pixels = match self.backend.read_rect(scanout.resource_id, scanout.rect) {
            Ok(pixels) => pixels,
            Err(e) => {
                log::warn!("virtio-gpu: cannot read scanout {scanout_id}: {e}");
                return None;
            }
        };
        to_bgra(format, &mut pixels);
        Some(ScanoutImage {
            width: scanout.rect.width,
            height: scanout.rect.height,
            format,
            pixels,
        })
    }

    /// What changed about scanout 0's cursor since the consumer saw generation `since` (0:
    /// nothing yet). The image travels only when the consumer lacks it.
    pub fn take_cursor(&self, since: u64) -> CursorChange {
        self.cursor.since(since)
    }

    /// The generation of what scanout `scanout_id` shows now (`None`: no such scanout).
    /// It changes with every flush and every change of what the scanout shows.
    pub fn frame_generation(&self, scanout_id: u32) -> Option<u64> {
        self.frames
            .get(scanout_id as usize)
            .map(FrameTrack::generation)
    }

    /// What changed on scanout `scanout_id` since the consumer saw generation `since` (0:
    /// nothing yet): reads back only that, from the renderer, now. A consumer in step with
    /// the last frame handed out gets the rectangle flushed since; any other gets the whole
    /// frame.
    pub fn take_frame(&mut self, scanout_id: u32, since: u64) -> GpuResult<FrameChange> {
        self.read_frame(scanout_id, since, |backend, resource_id, rect, format| {
            let mut pixels = backend.read_rect(resource_id, rect)?;
            to_bgra(format, &mut pixels);
            Ok(pixels)
        })
    }

    /// As [`VirtioGpu::take_frame`], but the changed pixels are read straight into `dest`
    /// (rows of `rect.width * 4` bytes from its start), a buffer the consumer keeps and
    /// shares: no allocation and no copy on the thread that serves the device. A change that
    /// does not fit is `GpuError::FrameBufferTooSmall`, and stays pending.
    pub fn take_frame_into(
        &mut self,
        scanout_id: u32,
        since: u64,
        dest: &mut [u8],
    ) -> GpuResult<FrameChange<()>> {
        self.read_frame(scanout_id, since, |backend, resource_id, rect, format| {
            let needed = u64::from(rect.width) * u64::from(rect.height) * 4;
            let capacity = dest.len() as u64;
            let part = usize::try_from(needed)
                .ok()
                .and_then(|needed| dest.get_mut(..needed))
                .ok_or(GpuError::FrameBufferTooSmall { needed, capacity })?;
            backend.read_rect_into(resource_id, rect, part)?;
            to_bgra(format, part);
            Ok(())
        })
    }

    /// The common part of taking a frame: decides what the consumer lacks, reads it with
    /// `read` (given the resource, the rectangle in it and its format) and marks it
    /// delivered.
    fn read_frame<P>(
        &mut self,
        scanout_id: u32,
        since: u64,
        read: impl FnOnce(&mut Backend, u32, Rect, u32) -> GpuResult<P>,
    ) -> GpuResult<FrameChange<P>> {
        let index = self.scanout_index(scanout_id)?;
        let scanout = self.scanouts[index];
        if since == self.frames[index].generation() {
            return Ok(FrameChange::Unchanged);
        }
        if scanout.resource_id == 0 {
            let generation = self.frames[index].delivered();
            return Ok(FrameChange::Disabled { generation });
        }
        let (width, height) = (scanout.rect.width, scanout.rect.height);
        let Some(rect) = self.frames[index].stale_part(since, width, height) else {
            return Ok(FrameChange::Unchanged);
        };
        let in_resource = Rect {
            x: scanout.rect.x + rect.x,
            y: scanout.rect.y + rect.y,
            ..rect
        };
        let format = self.resources.get(scanout.resource_id)?.format;
        let pixels = read(&mut self.backend, scanout.resource_id, in_resource, format)?;
        let generation = self.frames[index].delivered();
        Ok(FrameChange::Pixels(FramePixels {
            generation,
            width,
            height,
            rect,
            pixels,
        }))
    }

    /// Device reset: destroys every context and resource, disables the scanouts and drops
    /// held responses (the queues are reset too). The renderer and configuration stay.
    pub fn reset(&mut self) {
        self.end_recorded_session();
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.reset();
        }
        for ctx_id in std::mem::take(&mut self.contexts).into_keys() {
            if let Err(e) = self.backend.destroy_context(ctx_id) {
                log::warn!("virtio-gpu: reset: {e}");
            }
        }
        for id in self.resources.ids() {
            let _ = self.resources.remove(id);
            if let Err(e) = self.backend.unref(id) {
                log::warn!("virtio-gpu: reset: {e}");
            }
        }
        for index in 0..self.scanouts.len() {
            if self.scanouts[index].resource_id != 0 {
                self.disable_scanout(index);
            }
        }
        if self.cursor.since(0) != CursorChange::Unchanged {
            self.cursor.set((0, 0), None);
        }
        self.fences.clear();
        self.publish_fence_age();
        self.fence_capped = false;
        self.released.clear();
        // Completions of fences from before the reset release nothing.
        let _ = self.backend.signals().take();
        self.acked_features = 0;
        self.events_read = 0;
    }
}
