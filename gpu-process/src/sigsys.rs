//! Trap-and-report mode: a SIGSYS handler that tells the supervisor which system call the
//! filter refused, then ends the process.
//!
//! The handler runs in whatever state the refused call left the process in (perhaps inside
//! the allocator), so it allocates nothing and takes no lock: it reads the call from the
//! signal's context, formats the `FromGpu::BlockedSyscall` JSON into a stack buffer, writes it
//! to the tube as one packet with a raw `write`, and calls `_exit`.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use control::messages::BLOCKED_SYSCALL_EXIT_CODE;

/// The tube's descriptor, for the handler.
static TUBE: AtomicI32 = AtomicI32::new(-1);

/// `si_code` of a SIGSYS raised by a seccomp filter's `SECCOMP_RET_TRAP`.
const SYS_SECCOMP: i32 = 1;

/// The head of a SIGSYS `siginfo_t` on Linux (the `_sigsys` member of its union). Fields
/// the handler does not read are here for the layout.
#[repr(C)]
#[allow(dead_code)]
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: *mut libc::c_void,
    syscall: i32,
    arch: u32,
}

/// Installs the handler; `tube` is where reports go.
pub fn install(tube: RawFd) -> std::io::Result<()> {
    TUBE.store(tube, Ordering::SeqCst);
    // SAFETY: sigaction is plain data; all-zero is an empty action to fill in.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_sigsys as *const () as libc::sighandler_t;
    action.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `action.sa_mask` is a valid sigset_t to fill; sigaction reads `action`, which
    // names a handler that is async-signal-safe (see `on_sigsys`).
    let rc = unsafe {
        libc::sigfillset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

extern "C" fn on_sigsys(_signal: i32, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for a SA_SIGINFO handler; SigsysInfo
    // describes the leading fields of its SIGSYS layout.
    let info = unsafe { &*(info as *const SigsysInfo) };
    let nr = if info.code == SYS_SECCOMP {
        i64::from(info.syscall)
    } else {
        -1
    };
    // SAFETY: for a SA_SIGINFO handler the third argument is the interrupted ucontext_t.
    let args = unsafe { syscall_args(&*(context as *const libc::ucontext_t)) };
    let mut buf = [0u8; 512];
    let len = format_blocked(&mut buf, nr, &args);
    // SAFETY: write and _exit are async-signal-safe; `buf[..len]` is initialised.
    unsafe {
        libc::write(TUBE.load(Ordering::SeqCst), buf.as_ptr().cast(), len);
        libc::_exit(BLOCKED_SYSCALL_EXIT_CODE);
    }
}

/// The six argument registers of the refused call (x86_64: rdi rsi rdx r10 r8 r9).
#[cfg(target_arch = "x86_64")]
fn syscall_args(context: &libc::ucontext_t) -> [u64; 6] {
    let g = &context.uc_mcontext.gregs;
    [
        libc::REG_RDI,
        libc::REG_RSI,
        libc::REG_RDX,
        libc::REG_R10,
        libc::REG_R8,
        libc::REG_R9,
    ]
    .map(|r| g[r as usize] as u64)
}

/// Writes `{"BlockedSyscall":{"nr":N,"args":[A,...]}}`, serde's form of
/// `FromGpu::BlockedSyscall`, into `buf` without allocating; returns its length.
fn format_blocked(buf: &mut [u8; 512], nr: i64, args: &[u64; 6]) -> usize {
    let mut out = Cursor { buf, len: 0 };
    out.put(b"{\"BlockedSyscall\":{\"nr\":");
    if nr < 0 {
        out.put(b"-");
    }
    out.number(nr.unsigned_abs());
    out.put(b",\"args\":[");
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        out.number(*arg);
    }
    out.put(b"]}}");
    out.len
}

/// A bounded writer into a stack buffer (the output above is at most about 200 bytes).
struct Cursor<'a> {
    buf: &'a mut [u8; 512],
    len: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }

    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::messages::{BlockedSyscall, FromGpu};

    #[test]
    fn report_is_what_serde_reads_as_blocked_syscall() {
        let args = [0, 1, u64::MAX, 42, 7, 1 << 40];
        let mut buf = [0u8; 512];

        let len = format_blocked(&mut buf, 101, &args);

        let msg: FromGpu = serde_json::from_slice(&buf[..len]).unwrap();
        let FromGpu::BlockedSyscall(blocked) = msg else {
            panic!("not a BlockedSyscall: {msg:?}")
        };
        assert_eq!(blocked, BlockedSyscall { nr: 101, args });
    }

    #[test]
    fn negative_syscall_number_is_written_with_its_sign() {
        let mut buf = [0u8; 512];

        let len = format_blocked(&mut buf, -1, &[0; 6]);

        let msg: FromGpu = serde_json::from_slice(&buf[..len]).unwrap();
        assert!(matches!(
            msg,
            FromGpu::BlockedSyscall(BlockedSyscall { nr: -1, .. })
        ));
    }
}
