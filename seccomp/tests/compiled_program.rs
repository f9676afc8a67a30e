//! What the compiled BPF program does, checked by running it in the interpreter.

mod common;

use seccomp::{check, syscall_number, Action, DefaultAction, Policy, SeccompData};

const POLICY: &str = "\
read: 1
open: return ENOENT
openat: arg2 == 0; return EPERM
ioctl: arg1 & 0x6400
mmap: arg2 in ~PROT_EXEC
lseek: arg2 > 0x100000000
kill: trap
";

fn verdict(default: DefaultAction, name: &str, args: [u64; 6]) -> Action {
    let policy = Policy::from_str(POLICY, "t.policy", &[]).unwrap();
    let program = policy.compile(default).unwrap();
    let nr = syscall_number(name).unwrap();
    check(&program, &SeccompData::x86_64(nr, args)).unwrap()
}

#[test]
fn unconditional_allow_runs() {
    assert_eq!(
        verdict(DefaultAction::KillProcess, "read", [0; 6]),
        Action::Allow
    );
}

#[test]
fn unlisted_syscall_gets_each_default_action() {
    let got = [
        DefaultAction::KillProcess,
        DefaultAction::Trap,
        DefaultAction::Log,
    ]
    .map(|d| verdict(d, "write", [0; 6]));

    assert_eq!(got, [Action::KillProcess, Action::Trap, Action::Log]);
}

#[test]
fn return_errno_refuses_with_that_errno() {
    assert_eq!(
        verdict(DefaultAction::KillProcess, "open", [0; 6]),
        Action::Errno(2)
    );
}

#[test]
fn expression_with_return_allows_when_true_and_returns_errno_otherwise() {
    let got =
        [0, 1].map(|flags| verdict(DefaultAction::KillProcess, "openat", [0, 0, flags, 0, 0, 0]));

    assert_eq!(got, [Action::Allow, Action::Errno(1)]);
}

#[test]
fn expression_without_return_falls_to_the_default_action() {
    assert_eq!(
        verdict(DefaultAction::Trap, "ioctl", [3, 0x1, 0, 0, 0, 0]),
        Action::Trap
    );
}

#[test]
fn any_bits_mask_admits_a_request_with_any_one_bit_set() {
    let got = [0x0400, 0x2000, 0x4000, 0x5412]
        .map(|r| verdict(DefaultAction::KillProcess, "ioctl", [3, r, 0, 0, 0, 0]));

    assert_eq!(got, [Action::Allow; 4]);
}

#[test]
fn in_mask_refuses_bits_outside_the_mask() {
    let got = [0x3, 0x7].map(|p| verdict(DefaultAction::KillProcess, "mmap", [0, 0, p, 0, 0, 0]));

    assert_eq!(got, [Action::Allow, Action::KillProcess]);
}

#[test]
fn comparisons_use_all_64_bits() {
    let got = [0x1_0000_0000, 0x1_0000_0001]
        .map(|v| verdict(DefaultAction::KillProcess, "lseek", [0, 0, v, 0, 0, 0]));

    assert_eq!(got, [Action::KillProcess, Action::Allow]);
}

#[test]
fn trap_action_traps() {
    assert_eq!(
        verdict(DefaultAction::KillProcess, "kill", [0; 6]),
        Action::Trap
    );
}

#[test]
fn foreign_architecture_is_killed_even_with_log_default() {
    let policy = Policy::from_str(POLICY, "t.policy", &[]).unwrap();
    let program = policy.compile(DefaultAction::Log).unwrap();
    let i386 = SeccompData {
        arch: 0x4000_0003,
        ..SeccompData::x86_64(0, [0; 6])
    };

    assert_eq!(check(&program, &i386).unwrap(), Action::KillProcess);
}

#[test]
fn x32_syscalls_are_killed_even_with_log_default() {
    let policy = Policy::from_str(POLICY, "t.policy", &[]).unwrap();
    let program = policy.compile(DefaultAction::Log).unwrap();

    let got = check(&program, &SeccompData::x86_64(0x4000_0000, [0; 6])).unwrap();

    assert_eq!(got, Action::KillProcess);
}

#[test]
fn empty_policy_compiles_to_the_default_action() {
    let program = Policy::from_str("", "empty", &[])
        .unwrap()
        .compile(DefaultAction::Trap)
        .unwrap();

    assert_eq!(
        check(&program, &SeccompData::x86_64(0, [0; 6])).unwrap(),
        Action::Trap
    );
}

#[test]
fn compiled_program_survives_bytes_and_words() {
    let program = Policy::from_str(POLICY, "t.policy", &[])
        .unwrap()
        .compile(DefaultAction::KillProcess)
        .unwrap();

    let from_bytes = seccomp::bpf_from_bytes(&seccomp::bpf_to_bytes(&program)).unwrap();
    let from_words = seccomp::bpf_from_words(&seccomp::bpf_to_words(&program));

    assert_eq!((from_bytes == program, from_words == program), (true, true));
}

#[test]
fn crosvm_gpu_device_admits_tiocsti_through_its_mask() {
    let dir = common::crosvm_dir();
    let policy = Policy::from_file(&dir.join("gpu_device.policy"), &[dir]).unwrap();
    let program = policy.compile(DefaultAction::KillProcess).unwrap();
    let tiocsti = seccomp::constant("TIOCSTI").unwrap();

    let got = check(&program, &SeccompData::x86_64(16, [3, tiocsti, 0, 0, 0, 0])).unwrap();

    assert_eq!(got, Action::Allow);
}
