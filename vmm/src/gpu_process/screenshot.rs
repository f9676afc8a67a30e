//! Screenshots from the GPU process: rayvmm hands it an empty memfd, the process writes scanout
//! 0's pixels into it, and rayvmm seals the memfd before checking and reading a byte of it,
//! because the process writing it may be compromised. And writing a screenshot file so that a
//! failure (a full disk) leaves no partial file: [`write_replacing`].

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use control::messages::{FromGpu, ToGpu, SCREENSHOT_SEALS};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::stat::fstat;
use thiserror::Error;

use super::{GpuError, GpuProcess};

/// Largest width or height accepted (the device's own bound on a resource edge).
pub const MAX_SCREENSHOT_EDGE: u32 = 16384;

/// Bytes per pixel of a screenshot (x8r8g8b8).
const BYTES_PER_PIXEL: u64 = 4;

/// What scanout 0 showed: `width * height` pixels, rows of `width * 4` bytes, B, G, R, X in
/// memory (x8r8g8b8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanoutFrame {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl ScanoutFrame {
    /// The pixel at `(x, y)` as `[b, g, r, x]`; `None` outside the frame.
    pub fn pixel(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let at = (y as usize * self.width as usize + x as usize) * 4;
        self.pixels.get(at..at + 4)?.try_into().ok()
    }
}

/// Why a screenshot failed or its answer was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScreenshotError {
    #[error("creating the screenshot memfd: {0}")]
    Create(String),
    #[error("screenshot size {width}x{height} is outside 1..={MAX_SCREENSHOT_EDGE}")]
    BadSize { width: u32, height: u32 },
    #[error("sealing the screenshot memfd failed (a writable mapping of it is held?): {0}")]
    Seal(String),
    #[error("screenshot memfd holds {actual} bytes, {expected} expected")]
    WrongLength { expected: u64, actual: i64 },
    #[error("reading the screenshot memfd: {0}")]
    Read(String),
}

impl GpuProcess {
    /// Asks the process for scanout 0's pixels, written into a memfd made here. The answer is
    /// untrusted: its size must be sane, and the memfd is sealed against writing, growing and
    /// shrinking before its length is checked against `width * height * 4` and it is read.
    pub fn screenshot(&mut self) -> Result<ScanoutFrame, GpuError> {
        let memfd = empty_memfd()?;
        self.tube.set_recv_timeout(Some(self.request_timeout))?;
        self.tube
            .send_with_fds(&ToGpu::Screenshot, &[memfd.as_fd()])?;
        match self.tube.recv::<FromGpu>()? {
            FromGpu::Screenshot { width, height } => Ok(seal_and_read(memfd, width, height)?),
            other => Err(self.unexpected(other, "a screenshot")),
        }
    }
}

/// An empty memfd that can be sealed later.
fn empty_memfd() -> Result<OwnedFd, ScreenshotError> {
    memfd_create(
        "rayvmm-screenshot",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| ScreenshotError::Create(e.to_string()))
}

/// Seals `memfd` for good, checks it against `width` and `height`, and reads its pixels.
pub fn seal_and_read(
    memfd: OwnedFd,
    width: u32,
    height: u32,
) -> Result<ScanoutFrame, ScreenshotError> {
    let edge_ok = |e: u32| (1..=MAX_SCREENSHOT_EDGE).contains(&e);
    if !edge_ok(width) || !edge_ok(height) {
        return Err(ScreenshotError::BadSize { width, height });
    }
    let seals = SealFlag::from_bits_truncate(SCREENSHOT_SEALS);
    fcntl(&memfd, FcntlArg::F_ADD_SEALS(seals))
        .map_err(|e| ScreenshotError::Seal(e.to_string()))?;
    // Sealed: the length read now is the length for good.
    let expected = u64::from(width) * u64::from(height) * BYTES_PER_PIXEL;
    let actual = fstat(memfd.as_fd())
        .map_err(|e| ScreenshotError::Read(e.to_string()))?
        .st_size;
    if u64::try_from(actual) != Ok(expected) {
        return Err(ScreenshotError::WrongLength { expected, actual });
    }
    let mut pixels = vec![0u8; expected as usize];
    File::from(memfd)
        .read_exact_at(&mut pixels, 0)
        .map_err(|e| ScreenshotError::Read(e.to_string()))?;
    Ok(ScanoutFrame {
        width,
        height,
        pixels,
    })
}

