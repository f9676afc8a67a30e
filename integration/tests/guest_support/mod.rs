//! Shared helpers for the end-to-end guest tests: the binaries and guest images, running
//! `rayvmm run` under a deadline, its serial console, its screenshots.
//!
//! The guests need QEMU 10 and the guest image; `scripts/test.sh` builds both before
//! `cargo test`. When something is missing the test fails with the command that makes it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest any one guest run may take (TCG on a 2-core machine, other tests beside it).
pub const GUEST_TIMEOUT: Duration = Duration::from_secs(240);
/// Kernel arguments shared by every Linux guest run (as guest/run-reference.sh uses them).
pub const KERNEL_ARGS: &str = "console=ttyS0,115200 panic=-1 mitigations=off \
     drm.edid_firmware=edid/1024x768.bin vt.global_cursor_default=0";
/// What makes the guest image, for messages.
const IMAGE_HINT: &str = "bash scripts/setup-guest-tools.sh && bash guest/build-linux-guest.sh";

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the integration crate lives in the workspace")
        .to_path_buf()
}

fn require(path: PathBuf, hint: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `{hint}` first",
        path.display()
    );
    path
}

/// The rayvmm binary (debug build).
pub fn rayvmm_binary() -> PathBuf {
    require(
        repo_root().join("target/debug/rayvmm"),
        "cargo build -p vmm -p gpu-process",
    )
}

/// The Linux guest image built by guest/build-linux-guest.sh.
pub struct LinuxImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// Locates the Linux guest image, failing with the script to run when it is missing.
pub fn linux_image() -> LinuxImage {
    let dir = repo_root().join(".cache/guest/linux");
    LinuxImage {
        kernel: require(dir.join("vmlinuz"), IMAGE_HINT),
        initrd: require(dir.join("initrd.img"), IMAGE_HINT),
    }
}

/// Debian's OVMF in one file (code and variables), usable with `-bios`.
pub fn ovmf() -> PathBuf {
    require(
        PathBuf::from("/usr/share/ovmf/OVMF.fd"),
        "bash scripts/setup-guest-tools.sh",
    )
}

/// Which vhost-user GPU server the tests run: the jailed ray-gpu unless
/// `RAYVMM_TEST_GPU_BACKEND` names another (`reference`, to check the harness itself).
pub fn gpu_backend() -> String {
    std::env::var("RAYVMM_TEST_GPU_BACKEND").unwrap_or_else(|_| "ray-gpu".to_string())
}

/// A fresh, empty scratch directory for one test under target/guest-tests/.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = repo_root().join("target/guest-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `rayvmm run` arguments for a Linux guest running `workload` with extra `rayos.*` args.
pub fn linux_args(dir: &Path, workload: &str, three_d: bool, extra_append: &str) -> Vec<String> {
    let image = linux_image();
    let mode = ["--no-3d", "--3d"][usize::from(three_d)];
    vec![
        "--kernel".into(),
        image.kernel.display().to_string(),
        "--initrd".into(),
        image.initrd.display().to_string(),
        "--append".into(),
        format!("{KERNEL_ARGS} rayos.workload={workload} {extra_append}"),
        "--memory".into(),
        "1G".into(),
        "--cpus".into(),
        "2".into(),
        mode.into(),
        "--gpu-backend".into(),
        gpu_backend(),
        "--screenshot".into(),
        dir.join("final.png").display().to_string(),
    ]
}

/// Text a child wrote, collected by a reader thread.
type Collected = Arc<Mutex<String>>;

fn collect(
    mut stream: impl Read + Send + 'static,
    echo: &'static str,
) -> (Collected, JoinHandle<()>) {
    let text: Collected = Arc::default();
    let sink = text.clone();
    // Raw chunks, not lines: a firmware prompt such as "Shell> " ends without a newline.
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            let chunk = String::from_utf8_lossy(&buf[..n]);
            eprint!("{}", chunk.replace('\n', &format!("\n{echo}")));
            sink.lock().unwrap().push_str(&chunk);
        }
    });
    (text, handle)
}

/// A running `rayvmm run`; killed (with its children, by their parent-death signal) when
/// dropped unfinished.
pub struct Rayvmm {
    child: Child,
    serial: Collected,
    log: Collected,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

/// How a run ended.
#[derive(Debug)]
pub struct Finished {
    /// rayvmm's exit code (`None`: killed at the deadline).
    pub code: Option<i32>,
    pub serial: String,
    pub log: String,
    /// `RAYOS-RESULT key=value` lines from the guest.
    pub results: BTreeMap<String, String>,
    pub seconds: f64,
}

impl Finished {
    /// A guest result, or "" when the guest did not report it.
    pub fn result(&self, key: &str) -> &str {
        self.results.get(key).map(String::as_str).unwrap_or("")
    }

