"""Average several models' probabilities over FER-2013's Training and PublicTest rows, for offline distillation.

    python training/device/soft_labels.py DATA.csv OUT.npz MODEL.keras [...]

Writes ``train`` and ``val`` (float32 (N, 7) mean probabilities, rows in file order) and ``val_acc_members``.
"""

from __future__ import annotations

import sys

import numpy as np


def main(data: str, out: str, members: list[str]) -> None:
    from fer_batch.classify import load_keras_model
    from fer_batch.training.datasets import load_dataset
    from fer_batch.training.evaluate import predict_probs

    dataset = load_dataset(data)
    train, val = dataset.get("train"), dataset.get("val")
    sums = {"train": 0.0, "val": 0.0}
    accs = []
    for path in members:
        model = load_keras_model(path)
        p_val = predict_probs(model, val.x)
        accs.append(float((p_val.argmax(1) == val.y).mean()))
        sums["val"] = sums["val"] + p_val
        sums["train"] = sums["train"] + predict_probs(model, train.x)
        print(f"{path}: val accuracy {accs[-1]:.4f}", flush=True)
    mean = {k: (v / len(members)).astype(np.float32) for k, v in sums.items()}
    print(f"ensemble val accuracy {(mean['val'].argmax(1) == val.y).mean():.4f}")
    np.savez_compressed(out, train=mean["train"], val=mean["val"], train_y=train.y, val_y=val.y,
                        val_acc_members=np.array(accs), members=np.array(members))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
