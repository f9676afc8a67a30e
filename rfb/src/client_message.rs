//! Messages a viewer sends after the handshake (RFC 6143, section 7.5), read with every
//! length checked: a viewer is another local user's program and may send anything.

use std::io::{self, Read};

use thiserror::Error;

use crate::pixel_format::{PixelFormat, PixelFormatError, PIXEL_FORMAT_LEN};

/// Longest clipboard text accepted (and discarded: the server is view-only).
pub const MAX_CUT_TEXT: u32 = 1 << 20;

/// Encodings this server can use for a viewer that lists them.
pub const ENCODING_RAW: i32 = 0;
/// Compressed: zlib-deflated, run-length and palette coded 64x64 tiles.
pub const ENCODING_ZRLE: i32 = 16;
/// Pseudo-encoding: the viewer can follow a framebuffer size change.
pub const ENCODING_DESKTOP_SIZE: i32 = -223;

/// Why a viewer's message stream cannot be followed.
#[derive(Debug, Error)]
pub enum MessageError {
    #[error("viewer closed the connection")]
    Closed,
    #[error("reading from the viewer failed: {0}")]
    Io(#[source] io::Error),
    #[error("viewer sent unknown message type {0}")]
    UnknownType(u8),
    #[error("viewer's SetPixelFormat: {0}")]
    PixelFormat(#[from] PixelFormatError),
    #[error("viewer's clipboard text is {0} bytes, more than the {MAX_CUT_TEXT} accepted")]
    CutTextTooLong(u32),
}

/// A part of the framebuffer, in framebuffer pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
}

/// One message from a viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    SetPixelFormat(PixelFormat),
    /// The encodings the viewer understands, in its order of preference.
    SetEncodings(Vec<i32>),
    UpdateRequest {
        incremental: bool,
        region: Region,
    },
    Key {
        down: bool,
        keysym: u32,
    },
    Pointer {
        buttons: u8,
        x: u16,
        y: u16,
    },
    /// Clipboard text of this many bytes, already read and dropped.
    CutText(u32),
}

