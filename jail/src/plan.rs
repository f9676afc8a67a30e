//! The jail as a list of steps, computed before the clone.
//!
//! After the clone the child may not allocate (the supervisor may be multithreaded, and the
//! child is a copy of one thread of it), so everything the child needs is prepared here: every
//! path as a `CString`, the exec arrays, the descriptor layout, the mount flags read from the
//! host. The child then walks the steps in order, each a system call or two
//! (`child::run`), and reports the index of a failing step to the supervisor, which names it
//! with [`Step::what`].

use std::collections::BTreeSet;
use std::ffi::{CString, OsStr};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;

use super::config::{JailConfig, TreeEntry};

/// Where the new root's tmpfs is mounted before pivot_root. Mounted in the jail's private copy
/// of the mount table, so the host's /tmp is untouched; after the pivot the host's /tmp is
/// visible again under the old root, so bind sources may live there.
const STAGING: &str = "/tmp";
/// Where the old root stays reachable, inside the new root, until it is detached.
const OLD_ROOT: &str = "/.old-root";

/// Securebits: no root privileges by uid (`NOROOT`), no capability fixups on uid changes
/// (`NO_SETUID_FIXUP`), `KEEP_CAPS` off, no ambient raises, every one of them locked.
pub(super) const SECUREBITS: libc::c_ulong = 0xef;

/// One thing the child does, and how the supervisor names it if it fails.
#[derive(Debug)]
pub(super) struct Step {
    pub action: Action,
    pub what: String,
}

/// The system calls the child makes. Every payload is ready to pass to the kernel.
#[derive(Debug)]
pub(super) enum Action {
    /// `prctl(PR_SET_PDEATHSIG, SIGKILL)`.
    DieWithParent,
    /// Read the supervisor's go-ahead byte (id maps written); end of file: it gave up or died.
    AwaitParent {
        fd: RawFd,
    },
    /// The write end of the go-ahead pipe is held by the supervisor until exec; its hang-up
    /// means the supervisor died before `DieWithParent` took effect.
    CheckParentAlive {
        fd: RawFd,
    },
    UnshareCgroupNamespace,
    SetGroups(Vec<libc::gid_t>),
    SetResGid(libc::gid_t),
    SetResUid(libc::uid_t),
    Dup2 {
        from: RawFd,
        to: RawFd,
    },
    /// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`: everything above the layout closes at
    /// exec, while the error pipe still works until then.
    CloseOthersOnExec {
        first: RawFd,
    },
    MakeMountsPrivate,
    MountTmpfs {
        target: CString,
        flags: libc::c_ulong,
        data: CString,
    },
    MkDir {
        path: CString,
        mode: libc::mode_t,
    },
    CreateFile {
        path: CString,
    },
    PivotRoot {
        new_root: CString,
        put_old: CString,
    },
    ChDir {
        path: CString,
    },
    Bind {
        source: CString,
        target: CString,
    },
    /// `MS_REMOUNT | MS_BIND | flags`: per-mount flags only.
    Remount {
        target: CString,
        flags: libc::c_ulong,
    },
    Symlink {
        value: CString,
        link: CString,
    },
    MountProc {
        target: CString,
        flags: libc::c_ulong,
        data: CString,
    },
    Detach {
        target: CString,
    },
    RmDir {
        path: CString,
    },
    SetRlimit {
        resource: libc::__rlimit_resource_t,
        soft: u64,
        hard: u64,
    },
    SetNice(i32),
    DropBoundingSet {
        last_cap: u32,
    },
    ClearAmbient,
    SetSecurebits,
    ClearCapabilities,
    NoNewPrivs,
    Exec(Exec),
}

/// The arguments of the final `execve`; the pointer arrays point into the `CString`s, whose
/// heap buffers stay put when this struct moves.
#[derive(Debug)]
pub(super) struct Exec {
    pub path: CString,
    pub argv: Vec<*const libc::c_char>,
    pub envp: Vec<*const libc::c_char>,
    _strings: Vec<CString>,
}

/// The descriptors the child starts with, and the supervisor's end of the go-ahead pipe.
#[derive(Debug, Clone)]
pub(super) struct FdLayout {
    /// `(descriptor in the child before exec, number after)`; every source is above every
    /// target, so no `dup2` clobbers a source still to be moved.
    pub moves: Vec<(RawFd, RawFd)>,
    /// The child's read end of the go-ahead pipe.
    pub sync: RawFd,
}

/// Facts about the supervisor's host the plan depends on, read before the clone.
#[derive(Debug, Clone, Copy)]
pub(super) struct Host {
    pub caller_is_root: bool,
    pub last_cap: u32,
}

