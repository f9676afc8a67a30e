//! The virtio-gpu device over real virtqueues in synthetic guest memory, with rutabaga's 2D
//! renderer: every 2D command, the error codes, viogpudo's habits, and hostile chains.

mod common;

use common::*;
use devices::virtio_gpu::protocol::*;
use devices::virtio_gpu::{
    Backend, BackendConfig, DisplayMode, FrameChange, FramePixels, GpuConfig, GpuError, Limits,
    QueueKind, RendererChoice, VirtioGpu, CURSOR_BYTES,
};
use vm_memory::{ByteValued, Bytes};

const W: u32 = 64;
const H: u32 = 32;

struct Fixture {
    guest: Guest,
    gpu: VirtioGpu,
    sink: RecordingSink,
}

fn fixture_with(config: GpuConfig) -> Fixture {
    let backend = Backend::init(&BackendConfig {
        renderer: RendererChoice::TwoD,
        surfaceless: None,
    })
    .unwrap();
    let mut gpu = VirtioGpu::new(backend, config).unwrap();
    let sink = RecordingSink::default();
    gpu.set_display_sink(Box::new(sink.clone()));
    Fixture {
        guest: Guest::new(),
        gpu,
        sink,
    }
}

fn fixture() -> Fixture {
    fixture_with(GpuConfig::default())
}

impl Fixture {
    fn control(&mut self, request: &[u8]) -> u32 {
        self.guest
            .send_for_type(&mut self.gpu, QueueKind::Control, request)
    }

    fn cursor(&mut self, request: &[u8]) -> u32 {
        self.guest
            .send_for_type(&mut self.gpu, QueueKind::Cursor, request)
    }

    fn create(&mut self, id: u32, format: u32, width: u32, height: u32) -> u32 {
        let body = ResourceCreate2d {
            resource_id: id,
            format,
            width,
            height,
        };
        self.control(&request(header(CMD_RESOURCE_CREATE_2D), body, &[]))
    }

    /// Attaches a guest buffer holding `pixels` as resource `id`'s backing, split in two
    /// entries; returns the buffer's address.
    fn attach(&mut self, id: u32, pixels: &[u8]) -> u64 {
        let addr = self.guest.alloc(pixels, pixels.len());
        let half = (pixels.len() / 2) as u32;
        let entries = [
            MemEntry {
                addr,
                length: half,
                padding: 0,
            },
            MemEntry {
                addr: addr + u64::from(half),
                length: pixels.len() as u32 - half,
                padding: 0,
            },
        ];
        assert_eq!(self.attach_entries(id, &entries), RESP_OK_NODATA);
        addr
    }

    /// RESOURCE_ATTACH_BACKING of `entries` to resource `id`; returns the response type.
    fn attach_entries(&mut self, id: u32, entries: &[MemEntry]) -> u32 {
        let tail: Vec<u8> = entries.iter().flat_map(|e| e.as_slice().to_vec()).collect();
        let body = ResourceAttachBacking {
            resource_id: id,
            nr_entries: entries.len() as u32,
        };
        self.control(&request(header(CMD_RESOURCE_ATTACH_BACKING), body, &tail))
    }

    fn transfer(&mut self, id: u32, r: Rect, offset: u64) -> u32 {
        let body = TransferToHost2d {
            r,
            offset,
            resource_id: id,
            padding: 0,
        };
        self.control(&request(header(CMD_TRANSFER_TO_HOST_2D), body, &[]))
    }

    fn set_scanout(&mut self, scanout_id: u32, id: u32, r: Rect) -> u32 {
        let body = SetScanout {
            r,
            scanout_id,
            resource_id: id,
        };
        self.control(&request(header(CMD_SET_SCANOUT), body, &[]))
    }

    fn flush(&mut self, id: u32, r: Rect) -> u32 {
        let body = ResourceFlush {
            r,
            resource_id: id,
            padding: 0,
        };
        self.control(&request(header(CMD_RESOURCE_FLUSH), body, &[]))
    }

    fn unref(&mut self, id: u32) -> u32 {
        let body = ResourceId {
            resource_id: id,
            padding: 0,
        };
        self.control(&request(header(CMD_RESOURCE_UNREF), body, &[]))
    }

    /// A `W`x`H` B8G8R8X8 resource `id` filled with `pixels`, transferred and shown on
    /// scanout 0.
    fn shown_resource(&mut self, id: u32, pixels: &[u8]) {
        self.create(id, FORMAT_B8G8R8X8_UNORM, W, H);
        self.attach(id, pixels);
        self.transfer(id, full(), 0);
        self.set_scanout(0, id, full());
    }
}

