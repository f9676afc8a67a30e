#!/usr/bin/env python3
"""Turns scripts/soak.sh's samples into a table (markdown) and a plot (PNG, standard library
only: matplotlib is not installed on these machines).

usage: soak_report.py SOAK.csv OUT.png OUT.md ROUNDS EXIT_CODE DONE_LINE
"""
import csv
import sys

import png_plot

WARM_UP_MINUTES = 3
SERIES = [("rayvmm", (200, 60, 60)), ("qemu", (60, 120, 200)), ("gpu", (40, 150, 60))]


def plot(path, minutes, panels):
    """Two panels (memory, descriptors) of one line per process over the minutes."""
    width, panel_h, margin = 640, 200, 20
    canvas = png_plot.Canvas(width, len(panels) * (panel_h + margin) + margin)
    span = max(len(minutes) - 1, 1)
    for index, series in enumerate(panels):
        top = margin + index * (panel_h + margin)
        values = [v for _, points, _ in series for v in points if v is not None]
        low, high = (min(values), max(values)) if values else (0, 1)
        high = max(high, low + 1)
        canvas.frame(margin, top, width - 2 * margin, panel_h)
        for _, points, colour in series:
            last = None
            for i, v in enumerate(points):
                if v is None:
                    last = None
                    continue
                x = png_plot.scale(i, 0, span, margin, width - 2 * margin)
                y = png_plot.scale(v, high, low, top + 1, panel_h - 2)
                if last:
                    canvas.line(last, (x, y), colour)
                last = (x, y)
    canvas.save(path)


def main():
    csv_path, png_path, md_path, rounds, code, done = sys.argv[1:7]
    rows = list(csv.DictReader(open(csv_path)))
    num = lambda v: int(v) if v not in ("", None) else None
    minutes = [int(r["minute"]) for r in rows]
    rss = [(n, [num(r[f"{n}_rss_kib"]) for r in rows], c) for n, c in SERIES]
    fds = [(n, [num(r[f"{n}_fds"]) for r in rows], c) for n, c in SERIES]
    plot(png_path, minutes, [rss, fds])
    first = next((i for i, m in enumerate(minutes) if m >= WARM_UP_MINUTES), 0)
    lines = [
        f"Soak: {len(rows)} samples (one a minute), {rounds} kmscube+glmark2 rounds, rayvmm "
        f"exit {code}, guest `{done}`. Plot: {png_path} (top: VmRSS, bottom: open descriptors; "
        "red rayvmm, blue QEMU, green ray-gpu).",
        "",
        f"| process | VmRSS minute {minutes[first] if rows else '-'} | VmRSS last | change | "
        "descriptors then | descriptors last |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for (name, r, _), (_, d, _) in zip(rss, fds):
        live = [i for i in range(first, len(rows)) if r[i] is not None]
        if not live:
            lines.append(f"| {name} | - | - | - | - | - |")
            continue
        a, b = live[0], live[-1]
        change = (r[b] - r[a]) / r[a] * 100 if r[a] else 0.0
        lines.append(
            f"| {name} | {r[a] / 1024:.1f} MiB | {r[b] / 1024:.1f} MiB | {change:+.1f}% | "
            f"{d[a]} | {d[b]} |"
        )
    open(md_path, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
