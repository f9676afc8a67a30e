//! Checking, from outside, what the jailed process got: its `/proc/PID/status` and its
//! namespace links (DESIGN.md, jail step 6).

use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

/// The namespaces the jail makes, by their `/proc/PID/ns` names.
pub const NAMESPACES: &[&str] = &["user", "pid", "mnt", "net", "ipc", "uts", "cgroup"];

/// Why the confinement could not be read or is not what it must be.
#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no usable {field} line")]
    Field { path: PathBuf, field: &'static str },
    #[error("the GPU process is not confined: {}", .0.join("; "))]
    NotConfined(Vec<String>),
}

/// The security-relevant lines of `/proc/PID/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcStatus {
    /// 0 off, 1 strict, 2 filter.
    pub seccomp: u32,
    pub seccomp_filters: u32,
    pub no_new_privs: bool,
    pub cap_inh: u64,
    pub cap_prm: u64,
    pub cap_eff: u64,
    pub cap_bnd: u64,
    pub cap_amb: u64,
    /// The pid in each pid namespace, outermost first (`NSpid`).
    pub ns_pids: Vec<i32>,
    /// Real, effective, saved and filesystem uid, as the supervisor sees them.
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
    /// Resident set size now and at its peak, KiB.
    pub vm_rss_kib: u64,
    pub vm_hwm_kib: u64,
}

impl ProcStatus {
    /// Reads `/proc/PID/status`.
    pub fn read(pid: i32) -> Result<ProcStatus, VerifyError> {
        let path = PathBuf::from(format!("/proc/{pid}/status"));
        let text = std::fs::read_to_string(&path).map_err(|source| VerifyError::Read {
            path: path.clone(),
            source,
        })?;
        ProcStatus::parse(&text).map_err(|field| VerifyError::Field { path, field })
    }

    /// Parses the text of a status file; a missing or malformed required line is named.
    pub fn parse(text: &str) -> Result<ProcStatus, &'static str> {
        let field = |name: &'static str| field(text, name);
        let number = |name: &'static str| field(name)?.parse::<u32>().map_err(|_| name);
        let caps = |name: &'static str| u64::from_str_radix(field(name)?, 16).map_err(|_| name);
        let kib = |name: &'static str| {
            field(name)
                .ok()
                .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(ProcStatus {
            seccomp: number("Seccomp")?,
            seccomp_filters: number("Seccomp_filters").unwrap_or(0),
            no_new_privs: number("NoNewPrivs")? == 1,
            cap_inh: caps("CapInh")?,
            cap_prm: caps("CapPrm")?,
            cap_eff: caps("CapEff")?,
            cap_bnd: caps("CapBnd")?,
            cap_amb: caps("CapAmb")?,
            ns_pids: list(field("NSpid")?, "NSpid")?,
            uids: list(field("Uid")?, "Uid")?,
            gids: list(field("Gid")?, "Gid")?,
            vm_rss_kib: kib("VmRSS"),
            vm_hwm_kib: kib("VmHWM"),
        })
    }

    /// The pid as the process sees itself (innermost namespace).
    pub fn pid_inside(&self) -> Option<i32> {
        self.ns_pids.last().copied()
    }

    /// What is wrong with this status for a jailed GPU process, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.seccomp != 2 {
            problems.push(format!("Seccomp is {}, not 2 (filter)", self.seccomp));
        }
        if !self.no_new_privs {
            problems.push("NoNewPrivs is not set".into());
        }
        for (name, value) in [
            ("CapInh", self.cap_inh),
            ("CapPrm", self.cap_prm),
            ("CapEff", self.cap_eff),
            ("CapBnd", self.cap_bnd),
            ("CapAmb", self.cap_amb),
        ] {
            if value != 0 {
                problems.push(format!("{name} is {value:016x}, not empty"));
            }
        }
        if self.pid_inside() != Some(1) {
            problems.push(format!("pid inside is {:?}, not 1", self.pid_inside()));
        }
        if self.uids.contains(&0) || self.gids.contains(&0) {
            problems.push("runs with host uid or gid 0".into());
        }
        problems
    }
}

