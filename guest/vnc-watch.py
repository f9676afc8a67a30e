#!/usr/bin/env python3
"""Watches a VNC server as a fast viewer would: asks for incremental updates back to back,
reads their pixels without drawing them, and prints how many updates arrived per second (the
rate the server delivers, not what a drawing viewer would reach). RFB 3.8, security None,
Raw encoding; Python's standard library only.

    vnc-watch.py HOST PORT SECONDS

Stops after SECONDS, at SIGTERM or SIGINT, or when the server goes, and then prints one line:
vnc_updates=N vnc_bytes=B vnc_seconds=S vnc_updates_per_s=R vnc_frames=F vnc_frame_seconds=T
vnc_frames_per_s=P
where the frames are the updates that carried pixels, and T runs from the first of them to the
last: the rate while the screen changes, without the wait before the first change and after
the last (a guest that stops drawing and powers off).
"""
import signal
import socket
import struct
import sys
import time


class Stop(Exception):
    pass


def stop(*_):
    raise Stop()


def read_exact(sock, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            raise Stop()
        got += k
    return buf


def handshake(sock):
    read_exact(sock, 12)
    sock.sendall(b"RFB 003.008\n")
    count = read_exact(sock, 1)[0]
    types = read_exact(sock, count)
    if 1 not in types:
        sys.exit(f"server offers no security type None: {list(types)}")
    sock.sendall(b"\x01")
    if struct.unpack(">I", read_exact(sock, 4))[0] != 0:
        sys.exit("security handshake failed")
    sock.sendall(b"\x01")
    width, height, bpp = struct.unpack(">HHB", read_exact(sock, 5))
    read_exact(sock, 15)
    read_exact(sock, struct.unpack(">I", read_exact(sock, 4))[0])
    # Raw, DesktopSize.
    sock.sendall(struct.pack(">BxHii", 2, 2, 0, -223))
    return width, height, bpp // 8


def read_update(sock, bytes_per_pixel):
    _, _, rects = struct.unpack(">BBH", read_exact(sock, 4))
    size, total = None, 0
    for _ in range(rects):
        _, _, w, h, encoding = struct.unpack(">HHHHi", read_exact(sock, 12))
        if encoding == 0:
            total += len(read_exact(sock, w * h * bytes_per_pixel))
        elif encoding == -223:
            size = (w, h)
        else:
            sys.exit(f"unexpected encoding {encoding}")
    return size, total


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sock = socket.create_connection((host, port))
    width, height, bytes_per_pixel = handshake(sock)
    updates = total = frames = 0
    first = last = None
    incremental = 0
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            sock.sendall(struct.pack(">BBHHHH", 3, incremental, 0, 0, width, height))
            size, received = read_update(sock, bytes_per_pixel)
            incremental = 0 if size else 1
            width, height = size or (width, height)
            updates += 1
            total += received
            if received:
                frames += 1
                last = time.monotonic()
                first = first or last
    except (Stop, OSError):
        pass
    elapsed = time.monotonic() - start
    changing = (last - first) if frames > 1 else 0.0
    # Frames after the first, over the time they took.
    rate = (frames - 1) / changing if changing > 0 else 0.0
    print(f"vnc_updates={updates} vnc_bytes={total} vnc_seconds={elapsed:.1f} "
          f"vnc_updates_per_s={updates / elapsed:.1f} vnc_frames={frames} "
          f"vnc_frame_seconds={changing:.1f} vnc_frames_per_s={rate:.1f}", flush=True)


if __name__ == "__main__":
    main()
