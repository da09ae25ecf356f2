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


def measure(path: Path, unit: str, args, peer: str | None, tmp: Path) -> tuple[Measure, Measure, Measure | None]:
    py = sys.executable
    child = str(HERE / "_child.py")
    floor = _run_rss([py, child, "floor", str(path)])
    print(f"    floor: {_fmt(floor.fps, '.1f')} {unit}/s  {floor.note}", file=sys.stderr, flush=True)
    out = tmp / f"ours-{path.stem}"
    out.mkdir(exist_ok=True)
    cmd = [py, child, "ours", str(path), "--out", str(out), "--workers",
           str(args.photo_workers if unit == "photos" else args.workers)]
    if args.detect_size:
        cmd += ["--detect-size", str(args.detect_size)]
    ours = _run_rss(cmd)
    print(f"    ours:  {_fmt(ours.fps, '.1f')} {unit}/s  {ours.note}", file=sys.stderr, flush=True)
    if args.detectors and path.name.startswith("face-1280x720"):
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
    return floor, ours, theirs


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
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = ap.parse_args()

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
    with tempfile.TemporaryDirectory(prefix="fer-batch-bench-") as tmpdir:
        tmp = Path(tmpdir)
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
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