    /// Paths of the screenshots rayvmm reported writing, in order.
    pub fn screenshots(&self) -> Vec<PathBuf> {
        self.log
            .lines()
            .filter_map(|l| l.split(" written to ").nth(1))
            .filter_map(|rest| rest.split(" (source: ").next())
            .map(PathBuf::from)
            .collect()
    }
}

/// Parses the guest's `RAYOS-RESULT key=value` lines (later ones win).
pub fn guest_results(serial: &str) -> BTreeMap<String, String> {
    serial
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').split("RAYOS-RESULT ").nth(1))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Rayvmm {
    /// Starts `rayvmm run ARGS`.
    pub fn start(args: &[String]) -> Rayvmm {
        let mut child = Command::new(rayvmm_binary())
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rayvmm");
        let (serial, r1) = collect(child.stdout.take().unwrap(), "serial| ");
        let (log, r2) = collect(child.stderr.take().unwrap(), "rayvmm| ");
        Rayvmm {
            child,
            serial,
            log,
            readers: vec![r1, r2],
            started: Instant::now(),
        }
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the serial console contains `needle`; false at the deadline or exit.
    pub fn wait_for_serial(&mut self, needle: &str, timeout: Duration) -> bool {
        let serial = self.serial.clone();
        self.wait_for(|| serial.lock().unwrap().contains(needle), timeout)
    }

    /// Waits until rayvmm's own messages contain `needle` `count` times.
    pub fn wait_for_log_count(&mut self, needle: &str, count: usize, timeout: Duration) -> bool {
        let log = self.log.clone();
        self.wait_for(
            || log.lock().unwrap().matches(needle).count() >= count,
            timeout,
        )
    }

    fn wait_for(&mut self, cond: impl Fn() -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if cond() {
                return true;
            }
            if self.child.try_wait().ok().flatten().is_some() {
                return cond();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Sends a signal by name (`USR1`, `TERM`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Asks for a screenshot every `interval` until rayvmm exits (or the deadline).
    pub fn screenshots_until_exit(&mut self, interval: Duration, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(interval);
            let _ = Command::new("kill")
                .args(["-s", "USR1", &self.pid().to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Waits for rayvmm to exit (SIGKILL at the deadline) and collects what it said.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait rayvmm") {
                break status.code();
            }
            if Instant::now() >= deadline {
                eprintln!("rayvmm still running after {timeout:?}: killing it");
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let serial = self.serial.lock().unwrap().clone();
        let log = self.log.lock().unwrap().clone();
        Finished {
            code,
            results: guest_results(&serial),
            serial,
            log,
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

impl Drop for Rayvmm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the tests check in a PNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    /// Number of distinct colours: 1 for a uniform image.
    pub colours: usize,
}

/// Reads a PNG (RGB or RGBA, 8 bits) and counts its colours.
pub fn picture(path: &Path) -> Picture {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("screenshot {} missing: {e}", path.display()));
    let mut reader = png::Decoder::new(BufReader::new(file))
        .read_info()
        .expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    let channels = info.color_type.samples();
    let mut colours: Vec<&[u8]> = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| &p[..3.min(channels)])
        .collect();
    colours.sort_unstable();
    colours.dedup();
    Picture {
        width: info.width,
        height: info.height,
        colours: colours.len(),
    }
}

/// The picture with the most colours among `paths` (the most drawn-on screenshot).
pub fn richest_picture(paths: &[PathBuf]) -> Picture {
    paths
        .iter()
        .map(|p| picture(p))
        .max_by_key(|p| p.colours)
        .expect("at least one screenshot")
}

/// How many times a reference run is started before its failure counts. QEMU's own GL
/// display (`-display sdl,gl=on` on Xvfb, Mesa llvmpipe) leaves the whole Xvfb screen black in
/// about half of the runs here (seen with `XSHOT_DEBUG=1`), whatever the guest drew; the
/// guest's results are the same either way. Only the reference side is retried: the jailed
/// run it is compared with is run once.
const REFERENCE_ATTEMPTS: usize = 5;

/// Runs guest/run-reference.sh VARIANT with ARGS until it succeeds or
/// [`REFERENCE_ATTEMPTS`] runs have failed; returns the last run's results and exit status.
pub fn reference_run(variant: &str, args: &[&str]) -> (Option<i32>, BTreeMap<String, String>) {
    let mut last = reference_run_once(variant, args);
    for attempt in 2..=REFERENCE_ATTEMPTS {
        if last.0 == Some(0) {
            break;
        }
        eprintln!("reference run {variant} failed; attempt {attempt} of {REFERENCE_ATTEMPTS}");
        last = reference_run_once(variant, args);
    }
    last
}

/// Runs guest/run-reference.sh VARIANT with ARGS once.
fn reference_run_once(variant: &str, args: &[&str]) -> (Option<i32>, BTreeMap<String, String>) {
    let out = Command::new("bash")
        .arg(repo_root().join("guest/run-reference.sh"))
        .arg(variant)
        .args(args)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run guest/run-reference.sh");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}");
    (out.status.code(), guest_results(&text))
}
