"""Size and build time of the HTML report (--report) for a large batch.

Analyses one generated clip and one group photo once, then stands in N sources for them: each source is a hard
link to one of the two files, and its timeline rows are the analysed ones under the source's own name. The report
is then built exactly as ``run_batch`` builds it (every source's thumbnails decoded from its file).

    python benchmarks/report_size.py                 # 1,000 sources (half videos, half photos)
    python benchmarks/report_size.py --sources 200
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import _synthetic, machine_line  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the stand-in clip (20 fps, 640x360)")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    import pandas as pd

    from fer_batch.batch import run_batch
    from fer_batch.config import AnalyzeConfig, RunConfig
    from fer_batch.report import write_report
    from fer_batch.summary import read_timeline

    synthetic = _synthetic()
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="fer-batch-report-") as tmpdir:
        tmp = Path(tmpdir)
        media = tmp / "media"
        media.mkdir()
        clip = synthetic.write_face_video(media / "clip.mp4", seconds=args.seconds, fps=20, size=(640, 360),
                                          faces=2, codec="auto").path
        photo = synthetic.save_image(media / "group.jpg", synthetic.photo_faces(3, seed=0).rgb)
        run_batch(RunConfig(paths=(str(media),), out=tmp / "r.csv", analyze=AnalyzeConfig(every=2)))
        timeline = read_timeline(tmp / "r.csv")
        parts, paths = [], {}
        many = tmp / "many"
        many.mkdir()
        for i in range(args.sources):
            src = clip if i % 2 == 0 else photo
            name = str(many / f"dir{i // 100:02d}" / f"source{i:04d}{src.suffix}")
            Path(name).parent.mkdir(exist_ok=True)
            os.link(src, name)
            rows = timeline[timeline["source"] == str(src)].copy()
            rows["source"] = name
            parts.append(rows)
            paths[name] = Path(name)
        big = pd.concat(parts, ignore_index=True)
        errors = [(str(many / f"broken{i}.jpg"), "empty file (0 bytes)") for i in range(args.sources // 100)]
        t = time.perf_counter()
        out = write_report(tmp / "report.html", big, errors, settings={"inputs": [str(many)]},
                           line=f"sources: {args.sources} succeeded", paths=paths)
        seconds = time.perf_counter() - t
        size = out.stat().st_size
        print(f"{args.sources} sources ({args.sources - args.sources // 2} videos of {args.seconds:g} s with 2 "
              f"faces, {args.sources // 2} photos with 3 faces), {len(big)} timeline rows: report {size / 1e6:.1f} MB "
              f"({size / args.sources / 1e3:.1f} kB a source), built in {seconds:.1f} s")
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium:  # how long a browser takes to open it (the first page of sources opened)
            t = time.perf_counter()
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={tmp / 'chromium'}", f"--screenshot={tmp / 'shot.png'}",
                            "--window-size=1280,2000", out.as_uri()], capture_output=True, timeout=600)
            print(f"headless Chromium opened and rendered it in {time.perf_counter() - t:.1f} s "
                  f"(including its own start-up)")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
