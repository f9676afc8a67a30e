#!/usr/bin/env python3
"""Saves the QEMU window of an X display (Xvfb) as a PNG: the screendump for GL consoles.

QEMU's QMP screendump answers "no surface" for a virgl scanout shown by -display sdl,gl=on (the
picture lives in a GL texture, not a DisplaySurface), so for the 'gl' reference run we grab
what the window shows instead: xwininfo finds the window, `xwd -root` dumps the screen (a dump
of the window itself comes out black: GLX draws it through the root), and this crops the window
out and converts the XWD (ZPixmap, 24/32 bpp TrueColor) to PNG with the standard library only.
The Xvfb screen must be larger than the window (SDL centres it), or the grab is clipped.

  xshot.py OUT.png            (uses $DISPLAY; XSHOT_DEBUG=1 also prints the window tree and
                               saves the whole screen as OUT.png.root.png)
"""
import os
import re
import struct
import subprocess
import sys
import zlib


def find_qemu_window():
    """(id, width, height, abs_x, abs_y) of the largest window whose name has "QEMU"."""
    tree = subprocess.run(["xwininfo", "-root", "-tree"], check=True, capture_output=True, text=True).stdout
    best = None
    pat = r'^\s*(0x[0-9a-f]+) "([^"]*)".*?(\d+)x(\d+)[+-]-?\d+[+-]-?\d+\s+\+(-?\d+)\+(-?\d+)'
    for m in re.finditer(pat, tree, re.M):
        wid, name = m.group(1), m.group(2)
        w, h, x, y = (int(m.group(i)) for i in range(3, 7))
        if "QEMU" in name and (best is None or w * h > best[1] * best[2]):
            best = (wid, w, h, x, y)
    return best


def xwd_to_png(xwd, out, crop=None):
    hdr = struct.unpack(">25I", xwd[:100])
    (header_size, _ver, fmt, _depth, width, height, _xoff, byte_order, _bu, _bbo, _pad, bpp,
     bpl, _vclass, rmask, gmask, bmask, _bpr, _cmap, ncolors) = hdr[:20]
    if fmt != 2 or bpp not in (24, 32):
        raise ValueError(f"unsupported XWD: format {fmt}, {bpp} bpp")
    data = xwd[header_size + 12 * ncolors:]
    shifts = [(m, (m & -m).bit_length() - 1) for m in (rmask, gmask, bmask)]
    endian = "<" if byte_order == 0 else ">"
    step = bpp // 8
    x0, y0 = 0, 0
    if crop:
        cx, cy, cw, ch = crop
        x0, y0 = max(cx, 0), max(cy, 0)
        width, height = min(cw, width - x0), min(ch, height - y0)
    rows = []
    for y in range(y0, y0 + height):
        line = data[y * bpl + x0 * step:y * bpl + (x0 + width) * step]
        row = bytearray(b"\0")  # PNG filter type 0
        if bpp == 32:
            px = struct.unpack(f"{endian}{width}I", line)
        else:
            px = [int.from_bytes(line[i:i + 3], "little" if endian == "<" else "big") for i in range(0, len(line), 3)]
        for p in px:
            row += bytes(((p & m) >> s) & 0xFF for m, s in shifts)
        rows.append(bytes(row))

    def chunk(kind, body):
        c = struct.pack(">I", len(body)) + kind + body
        return c + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b"")
    with open(out, "wb") as f:
        f.write(png)
    return width, height


def main():
    if len(sys.argv) != 2 or "DISPLAY" not in os.environ:
        print(__doc__, file=sys.stderr)
        return 2
    if os.environ.get("XSHOT_DEBUG"):
        print(subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True).stdout, file=sys.stderr)
        xwd_to_png(subprocess.run(["xwd", "-silent", "-root"], check=True, capture_output=True).stdout, sys.argv[1] + ".root.png")
    win = find_qemu_window()
    xwd = subprocess.run(["xwd", "-silent", "-root"], check=True, capture_output=True).stdout
    crop = (win[3], win[4], win[1], win[2]) if win else None
    w, h = xwd_to_png(xwd, sys.argv[1], crop)
    print(f"X window {win[0] if win else 'root'} ({w}x{h}) saved to {sys.argv[1]}")
    if win and (w, h) != (win[1], win[2]):
        print(f"warning: window is {win[1]}x{win[2]}, clipped by the screen", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
