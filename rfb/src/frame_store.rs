//! The latest frame, shared between whoever produces frames and every viewer's session.
//!
//! Producing a frame costs the GPU process work, so frames are made on demand: a session
//! that has an update request it cannot answer yet asks for one, and the producer waits for
//! such a request before it makes the next frame.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::image::Image;

/// Something woken when a new frame is published or the store closes. It must take the lock
/// its waiter checks its condition under before notifying, so a wake-up is never lost.
pub(crate) trait Wake: Send + Sync {
    fn wake(&self);
}

struct Latest {
    image: Arc<Image>,
    demand: bool,
    waiters: Vec<Weak<dyn Wake>>,
}

/// The latest frame and who waits for the next one.
pub struct FrameStore {
    latest: Mutex<Latest>,
    demand_changed: Condvar,
    generation: AtomicU64,
    closed: AtomicBool,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FrameStore {
    /// A store that shows `initial` until the first frame is published.
    pub fn new(initial: Image) -> Arc<FrameStore> {
        Arc::new(FrameStore {
            latest: Mutex::new(Latest {
                image: Arc::new(initial),
                demand: false,
                waiters: Vec::new(),
            }),
            demand_changed: Condvar::new(),
            generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// Makes `image` the frame every viewer sees next.
    pub fn publish(&self, image: Image) {
        self.publish_shared(Arc::new(image));
    }

    fn publish_shared(&self, image: Arc<Image>) {
        let waiters: Vec<Arc<dyn Wake>> = {
            let mut latest = lock(&self.latest);
            latest.image = image;
            self.generation.fetch_add(1, Ordering::SeqCst);
            latest.waiters.retain(|w| w.strong_count() > 0);
            latest.waiters.iter().filter_map(Weak::upgrade).collect()
        };
        for waiter in waiters {
            waiter.wake();
        }
    }

    /// Tells waiting viewers that no newer frame than the latest can be had now (the source
    /// failed): they are answered from the latest, so none waits for a frame forever.
    pub fn publish_unchanged(&self) {
        let image = Arc::clone(&lock(&self.latest).image);
        self.publish_shared(image);
    }

    /// Waits until some viewer wants a newer frame than the latest, then clears that wish;
    /// false at the timeout or once the store is closed.
    pub fn wait_for_demand(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut latest = lock(&self.latest);
        loop {
            // Set under this lock by `close`, so it cannot change between check and wait.
            if self.is_closed() {
                return false;
            }
            if latest.demand {
                latest.demand = false;
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            latest = self
                .demand_changed
                .wait_timeout(latest, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Ends the store: producers stop waiting for demand, sessions see it closed.
    pub fn close(&self) {
        let waiters: Vec<Arc<dyn Wake>> = {
            let latest = lock(&self.latest);
            self.closed.store(true, Ordering::SeqCst);
            latest.waiters.iter().filter_map(Weak::upgrade).collect()
        };
        self.demand_changed.notify_all();
        for waiter in waiters {
            waiter.wake();
        }
    }

    /// The latest frame and its generation (which grows with every publish).
    pub(crate) fn latest(&self) -> (Arc<Image>, u64) {
        let latest = lock(&self.latest);
        (
            Arc::clone(&latest.image),
            self.generation.load(Ordering::SeqCst),
        )
    }

    /// The generation of the latest frame, without taking the store's lock.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Whether the store has been closed (its producer should stop).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Asks the producer for a newer frame.
    pub(crate) fn request_frame(&self) {
        lock(&self.latest).demand = true;
        self.demand_changed.notify_all();
    }

    /// Has `waiter` woken on every publish and at close.
    pub(crate) fn subscribe(&self, waiter: Weak<dyn Wake>) {
        lock(&self.latest).waiters.push(waiter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_replaces_the_frame_and_advances_the_generation() {
        let store = FrameStore::new(Image::black(2, 2));

        store.publish(Image::black(4, 4));

        let (image, generation) = store.latest();
        assert_eq!((image.width(), generation), (4, 1));
    }

    #[test]
    fn a_request_for_a_frame_is_seen_once_by_the_producer() {
        let store = FrameStore::new(Image::black(2, 2));
        store.request_frame();

        let first = store.wait_for_demand(Duration::ZERO);
        let second = store.wait_for_demand(Duration::from_millis(10));

        assert_eq!((first, second), (true, false));
    }

    #[test]
    fn closing_releases_a_producer_waiting_for_demand() {
        let store = FrameStore::new(Image::black(2, 2));
        let waiting = Arc::clone(&store);
        let producer = std::thread::spawn(move || waiting.wait_for_demand(Duration::from_secs(30)));

        store.close();

        assert!(!producer.join().unwrap());
    }
}
