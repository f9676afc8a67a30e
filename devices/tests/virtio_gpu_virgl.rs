//! The virtio-gpu device against the real virglrenderer (headless EGL; llvmpipe here).
//!
//! virglrenderer initialises once per process and its GL contexts belong to the thread that
//! made them, so this binary has its own small runner (`harness = false`): one renderer, on
//! the main thread, shared by named cases that run in order, the device reset between them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use devices::virtio_gpu::protocol::*;
use devices::virtio_gpu::virgl_stream::{self as vs, VertexBuffer, VertexElement, VirglStream};
use devices::virtio_gpu::{
    Backend, BackendConfig, GpuConfig, Limits, QueueKind, RendererChoice, RendererKind, VirtioGpu,
};
use vm_memory::ByteValued;

const W: u32 = 64;
const H: u32 = 64;
const CTX: u32 = 1;
const TARGET: u32 = 10;

struct Fixture {
    guest: Guest,
    gpu: VirtioGpu,
}

impl Fixture {
    fn control(&mut self, request: &[u8]) -> u32 {
        self.guest
            .send_for_type(&mut self.gpu, QueueKind::Control, request)
    }

    fn ctx_create(&mut self, ctx_id: u32, capset: u32) -> u32 {
        let mut hdr = header(CMD_CTX_CREATE);
        hdr.ctx_id = ctx_id;
        let mut body = CtxCreate {
            nlen: 4,
            context_init: capset,
            ..Default::default()
        };
        body.debug_name[..4].copy_from_slice(b"test");
        self.control(&request(hdr, body, &[]))
    }

    fn create_3d(
        &mut self,
        id: u32,
        target: u32,
        format: u32,
        bind: u32,
        width: u32,
        height: u32,
    ) -> u32 {
        let body = ResourceCreate3d {
            resource_id: id,
            target,
            format,
            bind,
            width,
            height,
            depth: 1,
            array_size: 1,
            ..Default::default()
        };
        self.control(&request(header(CMD_RESOURCE_CREATE_3D), body, &[]))
    }

    /// Attaches a zeroed guest buffer of `len` bytes to resource `id`; returns its address.
    fn attach(&mut self, id: u32, len: usize) -> u64 {
        let addr = self.guest.alloc(&[], len);
        let entry = MemEntry {
            addr,
            length: len as u32,
            padding: 0,
        };
        let body = ResourceAttachBacking {
            resource_id: id,
            nr_entries: 1,
        };
        assert_eq!(
            self.control(&request(
                header(CMD_RESOURCE_ATTACH_BACKING),
                body,
                entry.as_slice()
            )),
            RESP_OK_NODATA
        );
        addr
    }

    fn ctx_attach(&mut self, ctx_id: u32, id: u32) -> u32 {
        let mut hdr = header(CMD_CTX_ATTACH_RESOURCE);
        hdr.ctx_id = ctx_id;
        let body = ResourceId {
            resource_id: id,
            padding: 0,
        };
        self.control(&request(hdr, body, &[]))
    }

    fn submit_request(
        ctx_id: u32,
        stream: &[u8],
        flags: u32,
        fence_id: u64,
        ring_idx: u8,
    ) -> Vec<u8> {
        let mut hdr = header(CMD_SUBMIT_3D);
        hdr.ctx_id = ctx_id;
        hdr.flags = flags;
        hdr.fence_id = fence_id;
        hdr.ring_idx = ring_idx;
        let body = CmdSubmit {
            size: stream.len() as u32,
            padding: 0,
        };
        request(hdr, body, stream)
    }

    fn submit(&mut self, ctx_id: u32, stream: &VirglStream) -> u32 {
        self.control(&Self::submit_request(ctx_id, &stream.to_bytes(), 0, 0, 0))
    }

    /// Reads resource `id` back into its backing at `addr` and returns pixel (x, y).
    fn read_back(&mut self, id: u32, addr: u64, x: u32, y: u32) -> [u8; 4] {
        let mut hdr = header(CMD_TRANSFER_FROM_HOST_3D);
        hdr.ctx_id = CTX;
        let body = TransferHost3d {
            box_: Box3d {
                x: 0,
                y: 0,
                z: 0,
                w: W,
                h: H,
                d: 1,
            },
            offset: 0,
            resource_id: id,
            level: 0,
            stride: W * 4,
            layer_stride: 0,
        };
        assert_eq!(self.control(&request(hdr, body, &[])), RESP_OK_NODATA);
        let at = addr + u64::from((y * W + x) * 4);
        let bytes = self.guest.read(at, 4);
        [bytes[0], bytes[1], bytes[2], bytes[3]]
    }

