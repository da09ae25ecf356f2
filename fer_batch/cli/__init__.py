"""The ``fer-batch`` command: argument parsing, exit codes and progress bars, over the library's public functions.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``. Nothing heavy
(TensorFlow, MediaPipe, OpenCV) is imported here or at the top of those modules, so ``fer-batch --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import (DatasetError, FerBatchError, InputError, Interrupted, ModelError, OutputError,
                      UsageError)

# Exit codes, documented in README.md ("Exit codes").
EXIT_OK = 0
EXIT_SOME_FAILED = 1  # the run finished, but one or more input files could not be analysed
EXIT_USAGE = 2  # bad option value, missing path, refusing to overwrite an output (argparse also uses 2)
EXIT_MODEL = 3  # the model cannot be found, loaded, or has the wrong interface
EXIT_DATASET = 4  # a training/evaluation dataset is unusable
EXIT_OUTPUT = 5  # an output could not be written after the run started (disk full, folder removed, permissions)
EXIT_INTERNAL = 70  # an unexpected exception: a bug (EX_SOFTWARE); what was committed stays valid (see --resume)
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; what was written so far stays valid (see --resume)
EXIT_BROKEN_PIPE = 141  # stdout's reader went away (`fer-batch models | head -1`): 128 + SIGPIPE, as a shell reports

SUBCOMMANDS = ("analyze", "train", "evaluate", "models")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer-batch",
        description="Batch facial-emotion analysis: detect faces in images and videos, classify each into the "
        "seven FER-2013 emotions, write per-frame timelines, summaries and charts.",
    )
    parser.add_argument("--version", action="version", version=f"fer-batch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from . import analyze, models, train

    analyze.add_parser(subparsers)
    train.add_parsers(subparsers)
    models.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fer-batch`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.run(args)
        sys.stdout.flush()  # here, not at the interpreter's exit, so that a reader gone away is seen below
        return code
    except UsageError as exc:
        print(f"fer-batch {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ModelError as exc:
        print(f"fer-batch {args.command}: model error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    except DatasetError as exc:
        print(f"fer-batch {args.command}: dataset error: {exc}", file=sys.stderr)
        return EXIT_DATASET
    except InputError as exc:
        print(f"fer-batch {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_SOME_FAILED
    except OutputError as exc:
        if exc.timeline_complete:
            hint = "the timeline is complete: once that is fixed, rerun with --resume to write it again"
        else:
            hint = "the files finished before it are kept: once that is fixed, continue with --resume"
        print(f"fer-batch {args.command}: output error: {exc}; {hint}", file=sys.stderr)
        if exc.report is not None:
            print(f"fer-batch: {exc.report.line()}", file=sys.stderr)  # the last line of every run (README)
        return EXIT_OUTPUT
    except Interrupted as exc:
        print(f"fer-batch {args.command}: interrupted: {exc}", file=sys.stderr)
        if exc.report is not None:
            print(f"fer-batch: {exc.report.line()}", file=sys.stderr)  # the last line of every run (README)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(f"fer-batch {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except FerBatchError as exc:  # any other deliberate error
        print(f"fer-batch {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError as exc:
        if not _stdout_gone():  # another pipe (a FIFO as --out, a socket): an output that failed
            print(f"fer-batch {args.command}: output error: {exc}", file=sys.stderr)
            return EXIT_OUTPUT
        # Nothing to tell a reader that has gone; point stdout at /dev/null so that the interpreter's own flush at
        # exit does not fail again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # inputs fail per file, inside the run: what reaches here is an output failing
        print(f"fer-batch {args.command}: output error: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    except Exception as exc:  # not 1, which means "some files failed": this is ours
        import traceback

        traceback.print_exc()
        print(f"fer-batch {args.command}: internal error ({type(exc).__name__}: {exc}): a bug in fer-batch; please "
              "report it with the lines above. What a run committed before it stays valid: --resume continues",
              file=sys.stderr)
        return EXIT_INTERNAL


def _stdout_gone() -> bool:
    """Whether the standard output is a pipe whose reader has closed it (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll on this platform, or stdout is not a real file
        return False


def entry() -> None:
    code = main()
    if sys.argv[1:2] == ["analyze"] and "tensorflow" in sys.modules:
        # analyze has written and closed every output by now, yet TensorFlow's and MediaPipe's native teardown at
        # exit takes seconds (4-5 s on a loaded 2-core machine, longer than analysing a photo): leave without it
        # once Python's own streams and log handlers are flushed. (train and evaluate exit normally.)
        import logging
        import os

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