fn full() -> Rect {
    Rect {
        x: 0,
        y: 0,
        width: W,
        height: H,
    }
}

/// Pixel (x, y) of the test pattern: B = x, G = y, R = 0x80, X = 0.
fn pattern() -> Vec<u8> {
    (0..H)
        .flat_map(|y| (0..W).flat_map(move |x| [x as u8, y as u8, 0x80, 0]))
        .collect()
}

#[test]
fn get_display_info_reports_configured_mode() {
    let mut f = fixture_with(GpuConfig {
        displays: vec![DisplayMode {
            width: 1280,
            height: 800,
        }],
        ..Default::default()
    });

    let resp = f.guest.send(
        &mut f.gpu,
        QueueKind::Control,
        &bare(CMD_GET_DISPLAY_INFO),
        408,
    );

    let info: RespDisplayInfo = read_struct(&resp);
    assert_eq!(
        (
            info.hdr.type_,
            info.pmodes[0].r.width,
            info.pmodes[0].r.height,
            info.pmodes[0].enabled
        ),
        (RESP_OK_DISPLAY_INFO, 1280, 800, 1)
    );
}

#[test]
fn get_edid_answers_without_the_feature_acked() {
    let mut f = fixture();
    let body = GetEdid {
        scanout: 0,
        padding: 0,
    };

    let resp = f.guest.send(
        &mut f.gpu,
        QueueKind::Control,
        &request(header(CMD_GET_EDID), body, &[]),
        std::mem::size_of::<RespEdid>(),
    );

    let edid: RespEdid = read_struct(&resp);
    let sum = edid.edid[..128].iter().fold(0u8, |a, b| a.wrapping_add(*b));
    assert_eq!(
        (edid.hdr.type_, edid.size, sum, f.gpu.acked_features()),
        (RESP_OK_EDID, 128, 0, 0)
    );
}

#[test]
fn get_edid_rejects_unknown_scanout() {
    let mut f = fixture();
    let body = GetEdid {
        scanout: 1,
        padding: 0,
    };

    let resp = f.control(&request(header(CMD_GET_EDID), body, &[]));

    assert_eq!(resp, RESP_ERR_INVALID_SCANOUT_ID);
}

#[test]
fn create_2d_rejects_zero_id() {
    let mut f = fixture();

    assert_eq!(
        f.create(0, FORMAT_B8G8R8X8_UNORM, W, H),
        RESP_ERR_INVALID_RESOURCE_ID
    );
}

#[test]
fn create_2d_rejects_reused_id() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);

    assert_eq!(
        f.create(1, FORMAT_B8G8R8X8_UNORM, W, H),
        RESP_ERR_INVALID_RESOURCE_ID
    );
}

#[test]
fn create_2d_rejects_unknown_format() {
    let mut f = fixture();

    assert_eq!(f.create(1, 999, W, H), RESP_ERR_INVALID_PARAMETER);
}

#[test]
fn create_2d_rejects_dimension_over_limit() {
    let mut f = fixture();

    assert_eq!(
        f.create(1, FORMAT_B8G8R8X8_UNORM, 16385, 1),
        RESP_ERR_INVALID_PARAMETER
    );
}

#[test]
fn create_2d_over_host_memory_budget_is_out_of_memory_before_allocating() {
    let mut f = fixture_with(GpuConfig {
        limits: Limits {
            max_host_bytes: 1 << 20,
            ..Default::default()
        },
        ..Default::default()
    });
    f.create(1, FORMAT_B8G8R8X8_UNORM, 512, 512);

    let resp = f.create(2, FORMAT_B8G8R8X8_UNORM, 1, 1);

    assert_eq!(
        (resp, f.gpu.resource_count(), f.gpu.host_bytes_in_use()),
        (RESP_ERR_OUT_OF_MEMORY, 1, 1 << 20)
    );
}

#[test]
fn create_2d_over_resource_count_is_out_of_memory() {
    let mut f = fixture_with(GpuConfig {
        limits: Limits {
            max_resources: 2,
            ..Default::default()
        },
        ..Default::default()
    });
    f.create(1, FORMAT_B8G8R8X8_UNORM, 1, 1);
    f.create(2, FORMAT_B8G8R8X8_UNORM, 1, 1);

    assert_eq!(
        f.create(3, FORMAT_B8G8R8X8_UNORM, 1, 1),
        RESP_ERR_OUT_OF_MEMORY
    );
}

