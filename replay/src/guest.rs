//! The replayed guest's RAM: one memfd, mapped here and shared with the backend through
//! SET_MEM_TABLE, sparse (only pages written cost memory).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use crate::ReplayError;

/// Guest RAM at guest address 0, `size` bytes.
pub struct GuestRam {
    file: File,
    base: NonNull<u8>,
    size: u64,
}

// SAFETY: the mapping is owned by this value and lives until drop; all accesses go through
// bounds-checked methods that copy in and out, so moving it to another thread is sound.
unsafe impl Send for GuestRam {}

impl GuestRam {
    /// Creates and maps `size` bytes of zeroed guest RAM.
    pub fn new(size: u64) -> Result<GuestRam, ReplayError> {
        let setup = |what: &'static str| move |source| ReplayError::Memory { what, source };
        let fd = nix::sys::memfd::memfd_create(
            "replayed-guest-ram",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )
        .map_err(|e| setup("memfd_create")(e.into()))?;
        let file = File::from(fd);
        file.set_len(size).map_err(setup("sizing the memfd"))?;
        let len = usize::try_from(size).map_err(|_| ReplayError::RamTooLarge(size))?;
        // SAFETY: a new shared mapping of a memfd we own, at an address the kernel picks; it
        // aliases nothing in this process. The result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(setup("mapping the memfd")(std::io::Error::last_os_error()));
        }
        let base = NonNull::new(ptr.cast::<u8>()).expect("mmap does not return null on success");
        Ok(GuestRam { file, base, size })
    }

    /// The memfd, for SET_MEM_TABLE.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the RAM is mapped here (the "user address" vring addresses are given in).
    pub fn host_address(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn check(&self, gpa: u64, len: usize) -> Result<usize, ReplayError> {
        match gpa.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(gpa as usize),
            _ => Err(ReplayError::OutsideRam {
                gpa,
                len: len as u64,
                size: self.size,
            }),
        }
    }

    /// Copies `bytes` to guest address `gpa`.
    pub fn write(&self, gpa: u64, bytes: &[u8]) -> Result<(), ReplayError> {
        let at = self.check(gpa, bytes.len())?;
        // SAFETY: `check` proved `at + len` lies inside the mapping; the source is a slice we
        // were given, which cannot overlap the mapping's pages handed to nobody else here.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.as_ptr().add(at), bytes.len())
        };
        Ok(())
    }

    /// Copies `len` bytes from guest address `gpa`.
    pub fn read(&self, gpa: u64, len: usize) -> Result<Vec<u8>, ReplayError> {
        let at = self.check(gpa, len)?;
        let mut out = vec![0u8; len];
        // SAFETY: `check` proved the range lies inside the mapping; `out` is a fresh buffer.
        unsafe { std::ptr::copy_nonoverlapping(self.base.as_ptr().add(at), out.as_mut_ptr(), len) };
        Ok(out)
    }

    /// Reads a little-endian u16 the backend may be writing concurrently.
    pub fn read_u16(&self, gpa: u64) -> Result<u16, ReplayError> {
        let at = self.check(gpa, 2)?;
        // SAFETY: in bounds (checked) and 2-aligned (ring fields are); a volatile read of a
        // field the backend writes with single stores.
        let v = unsafe { std::ptr::read_volatile(self.base.as_ptr().add(at).cast::<u16>()) };
        Ok(u16::from_le(v))
    }

    /// Writes a little-endian u16 the backend reads concurrently.
    pub fn write_u16(&self, gpa: u64, value: u16) -> Result<(), ReplayError> {
        let at = self.check(gpa, 2)?;
        // SAFETY: in bounds (checked) and 2-aligned (ring fields are); a single volatile store.
        unsafe {
            std::ptr::write_volatile(self.base.as_ptr().add(at).cast::<u16>(), value.to_le())
        };
        Ok(())
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, which nothing uses any more.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.size as usize) };
    }
}
