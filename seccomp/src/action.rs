//! What seccomp does with a syscall: the actions a policy names and a BPF program returns.

use serde::{Deserialize, Serialize};
use std::fmt;

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ACTION_FULL: u32 = 0xffff_0000;
const RET_DATA: u32 = 0x0000_ffff;

/// The kernel's decision for one syscall (`SECCOMP_RET_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Run the syscall.
    Allow,
    /// Run the syscall and log it.
    Log,
    /// Fail the syscall with this errno, without running it.
    Errno(u16),
    /// Send SIGSYS to the thread (the jailed child catches it and reports).
    Trap,
    /// Notify a ptrace tracer, with this data.
    Trace(u16),
    /// Notify a user-space supervisor (seccomp user notification).
    UserNotif,
    /// Kill the calling thread.
    KillThread,
    /// Kill the whole process.
    KillProcess,
}

impl Action {
    /// Decodes a BPF program's return value the way the kernel does: unknown actions kill
    /// the process.
    pub fn from_ret(ret: u32) -> Action {
        let data = (ret & RET_DATA) as u16;
        match ret & RET_ACTION_FULL {
            RET_ALLOW => Action::Allow,
            RET_LOG => Action::Log,
            RET_ERRNO => Action::Errno(data),
            RET_TRAP => Action::Trap,
            RET_TRACE => Action::Trace(data),
            RET_USER_NOTIF => Action::UserNotif,
            RET_KILL_THREAD => Action::KillThread,
            RET_KILL_PROCESS => Action::KillProcess,
            _ => Action::KillProcess,
        }
    }

    /// Whether the syscall runs (`Allow` or `Log`).
    pub fn runs(self) -> bool {
        matches!(self, Action::Allow | Action::Log)
    }

    /// The seccompiler action with the same effect; seccompiler has no user notification.
    pub(crate) fn to_seccompiler(self) -> Option<seccompiler::SeccompAction> {
        use seccompiler::SeccompAction as S;
        match self {
            Action::Allow => Some(S::Allow),
            Action::Log => Some(S::Log),
            Action::Errno(e) => Some(S::Errno(u32::from(e))),
            Action::Trap => Some(S::Trap),
            Action::Trace(d) => Some(S::Trace(u32::from(d))),
            Action::UserNotif => None,
            Action::KillThread => Some(S::KillThread),
            Action::KillProcess => Some(S::KillProcess),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Allow => write!(f, "allow"),
            Action::Log => write!(f, "log"),
            Action::Errno(e) => match crate::tables::constant_names("E", u64::from(*e)).next() {
                Some(name) => write!(f, "errno {e} ({name})"),
                None => write!(f, "errno {e}"),
            },
            Action::Trap => write!(f, "trap"),
            Action::Trace(d) => write!(f, "trace {d}"),
            Action::UserNotif => write!(f, "user-notify"),
            Action::KillThread => write!(f, "kill-thread"),
            Action::KillProcess => write!(f, "kill-process"),
        }
    }
}

/// What happens to a syscall the policy does not allow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DefaultAction {
    /// Kill the process (the production choice).
    #[default]
    KillProcess,
    /// Send SIGSYS, for trap-and-report: the jailed child catches it and reports the call.
    Trap,
    /// Allow and log: for learning a policy, never for production.
    Log,
}

impl From<DefaultAction> for Action {
    fn from(d: DefaultAction) -> Action {
        match d {
            DefaultAction::KillProcess => Action::KillProcess,
            DefaultAction::Trap => Action::Trap,
            DefaultAction::Log => Action::Log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_ret_keeps_errno_data() {
        assert_eq!(Action::from_ret(0x0005_0026), Action::Errno(38));
    }

    #[test]
    fn from_ret_treats_unknown_actions_as_kill_process() {
        assert_eq!(Action::from_ret(0x1234_0000), Action::KillProcess);
    }

    #[test]
    fn from_ret_inverts_seccompiler_encoding() {
        let actions = [
            Action::Allow,
            Action::Log,
            Action::Errno(1),
            Action::Trap,
            Action::Trace(7),
            Action::KillThread,
            Action::KillProcess,
        ];

        let round: Vec<Action> = actions
            .iter()
            .filter_map(|a| a.to_seccompiler())
            .map(|s| Action::from_ret(u32::from(s)))
            .collect();

        assert_eq!(round, actions);
    }
}
