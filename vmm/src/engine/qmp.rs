//! A small QMP (QEMU Machine Protocol) client over an already-connected socket.
//!
//! rayvmm hands QEMU one end of a socketpair as `-chardev socket,fd=N` with
//! `-mon mode=control`, so no socket path exists on disk. After the greeting and the
//! `qmp_capabilities` handshake, a reader thread splits QEMU's output: command replies go to
//! the caller of [`Qmp::execute`]; events go to the engine's [`EventSink`].

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use serde_json::{json, Value};
use thiserror::Error;

use super::{EngineEvent, EventSink};

/// Longest line accepted from QEMU.
const MAX_LINE_BYTES: u64 = 1 << 20;

/// Why a QMP exchange failed.
#[derive(Debug, Error)]
pub enum QmpError {
    #[error("QMP socket I/O failed")]
    Io(#[from] std::io::Error),
    #[error("QMP connection closed by QEMU")]
    Closed,
    #[error("QMP sent something that is not a JSON object: {0:?}")]
    Malformed(String),
    #[error("QMP greeting missing (got {0:?})")]
    NoGreeting(String),
    #[error("QMP command {command} failed: {message}")]
    Command { command: String, message: String },
    #[error("QMP command {command} got no reply within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
}

/// A connected QMP session in command mode.
pub struct Qmp {
    writer: UnixStream,
    replies: Receiver<Result<Value, String>>,
    next_id: u64,
}

impl Qmp {
    /// Reads QEMU's greeting, negotiates capabilities, then hands the socket's read side to a
    /// reader thread that reports events to `sink`. `timeout` bounds the handshake (QEMU
    /// sends its greeting once it has started).
    pub fn connect(
        stream: UnixStream,
        sink: EventSink,
        timeout: Duration,
    ) -> Result<Qmp, QmpError> {
        stream.set_read_timeout(Some(timeout))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let greeting = read_message(&mut reader)?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::NoGreeting(greeting.to_string()));
        }
        let mut writer = stream;
        send(&mut writer, &json!({"execute": "qmp_capabilities"}))?;
        loop {
            let reply = read_message(&mut reader)?;
            if reply.get("return").is_some() {
                break;
            }
            if let Some(err) = reply.get("error") {
                return Err(command_error("qmp_capabilities", err));
            }
        }
        writer.set_read_timeout(None)?;
        let (tx, replies) = mpsc::channel();
        std::thread::Builder::new()
            .name("qmp-reader".into())
            .spawn(move || reader_loop(reader, tx, sink))?;
        Ok(Qmp {
            writer,
            replies,
            next_id: 1,
        })
    }

    /// Runs one command and returns its `return` value.
    pub fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        // Replies to commands that timed out earlier may still be queued: skip them by id.
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"execute": command, "id": id});
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        send(&mut self.writer, &msg)?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let reply = match self.replies.recv_timeout(left) {
                Ok(reply) => reply,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(QmpError::Timeout {
                        command: command.to_string(),
                        timeout,
                    })
                }
                Err(RecvTimeoutError::Disconnected) => return Err(QmpError::Closed),
            };
            let reply = reply.map_err(QmpError::Malformed)?;
            if reply.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(err) = reply.get("error") {
                return Err(command_error(command, err));
            }
            return Ok(reply.get("return").cloned().unwrap_or(Value::Null));
        }
    }
}

fn command_error(command: &str, err: &Value) -> QmpError {
    QmpError::Command {
        command: command.to_string(),
        message: err
            .get("desc")
            .and_then(Value::as_str)
            .unwrap_or("unknown error")
            .to_string(),
    }
}

fn send(writer: &mut UnixStream, msg: &Value) -> Result<(), QmpError> {
    let mut line = msg.to_string();
    line.push('\n');
    writer.write_all(line.as_bytes())?;
    Ok(())
}

