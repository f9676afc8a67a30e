//! Screenshots from the GPU process: scanout 0's pixels in a sealed memfd, checked before a
//! byte of it is read, because the process sending it may be compromised.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

use devices::control::{FromGpu, ToGpu, SCREENSHOT_SEALS};
use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::stat::{fstat, SFlag};
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

/// Why a screenshot answer was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScreenshotError {
    #[error("screenshot size {width}x{height} is outside 1..={MAX_SCREENSHOT_EDGE}")]
    BadSize { width: u32, height: u32 },
    #[error("screenshot names descriptor {index} but {received} came with it")]
    BadIndex { index: usize, received: usize },
    #[error("screenshot descriptor is not a regular file")]
    NotAFile,
    #[error("screenshot memfd holds {actual} bytes, {expected} expected")]
    WrongLength { expected: u64, actual: i64 },
    #[error("screenshot memfd seals are {actual:#x}, {SCREENSHOT_SEALS:#x} required")]
    NotSealed { actual: i32 },
    #[error("reading the screenshot memfd: {0}")]
    Read(String),
}

impl GpuProcess {
    /// Asks the process for scanout 0's pixels. The answer is untrusted: its size must be
    /// sane, the descriptor must be a memfd sealed against shrinking, growing, writing and
    /// further sealing, and exactly `width * height * 4` bytes long, before it is read.
    pub fn screenshot(&mut self) -> Result<ScanoutFrame, GpuError> {
        self.tube.set_recv_timeout(Some(self.request_timeout))?;
        self.tube.send(&ToGpu::Screenshot)?;
        let (answer, mut fds) = self.tube.recv_with_fds::<FromGpu>(1)?;
        let (width, height, index) = match answer {
            FromGpu::Screenshot {
                width,
                height,
                fd_index,
            } => (width, height, fd_index),
            other => return Err(self.unexpected(other, "a screenshot")),
        };
        let received = fds.len();
        let memfd = fds
            .take(index)
            .map_err(|_| ScreenshotError::BadIndex { index, received })?;
        Ok(read_sealed(memfd, width, height)?)
    }
}

/// Checks `memfd` against `width` and `height` and reads its pixels.
pub fn read_sealed(
    memfd: OwnedFd,
    width: u32,
    height: u32,
) -> Result<ScanoutFrame, ScreenshotError> {
    let edge_ok = |e: u32| (1..=MAX_SCREENSHOT_EDGE).contains(&e);
    if !edge_ok(width) || !edge_ok(height) {
        return Err(ScreenshotError::BadSize { width, height });
    }
    let expected = u64::from(width) * u64::from(height) * BYTES_PER_PIXEL;
    let stat = fstat(memfd.as_fd()).map_err(|e| ScreenshotError::Read(e.to_string()))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(ScreenshotError::NotAFile);
    }
    // Seals are checked before the size: once sealed, the size cannot change after the check.
    let seals = fcntl(&memfd, FcntlArg::F_GET_SEALS).unwrap_or(0);
    if seals & SCREENSHOT_SEALS != SCREENSHOT_SEALS {
        return Err(ScreenshotError::NotSealed { actual: seals });
    }
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use nix::fcntl::SealFlag;
    use nix::sys::memfd::{memfd_create, MFdFlags};

    use super::*;

    fn memfd_with(bytes: &[u8], seals: i32) -> OwnedFd {
        let fd = memfd_create("test", MFdFlags::MFD_ALLOW_SEALING).unwrap();
        let mut file = File::from(fd);
        file.write_all(bytes).unwrap();
        fcntl(
            &file,
            FcntlArg::F_ADD_SEALS(SealFlag::from_bits_truncate(seals)),
        )
        .unwrap();
        OwnedFd::from(file)
    }

    #[test]
    fn sealed_memfd_of_the_right_size_is_read() {
        let memfd = memfd_with(&[1, 2, 3, 4, 5, 6, 7, 8], SCREENSHOT_SEALS);

        let frame = read_sealed(memfd, 2, 1).unwrap();

        assert_eq!(frame.pixel(1, 0), Some([5, 6, 7, 8]));
    }

    #[test]
    fn memfd_without_the_write_seal_is_refused() {
        let memfd = memfd_with(&[0; 4], SCREENSHOT_SEALS & !libc::F_SEAL_WRITE);

        let err = read_sealed(memfd, 1, 1).unwrap_err();

        assert!(matches!(err, ScreenshotError::NotSealed { .. }), "{err}");
    }

    #[test]
    fn memfd_shorter_than_the_claimed_size_is_refused() {
        let memfd = memfd_with(&[0; 4], SCREENSHOT_SEALS);

        let err = read_sealed(memfd, 2, 2).unwrap_err();

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
        let memfd = memfd_with(&[0; 4], SCREENSHOT_SEALS);

        let err = read_sealed(memfd, 1 << 20, 1 << 20).unwrap_err();

        assert!(matches!(err, ScreenshotError::BadSize { .. }), "{err}");
    }

    #[test]
    fn unsealable_file_is_refused() {
        let memfd = unsealable_memfd();

        let err = read_sealed(memfd, 1, 1).unwrap_err();

        assert!(matches!(err, ScreenshotError::NotSealed { .. }), "{err}");
    }

    fn unsealable_memfd() -> OwnedFd {
        let fd = memfd_create("unsealable", MFdFlags::empty()).unwrap();
        let mut file = File::from(fd);
        file.write_all(&[0; 4]).unwrap();
        OwnedFd::from(file)
    }
}
