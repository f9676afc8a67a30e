#!/usr/bin/env python3
"""Checks that a screendump PNG shows the guest's 2d test picture: four horizontal bands, red,
green, blue, white from top to bottom (guest/linux/init paints them). Standard library only.

  check-bands.py SHOT.png     exit 0 and "bands ok WxH" if every sampled pixel matches
"""
import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {ctype}, interlace {interlace})")
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return w, h, lambda x, y: tuple(rows[y][x * bpp:x * bpp + 3])


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    w, h, px = read_png(sys.argv[1])
    expect = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    bad = []
    for i, colour in enumerate(expect):
        for fy in (0.2, 0.5, 0.8):
            y = int((i + fy) * h / 4)
            for fx in (0.05, 0.5, 0.95):
                x = int(fx * w)
                if px(x, y) != colour:
                    bad.append(f"({x},{y})={px(x, y)} want {colour}")
    if bad:
        print(f"bands wrong {w}x{h}: " + "; ".join(bad[:6]))
        return 1
    print(f"bands ok {w}x{h}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
