"""Copy a finished `fer-batch train` run into the package as a named model, with its card.

    python training/ship_model.py RUN_DIR NAME --status interim|final --command "fer-batch train ..."

The card (`fer_batch/models/NAME.json`) is written from the run's own metrics.json and config.json, so the figures
shipped are the ones the run measured.
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
    args = ap.parse_args()

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
    size = (args.run_dir / "model.keras").stat().st_size
    if size > 25 * 2**20:
        raise SystemExit(f"{args.run_dir}/model.keras is {size / 2**20:.1f} MB: too big to ship (limit 25 MB)")
    shutil.copyfile(args.run_dir / "model.keras", MODELS / f"{args.name}.keras")
    (MODELS / f"{args.name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"shipped {args.name}: {card['arch']}, PublicTest {card['publictest_accuracy']:.4f}, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
