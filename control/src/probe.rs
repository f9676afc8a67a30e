//! Escape-probe requests and reports carried on the control tube. Only a `probe` build of
//! ray-gpu acts on them; a release build answers with an error.
//!
//! The catalogue of named techniques lives here so that both sides agree on it: the probe
//! build implements every entry, and rayvmm lists them (`rayvmm probe --list`) without
//! having to link the probe code.

use serde::{Deserialize, Serialize};

/// What the probe should attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ProbeRequest {
    /// A named escape technique, with what it aims at on the host.
    Technique(TechniqueRequest),
    /// Raw system calls, run in order.
    RawSyscalls(Vec<RawSyscall>),
}

/// A named technique and the host-side targets it attacks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TechniqueRequest {
    /// One of [`TECHNIQUES`]' names.
    pub name: String,
    /// The supervisor's pid as the host sees it (not visible from inside the pid namespace).
    pub supervisor_pid: i32,
    /// Name of an abstract `AF_UNIX` socket listening on the host, without the leading NUL.
    pub abstract_socket: Option<String>,
}

/// One raw system call: number and six arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawSyscall {
    pub nr: i64,
    pub args: [u64; 6],
}

/// What an attempt came to, as seen by the probe itself (a kill is seen by the supervisor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeOutcome {
    /// The call or technique succeeded, with what it returned or found.
    Succeeded(String),
    /// It failed with this errno.
    Errno(i32),
    /// The probe did not attempt it (an unknown technique, or a process that is not inside a
    /// pid namespace, where some techniques could harm the host), and says why.
    Refused(String),
}

/// The probe's answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeReport {
    pub outcomes: Vec<ProbeOutcome>,
}

/// What a technique attacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Category {
    HostFiles,
    Execute,
    Network,
    OtherProcesses,
    Privilege,
    KernelSurface,
    ExecutableMemory,
    Ioctl,
    Clone,
    Exhaustion,
    Descriptors,
    /// Reaching beyond the one NVIDIA GPU the jail was given (GPU hosts only).
    Nvidia,
}

/// One entry of the technique catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TechniqueInfo {
    /// The name used on the tube and the command line.
    pub name: &'static str,
    /// What it attacks.
    pub category: Category,
    /// What it does, in one line.
    pub description: &'static str,
}

/// Looks up a technique by name.
pub fn technique(name: &str) -> Option<&'static TechniqueInfo> {
    TECHNIQUES.iter().find(|t| t.name == name)
}

macro_rules! catalogue {
    ($($name:literal, $category:ident, $description:literal;)*) => {
        /// Every named technique a probe build of ray-gpu implements.
        pub const TECHNIQUES: &[TechniqueInfo] = &[
            $(TechniqueInfo { name: $name, category: Category::$category, description: $description },)*
        ];
    };
}

