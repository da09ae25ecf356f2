"""Training speed of candidate networks on this CPU, under Keras's TensorFlow and torch backends side by side.

For each network and backend, a child process builds the network as ``fer-batch train`` does (SGD with Nesterov
momentum, label smoothing, uint8 48x48 faces in), fits it on random faces for a warm-up epoch and then for a timed
epoch, and reports milliseconds a step, seconds per epoch of FER-2013 Training (28,709 faces, extrapolated from the
timed steps) and GMAC/s (forward + backward counted as 3x the forward multiply-accumulates). Augmentation is not
included: the OpenCV engine adds about 25 ms a batch of 128 on this machine, which ``--data-workers`` overlaps with
the step.

    python benchmarks/train_speed.py                                  # every candidate, both backends
    python benchmarks/train_speed.py --archs vgg-m vgg --backends tensorflow --batch-size 128 --steps 30

The torch backend needs PyTorch (``pip install torch==2.13.0``: a CPU build on this machine's disk); without it, the
backend is reported as unavailable. Threads: TensorFlow uses its defaults (intra-op = cores); torch is given
``torch.set_num_threads(cores)``. Keras keeps images channels-last under both backends (its torch backend
transposes around each convolution itself).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_FACES = 28_709
CANDIDATES = ("vgg-tiny", "vgg-small", "vgg-m", "vgg", "resnet-m")
PRECISIONS = ("float32", "mixed_bfloat16")


def forward_macs(model) -> int:
    """Multiply-accumulates of one face's forward pass: convolutions (incl. depthwise/separable) and dense layers."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.SeparableConv2D, layers.DepthwiseConv2D)):
            out_h, out_w, out_c = layer.output.shape[1:4]
            in_c = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            if isinstance(layer, layers.DepthwiseConv2D):
                total += out_h * out_w * kh * kw * in_c
            elif isinstance(layer, layers.SeparableConv2D):
                total += out_h * out_w * (kh * kw * in_c + in_c * out_c)
            else:
                total += out_h * out_w * kh * kw * in_c * out_c
        elif isinstance(layer, layers.Dense):
            total += int(layer.input.shape[-1]) * layer.units
    return int(total)


def child(arch: str, batch_size: int, steps: int, precision: str = "float32") -> dict:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "torch":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    import keras
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from fer_batch.training.architectures import build_model

    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(precision)
    model = build_model(arch)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1))
    rng = np.random.default_rng(0)
    n = batch_size * steps
    x = rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8)
    y = keras.utils.to_categorical(rng.integers(0, 7, n), 7).astype("float32")
    warm = min(n, batch_size * 3)
    model.fit(x[:warm], y[:warm], batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    macs = forward_macs(model)
    per_face = seconds / n
    return {"arch": arch, "backend": backend, "precision": precision, "keras": keras.__version__,
            "params": int(model.count_params()),
            "mmacs": macs / 1e6, "ms_step": 1000 * seconds / steps, "s_epoch": per_face * TRAIN_FACES,
            "gmacs": 3 * macs / per_face / 1e9}


def run_child(arch: str, backend: str, batch_size: int, steps: int, precision: str = "float32") -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, __file__, "--child", arch, "--batch-size", str(batch_size),
                           "--steps", str(steps), "--precision", precision], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"arch": arch, "backend": backend, "error": tail}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=list(CANDIDATES))
    p.add_argument("--backends", nargs="+", default=["tensorflow", "torch"], choices=("tensorflow", "torch"))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps per network and backend (default 20)")
    p.add_argument("--precisions", nargs="+", default=["float32"], choices=PRECISIONS,
                   help="Keras dtype policies to time (mixed_bfloat16: bf16 compute, float32 weights; fast only where "
                        "the CPU has bf16 instructions, e.g. AVX-512 BF16 or AMX)")
    p.add_argument("--precision", default="float32", choices=PRECISIONS, help=argparse.SUPPRESS)
    p.add_argument("--child", metavar="ARCH", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.batch_size, args.steps, args.precision)))
        return 0
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import machine_line

    print(machine_line())
    print(f"batch {args.batch_size}, {args.steps} timed steps after a warm-up; one epoch = {TRAIN_FACES:,} faces; "
          "no augmentation in the step")
    print(f"{'network':<10} {'backend':<11} {'precision':<15} {'params':>8} {'MMACs':>7} {'ms/step':>8} "
          f"{'s/epoch':>8} {'GMAC/s':>7}")
    for arch in args.archs:
        for backend, precision in ((b, p) for b in args.backends for p in args.precisions):
            r = run_child(arch, backend, args.batch_size, args.steps, precision)
            if "error" in r:
                print(f"{arch:<10} {backend:<11} {precision:<15} unavailable: {r['error']}")
                continue
            print(f"{arch:<10} {backend:<11} {precision:<15} {r['params'] / 1e6:>7.2f}M {r['mmacs']:>7.0f} "
                  f"{r['ms_step']:>8.0f} {r['s_epoch']:>8.0f} {r['gmacs']:>7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
