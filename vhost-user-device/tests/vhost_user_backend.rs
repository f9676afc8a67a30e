//! The vhost-user backend served in-process to a frontend that speaks the wire format, with a
//! small stand-in device model (it answers each chain with its readable bytes reversed), so
//! the transport is tested on its own: negotiation, memory, rings, kicks and calls, config
//! space, refusals, the display socket, and disconnection.

mod support;

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use vhost_user_device::{Backend, DeviceHandle, DeviceModel, DisplayError, DisplaySocket};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use support::display_peer::{DisplayMessage, DisplayPeer};
use support::frontend::{
    Frontend, Region, GET_MAX_MEM_SLOTS, GET_PROTOCOL_FEATURES, GET_QUEUE_NUM, PROTOCOL_F_CONFIG,
    PROTOCOL_F_MQ, PROTOCOL_F_REPLY_ACK, SET_VRING_NUM, VHOST_USER_F_PROTOCOL_FEATURES,
    VIRTIO_F_RING_RESET, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
};
use support::guest::{Buffer, DriverQueue, GuestRam, USER_BASE};

const CONFIG_SIZE: usize = 24;
const DEVICE_FEATURES: u64 = 0b11;

/// Reverses what the driver wrote into what the driver lets it write.
#[derive(Default)]
struct ReverseDevice {
    config: [u8; CONFIG_SIZE],
    acked: u64,
    display: Option<DisplaySocket>,
}

impl DeviceModel for ReverseDevice {
    fn queue_count(&self) -> usize {
        2
    }

    fn features(&self) -> u64 {
        DEVICE_FEATURES
    }

    fn ack_features(&mut self, features: u64) {
        self.acked = features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) -> bool {
        let range = offset as usize..offset as usize + data.len();
        self.config
            .get(range)
            .map(|bytes| data.copy_from_slice(bytes))
            .is_some()
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) -> bool {
        let range = offset as usize..offset as usize + data.len();
        self.config
            .get_mut(range)
            .map(|bytes| bytes.copy_from_slice(data))
            .is_some()
    }

    fn set_display(&mut self, display: DisplaySocket) {
        self.display = Some(display);
    }

    /// Serves the ring the way the contract asks (and VirtioGpu does): notifications off while
    /// draining, back on (`avail_event` with EVENT_IDX), drain again if more arrived, and
    /// interrupt only if `needs_notification` says the driver wants it.
    fn process_queue(&mut self, memory: &GuestMemoryMmap, queue: &mut Queue, _: usize) -> bool {
        let mut used = false;
        loop {
            queue
                .disable_notification(memory)
                .expect("disable notification");
            while let Some(chain) = queue.pop_descriptor_chain(memory) {
                let head = chain.head_index();
                let mut reader = chain.clone().reader(memory).expect("reader");
                let mut writer = chain.writer(memory).expect("writer");
                let mut bytes = vec![0u8; reader.available_bytes()];
                std::io::Read::read_exact(&mut reader, &mut bytes).expect("read chain");
                bytes.reverse();
                let written = writer.available_bytes().min(bytes.len());
                std::io::Write::write_all(&mut writer, &bytes[..written]).expect("write chain");
                queue
                    .add_used(memory, head, written as u32)
                    .expect("add used");
                used = true;
            }
            if !queue
                .enable_notification(memory)
                .expect("enable notification")
            {
                break;
            }
        }
        used && queue
            .needs_notification(memory)
            .expect("needs notification")
    }

    fn fence_event(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn process_fences(&mut self, _: &GuestMemoryMmap, _: &mut Queue) -> bool {
        false
    }

    fn reset(&mut self) {
        *self = ReverseDevice::default();
    }
}

struct Setup {
    frontend: Frontend,
    ram: GuestRam,
    handle: DeviceHandle<ReverseDevice>,
    server: JoinHandle<Result<(), vhost_user_device::Error>>,
}

/// Serves `device` on a thread of its own (where the device lives) and returns the handle.
fn spawn_backend(
    device: ReverseDevice,
    socket: UnixStream,
) -> (
    DeviceHandle<ReverseDevice>,
    JoinHandle<Result<(), vhost_user_device::Error>>,
) {
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || {
        let backend = Backend::new(device)?;
        handle_tx.send(backend.handle()).expect("send the handle");
        backend.serve(socket)
    });
    (handle_rx.recv().expect("a device handle"), server)
}

