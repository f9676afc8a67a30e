//! Risk review of a policy: what each allowed syscall lets a compromised process do.
//!
//! Argument-based questions ("does the ioctl rule admit TIOCSTI?", "can mmap make
//! executable memory?") are answered by running the compiled BPF program on crafted
//! `seccomp_data`, the same program the kernel would run.

use serde::Serialize;
use std::fmt;

use crate::action::Action;
use crate::error::CompileError;
use crate::policy::{Op, Policy, SyscallRule};
use crate::probe::Prober;
use crate::tables::constant;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// A known escape or kernel attack-surface path.
    High,
    /// Widens what a compromised process can do; needs a reason to be there.
    Medium,
    /// Worth knowing; usually needed.
    Low,
    /// Nothing known against it.
    Info,
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Risk::High => "high",
            Risk::Medium => "medium",
            Risk::Low => "low",
            Risk::Info => "info",
        };
        f.pad(name)
    }
}

/// One reason a syscall is risky.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The syscall.
    pub syscall: String,
    /// How much it matters.
    pub risk: Risk,
    /// Why, naming the rule and what it admits.
    pub reason: String,
}

/// One syscall the policy names, with its constraints and rating.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyscallReport {
    /// The syscall.
    pub name: String,
    /// Its x86_64 number.
    pub nr: i64,
    /// Whether some arguments make it run.
    pub allowed: bool,
    /// What happens when no condition holds (`kill-process` when the policy says nothing).
    pub otherwise: String,
    /// The policy lines for it (`file:line:col: text`).
    pub constraints: Vec<String>,
    /// The highest risk of its findings (`info` when none).
    pub risk: Risk,
}

/// Counts for one policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Syscalls named by the policy.
    pub syscalls: usize,
    /// Of those, the ones some arguments allow.
    pub allowed: usize,
    /// Findings per risk level.
    pub high: usize,
    /// Medium findings.
    pub medium: usize,
    /// Low findings.
    pub low: usize,
}

/// The audit of one policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The policy's name.
    pub policy: String,
    /// Every syscall it names.
    pub syscalls: Vec<SyscallReport>,
    /// Every finding, highest risk first.
    pub findings: Vec<Finding>,
    /// Counts.
    pub summary: Summary,
}

/// Audits `policy`.
pub fn audit(policy: &Policy) -> Result<Report, CompileError> {
    let prober = Prober::new(policy)?;
    let mut findings = Vec::new();
    for rule in policy
        .syscalls()
        .iter()
        .filter(|r| prober.allowed(r.name()))
    {
        let mut found = Vec::new();
        static_risks(rule.name(), &mut found);
        argument_risks(&prober, rule, &mut found);
        findings.extend(found.into_iter().map(|(risk, reason)| Finding {
            syscall: rule.name().to_string(),
            risk,
            reason,
        }));
    }
    combination_risks(&prober, &mut findings);
    findings.sort_by(|a, b| (a.risk, &a.syscall).cmp(&(b.risk, &b.syscall)));
    let syscalls: Vec<SyscallReport> = policy
        .syscalls()
        .iter()
        .map(|rule| syscall_report(&prober, rule, &findings))
        .collect();
    let count = |risk| findings.iter().filter(|f| f.risk == risk).count();
    let summary = Summary {
        syscalls: syscalls.len(),
        allowed: syscalls.iter().filter(|s| s.allowed).count(),
        high: count(Risk::High),
        medium: count(Risk::Medium),
        low: count(Risk::Low),
    };
    Ok(Report {
        policy: policy.name().to_string(),
        syscalls,
        findings,
        summary,
    })
}

fn syscall_report(prober: &Prober, rule: &SyscallRule, findings: &[Finding]) -> SyscallReport {
    let risk = findings
        .iter()
        .filter(|f| f.syscall == rule.name())
        .map(|f| f.risk)
        .min()
        .unwrap_or(Risk::Info);
    SyscallReport {
        name: rule.name().to_string(),
        nr: rule.nr(),
        allowed: prober.allowed(rule.name()),
        otherwise: rule.otherwise().unwrap_or(Action::KillProcess).to_string(),
        constraints: rule
            .definitions()
            .iter()
            .map(|d| format!("{}: {}", d.at, d.text))
            .collect(),
        risk,
    }
}

