//! The opening of an RFB connection (RFC 6143, section 7.1 and 7.3): protocol version,
//! security (None only: the server listens on loopback), ClientInit and ServerInit.

use std::io::{Read, Write};

use thiserror::Error;

use crate::pixel_format::PixelFormat;

/// The version this server offers.
const SERVER_VERSION: &[u8; 12] = b"RFB 003.008\n";
/// Security type "None".
const SECURITY_NONE: u8 = 1;
/// Longest desktop name sent.
const MAX_NAME: usize = 255;

/// The protocol versions a viewer can end up speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V3_3,
    V3_7,
    V3_8,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V3_3 => "3.3",
            Version::V3_7 => "3.7",
            Version::V3_8 => "3.8",
        })
    }
}

/// Why a viewer's connection ended during the handshake.
#[derive(Debug, Error)]
pub enum HandshakeError {
    #[error("connection failed during the handshake: {0}")]
    Io(#[from] std::io::Error),
    #[error("viewer sent {0:?}, not an RFB 3.x protocol version")]
    BadVersion(String),
    #[error("viewer chose security type {0}; only None (1) is offered")]
    BadSecurityType(u8),
    #[error("refused the viewer: {0}")]
    Refused(String),
}

/// Whether a new viewer may connect.
pub enum Admission<'a> {
    Accept,
    /// Refused with a reason the viewer is told.
    Refuse(&'a str),
}

/// What the server announces in ServerInit.
pub struct ServerInit<'a> {
    pub width: u16,
    pub height: u16,
    pub name: &'a str,
}

/// Runs the server side of the handshake on `stream` and returns the version spoken.
pub fn serve_handshake<S: Read + Write>(
    stream: &mut S,
    admission: Admission<'_>,
    init: &ServerInit<'_>,
) -> Result<Version, HandshakeError> {
    stream.write_all(SERVER_VERSION)?;
    let mut reply = [0u8; 12];
    stream.read_exact(&mut reply)?;
    let version = parse_version(&reply)?;
    match (version, admission) {
        (Version::V3_3, Admission::Refuse(reason)) => {
            stream.write_all(&0u32.to_be_bytes())?;
            write_reason(stream, reason)?;
            return Err(HandshakeError::Refused(reason.to_string()));
        }
        (Version::V3_3, Admission::Accept) => {
            stream.write_all(&u32::from(SECURITY_NONE).to_be_bytes())?;
        }
        (_, Admission::Refuse(reason)) => {
            stream.write_all(&[0])?;
            write_reason(stream, reason)?;
            return Err(HandshakeError::Refused(reason.to_string()));
        }
        (_, Admission::Accept) => {
            stream.write_all(&[1, SECURITY_NONE])?;
            let mut choice = [0u8];
            stream.read_exact(&mut choice)?;
            if choice[0] != SECURITY_NONE {
                if version == Version::V3_8 {
                    stream.write_all(&1u32.to_be_bytes())?;
                    write_reason(stream, "only security type None is offered")?;
                }
                return Err(HandshakeError::BadSecurityType(choice[0]));
            }
            // Version 3.7 sends no SecurityResult for None; 3.8 does.
            if version == Version::V3_8 {
                stream.write_all(&0u32.to_be_bytes())?;
            }
        }
    }
    // ClientInit's shared flag: every viewer shares the one display, whatever it asks.
    let mut shared = [0u8];
    stream.read_exact(&mut shared)?;
    let name = &init.name.as_bytes()[..init.name.len().min(MAX_NAME)];
    let mut server_init = Vec::with_capacity(24 + name.len());
    server_init.extend_from_slice(&init.width.to_be_bytes());
    server_init.extend_from_slice(&init.height.to_be_bytes());
    server_init.extend_from_slice(&PixelFormat::default().encode());
    server_init.extend_from_slice(&(name.len() as u32).to_be_bytes());
    server_init.extend_from_slice(name);
    stream.write_all(&server_init)?;
    Ok(version)
}

