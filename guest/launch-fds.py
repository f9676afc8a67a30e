#!/usr/bin/env python3
"""Starts QEMU the way rayvmm does: guest RAM in a memfd made by the parent, and the
vhost-user channel a socketpair whose ends are inherited by QEMU and by the backend.

  launch-fds.py --mem-size 1G --backend /usr/lib/qemu/vhost-user-gpu --backend-pidfile F \
      -- qemu-system-x86_64 ... \
         -object memory-backend-file,id=mem,size=1G,mem-path=/proc/self/fd/@MEMFD@,share=on \
         -machine q35,memory-backend=mem \
         -chardev socket,id=vgpu,fd=@VGPU_FD@ -device vhost-user-gpu-pci,chardev=vgpu

@MEMFD@ and @VGPU_FD@ in QEMU's arguments are replaced by the descriptor numbers. The backend
is started as BACKEND --fd=N with the other end. This process then execs QEMU (same pid).
"""
import argparse
import os
import socket
import subprocess
import sys


def parse_size(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s[-1].upper() in units:
        return int(s[:-1]) * units[s[-1].upper()]
    return int(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mem-size", required=True)
    ap.add_argument("--backend", required=True)
    ap.add_argument("--backend-pidfile")
    ap.add_argument("qemu", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    qemu = a.qemu[1:] if a.qemu and a.qemu[0] == "--" else a.qemu

    memfd = os.memfd_create("rayos-guest-ram", os.MFD_CLOEXEC)
    os.ftruncate(memfd, parse_size(a.mem_size))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    backend = subprocess.Popen([a.backend, f"--fd={theirs.fileno()}"], pass_fds=[theirs.fileno()])
    if a.backend_pidfile:
        with open(a.backend_pidfile, "w") as f:
            f.write(f"{backend.pid}\n")
    theirs.close()

    os.set_inheritable(memfd, True)
    os.set_inheritable(ours.fileno(), True)
    argv = [x.replace("@MEMFD@", str(memfd)).replace("@VGPU_FD@", str(ours.fileno())) for x in qemu]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main())