#[test]
fn unref_unknown_resource_is_invalid_resource_id() {
    let mut f = fixture();

    assert_eq!(f.unref(42), RESP_ERR_INVALID_RESOURCE_ID);
}

#[test]
fn attach_backing_rejects_entry_outside_guest_memory() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    let entry = MemEntry {
        addr: MEM_SIZE as u64 - 16,
        length: 4096,
        padding: 0,
    };

    let resp = f.attach_entries(1, &[entry]);

    assert_eq!(resp, RESP_ERR_INVALID_PARAMETER);
}

#[test]
fn attach_backing_rejects_too_many_entries() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    let body = ResourceAttachBacking {
        resource_id: 1,
        nr_entries: 16385,
    };
    let tail = vec![0u8; 16385 * 16];

    let resp = f.control(&request(header(CMD_RESOURCE_ATTACH_BACKING), body, &tail));

    assert_eq!(resp, RESP_ERR_INVALID_PARAMETER);
}

#[test]
fn attach_backing_twice_is_rejected() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    f.attach(1, &pattern());
    let entry = MemEntry {
        addr: 0x100000,
        length: 16,
        padding: 0,
    };

    let resp = f.attach_entries(1, &[entry]);

    assert_eq!(resp, RESP_ERR_INVALID_PARAMETER);
}

#[test]
fn detach_backing_without_backing_is_rejected() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    let body = ResourceId {
        resource_id: 1,
        padding: 0,
    };

    let resp = f.control(&request(header(CMD_RESOURCE_DETACH_BACKING), body, &[]));

    assert_eq!(resp, RESP_ERR_INVALID_PARAMETER);
}

#[test]
fn transfer_without_backing_is_rejected_and_resource_stays_usable() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    let first = f.transfer(1, full(), 0);
    f.attach(1, &pattern());

    let second = f.transfer(1, full(), 0);

    assert_eq!((first, second), (RESP_ERR_UNSPEC, RESP_OK_NODATA));
}

#[test]
fn transfer_rejects_rect_outside_resource() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    f.attach(1, &pattern());
    let r = Rect {
        x: u32::MAX,
        y: 0,
        width: 2,
        height: 1,
    };

    assert_eq!(f.transfer(1, r, 0), RESP_ERR_INVALID_PARAMETER);
}

#[test]
fn transfer_rejects_overflowing_offset() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    f.attach(1, &pattern());

    assert_eq!(
        f.transfer(1, full(), u64::MAX - 8),
        RESP_ERR_INVALID_PARAMETER
    );
}

#[test]
fn flush_reads_nothing_back_and_tells_the_sink_nothing() {
    let mut f = fixture();
    f.shown_resource(1, &pattern());
    f.sink.take();
    let before = f.gpu.frame_generation(0).unwrap();

    let resp = f.flush(1, full());

    assert_eq!(
        (resp, f.sink.take(), f.gpu.frame_generation(0).unwrap()),
        (RESP_OK_NODATA, vec![], before + 1)
    );
}

#[test]
fn first_frame_taken_is_the_whole_flushed_scanout() {
    let mut f = fixture();
    f.shown_resource(1, &pattern());
    f.flush(1, full());

    let change = f.gpu.take_frame(0, 0).unwrap();

    let mut expected = pattern();
    expected.chunks_exact_mut(4).for_each(|p| p[3] = 0xff);
    assert_eq!(
        change,
        FrameChange::Pixels(FramePixels {
            generation: f.gpu.frame_generation(0).unwrap(),
            width: W,
            height: H,
            rect: full(),
            pixels: expected,
        })
    );
}

#[test]
fn frame_taken_in_step_holds_only_the_flushed_rectangle() {
    let mut f = fixture();
    f.shown_resource(1, &pattern());
    f.flush(1, full());
    let FrameChange::Pixels(first) = f.gpu.take_frame(0, 0).unwrap() else {
        panic!("the first frame has pixels");
    };
    let dirty = Rect {
        x: 8,
        y: 4,
        width: 2,
        height: 3,
    };
    f.flush(1, dirty);

    let change = f.gpu.take_frame(0, first.generation).unwrap();

    let FrameChange::Pixels(second) = change else {
        panic!("a flushed frame has pixels");
    };
    assert_eq!(
        (second.rect, second.pixels.len(), &second.pixels[..4]),
        (dirty, 2 * 3 * 4, &[8u8, 4, 0x80, 0xff][..])
    );
}

