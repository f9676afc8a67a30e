//! The virtio-gpu wire format (virtio 1.2/1.3 §5.7.6) and the decoding of requests.
//!
//! Every structure here is the exact little-endian layout the driver writes. Decoding copies the
//! bytes into these plain structures after checking the length, so no input can make it panic or
//! read out of bounds; variable-length parts (backing entries, command buffers) are sized from
//! the fixed part and checked against the configured caps before anything is allocated.

use thiserror::Error;
use vm_memory::ByteValued;

// The wire is little-endian and the structures below are read by copying bytes; this device
// model only builds for little-endian hosts.
const _: () = assert!(cfg!(target_endian = "little"));

use virtio_bindings::virtio_gpu as vb;

/// Request types (`virtio_gpu_ctrl_type`).
pub const CMD_GET_DISPLAY_INFO: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_GET_DISPLAY_INFO;
pub const CMD_RESOURCE_CREATE_2D: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_CREATE_2D;
pub const CMD_RESOURCE_UNREF: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_UNREF;
pub const CMD_SET_SCANOUT: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_SET_SCANOUT;
pub const CMD_RESOURCE_FLUSH: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_FLUSH;
pub const CMD_TRANSFER_TO_HOST_2D: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D;
pub const CMD_RESOURCE_ATTACH_BACKING: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING;
pub const CMD_RESOURCE_DETACH_BACKING: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING;
pub const CMD_GET_CAPSET_INFO: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_GET_CAPSET_INFO;
pub const CMD_GET_CAPSET: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_GET_CAPSET;
pub const CMD_GET_EDID: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_GET_EDID;
pub const CMD_RESOURCE_ASSIGN_UUID: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID;
pub const CMD_RESOURCE_CREATE_BLOB: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB;
pub const CMD_SET_SCANOUT_BLOB: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_SET_SCANOUT_BLOB;
pub const CMD_CTX_CREATE: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_CTX_CREATE;
pub const CMD_CTX_DESTROY: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_CTX_DESTROY;
pub const CMD_CTX_ATTACH_RESOURCE: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE;
pub const CMD_CTX_DETACH_RESOURCE: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE;
pub const CMD_RESOURCE_CREATE_3D: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_CREATE_3D;
pub const CMD_TRANSFER_TO_HOST_3D: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D;
pub const CMD_TRANSFER_FROM_HOST_3D: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D;
pub const CMD_SUBMIT_3D: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_SUBMIT_3D;
pub const CMD_RESOURCE_MAP_BLOB: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB;
pub const CMD_RESOURCE_UNMAP_BLOB: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB;
pub const CMD_UPDATE_CURSOR: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_UPDATE_CURSOR;
pub const CMD_MOVE_CURSOR: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_MOVE_CURSOR;

/// Response types.
pub const RESP_OK_NODATA: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_NODATA;
pub const RESP_OK_DISPLAY_INFO: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
pub const RESP_OK_CAPSET_INFO: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_CAPSET_INFO;
pub const RESP_OK_CAPSET: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_CAPSET;
pub const RESP_OK_EDID: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_EDID;
pub const RESP_OK_RESOURCE_UUID: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_RESOURCE_UUID;
pub const RESP_OK_MAP_INFO: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_MAP_INFO;
pub const RESP_ERR_UNSPEC: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_UNSPEC;
pub const RESP_ERR_OUT_OF_MEMORY: u32 = vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
pub const RESP_ERR_INVALID_SCANOUT_ID: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
pub const RESP_ERR_INVALID_RESOURCE_ID: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
pub const RESP_ERR_INVALID_CONTEXT_ID: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID;
pub const RESP_ERR_INVALID_PARAMETER: u32 =
    vb::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;

/// Header flag: the driver wants a fence for this request.
pub const FLAG_FENCE: u32 = vb::VIRTIO_GPU_FLAG_FENCE;
/// Header flag: the fence is on the context's timeline `ring_idx`, not the global one.
pub const FLAG_INFO_RING_IDX: u32 = vb::VIRTIO_GPU_FLAG_INFO_RING_IDX;

/// Feature bits.
pub const VIRTIO_GPU_F_VIRGL: u32 = vb::VIRTIO_GPU_F_VIRGL;
pub const VIRTIO_GPU_F_EDID: u32 = vb::VIRTIO_GPU_F_EDID;
pub const VIRTIO_GPU_F_RESOURCE_UUID: u32 = vb::VIRTIO_GPU_F_RESOURCE_UUID;
pub const VIRTIO_GPU_F_RESOURCE_BLOB: u32 = vb::VIRTIO_GPU_F_RESOURCE_BLOB;
pub const VIRTIO_GPU_F_CONTEXT_INIT: u32 = vb::VIRTIO_GPU_F_CONTEXT_INIT;

