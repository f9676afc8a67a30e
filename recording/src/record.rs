//! One record: what it holds, and its bytes.

use crate::error::FormatError;
use crate::{MAX_FRAME_EDGE, MAX_MEMORY_REGIONS, MAX_RECORD_BYTES};

/// The virtqueue a command came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    Control,
    Cursor,
}

/// A scanout image as the device showed it after `after` commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub after: u64,
    pub width: u32,
    pub height: u32,
    /// B, G, R, X, `width * height * 4` bytes.
    pub pixels: Vec<u8>,
}

/// One entry of a recording (the crate documentation gives the byte layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Free text from the recorder, JSON by convention.
    Info(String),
    /// The guest memory regions, `(guest address, size)`.
    MemoryMap(Vec<(u64, u64)>),
    /// The device features the driver acked.
    Features(u64),
    /// Guest memory at `gpa` as the device was about to read it.
    Memory { gpa: u64, bytes: Vec<u8> },
    /// A request the driver queued, and the room it left for the response.
    Command {
        queue: Queue,
        at_us: u64,
        response_len: u32,
        request: Vec<u8>,
    },
    /// What the scanout showed.
    Frame(Frame),
    /// The driver reset the device.
    Reset { at_us: u64 },
    /// The end of the recording, with counts to check it against.
    End { commands: u64, records: u64 },
}

const INFO: u8 = 1;
const MEMORY_MAP: u8 = 2;
const FEATURES: u8 = 3;
const MEMORY: u8 = 4;
const COMMAND: u8 = 5;
const FRAME: u8 = 6;
const RESET: u8 = 7;
const END: u8 = 8;

impl Record {
    /// Appends the record (kind, length, payload) to `out`.
    ///
    /// A payload over [`MAX_RECORD_BYTES`] is refused, so that every record written can be
    /// read back.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        let start = out.len();
        out.extend_from_slice(&[self.kind(), 0, 0, 0, 0]);
        match self {
            Record::Info(text) => out.extend_from_slice(text.as_bytes()),
            Record::MemoryMap(regions) => {
                put_u32(out, regions.len() as u32);
                for &(gpa, size) in regions {
                    put_u64(out, gpa);
                    put_u64(out, size);
                }
            }
            Record::Features(features) => put_u64(out, *features),
            Record::Memory { gpa, bytes } => {
                put_u64(out, *gpa);
                out.extend_from_slice(bytes);
            }
            Record::Command {
                queue,
                at_us,
                response_len,
                request,
            } => {
                out.push(match queue {
                    Queue::Control => 0,
                    Queue::Cursor => 1,
                });
                put_u64(out, *at_us);
                put_u32(out, *response_len);
                out.extend_from_slice(request);
            }
            Record::Frame(frame) => {
                put_u64(out, frame.after);
                put_u32(out, frame.width);
                put_u32(out, frame.height);
                out.extend_from_slice(&frame.pixels);
            }
            Record::Reset { at_us } => put_u64(out, *at_us),
            Record::End { commands, records } => {
                put_u64(out, *commands);
                put_u64(out, *records);
            }
        }
        let len = (out.len() - start - 5) as u64;
        if len > u64::from(MAX_RECORD_BYTES) {
            out.truncate(start);
            return Err(FormatError::TooLarge(len));
        }
        out[start + 1..start + 5].copy_from_slice(&(len as u32).to_le_bytes());
        Ok(())
    }

    /// Decodes the payload of a record of `kind`, checking every length and bound.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Record, FormatError> {
        let mut p = Payload {
            what: kind_name(kind)?,
            bytes: payload,
        };
        let record = match kind {
            INFO => Record::Info(
                String::from_utf8(payload.to_vec()).map_err(|_| FormatError::InfoNotText)?,
            ),
            MEMORY_MAP => {
                let count = p.u32()?;
                if count > MAX_MEMORY_REGIONS {
                    return Err(FormatError::TooManyRegions(count));
                }
                p.exact(count as usize * 16)?;
                let mut regions = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let (gpa, size) = (p.u64()?, p.u64()?);
                    checked_range(gpa, size)?;
                    regions.push((gpa, size));
                }
                Record::MemoryMap(regions)
            }
            FEATURES => {
                p.exact(8)?;
                Record::Features(p.u64()?)
            }
            MEMORY => {
                let gpa = p.u64()?;
                checked_range(gpa, p.bytes.len() as u64)?;
                Record::Memory {
                    gpa,
                    bytes: p.bytes.to_vec(),
                }
            }
            COMMAND => {
                let queue = match p.u8()? {
                    0 => Queue::Control,
                    1 => Queue::Cursor,
                    other => return Err(FormatError::BadQueue(other)),
                };
                Record::Command {
                    queue,
                    at_us: p.u64()?,
                    response_len: p.u32()?,
                    request: p.bytes.to_vec(),
                }
            }
            FRAME => {
                let after = p.u64()?;
                let (width, height) = (p.u32()?, p.u32()?);
                if width == 0 || height == 0 || width > MAX_FRAME_EDGE || height > MAX_FRAME_EDGE {
                    return Err(FormatError::FrameSize { width, height });
                }
                p.exact(width as usize * height as usize * 4)?;
                Record::Frame(Frame {
                    after,
                    width,
                    height,
                    pixels: p.bytes.to_vec(),
                })
            }
            RESET => {
                p.exact(8)?;
                Record::Reset { at_us: p.u64()? }
            }
            END => {
                p.exact(16)?;
                Record::End {
                    commands: p.u64()?,
                    records: p.u64()?,
                }
            }
            other => return Err(FormatError::UnknownKind(other)),
        };
        Ok(record)
    }

    fn kind(&self) -> u8 {
        match self {
            Record::Info(_) => INFO,
            Record::MemoryMap(_) => MEMORY_MAP,
            Record::Features(_) => FEATURES,
            Record::Memory { .. } => MEMORY,
            Record::Command { .. } => COMMAND,
            Record::Frame(_) => FRAME,
            Record::Reset { .. } => RESET,
            Record::End { .. } => END,
        }
    }
}

