//! Spawn benchmark, in two parts.
//!
//! 1. Time from spawn to Ready with the seccomp filter on, for the jailed GPU process without
//!    a renderer (the jail's own cost), next to baselines measured in the same run
//!    (interleaved): the same ray-gpu fork+exec'd unjailed with the same filter, and
//!    `/bin/true`; and the jailed process's memory.
//! 2. Isolation cost: the GPU process as a VM gets it (virglrenderer, the software-rendering
//!    policy, a vhost-user socket at descriptor 4, kill-process), with 1, 2, 4 and 8 of them
//!    alive at once: spawn N one after the other (each timed from spawn to Ready, filter on,
//!    `/proc` checks done), then, once each one's serving loop runs, read every one's VmRSS,
//!    PSS and open descriptors, then tear all N down. Several rounds, the counts in one order in odd rounds and reversed in
//!    even rounds; medians of the round medians, with their min-max spread.
//!
//! Prints both as markdown tables and writes them to `isolation.md` and `isolation.json` (every
//! sample) in `$BENCH_OUT` (default `target/bench/`).
//!
//! `cargo build --release -p gpu-process && cargo bench -p vmm --bench spawn`
//! (the benchmark runs `$RAY_GPU_BIN`, else the ray-gpu of its own target directory and
//! profile; `SPAWN_BENCH_RUNS` sets the runs of part 1 (default 30), `ISOLATION_ROUNDS` the
//! rounds of part 2 (default 5)).

use std::fmt::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use control::display::DisplayMode;
use control::messages::{FromGpu, RendererMode, StartConfig, ToGpu};
use control::tube::Tube;
use jail::PassFd;
use seccomp::DefaultAction;
use serde_json::{json, Value};
use vmm::gpu_process::{GpuProcess, GpuSpawnConfig, VHOST_USER_FD};

/// Overrides which ray-gpu is spawned (as in the integration benchmark).
const RAY_GPU_ENV: &str = "RAY_GPU_BIN";
/// Overrides where the report is written (default `<target>/bench`).
const BENCH_OUT_ENV: &str = "BENCH_OUT";
/// How many GPU processes are alive at once in part 2.
const ALIVE_COUNTS: [usize; 4] = [1, 2, 4, 8];

fn main() {
    let binary = ray_gpu();
    let load_start = load_average();
    let spawn = spawn_comparison(&binary, env_count("SPAWN_BENCH_RUNS", 30));
    let isolation = isolation_cost(&binary, env_count("ISOLATION_ROUNDS", 5));
    report(&binary, &load_start, &spawn, &isolation);
}

/// A positive count from the environment variable `name`, else `default`.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// Part 1's samples, by series.
struct SpawnComparison {
    runs: usize,
    jailed: Vec<Duration>,
    plain: Vec<Duration>,
    true_exec: Vec<Duration>,
    rss: Vec<u64>,
    hwm: Vec<u64>,
    plain_rss: Vec<u64>,
}

/// Part 1: jailed spawn (no renderer) against plain fork+exec of the same program with the
/// same filter and against `/bin/true`, interleaved; prints its lines as it always has.
fn spawn_comparison(binary: &Path, runs: usize) -> SpawnComparison {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ray_gpu_none.policy");
    let config = GpuSpawnConfig::new(binary, &policy, &[]);
    let filter = vmm::policy::compile(&policy, DefaultAction::KillProcess)
        .expect("compiling the fixture policy")
        .filter;

    // Interleaved, so drift in the machine's load hits every series alike.
    let mut jailed = Vec::new();
    let mut plain = Vec::new();
    let mut true_exec = Vec::new();
    let mut rss = Vec::new();
    let mut hwm = Vec::new();
    let mut plain_rss = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let gpu = GpuProcess::spawn(&config).expect("spawning the jailed ray-gpu");
        jailed.push(started.elapsed());
        let status = gpu.status().expect("reading the jailed process's status");
        rss.push(status.vm_rss_kib);
        hwm.push(status.vm_hwm_kib);
        drop(gpu);

        let (elapsed, kib) = plain_spawn_to_ready(binary, &filter);
        plain.push(elapsed);
        plain_rss.push(kib);

        let started = Instant::now();
        Command::new("/bin/true")
            .status()
            .expect("running /bin/true");
        true_exec.push(started.elapsed());
    }

    println!(
        "spawn to Ready with the filter on, {runs} runs ({})",
        binary.display()
    );
    println!("{:<44} {:>10} {:>10} {:>10}", "", "median", "p90", "min");
    let jailed_median = row("jailed ray-gpu (rayvmm jail + verify)", &mut jailed.clone());
    let plain_median = row("plain fork+exec ray-gpu, same filter", &mut plain.clone());
    let true_median = row("fork+exec+wait /bin/true", &mut true_exec.clone());
    println!(
        "jail overhead: {:.1}x plain ray-gpu, {:.1}x /bin/true (medians)",
        ratio(jailed_median, plain_median),
        ratio(jailed_median, true_median)
    );
    println!(
        "memory after Ready: jailed VmRSS median {} KiB (VmHWM {} KiB); plain VmRSS {} KiB",
        median_u64(&mut rss),
        median_u64(&mut hwm),
        median_u64(&mut plain_rss)
    );
    SpawnComparison {
        runs,
        jailed,
        plain,
        true_exec,
        rss,
        hwm,
        plain_rss,
    }
}

