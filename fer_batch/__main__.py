"""``python -m fer_batch`` runs the ``fer-batch`` command."""

from .cli import entry

entry()
