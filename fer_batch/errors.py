"""The package's exceptions. Each message names the thing at fault and what was expected."""

from __future__ import annotations


class FerBatchError(Exception):
    """Base class of every error fer-batch raises on purpose."""


class UsageError(FerBatchError, ValueError):
    """An option or argument has a value that is not allowed."""


class TrainingDiverged(UsageError):
    """A training's loss stopped being a finite number: its weights are lost to overflow, usually from too high a
    learning rate (an option value, hence a usage error)."""


class InputError(FerBatchError):
    """A media file or dataset cannot be read or is not what it claims to be."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class DatasetError(FerBatchError):
    """A training or evaluation dataset has no usable rows or an unknown layout."""


class ModelError(FerBatchError):
    """A model name or file cannot be resolved, loaded, or does not fit the expected interface."""


class OutputError(FerBatchError):
    """An output could not be written once the run had started (disk full, its folder removed, permissions)."""

    def __init__(self, option: str, path, exc: OSError, *, timeline_complete: bool = True):
        import os

        from .wording import shown_name

        reason = exc.strerror or str(exc)
        # The file at fault may be another than the output: one inside a --charts folder, or an input the output is
        # made from (the timeline, the errors file), whose failure would otherwise read as the output's own.
        culprit = exc.filename
        if culprit is not None and os.fsdecode(culprit) != os.fsdecode(path):
            reason = f"{reason}: {shown_name(os.fsdecode(culprit))}"
        super().__init__(f"{option} {str(path)!r}: cannot write it ({reason})")
        self.option, self.path = option, path
        #: False when the timeline itself (or its errors file or journal) failed mid-run: what was committed before
        #: stays valid, and --resume continues from there.
        self.timeline_complete = timeline_complete

    report = None  # the RunReport of the run whose outputs these were, where there was one


class Interrupted(FerBatchError):
    """A run was asked to stop (Ctrl-C in the CLI); everything committed before it stays valid for ``--resume``.

    ``report`` is the :class:`~fer_batch.batch.RunReport` of what was done before the stop, where the run had one.
    """

    report = None
