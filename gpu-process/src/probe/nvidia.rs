//! What a process rendering on an NVIDIA GPU could reach beyond its one GPU: other GPUs' nodes,
//! NVIDIA's profiling and capability nodes, the driver's /proc files, and resource-manager
//! requests the policy does not list.

use control::probe::TechniqueRequest;

use super::sys::{self, open_reached, reg, scalar, Attempt, Technique};

pub(super) const TECHNIQUES: &[(&str, Technique)] = &[
    ("open_unbound_nvidia_gpu", open_unbound_nvidia_gpu),
    ("open_nvidia_uvm_tools", open_nvidia_uvm_tools),
    ("open_nvidia_caps", open_nvidia_caps),
    ("open_proc_driver_nvidia", open_proc_driver_nvidia),
    ("nvidia_ioctl_off_the_list", nvidia_ioctl_off_the_list),
    ("nvidia_ioctl_on_the_list", nvidia_ioctl_on_the_list),
];

/// NVIDIA's control node, bound beside the GPU's node.
const CONTROL_NODE: &str = "/dev/nvidiactl";
/// `_IOWR('F', 0x27, 0x38)`: NV_ESC_RM_ALLOC_MEMORY, which no policy lists.
const RM_ALLOC_MEMORY: u64 = 0xc038_4627;
/// `_IOWR('F', 0x2a, 0x20)`: NV_ESC_RM_CONTROL, which gpu_nvidia.policy lists.
const RM_CONTROL: u64 = 0xc020_462a;

fn open_unbound_nvidia_gpu(_: &TechniqueRequest) -> Attempt {
    open_reached("/dev/nvidia1", libc::O_RDWR | libc::O_CLOEXEC)
}

fn open_nvidia_uvm_tools(_: &TechniqueRequest) -> Attempt {
    open_reached("/dev/nvidia-uvm-tools", libc::O_RDWR | libc::O_CLOEXEC)
}

fn open_nvidia_caps(_: &TechniqueRequest) -> Attempt {
    open_reached(
        "/dev/nvidia-caps/nvidia-cap1",
        libc::O_RDONLY | libc::O_CLOEXEC,
    )
}

fn open_proc_driver_nvidia(_: &TechniqueRequest) -> Attempt {
    open_reached(
        "/proc/driver/nvidia/params",
        libc::O_RDONLY | libc::O_CLOEXEC,
    )
}

/// Opens the control node (the policy allows it) and sends a request the policy does not
/// list, with no payload: the filter decides before the driver reads anything.
fn nvidia_ioctl_off_the_list(_: &TechniqueRequest) -> Attempt {
    rm_request(RM_ALLOC_MEMORY)
}

/// The same with a listed request and a null payload: the filter lets it through and the
/// driver refuses the pointer.
fn nvidia_ioctl_on_the_list(_: &TechniqueRequest) -> Attempt {
    rm_request(RM_CONTROL)
}

fn rm_request(request: u64) -> Attempt {
    let fd = sys::open(CONTROL_NODE, libc::O_RDWR | libc::O_CLOEXEC)?;
    let result = scalar(libc::SYS_ioctl, &[reg(fd.into()), request, 0]);
    sys::close(fd.into());
    result.map(|_| format!("ioctl {request:#x} on {CONTROL_NODE} succeeded"))
}
