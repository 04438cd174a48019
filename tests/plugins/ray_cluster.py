"""A real two-node Ray cluster on 127.0.0.1 for tests: one per test session (per xdist worker).

Tests that use it carry ``@pytest.mark.xdist_group("ray")``, so with ``--dist loadgroup`` a single
worker starts it (about 7 s on a 2-core machine).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services import service_unavailable

# Ray reads this when it is imported (which may happen while tests are collected): without it, the
# cluster's processes would listen on every interface of the machine.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

START_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A head node and one more node, 1 CPU each, with this process connected as the driver.

    Yields the ``ray.cluster_utils.Cluster`` (``.address`` is the GCS address). Ray is shut down at
    the end of the session. The Ray workers' own environment (fixed when the nodes start) points
    ``STEWARD_HOME`` at a throwaway folder, so nothing on a worker falls back to ``~/.steward``.
    """
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError as exc:
        service_unavailable("ray", f"Ray is not installed ({exc}): pip install 'steward-ml[ray]'")
    from steward.pipelines.executors.ray import bind_to_loopback

    bind_to_loopback()  # in case Ray was imported before this plugin set the variable
    if ray.is_initialized():
        pytest.fail("Ray is already initialised in this test process: the cluster cannot be started")
    started = time.monotonic()
    cluster: Any = None
    try:
        with pytest.MonkeyPatch.context() as env:  # the nodes' processes inherit it, this one keeps its own
            env.setenv("STEWARD_HOME", str(tmp_path_factory.mktemp("ray-workers-home")))
            cluster = Cluster(
                initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
            )
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(timeout=START_TIMEOUT)
        ray.init(address=cluster.address, log_to_driver=False)  # workers print to their logs, not to pytest
        alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        if len(alive) != 2:
            raise RuntimeError(f"{len(alive)} nodes are alive, expected 2")
    except Exception as exc:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        service_unavailable("ray", f"the two-node cluster did not start: {type(exc).__name__}: {exc}")
    print(f"\nray_cluster: two nodes up in {time.monotonic() - started:.1f} s at {cluster.address}")
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