fn read_message(reader: &mut BufReader<UnixStream>) -> Result<Value, QmpError> {
    let mut line = String::new();
    let n = reader.by_ref().take(MAX_LINE_BYTES).read_line(&mut line)?;
    if n == 0 {
        return Err(QmpError::Closed);
    }
    match serde_json::from_str::<Value>(&line) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(QmpError::Malformed(line.trim_end().to_string())),
    }
}

fn reader_loop(
    mut reader: BufReader<UnixStream>,
    replies: Sender<Result<Value, String>>,
    sink: EventSink,
) {
    loop {
        match read_message(&mut reader) {
            Ok(msg) => {
                if let Some(event) = msg.get("event").and_then(Value::as_str) {
                    if let Some(e) = engine_event(event, &msg) {
                        sink(e);
                    }
                } else if replies.send(Ok(msg)).is_err() {
                    return;
                }
            }
            Err(QmpError::Malformed(line)) => {
                let _ = replies.send(Err(line));
            }
            Err(_) => return,
        }
    }
}

/// Translates the QMP events the supervisor cares about.
pub fn engine_event(event: &str, msg: &Value) -> Option<EngineEvent> {
    match event {
        "SHUTDOWN" => {
            let data = msg.get("data");
            Some(EngineEvent::ShuttingDown {
                guest: data
                    .and_then(|d| d.get("guest"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                reason: data
                    .and_then(|d| d.get("reason"))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string(),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn fake_qemu(
        script: &'static [&'static str],
    ) -> (UnixStream, std::thread::JoinHandle<Vec<String>>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let handle = std::thread::spawn(move || {
            let mut reader = BufReader::new(theirs.try_clone().unwrap());
            let mut writer = theirs;
            let mut received = Vec::new();
            writer
                .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .unwrap();
            for reply in script {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                received.push(line.trim_end().to_string());
                writer.write_all(reply.as_bytes()).unwrap();
            }
            received
        });
        (ours, handle)
    }

    fn null_sink() -> EventSink {
        Arc::new(|_| {})
    }

    #[test]
    fn execute_returns_the_reply_with_the_matching_id() {
        let (stream, qemu) = fake_qemu(&[
            "{\"return\": {}}\n",
            "{\"event\": \"RESUME\"}\n{\"return\": {\"status\": \"running\"}, \"id\": 1}\n",
        ]);
        let mut qmp = Qmp::connect(stream, null_sink(), Duration::from_secs(5)).unwrap();

        let reply = qmp
            .execute("query-status", None, Duration::from_secs(5))
            .unwrap();

        assert_eq!(reply, json!({"status": "running"}));
        assert_eq!(
            qemu.join().unwrap(),
            vec![
                r#"{"execute":"qmp_capabilities"}"#.to_string(),
                r#"{"execute":"query-status","id":1}"#.to_string()
            ]
        );
    }

    #[test]
    fn command_error_carries_qemus_description() {
        let (stream, _qemu) = fake_qemu(&[
            "{\"return\": {}}\n",
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no such display\"}, \"id\": 1}\n",
        ]);
        let mut qmp = Qmp::connect(stream, null_sink(), Duration::from_secs(5)).unwrap();

        let err = qmp
            .execute("screendump", None, Duration::from_secs(5))
            .unwrap_err();

        assert_eq!(
            err.to_string(),
            "QMP command screendump failed: no such display"
        );
    }

    #[test]
    fn shutdown_event_reaches_the_sink() {
        let (stream, _qemu) = fake_qemu(&[
            "{\"return\": {}}\n{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}\n",
        ]);
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let sink: EventSink = Arc::new(move |e| tx.lock().unwrap().send(e).unwrap());
        let _qmp = Qmp::connect(stream, sink, Duration::from_secs(5)).unwrap();

        let event = rx.recv_timeout(Duration::from_secs(5)).unwrap();

        assert_eq!(
            event,
            EngineEvent::ShuttingDown {
                guest: true,
                reason: "guest-shutdown".into()
            }
        );
    }
}
