"""Copy a finished `fer-batch train` run into the package as a named model, with its card.

    python training/ship_model.py RUN_DIR NAME --status interim|final --command "fer-batch train ..." \
        [--quantize int8] [--strip-tta] [--tflite-int8] [--data FER2013.csv.gz]
    python training/ship_model.py --recard-tflite-int8 NAME --data FER2013.csv.gz   # an already shipped model
    python training/ship_model.py --recard-per-class NAME --data FER2013.csv.gz     # the same

The card (`fer_batch/models/NAME.json`) is written from the run's own metrics.json and config.json, so the figures
shipped are the ones the run measured. ``--quantize int8`` stores the dense layers' kernels as int8 (Keras
``Model.quantize``: per-channel weights, inputs quantized per face at run time), which halves a VGG whose weights
are mostly in its dense head; the quantized file is re-measured on the data's PublicTest rows and the card gives
those figures, beside the float ones. ``--strip-tta`` ships the network without its flip test-time-augmentation
wrapper, at half the cost a face, and re-measures it the same way (the card keeps the TTA figure beside it).
``--tflite-int8`` measures the model converted to TensorFlow Lite with int8 weights and dynamically quantized
activations against the float conversion on the PublicTest rows and on the generated faces that
``tests/test_shipped_models.py`` judges int8 on (``tests/synthetic_media.probe_faces``), and only if it keeps the
accuracy within 0.2 points and the float model's class on at least 99% of each set (measured as the classifier
runs int8: near ties re-run in float, ``fer_batch.unsure_faces.recheck_near_ties``; with ``--flip-margin``, float and
int8 both take the card's second look, as the TFLite runtime runs them), sets ``tflite_quantization`` in the card:
the classifier's TFLite runtime then converts it so (``fer_batch.classify.tflite_quantization``).
``--recard-tflite-int8 NAME`` does that measurement for the model already in the package, changing only its card.
Every card gives the per-class table (precision, recall, F1, support) of the figure it reports, and int8's beside
int8's; ``--recard-per-class NAME`` measures a packaged model that lacks them as the classifier runs its card, and
writes them only if it reproduces the card's accuracy (so that the table belongs to that figure).
``--flip-margin M`` writes ``flip_margin`` in the card: the classifier then classifies the faces whose two likeliest
emotions lie within M a second time, mirrored, and averages the two (``fer_batch.unsure_faces.second_look``). The model
is measured on PublicTest as the classifier runs it so (Keras, and int8 TFLite where the card asks for it), and the
card's accuracy is that figure, with the one before the second look beside it. Only for a model without test-time
views (``--strip-tta``): one with flip TTA already averages every face with its mirror image.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from fer_batch.training.metrics import per_class_table

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "fer_batch" / "models"


#: The int8 TFLite conversion ships only if it loses at most this much PublicTest accuracy (0.2 points) ...
TFLITE_INT8_MAX_LOSS = 0.002
#: ... and gives the float model's class on at least this share of the PublicTest faces, and of the generated ones.
TFLITE_INT8_MIN_AGREEMENT = 0.99


NAME_HELP = "fast or accurate (the package's models); with --dest, any name (the model is then DEST/NAME.keras)"


def check_name(ap: argparse.ArgumentParser, name: str, dest: Path) -> None:
    """Only ``fast`` and ``accurate`` go into the package's models folder (or anywhere inside it); a model shipped
    elsewhere (``--dest``: a user's own) may have any name of letters, digits, ``.``, ``_``, ``-`` and spaces that
    makes a plain file name on every system."""
    import re

    models, where = MODELS.resolve(), dest.resolve()
    if (where == models or models in where.parents) and name not in ("fast", "accurate"):
        ap.error(f"NAME {name!r}: the package ships fast and accurate; give --dest DIR to ship a model of your own")
    if name.lower().endswith(".keras"):
        ap.error(f"NAME {name!r}: give the name without .keras (the model is written as DEST/NAME.keras)")
    reserved = {"CON", "PRN", "AUX", "NUL", *(f"{d}{i}" for d in ("COM", "LPT") for i in range(10))}  # Windows
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 ._-]*(?<![ .])", name) or name.split(".")[0].upper() in reserved:
        ap.error(f"NAME {name!r}: expected a plain file name (letters, digits, '.', '_', '-', spaces)")


def main() -> None:
    if "--recard-tflite-int8" in sys.argv:
        return recard_main()
    if "--recard-per-class" in sys.argv:
        return recard_per_class_main()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("name", help=NAME_HELP)
    ap.add_argument("--status", choices=["interim", "final"], required=True)
    ap.add_argument("--command", required=True, help="the exact command that produced the run")
    ap.add_argument("--tflite-int8", action="store_true",
                    help="measure int8 in TensorFlow Lite and, if it keeps the accuracy, ask for it in the card")
    ap.add_argument("--notes", default="")
    ap.add_argument("--dest", type=Path, default=MODELS, help="folder to ship into (default: the package's models)")
    ap.add_argument("--quantize", choices=["int8"], help="store dense kernels as int8 and re-measure (needs --data)")
    ap.add_argument("--strip-tta", action="store_true",
                    help="ship the network without its test-time-augmentation wrapper (needs --data)")
    ap.add_argument("--flip-margin", type=float, metavar="M",
                    help="classify the faces whose top two emotions lie within M again, mirrored (needs --data)")
    ap.add_argument("--data", help="the FER-2013 CSV whose PublicTest rows re-measure a changed model (or the run's "
                                   "own data: its validation faces, held out as the run held them)")
    args = ap.parse_args()
    check_name(ap, args.name, args.dest)
    if (args.quantize or args.strip_tta or args.tflite_int8 or args.flip_margin) and not args.data:
        ap.error("--quantize, --strip-tta, --tflite-int8 and --flip-margin need --data to re-measure the model that "
                 "ships")
    if args.flip_margin is not None and not 0 < args.flip_margin <= 1:
        ap.error(f"--flip-margin {args.flip_margin}: expected a number in (0, 1]")

    metrics = json.loads((args.run_dir / "metrics.json").read_text())
    config = json.loads((args.run_dir / "config.json").read_text())
    val = metrics["splits"].get("val")
    if val is None:
        raise SystemExit(f"{args.run_dir} measured no validation faces (its data had none: FER-2013's PublicTest "
                         "rows, a val/ folder, or data without splits, of which fer-batch train holds out 20%); a "
                         "card's figures are measured on them")
    card = {
        "name": args.name,
        "status": args.status,
        "arch": metrics["arch"],
        "params": metrics["params"],
        "tta": metrics.get("tta", "none"),
    }
    _record(card, val)
    card |= {
        "publictest_accuracy_without_tta": round(metrics["splits"].get("val_no_tta", val)["accuracy"], 4),
        "epochs": metrics["epochs"],
        # Wall time of the invocation that finished the run (a resumed run also spent the earlier invocations').
        "wall_time_s": metrics.get("wall_time_s_this_invocation"),
        "command": args.command,
        "machine": config.get("machine", {}),
        "training_config": config.get("config", {}),
        "notes": args.notes,
    }
    if "soup_of" in metrics:  # a run folder of training/make_soup.py: the runs whose weights it averages
        card["soup_of"] = metrics["soup_of"]
        # the members as this card's model runs: without their TTA when it ships without its own
        card["soup_members_publictest_accuracy"] = metrics[
            "soup_members_val_accuracy_without_tta" if args.strip_tta else "soup_members_val_accuracy"]
        card["soup_members_epochs"] = metrics["soup_members_epochs"]
        card["soup_members_wall_time_s"] = metrics["soup_members_wall_time_s"]
    source = args.run_dir / "model.keras"
    if args.flip_margin is not None and card["tta"] != "none" and not args.strip_tta:
        raise SystemExit(f"--flip-margin: {source} already averages each face with its mirror image (test-time "
                         f"views {card['tta']!r}); ship it with --strip-tta")
    publictest = publictest_faces(args.data, [args.run_dir]) if args.data else None  # read once
    if args.strip_tta:
        source = strip_tta(source, publictest, card)
    if args.quantize:
        source = quantize(source, publictest, card)
    int8_probs = tflite_int8(source, publictest, card, args.flip_margin) if args.tflite_int8 else None
    if args.flip_margin is not None:
        second_look(source, args.flip_margin, publictest, card, int8_probs)
    size = source.stat().st_size
    if size > 25 * 2**20:
        raise SystemExit(f"{source} is {size / 2**20:.1f} MB: too big to ship (limit 25 MB)")
    args.dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, args.dest / f"{args.name}.keras")
    (args.dest / f"{args.name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"shipped {args.name}: {card['arch']}, PublicTest {card['publictest_accuracy']:.4f}, {size / 1e6:.1f} MB")


def _record(card: dict, report: dict, prefix: str = "publictest") -> None:
    """Put ``report``'s accuracy, macro-F1 and per-class table in ``card`` under ``prefix``, so that a figure never
    ships without the table it belongs to (a run's metrics from before tables were kept have none)."""
    card[f"{prefix}_accuracy"] = round(report["accuracy"], 4)
    card[f"{prefix}_macro_f1"] = round(report["macro_f1"], 4)
    if "per_class" in report:
        card[f"{prefix}_per_class"] = per_class_table(report)


def publictest_faces(data: str, runs=()):
    """The PublicTest rows of ``data`` (the validation faces of other data, as ``runs`` held them out), on which a
    changed model is re-measured."""
    from fer_batch.errors import FerBatchError
    from fer_batch.training.holdout import holdout

    try:
        return holdout(data, runs)["val"]
    except FerBatchError as exc:
        raise SystemExit(str(exc)) from None


def strip_tta(path: Path, val, card: dict) -> Path:
    """Write ``model_no_tta.keras`` (the network inside the TTA wrapper) beside ``path``; re-measure it into
    ``card``."""
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
    views = card.get("tta", "flip")  # what the run's wrapper averaged (flip unless trained with --tta crops)
    card[f"publictest_accuracy_with_{views}_tta"] = card["publictest_accuracy"]
    card["tta"] = "none"
    _record(card, report)
    card["publictest_accuracy_without_tta"] = card["publictest_accuracy"]
    print(f"without TTA: PublicTest {report['accuracy']:.4f} (with {views} TTA "
          f"{card[f'publictest_accuracy_with_{views}_tta']:.4f})")
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
    if "publictest_per_class" in card:  # the float figure keeps its table, as every figure a card reports does
        card["float_publictest_per_class"] = card["publictest_per_class"]
    card["quantization"] = "int8 dense kernels (keras Model.quantize)"
    _record(card, report)
    # The TTA wrapper's network alone; a model without the wrapper is its own "without TTA".
    inner = tta_inner(shipped)
    alone = report if inner is shipped else evaluate_model(inner, val)
    card["publictest_accuracy_without_tta"] = round(alone["accuracy"], 4)
    print(f"int8: PublicTest {report['accuracy']:.4f} (float {card['float_publictest_accuracy']:.4f}), "
          f"{out.stat().st_size / 1e6:.1f} MB")
    return out


def tflite_int8(path: Path, val, card: dict, flip_margin: float | None = None):
    """Measure ``path`` in TensorFlow Lite, float and int8, on ``val`` and on the generated probe faces; record
    int8 in ``card`` if it keeps the accuracy and the float class (see the module docstring). Returns int8's
    probabilities for ``val``, as measured, if it did (else None). With ``flip_margin`` (the card's second look),
    what decides is the classifier as its TFLite runtime runs the card, float against int8: both take the second
    look, and int8 re-runs its near ties in float with theirs."""
    import tempfile

    import numpy as np

    from fer_batch.classify import load_keras_model
    from fer_batch.dequantize import dequantized, is_quantized
    from fer_batch.tflite import TFLiteRunner, convert
    from fer_batch.training.metrics import classification_report
    from fer_batch.unsure_faces import NEAR_TIE, near_tie_rows, recheck_near_ties

    model = load_keras_model(path)
    if is_quantized(model):  # the converter refuses Keras's int8 layers: their float equivalent, as analyze does
        model = dequantized(model)
    sys.path.insert(0, str(ROOT / "tests"))
    from synthetic_media import probe_faces

    with tempfile.TemporaryDirectory() as folder:
        probe = probe_faces(folder).astype(np.float32)
    probs, probe_probs, converted = {}, {}, {}
    for mode in (None, "dynamic-int8"):
        converted[mode] = convert(model, path, mode)
        run = TFLiteRunner(converted[mode], 256, path, threads=1, quantization=mode)
        probs[mode] = _run_padded(run, val.x)
        probe_probs[mode] = _run_padded(run, probe)
    raw_agreement = float(np.mean(probs[None].argmax(axis=1) == probs["dynamic-int8"].argmax(axis=1)))
    # As the classifier runs int8: the faces it cannot tell apart (top two within NEAR_TIE) re-run in float.
    one = TFLiteRunner(converted[None], 1, path, threads=1, quantization=None)
    ties = near_tie_rows(probs["dynamic-int8"])
    rechecked = len(ties) / len(val.x)
    probs["dynamic-int8"] = recheck_near_ties(probs["dynamic-int8"], val.x, one, ties)
    probe_probs["dynamic-int8"] = recheck_near_ties(probe_probs["dynamic-int8"], probe, one)
    without_look = None
    if flip_margin is not None:
        # With the card's second look, as the TFLite runtime runs it: float and int8 both look twice at their unsure
        # faces, and int8's near ties (after its second look) re-run in float with their own.
        without_look = float(np.mean(probs["dynamic-int8"].argmax(axis=1) == val.y))
        plain = {k: v for k, v in card.items() if k != "tflite_quantization"} | {"flip_margin": flip_margin}
        (probs[None], _, _), (probe_probs[None], _, _) = _as_shipped(path, plain, "tflite", val.x, probe)
        (probs["dynamic-int8"], look_share, rechecked), (probe_probs["dynamic-int8"], _, _) = _as_shipped(
            path, plain | {"tflite_quantization": "dynamic-int8"}, "tflite", val.x, probe)
    how = "" if flip_margin is None else f" as the TFLite runtime runs them (second look under {flip_margin})"
    float_report = classification_report(val.y, probs[None].argmax(axis=1))
    int8_report = classification_report(val.y, probs["dynamic-int8"].argmax(axis=1))
    agreement = float(np.mean(probs[None].argmax(axis=1) == probs["dynamic-int8"].argmax(axis=1)))
    probe_agreement = float(np.mean(probe_probs[None].argmax(axis=1) == probe_probs["dynamic-int8"].argmax(axis=1)))
    gap = float(np.abs(probs[None] - probs["dynamic-int8"]).max())
    loss = float_report["accuracy"] - int8_report["accuracy"]
    ok = (loss <= TFLITE_INT8_MAX_LOSS and agreement >= TFLITE_INT8_MIN_AGREEMENT
          and probe_agreement >= TFLITE_INT8_MIN_AGREEMENT)
    print(f"TFLite on {len(val.y)} PublicTest faces{how}: float {float_report['accuracy']:.4f}, int8 "
          f"{int8_report['accuracy']:.4f} (loss {100 * loss:.2f} points, at most {100 * TFLITE_INT8_MAX_LOSS:.1f}); "
          f"same class {100 * agreement:.2f}% (at least {100 * TFLITE_INT8_MIN_AGREEMENT:.0f}%); largest "
          f"probability difference {gap:.4f}; {100 * rechecked:.1f}% of the faces were near ties re-run in float "
          f"(int8 alone: same class {100 * raw_agreement:.2f}%)")
    print(f"TFLite on {len(probe)} generated faces{how}: same class {100 * probe_agreement:.2f}% (at least "
          f"{100 * TFLITE_INT8_MIN_AGREEMENT:.0f}%): {'int8 recorded in the card' if ok else 'int8 NOT shipped'}")
    if ok:
        card["tflite_quantization"] = "dynamic-int8"
        _record(card, int8_report, "tflite_publictest")
        card["tflite_float_publictest_accuracy"] = round(float_report["accuracy"], 4)
        card["tflite_agreement_with_float"] = round(agreement, 4)
        card["tflite_agreement_with_float_generated"] = round(probe_agreement, 4)
        if flip_margin is not None:
            card["tflite_agreement_flip_margin"] = flip_margin
            card["tflite_publictest_accuracy_without_second_look"] = round(without_look, 4)
            card["tflite_second_look_share"] = round(look_share, 4)
        card["tflite_near_tie_margin"] = NEAR_TIE
        card["tflite_near_ties_rechecked"] = round(rechecked, 4)
        card["tflite_agreement_with_float_int8_alone"] = round(raw_agreement, 4)
        card["tflite_max_probability_difference"] = round(gap, 4)
    return probs["dynamic-int8"] if ok else None


def _as_shipped(model_path: Path, card: dict, runtime: str, *face_sets):
    """``(probabilities, share looked at twice, share of near ties re-run)`` for each of ``face_sets``, as the
    classifier runs ``model_path`` in ``runtime`` with ``card`` beside it (a trial copy: the card decides int8 and
    the second look, exactly as it will in the package)."""
    import tempfile

    import numpy as np

    from fer_batch.classify import Classifier

    results = []
    with tempfile.TemporaryDirectory() as folder:  # the classifier reads the card beside the model
        trial = Path(folder) / "model.keras"
        shutil.copyfile(model_path, trial)
        trial.with_suffix(".json").write_text(json.dumps(card))
        classifier = Classifier(trial, runtime=runtime)
        for x in face_sets:
            classifier.faces_flipped = classifier.faces_rechecked = 0
            probs = np.concatenate([classifier.predict(x[i:i + 256]) for i in range(0, len(x), 256)])
            results.append((probs, classifier.faces_flipped / len(x), classifier.faces_rechecked / len(x)))
    return results


def second_look(model_path: Path, margin: float, val, card: dict, int8_probs=None) -> None:
    """Put ``flip_margin`` in ``card`` and its PublicTest figures as the classifier runs ``model_path`` with it in
    Keras; the figures from before the second look are kept beside them. ``int8_probs``: what :func:`tflite_int8`
    measured for int8 TFLite with the same second look (and recorded in ``card``), compared here with Keras."""
    import numpy as np

    from fer_batch.training.metrics import classification_report

    [(probs, share, _)] = _as_shipped(model_path, {**card, "flip_margin": margin}, "keras", val.x)
    report = classification_report(val.y, probs.argmax(axis=1))
    card["flip_margin"] = margin
    card["publictest_accuracy_without_second_look"] = card["publictest_accuracy"]
    _record(card, report)
    card["second_look_share"] = round(share, 4)
    line = (f"second look under {margin}: PublicTest {report['accuracy']:.4f} in Keras ({100 * share:.1f}% of the "
            f"faces looked at twice; before {card['publictest_accuracy_without_second_look']:.4f})")
    if int8_probs is not None:
        agreement = float(np.mean(int8_probs.argmax(axis=1) == probs.argmax(axis=1)))
        card["tflite_agreement_with_float_second_look"] = round(agreement, 4)
        line += (f"; int8 TFLite {card['tflite_publictest_accuracy']:.4f} "
                 f"({100 * card['tflite_second_look_share']:.1f}%), the float class on {100 * agreement:.2f}%")
    print(line)


def _run_padded(run, x, batch: int = 256):
    """``run`` (a fixed-batch TFLite runner) over all of ``x``, the last batch padded with zeros."""
    import numpy as np

    padded = np.zeros((-(-len(x) // batch) * batch, *x.shape[1:]), np.float32)
    padded[:len(x)] = x
    return np.concatenate([run(padded[i:i + batch]) for i in range(0, len(padded), batch)])[:len(x)]


def _recard_args(flag: str, description: str) -> argparse.Namespace:
    """``FLAG NAME --data CSV [--dest DIR]``: the arguments of the modes that re-measure a packaged model's card."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument(flag, dest="name", choices=["fast", "accurate"], required=True)
    ap.add_argument("--data", required=True, help="the FER-2013 CSV whose PublicTest rows measure the model")
    ap.add_argument("--dest", type=Path, default=MODELS, help="the models folder (default: the package's)")
    return ap.parse_args()


def recard_main() -> None:
    args = _recard_args("--recard-tflite-int8", "Measure the packaged model NAME as int8 in TensorFlow Lite and "
                                                "record it in its card if it keeps the accuracy (see ship_model.py).")
    card_path = args.dest / f"{args.name}.json"
    card = json.loads(card_path.read_text())
    if "flip_margin" in card:
        raise SystemExit(f"{card_path} has a second look (flip_margin {card['flip_margin']}), which this check does "
                         "not measure: ship the run again with --tflite-int8 --flip-margin")
    # A card that asked for int8 before must not keep asking for it after failing the check.
    card = {k: v for k, v in card.items() if not k.startswith("tflite_")}
    ok = tflite_int8(args.dest / f"{args.name}.keras", publictest_faces(args.data), card) is not None
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"updated {card_path}" + ("" if ok else ": int8 TFLite no longer requested"))
    if not ok:
        raise SystemExit(1)


def recard_per_class_main() -> None:
    args = _recard_args("--recard-per-class", "Measure the packaged model NAME on PublicTest as the classifier runs "
                                              "its card and write the per-class tables of the card's figures.")
    from fer_batch.training.metrics import classification_report

    card_path, model_path = args.dest / f"{args.name}.json", args.dest / f"{args.name}.keras"
    card = json.loads(card_path.read_text())
    val = publictest_faces(args.data)
    # publictest_accuracy is measured in Keras (with the card's views and second look), tflite_publictest_accuracy
    # as the TFLite runtime runs the card's int8.
    wanted = [("keras", "publictest_accuracy", "publictest_per_class")]
    if card.get("tflite_quantization"):
        wanted.append(("tflite", "tflite_publictest_accuracy", "tflite_publictest_per_class"))
    tables = {}
    for runtime, figure, key in wanted:
        if not isinstance(card.get(figure), (int, float)):
            raise SystemExit(f"{card_path} gives no {figure}: nothing to reproduce; ship the model again instead")
        [(probs, _, _)] = _as_shipped(model_path, card, runtime, val.x)
        report = classification_report(val.y, probs.argmax(axis=1))
        print(f"{args.name} in {runtime}: PublicTest {report['accuracy']:.4f} (card {card[figure]:.4f})")
        if round(report["accuracy"], 4) != card[figure]:
            raise SystemExit(f"{card_path}: {figure} is {card[figure]:.4f}, but the model measures "
                             f"{report['accuracy']:.4f} on these rows: a table from this measurement would not be "
                             "the card's; ship the model again instead")
        tables[key] = per_class_table(report)
    card.update(tables)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"updated {card_path}: {', '.join(tables)}")


if __name__ == "__main__":
    main()
