//! The supervisor's frame buffer, mapped: frames are read back from the renderer straight
//! into the memory rayvmm reads them from, with no copy and no allocation per frame.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use anyhow::{bail, Context, Result};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::stat::fstat;

/// rayvmm's memfd of `len` bytes, mapped shared and writable for as long as this lives.
pub struct FrameBuffer {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping belongs to this value alone (no other handle to it exists in this
// process), so moving it to the thread that serves the device moves sole access with it.
unsafe impl Send for FrameBuffer {}

impl FrameBuffer {
    /// Maps `file`, which rayvmm says holds `bytes`. The file must hold at least that many:
    /// rayvmm sealed it against shrinking, so every mapped page stays backed (no SIGBUS).
    pub fn map(file: OwnedFd, bytes: u64) -> Result<FrameBuffer> {
        let size = fstat(file.as_fd()).context("the frame buffer")?.st_size;
        if u64::try_from(size).map_or(true, |size| size < bytes) {
            bail!("the frame buffer holds {size} bytes, not the {bytes} announced");
        }
        let len = usize::try_from(bytes).context("the frame buffer's size")?;
        let Some(nonzero) = NonZeroUsize::new(len) else {
            bail!("the frame buffer is empty");
        };
        // SAFETY: a fresh mapping chosen by the kernel (no address given), so it replaces
        // nothing this process uses; `file` is a regular memfd of at least `len` bytes.
        let base = unsafe {
            mmap(
                None,
                nonzero,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                file,
                0,
            )
        }
        .context("mapping the frame buffer")?;
        Ok(FrameBuffer {
            base: base.cast(),
            len,
        })
    }

    /// The whole buffer.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `base` maps `len` readable and writable bytes until drop, and `&mut self`
        // makes this the only slice of them in this process. rayvmm only reads them, and
        // only after this process said which part holds a frame.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }
}

impl Drop for FrameBuffer {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are the mapping made in `map`, unmapped only here, and no
        // slice of it outlives `self`.
        if let Err(e) = unsafe { munmap(self.base.cast(), self.len) } {
            log::warn!("unmapping the frame buffer: {e}");
        }
    }
}
