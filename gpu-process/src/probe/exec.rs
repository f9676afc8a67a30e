//! Running another program.

use control::probe::TechniqueRequest;

use super::sys::{self, addr_of, addr_of_cstr, reg, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("execve_bin_sh", execve_bin_sh),
    ("execveat_bin_sh", execveat_bin_sh),
    ("memfd_create", memfd_create),
    ("execveat_memfd_elf", execveat_memfd_elf),
];

/// Exit status of [`tiny_elf`]: a process that exits with it was replaced by the copied ELF.
pub(super) const TINY_ELF_EXIT_CODE: u8 = 42;

/// Load address of [`tiny_elf`]'s single segment.
const TINY_ELF_BASE: u64 = 0x40_0000;

fn execve_bin_sh(_: &TechniqueRequest) -> Attempt {
    let program = sys::path("/bin/sh");
    let argv = [addr_of_cstr(&program), 0];
    let envp = [0u64];
    // SAFETY: the program path and both NULL-terminated arrays outlive the call; if it
    // succeeds this image is replaced, which is what the technique attempts.
    unsafe {
        sys::syscall(
            libc::SYS_execve,
            &[addr_of_cstr(&program), addr_of(&argv), addr_of(&envp)],
        )
    }
    .map(|_| "execve returned".into())
}

fn execveat_bin_sh(_: &TechniqueRequest) -> Attempt {
    let program = sys::path("/bin/sh");
    let argv = [addr_of_cstr(&program), 0];
    let envp = [0u64];
    // SAFETY: as for execve; the directory fd is AT_FDCWD and the flags are 0.
    unsafe {
        sys::syscall(
            libc::SYS_execveat,
            &[
                reg(libc::AT_FDCWD.into()),
                addr_of_cstr(&program),
                addr_of(&argv),
                addr_of(&envp),
                0,
            ],
        )
    }
    .map(|_| "execveat returned".into())
}

fn memfd_create(_: &TechniqueRequest) -> Attempt {
    let fd = new_memfd()?;
    sys::close(fd);
    Ok("created a memfd".into())
}

fn execveat_memfd_elf(_: &TechniqueRequest) -> Attempt {
    let fd = new_memfd()?;
    let elf = tiny_elf();
    // SAFETY: `elf` is readable for its whole length during the call.
    unsafe {
        sys::syscall(
            libc::SYS_write,
            &[reg(fd), addr_of(&elf[0]), elf.len() as u64],
        )
    }?;
    let empty = sys::path("");
    let argv = [addr_of_cstr(&empty), 0];
    let envp = [0u64];
    // SAFETY: the empty path and both NULL-terminated arrays outlive the call; on success the
    // image becomes the tiny ELF, which exits with TINY_ELF_EXIT_CODE.
    unsafe {
        sys::syscall(
            libc::SYS_execveat,
            &[
                reg(fd),
                addr_of_cstr(&empty),
                addr_of(&argv),
                addr_of(&envp),
                reg(libc::AT_EMPTY_PATH.into()),
            ],
        )
    }
    .map(|_| "execveat returned".into())
}

fn new_memfd() -> Result<i64, i32> {
    let name = sys::path("rayos-probe");
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    unsafe {
        sys::syscall(
            libc::SYS_memfd_create,
            &[addr_of_cstr(&name), libc::MFD_CLOEXEC.into()],
        )
    }
}

/// A complete static x86_64 ELF executable that only calls `exit(TINY_ELF_EXIT_CODE)`:
/// an ELF header, one loadable read+execute segment covering the file, then the code.
pub(super) fn tiny_elf() -> Vec<u8> {
    const EHDR: u16 = 64;
    const PHDR: u16 = 56;
    #[rustfmt::skip]
    let code: [u8; 12] = [
        0xbf, TINY_ELF_EXIT_CODE, 0, 0, 0, // mov edi, TINY_ELF_EXIT_CODE
        0xb8, libc::SYS_exit as u8, 0, 0, 0, // mov eax, SYS_exit
        0x0f, 0x05, // syscall
    ];
    let size = u64::from(EHDR + PHDR) + code.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    elf.extend_from_slice(b"\x7fELF");
    elf.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little endian, version 1, System V ABI
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    elf.extend_from_slice(&(TINY_ELF_BASE + u64::from(EHDR + PHDR)).to_le_bytes()); // entry
    elf.extend_from_slice(&u64::from(EHDR).to_le_bytes()); // program headers follow
    elf.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    elf.extend_from_slice(&0u32.to_le_bytes()); // flags
    for half in [EHDR, PHDR, 1, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes()); // sizes and counts
    }
    elf.extend_from_slice(&libc::PT_LOAD.to_le_bytes());
    elf.extend_from_slice(&(libc::PF_R | libc::PF_X).to_le_bytes());
    elf.extend_from_slice(&0u64.to_le_bytes()); // file offset
    elf.extend_from_slice(&TINY_ELF_BASE.to_le_bytes()); // virtual address
    elf.extend_from_slice(&TINY_ELF_BASE.to_le_bytes()); // physical address
    elf.extend_from_slice(&size.to_le_bytes()); // file size
    elf.extend_from_slice(&size.to_le_bytes()); // memory size
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // alignment
    elf.extend_from_slice(&code);
    elf
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tiny_elf_runs_and_exits_with_its_code() {
        let dir = std::env::temp_dir().join(format!("rayos-tiny-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny");
        std::fs::write(&path, tiny_elf()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();

        let status = std::process::Command::new(&path).status().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(status.code(), Some(TINY_ELF_EXIT_CODE.into()));
    }
}
