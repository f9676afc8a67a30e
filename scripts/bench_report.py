#!/usr/bin/env python3
"""Statistics, markdown table, JSON and plot for scripts/bench.sh (standard library only).

Reads OUT/runs.tsv (one row per guest run, written by bench.sh) and OUT/commands.tsv (variant,
command line), prints the markdown report on stdout and writes OUT/bench.md, OUT/bench.json and
OUT/bench.png.
"""
import argparse
import csv
import json
import os
import statistics
import sys

import png_plot

VARIANTS = ["jailed-kmscube", "in-process-kmscube", "jailed-glmark2", "in-process-glmark2"]
WORKLOADS = {"kmscube": "kmscube_fps", "glmark2": "glmark2_score"}


def label(variant):
    side, workload = variant.rsplit("-", 1)
    return f"{side} {workload}"


def fmt(v, metric):
    if v is None:
        return "-"
    if metric == "glmark2_score":
        return f"{v:.0f}" if v == int(v) else f"{v:.1f}"
    return f"{v:.1f}"


def plot(path, runs, variants, ratios, rounds):
    """One panel per workload: every run's value as a dot (labelled with its round) and the
    median as a bar, jailed beside in-process, the ratio in the title."""
    panel_w, panel_h, margin, top = 320, 240, 50, 40
    canvas = png_plot.Canvas(len(WORKLOADS) * (panel_w + margin) + margin, panel_h + top + 50)
    canvas.text(margin, 8, f"guest benchmark, {rounds} interleaved round(s): "
                "dot = run (round number), bar = median")
    for index, (workload, metric) in enumerate(WORKLOADS.items()):
        left = margin + index * (panel_w + margin)
        names = [f"jailed-{workload}", f"in-process-{workload}"]
        values = [r["value"] for r in runs if r["variant"] in names and r["ok"]]
        high = max(values) * 1.1 if values else 1.0
        canvas.frame(left, top, panel_w, panel_h)
        q = ratios[workload]["jailed_over_in_process"]
        title = f"{workload}: jailed/in-process {q:.2f}" if q is not None else workload
        canvas.text(left, top - 12, title)
        canvas.text(left - 44, top - 3, fmt(high, metric))
        canvas.text(left - 12, top + panel_h - 7, "0")
        canvas.text(left + 4, top + panel_h + 22, metric)
        for x_index, name in enumerate(names):
            x = left + panel_w * (2 * x_index + 1) // 4
            canvas.text(x - 3 * png_plot.CHAR_W * len(label(name)) // 6, top + panel_h + 6,
                        label(name))
            median = variants[name]["median"]
            if median is not None:
                y = png_plot.scale(median, high, 0, top + 1, panel_h - 2)
                canvas.line((x - 30, y), (x + 30, y), png_plot.BLACK)
                canvas.text(x + 34, y - 3, fmt(median, metric))
            for run in runs:
                if run["variant"] == name and run["ok"]:
                    y = png_plot.scale(run["value"], high, 0, top + 1, panel_h - 2)
                    dot_x = x - 52 + 10 * run["round"]
                    canvas.dot(dot_x, y, (40, 90, 200), radius=2)
                    canvas.text(dot_x - 2, y - 12, run["round"])
    canvas.save(path)


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--commands", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--glmark2-duration", type=int, required=True)
    ap.add_argument("--glmark2-scenes", required=True)
    ap.add_argument("--load-start", required=True)
    ap.add_argument("--load-end", required=True)
    ap.add_argument("--started", required=True)
    a = ap.parse_args()

    runs = []
    for row in read_tsv(a.runs):
        value = float(row["value"]) if row["value"] else None
        runs.append({
            "variant": row["variant"],
            "round": int(row["round"]),
            "position_in_round": int(row["position"]),
            "metric": row["metric"],
            "value": value,
            "ok": value is not None,
            "exit_code": int(row["rc"]),
            "guest_status": row["status"],
            "wall_s": float(row["wall_s"]),
            "log": row["log"],
            "command": row["command"],
        })
    commands = {r[0]: r[1] for r in csv.reader(open(a.commands, newline=""), delimiter="\t",
                                                  quoting=csv.QUOTE_NONE)}

    variants = {}
    for v in VARIANTS:
        mine = [r for r in runs if r["variant"] == v]
        metric = WORKLOADS[v.rsplit("-", 1)[1]]
        vals = [r["value"] for r in mine if r["ok"]]
        med = statistics.median(vals) if vals else None
        variants[v] = {
            "metric": metric,
            "values": [r["value"] for r in mine],  # by round, null where the run failed
            "n": len(vals),
            "failed": len(mine) - len(vals),
            "median": med,
            "min": min(vals) if vals else None,
            "max": max(vals) if vals else None,
            # (max - min) / median
            "relative_spread": (max(vals) - min(vals)) / med if vals and med else None,
            "command": commands.get(v, ""),
        }

    ratios = {}
    for w, metric in WORKLOADS.items():
        j, i = variants[f"jailed-{w}"]["median"], variants[f"in-process-{w}"]["median"]
        ratios[w] = {
            "metric": metric,
            "jailed_median": j,
            "in_process_median": i,
            "jailed_over_in_process": (j / i) if j is not None and i else None,
        }

    # --- Markdown -----------------------------------------------------------------------------
    md = []
    md.append("## Guest frame rates: jailed GPU (rayvmm + ray-gpu) vs QEMU in-process virgl")
    md.append("")
    md.append(f"{a.rounds} round(s), interleaved (order reversed every other round); kmscube "
              f"{a.frames} frames; glmark2 `{a.glmark2_scenes}` at {a.glmark2_duration} s per "
              f"scene. Started {a.started}.")
    md.append("")
    md.append("| variant | metric | n | failed | median | min-max | runs (by round) |")
    md.append("|---|---|---:|---:|---:|---|---|")
    for v in VARIANTS:
        s = variants[v]
        m = s["metric"]
        rng = f"{fmt(s['min'], m)}-{fmt(s['max'], m)}" if s["n"] else "-"
        per = ", ".join(fmt(x, m) if x is not None else "fail" for x in s["values"])
        md.append(f"| {label(v)} | {m} | {s['n']} | {s['failed']} | {fmt(s['median'], m)} "
                  f"| {rng} | {per} |")
    md.append("")
    md.append("| workload | metric | jailed median | in-process median | jailed / in-process |")
    md.append("|---|---|---:|---:|---:|")
    for w, r in ratios.items():
        q = r["jailed_over_in_process"]
        md.append(f"| {w} | {r['metric']} | {fmt(r['jailed_median'], r['metric'])} "
                  f"| {fmt(r['in_process_median'], r['metric'])} "
                  f"| {f'{q:.2f}' if q is not None else '-'} |")
    md.append("")
    md.append(f"Load average (1/5/15 min): {a.load_start} at start, {a.load_end} at end.")
    md.append("")
    md.append("Command lines (round 1; the in-process `--log` path names the round):")
    md.append("")
    md.append("```sh")
    for v in VARIANTS:
        md.append(f"# {label(v)}")
        md.append(variants[v]["command"])
    md.append("```")
    md.append("")
    md.append(f"Every run's value: `{os.path.join(a.out, 'bench.json')}`; "
              f"logs: `{os.path.join(a.out, 'logs')}/<variant>-<round>.log`.")

    # --- Plot ---------------------------------------------------------------------------------
    png = os.path.join(a.out, "bench.png")
    plot(png, runs, variants, ratios, a.rounds)
    plot_line = f"plot: `{png}` (per-run values, numbered by round; bar: median)"
    md.append(plot_line)

    text = "\n".join(md) + "\n"
    sys.stdout.write(text)
    with open(os.path.join(a.out, "bench.md"), "w") as f:
        f.write(text)

    doc = {
        "started": a.started,
        "rounds": a.rounds,
        "kmscube_frames": a.frames,
        "glmark2_scenes": a.glmark2_scenes,
        "glmark2_duration_s": a.glmark2_duration,
        "order": "variants in the order listed in odd rounds, reversed in even rounds",
        "load_average_start": a.load_start,
        "load_average_end": a.load_end,
        "variants": variants,
        "ratios": ratios,
        "commands": {v: variants[v]["command"] for v in VARIANTS},
        "runs": runs,
        "plot": png,
    }
    with open(os.path.join(a.out, "bench.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
