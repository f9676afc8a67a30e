//! Which VM may use the GPU next: weighted fair queueing by virtual GPU time.
//!
//! Each VM's virtual time is the GPU time it used divided by its weight. A VM whose virtual
//! time runs more than one slice ahead of another VM that is waiting for the GPU (its threads
//! were ready to run but found the CPUs taken, or it is held) is held (its GPU process
//! stopped) for the next tick. A VM that wants nothing, or gets all it asks for, holds no one:
//! holding is only ever done to hand the GPU to someone waiting for it, so it costs no
//! throughput. A VM that was idle cannot bank credit: while it
//! wants the GPU its virtual time is kept within [`LAG_SLICES`] slices of the least-served busy
//! neighbour's. Every supervisor decides only for its own VM, from what the others published.

use std::time::Duration;

/// How far a VM may run ahead of a neighbour that wants the GPU, in its own GPU time.
pub const SLICE: Duration = Duration::from_millis(40);
/// How many slices behind the least-served busy neighbour a returning VM may start.
pub const LAG_SLICES: f64 = 5.0;
/// The longest a VM is held at once; then it runs at least one tick. This bounds what a
/// hold adds to a guest's fence wait, far below the GPU work timeout.
pub const MAX_HOLD: Duration = Duration::from_millis(100);
/// GPU time in one tick below which a VM counts as idle (its GPU process's housekeeping
/// threads wake now and then without rendering).
pub const BUSY_THRESHOLD: Duration = Duration::from_micros(500);
/// Time its threads spent ready but not running in one tick from which a VM counts as
/// waiting (below it: ordinary scheduling jitter beside the host's other threads).
pub const WAIT_THRESHOLD: Duration = Duration::from_millis(1);

/// What a neighbour published in the ledger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour {
    /// Its virtual time: GPU seconds per unit of weight.
    pub vtime: f64,
    /// It used the GPU in its last tick or is held (it wants the GPU).
    pub busy: bool,
    /// It waited for the GPU in its last tick or is held (it wants more than it gets).
    pub waiting: bool,
}

/// One VM's side of the scheduling: its virtual time and whether it is held.
#[derive(Debug, Clone)]
pub struct Admission {
    weight: f64,
    vtime: f64,
    busy: bool,
    waiting: bool,
    held_for: Duration,
}

/// What one tick decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Run,
    Hold,
}

impl Admission {
    /// A VM of `weight` (> 0) that starts level with the least-served busy neighbour, or at 0.
    pub fn new(weight: f64, neighbours: &[Neighbour]) -> Admission {
        Admission {
            weight: weight.max(f64::MIN_POSITIVE),
            vtime: least_served(neighbours).unwrap_or(0.0).max(0.0),
            busy: false,
            waiting: false,
            held_for: Duration::ZERO,
        }
    }

    /// The virtual time to publish.
    pub fn vtime(&self) -> f64 {
        self.vtime
    }

    /// Whether to publish this VM as wanting the GPU.
    pub fn busy(&self) -> bool {
        self.busy
    }

    /// Whether to publish this VM as waiting for the GPU.
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// Accounts `used` GPU time and `waited` time ready but not running over the last
    /// `tick`, and decides the next tick.
    pub fn tick(
        &mut self,
        used: Duration,
        waited: Duration,
        tick: Duration,
        neighbours: &[Neighbour],
    ) -> Decision {
        let held = self.held_for > Duration::ZERO;
        self.busy = held || used >= BUSY_THRESHOLD;
        self.waiting = held || waited >= WAIT_THRESHOLD;
        let slice = SLICE.as_secs_f64() / self.weight;
        let busy_neighbours: Vec<Neighbour> =
            neighbours.iter().copied().filter(|n| n.busy).collect();
        if let (true, Some(least)) = (self.busy, least_served(&busy_neighbours)) {
            self.vtime = self.vtime.max(least - LAG_SLICES * slice);
        }
        self.vtime += used.as_secs_f64() / self.weight;
        let ahead = busy_neighbours
            .iter()
            .any(|n| n.waiting && self.vtime > n.vtime + slice);
        match ahead && self.held_for < MAX_HOLD {
            true => {
                self.held_for += tick;
                Decision::Hold
            }
            false => {
                self.held_for = Duration::ZERO;
                Decision::Run
            }
        }
    }
}

