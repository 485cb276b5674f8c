"""A sweep on a real multi-node Ray cluster (``ray.cluster_utils.Cluster``, on this machine)
whose only node with room for a run leaves. Its own module: ``test_sweep``'s local Ray instance
lives for that whole module."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from .helpers import pendulum_config


@pytest.mark.slow
@pytest.mark.mujoco
def test_a_sweep_whose_nodes_leave_cancels_its_runs_instead_of_waiting_forever(
    tmp_path: Path,
) -> None:
    """The only node with room for a run leaves mid-run: Ray would keep the run's retry
    pending forever; the sweep cancels it and ends, the run resumable."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from spiking_dreamer.sweep.driver import Sweep

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=2)
    exp, out = tmp_path / "exp", io.StringIO()
    status = exp / "status" / "pendulum__baseline__s0.json"

    def leave_once_the_run_started() -> None:
        deadline = time.monotonic() + 120
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        cluster.remove_node(worker)

    try:
        ray.init(address=cluster.address, log_to_driver=False)
        sweep = Sweep(
            [pendulum_config(tmp_path)],
            [0],
            ["baseline"],
            exp,
            overrides=["train.total_steps=1000000", "log.tensorboard=false"],
            cpus_per_run=2,
            poll_s=0.2,
            out=out,
            node_wait_s=1.0,
        )
        result: list[dict] = []
        driver = threading.Thread(target=lambda: result.append(sweep.run()), daemon=True)
        driver.start()
        leave_once_the_run_started()
        driver.join(timeout=300)
        assert not driver.is_alive(), "the sweep still waits for a run no node can take"
    finally:
        ray.shutdown()
        cluster.shutdown()
    (run,) = result[0]["runs"]
    assert run["status"] == "pending"
    assert run["action"] == "cancelled"
    assert "no alive node of the Ray cluster has had room for a run for 1 s" in out.getvalue()
    assert "--cpus-per-run 2 asks for more than there is: at most 1 CPUs" in out.getvalue()
