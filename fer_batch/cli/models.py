"""``fer-batch models``: the packaged models (or one model file) as their cards describe them.

Reads the cards (``fer_batch/models/NAME.json``) and, for a model file without one, its training run's
``metrics.json``: nothing heavy is imported, so it answers at once.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from ..wording import count
from . import EXIT_OK

DESCRIPTION = """Without NAME: one line per packaged model, with its PublicTest accuracy as `analyze` runs it. With
NAME (a packaged name or a .keras file): that model's card in full, per-class tables included; for a file without
a card beside it, what its training run measured (the run's metrics.json beside it). Figures are FER-2013
PublicTest (3,589 faces), measured when the model shipped."""

EPILOG = """exit codes: 0 shown; 3 no such model (a wrong name lists the packaged ones), or a card or metrics.json
that is not as fer-batch writes them."""

VIEWS = {"none": "one view", "flip": "face + mirror image", "crops": "ten views (face, 4 shifts, each mirrored)"}
HEADER = ("name", "status", "network", "size", "test-time views", "PublicTest, as analyze runs it")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the packaged models, or show one model's card",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="NAME|PATH",
                   help="packaged model (fast, accurate) or a .keras file (its card, or its run's metrics.json)")
    p.add_argument("--json", action="store_true", help="print the card itself (JSON; {} for a file without one)")
    p.set_defaults(run=run_models)


def run_models(args: argparse.Namespace) -> int:
    import json

    from ..classify import PACKAGED, available_models, model_card, resolve_model
    from ..errors import ModelError

    if args.name is None:
        cards = {name: model_card(name) for name in available_models()}
        if args.json:
            print(json.dumps(cards, indent=2))
            return EXIT_OK
        rows = []
        for name, card in cards.items():
            path = resolve_model(name)
            try:
                rows.append(_summary_row(name, path, card))
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise ModelError(_malformed(path.with_suffix(".json"), exc)) from None
        widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
        for row in [HEADER, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        missing = [name for name in PACKAGED if name not in cards]
        if missing:
            print(f"not in this installation: {', '.join(missing)}")
        print("`fer-batch models NAME` shows one card in full; `--model NAME` picks one for analyze and evaluate.")
        return EXIT_OK
    path = resolve_model(args.name, option="NAME")  # a wrong name lists the packaged ones (exit 3)
    card = model_card(path)
    if args.json:
        print(json.dumps(card, indent=2))
        return EXIT_OK
    shown = path.with_suffix(".json") if card else path.parent / "metrics.json"
    try:
        lines = _card_lines(args.name, path, card)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(_malformed(shown, exc)) from None
    print("\n".join(lines))
    return EXIT_OK


def _malformed(path: Path, exc: Exception) -> str:
    return (f"{str(path)!r} is not as fer-batch writes it ({type(exc).__name__}: {exc}); `fer-batch models "
            "NAME --json` prints a card as it is")


def _percent(x) -> str:
    return f"{100 * x:.2f}%" if isinstance(x, (int, float)) and not isinstance(x, bool) else "?"


def _as_analyze_runs_it(card: dict) -> str:
    """The card's accuracy for the runtime ``analyze --runtime auto`` picks (see ``Classifier``): Keras for a model
    with Keras-int8 layers, else TFLite on a CPU (int8 where the card asks for it) and Keras on a GPU."""
    from ..classify import flip_margin_problem

    margin = card.get("flip_margin")
    problem = flip_margin_problem(margin)
    if problem:  # a card analyze would refuse
        raise ValueError(problem)
    look = f", second look within {margin}" if margin else ""
    if "publictest_accuracy" not in card:
        return "not measured (no card)"
    if card.get("quantization"):
        return f"{_percent(card['publictest_accuracy'])} (Keras, int8 kernels{look})"
    if card.get("tflite_quantization"):
        return (f"{_percent(card.get('tflite_publictest_accuracy'))} (CPU: int8 TFLite{look}; "
                f"GPU: {_percent(card['publictest_accuracy'])} in Keras)")
    # Float: TFLite on a CPU and Keras on a GPU, which agree to about 1e-6.
    return f"{_percent(card['publictest_accuracy'])} (float{look})"


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.0f} kB"


def _summary_row(name: str, path: Path, card: dict) -> tuple[str, ...]:
    return (name, str(card.get("status", "?")), str(card.get("arch", "?")), _size(path),
            str(card.get("tta", "?")), _as_analyze_runs_it(card))


def _card_lines(name: str, path: Path, card: dict) -> list[str]:
    where = f"{path} ({_size(path)})"
    lines = [where if Path(name).expanduser() == path else f"{name}: {where}"]
    if not card:
        return lines + _run_lines(path)
    views = str(card.get("tta", "none"))
    params = card.get("params")
    before = []
    if views != "none":
        before.append(f"without test-time views {_percent(card.get('publictest_accuracy_without_tta'))}")
    if card.get("flip_margin"):
        before.append(f"before the second look {_percent(card.get('publictest_accuracy_without_second_look'))} "
                      "in Keras" + (f", {_percent(card.get('tflite_publictest_accuracy_without_second_look'))} in "
                                    "int8 TFLite" if card.get("tflite_quantization") else ""))
    lines += [
        f"status      {card.get('status', '?')}",
        f"network     {card.get('arch', '?')}, "
        + (f"{params / 1e6:.2f} M parameters" if isinstance(params, (int, float)) else "parameters not given"),
        f"views       {views}: {VIEWS.get(views, views)}",
        f"PublicTest  {_as_analyze_runs_it(card)}" + (f"; {'; '.join(before)}" if before else ""),
    ]
    for key, title in (("publictest_per_class", "per class (Keras)"),
                       ("float_publictest_per_class", "per class (float, before its Dense kernels went int8)"),
                       ("tflite_publictest_per_class", "per class (int8 TFLite, as analyze runs it on a CPU)")):
        lines += _table(title, card.get(key))
    for key, title in (("command", "made by"), ("notes", "notes")):
        if card.get(key):
            lines += ["", f"{title}:", textwrap.fill(str(card[key]), width=100, initial_indent="  ",
                                                     subsequent_indent="  ", break_on_hyphens=False)]
    return lines


def _table(title: str, rows: dict | None) -> list[str]:
    if not rows:
        return []
    from ..training.metrics import per_class_lines  # numpy, but no model

    return ["", f"{title}:", *per_class_lines(rows, indent="  ")]


def _run_lines(path: Path) -> list[str]:
    """No card: what ``fer-batch train`` measured, where the file is a run's ``model.keras`` beside its metrics."""
    import json

    metrics_path = path.parent / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        splits = metrics["splits"]
        # A run on data with a test split but no validation one (train/ and test/ folders) measured the test split.
        name = next(n for n in ("val", "test") if n in splits)
        measured = splits[name]
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return ["no card beside this file, and no training run's metrics.json with a validation or test split: "
                "nothing measured to show"]
    plain = splits.get(f"{name}_no_tta", measured)
    epochs = metrics.get("epochs", "?")
    faces = _validation_rows(path.parent) if name == "val" else "the data's test split"
    return [f"no card; measured by the training run ({metrics_path}):",
            f"network     {metrics.get('arch', '?')}, {count(epochs, 'epoch')}, test-time views "
            f"{metrics.get('tta', 'none')}",
            f"{'validation' if name == 'val' else 'test':<11} {_percent(measured.get('accuracy'))} on "
            f"{measured.get('n', '?')} faces (without test-time views {_percent(plain.get('accuracy'))}): {faces}",
            *_table("per class", measured.get("per_class"))]


def _validation_rows(run: Path) -> str:
    """Which faces the run validated on, from its ``config.json`` (how ``fer-batch train`` split the data)."""
    import json

    try:
        method = json.loads((run / "config.json").read_text(encoding="utf-8"))["split_method"]
    except (OSError, ValueError, KeyError, TypeError):
        return "the data's validation split"
    if method == "usage":
        return "the CSV's PublicTest rows (its Usage column)"
    if method == "folders":
        return "the data's val/ folder"
    if str(method).startswith("stratified-"):
        return f"a seeded, stratified holdout of the data ({method.split('-', 1)[1]} train/validation)"
    return f"the data's validation split ({method})"
