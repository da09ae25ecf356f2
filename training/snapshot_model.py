"""The network of a run still in progress, as its latest checkpoint holds it, saved as a ``.keras`` model.

    python training/snapshot_model.py RUN_OUT SNAPSHOT.keras

RUN_OUT is a ``fer-batch train --out`` folder; its ``config.json`` names the architecture, the teacher and the
checkpoint folder, whose ``backup/latest.weights.h5`` (Keras's ``BackupAndRestore``, written after every epoch) holds
the trainer's weights and optimizer state. The snapshot is the bare network with the run's test-time views, as
``model.keras`` will be when the run ends, so ``training/ensemble_eval.py`` and ``fer-batch evaluate`` take it: what
would an ensemble gain if the run stopped now. The checkpoint is copied before it is read, so a run that writes its
next epoch meanwhile is not disturbed; read nothing while the run is between epochs' writes (compare the metadata).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path


def snapshot(run_out: Path, dest: Path) -> int:
    """Save the network of ``run_out``'s latest checkpoint to ``dest``; returns the epochs it has completed."""
    import keras
    import numpy as np

    from fer_batch.classify import resolve_model
    from fer_batch.training.architectures import build_model
    from fer_batch.training.checkpoints import METADATA, WEIGHTS
    from fer_batch.training.distillation import compile_trainer
    from fer_batch.training.saved_models import inference_copy, with_tta
    from fer_batch.training.schedules import make_optimizer
    from fer_batch.training.train_config import TrainConfig

    record = json.loads((run_out / "config.json").read_text())
    config = TrainConfig(**record["config"])
    backup = Path(record["checkpoint_dir"]) / "backup"
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / WEIGHTS
        shutil.copyfile(backup / WEIGHTS, weights)
        epoch = json.loads((backup / METADATA).read_text())["epoch"]
        net = build_model(config.arch)
        # The trainer as fit built it (the online distiller carries its teacher), so the file's layout matches.
        teacher = resolve_model(config.teacher, option="--teacher") if config.teacher else None  # a name or a path
        trainer = compile_trainer(net, config, make_optimizer(config, config.lr), teacher)
        trainer(np.zeros((1, *net.input_shape[1:]), "float32"))
        trainer.optimizer.build(trainer.trainable_variables)
        trainer.load_weights(weights)
    with_tta(inference_copy(net), config.tta).save(dest)
    keras.backend.clear_session()
    return epoch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_out", type=Path, help="the run's --out folder (with config.json)")
    parser.add_argument("dest", type=Path, help="where to save the snapshot (.keras)")
    args = parser.parse_args(argv)
    if args.dest.suffix != ".keras":
        parser.error(f"dest {str(args.dest)!r}: must end in .keras")
    epoch = snapshot(args.run_out, args.dest)
    print(f"{args.dest}: {args.run_out.name} after epoch {epoch}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
