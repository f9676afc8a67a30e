//! rayvmm's checks of the GPU process's answer to "what changed?": an arbitrary `FrameReply`
//! and `CursorReply` (every field the fuzzer's) through the checks `GpuProcess::frame`
//! applies, against a small sealed frame buffer. Must never panic, never read more than the
//! buffer holds, and what is accepted must respect the limits.
//!
//! Input: buffer size (u32, taken modulo 1 MiB), a frame variant byte and its fields, a
//! cursor variant byte and its fields (an image's length is a u16).
#![no_main]

mod common;

use common::Input;
use control::messages::{CursorReply, FrameRect, FrameReply};
use libfuzzer_sys::fuzz_target;
use vmm::gpu_process::{
    check_frame_reply, FrameBuffer, FrameUpdate, MAX_FRAME_BYTES, MAX_SCREENSHOT_EDGE,
};

const CURSOR_BYTES: usize = 64 * 64 * 4;

fn frame(input: &mut Input) -> FrameReply {
    match input.u8() % 5 {
        0 => FrameReply::Unchanged,
        1 => FrameReply::Disabled {
            generation: input.u64(),
        },
        2 => FrameReply::Pixels {
            generation: input.u64(),
            width: input.u32(),
            height: input.u32(),
            rect: FrameRect {
                x: input.u32(),
                y: input.u32(),
                width: input.u32(),
                height: input.u32(),
            },
        },
        3 => FrameReply::TooLarge { bytes: input.u64() },
        _ => FrameReply::NoBuffer,
    }
}

fn cursor(input: &mut Input) -> CursorReply {
    match input.u8() % 4 {
        0 => CursorReply::Unchanged,
        1 => CursorReply::Hidden {
            generation: input.u64(),
        },
        2 => CursorReply::Moved {
            generation: input.u64(),
            x: input.u32(),
            y: input.u32(),
        },
        _ => CursorReply::Image {
            generation: input.u64(),
            x: input.u32(),
            y: input.u32(),
            hot_x: input.u32(),
            hot_y: input.u32(),
            pixels: vec![0x5a; usize::from(input.u16())],
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let buffer_bytes = u64::from(input.u32() % (1 << 20));
    let frame_reply = frame(&mut input);
    let cursor_reply = cursor(&mut input);
    let buffer = FrameBuffer::new(buffer_bytes).expect("a small frame buffer");

    let (frame_result, cursor_result) =
        check_frame_reply(frame_reply, cursor_reply.clone(), &buffer);

    match frame_result {
        Ok(FrameUpdate::Pixels {
            width,
            height,
            rect,
            pixels,
            ..
        }) => {
            let edge = 1..=MAX_SCREENSHOT_EDGE;
            assert!(edge.contains(&width) && edge.contains(&height));
            assert!(rect.width > 0 && rect.height > 0);
            assert!(u64::from(rect.x) + u64::from(rect.width) <= u64::from(width));
            assert!(u64::from(rect.y) + u64::from(rect.height) <= u64::from(height));
            let bytes = u64::from(rect.width) * u64::from(rect.height) * 4;
            assert_eq!(pixels.len() as u64, bytes);
            assert!(bytes <= buffer.bytes());
        }
        Ok(FrameUpdate::NeedsBuffer { bytes }) => {
            assert!(bytes > buffer.bytes() && bytes <= MAX_FRAME_BYTES);
            // rayvmm makes the buffer asked for next: that must work.
            FrameBuffer::new(bytes).expect("the buffer a TooLarge asks for");
        }
        Ok(FrameUpdate::Unchanged) | Ok(FrameUpdate::Disabled { .. }) | Err(_) => {}
    }
    match cursor_result {
        Ok(CursorReply::Image {
            hot_x,
            hot_y,
            pixels,
            ..
        }) => {
            assert_eq!(pixels.len(), CURSOR_BYTES);
            assert!(hot_x < 64 && hot_y < 64);
        }
        Ok(other) => assert_eq!(other, cursor_reply),
        Err(_) => assert!(matches!(cursor_reply, CursorReply::Image { .. })),
    }
});
