//! rayvmm keeps QEMU's display socket: while a real guest runs on the jailed GPU, no socket
//! of ray-gpu is connected to QEMU. Read from the host's socket table (`ss`, which reads
//! every process's descriptors in /proc and each Unix socket's peer). And ray-gpu's log goes
//! into a pipe rayvmm reads, not into a host file.

mod guest_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use guest_support::{linux_args, scratch_dir, Rayvmm, GUEST_TIMEOUT};

/// One connected Unix socket from `ss -xapn`: its inode, its peer's inode, who holds it.
struct UnixSocket {
    inode: u64,
    peer: u64,
    pids: BTreeSet<u32>,
}

fn unix_sockets() -> Vec<UnixSocket> {
    let out = Command::new("ss")
        .args(["-xapnH"])
        .output()
        .expect("ss (iproute2) runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let inode = fields.get(5)?.parse().ok()?;
            let peer = fields.get(7)?.parse().ok()?;
            let pids = line
                .split("pid=")
                .skip(1)
                .filter_map(|p| p.split(',').next()?.parse().ok())
                .collect();
            Some(UnixSocket { inode, peer, pids })
        })
        .collect()
}

/// The pids holding the peer of each socket `pid` holds.
fn peers_of(pid: u32, sockets: &[UnixSocket]) -> BTreeSet<u32> {
    let holders: BTreeMap<u64, &BTreeSet<u32>> =
        sockets.iter().map(|s| (s.inode, &s.pids)).collect();
    sockets
        .iter()
        .filter(|s| s.pids.contains(&pid))
        .filter_map(|s| holders.get(&s.peer))
        .flat_map(|pids| pids.iter().copied())
        .filter(|p| *p != pid)
        .collect()
}

#[test]
fn gpu_process_holds_no_socket_connected_to_qemu_and_logs_into_a_pipe() {
    let dir = scratch_dir("display-socket");
    let mut run = Rayvmm::start(&linux_args(&dir, "2d", false, "rayos.hold=30"));
    let gpu: u32 = run
        .wait_for_log_word_after("(pid ", GUEST_TIMEOUT)
        .and_then(|w| w.trim_end_matches(',').parse().ok())
        .expect("rayvmm names the GPU process's pid");
    let qemu: u32 = run
        .wait_for_log_word_after("VM running: QEMU pid ", GUEST_TIMEOUT)
        .and_then(|w| w.parse().ok())
        .expect("rayvmm names QEMU's pid");
    // By the end of the workload the guest driver is bound: QEMU has sent the display socket.
    assert!(run.wait_for_serial("RAYOS-DONE", GUEST_TIMEOUT));
    let rayvmm = run.pid();

    let sockets = unix_sockets();
    let stderr = std::fs::read_link(format!("/proc/{gpu}/fd/2")).expect("ray-gpu's fd 2");

    let gpu_peers = peers_of(gpu, &sockets);
    let qemu_peers = peers_of(qemu, &sockets);
    run.signal("TERM");
    run.finish(Duration::from_secs(30));
    assert_eq!(gpu_peers, BTreeSet::from([rayvmm]));
    assert!(stderr.to_string_lossy().starts_with("pipe:["), "{stderr:?}");
    assert!(qemu_peers.contains(&rayvmm) && !qemu_peers.contains(&gpu));
}
