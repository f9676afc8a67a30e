#!/usr/bin/env python3
"""Generates seccomp/src/generated/x86_64.rs: the x86_64 syscall table and symbolic constants.

The values come from the system headers, never from hand-typed tables:
  * syscalls: every `#define __NR_<name> <number>` in asm/unistd_64.h;
  * constants: every object-like, all-caps macro that the header groups below define,
    kept only if gcc accepts it as an integer constant expression, and valued by compiling
    and running a generated C program (so `_IOWR(...)` ioctl numbers are computed by the
    same compiler and headers that C programs use).

Header groups are separate translation units because glibc and kernel uapi headers clash
(struct termios, if.h ...). A name defined by several groups keeps the first group's value;
a name whose value differs between groups is reported.

Usage:
  generate_constants.py            rewrite the Rust file
  generate_constants.py --check    exit 1 if the committed file is out of date

Needs gcc, linux-libc-dev and libdrm-dev (scripts/setup-host.sh installs them). The crate
build itself needs none of this: the output is committed.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "..", "src", "generated", "x86_64.rs")
UNISTD = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
SUPPLEMENT = os.path.join(HERE, "supplement.h")

# Each group is one translation unit: (name, extra gcc arguments, headers).
GROUPS = [
    (
        "libc",
        [],
        [
            "errno.h", "fcntl.h", "signal.h", "sched.h", "sys/mman.h", "sys/socket.h",
            "sys/resource.h", "sys/stat.h", "sys/types.h", "sys/prctl.h", "sys/ioctl.h",
            "sys/eventfd.h", "sys/random.h", "sys/ipc.h", "sys/shm.h", "sys/msg.h",
            "sys/sem.h", "sys/wait.h", "sys/epoll.h", "sys/inotify.h", "sys/timerfd.h",
            "sys/signalfd.h", "sys/ptrace.h", "sys/personality.h", "sys/file.h",
            "sys/xattr.h", "sys/quota.h", "sys/mount.h", "sys/reboot.h", "sys/un.h",
            "net/if.h", "netinet/in.h", "netinet/tcp.h", "poll.h", "time.h", "unistd.h",
            "linux/futex.h", "linux/sockios.h", "linux/seccomp.h", "linux/userfaultfd.h",
            "linux/dma-buf.h", "linux/udmabuf.h", "linux/io_uring.h", "linux/random.h",
            "linux/net.h", "linux/netlink.h", "linux/if_packet.h", "linux/membarrier.h",
            "linux/close_range.h", "linux/capability.h", "linux/keyctl.h",
            "linux/perf_event.h", "linux/bpf.h", "linux/loop.h", "linux/fd.h",
            "linux/serial.h", "linux/sync_file.h", "linux/vt.h", "linux/kd.h",
            "asm/prctl.h",
        ],
    ),
    (
        "kernel",
        ["-I/usr/include/libdrm"],
        [
            "linux/types.h", "linux/fs.h", "linux/fscrypt.h", "linux/kvm.h", "linux/vfio.h",
            "linux/vhost.h", "linux/if_tun.h", "linux/sched.h", "linux/mman.h",
            "linux/memfd.h", "asm/termbits.h", "asm/ioctls.h", "linux/android/binder.h",
            "drm.h", "drm_mode.h", "virtgpu_drm.h", "i915_drm.h", "amdgpu_drm.h",
            "nouveau_drm.h", "msm_drm.h", "radeon_drm.h", "vc4_drm.h", "tegra_drm.h",
            "vmwgfx_drm.h", "qxl_drm.h",
        ],
    ),
]

NAME_RE = re.compile(r"^#define ([A-Z][A-Z0-9_]*)[ \t]")
LINE_RE = re.compile(r"check\.c:(\d+):\d+:")


def run(args, **kwargs):
    return subprocess.run(args, check=False, capture_output=True, text=True, **kwargs)


def prelude(headers):
    lines = ["#define _GNU_SOURCE 1"]
    lines += ["#include <%s>" % h for h in headers]
    lines.append('#include "%s"' % SUPPLEMENT)
    return "\n".join(lines) + "\n"


def macro_names(workdir, extra, headers):
    src = os.path.join(workdir, "names.c")
    with open(src, "w", encoding="utf-8") as f:
        f.write(prelude(headers))
    out = run(["gcc", "-dM", "-E", *extra, src])
    if out.returncode != 0:
        sys.exit("gcc -dM -E failed:\n" + out.stderr)
    names = set()
    for line in out.stdout.splitlines():
        m = NAME_RE.match(line)
        if m:
            names.add(m.group(1))
    return sorted(names)


def integer_constants(workdir, extra, headers, names):
    """Drops every name gcc does not accept as an integer constant expression."""
    src = os.path.join(workdir, "check.c")
    candidates = list(names)
    while True:
        first_line = prelude(headers).count("\n") + 1
        body = "".join(
            "enum { ray_check_%d = (((%s) | 0) ? 1 : 1) };\n" % (i, n) for i, n in enumerate(candidates)
        )
        with open(src, "w", encoding="utf-8") as f:
            f.write(prelude(headers) + body)
        out = run(["gcc", "-fsyntax-only", "-pedantic-errors", "-w", *extra, src])
        if out.returncode == 0:
            return candidates
        bad = set()
        # Errors inside a macro are reported at its definition, with a note naming the
        # line of check.c that expanded it: every check.c line mentioned is a culprit.
        for m in LINE_RE.finditer(out.stderr):
            if int(m.group(1)) >= first_line:
                bad.add(int(m.group(1)) - first_line)
        if not bad:
            sys.exit("gcc failed without a usable error line:\n" + out.stderr[:4000])
        candidates = [n for i, n in enumerate(candidates) if i not in bad]


def evaluate(workdir, extra, headers, names):
    src = os.path.join(workdir, "eval.c")
    exe = os.path.join(workdir, "eval")
    body = "#include <stdio.h>\nint main(void) {\n"
    body += "".join(
        '  printf("%%s %%llu\\n", "%s", (unsigned long long)(%s));\n' % (n, n) for n in names
    )
    body += "  return 0;\n}\n"
    with open(src, "w", encoding="utf-8") as f:
        f.write(prelude(headers) + body)
    out = run(["gcc", "-w", *extra, "-o", exe, src])
    if out.returncode != 0:
        sys.exit("compiling the evaluator failed:\n" + out.stderr[:4000])
    out = run([exe])
    values = {}
    for line in out.stdout.splitlines():
        name, value = line.split()
        values[name] = int(value)
    return values


def syscalls():
    table = {}
    with open(UNISTD, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#define __NR_([a-z0-9_]+)\s+([0-9]+)\s*$", line)
            if m:
                table[m.group(1)] = int(m.group(2))
    return table


def package_versions():
    out = run(["dpkg-query", "-W", "-f=${Package} ${Version}\\n",
               "linux-libc-dev", "libdrm-dev", "libc6-dev"])
    return out.stdout.strip().splitlines()


def rust_source():
    constants = {}
    with tempfile.TemporaryDirectory() as workdir:
        for group, extra, headers in GROUPS:
            names = macro_names(workdir, extra, headers)
            names = integer_constants(workdir, extra, headers, names)
            for name, value in evaluate(workdir, extra, headers, names).items():
                if name in constants and constants[name] != value:
                    print("note: %s differs in group %s (%#x, kept %#x)"
                          % (name, group, value, constants[name]), file=sys.stderr)
                constants.setdefault(name, value)
    calls = syscalls()
    gcc = run(["gcc", "--version"]).stdout.splitlines()[0]
    out = []
    out.append("// @generated by seccomp/gen/generate_constants.py: do not edit by hand.")
    out.append("// Regenerate with `python3 seccomp/gen/generate_constants.py`.")
    out.append("//")
    out.append("// Syscalls: `__NR_*` of %s." % UNISTD)
    out.append("// Constants: integer-valued all-caps macros of these headers, evaluated by %s:" % gcc)
    for group, extra, headers in GROUPS:
        out.append("//   %s: %s" % (group, " ".join(headers)))
    out.append("//   plus seccomp/gen/supplement.h (values newer than the installed headers).")
    out.append("// Packages: %s." % ", ".join(package_versions()))
    out.append("")
    out.append("/// x86_64 system calls, `(name, number)`, sorted by name.")
    out.append("pub(crate) static SYSCALLS: &[(&str, i64)] = &[")
    for name in sorted(calls):
        out.append('    ("%s", %d),' % (name, calls[name]))
    out.append("];")
    out.append("")
    out.append("/// Symbolic constants, `(name, value)`, sorted by name; negative values are")
    out.append("/// stored as their 64-bit two's complement, as minijail does.")
    out.append("pub(crate) static CONSTANTS: &[(&str, u64)] = &[")
    for name in sorted(constants):
        out.append('    ("%s", %#x),' % (name, constants[name]))
    out.append("];")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed file differs from a fresh generation")
    args = parser.parse_args()
    source = rust_source()
    if args.check:
        with open(OUTPUT, encoding="utf-8") as f:
            if f.read() != source:
                sys.exit("%s is out of date: run %s" % (OUTPUT, sys.argv[0]))
        return
    os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(source)
    print("wrote %s" % os.path.normpath(OUTPUT))


if __name__ == "__main__":
    main()
