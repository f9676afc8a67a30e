//! Guest RAM: one memfd owned by rayvmm and shared with the engine (and, through the
//! vhost-user memory table, with the GPU process).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

/// Guest RAM backed by a sealed-size memfd.
#[derive(Debug)]
pub struct GuestRam {
    fd: OwnedFd,
    mib: u64,
}

impl GuestRam {
    /// Creates `mib` MiB of guest RAM. The size is sealed (no child can shrink it under the
    /// others' mappings, which would turn their accesses into SIGBUS) and the descriptor is
    /// close-on-exec, so it reaches only the children it is explicitly passed to.
    pub fn new(mib: u64) -> std::io::Result<GuestRam> {
        let fd = memfd_create(
            c"rayvmm-guest-ram",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        let bytes = mib
            .checked_mul(1 << 20)
            .and_then(|b| i64::try_from(b).ok())
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        nix::unistd::ftruncate(&fd, bytes)?;
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL,
            ),
        )?;
        Ok(GuestRam { fd, mib })
    }

    /// Size in MiB.
    pub fn mib(&self) -> u64 {
        self.mib
    }
}

impl AsFd for GuestRam {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_has_the_requested_size() {
        let ram = GuestRam::new(64).unwrap();

        let len = nix::sys::stat::fstat(ram.as_fd()).unwrap().st_size;

        assert_eq!(len, 64 << 20);
    }

    #[test]
    fn ram_size_cannot_be_changed() {
        let ram = GuestRam::new(64).unwrap();

        let shrink = nix::unistd::ftruncate(ram.as_fd(), 4096);

        assert_eq!(shrink, Err(nix::errno::Errno::EPERM));
    }
}