/// A jail that cannot be planned.
#[derive(Debug, Error)]
pub enum PlanError {
    #[error("required bind source {0} does not exist")]
    MissingSource(PathBuf),
    #[error("inspecting bind source {path} failed: {source}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("jail path {0} must be absolute and must not contain `..`")]
    BadPath(PathBuf),
    #[error("{what} contains a NUL byte")]
    Nul { what: String },
}

/// The child's whole life from clone to exec.
#[derive(Debug)]
pub(super) struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    /// Plans the jail of `config` in DESIGN.md's order: descriptors and parent death first,
    /// then identity, then the mount namespace, then limits and privileges, then exec.
    pub fn build(config: &JailConfig, fds: &FdLayout, host: Host) -> Result<Plan, PlanError> {
        let mut b = Builder::default();
        b.push(Action::DieWithParent, "prctl(PR_SET_PDEATHSIG)");
        b.push(
            Action::AwaitParent { fd: fds.sync },
            "waiting for the supervisor to write the id maps",
        );
        b.push(Action::UnshareCgroupNamespace, "unshare(CLONE_NEWCGROUP)");
        b.identity(config, host);
        b.push(
            Action::DieWithParent,
            "prctl(PR_SET_PDEATHSIG) after setresuid",
        );
        b.push(
            Action::CheckParentAlive { fd: fds.sync },
            "checking that the supervisor is alive",
        );
        for &(from, to) in &fds.moves {
            b.push(Action::Dup2 { from, to }, format!("dup2({from}, {to})"));
        }
        b.filesystem(config)?;
        for limit in &config.rlimits {
            b.push(
                Action::SetRlimit {
                    resource: limit.resource.raw(),
                    soft: limit.soft,
                    hard: limit.hard,
                },
                format!("setrlimit({})", limit.resource.name()),
            );
        }
        if config.nice != 0 {
            b.push(
                Action::SetNice(config.nice),
                format!("setpriority(PRIO_PROCESS, 0, {})", config.nice),
            );
        }
        b.privileges(host);
        let first_closed = fds.moves.iter().map(|&(_, to)| to).max().unwrap_or(2) + 1;
        b.push(
            Action::CloseOthersOnExec {
                first: first_closed,
            },
            format!("close_range({first_closed}, ~0, CLOSE_RANGE_CLOEXEC)"),
        );
        b.push(
            Action::CheckParentAlive { fd: fds.sync },
            "checking that the supervisor is alive",
        );
        let exec = exec_args(config)?;
        let what = format!("execve({})", config.program_inside.display());
        b.push(Action::Exec(exec), what);
        Ok(Plan { steps: b.steps })
    }
}

#[derive(Default)]
struct Builder {
    steps: Vec<Step>,
    /// Directories already created inside the new root.
    made: BTreeSet<PathBuf>,
}

impl Builder {
    fn push(&mut self, action: Action, what: impl Into<String>) {
        self.steps.push(Step {
            action,
            what: what.into(),
        });
    }

    /// Ids: a root supervisor left `setgroups` allowed so the child can shed the host root's
    /// supplementary groups; an unprivileged one had to deny it, and the child keeps the
    /// caller's own groups (no more than the caller has).
    fn identity(&mut self, config: &JailConfig, host: Host) {
        let ids = &config.ids;
        if host.caller_is_root {
            self.push(
                Action::SetGroups(ids.supplementary_gids.clone()),
                format!("setgroups({:?})", ids.supplementary_gids),
            );
        }
        self.push(
            Action::SetResGid(ids.gid),
            format!("setresgid({})", ids.gid),
        );
        self.push(
            Action::SetResUid(ids.uid),
            format!("setresuid({})", ids.uid),
        );
    }

