"""Start-up of `fer-batch analyze`, this tree against an older build, side by side.

    python benchmarks/startup.py                  # against 53124ec (before the TFLite cache and the early checks)
    python benchmarks/startup.py --old REF --repeats 3

Each case runs the CLI in a fresh process, old and new build alternately (so both see the same machine load), and
reads its stderr as it arrives:

- first line: the first byte on stderr (the new build's "loading model fast ..."; the old one's first bar);
- model ready: the "files" progress bar appears (both builds draw it once the model has loaded);
- first frame: the bar first shows a file done (one photo: its only frame analysed);
- exit: the process ended.

Cases: one photo with the TFLite conversion cache empty (a model's first run) and filled (every later run), a
``--resume`` of a finished run, and a text file named on the command line. The old build has no cache: its two
photo cases are the same. The old build is extracted with ``git archive`` into a temporary folder (no worktree,
nothing in .git changes) and run with the same Python.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BAR = re.compile(rb"files:\s+\d+%")
DONE = re.compile(rb"files:\s+\d+%\|[^|]*\|\s*([1-9]\d*)/\d+")


def timed_run(tree: Path, args: list[str], env: dict, cwd: Path) -> dict:
    """Run ``python -m fer_batch ARGS`` from ``tree``; seconds from launch to each milestone (None: not seen)."""
    env = {**env, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fer_batch", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marks = {"first line": None, "model ready": None, "first frame": None}
    seen = b""
    fd = proc.stderr.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            now = time.perf_counter() - t0
            seen += chunk
            if marks["first line"] is None:
                marks["first line"] = now
            if marks["model ready"] is None and BAR.search(seen):
                marks["model ready"] = now
            if marks["first frame"] is None and DONE.search(seen):
                marks["first frame"] = now
    code = proc.wait()
    marks["exit"] = time.perf_counter() - t0
    marks["code"] = code
    marks["stderr"] = seen.decode("utf-8", "replace")
    return marks


def extract(ref: str, into: Path) -> Path:
    """The tree of commit ``ref`` (its fer_batch package is what runs)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "fer_batch"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="53124ec", help="commit to compare with (default 53124ec)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each case and build (default 2)")
    args = parser.parse_args()

    print(machine_line())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(a shared machine: other work runs beside this benchmark)")
    work = Path(tempfile.mkdtemp(prefix="fer-startup-"))
    try:
        (work / "old").mkdir()
        old_tree = extract(args.old, work / "old")
        builds = {f"old {args.old}": old_tree, "new (this tree)": REPO}
        photo = work / "portrait.jpg"
        shutil.copyfile(REPO / "samples" / "portrait.jpg", photo)
        notes = work / "notes.txt"
        notes.write_text("not media\n")
        base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

        def photo_args(out: Path, *extra: str) -> list[str]:
            return ["analyze", str(photo), "--out", str(out), *extra]

        results: dict[tuple[str, str], list[dict]] = {}
        for rep in range(args.repeats):
            for build, tree in builds.items():
                d = work / f"{rep}-{build.split()[0]}"
                d.mkdir()
                env = {**base_env, "XDG_CACHE_HOME": str(d / "cache")}  # empty: a model's first run
                cases = [
                    ("one photo, empty cache", photo_args(d / "a.csv")),
                    ("one photo, cache filled", photo_args(d / "b.csv")),
                    ("--resume of a finished run", photo_args(d / "b.csv", "--resume")),
                    ("a named .txt file", ["analyze", str(notes), "--out", str(d / "c.csv")]),
                ]
                for case, cli_args in cases:
                    r = timed_run(tree, cli_args, env, d)
                    results.setdefault((case, build), []).append(r)
                    if r["code"] not in (0, 1):
                        print(f"{build} {case}: exit {r['code']}\n{r['stderr'][-2000:]}", file=sys.stderr)

        def cell(runs, key):
            values = [r[key] for r in runs if r[key] is not None]
            return f"{statistics.median(values):6.2f}" if values else "     -"

        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"seconds from launch, median of {args.repeats} runs each (old and new alternate)")
        print(f"{'case':<28} {'build':<16} {'first line':>10} {'model ready':>11} {'first frame':>11} {'exit':>7}")
        for case in dict.fromkeys(c for c, _ in results):
            for build in builds:
                runs = results[(case, build)]
                print(f"{case:<28} {build:<16} {cell(runs, 'first line'):>10} {cell(runs, 'model ready'):>11} "
                      f"{cell(runs, 'first frame'):>11} {cell(runs, 'exit'):>7}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