fn kind_name(kind: u8) -> Result<&'static str, FormatError> {
    Ok(match kind {
        INFO => "Info",
        MEMORY_MAP => "MemoryMap",
        FEATURES => "Features",
        MEMORY => "Memory",
        COMMAND => "Command",
        FRAME => "Frame",
        RESET => "Reset",
        END => "End",
        other => return Err(FormatError::UnknownKind(other)),
    })
}

fn checked_range(addr: u64, len: u64) -> Result<(), FormatError> {
    addr.checked_add(len)
        .map(drop)
        .ok_or(FormatError::RangeWraps { addr, len })
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A cursor over a payload that names its record kind in its errors.
struct Payload<'a> {
    what: &'static str,
    bytes: &'a [u8],
}

impl<'a> Payload<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let Some((head, rest)) = self.bytes.split_first_chunk::<N>() else {
            return Err(FormatError::Short {
                what: self.what,
                len: self.bytes.len(),
                needed: N,
            });
        };
        self.bytes = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    /// Requires exactly `len` bytes left.
    fn exact(&self, len: usize) -> Result<(), FormatError> {
        if self.bytes.len() == len {
            return Ok(());
        }
        Err(FormatError::WrongLength {
            what: self.what,
            len: self.bytes.len(),
            expected: len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(record: &Record) -> Record {
        let mut bytes = Vec::new();
        record.encode(&mut bytes).unwrap();
        let len = u32::from_le_bytes(bytes[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 5);
        Record::decode(bytes[0], &bytes[5..]).unwrap()
    }

    #[test]
    fn every_kind_decodes_to_what_was_encoded() {
        let records = [
            Record::Info("{\"guest\":\"linux\"}".into()),
            Record::MemoryMap(vec![(0, 1 << 30), (1 << 32, 1 << 20)]),
            Record::Features(0x1_0000_0003),
            Record::Memory {
                gpa: 0x1000,
                bytes: vec![7; 4096],
            },
            Record::Command {
                queue: Queue::Cursor,
                at_us: 123_456,
                response_len: 24,
                request: vec![1, 2, 3],
            },
            Record::Frame(Frame {
                after: 9,
                width: 2,
                height: 1,
                pixels: vec![1, 2, 3, 4, 5, 6, 7, 8],
            }),
            Record::Reset { at_us: 5 },
            Record::End {
                commands: 1,
                records: 7,
            },
        ];

        let decoded: Vec<Record> = records.iter().map(roundtrip).collect();

        assert_eq!(decoded, records);
    }

    #[test]
    fn decode_rejects_frame_with_missing_pixels() {
        let mut bytes = Vec::new();
        Record::Frame(Frame {
            after: 0,
            width: 2,
            height: 2,
            pixels: vec![0; 16],
        })
        .encode(&mut bytes)
        .unwrap();

        let err = Record::decode(bytes[0], &bytes[5..bytes.len() - 1]).unwrap_err();

        assert_eq!(
            err,
            FormatError::WrongLength {
                what: "Frame",
                len: 15,
                expected: 16
            }
        );
    }

    #[test]
    fn decode_rejects_memory_range_that_wraps() {
        let mut payload = u64::MAX.to_le_bytes().to_vec();
        payload.extend_from_slice(&[0; 2]);

        let err = Record::decode(MEMORY, &payload).unwrap_err();

        assert_eq!(
            err,
            FormatError::RangeWraps {
                addr: u64::MAX,
                len: 2
            }
        );
    }

    #[test]
    fn decode_rejects_unknown_kind() {
        assert_eq!(
            Record::decode(99, &[]).unwrap_err(),
            FormatError::UnknownKind(99)
        );
    }

    #[test]
    fn decode_rejects_command_on_a_third_queue() {
        let mut payload = vec![2];
        payload.extend_from_slice(&[0; 12]);

        assert_eq!(
            Record::decode(COMMAND, &payload).unwrap_err(),
            FormatError::BadQueue(2)
        );
    }
}
