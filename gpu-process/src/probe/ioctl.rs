//! ioctl requests outside the policy's exact list.

use control::probe::TechniqueRequest;

use super::sys::{self, addr_of, addr_of_mut, reg, scalar, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("tiocsti_fd0", tiocsti_fd0),
    ("tiocsti_tube", tiocsti_tube),
    ("kvm_create_vm", kvm_create_vm),
    ("drm_set_master", drm_set_master),
    ("drm_drop_master", drm_drop_master),
    ("drm_auth_magic", drm_auth_magic),
    ("ioctl_fionbio", ioctl_fionbio),
];

/// `KVMIO` from linux/kvm.h.
const KVMIO: u32 = 0xAE;
/// `KVM_CREATE_VM`, `_IO(KVMIO, 0x01)`.
const KVM_CREATE_VM: u64 = libc::_IO(KVMIO, 0x01) as u64;
/// `DRM_IOCTL_BASE` from drm/drm.h.
const DRM_IOCTL_BASE: u32 = b'd' as u32;
/// `DRM_IOCTL_SET_MASTER`, `_IO('d', 0x1e)`.
const DRM_IOCTL_SET_MASTER: u64 = libc::_IO(DRM_IOCTL_BASE, 0x1e) as u64;
/// `DRM_IOCTL_DROP_MASTER`, `_IO('d', 0x1f)`.
const DRM_IOCTL_DROP_MASTER: u64 = libc::_IO(DRM_IOCTL_BASE, 0x1f) as u64;
/// `DRM_IOCTL_AUTH_MAGIC`, `_IOW('d', 0x11, struct drm_auth)`.
const DRM_IOCTL_AUTH_MAGIC: u64 = libc::_IOW::<u32>(DRM_IOCTL_BASE, 0x11) as u64;
/// The DRM primary node: the one where master matters.
const DRM_PRIMARY_NODE: &str = "/dev/dri/card0";

fn tiocsti_fd0(_: &TechniqueRequest) -> Attempt {
    push_byte(0)
}

fn tiocsti_tube(_: &TechniqueRequest) -> Attempt {
    let tube = sys::open_fds()
        .into_iter()
        .find(|(_, kind)| *kind == "sock")
        .map(|(fd, _)| fd)
        .ok_or(libc::EBADF)?;
    push_byte(tube)
}

/// Pushes a byte into the input queue of the terminal `fd` would be.
fn push_byte(fd: i32) -> Attempt {
    let byte = b'\n';
    // SAFETY: `byte` is a readable byte that outlives the call.
    unsafe {
        sys::syscall(
            libc::SYS_ioctl,
            &[reg(fd.into()), libc::TIOCSTI, addr_of(&byte)],
        )
    }
    .map(|_| "pushed a byte into a terminal".into())
}

fn kvm_create_vm(_: &TechniqueRequest) -> Attempt {
    let kvm = sys::open("/dev/kvm", libc::O_RDONLY)?;
    let vm = scalar(libc::SYS_ioctl, &[reg(kvm.into()), KVM_CREATE_VM, 0]);
    sys::close(kvm.into());
    let vm = vm?;
    sys::close(vm);
    Ok("created a VM".into())
}

fn drm_set_master(_: &TechniqueRequest) -> Attempt {
    drm_scalar(DRM_IOCTL_SET_MASTER)
}

fn drm_drop_master(_: &TechniqueRequest) -> Attempt {
    drm_scalar(DRM_IOCTL_DROP_MASTER)
}

fn drm_auth_magic(_: &TechniqueRequest) -> Attempt {
    let fd = drm_fd();
    let mut magic = 0u32;
    // SAFETY: `magic` is a writable drm_auth (one u32) that outlives the call.
    let result = unsafe {
        sys::syscall(
            libc::SYS_ioctl,
            &[
                reg(fd.into()),
                DRM_IOCTL_AUTH_MAGIC,
                addr_of_mut(&mut magic),
            ],
        )
    };
    release_drm_fd(fd);
    result.map(|_| "authenticated a DRM client".into())
}

fn drm_scalar(request: u64) -> Attempt {
    let fd = drm_fd();
    let result = scalar(libc::SYS_ioctl, &[reg(fd.into()), request, 0]);
    release_drm_fd(fd);
    result.map(|_| "DRM master request succeeded".into())
}

/// The primary DRM node where one is visible, else fd 0: the filter judges the request
/// number whatever the descriptor is.
fn drm_fd() -> i32 {
    sys::open(DRM_PRIMARY_NODE, libc::O_RDONLY).unwrap_or(0)
}

fn release_drm_fd(fd: i32) {
    if fd != 0 {
        sys::close(fd.into());
    }
}

fn ioctl_fionbio(_: &TechniqueRequest) -> Attempt {
    let fd: i64 = sys::open("/", libc::O_RDONLY | libc::O_DIRECTORY)?.into();
    let on: libc::c_int = 1;
    // SAFETY: `on` is a readable int that outlives the call.
    let result = unsafe { sys::syscall(libc::SYS_ioctl, &[reg(fd), libc::FIONBIO, addr_of(&on)]) };
    sys::close(fd);
    result.map(|_| "made a descriptor non-blocking".into())
}
