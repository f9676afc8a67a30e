//! The policy language: what parses, what it means, and the errors for what does not.

use std::fs;
use std::path::PathBuf;

use seccomp::{Action, Comparison, Policy, PolicyError};

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::from_str(text, "t.policy", &[])
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn only_clause(policy: &Policy) -> Vec<Comparison> {
    policy.syscalls()[0].allow_if()[0].clone()
}

#[test]
fn parse_accepts_allow_comments_blank_lines_and_continuations() {
    let policy = parse(
        "# header\n\nread: 1\nwrite: allow # trailing\nfcntl: arg1 == 1 || \\\n  arg1 == 2\n",
    )
    .unwrap();

    let names: Vec<&str> = policy.syscalls().iter().map(|r| r.name()).collect();
    assert_eq!(names, vec!["read", "write", "fcntl"]);
    assert_eq!(policy.rule("fcntl").unwrap().allow_if().len(), 2);
}

#[test]
fn parse_reads_every_operator() {
    let policy = parse("read: arg0 == 1 && arg1 != 2 && arg2 < 3 && arg3 <= 4 && arg4 > 5 && arg5 >= 6 && arg0 & 7 && arg1 in 8").unwrap();

    let ops: Vec<&str> = only_clause(&policy).iter().map(|c| c.op.symbol()).collect();
    assert_eq!(ops, ["==", "!=", "<", "<=", ">", ">=", "&", "in"]);
}

#[test]
fn parse_evaluates_values_like_minijail() {
    let policy = parse("mmap: arg0 == 0x10 && arg1 == 010 && arg2 == -1 && arg3 == PROT_READ|PROT_WRITE && arg4 in ~PROT_EXEC && arg5 == ~(PROT_READ|0x2)").unwrap();

    let values: Vec<u64> = only_clause(&policy).iter().map(|c| c.value).collect();
    assert_eq!(values, vec![0x10, 8, u64::MAX, 3, !4, !3]);
}

#[test]
fn parse_reads_return_errno_and_actions() {
    let policy = parse("open: return ENOENT\nopenat: arg2 == 0; return EPERM\nkill: trap\ntkill: log\nuname: kill-process\n").unwrap();

    let otherwise: Vec<Option<Action>> = policy.syscalls().iter().map(|r| r.otherwise()).collect();
    assert_eq!(
        otherwise,
        vec![
            Some(Action::Errno(2)),
            Some(Action::Errno(1)),
            Some(Action::Trap),
            Some(Action::Log),
            Some(Action::KillProcess)
        ]
    );
}

#[test]
fn parse_merges_repeated_conditional_rules_like_minijail() {
    let policy = parse("ioctl: arg1 == 1\nioctl: arg1 == 2\n").unwrap();

    let rule = policy.rule("ioctl").unwrap();
    assert_eq!(rule.allow_if().len(), 2);
    assert_eq!(rule.definitions().len(), 2);
}

#[test]
fn parse_rejects_second_unconditional_action_naming_both_lines() {
    assert_eq!(
        error("read: 1\nwrite: 1\nread: arg0 == 0\n"),
        "t.policy:3:1: syscall `read` already has an unconditional action (at t.policy:1:1); a later rule for it could never apply"
    );
}

#[test]
fn parse_rejects_unknown_syscall_with_line_and_column() {
    assert_eq!(
        error("read: 1\n  frobnicate: 1\n"),
        "t.policy:2:3: unknown syscall `frobnicate` (not in the x86_64 syscall table)"
    );
}

#[test]
fn parse_rejects_unknown_constant_with_line_and_column() {
    assert_eq!(
        error("socket: arg0 == AF_UNIX || arg0 == AF_NOPE\n"),
        "t.policy:1:36: unknown constant `AF_NOPE`"
    );
}

#[test]
fn parse_rejects_bad_argument_index() {
    assert_eq!(
        error("read: arg6 == 1\n"),
        "t.policy:1:7: bad argument `arg6`: syscalls have arguments arg0 to arg5"
    );
}

#[test]
fn parse_rejects_bad_operator() {
    assert_eq!(
        error("read: arg0 | 1\n"),
        "t.policy:1:12: bad operator `|`: expected one of == != < <= > >= & in"
    );
}

#[test]
fn parse_rejects_zero_as_an_action() {
    assert_eq!(
        error("read: 0\n"),
        "t.policy:1:7: bad action `0`: the only numeric action is `1` (allow); to refuse, leave the syscall out or write `return ERRNO`"
    );
}

