//! A scheduled VM: a thread in its supervisor that, every tick, accounts its GPU process's
//! GPU time, publishes it in the ledger and stops or continues the process as
//! [`Admission`] decides.
//!
//! Holding is done by the kernel (SIGSTOP, then SIGCONT through the process's pidfd): a
//! compromised GPU process can neither catch nor ignore it, and under llvmpipe it preempts
//! even a draw already running. On a hardware GPU it stops new submissions; work already on
//! the GPU runs on.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::admission::{Admission, Decision};
use crate::ledger::{Ledger, LedgerError, Record};
use crate::{sys, Share};

/// How often a member accounts and decides.
pub const TICK: Duration = Duration::from_millis(10);

/// What a member did so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// How many times its GPU process was held.
    pub holds: u64,
    /// How long it was held in all.
    pub held: Duration,
    /// The GPU time its process used while a member.
    pub gpu_time: Duration,
    /// Why scheduling stopped early (the ledger became unusable); the process then runs
    /// unscheduled.
    pub error: Option<String>,
}

impl std::fmt::Display for Stats {
    /// "held N times, X ms in all, of Y ms GPU time".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "held {} times, {:.0} ms in all, of {:.0} ms GPU time",
            self.holds,
            self.held.as_secs_f64() * 1e3,
            self.gpu_time.as_secs_f64() * 1e3
        )
    }
}

/// A VM taking part in the host's GPU scheduling; leaves (and never leaves its process
/// stopped) when dropped.
pub struct Member {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<Stats>>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    /// Joins the ledger in `dir` for the GPU process `pid` (its pidfd: `pidfd`) with `share`.
    pub fn join(dir: &Path, share: Share, pid: u32, pidfd: OwnedFd) -> Result<Member, LedgerError> {
        let ledger = Ledger::join(dir, pid)?;
        let admission = Admission::new(
            share.effective_weight(),
            &ledger.neighbours(sys::monotonic())?,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let process = Process { pid, pidfd };
        let thread = {
            let (stop, stats) = (Arc::clone(&stop), Arc::clone(&stats));
            std::thread::Builder::new()
                .name("gpu-scheduler".into())
                .spawn(move || schedule(ledger, admission, process, &stop, &stats))
                .map_err(LedgerError::Thread)?
        };
        Ok(Member {
            stop,
            stats,
            thread: Some(thread),
        })
    }

    /// What it did so far.
    pub fn stats(&self) -> Stats {
        lock(&self.stats).clone()
    }

    /// Leaves the ledger, the process continued; returns what it did.
    pub fn leave(mut self) -> Stats {
        self.stop();
        self.stats()
    }

    /// Stops scheduling (the process continued, the ledger left) and keeps what it did for
    /// [`Member::stats`]; for a supervisor that must not wait on a held process now but
    /// reports later.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Process {
    pid: u32,
    pidfd: OwnedFd,
}

fn schedule(
    ledger: Ledger,
    mut admission: Admission,
    process: Process,
    stop: &AtomicBool,
    stats: &Mutex<Stats>,
) {
    let mut last_time = sys::cpu_time(process.pid).unwrap_or_default();
    let mut last_wait = sys::run_delay(process.pid).unwrap_or_default();
    let mut last_tick = Instant::now();
    let mut held = false;
    let error = loop {
        std::thread::park_timeout(TICK.saturating_sub(last_tick.elapsed()));
        if stop.load(Ordering::Acquire) || sys::ended(&process.pidfd) {
            break None;
        }
        if last_tick.elapsed() < TICK {
            continue;
        }
        let Some(time) = sys::cpu_time(process.pid) else {
            break None;
        };
        let used = time.saturating_sub(last_time);
        // Threads that ended take their waits with them: the sum may fall.
        let wait = sys::run_delay(process.pid).unwrap_or_default();
        let waited = wait.saturating_sub(last_wait);
        last_wait = wait;
        let tick = last_tick.elapsed();
        (last_time, last_tick) = (time, Instant::now());
        let neighbours = match ledger.neighbours(sys::monotonic()) {
            Ok(neighbours) => neighbours,
            Err(e) => break Some(e.to_string()),
        };
        let decision = admission.tick(used, waited, tick, &neighbours);
        {
            let mut stats = lock(stats);
            stats.gpu_time += used;
            if held {
                stats.held += tick;
            }
            stats.holds += u64::from(decision == Decision::Hold && !held);
        }
        let signal = match (decision, held) {
            (Decision::Hold, false) => Some(libc::SIGSTOP),
            (Decision::Run, true) => Some(libc::SIGCONT),
            _ => None,
        };
        if let Some(signal) = signal {
            if sys::signal(&process.pidfd, signal).is_err() {
                break None;
            }
            held = decision == Decision::Hold;
        }
        let record = Record {
            supervisor: std::process::id(),
            vtime: admission.vtime(),
            busy: admission.busy(),
            waiting: admission.waiting(),
            written: sys::monotonic(),
        };
        if let Err(e) = ledger.publish(record) {
            break Some(e.to_string());
        }
    };
    if held {
        let _ = sys::signal(&process.pidfd, libc::SIGCONT);
    }
    ledger.leave();
    lock(stats).error = error;
}

fn lock(stats: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    stats
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Priority;

    /// The one-letter state of process `pid` (R running, S sleeping, T stopped ...).
    fn state(pid: u32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(") ").unwrap().1.chars().next().unwrap()
    }

    /// Whether process `pid` is seen stopped within `bound`.
    fn seen_stopped(pid: u32, bound: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < bound && state(pid) != 'T' {
            std::thread::sleep(Duration::from_millis(2));
        }
        state(pid) == 'T'
    }

    #[test]
    fn member_ahead_of_a_waiting_neighbour_is_stopped_and_continued_when_it_leaves() {
        let dir = std::env::temp_dir().join(format!("member-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let neighbour = Ledger::join(&dir, 1).unwrap();
        neighbour
            .publish(Record {
                supervisor: std::process::id(),
                vtime: 0.0,
                busy: true,
                waiting: true,
                written: sys::monotonic(),
            })
            .unwrap();
        let mut spinner = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let pid = spinner.id();
        let share = Share::new(100, Priority::Interactive).unwrap();
        let member = Member::join(&dir, share, pid, sys::pidfd_open(pid).unwrap()).unwrap();

        let stopped = seen_stopped(pid, Duration::from_millis(800));
        let stats = member.leave();
        let after_leaving = state(pid);
        spinner.kill().unwrap();
        spinner.wait().unwrap();

        assert_eq!((stopped, after_leaving), (true, 'R'), "{stats:?}");
        assert!(stats.holds > 0 && stats.error.is_none(), "{stats:?}");
    }
}