#[test]
fn frame_taken_into_a_buffer_is_written_at_its_start() {
    let mut f = fixture();
    f.shown_resource(1, &pattern());
    f.flush(1, full());
    let mut buffer = vec![0xaa; pattern().len() + 8];

    let change = f.gpu.take_frame_into(0, 0, &mut buffer).unwrap();

    let mut expected = pattern();
    expected.chunks_exact_mut(4).for_each(|p| p[3] = 0xff);
    expected.extend_from_slice(&[0xaa; 8]);
    assert_eq!(
        (change, buffer),
        (
            FrameChange::Pixels(FramePixels {
                generation: f.gpu.frame_generation(0).unwrap(),
                width: W,
                height: H,
                rect: full(),
                pixels: (),
            }),
            expected
        )
    );
}

#[test]
fn frame_too_large_for_the_buffer_is_refused_and_stays_pending() {
    let mut f = fixture();
    f.shown_resource(1, &pattern());
    f.flush(1, full());
    let mut small = vec![0; 16];
    let needed = pattern().len() as u64;

    let refused = f.gpu.take_frame_into(0, 0, &mut small);
    let retried = f.gpu.take_frame(0, 0).unwrap();

    assert!(matches!(
        refused,
        Err(GpuError::FrameBufferTooSmall { needed: n, capacity: 16 }) if n == needed
    ));
    assert!(matches!(retried, FrameChange::Pixels(frame) if frame.rect == full()));
}

#[test]
fn frame_taken_without_a_flush_since_is_unchanged() {
    let mut f = fixture();
    f.shown_resource(1, &pattern());
    f.flush(1, full());
    let seen = f.gpu.frame_generation(0).unwrap();
    f.gpu.take_frame(0, 0).unwrap();

    let change = f.gpu.take_frame(0, seen).unwrap();

    assert_eq!(change, FrameChange::Unchanged);
}

#[test]
fn frame_of_a_disabled_scanout_says_so() {
    let mut f = fixture();
    f.shown_resource(1, &pattern());
    f.set_scanout(0, 0, full());

    let change = f.gpu.take_frame(0, 0).unwrap();

    assert_eq!(
        change,
        FrameChange::Disabled {
            generation: f.gpu.frame_generation(0).unwrap()
        }
    );
}

#[test]
fn frame_of_a_missing_scanout_is_refused() {
    let mut f = fixture();

    let result = f.gpu.take_frame(5, 0);

    assert!(matches!(result, Err(GpuError::InvalidScanout(5))));
}

#[test]
fn transfer_of_partial_rect_reads_from_its_offset() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    let addr = f.attach(1, &vec![0u8; (W * H * 4) as usize]);
    let r = Rect {
        x: 2,
        y: 3,
        width: 1,
        height: 1,
    };
    let offset = u64::from(3 * W * 4 + 2 * 4);
    f.guest
        .mem
        .write_slice(&[9, 8, 7, 6], vm_memory::GuestAddress(addr + offset))
        .unwrap();
    f.transfer(1, r, offset);
    f.set_scanout(0, 1, full());

    let image = f.gpu.scanout_pixels(0).unwrap();

    let at = (3 * W as usize + 2) * 4;
    assert_eq!(&image.pixels[at..at + 4], &[9, 8, 7, 0xff]);
}

#[test]
fn scanout_pixels_returns_current_frame() {
    let mut f = fixture();
    f.shown_resource(1, &pattern());

    let image = f.gpu.scanout_pixels(0).unwrap();

    let pixel = |x: usize, y: usize| image.pixels[(y * W as usize + x) * 4..][..4].to_vec();
    assert_eq!(
        (image.width, image.height, image.format, pixel(5, 7)),
        (W, H, FORMAT_B8G8R8X8_UNORM, vec![5, 7, 0x80, 0xff])
    );
}

#[test]
fn scanout_pixels_is_none_without_scanout() {
    let mut f = fixture();

    assert_eq!(f.gpu.scanout_pixels(0), None);
}

