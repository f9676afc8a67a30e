//! Fences: responses held back until the renderer says the work before them is done.
//!
//! A request with `FLAG_FENCE` is answered (put on the used ring) only when its fence
//! signals. Fences live on timelines: the global one, or one per (context, ring index) when
//! the request also has `FLAG_INFO_RING_IDX`. Within a timeline they signal in order, and a
//! signalled fence implies every earlier one on its timeline (virglrenderer reports only the
//! latest), so completing fence N releases every held response up to and including N.
//!
//! The renderer reports completions from its own thread; [`FenceSignals`] records them and
//! wakes the transport through an eventfd, and the device releases the responses on its own
//! thread in [`super::VirtioGpu::process_fences`].

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rutabaga_gfx::{RutabagaFence, RUTABAGA_FLAG_INFO_RING_IDX};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// The timeline a fence is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timeline {
    /// The device-wide timeline.
    Global,
    /// Ring `ring_idx` of context `ctx_id`.
    Context { ctx_id: u32, ring_idx: u8 },
}

impl Timeline {
    fn of(fence: &RutabagaFence) -> Timeline {
        if fence.flags & RUTABAGA_FLAG_INFO_RING_IDX != 0 {
            Timeline::Context {
                ctx_id: fence.ctx_id,
                ring_idx: fence.ring_idx,
            }
        } else {
            Timeline::Global
        }
    }
}

/// Completions reported by the renderer, shared between its thread and the device.
#[derive(Debug)]
pub struct FenceSignals {
    completed: Mutex<Vec<(Timeline, u64)>>,
    event: EventFd,
}

impl FenceSignals {
    /// Creates the record and its (non-blocking) eventfd.
    pub fn new() -> io::Result<Arc<FenceSignals>> {
        Ok(Arc::new(FenceSignals {
            completed: Mutex::new(Vec::new()),
            event: EventFd::new(EFD_NONBLOCK)?,
        }))
    }

    /// Records that `fence` signalled and wakes whoever polls the eventfd. Called by the
    /// renderer, possibly on its own thread.
    pub fn signal(&self, fence: RutabagaFence) {
        self.completed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((Timeline::of(&fence), fence.fence_id));
        if let Err(e) = self.event.write(1) {
            log::error!("virtio-gpu: cannot signal the fence eventfd: {e}");
        }
    }

    /// Takes every completion recorded so far and resets the eventfd.
    pub fn take(&self) -> Vec<(Timeline, u64)> {
        let mut completed = self
            .completed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Asked after every command: with nothing recorded the eventfd is left alone (one
        // system call fewer per command). A wake-up it still holds is only spurious.
        if completed.is_empty() {
            return Vec::new();
        }
        // The counter is reset under the lock: a completion recorded after it waits for the
        // lock, so it is either in the list taken here or writes the counter again.
        let _ = self.event.read();
        std::mem::take(&mut *completed)
    }

    /// The eventfd that becomes readable when a fence signals.
    pub fn event(&self) -> &EventFd {
        &self.event
    }
}

/// A response written to guest memory whose descriptor chain is not yet returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldResponse {
    /// Head descriptor index of the chain.
    pub head_index: u16,
    /// Bytes written into the chain.
    pub len: u32,
}

/// The responses held per timeline, in submission order, each with its fence id and when it
/// began to wait.
#[derive(Debug, Default)]
pub struct FenceQueue {
    held: BTreeMap<Timeline, VecDeque<(u64, HeldResponse, Instant)>>,
    last_id: u64,
}

/// virglrenderer's global timeline carries fence ids as a C `int`; the ids this queue hands
/// out stay in 1..=i32::MAX.
const MAX_FENCE_ID: u64 = i32::MAX as u64;

impl FenceQueue {
    /// A fresh id to give the renderer for the next fence.
    pub fn next_id(&mut self) -> u64 {
        self.last_id = if self.last_id >= MAX_FENCE_ID {
            1
        } else {
            self.last_id + 1
        };
        self.last_id
    }

    /// Holds `response` until fence `id` on `timeline` signals.
    pub fn hold(&mut self, timeline: Timeline, id: u64, response: HeldResponse) {
        self.held
            .entry(timeline)
            .or_default()
            .push_back((id, response, Instant::now()));
    }

    /// Forgets the most recent [`FenceQueue::hold`] on `timeline` (the renderer refused the
    /// fence).
    pub fn unhold_last(&mut self, timeline: Timeline) {
        if let Some(queue) = self.held.get_mut(&timeline) {
            queue.pop_back();
        }
    }