#[test]
fn parse_rejects_action_other_than_return_after_expression() {
    assert_eq!(
        error("read: arg0 == 1; trap\n"),
        "t.policy:1:18: bad action `trap`: only `return ERRNO` may follow an argument expression"
    );
}

#[test]
fn parse_rejects_errno_above_4095() {
    assert_eq!(
        error("read: return 4096\n"),
        "t.policy:1:14: bad action `4096`: an errno must be between 0 and 4095"
    );
}

#[test]
fn parse_rejects_number_wider_than_64_bits() {
    assert_eq!(
        error("read: arg0 == 0x10000000000000000\n"),
        "t.policy:1:15: invalid number `0x10000000000000000` (must fit in 64 bits)"
    );
}

#[test]
fn parse_rejects_missing_colon() {
    assert_eq!(
        error("read 1\n"),
        "t.policy:1:6: expected `:` after the syscall name, found `1`"
    );
}

#[test]
fn parse_rejects_unclosed_parenthesis() {
    assert_eq!(
        error("read: arg0 == (1|2\n"),
        "t.policy:1:19: expected `)`, found end of line"
    );
}

#[test]
fn parse_rejects_denylist_policies() {
    assert_eq!(
        error("@denylist\n"),
        "t.policy:1:1: `@denylist` is not supported: only allow-list policies are compiled here"
    );
}

#[test]
fn parse_accepts_frequency_and_ignores_it() {
    let policy = parse("@frequency ./missing.frequency\nread: 1\n").unwrap();

    assert_eq!(policy.syscalls().len(), 1);
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn include_is_found_by_file_name_in_search_directories() {
    let lib = tempfile::tempdir().unwrap();
    let top = tempfile::tempdir().unwrap();
    write(&lib, "common.policy", "read: 1\n");
    let main = write(
        &top,
        "main.policy",
        "@include /usr/share/policy/crosvm/common.policy\nwrite: 1\n",
    );

    let policy = Policy::from_file(&main, &[lib.path().to_path_buf()]).unwrap();

    assert_eq!(policy.syscalls().len(), 2);
}

#[test]
fn include_is_found_beside_the_including_file() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "common.policy", "read: 1\n");
    let main = write(&dir, "main.policy", "@include ./common.policy\n");

    let policy = Policy::from_file(&main, &[]).unwrap();

    assert_eq!(policy.syscalls()[0].name(), "read");
}

#[test]
fn missing_include_names_location_and_searched_paths() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
        &dir,
        "main.policy",
        "read: 1\n@include /nowhere/gone.policy\n",
    );

    let err = Policy::from_file(&main, &[]).unwrap_err().to_string();

    assert_eq!(
        err,
        format!(
            "{0}/main.policy:2:10: cannot find included file `/nowhere/gone.policy` (searched: {0}/gone.policy, /nowhere/gone.policy)",
            dir.path().display()
        )
    );
}

#[test]
fn include_cycle_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "a.policy", "@include ./b.policy\n");
    write(&dir, "b.policy", "read: 1\n@include ./a.policy\n");

    let err = Policy::from_file(&dir.path().join("a.policy"), &[])
        .unwrap_err()
        .to_string();

    assert_eq!(
        err,
        format!(
            "{0}/b.policy:2:10: include cycle: {0}/a.policy is already being included",
            dir.path().display()
        )
    );
}

#[test]
fn unreadable_policy_file_is_reported_with_its_path() {
    let err = Policy::from_file("/nonexistent/x.policy".as_ref(), &[])
        .unwrap_err()
        .to_string();

    assert!(
        err.starts_with("/nonexistent/x.policy: cannot read policy file:"),
        "{err}"
    );
}

#[test]
fn generated_tables_hold_header_values() {
    let values = [
        seccomp::syscall_number("openat").map(|v| v as u64),
        seccomp::constant("TIOCSTI"),
        seccomp::constant("KVM_RUN"),
        seccomp::constant("DRM_IOCTL_VERSION"),
        seccomp::constant("AT_FDCWD"),
    ];

    assert_eq!(
        values,
        [
            Some(257),
            Some(0x5412),
            Some(0xae80),
            Some(0xc040_6400),
            Some((-100i64) as u64)
        ]
    );
    assert_eq!(seccomp::syscall_name(257), Some("openat"));
}
