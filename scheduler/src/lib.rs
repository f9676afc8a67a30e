//! Sharing one host's GPU between the GPU processes of several VMs.
//!
//! Under llvmpipe the GPU *is* the host's CPUs: a VM's GPU time is the CPU time of its GPU
//! process, which the host reads from `/proc` without trusting the process ([`gpu_time`]), and
//! the kernel's CPU scheduler is the enforcement a compromised GPU process cannot ignore. A
//! VM's configured [`Share`] (weight and priority) becomes its GPU process's nice value
//! ([`Share::nice`]), set in the jail before exec and inherited by every thread: the
//! completely fair scheduler then divides contended CPU time between the VMs' threads in
//! proportion to their weights (1.25x per nice step). No coordinator is needed: the mapping
//! is absolute, so each VM's supervisor applies its own.
//!
//! Limits, measured and stated in the README: the kernel shares by thread (a process with more
//! runnable threads gets more; ray-gpu's are bounded at 128), within one session's autogroup
//! (VMs started from different sessions are shared between autogroups first), and a hardware
//! GPU's time is not the CPU's (there the cooperative admission inside the GPU process and the
//! GPU driver's own scheduler are needed; not built).

use std::path::Path;
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

/// The CPU time (user and system) process `pid` and all its threads have used: its GPU time
/// under llvmpipe. `None` once the process is gone.
pub fn gpu_time(pid: u32) -> Option<Duration> {
    cpu_time_of(
        &std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?,
    )
}

/// utime + stime from the text of `/proc/PID/stat` (fields 14 and 15, after the command name,
/// which may hold spaces and parentheses).
fn cpu_time_of(stat: &str) -> Option<Duration> {
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_nanos(
        (utime + stime) * 1_000_000_000 / ticks,
    ))
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
    fn cpu_time_reads_utime_and_stime_after_a_name_with_spaces() {
        let stat = "42 (ray gpu) R 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";

        let time = cpu_time_of(stat).unwrap();

        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert_eq!(time, Duration::from_nanos(300 * 1_000_000_000 / ticks));
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
