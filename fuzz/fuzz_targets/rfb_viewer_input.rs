//! Everything a VNC viewer can send to rayvmm's RFB server, from arbitrary bytes: the
//! handshake, then messages until the stream ends or is refused. Must never panic, and a
//! message that is accepted must respect the limits.
#![no_main]

use std::io::{Cursor, Read, Write};

use libfuzzer_sys::fuzz_target;
use rfb::{read_client_message, serve_handshake, Admission, ClientMessage, ServerInit, MAX_CUT_TEXT};

/// The viewer's bytes in; what the server answers is dropped.
struct Viewer<'a>(Cursor<&'a [u8]>);

impl Read for Viewer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Viewer<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut viewer = Viewer(Cursor::new(data));
    let init = ServerInit {
        width: 800,
        height: 600,
        name: "fuzz",
    };
    if serve_handshake(&mut viewer, Admission::Accept, &init).is_err() {
        return;
    }
    while let Ok(message) = read_client_message(&mut viewer) {
        match message {
            ClientMessage::CutText(length) => assert!(length <= MAX_CUT_TEXT),
            ClientMessage::SetPixelFormat(format) => {
                let mut out = Vec::new();
                format.convert_rgb(&[1, 2, 3], &mut out);
                assert_eq!(out.len(), format.bytes_per_pixel());
            }
            _ => {}
        }
    }
});