    fn filesystem(&mut self, config: &JailConfig) -> Result<(), PlanError> {
        self.push(
            Action::MakeMountsPrivate,
            "making / private (MS_REC|MS_PRIVATE)",
        );
        self.push(
            Action::MountTmpfs {
                target: cstring(STAGING)?,
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: cstring(&format!("size={},mode=0755", config.root_tmpfs_bytes))?,
            },
            format!("mounting the root tmpfs on {STAGING}"),
        );
        let put_old = format!("{STAGING}{OLD_ROOT}");
        self.push(
            Action::MkDir {
                path: cstring(&put_old)?,
                mode: 0o700,
            },
            format!("mkdir {put_old}"),
        );
        self.push(
            Action::PivotRoot {
                new_root: cstring(STAGING)?,
                put_old: cstring(&put_old)?,
            },
            "pivot_root",
        );
        self.push(
            Action::ChDir {
                path: cstring("/")?,
            },
            "chdir(/)",
        );
        self.made.insert(PathBuf::from("/"));

        self.bind(&config.program, &config.program_inside, libc::MS_NODEV)?;
        for entry in &config.tree {
            self.entry(entry)?;
        }
        self.mkdirs(Path::new("/proc"))?;
        self.push(
            Action::MountProc {
                target: cstring("/proc")?,
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
                data: cstring(if config.proc_subset_pid {
                    "hidepid=invisible,subset=pid"
                } else {
                    "hidepid=invisible"
                })?,
            },
            "mounting a fresh procfs on /proc",
        );

        self.push(
            Action::Detach {
                target: cstring(OLD_ROOT)?,
            },
            format!("umount2({OLD_ROOT}, MNT_DETACH)"),
        );
        self.push(
            Action::RmDir {
                path: cstring(OLD_ROOT)?,
            },
            format!("rmdir {OLD_ROOT}"),
        );
        self.push(
            Action::Remount {
                target: cstring("/")?,
                flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            },
            "remounting / read-only",
        );
        Ok(())
    }

    fn entry(&mut self, entry: &TreeEntry) -> Result<(), PlanError> {
        match entry {
            TreeEntry::Bind {
                source,
                target,
                optional,
            } => {
                if !source.exists() {
                    return if *optional {
                        Ok(())
                    } else {
                        Err(PlanError::MissingSource(source.clone()))
                    };
                }
                self.bind(source, target, libc::MS_NODEV)
            }
            TreeEntry::Symlink { link, value } => {
                let link = inside(link)?;
                if let Some(parent) = link.parent() {
                    self.mkdirs(parent)?;
                }
                self.push(
                    Action::Symlink {
                        value: path_cstring(value)?,
                        link: path_cstring(&link)?,
                    },
                    format!("symlink {} -> {}", link.display(), value.display()),
                );
                Ok(())
            }
            TreeEntry::Device { path } => {
                if !path.exists() {
                    return Ok(());
                }
                self.bind(path, path, libc::MS_NOEXEC)
            }
            TreeEntry::Tmpfs { target, bytes } => {
                let target = inside(target)?;
                self.mkdirs(&target)?;
                self.push(
                    Action::MountTmpfs {
                        target: path_cstring(&target)?,
                        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        data: cstring(&format!("size={bytes},mode=0700"))?,
                    },
                    format!("mounting a tmpfs on {}", target.display()),
                );
                Ok(())
            }
        }
    }

    /// A read-only, nosuid bind of `source` at `target`, plus `extra` flags, keeping every
    /// flag the source's mount has (a user namespace may not clear locked flags).
    fn bind(
        &mut self,
        source: &Path,
        target: &Path,
        extra: libc::c_ulong,
    ) -> Result<(), PlanError> {
        let inspect = |e| PlanError::Inspect {
            path: source.to_path_buf(),
            source: e,
        };
        let canonical = std::fs::canonicalize(source).map_err(inspect)?;
        let is_dir = std::fs::metadata(&canonical).map_err(inspect)?.is_dir();
        let flags = mount_flags(&canonical).map_err(inspect)?;
        let target = inside(target)?;
        if is_dir {
            self.mkdirs(&target)?;
        } else {
            if let Some(parent) = target.parent() {
                self.mkdirs(parent)?;
            }
            self.push(
                Action::CreateFile {
                    path: path_cstring(&target)?,
                },
                format!("creating mount point {}", target.display()),
            );
        }
        let mut from = PathBuf::from(OLD_ROOT);
        from.push(canonical.strip_prefix("/").unwrap_or(&canonical));
        let what = format!("bind mount {} -> {}", source.display(), target.display());
        self.push(
            Action::Bind {
                source: path_cstring(&from)?,
                target: path_cstring(&target)?,
            },
            what,
        );
        self.push(
            Action::Remount {
                target: path_cstring(&target)?,
                flags: libc::MS_RDONLY | libc::MS_NOSUID | extra | flags,
            },
            format!("remounting {} read-only", target.display()),
        );
        Ok(())
    }

    /// `mkdir -p`, each directory once.
    fn mkdirs(&mut self, dir: &Path) -> Result<(), PlanError> {
        let dir = inside(dir)?;
        let mut path = PathBuf::from("/");
        for part in dir.components().skip(1) {
            path.push(part);
            if self.made.insert(path.clone()) {
                self.push(
                    Action::MkDir {
                        path: path_cstring(&path)?,
                        mode: 0o755,
                    },
                    format!("mkdir {}", path.display()),
                );
            }
        }
        Ok(())
    }

