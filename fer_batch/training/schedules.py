"""How fast the network learns: the learning-rate schedule, the optimizer, and the time budget that may shorten both.

The default schedule warms up linearly from a tenth of the peak rate for ``warmup_epochs`` and then follows a
cosine to zero at the last step; the paper recipe keeps the rate constant. The schedule is a function of the
optimizer's step count, which a checkpoint restores, so a resumed run continues at the rate it left off.
"""

from __future__ import annotations

import math
import sys
import time

from ..errors import UsageError


def make_schedule(config, steps_per_epoch: int):
    """The learning-rate schedule of ``config`` (a :class:`~.train_config.TrainConfig`) and its warm-up steps."""
    import keras

    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)
    if config.paper_recipe:
        schedule = config.lr
    elif config.time_budget_min is not None:
        schedule = warmup_cosine(config.lr, warmup, total_steps)
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=config.lr * (0.1 if warmup else 1.0),
            decay_steps=max(total_steps - warmup, 1),
            warmup_target=config.lr if warmup else None,
            warmup_steps=warmup,
            alpha=0.0,
        )
    return schedule, warmup


def make_optimizer(config, schedule):
    """``--optimizer`` at ``schedule``: SGD with Nesterov momentum 0.9, AdamW, or Adam (weight decay as configured)."""
    import keras

    if config.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=config.weight_decay or None)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(schedule)
    raise UsageError(f"--optimizer {config.optimizer!r} is not allowed")  # unreachable: TrainConfig validated it


def warmup_cosine(peak: float, warmup_steps: int, total_steps: int):
    """Keras's ``CosineDecay`` with warm-up (from peak/10, linearly), except that the total length is a variable.

    A time budget settles the number of epochs only after the first one; a variable keeps that change visible inside
    a compiled train step, where a Python attribute would have been frozen at tracing.
    """
    import keras
    from keras import ops

    class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self):
            self.total_steps = keras.Variable(float(total_steps), dtype="float32", trainable=False,
                                              name="schedule_total_steps")

        def __call__(self, step):
            step = ops.cast(step, "float32")
            warm = peak * (0.1 + 0.9 * step / max(warmup_steps, 1))
            progress = ops.clip((step - warmup_steps) / ops.maximum(self.total_steps - warmup_steps, 1.0), 0.0, 1.0)
            cosine = 0.5 * peak * (1.0 + ops.cos(math.pi * progress))
            return ops.where(step < warmup_steps, warm, cosine)

        def get_config(self):
            return {"peak": peak, "warmup_steps": warmup_steps, "total_steps": total_steps}

    return WarmupCosine()


def time_budget(budget_s: float, steps_per_epoch: int, max_epochs: int, schedule, warmup_steps: int = 0,
                 record=None):
    """A callback that, after the first epoch, fixes the run's length to the epochs that fit in ``budget_s``.

    The budget bounds ``fit`` (training, validation, checkpoints: run it after the checkpoint callbacks), not the
    loading, saving and evaluation around it. The first few steps (start-up, kernel selection) are left out of the
    per-epoch estimate. ``record(epochs)`` is called with the settled length, so that a resume can insist on it.
    """
    import keras

    mark_at = min(10, max(steps_per_epoch // 4, 0))

    class TimeBudget(keras.callbacks.Callback):
        epochs = max_epochs

        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()
            self.mark = None

        def on_train_batch_end(self, batch, logs=None):
            if self.mark is None and batch >= mark_at:
                self.mark, self.mark_batch = time.perf_counter(), batch

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            if epoch == 0:
                measured = max(steps_per_epoch - 1 - self.mark_batch, 1)
                per_epoch = (now - self.mark) * steps_per_epoch / measured
                left = budget_s - (now - self.started)
                self.epochs = int(min(max_epochs, max(1, 1 + left // per_epoch)))
                schedule.total_steps.assign(float(self.epochs * steps_per_epoch))
                print(f"time budget {budget_s / 60:.3g} min: about {per_epoch:.1f} s an epoch, so {self.epochs} "
                      f"epochs (of at most {max_epochs}); the cosine schedule now ends there", file=sys.stderr)
                if self.epochs * steps_per_epoch <= warmup_steps:
                    print("warning: the budget ends within the learning-rate warm-up, so the rate never decays; "
                          "give it more time", file=sys.stderr)
                if record is not None:
                    record(self.epochs)
            if epoch + 1 >= self.epochs:
                self.model.stop_training = True

    return TimeBudget()
