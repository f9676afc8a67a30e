//! Frames on demand from the GPU process: rayvmm makes one frame buffer (a memfd it sizes and
//! seals against growing and shrinking), asks "what changed since generation N?", and reads
//! the changed rectangle from the buffer. Every claim in the answer is checked before a byte
//! is read: the process writing the buffer may be compromised.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use control::messages::{
    CursorReply, DeviceProgress, FrameRect, FrameReply, FromGpu, ToGpu, FRAME_BUFFER_SEALS,
};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use thiserror::Error;

use super::{GpuError, GpuProcess, MAX_SCREENSHOT_EDGE};

/// Largest frame buffer rayvmm makes: a 4096 x 4096 frame.
pub const MAX_FRAME_BYTES: u64 = 4096 * 4096 * 4;

/// Why a frame was refused or could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("creating the frame buffer: {0}")]
    Create(String),
    #[error("frame size {width}x{height} is outside 1..={MAX_SCREENSHOT_EDGE}")]
    BadSize { width: u32, height: u32 },
    #[error("changed rectangle {x},{y} {w}x{h} is empty or outside the {width}x{height} frame", x = rect.x, y = rect.y, w = rect.width, h = rect.height)]
    BadRect {
        rect: FrameRect,
        width: u32,
        height: u32,
    },
    #[error(
        "the GPU process asked for a {bytes}-byte frame buffer; the limit is {MAX_FRAME_BYTES}"
    )]
    TooLarge { bytes: u64 },
    #[error("the GPU process claims a {bytes}-byte change does not fit the {capacity}-byte buffer it was given, which holds it")]
    FalseTooLarge { bytes: u64, capacity: u64 },
    #[error("reading the frame buffer: {0}")]
    Read(String),
    #[error("cursor image of {got} bytes; a 64x64 image has {CURSOR_BYTES}")]
    CursorSize { got: usize },
    #[error("cursor hot spot ({x}, {y}) lies outside its 64x64 image")]
    CursorHotSpot { x: u32, y: u32 },
}

/// Bytes of a cursor image: 64 x 64 pixels of 4 bytes.
pub const CURSOR_BYTES: usize = 64 * 64 * 4;

/// rayvmm's end of the frame buffer.
#[derive(Debug)]
pub struct FrameBuffer {
    file: File,
    bytes: u64,
    /// Whether the GPU process holds this buffer already.
    given: bool,
}

impl FrameBuffer {
    /// A buffer of `bytes`, sealed so that its size never changes.
    pub fn new(bytes: u64) -> Result<FrameBuffer, FrameError> {
        if bytes > MAX_FRAME_BYTES {
            return Err(FrameError::TooLarge { bytes });
        }
        let memfd = memfd_create(
            "rayvmm-frames",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )
        .map_err(|e| FrameError::Create(e.to_string()))?;
        let file = File::from(memfd);
        file.set_len(bytes)
            .map_err(|e| FrameError::Create(e.to_string()))?;
        fcntl(
            &file,
            FcntlArg::F_ADD_SEALS(SealFlag::from_bits_truncate(FRAME_BUFFER_SEALS)),
        )
        .map_err(|e| FrameError::Create(e.to_string()))?;
        Ok(FrameBuffer {
            file,
            bytes,
            given: false,
        })
    }

    /// Its size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// What changed on scanout 0, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameUpdate {
    /// Nothing since the generation asked about.
    Unchanged,
    /// The scanout shows nothing, as of `generation`.
    Disabled { generation: u64 },
    /// `rect` of a `width` x `height` frame changed: `pixels` are its rows of `rect.width * 4`
    /// bytes, B, G, R, X in memory.
    Pixels {
        generation: u64,
        width: u32,
        height: u32,
        rect: FrameRect,
        pixels: Vec<u8>,
    },
    /// The change does not fit the buffer: make one of `bytes` and ask again.
    NeedsBuffer { bytes: u64 },
}

