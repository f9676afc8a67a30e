//! What a jail is made of: the program, its identity, the file tree it sees, its descriptors,
//! its environment and its resource limits.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Host uid and gid of nobody/nogroup, the identity a root supervisor gives the jail.
pub const NOBODY: u32 = 65534;

/// Where the jailed program appears inside the jail.
pub const PROGRAM_INSIDE: &str = "/ray-gpu";

/// Everything needed to spawn one jailed process.
#[derive(Debug, Clone)]
pub struct JailConfig {
    /// Host path of the program to run (bound read-only at [`JailConfig::program_inside`]).
    pub program: PathBuf,
    /// Path of the program inside the jail.
    pub program_inside: PathBuf,
    /// Arguments after `argv[0]` (which is `program_inside`).
    pub args: Vec<OsString>,
    /// Host identity of the jailed process.
    pub ids: JailIds,
    /// The file tree, in order: read-only binds, symlinks, device nodes, scratch space.
    pub tree: Vec<TreeEntry>,
    /// Size cap of the tmpfs that becomes the jail's root (it holds only mount points).
    pub root_tmpfs_bytes: u64,
    /// Hide everything in the jail's `/proc` but the per-process directories (`subset=pid`).
    pub proc_subset_pid: bool,
    /// The environment, exactly (nothing of the supervisor's is inherited).
    pub env: Vec<(OsString, OsString)>,
    /// Resource limits set before exec.
    pub rlimits: Vec<Rlimit>,
    /// A delegated cgroup v2 directory to put the process in, with its limits.
    pub cgroup: Option<CgroupLimits>,
    /// What the child's standard error is.
    pub stderr: ChildStderr,
    /// How long the child may take from clone to exec before it is killed.
    pub exec_timeout: Duration,
    /// The process's nice value (0 to 19): how much CPU its threads get against the host's
    /// default-priority threads (QEMU's vCPUs, rayvmm) when the CPUs are contended.
    pub nice: i32,
}

/// The host identity of the jailed process.
///
/// Inside its user namespace the process has the same numeric ids (a one-id identity map), so
/// `uid` inside is `uid` outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailIds {
    pub uid: u32,
    pub gid: u32,
    /// Extra groups the process keeps (e.g. the host's `render` group for a render node).
    /// Only a root supervisor can grant them; each is mapped one to one.
    pub supplementary_gids: Vec<u32>,
}

impl JailIds {
    /// nobody/nogroup for a root supervisor; the supervisor's own ids otherwise (an
    /// unprivileged user can map only itself into a user namespace).
    pub fn default_for_caller() -> JailIds {
        // SAFETY: geteuid/getegid cannot fail and touch no memory.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if euid == 0 {
            JailIds {
                uid: NOBODY,
                gid: NOBODY,
                supplementary_gids: Vec::new(),
            }
        } else {
            JailIds {
                uid: euid,
                gid: egid,
                supplementary_gids: Vec::new(),
            }
        }
    }
}

/// One piece of the jail's file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeEntry {
    /// A read-only bind mount of a host file or directory (not recursive: mounts below it
    /// stay out). A missing source is skipped when `optional`, an error otherwise.
    Bind {
        source: PathBuf,
        target: PathBuf,
        optional: bool,
    },
    /// A symbolic link inside the jail (e.g. `/lib64 -> usr/lib64` on merged-/usr hosts).
    Symlink { link: PathBuf, value: PathBuf },
    /// A device node bound at the same path, read-write, never executable or setuid; skipped
    /// if the host lacks it.
    Device { path: PathBuf },
    /// A writable, size-capped tmpfs (nosuid, nodev, noexec).
    Tmpfs { target: PathBuf, bytes: u64 },
}

/// One resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// The resource limits the jail sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Core,
    NoFile,
    NProc,
    FSize,
    Data,
    As,
    MemLock,
}

