//! Property: the compiled BPF program and the policy text agree on every seccomp_data.

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use seccomp::{check, DefaultAction, Policy, SeccompData, AUDIT_ARCH_X86_64};

const SYNTHETIC: &str = "\
read: 1
write: arg0 == 1 || arg0 == 2 && arg2 <= 0x1000
openat: arg2 in O_ACCMODE|O_CLOEXEC|O_NONBLOCK; return EACCES
ioctl: arg1 == TCGETS || arg1 & 0x6400 && arg0 != 0 || arg1 >= 0xc0000000 && arg1 < 0xc0100000
mmap: arg2 in ~PROT_EXEC && arg3 & MAP_PRIVATE|MAP_SHARED
lseek: arg1 > 0xffffffff || arg2 == -1
open: return ENOENT
kill: trap
tgkill: arg2 == SIGABRT
tgkill: arg2 == SIGTERM; return EPERM
";

fn policies() -> &'static [Policy] {
    static POLICIES: OnceLock<Vec<Policy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let dir = common::crosvm_dir();
        let mut out = vec![Policy::from_str(SYNTHETIC, "synthetic", &[]).unwrap()];
        for name in [
            "gpu_device.policy",
            "common_device.policy",
            "jail_warden.policy",
        ] {
            out.push(Policy::from_file(&dir.join(name), std::slice::from_ref(&dir)).unwrap());
        }
        out
    })
}

/// Values worth trying for an argument: the policy's constants, their neighbours and
/// single bits, or anything at all.
fn interesting(policy: &Policy) -> Vec<u64> {
    let mut values = vec![0, 1, u64::MAX];
    for c in policy
        .syscalls()
        .iter()
        .flat_map(|r| r.allow_if())
        .flatten()
    {
        values.extend([
            c.value,
            c.value.wrapping_add(1),
            c.value.wrapping_sub(1),
            c.value & c.value.wrapping_neg(),
        ]);
    }
    values
}

fn data_strategy(policy: &Policy) -> impl Strategy<Value = SeccompData> {
    let mut nrs: Vec<i32> = policy.syscalls().iter().map(|r| r.nr() as i32).collect();
    nrs.extend([1, 60, 400, 0x4000_0001]);
    let values = interesting(policy);
    let arg = prop_oneof![3 => proptest::sample::select(values), 1 => any::<u64>()];
    let arch = prop_oneof![9 => Just(AUDIT_ARCH_X86_64), 1 => any::<u32>()];
    (
        proptest::sample::select(nrs),
        arch,
        proptest::array::uniform6(arg),
    )
        .prop_map(|(nr, arch, args)| SeccompData {
            nr,
            arch,
            instruction_pointer: 0,
            args,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn interpreter_verdict_on_compiled_bpf_matches_policy_text(
        (index, data) in (0usize..4).prop_flat_map(|i| (Just(i), data_strategy(&policies()[i]))),
        default in prop_oneof![Just(DefaultAction::KillProcess), Just(DefaultAction::Trap), Just(DefaultAction::Log)],
    ) {
        let policy = &policies()[index];
        let program = policy.compile(default).unwrap();

        let from_bpf = check(&program, &data).unwrap();

        prop_assert_eq!(from_bpf, policy.evaluate(&data, default));
    }
}