impl GpuProcess {
    /// Asks what changed on scanout 0 since generation `since` (and on its cursor since
    /// `cursor_since`), giving the process `buffer` first if it does not hold it yet, and
    /// reads the change from the buffer after checking the answer. The answer comes from the
    /// thread that serves the device, so one that does not come within `timeout`
    /// (`TubeError::Timeout`) means that thread is stuck.
    pub fn frame(
        &mut self,
        buffer: &mut FrameBuffer,
        (since, cursor_since): (u64, u64),
        timeout: Duration,
    ) -> Result<(FrameUpdate, CursorReply, DeviceProgress), GpuError> {
        self.tube.set_recv_timeout(Some(timeout))?;
        let new_buffer = (!buffer.given).then_some(buffer.bytes);
        let request = ToGpu::Frame {
            since,
            cursor_since,
            new_buffer,
        };
        if buffer.given {
            self.tube.send(&request)?;
        } else {
            self.tube.send_with_fds(&request, &[buffer.file.as_fd()])?;
            buffer.given = true;
        }
        match self.tube.recv::<FromGpu>()? {
            FromGpu::Frame(frame, cursor, progress) => {
                Ok((check(frame, buffer)?, check_cursor(cursor)?, progress))
            }
            FromGpu::Error(message) => Err(GpuError::Child(message)),
            other => Err(self.unexpected(other, "a frame")),
        }
    }
}

/// The checks [`GpuProcess::frame`] applies to a frame reply and a cursor reply, without a
/// GPU process: for the `frame_reply` fuzz target.
#[doc(hidden)]
pub fn check_reply(
    frame: FrameReply,
    cursor: CursorReply,
    buffer: &FrameBuffer,
) -> (
    Result<FrameUpdate, FrameError>,
    Result<CursorReply, FrameError>,
) {
    (check(frame, buffer), check_cursor(cursor))
}

/// Checks a cursor image's size and hot spot.
fn check_cursor(reply: CursorReply) -> Result<CursorReply, FrameError> {
    if let CursorReply::Image {
        hot_x,
        hot_y,
        pixels,
        ..
    } = &reply
    {
        if pixels.len() != CURSOR_BYTES {
            return Err(FrameError::CursorSize { got: pixels.len() });
        }
        if *hot_x >= 64 || *hot_y >= 64 {
            return Err(FrameError::CursorHotSpot {
                x: *hot_x,
                y: *hot_y,
            });
        }
    }
    Ok(reply)
}