/// Parses `RFB xxx.yyy\n`. Minor versions other than 7 and 8 are served as 3.3, as the RFC
/// asks; later minors (Apple's 3.889) as 3.8.
fn parse_version(reply: &[u8; 12]) -> Result<Version, HandshakeError> {
    let bad = || HandshakeError::BadVersion(String::from_utf8_lossy(reply).into_owned());
    let digits = |range: std::ops::Range<usize>| -> Result<u32, HandshakeError> {
        let field = &reply[range];
        if !field.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        std::str::from_utf8(field)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    if &reply[..4] != b"RFB " || reply[7] != b'.' || reply[11] != b'\n' {
        return Err(bad());
    }
    let major = digits(4..7)?;
    let minor = digits(8..11)?;
    match (major, minor) {
        (3, 7) => Ok(Version::V3_7),
        (3, m) if m >= 8 => Ok(Version::V3_8),
        (3, _) => Ok(Version::V3_3),
        _ => Err(bad()),
    }
}

fn write_reason<W: Write>(stream: &mut W, reason: &str) -> std::io::Result<()> {
    stream.write_all(&(reason.len() as u32).to_be_bytes())?;
    stream.write_all(reason.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A viewer's bytes in, the server's bytes out.
    struct Script {
        input: std::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Script {
        fn new(input: &[u8]) -> Script {
            Script {
                input: std::io::Cursor::new(input.to_vec()),
                output: Vec::new(),
            }
        }
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const INIT: ServerInit<'static> = ServerInit {
        width: 800,
        height: 600,
        name: "guest",
    };

    fn server_init_bytes() -> Vec<u8> {
        let mut bytes = vec![0x03, 0x20, 0x02, 0x58];
        bytes.extend_from_slice(&PixelFormat::default().encode());
        bytes.extend_from_slice(&[0, 0, 0, 5]);
        bytes.extend_from_slice(b"guest");
        bytes
    }

    #[test]
    fn version_3_8_viewer_gets_security_none_and_a_security_result() {
        let mut script = Script::new(b"RFB 003.008\n\x01\x01");

        let version = serve_handshake(&mut script, Admission::Accept, &INIT).unwrap();

        let mut expected = b"RFB 003.008\n\x01\x01\0\0\0\0".to_vec();
        expected.extend(server_init_bytes());
        assert_eq!((version, script.output), (Version::V3_8, expected));
    }

    #[test]
    fn version_3_7_viewer_gets_no_security_result_for_none() {
        let mut script = Script::new(b"RFB 003.007\n\x01\x00");

        let version = serve_handshake(&mut script, Admission::Accept, &INIT).unwrap();

        let mut expected = b"RFB 003.008\n\x01\x01".to_vec();
        expected.extend(server_init_bytes());
        assert_eq!((version, script.output), (Version::V3_7, expected));
    }

    #[test]
    fn version_3_3_viewer_is_told_the_security_type() {
        let mut script = Script::new(b"RFB 003.003\n\x01");

        let version = serve_handshake(&mut script, Admission::Accept, &INIT).unwrap();

        let mut expected = b"RFB 003.008\n\0\0\0\x01".to_vec();
        expected.extend(server_init_bytes());
        assert_eq!((version, script.output), (Version::V3_3, expected));
    }

    #[test]
    fn unknown_minor_versions_fall_back_to_3_3_and_later_ones_to_3_8() {
        let versions = [b"RFB 003.005\n", b"RFB 003.889\n"].map(|v| parse_version(v).unwrap());

        assert_eq!(versions, [Version::V3_3, Version::V3_8]);
    }

    #[test]
    fn a_non_rfb_greeting_is_refused_naming_what_was_sent() {
        let mut script = Script::new(b"GET / HTTP/1");

        let err = serve_handshake(&mut script, Admission::Accept, &INIT).unwrap_err();

        assert_eq!(
            err.to_string(),
            "viewer sent \"GET / HTTP/1\", not an RFB 3.x protocol version"
        );
    }

    #[test]
    fn a_refused_3_8_viewer_gets_zero_security_types_and_the_reason() {
        let mut script = Script::new(b"RFB 003.008\n");

        let err = serve_handshake(&mut script, Admission::Refuse("busy"), &INIT).unwrap_err();

        assert!(matches!(err, HandshakeError::Refused(_)));
        assert_eq!(script.output, b"RFB 003.008\n\0\0\0\0\x04busy");
    }

    #[test]
    fn a_3_8_viewer_choosing_vnc_authentication_gets_a_failed_security_result() {
        let mut script = Script::new(b"RFB 003.008\n\x02");

        let err = serve_handshake(&mut script, Admission::Accept, &INIT).unwrap_err();

        assert!(matches!(err, HandshakeError::BadSecurityType(2)));
        assert!(script
            .output
            .starts_with(b"RFB 003.008\n\x01\x01\0\0\0\x01"));
    }

    #[test]
    fn a_viewer_that_hangs_up_mid_handshake_is_an_io_error() {
        let mut script = Script::new(b"RFB 003.0");

        let err = serve_handshake(&mut script, Admission::Accept, &INIT).unwrap_err();

        assert!(matches!(err, HandshakeError::Io(_)));
    }
}
