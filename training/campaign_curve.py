"""PublicTest accuracy against the CPU hours spent, for the runs of a training campaign.

Reads each run's ``history.csv`` (``val_accuracy`` per epoch: PublicTest without test-time views) and
``epoch_times.csv`` (wall and process CPU seconds per epoch, written by ``fer-batch train`` since 2026-12-02).
Epochs without a time (a run started before that file existed) are counted at the median CPU seconds of the
run's timed epochs and marked ``~``. Prints a table per run and, with ``--png``, draws the curves.

``--chain`` puts the runs end to end, in the order given, so the x axis is the campaign's CPU hours so far: each
run starts from an earlier one (``--init``) or learns from it (``--teacher``), so its gain cost all of the hours
before it, not only its own. (A teacher's labelling of the cached views is not in ``epoch_times.csv``.)

    python training/campaign_curve.py /work/runs/t1-vggm-ce /work/runs/t2-resnetm-ce --png training/campaign.png
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("epoch", "").isdigit()]


def curve(run: Path) -> list[dict]:
    """Per epoch: accuracy (%), CPU seconds, whether the CPU time was measured, cumulative CPU hours."""
    history = _rows(run / "history.csv")
    times = {int(r["epoch"]): float(r["cpu_s"]) for r in _rows(run / "epoch_times.csv")}
    typical = statistics.median(times.values()) if times else None
    out, total = [], 0.0
    for r in history:
        epoch = int(r["epoch"])
        cpu = times.get(epoch, typical)
        if cpu is not None:
            total += cpu
        try:
            accuracy = 100 * float(r["val_accuracy"])
        except (TypeError, ValueError):  # "NA": a run on data without validation faces (its hours still count)
            accuracy = None
        out.append({"epoch": epoch + 1, "accuracy": accuracy, "cpu_s": cpu,
                    "measured": epoch in times, "cpu_h": total / 3600 if cpu is not None else None})
    return out


def draw(curves: dict, floors=(), ymin: float | None = None, chained: bool = False):
    """The chart: one curve per run (``{name: curve(run)}``), each floor ``(name, percent)`` a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4), dpi=120)
    for name, points in curves.items():
        pts = [q for q in points if q["cpu_h"] is not None and q["accuracy"] is not None]
        ax.plot([q["cpu_h"] for q in pts], [q["accuracy"] for q in pts], marker=".", label=name)
    for name, value in floors:
        ax.axhline(value, color="grey", linestyle="--", linewidth=1, label=f"_{name} floor")
        ax.annotate(f"{name} floor {value:g}%", (0, value), xytext=(4, 3), textcoords="offset points",
                    xycoords=("axes fraction", "data"), fontsize=8, color="grey")
    if ymin is not None:
        ax.set_ylim(bottom=ymin)
    ax.set_xlabel("CPU hours (process CPU time, all threads)" + (", the runs end to end" if chained else ""))
    ax.set_ylabel("PublicTest accuracy, % (no test-time views)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)  # outside: never over a curve
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="output folders of fer-batch train")
    p.add_argument("--png", type=Path, help="draw accuracy against CPU hours into this file")
    p.add_argument("--chain", action="store_true", help="count each run's hours after those of the runs before it")
    p.add_argument("--ymin", type=float, help="lower end of the chart's accuracy axis, in %%")
    p.add_argument("--floor", action="append", default=[], metavar="NAME=PERCENT",
                   help="draw a target as a dashed line, e.g. --floor fast=68 (repeatable)")
    args = p.parse_args(argv)
    floors = []
    for spec in args.floor:
        name, _, value = spec.partition("=")
        try:
            percent = float(value)
        except ValueError:
            percent = None
        if not name or percent is None or not 0 <= percent <= 100:
            p.error(f"--floor {spec!r}: expected NAME=PERCENT with a percentage from 0 to 100, e.g. fast=68")
        floors.append((name, percent))
    if len({run.name for run in args.runs}) < len(args.runs):
        p.error("two runs share a folder name; the chart names each run by its folder")
    curves, offset = {}, 0.0
    for run in args.runs:
        points = curve(run)
        if args.chain:
            if not points or points[-1]["cpu_h"] is None:
                # Its hours are unknown, so every later run would start too early on the campaign's axis.
                p.error(f"--chain: {run} has no timed epoch (epoch_times.csv, written by fer-batch train since "
                        "2026-12-02), so where the runs after it start is unknown")
            for pt in points:
                pt["cpu_h"] += offset
            offset = points[-1]["cpu_h"]
        curves[run.name] = points
        print(f"{run.name}: {len(points)} epochs")
        print(f"{'epoch':>6} {'PublicTest %':>13} {'CPU s':>8} {'CPU h total':>12}")
        for pt in points:
            mark = "" if pt["measured"] else "~"
            cpu = f"{mark}{pt['cpu_s']:.0f}" if pt["cpu_s"] is not None else "-"
            hours = f"{mark}{pt['cpu_h']:.2f}" if pt["cpu_h"] is not None else "-"
            shown = f"{pt['accuracy']:.2f}" if pt["accuracy"] is not None else "-"
            print(f"{pt['epoch']:>6} {shown:>13} {cpu:>8} {hours:>12}")
        measured = [q for q in points if q["accuracy"] is not None]
        if measured:
            best = max(measured, key=lambda q: q["accuracy"])
            print(f"best: {best['accuracy']:.2f}% after epoch {best['epoch']}")
    if args.png:
        draw(curves, floors, args.ymin, args.chain).savefig(args.png)
        print(f"chart: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