/// Checks `reply` against the frame limits and `buffer`, and reads the pixels it announces.
fn check(reply: FrameReply, buffer: &FrameBuffer) -> Result<FrameUpdate, FrameError> {
    match reply {
        FrameReply::Unchanged => Ok(FrameUpdate::Unchanged),
        // The buffer was given with this very request: the device is not being served.
        FrameReply::NoBuffer => Ok(FrameUpdate::Unchanged),
        FrameReply::Disabled { generation } => Ok(FrameUpdate::Disabled { generation }),
        FrameReply::TooLarge { bytes } => {
            if bytes > MAX_FRAME_BYTES {
                return Err(FrameError::TooLarge { bytes });
            }
            if bytes <= buffer.bytes {
                return Err(FrameError::FalseTooLarge {
                    bytes,
                    capacity: buffer.bytes,
                });
            }
            Ok(FrameUpdate::NeedsBuffer { bytes })
        }
        FrameReply::Pixels {
            generation,
            width,
            height,
            rect,
        } => {
            let edge_ok = |e: u32| (1..=MAX_SCREENSHOT_EDGE).contains(&e);
            if !edge_ok(width) || !edge_ok(height) {
                return Err(FrameError::BadSize { width, height });
            }
            let inside = |start: u32, len: u32, limit: u32| {
                len > 0 && start.checked_add(len).is_some_and(|end| end <= limit)
            };
            if !inside(rect.x, rect.width, width) || !inside(rect.y, rect.height, height) {
                return Err(FrameError::BadRect {
                    rect,
                    width,
                    height,
                });
            }
            let bytes = u64::from(rect.width) * u64::from(rect.height) * 4;
            if bytes > buffer.bytes {
                return Err(FrameError::FalseTooLarge {
                    bytes,
                    capacity: buffer.bytes,
                });
            }
            let mut pixels = vec![0u8; bytes as usize];
            buffer
                .file
                .read_exact_at(&mut pixels, 0)
                .map_err(|e| FrameError::Read(e.to_string()))?;
            Ok(FrameUpdate::Pixels {
                generation,
                width,
                height,
                rect,
                pixels,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer_with(bytes: &[u8]) -> FrameBuffer {
        let buffer = FrameBuffer::new(bytes.len() as u64).unwrap();
        buffer.file.write_all_at(bytes, 0).unwrap();
        buffer
    }

    fn pixels(rect: FrameRect, width: u32, height: u32) -> FrameReply {
        FrameReply::Pixels {
            generation: 3,
            width,
            height,
            rect,
        }
    }

    const RECT_2X1: FrameRect = FrameRect {
        x: 1,
        y: 1,
        width: 2,
        height: 1,
    };

    #[test]
    fn frame_buffer_size_cannot_change() {
        let buffer = FrameBuffer::new(4096).unwrap();

        let grow = buffer.file.set_len(8192);
        let shrink = buffer.file.set_len(0);

        assert_eq!(
            (
                grow.is_err(),
                shrink.is_err(),
                buffer.file.metadata().unwrap().len()
            ),
            (true, true, 4096)
        );
    }

    #[test]
    fn pixels_inside_the_frame_are_read_from_the_buffer() {
        let buffer = buffer_with(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 9]);

        let update = check(pixels(RECT_2X1, 4, 4), &buffer).unwrap();

        assert_eq!(
            update,
            FrameUpdate::Pixels {
                generation: 3,
                width: 4,
                height: 4,
                rect: RECT_2X1,
                pixels: vec![1, 2, 3, 4, 5, 6, 7, 8],
            }
        );
    }

    #[test]
    fn rectangle_outside_the_frame_is_refused() {
        let buffer = buffer_with(&[0; 64]);

        let result = check(pixels(RECT_2X1, 2, 4), &buffer);

        assert_eq!(
            result,
            Err(FrameError::BadRect {
                rect: RECT_2X1,
                width: 2,
                height: 4
            })
        );
    }

    #[test]
    fn empty_rectangle_is_refused() {
        let buffer = buffer_with(&[0; 64]);
        let empty = FrameRect {
            width: 0,
            ..RECT_2X1
        };

        let result = check(pixels(empty, 4, 4), &buffer);

        assert!(matches!(result, Err(FrameError::BadRect { .. })));
    }

    #[test]
    fn frame_size_beyond_the_limit_is_refused() {
        let buffer = buffer_with(&[0; 64]);

        let result = check(pixels(RECT_2X1, 70_000, 4), &buffer);

        assert_eq!(
            result,
            Err(FrameError::BadSize {
                width: 70_000,
                height: 4
            })
        );
    }

    #[test]
    fn change_larger_than_the_buffer_is_refused() {
        let buffer = buffer_with(&[0; 4]);

        let result = check(pixels(RECT_2X1, 4, 4), &buffer);

        assert_eq!(
            result,
            Err(FrameError::FalseTooLarge {
                bytes: 8,
                capacity: 4
            })
        );
    }

    #[test]
    fn buffer_request_beyond_the_limit_is_refused() {
        let buffer = buffer_with(&[0; 4]);

        let result = check(
            FrameReply::TooLarge {
                bytes: MAX_FRAME_BYTES + 1,
            },
            &buffer,
        );

        assert_eq!(
            result,
            Err(FrameError::TooLarge {
                bytes: MAX_FRAME_BYTES + 1
            })
        );
    }

    fn cursor_image(hot_x: u32, hot_y: u32, bytes: usize) -> CursorReply {
        CursorReply::Image {
            generation: 1,
            x: 10,
            y: 10,
            hot_x,
            hot_y,
            pixels: vec![0; bytes],
        }
    }

    #[test]
    fn cursor_image_of_the_wrong_size_is_refused() {
        let result = check_cursor(cursor_image(0, 0, CURSOR_BYTES - 4));

        assert_eq!(
            result,
            Err(FrameError::CursorSize {
                got: CURSOR_BYTES - 4
            })
        );
    }

    #[test]
    fn cursor_hot_spot_outside_the_image_is_refused() {
        let result = check_cursor(cursor_image(64, 3, CURSOR_BYTES));

        assert_eq!(result, Err(FrameError::CursorHotSpot { x: 64, y: 3 }));
    }

    #[test]
    fn well_formed_cursor_image_is_accepted() {
        let result = check_cursor(cursor_image(63, 0, CURSOR_BYTES));

        assert_eq!(result, Ok(cursor_image(63, 0, CURSOR_BYTES)));
    }

    #[test]
    fn buffer_request_that_the_buffer_already_meets_is_refused() {
        let buffer = buffer_with(&[0; 64]);

        let result = check(FrameReply::TooLarge { bytes: 64 }, &buffer);

        assert_eq!(
            result,
            Err(FrameError::FalseTooLarge {
                bytes: 64,
                capacity: 64
            })
        );
    }
}