impl Resource {
    /// The `RLIMIT_*` constant.
    pub fn raw(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::Core => libc::RLIMIT_CORE,
            Resource::NoFile => libc::RLIMIT_NOFILE,
            Resource::NProc => libc::RLIMIT_NPROC,
            Resource::FSize => libc::RLIMIT_FSIZE,
            Resource::Data => libc::RLIMIT_DATA,
            Resource::As => libc::RLIMIT_AS,
            Resource::MemLock => libc::RLIMIT_MEMLOCK,
        }
    }

    /// The name as `prlimit(1)` and the sandbox report print it.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Core => "RLIMIT_CORE",
            Resource::NoFile => "RLIMIT_NOFILE",
            Resource::NProc => "RLIMIT_NPROC",
            Resource::FSize => "RLIMIT_FSIZE",
            Resource::Data => "RLIMIT_DATA",
            Resource::As => "RLIMIT_AS",
            Resource::MemLock => "RLIMIT_MEMLOCK",
        }
    }
}

/// A delegated cgroup v2 directory: the process goes into a new child cgroup of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLimits {
    /// A cgroup2 directory the supervisor may create children in (memory and pids controllers
    /// enabled in its `cgroup.subtree_control`).
    pub parent: PathBuf,
    /// `memory.max`, bytes.
    pub memory_max: u64,
    /// `pids.max`.
    pub pids_max: u64,
}

/// Where the child's standard error goes (standard input and output are always /dev/null).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStderr {
    /// /dev/null.
    Null,
    /// The supervisor's own standard error (for debugging: a terminal is a wide channel, and a
    /// file there is a host file open for writing inside the jail).
    Inherit,
    /// A descriptor of the supervisor's, typically a pipe's write end whose other end the
    /// supervisor reads and bounds: the child's log reaches it without any host file.
    Descriptor(std::os::fd::RawFd),
}

/// A descriptor to install in the child at a fixed number.
#[derive(Debug, Clone, Copy)]
pub struct PassFd<'a> {
    /// The supervisor's descriptor; it stays open in the supervisor.
    pub source: std::os::fd::BorrowedFd<'a>,
    /// The number it gets in the child (3 and up: 0-2 are standard input, output, error).
    pub target: RawFd,
}

/// Read-only paths the headless GL stack loads (FACTS.md: shared libraries, the glvnd vendor
/// file, Mesa's DRI drivers and drirc, the loader cache).
pub const GL_READ_ONLY_PATHS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/lib",
    "/etc/ld.so.cache",
    "/usr/share/glvnd/egl_vendor.d",
    "/usr/share/egl/egl_external_platform.d",
    "/usr/share/drirc.d",
];

/// Where NVIDIA's driver keeps its userspace libraries and vendor files apart from the
/// distribution's (the GPU machines here: ../shared/FACTS.md, "The NVIDIA machines").
pub const NVIDIA_PATHS: &[&str] = &["/usr/local/nvidia/lib64", "/usr/local/nvidia/share"];

/// The control node every NVIDIA device node needs beside it.
pub const NVIDIA_CONTROL_NODE: &str = "/dev/nvidiactl";

/// Whether `path` is one of NVIDIA's device nodes (`/dev/nvidia0`, `/dev/nvidiactl` ...).
pub fn is_nvidia_node(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("nvidia"))
}

/// Default resource limits: no core dumps, bounded descriptors, processes (threads count),
/// file size and data (not address space: GPU drivers reserve huge PROT_NONE ranges).
pub const DEFAULT_RLIMITS: &[Rlimit] = &[
    Rlimit {
        resource: Resource::Core,
        soft: 0,
        hard: 0,
    },
    Rlimit {
        resource: Resource::NoFile,
        soft: 1024,
        hard: 1024,
    },
    Rlimit {
        resource: Resource::NProc,
        soft: 128,
        hard: 128,
    },
    Rlimit {
        resource: Resource::FSize,
        soft: 64 << 20,
        hard: 64 << 20,
    },
    Rlimit {
        resource: Resource::Data,
        soft: 8 << 30,
        hard: 8 << 30,
    },
];

