//! A driver session over a connected vhost-user socket: negotiation, guest RAM, both queues
//! and the display peer, with the command helpers the driver replays and benchmarks share
//! (in-process backends and the jailed ray-gpu alike).

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use super::display_peer::DisplayPeer;
use super::frontend::Frontend;
use super::gpu_cmd::{mem_entries, response_type, HEADER, RESP_OK_NODATA};
use super::guest::{Buffer, DriverQueue, GuestRam};

/// Guest page size.
pub const PAGE: u64 = 4096;

/// A guest driver talking to a virtio-gpu backend.
pub struct Session {
    pub frontend: Frontend,
    pub ram: GuestRam,
    pub control: DriverQueue,
    pub cursor: DriverQueue,
    pub display: DisplayPeer,
    /// The device features the backend offered.
    pub offered: u64,
}

impl Session {
    /// Negotiates `wanted` device features on `socket`, shares `ram_bytes` of guest RAM,
    /// hands over a display socket answering with `modes`, and sets up both queues.
    pub fn connect(
        socket: UnixStream,
        wanted: u64,
        ram_bytes: u64,
        modes: Vec<(u32, u32)>,
    ) -> Session {
        let frontend = Frontend::new(socket);
        let offered = frontend.negotiate(wanted);
        let ram = GuestRam::new(ram_bytes);
        assert!(frontend.set_mem_table(&[ram.region()], &[ram.file.as_raw_fd()]));
        let (display_ours, display_theirs) = UnixStream::pair().expect("display socketpair");
        assert!(frontend.set_gpu_socket(display_theirs.as_raw_fd()));
        let display = DisplayPeer::start(display_ours, modes);
        let control = DriverQueue::setup(&frontend, 0, 256);
        let cursor = DriverQueue::setup(&frontend, 1, 16);
        Session {
            frontend,
            ram,
            control,
            cursor,
            display,
            offered,
        }
    }

    /// Places `parts` in guest RAM, one readable descriptor each, and returns their buffers.
    pub fn place(&mut self, parts: &[Vec<u8>]) -> Vec<Buffer> {
        parts
            .iter()
            .map(|part| {
                let gpa = self.ram.alloc(part.len() as u64, 8);
                self.ram.write(gpa, part);
                Buffer::readable(gpa, part.len() as u32)
            })
            .collect()
    }

    /// Sends one command (its parts in separate readable descriptors) on the control queue
    /// and returns the response once the device has used the chain.
    pub fn command(&mut self, parts: &[Vec<u8>], response_len: u32) -> Vec<u8> {
        let mut buffers = self.place(parts);
        let response = self.ram.alloc(u64::from(response_len), 8);
        buffers.push(Buffer::writable(response, response_len));
        self.control.roundtrip(&self.ram, &buffers);
        self.ram.read(response, response_len as usize)
    }

    /// Sends a command that answers OK_NODATA; panics otherwise.
    pub fn ok(&mut self, command: Vec<u8>) {
        let response = self.command(&[command], HEADER as u32);
        assert_eq!(response_type(&response), RESP_OK_NODATA);
    }

    /// Sends one command on the cursor queue.
    pub fn cursor_command(&mut self, command: Vec<u8>) {
        let buffers = self.place(&[command]);
        self.cursor.roundtrip(&self.ram, &buffers);
    }

    /// Guest pages for `bytes`, every other page so no two entries are contiguous, with the
    /// entry list split into page-sized descriptors as viogpudo queues it.
    pub fn scattered_backing(&mut self, bytes: u64) -> (Vec<u64>, Vec<Vec<u8>>) {
        let count = bytes.div_ceil(PAGE);
        let base = self.ram.alloc(count * 2 * PAGE, PAGE);
        let pages: Vec<u64> = (0..count).map(|i| base + 2 * i * PAGE).collect();
        let entries: Vec<(u64, u32)> = pages.iter().map(|&p| (p, PAGE as u32)).collect();
        let list = mem_entries(&entries);
        let parts = list.chunks(PAGE as usize).map(<[u8]>::to_vec).collect();
        (pages, parts)
    }

    /// Writes one color into the rectangle `(x, y, w, h)` of an image of `pitch` bytes per
    /// row that lives in the scattered `pages`.
    pub fn paint(
        &self,
        pages: &[u64],
        pitch: u64,
        (x, y, w, h): (u32, u32, u32, u32),
        color: [u8; 4],
    ) {
        for row in y..y + h {
            let mut line = Vec::with_capacity(w as usize * 4);
            for _ in 0..w {
                line.extend_from_slice(&color);
            }
            let mut offset = u64::from(row) * pitch + u64::from(x) * 4;
            let mut rest = &line[..];
            while !rest.is_empty() {
                let in_page = ((PAGE - offset % PAGE) as usize).min(rest.len());
                let gpa = pages[(offset / PAGE) as usize] + offset % PAGE;
                self.ram.write(gpa, &rest[..in_page]);
                rest = &rest[in_page..];
                offset += in_page as u64;
            }
        }
    }
}

/// A rectangle `(x, y, width, height)` filled with one B, G, R, X color.
pub type Fill = ((u32, u32, u32, u32), [u8; 4]);

/// A `width x height` B, G, R, X frame filled with `rects` in order over black.
pub fn expected_frame(width: u32, height: u32, rects: &[Fill]) -> Vec<u8> {
    let mut frame = vec![0u8; (width * height * 4) as usize];
    for &((x, y, w, h), color) in rects {
        for row in y..y + h {
            for col in x..x + w {
                let i = ((row * width + col) * 4) as usize;
                frame[i..i + 4].copy_from_slice(&color);
            }
        }
    }
    frame
}