#[test]
fn unref_of_shown_resource_then_disable_frees_everything() {
    let mut f = fixture();
    f.shown_resource(1, &pattern());
    f.sink.take();

    let unref = f.unref(1);
    let disable = f.set_scanout(0, 0, Rect::default());

    assert_eq!(
        (
            unref,
            disable,
            f.gpu.resource_count(),
            f.gpu.host_bytes_in_use(),
            f.gpu.scanout_pixels(0),
            f.sink.take()
        ),
        (
            RESP_OK_NODATA,
            RESP_OK_NODATA,
            0,
            0,
            None,
            vec![SinkEvent::Scanout(0, None), SinkEvent::Scanout(0, None)]
        )
    );
}

#[test]
fn set_scanout_rejects_unknown_scanout() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);

    assert_eq!(f.set_scanout(1, 1, full()), RESP_ERR_INVALID_SCANOUT_ID);
}

#[test]
fn set_scanout_rejects_rect_outside_resource() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    let r = Rect {
        x: 1,
        y: 0,
        width: W,
        height: H,
    };

    assert_eq!(f.set_scanout(0, 1, r), RESP_ERR_INVALID_PARAMETER);
}

#[test]
fn set_scanout_tells_sink_the_size() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    f.sink.take();

    f.set_scanout(0, 1, full());

    assert_eq!(f.sink.take(), vec![SinkEvent::Scanout(0, Some((W, H)))]);
}

fn cursor_request(cmd: u32, resource_id: u32, x: u32, y: u32) -> Vec<u8> {
    let body = UpdateCursor {
        pos: CursorPos {
            scanout_id: 0,
            x,
            y,
            padding: 0,
        },
        resource_id,
        hot_x: 3,
        hot_y: 4,
        padding: 0,
    };
    request(header(cmd), body, &[])
}

#[test]
fn update_cursor_sends_64x64_image_to_sink() {
    let mut f = fixture();
    f.create(5, FORMAT_B8G8R8A8_UNORM, 64, 64);
    f.attach(5, &[0x11; 64 * 64 * 4]);
    f.transfer(
        5,
        Rect {
            x: 0,
            y: 0,
            width: 64,
            height: 64,
        },
        0,
    );
    f.sink.take();

    let resp = f.cursor(&cursor_request(CMD_UPDATE_CURSOR, 5, 10, 20));

    let events = f.sink.take();
    let SinkEvent::Cursor(0, 10, 20, Some(image)) = &events[0] else {
        panic!("no cursor update: {events:?}");
    };
    assert_eq!(
        (
            resp,
            image.hot_x,
            image.hot_y,
            image.pixels.len(),
            image.pixels[0]
        ),
        (RESP_OK_NODATA, 3, 4, CURSOR_BYTES, 0x11)
    );
}

#[test]
fn move_cursor_reaches_sink() {
    let mut f = fixture();

    f.cursor(&cursor_request(CMD_MOVE_CURSOR, 0, 7, 9));

    assert_eq!(f.sink.take(), vec![SinkEvent::Move(0, 7, 9)]);
}

#[test]
fn cursor_queue_without_writable_buffer_is_returned_with_zero_length() {
    let mut f = fixture();
    let req = cursor_request(CMD_MOVE_CURSOR, 0, 1, 1);
    let addr = f.guest.alloc(&req, req.len());
    let mem = f.guest.mem.clone();
    f.guest
        .cursor
        .post(&mem, &[Desc::Read(addr, req.len() as u32)]);

    f.guest.process(&mut f.gpu, QueueKind::Cursor);

    assert_eq!(
        (f.guest.cursor.take_used(&mem), f.sink.take()),
        (vec![(0, 0)], vec![SinkEvent::Move(0, 1, 1)])
    );
}

#[test]
fn cursor_command_on_control_queue_is_rejected() {
    let mut f = fixture();

    assert_eq!(
        f.control(&cursor_request(CMD_MOVE_CURSOR, 0, 1, 1)),
        RESP_ERR_UNSPEC
    );
}

#[test]
fn control_command_on_cursor_queue_is_rejected() {
    let mut f = fixture();

    assert_eq!(f.cursor(&bare(CMD_GET_DISPLAY_INFO)), RESP_ERR_UNSPEC);
}

#[test]
fn fenced_command_echoes_its_fence() {
    let mut f = fixture();
    let mut hdr = header(CMD_RESOURCE_CREATE_2D);
    hdr.flags = FLAG_FENCE;
    hdr.fence_id = 77;
    let body = ResourceCreate2d {
        resource_id: 1,
        format: FORMAT_B8G8R8X8_UNORM,
        width: 4,
        height: 4,
    };

    let resp = f.guest.send(
        &mut f.gpu,
        QueueKind::Control,
        &request(hdr, body, &[]),
        HEADER_SIZE,
    );

    let out: CtrlHeader = read_struct(&resp);
    assert_eq!(
        (out.type_, out.flags, out.fence_id, f.gpu.pending_fences()),
        (RESP_OK_NODATA, FLAG_FENCE, 77, 0)
    );
}

