//! Interleaved rounds, their statistics, and the report of the data-plane comparison.
//!
//! Every series is measured in every round. Series that are compared with each other form a
//! group, and a group's series take turns sample by sample (a, b, c, a, b, c ...), so that a
//! burst of load from elsewhere on the machine hits them alike; groups run one after the
//! other, in one order in odd rounds and reversed in even rounds (the turns too). Each round
//! gives one median per series, and each comparison sets a measured series against a
//! baseline series of the same rounds as a ratio with a target.

pub mod floor;
pub mod in_process;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Environment variable naming the directory the report goes to (default `<target>/bench`).
pub const BENCH_OUT_ENV: &str = "BENCH_OUT";

/// One measurement taken in every round: `warmup` untimed operations, then `samples` timed
/// ones, of the operation `op` names, taking turns with the other series of its `group`.
pub struct Series<Op> {
    /// Short name, the key in the JSON.
    pub key: &'static str,
    /// What is measured, for the tables.
    pub label: &'static str,
    /// The series measured in turns with this one share a group name.
    pub group: &'static str,
    pub op: Op,
    pub warmup: usize,
    pub samples: usize,
    /// Bytes one operation moves (bandwidth is shown for these), `None` for round trips.
    pub bytes: Option<u64>,
    /// Per round, the median of that round's samples.
    pub round_medians: Vec<Duration>,
}

impl<Op> Series<Op> {
    /// A series with no round measured yet.
    pub fn new(
        (group, key, label): (&'static str, &'static str, &'static str),
        op: Op,
        (warmup, samples): (usize, usize),
        bytes: Option<u64>,
    ) -> Series<Op> {
        Series {
            key,
            label,
            group,
            op,
            warmup,
            samples,
            bytes,
            round_medians: Vec::new(),
        }
    }

    /// The median of the round medians.
    pub fn median(&self) -> Duration {
        median(&self.round_medians)
    }

    /// The smallest and the largest round median.
    pub fn spread(&self) -> (Duration, Duration) {
        let min = self.round_medians.iter().min().copied().unwrap_or_default();
        let max = self.round_medians.iter().max().copied().unwrap_or_default();
        (min, max)
    }
}

/// Runs one unrecorded warm-up round, then `rounds` rounds of every series, `sample` timing
/// one operation. Groups run in the order of their first series, members of a group take
/// turns in their listed order; both orders are reversed in even rounds. Prints one line per
/// round as it ends.
///
/// The warm-up round lets what the setup left running (the renderers finishing uploads,
/// freshly mapped memory) settle before anything is recorded.
pub fn run_rounds<Op>(
    series: &mut [Series<Op>],
    rounds: usize,
    mut sample: impl FnMut(&Op) -> Duration,
) {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (index, s) in series.iter().enumerate() {
        match groups.iter_mut().find(|g| series[g[0]].group == s.group) {
            Some(group) => group.push(index),
            None => groups.push(vec![index]),
        }
    }
    for round in 0..=rounds {
        let started = Instant::now();
        let mut order = groups.clone();
        if round % 2 == 0 {
            order.reverse();
            order.iter_mut().for_each(|g| g.reverse());
        }
        for members in &order {
            let warmup = members.iter().map(|&i| series[i].warmup).max().unwrap_or(0);
            let samples = members
                .iter()
                .map(|&i| series[i].samples)
                .max()
                .unwrap_or(0);
            for n in 0..warmup {
                for &i in members.iter().filter(|&&i| n < series[i].warmup) {
                    sample(&series[i].op);
                }
            }
            let mut taken: Vec<Vec<Duration>> = vec![Vec::with_capacity(samples); members.len()];
            for n in 0..samples {
                for (slot, &i) in members.iter().enumerate() {
                    if n < series[i].samples {
                        taken[slot].push(sample(&series[i].op));
                    }
                }
            }
            // Round 0 is the warm-up round: nothing is kept.
            if round > 0 {
                for (slot, &i) in members.iter().enumerate() {
                    series[i].round_medians.push(median(&taken[slot]));
                }
            }
        }
        let what = if round == 0 {
            "warm-up round".to_string()
        } else {
            format!("round {round}/{rounds}")
        };
        eprintln!(
            "data plane: {what} done in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// The median of `values` (the upper one of the middle two for an even count).
pub fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// How a comparison shows its values and computes its ratio.
#[derive(Clone, Copy)]
pub enum Metric {
    /// Time per round trip; ratio measured time / baseline time (lower is better).
    Latency,
    /// Operations per second; ratio measured rate / baseline rate (higher is better).
    Rate,
    /// Bytes per second; ratio measured bandwidth / baseline bandwidth (higher is better).
    Bandwidth,
}

/// What a ratio must reach.
#[derive(Clone, Copy)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtMost(limit) => ratio <= limit,
            Target::AtLeast(limit) => ratio >= limit,
        }
    }

    fn text(self) -> String {
        match self {
            Target::AtMost(limit) => format!("<= {limit}x"),
            Target::AtLeast(limit) => format!(">= {limit}x"),
        }
    }
}

/// A measured series set against a baseline series measured in the same rounds.
pub struct Comparison {
    pub label: &'static str,
    pub measured: &'static str,
    pub baseline: &'static str,
    pub metric: Metric,
    pub target: Target,
}

impl Metric {
    /// The ratio of two times per operation, in this metric's sense.
    fn ratio(self, measured: Duration, baseline: Duration) -> f64 {
        let (m, b) = (measured.as_secs_f64(), baseline.as_secs_f64());
        match self {
            Metric::Latency => m / b,
            Metric::Rate | Metric::Bandwidth => b / m,
        }
    }

