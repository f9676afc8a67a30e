//! Kernel attack surface a GPU process never needs.

use control::probe::TechniqueRequest;

use super::sys::{
    self, addr_of, addr_of_cstr, addr_of_mut, reg, scalar_reached, Attempt, Technique,
};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("bpf_map_create", bpf_map_create),
    ("perf_event_open", perf_event_open),
    ("userfaultfd", userfaultfd),
    ("io_uring_setup", io_uring_setup),
    ("keyctl", keyctl),
    ("add_key", add_key),
    ("init_module", init_module),
    ("finit_module", finit_module),
    ("kexec_load", kexec_load),
    ("reboot", reboot),
    ("swapon", swapon),
    ("syslog", syslog),
    ("acct", acct),
    ("iopl", iopl),
    ("ioperm", ioperm),
];

/// `BPF_MAP_CREATE` from linux/bpf.h (not in the libc crate).
const BPF_MAP_CREATE: u64 = 0;
/// `PERF_TYPE_SOFTWARE` and `PERF_COUNT_SW_CPU_CLOCK` from linux/perf_event.h.
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_CPU_CLOCK: u64 = 0;
/// `KEXEC_ARCH_DEFAULT` from linux/kexec.h.
const KEXEC_ARCH_DEFAULT: u64 = 0;
/// `SYSLOG_ACTION_SIZE_BUFFER` from linux/syslog.h: a read-only query.
const SYSLOG_ACTION_SIZE_BUFFER: u64 = 10;
/// Entries asked of io_uring_setup.
const IO_URING_ENTRIES: u64 = 8;

/// The head of `struct perf_event_attr` (`PERF_ATTR_SIZE_VER8`, 136 bytes), rest zero.
#[repr(C)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    rest: [u64; 15],
}

fn bpf_map_create(_: &TechniqueRequest) -> Attempt {
    let attr = [0u64; 16];
    // SAFETY: `attr` is a zeroed bpf_attr of the size passed, alive for the call.
    unsafe {
        sys::syscall(
            libc::SYS_bpf,
            &[
                BPF_MAP_CREATE,
                addr_of(&attr),
                std::mem::size_of_val(&attr) as u64,
            ],
        )
    }
    .map(|fd| format!("created bpf map fd {fd}"))
}

fn perf_event_open(_: &TechniqueRequest) -> Attempt {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_SOFTWARE,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: PERF_COUNT_SW_CPU_CLOCK,
        rest: [0; 15],
    };
    // SAFETY: `attr` is a valid perf_event_attr of the size it states, alive for the call.
    let fd = unsafe {
        sys::syscall(
            libc::SYS_perf_event_open,
            &[addr_of(&attr), 0, reg(-1), reg(-1), 0],
        )
    }?;
    sys::close(fd);
    Ok("opened a perf event".into())
}

fn userfaultfd(_: &TechniqueRequest) -> Attempt {
    let fd = sys::scalar(libc::SYS_userfaultfd, &[libc::O_CLOEXEC as u64])?;
    sys::close(fd);
    Ok("created a userfaultfd".into())
}

fn io_uring_setup(_: &TechniqueRequest) -> Attempt {
    let mut params = [0u32; 30];
    // SAFETY: `params` is a zeroed, writable io_uring_params (120 bytes) alive for the call.
    let fd = unsafe {
        sys::syscall(
            libc::SYS_io_uring_setup,
            &[IO_URING_ENTRIES, addr_of_mut(&mut params)],
        )
    }?;
    sys::close(fd);
    Ok("set up an io_uring".into())
}

fn keyctl(_: &TechniqueRequest) -> Attempt {
    scalar_reached(
        libc::SYS_keyctl,
        &[
            libc::KEYCTL_GET_KEYRING_ID.into(),
            reg(libc::KEY_SPEC_SESSION_KEYRING.into()),
            0,
        ],
    )
}

fn add_key(_: &TechniqueRequest) -> Attempt {
    let kind = sys::path("user");
    let description = sys::path("rayos-probe");
    let payload = [b'x'];
    // SAFETY: the strings and the one-byte payload outlive the call.
    unsafe {
        sys::syscall(
            libc::SYS_add_key,
            &[
                addr_of_cstr(&kind),
                addr_of_cstr(&description),
                addr_of(&payload),
                1,
                reg(libc::KEY_SPEC_SESSION_KEYRING.into()),
            ],
        )
    }
    .map(|serial| format!("added key {serial}"))
}

fn init_module(_: &TechniqueRequest) -> Attempt {
    let image = [0u8; 1];
    let params = sys::path("");
    // SAFETY: a zero-length image at a valid address, and an empty parameter string.
    unsafe {
        sys::syscall(
            libc::SYS_init_module,
            &[addr_of(&image), 0, addr_of_cstr(&params)],
        )
    }
    .map(|_| "loaded a module".into())
}

fn finit_module(_: &TechniqueRequest) -> Attempt {
    let params = sys::path("");
    // SAFETY: an empty parameter string that outlives the call.
    unsafe { sys::syscall(libc::SYS_finit_module, &[0, addr_of_cstr(&params), 0]) }
        .map(|_| "loaded a module".into())
}

fn kexec_load(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_kexec_load, &[0, 0, 0, KEXEC_ARCH_DEFAULT])
}

fn reboot(_: &TechniqueRequest) -> Attempt {
    scalar_reached(
        libc::SYS_reboot,
        &[
            reg(libc::LINUX_REBOOT_MAGIC1.into()),
            reg(libc::LINUX_REBOOT_MAGIC2.into()),
            reg(libc::LINUX_REBOOT_CMD_CAD_OFF.into()),
            0,
        ],
    )
}

fn swapon(_: &TechniqueRequest) -> Attempt {
    let device = sys::path("/dev/null");
    // SAFETY: `device` outlives the call.
    unsafe { sys::syscall(libc::SYS_swapon, &[addr_of_cstr(&device), 0]) }
        .map(|_| "enabled swap".into())
}

fn syslog(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_syslog, &[SYSLOG_ACTION_SIZE_BUFFER, 0, 0])
}

fn acct(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_acct, &[0])
}

fn iopl(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_iopl, &[3])
}

fn ioperm(_: &TechniqueRequest) -> Attempt {
    scalar_reached(libc::SYS_ioperm, &[0x80, 1, 1])
}