#[test]
fn three_d_commands_are_unspec_on_the_2d_renderer() {
    let mut f = fixture();
    let mut hdr = header(CMD_CTX_CREATE);
    hdr.ctx_id = 1;

    assert_eq!(
        f.control(&request(hdr, CtxCreate::default(), &[])),
        RESP_ERR_UNSPEC
    );
}

#[test]
fn capset_info_is_invalid_parameter_without_capsets() {
    let mut f = fixture();
    let body = GetCapsetInfo {
        capset_index: 0,
        padding: 0,
    };

    assert_eq!(
        f.control(&request(header(CMD_GET_CAPSET_INFO), body, &[])),
        RESP_ERR_INVALID_PARAMETER
    );
}

fn assign_uuid(f: &mut Fixture, id: u32) -> RespResourceUuid {
    let body = ResourceId {
        resource_id: id,
        padding: 0,
    };
    let mut resp = f.guest.send(
        &mut f.gpu,
        QueueKind::Control,
        &request(header(CMD_RESOURCE_ASSIGN_UUID), body, &[]),
        40,
    );
    resp.resize(40, 0);
    read_struct(&resp)
}

#[test]
fn assign_uuid_is_stable_per_resource_and_unique() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, 1, 1);
    f.create(2, FORMAT_B8G8R8X8_UNORM, 1, 1);

    let (a, again, b) = (
        assign_uuid(&mut f, 1),
        assign_uuid(&mut f, 1),
        assign_uuid(&mut f, 2),
    );

    assert_eq!(
        (
            a.hdr.type_,
            a.uuid == again.uuid,
            a.uuid == b.uuid,
            a.uuid[6] >> 4
        ),
        (RESP_OK_RESOURCE_UUID, true, false, 4)
    );
}

#[test]
fn assign_uuid_of_unknown_resource_is_invalid_resource_id() {
    let mut f = fixture();

    assert_eq!(
        assign_uuid(&mut f, 3).hdr.type_,
        RESP_ERR_INVALID_RESOURCE_ID
    );
}

#[test]
fn map_blob_is_refused_with_unspec() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, 1, 1);
    let body = ResourceMapBlob {
        resource_id: 1,
        padding: 0,
        offset: 0,
    };

    assert_eq!(
        f.control(&request(header(CMD_RESOURCE_MAP_BLOB), body, &[])),
        RESP_ERR_UNSPEC
    );
}

#[test]
fn features_on_2d_renderer_are_edid_and_uuid_only() {
    let f = fixture();

    assert_eq!(
        f.gpu.device_features(),
        (1 << VIRTIO_GPU_F_EDID) | (1 << VIRTIO_GPU_F_RESOURCE_UUID)
    );
}