/// The config-space event raised when the display configuration changed.
pub const EVENT_DISPLAY: u32 = vb::VIRTIO_GPU_EVENT_DISPLAY;
/// The most scanouts the protocol can describe.
pub const MAX_SCANOUTS: usize = vb::VIRTIO_GPU_MAX_SCANOUTS as usize;
/// Capability set ids.
pub const CAPSET_VIRGL: u32 = vb::VIRTIO_GPU_CAPSET_VIRGL;
pub const CAPSET_VIRGL2: u32 = vb::VIRTIO_GPU_CAPSET_VIRGL2;
/// `context_init` bits that carry the capset id.
pub const CONTEXT_INIT_CAPSET_ID_MASK: u32 = vb::VIRTIO_GPU_CONTEXT_INIT_CAPSET_ID_MASK;
/// Blob memory types.
pub const BLOB_MEM_GUEST: u32 = vb::VIRTIO_GPU_BLOB_MEM_GUEST;
pub const BLOB_MEM_HOST3D: u32 = vb::VIRTIO_GPU_BLOB_MEM_HOST3D;
pub const BLOB_MEM_HOST3D_GUEST: u32 = vb::VIRTIO_GPU_BLOB_MEM_HOST3D_GUEST;

/// The 2D pixel formats (`virtio_gpu_formats`); all are 4 bytes per pixel.
pub const FORMAT_B8G8R8A8_UNORM: u32 = vb::virtio_gpu_formats_VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM;
pub const FORMAT_B8G8R8X8_UNORM: u32 = vb::virtio_gpu_formats_VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM;
pub const FORMAT_A8R8G8B8_UNORM: u32 = vb::virtio_gpu_formats_VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM;
pub const FORMAT_X8R8G8B8_UNORM: u32 = vb::virtio_gpu_formats_VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM;
pub const FORMAT_R8G8B8A8_UNORM: u32 = vb::virtio_gpu_formats_VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM;
pub const FORMAT_X8B8G8R8_UNORM: u32 = vb::virtio_gpu_formats_VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM;
pub const FORMAT_A8B8G8R8_UNORM: u32 = vb::virtio_gpu_formats_VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM;
pub const FORMAT_R8G8B8X8_UNORM: u32 = vb::virtio_gpu_formats_VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM;

/// Size of a cursor image on the wire: 64x64 pixels.
pub const CURSOR_SIZE: u32 = 64;
/// Size of the EDID blob in `RESP_OK_EDID`.
pub const EDID_BLOB_SIZE: usize = 1024;
/// Size of the debug name in `CTX_CREATE`.
pub const CTX_DEBUG_NAME_SIZE: usize = 64;

macro_rules! wire_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty,)* }
        impl Default for $name {
            fn default() -> Self {
                // SAFETY: all-zero bytes are a valid value of this plain-integer struct
                // (see the ByteValued impl below).
                unsafe { std::mem::zeroed() }
            }
        }
        // SAFETY: the struct is repr(C), made only of integers and integer arrays laid out
        // without implicit padding (checked by the size assertions below), so every byte
        // pattern is a valid value.
        unsafe impl ByteValued for $name {}
    };
}

wire_struct! {
    /// `virtio_gpu_ctrl_hdr`: the header of every request and response.
    pub struct CtrlHeader {
        pub type_: u32,
        pub flags: u32,
        pub fence_id: u64,
        pub ctx_id: u32,
        pub ring_idx: u8,
        pub padding: [u8; 3],
    }
}

wire_struct! {
    /// `virtio_gpu_rect`.
    pub struct Rect {
        pub x: u32,
        pub y: u32,
        pub width: u32,
        pub height: u32,
    }
}

