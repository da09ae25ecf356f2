"""Issue 16, ``analyze --engine ray``: a Ray run writes the local run's outputs, survives dying workers, resumes.

The tests share one small local Ray instance (2 CPUs, a 100 MB object store), started in this process and shut down
after the module; the engine joins it instead of starting its own. Workers are killed for real (SIGKILL), found by
the process title Ray gives a worker running a task (``ray::fer-batch:SOURCE``). The two-node cluster is in
``test_engine_ray_cluster.py``. Without Ray installed, only the missing-extra test runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import synthetic_media as synthetic
from fer_batch.batch import Progress, run_batch
from fer_batch.cli import EXIT_SOME_FAILED, EXIT_USAGE, main
from fer_batch.config import AnalyzeConfig, RunConfig
from fer_batch.errors import Interrupted
from fer_batch.labels import EMOTIONS
from fer_batch.summary import read_timeline

from test_reliability import read_errors

# Probabilities may differ from the local run's in the last float32 bit (a face's network-batch position counts from
# the start of its source on Ray, of the run locally); the CSV rounds them to 6 decimals, so a rounding step more.
PROB_TOL = 1e-6 + 1e-9


def assert_same_timeline(a: Path, b: Path) -> None:
    """Same rows, order, ids, boxes and scores; probabilities and confidence within PROB_TOL."""
    ta, tb = read_timeline(a), read_timeline(b)
    assert len(ta) == len(tb) > 0
    numeric = [*EMOTIONS, "confidence"]
    exact = [c for c in ta.columns if c not in numeric and c != "emotion"]
    pd.testing.assert_frame_equal(ta[exact], tb[exact])
    diff = np.abs(ta[numeric].to_numpy(float) - tb[numeric].to_numpy(float))
    assert np.nanmax(diff) <= PROB_TOL
    assert (np.isnan(ta[numeric].to_numpy(float)) == np.isnan(tb[numeric].to_numpy(float))).all()


@pytest.fixture(scope="module")
def ray_local():
    import tempfile

    ray = pytest.importorskip("ray")
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    ray.init(num_cpus=2, object_store_memory=100 * 1024 ** 2, include_dashboard=False, log_to_driver=False,
             _temp_dir=ray_tmp)  # not one more /tmp/ray/session_* a test run
    yield ray
    ray.shutdown()
    shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory, synthetic_photos, face_video) -> Path:
    """Photos with 1, 3 and no faces, the test video, a zero-byte photo, and a longer video to kill workers in."""
    root = tmp_path_factory.mktemp("ray_media")
    for name in ("one_face", "three_faces", "no_face"):
        shutil.copy(synthetic_photos[name][0], root / f"{name}.jpg")
    shutil.copy(face_video.path, root / "b_video.mp4")
    synthetic.write_zero_byte(root / "broken.jpg")
    synthetic.write_face_video(root / "long.mp4", frames=240, fps=20, size=(160, 120), seed=5)
    return root


def _run(media, out: Path, engine=None, **options):
    from fer_batch.engine_ray import RayEngine

    config = RunConfig(paths=(str(media),), out=out, analyze=AnalyzeConfig(batch_size=32), overwrite=True)
    return run_batch(config, engine=engine if engine is not None else RayEngine(), **options)


@pytest.fixture(scope="module")
def local_out(media, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ray_local_ref") / "local.csv"
    config = RunConfig(paths=(str(media),), out=out, analyze=AnalyzeConfig(batch_size=32))
    report = run_batch(config)
    assert report.failed == 1 and report.succeeded == 5
    return out


@pytest.fixture(scope="module")
def ray_out(ray_local, media, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ray_ref") / "ray.csv"
    report = _run(media, out)
    assert report.failed == 1 and report.succeeded == 5
    return out


class _Killer:
    """Kills (SIGKILL) Ray workers whose title shows they are analysing a source whose name ends with ``name``:
    the first ``times`` of them, or all while it runs (times=None)."""

    def __init__(self, name: str, times: int | None):
        self.marker = "ray::fer-batch:".encode(), name.encode()
        self.times, self.killed = times, []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._halt.is_set() and (self.times is None or len(self.killed) < self.times):
            for entry in os.scandir("/proc"):
                # a killed worker can still show its title for a moment on a busy machine: kill it once, count it once
                if not entry.name.isdigit() or int(entry.name) in self.killed:
                    continue
                try:
                    title = open(f"/proc/{entry.name}/cmdline", "rb").read().split(b"\0")[0]
                except OSError:
                    continue
                if title.startswith(self.marker[0]) and title.endswith(self.marker[1]):
                    os.kill(int(entry.name), signal.SIGKILL)
                    self.killed.append(int(entry.name))
                    break
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._halt.set()
        self._thread.join()


def test_missing_extra_is_a_usage_error(monkeypatch, capsys, tmp_path, one_face_photo):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as without the extra
    code = main(["analyze", str(one_face_photo), "--out", str(tmp_path / "t.csv"), "--engine", "ray", "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "--engine ray needs Ray" in err and 'pip install -e ".[ray]"' in err
    assert not (tmp_path / "t.csv").exists()


def test_ray_address_is_checked(capsys, tmp_path, one_face_photo):
    base = ["analyze", str(one_face_photo), "--out", str(tmp_path / "t.csv"), "--quiet"]
    assert main([*base, "--ray-address", "auto"]) == EXIT_USAGE
    assert "--ray-address applies to --engine ray" in capsys.readouterr().err
    pytest.importorskip("ray")
    assert main([*base, "--engine", "ray", "--ray-address", "http://head"]) == EXIT_USAGE
    assert "--ray-address 'http://head' is not allowed" in capsys.readouterr().err
    import socket

    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert main([*base, "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"]) == EXIT_USAGE
    import ray

    assert not ray.is_initialized()  # refused before ray.init, which retried such an address for minutes
    assert f"--ray-address 127.0.0.1:{port}: nothing accepts connections at 127.0.0.1:{port} (Connection refused)" \
        in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()  # refused before any output was made


class _NotRay:
    """A TCP listener on every interface (Ray dials this machine's address for 127.0.0.1) that is no Ray head:
    ``silent`` accepts and never answers, ``http`` answers as an HTTP/1 server does."""

    def __init__(self, kind: str):
        import socket

        self.kind, self.held = kind, []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            if self.kind == "http":
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    conn.close()
                except OSError:
                    pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.mark.parametrize("kind", ["silent", "http"])
def test_an_address_where_no_ray_head_answers_is_refused_in_seconds(kind):
    """Any TCP listener passed the check, and ray.init then retried it for 14 minutes (20 tries of 30 s and more),
    silently."""
    pytest.importorskip("ray")
    from fer_batch.engine_ray import check_reachable
    from fer_batch.errors import UsageError

    with _NotRay(kind) as listener:
        t0 = time.monotonic()
        with pytest.raises(UsageError, match=f"no Ray cluster's head answered at 127.0.0.1:{listener.port}"):
            check_reachable(f"127.0.0.1:{listener.port}", timeout_s=2)
        assert time.monotonic() - t0 < 10


def test_a_run_at_a_silent_listener_is_a_usage_error_with_no_output(tmp_path, one_face_photo):
    import subprocess

    from test_reliability import cli_command

    pytest.importorskip("ray")
    out = tmp_path / "t.csv"
    with _NotRay("silent") as listener:
        res = subprocess.run(cli_command() + ["analyze", str(one_face_photo), "--out", str(out), "--engine", "ray",
                                              "--ray-address", f"127.0.0.1:{listener.port}", "--quiet"],
                             capture_output=True, text=True, timeout=120)
    assert res.returncode == EXIT_USAGE, res.stderr[-2000:]
    assert "no Ray cluster's head answered at 127.0.0.1:" in res.stderr, res.stderr[-2000:]
    assert "(no gRPC answer in 5 s)" in res.stderr, res.stderr[-2000:]
    assert not any(tmp_path.glob("t.csv*"))


@pytest.mark.ray
def test_plain_engine_ray_starts_its_own_instance_and_a_failed_join_leaves_no_output(tmp_path, one_face_photo):
    """RAY_ADDRESS naming nothing (or a dead head's record in /tmp/ray) hung a plain --engine ray for good, Ctrl-C
    ignored; --ray-address auto with no cluster failed after the timeline, errors file and journal were made, and
    the same command then was refused over them."""
    import subprocess

    from test_reliability import cli_command

    import tempfile

    pytest.importorskip("ray")
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    other = Path(ray_tmp, "ray", "session_2000-01-01_00-00-00_000000_1")  # another instance's folder: it stays
    (other / "logs").mkdir(parents=True)
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:1", "RAY_TMPDIR": ray_tmp}
    out = tmp_path / "t.csv"
    res = subprocess.run(cli_command() + ["analyze", str(one_face_photo), "--out", str(out), "--engine", "ray",
                                          "--quiet"], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(read_timeline(out)) == 1
    # Ray keeps an instance's folder after ray.shutdown, one more a run: the run's own went, and the session_latest
    # link that named it (a dangling one Ray's next instance cannot replace); another instance's stays.
    assert sorted(p.name for p in Path(ray_tmp, "ray").iterdir()) == [other.name]
    res = subprocess.run(cli_command() + ["analyze", str(one_face_photo), "--out", str(tmp_path / "d.csv"), "--engine",
                                          "ray", "--quiet", "--debug"], capture_output=True, text=True, timeout=300,
                         env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    kept = [p for p in Path(ray_tmp, "ray").glob("session_*") if p.name not in (other.name, "session_latest")]
    assert len(kept) == 1 and str(kept[0]) in (tmp_path / "d.debug.log").read_text()  # --debug keeps Ray's logs
    env.pop("RAY_ADDRESS")
    out = tmp_path / "u.csv"
    argv = cli_command() + ["analyze", str(one_face_photo), "--out", str(out), "--engine", "ray", "--ray-address",
                            "auto", "--quiet"]
    for _ in range(2):  # the second try is refused for the same reason, not over files the first left
        res = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
        assert res.returncode == EXIT_USAGE and "--ray-address auto: cannot join a Ray cluster there" in res.stderr, \
            res.stderr[-2000:]
        assert not any(tmp_path.glob("*u.csv*")), list(tmp_path.iterdir())
    shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.mark.ray
def test_a_ray_head_passes_the_check_by_its_address_or_loopback(ray_local):
    # (after test_plain_engine_ray_..., whose `--ray-address auto` must find no instance: ray_local's is found)
    from fer_batch.engine_ray import check_reachable

    gcs = ray_local.get_runtime_context().gcs_address
    check_reachable(gcs)
    check_reachable(f"127.0.0.1:{gcs.rpartition(':')[2]}")


@pytest.mark.ray
def test_the_report_of_a_ray_run_says_each_worker_chose_the_runtime(ray_local, tmp_path, synthetic_photos):
    from fer_batch.engine_ray import RayEngine

    photo = shutil.copy(synthetic_photos["one_face"][0], tmp_path / "me.jpg")
    config = RunConfig(paths=(str(photo),), out=tmp_path / "r.csv", report=tmp_path / "r.html")
    run_batch(config, engine=RayEngine())
    assert "<tr><th>runtime</th><td>auto (chosen on each worker)</td></tr>" in config.report.read_text()


@pytest.mark.ray
def test_cli_ray_run_equals_local_run(ray_local, media, local_out, tmp_path, capsys):
    out = tmp_path / "cli.csv"
    code = main(["analyze", str(media), "--out", str(out), "--batch-size", "32", "--engine", "ray"])
    err = capsys.readouterr().err
    assert code == EXIT_SOME_FAILED
    assert err.splitlines()[0] == "starting Ray; its workers load model fast ..."  # at once, not after Ray's start
    assert err.strip().splitlines()[-1] == "fer-batch: sources: 5 succeeded, 1 failed, 0 skipped (already done); " \
        f"{len(read_timeline(local_out))} rows written"
    assert_same_timeline(out, local_out)
    errors = read_errors(out.with_name("cli.errors.csv"))
    assert errors.equals(read_errors(local_out.with_name("local.errors.csv")))
    assert errors["source"].tolist() == [str(media / "broken.jpg")]


@pytest.mark.ray
def test_killed_worker_is_retried(ray_local, media, ray_out, tmp_path):
    out = tmp_path / "killed.csv"
    with _Killer("long.mp4", times=1) as killer:
        report = _run(media, out)
    assert len(killer.killed) == 1
    assert report.failed == 1 and report.succeeded == 5
    assert out.read_bytes() == ray_out.read_bytes()  # the retried source, and every other, complete and identical


@pytest.mark.ray
def test_file_that_always_kills_its_worker_is_an_error_row(ray_local, media, ray_out, tmp_path):
    from fer_batch.engine_ray import RayEngine

    out = tmp_path / "doomed.csv"
    with _Killer("long.mp4", times=None) as killer:
        report = _run(media, out, engine=RayEngine(retries=1))
    assert len(killer.killed) == 2  # the first try and the one retry
    assert report.failed == 2 and report.succeeded == 4
    errors = read_errors(out.with_name("doomed.errors.csv"))
    assert errors["source"].tolist() == [str(media / "broken.jpg"), str(media / "long.mp4")]
    assert "Ray worker died on each of 2 tries" in errors["error"].iloc[1]
    reference = read_timeline(ray_out)
    assert read_timeline(out).equals(reference[reference["source"] != str(media / "long.mp4")].reset_index(drop=True))


class _StopAfter:
    """A Progress that sets ``stop`` once ``n`` sources are done: an interruption at a known point."""

    def __init__(self, stop: threading.Event, n: int):
        self.stop, self.n = stop, n

    def start(self, total_sources, already_done): ...
    def source_start(self, event): ...
    def frames(self, n): ...
    def close(self): ...

    def source_done(self, done):
        self.n -= 1
        if self.n == 0:
            self.stop.set()


@pytest.mark.ray
def test_resume_after_interrupted_ray_run(ray_local, media, ray_out, local_out, tmp_path):
    from fer_batch.engine_ray import RayEngine

    out = tmp_path / "cut.csv"
    stop = threading.Event()
    with pytest.raises(Interrupted) as info:
        _run(media, out, stop=stop, progress=_StopAfter(stop, 3))
    assert info.value.report.succeeded + info.value.report.failed == 3
    cut = read_timeline(out)
    assert 0 < cut["source"].nunique() < 6
    copy = tmp_path / "copy.csv"
    for suffix in ("", ".errors"):  # a second copy of the interrupted output, resumed locally below
        shutil.copy(out.with_name(f"cut{suffix}.csv"), copy.with_name(f"copy{suffix}.csv"))
    shutil.copy(out.with_name(".cut.csv.journal"), copy.with_name(".copy.csv.journal"))

    config = RunConfig(paths=(str(media),), out=out, analyze=AnalyzeConfig(batch_size=32), resume=True)
    report = run_batch(config, engine=RayEngine())
    assert report.skipped == 3 and report.succeeded + report.failed == 3
    assert out.read_bytes() == ray_out.read_bytes()
    assert out.with_name("cut.errors.csv").read_bytes() == ray_out.with_name("ray.errors.csv").read_bytes()

    report = run_batch(RunConfig(paths=(str(media),), out=copy, analyze=AnalyzeConfig(batch_size=32), resume=True))
    assert report.skipped == 3
    assert_same_timeline(copy, local_out)


@pytest.mark.ray
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_of_a_cli_ray_run_leaves_a_resumable_output(ray_local, media, ray_out, tmp_path, sig):
    """Ctrl-C as a terminal sends it: SIGINT to the CLI's whole process group (its own Ray instance included), once
    a file is committed; or SIGTERM to the CLI alone, as `kill` or a job scheduler sends it (ray.init had put its own
    handler in place of the CLI's: exit 1 and a stack dump). Exit 130, the last line counts what was done, and
    --resume on Ray finishes the same CSV."""
    import subprocess

    from fer_batch.cli import EXIT_INTERRUPTED
    from fer_batch.engine_ray import RayEngine

    from test_reliability import cli_command

    out = tmp_path / "sigint.csv"
    journal = out.with_name(".sigint.csv.journal")
    proc = subprocess.Popen(cli_command() + ["analyze", str(media), "--out", str(out), "--batch-size", "32",
                                             "--engine", "ray", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and proc.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= 2:  # settings + one committed file
                if sig == signal.SIGINT:
                    os.killpg(proc.pid, sig)
                else:
                    os.kill(proc.pid, sig)
                break
            time.sleep(0.05)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == EXIT_INTERRUPTED, err[-2000:]
    assert "continue with --resume" in err and err.strip().splitlines()[-1].startswith("fer-batch: sources: ")
    report = run_batch(RunConfig(paths=(str(media),), out=out, analyze=AnalyzeConfig(batch_size=32), resume=True),
                       engine=RayEngine())
    assert report.skipped >= 1
    assert out.read_bytes() == ray_out.read_bytes()


class _KillOnStart(Progress):
    """A Progress that, once the driver has had the first rows of ``name`` (its SourceStart comes with them),
    starts a _Killer on that source's workers: the first ``times`` of them, or every one (None)."""

    def __init__(self, name: str, times: int | None):
        self.name, self.times, self.killer = name, times, None

    def source_start(self, event):
        if event.source.endswith(self.name) and self.killer is None:
            self.killer = _Killer(self.name, self.times).__enter__()

    def close(self):
        if self.killer is not None:
            self.killer.__exit__()


@pytest.fixture(scope="module")
def long_only(media, tmp_path_factory) -> Path:
    """A folder with the 240-frame video alone: the driver is on it from the start, so its first chunk reaches the
    driver while the task still runs (behind other files, it could finish before the driver got to it)."""
    folder = tmp_path_factory.mktemp("ray_long")
    shutil.copy(media / "long.mp4", folder / "long.mp4")
    return folder


@pytest.fixture(scope="module")
def long_ref(ray_local, long_only, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ray_long_ref") / "long.csv"
    assert _run(long_only, out).ok
    return out


def _rows(path: Path) -> pd.DataFrame:
    """A timeline without its source column (the same video in another folder)."""
    return read_timeline(path).drop(columns="source")


@pytest.mark.ray
def test_a_long_video_streams_back_in_chunks_with_the_same_output(ray_local, media, ray_out, tmp_path):
    """A task sends its rows as they are classified, not all at the end: neither the worker nor the driver holds a
    whole video's rows. In chunks of 16 events, the 240-frame video comes in many, and the output is unchanged."""
    from fer_batch.engine_ray import RayEngine

    out = tmp_path / "chunks.csv"
    engine = RayEngine(chunk_rows=16)
    report = _run(media, out, engine=engine)
    assert report.failed == 1 and report.succeeded == 5
    assert engine.chunks[str(media / "long.mp4")] >= 240 // 16
    assert out.read_bytes() == ray_out.read_bytes()


@pytest.mark.ray
def test_a_worker_killed_mid_stream_is_replayed_from_where_the_driver_is(ray_local, long_only, long_ref, tmp_path):
    """Killed once the driver has had its first chunk: Ray runs the task again, the analysis is deterministic, and
    the driver goes on from the first chunk it has not had, so the output is the uninterrupted run's."""
    from fer_batch.engine_ray import RayEngine

    out = tmp_path / "mid.csv"
    kill = _KillOnStart("long.mp4", times=1)
    report = _run(long_only, out, engine=RayEngine(chunk_rows=8), progress=kill)
    assert kill.killer is not None and len(kill.killer.killed) == 1
    assert report.ok and report.succeeded == 1
    assert out.read_bytes() == long_ref.read_bytes()


@pytest.mark.ray
def test_a_worker_that_dies_on_every_try_mid_stream_keeps_the_rows_that_came(ray_local, long_only, long_ref,
                                                                               tmp_path):
    """As a video that breaks off keeps the rows decoded before the break: the rows the driver had stay, whole
    frames only, and the error row says how far the source got."""
    from fer_batch.engine_ray import RayEngine

    out = tmp_path / "partial.csv"
    kill = _KillOnStart("long.mp4", times=None)
    report = _run(long_only, out, engine=RayEngine(chunk_rows=8, retries=1), progress=kill)
    assert report.failed == 1 and report.succeeded == 0
    (error,) = read_errors(out.with_name("partial.errors.csv"))["error"]
    kept, whole = _rows(out), _rows(long_ref)
    frames = kept["frame"].nunique()
    assert 0 < frames < whole["frame"].nunique()
    assert f"died on each of 2 tries (WorkerCrashedError) after {frames} analysed frames, whose rows are kept" in error
    pd.testing.assert_frame_equal(kept, whole[whole["frame"].isin(kept["frame"])].reset_index(drop=True))


class _SwapAndKill(Progress):
    """Once the driver has had the first rows of ``path``: replaces the file with another video, then kills the
    worker analysing it, so that Ray's retry reads other frames than the first try did."""

    def __init__(self, path: Path, seed: int):
        self.path, self.seed, self.killed = path, seed, []

    def source_start(self, event):
        if event.source == str(self.path) and not self.killed:
            other = self.path.with_name("other.mp4")  # discovered before: not analysed
            synthetic.write_face_video(other, frames=240, fps=20, size=(160, 120), seed=self.seed)
            os.replace(other, self.path)
            with _Killer(self.path.name, times=1) as killer:
                deadline = time.monotonic() + 30
                while not killer.killed and time.monotonic() < deadline:
                    time.sleep(0.01)
            self.killed = killer.killed


@pytest.mark.ray
def test_a_retry_that_does_not_repeat_the_first_try_is_an_error_not_a_join(ray_local, long_only, long_ref,
                                                                              tmp_path):
    """Ray takes a retried task up by its chunks' positions: were the retry to analyse differently (nodes that
    compute differently; here, the file replaced between the tries), its later rows would be joined to the first
    try's. Each chunk carries the count and a digest of the events before it, so the driver sees the difference,
    keeps what it had and names the file."""
    from fer_batch.engine_ray import RayEngine

    folder = tmp_path / "media"
    shutil.copytree(long_only, folder)
    out = tmp_path / "swapped.csv"
    swap = _SwapAndKill(folder / "long.mp4", seed=9)
    report = _run(folder, out, engine=RayEngine(chunk_rows=8), progress=swap)
    assert len(swap.killed) == 1
    assert report.failed == 1 and report.succeeded == 0
    (error,) = read_errors(out.with_name("swapped.errors.csv"))["error"]
    assert "did not analyse it as before" in error and "--resume --retry-failed" in error
    kept, whole = _rows(out), _rows(long_ref)
    assert 0 < len(kept) < len(whole)
    pd.testing.assert_frame_equal(kept, whole.iloc[:len(kept)])

def test_workers_get_the_model_file_by_its_absolute_path(tmp_path, monkeypatch):
    """A Ray worker's working directory is not the driver's: a relative --model path reaches the tasks absolute
    (and one that does not exist fails on the driver, with the model error), packaged names stay names."""
    from fer_batch.classify import resolve_model
    from fer_batch.engine_ray import for_workers
    from fer_batch.errors import ModelError

    shutil.copy(resolve_model("fast"), tmp_path / "mine.keras")
    monkeypatch.chdir(tmp_path)
    task = for_workers(AnalyzeConfig(model="mine.keras", workers=2))
    assert task.workers == 1 and task.model == str(tmp_path / "mine.keras")
    assert for_workers(AnalyzeConfig(model="accurate")).model == "accurate"
    assert for_workers(AnalyzeConfig()).model is None
    with pytest.raises(ModelError, match="no such file"):
        for_workers(AnalyzeConfig(model="missing.keras"))


def test_a_model_file_retrained_in_place_is_a_new_cache_key_in_workers(tmp_path):
    from fer_batch.engine_ray import _file_identity

    model = tmp_path / "mine.keras"
    model.write_bytes(b"first weights")
    first = _file_identity(str(model))
    model.write_bytes(b"retrained, other weights")
    assert _file_identity(str(model)) != first
    assert _file_identity("fast") is None and _file_identity(None) is None


@pytest.mark.ray
def test_a_file_name_that_is_not_utf8_runs_on_ray_as_locally(ray_local, tmp_path, synthetic_photos):
    """Ray wants its task names in UTF-8: a Latin-1 name (as old archives hold) is escaped in the worker's title
    only, and the file is analysed under its own name, as the local engine does."""
    folder = tmp_path / "latin1"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.jpg")  # surrogateescape: the bytes of the name, not valid UTF-8
    shutil.copy(synthetic_photos["one_face"][0], folder / name)
    ray_out, local_out = tmp_path / "ray.csv", tmp_path / "local.csv"
    report = _run(folder, ray_out)
    assert report.ok and report.succeeded == 1, report.errors
    run_batch(RunConfig(paths=(str(folder),), out=local_out, analyze=AnalyzeConfig(batch_size=32)))
    assert ray_out.read_bytes() == local_out.read_bytes()
    assert read_timeline(ray_out)["source"].tolist() == [os.path.join(str(folder), name)]


@pytest.mark.ray
def test_an_animated_image_runs_on_ray_as_locally(ray_local, tmp_path, synthetic_photos):
    """An animated WebP is a video decoded by Pillow in the worker: frame by frame at its own times, as locally."""
    from PIL import Image

    folder = tmp_path / "anim"
    folder.mkdir()
    with Image.open(synthetic_photos["one_face"][0]) as im:
        face = np.asarray(im.convert("RGB").resize((200, 250)))
    frames = [np.pad(face, ((0, 0), (40 * i, 120 - 40 * i), (0, 0)), constant_values=110) for i in range(3)]
    synthetic.save_animation(folder / "walk.webp", frames, [100, 250, 100])
    ray_out, local_out = tmp_path / "ray.csv", tmp_path / "local.csv"
    report = _run(folder, ray_out)
    assert report.ok and report.succeeded == 1, report.errors
    run_batch(RunConfig(paths=(str(folder),), out=local_out, analyze=AnalyzeConfig(batch_size=32)))
    assert_same_timeline(ray_out, local_out)
    rows = read_timeline(ray_out)
    assert rows["media"].tolist() == ["video"] * 3 and rows["time_s"].tolist() == pytest.approx([0.0, 0.1, 0.35])
    assert rows["face_id"].tolist() == [0, 0, 0]


@pytest.mark.ray
def test_chunks_of_a_group_video_end_between_frames(ray_local, tmp_path):
    """Six faces a frame, chunks of one row: each chunk still holds one whole frame (a chunk of the one-face video
    could not split a frame, whatever the rule), no frame comes in two chunks, and the Ray run's output is the local
    run's."""
    import group_scenes as gs
    from fer_batch.engine_ray import RayEngine, _analyze_task
    from fer_batch.records import FaceRecord
    from fer_batch.sources import Source

    clip = gs.group_clip(frames=8, cross=False, seed=1)
    folder = tmp_path / "group"
    folder.mkdir()
    path = folder / "group.mp4"
    gs.write_clip(clip, path)

    chunks = [events for _, events, _ in _analyze_task(Source(path, path.name, "video"), AnalyzeConfig(), 1)]
    frames = [[e.frame for e in events if isinstance(e, FaceRecord)] for events in chunks]
    assert max(len(f) for f in frames) >= 4  # several faces in one chunk: one frame's
    assert all(len(set(f)) <= 1 for f in frames)
    firsts = [f[0] for f in frames if f]
    assert firsts == sorted(set(firsts)) and len(firsts) == len(clip.frames)

    local = tmp_path / "local.csv"
    assert run_batch(RunConfig(paths=(str(folder),), out=local, analyze=AnalyzeConfig(batch_size=32))).ok
    out = tmp_path / "ray.csv"
    engine = RayEngine(chunk_rows=1)
    assert _run(folder, out, engine=engine).ok
    assert engine.chunks[str(path)] == 1 + len(clip.frames)  # the first holds the source's start alone
    assert_same_timeline(out, local)
