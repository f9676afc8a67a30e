//! Messages on the control tube between rayvmm (the supervisor) and ray-gpu (the jailed GPU
//! process). The supervisor is trusted by the GPU process; nothing the GPU process sends is
//! trusted by the supervisor.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::display::DisplayMode;
use crate::probe::{ProbeReport, ProbeRequest};

/// Messages from the supervisor to the GPU process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToGpu {
    /// The first message: what the GPU process needs to finish its own confinement.
    Start(StartConfig),
    /// Ask what the process can see from inside its jail.
    Report,
    /// Run an escape technique (only a `probe` build of ray-gpu honours it).
    Probe(ProbeRequest),
    /// Write the pixels scanout 0 shows now into the empty memfd attached to this message as
    /// descriptor 0, then answer [`FromGpu::Screenshot`]. The supervisor makes the memfd, so
    /// the GPU process needs no `memfd_create` (which, with executable memory, would let
    /// injected code run without touching the file system).
    Screenshot,
    /// What changed on scanout 0 since the supervisor saw frame generation `since`, and on
    /// its cursor since cursor generation `cursor_since` (0: nothing yet)? Changed pixels go
    /// into the frame buffer; the answer is [`FromGpu::Frame`]. Pixels are read back from the
    /// renderer only now, never on the guest's flush.
    ///
    /// With `new_buffer: Some(bytes)`, the memfd attached as descriptor 0 becomes the frame
    /// buffer first: the supervisor made it, sized it to `bytes` and sealed it against
    /// growing and shrinking ([`FRAME_BUFFER_SEALS`]), and reads frames from its own mapping
    /// (frames are too big for the tube, and a memfd per frame would cost a `memfd_create`
    /// in the jail and a mapping per frame in the supervisor).
    Frame {
        since: u64,
        #[serde(default)]
        cursor_since: u64,
        #[serde(default)]
        new_buffer: Option<u64>,
    },
    /// Stop serving and exit 0.
    Shutdown,
}

/// Messages from the GPU process to the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromGpu {
    /// The seccomp filter is installed and the process is serving.
    Ready(ReadyInfo),
    /// Answer to [`ToGpu::Report`].
    Report(SandboxView),
    /// Answer to [`ToGpu::Probe`].
    Probe(ProbeReport),
    /// Answer to [`ToGpu::Screenshot`]: the memfd now holds `width * height` x8r8g8b8 pixels
    /// (B, G, R, X in memory, rows of `width * 4` bytes); pixels exceed the tube's message
    /// cap, hence the memfd. Untrusted: the supervisor seals the memfd against further
    /// change, then checks its size against the claim before reading it.
    Screenshot { width: u32, height: u32 },
    /// Answer to [`ToGpu::Frame`], from the thread that serves the device (so an answer
    /// also says that thread is alive): the frame, the cursor, and the device's progress.
    Frame(FrameReply, CursorReply, DeviceProgress),
    /// Trap-and-report mode: the filter refused this call; the process exits next.
    BlockedSyscall(BlockedSyscall),
    /// A request could not be carried out.
    Error(String),
}

/// How the GPU process finishes its confinement after exec.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StartConfig {
    /// Name of the policy the filter was compiled from, for reports.
    pub policy_name: String,
    /// The compiled filter: each `sock_filter` packed as `code | jt << 16 | jf << 24 | k << 32`
    /// (`seccomp::bpf_to_words` / `seccomp::bpf_from_words`, used by both ends).
    pub seccomp_filter: Vec<u64>,
    /// The filter traps instead of killing: report the blocked call on the tube, then exit.
    pub report_blocked_syscalls: bool,
    /// Landlock rules, applied where the kernel supports Landlock.
    pub landlock: LandlockRules,
    /// Which renderer to bring up before the filter is installed.
    pub renderer: RendererMode,
    /// The descriptor of the vhost-user socket (a connected stream) the process serves the
    /// virtio-gpu device on; `None` serves only the tube.
    #[serde(default)]
    pub vhost_user_fd: Option<i32>,
    /// The mode the device's one display reports (GET_DISPLAY_INFO, EDID); `None` keeps the
    /// device's default ([`DisplayMode::default`], 1024x768). The device refuses a mode its
    /// EDID cannot describe (an edge of 0 or above 4095).
    #[serde(default)]
    pub display: Option<DisplayMode>,
    /// The descriptor of a pipe to stream a recording of the guest's commands into (the
    /// `recording` crate's record framing); `None` records nothing.
    #[serde(default)]
    pub record_fd: Option<i32>,
    /// How long, in milliseconds, one guest command may run or one fenced command wait for
    /// its fence before the GPU process stops itself with [`WORK_TIMEOUT_EXIT_CODE`]: a draw
    /// that does not finish is contained to its own VM. `None`: no bound.
    #[serde(default)]
    pub work_timeout_ms: Option<u64>,
}

/// What changed on a scanout, as the GPU process claims it. Untrusted: the supervisor checks
/// every size and rectangle against its own limits and the frame buffer before it reads a
/// pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameReply {
    /// Nothing changed since the generation asked about.
    Unchanged,
    /// The scanout shows nothing, as of `generation`.
    Disabled { generation: u64 },
    /// `rect` of a `width` x `height` frame changed, as of `generation`; the frame buffer
    /// holds its pixels from offset 0: rows of `rect.width * 4` bytes, B, G, R, X in memory.
    Pixels {
        generation: u64,
        width: u32,
        height: u32,
        rect: FrameRect,
    },
    /// The change needs `bytes` bytes, more than the frame buffer holds: nothing was written
    /// (the next request gets the whole frame again).
    TooLarge { bytes: u64 },
    /// No frame buffer was given yet, or no device is being served.
    NoBuffer,
}