impl JailConfig {
    /// A jail for `program` with the GL stack's files, the given device nodes, the default
    /// limits and the caller's default identity.
    pub fn for_gpu_process(program: &Path, devices: &[PathBuf]) -> JailConfig {
        let mut tree: Vec<TreeEntry> = GL_READ_ONLY_PATHS
            .iter()
            .map(|p| mirror_host_path(Path::new(p)))
            .collect();
        let mut nodes: Vec<PathBuf> = devices.to_vec();
        let mut env = default_env();
        if devices.iter().any(|d| is_nvidia_node(d)) {
            // NVIDIA's driver opens its control node beside the chosen GPU, loads its
            // libraries from where the host keeps them, and EGL must pick NVIDIA's vendor
            // library, never fall back to Mesa's.
            let control = PathBuf::from(NVIDIA_CONTROL_NODE);
            if !nodes.contains(&control) {
                nodes.insert(0, control);
            }
            tree.extend(NVIDIA_PATHS.iter().map(|p| mirror_host_path(Path::new(p))));
            env.push((
                OsString::from("__EGL_VENDOR_LIBRARY_FILENAMES"),
                OsString::from(nvidia_egl_vendor_file()),
            ));
            env.push((
                OsString::from("LD_LIBRARY_PATH"),
                OsString::from(NVIDIA_PATHS[0]),
            ));
            // No shader cache on disk: the jail's root is read-only and empty, and the cache
            // would have the driver probe and create directories (stat, mkdir) after the
            // filter is on.
            env.push((
                OsString::from("__GL_SHADER_DISK_CACHE"),
                OsString::from("0"),
            ));
        } else if Path::new(MESA_EGL_VENDOR_FILE).is_file() {
            // No NVIDIA GPU named: EGL must be Mesa's (llvmpipe, or the render node's driver),
            // never another vendor's library that finds no device of its own and fails.
            env.push((
                OsString::from("__EGL_VENDOR_LIBRARY_FILENAMES"),
                OsString::from(MESA_EGL_VENDOR_FILE),
            ));
        }
        tree.extend(
            nodes
                .iter()
                .map(|path| TreeEntry::Device { path: path.clone() }),
        );
        JailConfig {
            program: program.to_path_buf(),
            program_inside: PathBuf::from(PROGRAM_INSIDE),
            args: Vec::new(),
            ids: JailIds::default_for_caller(),
            tree,
            root_tmpfs_bytes: 1 << 20,
            proc_subset_pid: true,
            env,
            rlimits: DEFAULT_RLIMITS.to_vec(),
            cgroup: None,
            stderr: ChildStderr::Null,
            exec_timeout: Duration::from_secs(10),
            nice: 0,
        }
    }
}

/// Where the host's DRM device nodes are.
pub const DRI_DIR: &str = "/dev/dri";

/// The render nodes (`renderD*`) in `dir`, sorted; none when `dir` is missing.
pub fn render_nodes(dir: &Path) -> Vec<PathBuf> {
    let mut nodes: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("renderD"))
        })
        .collect();
    nodes.sort();
    nodes
}

/// Mesa's glvnd EGL vendor file.
pub const MESA_EGL_VENDOR_FILE: &str = "/usr/share/glvnd/egl_vendor.d/50_mesa.json";

/// NVIDIA's glvnd EGL vendor file: the distribution's copy where there is one, else the
/// driver's own.
fn nvidia_egl_vendor_file() -> &'static str {
    const CANDIDATES: [&str; 2] = [
        "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
        "/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json",
    ];
    CANDIDATES
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or(CANDIDATES[0])
}

