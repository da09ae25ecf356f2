"""Ship an ensemble of trained models, or one network, with its test-time views as one packaged model
(``accurate``), with its card.

    python training/ship_ensemble.py NAME MEMBER [MEMBER ...] --views crops --data FER2013.csv.gz \
        --status interim|final --command "how each member was made" [--quantize int8|int8-all] [--notes TEXT]

MEMBER is a finished `fer-batch train` run folder (its model.keras, metrics.json, config.json), a packaged name, or
a shipped ensemble (a packaged name or a .keras file with its card beside it), which stands for each of its members,
taken out of its views and dequantized: ``ship_ensemble.py accurate accurate RUN ...`` adds RUN to the shipped
``accurate`` (the mean of all, each member weighing the same).
Each member's network (its own TTA wrapper removed) is wrapped in the test-time views ``--views`` names
(``fer_batch.training.views``), and the ensemble averages the members (``fer_batch.training.ensemble``); a
single MEMBER ships as that network in its views, with no averaging layer around it.
``--quantize int8`` stores every dense kernel as int8 (Keras ``Model.quantize``), as ``accurate`` has shipped
since 2026-11-26; ``int8-all`` stores the Conv2D kernels as int8 too (``fer_batch.training.compress``), which a
member as wide as ``vgg`` needs to fit. The file that ships is re-measured on the PublicTest rows through the
product's own loader (``fer_batch.classify.Classifier``, safe mode), with and without the views, and the card gives
those figures, each member's, and the per-class table. Refuses a file over 25 MB.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
from ship_model import MODELS, NAME_HELP, check_name, publictest_faces

LIMIT = 25 * 2**20
QUANTIZE = {"int8": "int8 dense kernels (keras Model.quantize)",
            "int8-all": "int8 dense kernels (keras Model.quantize) and int8 Conv2D kernels, one scale per output "
                        "channel (fer_batch.layers.Int8Conv2D)"}


def members_of(spec: str, unpacked: Path) -> list[tuple[Path, dict]]:
    """[(model file, what the card says of it)] for one MEMBER argument: one for a run folder or a packaged network,
    one per member for a shipped ensemble (each saved into ``unpacked`` as a float network without its views)."""
    import keras

    from fer_batch.classify import load_keras_model, model_card, resolve_model
    from fer_batch.dequantize import dequantized, is_quantized
    from fer_batch.training.saved_models import tta_inner

    folder = Path(spec)
    if (folder / "model.keras").is_file():
        metrics = json.loads((folder / "metrics.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        return [(folder / "model.keras", {
            "source": str(folder),
            "arch": metrics["arch"],
            "epochs": metrics["epochs"],
            "publictest_accuracy_in_run": round(metrics["splits"]["val"]["accuracy"], 4)
            if "val" in metrics["splits"] else None,  # a run on data without validation faces
            "training_config": config.get("config", {}),
            "machine": config.get("machine", {}),
        })]
    card = model_card(spec)
    if "arch" not in card:
        raise SystemExit(f"member {spec!r}: neither a run folder (model.keras, metrics.json, config.json) nor a "
                         "shipped model with its card (NAME.json beside NAME.keras)")
    if not str(card["arch"]).startswith("ensemble"):
        return [(resolve_model(spec), {"source": f"packaged {spec}", "arch": card["arch"], "epochs": card["epochs"],
                                       "command": card["command"],
                                       "publictest_accuracy_in_run": card["publictest_accuracy"]})]
    # A shipped ensemble's layers hold its members in order, each in its views (ship_ensemble's own build below).
    shipped = load_keras_model(resolve_model(spec))
    nets = [tta_inner(layer) for layer in shipped.layers if isinstance(layer, keras.Model)]
    infos = card.get("members", [])
    if len(infos) != len(nets):
        raise SystemExit(f"member {spec!r}: its card lists {len(infos)} members but the file holds {len(nets)}")
    found = []
    for i, (net, info) in enumerate(zip(nets, infos)):
        path = unpacked / f"{len(list(unpacked.iterdir()))}.keras"
        (dequantized(net) if is_quantized(net) else net).save(path)
        # Its accuracy with views is measured again below, under this ship's views.
        kept = {k: v for k, v in info.items() if not k.startswith("publictest_accuracy_") or k.endswith("_in_run")}
        found.append((path, dict(kept, source=f"{spec}, member {i}: {info['source']}")))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help=NAME_HELP)
    ap.add_argument("members", nargs="+")
    ap.add_argument("--views", choices=["none", "flip", "crops"], required=True)
    ap.add_argument("--data", required=True, help="the FER-2013 CSV whose PublicTest rows measure the ensemble (or "
                                                  "other data: its validation faces, held out as the runs held them)")
    ap.add_argument("--status", choices=["interim", "final"], required=True)
    ap.add_argument("--command", required=True, help="the exact commands that produced the members")
    ap.add_argument("--quantize", choices=list(QUANTIZE), help="; ".join(f"{k}: {v}" for k, v in QUANTIZE.items()))
    ap.add_argument("--notes", default="")
    ap.add_argument("--dest", type=Path, default=MODELS, help="folder to ship into (default: the package's models)")
    args = ap.parse_args()
    check_name(ap, args.name, args.dest)

    from fer_batch.classify import Classifier
    from fer_batch.training.architectures import build_model
    from fer_batch.training.compress import int8_convolutions
    from fer_batch.training.ensemble import ensemble
    from fer_batch.training.metrics import classification_report, per_class_table
    from fer_batch.training.saved_models import load_initial_weights
    from fer_batch.training.views import with_views

    val = publictest_faces(args.data, args.members)
    unpacked = tempfile.TemporaryDirectory()  # a shipped ensemble's members, while this runs (removed at the end)
    found = [m for spec in args.members for m in members_of(spec, Path(unpacked.name))]
    paths, infos = [p for p, _ in found], [info for _, info in found]

    def float_nets() -> list:
        # Fresh float networks each time: a Keras model sits in one ensemble under one name, and a member that
        # shipped quantized (accurate) is turned back into floats before it is quantized again.
        nets = []
        for path, info in zip(paths, infos):
            net = build_model(info["arch"])
            load_initial_weights(net, path, info["source"])
            nets.append(net)
        return nets

    nets = float_nets()

    def build(views: str):
        members = float_nets()
        if args.quantize == "int8-all":
            members = [int8_convolutions(n) for n in members]
        wrapped = [with_views(n, views) for n in members]
        model = ensemble(wrapped, name=f"ensemble_{views}") if len(wrapped) > 1 else wrapped[0]
        if args.quantize:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Conv2D does not have a `quantize` method": dense layers only
                model.quantize("int8")
        return model

    def measure(model, tmp: Path, label: str) -> tuple[Path, dict, np.ndarray]:
        path = tmp / f"{label}.keras"
        model.save(path)
        classifier = Classifier(str(path), runtime="keras")  # the product's loader: safe mode, interface checked
        probs = np.concatenate([classifier.predict(val.x[i:i + 256]) for i in range(0, len(val.x), 256)])
        report = classification_report(val.y, probs.argmax(axis=1))
        print(f"{label}: PublicTest {report['accuracy']:.4f} (macro-F1 {report['macro_f1']:.4f}), "
              f"{path.stat().st_size / 2**20:.1f} MB")
        return path, report, probs

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _, plain, _ = measure(build("none"), tmp, "without views")
        for i, (net, info) in enumerate(zip(nets, infos)):
            alone = with_views(net, args.views)
            probs = np.asarray(alone.predict(val.x.astype("float32"), batch_size=256, verbose=0))
            info[f"publictest_accuracy_{args.views}"] = round(float((probs.argmax(1) == val.y).mean()), 4)
            print(f"member {i} ({info['arch']}, {info['source']}) with {args.views}: "
                  f"{info[f'publictest_accuracy_{args.views}']:.4f}")
        path, report, _ = measure(build(args.views), tmp, f"with {args.views}")
        size = path.stat().st_size
        if size > LIMIT:
            raise SystemExit(f"the model is {size / 2**20:.1f} MB: too big to ship (limit 25 MB)")
        card = {
            "name": args.name,
            "status": args.status,
            "arch": "ensemble: " + " + ".join(info["arch"] for info in infos) if len(infos) > 1 else infos[0]["arch"],
            "params": int(sum(net.count_params() for net in nets)),
            "tta": args.views,
            "publictest_accuracy": round(report["accuracy"], 4),
            "publictest_macro_f1": round(report["macro_f1"], 4),
            "publictest_accuracy_without_tta": round(plain["accuracy"], 4),
            "publictest_per_class": per_class_table(report),
            "epochs": [info["epochs"] for info in infos] if len(infos) > 1 else infos[0]["epochs"],
            "command": args.command,
            "machine": next((info["machine"] for info in infos if info.get("machine")), {}),
            "members": infos,
            "quantization": QUANTIZE[args.quantize] if args.quantize else None,
            "notes": args.notes,
        }
        args.dest.mkdir(parents=True, exist_ok=True)
        (args.dest / f"{args.name}.keras").write_bytes(path.read_bytes())
    (args.dest / f"{args.name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"shipped {args.name}: {card['arch']}, PublicTest {card['publictest_accuracy']:.4f} with {args.views} "
          f"({card['publictest_accuracy_without_tta']:.4f} without), {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