/// What was read from one GPU process while N were alive.
struct ProcessSample {
    /// Spawn to Ready (filter on, confinement verified).
    spawn: Duration,
    vm_rss_kib: u64,
    /// Proportional set size: shared pages divided among the processes sharing them;
    /// `None` where smaps_rollup cannot be read.
    pss_kib: Option<u64>,
    /// What each entry of `/proc/PID/fd` points at (`N -> target`); `None` where they
    /// cannot be listed.
    fds: Option<Vec<String>>,
}

/// Part 2's samples: for each count of processes alive, for each round, one sample per
/// process in spawn order.
struct IsolationCost {
    rounds: usize,
    renderer: String,
    policy: String,
    /// Indexed like [`ALIVE_COUNTS`].
    samples: Vec<Vec<Vec<ProcessSample>>>,
}

/// The spawn configuration rayvmm uses for a VM's GPU: virgl, its display mode, the
/// software-rendering policy (the hardware one where the host has a render node), the
/// render nodes that exist.
fn vm_gpu_config(binary: &Path) -> GpuSpawnConfig {
    let nodes = jail::render_nodes(std::path::Path::new(jail::DRI_DIR));
    let policy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies")
        .join(if nodes.is_empty() {
            vmm::policy::SOFTWARE_POLICY
        } else {
            "x86_64/gpu_device.policy"
        });
    let mut config = GpuSpawnConfig::new(binary, &policy, &nodes);
    config.renderer = RendererMode::Virgl;
    config.display = Some(DisplayMode::default());
    config.ready_timeout = Duration::from_secs(60);
    config
}