/// A served backend with a negotiated frontend and 16 MiB of shared guest RAM.
fn setup() -> Setup {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let device = ReverseDevice {
        config: [7; CONFIG_SIZE],
        ..ReverseDevice::default()
    };
    let (handle, server) = spawn_backend(device, theirs);
    let frontend = Frontend::new(ours);
    frontend.negotiate(DEVICE_FEATURES);
    let ram = GuestRam::new(16 << 20);
    assert!(frontend.set_mem_table(&[ram.region()], &[ram.file.as_raw_fd()]));
    Setup {
        frontend,
        ram,
        handle,
        server,
    }
}

#[test]
fn negotiation_offers_transport_and_device_features() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let _served = spawn_backend(ReverseDevice::default(), theirs);
    let frontend = Frontend::new(ours);

    let offered = frontend.negotiate(DEVICE_FEATURES);
    let protocol = frontend.query_u64(GET_PROTOCOL_FEATURES);
    let queues = frontend.query_u64(GET_QUEUE_NUM);

    let wanted = VIRTIO_F_VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES | DEVICE_FEATURES;
    assert_eq!(offered & wanted, wanted);
    let wanted_protocol = PROTOCOL_F_MQ | PROTOCOL_F_REPLY_ACK | PROTOCOL_F_CONFIG;
    assert_eq!(protocol & wanted_protocol, wanted_protocol);
    assert_eq!(queues, 2);
}

#[test]
fn device_features_acked_by_the_driver_reach_the_model() {
    let setup = setup();

    let acked = setup.handle.with(|device| device.acked).unwrap();

    assert_eq!(acked, DEVICE_FEATURES);
}

/// A served backend negotiated the way QEMU 10 does for a Linux guest: EVENT_IDX acked, plus
/// VIRTIO_F_RING_RESET, which the backend never offered, in a SET_FEATURES without NEED_REPLY.
fn setup_like_qemu_for_linux() -> Setup {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let (handle, server) = spawn_backend(ReverseDevice::default(), theirs);
    let frontend = Frontend::new(ours);
    let offered = frontend.negotiate_protocol();
    assert_eq!(
        offered & VIRTIO_F_RING_RESET,
        0,
        "RING_RESET is not offered"
    );
    let wanted = VIRTIO_F_VERSION_1
        | VHOST_USER_F_PROTOCOL_FEATURES
        | VIRTIO_RING_F_EVENT_IDX
        | DEVICE_FEATURES;
    frontend.set_features((offered & wanted) | VIRTIO_F_RING_RESET);
    let ram = GuestRam::new(16 << 20);
    assert!(frontend.set_mem_table(&[ram.region()], &[ram.file.as_raw_fd()]));
    Setup {
        frontend,
        ram,
        handle,
        server,
    }
}

#[test]
fn features_never_offered_are_ignored_and_the_offered_ones_applied() {
    let setup = setup_like_qemu_for_linux();

    let acked = setup.handle.with(|device| device.acked).unwrap();

    assert_eq!(acked, DEVICE_FEATURES);
}

#[test]
fn interrupt_driven_driver_with_event_idx_gets_every_response() {
    let mut setup = setup_like_qemu_for_linux();
    let mut queue = DriverQueue::setup(&setup.frontend, 0, 64);
    let request = setup.ram.alloc(4, 8);
    let response = setup.ram.alloc(4, 8);
    queue.set_used_event(&setup.ram, 0);
    let mut answers = Vec::new();

    // One request at a time, each waited for by interrupt, as Linux's virtio_gpu does at
    // probe (GET_CAPSET_INFO 0, GET_CAPSET_INFO 1, ...).
    for round in 0..3u8 {
        setup.ram.write(request, &[round, 1, 2, 3]);
        let kicked = queue.push_and_kick_with_event_idx(
            &setup.ram,
            &[Buffer::readable(request, 4), Buffer::writable(response, 4)],
        );
        let used = queue.wait_interrupt(&setup.ram, Duration::from_secs(2));
        answers.push((
            kicked,
            used.map(|(_, len)| len),
            setup.ram.read(response, 4),
        ));
    }

    let expected: Vec<_> = (0..3u8)
        .map(|round| (true, Some(4), vec![3, 2, 1, round]))
        .collect();
    assert_eq!(answers, expected);
}