    /// A VIRGL2 context with a `W`x`H` B8G8R8A8 render target attached to it; returns the
    /// target's backing address.
    fn context_with_target(&mut self) -> u64 {
        assert_eq!(self.ctx_create(CTX, CAPSET_VIRGL2), RESP_OK_NODATA);
        let bind = vs::BIND_RENDER_TARGET | vs::BIND_SAMPLER_VIEW | vs::BIND_SCANOUT;
        assert_eq!(
            self.create_3d(
                TARGET,
                vs::PIPE_TEXTURE_2D,
                vs::FORMAT_B8G8R8A8_UNORM,
                bind,
                W,
                H
            ),
            RESP_OK_NODATA
        );
        let addr = self.attach(TARGET, (W * H * 4) as usize);
        assert_eq!(self.ctx_attach(CTX, TARGET), RESP_OK_NODATA);
        addr
    }

    /// Processes fences until `count` chains have come back on the control queue.
    fn wait_used(&mut self, count: usize) -> Vec<(u32, u32)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mem = self.guest.mem.clone();
        let mut used = self.guest.control.take_used(&mem);
        while used.len() < count && Instant::now() < deadline {
            wait_readable(self.gpu.fence_event(), 100);
            self.gpu
                .process_fences(&mem, &mut self.guest.control.queue)
                .unwrap();
            used.extend(self.guest.control.take_used(&mem));
        }
        used
    }
}

fn wait_readable(fd: &impl std::os::fd::AsRawFd, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call and nfds is 1.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
}

fn clear_stream(rgba: [f32; 4]) -> VirglStream {
    let mut stream = VirglStream::new();
    stream
        .create_surface(1, TARGET, vs::FORMAT_B8G8R8A8_UNORM, 0, 0)
        .set_framebuffer_state(0, &[1])
        .clear(vs::PIPE_CLEAR_COLOR0, rgba, 0.0, 0);
    stream
}

fn virgl_backend_reports_virgl_capsets_and_features(f: &mut Fixture) {
    let info = f.gpu.backend_info().clone();
    let ids: Vec<u32> = info.capsets.iter().map(|c| c.id).collect();

    let features = f.gpu.device_features();

    assert_eq!(
        (info.kind, ids),
        (RendererKind::Virgl, vec![CAPSET_VIRGL, CAPSET_VIRGL2])
    );
    assert_eq!(features & 0b11111, 0b10111);
    assert_eq!(f.gpu.config_space().num_capsets, 2);
}

fn get_capset_returns_as_many_bytes_as_capset_info_says(f: &mut Fixture) {
    let info_body = GetCapsetInfo {
        capset_index: 1,
        padding: 0,
    };
    let info: RespCapsetInfo = read_struct(&f.guest.send(
        &mut f.gpu,
        QueueKind::Control,
        &request(header(CMD_GET_CAPSET_INFO), info_body, &[]),
        40,
    ));
    let body = GetCapset {
        capset_id: info.capset_id,
        capset_version: info.capset_max_version,
    };

    let resp = f.guest.send(
        &mut f.gpu,
        QueueKind::Control,
        &request(header(CMD_GET_CAPSET), body, &[]),
        HEADER_SIZE + info.capset_max_size as usize,
    );

    assert_eq!(
        (info.capset_id, response_type(&resp), resp.len()),
        (
            CAPSET_VIRGL2,
            RESP_OK_CAPSET,
            HEADER_SIZE + info.capset_max_size as usize
        )
    );
}

fn get_capset_rejects_unknown_capset(f: &mut Fixture) {
    let body = GetCapset {
        capset_id: 9,
        capset_version: 0,
    };

    assert_eq!(
        f.control(&request(header(CMD_GET_CAPSET), body, &[])),
        RESP_ERR_INVALID_PARAMETER
    );
}

fn ctx_create_rejects_zero_and_reused_ids(f: &mut Fixture) {
    let zero = f.ctx_create(0, CAPSET_VIRGL2);
    let first = f.ctx_create(2, CAPSET_VIRGL2);
    let again = f.ctx_create(2, CAPSET_VIRGL2);

    assert_eq!(
        (zero, first, again),
        (
            RESP_ERR_INVALID_CONTEXT_ID,
            RESP_OK_NODATA,
            RESP_ERR_INVALID_CONTEXT_ID
        )
    );
}

fn ctx_create_rejects_capset_not_offered(f: &mut Fixture) {
    assert_eq!(f.ctx_create(3, 4), RESP_ERR_INVALID_PARAMETER);
}