/// The value of the `name:` line of a status file.
fn field<'a>(text: &'a str, name: &'static str) -> Result<&'a str, &'static str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
        .ok_or(name)
}

/// A whitespace-separated list of numbers; `name` if one is malformed.
fn list<T: std::str::FromStr>(value: &str, name: &'static str) -> Result<Vec<T>, &'static str> {
    value
        .split_whitespace()
        .map(|v| v.parse().map_err(|_| name))
        .collect()
}

/// One namespace of the child next to the supervisor's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceLink {
    pub kind: &'static str,
    /// e.g. `user:[4026532281]`.
    pub child: String,
    pub supervisor: String,
}

impl NamespaceLink {
    /// Whether the child has its own namespace of this kind.
    pub fn is_separate(&self) -> bool {
        self.child != self.supervisor
    }
}

/// Reads the child's namespace links and the supervisor's.
pub fn namespaces(pid: i32) -> Result<Vec<NamespaceLink>, VerifyError> {
    let link = |path: PathBuf| {
        std::fs::read_link(&path)
            .map(|t| t.to_string_lossy().into_owned())
            .map_err(|source| VerifyError::Read { path, source })
    };
    NAMESPACES
        .iter()
        .map(|&kind| {
            Ok(NamespaceLink {
                kind,
                child: link(PathBuf::from(format!("/proc/{pid}/ns/{kind}")))?,
                supervisor: link(PathBuf::from(format!("/proc/self/ns/{kind}")))?,
            })
        })
        .collect()
}

/// Refuses a child whose status or namespaces are not those of a finished jail.
pub fn check(status: &ProcStatus, links: &[NamespaceLink]) -> Result<(), VerifyError> {
    let mut problems = status.problems();
    problems.extend(
        links
            .iter()
            .filter(|l| !l.is_separate())
            .map(|l| format!("shares the supervisor's {} namespace", l.kind)),
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(VerifyError::NotConfined(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAILED: &str = "Name:\tray-gpu\nUid:\t65534\t65534\t65534\t65534\n\
        Gid:\t65534\t65534\t65534\t65534\nNSpid:\t4242\t1\nVmHWM:\t    2048 kB\n\
        VmRSS:\t    1024 kB\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n\
        CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\n\
        NoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";

    #[test]
    fn parses_a_jailed_status() {
        let status = ProcStatus::parse(JAILED).unwrap();

        assert_eq!(status.seccomp, 2);
        assert_eq!(status.pid_inside(), Some(1));
        assert_eq!(status.vm_rss_kib, 1024);
        assert!(status.problems().is_empty(), "{:?}", status.problems());
    }

    #[test]
    fn unconfined_status_lists_every_problem() {
        let text = JAILED
            .replace("Seccomp:\t2", "Seccomp:\t0")
            .replace("CapBnd:\t0000000000000000", "CapBnd:\t000001ffffffffff");
        let status = ProcStatus::parse(&text).unwrap();

        let problems = status.problems();

        assert_eq!(
            problems,
            [
                "Seccomp is 0, not 2 (filter)",
                "CapBnd is 000001ffffffffff, not empty"
            ]
        );
    }

    #[test]
    fn missing_seccomp_line_is_named() {
        let text = JAILED.replace("Seccomp:\t2\n", "");

        let err = ProcStatus::parse(&text).unwrap_err();

        assert_eq!(err, "Seccomp");
    }

    #[test]
    fn shared_namespace_is_refused() {
        let status = ProcStatus::parse(JAILED).unwrap();
        let links = [NamespaceLink {
            kind: "net",
            child: "net:[1]".into(),
            supervisor: "net:[1]".into(),
        }];

        let err = check(&status, &links).unwrap_err();

        assert_eq!(
            err.to_string(),
            "the GPU process is not confined: shares the supervisor's net namespace"
        );
    }
}
