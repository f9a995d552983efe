"""Test-only models and config helpers (importable by _target_ in composed configs)."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from nnflow.cli import CONFIG_DIR
from nnflow.models import build_potential

FAST_TRAIN = [
    "data.n_train=512",
    "data.n_val=256",
    "data.n_test=512",
    "data.batch_size=128",
    "trainer.enable_progress_bar=false",
]


def compose_train(*overrides: str, tmp_path=None):
    extra = [f"data.cache_dir={tmp_path / 'data'}"] if tmp_path is not None else []
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides) + extra)


def feature_jet_by_autodiff(features, ps):
    """Reference feature jet: value, ∂_a x (B, n, D) and ∂_a∂̄_b x (B, n, n, D) by torch.func
    on x(z0 + ξJ) with ξ = (Re, Im) chart coordinates (the Wirtinger combinations)."""
    from torch.func import jacfwd, jacrev, vmap

    from nnflow.geometry.curvature import wirtinger_hessian

    n = ps.dim

    def one(z0, J):
        def feat(xi):
            return features((z0 + torch.complex(xi[:n], xi[n:]) @ J)[None])[0]

        xi = torch.zeros(2 * n, dtype=torch.float64)
        dx = jacfwd(feat)(xi)
        return feat(xi), 0.5 * (dx[:, :n] - 1j * dx[:, n:]), wirtinger_hessian(jacfwd(jacrev(feat))(xi))

    value, d, dd = vmap(one)(ps.z, ps.jac)
    return value, d.transpose(1, 2), dd.permute(0, 2, 3, 1)


class PoisonedPotential(torch.nn.Module):
    """A KahlerPotential whose metric turns bad after ``healthy_calls`` training-mode calls:
    NaN (``poison="nan"``) or −g (``poison="negate"``, finite but not positive definite).
    Its potential and exact curvature are the inner one's; ``offer_potential=False`` hides them
    (a model that offers only metric())."""

    def __init__(self, healthy_calls: int = 6, poison: str = "nan", offer_potential: bool = True, **kwargs):
        super().__init__()
        self.inner = build_potential(**kwargs)
        self.healthy_calls = healthy_calls
        self.poison = poison
        self.calls = 0
        if offer_potential:
            self.potential = self.inner.potential
            self.metric_derivatives = self.inner.metric_derivatives
            self.has_exact_curvature = self.inner.has_exact_curvature

    def metric(self, z, jac):
        g = self.inner.metric(z, jac)
        if self.training and torch.is_grad_enabled():
            self.calls += 1
            if self.calls > self.healthy_calls:
                return g * torch.nan if self.poison == "nan" else -g
        return g


@pytest.fixture(autouse=True)
def one_thread_only():
    """Autouse where imported: run the module's tests on one torch thread, then restore."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
