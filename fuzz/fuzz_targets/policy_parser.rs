//! The seccomp policy language (minijail's grammar): arbitrary text through
//! `seccomp::Policy::from_str`, with the repository's policy directory for `@include`; every
//! policy that parses is compiled to BPF, and the compiled filter must give the same verdict
//! as the policy's own evaluation for each of its syscalls, with arguments taken from the
//! values its comparisons name (and their neighbours). Must never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use seccomp::{DefaultAction, Policy, SeccompData, AUDIT_ARCH_X86_64};

fn include_dirs() -> &'static [PathBuf] {
    static DIRS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    DIRS.get_or_init(|| {
        vec![PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies/x86_64"
        ))]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `@include` also takes a path as written; keep the fuzzer off the kernel's pseudo-files
    // (a regular file in /proc or /sys can be endless), which no policy names.
    if text.contains("/proc") || text.contains("/sys") {
        return;
    }
    let Ok(policy) = Policy::from_str(text, "fuzz.policy", include_dirs()) else {
        let _ = seccomp::parse_value(text, "fuzz.value");
        return;
    };
    for rule in policy.syscalls() {
        assert_eq!(seccomp::syscall_number(rule.name()), Some(rule.nr()));
    }
    let Ok(program) = policy.compile(DefaultAction::KillProcess) else {
        return;
    };
    assert!(!program.is_empty());
    // Arguments: every value a comparison names, one either side, and 0.
    let mut values = vec![0u64, u64::MAX];
    for rule in policy.syscalls() {
        for clause in rule.allow_if() {
            for comparison in clause {
                let v = comparison.value;
                values.extend([v, v.wrapping_add(1), v.wrapping_sub(1)]);
            }
        }
    }
    values.sort_unstable();
    values.dedup();
    values.truncate(16);
    for rule in policy.syscalls().iter().take(8) {
        for (i, &value) in values.iter().enumerate() {
            let mut args = [values[(i + 1) % values.len()]; 6];
            args[i % 6] = value;
            let data = SeccompData {
                nr: rule.nr() as i32,
                arch: AUDIT_ARCH_X86_64,
                instruction_pointer: 0,
                args,
            };
            let from_bpf = seccomp::check(&program, &data).expect("the compiled filter runs");
            assert_eq!(
                from_bpf,
                policy.evaluate(&data, DefaultAction::KillProcess),
                "compiled filter and policy disagree on {data:?}"
            );
        }
    }
});
