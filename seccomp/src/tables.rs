//! Look-ups in the generated x86_64 syscall and constant tables.

use crate::generated::x86_64::{CONSTANTS, SYSCALLS};

/// The x86_64 syscall number of `name` (`"openat"` -> 257), if the kernel headers define it.
pub fn syscall_number(name: &str) -> Option<i64> {
    syscall_entry(name).map(|(_, nr)| nr)
}

/// The x86_64 name of syscall number `nr`, if there is one.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    SYSCALLS
        .iter()
        .find(|(_, n)| *n == nr)
        .map(|(name, _)| *name)
}

/// The value of a symbolic constant (`"PROT_EXEC"`, `"TIOCSTI"`, `"AT_FDCWD"` ...) as the
/// policy language sees it: negative values are their 64-bit two's complement.
pub fn constant(name: &str) -> Option<u64> {
    CONSTANTS
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| CONSTANTS[i].1)
}

/// Every symbolic constant whose name starts with `prefix` and whose value is `value`,
/// in name order: used to print numbers back as the names a policy author would write.
pub(crate) fn constant_names(prefix: &str, value: u64) -> impl Iterator<Item = &'static str> + '_ {
    CONSTANTS
        .iter()
        .filter(move |(n, v)| *v == value && n.starts_with(prefix))
        .map(|(n, _)| *n)
}

/// The table's entry for a syscall name: its `'static` name and its number.
pub(crate) fn syscall_entry(name: &str) -> Option<(&'static str, i64)> {
    SYSCALLS
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| SYSCALLS[i])
}
