"""End-to-end throughput and memory of `fer-batch analyze`, beside the decode floor and the `fer` package.

For each workload, in one run, each in its own process (so peak RSS is that process's alone):

  floor  OpenCV reading every frame (cv2.VideoCapture.read; cv2.imread for photos): decoding, nothing else
  ours   fer-batch analyze on every frame (run_batch, what the CLI runs), frames/s and its ratio to the floor
  fer    the `fer` package's Video.analyze(FER(mtcnn=False)) on the same file, frames/s, and ours / fer

Speeds exclude process start-up (imports, model loading): `setup` shows it. The peer is timed on the first
--peer-frames frames of the same clip (the generated clips loop their motion every 10 s); photos on the first
--peer-photos photos. Memory: a 10-minute 720p clip must not raise our peak RSS above 1.2x that of the 1-minute clip.

    python benchmarks/analyze_speed.py                      # all workloads (clips are generated once, cached)
    python benchmarks/analyze_speed.py --quick              # 10-s clips, 200 photos, 60-s vs 10-s memory check
    python benchmarks/analyze_speed.py --workloads 720p photos --no-peer
    python benchmarks/analyze_speed.py --workloads 720p faces3 --no-peer --profile          # where the time goes
    git worktree add /tmp/base 53124ec                                                       # today's build
    python benchmarks/analyze_speed.py --workloads 720p faces3 --no-peer --detector short --base /tmp/base --repeats 3
    python benchmarks/analyze_speed.py ... --base /tmp/base --model OLD_FAST.keras   # the same network in both trees

``--profile`` also runs the stages of one frame after another on one thread (decode, detect, align, classify,
write) and prints each one's wall and CPU milliseconds per frame beside the pipeline's, with the pipeline's CPU
utilisation (process CPU time / wall time / cores): how much of the machine the overlapping stages use.
``--base TREE`` measures another checkout of fer-batch in the same run (same clips, same child script), base and
this tree alternating ``--repeats`` times (medians reported, so a burst of other work on the machine hits both),
and checks that both wrote the same rows: the same face ids and boxes, probabilities within a reported tolerance.

On a shared machine, run it while nothing else runs (figures are only comparable within one run).
See benchmarks/README.md for the peer's set-up (benchmarks/setup_peer.sh) and the figures measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import CACHE, machine_line, workload_clip, workload_photos  # noqa: E402

DEFAULT_PEER = CACHE.parent / "fer-peer-venv" / "bin" / "python"
WORKLOADS = ("720p", "faces3", "1080p", "photos", "memory")
TARGETS = {"ratio_720p": 0.40, "auto_vs_short_720p": 0.8, "vs_fer_720p": 20.0, "photos_per_s": 50.0, "memory_growth": 1.2,
           "memory_mb": 2048.0}


@dataclass
class Measure:
    fps: float | None = None
    frames: int = 0
    seconds: float = 0.0
    setup_s: float = 0.0
    rss_mb: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def _run_rss(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> Measure:
    """Run one measuring process: its JSON line gives the speed, os.wait4 the peak RSS of exactly that process."""
    import selectors

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    deadline = None if timeout is None else t + timeout
    open_streams = 2
    timed_out = False
    while open_streams:
        left = None if deadline is None else max(0.0, deadline - time.perf_counter())
        if left == 0.0:
            proc.kill()
            timed_out = True
            deadline = None
        for key, _ in sel.select(timeout=left if left is not None else None):
            data = os.read(key.fileobj.fileno(), 65536)
            if not data:
                sel.unregister(key.fileobj)
                open_streams -= 1
            else:
                chunks[key.data].append(data)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    out = b"".join(chunks["out"]).decode(errors="replace")
    err = b"".join(chunks["err"]).decode(errors="replace")
    rss = usage.ru_maxrss / 1024.0
    if timed_out:
        return Measure(rss_mb=rss, note=f"timed out after {timeout:.0f} s")
    if proc.returncode != 0:
        tail = [ln for ln in (err or out).strip().splitlines() if ln.strip()][-3:]
        return Measure(rss_mb=rss, note=f"failed (exit {proc.returncode}): {' | '.join(tail)}")
    data = json.loads([ln for ln in out.strip().splitlines() if ln.startswith("{")][-1])
    return Measure(fps=data["fps"], frames=data["frames"], seconds=data["seconds"], setup_s=data.get("setup_s", 0.0),
                   rss_mb=rss, extra={**data, "wall_s": wall})


@dataclass
class Row:
    name: str
    what: str  # description of the input
    unit: str  # "frames" or "photos"
    floor: Measure
    ours: Measure
    peer: Measure | None
    annotated: Measure | None = None  # ours again with --annotate (--annotate given to this script)


def _fmt(v, spec, empty="-"):
    return empty if v is None else format(v, spec)


def _peer_python(args) -> str | None:
    if args.no_peer:
        return None
    candidate = args.peer_python or os.environ.get("FER_PEER_PYTHON") or str(DEFAULT_PEER)
    if not Path(candidate).exists():
        return None
    probe = subprocess.run([candidate, "-c", "import warnings; warnings.simplefilter('ignore'); "
                                             "from fer.fer import FER; from fer.classes import Video"],
                           capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return candidate if probe.returncode == 0 else None


def _ours_cmd(path: Path, unit: str, args, out: Path, *, what: str = "ours", repo: Path | None = None,
              detector: str | None = "given") -> list[str]:
    """The child command measuring fer-batch (``repo``'s, default this tree's) on ``path``, writing under ``out``.

    ``detector``: "given" is --detector as given to this script (None: the tree's own default)."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(HERE / "_child.py"), what, str(path), "--out", str(out)]
    if what == "ours":
        cmd += ["--workers", str(args.photo_workers if unit == "photos" else args.workers)]
    if args.detect_size:
        cmd += ["--detect-size", str(args.detect_size)]
    detector = args.detector if detector == "given" else detector
    if detector:
        cmd += ["--detector", detector]
    if args.model:
        cmd += ["--model", str(Path(args.model).resolve()) if Path(args.model).exists() else args.model]
    if repo is not None:
        cmd += ["--repo", str(repo)]
    return cmd


def _cpu_note(m: Measure) -> str:
    """CPU milliseconds per frame and utilisation (CPU time / wall time / cores) of a pipeline run."""
    cpu, cores = m.extra.get("cpu_s"), m.extra.get("cores")
    if not (cpu and m.frames and m.seconds and cores):
        return ""
    return f"CPU {1000 * cpu / m.frames:.1f} ms/frame, utilisation {100 * cpu / m.seconds / cores:.0f}% of {cores} cores"


def measure(path: Path, unit: str, args, peer: str | None, tmp: Path) -> tuple[Measure, Measure, Measure | None,
                                                                               Measure | None]:
    py = sys.executable
    child = str(HERE / "_child.py")
    floor = _run_rss([py, child, "floor", str(path)])
    print(f"    floor: {_fmt(floor.fps, '.1f')} {unit}/s  {floor.note}", file=sys.stderr, flush=True)
    ours = _run_rss(_ours_cmd(path, unit, args, tmp / f"ours-{path.stem}", detector=None))  # the CLI's default
    print(f"    ours:  {_fmt(ours.fps, '.1f')} {unit}/s  {_cpu_note(ours)} {ours.note}", file=sys.stderr, flush=True)
    annotated = None
    if args.annotate:
        out = tmp / f"ours-{path.stem}-annotated"
        annotated = _run_rss(_ours_cmd(path, unit, args, out, detector=None) + ["--annotate", str(out / "annotated")])
        print(f"    ours --annotate: {_fmt(annotated.fps, '.1f')} {unit}/s  {annotated.note}", file=sys.stderr,
              flush=True)
    if args.detectors and path.name.startswith("face-1280x720"):
        cmd = _ours_cmd(path, unit, args, tmp / f"ours-{path.stem}-detectors", detector=None)
        for name in args.detectors:  # a name given twice is timed twice, alternating with the others
            m = _run_rss(cmd + ["--detector", name])
            ours.extra.setdefault(f"detector_{name}", []).append(m)
            print(f"    ours --detector {name}: {_fmt(m.fps, '.1f')} {unit}/s  {m.note}", file=sys.stderr, flush=True)
    theirs = None
    if peer:
        pcmd = [peer, str(HERE / "peer_fer.py"), str(path)]
        pcmd += ["--max-photos", str(args.peer_photos)] if unit == "photos" else ["--max-frames", str(args.peer_frames)]
        theirs = _run_rss(pcmd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=args.peer_timeout)
        print(f"    fer:   {_fmt(theirs.fps, '.2f')} {unit}/s  {theirs.note}", file=sys.stderr, flush=True)
    return floor, ours, theirs, annotated


STAGES = ("decode", "detect", "align", "classify", "write")
#: --base targets: this tree's frames/s over the base's, per workload (issue 19).
SPEEDUP = {"720p": 1.6, "faces3": 1.4}


def profile(clips: dict[str, Path], args, tmp: Path) -> None:
    """Each stage's wall and CPU ms per frame run alone, beside the pipeline's ms per frame and CPU utilisation."""
    trees = [("this tree", None)] + ([("base", args.base)] if args.base else [])
    print(f"\nprofile: stages one after another on one thread, ms per frame (wall / CPU); then the pipeline "
          f"(--workers {args.workers}) on the same clip")
    head = f"{'workload':<20}{'tree':<10}" + "".join(f"{s:>14}" for s in STAGES) + f"{'sum':>14}{'pipeline':>24}"
    print(head)
    print("-" * len(head))
    for label, clip in clips.items():
        for tree, repo in trees:
            out = tmp / f"profile-{tree.replace(' ', '-')}-{clip.stem}"
            stages = _run_rss(_ours_cmd(clip, "frames", args, out, what="profile", repo=repo))
            run = _run_rss(_ours_cmd(clip, "frames", args, out / "run", repo=repo))
            if stages.fps is None or run.fps is None:
                print(f"{label:<20}{tree:<10} failed: {stages.note or run.note}")
                continue
            wall, cpu = stages.extra["wall_ms"], stages.extra["cpu_ms"]
            cells = "".join(f"{wall[s]:>7.2f} /{cpu[s]:>5.2f}" for s in STAGES)
            total = f"{sum(wall.values()):>7.2f} /{sum(cpu.values()):>5.2f}"
            pipe_cpu = run.extra.get("cpu_s", 0.0) * 1000 / max(run.frames, 1)
            util = run.extra.get("cpu_s", 0.0) / run.seconds / run.extra.get("cores", 1)
            print(f"{label:<20}{tree:<10}{cells}{total}  {1000 / run.fps:>6.2f} /{pipe_cpu:>5.2f}  {100 * util:>3.0f}% CPU")
    print("(wall / CPU: CPU is the process's CPU time, all threads; the pipeline's wall ms per frame is 1000 / "
          "frames/s; CPU % = CPU time / wall time / cores: 100% would be every core busy for the whole run)")


def _rows(csv_path: Path) -> list[dict]:
    import csv

    with open(csv_path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def same_rows(a: Path, b: Path) -> tuple[bool, str, float]:
    """Whether two timelines hold the same rows (frames, face ids, boxes); and the largest probability difference."""
    from fer_batch.labels import EMOTIONS

    ra, rb = _rows(a), _rows(b)
    if len(ra) != len(rb):
        return False, f"{len(ra)} rows against {len(rb)}", float("nan")
    keys = ("source", "frame", "face_id", "x", "y", "w", "h")
    differ = [i for i, (x, y) in enumerate(zip(ra, rb)) if any(x[k] != y[k] for k in keys)]
    gap = max((abs(float(x[e]) - float(y[e])) for x, y in zip(ra, rb) for e in EMOTIONS if x[e] and y[e]),
              default=0.0)
    emotion = sum(x["emotion"] != y["emotion"] for x, y in zip(ra, rb))
    faces = sum(1 for x in ra if x["face_id"])
    if differ:
        return False, f"{len(differ)} of {len(ra)} rows differ in frame, id or box (first: row {differ[0]})", gap
    return True, f"{len(ra)} rows, ids and boxes equal; emotion differs on {emotion} of {faces} faces", gap


def compare(clips: dict[str, Path], args, tmp: Path) -> list[bool]:
    """This tree against --base, alternating, medians of --repeats; speed-ups checked against SPEEDUP."""
    import statistics

    print(f"\nside by side: base = {args.base}, this tree = {HERE.parent}; --detector "
          f"{args.detector or 'each tree default'}, --workers {args.workers}; {args.repeats} alternating repeats, "
          "medians")
    verdicts = []
    for label, clip in clips.items():
        runs: dict[str, list[Measure]] = {"floor": [], "base": [], "new": []}
        for i in range(args.repeats):
            order = ("base", "new") if i % 2 == 0 else ("new", "base")  # neither always goes first
            runs["floor"].append(_run_rss([sys.executable, str(HERE / "_child.py"), "floor", str(clip)]))
            for who in order:
                out = tmp / f"cmp-{who}-{clip.stem}"
                runs[who].append(_run_rss(_ours_cmd(clip, "frames", args, out,
                                                    repo=args.base if who == "base" else None)))
            print(f"    {label} repeat {i + 1}: floor {_fmt(runs['floor'][-1].fps, '.1f')}, base "
                  f"{_fmt(runs['base'][-1].fps, '.1f')}, this tree {_fmt(runs['new'][-1].fps, '.1f')} frames/s; "
                  f"load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
        failed = [m.note for ms in runs.values() for m in ms if m.fps is None]
        if failed:
            print(f"{label}: failed: {failed[0]}")
            verdicts.append(False)
            continue
        med = {who: statistics.median(m.fps for m in ms) for who, ms in runs.items()}
        cpu = {who: statistics.median(1000 * m.extra["cpu_s"] / m.frames for m in runs[who]) for who in ("base", "new")}
        util = {who: statistics.median(m.extra["cpu_s"] / m.seconds / m.extra["cores"] for m in runs[who])
                for who in ("base", "new")}
        rss = max(m.rss_mb or 0.0 for m in runs["new"])
        trees = {who: {m.extra.get("tree") for m in runs[who]} for who in ("base", "new")}
        print(f"{label}: measured trees: base {', '.join(map(str, trees['base']))}; this tree "
              f"{', '.join(map(str, trees['new']))}")
        ok_rows, rows_note, gap = same_rows(tmp / f"cmp-base-{clip.stem}" / "results.csv",
                                            tmp / f"cmp-new-{clip.stem}" / "results.csv")
        print(f"{label}: frames/s (median; each run's): floor {med['floor']:.1f}, base {med['base']:.1f} "
              f"({', '.join(f'{m.fps:.1f}' for m in runs['base'])}), this tree {med['new']:.1f} "
              f"({', '.join(f'{m.fps:.1f}' for m in runs['new'])})")
        print(f"  CPU ms per frame: base {cpu['base']:.1f}, this tree {cpu['new']:.1f}; CPU utilisation: base "
              f"{100 * util['base']:.0f}%, this tree {100 * util['new']:.0f}%; decode-floor ratio: base "
              f"{med['base'] / med['floor']:.2f}, this tree {med['new'] / med['floor']:.2f}; this tree's peak RSS "
              f"{rss:.0f} MB")
        print(f"  rows: {rows_note}; largest probability difference {gap:.4f}")
        key = next((k for k in SPEEDUP if label.startswith({"720p": "720p-1face", "faces3": "720p-3faces"}[k])), None)
        speedup = med["new"] / med["base"]
        target = SPEEDUP.get(key)
        verdicts += [ok_rows, target is None or speedup >= target]
        print(f"{'PASS' if target is None or speedup >= target else 'MISS'}  {label}, this tree / base frames/s: "
              f"{speedup:.2f}x (target >= {target}x)" + ("" if ok_rows else "; ROWS DIFFER"))
    return verdicts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10-s clips, 200 photos, memory check 60 s vs 10 s")
    ap.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS), metavar="W",
                    help=f"any of: {' '.join(WORKLOADS)} (default: all)")
    ap.add_argument("--workers", type=int, default=1, help="--workers for our video runs (default 1)")
    ap.add_argument("--photo-workers", type=int, default=1, help="--workers for our photo run (default 1)")
    ap.add_argument("--detect-size", type=int, help="--detect-size for our runs (default: the CLI's)")
    ap.add_argument("--detectors", nargs="+", metavar="NAME",
                    help="on the 720p one-face clip, also time ours with each of these --detector choices "
                         "(e.g. short auto); the default detector is timed as before")
    ap.add_argument("--peer-python", help=f"python of the venv holding `fer` (default {DEFAULT_PEER})")
    ap.add_argument("--no-peer", action="store_true", help="skip the fer package")
    ap.add_argument("--peer-frames", type=int, default=300, help="frames of each clip fer is timed on (default 300)")
    ap.add_argument("--peer-photos", type=int, default=100, help="photos fer is timed on (default 100)")
    ap.add_argument("--peer-timeout", type=float, default=600.0, help="seconds before a peer run is abandoned")
    ap.add_argument("--annotate", action="store_true",
                    help="also time ours with --annotate (annotated copies written), beside ours without")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    ap.add_argument("--detector", help="--detector for the --base and --profile runs (default: each tree's own "
                                       "default); the main table always shows the CLI's default detector")
    ap.add_argument("--profile", action="store_true",
                    help="also time each stage alone, and the pipeline's CPU utilisation, on the video workloads")
    ap.add_argument("--base", type=Path, help="another fer-batch checkout to measure side by side with this one")
    ap.add_argument("--model", help="--model for our runs in both trees: a .keras file runs the same network in "
                                    "both, so that only the code differs (a packaged name means each tree's own "
                                    "file); default: each tree's own fast")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs of each tree with --base (default 3)")
    args = ap.parse_args()
    if args.base and not (args.base / "fer_batch" / "__init__.py").is_file():
        ap.error(f"--base {args.base}: not a fer-batch checkout (no fer_batch/__init__.py)")
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(machine_line())
    print("command: " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    try:
        rev = subprocess.run(["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"], capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        rev = ""
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; fer-batch tree: {rev or 'unknown'}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    peer = _peer_python(args)
    if peer is None and not args.no_peer:
        print(f"fer peer: not found at {args.peer_python or DEFAULT_PEER} (see benchmarks/setup_peer.sh); skipped")
    elif peer:
        print(f"fer peer: {peer} (Video.analyze on the first {args.peer_frames} frames of each clip, "
              f"FER(mtcnn=False).detect_emotions on the first {args.peer_photos} photos)")
    sys.stdout.flush()

    seconds = 10 if args.quick else 60
    photos = 200 if args.quick else 1000
    specs = {
        "720p": (f"720p-1face-{seconds}s", dict(name="face", seconds=seconds)),
        "faces3": (f"720p-3faces-{seconds}s", dict(name="faces", seconds=seconds, faces=3)),
        "1080p": (f"1080p-1face-{seconds}s", dict(name="face", seconds=seconds, size=(1920, 1080))),
    }
    rows: list[Row] = []
    results: dict = {"machine": machine_line(), "command": sys.argv, "rows": [], "memory": None}
    extra_verdicts: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="fer-batch-bench-") as tmpdir:
        tmp = Path(tmpdir)
        clips = {specs[w][0]: workload_clip(**specs[w][1]) for w in args.workloads if w in specs}
        if args.base:
            extra_verdicts += compare(clips, args, tmp)
        if args.profile:
            profile(clips, args, tmp)
        for w in args.workloads:
            if w in specs:
                label, spec = specs[w]
                clip = workload_clip(**spec)
                print(f"{label}: {clip}", file=sys.stderr, flush=True)
                rows.append(Row(label, clip.name, "frames", *measure(clip, "frames", args, peer, tmp)))
            elif w == "photos":
                folder = workload_photos(photos)
                print(f"photos-{photos}: {folder}", file=sys.stderr, flush=True)
                rows.append(Row(f"photos-{photos}", folder.name, "photos", *measure(folder, "photos", args, peer, tmp)))

        memory = None
        if "memory" in args.workloads:
            short_s, long_s = (10, 60) if args.quick else (60, 600)
            runs = {}
            for secs in (short_s, long_s):
                clip = workload_clip("face", seconds=secs)
                reuse = next((r for r in rows if r.name == f"720p-1face-{secs}s" and r.ours.rss_mb), None)
                if reuse:
                    runs[secs] = reuse.ours
                    continue
                print(f"memory: {clip}", file=sys.stderr, flush=True)
                out = tmp / f"mem-{secs}"
                out.mkdir()
                cmd = [sys.executable, str(HERE / "_child.py"), "ours", str(clip), "--out", str(out),
                       "--workers", str(args.workers)]
                if args.detect_size:
                    cmd += ["--detect-size", str(args.detect_size)]
                runs[secs] = _run_rss(cmd)
                print(f"    ours: {_fmt(runs[secs].fps, '.1f')} frames/s, {_fmt(runs[secs].rss_mb, '.0f')} MB "
                      f"{runs[secs].note}", file=sys.stderr, flush=True)
            memory = (short_s, long_s, runs[short_s], runs[long_s])

    # ---- the table ----
    print()
    head = (f"{'workload':<20}{'n':>6} {'floor/s':>8} {'ours/s':>8} {'ours/floor':>10} {'fer/s':>7} {'ours/fer':>9}"
            f" {'setup ours':>10} {'RSS floor':>10} {'RSS ours':>9} {'RSS fer':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = r.ours.fps / r.floor.fps if r.ours.fps and r.floor.fps else None
        vs = r.ours.fps / r.peer.fps if r.peer and r.peer.fps and r.ours.fps else None
        print(f"{r.name:<20}{r.ours.frames or r.floor.frames:>6} {_fmt(r.floor.fps, '8.1f'):>8} "
              f"{_fmt(r.ours.fps, '8.1f'):>8} {_fmt(ratio, '10.2f'):>10} "
              f"{_fmt(r.peer.fps if r.peer else None, '7.2f'):>7} {_fmt(vs, '8.1f') + 'x' if vs else '-':>9} "
              f"{_fmt(r.ours.setup_s, '9.1f') + 's':>10} {_fmt(r.floor.rss_mb, '7.0f') + ' MB':>10} "
              f"{_fmt(r.ours.rss_mb, '6.0f') + ' MB':>9} "
              f"{(_fmt(r.peer.rss_mb, '5.0f') + ' MB') if r.peer and r.peer.rss_mb else '-':>8}")
        for who, m in (("floor", r.floor), ("ours", r.ours), ("fer", r.peer)):
            if m is not None and m.note:
                print(f"  {r.name} {who}: {m.note}")
        results["rows"].append({"name": r.name, "input": r.what, "unit": r.unit,
                                **{k: (vars(m) if m else None) for k, m in
                                   (("floor", r.floor), ("ours", r.ours), ("fer", r.peer))}})
    for r in rows:
        if r.annotated is not None:
            share = r.annotated.fps / r.ours.fps if r.annotated.fps and r.ours.fps else None
            print(f"{r.name:<20} with --annotate: {_fmt(r.annotated.fps, '.1f')} {r.unit}/s "
                  f"({_fmt(share, '.2f')} of ours without), peak RSS {_fmt(r.annotated.rss_mb, '.0f')} MB"
                  f"{'  ' + r.annotated.note if r.annotated.note else ''}")
            results["rows"][rows.index(r)]["annotated"] = vars(r.annotated)
    print("(n: frames or photos analysed by ours; fer/s is timed on the first "
          f"{args.peer_frames} frames / {args.peer_photos} photos; setup = imports + model loading, not in the speeds)")

    # ---- targets ----
    print()
    verdicts = []

    def check(label, value, ok, target):
        verdicts.append(ok)
        print(f"{'PASS' if ok else 'MISS'}  {label}: {value} (target {target})")

    by = {r.name: r for r in rows}
    r720 = by.get(f"720p-1face-{seconds}s")
    if r720 and r720.ours.fps and r720.floor.fps:
        ratio = r720.ours.fps / r720.floor.fps
        check("720p one face, ours / decode floor", f"{ratio:.2f}", ratio >= TARGETS["ratio_720p"],
              f">= {TARGETS['ratio_720p']:.2f}")
        by_detector = {}
        for key, runs in r720.ours.extra.items():
            if key.startswith("detector_") and all(m.fps for m in runs):
                by_detector[key[len("detector_"):]] = fps = sum(m.fps for m in runs) / len(runs)
                print(f"720p one face, --detector {key[len('detector_'):]}: {fps:.1f} frames/s (mean of "
                      f"{', '.join(f'{m.fps:.1f}' for m in runs)}; decode floor {r720.floor.fps:.1f})")
        short, auto = by_detector.get("short"), by_detector.get("auto")
        if short and auto:
            check("720p one face, --detector auto / --detector short", f"{auto / short:.2f}",
                  auto / short >= TARGETS["auto_vs_short_720p"], f">= {TARGETS['auto_vs_short_720p']}")
        if r720.peer and r720.peer.fps:
            vs = r720.ours.fps / r720.peer.fps
            check("720p one face, ours / fer", f"{vs:.1f}x", vs >= TARGETS["vs_fer_720p"],
                  f">= {TARGETS['vs_fer_720p']:.0f}x")
    rp = next((r for r in rows if r.unit == "photos"), None)
    if rp and rp.ours.fps:
        check(f"{rp.name}, ours photos/s", f"{rp.ours.fps:.1f}", rp.ours.fps >= TARGETS["photos_per_s"],
              f">= {TARGETS['photos_per_s']:.0f}")
    if memory:
        short_s, long_s, a, b = memory
        print(f"memory: ours peak RSS {_fmt(a.rss_mb, '.0f')} MB on the {short_s}-s 720p clip "
              f"({a.frames} frames), {_fmt(b.rss_mb, '.0f')} MB on the {long_s}-s one ({b.frames} frames, "
              f"{_fmt(b.fps, '.1f')} frames/s)")
        if a.rss_mb and b.rss_mb:
            growth = b.rss_mb / a.rss_mb
            check(f"memory, {long_s}-s clip / {short_s}-s clip peak RSS", f"{growth:.3f}x",
                  growth <= TARGETS["memory_growth"], f"<= {TARGETS['memory_growth']}x")
            results["memory"] = {"short_s": short_s, "long_s": long_s, "short": vars(a), "long": vars(b),
                                 "growth": growth}
    video_rss = [r.ours.rss_mb for r in rows if r.unit == "frames" and r.ours.rss_mb]
    if memory and memory[3].rss_mb:
        video_rss.append(memory[3].rss_mb)
    if video_rss:
        worst = max(video_rss)
        check("largest peak RSS of ours on one video", f"{worst:.0f} MB", worst < TARGETS["memory_mb"],
              f"< {TARGETS['memory_mb']:.0f} MB")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0 if all(verdicts + extra_verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
