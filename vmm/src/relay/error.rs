//! Why the relay stopped: one variant per failure, each naming the side and the message.

use std::io;
use std::time::Duration;

use super::Side;

/// A failure of the relay, or a message it refused. Every one ends the relay; the side it
/// names tells whose fault it was ([`RelayError::side`]).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The peer closed its socket between two messages.
    #[error("{side} closed its vhost-user socket")]
    PeerClosed { side: Side },
    /// The relay was asked to stop (its owner dropped it).
    #[error("the relay was stopped")]
    Stopped,
    /// The peer closed its socket in the middle of a message.
    #[error("{side} closed its vhost-user socket in the middle of a message ({got} of {expected} bytes read)")]
    Truncated {
        side: Side,
        got: usize,
        expected: usize,
    },
    /// The peer sent more descriptors with one message than any message may carry.
    #[error("{side} sent more than {max} descriptors with one message")]
    TooManyFds { side: Side, max: usize },
    /// A header announced a payload larger than any message may have.
    #[error("{side} sent {request} ({code}) announcing {size} payload bytes, more than the {max} allowed")]
    Oversized {
        side: Side,
        request: &'static str,
        code: u32,
        size: u32,
        max: usize,
    },
    /// A message started but did not finish in time.
    #[error("{side} sent a partial message ({got} bytes) and nothing more within {timeout:?}")]
    ReadTimeout {
        side: Side,
        got: usize,
        timeout: Duration,
    },
    /// The peer did not take a message in time (it stopped reading its socket).
    #[error("{side} did not take a message within {timeout:?}")]
    WriteTimeout { side: Side, timeout: Duration },
    /// Receiving failed for a reason other than the peer closing.
    #[error("receiving from {side} failed: {source}")]
    Recv {
        side: Side,
        #[source]
        source: io::Error,
    },
    /// Sending failed for a reason other than the peer closing.
    #[error("sending to {side} failed: {source}")]
    Send {
        side: Side,
        #[source]
        source: io::Error,
    },
    /// Waiting on the sockets failed.
    #[error("polling the relay's sockets failed: {0}")]
    Poll(#[source] io::Error),
    /// A frontend message whose header flags are not version 1, optionally NEED_REPLY.
    #[error("QEMU sent {request} ({code}) with header flags {flags:#x} (expected version 1, optionally NEED_REPLY)")]
    RequestFlags {
        request: &'static str,
        code: u32,
        flags: u32,
    },
    /// A frontend request the relay does not carry (unknown, or not needed by a GPU).
    #[error("QEMU sent {request} ({code}), a request the relay does not carry")]
    NotCarried { request: &'static str, code: u32 },
    /// A frontend request whose payload has the wrong size.
    #[error("QEMU sent {request} with {size} payload bytes, expected {expected}")]
    RequestSize {
        request: &'static str,
        size: usize,
        expected: String,
    },
    /// A frontend request with the wrong number of descriptors.
    #[error("QEMU sent {request} with {got} descriptors, expected {expected}")]
    FdCount {
        request: &'static str,
        got: usize,
        expected: String,
    },
    /// A descriptor of the wrong kind (not guest RAM, not an eventfd, not a unix socket).
    #[error("QEMU sent {request} whose descriptor {index} is not {expected}: {found}")]
    FdKind {
        request: &'static str,
        index: usize,
        expected: &'static str,
        found: String,
    },
    /// A frontend request whose fields are out of range.
    #[error("QEMU sent {request} with {detail}")]
    RequestField {
        request: &'static str,
        detail: String,
    },
    /// NEED_REPLY on a request although REPLY_ACK was not negotiated: the backend would not
    /// answer and QEMU would wait for ever.
    #[error("QEMU sent {request} with NEED_REPLY before REPLY_ACK was negotiated")]
    NeedReplyWithoutAck { request: &'static str },
    /// A backend message while no reply was awaited (the backend only ever replies).
    #[error("ray-gpu sent {request} ({code}, flags {flags:#x}) while no reply was awaited")]
    Unsolicited {
        request: &'static str,
        code: u32,
        flags: u32,
    },
    /// A reply to another request than the one awaited.
    #[error("ray-gpu answered {got} ({code}) while the reply to {expected} was awaited")]
    WrongReply {
        expected: &'static str,
        got: &'static str,
        code: u32,
    },
    /// A reply whose header flags are not exactly version 1 plus REPLY.
    #[error("ray-gpu replied to {request} with header flags {flags:#x} (expected 0x5)")]
    ReplyFlags { request: &'static str, flags: u32 },
    /// A reply whose size is not the one the request calls for.
    #[error("ray-gpu replied to {request} with {size} payload bytes, expected {expected}")]
    ReplySize {
        request: &'static str,
        size: usize,
        expected: String,
    },
    /// A reply with descriptors attached (no reply the relay carries has any).
    #[error("ray-gpu replied to {request} with {count} descriptors attached")]
    ReplyFds { request: &'static str, count: usize },
    /// A reply whose fields contradict the request.
    #[error("ray-gpu replied to {request} with {detail}")]
    ReplyField {
        request: &'static str,
        detail: String,
    },
    /// No reply came within the bound.
    #[error("ray-gpu did not reply to {request} within {timeout:?}")]
    ReplyTimeout {
        request: &'static str,
        timeout: Duration,
    },
}

impl RelayError {
    /// Whose fault the error is: the side that broke the protocol or went away, `None` for
    /// the relay's own failures and for a requested stop.
    pub fn side(&self) -> Option<Side> {
        match self {
            RelayError::PeerClosed { side }
            | RelayError::Truncated { side, .. }
            | RelayError::TooManyFds { side, .. }
            | RelayError::Oversized { side, .. }
            | RelayError::ReadTimeout { side, .. }
            | RelayError::WriteTimeout { side, .. }
            | RelayError::Recv { side, .. }
            | RelayError::Send { side, .. } => Some(*side),
            RelayError::Stopped | RelayError::Poll(_) => None,
            RelayError::RequestFlags { .. }
            | RelayError::NotCarried { .. }
            | RelayError::RequestSize { .. }
            | RelayError::FdCount { .. }
            | RelayError::FdKind { .. }
            | RelayError::RequestField { .. }
            | RelayError::NeedReplyWithoutAck { .. } => Some(Side::Engine),
            RelayError::Unsolicited { .. }
            | RelayError::WrongReply { .. }
            | RelayError::ReplyFlags { .. }
            | RelayError::ReplySize { .. }
            | RelayError::ReplyFds { .. }
            | RelayError::ReplyField { .. }
            | RelayError::ReplyTimeout { .. } => Some(Side::Gpu),
        }
    }
}