/// What changed about scanout 0's cursor, as the GPU process claims it. Untrusted: the
/// supervisor checks the image size and hot spot before showing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CursorReply {
    /// Nothing since the generation asked about.
    Unchanged,
    /// Hidden, as of `generation`.
    Hidden { generation: u64 },
    /// Moved to (`x`, `y`); the image is the one the supervisor has.
    Moved { generation: u64, x: u32, y: u32 },
    /// At (`x`, `y`), showing a new 64x64 image: `pixels` are B, G, R, A in memory, rows of
    /// 256 bytes; (`hot_x`, `hot_y`) is its hot spot.
    Image {
        generation: u64,
        x: u32,
        y: u32,
        hot_x: u32,
        hot_y: u32,
        pixels: Vec<u8>,
    },
}

/// How far the device got, for the supervisor's liveness watch: commands answered so far
/// and fenced commands still waiting for their fence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceProgress {
    pub commands_answered: u64,
    pub fences_pending: u64,
}

/// A rectangle of a frame, in pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The seals the supervisor puts on a frame buffer before passing it: its size cannot
/// change, so a mapping of it never faults, whatever the GPU process does.
pub const FRAME_BUFFER_SEALS: i32 = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// The seals the supervisor puts on a screenshot memfd once the GPU process has answered:
/// from then on neither its size nor its contents can change.
pub const SCREENSHOT_SEALS: i32 =
    libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;

/// Exit status of a GPU process that stopped itself after its filter trapped a system call
/// (trap-and-report mode): 128 + SIGSYS, as a shell reports a death by SIGSYS.
pub const BLOCKED_SYSCALL_EXIT_CODE: i32 = 128 + 31;

/// Exit status of a GPU process that stopped itself because a guest command ran, or a fenced
/// command waited, longer than its work timeout ([`StartConfig::work_timeout_ms`]).
pub const WORK_TIMEOUT_EXIT_CODE: i32 = 3;

/// Paths inside the jail that Landlock leaves reachable.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LandlockRules {
    /// Readable (and executable, for shared libraries) only.
    pub read_only: Vec<PathBuf>,
    /// Readable and writable (device nodes, the scratch tmpfs).
    pub read_write: Vec<PathBuf>,
    /// Directories that may be listed (with everything below them), not read: the jail's
    /// root, so the sandbox report can show the tree.
    #[serde(default)]
    pub list_only: Vec<PathBuf>,
}

/// The renderer the GPU process initialises before its filter goes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RendererMode {
    /// No renderer: the jail alone (sandbox reports, escape tests).
    #[default]
    None,
    /// virglrenderer through rutabaga_gfx (3D); where it does not come up with its capsets,
    /// the 2D component, and Ready's renderer says so with the reason.
    Virgl,
    /// rutabaga's 2D component only.
    TwoD,
}

/// Sent once the filter is in place.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyInfo {
    /// The process's pid as it sees itself (1 in its own pid namespace).
    pub pid_in_namespace: i32,
    /// Whether Landlock rules were enforced (false where the kernel lacks Landlock).
    pub landlock_enforced: bool,
    /// The renderer that actually came up, with the capsets it offers.
    pub renderer: String,
    /// The host GL renderer under virgl (GL_RENDERER), when virgl came up.
    #[serde(default)]
    pub gl_renderer: Option<String>,
}

/// A system call the filter refused in trap-and-report mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedSyscall {
    pub nr: i64,
    pub args: [u64; 6],
}

/// What the GPU process sees from inside its jail.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxView {
    /// Every path visible inside, depth-first, with its type (`d`, `f`, `l`, `c`...).
    pub files: Vec<VisibleFile>,
    /// Open descriptors: number and what `/proc/self/fd/N` points at.
    pub fds: Vec<(i32, String)>,
    /// Resource limits: name, soft, hard (`None` is unlimited).
    pub rlimits: Vec<(String, Option<u64>, Option<u64>)>,
    /// Contents of `/proc/self/cgroup`.
    pub cgroup: String,
    /// User and group ids as seen inside.
    pub uid: u32,
    pub gid: u32,
}

/// One path visible inside the jail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VisibleFile {
    pub path: String,
    pub kind: char,
    pub writable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_config_without_display_keeps_the_device_default() {
        let mut json = serde_json::to_value(StartConfig::default()).unwrap();
        json.as_object_mut().unwrap().remove("display");

        let start: StartConfig = serde_json::from_value(json).unwrap();

        assert_eq!(start.display, None);
    }

    #[test]
    fn start_config_carries_the_display_mode() {
        let sent = StartConfig {
            display: Some(DisplayMode {
                width: 800,
                height: 600,
            }),
            ..StartConfig::default()
        };

        let received: StartConfig =
            serde_json::from_slice(&serde_json::to_vec(&sent).unwrap()).unwrap();

        assert_eq!(
            received.display,
            Some(DisplayMode {
                width: 800,
                height: 600
            })
        );
    }
}