/// Reads the next message; a clean end of stream before its first byte is [`MessageError::Closed`].
pub fn read_client_message<R: Read>(stream: &mut R) -> Result<ClientMessage, MessageError> {
    let mut kind = [0u8];
    match stream.read_exact(&mut kind) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(MessageError::Closed),
        other => other.map_err(MessageError::Io)?,
    }
    match kind[0] {
        0 => {
            let body: [u8; 3 + PIXEL_FORMAT_LEN] = read_array(stream)?;
            let format: &[u8; PIXEL_FORMAT_LEN] = body[3..].try_into().expect("sized above");
            Ok(ClientMessage::SetPixelFormat(PixelFormat::decode(format)?))
        }
        2 => {
            let [_, hi, lo] = read_array(stream)?;
            let count = usize::from(u16::from_be_bytes([hi, lo]));
            // At most 65535 entries of 4 bytes: bounded by the protocol itself.
            let mut raw = vec![0u8; count * 4];
            read_exact(stream, &mut raw)?;
            let encodings = raw
                .chunks_exact(4)
                .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ok(ClientMessage::SetEncodings(encodings))
        }
        3 => {
            let b: [u8; 9] = read_array(stream)?;
            let at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
            Ok(ClientMessage::UpdateRequest {
                incremental: b[0] != 0,
                region: Region {
                    x: at(1),
                    y: at(3),
                    width: at(5),
                    height: at(7),
                },
            })
        }
        4 => {
            let b: [u8; 7] = read_array(stream)?;
            Ok(ClientMessage::Key {
                down: b[0] != 0,
                keysym: u32::from_be_bytes([b[3], b[4], b[5], b[6]]),
            })
        }
        5 => {
            let b: [u8; 5] = read_array(stream)?;
            Ok(ClientMessage::Pointer {
                buttons: b[0],
                x: u16::from_be_bytes([b[1], b[2]]),
                y: u16::from_be_bytes([b[3], b[4]]),
            })
        }
        6 => {
            let b: [u8; 7] = read_array(stream)?;
            // A negative length is the extended-clipboard form; its size is the magnitude.
            let length = i32::from_be_bytes([b[3], b[4], b[5], b[6]]).unsigned_abs();
            if length > MAX_CUT_TEXT {
                return Err(MessageError::CutTextTooLong(length));
            }
            let skipped = io::copy(&mut stream.take(u64::from(length)), &mut io::sink())
                .map_err(MessageError::Io)?;
            if skipped != u64::from(length) {
                return Err(MessageError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(ClientMessage::CutText(length))
        }
        other => Err(MessageError::UnknownType(other)),
    }
}

fn read_exact<R: Read>(stream: &mut R, buf: &mut [u8]) -> Result<(), MessageError> {
    stream.read_exact(buf).map_err(MessageError::Io)
}

fn read_array<R: Read, const N: usize>(stream: &mut R) -> Result<[u8; N], MessageError> {
    let mut buf = [0u8; N];
    read_exact(stream, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<ClientMessage, MessageError> {
        read_client_message(&mut io::Cursor::new(bytes))
    }

    #[test]
    fn update_request_decodes_flag_and_region() {
        let message = read(&[3, 1, 0, 1, 0, 2, 0x03, 0x20, 0x02, 0x58]).unwrap();

        assert_eq!(
            message,
            ClientMessage::UpdateRequest {
                incremental: true,
                region: Region {
                    x: 1,
                    y: 2,
                    width: 800,
                    height: 600
                }
            }
        );
    }

    #[test]
    fn set_encodings_keeps_the_viewers_order_and_signed_values() {
        let message = read(&[2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21]).unwrap();

        assert_eq!(
            message,
            ClientMessage::SetEncodings(vec![ENCODING_RAW, ENCODING_DESKTOP_SIZE])
        );
    }

    #[test]
    fn set_pixel_format_checks_the_format() {
        let mut bytes = vec![0, 0, 0, 0];
        let mut format = PixelFormat::default().encode();
        format[0] = 12;
        bytes.extend_from_slice(&format);

        let err = read(&bytes).unwrap_err();

        assert!(matches!(
            err,
            MessageError::PixelFormat(PixelFormatError::BitsPerPixel(12))
        ));
    }

    #[test]
    fn key_and_pointer_events_decode() {
        let key = read(&[4, 1, 0, 0, 0, 0, 0xff, 0x0d]).unwrap();
        let pointer = read(&[5, 0b101, 0, 10, 0, 20]).unwrap();

        assert_eq!(
            (key, pointer),
            (
                ClientMessage::Key {
                    down: true,
                    keysym: 0xff0d
                },
                ClientMessage::Pointer {
                    buttons: 0b101,
                    x: 10,
                    y: 20
                }
            )
        );
    }

    #[test]
    fn clipboard_text_is_read_past_and_the_next_message_follows() {
        let mut stream = io::Cursor::new(vec![
            6, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c', 4, 0, 0, 0, 0, 0, 0, 1,
        ]);

        let cut = read_client_message(&mut stream).unwrap();
        let key = read_client_message(&mut stream).unwrap();

        assert_eq!(cut, ClientMessage::CutText(3));
        assert_eq!(
            key,
            ClientMessage::Key {
                down: false,
                keysym: 1
            }
        );
    }

    #[test]
    fn clipboard_text_over_the_limit_is_refused_before_reading_it() {
        let err = read(&[6, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]).unwrap_err();

        assert!(matches!(err, MessageError::CutTextTooLong(0x7fff_ffff)));
    }

    #[test]
    fn extended_clipboard_length_counts_by_magnitude() {
        let err = read(&[6, 0, 0, 0, 0x80, 0, 0, 0]).unwrap_err();

        assert!(matches!(err, MessageError::CutTextTooLong(0x8000_0000)));
    }

    #[test]
    fn truncated_clipboard_text_is_an_error() {
        let err = read(&[6, 0, 0, 0, 0, 0, 0, 9, b'a']).unwrap_err();

        assert!(matches!(err, MessageError::Io(_)));
    }

    #[test]
    fn unknown_message_type_is_named() {
        let err = read(&[150]).unwrap_err();

        assert_eq!(err.to_string(), "viewer sent unknown message type 150");
    }

    #[test]
    fn end_of_stream_between_messages_is_a_clean_close() {
        let err = read(&[]).unwrap_err();

        assert!(matches!(err, MessageError::Closed));
    }
}
