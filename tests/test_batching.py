"""Issue 4, the batching and queueing logic of pipeline.iter_events, with a scripted detector and a recording
classifier (no MediaPipe, no TensorFlow), on real files decoded by the real readers:

* events come out per source as SourceStart, its frames in order, SourceDone; every decoded frame is accounted for;
* each record carries the probabilities of its own crop (no mix-up across frames, files or workers);
* the i-th face of a run sits at position i % batch_size of its network batch, across early flushes and resumes;
* the last partial batch is flushed at the end; a detector failing on one file or at set-up never hangs the run.

Frames are uniform grey images whose level identifies them; the fake detector "finds" 0, 1 or 2 faces by level,
and the fake classifier turns a crop's grey level back into its probabilities, so a record can be checked against
the frame it came from.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fer_batch.config import AnalyzeConfig
from fer_batch.detect import Detection
from fer_batch.pipeline import SourceStart, iter_events
from fer_batch.records import FaceRecord, SourceDone
from fer_batch.sources import discover

cv2 = pytest.importorskip("cv2")

EXPLODE = 250  # grey level at which the scripted detector raises


def faces_for(level: int) -> int:
    return (level // 10) % 3


class ScriptedDetector:
    """Finds ``faces_for(level)`` faces in a uniform grey frame; raises on the EXPLODE level."""

    def detect(self, image):
        level = int(round(float(image.mean())))
        if abs(level - EXPLODE) <= 3:
            raise RuntimeError("detector exploded")
        h, w = image.shape[:2]
        dets = []
        for k in range(faces_for(level)):
            x0 = 4 + k * w / 2
            kps = np.array([[x0 + 6, 12], [x0 + 14, 12], [x0 + 10, 16], [x0 + 10, 20], [x0 + 2, 13], [x0 + 18, 13]],
                           np.float32)
            dets.append(Detection(x0, 6.0, 20.0, 20.0, 0.9, kps))
        return dets

    def close(self):
        pass


class RecordingClassifier:
    """Probabilities that encode the crop's grey level and its batch position; remembers each call's (offset, n)."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.calls: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def predict(self, crops, offset: int = 0):
        with self.lock:
            self.calls.append((offset, len(crops)))
        v = crops.reshape(len(crops), -1).mean(axis=1) / 255.0
        # Like oneDNN, a result that depends (visibly here) on the face's position in its network batch.
        position = (offset + np.arange(len(crops))) % self.batch_size
        probs = np.zeros((len(crops), 7), np.float32)
        probs[:, 0], probs[:, 2] = 0.9 * v, 0.01 * position
        probs[:, 1] = 1 - probs[:, 0] - probs[:, 2]
        return probs