#[test]
fn device_writes_avail_event_when_event_idx_is_negotiated() {
    let mut setup = setup_like_qemu_for_linux();
    let mut queue = DriverQueue::setup(&setup.frontend, 0, 64);
    let request = setup.ram.alloc(1, 8);
    let response = setup.ram.alloc(1, 8);

    for _ in 0..2 {
        queue.roundtrip(
            &setup.ram,
            &[Buffer::readable(request, 1), Buffer::writable(response, 1)],
        );
    }

    assert_eq!(queue.avail_event(&setup.ram), 2);
}

#[test]
fn replaced_call_eventfd_receives_the_next_interrupt() {
    let mut setup = setup_like_qemu_for_linux();
    let mut queue = DriverQueue::setup(&setup.frontend, 0, 64);
    let request = setup.ram.alloc(1, 8);
    let response = setup.ram.alloc(1, 8);
    queue.set_used_event(&setup.ram, 0);
    let chain = [Buffer::readable(request, 1), Buffer::writable(response, 1)];
    queue.push_and_kick_with_event_idx(&setup.ram, &chain);
    queue
        .wait_interrupt(&setup.ram, Duration::from_secs(2))
        .expect("first interrupt");

    // QEMU sends SET_VRING_CALL again when the guest enables MSI-X.
    let old_call = std::mem::replace(
        &mut queue.call,
        vmm_sys_util::eventfd::EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK).unwrap(),
    );
    assert!(setup.frontend.set_vring_fd(
        support::frontend::SET_VRING_CALL,
        0,
        queue.call.as_raw_fd()
    ));
    queue.push_and_kick_with_event_idx(&setup.ram, &chain);
    let used = queue.wait_interrupt(&setup.ram, Duration::from_secs(2));

    assert!(used.is_some(), "the new call eventfd was signalled");
    assert!(old_call.read().is_err(), "the old call eventfd stays quiet");
}

#[test]
fn descriptor_chain_is_processed_and_used_entry_returned() {
    let mut setup = setup();
    let mut queue = DriverQueue::setup(&setup.frontend, 0, 64);
    let request = setup.ram.alloc(5, 8);
    let response = setup.ram.alloc(16, 8);
    setup.ram.write(request, b"hello");

    let (_, written) = queue.roundtrip(
        &setup.ram,
        &[Buffer::readable(request, 5), Buffer::writable(response, 16)],
    );

    assert_eq!(written, 5);
    assert_eq!(setup.ram.read(response, 5), b"olleh");
}

#[test]
fn second_queue_is_served_independently() {
    let mut setup = setup();
    let _control = DriverQueue::setup(&setup.frontend, 0, 64);
    let mut cursor = DriverQueue::setup(&setup.frontend, 1, 16);
    let request = setup.ram.alloc(3, 8);
    let response = setup.ram.alloc(3, 8);
    setup.ram.write(request, b"abc");

    cursor.roundtrip(
        &setup.ram,
        &[Buffer::readable(request, 3), Buffer::writable(response, 3)],
    );

    assert_eq!(setup.ram.read(response, 3), b"cba");
}

#[test]
fn queue_size_that_is_not_a_power_of_two_is_refused() {
    let setup = setup();

    let accepted = setup.frontend.vring_state(SET_VRING_NUM, 0, 100);

    assert!(!accepted);
}

#[test]
fn queue_size_above_1024_is_refused() {
    let setup = setup();

    let accepted = setup.frontend.vring_state(SET_VRING_NUM, 0, 2048);

    assert!(!accepted);
}

#[test]
fn ring_index_beyond_the_queue_count_is_refused() {
    let setup = setup();

    let accepted = setup.frontend.vring_state(SET_VRING_NUM, 7, 64);

    assert!(!accepted);
}

