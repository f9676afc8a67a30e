//! Splitting a descriptor chain into the request the driver wrote and the space it left for
//! the response, checking every buffer against guest memory.
//!
//! A hostile driver can hand the device loops, buffers outside guest memory, overlapping
//! buffers, writable buffers before readable ones or absurdly long chains. Loops end at the
//! queue size (virtio-queue's iterator keeps a time-to-live), chains are cut at
//! [`MAX_DESCRIPTORS`], every buffer is checked to lie inside guest memory, and the request is
//! copied out completely before any byte of the response is written, so overlapping buffers
//! cannot change a request while it is handled.

use thiserror::Error;
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};

/// The most descriptors one chain may have.
pub const MAX_DESCRIPTORS: usize = 1024;

/// A descriptor chain the device refuses.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// A buffer is not entirely inside guest memory.
    #[error("descriptor {index} ({addr:#x}+{len:#x}) is outside guest memory")]
    OutsideMemory { index: usize, addr: u64, len: u32 },
    /// A device-readable buffer follows a device-writable one (virtio 1.2 §2.7.4.2).
    #[error("descriptor {index} is readable but follows a writable descriptor")]
    ReadableAfterWritable { index: usize },
    /// The chain has more descriptors than [`MAX_DESCRIPTORS`].
    #[error("the chain has more than {MAX_DESCRIPTORS} descriptors")]
    TooManyDescriptors,
    /// The request needs more bytes than the readable buffers hold.
    #[error("the request needs {needed} bytes but the readable buffers hold {available}")]
    ShortRead { needed: usize, available: usize },
    /// The response needs more bytes than the writable buffers hold.
    #[error("the response needs {needed} bytes but the writable buffers hold {available}")]
    ShortWrite { needed: usize, available: usize },
    /// Guest memory could not be accessed although the range was checked.
    #[error("guest memory access at {0:#x} failed")]
    MemoryAccess(u64),
}

/// One checked guest buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Buffer {
    addr: GuestAddress,
    len: usize,
}

/// The buffers of one descriptor chain, split into the readable and the writable part.
#[derive(Clone, Debug, Default)]
pub struct ChainBuffers {
    readable: Vec<Buffer>,
    writable: Vec<Buffer>,
    read_index: usize,
    read_offset: usize,
    readable_left: usize,
    writable_len: usize,
}

impl ChainBuffers {
    /// Walks `descriptors` and keeps every buffer that lies inside `mem`. The returned error,
    /// if any, is the first fault found; the buffers found valid are kept anyway so that an
    /// error response can still be written to the writable ones.
    pub fn parse<M, I>(mem: &M, descriptors: I) -> (ChainBuffers, Option<ChainError>)
    where
        M: GuestMemory + ?Sized,
        I: IntoIterator<Item = Descriptor>,
    {
        let mut buffers = ChainBuffers::default();
        let mut fault = None;
        for (index, desc) in descriptors.into_iter().enumerate() {
            if index >= MAX_DESCRIPTORS {
                fault.get_or_insert(ChainError::TooManyDescriptors);
                break;
            }
            let buffer = Buffer {
                addr: desc.addr(),
                len: desc.len() as usize,
            };
            if buffer.len > 0
                && !mem.check_range(buffer.addr, buffer.len, access(desc.is_write_only()))
            {
                fault.get_or_insert(ChainError::OutsideMemory {
                    index,
                    addr: buffer.addr.0,
                    len: desc.len(),
                });
                continue;
            }
            if desc.is_write_only() {
                buffers.writable_len = buffers.writable_len.saturating_add(buffer.len);
                buffers.writable.push(buffer);
            } else if !buffers.writable.is_empty() {
                fault.get_or_insert(ChainError::ReadableAfterWritable { index });
            } else {
                buffers.readable_left = buffers.readable_left.saturating_add(buffer.len);
                buffers.readable.push(buffer);
            }
        }
        (buffers, fault)
    }

    /// Bytes of the request not read yet.
    pub fn readable_left(&self) -> usize {
        self.readable_left
    }

    /// Every readable byte not read yet, without consuming them (for recordings). A chain
    /// whose readable part cannot be read whole gives what could be read.
    pub fn peek_readable<M: GuestMemory + ?Sized>(&self, mem: &M) -> Vec<u8> {
        let mut copy = self.clone();
        let mut bytes = vec![0u8; self.readable_left];
        if copy.read_exact(mem, &mut bytes).is_err() {
            bytes.clear();
        }
        bytes
    }

    /// Bytes the response may take.
    pub fn writable_len(&self) -> usize {
        self.writable_len
    }

