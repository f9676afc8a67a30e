//! How long the device's oldest unfinished guest work has waited, for a watchdog.
//!
//! A draw that never finishes can block the serving thread inside the renderer, or leave a
//! fenced response held forever while later commands are answered. Either way the serving
//! thread cannot be asked; so it publishes when the command it is running began and when the
//! oldest held response began to wait, and a watchdog on another thread reads them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What has waited longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// A command the device is running (the serving thread is inside the renderer).
    Command,
    /// A fenced response held until the renderer signals its fence.
    Fence,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiting::Command => "a command",
            Waiting::Fence => "a fenced command",
        })
    }
}

/// Start times published by the serving thread, read by any thread. Times are nanoseconds
/// since `base` plus one, so that 0 means "nothing waits".
#[derive(Debug)]
pub struct WorkAge {
    base: Instant,
    command_since: AtomicU64,
    fence_since: AtomicU64,
}

impl WorkAge {
    pub(crate) fn new() -> Arc<WorkAge> {
        Arc::new(WorkAge {
            base: Instant::now(),
            command_since: AtomicU64::new(0),
            fence_since: AtomicU64::new(0),
        })
    }

    fn stamp(&self, at: Option<Instant>) -> u64 {
        at.map_or(0, |at| {
            let nanos = at.saturating_duration_since(self.base).as_nanos();
            u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1
        })
    }

    fn age(&self, stamp: u64, now: Instant) -> Option<Duration> {
        let since = self.base + Duration::from_nanos(stamp.checked_sub(1)?);
        Some(now.saturating_duration_since(since))
    }

    /// The serving thread began running a command.
    pub(crate) fn command_started(&self) {
        let stamp = self.stamp(Some(Instant::now()));
        self.command_since.store(stamp, Ordering::Release);
    }

    /// The serving thread finished the command it was running.
    pub(crate) fn command_finished(&self) {
        self.command_since.store(0, Ordering::Release);
    }

    /// The oldest held response began to wait at `at` (`None`: none is held).
    pub(crate) fn set_oldest_fence(&self, at: Option<Instant>) {
        self.fence_since.store(self.stamp(at), Ordering::Release);
    }

    /// What has waited longest and for how long; `None` when nothing waits.
    pub fn oldest(&self) -> Option<(Waiting, Duration)> {
        let now = Instant::now();
        let command = self
            .age(self.command_since.load(Ordering::Acquire), now)
            .map(|age| (Waiting::Command, age));
        let fence = self
            .age(self.fence_since.load(Ordering::Acquire), now)
            .map(|age| (Waiting::Fence, age));
        [command, fence]
            .into_iter()
            .flatten()
            .max_by_key(|&(_, age)| age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_waits_on_a_new_device() {
        let age = WorkAge::new();

        assert_eq!(age.oldest(), None);
    }

    #[test]
    fn a_held_fence_ages_from_when_it_began_to_wait() {
        let age = WorkAge::new();
        age.set_oldest_fence(Some(Instant::now()));

        std::thread::sleep(Duration::from_millis(30));

        let (what, waited) = age.oldest().expect("a fence waits");
        assert_eq!(what, Waiting::Fence);
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
    }

    #[test]
    fn the_longer_of_a_running_command_and_a_held_fence_is_reported() {
        let age = WorkAge::new();
        age.set_oldest_fence(Some(Instant::now()));
        std::thread::sleep(Duration::from_millis(5));
        age.command_started();

        let (what, _) = age.oldest().expect("both wait");

        assert_eq!(what, Waiting::Fence);
    }

    #[test]
    fn a_finished_command_no_longer_waits() {
        let age = WorkAge::new();
        age.command_started();

        age.command_finished();

        assert_eq!(age.oldest(), None);
    }
}