def write_gray_video(path: Path, levels: list[int]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for level in levels:
        writer.write(np.full((48, 64, 3), level, np.uint8))
    writer.release()
    return path


@pytest.fixture
def media(tmp_path) -> dict[str, list[int]]:
    """Files and the grey level of each of their frames (images: one frame)."""
    levels = {}
    for i, level in enumerate([20, 40, 0, 10]):
        path = tmp_path / f"img{i}.png"
        cv2.imwrite(str(path), np.full((48, 64, 3), level, np.uint8))
        levels[str(path)] = [level]
    for name, start in (("clip_a.avi", 10), ("clip_b.avi", 60)):
        seq = [start + 10 * (j % 15) for j in range(37)]
        levels[str(write_gray_video(tmp_path / name, seq))] = seq
    return levels


def run(paths, *, workers=1, batch_size=8, skip=None, faces_before=0, factory=None, **options):
    classifier = RecordingClassifier(batch_size)
    config = AnalyzeConfig(workers=workers, batch_size=batch_size, **options)
    sources = discover([str(p) for p in paths]).sources
    events = list(iter_events(config=config, sources=sources, classifier=classifier, skip=skip,
                              detector_factory=factory or (lambda c: ScriptedDetector()),
                              faces_before=faces_before))
    return events, classifier


def by_source(events) -> dict[str, list]:
    out: dict[str, list] = {}
    for e in events:
        out.setdefault(e.source, []).append(e)
    return out


@pytest.mark.parametrize("workers", [1, 3])
def test_every_frame_in_order_with_its_own_probabilities(media, workers):
    events, classifier = run(sorted(media), workers=workers)
    groups = by_source(events)
    assert sorted(groups) == sorted(media)
    for source, evs in groups.items():
        levels = media[source]
        assert isinstance(evs[0], SourceStart) and isinstance(evs[-1], SourceDone)
        rows = evs[1:-1]
        assert all(isinstance(r, FaceRecord) for r in rows)
        frames = [r.frame for r in rows]
        assert frames == sorted(frames) and sorted(set(frames)) == list(range(len(levels)))
        done = evs[-1]
        assert done.error is None and done.frames == len(levels)
        assert done.faces == sum(faces_for(level) for level in levels)
        for r in rows:
            level = levels[r.frame]
            n_rows = sum(1 for q in rows if q.frame == r.frame)
            if faces_for(level) == 0:
                assert r.face_id is None and n_rows == 1
            else:
                assert n_rows == faces_for(level)
                # MJPG and PNG are near-lossless on flat grey: the crop's level is the frame's, to a grey level.
                assert abs(r.probs[0] / 0.9 * 255 - level) < 3
    # Every face classified exactly once.
    assert sum(n for _, n in classifier.calls) == sum(faces_for(v) for lv in media.values() for v in lv)


def test_face_i_of_a_run_sits_at_position_i_mod_batch_size(media):
    # A tiny pending window forces early flushes of partial batches as well as full ones.
    events, classifier = run(sorted(media), batch_size=8, queue_frames=1)
    total = 0
    for offset, n in classifier.calls:
        assert offset == total % 8
        total += n
    assert any(n < 8 and (offset + n) % 8 for offset, n in classifier.calls[:-1]), "no early flush happened"
    # Without early flushes, a call waits until its faces reach the end of a network batch (a frame's faces may
    # run past it), except the last (partial) one at the end.
    events, classifier = run(sorted(media), batch_size=8)
    assert all(offset + n >= 8 for offset, n in classifier.calls[:-1])
    assert classifier.calls[-1][1] > 0


def test_a_resumed_run_starts_where_the_skipped_faces_end(media):
    paths = sorted(media)
    _, full = run(paths, batch_size=8)
    skip = set(paths[:3])
    before = sum(faces_for(v) for p in paths[:3] for v in media[p])
    _, resumed = run(paths, batch_size=8, skip=skip, faces_before=before)
    assert resumed.calls[0][0] == before % 8
    # The same faces at the same positions: what the full run classified after the skipped sources.
    positions = lambda calls: [(offset + j) % 8 for offset, n in calls for j in range(n)]
    assert positions(resumed.calls) == positions(full.calls)[before:]


def test_partial_last_batch_is_flushed(tmp_path):
    path = tmp_path / "one.png"
    cv2.imwrite(str(path), np.full((48, 64, 3), 10, np.uint8))  # one face, batch of 256
    events, classifier = run([path], batch_size=256)
    rows = [e for e in events if isinstance(e, FaceRecord)]
    assert classifier.calls == [(0, 1)] and len(rows) == 1 and rows[0].probs is not None


@pytest.mark.parametrize("workers", [1, 2])
def test_a_detector_failing_on_one_file_does_not_stop_the_others(media, tmp_path, workers):
    bad = write_gray_video(tmp_path / "bad.avi", [10, 20, EXPLODE, 10])
    paths = sorted(media) + [bad]
    result = {}
    thread = threading.Thread(target=lambda: result.update(events=run(paths, workers=workers)[0]), daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the pipeline hung"
    groups = by_source(result["events"])
    done = groups[str(bad)][-1]
    assert isinstance(done, SourceDone) and "detector exploded" in done.error
    assert done.frames == 2  # the frames before the failure were analysed and kept
    assert all(groups[p][-1].error is None for p in media)


def test_a_detector_that_cannot_start_ends_the_run_with_its_error(media):
    def factory(config):
        raise OSError("no detector model here")

    with pytest.raises(OSError, match="no detector model"):
        run(sorted(media), workers=2, factory=factory)


def test_stop_ends_a_run_that_resume_completes_to_the_same_bytes(media, tmp_path):
    """run_batch's ``stop`` (what the CLI's Ctrl-C sets) ends the run at a frame; --resume then finishes it, and
    with faces placed where the uninterrupted run had them, the timeline matches it byte for byte."""
    from fer_batch.batch import run_batch
    from fer_batch.config import RunConfig
    from fer_batch.errors import Interrupted

    paths = tuple(sorted(media))
    factory = lambda c: ScriptedDetector()  # noqa: E731
    analyze = AnalyzeConfig(batch_size=8)
    ref = tmp_path / "ref.csv"
    run_batch(RunConfig(paths=paths, out=ref, analyze=analyze), classifier=RecordingClassifier(8),
              detector_factory=factory)

    class StopAfter:
        """A progress object that asks the run to stop once ``n`` frames have gone by."""

        def __init__(self, stop, n):
            self.stop, self.n = stop, n

        def start(self, total, done): ...
        def source_start(self, event): ...
        def source_done(self, done): ...
        def close(self): ...

        def frames(self, n):
            self.n -= n
            if self.n <= 0:
                self.stop.set()

    out = tmp_path / "res.csv"
    stop = threading.Event()
    with pytest.raises(Interrupted, match="--resume") as stopped:
        run_batch(RunConfig(paths=paths, out=out, analyze=analyze), progress=StopAfter(stop, 50),
                  classifier=RecordingClassifier(8), detector_factory=factory, stop=stop)
    assert 0 < out.stat().st_size < ref.stat().st_size
    # what the interrupted run reports is what its timeline holds: whole sources only
    from fer_batch.summary import read_timeline

    interrupted = stopped.value.report
    assert interrupted.rows == len(read_timeline(out)) and interrupted.succeeded + interrupted.failed >= 1
    report = run_batch(RunConfig(paths=paths, out=out, analyze=analyze, resume=True),
                       classifier=RecordingClassifier(8), detector_factory=factory)
    assert report.skipped >= 1 and report.ok
    assert out.read_bytes() == ref.read_bytes()


class SlowDetector(ScriptedDetector):
    """Takes 20 ms a frame, so that the reader decodes as far ahead as it is allowed to."""

    def detect(self, image):
        time.sleep(0.02)
        return super().detect(image)


@pytest.mark.parametrize("budget_frames", [2, 5])
def test_frames_read_ahead_are_bounded_in_bytes(tmp_path, monkeypatch, budget_frames):
    """A reader ahead of a slow detector holds at most READ_AHEAD_BYTES of frames (but always two), and still
    delivers every frame in order."""
    from fer_batch import workers

    size = (320, 240)
    writer = cv2.VideoWriter(str(tmp_path / "big.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    levels = [10 + 10 * (j % 20) for j in range(40)]
    for level in levels:
        writer.write(np.full((size[1], size[0], 3), level, np.uint8))
    writer.release()
    frame_bytes = size[0] * size[1] * 3
    peaks = []

    class Watched(workers._ReadAhead):
        def put(self, item, *flags):
            super().put(item, *flags)
            peaks.append((len(self._items), self._bytes))

    monkeypatch.setattr(workers, "_ReadAhead", Watched)
    monkeypatch.setattr(workers, "READ_AHEAD_BYTES", budget_frames * frame_bytes + frame_bytes // 2)
    events, _ = run([tmp_path / "big.avi"], factory=lambda c: SlowDetector())
    rows = [e for e in events if isinstance(e, FaceRecord)]
    assert sorted({r.frame for r in rows}) == list(range(len(levels)))
    held_frames = max(b for _, b in peaks) // frame_bytes
    # The reader got as far ahead as the budget allows (the detector is slow), and no further.
    assert held_frames == budget_frames
    assert max(n for n, _ in peaks) <= budget_frames + 2  # + the _Begin / _Ended markers, which hold no pixels


def test_read_ahead_always_takes_two_frames_and_markers_and_stops_on_a_flag():
    from fer_batch.workers import END, _ReadAhead, _Stop
    from fer_batch.sources import Frame

    big = Frame(index=0, time_s=0.0, rgb=None, bgr=np.zeros((100, 100, 3), np.uint8))
    buffer = _ReadAhead(max_items=4, max_bytes=10)  # smaller than one frame
    assert buffer.room_for(big.bgr.nbytes)
    buffer.put(big)
    buffer.put(big)
    assert not buffer.room_for(big.bgr.nbytes)  # two frames, over the byte budget: a third waits
    assert buffer.room_for(0)  # a marker does not
    buffer.put(END)
    stop = threading.Event()
    stop.set()
    with pytest.raises(_Stop):
        buffer.put(big, stop)
    assert buffer.get(stop) is big  # items still there are handed out after a stop
    assert buffer.room_for(big.bgr.nbytes)
    buffer.put(big)
    buffer.put(END)
    assert not buffer.room_for(0)  # max_items bounds markers too
    for want in (big, END, big, END):
        assert buffer.get() is want
    with pytest.raises(_Stop):
        buffer.get(stop)


def test_a_stopped_reader_reports_no_failure(media, caplog):
    """Stopping a run while the reader waits for room is not an error of the file it was decoding."""
    import logging
    import queue

    from fer_batch import workers
    from fer_batch.sources import discover

    video = next(p for p in media if p.endswith(".avi"))
    jobs: queue.Queue = queue.Queue()
    jobs.put(discover([video]).sources[0])
    jobs.put(None)
    frames = workers._ReadAhead(max_items=3)
    stop = threading.Event()
    with caplog.at_level(logging.DEBUG, logger=workers.log.name):
        reader = threading.Thread(target=workers._reader, args=(jobs, frames, AnalyzeConfig(), workers._Abandon(),
                                                                 stop))
        reader.start()
        deadline = time.monotonic() + 30
        while frames.room_for(1) and time.monotonic() < deadline:  # full: _Begin and two frames
            time.sleep(0.01)
        assert not frames.room_for(1), "the reader never filled its buffer: the stop would not meet it waiting"
        stop.set()
        reader.join(30)
    assert not reader.is_alive()
    assert not any("unexpected error" in r.getMessage() for r in caplog.records), caplog.text
    assert isinstance(frames.get(), workers._Begin)  # what was decoded before the stop is still there