    /// Copies the next `buf.len()` request bytes into `buf`, or fails without consuming
    /// anything if the readable buffers hold fewer.
    pub fn read_exact<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        buf: &mut [u8],
    ) -> Result<(), ChainError> {
        if buf.len() > self.readable_left {
            return Err(ChainError::ShortRead {
                needed: buf.len(),
                available: self.readable_left,
            });
        }
        let mut done = 0;
        while done < buf.len() {
            let buffer = self.readable[self.read_index];
            let left_in_buffer = buffer.len - self.read_offset;
            if left_in_buffer == 0 {
                self.read_index += 1;
                self.read_offset = 0;
                continue;
            }
            let count = left_in_buffer.min(buf.len() - done);
            // The range was checked in `parse`; the offset is below the buffer's length.
            let addr = buffer.addr.unchecked_add_offset(self.read_offset);
            mem.read_slice(&mut buf[done..done + count], addr)
                .map_err(|_| ChainError::MemoryAccess(addr.0))?;
            done += count;
            self.read_offset += count;
            self.readable_left -= count;
        }
        Ok(())
    }

    /// Writes `response` at the start of the writable buffers; the response must fit.
    /// Returns the number of bytes written.
    pub fn write_response<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        response: &[u8],
    ) -> Result<u32, ChainError> {
        if response.len() > self.writable_len {
            return Err(ChainError::ShortWrite {
                needed: response.len(),
                available: self.writable_len,
            });
        }
        let mut done = 0;
        for buffer in &self.writable {
            if done == response.len() {
                break;
            }
            let count = buffer.len.min(response.len() - done);
            mem.write_slice(&response[done..done + count], buffer.addr)
                .map_err(|_| ChainError::MemoryAccess(buffer.addr.0))?;
            done += count;
        }
        // `response.len()` is at most `writable_len`, which the spec bounds to 2^32 bytes
        // per chain; saturate rather than trust that.
        Ok(u32::try_from(done).unwrap_or(u32::MAX))
    }
}

/// The access a descriptor grants the device.
fn access(write_only: bool) -> Permissions {
    if write_only {
        Permissions::Write
    } else {
        Permissions::Read
    }
}

trait AddOffset {
    fn unchecked_add_offset(self, offset: usize) -> GuestAddress;
}

impl AddOffset for GuestAddress {
    fn unchecked_add_offset(self, offset: usize) -> GuestAddress {
        GuestAddress(self.0.wrapping_add(offset as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::virtio_ring::VRING_DESC_F_WRITE;
    use vm_memory::GuestMemoryMmap;

    fn mem() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap()
    }

    fn readable(addr: u64, len: u32) -> Descriptor {
        Descriptor::new(addr, len, 0, 0)
    }

    fn writable(addr: u64, len: u32) -> Descriptor {
        Descriptor::new(addr, len, VRING_DESC_F_WRITE as u16, 0)
    }

    #[test]
    fn read_exact_spans_descriptors() {
        let mem = mem();
        mem.write_slice(&[1, 2], GuestAddress(0x100)).unwrap();
        mem.write_slice(&[3, 4], GuestAddress(0x200)).unwrap();
        let (mut buffers, fault) =
            ChainBuffers::parse(&mem, [readable(0x100, 2), readable(0x200, 2)]);
        let mut out = [0u8; 4];

        buffers.read_exact(&mem, &mut out).unwrap();

        assert_eq!((out, fault), ([1, 2, 3, 4], None));
    }

    #[test]
    fn read_exact_rejects_short_request() {
        let mem = mem();
        let (mut buffers, _) = ChainBuffers::parse(&mem, [readable(0x100, 3)]);
        let mut out = [0u8; 4];

        let err = buffers.read_exact(&mem, &mut out).unwrap_err();

        assert_eq!(
            err,
            ChainError::ShortRead {
                needed: 4,
                available: 3
            }
        );
    }

    #[test]
    fn parse_rejects_buffer_outside_memory() {
        let mem = mem();

        let (buffers, fault) =
            ChainBuffers::parse(&mem, [readable(0xfff0, 0x20), writable(0x100, 24)]);

        assert_eq!(
            (fault, buffers.readable_left(), buffers.writable_len()),
            (
                Some(ChainError::OutsideMemory {
                    index: 0,
                    addr: 0xfff0,
                    len: 0x20
                }),
                0,
                24
            )
        );
    }

    #[test]
    fn parse_rejects_readable_after_writable() {
        let mem = mem();

        let (_, fault) = ChainBuffers::parse(&mem, [writable(0x100, 24), readable(0x200, 24)]);

        assert_eq!(fault, Some(ChainError::ReadableAfterWritable { index: 1 }));
    }

    #[test]
    fn parse_rejects_too_many_descriptors() {
        let mem = mem();
        let descriptors = (0..MAX_DESCRIPTORS + 1).map(|_| readable(0x100, 1));

        let (_, fault) = ChainBuffers::parse(&mem, descriptors);

        assert_eq!(fault, Some(ChainError::TooManyDescriptors));
    }

    #[test]
    fn write_response_rejects_short_writable_part() {
        let mem = mem();
        let (buffers, _) = ChainBuffers::parse(&mem, [writable(0x100, 8)]);

        let err = buffers.write_response(&mem, &[0u8; 24]).unwrap_err();

        assert_eq!(
            err,
            ChainError::ShortWrite {
                needed: 24,
                available: 8
            }
        );
    }

    #[test]
    fn write_response_spans_descriptors() {
        let mem = mem();
        let (buffers, _) = ChainBuffers::parse(&mem, [writable(0x100, 2), writable(0x200, 8)]);

        let written = buffers.write_response(&mem, &[9, 8, 7]).unwrap();

        let mut second = [0u8; 1];
        mem.read_slice(&mut second, GuestAddress(0x200)).unwrap();
        assert_eq!((written, second), (3, [7]));
    }
}
