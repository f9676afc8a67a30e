"""Plots as PNG files with the standard library only (matplotlib is not installed on these
machines): a white canvas, lines, dots, boxes and 5x7 text, written as an RGB PNG.

Used by bench_report.py (guest frame rates) and soak_report.py (memory and descriptors).
"""
import struct
import zlib

GREY = (180, 180, 180)
BLACK = (0, 0, 0)

# 5x7 glyphs: seven rows of five bits each (high bit on the left). Lower-case letters are
# drawn as upper-case ones; characters without a glyph are drawn as blanks.
_FONT = {
    "0": "0e 11 13 15 19 11 0e", "1": "04 0c 04 04 04 04 0e", "2": "0e 11 01 02 04 08 1f",
    "3": "1f 02 04 02 01 11 0e", "4": "02 06 0a 12 1f 02 02", "5": "1f 10 1e 01 01 11 0e",
    "6": "06 08 10 1e 11 11 0e", "7": "1f 01 02 04 08 08 08", "8": "0e 11 11 0e 11 11 0e",
    "9": "0e 11 11 0f 01 02 0c", "A": "0e 11 11 1f 11 11 11", "B": "1e 11 11 1e 11 11 1e",
    "C": "0e 11 10 10 10 11 0e", "D": "1c 12 11 11 11 12 1c", "E": "1f 10 10 1e 10 10 1f",
    "F": "1f 10 10 1e 10 10 10", "G": "0e 11 10 17 11 11 0f", "H": "11 11 11 1f 11 11 11",
    "I": "0e 04 04 04 04 04 0e", "J": "07 02 02 02 02 12 0c", "K": "11 12 14 18 14 12 11",
    "L": "10 10 10 10 10 10 1f", "M": "11 1b 15 15 11 11 11", "N": "11 11 19 15 13 11 11",
    "O": "0e 11 11 11 11 11 0e", "P": "1e 11 11 1e 10 10 10", "Q": "0e 11 11 11 15 12 0d",
    "R": "1e 11 11 1e 14 12 11", "S": "0f 10 10 0e 01 01 1e", "T": "1f 04 04 04 04 04 04",
    "U": "11 11 11 11 11 11 0e", "V": "11 11 11 11 11 0a 04", "W": "11 11 11 15 15 15 0a",
    "X": "11 11 0a 04 0a 11 11", "Y": "11 11 11 0a 04 04 04", "Z": "1f 01 02 04 08 10 1f",
    ".": "00 00 00 00 00 0c 0c", ",": "00 00 00 00 0c 04 08", "-": "00 00 00 1f 00 00 00",
    ":": "00 0c 0c 00 0c 0c 00", "/": "00 01 02 04 08 10 00", "(": "02 04 08 08 08 04 02",
    ")": "08 04 02 02 02 04 08", "=": "00 00 1f 00 1f 00 00", "%": "18 19 02 04 08 13 03",
    "+": "00 04 04 1f 04 04 00", "_": "00 00 00 00 00 00 1f", "[": "0e 08 08 08 08 08 0e",
    "]": "0e 02 02 02 02 02 0e", " ": "00 00 00 00 00 00 00",
}
CHAR_W, CHAR_H = 6, 8


class Canvas:
    """An RGB image on a white background; coordinates outside it are ignored."""

    def __init__(self, width, height):
        self.width, self.height = width, height
        self.rows = [[(255, 255, 255)] * width for _ in range(height)]

    def dot(self, x, y, colour, radius=0):
        for py in range(y - radius, y + radius + 1):
            for px in range(x - radius, x + radius + 1):
                if 0 <= px < self.width and 0 <= py < self.height:
                    self.rows[py][px] = colour

    def line(self, a, b, colour):
        steps = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1)
        for s in range(steps + 1):
            self.dot(a[0] + (b[0] - a[0]) * s // steps, a[1] + (b[1] - a[1]) * s // steps,
                     colour)

    def frame(self, left, top, width, height, colour=GREY):
        right, bottom = left + width - 1, top + height - 1
        for a, b in (((left, top), (right, top)), ((left, bottom), (right, bottom)),
                     ((left, top), (left, bottom)), ((right, top), (right, bottom))):
            self.line(a, b, colour)

    def text(self, x, y, words, colour=BLACK):
        """Writes `words` with its top-left corner at (x, y), CHAR_W pixels per character."""
        for i, ch in enumerate(str(words)):
            glyph = _FONT.get(ch.upper(), _FONT[" "]).split()
            for row, bits in enumerate(glyph):
                value = int(bits, 16)
                for col in range(5):
                    if value & (0x10 >> col):
                        self.dot(x + i * CHAR_W + col, y + row, colour)

    def save(self, path):
        """Writes the canvas as an 8-bit RGB PNG."""
        raw = b"".join(b"\0" + bytes(c for px in row for c in px) for row in self.rows)

        def chunk(kind, data):
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header))
            f.write(chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def scale(value, low, high, start, length):
    """The pixel offset of `value` on an axis from `low` (at `start`) to `high` (at
    `start + length - 1`); `high` may be below `low` (a y axis growing upwards)."""
    span = high - low
    if span == 0:
        return start
    return start + round((value - low) * (length - 1) / span)
