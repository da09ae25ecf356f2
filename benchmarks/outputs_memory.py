"""Peak memory and time of the outputs made from a finished timeline (--summary, --charts, --report), with the
timeline read whole into a DataFrame (how they were made until 2026-12-03) beside it streamed one source at a time
(:class:`fer_batch.timeline.Timeline`, how ``run_batch`` makes them now).

A timeline CSV of ``--videos`` videos x ``--frames`` analysed frames (one face each, probabilities drifting
between emotions) is generated once; each (output, way of reading) is then measured in its own process, whose peak
RSS the kernel reports when it ends (``os.wait4``). The report is built without thumbnails (the media do not exist).

    python benchmarks/outputs_memory.py                          # 200 videos x 5,000 frames = 1,000,000 rows
    python benchmarks/outputs_memory.py --videos 50 --frames 2000 --outputs summary report
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import machine_line  # noqa: E402

OUTPUTS = ("summary", "charts", "report")
CHILD = r"""
import json, sys, time
from pathlib import Path
csv_path, output, how, dest = sys.argv[1:5]
from fer_batch.timeline import Timeline, read_timeline
from fer_batch.summary import save_summary, summarize
from fer_batch.charts import write_charts
from fer_batch.report import write_report
t = time.perf_counter()
timeline = read_timeline(csv_path) if how == "whole" else Timeline.from_csv(csv_path)
if output == "summary":
    save_summary(summarize(timeline), Path(dest) / "summary.csv")
elif output == "charts":
    write_charts(timeline, Path(dest) / "charts")
elif output == "report":
    write_report(Path(dest) / "report.html", timeline, [], settings={}, line="benchmark", paths={})
else:
    raise SystemExit(f"unknown output {output!r}")
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def write_timeline(path: Path, videos: int, frames: int) -> int:
    """The generated timeline; returns its rows."""
    import numpy as np

    from fer_batch.records import COLUMNS, FaceRecord

    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for v in range(videos):
            logits = np.cumsum(rng.normal(0, 0.3, (frames, 7)), axis=0)
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            name = f"/archive/dir{v // 100:02d}/clip{v:05d}.mp4"
            for i in range(frames):
                w.writerow(FaceRecord(name, "video", i, i / 10, 0, 100, 80, 120, 120, 0.93,
                                      tuple(probs[i].tolist())).to_row())
    return videos * frames


def measure(csv_path: Path, output: str, how: str, dest: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one output made one way, in a process of its own."""
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(csv_path), output, how, str(dest)],
                            stdout=subprocess.PIPE, cwd=HERE.parent)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{output} ({how}) failed")
    return json.loads(out)["seconds"], usage.ru_maxrss / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--frames", type=int, default=5000, help="analysed frames a video (one face each)")
    ap.add_argument("--outputs", nargs="+", choices=OUTPUTS, default=list(OUTPUTS))
    args = ap.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="fer-batch-outputs-") as tmpdir:
        tmp = Path(tmpdir)
        csv_path = tmp / "timeline.csv"
        t = time.perf_counter()
        rows = write_timeline(csv_path, args.videos, args.frames)
        print(f"timeline: {args.videos} videos x {args.frames} frames = {rows:,} rows, "
              f"{csv_path.stat().st_size / 1e6:.0f} MB (generated in {time.perf_counter() - t:.0f} s)")
        print(f"{'output':<8} {'whole: s':>9} {'MB':>6}   {'streamed: s':>11} {'MB':>6}   {'memory ratio':>12}")
        for output in args.outputs:
            s_whole, mb_whole = measure(csv_path, output, "whole", tmp / f"{output}-whole")
            s_stream, mb_stream = measure(csv_path, output, "streamed", tmp / f"{output}-streamed")
            print(f"{output:<8} {s_whole:>9.1f} {mb_whole:>6.0f}   {s_stream:>11.1f} {mb_stream:>6.0f}   "
                  f"{mb_stream / mb_whole:>11.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
