"""Dev tool: compare fer-batch's face crops with FER-2013's framing, by eye and by numbers.

    python scripts/contact_sheet.py [--fer ../shared/data/fer2013.csv.gz] [--out /tmp/fer_batch_contact]
    python scripts/contact_sheet.py --measure 1000     # re-measure the constants in fer_batch/crops.py

The sheet mode writes fer2013.png (64 training faces), crops.png (align_face crops of the Grace Hopper photo
bundled with matplotlib: rotated, small, large, at the frame edge, turned) and side_by_side.png (both, with guide
lines at FER's median eye and mouth heights, plus each grid's mean face). The measure mode runs BlazeFace on FER
faces and prints where the box and keypoints sit (training/crop_calibration.md explains it). The dataset is dev
data: it is read here only, never by the package.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the media generators live with the tests, outside the package

import synthetic_media as synthetic  # noqa: E402
from fer_batch.crops import CROP_SIZE, align_face  # noqa: E402
from fer_batch.detect import FaceDetector  # noqa: E402

# FER-2013's median eye-midpoint and mouth heights (fraction of the side), from --measure with the short model.
GUIDES = (0.40, 0.78)


def load_fer(path: Path, n: int, seed: int = 0) -> np.ndarray:
    """n random Training faces as (n, 48, 48) uint8."""
    with gzip.open(path, "rt", newline="") as f:
        rows = [r["pixels"] for r in csv.DictReader(f) if r["Usage"] == "Training"]
    pick = np.random.default_rng(seed).choice(len(rows), n, replace=False)
    return np.stack([np.array(rows[i].split(), np.uint8).reshape(48, 48) for i in pick])


def on_canvas(face: np.ndarray, up: int, pad: int) -> np.ndarray:
    """The face upscaled to `up` px, centred on a flat canvas of its mean grey, so BlazeFace sees it whole."""
    big = cv2.resize(face, (up, up), interpolation=cv2.INTER_CUBIC)
    canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=int(face.mean()))
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB)


def framing(faces, model: str) -> np.ndarray:
    """Per face: box side, box centre x/y, eye distance, eye midpoint x/y, nose y, mouth y, eye-line angle.

    Lengths are in units of the 48-px frame side; faces BlazeFace misses are left out.
    """
    up, pad = 192, 96 if model == "short" else 192  # the full-range model finds more faces when they are smaller
    rows = []
    with FaceDetector(model, max_side=None) as det:
        for face in faces:
            found = det.detect(on_canvas(face, up, pad))
            if found:
                d = found[0]
                k = (d.keypoints - pad) / up
                rows.append((d.w / up, (d.x - pad + d.w / 2) / up, (d.y - pad + d.h / 2) / up,
                             np.hypot(*(k[1] - k[0])), (k[0, 0] + k[1, 0]) / 2, (k[0, 1] + k[1, 1]) / 2,
                             k[2, 1], k[3, 1], np.degrees(np.arctan2(*(k[1] - k[0])[::-1]))))
    return np.array(rows).reshape(-1, 9)


def report(title: str, a: np.ndarray, n: int) -> None:
    print(f"{title}: {len(a)}/{n} faces detected")
    names = ("box side", "box centre x", "box centre y", "eye distance", "eye mid x", "eye mid y", "nose y",
             "mouth y", "eye-line angle deg")
    for name, col in zip(names, a.T):
        q = np.percentile(col, [10, 25, 50, 75, 90])
        print(f"  {name:18s} median {q[2]:7.3f}   IQR {q[1]:.3f}..{q[3]:.3f}   p10..p90 {q[0]:.3f}..{q[4]:.3f}")


def measure(fer: Path, n: int) -> None:
    """Where BlazeFace's box and keypoints sit in FER faces, the crop constants that follow, and a closed-loop check:
    the same measurement on align_face crops of the Grace Hopper frames should give FER's medians."""
    faces = load_fer(fer, n)
    for model in ("short", "full"):
        a = framing(faces, model)
        report(f"FER-2013 Training, {model}", a, n)
        box, eye = a[:, 0], a[:, 3]
        ratio = np.median(eye / box)
        a_eye = np.median(1 / np.maximum(eye, box * ratio))  # side = max(A * eye, B * box), B / A = median eye/box
        print(f"  eye-only scale: side = {np.median(1 / eye):.3f} x eye distance")
        print(f"  max scale: side = max({a_eye:.3f} x eye distance, {a_eye * ratio:.3f} x box side)")
    crops = []
    with FaceDetector("short", max_side=640) as det:
        for _, frame in grace_hopper_frames():
            crops += [align_face(frame, d) for d in det.detect(frame)[:1]]
    report("align_face crops of the Grace Hopper frames, measured with short", framing(crops, "short"), len(crops))


