//! Sharing one host's GPU between the GPU processes of several VMs.
//!
//! Under llvmpipe the GPU *is* the host's CPUs: a VM's GPU time is the CPU time of its GPU
//! process, which the host reads from the kernel without trusting the process ([`gpu_time`]).
//! Two mechanisms enforce a VM's configured [`Share`] (weight and priority), both applied by
//! the kernel, so a compromised GPU process cannot ignore them:
//!
//! - admission ([`Member`]): each scheduled VM's supervisor publishes its virtual GPU time
//!   (GPU time over weight) in a host ledger ([`ledger`]) every tick and holds its own GPU
//!   process (stopped) while it runs more than a slice ahead of a neighbour that wants the
//!   GPU ([`admission`]); a VM that wants nothing holds no one;
//! - the kernel's CPU weights: the share also becomes the GPU process's nice value
//!   ([`Share::nice`]), so within a tick the completely fair scheduler already favours the
//!   heavier VM's threads.
//!
//! Limits, stated in the README: the ledger is per host user; a tick is 10 ms, so shares are
//! exact over windows of many ticks, not within one; on a hardware GPU, holding the process
//! stops new submissions but not a draw already on the GPU, and the process's CPU time is
//! not its GPU time (timer queries would be needed; not built).

pub mod admission;
pub mod ledger;
mod member;
mod sys;

pub use ledger::{default_dir as default_ledger_dir, LedgerError};
pub use member::{Member, Stats, TICK};

use std::time::Duration;

/// The most weight a VM may have; it maps to nice 0.
pub const MAX_WEIGHT: u32 = 100;

/// How a VM's GPU work ranks against others' beyond its weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Frames someone watches: no penalty.
    Interactive,
    /// The default: 3 nice steps (about half an interactive VM's weight).
    Normal,
    /// Background rendering: 8 nice steps (about a sixth).
    Batch,
}

impl Priority {
    fn nice_offset(self) -> i32 {
        match self {
            Priority::Interactive => 0,
            Priority::Normal => 3,
            Priority::Batch => 8,
        }
    }
}

/// Why a share cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShareError {
    #[error("GPU weight {0} is outside 1 to {MAX_WEIGHT}")]
    Weight(u32),
    #[error("GPU priority {0:?} is none of interactive, normal, batch")]
    Priority(String),
}

/// A VM's configured share of the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub weight: u32,
    pub priority: Priority,
}

impl Share {
    /// A checked share.
    pub fn new(weight: u32, priority: Priority) -> Result<Share, ShareError> {
        match (1..=MAX_WEIGHT).contains(&weight) {
            true => Ok(Share { weight, priority }),
            false => Err(ShareError::Weight(weight)),
        }
    }

    /// The nice value that gives this share's threads `weight / MAX_WEIGHT` of the weight of a
    /// default thread, less the priority's steps: `log1.25(MAX_WEIGHT / weight)` rounded, plus
    /// the priority's offset, at most 19.
    pub fn nice(&self) -> i32 {
        let steps = (f64::from(MAX_WEIGHT) / f64::from(self.weight)).ln() / 1.25f64.ln();
        (steps.round() as i32 + self.priority.nice_offset()).clamp(0, 19)
    }

    /// The weight admission divides GPU time by: the weight less the priority's steps, each
    /// a factor of 1.25 as a nice step is.
    pub fn effective_weight(&self) -> f64 {
        f64::from(self.weight) * 1.25f64.powi(-self.priority.nice_offset())
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Priority::Interactive => "interactive",
            Priority::Normal => "normal",
            Priority::Batch => "batch",
        })
    }
}

impl std::fmt::Display for Share {
    /// "weight W, priority".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "weight {}, {}", self.weight, self.priority)
    }
}

impl std::str::FromStr for Priority {
    type Err = ShareError;

    fn from_str(text: &str) -> Result<Priority, ShareError> {
        match text {
            "interactive" => Ok(Priority::Interactive),
            "normal" => Ok(Priority::Normal),
            "batch" => Ok(Priority::Batch),
            other => Err(ShareError::Priority(other.to_string())),
        }
    }
}

/// The CPU time process `pid` and all its threads have used: its GPU time under llvmpipe.
/// `None` once the process is gone.
pub fn gpu_time(pid: u32) -> Option<Duration> {
    sys::cpu_time(pid)
}

/// Jain's fairness index of `shares` (1 when all are equal, 1/n when one has everything).
pub fn jain(shares: &[f64]) -> f64 {
    let sum: f64 = shares.iter().sum();
    let squares: f64 = shares.iter().map(|x| x * x).sum();
    match squares > 0.0 {
        true => sum * sum / (shares.len() as f64 * squares),
        false => 1.0,
    }
}

/// The smallest share over the largest (1 when equal).
pub fn min_over_max(shares: &[f64]) -> f64 {
    let max = shares.iter().copied().fold(0.0, f64::max);
    let min = shares.iter().copied().fold(f64::INFINITY, f64::min);
    match max > 0.0 {
        true => min / max,
        false => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_weight_interactive_share_is_nice_0() {
        let share = Share::new(MAX_WEIGHT, Priority::Interactive).unwrap();

        assert_eq!(share.nice(), 0);
    }

    #[test]
    fn half_the_weight_is_three_nice_steps() {
        let share = Share::new(50, Priority::Interactive).unwrap();

        assert_eq!(share.nice(), 3);
    }

    #[test]
    fn priorities_add_their_steps_and_nice_stops_at_19() {
        let nices: Vec<i32> = [
            Share::new(100, Priority::Normal),
            Share::new(100, Priority::Batch),
            Share::new(1, Priority::Batch),
        ]
        .into_iter()
        .map(|s| s.unwrap().nice())
        .collect();

        assert_eq!(nices, vec![3, 8, 19]);
    }

    #[test]
    fn weight_outside_its_range_is_refused() {
        assert_eq!(
            (
                Share::new(0, Priority::Normal),
                Share::new(101, Priority::Normal)
            ),
            (Err(ShareError::Weight(0)), Err(ShareError::Weight(101)))
        );
    }

    #[test]
    fn gpu_time_of_this_process_grows_while_it_computes() {
        let before = gpu_time(std::process::id()).unwrap();

        let mut x = 0u64;
        while gpu_time(std::process::id()).unwrap() < before + Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_add(1));
        }

        assert!(gpu_time(std::process::id()).unwrap() > before);
    }

    #[test]
    fn batch_priority_divides_the_weight_by_eight_nice_steps() {
        let share = Share::new(100, Priority::Batch).unwrap();

        assert!((share.effective_weight() - 100.0 / 1.25f64.powi(8)).abs() < 1e-9);
    }

    #[test]
    fn fairness_figures_of_equal_and_skewed_shares() {
        let equal = [0.5, 0.5];
        let skewed = [0.9, 0.1];

        assert_eq!((jain(&equal), min_over_max(&equal)), (1.0, 1.0));
        assert!((jain(&skewed) - 1.0 / 1.64).abs() < 1e-9);
        assert!((min_over_max(&skewed) - 1.0 / 9.0).abs() < 1e-9);
    }
}
