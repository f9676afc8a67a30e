//! What can be wrong with a recording.

/// A record's payload that does not match its kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("{what} record: payload of {len} bytes is shorter than its {needed}-byte fixed part")]
    Short {
        what: &'static str,
        len: usize,
        needed: usize,
    },
    #[error("{what} record: {len} bytes where exactly {expected} are required")]
    WrongLength {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    #[error("record payload of {0} bytes is over the limit of {max} bytes", max = crate::MAX_RECORD_BYTES)]
    TooLarge(u64),
    #[error("Info record is not UTF-8")]
    InfoNotText,
    #[error("queue {0} is neither 0 (control) nor 1 (cursor)")]
    BadQueue(u8),
    #[error("memory map lists {0} regions, more than {max}", max = crate::MAX_MEMORY_REGIONS)]
    TooManyRegions(u32),
    #[error("guest range at {addr:#x} of {len:#x} bytes wraps around the address space")]
    RangeWraps { addr: u64, len: u64 },
    #[error("frame of {width}x{height} is empty or over {max} pixels on an edge", max = crate::MAX_FRAME_EDGE)]
    FrameSize { width: u32, height: u32 },
}

/// Why a recording cannot be read, with where (offsets count bytes of the uncompressed record
/// stream, which starts after the 16-byte header).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the recording's header: {0}")]
    Header(#[source] std::io::Error),
    #[error("not a recording: the first bytes are {0:02x?}, not RAYGREC")]
    BadMagic([u8; 8]),
    #[error("recording format version {0} is not supported (this reader knows version {v})", v = crate::VERSION)]
    UnsupportedVersion(u16),
    #[error("recording header: flags {flags:#x} and reserved {reserved:#x} must be 0")]
    BadHeader { flags: u16, reserved: u32 },
    #[error("recording truncated at offset {offset}: {what}")]
    Truncated { offset: u64, what: &'static str },
    #[error("recording corrupt at offset {offset} (record {index}): {source}")]
    Corrupt {
        offset: u64,
        index: u64,
        #[source]
        source: FormatError,
    },
    #[error("recording corrupt at offset {offset}: the compressed data does not decode: {source}")]
    Compressed {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("recording corrupt at offset {offset}: data after the End record")]
    TrailingData { offset: u64 },
    #[error("recording corrupt at offset {offset}: End counts {claimed_commands} commands and {claimed_records} records, the file holds {commands} and {records}")]
    EndMismatch {
        offset: u64,
        claimed_commands: u64,
        claimed_records: u64,
        commands: u64,
        records: u64,
    },
    #[error("reading the recording at offset {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}