    fn privileges(&mut self, host: Host) {
        self.push(
            Action::DropBoundingSet {
                last_cap: host.last_cap,
            },
            "prctl(PR_CAPBSET_DROP)",
        );
        self.push(Action::ClearAmbient, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
        self.push(Action::SetSecurebits, "prctl(PR_SET_SECUREBITS)");
        self.push(Action::ClearCapabilities, "capset(all sets empty)");
        self.push(Action::NoNewPrivs, "prctl(PR_SET_NO_NEW_PRIVS)");
    }
}

/// The mount flags of the mount `path` is on that a bind of it must keep.
fn mount_flags(path: &Path) -> std::io::Result<libc::c_ulong> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statvfs is plain data, so all-zero is a valid value for the kernel to fill.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is writable; the result is checked.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(locked_flags(st.f_flag))
}

/// Maps `statvfs` flags to the `MS_*` flags a remount must repeat.
fn locked_flags(st_flags: libc::c_ulong) -> libc::c_ulong {
    const PAIRS: &[(libc::c_ulong, libc::c_ulong)] = &[
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    PAIRS
        .iter()
        .filter(|(st, _)| st_flags & st != 0)
        .fold(0, |acc, (_, ms)| acc | ms)
}

fn exec_args(config: &JailConfig) -> Result<Exec, PlanError> {
    let path = path_cstring(&config.program_inside)?;
    let argv_strings: Vec<CString> = std::iter::once(config.program_inside.as_os_str())
        .chain(config.args.iter().map(|a| a.as_os_str()))
        .map(os_cstring)
        .collect::<Result<_, _>>()?;
    let env_strings: Vec<CString> = config
        .env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            os_cstring(&kv)
        })
        .collect::<Result<_, _>>()?;
    let pointers = |strings: &[CString]| {
        strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect::<Vec<_>>()
    };
    let argv = pointers(&argv_strings);
    let envp = pointers(&env_strings);
    Ok(Exec {
        path,
        argv,
        envp,
        _strings: argv_strings.into_iter().chain(env_strings).collect(),
    })
}

/// Checks that a path inside the jail is absolute and stays inside.
fn inside(path: &Path) -> Result<PathBuf, PlanError> {
    let ok = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if ok {
        Ok(path.to_path_buf())
    } else {
        Err(PlanError::BadPath(path.to_path_buf()))
    }
}

fn cstring(s: &str) -> Result<CString, PlanError> {
    os_cstring(OsStr::new(s))
}

fn path_cstring(path: &Path) -> Result<CString, PlanError> {
    os_cstring(path.as_os_str())
}