#[test]
fn ring_address_outside_shared_memory_is_refused() {
    let setup = setup();
    setup.frontend.vring_state(SET_VRING_NUM, 0, 64);

    let accepted = setup
        .frontend
        .set_vring_addr(0, USER_BASE + (16 << 20), USER_BASE, USER_BASE);

    assert!(!accepted);
}

#[test]
fn memory_region_larger_than_its_file_is_refused() {
    let setup = setup();
    let region = Region {
        size: setup.ram.size * 2,
        ..setup.ram.region()
    };

    let accepted = setup
        .frontend
        .set_mem_table(&[region], &[setup.ram.file.as_raw_fd()]);

    assert!(!accepted);
}

#[test]
fn memory_table_with_fewer_descriptors_than_regions_is_refused() {
    let setup = setup();
    let second = Region {
        guest_phys_addr: 1 << 30,
        user_addr: 1 << 40,
        ..setup.ram.region()
    };

    let accepted = setup
        .frontend
        .set_mem_table(&[setup.ram.region(), second], &[setup.ram.file.as_raw_fd()]);

    assert!(!accepted);
}

#[test]
fn connection_stays_usable_after_refusals() {
    let setup = setup();
    setup.frontend.vring_state(SET_VRING_NUM, 0, 3);
    setup.frontend.vring_state(SET_VRING_NUM, 9, 64);

    let queues = setup.frontend.query_u64(GET_QUEUE_NUM);

    assert_eq!(queues, 2);
}

#[test]
fn max_memory_slots_are_reported() {
    let setup = setup();

    let slots = setup.frontend.query_u64(GET_MAX_MEM_SLOTS);

    assert_eq!(slots, vhost_user_device::MAX_REGIONS as u64);
}

#[test]
fn get_vring_base_returns_the_next_available_index() {
    let mut setup = setup();
    let mut queue = DriverQueue::setup(&setup.frontend, 0, 64);
    let buffer = setup.ram.alloc(4, 8);
    for _ in 0..3 {
        queue.roundtrip(&setup.ram, &[Buffer::readable(buffer, 4)]);
    }

    let base = setup.frontend.get_vring_base(0);

    assert_eq!(base, 3);
}

#[test]
fn stopped_ring_is_not_processed() {
    let mut setup = setup();
    let mut queue = DriverQueue::setup(&setup.frontend, 0, 64);
    let buffer = setup.ram.alloc(4, 8);
    setup.frontend.get_vring_base(0);

    queue.push(&setup.ram, &[Buffer::readable(buffer, 4)]);
    queue.notify();
    thread::sleep(Duration::from_millis(200));

    let used_idx = u16::from_le_bytes(
        setup
            .ram
            .read(0x1_0000 + 16 * 64 + 6 + 2 * 64 + 2, 2)
            .try_into()
            .unwrap(),
    );
    assert_eq!(used_idx, 0);
}

#[test]
fn config_space_is_read_from_the_model() {
    let setup = setup();

    let config = setup.frontend.get_config(0, CONFIG_SIZE as u32);

    assert_eq!(config, vec![7u8; CONFIG_SIZE]);
}

#[test]
fn config_write_reaches_the_model() {
    let setup = setup();

    let accepted = setup.frontend.set_config(4, &[1, 0, 0, 0]);

    assert!(accepted);
    assert_eq!(
        setup
            .handle
            .with(|device| device.config[4..8].to_vec())
            .unwrap(),
        vec![1, 0, 0, 0]
    );
}

#[test]
fn config_read_outside_config_space_is_refused() {
    let setup = setup();

    let config = setup.frontend.get_config(20, 8);

    assert!(config.is_empty());
}

/// Connects a display socket and returns the frontend's end of it.
fn connect_display(setup: &Setup, modes: Vec<(u32, u32)>) -> DisplayPeer {
    let (ours, theirs) = UnixStream::pair().unwrap();
    assert!(setup.frontend.set_gpu_socket(theirs.as_raw_fd()));
    drop(theirs);
    let peer = DisplayPeer::start(ours, modes);
    assert!(setup
        .handle
        .with(|device| device.display.is_some())
        .unwrap());
    peer
}

fn display(setup: &Setup) -> DisplaySocket {
    setup
        .handle
        .with(|device| device.display.clone())
        .unwrap()
        .expect("display connected")
}