catalogue! {
    "open_etc_shadow", HostFiles, "open /etc/shadow for reading";
    "open_proc1_root_shadow", HostFiles, "open /proc/1/root/etc/shadow (pid 1's root)";
    "open_supervisor_mem", HostFiles, "open the supervisor's /proc/PID/mem to read its memory";
    "open_supervisor_environ", HostFiles, "open the supervisor's /proc/PID/environ";
    "write_proc_sys_core_pattern", HostFiles, "open /proc/sys/kernel/core_pattern for writing";
    "write_sys_kernel_uevent_helper", HostFiles, "open /sys/kernel/uevent_helper for writing";
    "open_dev_mem", HostFiles, "open /dev/mem";
    "readlink_proc_self_root", HostFiles, "readlink /proc/self/root to see where the root is";
    "open_dotdot_past_root", HostFiles, "open /../../../etc/passwd";
    "create_file_in_root", HostFiles, "create /escape-probe in the jail's root";
    "mknod_dev_mem", HostFiles, "mknod a character device for /dev/mem (1:1)";
    "execve_bin_sh", Execute, "execve /bin/sh";
    "execveat_bin_sh", Execute, "execveat AT_FDCWD /bin/sh";
    "memfd_create", Execute, "memfd_create (the first step of executing a copied ELF)";
    "execveat_memfd_elf", Execute, "copy our own ELF into a memfd and execveat it";
    "socket_af_inet", Network, "socket(AF_INET, SOCK_STREAM)";
    "socket_af_inet6", Network, "socket(AF_INET6, SOCK_DGRAM)";
    "socket_af_netlink", Network, "socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)";
    "socket_af_packet", Network, "socket(AF_PACKET, SOCK_RAW)";
    "socket_af_vsock", Network, "socket(AF_VSOCK, SOCK_STREAM)";
    "socket_af_unix", Network, "socket(AF_UNIX, SOCK_STREAM): allowed";
    "connect_abstract_unix", Network, "connect to the host's abstract unix socket given in the request";
    "connect_nscd_socket", Network, "connect to /var/run/nscd/socket";
    "ptrace_attach_supervisor", OtherProcesses, "ptrace(PTRACE_ATTACH, supervisor host pid)";
    "ptrace_traceme", OtherProcesses, "ptrace(PTRACE_TRACEME)";
    "process_vm_writev_supervisor", OtherProcesses, "process_vm_writev into the supervisor";
    "process_vm_readv_supervisor", OtherProcesses, "process_vm_readv from the supervisor";
    "kill_supervisor", OtherProcesses, "kill(supervisor host pid, SIGKILL)";
    "kill_all", OtherProcesses, "kill(-1, SIGKILL)";
    "pidfd_getfd_supervisor", OtherProcesses, "pidfd_open the supervisor, then pidfd_getfd its fd 0";
    "kcmp_supervisor", OtherProcesses, "kcmp(getpid(), supervisor host pid, KCMP_FILE, 0, 0)";
    "setuid_root", Privilege, "setuid(0)";
    "setgid_root", Privilege, "setgid(0)";
    "capset_all", Privilege, "capset every capability into the effective set";
    "unshare_user", Privilege, "unshare(CLONE_NEWUSER)";
    "setns_fd0", Privilege, "setns(0, 0)";
    "mount_tmpfs", Privilege, "mount a tmpfs on /";
    "pivot_root", Privilege, "pivot_root(\".\", \".\")";
    "chroot_fchdir_escape", Privilege, "keep a directory fd, chroot elsewhere, fchdir back and climb";
    "open_by_handle_at", Privilege, "open_by_handle_at with a forged root handle (shocker)";
    "prctl_set_dumpable", Privilege, "prctl(PR_SET_DUMPABLE, 1)";
    "seccomp_set_filter", Privilege, "seccomp(SECCOMP_SET_MODE_FILTER) with an empty program";
    "raise_rlimit_nofile", Privilege, "prlimit64 to raise RLIMIT_NOFILE's hard limit";
    "bpf_map_create", KernelSurface, "bpf(BPF_MAP_CREATE)";
    "perf_event_open", KernelSurface, "perf_event_open of a software clock";
    "userfaultfd", KernelSurface, "userfaultfd(O_CLOEXEC)";
    "io_uring_setup", KernelSurface, "io_uring_setup with 8 entries";
    "keyctl", KernelSurface, "keyctl(KEYCTL_GET_KEYRING_ID, session keyring)";
    "add_key", KernelSurface, "add_key a user key to the session keyring";
    "init_module", KernelSurface, "init_module of an empty image";
    "finit_module", KernelSurface, "finit_module of fd 0";
    "kexec_load", KernelSurface, "kexec_load with no segments";
    "reboot", KernelSurface, "reboot(LINUX_REBOOT_CMD_CAD_OFF)";
    "swapon", KernelSurface, "swapon /dev/null";
    "syslog", KernelSurface, "syslog(SYSLOG_ACTION_READ_ALL)";
    "acct", KernelSurface, "acct(NULL)";
    "iopl", KernelSurface, "iopl(3)";
    "ioperm", KernelSurface, "ioperm(0x80, 1, 1)";
    "mmap_exec", ExecutableMemory, "mmap anonymous memory PROT_READ|PROT_EXEC";
    "mmap_rwx", ExecutableMemory, "mmap anonymous memory PROT_READ|PROT_WRITE|PROT_EXEC";
    "mprotect_exec", ExecutableMemory, "mprotect writable memory to PROT_READ|PROT_EXEC";
    "pkey_mprotect_exec", ExecutableMemory, "pkey_mprotect memory to PROT_EXEC";
    "tiocsti_fd0", Ioctl, "ioctl(0, TIOCSTI) to push a byte into a terminal";
    "tiocsti_tube", Ioctl, "ioctl(tube fd, TIOCSTI)";
    "kvm_create_vm", Ioctl, "open /dev/kvm and ioctl KVM_CREATE_VM";
    "drm_set_master", Ioctl, "ioctl DRM_IOCTL_SET_MASTER";
    "drm_drop_master", Ioctl, "ioctl DRM_IOCTL_DROP_MASTER";
    "drm_auth_magic", Ioctl, "ioctl DRM_IOCTL_AUTH_MAGIC";
    "ioctl_fionbio", Ioctl, "ioctl(a directory fd, FIONBIO): allowed";
    "open_unbound_nvidia_gpu", Nvidia, "open /dev/nvidia1, a GPU the jail was not given";
    "open_nvidia_uvm_tools", Nvidia, "open /dev/nvidia-uvm-tools (UVM profiling)";
    "open_nvidia_caps", Nvidia, "open /dev/nvidia-caps/nvidia-cap1 (MIG capabilities)";
    "open_proc_driver_nvidia", Nvidia, "open /proc/driver/nvidia/params";
    "nvidia_ioctl_off_the_list", Nvidia, "ioctl NV_ESC_RM_ALLOC_MEMORY on /dev/nvidiactl (not in the policy)";
    "nvidia_ioctl_on_the_list", Nvidia, "ioctl NV_ESC_RM_CONTROL with a null payload on /dev/nvidiactl: allowed";
    "clone3", Clone, "clone3 with plain fork arguments (libc falls back to clone)";
    "clone_newuser", Clone, "clone(CLONE_NEWUSER | SIGCHLD)";
    "fork", Clone, "fork: clone without CLONE_THREAD";
    "vfork", Clone, "vfork";
    "thread", Clone, "start a thread (pthread_create): allowed";
    "thread_bomb", Exhaustion, "start threads until refused (RLIMIT_NPROC)";
    "memory_balloon", Exhaustion, "map memory until refused (RLIMIT_AS / RLIMIT_DATA)";
    "fd_exhaustion", Exhaustion, "open the root directory until refused (RLIMIT_NOFILE)";
    "file_size_limit", Exhaustion, "write past RLIMIT_FSIZE in /tmp with SIGXFSZ at its default";
    "file_size_limit_sigxfsz_ignored", Exhaustion, "write past RLIMIT_FSIZE in /tmp with SIGXFSZ ignored";
    "list_fds", Descriptors, "list every open descriptor and what it is";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn technique_names_are_unique() {
        let names: HashSet<&str> = TECHNIQUES.iter().map(|t| t.name).collect();

        assert_eq!(names.len(), TECHNIQUES.len());
    }

    #[test]
    fn catalogue_has_at_least_forty_techniques() {
        assert!(TECHNIQUES.len() >= 40, "{}", TECHNIQUES.len());
    }

    #[test]
    fn technique_finds_an_entry_by_name() {
        let info = technique("socket_af_inet").unwrap();

        assert_eq!(info.category, Category::Network);
    }

    #[test]
    fn technique_request_round_trips_through_json() {
        let request = ProbeRequest::Technique(TechniqueRequest {
            name: "kill_supervisor".into(),
            supervisor_pid: 42,
            abstract_socket: Some("rayos-escape-test".into()),
        });

        let json = serde_json::to_string(&request).unwrap();
        let back: ProbeRequest = serde_json::from_str(&json).unwrap();

        assert!(matches!(back, ProbeRequest::Technique(t) if t.supervisor_pid == 42));
    }
}