/// Writes the file at `path` through `write`, never leaving a partial one: the bytes go to a
/// new temporary file beside it (same directory, so the rename stays on one file system),
/// which is flushed and renamed over `path` only once everything was written. On any
/// failure the temporary file is removed and `path` is as it was. Errors say what failed
/// (`write`'s own, or creating, flushing or renaming, with the OS's reason such as `No space
/// left on device (os error 28)`); the caller names `path`.
// Not called yet: vm/mod.rs's `write_png` should write through it (and gpu_process.rs
// re-export it); then this allowance goes.
pub fn write_replacing(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), String>,
) -> Result<(), String> {
    let temporary = temporary_beside(path);
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(|e| format!("creating {}: {e}", temporary.display()))?;
    let written = write_all_of(file, write)
        .and_then(|()| std::fs::rename(&temporary, path).map_err(|e| format!("renaming: {e}")));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// Runs `write` on a buffered `file` and flushes it: an error only the last flush meets
/// (the disk filling up on the final bytes) is reported, not lost in the buffer's drop.
fn write_all_of(
    file: File,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), String>,
) -> Result<(), String> {
    let mut out = BufWriter::new(file);
    write(&mut out)?;
    out.flush().map_err(|e| format!("flushing: {e}"))
}

/// `.NAME.PID.tmp` in `path`'s directory.
fn temporary_beside(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use nix::sys::mman::{mmap, MapFlags, ProtFlags};

    use super::*;

    fn memfd_with(bytes: &[u8]) -> OwnedFd {
        let memfd = empty_memfd().unwrap();
        let mut file = File::from(memfd);
        file.write_all(bytes).unwrap();
        OwnedFd::from(file)
    }

    #[test]
    fn memfd_of_the_right_size_is_read() {
        let memfd = memfd_with(&[1, 2, 3, 4, 5, 6, 7, 8]);

        let frame = seal_and_read(memfd, 2, 1).unwrap();

        assert_eq!(frame.pixel(1, 0), Some([5, 6, 7, 8]));
    }

    #[test]
    fn memfd_is_sealed_against_writes_after_the_answer() {
        let memfd = memfd_with(&[0; 4]);
        let writer = memfd.try_clone().unwrap();

        seal_and_read(memfd, 1, 1).unwrap();
        let late_write = File::from(writer).write_all(&[1; 4]);

        assert_eq!(late_write.unwrap_err().raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn memfd_shorter_than_the_claimed_size_is_refused() {
        let memfd = memfd_with(&[0; 4]);

        let err = seal_and_read(memfd, 2, 2).unwrap_err();

        assert_eq!(
            err,
            ScreenshotError::WrongLength {
                expected: 16,
                actual: 4
            }
        );
    }

    #[test]
    fn absurd_dimensions_are_refused_before_anything_is_read() {
        let memfd = memfd_with(&[0; 4]);

        let err = seal_and_read(memfd, 1 << 20, 1 << 20).unwrap_err();

        assert!(matches!(err, ScreenshotError::BadSize { .. }), "{err}");
    }

    #[test]
    fn memfd_with_a_writable_shared_mapping_is_refused() {
        let memfd = memfd_with(&[0; 4096]);
        // SAFETY: a fresh shared mapping of a 4096-byte memfd; it is never dereferenced and
        // stays mapped until the test ends, which is the point (it blocks F_SEAL_WRITE).
        let _mapping = unsafe {
            mmap(
                None,
                std::num::NonZeroUsize::new(4096).unwrap(),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &memfd,
                0,
            )
        }
        .unwrap();

        let err = seal_and_read(memfd, 32, 32).unwrap_err();

        assert!(matches!(err, ScreenshotError::Seal(_)), "{err}");
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_replacing_leaves_only_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shot.png");

        write_replacing(&path, |out| {
            out.write_all(&[7; 100_000]).map_err(|e| e.to_string())
        })
        .unwrap();

        assert_eq!(names_in(dir.path()), vec!["shot.png".to_string()]);
        assert_eq!(std::fs::read(&path).unwrap(), vec![7; 100_000]);
    }

    #[test]
    fn write_replacing_that_fails_leaves_no_file_and_the_old_one_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shot.png");
        std::fs::write(&path, b"old").unwrap();

        let err = write_replacing(&path, |out| {
            out.write_all(&[7; 100_000]).map_err(|e| e.to_string())?;
            Err("encoding PNG failed: No space left on device (os error 28)".to_string())
        })
        .unwrap_err();

        assert_eq!(
            err,
            "encoding PNG failed: No space left on device (os error 28)"
        );
        assert_eq!(names_in(dir.path()), vec!["shot.png".to_string()]);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn write_replacing_into_a_missing_directory_names_the_file_it_could_not_create() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/shot.png");

        let err = write_replacing(&path, |_| Ok(())).unwrap_err();

        assert!(err.starts_with("creating "), "{err}");
        assert!(
            err.ends_with("No such file or directory (os error 2)"),
            "{err}"
        );
    }
}