/// Part 2: see the file's doc comment.
fn isolation_cost(binary: &Path, rounds: usize) -> IsolationCost {
    let config = vm_gpu_config(binary);
    let mut samples: Vec<Vec<Vec<ProcessSample>>> =
        ALIVE_COUNTS.iter().map(|_| Vec::new()).collect();
    let mut renderer = String::new();
    let mut policy = String::new();
    println!(
        "\nisolation cost: 1, 2, 4, 8 GPU processes alive at once (virgl, vhost-user socket), \
         {rounds} rounds"
    );
    for round in 1..=rounds {
        let started = Instant::now();
        let mut order: Vec<usize> = (0..ALIVE_COUNTS.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for index in order {
            let count = ALIVE_COUNTS[index];
            // Our ends of the vhost-user sockets stay open (no frontend speaks on them) until
            // the processes are torn down, so each process waits for its frontend, as a VM's
            // does before QEMU connects.
            let mut alive: Vec<(GpuProcess, UnixStream, Duration)> = Vec::with_capacity(count);
            for _ in 0..count {
                let (ours, theirs) = UnixStream::pair().expect("vhost-user socketpair");
                let spawned = Instant::now();
                let process = GpuProcess::spawn_with_fds(
                    &config,
                    &[PassFd {
                        source: theirs.as_fd(),
                        target: VHOST_USER_FD,
                    }],
                )
                .unwrap_or_else(|e| {
                    panic!("spawning GPU process {} of {count}: {e}", alive.len() + 1)
                });
                let spawn = spawned.elapsed();
                drop(theirs);
                alive.push((process, ours, spawn));
            }
            let taken: Vec<ProcessSample> = alive
                .iter()
                .map(|(process, _, spawn)| {
                    wait_serving(process.pid(), Duration::from_secs(2));
                    let status = process.status().expect("reading a GPU process's status");
                    ProcessSample {
                        spawn: *spawn,
                        vm_rss_kib: status.vm_rss_kib,
                        pss_kib: pss_kib(process.pid()),
                        fds: open_fds(process.pid()),
                    }
                })
                .collect();
            if let Some((process, _, _)) = alive.first() {
                renderer = process.ready_info().renderer.clone();
                policy = process.policy().name.clone();
            }
            // Dropping a GpuProcess kills and reaps it.
            drop(alive);
            samples[index].push(taken);
        }
        eprintln!(
            "isolation: round {round}/{rounds} done in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    IsolationCost {
        rounds,
        renderer,
        policy,
        samples,
    }
}

/// What marks a GPU process whose vhost-user serving loop runs: its epoll set.
const SERVING_LOOP_FD: &str = "anon_inode:[eventpoll]";

/// Waits (up to `timeout`) until the process's serving loop has started, which it does just
/// after saying Ready, so that its descriptors are counted in their steady state.
fn wait_serving(pid: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let serving = open_fds(pid).is_none_or(|fds| {
            fds.iter()
                .any(|fd| fd.ends_with(&format!(" -> {SERVING_LOOP_FD}")))
        });
        if serving {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `Pss:` of `/proc/PID/smaps_rollup`, KiB.
fn pss_kib(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The descriptors the process has open, as `N -> target` from `/proc/PID/fd`, by number.
fn open_fds(pid: i32) -> Option<Vec<String>> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let mut fds: Vec<(u32, String)> = entries
        .flatten()
        .map(|entry| {
            let number = entry
                .file_name()
                .to_string_lossy()
                .parse()
                .unwrap_or(u32::MAX);
            let target = std::fs::read_link(entry.path())
                .map_or_else(|_| "?".to_string(), |t| t.display().to_string());
            (number, format!("{number} -> {target}"))
        })
        .collect();
    fds.sort();
    Some(fds.into_iter().map(|(_, text)| text).collect())
}

/// The median, smallest and largest of `values` (zeros when empty).
fn summary<T: Copy + Ord + Default>(values: &[T]) -> (T, T, T) {
    let mut sorted = values.to_vec();
    sorted.sort();
    (
        sorted.get(sorted.len() / 2).copied().unwrap_or_default(),
        sorted.first().copied().unwrap_or_default(),
        sorted.last().copied().unwrap_or_default(),
    )
}

/// Per round, the median of that round's values as `pick` takes them from each process;
/// rounds where `pick` finds nothing are left out.
fn round_medians<T: Copy + Ord + Default>(
    rounds: &[Vec<ProcessSample>],
    pick: impl Fn(&ProcessSample) -> Option<T>,
) -> Vec<T> {
    rounds
        .iter()
        .map(|round| round.iter().filter_map(&pick).collect::<Vec<T>>())
        .filter(|values| !values.is_empty())
        .map(|values| summary(&values).0)
        .collect()
}

/// Prints the markdown report and writes `isolation.md` and `isolation.json`.
fn report(binary: &Path, load_start: &str, spawn: &SpawnComparison, isolation: &IsolationCost) {
    let load_end = load_average();
    let mut md = String::new();
    let _ = writeln!(md, "## Spawning the jailed GPU process (`spawn` bench)\n");
    let _ = writeln!(
        md,
        "ray-gpu: `{}`. Load average {load_start} at start, {load_end} at end.\n",
        binary.display()
    );
    let _ = writeln!(
        md,
        "Spawn to Ready without a renderer (`RendererMode::None`), {} runs each, interleaved:\n",
        spawn.runs
    );
    let _ = writeln!(md, "| what | median | min-max | vs plain ray-gpu |");
    let _ = writeln!(md, "|---|---:|---|---:|");
    let (plain_median, _, _) = summary(&spawn.plain);
    let mut spawn_docs = Vec::new();
    for (key, label, samples) in [
        (
            "jailed",
            "jailed ray-gpu (jail, filter, `/proc` checks)",
            &spawn.jailed,
        ),
        (
            "plain",
            "plain fork+exec of ray-gpu, same filter",
            &spawn.plain,
        ),
        ("true", "fork+exec+wait of `/bin/true`", &spawn.true_exec),
    ] {
        let (median, min, max) = summary(samples);
        let _ = writeln!(
            md,
            "| {label} | {} | {}-{} | {:.2}x |",
            ms_text(median),
            ms_text(min),
            ms_text(max),
            ratio(median, plain_median)
        );
        spawn_docs.push(json!({
            "key": key,
            "label": label,
            "samples_ns": samples.iter().map(Duration::as_nanos).collect::<Vec<_>>(),
            "median_ns": median.as_nanos(),
            "min_ns": min.as_nanos(),
            "max_ns": max.as_nanos(),
        }));
    }
    let _ = writeln!(
        md,
        "\nVmRSS after Ready: jailed {} KiB (VmHWM {} KiB), plain {} KiB (medians).\n",
        summary(&spawn.rss).0,
        summary(&spawn.hwm).0,
        summary(&spawn.plain_rss).0
    );

    let _ = writeln!(
        md,
        "Isolation cost: N GPU processes alive at once, each as a VM gets it (renderer {}, \
         policy {}, vhost-user socket, no frontend connected yet); spawned one after the \
         other, measured once all N are Ready and serving, then torn down. {} rounds, counts in the order \
         below in odd rounds and reversed in even rounds; medians of the round medians \
         (min-max of the round medians):\n",
        isolation.renderer, isolation.policy, isolation.rounds
    );
    let _ = writeln!(
        md,
        "| GPU processes alive | spawn to Ready | slowest spawn | vs 1 alive | VmRSS per process \
         | PSS per process | PSS of all N | open fds per process |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    let single_spawn = summary(&round_medians(&isolation.samples[0], |p| Some(p.spawn))).0;
    let mut count_docs = Vec::new();
    for (index, &count) in ALIVE_COUNTS.iter().enumerate() {
        let rounds = &isolation.samples[index];
        let spawns = round_medians(rounds, |p| Some(p.spawn));
        let rss = round_medians(rounds, |p| Some(p.vm_rss_kib));
        let pss = round_medians(rounds, |p| p.pss_kib);
        let fds = round_medians(rounds, |p| p.fds.as_ref().map(Vec::len));
        let pss_totals: Vec<u64> = rounds
            .iter()
            .filter_map(|round| round.iter().map(|p| p.pss_kib).sum::<Option<u64>>())
            .collect();
        let slowest = rounds
            .iter()
            .flatten()
            .map(|p| p.spawn)
            .max()
            .unwrap_or_default();
        let (spawn_median, spawn_min, spawn_max) = summary(&spawns);
        let (rss_median, rss_min, rss_max) = summary(&rss);
        let (pss_median, pss_min, pss_max) = summary(&pss);
        let (total_median, total_min, total_max) = summary(&pss_totals);
        let (fds_median, fds_min, fds_max) = summary(&fds);
        let kib_or_dash = |values: &[u64], (median, min, max): (u64, u64, u64)| {
            if values.is_empty() {
                "-".to_string()
            } else {
                format!("{} MiB ({}-{})", mib(median), mib(min), mib(max))
            }
        };
        let _ = writeln!(
            md,
            "| {count} | {} ({}-{}) | {} | {:.2}x | {} | {} | {} | {} |",
            ms_text(spawn_median),
            ms_text(spawn_min),
            ms_text(spawn_max),
            ms_text(slowest),
            ratio(spawn_median, single_spawn),
            kib_or_dash(&rss, (rss_median, rss_min, rss_max)),
            kib_or_dash(&pss, (pss_median, pss_min, pss_max)),
            kib_or_dash(&pss_totals, (total_median, total_min, total_max)),
            if fds.is_empty() {
                "-".to_string()
            } else {
                format!("{fds_median} ({fds_min}-{fds_max})")
            }
        );
        let processes: Vec<Vec<Value>> = rounds
            .iter()
            .map(|round| {
                round
                    .iter()
                    .map(|p| {
                        json!({
                            "spawn_ns": p.spawn.as_nanos(),
                            "vm_rss_kib": p.vm_rss_kib,
                            "pss_kib": p.pss_kib,
                            "open_fds": p.fds.as_ref().map(Vec::len),
                            "fd_targets": p.fds,
                        })
                    })
                    .collect()
            })
            .collect();
        count_docs.push(json!({
            "alive": count,
            "spawn_round_medians_ns": spawns.iter().map(Duration::as_nanos).collect::<Vec<_>>(),
            "spawn_median_ns": spawn_median.as_nanos(),
            "spawn_min_ns": spawn_min.as_nanos(),
            "spawn_max_ns": spawn_max.as_nanos(),
            "spawn_slowest_ns": slowest.as_nanos(),
            "spawn_vs_one_alive": ratio(spawn_median, single_spawn),
            "vm_rss_kib_median": rss_median,
            "vm_rss_kib_min": rss_min,
            "vm_rss_kib_max": rss_max,
            "pss_kib_median": (!pss.is_empty()).then_some(pss_median),
            "pss_kib_total_median": (!pss_totals.is_empty()).then_some(total_median),
            "open_fds_median": (!fds.is_empty()).then_some(fds_median),
            "open_fds_min": (!fds.is_empty()).then_some(fds_min),
            "open_fds_max": (!fds.is_empty()).then_some(fds_max),
            "rounds": processes,
        }));
    }
    let _ = writeln!(
        md,
        "\nVmRSS counts shared pages (the GL stack) in full in every process; PSS divides them \
         among the processes sharing them, so PSS of all N is what N GPU processes cost together."
    );
    print!("\n{md}");

    let doc = json!({
        "benchmark": "isolation",
        "command": "cargo bench -p vmm --bench spawn",
        "unix_time_start": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "ray_gpu": binary.display().to_string(),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "spawn_comparison": {
            "renderer": "none",
            "runs": spawn.runs,
            "order": "jailed, plain, /bin/true in every run",
            "series": spawn_docs,
            "jailed_vm_rss_kib_median": summary(&spawn.rss).0,
            "jailed_vm_hwm_kib_median": summary(&spawn.hwm).0,
            "plain_vm_rss_kib_median": summary(&spawn.plain_rss).0,
        },
        "isolation": {
            "renderer": isolation.renderer,
            "policy": isolation.policy,
            "rounds": isolation.rounds,
            "order": "counts 1, 2, 4, 8 in odd rounds, reversed in even rounds; the N processes \
                      of a count spawned one after the other and measured once all are Ready and serving",
            "counts": count_docs,
        },
    });
    let dir = report_dir();
    let json_path = dir.join("isolation.json");
    let text = serde_json::to_string_pretty(&doc).expect("serialising the report") + "\n";
    std::fs::write(&json_path, text)
        .unwrap_or_else(|e| panic!("writing {}: {e}", json_path.display()));
    let md_path = dir.join("isolation.md");
    std::fs::write(&md_path, &md).unwrap_or_else(|e| panic!("writing {}: {e}", md_path.display()));
    println!("written: {} and {}", json_path.display(), md_path.display());
}

/// `$BENCH_OUT`, else `bench/` in the target directory this benchmark was built into
/// (`target/<profile>/deps/<bench>` three levels up); created if missing.
fn report_dir() -> PathBuf {
    let dir = match std::env::var_os(BENCH_OUT_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("locating the benchmark");
            exe.ancestors()
                .nth(3)
                .map(|target| target.join("bench"))
                .unwrap_or_else(|| PathBuf::from("target/bench"))
        }
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn ms_text(d: Duration) -> String {
    format!("{:.2} ms", ms(d))
}

/// KiB as MiB with one decimal.
fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// `$RAY_GPU_BIN`, else the ray-gpu of the profile this benchmark was built in
/// (target/<profile>/ray-gpu).
fn ray_gpu() -> PathBuf {
    let path = match std::env::var_os(RAY_GPU_ENV) {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().expect("locating the benchmark");
            exe.parent()
                .and_then(Path::parent)
                .expect("benchmark in target/<profile>/deps")
                .join("ray-gpu")
        }
    };
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --release -p gpu-process` first (or set {RAY_GPU_ENV})",
        path.display()
    );
    path
}

/// Unjailed baseline: fork+exec ray-gpu with the tube at fd 3, send the same Start (same
/// filter), wait for Ready. Returns the time and the process's VmRSS in KiB.
fn plain_spawn_to_ready(binary: &Path, filter: &[u64]) -> (Duration, u64) {
    let started = Instant::now();
    let (tube, child_end) = Tube::pair().expect("tube pair");
    let child_end = OwnedFd::from(child_end);
    let raw = child_end.as_raw_fd();
    let mut command = Command::new(binary);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only calls dup2, which is
    // async-signal-safe; the tube's descriptor is above 3 (0-2 are stdio, 3 is taken by the
    // socketpair's other end), so dup2 makes a new, inheritable fd 3.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("spawning plain ray-gpu");
    drop(child_end);
    let start = StartConfig {
        policy_name: "fixture".into(),
        seccomp_filter: filter.to_vec(),
        ..StartConfig::default()
    };
    tube.send(&ToGpu::Start(start)).expect("sending Start");
    let ready = tube.recv::<FromGpu>().expect("waiting for Ready");
    let elapsed = started.elapsed();
    assert!(matches!(ready, FromGpu::Ready(_)), "{ready:?}");
    let kib = jail::verify::ProcStatus::read(child.id() as i32)
        .map(|s| s.vm_rss_kib)
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    (elapsed, kib)
}

/// Prints one row; returns the median.
fn row(name: &str, samples: &mut [Duration]) -> Duration {
    samples.sort();
    let median = samples[samples.len() / 2];
    let p90 = samples[(samples.len() * 9 / 10).min(samples.len() - 1)];
    println!(
        "{name:<44} {:>8.2}ms {:>8.2}ms {:>8.2}ms",
        ms(median),
        ms(p90),
        ms(samples[0])
    );
    median
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn median_u64(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}
