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
use std::sync::{Arc, Mutex, Once};
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

/// How long one `rayvmm replay` may take.
pub const REPLAY_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `rayvmm replay PATH EXTRA...` under [`REPLAY_TIMEOUT`].
pub fn replay(path: &Path, extra: &[&str]) -> ToolRun {
    run_tool(
        Command::new(rayvmm_binary())
            .arg("replay")
            .arg(path)
            .args(extra),
        REPLAY_TIMEOUT,
    )
}

/// Runs `rayvmm replay --json PATH EXTRA...`, which must exit 0, and returns its report.
pub fn replay_json(path: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let run = replay(path, &args);
    assert_eq!(run.code, Some(0), "{}", run.output);
    let json_start = run.output.find('{').expect("a JSON report");
    let json_end = run.output.rfind('}').expect("a JSON report");
    serde_json::from_str(&run.output[json_start..=json_end]).expect("the report parses")
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
        Rayvmm::start_with_env(args, &[])
    }

    /// Starts `rayvmm run ARGS` with `env` added to its environment.
    pub fn start_with_env(args: &[String], env: &[(&str, &str)]) -> Rayvmm {
        Rayvmm::start_wrapped(&[], args, env)
    }

    /// Starts `WRAPPER... rayvmm run ARGS` with `env` added to its environment: a wrapper
    /// such as `prlimit --nofile=20:1024` or `unshare --mount ...` that ends by executing the
    /// rest of its command line, so the process started is rayvmm itself.
    pub fn start_wrapped(wrapper: &[String], args: &[String], env: &[(&str, &str)]) -> Rayvmm {
        let rayvmm = rayvmm_binary();
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(rayvmm);
                command
            }
            None => Command::new(rayvmm),
        };
        let mut child = command
            .arg("run")
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn rayvmm (wrapped in {wrapper:?}): {e}"));
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

    /// Whether rayvmm has not exited yet.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Waits until the serial console contains `needle`; false at the deadline or exit.
    pub fn wait_for_serial(&mut self, needle: &str, timeout: Duration) -> bool {
        let serial = self.serial.clone();
        self.wait_for(|| serial.lock().unwrap().contains(needle), timeout)
    }

    /// Waits until rayvmm's own messages contain `prefix` followed by a whole word, and returns
    /// that word: the text after the first `prefix` up to the next whitespace (a word still
    /// being written, with nothing after it yet, is waited for). `None` at the deadline or exit.
    pub fn wait_for_log_word_after(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        let log = self.log.clone();
        let word = move || {
            let text = log.lock().unwrap();
            let rest = &text[text.find(prefix)? + prefix.len()..];
            let end = rest.find(char::is_whitespace)?;
            Some(rest[..end].to_string())
        };
        self.wait_for(|| word().is_some(), timeout);
        word()
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

/// How a helper program run by [`run_tool`] ended.
#[derive(Debug)]
pub struct ToolRun {
    /// Its exit code (`None`: killed at the deadline, or by a signal).
    pub code: Option<i32>,
    /// Its stdout, then its stderr.
    pub output: String,
}

/// Runs `command` (stdin closed, output collected and echoed with `tool| `), killing it after
/// `timeout`.
pub fn run_tool(command: &mut Command, timeout: Duration) -> ToolRun {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let (stdout, r1) = collect(child.stdout.take().unwrap(), "tool| ");
    let (stderr, r2) = collect(child.stderr.take().unwrap(), "tool| ");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for tool") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            eprintln!("{command:?} still running after {timeout:?}: killing it");
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = r1.join();
    let _ = r2.join();
    let output = format!("{}{}", stdout.lock().unwrap(), stderr.lock().unwrap());
    ToolRun {
        code: status.and_then(|s| s.code()),
        output,
    }
}

/// What installs the VNC clients, for messages.
const VNC_CLIENTS_HINT: &str = "bash scripts/setup-guest-tools.sh";

/// The virtualenv scripts/setup-guest-tools.sh installs vncdotool (and with it Pillow) into.
fn vnc_clients_venv() -> PathBuf {
    repo_root().join(".cache/vnc-clients/venv")
}

/// vncdotool's `vncdo` (a Python RFB client, pinned by scripts/setup-guest-tools.sh).
pub fn vncdo_binary() -> PathBuf {
    require(vnc_clients_venv().join("bin/vncdo"), VNC_CLIENTS_HINT)
}

/// Debian's `vncsnapshot` (a C RFB client from TightVNC 1.2, speaking RFB 3.3; saves a JPEG).
pub fn vncsnapshot_binary() -> PathBuf {
    require(PathBuf::from("/usr/bin/vncsnapshot"), VNC_CLIENTS_HINT)
}

/// Opens `path` (any format Pillow reads: JPEG, PNG ...) with the VNC clients' Python and
/// returns its size and the RGB colour at each `(x, y)` of `points`.
pub fn pillow_samples(path: &Path, points: &[(u32, u32)]) -> ((u32, u32), Vec<[u8; 3]>) {
    const SCRIPT: &str = "import sys\n\
        from PIL import Image\n\
        im = Image.open(sys.argv[1]).convert('RGB')\n\
        print(*im.size)\n\
        for p in sys.argv[2:]:\n    print(*im.getpixel(tuple(map(int, p.split(',')))))\n";
    let python = require(vnc_clients_venv().join("bin/python"), VNC_CLIENTS_HINT);
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(path)
        .args(points.iter().map(|(x, y)| format!("{x},{y}")))
        .output()
        .expect("run Python with Pillow");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "reading {} with Pillow failed: {text}{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = text.lines().map(|line| {
        line.split_whitespace()
            .map(|n| n.parse::<u32>().expect("a number from Pillow"))
            .collect::<Vec<_>>()
    });
    let size = rows.next().expect("the image size from Pillow");
    let colours = rows
        .map(|c| [c[0], c[1], c[2]].map(|v| u8::try_from(v).expect("an 8-bit channel")))
        .collect();
    ((size[0], size[1]), colours)
}