#[test]
fn display_socket_negotiates_no_protocol_features() {
    let setup = setup();

    let peer = connect_display(&setup, vec![(1024, 768)]);

    peer.wait_for(Duration::from_secs(5), |state| {
        state
            .messages
            .contains(&DisplayMessage::SetProtocolFeatures(0))
    });
    assert_eq!(
        peer.with(|state| state.messages.clone()),
        vec![
            DisplayMessage::GetProtocolFeatures,
            DisplayMessage::SetProtocolFeatures(0)
        ]
    );
}

#[test]
fn large_update_arrives_in_strips_under_the_size_limit() {
    let setup = setup();
    let peer = connect_display(&setup, vec![(1024, 768)]);
    let display = display(&setup);
    let pixels: Vec<u8> = (0..1024 * 768 * 4).map(|i| (i % 251) as u8).collect();

    display.scanout(0, 1024, 768).unwrap();
    display.update(0, (0, 0, 1024, 768), &pixels).unwrap();

    peer.wait_for(Duration::from_secs(10), |state| {
        state.framebuffers.get(&0).is_some_and(|fb| fb.2 == pixels)
    });
    let largest = peer.with(|state| {
        state
            .messages
            .iter()
            .filter_map(|m| match m {
                DisplayMessage::Update { bytes, .. } => Some(*bytes),
                _ => None,
            })
            .max()
    });
    assert!(largest.unwrap() <= vhost_user_device::MAX_UPDATE_PAYLOAD);
}

#[test]
fn update_before_any_scanout_is_refused() {
    let setup = setup();
    let _peer = connect_display(&setup, vec![(1024, 768)]);
    let display = display(&setup);

    let result = display.update(0, (0, 0, 1, 1), &[0; 4]);

    assert_eq!(result, Err(DisplayError::ScanoutDisabled(0)));
}

#[test]
fn update_outside_the_scanout_is_refused() {
    let setup = setup();
    let _peer = connect_display(&setup, vec![(1024, 768)]);
    let display = display(&setup);
    display.scanout(0, 64, 64).unwrap();

    let result = display.update(0, (60, 0, 8, 1), &[0; 32]);

    assert!(matches!(result, Err(DisplayError::OutOfBounds { .. })));
}

#[test]
fn update_with_wrong_pixel_count_is_refused() {
    let setup = setup();
    let _peer = connect_display(&setup, vec![(1024, 768)]);
    let display = display(&setup);
    display.scanout(0, 64, 64).unwrap();

    let result = display.update(0, (0, 0, 2, 2), &[0; 12]);

    assert_eq!(
        result,
        Err(DisplayError::PixelCount {
            got: 12,
            expected: 16
        })
    );
}

#[test]
fn display_info_comes_from_the_frontend() {
    let setup = setup();
    let _peer = connect_display(&setup, vec![(1280, 800)]);
    let display = display(&setup);

    let modes = display.display_info(Duration::from_secs(5)).unwrap();

    assert_eq!(
        (modes[0].width, modes[0].height, modes[0].enabled),
        (1280, 800, true)
    );
}

#[test]
fn cursor_messages_reach_the_display() {
    let setup = setup();
    let peer = connect_display(&setup, vec![(1024, 768)]);
    let display = display(&setup);
    let image = vec![0xaa; vhost_user_device::CURSOR_BYTES];

    display.cursor_update(0, (10, 20), (1, 2), &image).unwrap();
    display.cursor_move(0, (30, 40), true).unwrap();

    peer.wait_for(Duration::from_secs(5), |state| {
        state.messages.contains(&DisplayMessage::CursorPos {
            scanout: 0,
            x: 30,
            y: 40,
        })
    });
    assert!(peer.with(
        |state| state.messages.contains(&DisplayMessage::CursorUpdate {
            scanout: 0,
            x: 10,
            y: 20,
            hot_x: 1,
            hot_y: 2,
            image: image.clone()
        })
    ));
}

#[test]
fn frontend_disconnect_ends_serving_cleanly() {
    let setup = setup();

    drop(setup.frontend);

    let result = setup.server.join().expect("server thread");
    assert!(result.is_ok());
}
