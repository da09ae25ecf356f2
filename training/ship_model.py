"""Copy a finished `fer-batch train` run into the package as a named model, with its card.

    python training/ship_model.py RUN_DIR NAME --status interim|final --command "fer-batch train ..." \
        [--quantize int8] [--strip-tta] [--data FER2013.csv.gz]

The card (`fer_batch/models/NAME.json`) is written from the run's own metrics.json and config.json, so the figures
shipped are the ones the run measured. ``--quantize int8`` stores the dense layers' kernels as int8 (Keras
``Model.quantize``: per-channel weights, inputs quantized per face at run time), which halves a VGG whose weights
are mostly in its dense head; the quantized file is re-measured on the data's PublicTest rows and the card gives
those figures, beside the float ones. ``--strip-tta`` ships the network without its flip test-time-augmentation
wrapper, at half the cost a face, and re-measures it the same way (the card keeps the TTA figure beside it).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "fer_batch" / "models"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("name", choices=["fast", "accurate"])
    ap.add_argument("--status", choices=["interim", "final"], required=True)
    ap.add_argument("--command", required=True, help="the exact command that produced the run")
    ap.add_argument("--notes", default="")
    ap.add_argument("--dest", type=Path, default=MODELS, help="folder to ship into (default: the package's models)")
    ap.add_argument("--quantize", choices=["int8"], help="store dense kernels as int8 and re-measure (needs --data)")
    ap.add_argument("--strip-tta", action="store_true",
                    help="ship the network without its test-time-augmentation wrapper (needs --data)")
    ap.add_argument("--data", help="the FER-2013 CSV whose PublicTest rows re-measure a changed model")
    args = ap.parse_args()
    if (args.quantize or args.strip_tta) and not args.data:
        ap.error("--quantize and --strip-tta need --data to re-measure the model that ships")

    metrics = json.loads((args.run_dir / "metrics.json").read_text())
    config = json.loads((args.run_dir / "config.json").read_text())
    val = metrics["splits"]["val"]
    card = {
        "name": args.name,
        "status": args.status,
        "arch": metrics["arch"],
        "params": metrics["params"],
        "tta": metrics.get("tta", "none"),
        "publictest_accuracy": round(val["accuracy"], 4),
        "publictest_macro_f1": round(val["macro_f1"], 4),
        "publictest_accuracy_without_tta": round(metrics["splits"].get("val_no_tta", val)["accuracy"], 4),
        "epochs": metrics["epochs"],
        # Wall time of the invocation that finished the run (a resumed run also spent the earlier invocations').
        "wall_time_s": metrics.get("wall_time_s_this_invocation"),
        "command": args.command,
        "machine": config.get("machine", {}),
        "training_config": config.get("config", {}),
        "notes": args.notes,
    }
    source = args.run_dir / "model.keras"
    publictest = _publictest(args.data) if args.strip_tta or args.quantize else None  # read once for both
    if args.strip_tta:
        source = strip_tta(source, publictest, card)
    if args.quantize:
        source = quantize(source, publictest, card)
    size = source.stat().st_size
    if size > 25 * 2**20:
        raise SystemExit(f"{source} is {size / 2**20:.1f} MB: too big to ship (limit 25 MB)")
    shutil.copyfile(source, args.dest / f"{args.name}.keras")
    (args.dest / f"{args.name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"shipped {args.name}: {card['arch']}, PublicTest {card['publictest_accuracy']:.4f}, {size / 1e6:.1f} MB")


def _publictest(data: str):
    """The PublicTest rows of ``data``, on which a changed model is re-measured."""
    from fer_batch.training.datasets import load_dataset

    val = load_dataset(data).get("val")
    if val is None:
        raise SystemExit(f"{data}: no PublicTest (validation) rows to re-measure the model on")
    return val


def strip_tta(path: Path, val, card: dict) -> Path:
    """Write ``model_no_tta.keras`` (the network inside the TTA wrapper) beside ``path``; re-measure it into ``card``."""
    from fer_batch.classify import load_keras_model
    from fer_batch.training.evaluate import evaluate_model
    from fer_batch.training.train import tta_inner

    model = load_keras_model(path)
    inner = tta_inner(model)
    if inner is model:
        raise SystemExit(f"{path} has no test-time-augmentation wrapper to strip")
    out = path.with_name("model_no_tta.keras")
    inner.save(out)
    report = evaluate_model(load_keras_model(out), val)
    card["publictest_accuracy_with_flip_tta"] = card["publictest_accuracy"]
    card["tta"] = "none"
    card["publictest_accuracy"] = card["publictest_accuracy_without_tta"] = round(report["accuracy"], 4)
    card["publictest_macro_f1"] = round(report["macro_f1"], 4)
    print(f"without TTA: PublicTest {report['accuracy']:.4f} (with flip TTA "
          f"{card['publictest_accuracy_with_flip_tta']:.4f})")
    return out


def quantize(path: Path, val, card: dict) -> Path:
    """Write ``model_int8.keras`` beside ``path`` and put its PublicTest figures (and the float ones) in ``card``."""
    import warnings

    from fer_batch.classify import load_keras_model
    from fer_batch.training.evaluate import evaluate_model
    from fer_batch.training.train import tta_inner

    model = load_keras_model(path)
    with warnings.catch_warnings():
        # "Layer Conv2D does not have a `quantize` method", and so on: only the Dense layers are quantized.
        warnings.simplefilter("ignore")
        model.quantize("int8")
    out = path.with_name("model_int8.keras")
    model.save(out)
    shipped = load_keras_model(out)
    report = evaluate_model(shipped, val)
    card["float_publictest_accuracy"] = card["publictest_accuracy"]
    card["float_publictest_macro_f1"] = card["publictest_macro_f1"]
    card["float_publictest_accuracy_without_tta"] = card["publictest_accuracy_without_tta"]
    card["quantization"] = "int8 dense kernels (keras Model.quantize)"
    card["publictest_accuracy"] = round(report["accuracy"], 4)
    card["publictest_macro_f1"] = round(report["macro_f1"], 4)
    # The TTA wrapper's network alone; a model without the wrapper is its own "without TTA".
    inner = tta_inner(shipped)
    alone = report if inner is shipped else evaluate_model(inner, val)
    card["publictest_accuracy_without_tta"] = round(alone["accuracy"], 4)
    print(f"int8: PublicTest {report['accuracy']:.4f} (float {card['float_publictest_accuracy']:.4f}), "
          f"{out.stat().st_size / 1e6:.1f} MB")
    return out


if __name__ == "__main__":
    main()
