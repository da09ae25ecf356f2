"""``fer-batch models``: the packaged models (or one model file) as their cards describe them.

Reads the cards only (``fer_batch/models/NAME.json``): nothing heavy is imported, so it answers at once.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from . import EXIT_OK

DESCRIPTION = """Without NAME: one line a packaged model, with its PublicTest accuracy as `analyze` runs it. With
NAME (a packaged name or a .keras file with its card beside it): that model's card in full, per-class table
included. Figures are FER-2013 PublicTest (3,589 faces), measured when the model shipped."""

EPILOG = "exit codes: 0 shown; 3 no such model (a wrong name lists the packaged ones)."

VIEWS = {"none": "one view", "flip": "face + mirror image", "crops": "ten views (face, 4 shifts, each mirrored)"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the packaged models, or show one model's card",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", metavar="NAME|PATH", help="packaged model (fast, accurate) or a .keras file")
    p.add_argument("--json", action="store_true", help="print the card itself (JSON)")
    p.set_defaults(run=run_models)


def run_models(args: argparse.Namespace) -> int:
    import json

    from ..classify import PACKAGED, available_models, model_card, resolve_model

    if args.name is None:
        cards = {name: model_card(name) for name in available_models()}
        if args.json:
            print(json.dumps(cards, indent=2))
            return EXIT_OK
        rows = [_summary_row(name, resolve_model(name), card) for name, card in cards.items()]
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
    print("\n".join(_card_lines(str(args.name), path, card)))
    return EXIT_OK


HEADER = ("name", "status", "network", "size", "test-time views", "PublicTest, as analyze runs it")


def _percent(x) -> str:
    return f"{100 * x:.2f}%" if isinstance(x, (int, float)) else "?"


def _as_analyze_runs_it(card: dict) -> str:
    """The card's accuracy for the runtime `analyze` picks: int8 TFLite on a CPU where the card asks for it."""
    look = f", second look within {card['flip_margin']}" if card.get("flip_margin") else ""
    if card.get("tflite_quantization"):
        return (f"{_percent(card.get('tflite_publictest_accuracy'))} (CPU: int8 TFLite{look}; "
                f"GPU: {_percent(card.get('publictest_accuracy'))} in Keras)")
    if "publictest_accuracy" not in card:
        return "not measured (no card)"
    runtime = "Keras" + (", int8 kernels" if card.get("quantization") else "")
    return f"{_percent(card['publictest_accuracy'])} ({runtime}{look})"


def _summary_row(name: str, path: Path, card: dict) -> tuple[str, ...]:
    return (name, card.get("status", "?"), card.get("arch", "?"), f"{path.stat().st_size / 1e6:.1f} MB",
            card.get("tta", "?"), _as_analyze_runs_it(card))


def _card_lines(name: str, path: Path, card: dict) -> list[str]:
    where = f"{path} ({path.stat().st_size / 1e6:.1f} MB)"
    lines = [where if name == str(path) else f"{name}: {where}"]
    if not card:
        return lines + _run_lines(path)
    views = card.get("tta", "none")
    lines += [
        f"status      {card.get('status', '?')}",
        f"network     {card.get('arch', '?')}, {card.get('params', 0) / 1e6:.2f} M parameters",
        f"views       {views}: {VIEWS.get(views, views)}",
        f"PublicTest  {_as_analyze_runs_it(card)}; without test-time views "
        f"{_percent(card.get('publictest_accuracy_without_tta'))}",
    ]
    for key, title in (("publictest_per_class", "per class (Keras)"),
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
    return ["", f"{title}:", f"  {'class':<10}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}",
            *(f"  {cls:<10}{r['precision']:>10.3f}{r['recall']:>8.3f}{r['f1']:>8.3f}{r['support']:>9d}"
              for cls, r in rows.items())]


def _run_lines(path: Path) -> list[str]:
    """No card: what ``fer-batch train`` measured, where the file is a run's ``model.keras`` beside its metrics."""
    import json

    metrics_path = path.parent / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        val = metrics["splits"]["val"]
    except (OSError, ValueError, KeyError, TypeError):
        return ["no card beside this file, and no training run's metrics.json with a validation split: nothing "
                "measured to show"]
    plain = metrics["splits"].get("val_no_tta", val)
    return [f"no card; measured by the training run ({metrics_path}):",
            f"network     {metrics.get('arch', '?')}, {metrics.get('epochs', '?')} epochs, test-time views "
            f"{metrics.get('tta', 'none')}",
            f"validation  {_percent(val.get('accuracy'))} on {val.get('n', '?')} faces (without test-time views "
            f"{_percent(plain.get('accuracy'))}): PublicTest for FER-2013, else the run's seeded holdout",
            *_table("per class", val.get("per_class"))]