/// Syscalls risky whatever their arguments.
const STATIC_RISKS: &[(&[&str], Risk, &str)] = &[
    (&["ptrace", "process_vm_readv", "process_vm_writev"], Risk::High, "reads or writes other processes' memory"),
    (&["pidfd_getfd"], Risk::High, "takes file descriptors out of other processes"),
    (&["bpf"], Risk::High, "loads eBPF programs: large kernel attack surface"),
    (&["perf_event_open"], Risk::High, "perf events: kernel attack surface and side channels"),
    (&["io_uring_setup", "io_uring_enter", "io_uring_register"], Risk::High, "io_uring performs operations that seccomp never sees, and is a frequent source of kernel exploits"),
    (&["userfaultfd"], Risk::High, "userfaultfd can stall kernel accesses to user memory, widening race windows for kernel exploits"),
    (&["clone3"], Risk::High, "clone3 passes its flags in memory, so seccomp cannot check them (namespaces, processes); make it `return ENOSYS` so libc falls back to clone"),
    (&["mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"], Risk::High, "changes the mount table or root"),
    (&["unshare", "setns"], Risk::High, "enters or creates namespaces (user namespaces open kernel attack surface)"),
    (&["execve", "execveat"], Risk::High, "runs another program"),
    (&["kexec_load", "kexec_file_load", "reboot"], Risk::High, "replaces or stops the running kernel"),
    (&["init_module", "finit_module", "delete_module"], Risk::High, "loads or unloads kernel modules"),
    (&["iopl", "ioperm"], Risk::High, "direct I/O port access"),
    (&["name_to_handle_at", "open_by_handle_at"], Risk::High, "opens files by handle, bypassing path-based confinement"),
    (&["swapon", "swapoff", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "syslog", "acct", "quotactl"], Risk::Medium, "changes system-wide state"),
    (&["kcmp"], Risk::Medium, "compares kernel objects of other processes (kernel pointer ordering leaks)"),
    (&["keyctl", "add_key", "request_key"], Risk::Medium, "kernel keyrings: shared state and kernel attack surface"),
    (&["setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid", "capset"], Risk::Medium, "changes credentials"),
    (&["personality"], Risk::Medium, "can turn off address space randomisation for children"),
    (&["modify_ldt"], Risk::Medium, "x86 LDT changes: kernel attack surface"),
    (&["fanotify_init", "process_madvise", "migrate_pages", "move_pages", "mbind"], Risk::Medium, "acts on other processes or system-wide state"),
    (&["unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "truncate", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmodat", "chown", "lchown", "fchownat", "mknod", "mknodat", "creat", "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "utimensat", "utimes", "utime"], Risk::Medium, "writes to the file system"),
    (&["openat2"], Risk::Medium, "openat2 passes its flags in memory: seccomp cannot keep it read-only"),
    (&["kill", "tkill", "tgkill", "pidfd_send_signal"], Risk::Low, "sends signals (limited to what the pid namespace shows)"),
    (&["connect", "sendto", "sendmsg", "sendmmsg"], Risk::Low, "talks over sockets: reach depends on which sockets it can create or holds"),
];

fn static_risks(name: &str, out: &mut Vec<(Risk, String)>) {
    out.extend(
        STATIC_RISKS
            .iter()
            .filter(|(names, _, _)| names.contains(&name))
            .map(|(_, risk, reason)| (*risk, (*reason).to_string())),
    );
}

/// Requests an ioctl allow-list must never admit.
const DANGEROUS_IOCTLS: &[&str] = &[
    "TIOCSTI",
    "TIOCLINUX",
    "TIOCSETD",
    "TIOCCONS",
    "TIOCSCTTY",
    "KVM_CREATE_VM",
    "KVM_RUN",
    "KVM_CREATE_VCPU",
    "KVM_SET_USER_MEMORY_REGION",
    "DRM_IOCTL_SET_MASTER",
    "DRM_IOCTL_DROP_MASTER",
    "DRM_IOCTL_AUTH_MAGIC",
    "DRM_IOCTL_SET_VERSION",
    "SIOCSIFFLAGS",
    "SIOCSIFADDR",
    "SIOCADDRT",
    "LOOP_SET_FD",
    "LOOP_CONFIGURE",
    "FS_IOC_SETFLAGS",
    "BLKRRPART",
    "TUNSETIFF",
    "VFIO_GROUP_SET_CONTAINER",
];

fn argument_risks(prober: &Prober, rule: &SyscallRule, out: &mut Vec<(Risk, String)>) {
    match rule.name() {
        "ioctl" => ioctl_risks(prober, rule, out),
        "mmap" | "mprotect" | "pkey_mprotect" => exec_memory_risks(prober, rule, out),
        "clone" => clone_risks(prober, out),
        "socket" | "socketpair" => socket_risks(prober, rule, out),
        "open" => open_risks(prober, rule, 1, out),
        "openat" => open_risks(prober, rule, 2, out),
        "prctl" => prctl_risks(prober, out),
        _ => {}
    }
}

/// The names in `names` that the rule admits for argument `arg`, as `NAME (0x..)`.
fn admitted(prober: &Prober, syscall: &str, arg: usize, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| constant(n).map(|v| (n, v)))
        .filter(|(_, v)| prober.admits(syscall, arg, *v))
        .map(|(n, v)| format!("{n} ({v:#x})"))
        .collect()
}

/// The rule's lines that test argument `arg` with a bit mask (`&` or `in`).
fn mask_lines(rule: &SyscallRule, arg: usize) -> Vec<String> {
    let masked = |op: Op| matches!(op, Op::AnyBits | Op::InMask);
    rule.definitions()
        .iter()
        .filter(|d| {
            rule.allow_if()
                .iter()
                .flatten()
                .any(|c| c.arg == arg && masked(c.op))
                && (d.text.contains(" & ") || d.text.contains(" in "))
        })
        .map(|d| format!("`{}: {}` ({})", rule.name(), d.text, d.at))
        .collect()
}

/// Records `finding` when argument `arg` of `syscall` is not restricted at all.
fn unrestricted(
    prober: &Prober,
    syscall: &str,
    arg: usize,
    finding: (Risk, &str),
    out: &mut Vec<(Risk, String)>,
) -> bool {
    let free = prober.unrestricted(syscall, arg);
    if free {
        out.push((finding.0, finding.1.to_string()));
    }
    free
}

fn ioctl_risks(prober: &Prober, rule: &SyscallRule, out: &mut Vec<(Risk, String)>) {
    if unrestricted(
        prober,
        "ioctl",
        1,
        (
            Risk::High,
            "ioctl is allowed for any request number: every driver's ioctls are reachable",
        ),
        out,
    ) {
        return;
    }
    let dangerous = admitted(prober, "ioctl", 1, DANGEROUS_IOCTLS);
    let masks = mask_lines(rule, 1);
    for line in &masks {
        let admits = match dangerous.is_empty() {
            true => "no request on the known-dangerous list, but still more than an explicit list"
                .to_string(),
            false => dangerous.join(", "),
        };
        out.push((
            Risk::High,
            format!("ioctl request filtered by a bit mask, not an explicit list: {line} admits {admits}"),
        ));
    }
    if masks.is_empty() && !dangerous.is_empty() {
        out.push((
            Risk::High,
            format!(
                "ioctl rule admits dangerous requests: {}",
                dangerous.join(", ")
            ),
        ));
    }
}

fn exec_memory_risks(prober: &Prober, rule: &SyscallRule, out: &mut Vec<(Risk, String)>) {
    let name = rule.name();
    let prot = |names: &[&str]| {
        names
            .iter()
            .filter_map(|n| constant(n))
            .fold(0, |a, b| a | b)
    };
    let wx = prot(&["PROT_READ", "PROT_WRITE", "PROT_EXEC"]);
    let rx = [prot(&["PROT_EXEC"]), prot(&["PROT_READ", "PROT_EXEC"])];
    if prober.admits(name, 2, wx) || prober.admits(name, 2, prot(&["PROT_WRITE", "PROT_EXEC"])) {
        out.push((Risk::High, format!("{name} can make memory writable and executable (PROT_WRITE|PROT_EXEC): injected code can run")));
    } else if rx.iter().any(|&p| prober.admits(name, 2, p)) {
        out.push((Risk::Medium, format!("{name} can make memory executable (PROT_EXEC): needed only by JIT compilers such as llvmpipe")));
    }
}

fn clone_risks(prober: &Prober, out: &mut Vec<(Risk, String)>) {
    const NAMESPACES: &[&str] = &[
        "CLONE_NEWUSER",
        "CLONE_NEWNS",
        "CLONE_NEWPID",
        "CLONE_NEWNET",
        "CLONE_NEWIPC",
        "CLONE_NEWUTS",
        "CLONE_NEWCGROUP",
    ];
    let thread = [
        "CLONE_VM",
        "CLONE_FS",
        "CLONE_FILES",
        "CLONE_SIGHAND",
        "CLONE_THREAD",
    ]
    .iter()
    .filter_map(|n| constant(n))
    .fold(0, |a, b| a | b);
    let admitted: Vec<&str> = NAMESPACES
        .iter()
        .filter(|n| {
            constant(n).is_some_and(|ns| {
                prober.admits("clone", 0, ns) || prober.admits("clone", 0, ns | thread)
            })
        })
        .copied()
        .collect();
    if !admitted.is_empty() {
        out.push((
            Risk::High,
            format!(
                "clone flags are not restricted against namespaces: the filter admits {}",
                admitted.join(", ")
            ),
        ));
    }
    let fork = constant("SIGCHLD").unwrap_or(17);
    if prober.admits("clone", 0, fork) {
        out.push((
            Risk::Medium,
            "clone can create processes, not only threads (flags without CLONE_THREAD)".to_string(),
        ));
    }
}

fn socket_risks(prober: &Prober, rule: &SyscallRule, out: &mut Vec<(Risk, String)>) {
    let name = rule.name();
    let reason = format!("{name} is allowed for every address family, network ones included");
    if unrestricted(prober, name, 0, (Risk::High, &reason), out) {
        return;
    }
    let families = admitted(
        prober,
        name,
        0,
        &[
            "AF_INET",
            "AF_INET6",
            "AF_NETLINK",
            "AF_PACKET",
            "AF_VSOCK",
            "AF_BLUETOOTH",
            "AF_ALG",
        ],
    );
    if !families.is_empty() {
        out.push((
            Risk::High,
            format!(
                "{name} admits network or kernel-interface families: {}",
                families.join(", ")
            ),
        ));
    }
}

fn open_risks(prober: &Prober, rule: &SyscallRule, arg: usize, out: &mut Vec<(Risk, String)>) {
    let writes = admitted(
        prober,
        rule.name(),
        arg,
        &["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"],
    );
    if !writes.is_empty() {
        out.push((
            Risk::Medium,
            format!(
                "{} can open files for writing or create them (admits {})",
                rule.name(),
                writes.join(", ")
            ),
        ));
    }
}

fn prctl_risks(prober: &Prober, out: &mut Vec<(Risk, String)>) {
    if unrestricted(
        prober,
        "prctl",
        0,
        (
            Risk::Medium,
            "prctl is allowed for every option (PR_SET_MM, PR_SET_PTRACER, PR_SET_DUMPABLE ...)",
        ),
        out,
    ) {
        return;
    }
    let risky = admitted(
        prober,
        "prctl",
        0,
        &[
            "PR_SET_MM",
            "PR_SET_PTRACER",
            "PR_SET_DUMPABLE",
            "PR_SET_SECUREBITS",
            "PR_CAP_AMBIENT",
        ],
    );
    if !risky.is_empty() {
        out.push((
            Risk::Medium,
            format!(
                "prctl admits options that weaken the jail: {}",
                risky.join(", ")
            ),
        ));
    }
}

/// Risks that come from syscalls allowed together.
fn combination_risks(prober: &Prober, out: &mut Vec<Finding>) {
    let mut exec: Vec<&str> = ["execve", "execveat"]
        .into_iter()
        .filter(|n| prober.allowed(n))
        .collect();
    let prot_exec = constant("PROT_EXEC").unwrap_or(4);
    let readable_exec = prot_exec | constant("PROT_READ").unwrap_or(1);
    let maps_exec = [prot_exec, readable_exec]
        .iter()
        .any(|&p| prober.admits("mmap", 2, p));
    if maps_exec {
        exec.push("mmap with PROT_EXEC");
    }
    if prober.allowed("memfd_create") && !exec.is_empty() {
        out.push(Finding {
            syscall: "memfd_create".to_string(),
            risk: Risk::High,
            reason: format!(
                "memfd_create together with {}: code written to an anonymous memory file can be executed without touching the file system",
                exec.join(" and ")
            ),
        });
    }
}
