//! virtio-gpu commands encoded from the virtio specification (section 5.7.6), byte by byte and
//! independently of the device model's own structures, so a layout mistake on either side
//! shows up as a failed replay.

pub const GET_DISPLAY_INFO: u32 = 0x0100;
pub const RESOURCE_CREATE_2D: u32 = 0x0101;
pub const RESOURCE_UNREF: u32 = 0x0102;
pub const SET_SCANOUT: u32 = 0x0103;
pub const RESOURCE_FLUSH: u32 = 0x0104;
pub const TRANSFER_TO_HOST_2D: u32 = 0x0105;
pub const RESOURCE_ATTACH_BACKING: u32 = 0x0106;
pub const RESOURCE_DETACH_BACKING: u32 = 0x0107;
pub const GET_CAPSET_INFO: u32 = 0x0108;
pub const GET_CAPSET: u32 = 0x0109;
pub const GET_EDID: u32 = 0x010a;
pub const CTX_CREATE: u32 = 0x0200;
pub const CTX_DESTROY: u32 = 0x0201;
pub const CTX_ATTACH_RESOURCE: u32 = 0x0202;
pub const RESOURCE_CREATE_3D: u32 = 0x0204;
pub const TRANSFER_FROM_HOST_3D: u32 = 0x0206;
pub const SUBMIT_3D: u32 = 0x0207;
pub const UPDATE_CURSOR: u32 = 0x0300;
pub const MOVE_CURSOR: u32 = 0x0301;

pub const RESP_OK_NODATA: u32 = 0x1100;
pub const RESP_OK_DISPLAY_INFO: u32 = 0x1101;
pub const RESP_OK_CAPSET_INFO: u32 = 0x1102;
pub const RESP_OK_CAPSET: u32 = 0x1103;
pub const RESP_OK_EDID: u32 = 0x1104;

pub const FLAG_FENCE: u32 = 1;

pub const FORMAT_B8G8R8A8_UNORM: u32 = 1;
pub const FORMAT_B8G8R8X8_UNORM: u32 = 2;

pub const VIRTIO_GPU_F_VIRGL: u64 = 1 << 0;
pub const VIRTIO_GPU_F_EDID: u64 = 1 << 1;

/// Size of `virtio_gpu_ctrl_hdr`.
pub const HEADER: usize = 24;

/// A rectangle `{x, y, width, height}`.
#[derive(Clone, Copy, Debug)]
pub struct Rect(pub u32, pub u32, pub u32, pub u32);

/// Little-endian encoder for one command.
pub struct Cmd(Vec<u8>);

impl Cmd {
    /// A command header; `fence` sets `VIRTIO_GPU_FLAG_FENCE` with that id.
    pub fn new(type_: u32, ctx_id: u32, fence: Option<u64>) -> Cmd {
        let mut cmd = Cmd(Vec::with_capacity(64));
        cmd.u32(type_)
            .u32(if fence.is_some() { FLAG_FENCE } else { 0 })
            .u64(fence.unwrap_or(0))
            .u32(ctx_id)
            .u32(0);
        cmd
    }

