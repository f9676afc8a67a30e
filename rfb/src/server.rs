//! The listening server: accepts viewers, runs each one's session, and stops them all when
//! dropped.
//!
//! Each viewer has two threads: one reads its messages (update requests, pixel format,
//! encodings; input is counted and dropped, the server is view-only) and one answers its
//! update requests from the [`FrameStore`], ZRLE-encoded when the viewer lists ZRLE and Raw
//! otherwise.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::client_message::{
    read_client_message, ClientMessage, Region, ENCODING_DESKTOP_SIZE, ENCODING_ZRLE,
};
use crate::frame_store::{lock, FrameStore, Wake};
use crate::handshake::{serve_handshake, Admission, HandshakeError, ServerInit, Version};
use crate::image::Image;
use crate::pixel_format::PixelFormat;
use crate::update::{changed_regions, clip, write_desktop_size, write_update, PixelEncoding};
use crate::zrle::ZrleEncoder;

/// Bytes buffered before a write reaches the viewer's socket.
const WRITE_BUFFER: usize = 256 * 1024;

/// How the server treats its viewers.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The desktop name viewers show in their title bar.
    pub name: String,
    /// Viewers connected at once; one more is told why it is refused.
    pub max_viewers: usize,
    /// How long a viewer may take to finish the handshake.
    pub handshake_timeout: Duration,
    /// How long one write to a viewer may block before the viewer is dropped.
    pub write_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            name: "RayOS guest".into(),
            max_viewers: 4,
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// What happened to a viewer, for the server's owner to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerEvent {
    Connected {
        peer: SocketAddr,
        version: Version,
    },
    /// It never got past the handshake.
    Rejected {
        peer: SocketAddr,
        reason: String,
    },
    Disconnected {
        peer: SocketAddr,
        reason: String,
        /// Keyboard, pointer and clipboard messages dropped (the server is view-only).
        ignored_input: u64,
    },
}

/// Where the server reports [`ViewerEvent`]s; called from its threads.
pub type ViewerEvents = Arc<dyn Fn(ViewerEvent) + Send + Sync>;

/// A running server. Dropping it disconnects every viewer and joins its threads.
pub struct Server {
    address: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    store: Arc<FrameStore>,
    options: ServerOptions,
    events: ViewerEvents,
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// A second handle on each viewer's socket, to disconnect it when stopping.
    viewers: Mutex<HashMap<u64, TcpStream>>,
    sessions: Mutex<Vec<JoinHandle<()>>>,
}

impl Server {
    /// Serves `store`'s frames to viewers connecting to `listener`.
    pub fn start(
        listener: TcpListener,
        store: Arc<FrameStore>,
        options: ServerOptions,
        events: ViewerEvents,
    ) -> std::io::Result<Server> {
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store,
            options,
            events,
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            viewers: Mutex::new(HashMap::new()),
            sessions: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("vnc-accept".into())
            .spawn(move || accept_viewers(listener, accepting))?;
        Ok(Server {
            address,
            shared,
            accept: Some(accept),
        })
    }

    /// The address viewers connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which sees `stopping` and ends.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in lock(&self.shared.viewers).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let sessions = std::mem::take(&mut *lock(&self.shared.sessions));
        for session in sessions {
            let _ = session.join();
        }
    }
}

/// Connections served at once per allowed viewer, refused ones included; beyond that a new
/// connection is closed unanswered, so a flood of connections cannot make a thread each.
const CONNECTIONS_PER_VIEWER: usize = 2;
/// Pause after a failed accept (out of descriptors, say), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

fn accept_viewers(listener: TcpListener, shared: Arc<Shared>) {
    let limit = shared
        .options
        .max_viewers
        .saturating_mul(CONNECTIONS_PER_VIEWER);
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            std::thread::sleep(ACCEPT_RETRY);
            continue;
        };
        let live = {
            let mut sessions = lock(&shared.sessions);
            sessions.retain(|s| !s.is_finished());
            sessions.len()
        };
        if live >= limit {
            drop(stream);
            continue;
        }
        let session_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("vnc-viewer".into())
            .spawn(move || run_viewer(stream, session_shared));
        if let Ok(handle) = spawned {
            lock(&shared.sessions).push(handle);
        }
    }
}

/// Runs one viewer from handshake to disconnection.
fn run_viewer(mut stream: TcpStream, shared: Arc<Shared>) {
    let Ok(peer) = stream.peer_addr() else { return };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let admission = {
        let mut viewers = lock(&shared.viewers);
        match (
            viewers.len() < shared.options.max_viewers,
            stream.try_clone(),
        ) {
            (true, Ok(handle)) => {
                viewers.insert(id, handle);
                None
            }
            (false, _) => Some(format!(
                "too many viewers ({} connected)",
                shared.options.max_viewers
            )),
            (true, Err(e)) => Some(format!("cannot track the connection: {e}")),
        }
    };
    let result = serve_viewer(&mut stream, &shared, admission.as_deref(), peer);
    if admission.is_none() {
        lock(&shared.viewers).remove(&id);
    }
    let _ = stream.shutdown(Shutdown::Both);
    let event = match result {
        Ok((reason, ignored_input)) => ViewerEvent::Disconnected {
            peer,
            reason,
            ignored_input,
        },
        Err(e) => ViewerEvent::Rejected {
            peer,
            reason: e.to_string(),
        },
    };
    (shared.events)(event);
}

/// The handshake, then the session; `Ok` carries why the session ended and how much input
/// was dropped.
fn serve_viewer(
    stream: &mut TcpStream,
    shared: &Arc<Shared>,
    refusal: Option<&str>,
    peer: SocketAddr,
) -> Result<(String, u64), HandshakeError> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(shared.options.handshake_timeout))?;
    stream.set_write_timeout(Some(shared.options.write_timeout))?;
    let (image, _) = shared.store.latest();
    let init = ServerInit {
        width: image.width(),
        height: image.height(),
        name: &shared.options.name,
    };
    let admission = match refusal {
        Some(reason) => Admission::Refuse(reason),
        None => Admission::Accept,
    };
    let version = serve_handshake(stream, admission, &init)?;
    stream.set_read_timeout(None)?;
    (shared.events)(ViewerEvent::Connected { peer, version });
    let session = Arc::new(Session {
        state: Mutex::new(SessionState::default()),
        wake: Condvar::new(),
    });
    let as_wake: Arc<dyn Wake> = session.clone();
    let weak: Weak<dyn Wake> = Arc::downgrade(&as_wake);
    shared.store.subscribe(weak);
    let reader_stream = stream.try_clone()?;
    let reader_session = Arc::clone(&session);
    let reader_store = Arc::clone(&shared.store);
    let reader = std::thread::Builder::new()
        .name("vnc-viewer-in".into())
        .spawn(move || read_messages(reader_stream, &reader_session, &reader_store))?;
    let sender = UpdateSender {
        store: &shared.store,
        session: &session,
        size: (image.width(), image.height()),
        shown: None,
        zrle: None,
    };
    let reason = sender.run(stream);
    let _ = stream.shutdown(Shutdown::Both);
    let _ = reader.join();
    let ignored = lock(&session.state).ignored_input;
    Ok((reason, ignored))
}

/// An update request not answered yet.
#[derive(Clone, Copy)]
struct Request {
    incremental: bool,
    region: Region,
    /// The store's generation when it arrived: it is answered from a newer frame, so a
    /// viewer never sees a picture older than its request.
    after: u64,
}

/// What a viewer has asked for so far.
#[derive(Default)]
struct SessionState {
    format: PixelFormat,
    desktop_size: bool,
    /// The viewer listed ZRLE: it is preferred to Raw, whatever else the viewer lists.
    zrle: bool,
    request: Option<Request>,
    closed: Option<String>,
    ignored_input: u64,
}

struct Session {
    state: Mutex<SessionState>,
    wake: Condvar,
}

impl Wake for Session {
    fn wake(&self) {
        let _held = lock(&self.state);
        self.wake.notify_all();
    }
}

/// Reads the viewer's messages into its session until the connection ends.
fn read_messages(mut stream: TcpStream, session: &Session, store: &FrameStore) {
    loop {
        let message = read_client_message(&mut stream);
        let mut state = lock(&session.state);
        match message {
            Ok(ClientMessage::SetPixelFormat(format)) => state.format = format,
            Ok(ClientMessage::SetEncodings(encodings)) => {
                state.desktop_size = encodings.contains(&ENCODING_DESKTOP_SIZE);
                state.zrle = encodings.contains(&ENCODING_ZRLE);
            }
            Ok(ClientMessage::UpdateRequest {
                incremental,
                region,
            }) => {
                state.request = Some(Request {
                    incremental,
                    region,
                    after: store.generation(),
                });
                session.wake.notify_all();
            }
            Ok(
                ClientMessage::Key { .. }
                | ClientMessage::Pointer { .. }
                | ClientMessage::CutText(_),
            ) => {
                state.ignored_input += 1;
            }
            Err(e) => {
                state.closed = Some(e.to_string());
                session.wake.notify_all();
                return;
            }
        }
    }
}

/// Answers one viewer's update requests.
struct UpdateSender<'a> {
    store: &'a FrameStore,
    session: &'a Session,
    /// The framebuffer size the viewer knows.
    size: (u16, u16),
    /// What the viewer shows now, when it is known whole.
    shown: Option<Arc<Image>>,
    /// The viewer's ZRLE encoder, made at its first ZRLE update and kept for the rest of
    /// the connection (its zlib stream must be).
    zrle: Option<ZrleEncoder>,
}

/// A request ready to answer, with what the viewer asked for at the time.
struct Pending {
    incremental: bool,
    region: Region,
    format: PixelFormat,
    desktop_size: bool,
    zrle: bool,
}

impl UpdateSender<'_> {
    /// Sends updates until the viewer or the server goes; returns why.
    fn run(mut self, stream: &TcpStream) -> String {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, stream);
        loop {
            let pending = match self.next_request() {
                Ok(pending) => pending,
                Err(reason) => return reason,
            };
            if let Err(e) = self.answer(&mut out, pending).and_then(|()| out.flush()) {
                return format!("writing to the viewer failed: {e}");
            }
        }
    }

    /// Waits for a request that can be answered: once a frame newer than the request exists
    /// (asking the store for one meanwhile).
    fn next_request(&self) -> Result<Pending, String> {
        let mut state = lock(&self.session.state);
        loop {
            if let Some(reason) = state.closed.take() {
                return Err(reason);
            }
            if self.store.is_closed() {
                return Err("the server stopped".into());
            }
            if let Some(request) = state.request {
                if self.store.generation() > request.after {
                    state.request = None;
                    return Ok(Pending {
                        incremental: request.incremental,
                        region: request.region,
                        format: state.format,
                        desktop_size: state.desktop_size,
                        zrle: state.zrle,
                    });
                }
                self.store.request_frame();
            }
            state = self
                .session
                .wake
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn answer<W: Write>(&mut self, out: &mut W, pending: Pending) -> std::io::Result<()> {
        let (latest, generation) = self.store.latest();
        let latest_size = (latest.width(), latest.height());
        let frame = match (latest_size == self.size, pending.desktop_size) {
            (true, _) => latest,
            (false, true) => {
                // The viewer resizes, then asks again for the whole new framebuffer.
                self.size = latest_size;
                self.shown = None;
                return write_desktop_size(out, latest_size.0, latest_size.1);
            }
            (false, false) => Arc::new(latest.fitted(self.size.0, self.size.1)),
        };
        let rects = match (&self.shown, pending.incremental) {
            (Some(shown), true) => changed_regions(shown, &frame, pending.region),
            _ => clip(pending.region, self.size.0, self.size.1)
                .into_iter()
                .collect(),
        };
        if rects.is_empty() && pending.incremental {
            // Nothing new to show: the request stays until something changes.
            let mut state = lock(&self.session.state);
            state.request.get_or_insert(Request {
                incremental: true,
                region: pending.region,
                after: generation,
            });
            return Ok(());
        }
        let encoding = match pending.zrle {
            true => PixelEncoding::Zrle(self.zrle.get_or_insert_with(ZrleEncoder::new)),
            false => PixelEncoding::Raw,
        };
        write_update(out, &frame, &rects, &pending.format, encoding)?;
        self.shown = Some(frame);
        Ok(())
    }
}