wire_struct! {
    /// One `pmodes` entry of `RESP_OK_DISPLAY_INFO`.
    pub struct DisplayOne {
        pub r: Rect,
        pub enabled: u32,
        pub flags: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_resp_display_info`.
    pub struct RespDisplayInfo {
        pub hdr: CtrlHeader,
        pub pmodes: [DisplayOne; MAX_SCANOUTS],
    }
}

wire_struct! {
    /// `virtio_gpu_resource_create_2d`.
    pub struct ResourceCreate2d {
        pub resource_id: u32,
        pub format: u32,
        pub width: u32,
        pub height: u32,
    }
}

wire_struct! {
    /// The body shared by `RESOURCE_UNREF`, `RESOURCE_DETACH_BACKING`, `RESOURCE_ASSIGN_UUID`,
    /// `RESOURCE_UNMAP_BLOB`, `CTX_ATTACH_RESOURCE` and `CTX_DETACH_RESOURCE`.
    pub struct ResourceId {
        pub resource_id: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_set_scanout`.
    pub struct SetScanout {
        pub r: Rect,
        pub scanout_id: u32,
        pub resource_id: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_resource_flush`.
    pub struct ResourceFlush {
        pub r: Rect,
        pub resource_id: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_transfer_to_host_2d`.
    pub struct TransferToHost2d {
        pub r: Rect,
        pub offset: u64,
        pub resource_id: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_resource_attach_backing` (followed by `nr_entries` [`MemEntry`]s).
    pub struct ResourceAttachBacking {
        pub resource_id: u32,
        pub nr_entries: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_mem_entry`: one guest-physical range of a resource's backing.
    pub struct MemEntry {
        pub addr: u64,
        pub length: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_get_capset_info`.
    pub struct GetCapsetInfo {
        pub capset_index: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_resp_capset_info`.
    pub struct RespCapsetInfo {
        pub hdr: CtrlHeader,
        pub capset_id: u32,
        pub capset_max_version: u32,
        pub capset_max_size: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_get_capset`.
    pub struct GetCapset {
        pub capset_id: u32,
        pub capset_version: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_cmd_get_edid`.
    pub struct GetEdid {
        pub scanout: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_resp_edid`.
    pub struct RespEdid {
        pub hdr: CtrlHeader,
        pub size: u32,
        pub padding: u32,
        pub edid: [u8; EDID_BLOB_SIZE],
    }
}

wire_struct! {
    /// `virtio_gpu_resp_resource_uuid`.
    pub struct RespResourceUuid {
        pub hdr: CtrlHeader,
        pub uuid: [u8; 16],
    }
}

wire_struct! {
    /// `virtio_gpu_resource_create_blob` (followed by `nr_entries` [`MemEntry`]s).
    pub struct ResourceCreateBlob {
        pub resource_id: u32,
        pub blob_mem: u32,
        pub blob_flags: u32,
        pub nr_entries: u32,
        pub blob_id: u64,
        pub size: u64,
    }
}

wire_struct! {
    /// `virtio_gpu_set_scanout_blob`.
    pub struct SetScanoutBlob {
        pub r: Rect,
        pub scanout_id: u32,
        pub resource_id: u32,
        pub width: u32,
        pub height: u32,
        pub format: u32,
        pub padding: u32,
        pub strides: [u32; 4],
        pub offsets: [u32; 4],
    }
}

wire_struct! {
    /// `virtio_gpu_ctx_create`.
    pub struct CtxCreate {
        pub nlen: u32,
        pub context_init: u32,
        pub debug_name: [u8; CTX_DEBUG_NAME_SIZE],
    }
}

wire_struct! {
    /// `virtio_gpu_resource_create_3d`.
    pub struct ResourceCreate3d {
        pub resource_id: u32,
        pub target: u32,
        pub format: u32,
        pub bind: u32,
        pub width: u32,
        pub height: u32,
        pub depth: u32,
        pub array_size: u32,
        pub last_level: u32,
        pub nr_samples: u32,
        pub flags: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_box`.
    pub struct Box3d {
        pub x: u32,
        pub y: u32,
        pub z: u32,
        pub w: u32,
        pub h: u32,
        pub d: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_transfer_host_3d`, used by both 3D transfer directions.
    pub struct TransferHost3d {
        pub box_: Box3d,
        pub offset: u64,
        pub resource_id: u32,
        pub level: u32,
        pub stride: u32,
        pub layer_stride: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_cmd_submit` (followed by `size` bytes of command buffer).
    pub struct CmdSubmit {
        pub size: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_resource_map_blob`.
    pub struct ResourceMapBlob {
        pub resource_id: u32,
        pub padding: u32,
        pub offset: u64,
    }
}

wire_struct! {
    /// `virtio_gpu_resp_map_info`.
    pub struct RespMapInfo {
        pub hdr: CtrlHeader,
        pub map_info: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_cursor_pos`.
    pub struct CursorPos {
        pub scanout_id: u32,
        pub x: u32,
        pub y: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// `virtio_gpu_update_cursor`, used by both `UPDATE_CURSOR` and `MOVE_CURSOR`.
    pub struct UpdateCursor {
        pub pos: CursorPos,
        pub resource_id: u32,
        pub hot_x: u32,
        pub hot_y: u32,
        pub padding: u32,
    }
}

wire_struct! {
    /// The device configuration space (`virtio_gpu_config`).
    pub struct ConfigSpace {
        pub events_read: u32,
        pub events_clear: u32,
        pub num_scanouts: u32,
        pub num_capsets: u32,
    }
}

const _: () = {
    use std::mem::size_of;
    assert!(size_of::<CtrlHeader>() == 24);
    assert!(size_of::<Rect>() == 16);
    assert!(size_of::<DisplayOne>() == 24);
    assert!(size_of::<RespDisplayInfo>() == 24 + 24 * MAX_SCANOUTS);
    assert!(size_of::<ResourceCreate2d>() == 16);
    assert!(size_of::<ResourceId>() == 8);
    assert!(size_of::<SetScanout>() == 24);
    assert!(size_of::<ResourceFlush>() == 24);
    assert!(size_of::<TransferToHost2d>() == 32);
    assert!(size_of::<ResourceAttachBacking>() == 8);
    assert!(size_of::<MemEntry>() == 16);
    assert!(size_of::<GetCapsetInfo>() == 8);
    assert!(size_of::<RespCapsetInfo>() == 40);
    assert!(size_of::<GetCapset>() == 8);
    assert!(size_of::<GetEdid>() == 8);
    assert!(size_of::<RespEdid>() == 32 + EDID_BLOB_SIZE);
    assert!(size_of::<RespResourceUuid>() == 40);
    assert!(size_of::<ResourceCreateBlob>() == 32);
    assert!(size_of::<SetScanoutBlob>() == 72);
    assert!(size_of::<CtxCreate>() == 72);
    assert!(size_of::<ResourceCreate3d>() == 48);
    assert!(size_of::<TransferHost3d>() == 48);
    assert!(size_of::<CmdSubmit>() == 8);
    assert!(size_of::<ResourceMapBlob>() == 16);
    assert!(size_of::<RespMapInfo>() == 32);
    assert!(size_of::<UpdateCursor>() == 32);
    assert!(size_of::<ConfigSpace>() == 16);
};

/// Size of [`CtrlHeader`] on the wire.
pub const HEADER_SIZE: usize = std::mem::size_of::<CtrlHeader>();

/// Bounds applied while decoding, before anything is allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most [`MemEntry`]s one ATTACH_BACKING or CREATE_BLOB may carry.
    pub max_backing_entries: u32,
    /// Most bytes one SUBMIT_3D may carry.
    pub max_submit_bytes: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            // QEMU's limit (virtio-gpu.c, `ab->nr_entries > 16384`).
            max_backing_entries: 16384,
            max_submit_bytes: 16 << 20,
        }
    }
}

/// Why a request could not be decoded. Each one is answered with `RESP_ERR_UNSPEC`, except
/// the limits, which are answered with `RESP_ERR_INVALID_PARAMETER`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The request is shorter than its header or its fixed body.
    #[error("request {cmd:#x} is truncated: it needs {needed} bytes, the driver gave {available}")]
    Truncated {
        cmd: u32,
        needed: usize,
        available: usize,
    },
    /// The header's type is not a command this device knows.
    #[error("unknown request type {0:#x}")]
    UnknownCommand(u32),
    /// ATTACH_BACKING or CREATE_BLOB lists more entries than allowed.
    #[error("request {cmd:#x} lists {count} backing entries, more than the limit of {max}")]
    TooManyEntries { cmd: u32, count: u32, max: u32 },
    /// SUBMIT_3D carries more bytes than allowed.
    #[error("SUBMIT_3D of {size} bytes is larger than the limit of {max}")]
    SubmitTooLarge { size: u32, max: u32 },
}

/// One decoded request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuCommand {
    GetDisplayInfo,
    ResourceCreate2d(ResourceCreate2d),
    ResourceUnref(ResourceId),
    SetScanout(SetScanout),
    ResourceFlush(ResourceFlush),
    TransferToHost2d(TransferToHost2d),
    ResourceAttachBacking {
        resource_id: u32,
        entries: Vec<MemEntry>,
    },
    ResourceDetachBacking(ResourceId),
    GetCapsetInfo(GetCapsetInfo),
    GetCapset(GetCapset),
    GetEdid(GetEdid),
    ResourceAssignUuid(ResourceId),
    ResourceCreateBlob {
        create: ResourceCreateBlob,
        entries: Vec<MemEntry>,
    },
    SetScanoutBlob(SetScanoutBlob),
    CtxCreate(CtxCreate),
    CtxDestroy,
    CtxAttachResource(ResourceId),
    CtxDetachResource(ResourceId),
    ResourceCreate3d(ResourceCreate3d),
    TransferToHost3d(TransferHost3d),
    TransferFromHost3d(TransferHost3d),
    Submit3d(Vec<u8>),
    ResourceMapBlob(ResourceMapBlob),
    ResourceUnmapBlob(ResourceId),
    UpdateCursor(UpdateCursor),
    MoveCursor(UpdateCursor),
}

impl GpuCommand {
    /// Whether the command belongs on the cursor queue (the others belong on the control
    /// queue).
    pub fn is_cursor(&self) -> bool {
        matches!(
            self,
            GpuCommand::UpdateCursor(_) | GpuCommand::MoveCursor(_)
        )
    }
}

/// A decoded request: its header and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub header: CtrlHeader,
    pub command: GpuCommand,
}

/// Copies a `T` out of `bytes` at `offset`, or says how many bytes were needed.
fn read_at<T: ByteValued + Default>(
    cmd: u32,
    bytes: &[u8],
    offset: usize,
) -> Result<T, DecodeError> {
    let size = std::mem::size_of::<T>();
    let needed = offset.saturating_add(size);
    let src = bytes.get(offset..needed).ok_or(DecodeError::Truncated {
        cmd,
        needed,
        available: bytes.len(),
    })?;
    let mut value = T::default();
    value.as_mut_slice().copy_from_slice(src);
    Ok(value)
}

/// Reads the header at the start of a request.
pub fn decode_header(bytes: &[u8]) -> Result<CtrlHeader, DecodeError> {
    read_at(0, bytes, 0).map_err(|e| match e {
        DecodeError::Truncated {
            needed, available, ..
        } => DecodeError::Truncated {
            cmd: 0,
            needed,
            available,
        },
        other => other,
    })
}

/// The size of the fixed body that follows the header of a request of type `cmd`.
pub fn fixed_body_size(cmd: u32) -> Result<usize, DecodeError> {
    use std::mem::size_of;
    let size = match cmd {
        CMD_GET_DISPLAY_INFO | CMD_CTX_DESTROY => 0,
        CMD_RESOURCE_CREATE_2D => size_of::<ResourceCreate2d>(),
        CMD_RESOURCE_UNREF
        | CMD_RESOURCE_DETACH_BACKING
        | CMD_RESOURCE_ASSIGN_UUID
        | CMD_RESOURCE_UNMAP_BLOB
        | CMD_CTX_ATTACH_RESOURCE
        | CMD_CTX_DETACH_RESOURCE => size_of::<ResourceId>(),
        CMD_SET_SCANOUT => size_of::<SetScanout>(),
        CMD_RESOURCE_FLUSH => size_of::<ResourceFlush>(),
        CMD_TRANSFER_TO_HOST_2D => size_of::<TransferToHost2d>(),
        CMD_RESOURCE_ATTACH_BACKING => size_of::<ResourceAttachBacking>(),
        CMD_GET_CAPSET_INFO => size_of::<GetCapsetInfo>(),
        CMD_GET_CAPSET => size_of::<GetCapset>(),
        CMD_GET_EDID => size_of::<GetEdid>(),
        CMD_RESOURCE_CREATE_BLOB => size_of::<ResourceCreateBlob>(),
        CMD_SET_SCANOUT_BLOB => size_of::<SetScanoutBlob>(),
        CMD_CTX_CREATE => size_of::<CtxCreate>(),
        CMD_RESOURCE_CREATE_3D => size_of::<ResourceCreate3d>(),
        CMD_TRANSFER_TO_HOST_3D | CMD_TRANSFER_FROM_HOST_3D => size_of::<TransferHost3d>(),
        CMD_SUBMIT_3D => size_of::<CmdSubmit>(),
        CMD_RESOURCE_MAP_BLOB => size_of::<ResourceMapBlob>(),
        CMD_UPDATE_CURSOR | CMD_MOVE_CURSOR => size_of::<UpdateCursor>(),
        other => return Err(DecodeError::UnknownCommand(other)),
    };
    Ok(size)
}

/// The size of the variable part that follows the fixed body, computed from the fixed body
/// (`fixed` holds at least [`fixed_body_size`] bytes) and checked against `limits`.
pub fn trailing_size(cmd: u32, fixed: &[u8], limits: &DecodeLimits) -> Result<usize, DecodeError> {
    let entries = |count: u32| -> Result<usize, DecodeError> {
        if count > limits.max_backing_entries {
            return Err(DecodeError::TooManyEntries {
                cmd,
                count,
                max: limits.max_backing_entries,
            });
        }
        Ok(count as usize * std::mem::size_of::<MemEntry>())
    };
    match cmd {
        CMD_RESOURCE_ATTACH_BACKING => {
            entries(read_at::<ResourceAttachBacking>(cmd, fixed, 0)?.nr_entries)
        }
        CMD_RESOURCE_CREATE_BLOB => {
            entries(read_at::<ResourceCreateBlob>(cmd, fixed, 0)?.nr_entries)
        }
        CMD_SUBMIT_3D => {
            let size = read_at::<CmdSubmit>(cmd, fixed, 0)?.size;
            if size > limits.max_submit_bytes {
                return Err(DecodeError::SubmitTooLarge {
                    size,
                    max: limits.max_submit_bytes,
                });
            }
            Ok(size as usize)
        }
        _ => Ok(0),
    }
}

fn read_entries(
    cmd: u32,
    bytes: &[u8],
    offset: usize,
    count: usize,
) -> Result<Vec<MemEntry>, DecodeError> {
    let entry_size = std::mem::size_of::<MemEntry>();
    let end = offset.saturating_add(count.saturating_mul(entry_size));
    if bytes.len() < end {
        return Err(DecodeError::Truncated {
            cmd,
            needed: end,
            available: bytes.len(),
        });
    }
    (0..count)
        .map(|i| read_at::<MemEntry>(cmd, bytes, offset + i * entry_size))
        .collect()
}

/// Decodes a whole request (header, fixed body and variable part) from `bytes`. Bytes after
/// the request are ignored, as the spec allows.
pub fn decode_request(bytes: &[u8], limits: &DecodeLimits) -> Result<Request, DecodeError> {
    let header = decode_header(bytes)?;
    let cmd = header.type_;
    let fixed_size = fixed_body_size(cmd)?;
    let body_start = HEADER_SIZE;
    let fixed_end = body_start + fixed_size;
    let fixed = bytes
        .get(body_start..fixed_end)
        .ok_or(DecodeError::Truncated {
            cmd,
            needed: fixed_end,
            available: bytes.len(),
        })?;
    let trailing = trailing_size(cmd, fixed, limits)?;
    let total = fixed_end.saturating_add(trailing);
    if bytes.len() < total {
        return Err(DecodeError::Truncated {
            cmd,
            needed: total,
            available: bytes.len(),
        });
    }
    let at = body_start;
    let command = match cmd {
        CMD_GET_DISPLAY_INFO => GpuCommand::GetDisplayInfo,
        CMD_RESOURCE_CREATE_2D => GpuCommand::ResourceCreate2d(read_at(cmd, bytes, at)?),
        CMD_RESOURCE_UNREF => GpuCommand::ResourceUnref(read_at(cmd, bytes, at)?),
        CMD_SET_SCANOUT => GpuCommand::SetScanout(read_at(cmd, bytes, at)?),
        CMD_RESOURCE_FLUSH => GpuCommand::ResourceFlush(read_at(cmd, bytes, at)?),
        CMD_TRANSFER_TO_HOST_2D => GpuCommand::TransferToHost2d(read_at(cmd, bytes, at)?),
        CMD_RESOURCE_ATTACH_BACKING => {
            let fixed: ResourceAttachBacking = read_at(cmd, bytes, at)?;
            GpuCommand::ResourceAttachBacking {
                resource_id: fixed.resource_id,
                entries: read_entries(cmd, bytes, fixed_end, fixed.nr_entries as usize)?,
            }
        }
        CMD_RESOURCE_DETACH_BACKING => GpuCommand::ResourceDetachBacking(read_at(cmd, bytes, at)?),
        CMD_GET_CAPSET_INFO => GpuCommand::GetCapsetInfo(read_at(cmd, bytes, at)?),
        CMD_GET_CAPSET => GpuCommand::GetCapset(read_at(cmd, bytes, at)?),
        CMD_GET_EDID => GpuCommand::GetEdid(read_at(cmd, bytes, at)?),
        CMD_RESOURCE_ASSIGN_UUID => GpuCommand::ResourceAssignUuid(read_at(cmd, bytes, at)?),
        CMD_RESOURCE_CREATE_BLOB => {
            let create: ResourceCreateBlob = read_at(cmd, bytes, at)?;
            GpuCommand::ResourceCreateBlob {
                create,
                entries: read_entries(cmd, bytes, fixed_end, create.nr_entries as usize)?,
            }
        }
        CMD_SET_SCANOUT_BLOB => GpuCommand::SetScanoutBlob(read_at(cmd, bytes, at)?),
        CMD_CTX_CREATE => GpuCommand::CtxCreate(read_at(cmd, bytes, at)?),
        CMD_CTX_DESTROY => GpuCommand::CtxDestroy,
        CMD_CTX_ATTACH_RESOURCE => GpuCommand::CtxAttachResource(read_at(cmd, bytes, at)?),
        CMD_CTX_DETACH_RESOURCE => GpuCommand::CtxDetachResource(read_at(cmd, bytes, at)?),
        CMD_RESOURCE_CREATE_3D => GpuCommand::ResourceCreate3d(read_at(cmd, bytes, at)?),
        CMD_TRANSFER_TO_HOST_3D => GpuCommand::TransferToHost3d(read_at(cmd, bytes, at)?),
        CMD_TRANSFER_FROM_HOST_3D => GpuCommand::TransferFromHost3d(read_at(cmd, bytes, at)?),
        CMD_SUBMIT_3D => GpuCommand::Submit3d(bytes[fixed_end..total].to_vec()),
        CMD_RESOURCE_MAP_BLOB => GpuCommand::ResourceMapBlob(read_at(cmd, bytes, at)?),
        CMD_RESOURCE_UNMAP_BLOB => GpuCommand::ResourceUnmapBlob(read_at(cmd, bytes, at)?),
        CMD_UPDATE_CURSOR => GpuCommand::UpdateCursor(read_at(cmd, bytes, at)?),
        CMD_MOVE_CURSOR => GpuCommand::MoveCursor(read_at(cmd, bytes, at)?),
        other => return Err(DecodeError::UnknownCommand(other)),
    };
    Ok(Request { header, command })
}

/// Builds a response header of type `type_` for the request whose header is `request`:
/// the fence fields are echoed when the request asked for a fence, as the spec requires.
pub fn response_header(type_: u32, request: &CtrlHeader) -> CtrlHeader {
    if request.flags & FLAG_FENCE == 0 {
        return CtrlHeader {
            type_,
            ..Default::default()
        };
    }
    CtrlHeader {
        type_,
        flags: request.flags & (FLAG_FENCE | FLAG_INFO_RING_IDX),
        fence_id: request.fence_id,
        ctx_id: request.ctx_id,
        ring_idx: request.ring_idx,
        padding: [0; 3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_bytes<T: ByteValued>(cmd: u32, body: T, tail: &[u8]) -> Vec<u8> {
        let header = CtrlHeader {
            type_: cmd,
            ..Default::default()
        };
        let mut bytes = header.as_slice().to_vec();
        bytes.extend_from_slice(body.as_slice());
        bytes.extend_from_slice(tail);
        bytes
    }

    #[test]
    fn decode_create_2d_reads_every_field() {
        let body = ResourceCreate2d {
            resource_id: 7,
            format: FORMAT_B8G8R8X8_UNORM,
            width: 640,
            height: 480,
        };
        let bytes = request_bytes(CMD_RESOURCE_CREATE_2D, body, &[]);

        let request = decode_request(&bytes, &DecodeLimits::default()).unwrap();

        assert_eq!(request.command, GpuCommand::ResourceCreate2d(body));
    }

    #[test]
    fn decode_rejects_truncated_header() {
        let bytes = [0u8; HEADER_SIZE - 1];

        let err = decode_request(&bytes, &DecodeLimits::default()).unwrap_err();

        assert!(matches!(
            err,
            DecodeError::Truncated {
                needed: HEADER_SIZE,
                ..
            }
        ));
    }

    #[test]
    fn decode_rejects_truncated_body() {
        let mut bytes = request_bytes(CMD_SET_SCANOUT, SetScanout::default(), &[]);
        bytes.pop();

        let err = decode_request(&bytes, &DecodeLimits::default()).unwrap_err();

        assert_eq!(
            err,
            DecodeError::Truncated {
                cmd: CMD_SET_SCANOUT,
                needed: 48,
                available: 47
            }
        );
    }

    #[test]
    fn decode_rejects_unknown_type() {
        let bytes = request_bytes(0x1234, ResourceId::default(), &[]);

        let err = decode_request(&bytes, &DecodeLimits::default()).unwrap_err();

        assert_eq!(err, DecodeError::UnknownCommand(0x1234));
    }

    #[test]
    fn decode_attach_backing_reads_entries() {
        let entry = MemEntry {
            addr: 0x1000,
            length: 4096,
            padding: 0,
        };
        let fixed = ResourceAttachBacking {
            resource_id: 1,
            nr_entries: 2,
        };
        let tail: Vec<u8> = [entry, entry]
            .iter()
            .flat_map(|e| e.as_slice().to_vec())
            .collect();
        let bytes = request_bytes(CMD_RESOURCE_ATTACH_BACKING, fixed, &tail);

        let request = decode_request(&bytes, &DecodeLimits::default()).unwrap();

        assert_eq!(
            request.command,
            GpuCommand::ResourceAttachBacking {
                resource_id: 1,
                entries: vec![entry, entry]
            }
        );
    }

    #[test]
    fn attach_backing_rejects_too_many_entries() {
        let fixed = ResourceAttachBacking {
            resource_id: 1,
            nr_entries: 16385,
        };
        let bytes = request_bytes(CMD_RESOURCE_ATTACH_BACKING, fixed, &[]);

        let err = decode_request(&bytes, &DecodeLimits::default()).unwrap_err();

        assert!(matches!(
            err,
            DecodeError::TooManyEntries {
                count: 16385,
                max: 16384,
                ..
            }
        ));
    }

    #[test]
    fn attach_backing_rejects_entries_missing_from_request() {
        let fixed = ResourceAttachBacking {
            resource_id: 1,
            nr_entries: 3,
        };
        let bytes = request_bytes(CMD_RESOURCE_ATTACH_BACKING, fixed, &[0u8; 16]);

        let err = decode_request(&bytes, &DecodeLimits::default()).unwrap_err();

        assert!(matches!(
            err,
            DecodeError::Truncated {
                needed: 80,
                available: 48,
                ..
            }
        ));
    }

    #[test]
    fn submit_rejects_size_over_limit() {
        let limits = DecodeLimits {
            max_submit_bytes: 64,
            ..Default::default()
        };
        let bytes = request_bytes(
            CMD_SUBMIT_3D,
            CmdSubmit {
                size: 65,
                padding: 0,
            },
            &[0; 65],
        );

        let err = decode_request(&bytes, &limits).unwrap_err();

        assert_eq!(err, DecodeError::SubmitTooLarge { size: 65, max: 64 });
    }

    #[test]
    fn submit_rejects_size_larger_than_request() {
        let bytes = request_bytes(
            CMD_SUBMIT_3D,
            CmdSubmit {
                size: 16,
                padding: 0,
            },
            &[0; 8],
        );

        let err = decode_request(&bytes, &DecodeLimits::default()).unwrap_err();

        assert!(matches!(
            err,
            DecodeError::Truncated {
                needed: 48,
                available: 40,
                ..
            }
        ));
    }

    #[test]
    fn submit_carries_exactly_size_bytes() {
        let bytes = request_bytes(
            CMD_SUBMIT_3D,
            CmdSubmit {
                size: 4,
                padding: 0,
            },
            &[1, 2, 3, 4, 5],
        );

        let request = decode_request(&bytes, &DecodeLimits::default()).unwrap();

        assert_eq!(request.command, GpuCommand::Submit3d(vec![1, 2, 3, 4]));
    }

    #[test]
    fn response_header_echoes_fence_fields() {
        let request = CtrlHeader {
            type_: CMD_SUBMIT_3D,
            flags: FLAG_FENCE | FLAG_INFO_RING_IDX | 0x100,
            fence_id: 9,
            ctx_id: 3,
            ring_idx: 1,
            padding: [0; 3],
        };

        let response = response_header(RESP_OK_NODATA, &request);

        assert_eq!(
            response,
            CtrlHeader {
                type_: RESP_OK_NODATA,
                flags: FLAG_FENCE | FLAG_INFO_RING_IDX,
                fence_id: 9,
                ctx_id: 3,
                ring_idx: 1,
                padding: [0; 3]
            }
        );
    }
}
