"""What the network trains on: shuffled, augmented (and mixed-up) batches that a resumed run reproduces exactly.

The transforms themselves live in :mod:`.architectures` (Keras layers) and :mod:`.fast_augment` (OpenCV); this
module picks one (:func:`make_augmenter`) and makes each batch a pure function of (seed, epoch, batch).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..errors import UsageError
from ..labels import NUM_CLASSES


def make_augmenter(augment: str, engine: str, seed: int):
    """The augmentation ``--augment``/``--augment-engine`` name: None, an OpenCV augmenter or Keras layers."""
    if augment == "none":
        return None
    if engine == "opencv":
        from .fast_augment import OpenCVAugmenter

        return OpenCVAugmenter(augment)
    if engine == "keras":
        from .architectures import build_augmenter

        return build_augmenter(augment, seed=seed)
    raise UsageError(f"--augment-engine {engine!r} is not allowed; choose one of keras, opencv")


class Batches:
    """Shuffled, augmented batches from uint8 arrays (a ``keras.utils.PyDataset``, built lazily).

    The shuffle order depends only on (seed, epoch), and a batch's augmentation and mixup only on (seed, epoch,
    batch), so a resumed run sees the very batches it would have seen (``fit`` must not reshuffle them: it is called
    with ``shuffle=False``). Augmentation runs here rather than inside the trained model so a distillation teacher
    sees the very same augmented faces as its student.

    ``workers`` above 1 makes the next batches of the epoch ahead of time in that many threads of our own, each
    kept under its (epoch, batch) key. Keras's own worker queue is not used: under the jax and torch backends it
    served, at the start of each epoch, batches left over from the one before (fit's first look at the data leaves
    some, and every epoch then inherits them), so a run trained one epoch behind and never saw the last batches.
    """

    def __new__(cls, *args, **kwargs):
        import keras

        from .fast_augment import OpenCVAugmenter

        class Batches(keras.utils.PyDataset):
            def __init__(self, x, y, batch_size, augmenter, seed, mixup, smoothing_classes=NUM_CLASSES, workers=1,
                         soft=None, views=None, view_soft=None):
                super().__init__(workers=1, use_multiprocessing=False)  # Keras calls us in turn; see above
                self.x, self.y = x, y
                self.batch_size = batch_size
                self.augmenter = augmenter
                self.seed = seed
                self.mixup = mixup
                self.epoch = 0
                self.n_classes = smoothing_classes
                self.soft = soft  # (N, 7) cached teacher probabilities, appended to the labels
                # (K, N, 48, 48, 1) fixed augmented copies and (K, N, 7) the teacher's probabilities for them: epoch
                # e trains on copy e % K, already augmented (teacher_views.py).
                self.views, self.view_soft = views, view_soft
                # Reseeding and calling the shared augmenter must not interleave between worker threads.
                self._augment_lock = threading.Lock()
                self.data_workers = workers
                self._pool = None
                self._ahead: dict[tuple[int, int], Future] = {}
                self._ahead_lock = threading.Lock()
                self._orders: dict[int, np.ndarray] = {}

            def set_epoch(self, epoch: int):
                self.epoch = epoch

            @property
            def num_batches(self):
                return math.ceil(len(self.y) / self.batch_size)

            def __getitem__(self, index):
                epoch = self.epoch
                if self.data_workers <= 1:
                    return self.batch(epoch, index)
                with self._ahead_lock:
                    if self._pool is None:
                        self._pool = ThreadPoolExecutor(self.data_workers, thread_name_prefix="fer-batches")
                    for key in [k for k in self._ahead if k[0] != epoch]:  # an epoch began: the old one's are moot
                        self._ahead.pop(key).cancel()
                    future = self._ahead.pop((epoch, index), None)
                    for j in range(index + 1, min(index + 1 + 2 * self.data_workers, self.num_batches)):
                        if (epoch, j) not in self._ahead:
                            self._ahead[(epoch, j)] = self._pool.submit(self.batch, epoch, j)
                return future.result() if future is not None else self.batch(epoch, index)

            def close(self):
                """Stop making batches ahead: drop those queued and wait for the threads (after ``fit``, or when it
                is interrupted, so no thread goes on building batches nobody will train on)."""
                with self._ahead_lock:
                    for future in self._ahead.values():
                        future.cancel()
                    self._ahead.clear()
                    pool, self._pool = self._pool, None
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)

            def _order(self, epoch: int) -> np.ndarray:
                # Threads may both draw an epoch's order (the same one); the dict is replaced, never mutated.
                order = self._orders.get(epoch)
                if order is None:
                    order = np.random.default_rng([self.seed, epoch]).permutation(len(self.y))
                    self._orders = {epoch: order}  # only the epoch in progress is asked for again
                return order

            def batch(self, epoch: int, index: int):
                """Batch ``index`` of ``epoch``: a pure function of (seed, epoch, index)."""
                idx = self._order(epoch)[index * self.batch_size:(index + 1) * self.batch_size]
                if self.views is not None:
                    x = self.views[epoch % len(self.views)][idx].astype("float32")
                elif isinstance(self.augmenter, OpenCVAugmenter):
                    x = self.x[idx].astype("float32")
                    x = self.augmenter(x, np.random.default_rng([self.seed, epoch, index, 1]))
                elif self.augmenter is not None:
                    x = self.x[idx].astype("float32")
                    with self._augment_lock:
                        reseed(self.augmenter, (self.seed, epoch, index))
                        x = keras.ops.convert_to_numpy(self.augmenter(x, training=True))
                else:
                    x = self.x[idx].astype("float32")
                y = np.eye(self.n_classes, dtype="float32")[self.y[idx]]
                if self.views is not None:
                    y = np.concatenate([y, self.view_soft[epoch % len(self.views)][idx]], axis=1)
                elif self.soft is not None:
                    y = np.concatenate([y, self.soft[idx]], axis=1)
                if self.mixup > 0:
                    rng = np.random.default_rng([self.seed, epoch, index])
                    lam = rng.beta(self.mixup, self.mixup, size=(len(idx), 1)).astype("float32")
                    lam = np.maximum(lam, 1 - lam)
                    perm = rng.permutation(len(idx))
                    x = lam[:, :, None, None] * x + (1 - lam[:, :, None, None]) * x[perm]
                    y = lam * y + (1 - lam) * y[perm]
                return x, y

        return Batches(*args, **kwargs)


def reseed(augmenter, key: tuple[int, ...]) -> None:
    """Set every random layer's seed state from ``key`` (and the layer's position, so layers draw independently).

    Keras's random layers advance a SeedGenerator on each call, a state no checkpoint holds; reseeding per batch
    makes augmentation a pure function of (seed, epoch, batch) instead.
    """
    reseed_layers(augmenter.layers, key)


def reseed_layers(layers, key: tuple[int, ...]) -> None:
    """:func:`reseed` for any sequence of layers."""
    import keras

    for j, layer in enumerate(layers):
        generators = [v for v in vars(layer).values() if isinstance(v, keras.random.SeedGenerator)]
        generators += list(getattr(layer, "_backend_generators", {}).values())
        for k, generator in enumerate(generators):
            value = int(np.random.default_rng([*key, j, k]).integers(0, 2**31 - 1))
            generator.state.assign(keras.ops.convert_to_tensor([value, 0], dtype=generator.state.dtype))


def epoch_seed(batches):
    """A Keras callback that tells ``batches`` which epoch begins (its shuffle and augmentation depend on it) and
    seeds the model's random layers (dropout) for it."""
    import keras

    class EpochSeed(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            batches.set_epoch(epoch)
            # Dropout draws its masks from SeedGenerators that no checkpoint holds: seeded at each epoch's start, a
            # resumed run draws the masks an uninterrupted one does.
            reseed_layers(list(self.model._flatten_layers(include_self=False)), (batches.seed, epoch, 0, 2))

    return EpochSeed()
