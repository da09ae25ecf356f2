"""Regenerate the demo media in ``samples/`` from the Grace Hopper photo bundled with matplotlib (and one smiling
face, from scikit-image's public-domain NASA portrait of Eileen Collins, where scikit-image is installed).

    .venv/bin/python samples/make_samples.py            # rewrite the samples next to this script
    .venv/bin/python samples/make_samples.py --verify   # ... and check them with MediaPipe's face detector
    .venv/bin/python samples/make_samples.py --out /tmp/s --contact-sheet /tmp/s/sheet.png

Everything is deterministic: the same versions of numpy, Pillow, OpenCV and PyAV give byte-identical files. The
video is written with OpenCV's ``mp4v`` encoder (always available) rather than H.264, then remuxed by PyAV (the
``test`` extra) so that its index comes first. The generators are ``tests/synthetic_media.py``, shared with the
tests. See ``samples/README.md`` for what each file is.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
sys.path.insert(0, str(HERE.parent / "tests"))  # the media generators live with the tests, outside the package

import synthetic_media as synthetic  # noqa: E402

VIDEO = dict(seconds=7.0, fps=20.0, size=(640, 360), faces=1, script="tour", seed=0, codec="mp4v")
EXIF_ORIENTATION = 6


def astronaut_png() -> Path | None:
    """scikit-image's ``astronaut.png`` (inside its wheel, found without importing it), or None."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / "astronaut.png"
    return path if path.is_file() else None


def make(out: Path, astronaut: Path | None = None) -> dict:
    """Write every sample into ``out``; return {file name: what the file should contain} for verification."""
    out.mkdir(parents=True, exist_ok=True)
    truth = {}

    # Every other sample is the same neutral face; this one shows that the classifier tells emotions apart.
    if astronaut is not None:
        import numpy as np
        from PIL import Image

        with Image.open(astronaut) as im:
            synthetic.save_image(out / "smiling.jpg", np.asarray(im.convert("RGB")), quality=90)
    elif (out / "smiling.jpg").exists():
        print("smiling.jpg: kept as it is (no astronaut.png: pip install scikit-image, or --astronaut PATH)")
    else:
        print("smiling.jpg: not written (no astronaut.png: pip install scikit-image, or --astronaut PATH)")
    if (out / "smiling.jpg").exists():
        truth["smiling.jpg"] = {"faces": 1}

    portrait = synthetic.photo_faces(1, seed=0)
    synthetic.save_image(out / "portrait.jpg", portrait.rgb, quality=90)
    truth["portrait.jpg"] = {"faces": 1}

    group = synthetic.photo_faces(3, seed=0)
    synthetic.save_image(out / "group_of_three.jpg", group.rgb, quality=90)
    truth["group_of_three.jpg"] = {"faces": 3}

    # A different background from the portrait so the two files are not mistaken for each other.
    rotated = synthetic.photo_faces(1, seed=2)
    synthetic.save_exif_rotated(out / "exif_rotated.jpg", rotated.rgb, orientation=EXIF_ORIENTATION, quality=90)
    truth["exif_rotated.jpg"] = {"faces": 1, "upright": rotated.rgb}

    empty = synthetic.photo_no_face(seed=3)
    synthetic.save_image(out / "no_face.jpg", empty.rgb, quality=90)
    truth["no_face.jpg"] = {"faces": 0}

    info = synthetic.write_face_video(out / "moving_face.mp4", **VIDEO)
    truth["moving_face.mp4"] = {"video": info}
    return truth


def describe_video(info) -> str:
    """One line per run of face states, in frames and seconds, for the README."""
    lines = []
    for state in ("in", "partial", "out"):
        for a, b in info.intervals(state):
            lines.append((a, b, state))
    lines.sort()
    return "\n".join(f"  frames {a:3d}-{b - 1:3d}  ({a / info.fps:5.2f}-{b / info.fps:5.2f} s)  {state}"
                     for a, b, state in lines)