    /// Fence `id` on `timeline` signalled: returns the responses released, in order. An id
    /// not held (already released, or from before a reset) releases nothing.
    pub fn complete(&mut self, timeline: Timeline, id: u64) -> Vec<HeldResponse> {
        let Some(queue) = self.held.get_mut(&timeline) else {
            return Vec::new();
        };
        let Some(position) = queue.iter().position(|(held_id, ..)| *held_id == id) else {
            return Vec::new();
        };
        let released = queue.drain(..=position).map(|(_, r, _)| r).collect();
        if queue.is_empty() {
            self.held.remove(&timeline);
        }
        released
    }

    /// Context `ctx_id` is gone: returns every response held on its timelines.
    pub fn release_context(&mut self, ctx_id: u32) -> Vec<HeldResponse> {
        let timelines: Vec<Timeline> = self
            .held
            .keys()
            .filter(|t| matches!(t, Timeline::Context { ctx_id: c, .. } if *c == ctx_id))
            .copied()
            .collect();
        timelines
            .into_iter()
            .filter_map(|t| self.held.remove(&t))
            .flat_map(|q| q.into_iter().map(|(_, r, _)| r))
            .collect()
    }

    /// Drops every held response (device reset: the queues are gone too).
    pub fn clear(&mut self) {
        self.held.clear();
    }

    /// Number of responses held.
    pub fn len(&self) -> usize {
        self.held.values().map(VecDeque::len).sum()
    }

    /// When the response that has waited longest began to wait; `None` when none is held.
    pub fn oldest_held_at(&self) -> Option<Instant> {
        self.held
            .values()
            .filter_map(|queue| queue.front().map(|&(_, _, at)| at))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(head_index: u16) -> HeldResponse {
        HeldResponse {
            head_index,
            len: 24,
        }
    }

    #[test]
    fn complete_releases_every_earlier_fence_in_order() {
        let mut queue = FenceQueue::default();
        let ids: Vec<u64> = (0..3).map(|_| queue.next_id()).collect();
        for (head, id) in ids.iter().enumerate() {
            queue.hold(Timeline::Global, *id, response(head as u16));
        }

        let released = queue.complete(Timeline::Global, ids[1]);

        assert_eq!((released, queue.len()), (vec![response(0), response(1)], 1));
    }

    #[test]
    fn complete_leaves_other_timelines_alone() {
        let mut queue = FenceQueue::default();
        let ring = Timeline::Context {
            ctx_id: 1,
            ring_idx: 0,
        };
        let (a, b) = (queue.next_id(), queue.next_id());
        queue.hold(ring, a, response(0));
        queue.hold(Timeline::Global, b, response(1));

        let released = queue.complete(Timeline::Global, b);

        assert_eq!((released, queue.len()), (vec![response(1)], 1));
    }

    #[test]
    fn complete_ignores_unknown_id() {
        let mut queue = FenceQueue::default();
        let id = queue.next_id();
        queue.hold(Timeline::Global, id, response(0));

        let released = queue.complete(Timeline::Global, id + 100);

        assert_eq!((released, queue.len()), (vec![], 1));
    }

    #[test]
    fn release_context_returns_its_held_responses() {
        let mut queue = FenceQueue::default();
        let id = queue.next_id();
        queue.hold(
            Timeline::Context {
                ctx_id: 4,
                ring_idx: 0,
            },
            id,
            response(3),
        );

        let released = queue.release_context(4);

        assert_eq!((released, queue.len()), (vec![response(3)], 0));
    }

    #[test]
    fn oldest_held_at_is_when_the_first_still_held_response_began_to_wait() {
        let mut queue = FenceQueue::default();
        let (a, b) = (queue.next_id(), queue.next_id());
        let before = Instant::now();
        queue.hold(Timeline::Global, a, response(0));
        let between = Instant::now();
        queue.hold(Timeline::Global, b, response(1));

        let oldest = queue.oldest_held_at().expect("two responses held");

        assert!(before <= oldest && oldest <= between);
    }

    #[test]
    fn oldest_held_at_is_none_once_every_fence_completed() {
        let mut queue = FenceQueue::default();
        let id = queue.next_id();
        queue.hold(Timeline::Global, id, response(0));

        queue.complete(Timeline::Global, id);

        assert_eq!(queue.oldest_held_at(), None);
    }

    #[test]
    fn fence_ids_wrap_below_i32_max() {
        let mut queue = FenceQueue {
            last_id: MAX_FENCE_ID,
            ..Default::default()
        };

        assert_eq!(queue.next_id(), 1);
    }

    #[test]
    fn signals_wake_the_eventfd_and_are_taken_once() {
        let signals = FenceSignals::new().unwrap();
        signals.signal(RutabagaFence {
            flags: 1,
            fence_id: 5,
            ctx_id: 0,
            ring_idx: 0,
        });

        let woke = signals.event().read().unwrap();
        let first = signals.take();
        let second = signals.take();

        assert_eq!(
            (woke, first, second),
            (1, vec![(Timeline::Global, 5)], vec![])
        );
    }
}