#[test]
fn config_space_reports_scanouts_and_no_capsets() {
    let f = fixture_with(GpuConfig {
        displays: vec![DisplayMode::default(); 2],
        ..Default::default()
    });

    let mut bytes = [0u8; 16];
    f.gpu.read_config(0, &mut bytes);

    assert_eq!(bytes, [0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn display_mode_change_raises_event_until_cleared() {
    let mut f = fixture();
    f.gpu
        .set_display_mode(
            0,
            DisplayMode {
                width: 800,
                height: 600,
            },
        )
        .unwrap();
    let raised = f.gpu.config_space().events_read;

    f.gpu.write_config(4, &EVENT_DISPLAY.to_le_bytes());

    let resp = f.guest.send(
        &mut f.gpu,
        QueueKind::Control,
        &bare(CMD_GET_DISPLAY_INFO),
        408,
    );
    let info: RespDisplayInfo = read_struct(&resp);
    assert_eq!(
        (
            raised,
            f.gpu.config_space().events_read,
            info.pmodes[0].r.width
        ),
        (EVENT_DISPLAY, 0, 800)
    );
}

#[test]
fn reset_frees_every_resource() {
    let mut f = fixture();
    f.shown_resource(1, &pattern());
    f.create(2, FORMAT_B8G8R8X8_UNORM, W, H);

    f.gpu.reset();

    assert_eq!(
        (
            f.gpu.resource_count(),
            f.gpu.host_bytes_in_use(),
            f.gpu.scanout_pixels(0)
        ),
        (0, 0, None)
    );
}

#[test]
fn remap_backings_keeps_transfers_working() {
    let mut f = fixture();
    f.create(1, FORMAT_B8G8R8X8_UNORM, W, H);
    f.attach(1, &pattern());
    let mem = f.guest.mem.clone();

    f.gpu.remap_backings(&mem);

    assert_eq!(f.transfer(1, full(), 0), RESP_OK_NODATA);
}

// Hostile chains: each gets an error answer (or is returned empty when it has nowhere to
// write one) and the device keeps serving.

fn still_serves(f: &mut Fixture) -> bool {
    let resp = f.guest.send(
        &mut f.gpu,
        QueueKind::Control,
        &bare(CMD_GET_DISPLAY_INFO),
        408,
    );
    response_type(&resp) == RESP_OK_DISPLAY_INFO
}

/// Posts `descs` on the control queue, processes it, and returns (used entries, the first 4
/// bytes at `answer_at`, whether the device still serves).
fn post_hostile(f: &mut Fixture, descs: &[Desc], answer_at: u64) -> (Vec<(u32, u32)>, u32, bool) {
    let mem = f.guest.mem.clone();
    f.guest.control.post(&mem, descs);
    f.guest.process(&mut f.gpu, QueueKind::Control);
    let used = f.guest.control.take_used(&mem);
    let answer = response_type(&f.guest.read(answer_at, 4));
    (used, answer, still_serves(f))
}

#[test]
fn looping_chain_is_answered_and_device_keeps_serving() {
    let mut f = fixture();
    let req = bare(CMD_GET_DISPLAY_INFO);
    let addr = f.guest.alloc(&req, req.len());
    let resp = f.guest.alloc(&[], 64);
    let mem = f.guest.mem.clone();
    // Descriptor 0 -> 1 -> 0 -> ... until the queue size runs out.
    f.guest
        .control
        .write_desc(&mem, 0, addr, req.len() as u32, 1, 1);
    f.guest.control.write_desc(&mem, 1, resp, 64, 1 | 2, 0);
    f.guest.control.make_available(&mem, 0);

    f.guest.process(&mut f.gpu, QueueKind::Control);

    let used = f.guest.control.take_used(&mem);
    let answer = response_type(&f.guest.read(resp, 4));
    assert_eq!(
        (used.len(), answer, still_serves(&mut f)),
        (1, RESP_ERR_UNSPEC, true)
    );
}

#[test]
fn readable_after_writable_is_unspec() {
    let mut f = fixture();
    let req = bare(CMD_GET_DISPLAY_INFO);
    let addr = f.guest.alloc(&req, req.len());
    let resp = f.guest.alloc(&[], 408);

    let (used, answer, serves) = post_hostile(
        &mut f,
        &[Desc::Write(resp, 408), Desc::Read(addr, 24)],
        resp,
    );

    assert_eq!(
        (used, answer, serves),
        (vec![(0, 24)], RESP_ERR_UNSPEC, true)
    );
}

#[test]
fn buffer_outside_guest_memory_is_unspec() {
    let mut f = fixture();
    let resp = f.guest.alloc(&[], 24);

    let (used, answer, serves) = post_hostile(
        &mut f,
        &[Desc::Read(MEM_SIZE as u64 - 8, 24), Desc::Write(resp, 24)],
        resp,
    );

    assert_eq!(
        (used, answer, serves),
        (vec![(0, 24)], RESP_ERR_UNSPEC, true)
    );
}

#[test]
fn too_short_writable_part_is_returned_empty() {
    let mut f = fixture();
    let req = bare(CMD_GET_DISPLAY_INFO);
    let addr = f.guest.alloc(&req, req.len());
    let resp = f.guest.alloc(&[], 8);

    let (used, _, serves) =
        post_hostile(&mut f, &[Desc::Read(addr, 24), Desc::Write(resp, 8)], resp);

    assert_eq!((used, serves), (vec![(0, 0)], true));
}

#[test]
fn response_larger_than_writable_part_is_unspec() {
    let mut f = fixture();
    let req = bare(CMD_GET_DISPLAY_INFO);
    let addr = f.guest.alloc(&req, req.len());
    let resp = f.guest.alloc(&[], 100);

    let (used, answer, serves) = post_hostile(
        &mut f,
        &[Desc::Read(addr, 24), Desc::Write(resp, 100)],
        resp,
    );

    assert_eq!(
        (used, answer, serves),
        (vec![(0, 24)], RESP_ERR_UNSPEC, true)
    );
}

#[test]
fn too_short_header_is_unspec() {
    let mut f = fixture();

    assert_eq!(
        f.control(&bare(CMD_GET_DISPLAY_INFO)[..10]),
        RESP_ERR_UNSPEC
    );
}

#[test]
fn truncated_body_is_unspec() {
    let mut f = fixture();
    let req = request(
        header(CMD_RESOURCE_CREATE_2D),
        ResourceCreate2d::default(),
        &[],
    );

    assert_eq!(f.control(&req[..30]), RESP_ERR_UNSPEC);
}

#[test]
fn unknown_command_is_unspec() {
    let mut f = fixture();

    assert_eq!(f.control(&bare(0x0fff)), RESP_ERR_UNSPEC);
}

#[test]
fn submit_larger_than_the_chain_is_rejected_before_allocating() {
    let mut f = fixture();
    let body = CmdSubmit {
        size: 16 << 20,
        padding: 0,
    };

    assert_eq!(
        f.control(&request(header(CMD_SUBMIT_3D), body, &[0; 8])),
        RESP_ERR_UNSPEC
    );
}

#[test]
fn submit_over_the_size_limit_is_invalid_parameter() {
    let mut f = fixture();
    let body = CmdSubmit {
        size: (16 << 20) + 1,
        padding: 0,
    };

    assert_eq!(
        f.control(&request(header(CMD_SUBMIT_3D), body, &[])),
        RESP_ERR_INVALID_PARAMETER
    );
}

#[test]
fn request_split_into_one_byte_descriptors_is_decoded() {
    let mut f = fixture();
    let body = ResourceCreate2d {
        resource_id: 1,
        format: FORMAT_B8G8R8X8_UNORM,
        width: 2,
        height: 2,
    };
    let req = request(header(CMD_RESOURCE_CREATE_2D), body, &[]);
    let addr = f.guest.alloc(&req, req.len());
    let resp = f.guest.alloc(&[], 24);
    let mut descs: Vec<Desc> = (0..req.len() as u64)
        .map(|i| Desc::Read(addr + i, 1))
        .collect();
    descs.push(Desc::Write(resp, 24));

    let (used, answer, _) = post_hostile(&mut f, &descs, resp);

    assert_eq!(
        (used, answer, f.gpu.resource_count()),
        (vec![(0, 24)], RESP_OK_NODATA, 1)
    );
}

#[test]
fn request_and_response_sharing_a_buffer_is_served() {
    let mut f = fixture();
    let req = bare(CMD_GET_DISPLAY_INFO);
    let addr = f.guest.alloc(&req, 408);

    let (used, answer, _) = post_hostile(
        &mut f,
        &[Desc::Read(addr, 24), Desc::Write(addr, 408)],
        addr,
    );

    assert_eq!((used, answer), (vec![(0, 408)], RESP_OK_DISPLAY_INFO));
}

#[test]
fn host_memory_stays_bounded_when_guest_creates_without_end() {
    let limit = 4 << 20;
    let mut f = fixture_with(GpuConfig {
        limits: Limits {
            max_host_bytes: limit,
            ..Default::default()
        },
        ..Default::default()
    });

    let answers: Vec<u32> = (1..=40)
        .map(|id| f.create(id, FORMAT_B8G8R8X8_UNORM, 256, 256))
        .collect();

    let ok = answers.iter().filter(|a| **a == RESP_OK_NODATA).count();
    assert_eq!(
        (ok, f.gpu.host_bytes_in_use() <= limit, answers[39]),
        (16, true, RESP_ERR_OUT_OF_MEMORY)
    );
}

#[test]
fn bogus_available_index_is_a_queue_error_not_a_hang() {
    let mut f = fixture();
    let mem = f.guest.mem.clone();
    // 0x0000+0x1000: the control queue's available ring; its index jumps past the queue size.
    mem.write_obj(
        1000u16,
        vm_memory::GuestAddress(16 * u64::from(QUEUE_SIZE) + 2),
    )
    .unwrap();

    let result = f
        .gpu
        .process_queue(&mem, &mut f.guest.control.queue, QueueKind::Control);

    assert!(matches!(
        result,
        Err(devices::virtio_gpu::QueueError::BrokenAvailRing)
    ));
}
