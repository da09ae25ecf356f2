"""The thread settings the pipeline's stages run with, read back from the libraries and the OS, not from a timer."""

from __future__ import annotations

import os

import pytest

from fer_batch.threads import classifier_threads, decoder_threads, usable_cores


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")


def test_each_stage_gets_about_one_core_on_a_small_machine_and_spares_go_further():
    assert [classifier_threads(c) for c in (1, 2, 4, 16)] == [1, 1, 2, 8]
    assert [decoder_threads(c) for c in (1, 2, 4, 8, 16, 64)] == [1, 1, 1, 2, 4, 4]
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


def test_the_video_decoder_opens_with_its_thread_count(face_video):
    import cv2

    from fer_batch.sources import open_video

    cap = open_video(face_video.path)
    try:
        assert cap.isOpened()
        assert cap.getBackendName() == "FFMPEG"
        assert cap.get(cv2.CAP_PROP_N_THREADS) == decoder_threads()
        assert cap.read()[0]
    finally:
        cap.release()


@needs_proc
def test_the_classifier_interpreter_starts_the_threads_it_is_given():
    """XNNPACK runs on the calling thread plus a pool of (threads - 1): the pool is what the setting changes. A model
    whose card asks for a second look has a second interpreter at the same setting, for the mirrored faces."""
    import numpy as np

    from fer_batch.classify import Classifier

    faces = np.zeros((3, 48, 48, 1), np.uint8)
    Classifier("fast", batch_size=8, runtime="tflite").predict(faces)  # TensorFlow's own pools start once, here
    started, alive = {}, []  # each classifier is kept: one freed meanwhile would take its pool's threads along
    for threads in (1, 3, None):  # None: the default, as the pipeline and the CLI make their classifier
        before = _os_threads()
        alive.append(Classifier("fast", batch_size=8, runtime="tflite", threads=threads))
        alive[-1].predict(faces)
        started[threads] = _os_threads() - before
        assert (alive[-1]._mirror is not None) == (alive[-1].flip_margin is not None)
        pooled = [r for r in (alive[-1]._tflite, alive[-1]._mirror) if r is not None]
        assert [r.threads for r in pooled] == [threads or classifier_threads()] * len(pooled)
    assert started[1] == 0
    assert started[3] == 2 * len(pooled)
    assert started[None] == (classifier_threads() - 1) * len(pooled)


@needs_proc
@pytest.mark.parametrize("model,graphs", [("short", 1), ("full", 1), ("auto", 2)])
def test_a_detector_adds_no_pool_that_grows_with_the_cores(model, graphs):
    """MediaPipe's graph brings its own few threads; its inference runs on one of them (nothing to set). ``auto``
    runs two graphs (the short- and full-range models)."""
    import numpy as np

    from fer_batch.detect import FaceDetector

    frame = np.zeros((720, 1280, 3), np.uint8)
    with FaceDetector(model) as warm:  # MediaPipe's process-wide threads start with the first graph
        warm.detect(frame, bgr=True)
    before = _os_threads()
    with FaceDetector(model) as detector:
        for _ in range(3):
            detector.detect(frame, bgr=True)
        assert _os_threads() - before <= 3 * graphs


def test_opencv_runs_on_one_thread_during_a_run_and_is_given_back(face_video, tmp_path):
    """The detector reads OpenCV's setting while it works on the run's frames; the caller's is back afterwards."""
    import cv2

    from fer_batch.batch import run_batch
    from fer_batch.config import AnalyzeConfig, RunConfig
    from fer_batch.detect import FaceDetector
    from fer_batch.pipeline import analyze_source
    from fer_batch.threads import OPENCV_THREADS

    seen = []

    class Reading(FaceDetector):
        def detect(self, frame, **kw):
            seen.append(cv2.getNumThreads())
            return super().detect(frame, **kw)

    before = cv2.getNumThreads()
    cv2.setNumThreads(3)  # the caller's own choice, not OpenCV's default
    try:
        config = AnalyzeConfig(detector="short", every=10)
        report = run_batch(RunConfig(paths=(str(face_video.path),), out=tmp_path / "r.csv", analyze=config),
                           detector_factory=lambda c: Reading("short"))
        assert report.ok and seen and set(seen) == {OPENCV_THREADS}
        assert cv2.getNumThreads() == 3
        seen.clear()
        records, done = analyze_source(face_video.path, config, detector=Reading("short"))
        assert done.error is None and seen and set(seen) == {OPENCV_THREADS}
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


def test_overlapping_runs_give_opencv_back_its_setting_in_any_order():
    """Two runs in one process whose opencv_threads blocks overlap and end in either order: OpenCV is at one
    thread while either runs, and at the caller's setting once both are done."""
    import cv2

    from fer_batch.threads import opencv_threads

    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        for first_out in (0, 1):
            a, b = opencv_threads(), opencv_threads()
            a.__enter__()
            b.__enter__()
            assert cv2.getNumThreads() == 1
            (a if first_out == 0 else b).__exit__(None, None, None)
            assert cv2.getNumThreads() == 1  # the other run is still going
            (b if first_out == 0 else a).__exit__(None, None, None)
            assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


def test_a_setting_the_caller_chose_during_a_run_is_kept_when_it_ends():
    """A caller who sets OpenCV's threads while an analyze() generator is paused keeps that setting: the run's end
    had put back the one from before it."""
    import cv2

    from fer_batch.threads import opencv_threads

    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(2)
        with opencv_threads():
            cv2.setNumThreads(3)
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


@needs_proc
def test_native_stderr_to_a_path_that_cannot_be_opened_leaks_no_descriptor(tmp_path):
    from fer_batch.native import native_stderr

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        with pytest.raises(OSError):
            with native_stderr(tmp_path / "missing-folder" / "log.txt"):
                pass
    assert len(os.listdir("/proc/self/fd")) == before


def test_warnings_ignored_in_overlapping_threads_gives_the_filters_back():
    """catch_warnings swaps the process's one filter list: without a lock, two worker threads whose blocks overlap
    could leave "ignore" in place for good, and the caller's process would lose every warning."""
    import threading
    import time
    import warnings

    from fer_batch.threads import warnings_ignored

    before = list(warnings.filters)

    def work(k):
        for i in range(200):
            with warnings_ignored():
                if (i + k) % 7 == 0:
                    time.sleep(0)  # let another thread in while inside

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert warnings.filters == before
