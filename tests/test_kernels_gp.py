"""gpytorch wrappers: same matrices as the kernels, usable in an ExactGP."""

import gpytorch
import pytest
import torch

from nnflow.kernels import MLPKernel, as_matrix, hermitian_to_real
from nnflow.kernels.gp import MetricKernel, PotentialKernel, decode_points, encode_points
from nnflow.kernels.testing import assert_close_matrices
from nnflow.models import build_potential


@pytest.fixture
def setup(point_cache):
    pts = point_cache("fermat_quartic", 6)
    kernel = MLPKernel(depth=2, activation="erf", sigma_w=1.5)
    return pts, kernel, encode_points(pts)


def test_encoding_round_trip(setup):
    pts, _, x = setup
    assert x.shape == (6, 2 * 4 * 3) and x.dtype == torch.float64
    z, jac = decode_points(x, 4, 2)
    assert torch.equal(z, pts.z) and torch.equal(jac, pts.jac)
    with pytest.raises(ValueError, match="columns"):
        decode_points(x, 5, 2)


def test_gpytorch_kernels_give_the_same_matrices(setup, point_cache):
    pts, kernel, x = setup
    other = point_cache("fermat_quartic", 3, seed=1)
    y = encode_points(other)
    pk = PotentialKernel(kernel, n_coords=4, dim=2)
    assert_close_matrices(pk(x, y).to_dense(), kernel.potential(pts, other))
    assert_close_matrices(pk(x).to_dense(), kernel.potential(pts))
    assert_close_matrices(pk(x, diag=True), kernel.potential(pts).diagonal())
    mk = MetricKernel(kernel, n_coords=4, dim=2, kind="nngp")
    assert mk.num_outputs_per_input(x, y) == 4
    assert_close_matrices(mk(x, y).to_dense(), as_matrix(kernel.metric(pts, other, kind="nngp")))
    assert_close_matrices(mk(x, diag=True), as_matrix(kernel.metric(pts, kind="nngp")).diagonal())
    batched = pk(torch.stack([x, x.flip(0)]), torch.stack([y, y])).to_dense()
    assert batched.shape == (2, 6, 3)
    assert_close_matrices(batched[1], kernel.potential((pts.z.flip(0), pts.jac.flip(0)), other))


class MetricGP(gpytorch.models.ExactGP):
    def __init__(self, x, y, likelihood, kernel):
        super().__init__(x, y, likelihood)
        self.mean = gpytorch.means.MultitaskMean(gpytorch.means.ZeroMean(), num_tasks=y.shape[-1])
        self.kernel = kernel

    def forward(self, x):
        return gpytorch.distributions.MultitaskMultivariateNormal(self.mean(x), self.kernel(x))


class PotentialGP(gpytorch.models.ExactGP):
    def __init__(self, x, y, likelihood, kernel):
        super().__init__(x, y, likelihood)
        self.mean = gpytorch.means.ZeroMean()
        self.kernel = kernel

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean(x), self.kernel(x))


@pytest.mark.filterwarnings("ignore::gpytorch.utils.warnings.GPInputWarning")  # we predict at the training points
def test_exact_gp_regresses_metrics_and_potentials(point_cache):
    """A GP with the NTK interpolates metrics of a network at the training points."""
    train = point_cache("fermat_quartic", 12)
    test = point_cache("fermat_quartic", 5, seed=7)
    kernel = MLPKernel(depth=2, activation="gelu", sigma_w=1.5)
    net = build_potential("mlp", n_coords=4, depth=2, activation="gelu", sigma_w=1.5, width=32, seed=3, init="random")
    with torch.no_grad():
        targets = hermitian_to_real(net.phi_metric(train.z, train.jac))  # (12, 4)
        phi = net.phi(train.z)
    x, xt = encode_points(train), encode_points(test)

    tiny = gpytorch.constraints.GreaterThan(1e-12)
    likelihood = gpytorch.likelihoods.MultitaskGaussianLikelihood(
        num_tasks=4, has_task_noise=False, noise_constraint=tiny
    ).double()
    likelihood.noise = 1e-8
    gp = MetricGP(x, targets, likelihood, MetricKernel(kernel, 4, 2)).double().eval()
    likelihood.eval()
    with torch.no_grad(), gpytorch.settings.fast_computations(False, False, False):
        fit = gp(x).mean
        pred = gp(xt).mean
    assert fit.shape == (12, 4) and pred.shape == (5, 4)
    assert_close_matrices(fit, targets, rtol=1e-4)

    likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=tiny).double()
    likelihood.noise = 1e-8
    gp = PotentialGP(x, phi, likelihood, PotentialKernel(kernel, 4, 2)).double().eval()
    likelihood.eval()
    with torch.no_grad(), gpytorch.settings.fast_computations(False, False, False):
        assert_close_matrices(gp(x).mean, phi, rtol=1e-4)
