//! The floor of a small-command round trip: a second process that waits on one eventfd and
//! writes another, and nothing else. A command through the jailed ray-gpu needs at least this
//! (a kick eventfd to the device's process, a call eventfd back); the rest of its time is
//! the vhost-user loop, the rings and the device.
//!
//! Both ends wait as the real ones do: the child in epoll_wait on the "kick", then reads it
//! and writes the "call", as the vhost-user serving loop does; the timing side writes the
//! kick, polls the call eventfd and reads it, as the test frontend's driver does.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

/// Two eventfds and the child process that answers one with the other.
pub struct EventfdPingPong {
    /// Written here, read by the child (the "kick").
    ping: EventFd,
    /// Written by the child, read here (the "call").
    pong: EventFd,
    child: Pid,
}

impl EventfdPingPong {
    /// Forks the answering child. Best called while this process has a single thread; the
    /// child is safe either way, as it makes only plain system calls.
    pub fn start() -> EventfdPingPong {
        // Blocking eventfds: the child sleeps in read(2) until pinged.
        let ping = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).expect("ping eventfd");
        let pong = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).expect("pong eventfd");
        // SAFETY: the child makes only plain system calls (prctl, getppid, epoll, read, write,
        // _exit: no allocation, no locks) on descriptors it inherited, and never returns into
        // Rust code that could touch state another thread of the parent held at the fork.
        match unsafe { fork() }.expect("fork the ping-pong child") {
            ForkResult::Child => answer_pings(ping.as_raw_fd(), pong.as_raw_fd()),
            ForkResult::Parent { child } => EventfdPingPong { ping, pong, child },
        }
    }

    /// One round trip: ping, wait until the child's pong is readable, read it.
    pub fn roundtrip(&self) -> Duration {
        let started = Instant::now();
        self.ping.write(1).expect("ping");
        let mut fds = [PollFd::new(self.pong.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(10_000u16)).expect("poll the pong eventfd");
        assert_eq!(ready, 1, "the ping-pong child did not answer within 10 s");
        self.pong.read().expect("pong");
        started.elapsed()
    }
}

impl Drop for EventfdPingPong {
    fn drop(&mut self) {
        let _ = kill(self.child, Signal::SIGKILL);
        let _ = waitpid(self.child, None);
    }
}

/// The child: wait in epoll for a ping, read it, write a pong, forever; exits when its
/// parent is gone or a call fails.
fn answer_pings(ping: RawFd, pong: RawFd) -> ! {
    // SAFETY: none of these calls takes a pointer except epoll_ctl, epoll_wait, read and
    // write, each given a live local of the size it is told; _exit ends the process without
    // running anything of the parent's.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() == 1 {
            libc::_exit(0);
        }
        let epoll = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        let mut watch = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        if epoll < 0 || libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, ping, &raw mut watch) < 0 {
            libc::_exit(1);
        }
        let mut ready = libc::epoll_event { events: 0, u64: 0 };
        let mut value: u64 = 0;
        let one: u64 = 1;
        loop {
            // No signal handlers are installed here, so EINTR cannot happen: a failure means
            // the descriptors are gone.
            if libc::epoll_wait(epoll, &raw mut ready, 1, -1) != 1
                || libc::read(ping, (&raw mut value).cast(), 8) != 8
                || libc::write(pong, (&raw const one).cast(), 8) != 8
            {
                libc::_exit(0);
            }
        }
    }
}
