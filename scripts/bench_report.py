#!/usr/bin/env python3
"""Statistics, markdown table, JSON and plot for scripts/bench.sh (standard library only;
matplotlib only if it is already importable).

Reads OUT/runs.tsv (one row per guest run, written by bench.sh) and OUT/commands.tsv (variant,
command line), prints the markdown report on stdout and writes OUT/bench.md, OUT/bench.json and,
when matplotlib can be imported, OUT/bench.png.
"""
import argparse
import csv
import json
import os
import statistics
import sys

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
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # ImportError, or a broken install
        plot_line = f"plot skipped: python3 cannot import matplotlib ({e})"
        png = None
    else:
        fig, axes = plt.subplots(1, len(WORKLOADS), figsize=(10, 4.5))
        for ax, (w, metric) in zip(axes, WORKLOADS.items()):
            names = [f"jailed-{w}", f"in-process-{w}"]
            for x, v in enumerate(names):
                pts = [(r["round"], r["value"]) for r in runs if r["variant"] == v and r["ok"]]
                ax.scatter([x] * len(pts), [p[1] for p in pts], zorder=3)
                for rnd, val in pts:
                    ax.annotate(str(rnd), (x, val), textcoords="offset points", xytext=(6, -3),
                                fontsize=8)
                med = variants[v]["median"]
                if med is not None:
                    ax.hlines(med, x - 0.25, x + 0.25, colors="black", zorder=2)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels([label(v) for v in names])
            ax.set_xlim(-0.6, len(names) - 0.4)
            ax.set_ylim(bottom=0)
            ax.set_ylabel(metric)
            ax.grid(axis="y", alpha=0.3)
            q = ratios[w]["jailed_over_in_process"]
            ax.set_title(f"{w}: jailed / in-process = {q:.2f}" if q is not None else w)
        fig.suptitle(f"per-run values (label: round), bar: median; {a.rounds} round(s)")
        fig.tight_layout()
        fig.savefig(png, dpi=100)
        plt.close(fig)
        plot_line = f"plot: `{png}`"
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