    /// A time per operation in this metric's unit (microseconds, operations per second, or
    /// GiB per second of `bytes`).
    fn value(self, time: Duration, bytes: Option<u64>) -> f64 {
        let seconds = time.as_secs_f64();
        match self {
            Metric::Latency => seconds * 1e6,
            Metric::Rate => 1.0 / seconds,
            Metric::Bandwidth => bytes.unwrap_or(0) as f64 / seconds / f64::from(1u32 << 30),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Metric::Latency => "us",
            Metric::Rate => "commands/s",
            Metric::Bandwidth => "GiB/s",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Latency => "latency",
            Metric::Rate => "rate",
            Metric::Bandwidth => "bandwidth",
        }
    }

    /// A value with the precision its unit deserves.
    fn show(self, value: f64) -> String {
        match self {
            Metric::Latency => format!("{value:.1}"),
            Metric::Rate => format!("{value:.0}"),
            Metric::Bandwidth => format!("{value:.2}"),
        }
    }

    /// `median unit` and `low-high` of a series' round medians in this metric.
    fn median_and_spread<Op>(self, series: &Series<Op>) -> (f64, f64, f64) {
        let median = self.value(series.median(), series.bytes);
        let (fast, slow) = series.spread();
        let (a, b) = (
            self.value(fast, series.bytes),
            self.value(slow, series.bytes),
        );
        (median, a.min(b), a.max(b))
    }
}

/// Context printed with the report and kept in the JSON.
pub struct RunInfo {
    pub rounds: usize,
    pub ray_gpu: PathBuf,
    pub jailed_renderer: String,
    pub in_process_renderer: String,
    pub load_start: String,
    pub unix_time_start: u64,
}

impl RunInfo {
    /// The context of a run starting now.
    pub fn starting(
        rounds: usize,
        ray_gpu: PathBuf,
        jailed_renderer: String,
        in_process_renderer: String,
    ) -> RunInfo {
        RunInfo {
            rounds,
            ray_gpu,
            jailed_renderer,
            in_process_renderer,
            load_start: load_average(),
            unix_time_start: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Prints the per-round table and the comparison table as markdown, and writes them to
/// `data_plane.md` and everything (every round median too) to `data_plane.json` in the report
/// directory. Returns the path of the JSON.
pub fn report<Op>(info: &RunInfo, series: &[Series<Op>], comparisons: &[Comparison]) -> PathBuf {
    let find = |key: &str| {
        series
            .iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("no series {key}"))
    };
    let load_end = load_average();
    let mut md = String::new();
    let _ = writeln!(md, "## Data plane without a guest (`jailed_gpu` bench)\n");
    let _ = writeln!(
        md,
        "{} rounds after a warm-up round; the series of a group (small commands, 1080p, 4K) \
         take turns sample by sample, groups and turns in the order below in odd rounds and \
         reversed in even rounds; each cell is the median of that round's samples. Jailed \
         ray-gpu: `{}` ({}); \
         in-process device: {}. Load average {} at start, {load_end} at end.\n",
        info.rounds,
        info.ray_gpu.display(),
        info.jailed_renderer,
        info.in_process_renderer,
        info.load_start
    );
    let _ = write!(md, "| series | samples/round |");
    for round in 1..=info.rounds {
        let _ = write!(md, " round {round} |");
    }
    let _ = writeln!(md, " median of medians | min-max |");
    let _ = write!(md, "|---|---:|");
    for _ in 0..info.rounds {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md, "---:|---|");
    for s in series {
        let _ = write!(md, "| {} | {} |", s.label, s.samples);
        for d in &s.round_medians {
            let _ = write!(md, " {} |", time_text(*d));
        }
        let (min, max) = s.spread();
        let _ = writeln!(
            md,
            " {} | {}-{} |",
            time_text(s.median()),
            time_text(min),
            time_text(max)
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| measurement | median | spread (round medians) | baseline | baseline median | ratio \
         (per-round min-max) | target | met |"
    );
    let _ = writeln!(md, "|---|---:|---|---|---:|---|---|---|");
    let mut comparison_docs = Vec::new();
    for c in comparisons {
        let (measured, baseline) = (find(c.measured), find(c.baseline));
        let metric = c.metric;
        let (m_median, m_low, m_high) = metric.median_and_spread(measured);
        let (b_median, b_low, b_high) = metric.median_and_spread(baseline);
        let ratio = metric.ratio(measured.median(), baseline.median());
        let per_round: Vec<f64> = measured
            .round_medians
            .iter()
            .zip(&baseline.round_medians)
            .map(|(m, b)| metric.ratio(*m, *b))
            .collect();
        let ratio_low = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        let ratio_high = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let met = c.target.met(ratio);
        let unit = metric.unit();
        let _ = writeln!(
            md,
            "| {} | {} {unit} | {}-{} | {} | {} {unit} | {ratio:.2}x ({ratio_low:.2}-{ratio_high:.2}) | {} | {} |",
            c.label,
            metric.show(m_median),
            metric.show(m_low),
            metric.show(m_high),
            baseline.label,
            metric.show(b_median),
            c.target.text(),
            if met { "yes" } else { "no" }
        );
        comparison_docs.push(json!({
            "measurement": c.label,
            "measured_series": c.measured,
            "baseline_series": c.baseline,
            "metric": metric.name(),
            "unit": unit,
            "median": m_median,
            "min": m_low,
            "max": m_high,
            "baseline_median": b_median,
            "baseline_min": b_low,
            "baseline_max": b_high,
            "ratio": ratio,
            "ratio_per_round": per_round,
            "ratio_min": ratio_low,
            "ratio_max": ratio_high,
            "target": c.target.text(),
            "met": met,
        }));
    }
    let _ = writeln!(
        md,
        "\nratio: latency as measured/baseline time; rate and bandwidth as measured/baseline \
         throughput. Compare only numbers of the same run."
    );
    print!("\n{md}");

    let series_docs: Vec<Value> = series
        .iter()
        .map(|s| {
            let (min, max) = s.spread();
            json!({
                "key": s.key,
                "label": s.label,
                "group": s.group,
                "warmup_per_round": s.warmup,
                "samples_per_round": s.samples,
                "bytes_per_operation": s.bytes,
                "round_medians_ns": s.round_medians.iter().map(Duration::as_nanos).collect::<Vec<_>>(),
                "median_of_medians_ns": s.median().as_nanos(),
                "min_ns": min.as_nanos(),
                "max_ns": max.as_nanos(),
            })
        })
        .collect();
    let doc = json!({
        "benchmark": "data_plane",
        "command": "cargo bench -p integration --bench jailed_gpu",
        "unix_time_start": info.unix_time_start,
        "rounds": info.rounds,
        "order": "one unrecorded warm-up round, then rounds; within a group the series take \
                  turns sample by sample; groups and turns in the listed order in odd rounds, \
                  reversed in even rounds",
        "ray_gpu": info.ray_gpu.display().to_string(),
        "jailed_renderer": info.jailed_renderer,
        "in_process_renderer": info.in_process_renderer,
        "load_average_start": info.load_start,
        "load_average_end": load_end,
        "series": series_docs,
        "comparisons": comparison_docs,
    });
    let dir = report_dir();
    let json_path = dir.join("data_plane.json");
    let text = serde_json::to_string_pretty(&doc).expect("serialising the report") + "\n";
    std::fs::write(&json_path, text)
        .unwrap_or_else(|e| panic!("writing {}: {e}", json_path.display()));
    let md_path = dir.join("data_plane.md");
    std::fs::write(&md_path, &md).unwrap_or_else(|e| panic!("writing {}: {e}", md_path.display()));
    println!("written: {} and {}", json_path.display(), md_path.display());
    json_path
}

/// A time per operation as microseconds below 1 ms, milliseconds above.
fn time_text(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} us", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

/// `$BENCH_OUT`, else `bench/` in the target directory this benchmark was built into
/// (`target/<profile>/deps/<bench>` three levels up); created if missing.
pub fn report_dir() -> PathBuf {
    let dir = match std::env::var_os(BENCH_OUT_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("locating the benchmark");
            exe.ancestors()
                .nth(3)
                .map(|target| target.join("bench"))
                .unwrap_or_else(|| Path::new("target/bench").to_path_buf())
        }
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}
