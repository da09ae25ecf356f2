"""``fer-batch train`` and ``fer-batch evaluate``: options -> TrainConfig / evaluate() -> exit code.

Nothing heavy is imported at module level: TensorFlow, Keras and the training package load inside ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..config import FACE_MODES  # a light module: no numpy, TensorFlow or MediaPipe
from ..wording import count
from . import EXIT_OK

#: Keep in step with fer_batch.training.architectures.ARCHITECTURES (a test checks it); listed here so that
#: ``fer-batch train --help`` does not have to import Keras.
ARCH_HELP = {
    "seed": "the seed paper's net (4 conv blocks + Dense 4096)",
    "vgg": "VGG 64-128-256-512, 2 convs a stage, FC 1024x2 (~474 MMACs/face)",
    "vgg-m": "vgg at three-fifths width (~185 MMACs/face; the default)",
    "vgg-tiny": "VGG 32-64-128-256, one conv a stage, FC 256 (~33 MMACs/face)",
    "vgg-small": "VGG 32-64-128-256, FC 256",
    "resnet": "ResNet-18-like, stride-1 stem",
    "resnet-s2": "ResNet-18-like, stride-2 stem",
    "resnet-m": "resnet at half width (32-64-128-256; ~11 MB)",
    "compact": "small separable-conv student for distillation",
    "tiny": "a few thousand parameters, for tests and smoke runs",
}

TRAIN_HELP = """Train an emotion classifier on a FER-2013 CSV (emotion,pixels[,Usage]; plain or .gz) or an image folder
(ROOT/<split>/<emotion>/*.png|jpg or ROOT/<emotion>/*.png|jpg), resumably. Writes OUT/model.keras (a .keras file that
`fer-batch analyze --model OUT/model.keras` and `fer-batch evaluate` load), metrics.json, confusion_<split>.png,
history.csv, curves.png and config.json. Splits: a CSV's Usage column (Training -> train, PublicTest -> val,
PrivateTest -> test) or split folders; data without splits is split 80/20, stratified by class and seeded by --seed.
Malformed rows and unreadable images are skipped and listed (with line numbers) on stderr, every one of them in
OUT/skipped.txt."""

#: evaluate's splits (fer_batch.training.evaluate.SPLIT_CHOICES; a test checks they agree), without importing numpy.
SPLIT_CHOICES = ("val", "test", "train", "all")

#: TrainConfig's defaults as the help states them (a test checks they agree, so --help need not import numpy).
DEFAULTS = {"arch": "vgg-m", "epochs": 60, "batch_size": 64, "seed": 0, "optimizer": "sgd", "weight_decay": 5e-4,
            "label_smoothing": 0.1, "augment": "standard", "mixup": 0.0, "temperature": 4.0, "distill_weight": 0.7,
            "teacher_views": 4,
            "tta": "flip"}

TRAIN_EPILOG = "architectures (--arch):\n" + "".join(f"  {k:<10} {v}\n" for k, v in ARCH_HELP.items()) + """

Checkpoints are written after every epoch to --checkpoint-dir (default: a folder named after OUT under
$XDG_CACHE_HOME/fer-batch/checkpoints, or ~/.cache/fer-batch/checkpoints). After an interruption, run the same
command with --resume: training continues from the end of the last completed epoch with the same optimizer state
and learning-rate schedule. Changing --epochs on resume continues too, but the cosine schedule is then recomputed
for the new length from the step reached.

exit codes: 0 trained; 2 usage error (bad option, or OUT holds a run: use --resume or --overwrite); 3 the --teacher
or --init model cannot be found or loaded (an --init that --arch does not build is 2); 4 the dataset is unusable
(missing, no usable rows, unknown class folder); 130 interrupted (rerun with --resume)."""

FACES_HELP = ("image folders: as-is resizes each image whole to 48x48 (face crops, e.g. FER-2013 as PNGs; the "
              "default); detect finds the face in each photo with MediaPipe and cuts it as `analyze` does (photos "
              "without a face are skipped and listed; of several faces the largest is used)")

EVAL_HELP = """Evaluate a model on a labelled FER-2013 CSV or image folder: prints per-class precision, recall, F1 and
support, accuracy and macro-F1 for each split evaluated; with --out also writes metrics.json,
confusion_<split>.png and, where rows or images were passed over, skipped.txt there."""

EVAL_EPILOG = """which rows are evaluated (--split, repeatable):
  default   every split present except train: for FER-2013, PublicTest (val) and PrivateTest (test), each
            reported separately; for data without splits (no Usage column, no split folders), all rows.
  val/test  that split. For data without splits, val is the seeded, stratified 20% holdout that
            `fer-batch train --seed S` validated on (pass the same --seed), and train the other 80%.
  train     the training rows.
  all       every row of the file together, as one report.

exit codes: 0 evaluated; 2 usage error (e.g. a --split the data does not have); 3 the model cannot be found or
loaded (a wrong name lists the packaged ones); 4 the dataset is unusable."""


def add_parsers(subparsers) -> None:
    """Register ``train`` and ``evaluate``."""
    _add_train(subparsers)
    _add_evaluate(subparsers)


def _add_train(subparsers) -> None:
    p = subparsers.add_parser("train", help="train an emotion model on FER-2013 or an image folder",
                              description=TRAIN_HELP, epilog=TRAIN_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="PATH", type=os.path.expanduser,
                   help="FER-2013 CSV (.csv or .csv.gz) or image folder")
    p.add_argument("--out", required=True, metavar="DIR", type=os.path.expanduser,  # --out=~/run: as the shell would
                   help="run directory to write the model and report into")
    p.add_argument("--faces", choices=FACE_MODES, help=FACES_HELP)
    p.add_argument("--recipe", choices=("paper",),
                   help="paper: the seed paper's recipe (arch seed, 20 epochs, Adam 1e-3, no augmentation, no "
                        "smoothing, no schedule, no TTA); options given explicitly still override it")
    p.add_argument("--arch", metavar="NAME",
                   help=f"network: {', '.join(ARCH_HELP)} (default {DEFAULTS['arch']}; see below)")
    p.add_argument("--epochs", type=int, metavar="N", help=f"epochs (default {DEFAULTS['epochs']})")
    p.add_argument("--batch-size", type=int, metavar="N", help=f"batch size (default {DEFAULTS['batch_size']})")
    p.add_argument("--seed", type=int, metavar="N", help="seed for weights, shuffling, augmentation and the 80/20 "
                                                          f"split (default {DEFAULTS['seed']})")
    p.add_argument("--optimizer", choices=("sgd", "adam", "adamw"),
                   help=f"sgd (Nesterov momentum 0.9), adam or adamw (default {DEFAULTS['optimizer']})")
    p.add_argument("--lr", type=float, metavar="X", help="peak learning rate (default 0.02 for sgd, 1e-3 for adam(w)); "
                                                         "1 epoch of warm-up, then cosine decay to 0")
    p.add_argument("--weight-decay", type=float, metavar="X",
                   help="decoupled weight decay, scaled by the learning rate "
                        f"(default {DEFAULTS['weight_decay']:g}; not used by adam)")
    p.add_argument("--label-smoothing", type=float, metavar="X",
                   help=f"label smoothing in [0, 1) (default {DEFAULTS['label_smoothing']:g})")
    p.add_argument("--augment", choices=("none", "standard", "strong", "crop-erase"),
                   help="training augmentation: flip, rotation, zoom, shift, contrast; crop-erase: random 48 px "
                        "crops of the face padded by 4 px, flip, small rotation and scale, random erasing "
                        "(needs --augment-engine opencv) "
                        f"(default {DEFAULTS['augment']})")
    p.add_argument("--mixup", type=float, metavar="A",
                   help=f"mixup with Beta(A, A); 0 is off (default {DEFAULTS['mixup']:g})")
    p.add_argument("--teacher", metavar="MODEL",
                   help="distil from this model: a packaged name (fast, accurate) or a .keras file")
    p.add_argument("--init", metavar="MODEL",
                   help="start from this model's weights (a packaged name or a .keras path of the same --arch): "
                        "fine-tune on your own data, or run a second learning-rate cycle")
    p.add_argument("--teacher-mode", choices=("online", "cached", "views"),
                   help="online (default): the teacher sees every augmented batch; cached: its probabilities for "
                        "the un-augmented training faces are computed once and reused (several times cheaper on "
                        "a CPU); views: its probabilities for --teacher-views fixed augmented copies of each face, "
                        "computed once, epoch e training on copy e mod K")
    p.add_argument("--teacher-views", type=int, metavar="K",
                   help=f"augmented copies of each face for --teacher-mode views (default {DEFAULTS['teacher_views']})")
    p.add_argument("--temperature", type=float, metavar="T",
                   help=f"distillation temperature (default {DEFAULTS['temperature']:g})")
    p.add_argument("--distill-weight", type=float, metavar="W",
                   help="weight of the teacher's soft targets against the labels, in [0, 1] "
                        f"(default {DEFAULTS['distill_weight']:g})")
    p.add_argument("--tta", choices=("none", "flip", "crops"),
                   help="test-time augmentation built into the saved model: flip averages the face and its mirror "
                        "image; crops averages ten views (the face and four 2 px shifts, each mirrored) at ten "
                        f"times the cost (default {DEFAULTS['tta']})")
    p.add_argument("--checkpoint-dir", metavar="DIR", type=os.path.expanduser,
                   help="where per-epoch checkpoints go (default CACHE/fer-batch/checkpoints/<OUT name>-<hash>, "
                        "CACHE being $XDG_CACHE_HOME or ~/.cache)")
    mode = p.add_mutually_exclusive_group()
    p.add_argument("--time-budget", type=float, metavar="MIN",
                   help="stop fitting after about MIN minutes: after epoch 1 the run settles how many epochs fit "
                        "(at most --epochs) and fits the cosine schedule to them (not with --resume)")
    p.add_argument("--augment-engine", choices=("keras", "opencv"),
                   help="keras: Keras preprocessing layers (default); opencv: the same transforms with OpenCV, "
                        "far faster under the torch backend")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"),
                   help="float32 (default) or mixed_bfloat16: bf16 arithmetic with float32 weights, 2.9x faster for "
                        "the full-width vgg on CPUs with AMX, slower on most others (benchmarks/train_speed.py "
                        "--precisions tells); the saved model is float32 either way")
    p.add_argument("--data-workers", type=int, metavar="N",
                   help="threads preparing augmented batches ahead of the training step (default 1: in-line)")
    mode.add_argument("--resume", action="store_true", help="continue the interrupted run in OUT from its checkpoint")
    mode.add_argument("--overwrite", action="store_true",
                      help="start again even though OUT or the checkpoint folder holds an earlier run")
    p.set_defaults(run=run_train)


def _add_evaluate(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="measure a model on a labelled CSV or image folder",
                              description=EVAL_HELP, epilog=EVAL_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, metavar="NAME|PATH",
                   help="packaged model (fast, accurate; `fer-batch models` compares them) or a .keras file "
                        "(default: fast)")
    p.add_argument("--data", required=True, metavar="PATH", type=os.path.expanduser,
                   help="FER-2013 CSV (.csv or .csv.gz) or image folder")
    p.add_argument("--out", metavar="DIR", type=os.path.expanduser,
                   help="also write metrics.json, confusion_<split>.png (and skipped.txt, where any data was "
                        "passed over) into DIR")
    p.add_argument("--faces", choices=FACE_MODES, default="as-is", help=FACES_HELP)
    p.add_argument("--split", action="append", choices=SPLIT_CHOICES, dest="splits",
                   help="split to evaluate; repeat for several (default: see below)")
    p.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed of the 80/20 holdout for data without splits (default 0, as in train)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="faces per batch (default 256)")
    p.set_defaults(run=run_evaluate)


#: argparse destination -> TrainConfig field, for the options that map one to one.
_TRAIN_FIELDS = {
    "arch": "arch", "epochs": "epochs", "batch_size": "batch_size", "seed": "seed", "optimizer": "optimizer",
    "lr": "learning_rate", "weight_decay": "weight_decay", "label_smoothing": "label_smoothing",
    "augment": "augment", "mixup": "mixup", "teacher": "teacher", "temperature": "temperature",
    "distill_weight": "distill_weight", "tta": "tta", "checkpoint_dir": "checkpoint_dir",
    "time_budget": "time_budget_min", "data_workers": "data_workers",
    "augment_engine": "augment_engine", "teacher_mode": "teacher_mode", "teacher_views": "teacher_views",
    "init": "init", "faces": "faces", "precision": "precision",
}


def config_from_args(args: argparse.Namespace):
    """The :class:`~fer_batch.training.train.TrainConfig` the options describe (only given options override)."""
    from ..training.train_config import TrainConfig

    overrides = {field: getattr(args, dest) for dest, field in _TRAIN_FIELDS.items() if getattr(args, dest) is not None}
    overrides["resume"] = args.resume
    if args.recipe == "paper":
        return TrainConfig.paper(data=args.data, out=args.out, **overrides)
    return TrainConfig(data=args.data, out=args.out, **overrides)


def run_train(args: argparse.Namespace) -> int:
    from ..errors import UsageError

    config = config_from_args(args)  # validates option values (UsageError -> exit 2)
    # Options that would change nothing are refused, as --teacher-mode cached without a teacher is: a user who gives
    # them believes they shape the run.
    idle = [option for option, dest in (("--temperature", "temperature"), ("--distill-weight", "distill_weight"))
            if getattr(args, dest) is not None and not config.teacher]
    if idle:
        raise UsageError(f"{' and '.join(idle)} {'shape' if len(idle) > 1 else 'shapes'} distillation from a "
                         "teacher, and no --teacher was given")
    if args.teacher_views is not None and config.teacher_mode != "views":
        raise UsageError(f"--teacher-views {args.teacher_views} counts the cached copies of --teacher-mode views; "
                         f"the teacher mode is {config.teacher_mode!r}")
    if config.arch not in ARCH_HELP:  # the names of training.architectures (a test keeps them equal), without Keras
        raise UsageError(f"--arch {config.arch!r} is not an architecture; choose one of {', '.join(ARCH_HELP)}")
    from ..config import check_data, check_faces

    check_data(config.data)  # a missing file, or a photo given as the data: said before Keras loads
    check_faces(config.faces, config.data)
    config.check_outputs()  # before Keras loads (seconds) and the data is read
    if config.teacher or config.init:
        from ..classify import check_keras_file, resolve_model

        for model, option in ((config.teacher, "--teacher"), (config.init, "--init")):
            if model:  # a wrong name or a file that is no model fails now (exit 3), before the data is read
                check_keras_file(resolve_model(model, option=option), option)
    ckpt = config.resolved_checkpoint_dir()
    from ..training.checkpoints import check_unlocked

    check_unlocked(config)  # another run still training into either folder: said now, before Keras and the below
    if not config.resume and not args.overwrite:
        if (Path(config.out) / "model.keras").exists():
            earlier = [p for p in (Path(config.out) / "model.keras", ckpt / "backup") if p.exists()]
            raise UsageError(
                f"--out {config.out!r} already holds a run ({', '.join(map(str, earlier))}); pass --resume to "
                "continue it or --overwrite to start again"
            )
        if (ckpt / "backup").exists():  # --out deleted (or never finished): its checkpoints outlive it
            where = "is gone" if not Path(config.out).exists() else "holds no model (the run did not finish)"
            raise UsageError(
                f"{ckpt / 'backup'} holds the checkpoints of an earlier run of --out {config.out!r}, which {where}; "
                "pass --resume to continue that run, --overwrite to start again (deleting them), or delete "
                f"{ckpt} yourself"
            )
    from ._native import import_keras_quietly, quiet_native_logs, quiet_photo_detector_factory

    quiet_native_logs()
    import_keras_quietly()
    from ..training.train import train

    verbose = 1 if sys.stdout.isatty() else 2
    metrics = train(config, verbose=verbose, detector_factory=quiet_photo_detector_factory())
    print(f"model: {metrics['model']}")
    print(f"report: {Path(config.out) / 'metrics.json'}")
    return EXIT_OK


def run_evaluate(args: argparse.Namespace) -> int:
    from ..classify import check_keras_file, resolve_model
    from ..config import check_data, check_faces
    from ..errors import UsageError

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0 <= args.seed < 2**32:  # as train refuses it (NumPy's generators take no other), before Keras loads
        raise UsageError(f"--seed must lie in [0, 2**32), got {args.seed}")
    check_data(args.data)  # as train does: seconds before Keras loads, not after
    check_faces(args.faces, args.data)
    if args.out:
        from ..config import check_not_a_training_run, check_output_dir, check_outside_data

        check_output_dir("--out", args.out)
        check_not_a_training_run("--out", args.out)
        check_outside_data("--out", args.out, args.data)
    path = resolve_model(args.model)  # a wrong name lists the packaged ones (exit 3) before the data is read
    check_keras_file(path)
    from ._native import import_keras_quietly, quiet_native_logs, quiet_photo_detector_factory

    quiet_native_logs()
    import_keras_quietly()
    from ..training.datasets import load_dataset, report_problems
    from ..training.evaluate import evaluate, select_splits
    from ..training.metrics import format_report

    dataset = load_dataset(args.data, seed=args.seed, holdout=False, faces=args.faces,
                           detector_factory=quiet_photo_detector_factory())
    report_problems(dataset, out=args.out)
    select_splits(dataset, args.splits, seed=args.seed)  # a --split the data lacks fails before the model loads
    if dataset.split_method == "none" and not args.splits:
        what = "face" if Path(args.data).is_dir() else "row"
        print(f"note: {args.data} has no train/val/test splits; evaluating all {count(len(dataset['all']), what)} "
              "(use --split val for the holdout that `fer-batch train` kept aside)", file=sys.stderr)
    metrics = evaluate(str(path), dataset, out=args.out, splits=args.splits, seed=args.seed,
                       batch_size=args.batch_size)
    if args.out:
        from ..training.datasets import write_problems

        write_problems(dataset, args.out)
    print(f"model: {path}")
    for name, report in metrics["splits"].items():
        print(format_report(report, title=f"== {name} =="))
    if args.out:
        print(f"report: {Path(args.out) / 'metrics.json'}")
    return EXIT_OK
