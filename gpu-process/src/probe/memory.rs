//! Executable memory: what a hardware-GPU policy forbids and llvmpipe's JIT needs.

use control::probe::TechniqueRequest;

use super::sys::{self, reg, scalar, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("mmap_exec", mmap_exec),
    ("mmap_rwx", mmap_rwx),
    ("mprotect_exec", mprotect_exec),
    ("pkey_mprotect_exec", pkey_mprotect_exec),
];

/// One page.
const PAGE: u64 = 4096;

fn mmap_exec(_: &TechniqueRequest) -> Attempt {
    let page = map_page(libc::PROT_READ | libc::PROT_EXEC)?;
    unmap(page);
    Ok("mapped executable memory".into())
}

fn mmap_rwx(_: &TechniqueRequest) -> Attempt {
    let page = map_page(libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC)?;
    unmap(page);
    Ok("mapped writable executable memory".into())
}

fn mprotect_exec(_: &TechniqueRequest) -> Attempt {
    let page = map_page(libc::PROT_READ | libc::PROT_WRITE)?;
    let result = scalar(
        libc::SYS_mprotect,
        &[page, PAGE, (libc::PROT_READ | libc::PROT_EXEC) as u64],
    );
    unmap(page);
    result.map(|_| "made writable memory executable".into())
}

fn pkey_mprotect_exec(_: &TechniqueRequest) -> Attempt {
    let page = map_page(libc::PROT_READ | libc::PROT_WRITE)?;
    let default_key = reg(-1);
    let result = scalar(
        libc::SYS_pkey_mprotect,
        &[
            page,
            PAGE,
            (libc::PROT_READ | libc::PROT_EXEC) as u64,
            default_key,
        ],
    );
    unmap(page);
    result.map(|_| "made writable memory executable".into())
}

/// Maps one fresh anonymous page (never over an existing mapping) and returns its address.
fn map_page(prot: i32) -> Result<u64, i32> {
    scalar(
        libc::SYS_mmap,
        &[
            0,
            PAGE,
            prot as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            reg(-1),
            0,
        ],
    )
    .map(|addr| addr as u64)
}

/// Unmaps a page [`map_page`] returned.
fn unmap(page: u64) {
    // SAFETY: `page` is a mapping this module made and nothing else refers to.
    let _ = unsafe { sys::syscall(libc::SYS_munmap, &[page, PAGE]) };
}

/// Maps `len` bytes of fresh anonymous memory, readable and writable, never over an
/// existing mapping; for the exhaustion techniques.
pub(super) fn map_anonymous(len: u64, extra_flags: i32) -> Result<u64, i32> {
    scalar(
        libc::SYS_mmap,
        &[
            0,
            len,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags) as u64,
            reg(-1),
            0,
        ],
    )
    .map(|addr| addr as u64)
}

/// Unmaps memory [`map_anonymous`] returned.
pub(super) fn unmap_anonymous(addr: u64, len: u64) {
    // SAFETY: the range is a mapping `map_anonymous` made and nothing else refers to.
    let _ = unsafe { sys::syscall(libc::SYS_munmap, &[addr, len]) };
}
