"""torch.distributed on CPU (gloo, 2 processes): the same results as one process."""

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from nnflow.distributed import gather_rows, row_range, sharded_kernel
from nnflow.flows.frozen import FrozenKernelFlow
from nnflow.flows.losses import class_kappa, data_parallel_loss, monge_ampere_loss
from nnflow.geometry import fermat_quartic, sample_points
from nnflow.kernels import initial_params, metric_ntk
from nnflow.models import build_potential

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup():
    torch.set_default_dtype(torch.float64)
    points = sample_points(fermat_quartic(), 30, seed=4)
    model = build_potential("mlp", n_coords=4, width=10, depth=2, activation="tanh", seed=2)
    theta0 = initial_params(model)
    kernel = lambda z1, j1, z2, j2: metric_ntk(model, (z1, j1), (z2, j2), params=theta0)  # noqa: E731
    return points, model, kernel


def _flow_coefficients(dense: bool) -> torch.Tensor:
    points, _, kernel = _setup()
    flow = FrozenKernelFlow(kernel, points, kappa=class_kappa(points), dense=dense, block_size=7)
    for _ in range(4):
        flow.step(0.3)
    return flow.coefficients


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        points, model, kernel = _setup()
        results = {}
        # 1. the frozen flow with Θ's rows sharded, dense and matrix-free
        results["dense"] = _flow_coefficients(dense=True)
        results["free"] = _flow_coefficients(dense=False)
        # 2. an empirical kernel computed row-shard by row-shard
        theta0 = initial_params(model)
        results["kernel"] = sharded_kernel(
            lambda rows: metric_ntk(model, (points.z[rows], points.jac[rows]), points, params=theta0), len(points)
        )
        # 3. the global-batch loss: unequal shards, gradients averaged as DDP does
        rows = row_range(len(points))
        g = model.metric(points.z[rows], points.jac[rows])
        loss = data_parallel_loss(torch.linalg.det(g).real, points.omega2[rows], points.weights[rows], 0.7)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        flat = torch.cat([gr.reshape(-1) for gr in grads])
        dist.all_reduce(flat)
        results["grad"] = flat / WORLD
        results["gathered_rows"] = gather_rows(torch.arange(len(points))[rows], len(points))
        if rank == 0:
            torch.save(results, os.path.join(out_dir, "distributed.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return torch.load(out / "distributed.pt", weights_only=False)


def test_sharded_frozen_flow_matches_one_process(distributed_results):
    for key, dense in (("dense", True), ("free", False)):
        single = _flow_coefficients(dense)
        torch.testing.assert_close(distributed_results[key], single, rtol=1e-10, atol=1e-12)


def test_sharded_kernel_matches_one_process(distributed_results):
    points, model, _ = _setup()
    single = metric_ntk(model, points, params=initial_params(model))
    torch.testing.assert_close(distributed_results["kernel"], single, rtol=1e-10, atol=1e-12)
    assert torch.equal(distributed_results["gathered_rows"], torch.arange(len(points)))


def test_data_parallel_loss_gives_the_global_gradient(distributed_results):
    points, model, _ = _setup()
    g = model.metric(points.z, points.jac)
    loss = monge_ampere_loss(torch.linalg.det(g).real, points.omega2, points.weights, 0.7)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    single = torch.cat([gr.reshape(-1) for gr in grads])
    torch.testing.assert_close(distributed_results["grad"], single, rtol=1e-10, atol=1e-14)


def test_ddp_training_on_two_cpu_processes(tmp_path):
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "nnflow-train"), "experiment=cubic_mlp", "trainer=ddp",
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2", "data.n_train=800",
        "data.n_val=200", "data.n_test=400", "data.batch_size=100", "logger=csv",
        "trainer.enable_progress_bar=false", f"data.cache_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed"
    assert summary["steps"] == 8  # 800 points / (2 ranks × 100) per epoch × 2 epochs


def test_ddp_training_for_a_wall_clock_budget(tmp_path):
    # max_time under DDP: rank 0's clock sets every replica's rate (a broadcast per step), the
    # rate decays to its floor by the deadline, and the run ends with a final validation
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "nnflow-train"), "experiment=cubic_mlp", "trainer=ddp",
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=100000", "trainer.max_time=00:00:00:06",
        "optim.scheduler.warmup_steps=0", "data.n_train=800", "data.n_val=200", "data.n_test=400",
        "data.batch_size=100", "logger=csv", "trainer.enable_progress_bar=false",
        f"data.cache_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'run'}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    from nnflow.training.callbacks import read_metrics

    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["steps"] > 8
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert int(rows[-1]["step"]) == summary["steps"]
    from omegaconf import OmegaConf

    lr0 = OmegaConf.load(tmp_path / "run" / "config.yaml").optim.optimizer.lr
    assert float(rows[-1]["lr"]) < 0.05 * lr0  # step-based progress would still be ≈ 0
