//! Choosing between hardware virtualization (KVM) and QEMU's TCG.
//!
//! `/dev/kvm` is not enough: on PVM hosts it answers but cannot run a stock kernel
//! (../shared/FACTS.md). KVM is chosen only when the CPU advertises VMX or SVM *and* a tiny
//! test VM (one `hlt` in real mode) runs to completion.

use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

/// How long the test VM may take before KVM is declared unusable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The accelerator an engine runs vCPUs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    /// Hardware virtualization through /dev/kvm.
    Kvm,
    /// QEMU's dynamic binary translator.
    Tcg,
}

impl fmt::Display for Accelerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
        })
    }
}

/// The chosen accelerator and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceleratorChoice {
    pub accelerator: Accelerator,
    pub reason: String,
}

/// Whether `cpuinfo` (the text of /proc/cpuinfo) lists the `vmx` or `svm` CPU flag.
pub fn has_hardware_virtualization(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .any(|flag| flag == "vmx" || flag == "svm")
}

/// Picks KVM where hardware virtualization really works, TCG otherwise.
pub fn choose() -> AcceleratorChoice {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if !has_hardware_virtualization(&cpuinfo) {
        return tcg("no vmx/svm CPU flag (any /dev/kvm here is not hardware virtualization)");
    }
    match probe_kvm_with_timeout() {
        Ok(()) => AcceleratorChoice {
            accelerator: Accelerator::Kvm,
            reason: "vmx/svm present and a test VM ran".to_string(),
        },
        Err(e) => tcg(&format!("vmx/svm present but the KVM test VM failed: {e}")),
    }
}

fn tcg(reason: &str) -> AcceleratorChoice {
    AcceleratorChoice {
        accelerator: Accelerator::Tcg,
        reason: reason.to_string(),
    }
}

fn probe_kvm_with_timeout() -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    // A wedged KVM_RUN must not wedge rayvmm: the probe runs on its own thread, which is
    // abandoned (and dies with the process) if it does not answer in time.
    std::thread::Builder::new()
        .name("kvm-probe".into())
        .spawn(move || {
            let _ = tx.send(probe_kvm());
        })
        .map_err(|e| e.to_string())?;
    rx.recv_timeout(PROBE_TIMEOUT)
        .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?
}

/// Runs one `hlt` instruction at 0x1000 in real mode and expects a HLT exit.
fn probe_kvm() -> Result<(), String> {
    use kvm_bindings::kvm_userspace_memory_region;
    use kvm_ioctls::{Kvm, VcpuExit};

    const GUEST_ADDR: u64 = 0x1000;
    const SIZE: usize = 0x1000;
    let kvm = Kvm::new().map_err(|e| format!("open /dev/kvm: {e}"))?;
    let vm = kvm.create_vm().map_err(|e| format!("create VM: {e}"))?;
    // SAFETY: an anonymous private mapping with no address hint; the result is checked.
    let host = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
            -1,
            0,
        )
    };
    if host == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    let result = (|| {
        // SAFETY: `host` is a fresh writable mapping of SIZE bytes; one byte is written.
        unsafe { *(host as *mut u8) = 0xf4 }; // hlt
        let region = kvm_userspace_memory_region {
            slot: 0,
            guest_phys_addr: GUEST_ADDR,
            memory_size: SIZE as u64,
            userspace_addr: host as u64,
            flags: 0,
        };
        // SAFETY: the region points at our mapping, which outlives the VM (the VM is dropped
        // at the end of this closure, before the munmap below).
        unsafe { vm.set_user_memory_region(region) }.map_err(|e| format!("memory: {e}"))?;
        let mut vcpu = vm.create_vcpu(0).map_err(|e| format!("vCPU: {e}"))?;
        let mut sregs = vcpu.get_sregs().map_err(|e| format!("sregs: {e}"))?;
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        vcpu.set_sregs(&sregs).map_err(|e| format!("sregs: {e}"))?;
        let mut regs = vcpu.get_regs().map_err(|e| format!("regs: {e}"))?;
        regs.rip = GUEST_ADDR;
        regs.rflags = 2;
        vcpu.set_regs(&regs).map_err(|e| format!("regs: {e}"))?;
        match vcpu.run().map_err(|e| format!("KVM_RUN: {e}"))? {
            VcpuExit::Hlt => Ok(()),
            other => Err(format!("unexpected exit {other:?}")),
        }
    })();
    drop(vm);
    // SAFETY: unmapping the mapping made above, no longer referenced by anything.
    unsafe { libc::munmap(host, SIZE) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmx_flag_counts_as_hardware_virtualization() {
        let cpuinfo = "processor\t: 0\nflags\t\t: fpu vme vmx sse\n";

        assert!(has_hardware_virtualization(cpuinfo));
    }

    #[test]
    fn flags_without_vmx_or_svm_mean_no_hardware_virtualization() {
        let cpuinfo = "processor\t: 0\nflags\t\t: fpu vme hypervisor sse\nvmx flags\t: ept\n";

        assert!(!has_hardware_virtualization(cpuinfo));
    }
}