/// What the tests check in a PNG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    /// Number of distinct colours: 1 for a uniform image.
    pub colours: usize,
}

/// A decoded image, as 8-bit RGB (alpha dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    /// Row-major, `width * height` pixels.
    pub pixels: Vec<[u8; 3]>,
}

impl RgbImage {
    /// The pixel at column `x`, row `y`.
    pub fn at(&self, x: u32, y: u32) -> [u8; 3] {
        self.pixels[(y * self.width + x) as usize]
    }
}

/// Reads a PNG of any colour type and bit depth as 8-bit RGB.
pub fn rgb_image(path: &Path) -> RgbImage {
    let file = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("image {} missing: {e}", path.display()));
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("PNG header");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("PNG data");
    let channels = info.color_type.samples();
    let grey = channels < 3;
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| if grey { [p[0]; 3] } else { [p[0], p[1], p[2]] })
        .collect();
    RgbImage {
        width: info.width,
        height: info.height,
        pixels,
    }
}

/// Reads a PNG and counts its colours.
pub fn picture(path: &Path) -> Picture {
    let image = rgb_image(path);
    let mut colours = image.pixels;
    colours.sort_unstable();
    colours.dedup();
    Picture {
        width: image.width,
        height: image.height,
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

/// Makes this test process the reaper of every process its children leave behind: a child
/// of rayvmm that outlives it is then adopted here (not by init), where [`living_orphans`]
/// finds it. Call before starting rayvmm.
pub fn adopt_orphans() {
    static SET: Once = Once::new();
    SET.call_once(|| {
        nix::sys::prctl::set_child_subreaper(true)
            .expect("making the test process a child subreaper (PR_SET_CHILD_SUBREAPER)")
    });
}

/// The processes this test process adopted (see [`adopt_orphans`]) that are still alive
/// after `settle`, as `pid comm`: children of rayvmm that outlived it. Only meaningful once
/// every process the test started itself has been waited for. Adopted processes that died
/// are reaped on the way.
pub fn living_orphans(settle: Duration) -> Vec<String> {
    let deadline = Instant::now() + settle;
    loop {
        let living: Vec<String> = adopted()
            .into_iter()
            .filter(|(pid, _, state)| {
                let zombie = *state == 'Z';
                if zombie {
                    let _ = nix::sys::wait::waitpid(
                        nix::unistd::Pid::from_raw(*pid),
                        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                    );
                }
                !zombie
            })
            .map(|(pid, comm, _)| format!("{pid} {comm}"))
            .collect();
        if living.is_empty() || Instant::now() >= deadline {
            return living;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// This process's children: pid, command name and state letter, from /proc/PID/stat.
fn adopted() -> Vec<(i32, String, char)> {
    let me = std::process::id().to_string();
    let entries = std::fs::read_dir("/proc").expect("list /proc");
    entries
        .filter_map(|entry| {
            let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (head, tail) = stat.rsplit_once(") ")?;
            let comm = head.split_once(" (")?.1.to_string();
            let mut fields = tail.split_whitespace();
            let state = fields.next()?.chars().next()?;
            (fields.next()? == me).then_some((pid, comm, state))
        })
        .collect()
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names
}
