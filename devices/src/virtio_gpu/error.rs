//! Why a command failed, and the response code each failure is answered with.

use rutabaga_gfx::RutabagaError;
use thiserror::Error;

use super::chain::ChainError;
use super::protocol::{
    DecodeError, RESP_ERR_INVALID_CONTEXT_ID, RESP_ERR_INVALID_PARAMETER,
    RESP_ERR_INVALID_RESOURCE_ID, RESP_ERR_INVALID_SCANOUT_ID, RESP_ERR_OUT_OF_MEMORY,
    RESP_ERR_UNSPEC,
};

/// A command the device could not carry out. The guest sees the response code of
/// [`GpuError::response_type`]; the message is for the host's log.
#[derive(Debug, Error)]
pub enum GpuError {
    /// The request could not be decoded.
    #[error("malformed request: {0}")]
    Decode(#[from] DecodeError),
    /// The descriptor chain does not hold a well-formed request.
    #[error("bad descriptor chain: {0}")]
    Chain(#[from] ChainError),
    /// The command arrived on the queue it does not belong to.
    #[error("command {0:#x} is not accepted on this queue")]
    WrongQueue(u32),
    /// A resource id of 0 was used where a resource is needed.
    #[error("resource id 0 is reserved")]
    ZeroResourceId,
    /// No resource has this id.
    #[error("no resource has id {0}")]
    UnknownResource(u32),
    /// RESOURCE_CREATE_* with an id that is already in use.
    #[error("resource id {0} is already in use")]
    ResourceIdInUse(u32),
    /// The guest holds as many resources as it is allowed to.
    #[error("too many resources: the limit is {0}")]
    TooManyResources(usize),
    /// The guest's resources would take more host memory than it is allowed to use.
    #[error("resource {resource_id} needs {requested} bytes of host memory; {in_use} of {limit} are in use")]
    HostMemoryLimit {
        resource_id: u32,
        requested: u64,
        in_use: u64,
        limit: u64,
    },
    /// A context id of 0 was used, or no context has this id.
    #[error("no context has id {0}")]
    UnknownContext(u32),
    /// CTX_CREATE with an id that is already in use.
    #[error("context id {0} is already in use")]
    ContextIdInUse(u32),
    /// The guest holds as many contexts as it is allowed to.
    #[error("too many contexts: the limit is {0}")]
    TooManyContexts(usize),
    /// The scanout id is not below the number of scanouts.
    #[error("scanout {0} does not exist")]
    InvalidScanout(u32),
    /// A field has a value the command does not accept.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A backing entry is not inside guest memory.
    #[error("backing entry {index} ({addr:#x}+{len:#x}) of resource {resource_id} is outside guest memory")]
    BackingOutsideMemory {
        resource_id: u32,
        index: usize,
        addr: u64,
        len: u64,
    },
    /// The command needs something this device or its backend does not provide.
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// A consumer's frame buffer cannot hold the changed part of a frame.
    #[error(
        "the changed part of the frame needs {needed} bytes; the frame buffer holds {capacity}"
    )]
    FrameBufferTooSmall { needed: u64, capacity: u64 },
    /// The renderer refused the command.
    #[error("renderer error in {op}: {source}")]
    Backend {
        op: &'static str,
        #[source]
        source: RutabagaError,
    },
}

impl GpuError {
    /// The `RESP_ERR_*` type that reports this failure to the guest.
    pub fn response_type(&self) -> u32 {
        match self {
            GpuError::Decode(DecodeError::TooManyEntries { .. })
            | GpuError::Decode(DecodeError::SubmitTooLarge { .. })
            | GpuError::InvalidParameter(_)
            | GpuError::BackingOutsideMemory { .. } => RESP_ERR_INVALID_PARAMETER,
            GpuError::Decode(_)
            | GpuError::Chain(_)
            | GpuError::WrongQueue(_)
            | GpuError::Unsupported(_) => RESP_ERR_UNSPEC,
            GpuError::ZeroResourceId
            | GpuError::UnknownResource(_)
            | GpuError::ResourceIdInUse(_) => RESP_ERR_INVALID_RESOURCE_ID,
            GpuError::TooManyResources(_)
            | GpuError::HostMemoryLimit { .. }
            | GpuError::FrameBufferTooSmall { .. } => RESP_ERR_OUT_OF_MEMORY,
            GpuError::UnknownContext(_) | GpuError::ContextIdInUse(_) => {
                RESP_ERR_INVALID_CONTEXT_ID
            }
            GpuError::TooManyContexts(_) => RESP_ERR_OUT_OF_MEMORY,
            GpuError::InvalidScanout(_) => RESP_ERR_INVALID_SCANOUT_ID,
            GpuError::Backend { source, .. } => match source {
                RutabagaError::InvalidResourceId => RESP_ERR_INVALID_RESOURCE_ID,
                RutabagaError::InvalidContextId => RESP_ERR_INVALID_CONTEXT_ID,
                _ => RESP_ERR_UNSPEC,
            },
        }
    }

    /// Wraps a renderer error with the name of the operation that failed.
    pub(crate) fn backend(op: &'static str) -> impl FnOnce(RutabagaError) -> GpuError {
        move |source| GpuError::Backend { op, source }
    }
}

/// Result of one command.
pub type GpuResult<T> = Result<T, GpuError>;
