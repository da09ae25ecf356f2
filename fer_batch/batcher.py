"""Batching crops across frames and files for the classifier, releasing events in arrival order."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np

from .config import AnalyzeConfig
from .stages import Event, FrameItem


class Batcher:
    """Groups crops across frames and files into batches, and releases events in arrival order once classified.

    The i-th crop of a run (counting from ``start``) always sits at position ``i % batch_size`` of its network
    batch, however the batches happen to be cut (a full batch, or an early flush when ``max_pending`` events wait):
    a face's result then depends only on the face and its index in the run, and a resumed run that starts counting
    where the committed sources ended reproduces the uninterrupted run bit for bit (see
    :class:`~fer_batch.classify.Classifier`).
    """

    def __init__(self, classifier, batch_size: int, max_pending: int, start: int = 0):
        self.classifier = classifier
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.pending: deque = deque()
        self.waiting_crops = 0
        self.position = start % batch_size  # where the next crop goes in its network batch

    def add(self, event) -> Iterator[Event]:
        self.pending.append(event)
        if isinstance(event, FrameItem):
            self.waiting_crops += len(event.crops)
        if self.position + self.waiting_crops >= self.batch_size or len(self.pending) >= self.max_pending:
            self._classify()
        yield from self._release()

    def finish(self) -> Iterator[Event]:
        self._classify()
        yield from self._release()

    def _classify(self) -> None:
        items = [e for e in self.pending if isinstance(e, FrameItem) and e.probs is None and len(e.crops)]
        if not items:
            return
        crops = np.concatenate([e.crops for e in items])
        probs = self.classifier.predict(crops, offset=self.position)  # fixed-size network batches, aligned
        at = 0
        for e in items:
            e.probs = probs[at:at + len(e.crops)]
            at += len(e.crops)
        self.waiting_crops = 0
        self.position = (self.position + len(crops)) % self.batch_size

    def _release(self) -> Iterator[Event]:
        while self.pending:
            head = self.pending[0]
            if isinstance(head, FrameItem):
                if len(head.crops) and head.probs is None:
                    return
                self.pending.popleft()
                yield from head.records()
            else:
                self.pending.popleft()
                yield head


def network_batch_size(classifier, config: AnalyzeConfig) -> int:
    """The batch the classifier's network runs: crops are aligned to it (see :class:`Batcher`)."""
    return getattr(classifier, "batch_size", config.batch_size)