fn submit_to_unknown_context_is_invalid_context_id(f: &mut Fixture) {
    let mut stream = VirglStream::new();
    stream.nop();

    assert_eq!(f.submit(42, &stream), RESP_ERR_INVALID_CONTEXT_ID);
}

fn clear_is_read_back_through_transfer_from_host(f: &mut Fixture) {
    let addr = f.context_with_target();

    let resp = f.submit(CTX, &clear_stream([1.0, 0.0, 0.0, 1.0]));

    // B8G8R8A8: red is (0, 0, 255, 255) in memory.
    assert_eq!(
        (resp, f.read_back(TARGET, addr, 5, 5)),
        (RESP_OK_NODATA, [0, 0, 255, 255])
    );
}

fn cleared_target_is_the_scanout_image(f: &mut Fixture) {
    f.context_with_target();
    f.submit(CTX, &clear_stream([0.0, 0.0, 1.0, 1.0]));
    let body = SetScanout {
        r: Rect {
            x: 0,
            y: 0,
            width: W,
            height: H,
        },
        scanout_id: 0,
        resource_id: TARGET,
    };
    assert_eq!(
        f.control(&request(header(CMD_SET_SCANOUT), body, &[])),
        RESP_OK_NODATA
    );

    let image = f.gpu.scanout_pixels(0).unwrap();

    assert_eq!(
        (image.width, &image.pixels[0..4]),
        (W, &[255u8, 0, 0, 255][..])
    );
}

fn global_fences_return_in_submission_order(f: &mut Fixture) {
    f.context_with_target();
    let stream = clear_stream([0.0, 1.0, 0.0, 1.0]).to_bytes();
    let resps: Vec<u64> = (1..=4)
        .map(|fence| {
            let req = Fixture::submit_request(CTX, &stream, FLAG_FENCE, 100 + fence, 0);
            f.guest.post_request(QueueKind::Control, &req, HEADER_SIZE)
        })
        .collect();
    f.guest.process(&mut f.gpu, QueueKind::Control);

    let used = f.wait_used(4);

    let fence_ids: Vec<u64> = resps
        .iter()
        .map(|a| read_struct::<CtrlHeader>(&f.guest.read(*a, 24)).fence_id)
        .collect();
    let heads: Vec<u32> = used.iter().map(|(head, _)| *head).collect();
    let mut sorted = heads.clone();
    sorted.sort_unstable();
    assert_eq!(
        (heads == sorted, used.len(), fence_ids),
        (true, 4, vec![101, 102, 103, 104])
    );
    assert_eq!(f.gpu.pending_fences(), 0);
}

fn fenced_commands_past_the_cap_wait_then_all_complete_in_order(f: &mut Fixture) {
    f.context_with_target();
    let cap = Limits::default().max_fences_in_flight;
    let stream = clear_stream([0.0, 1.0, 0.0, 1.0]).to_bytes();
    for fence in 1..=cap as u64 + 8 {
        let req = Fixture::submit_request(CTX, &stream, FLAG_FENCE, fence, 0);
        f.guest.post_request(QueueKind::Control, &req, HEADER_SIZE);
    }
    f.guest.process(&mut f.gpu, QueueKind::Control);
    let pending_after_one_pass = f.gpu.pending_fences();

    let used = f.wait_used(cap + 8);

    let heads: Vec<u32> = used.iter().map(|(head, _)| *head).collect();
    let mut sorted = heads.clone();
    sorted.sort_unstable();
    assert_eq!(
        (
            pending_after_one_pass <= cap,
            used.len(),
            heads == sorted,
            f.gpu.pending_fences()
        ),
        (true, cap + 8, true, 0)
    );
}

fn ring_fences_return_in_order(f: &mut Fixture) {
    f.context_with_target();
    let stream = clear_stream([0.0, 1.0, 0.0, 1.0]).to_bytes();
    for fence in 1..=3 {
        let req = Fixture::submit_request(CTX, &stream, FLAG_FENCE | FLAG_INFO_RING_IDX, fence, 0);
        f.guest.post_request(QueueKind::Control, &req, HEADER_SIZE);
    }
    f.guest.process(&mut f.gpu, QueueKind::Control);

    let used = f.wait_used(3);

    let heads: Vec<u32> = used.iter().map(|(head, _)| *head).collect();
    let mut sorted = heads.clone();
    sorted.sort_unstable();
    assert_eq!(
        (heads == sorted, used.len(), f.gpu.pending_fences()),
        (true, 3, 0)
    );
}

