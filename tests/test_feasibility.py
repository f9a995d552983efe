"""nnflow.feasibility: the estimates equal the tensors they stand for, and sizes that cannot fit
stop before any sampling or allocation, with the estimate and the option to use."""

import pytest
import torch

from nnflow.feasibility import (
    ENV_LIMIT,
    GIB,
    SAMPLING_FACTOR,
    InfeasibleError,
    available_bytes,
    check_feasible,
    frozen_flow,
    kernel_bytes,
    kernel_components,
    pointset_bytes,
    sampling,
)
from nnflow.flows.frozen import build_frozen_flow
from nnflow.geometry import fermat_quartic, make_hypersurface, sample_points
from nnflow.kernels import analytic_kernel
from nnflow.kernels.empirical import KERNEL_ORDERS

from .helpers import compose_train

PLAIN_MLP = {"network": "mlp", "width": 8, "depth": 1, "activation": "tanh"}


@pytest.fixture(autouse=True)
def no_env_limit(monkeypatch):
    monkeypatch.delenv(ENV_LIMIT, raising=False)


@pytest.mark.parametrize("name", ["fermat_cubic", "fermat_quartic", "fermat_quintic"])
def test_pointset_estimate_is_its_stored_size(name):
    points = sample_points(make_hypersurface(name), 7, seed=0)
    stored = sum(
        t.numel() * t.element_size()
        for t in (points.z, points.weights, points.omega2, points.patch, points.elim, points.jac)
    )
    assert pointset_bytes(7, points.surface.n_coords) == stored
    assert sampling(7, points.surface.n_coords).bytes == SAMPLING_FACTOR * stored


@pytest.mark.parametrize("kind", sorted(KERNEL_ORDERS))
def test_kernel_estimate_is_the_kernel_size(kind):
    points = sample_points(fermat_quartic(), 3, seed=1)  # a surface: m = 4 metric components
    orders = KERNEL_ORDERS[kind]
    theta = analytic_kernel(PLAIN_MLP).kernel(points, None, orders, "ntk", None)
    assert theta.dtype == torch.float64
    assert kernel_bytes(3, kernel_components(orders, points.dim)) == theta.numel() * theta.element_size()


def test_dense_flow_estimate_is_the_stored_matrix():
    train = sample_points(fermat_quartic(), 5, seed=2)
    flow = build_frozen_flow(train, kappa=1.0, dense=True, block_size=2, **PLAIN_MLP)
    workspace = frozen_flow(5, train.dim, False, 2).bytes  # the blocks alone
    assert frozen_flow(5, train.dim, True, 2).bytes - workspace == flow.matrix.numel() * flow.matrix.element_size()
    assert workspace == 2 * (2 * 4) ** 2 * 8  # one block of Θ and its permuted copy, float64


def test_dense_flow_beyond_memory_stops_before_assembly_and_names_the_matrix_free_option(monkeypatch):
    import nnflow.flows.frozen as frozen

    train = sample_points(fermat_quartic(), 6, seed=3)
    dense, free = frozen_flow(6, 2, True, 2).bytes, frozen_flow(6, 2, False, 2).bytes
    monkeypatch.setenv(ENV_LIMIT, str((dense + free) / 2 / GIB))  # room for matrix-free only
    monkeypatch.setattr(frozen, "assemble_dense", lambda *a, **k: pytest.fail("assembled before the check"))
    with pytest.raises(InfeasibleError, match=r"model\.dense=false.*model\.block_size"):
        build_frozen_flow(train, kappa=1.0, dense=True, block_size=2, **PLAIN_MLP)
    assert build_frozen_flow(train, kappa=1.0, dense=False, block_size=2, **PLAIN_MLP).matrix is None


def test_message_gives_estimate_available_and_option():
    part = sampling(10**12, 6)
    with pytest.raises(InfeasibleError) as info:
        check_feasible(part, max_memory_gb=2.0)
    text = str(info.value)
    assert f"{part.bytes / GIB:.3g} GiB" in text and "2 GiB available" in text and "fewer points (n_points)" in text
    assert isinstance(info.value, ValueError)
    assert check_feasible(part, max_memory_gb=2 * part.bytes / GIB) == part.bytes  # fits: the total back


def test_available_memory_sources(monkeypatch):
    monkeypatch.setenv(ENV_LIMIT, "1.5")
    assert available_bytes() == (int(1.5 * GIB), "the limit max_memory_gb")
    assert available_bytes(max_memory_gb=3)[0] == 3 * GIB  # the caller's value wins
    monkeypatch.setenv(ENV_LIMIT, "lots")
    with pytest.raises(ValueError, match=ENV_LIMIT):
        available_bytes()
    with pytest.raises(ValueError, match="max_memory_gb"):
        available_bytes(max_memory_gb=-1)
    monkeypatch.delenv(ENV_LIMIT)
    info = dict(line.split(":", 1) for line in open("/proc/meminfo").read().splitlines())
    free, source = available_bytes()
    assert source.startswith("MemAvailable") and 0 < free <= int(info["MemTotal"].split()[0]) * 1024


def _compose(name, *overrides):
    from hydra import compose, initialize_config_dir

    from nnflow.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def _never(*args, **kwargs):
    pytest.fail("sampled before the feasibility check")


@pytest.mark.parametrize(
    "app,overrides,key",
    [
        ("measure", ["n_points=10000000000000"], "n_points"),
        ("kernel", ["n_points=1000000", "seeds=1", "model.width=8"], "n_points"),
        ("donaldson", ["manifold=fermat_cubic", "k=2", "n_test=100000000000"], "n_test"),
        ("train", ["data.n_train=100000000000"], "data.n_train"),
        ("train", ["model=frozen_ntk", "model.dense=true", "data.n_train=3000000"], "model.dense=false"),
        ("measure", ["n_points=1000", "max_memory_gb=1e-6"], "n_points"),  # the config's own limit
    ],
)
def test_absurd_sizes_stop_before_any_sampling(app, overrides, key, monkeypatch, tmp_path):
    import nnflow.geometry
    import nnflow.geometry.cicy_sampling
    import nnflow.kernels.convergence
    import nnflow.training.data

    for module in (nnflow.geometry, nnflow.kernels.convergence):
        monkeypatch.setattr(module, "sample_points", _never)
    for module in (nnflow.geometry.cicy_sampling, nnflow.training.data):  # either kind of manifold
        monkeypatch.setattr(module, "sample_manifold", _never)
    with pytest.raises(InfeasibleError, match=rf"GiB.*{key}"):
        if app == "train":
            from nnflow.training.run import train

            train(compose_train(*overrides, "logger=csv", tmp_path=tmp_path), tmp_path / "run")
        elif app == "measure":
            from nnflow.cli.measure import measure

            measure(_compose("measure", *overrides))
        elif app == "kernel":
            from nnflow.cli.kernel import compare

            compare(_compose("kernel", *overrides))
        else:
            from nnflow.cli.donaldson import donaldson

            donaldson(_compose("donaldson", *overrides))