def grid(tiles: list[np.ndarray], cols: int = 8, zoom: int = 3, guides: bool = False) -> np.ndarray:
    """Tiles (48x48 grey) in a grid, each enlarged `zoom` times with a 2-px gap."""
    cell = CROP_SIZE * zoom
    rows = -(-len(tiles) // cols)
    out = np.full((rows * (cell + 2), cols * (cell + 2)), 255, np.uint8)
    for i, t in enumerate(tiles):
        big = cv2.resize(t, (cell, cell), interpolation=cv2.INTER_NEAREST)
        if guides:
            big = big.copy()
            for g in GUIDES:
                big[int(g * cell), ::4] = 255
        r, c = divmod(i, cols)
        out[r * (cell + 2):r * (cell + 2) + cell, c * (cell + 2):c * (cell + 2) + cell] = big
    return out


def grace_hopper_frames() -> list[tuple[str, np.ndarray]]:
    """Real-photo test frames: the photo itself, then the face composited with roll, scale, edge and turn."""
    frames = [("photo", synthetic.grace_hopper_rgb())]
    bg = synthetic.make_background((1280, 720), seed=2)
    P = synthetic.Placement
    cases = [("roll +20", P(640, 360, 260, angle=20)), ("roll -20", P(640, 360, 260, angle=-20)),
             ("roll +30", P(640, 360, 260, angle=30)), ("roll -30", P(640, 360, 260, angle=-30)),
             ("small 130px", P(400, 300, 130)), ("small 160px", P(400, 300, 160)), ("large 560px", P(640, 380, 560)),
             ("left edge", P(60, 360, 260)), ("bottom edge", P(640, 660, 260)),
             ("turned 0.75", P(640, 360, 260, squeeze=0.75)), ("turned 0.6 flip", P(640, 360, 260, squeeze=0.6, flip=True)),
             ("small roll -25", P(900, 300, 140, angle=-25))]
    frames += [(name, synthetic.composite(bg, [p])) for name, p in cases]
    return frames


def sheets(fer: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    faces = load_fer(fer, 64)
    crops, names = [], []
    for model in ("short", "full"):
        with FaceDetector(model, max_side=640) as det:
            for name, frame in grace_hopper_frames():
                found = det.detect(frame)
                if found:
                    crops.append(align_face(frame, found[0]))
                    names.append(f"{model}: {name}")
                else:
                    print(f"{model}: no face in {name!r}")
    fer_png, crops_png = grid(list(faces)), grid(crops)
    cv2.imwrite(str(out / "fer2013.png"), fer_png)
    cv2.imwrite(str(out / "crops.png"), crops_png)
    # Mean faces (over the many FER faces; over the frontal-ish crops) show the average framing at a glance.
    mean_fer = load_fer(fer, 1000, seed=1).mean(0).astype(np.uint8)
    mean_crop = np.mean(crops, 0).astype(np.uint8)
    panels = []
    for tiles, mean in ((list(faces), mean_fer), (crops, mean_crop)):
        g, m = grid(tiles, guides=True), grid([mean], 1, 6, True)
        panels.append(np.vstack([g, np.pad(m, ((8, 0), (0, g.shape[1] - m.shape[1])), constant_values=255)]))
    h = max(p.shape[0] for p in panels)
    left, right = (np.pad(p, ((0, h - p.shape[0]), (0, 0)), constant_values=255) for p in panels)
    cv2.imwrite(str(out / "side_by_side.png"), np.hstack([left, np.full((h, 24), 255, np.uint8), right]))
    print("crops, in grid order:", "; ".join(names))
    print(f"wrote {out / 'fer2013.png'}, {out / 'crops.png'}, {out / 'side_by_side.png'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fer", type=Path, default=ROOT.parent / "shared" / "data" / "fer2013.csv.gz")
    p.add_argument("--out", type=Path, default=Path("/tmp/fer_batch_contact"))
    p.add_argument("--measure", type=int, metavar="N", help="measure the framing on N FER faces instead")
    a = p.parse_args()
    if a.measure:
        measure(a.fer, a.measure)
    else:
        sheets(a.fer, a.out)


if __name__ == "__main__":
    main()