fn fence_on_a_ring_the_context_lacks_is_answered_at_once(f: &mut Fixture) {
    f.context_with_target();
    let mut stream = VirglStream::new();
    stream.nop();
    let req = Fixture::submit_request(
        CTX,
        &stream.to_bytes(),
        FLAG_FENCE | FLAG_INFO_RING_IDX,
        1,
        1,
    );

    let resp = f
        .guest
        .send(&mut f.gpu, QueueKind::Control, &req, HEADER_SIZE);

    assert_eq!(
        (response_type(&resp), f.gpu.pending_fences()),
        (RESP_OK_NODATA, 0)
    );
}

fn garbage_command_stream_is_an_error_and_device_keeps_serving(f: &mut Fixture) {
    f.context_with_target();
    let mut stream = VirglStream::new();
    stream.raw(200, 77, &[0xdead_beef; 16]);

    let garbage = f.submit(CTX, &stream);
    let clear = f.submit(CTX, &clear_stream([1.0, 1.0, 1.0, 1.0]));

    assert_eq!((garbage, clear), (RESP_ERR_UNSPEC, RESP_OK_NODATA));
}

fn empty_submit_is_accepted(f: &mut Fixture) {
    f.context_with_target();

    assert_eq!(f.submit(CTX, &VirglStream::new()), RESP_OK_NODATA);
}

fn resource_create_3d_over_budget_is_out_of_memory(f: &mut Fixture) {
    let resp = f.create_3d(
        20,
        vs::PIPE_TEXTURE_2D,
        vs::FORMAT_R32G32B32A32_FLOAT,
        vs::BIND_RENDER_TARGET,
        16384,
        16384,
    );

    assert_eq!((resp, f.gpu.resource_count()), (RESP_ERR_OUT_OF_MEMORY, 0));
}

fn buffer_larger_than_a_texture_edge_is_created(f: &mut Fixture) {
    // Mesa's virgl driver makes vertex and staging buffers of a megabyte and more; a buffer's
    // width is its size in bytes.
    let resp = f.create_3d(
        21,
        vs::PIPE_BUFFER,
        vs::FORMAT_R8_UNORM,
        vs::BIND_VERTEX_BUFFER,
        1 << 20,
        1,
    );

    assert_eq!(resp, RESP_OK_NODATA);
}

fn buffer_over_budget_is_out_of_memory(f: &mut Fixture) {
    let resp = f.create_3d(
        22,
        vs::PIPE_BUFFER,
        vs::FORMAT_R8_UNORM,
        vs::BIND_VERTEX_BUFFER,
        u32::MAX,
        1,
    );

    assert_eq!(resp, RESP_ERR_OUT_OF_MEMORY);
}

fn ctx_destroy_of_unknown_context_is_invalid_context_id(f: &mut Fixture) {
    let mut hdr = header(CMD_CTX_DESTROY);
    hdr.ctx_id = 9;

    assert_eq!(f.control(hdr.as_slice()), RESP_ERR_INVALID_CONTEXT_ID);
}

const TRIANGLE_VS: &str = "VERT
DCL IN[0]
DCL OUT[0], POSITION
  0: MOV OUT[0], IN[0]
  1: END
";

const TRIANGLE_FS: &str = "FRAG
PROPERTY FS_COLOR0_WRITES_ALL_CBUFS 1
DCL OUT[0], COLOR
IMM[0] FLT32 {    0.0000,     1.0000,     0.0000,     1.0000}
  0: MOV OUT[0], IMM[0]
  1: END
";

