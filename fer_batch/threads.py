"""How many threads each native library gets, so that the pipeline's stages overlap instead of fighting for cores.

One worker of the pipeline keeps two threads busy all the time, its reader (FFmpeg decoding) and its detector
(MediaPipe, then the crops), while the caller's thread classifies in bursts of a whole batch. Left to their
defaults, FFmpeg starts a frame-threaded decoder with one thread per core and TensorFlow Lite's XNNPACK a pool of
one thread per core, so on a 2-core machine six or more threads compete for two cores: each stage is split
across both cores, then waits for the other stages' threads, and XNNPACK's pool spins between batches.
Measured on a 2-core AMD EPYC loaded by other work: a second XNNPACK thread raised the float `fast`'s CPU per
face (3.3-3.4 against 2.9-3.2 ms, batches of 256) without finishing a batch sooner, and a second FFmpeg thread
did not lower the CPU of decoding a 720p frame (4.1-5.3 against 4.4 ms); with both at one thread and the int8
`fast`, the pipeline's CPU per frame fell from 16.2 to 12.5 ms on a one-face 720p clip and from 19.9 to 14.0 ms
on a three-face one (``benchmarks/analyze_speed.py --base``). So each stage gets about one core's worth of
threads, and only the spare cores of a larger machine go to the stages that can use them. MediaPipe's inference
needs no setting: on desktop Linux its XNNPACK runs on the graph's own thread (a detector adds three threads, none
of them a pool that grows with the cores). OpenCV's own pool gets one thread during a run (:data:`OPENCV_THREADS`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one, as in containers and ``taskset``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def classifier_threads(cores: int | None = None) -> int:
    """XNNPACK threads for the emotion classifier: half the cores, at least one.

    The classifier shares the machine with decoding and detection, which run all the time; half the cores leaves
    them the other half (a 2-core machine classifies on one thread, the caller's own).
    """
    cores = usable_cores() if cores is None else cores
    return max(1, cores // 2)


def decoder_threads(cores: int | None = None) -> int:
    """FFmpeg decoding threads for one video: one on machines of up to four cores, else a quarter of them (<= 4).

    One thread is FFmpeg decoding on the reader thread itself, with no hand-off between frame threads; at 720p it
    decodes faster than one detector thread detects, so more would only take cores from the other stages. Larger
    machines have cores to spare for large frames (4K), whose decoding costs more than their detection.
    """
    cores = usable_cores() if cores is None else cores
    return 1 if cores <= 4 else min(4, cores // 4)


#: OpenCV's own thread pool during a run. Its calls here are small (halving one frame, greying and warping one face:
#: 0.1-0.6 ms) and already run beside the other stages, so splitting each across OpenCV's pool only adds hand-offs:
#: measured in one process on a 2-core EPYC, six alternating runs each, one OpenCV thread against OpenCV's default
#: (one per core) cost 9.3 against 10.1 ms of CPU a frame (one-face 720p clip) and 12.1 against 12.9 (three faces),
#: at the same frames/s (192.9 / 186.7 and 144.9 / 145.0).
OPENCV_THREADS = 1


_opencv_lock = threading.Lock()
_opencv_users = 0
_opencv_before: int | None = None


@contextmanager
def opencv_threads(n: int = OPENCV_THREADS) -> Iterator[None]:
    """Run the block with OpenCV's pool at ``n`` threads, and give back the caller's setting after it (the setting is
    process-wide, and a library must leave it as it found it).

    Blocks may overlap (runs in several threads, or interleaved generators): the setting from before the first one
    is given back when the last one ends, whatever order they end in. The setting holds for the whole block, a
    paused ``analyze()`` generator's included; a caller who sets another meanwhile keeps theirs.
    """
    import cv2

    global _opencv_users, _opencv_before
    with _opencv_lock:
        if _opencv_users == 0:
            _opencv_before = cv2.getNumThreads()
        _opencv_users += 1
        cv2.setNumThreads(n)
    try:
        yield
    finally:
        with _opencv_lock:
            _opencv_users -= 1
            if _opencv_users == 0 and cv2.getNumThreads() == n:  # else the caller chose one since: theirs stays
                cv2.setNumThreads(_opencv_before)


_WARNINGS_LOCK = threading.Lock()


@contextmanager
def warnings_ignored() -> Iterator[None]:
    """``warnings.catch_warnings()`` with every warning ignored, for code that runs in worker threads.

    ``catch_warnings`` swaps the process's one list of filters and puts back, on exit, the list it found on entry:
    two threads whose blocks overlap can leave the other's "ignore" in place for good, silencing every warning of
    the caller's process. The lock keeps the blocks in turn.
    """
    import warnings

    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield

