//! Shows the guest's display to VNC viewers: rayvmm's own RFB server, fed with the frames
//! the jailed GPU process hands over on request.
//!
//! QEMU cannot serve a vhost-user GPU's console over VNC without a DMA-BUF capable display
//! (a DRM render node), so the supervisor serves it instead. The server is view-only: it
//! drops every keyboard and pointer event, so a viewer can watch the guest but not reach it.
//! Frames are taken only while a viewer waits for one, at most [`MAX_FRAMES_PER_SECOND`].

use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rfb::{FrameStore, Image, Server, ServerOptions, ViewerEvent, ViewerEvents};
use thiserror::Error;

use super::frame::Frame;
use crate::vm_config::LoopbackVnc;

/// Most frames per second taken from the GPU process for viewers.
pub const MAX_FRAMES_PER_SECOND: u32 = 30;
/// How long the frame pump waits for a viewer's request before checking for shutdown.
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// Takes the current scanout from the GPU process.
pub type FrameSource = Box<dyn FnMut(Option<u64>) -> Result<Option<(u64, Frame)>, String> + Send>;

/// Why the VNC server could not start.
#[derive(Debug, Error)]
pub enum VncError {
    #[error("resolving VNC address {address}: {source}")]
    Resolve {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("VNC address {address} resolves to {resolved}, which is not a loopback address")]
    NotLoopback { address: String, resolved: String },
    #[error("listening for VNC viewers on {address}: {source}")]
    Listen {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the VNC server: {0}")]
    Start(#[source] std::io::Error),
}

/// Binds the listening socket for `vnc`, refusing any resolved address that is not loopback
/// (a `localhost` that /etc/hosts points elsewhere, say).
pub fn listen(vnc: &LoopbackVnc) -> Result<TcpListener, VncError> {
    let address = vnc.to_string();
    let resolved: Vec<_> = (vnc.host.as_str(), vnc.port)
        .to_socket_addrs()
        .map_err(|source| VncError::Resolve {
            address: address.clone(),
            source,
        })?
        .collect();
    if let Some(public) = resolved.iter().find(|a| !a.ip().is_loopback()) {
        return Err(VncError::NotLoopback {
            address,
            resolved: public.ip().to_string(),
        });
    }
    TcpListener::bind(&resolved[..]).map_err(|source| VncError::Listen { address, source })
}

/// The running server and the thread that feeds it frames; dropping it disconnects every
/// viewer and stops both.
pub struct VncDisplay {
    address: std::net::SocketAddr,
    store: Arc<FrameStore>,
    server: Option<Server>,
    pump: Option<JoinHandle<()>>,
}

impl VncDisplay {
    /// Serves on `listener` the frames `source` takes, starting from a black `width` x
    /// `height` screen; viewer comings and goings go to `report`.
    pub fn start(
        listener: TcpListener,
        width: u16,
        height: u16,
        source: FrameSource,
        report: impl Fn(String) + Send + Sync + 'static,
    ) -> Result<VncDisplay, VncError> {
        let store = FrameStore::new(Image::black(width, height));
        let events: ViewerEvents = Arc::new(move |event| report(describe(&event)));
        let server = Server::start(
            listener,
            Arc::clone(&store),
            ServerOptions::default(),
            events,
        )
        .map_err(VncError::Start)?;
        let pumped = Arc::clone(&store);
        let pump = std::thread::Builder::new()
            .name("vnc-frames".into())
            .spawn(move || pump_frames(&pumped, source))
            .map_err(VncError::Start)?;
        Ok(VncDisplay {
            address: server.local_addr(),
            store,
            server: Some(server),
            pump: Some(pump),
        })
    }

    /// Where viewers connect.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.address
    }
}

impl Drop for VncDisplay {
    fn drop(&mut self) {
        self.store.close();
        drop(self.server.take());
        if let Some(pump) = self.pump.take() {
            let _ = pump.join();
        }
    }
}

/// Takes a frame whenever a viewer waits for one, no faster than the frame rate allows: the
/// next frame the source has that the viewers have not seen, waiting for it up to
/// [`CHANGE_WAIT`] (so two loops at the same rate do not beat against each other); a failed
/// take (no scanout yet, or the guest turned it off) or no change answers with the last frame.
fn pump_frames(store: &FrameStore, mut source: FrameSource) {
    let interval = Duration::from_secs(1) / MAX_FRAMES_PER_SECOND;
    let mut shown = None;
    while !store.is_closed() {
        if !store.wait_for_demand(IDLE_WAIT) {
            continue;
        }
        let started = Instant::now();
        let taken = loop {
            match source(shown) {
                Ok(None) if started.elapsed() < CHANGE_WAIT => {
                    std::thread::sleep(CHANGE_POLL);
                }
                other => break other,
            }
        };
        match taken {
            Ok(Some((generation, frame))) => {
                match Image::new(frame.width, frame.height, frame.rgb) {
                    Ok(image) => {
                        shown = Some(generation);
                        store.publish(image);
                    }
                    Err(_) => store.publish_unchanged(),
                }
            }
            Ok(None) | Err(_) => store.publish_unchanged(),
        }
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

/// How long the pump waits for a frame newer than the viewers have.
const CHANGE_WAIT: Duration = Duration::from_millis(100);
/// How often it looks for one meanwhile.
const CHANGE_POLL: Duration = Duration::from_millis(2);

fn describe(event: &ViewerEvent) -> String {
    match event {
        ViewerEvent::Connected { peer, version } => {
            format!("VNC viewer {peer} connected (RFB {version})")
        }
        ViewerEvent::Rejected { peer, reason } => format!("VNC viewer {peer} rejected: {reason}"),
        ViewerEvent::Disconnected {
            peer,
            reason,
            ignored_input,
        } => match ignored_input {
            0 => format!("VNC viewer {peer} disconnected: {reason}"),
            n => format!(
                "VNC viewer {peer} disconnected: {reason} ({n} input events dropped: view-only)"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_on_port_zero_picks_a_free_loopback_port() {
        let vnc = LoopbackVnc {
            host: "127.0.0.1".into(),
            port: 0,
        };

        let listener = listen(&vnc).unwrap();

        let address = listener.local_addr().unwrap();
        assert!(
            address.ip().is_loopback() && address.port() != 0,
            "{address}"
        );
    }

    #[test]
    fn a_port_in_use_is_reported_with_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let vnc = LoopbackVnc {
            host: "127.0.0.1".into(),
            port: taken.local_addr().unwrap().port(),
        };

        let err = listen(&vnc).unwrap_err();

        assert!(matches!(err, VncError::Listen { .. }), "{err}");
        assert!(err.to_string().contains(&vnc.to_string()), "{err}");
    }
}
