//! Reaching host files from inside the jail.

use control::probe::TechniqueRequest;

use super::sys::{self, addr_of_cstr, addr_of_mut, open_reached, reg, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("open_etc_shadow", open_etc_shadow),
    ("open_proc1_root_shadow", open_proc1_root_shadow),
    ("open_supervisor_mem", open_supervisor_mem),
    ("open_supervisor_environ", open_supervisor_environ),
    ("write_proc_sys_core_pattern", write_proc_sys_core_pattern),
    (
        "write_sys_kernel_uevent_helper",
        write_sys_kernel_uevent_helper,
    ),
    ("open_dev_mem", open_dev_mem),
    ("readlink_proc_self_root", readlink_proc_self_root),
    ("open_dotdot_past_root", open_dotdot_past_root),
    ("create_file_in_root", create_file_in_root),
    ("mknod_dev_mem", mknod_dev_mem),
];

fn open_etc_shadow(_: &TechniqueRequest) -> Attempt {
    open_reached("/etc/shadow", libc::O_RDONLY)
}

fn open_proc1_root_shadow(_: &TechniqueRequest) -> Attempt {
    open_reached("/proc/1/root/etc/shadow", libc::O_RDONLY)
}

fn open_supervisor_mem(req: &TechniqueRequest) -> Attempt {
    open_reached(&format!("/proc/{}/mem", req.supervisor_pid), libc::O_RDONLY)
}

fn open_supervisor_environ(req: &TechniqueRequest) -> Attempt {
    open_reached(
        &format!("/proc/{}/environ", req.supervisor_pid),
        libc::O_RDONLY,
    )
}

fn write_proc_sys_core_pattern(_: &TechniqueRequest) -> Attempt {
    open_reached("/proc/sys/kernel/core_pattern", libc::O_WRONLY)
}

fn write_sys_kernel_uevent_helper(_: &TechniqueRequest) -> Attempt {
    open_reached("/sys/kernel/uevent_helper", libc::O_WRONLY)
}

fn open_dev_mem(_: &TechniqueRequest) -> Attempt {
    open_reached("/dev/mem", libc::O_RDONLY)
}

fn readlink_proc_self_root(_: &TechniqueRequest) -> Attempt {
    let link = sys::path("/proc/self/root");
    let mut target = [0u8; 256];
    // SAFETY: `link` is NUL-terminated and `target` is writable for the length passed.
    let len = unsafe {
        sys::syscall(
            libc::SYS_readlink,
            &[
                addr_of_cstr(&link),
                addr_of_mut(&mut target),
                target.len() as u64,
            ],
        )
    }?;
    Ok(String::from_utf8_lossy(&target[..len as usize]).into_owned())
}

fn open_dotdot_past_root(_: &TechniqueRequest) -> Attempt {
    open_reached("/../../../etc/passwd", libc::O_RDONLY)
}

fn create_file_in_root(_: &TechniqueRequest) -> Attempt {
    open_reached(
        "/rayos-escape-probe",
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
    )
}

fn mknod_dev_mem(_: &TechniqueRequest) -> Attempt {
    let node = sys::path("/rayos-dev-mem");
    let mode = libc::S_IFCHR | 0o600;
    // SAFETY: `node` is a valid NUL-terminated string that outlives the call.
    unsafe {
        sys::syscall(
            libc::SYS_mknodat,
            &[
                reg(libc::AT_FDCWD.into()),
                addr_of_cstr(&node),
                mode.into(),
                libc::makedev(1, 1),
            ],
        )
    }
    .map(|_| "created a /dev/mem node".into())
}
