"""Running a batch on a Ray cluster (``analyze --engine ray``): one Ray task per source, results in source order.

    driver: sources ──► submit (at most `in_flight` tasks) ──► the oldest's chunks as they come ──► run_batch's sinks
    worker: stream_source(source) with the worker process's cached detector and classifier ──► chunks of events

Each task decodes, detects, tracks, crops *and classifies* one source, with a detector and classifiers loaded once
per worker process and kept for its next tasks: no crop travels through the object store, and no actor has to be
sized and placed. The network always runs full padded batches (see :class:`~fer_batch.classify.Classifier`), so a
photo, which cannot share a batch with other files here, would pay a whole network batch for its one or two faces
(``--batch-size`` in Keras): measured at 2.6 s a photo on this loaded 2-core machine
when TensorFlow Lite also ran batches of 256 (``benchmarks/ray_scaling.py``). Images are therefore classified in
network batches of at most IMAGE_BATCH faces; videos use ``--batch-size``. A face's
probabilities can then differ from a local run's in the last float32 bit (its batch size, and its position, which
counts from the start of its source rather than of the run); they agree to 1e-6, and two Ray runs, or a Ray run and
its resumption on Ray, agree bit for bit.

Each task is a Ray generator: it sends its source's events back in chunks of ``chunk_rows`` as the network classifies
them, so neither a worker nor the driver holds a long video's rows (they wait in Ray's object store, which spills to
disk, until the driver reaches that source), and the driver writes the rows of the source it is on as they come. The
driver submits tasks in source order and keeps at most ``in_flight`` of them out, and hands their events to
:func:`~fer_batch.batch.run_batch` in source order, so the timeline, errors CSV and journal are those of a local run
and ``--resume`` works across engines. Workers never write the user's files; they read the inputs at the driver's
absolute paths, which must therefore be the same on every node (a shared filesystem or object-store mount).

A worker process that dies during a source (killed, out of memory, its node lost) makes Ray run the task again, up
to ``retries`` times (a retry replays the source and sends on from the first chunk the driver has not had: the
analysis is deterministic); after that the source is reported in the errors CSV like any bad file, keeping the rows
that had arrived, as a video that breaks off does, and the run goes on.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from .config import AnalyzeConfig
from .errors import UsageError
from .pipeline import Event, SourceStart
from .records import FaceRecord, SourceDone
from .sources import Source
from .wording import shown_name

log = logging.getLogger("fer_batch")

INSTALL_HINT = 'pip install -e ".[ray]"  (or: pip install "fer-batch[ray]")'
#: Network batch of the classifier that images use in a Ray task (a photo is classified on its own there).
IMAGE_BATCH = 8
#: Events a Ray task sends back at a time (RayEngine.chunk_rows).
CHUNK_ROWS = 1024
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-_\[\]:]+:\d{1,5}$")


def import_ray():
    """The ``ray`` module, or a :class:`UsageError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--engine ray needs Ray, which is not installed here; install it with {INSTALL_HINT}, "
                         "or leave out --engine to run locally") from None
    return ray


def _signal_handlers() -> dict:
    """SIGINT's and SIGTERM's handlers now (none off the main thread, where they cannot be set)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signal_handlers(handlers: dict) -> None:
    import signal

    for sig, handler in handlers.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


def check_address(address: str | None) -> None:
    """:class:`UsageError` unless ``address`` is None, ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``."""
    if address is None or address == "auto":
        return
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    if not _HOST_PORT.match(rest):
        raise UsageError(f"--ray-address {address!r} is not allowed; give auto (the cluster this machine belongs "
                         "to), HOST:PORT (a cluster's head, as printed by `ray start --head`) or ray://HOST:PORT "
                         "(Ray Client)")


@dataclass
class RayEngine:
    """Runs sources as Ray tasks. With ``address`` None it joins the Ray instance this process already has, or else
    starts a new local one sized to this machine (``num_cpus``/``object_store_memory`` override its sizing), never
    the cluster that ``RAY_ADDRESS`` names (``address="auto"`` joins that); otherwise it joins that cluster.
    ``retries`` is how many times a source is run again after its worker dies; ``in_flight`` bounds the tasks out
    at once (default: twice the cluster's CPUs); ``chunk_rows`` is how many events (rows, mostly) a task sends back
    at a time.

    ``keep_session``: keep the folder of a local instance it starts (``/tmp/ray/session_*``: Ray's logs), which
    is otherwise removed when the run ends (``--debug`` keeps it).

    ``sources_per_node`` counts, after a run, how many sources each Ray node (by id) analysed; ``chunks`` how many
    chunks each source's events came in.
    """

    address: str | None = None
    retries: int = 2
    in_flight: int | None = None
    num_cpus: int | None = None
    object_store_memory: int | None = None
    chunk_rows: int = CHUNK_ROWS
    keep_session: bool = False
    sources_per_node: Counter = field(default_factory=Counter)
    chunks: Counter = field(default_factory=Counter)
    _owned: bool = field(default=False, init=False, repr=False)  # this engine started the connection: it ends it
    _session_dir: str | None = field(default=None, init=False, repr=False)  # of the instance it started: removed

    def __post_init__(self):
        check_address(self.address)
        if self.retries < 0:
            raise UsageError(f"retries must be >= 0, got {self.retries}")
        if self.in_flight is not None and self.in_flight < 1:
            raise UsageError(f"in_flight must be at least 1, got {self.in_flight}")
        if self.chunk_rows < 1:
            raise UsageError(f"chunk_rows must be at least 1, got {self.chunk_rows}")

    def connect(self) -> None:
        """Join or start Ray now, where this process has no Ray yet (:meth:`events` does it otherwise): the CLI calls
        it before any output file is made, so that a cluster it cannot join leaves nothing to refuse the next try
        over. A connection made here is shut down by :meth:`close`, which :meth:`events` calls as it ends."""
        ray = import_ray()
        if ray.is_initialized():
            return
        kept = _signal_handlers()
        try:
            if self.address is None:
                # "local": a new instance sized to this machine, whatever RAY_ADDRESS or the record of the last
                # `ray start` in /tmp/ray say (a head that had died without `ray stop` hung the run for good).
                context = ray.init(address="local", num_cpus=self.num_cpus,
                                   object_store_memory=self.object_store_memory, include_dashboard=False,
                                   log_to_driver=False, logging_level=logging.ERROR)
                # A new head, this process's alone ("local" never joins): its folder is ours to remove.
                self._session_dir = context.address_info.get("session_dir")
            else:
                check_reachable(self.address)
                try:
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
                except Exception as exc:  # ConnectionError, RuntimeError, ValueError... by how the address fails
                    raise UsageError(f"--ray-address {self.address}: cannot join a Ray cluster there "
                                     f"({type(exc).__name__}: {exc}); is `ray start --head` running, is the address "
                                     "its head's, and does the cluster ask for an authentication token this shell "
                                     "lacks?") from None
        finally:
            # ray.init puts its own SIGTERM handler in place of the CLI's: a kill then exited 1 with a stack dump
            # instead of 130 and the --resume hint.
            _restore_signal_handlers(kept)
        self._owned = True

    def events(self, *, config: AnalyzeConfig, sources: list[Source], skip: set[str] | None = None,
               classifier=None, detector_factory=None, faces_before: int = 0, stop=None) -> Iterator[Event]:
        """Per source, in the order given: SourceStart, its FaceRecords, SourceDone (the run's events, like
        :func:`~fer_batch.pipeline.iter_events`). ``classifier``, ``detector_factory`` and ``faces_before`` are
        accepted for that signature and unused: workers load their own from ``config``. Returns early once ``stop``
        is set (run_batch then drops the rows of a source it had not finished)."""
        skip = skip or set()
        todo = deque(s for s in sources if s.name not in skip)
        if not todo:
            self.close()  # a connection the CLI made for it ends here too
            return
        ray = import_ray()
        self.connect()
        pending: deque = deque()
        try:
            task = ray.remote(_analyze_task)
            options = dict(max_retries=self.retries, retry_exceptions=False, scheduling_strategy="SPREAD", num_cpus=1)
            window = self.in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
            config = for_workers(config)
            while todo or pending:
                while todo and len(pending) < window:
                    s = todo.popleft()
                    # Absolute: a worker's working directory is not the driver's. The task name shows in the worker's
                    # process title (ray::fer-batch:NAME), which says what a busy worker is on.
                    src = Source(s.path.absolute(), s.name, s.media)
                    # Ray wants the name as UTF-8: a name that is not (bytes read with surrogateescape) is escaped.
                    named = task.options(name=f"fer-batch:{shown_name(s.name)}", **options)
                    remote = named.remote(src, config, self.chunk_rows)
                    pending.append((s, remote))
                source, chunks = pending[0]
                yield from self._stream(ray, source, chunks, stop)
                if stop is not None and stop.is_set():
                    return
                pending.popleft()
        finally:
            for _, chunks in pending:  # Ctrl-C or an error: stop the cluster's work on the rest
                ray.cancel(chunks, force=True)
            self.close()

    def close(self) -> None:
        """End the connection this engine made (:meth:`connect`, :meth:`events`), and remove the folder of the local
        instance it started; nothing where it made none (Ray the caller started stays). :meth:`events` calls it as
        it ends; a caller that connected and then did not run it calls it itself."""
        if not self._owned:
            return
        import ray

        self._owned = False
        session, self._session_dir = self._session_dir, None
        # Waiting for the processes: none of them writes into the folder as it is removed.
        ray.shutdown(wait_for_processes=session is not None)
        if session is not None and self.keep_session:
            log.info("Ray's logs of this run are in %s", session)
        elif session is not None:
            remove_session(session)

    def _stream(self, ray, source: Source, chunks, stop) -> Iterator[Event]:
        """The events of one task as its chunks arrive, ending with its SourceDone; a worker that died on every try
        ends them with an error row instead (the rows that had arrived stay, as a broken-off video's do)."""
        begun, frames, faces, last = False, 0, 0, None  # a source's records come in frame order
        had = _Mark()
        while True:
            while not ray.wait([chunks], timeout=0.2)[0]:
                if stop is not None and stop.is_set():
                    return
            kept = f" after {frames} analysed frames, whose rows are kept" if frames else ""
            reason, events, node = self._next_chunk(ray, source, chunks, had.value, kept)
            if reason is not None:
                if not begun:
                    yield SourceStart(source.name, source.media, 0)
                yield SourceDone(source.name, source.media, frames=frames, faces=faces, error=reason)
                return
            had.add(events)
            self.chunks[source.name] += 1
            for event in events:
                if isinstance(event, FaceRecord):
                    frames, last = frames + (event.frame != last), event.frame
                    faces += event.face_id is not None
                begun = begun or isinstance(event, SourceStart)
                yield event
            if node is not None:  # the task's last chunk, its SourceDone included
                self.sources_per_node[node] += 1
                log.debug("%s analysed on Ray node %s", source.name, node)
                return

    def _next_chunk(self, ray, source: Source, chunks, had: tuple[int, str], kept: str):
        """(None, events, node) of the task's next chunk, or (why the source ends here, None, None): its worker
        died on every try, or a retry did not repeat what the driver ``had`` (``kept`` says what stays)."""
        from ray import exceptions as rx

        ref = next(chunks, None)  # None: a retry that ended before the chunks the driver already has
        if ref is None:
            return (f"its Ray worker died, and the try after ended sooner than the first{kept} (the file changed?); "
                    "analyse it again with --resume --retry-failed"), None, None
        try:
            mark, events, node = ray.get(ref)
        except rx.RayTaskError as exc:  # not a bad file (those come back as done.error): a set-up failure, fatal
            raise exc.as_instanceof_cause() from None
        except (rx.WorkerCrashedError, rx.OutOfMemoryError, rx.NodeDiedError, rx.ObjectLostError,
                rx.LocalRayletDiedError) as exc:
            log.info("%s: %s", source.name, exc)
            return (f"its Ray worker died on each of {self.retries + 1} tries ({type(exc).__name__}){kept}: the file "
                    "may crash the decoder or need more memory than a worker has"), None, None
        except rx.RaySystemError as exc:  # e.g. StreamingGeneratorReplayInconsistentError: a replay that differed
            log.info("%s: %s", source.name, exc)
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:200]
            # One line: an error row is a CSV cell that people read beside others (Ray's text can run to a page).
            return f"Ray failed while analysing it ({type(exc).__name__}: {first}){kept}", None, None
        if mark != had:
            ray.cancel(chunks, force=True)
            return (f"its Ray worker died, and the try after did not analyse it as before{kept} (do the cluster's "
                    "nodes compute differently?); analyse it again with --resume --retry-failed"), None, None
        return None, events, node


# -- worker side ---------------------------------------------------------------------------------------------------
_cached: dict = {}  # per worker process: the classifier and detector of the last config, reused by its next tasks


def for_workers(config: AnalyzeConfig) -> AnalyzeConfig:
    """``config`` as each Ray task runs it: one worker (one task is one source; the cluster is the parallelism),
    and a model file named by its absolute path, since a worker's working directory is not the driver's (a relative
    ``--model my.keras`` would be "no such file" on every node)."""
    from .classify import PACKAGED, resolve_model

    model = config.model
    if model is not None and str(model) not in PACKAGED:
        model = str(resolve_model(model).absolute())
    return replace(config, workers=1, model=model)


def _file_identity(model: str | None) -> tuple | None:
    """Size and modification time of a model named by path: a file retrained in place between two runs on the
    same workers is loaded again, not served from this process's cache."""
    import os

    if model is None:
        return None
    try:
        st = os.stat(model)
    except OSError:
        return None  # a packaged name (or a missing file, which the load reports)
    return (st.st_size, st.st_mtime_ns)


def _models(config: AnalyzeConfig, media: str):
    from .classify import Classifier
    from .pipeline import default_detector_factory

    batch = config.batch_size if media == "video" else min(config.batch_size, IMAGE_BATCH)
    ckey = (config.model, _file_identity(config.model), batch, config.runtime)
    dkey = (config.detector, config.min_score, config.detect_max_side)
    classifiers = _cached.setdefault("classifiers", {})  # by ckey: one for videos, one for images
    if ckey not in classifiers:
        if len(classifiers) >= 2:  # another run's: drop it
            classifiers.clear()
        classifiers[ckey] = Classifier(config.model, batch_size=batch, runtime=config.runtime)
    if _cached.get("dkey") != dkey:
        if "detector" in _cached:
            _cached.pop("detector").close()
        _cached["detector"] = default_detector_factory(config)
        _cached["dkey"] = dkey
    return classifiers[ckey], _cached["detector"]


def _analyze_task(source: Source, config: AnalyzeConfig, chunk_rows: int):
    """The Ray task, a generator: one source's events (SourceStart, FaceRecords, SourceDone) in chunks of about
    ``chunk_rows``, each ending where a frame does, as (:class:`_Mark` of the events before it, events, None); the
    last chunk, its SourceDone included, with the id of the node that ran it in place of None."""
    import ray

    from .pipeline import stream_source

    classifier, detector = _models(config, source.media)
    chunk: list = []
    before = _Mark()
    last = None
    for event in stream_source(source, config, classifier=classifier, detector=detector):
        # Whole frames only: a file whose worker dies for good keeps whole frames, as a video that breaks off does.
        if len(chunk) >= chunk_rows and isinstance(event, FaceRecord) and event.frame != last:
            yield before.value, chunk, None
            before.add(chunk)
            chunk = []
        chunk.append(event)
        if isinstance(event, FaceRecord):
            last = event.frame
    yield before.value, chunk, ray.get_runtime_context().get_node_id()


class _Mark:
    """How many events came so far and a digest of them: a retried task must send exactly what the driver already
    has before its next chunk (Ray takes a retry up by the chunk's position), or the two would be joined wrongly."""

    def __init__(self):
        self.count = 0
        self._hash = hashlib.blake2b(digest_size=16)

    def add(self, events: list) -> None:
        self.count += len(events)
        for event in events:
            self._hash.update(repr(event).encode("utf-8", "backslashreplace"))

    @property
    def value(self) -> tuple[int, str]:
        return self.count, self._hash.hexdigest()


def _dialled(address: str) -> str:
    """The HOST:PORT that ray.init dials for ``address``: Ray puts this node's IP for 127.0.0.1 and localhost
    (ray._private.services.canonicalize_bootstrap_address), so a listener on loopback only is not what it reaches."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(address) or address
    except Exception:  # a private helper that moved or failed: probe the address as given
        return address


def _not_gcs(target: str, timeout_s: float) -> str | None:
    """None when ``target`` answers as a Ray cluster's GCS the call ray.init makes first
    (NodeInfoGcsService.GetClusterId, over Ray's own channel: TLS and token as ray.init would), or refuses it as a
    GCS wanting a token this shell lacks (ray.init then says so); else what answered instead."""
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:  # a Ray that moved its stubs: ray.init gives its own answer, if slowly
        return None
    try:
        from ray._private.grpc_utils import init_grpc_channel
    except ImportError:
        init_grpc_channel = grpc.insecure_channel
    channel = init_grpc_channel(target)
    try:
        gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(gcs_service_pb2.GetClusterIdRequest(),
                                                                          timeout=timeout_s)
    except grpc.RpcError as exc:
        code = exc.code()
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"no gRPC answer in {timeout_s:g} s"
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return "a gRPC server without Ray's GCS service"
        return (exc.details() or code.name).rpartition("last error: ")[2][:200]
    finally:
        channel.close()
    return None


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """For ``HOST:PORT`` and ``ray://HOST:PORT``: :class:`UsageError` within ``timeout_s`` when nothing accepts a
    connection where Ray will dial, and for ``HOST:PORT`` when what answers there is not a Ray cluster's GCS.
    ray.init would retry either for about 14 minutes, silently (RAY_NUM_REDIS_GET_RETRIES, 20, tries of
    RAY_py_gcs_connect_timeout_s, 30 s, plus about 10 s each); Ray Client (ray://) gives up by itself after 3
    tries (about 30 s). ``auto`` is left to Ray."""
    import socket

    if address == "auto":
        return
    client = address.startswith("ray://")
    given = address.removeprefix("ray://")
    host, _, port = given.rpartition(":")
    if not host or not port.isdigit():
        return  # Ray's own message for a malformed address is clear enough
    target = given if client else _dialled(given)
    via = "" if target == given else f" (Ray dials {target} for it)"
    t_host, _, t_port = target.rpartition(":")
    try:
        socket.create_connection((t_host.strip("[]"), int(t_port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UsageError(f"--ray-address {address}: nothing accepts connections at {host}:{port} "
                         f"({exc.strerror or exc}){via}; is `ray start --head` running there, and is that its "
                         "port?") from None
    if client:
        return
    wrong = _not_gcs(target, timeout_s)
    if wrong is not None:
        raise UsageError(f"--ray-address {address}: no Ray cluster's head answered at {host}:{port}{via} ({wrong}); "
                         "give the address `ray start --head` printed (its GCS port, 6379 by default), or "
                         "ray://HOST:10001 for Ray Client") from None


def remove_session(session_dir: str) -> None:
    """Remove the folder (logs, sockets, port files) of a Ray instance this process started and has shut down:
    ray.shutdown stops its processes but keeps the folder for good, one more /tmp/ray/session_* a run. Only that
    folder goes, and Ray's session_latest link where it names that folder (Ray's next instance cannot replace a
    dangling link: ray._private.utils.try_to_symlink)."""
    import os
    import shutil
    import time

    if not os.path.basename(session_dir).startswith("session_"):
        return  # not the shape of a Ray session folder: leave it
    for _ in range(3):  # a worker process that outlived its raylet by a moment can still add a log file
        shutil.rmtree(session_dir, ignore_errors=True)
        if not os.path.lexists(session_dir):
            break
        time.sleep(0.2)
    latest = os.path.join(os.path.dirname(session_dir), "session_latest")
    try:
        if os.readlink(latest) == session_dir:
            os.unlink(latest)
    except OSError:
        pass
