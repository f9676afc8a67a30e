//! ray-gpu's vhost-user request handler: arbitrary frontend bytes and descriptors, written
//! into a socketpair that `vhost_user_device::Backend::serve` serves with the real virtio-gpu
//! model (2D renderer) on its own thread. The vhost crate frames the messages; the handler
//! checks indexes, sizes, addresses, memory regions against their files and descriptor
//! kinds; kicks (eventfds arrive signalled) make the model process rings in the guest RAM the
//! input fills. Must never panic or hang, and must stop serving when the frontend goes.
//!
//! Input: a u16 length and that many bytes of guest RAM (a 64 KiB memfd, the descriptor kind
//! 0 below), then writes: a spec byte (bits 0-1: descriptor count, plus 8 with bit 4; bits
//! 2-3: kind: the guest-RAM memfd, a signalled eventfd, a unix stream socket, /dev/null), a
//! u16 length, that many bytes.
#![no_main]

mod common;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::Duration;

use common::{chunks, drain, make_fd, memfd, send_with_fds, FdKind, Input};
use devices::virtio_gpu::{Backend, BackendConfig, GpuConfig, Limits, RendererChoice, VirtioGpu};
use libfuzzer_sys::fuzz_target;

const MAX_HOST_BYTES: u64 = 8 << 20;

fn serve(socket: UnixStream) -> Result<(), vhost_user_device::Error> {
    let backend = Backend::init(&BackendConfig {
        renderer: RendererChoice::TwoD,
        surfaceless: None,
    })
    .expect("the 2D renderer");
    let config = GpuConfig {
        limits: Limits {
            max_host_bytes: MAX_HOST_BYTES,
            ..Default::default()
        },
        ..Default::default()
    };
    let gpu = VirtioGpu::new(backend, config).expect("a virtio-gpu");
    vhost_user_device::Backend::new(gpu)?.serve(socket)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let fill = input.u16() as usize;
    let ram = memfd(input.bytes(fill));
    let writes = chunks(&mut input, 64);

    let threads = common::threads();
    let (frontend, backend_end) = UnixStream::pair().unwrap();
    let server = thread::spawn(move || serve(backend_end));
    for write in &writes {
        let fds: Vec<OwnedFd> = write
            .fds
            .iter()
            .map(|&kind| match kind {
                FdKind::Memfd => ram.try_clone().unwrap(),
                other => make_fd(other),
            })
            .collect();
        if send_with_fds(&frontend, write.bytes, &fds).is_err() {
            break;
        }
    }
    let _ = frontend.shutdown(std::net::Shutdown::Write);
    // Read the replies until the backend stops serving and closes its end.
    drain(&frontend);
    // A refused message or a broken connection is an `Err`; a panic fails the target.
    let served = server.join().expect("the serving thread panicked");
    if common::verbose() {
        eprintln!("served: {served:?}");
    }
    // The display writer thread (one per GPU_SET_SOCKET) is detached: once the device is
    // gone, it must end too.
    assert!(
        common::wait_for_threads(threads, Duration::from_secs(2)),
        "a display thread outlived the device"
    );
});
