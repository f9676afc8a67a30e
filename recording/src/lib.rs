//! Recordings of what a guest sends a virtio-gpu device: every control- and cursor-queue
//! command in order, the guest memory the device reads (as it was when it read it), the
//! features and memory map the driver set up, and scanout images to check a replay against.
//!
//! ray-gpu produces the records (it sees the commands and guest memory) and streams them,
//! uncompressed, over a pipe to rayvmm, which checks each one and writes the file (ray-gpu
//! cannot write files). A replayer reads the file back and drives a device with it.
//!
//! # File format, version 1
//!
//! A 16-byte header, then one zlib stream (RFC 1950) holding the records back to back:
//!
//! | bytes | header field                                  |
//! |-------|-----------------------------------------------|
//! | 8     | magic `RAYGREC\n`                             |
//! | 2     | format version, little-endian (1)             |
//! | 2     | flags, 0                                      |
//! | 4     | reserved, 0                                   |
//!
//! Each record is `kind: u8, length: u32 LE, payload[length]`, with `length` at most
//! [`MAX_RECORD_BYTES`]; all integers are little-endian. Kinds and payloads:
//!
//! | kind | record     | payload                                                           |
//! |------|------------|-------------------------------------------------------------------|
//! | 1    | Info       | UTF-8 text (JSON from the recorder: who, when, which guest)       |
//! | 2    | MemoryMap  | `count: u32`, then `count` x `{guest address: u64, size: u64}`    |
//! | 3    | Features   | `acked device features: u64`                                      |
//! | 4    | Memory     | `guest address: u64`, then the bytes at that address              |
//! | 5    | Command    | `queue: u8` (0 control, 1 cursor), `at: u64` (microseconds since  |
//! |      |            | the recording began), `response length: u32`, then the request   |
//! | 6    | Frame      | `after: u64` (commands before it), `width: u32`, `height: u32`,   |
//! |      |            | then `width * height` B, G, R, X pixels, rows top to bottom       |
//! | 7    | Reset      | `at: u64`: the driver reset the device                            |
//! | 8    | End        | `commands: u64`, `records: u64` (counts of what came before)      |
//!
//! Memory records stand before the command that reads them. A recording without its End
//! record is truncated; anything after End is refused.

mod error;
mod record;
mod stream;

pub use error::{FormatError, ReadError};
pub use record::{Frame, Queue, Record};
pub use stream::{read_record, Reader, Writer};

/// The file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"RAYGREC\n";
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;
/// The largest payload one record may carry (64 MiB): a bound for readers of hostile input.
pub const MAX_RECORD_BYTES: u32 = 64 << 20;
/// The largest width or height of a recorded frame.
pub const MAX_FRAME_EDGE: u32 = 16384;
/// The most guest memory regions a memory map may list.
pub const MAX_MEMORY_REGIONS: u32 = 64;