fn least_served(neighbours: &[Neighbour]) -> Option<f64> {
    neighbours.iter().map(|n| n.vtime).reduce(f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(10);

    const WAITED: Duration = Duration::from_millis(5);

    fn waiting(vtime: f64) -> Neighbour {
        Neighbour {
            vtime,
            busy: true,
            waiting: true,
        }
    }

    #[test]
    fn vm_alone_is_never_held() {
        let mut vm = Admission::new(50.0, &[]);

        let decisions: Vec<Decision> = (0..100).map(|_| vm.tick(TICK, WAITED, TICK, &[])).collect();

        assert!(decisions.iter().all(|d| *d == Decision::Run));
    }

    #[test]
    fn vm_ahead_of_a_busy_neighbour_by_more_than_a_slice_is_held() {
        let mut vm = Admission::new(100.0, &[waiting(0.0)]);

        let decision = vm.tick(Duration::from_millis(50), WAITED, TICK, &[waiting(0.0)]);

        assert_eq!(decision, Decision::Hold);
    }

    #[test]
    fn idle_neighbour_far_behind_holds_no_one() {
        let idle = Neighbour {
            vtime: 0.0,
            busy: false,
            waiting: false,
        };
        let mut vm = Admission::new(100.0, &[idle]);

        let decisions: Vec<Decision> = (0..50)
            .map(|_| vm.tick(TICK, WAITED, TICK, &[idle]))
            .collect();

        assert!(decisions.iter().all(|d| *d == Decision::Run));
    }

    #[test]
    fn neighbour_behind_that_gets_all_it_asks_for_holds_no_one() {
        let served = Neighbour {
            vtime: 0.0,
            busy: true,
            waiting: false,
        };
        let mut vm = Admission::new(100.0, &[served]);

        let decisions: Vec<Decision> = (0..50)
            .map(|_| vm.tick(TICK, WAITED, TICK, &[served]))
            .collect();

        assert!(decisions.iter().all(|d| *d == Decision::Run));
    }

    #[test]
    fn hold_ends_after_max_hold_for_at_least_one_tick() {
        let mut vm = Admission::new(100.0, &[waiting(0.0)]);
        vm.tick(Duration::from_secs(1), WAITED, TICK, &[waiting(0.0)]);

        let decisions: Vec<Decision> = (0..12)
            .map(|_| vm.tick(Duration::ZERO, WAITED, TICK, &[waiting(0.0)]))
            .collect();

        let held_in_a_row = decisions
            .iter()
            .take_while(|d| **d == Decision::Hold)
            .count();
        assert_eq!(
            (held_in_a_row, decisions[held_in_a_row]),
            (9, Decision::Run)
        );
    }

    #[test]
    fn returning_vm_starts_at_most_lag_slices_behind_the_least_served() {
        let mut vm = Admission::new(100.0, &[]);

        vm.tick(Duration::from_millis(1), WAITED, TICK, &[waiting(10.0)]);

        let slice = SLICE.as_secs_f64() / 100.0;
        let expected = 10.0 - LAG_SLICES * slice + 0.001 / 100.0;
        assert!((vm.vtime() - expected).abs() < 1e-12, "{}", vm.vtime());
    }

    #[test]
    fn two_saturating_vms_share_gpu_time_in_proportion_to_their_weights() {
        let mut vms = [Admission::new(100.0, &[]), Admission::new(50.0, &[])];
        let mut used = [Duration::ZERO; 2];
        let mut running = [true; 2];
        let mut gpu_time = [Duration::ZERO; 2];

        for _ in 0..1000 {
            for i in 0..2 {
                used[i] = match running[i] {
                    true => TICK,
                    false => Duration::ZERO,
                };
                gpu_time[i] += used[i];
            }
            let published: Vec<Neighbour> = vms.iter().map(|vm| waiting(vm.vtime())).collect();
            for i in 0..2 {
                let others = [published[1 - i]];
                running[i] = vms[i].tick(used[i], WAITED, TICK, &others) == Decision::Run;
            }
        }

        let ratio = gpu_time[0].as_secs_f64() / gpu_time[1].as_secs_f64();
        assert!((ratio - 2.0).abs() < 0.1, "ratio {ratio}");
    }
}