fn os_cstring(s: &OsStr) -> Result<CString, PlanError> {
    CString::new(s.as_bytes()).map_err(|_| PlanError::Nul {
        what: s.to_string_lossy().into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JailConfig;

    const HOST: Host = Host {
        caller_is_root: true,
        last_cap: 40,
    };

    fn layout() -> FdLayout {
        FdLayout {
            moves: vec![(10, 0), (11, 1), (12, 2), (13, 3)],
            sync: 14,
        }
    }

    fn config_with(tree: Vec<TreeEntry>) -> JailConfig {
        let mut config = JailConfig::for_gpu_process(Path::new("/bin/true"), &[]);
        config.tree = tree;
        config
    }

    fn position(plan: &Plan, what: &str) -> usize {
        plan.steps
            .iter()
            .position(|s| s.what.starts_with(what))
            .unwrap_or_else(|| panic!("no step {what}"))
    }

    fn descriptions(plan: &Plan) -> Vec<&str> {
        plan.steps.iter().map(|s| s.what.as_str()).collect()
    }

    #[test]
    fn nice_is_set_after_the_limits_and_before_privileges_are_dropped() {
        let mut config = config_with(vec![]);
        config.nice = 10;

        let plan = Plan::build(&config, &layout(), HOST).unwrap();

        let nice = position(&plan, "setpriority(PRIO_PROCESS, 0, 10)");
        assert!(position(&plan, "setrlimit") < nice);
        assert!(nice < position(&plan, "prctl(PR_SET_NO_NEW_PRIVS)"));
    }

    #[test]
    fn default_nice_adds_no_step() {
        let plan = Plan::build(&config_with(vec![]), &layout(), HOST).unwrap();

        assert!(!descriptions(&plan)
            .iter()
            .any(|d| d.starts_with("setpriority")));
    }

    #[test]
    fn steps_follow_the_design_order() {
        let plan = Plan::build(&config_with(vec![]), &layout(), HOST).unwrap();

        let order = [
            "prctl(PR_SET_PDEATHSIG)",
            "waiting for the supervisor",
            "setresuid",
            "dup2",
            "pivot_root",
            "umount2",
            "setrlimit",
            "prctl(PR_CAPBSET_DROP)",
            "capset",
            "prctl(PR_SET_NO_NEW_PRIVS)",
            "close_range",
            "execve",
        ];
        let positions: Vec<usize> = order.iter().map(|w| position(&plan, w)).collect();
        let mut sorted = positions.clone();
        sorted.sort();
        assert_eq!(positions, sorted, "{:#?}", descriptions(&plan));
    }

    #[test]
    fn missing_required_bind_source_is_refused() {
        let config = config_with(vec![TreeEntry::Bind {
            source: PathBuf::from("/nonexistent/rayos"),
            target: PathBuf::from("/x"),
            optional: false,
        }]);

        let err = Plan::build(&config, &layout(), HOST).unwrap_err();

        assert!(matches!(err, PlanError::MissingSource(_)), "{err}");
    }

    #[test]
    fn missing_optional_bind_source_is_skipped() {
        let config = config_with(vec![TreeEntry::Bind {
            source: PathBuf::from("/nonexistent/rayos"),
            target: PathBuf::from("/x"),
            optional: true,
        }]);

        let plan = Plan::build(&config, &layout(), HOST).unwrap();

        assert!(!descriptions(&plan).iter().any(|w| w.contains("/x")));
    }

    #[test]
    fn missing_device_is_skipped() {
        let config = config_with(vec![TreeEntry::Device {
            path: PathBuf::from("/dev/dri/renderD199"),
        }]);

        let plan = Plan::build(&config, &layout(), HOST).unwrap();

        assert!(!descriptions(&plan).iter().any(|w| w.contains("renderD199")));
    }

    #[test]
    fn ancestors_are_made_once_and_parents_first() {
        let config = config_with(vec![
            TreeEntry::Tmpfs {
                target: PathBuf::from("/a/b/c"),
                bytes: 4096,
            },
            TreeEntry::Tmpfs {
                target: PathBuf::from("/a/b/d"),
                bytes: 4096,
            },
        ]);

        let plan = Plan::build(&config, &layout(), HOST).unwrap();

        let mkdirs: Vec<&str> = descriptions(&plan)
            .into_iter()
            .filter(|w| w.starts_with("mkdir /a"))
            .collect();
        assert_eq!(
            mkdirs,
            ["mkdir /a", "mkdir /a/b", "mkdir /a/b/c", "mkdir /a/b/d"]
        );
    }

    #[test]
    fn bind_sources_are_read_through_the_old_root() {
        let config = config_with(vec![TreeEntry::Bind {
            source: PathBuf::from("/etc/ld.so.cache"),
            target: PathBuf::from("/etc/ld.so.cache"),
            optional: false,
        }]);

        let plan = Plan::build(&config, &layout(), HOST).unwrap();

        let source = plan.steps.iter().find_map(|s| match &s.action {
            Action::Bind { source, target } if target.as_bytes() == b"/etc/ld.so.cache" => {
                Some(source.clone())
            }
            _ => None,
        });
        assert_eq!(source.unwrap().as_bytes(), b"/.old-root/etc/ld.so.cache");
    }

    #[test]
    fn jail_paths_with_dot_dot_are_refused() {
        let config = config_with(vec![TreeEntry::Tmpfs {
            target: PathBuf::from("/tmp/../etc"),
            bytes: 4096,
        }]);

        let err = Plan::build(&config, &layout(), HOST).unwrap_err();

        assert!(matches!(err, PlanError::BadPath(_)), "{err}");
    }

    #[test]
    fn unprivileged_caller_does_not_call_setgroups() {
        let host = Host {
            caller_is_root: false,
            ..HOST
        };

        let plan = Plan::build(&config_with(vec![]), &layout(), host).unwrap();

        assert!(!descriptions(&plan)
            .iter()
            .any(|w| w.starts_with("setgroups")));
    }

    #[test]
    fn locked_flags_keep_noexec_and_relatime() {
        let flags = locked_flags(libc::ST_NOEXEC | libc::ST_RELATIME);

        assert_eq!(flags, libc::MS_NOEXEC | libc::MS_RELATIME);
    }

    #[test]
    fn exec_arrays_are_null_terminated() {
        let plan = Plan::build(&config_with(vec![]), &layout(), HOST).unwrap();

        let Some(Step {
            action: Action::Exec(exec),
            ..
        }) = plan.steps.last()
        else {
            panic!("last step is not exec")
        };
        assert_eq!(exec.argv.last(), Some(&std::ptr::null()));
        assert_eq!(exec.envp.len(), config_with(vec![]).env.len() + 1);
    }
}