fn triangle_with_tgsi_shaders_is_drawn(f: &mut Fixture) {
    let addr = f.context_with_target();
    const VBO: u32 = 11;
    // A triangle around the centre, well away from the corners, in clip space.
    let vertices: [f32; 12] = [
        -0.5, -0.5, 0.0, 1.0, 0.5, -0.5, 0.0, 1.0, 0.0, 0.5, 0.0, 1.0,
    ];
    let bytes: Vec<u8> = vertices.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        f.create_3d(
            VBO,
            vs::PIPE_BUFFER,
            vs::FORMAT_R8_UNORM,
            vs::BIND_VERTEX_BUFFER,
            bytes.len() as u32,
            1
        ),
        RESP_OK_NODATA
    );
    f.attach(VBO, bytes.len());
    assert_eq!(f.ctx_attach(CTX, VBO), RESP_OK_NODATA);
    let mut stream = clear_stream([0.0, 0.0, 0.0, 1.0]);
    stream
        .buffer_inline_write(VBO, 0, &bytes)
        .create_blend_opaque(2)
        .bind_object(vs::OBJECT_BLEND, 2)
        .create_dsa_disabled(3)
        .bind_object(vs::OBJECT_DSA, 3)
        .create_rasterizer_default(4)
        .bind_object(vs::OBJECT_RASTERIZER, 4)
        .create_shader(5, vs::SHADER_VERTEX, TRIANGLE_VS)
        .bind_shader(5, vs::SHADER_VERTEX)
        .create_shader(6, vs::SHADER_FRAGMENT, TRIANGLE_FS)
        .bind_shader(6, vs::SHADER_FRAGMENT)
        .create_vertex_elements(
            7,
            &[VertexElement {
                src_offset: 0,
                instance_divisor: 0,
                vertex_buffer_index: 0,
                src_format: vs::FORMAT_R32G32B32A32_FLOAT,
            }],
        )
        .bind_object(vs::OBJECT_VERTEX_ELEMENTS, 7)
        .set_vertex_buffers(&[VertexBuffer {
            stride: 16,
            offset: 0,
            resource_id: VBO,
        }])
        .set_viewport(W as f32, H as f32)
        .draw_arrays(vs::PIPE_PRIM_TRIANGLES, 0, 3);

    let resp = f.submit(CTX, &stream);

    let centre = f.read_back(TARGET, addr, W / 2, H / 2);
    let corner = f.read_back(TARGET, addr, 0, 0);
    assert_eq!(
        (resp, centre, corner),
        (RESP_OK_NODATA, [0, 255, 0, 255], [0, 0, 0, 255])
    );
}

type Case = (&'static str, fn(&mut Fixture));

fn main() {
    let cases: &[Case] = &[
        (
            "virgl_backend_reports_virgl_capsets_and_features",
            virgl_backend_reports_virgl_capsets_and_features,
        ),
        (
            "buffer_larger_than_a_texture_edge_is_created",
            buffer_larger_than_a_texture_edge_is_created,
        ),
        (
            "buffer_over_budget_is_out_of_memory",
            buffer_over_budget_is_out_of_memory,
        ),
        (
            "get_capset_returns_as_many_bytes_as_capset_info_says",
            get_capset_returns_as_many_bytes_as_capset_info_says,
        ),
        (
            "get_capset_rejects_unknown_capset",
            get_capset_rejects_unknown_capset,
        ),
        (
            "ctx_create_rejects_zero_and_reused_ids",
            ctx_create_rejects_zero_and_reused_ids,
        ),
        (
            "ctx_create_rejects_capset_not_offered",
            ctx_create_rejects_capset_not_offered,
        ),
        (
            "submit_to_unknown_context_is_invalid_context_id",
            submit_to_unknown_context_is_invalid_context_id,
        ),
        (
            "clear_is_read_back_through_transfer_from_host",
            clear_is_read_back_through_transfer_from_host,
        ),
        (
            "cleared_target_is_the_scanout_image",
            cleared_target_is_the_scanout_image,
        ),
        (
            "global_fences_return_in_submission_order",
            global_fences_return_in_submission_order,
        ),
        (
            "fenced_commands_past_the_cap_wait_then_all_complete_in_order",
            fenced_commands_past_the_cap_wait_then_all_complete_in_order,
        ),
        ("ring_fences_return_in_order", ring_fences_return_in_order),
        (
            "fence_on_a_ring_the_context_lacks_is_answered_at_once",
            fence_on_a_ring_the_context_lacks_is_answered_at_once,
        ),
        (
            "garbage_command_stream_is_an_error_and_device_keeps_serving",
            garbage_command_stream_is_an_error_and_device_keeps_serving,
        ),
        ("empty_submit_is_accepted", empty_submit_is_accepted),
        (
            "resource_create_3d_over_budget_is_out_of_memory",
            resource_create_3d_over_budget_is_out_of_memory,
        ),
        (
            "ctx_destroy_of_unknown_context_is_invalid_context_id",
            ctx_destroy_of_unknown_context_is_invalid_context_id,
        ),
        (
            "triangle_with_tgsi_shaders_is_drawn",
            triangle_with_tgsi_shaders_is_drawn,
        ),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let backend = Backend::init(&BackendConfig {
        renderer: RendererChoice::Virgl,
        surfaceless: None,
    })
    .expect("virglrenderer must come up for these tests");
    let mut fixture = Fixture {
        guest: Guest::new(),
        gpu: VirtioGpu::new(backend, GpuConfig::default()).unwrap(),
    };
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in cases {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        fixture.gpu.reset();
        fixture.guest = Guest::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&mut fixture)));
        println!(
            "test {name} ... {}",
            if result.is_ok() { "ok" } else { "FAILED" }
        );
        if result.is_err() {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
