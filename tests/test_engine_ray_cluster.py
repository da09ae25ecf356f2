"""Issue 16: a simulated two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``, 1 CPU a node) runs a
batch whose sources land on both nodes, and writes the local run's timeline. Apart from test_engine_ray.py, whose
single-node instance must be shut down first: a process joins one Ray cluster at a time."""

from __future__ import annotations

import shutil
import tempfile

import pytest

from fer_batch.batch import run_batch
from fer_batch.config import AnalyzeConfig, RunConfig

from test_engine_ray import assert_same_timeline


@pytest.mark.ray
def test_two_node_cluster_runs_sources_on_both_nodes(synthetic_photos, face_video, tmp_path):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from fer_batch.engine_ray import RayEngine

    paths = (str(synthetic_photos["three_faces"][0]), str(face_video.path), str(synthetic_photos["one_face"][0]),
             str(synthetic_photos["no_face"][0]))
    analyze = AnalyzeConfig(batch_size=32)
    local = run_batch(RunConfig(paths=paths, out=tmp_path / "local.csv", analyze=analyze))
    store = 80 * 1024 ** 2
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1, object_store_memory=store,
                                                                include_dashboard=False, temp_dir=ray_tmp))
    try:
        cluster.add_node(num_cpus=1, object_store_memory=store)
        cluster.wait_for_nodes()
        engine = RayEngine(address=cluster.address)  # joined as `--ray-address HOST:PORT` does
        report = run_batch(RunConfig(paths=paths, out=tmp_path / "ray.csv", analyze=analyze), engine=engine)
        assert not ray.is_initialized()  # the engine left the cluster it joined
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)  # not one more /tmp/ray/session_* a test run
    assert report.succeeded == local.succeeded == 4
    print("sources per node:", dict(engine.sources_per_node))
    assert len(engine.sources_per_node) == 2 and sum(engine.sources_per_node.values()) == 4
    assert_same_timeline(tmp_path / "ray.csv", tmp_path / "local.csv")
