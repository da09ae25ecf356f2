"""Average the weights of trained runs of one network into a new run folder (a "model soup"), measured like a run.

    python training/make_soup.py OUT_DIR RUN_DIR RUN_DIR [...] --data FER2013.csv.gz

Each RUN_DIR is a finished `fer-batch train` run (model.keras, metrics.json, config.json) of the same --arch and
test-time views, each fine-tuned from the one before (--init), as the campaign's students are: such networks lie in
one basin, and their mean is one network that often scores like the ensemble of the two at the cost of one
(``fer_batch.training.ensemble.weight_average``). OUT_DIR gets what a run leaves: model.keras, metrics.json (the
data's PublicTest and PrivateTest rows where present, with and without the test-time views), confusion PNGs and a
config.json holding the last run's configuration and the runs averaged, so that `training/ship_model.py OUT_DIR ...`
ships it like any run. Batch-norm statistics are averaged too, not re-estimated (re-estimating them on the training
faces lowered f9 from 68.46 to 68.32% on PublicTest).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def make_soup(out: Path, runs: list[Path], data: str) -> dict:
    """Write the soup of ``runs`` into ``out``; returns its metrics. Checks everything before writing anything."""
    from fer_batch.classify import load_keras_model
    from fer_batch.errors import UsageError
    from fer_batch.training.holdout import holdout
    from fer_batch.training.ensemble import weight_average
    from fer_batch.training.evaluate import split_reports, write_report

    start = time.perf_counter()
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    configs = [json.loads((run / "config.json").read_text()) for run in runs]
    settings = [c.get("config", {}) for c in configs]
    for key, values in (("arch", [m.get("arch") for m in metrics]), ("tta", [m.get("tta", "none") for m in metrics])):
        if len(set(values)) > 1:
            raise UsageError(f"runs differ in {key}: " + ", ".join(f"{r} {v}" for r, v in zip(runs, values)))
    tta = metrics[-1].get("tta", "none")
    dataset = holdout(data, runs)  # as the runs held it out: the same seed and face cutting
    for before, run, setting in zip(runs, runs[1:], settings[1:]):
        if not str(setting.get("init") or "").startswith(str(before)):
            print(f"note: {run} did not start from {before} (--init {setting.get('init')}); networks from different "
                  "starts usually average to a worse one: compare the accuracy below with the runs'", file=sys.stderr)
    soup = weight_average([load_keras_model(run / "model.keras") for run in runs], names=[str(r) for r in runs])
    out.mkdir(parents=True, exist_ok=True)
    soup.save(out / "model.keras")
    soup = load_keras_model(out / "model.keras")  # measure the file that ships, as it loads
    reports = split_reports(soup, dataset, tta)
    (out / "config.json").write_text(json.dumps({**configs[-1], "soup_of": [str(r) for r in runs]}, indent=2))
    return write_report(out, reports, extra={
        "arch": metrics[-1]["arch"], "params": int(soup.count_params()), "epochs": metrics[-1]["epochs"],
        "wall_time_s_this_invocation": round(time.perf_counter() - start, 1), "model": str(out / "model.keras"),
        "tta": tta, "soup_of": [str(r) for r in runs],
        "soup_members_val_accuracy": [round(m["splits"]["val"]["accuracy"], 4) for m in metrics],
        "soup_members_val_accuracy_without_tta": [
            round(m["splits"].get("val_no_tta", m["splits"]["val"])["accuracy"], 4) for m in metrics],
        "soup_members_epochs": [m["epochs"] for m in metrics],
        "soup_members_wall_time_s": [m.get("wall_time_s_this_invocation") for m in metrics],
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the run folder to write")
    ap.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="two or more finished runs to average")
    ap.add_argument("--data", required=True, help="the FER-2013 CSV (or image folder) whose test rows measure it")
    args = ap.parse_args()
    if len(args.runs) < 2:
        ap.error(f"a soup needs at least two runs, got {len(args.runs)}")
    for run in args.runs:
        missing = [f for f in ("model.keras", "metrics.json", "config.json") if not (run / f).is_file()]
        if missing:
            ap.error(f"RUN_DIR {str(run)!r} is not a finished run: no {', '.join(missing)}")
    if args.out.exists() and not args.out.is_dir():
        ap.error(f"OUT_DIR {str(args.out)!r} is a file; name a folder")
    if (args.out / "model.keras").exists():
        ap.error(f"OUT_DIR {str(args.out)!r} already holds a model.keras; choose a new folder")
    from fer_batch.errors import FerBatchError

    try:
        metrics = make_soup(args.out, args.runs, args.data)
    except FerBatchError as e:
        ap.error(str(e))
    val = metrics["splits"]["val"]
    print(f"wrote {args.out}: PublicTest {val['accuracy']:.4f} "
          f"(runs: {', '.join(f'{a:.4f}' for a in metrics['soup_members_val_accuracy'])})")


if __name__ == "__main__":
    main()