/// The GL stack's environment: no shader cache (nothing to write), a HOME so nothing looks up
/// /etc/passwd, and EGL without a window system.
pub fn default_env() -> Vec<(OsString, OsString)> {
    [
        ("HOME", "/"),
        ("MESA_SHADER_CACHE_DISABLE", "true"),
        ("EGL_PLATFORM", "surfaceless"),
    ]
    .iter()
    .map(|(k, v)| (OsString::from(k), OsString::from(v)))
    .collect()
}

/// The same path inside as on the host: a symlink where the host has one (merged-/usr hosts
/// have `/lib64 -> usr/lib64`), an optional read-only bind otherwise.
pub fn mirror_host_path(path: &Path) -> TreeEntry {
    match std::fs::read_link(path) {
        Ok(value) => TreeEntry::Symlink {
            link: path.to_path_buf(),
            value,
        },
        Err(_) => TreeEntry::Bind {
            source: path.to_path_buf(),
            target: path.to_path_buf(),
            optional: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_gpu_brings_its_control_node_libraries_and_pinned_egl_vendor() {
        let config =
            JailConfig::for_gpu_process(Path::new("/ray-gpu"), &[PathBuf::from("/dev/nvidia0")]);

        let devices: Vec<&Path> = config
            .tree
            .iter()
            .filter_map(|e| match e {
                TreeEntry::Device { path } => Some(path.as_path()),
                _ => None,
            })
            .collect();
        let binds_nvidia_libraries = config.tree.iter().any(|e| {
            matches!(e, TreeEntry::Bind { source, .. } if source == Path::new("/usr/local/nvidia/lib64"))
        });
        let pinned = config.env.iter().any(|(k, v)| {
            k == "__EGL_VENDOR_LIBRARY_FILENAMES" && v.to_string_lossy().ends_with("10_nvidia.json")
        });
        assert_eq!(
            (devices, binds_nvidia_libraries, pinned),
            (
                vec![Path::new("/dev/nvidiactl"), Path::new("/dev/nvidia0")],
                true,
                true
            )
        );
    }

    #[test]
    fn render_node_gpu_gets_no_nvidia_paths() {
        let config = JailConfig::for_gpu_process(
            Path::new("/ray-gpu"),
            &[PathBuf::from("/dev/dri/renderD128")],
        );

        let mentions_nvidia = config
            .env
            .iter()
            .any(|(_, v)| v.to_string_lossy().contains("nvidia"))
            || config
                .tree
                .iter()
                .any(|e| format!("{e:?}").contains("nvidia"));
        assert!(!mentions_nvidia);
    }

    #[test]
    fn only_render_nodes_count_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["renderD129", "card0", "renderD128"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }

        let nodes = render_nodes(dir.path());

        assert_eq!(
            nodes,
            vec![dir.path().join("renderD128"), dir.path().join("renderD129")]
        );
    }

    #[test]
    fn a_host_without_dev_dri_has_no_render_node() {
        assert!(render_nodes(Path::new("/nonexistent/dri")).is_empty());
    }

    #[test]
    fn mirror_of_a_symlink_is_the_same_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("lib64");
        std::os::unix::fs::symlink("usr/lib64", &link).unwrap();

        let entry = mirror_host_path(&link);

        assert_eq!(
            entry,
            TreeEntry::Symlink {
                link,
                value: PathBuf::from("usr/lib64")
            }
        );
    }

    #[test]
    fn mirror_of_a_directory_is_an_optional_read_only_bind() {
        let dir = tempfile::tempdir().unwrap();

        let entry = mirror_host_path(dir.path());

        assert_eq!(
            entry,
            TreeEntry::Bind {
                source: dir.path().to_path_buf(),
                target: dir.path().to_path_buf(),
                optional: true
            }
        );
    }

    #[test]
    fn default_env_disables_the_shader_cache() {
        let env = default_env();

        assert!(env.contains(&("MESA_SHADER_CACHE_DISABLE".into(), "true".into())));
    }
}
