"""The maximal-update parameterization (μP) of the MLP: the coordinate check, its learning-rate
groups in training, and the identities that tie it to the standard parameterization."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from nnflow.fits import power_law_fit
from nnflow.flows.linearized import LinearizedPotential
from nnflow.models import build_network, build_potential
from nnflow.models.networks import MUP_BASE_WIDTH, lr_factors, lr_groups
from nnflow.training.modules import build_optimizer
from nnflow.training.run import train, validate_config

from .helpers import FAST_TRAIN, compose_train

WIDTHS = [64, 128, 256, 512, 1024]
SEEDS = range(4)
D = 10  # input features


def preactivation_changes(parameterization: str, width: int, optimizer, seed: int) -> list[float]:
    """RMS over inputs and units of u_l(θ1) − u_l(θ0) per layer l after one optimizer step on the
    centered regression loss mean((φ − φ0 − y)²) (the residual at θ0 is −y at every width, as
    with init=centered in training)."""
    torch.manual_seed(seed)
    net = build_network(
        "mlp", D, width=width, depth=2, activation="gelu", parameterization=parameterization, input_scale=math.sqrt(D)
    ).to(torch.float64)
    gen = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(64, D, generator=gen, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)  # unit-norm, as the projective features
    y = torch.randn(64, generator=gen, dtype=torch.float64)
    opt = build_optimizer(net, optimizer)
    before = [u.detach() for u in net.preactivations(x)]
    phi0 = before[-1].squeeze(-1)
    (net(x) - phi0 - y).square().mean().backward()
    opt.step()
    return [(u.detach() - u0).square().mean().sqrt().item() for u, u0 in zip(net.preactivations(x), before)]


def width_slopes(parameterization: str, optimizer) -> list[float]:
    """Per layer, the fitted log-log slope of the seed-mean update size against width."""
    sizes = torch.tensor([[preactivation_changes(parameterization, w, optimizer, s) for s in SEEDS] for w in WIDTHS])
    mean = sizes.mean(1)  # (widths, layers)
    return [power_law_fit(WIDTHS, mean[:, layer].tolist())["rate"] for layer in range(mean.shape[1])]


@pytest.mark.parametrize("family", ["adam", "sgd"])
def test_coordinate_check_mup_updates_are_width_independent(family):
    """μP: every layer's pre-activations move by O(1) from width 64 to 1024 (|slope| ≤ 0.15);
    the NTK parameterization does not: under Adam its output change grows (∝ √N, then ∝ N with
    the hidden layers), under SGD its hidden layers freeze (∝ N^−1/2, the lazy regime)."""
    optimizer = (
        functools.partial(torch.optim.Adam, lr=1e-2) if family == "adam" else functools.partial(torch.optim.SGD, lr=0.1)
    )
    mup = width_slopes("mup", optimizer)
    assert all(abs(s) <= 0.15 for s in mup), mup
    ntk = width_slopes("ntk", optimizer)
    if family == "adam":
        assert ntk[-1] > 0.5, ntk  # the output layer's change blows up with width
        assert width_slopes("standard", optimizer)[-1] > 0.5
    else:
        assert ntk[0] < -0.35 and ntk[1] < -0.35, ntk  # the hidden layers stop moving


def test_mup_at_its_base_width_is_the_standard_network():
    kwargs = dict(width=MUP_BASE_WIDTH, depth=2, activation="tanh", input_scale=2.0)
    torch.manual_seed(3)
    standard = build_network("mlp", 7, parameterization="standard", **kwargs)
    torch.manual_seed(3)
    mup = build_network("mlp", 7, parameterization="mup", **kwargs)
    for p, q in zip(standard.parameters(), mup.parameters()):
        assert torch.equal(p, q)
    assert set(lr_factors(mup, "adam").values()) == {1.0}
    torch.manual_seed(3)
    wide = build_network("mlp", 7, parameterization="mup", **(kwargs | {"width": 4 * MUP_BASE_WIDTH}))
    torch.manual_seed(3)
    wide_standard = build_network("mlp", 7, parameterization="standard", **(kwargs | {"width": 4 * MUP_BASE_WIDTH}))
    # only the output layer differs: σ_w·√N0/N = (σ_w/√N)·√(N0/N)
    torch.testing.assert_close(wide.weights[-1], wide_standard.weights[-1] * 0.5, rtol=1e-6, atol=0)
    torch.testing.assert_close(wide.weights[1], wide_standard.weights[1], rtol=0, atol=0)


def test_linearized_mup_model_takes_its_base_learning_rates():
    base = build_potential(n_coords=3, width=256, depth=2, parameterization="mup", seed=0)
    expected = [factor for name, factor in sorted(lr_factors(base).items()) if "network" in name]
    lin = LinearizedPotential(base)
    groups = lr_groups(lin)
    assert sum(len(g["params"]) for g in groups) == len(list(base.parameters()))
    got = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    factors = lr_factors(base)
    names = [name for name, _ in base.named_parameters()]
    for theta, name in zip(lin.theta, names):
        assert got[id(theta)] == factors.get(name, 1.0)
    assert sorted(set(expected)) == [0.25, 1.0]  # width 256 = 4·N0: hidden and output at lr/4


def test_training_uses_per_layer_learning_rates(tmp_path):
    cfg = compose_train(
        "experiment=cubic_mlp",
        *FAST_TRAIN,
        "model=mlp_mup",
        "model.width=128",
        "trainer.max_epochs=1",
        "logger=csv",
        "optim.scheduler=null",
        tmp_path=tmp_path,
    )
    summary, objects = train(cfg, tmp_path / "run")
    assert summary["status"] == "completed"
    groups = objects["trainer"].optimizers[0].param_groups
    lr = float(cfg.optim.optimizer.lr)
    assert sorted((g["lr_scale"], g["lr"]) for g in groups) == [(0.5, lr / 2), (1.0, lr)]


def test_mup_refusals():
    with pytest.raises(ValueError, match="optim.optimizer._target_"):
        validate_config(compose_train("model=mlp_mup", "optim.optimizer._target_=torch.optim.Adagrad"))
    with pytest.raises(ValueError, match="base_width"):
        build_network("mlp", 5, base_width=32)
    with pytest.raises(ValueError, match="unknown parameterization 'mup'"):
        build_network("cosnet", 5, parameterization="mup")