def verify(out: Path, truth: dict) -> bool:
    """Detect faces with MediaPipe's short-range BlazeFace (the model bundled in the wheel) and compare."""
    import cv2
    import numpy as np
    from PIL import Image, ImageOps

    detect = _mediapipe_detector()
    ok = True
    for name, want in truth.items():
        path = out / name
        if "video" in want:
            info = want["video"]
            cap = cv2.VideoCapture(str(path))
            counts = {"in": [0, 0], "partial": [0, 0], "out": [0, 0]}
            i = 0
            while True:
                got, bgr = cap.read()
                if not got:
                    break
                state = info.face_states(i)[0].state
                counts[state][0] += 1
                counts[state][1] += bool(detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
                i += 1
            cap.release()
            in_rate = counts["in"][1] / max(counts["in"][0], 1)
            good = i == info.frames and in_rate >= 0.9 and counts["out"][1] == 0
            ok &= good
            print(f"{name}: {i}/{info.frames} frames decoded; face detected in {counts['in'][1]}/{counts['in'][0]} "
                  f"in-view frames, {counts['partial'][1]}/{counts['partial'][0]} partly visible, "
                  f"{counts['out'][1]}/{counts['out'][0]} out-of-view  {'OK' if good else 'FAIL'}")
            continue
        with Image.open(path) as im:
            raw = np.asarray(im.convert("RGB"))
            upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        found = len(detect(upright))
        good = found == want["faces"]
        if "upright" in want:
            diff = float(np.abs(upright.astype(int) - want["upright"].astype(int)).mean())
            good &= raw.shape != upright.shape and diff < 4.0
            extra = f"; stored {raw.shape[1]}x{raw.shape[0]}, upright {upright.shape[1]}x{upright.shape[0]}, " \
                    f"mean |upright - intended| = {diff:.2f}"
        else:
            extra = ""
        ok &= good
        print(f"{name}: {found} face(s) detected, expected {want['faces']}{extra}  {'OK' if good else 'FAIL'}")
    return ok


def _mediapipe_detector():
    import importlib.util
    import os

    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    model = os.path.join(os.path.dirname(importlib.util.find_spec("mediapipe").origin),
                         "modules", "face_detection", "face_detection_short_range.tflite")
    detector = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
        base_options=BaseOptions(model_asset_path=model), min_detection_confidence=0.5))

    def detect(rgb):
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        return detector.detect(image).detections

    return detect


def contact_sheet(out: Path, truth: dict, dest: Path, every: int = 10) -> None:
    """Save the photos (EXIF applied) and every ``every``-th video frame, labelled, as one PNG."""
    import cv2
    import numpy as np
    from PIL import Image, ImageOps

    tiles = []
    for name, want in truth.items():
        if "video" in want:
            info = want["video"]
            cap = cv2.VideoCapture(str(out / name))
            i = 0
            while True:
                got, bgr = cap.read()
                if not got:
                    break
                if i % every == 0:
                    tiles.append((f"{name} #{i} {info.face_states(i)[0].state}",
                                  cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
                i += 1
            cap.release()
        else:
            with Image.open(out / name) as im:
                tiles.append((name, np.asarray(ImageOps.exif_transpose(im).convert("RGB"))))
    cell_w, cell_h = 320, 240
    cells = []
    for label, rgb in tiles:
        h, w = rgb.shape[:2]
        s = min(cell_w / w, cell_h / h)
        small = cv2.resize(rgb, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        cell = np.full((cell_h, cell_w, 3), 255, np.uint8)
        cell[:small.shape[0], :small.shape[1]] = small
        cv2.putText(cell, label, (4, cell_h - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cells.append(cell)
    cols = 5
    while len(cells) % cols:
        cells.append(np.full((cell_h, cell_w, 3), 255, np.uint8))
    sheet = np.vstack([np.hstack(cells[k:k + cols]) for k in range(0, len(cells), cols)])
    Image.fromarray(sheet).save(dest)
    print(f"contact sheet: {dest}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write into (default: samples/)")
    parser.add_argument("--verify", action="store_true", help="check the files with MediaPipe's face detector")
    parser.add_argument("--contact-sheet", type=Path, help="also save a PNG of the photos and video frames here")
    parser.add_argument("--astronaut", type=Path, default=astronaut_png(),
                        help="scikit-image's astronaut.png, for smiling.jpg (default: the installed scikit-image's)")
    args = parser.parse_args(argv)
    truth = make(args.out, args.astronaut)
    total = 0
    for name in truth:
        size = (args.out / name).stat().st_size
        total += size
        print(f"{name:22s} {size / 1024:8.1f} KiB")
    print(f"{'total':22s} {total / 1024:8.1f} KiB")
    print("moving_face.mp4 face states:\n" + describe_video(truth["moving_face.mp4"]["video"]))
    if args.contact_sheet:
        contact_sheet(args.out, truth, args.contact_sheet)
    if args.verify:
        return 0 if verify(args.out, truth) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