    pub fn u32(&mut self, v: u32) -> &mut Cmd {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Cmd {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn rect(&mut self, r: Rect) -> &mut Cmd {
        self.u32(r.0).u32(r.1).u32(r.2).u32(r.3)
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Cmd {
        self.0.extend_from_slice(b);
        self
    }

    pub fn build(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

pub fn get_display_info() -> Vec<u8> {
    Cmd::new(GET_DISPLAY_INFO, 0, None).build()
}

pub fn get_edid(scanout: u32) -> Vec<u8> {
    Cmd::new(GET_EDID, 0, None).u32(scanout).u32(0).build()
}

pub fn resource_create_2d(id: u32, format: u32, width: u32, height: u32) -> Vec<u8> {
    Cmd::new(RESOURCE_CREATE_2D, 0, None)
        .u32(id)
        .u32(format)
        .u32(width)
        .u32(height)
        .build()
}

/// The fixed part of ATTACH_BACKING; the entries follow in their own buffers.
pub fn attach_backing(id: u32, entries: u32) -> Vec<u8> {
    Cmd::new(RESOURCE_ATTACH_BACKING, 0, None)
        .u32(id)
        .u32(entries)
        .build()
}

/// `virtio_gpu_mem_entry` list.
pub fn mem_entries(pages: &[(u64, u32)]) -> Vec<u8> {
    let mut cmd = Cmd(Vec::new());
    for &(addr, len) in pages {
        cmd.u64(addr).u32(len).u32(0);
    }
    cmd.build()
}

pub fn detach_backing(id: u32) -> Vec<u8> {
    Cmd::new(RESOURCE_DETACH_BACKING, 0, None)
        .u32(id)
        .u32(0)
        .build()
}

pub fn set_scanout(scanout: u32, id: u32, r: Rect) -> Vec<u8> {
    Cmd::new(SET_SCANOUT, 0, None)
        .rect(r)
        .u32(scanout)
        .u32(id)
        .build()
}

pub fn transfer_to_host_2d(id: u32, r: Rect, offset: u64) -> Vec<u8> {
    Cmd::new(TRANSFER_TO_HOST_2D, 0, None)
        .rect(r)
        .u64(offset)
        .u32(id)
        .u32(0)
        .build()
}

pub fn resource_flush(id: u32, r: Rect) -> Vec<u8> {
    Cmd::new(RESOURCE_FLUSH, 0, None)
        .rect(r)
        .u32(id)
        .u32(0)
        .build()
}

pub fn resource_unref(id: u32) -> Vec<u8> {
    Cmd::new(RESOURCE_UNREF, 0, None).u32(id).u32(0).build()
}

/// UPDATE_CURSOR or MOVE_CURSOR (`virtio_gpu_update_cursor`).
pub fn cursor(type_: u32, scanout: u32, x: u32, y: u32, id: u32, hot: (u32, u32)) -> Vec<u8> {
    Cmd::new(type_, 0, None)
        .u32(scanout)
        .u32(x)
        .u32(y)
        .u32(0)
        .u32(id)
        .u32(hot.0)
        .u32(hot.1)
        .u32(0)
        .build()
}

pub fn get_capset_info(index: u32) -> Vec<u8> {
    Cmd::new(GET_CAPSET_INFO, 0, None).u32(index).u32(0).build()
}

pub fn get_capset(id: u32, version: u32) -> Vec<u8> {
    Cmd::new(GET_CAPSET, 0, None).u32(id).u32(version).build()
}

pub fn ctx_create(ctx: u32, name: &str) -> Vec<u8> {
    let mut debug_name = [0u8; 64];
    debug_name[..name.len()].copy_from_slice(name.as_bytes());
    Cmd::new(CTX_CREATE, ctx, None)
        .u32(name.len() as u32)
        .u32(0)
        .bytes(&debug_name)
        .build()
}

/// RESOURCE_CREATE_3D of a 2D texture render target (PIPE_TEXTURE_2D = 2).
pub fn resource_create_3d(id: u32, format: u32, bind: u32, width: u32, height: u32) -> Vec<u8> {
    Cmd::new(RESOURCE_CREATE_3D, 0, None)
        .u32(id)
        .u32(2)
        .u32(format)
        .u32(bind)
        .u32(width)
        .u32(height)
        .u32(1)
        .u32(1)
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(0)
        .build()
}

pub fn ctx_attach_resource(ctx: u32, id: u32) -> Vec<u8> {
    Cmd::new(CTX_ATTACH_RESOURCE, ctx, None)
        .u32(id)
        .u32(0)
        .build()
}

pub fn submit_3d(ctx: u32, fence: Option<u64>, stream: &[u8]) -> Vec<u8> {
    Cmd::new(SUBMIT_3D, ctx, fence)
        .u32(stream.len() as u32)
        .u32(0)
        .bytes(stream)
        .build()
}

/// TRANSFER_FROM_HOST_3D of a `width` x `height` box at the origin, level 0.
pub fn transfer_from_host_3d(
    ctx: u32,
    id: u32,
    fence: Option<u64>,
    (width, height): (u32, u32),
    stride: u32,
) -> Vec<u8> {
    Cmd::new(TRANSFER_FROM_HOST_3D, ctx, fence)
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(width)
        .u32(height)
        .u32(1)
        .u64(0)
        .u32(id)
        .u32(0)
        .u32(stride)
        .u32(0)
        .build()
}

/// The response type of a response buffer.
pub fn response_type(response: &[u8]) -> u32 {
    u32::from_le_bytes(response[0..4].try_into().unwrap())
}

/// Little-endian u32 at `offset`.
pub fn le32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}
