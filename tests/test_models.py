import math

import pytest
import torch
from torch.func import functional_call, jacfwd, jacrev, vmap

from nnflow.geometry import PointSet, fs_metric, fs_potential, pullback
from nnflow.geometry.curvature import wirtinger_hessian
from nnflow.models import ProjectiveFeatures, build_network, build_potential

from .helpers import feature_jet_by_autodiff

ARCHS = [
    ("mlp", dict(activation="gelu")),
    ("mlp", dict(activation="tanh", parameterization="standard")),
    ("mlp", dict(activation="sin", depth=3)),
    ("mlp", dict(activation="softplus", depth=1)),
    ("mlp", dict(activation="erf")),
    ("cosnet", {}),
    ("gaussnet", {}),
]


def autodiff_metric(model, z, jac):
    """Reference: Wirtinger Hessian of K(z0 + xJ) by torch.func (a full input Hessian)."""
    n = jac.shape[-2]

    def one(z0, J):
        def K(xi):
            return model.potential(z0 + torch.complex(xi[:n], xi[n:]) @ J)

        return wirtinger_hessian(jacfwd(jacrev(K))(torch.zeros(2 * n, dtype=torch.float64)))

    return vmap(one)(z, jac)


@pytest.mark.parametrize("degree", [1, 2])
def test_features_are_invariant_and_normalized(degree, point_cache):
    ps = point_cache("fermat_quintic", 200)
    f = ProjectiveFeatures(5, degree)
    x = f(ps.z)
    assert x.shape == (200, f.dim) and f.dim == math.comb(4 + degree, degree) ** 2
    torch.testing.assert_close(x.norm(dim=-1), torch.ones(200))
    lam = torch.complex(torch.randn(200, 1), torch.randn(200, 1))
    torch.testing.assert_close(f(lam * ps.z), x, rtol=1e-12, atol=1e-13)
    # x·x' = |<z,z'>|^{2k}/(|z|^{2k}|z'|^{2k})
    u = (ps.z[:10].conj() @ ps.z[10:20].T).abs() ** 2
    u = u / (ps.z[:10].abs() ** 2).sum(-1)[:, None] / (ps.z[10:20].abs() ** 2).sum(-1)[None]
    torch.testing.assert_close(x[:10] @ x[10:20].T, u**degree)


@pytest.mark.parametrize("name", ["fermat_quintic", "fermat_quartic", "fermat_cubic"])
@pytest.mark.parametrize("degree", [1, 2])
def test_feature_jets_match_autodiff(name, degree, point_cache):
    ps = point_cache(name, 25)
    f = ProjectiveFeatures(ps.surface.n_coords, degree)
    jet = f.jet(ps.z, ps.jac)
    value, d, dd = feature_jet_by_autodiff(f, ps)
    torch.testing.assert_close(jet.value, value)
    torch.testing.assert_close(jet.d, d, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(jet.dd, dd, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("network,kwargs", ARCHS)
@pytest.mark.parametrize("init", ["random", "centered"])
def test_jet_metric_matches_autodiff_hessian(network, kwargs, init, point_cache):
    ps = point_cache("fermat_quintic", 30)
    torch.manual_seed(0)
    model = build_potential(network, n_coords=5, width=24, init=init, output_scale=0.3, **kwargs)
    with torch.no_grad():
        torch.testing.assert_close(
            model.metric(ps.z, ps.jac), autodiff_metric(model, ps.z, ps.jac), rtol=1e-10, atol=1e-13
        )


@pytest.mark.parametrize("init", ["centered", "zero_last"])
@pytest.mark.parametrize("network", ["mlp", "cosnet", "gaussnet"])
def test_starts_at_fubini_study(init, network, point_cache):
    ps = point_cache("fermat_quartic", 50)
    model = build_potential(network, n_coords=4, width=16, init=init, kahler_t=1.7, seed=3)
    with torch.no_grad():
        g = model.metric(ps.z, ps.jac)
    torch.testing.assert_close(g, pullback(ps.jac, fs_metric(ps.z, 1.7)), rtol=1e-12, atol=1e-14)
    z = ps.z[:5]
    torch.testing.assert_close(model.potential(z), fs_potential(z, 1.7), rtol=1e-12, atol=1e-14)


def test_metric_is_invariant_under_rescaling(point_cache):
    ps = point_cache("random_quintic", 100)
    model = build_potential("mlp", n_coords=5, width=16, init="random", seed=1, output_scale=0.2)
    lam = torch.complex(torch.randn(100, 1), torch.randn(100, 1))
    again = PointSet.from_points(ps.surface, lam * ps.z)
    with torch.no_grad():
        torch.testing.assert_close(model.metric(again.z, again.jac), model.metric(ps.z, ps.jac))
        # K(λz) − K(z) = (t/π) log|λ|²: pluriharmonic, so the metric cannot see it
        dk = model.potential(lam * ps.z) - model.potential(ps.z)
        torch.testing.assert_close(dk, torch.log(lam.abs().squeeze(-1) ** 2) / math.pi)


def test_parameter_gradients_pass_gradcheck(point_cache):
    ps = point_cache("fermat_quartic", 6)
    model = build_potential("mlp", n_coords=4, width=3, depth=2, activation="tanh", init="random", seed=0)
    names = [k for k, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())

    def det_of_metric(*theta):
        g = functional_call(model, dict(zip(names, theta)), (ps.z, ps.jac))
        return torch.linalg.det(g).real

    assert torch.autograd.gradcheck(det_of_metric, params, eps=1e-6, atol=1e-7)


def test_float32_metric_matches_float64(point_cache):
    ps = point_cache("fermat_quintic", 200)
    model = build_potential("mlp", n_coords=5, width=32, init="random", seed=2, output_scale=0.3)
    with torch.no_grad():
        g64 = model.metric(ps.z, ps.jac)
        p32 = ps.to(dtype=torch.complex64)
        g32 = model.to(torch.float32).metric(p32.z, p32.jac)
    assert g32.dtype == torch.complex64
    rel = (g32.to(torch.complex128) - g64).abs().max() / g64.abs().max()
    assert rel < 1e-5


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(width=-4), "width"),
        (dict(depth=0), "depth"),
        (dict(activation="swish"), "unknown activation 'swish'"),
        (dict(parameterization="maximal"), "unknown parameterization"),
    ],
)
def test_bad_network_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_network("mlp", 25, **kwargs)


def test_bad_potential_options():
    with pytest.raises(ValueError, match="unknown network"):
        build_potential("resnet", n_coords=5)
    with pytest.raises(ValueError, match="unknown init"):
        build_potential("mlp", n_coords=5, init="ones")
    with pytest.raises(ValueError, match="feature degree"):
        build_potential("mlp", n_coords=5, feature_degree=0)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_dd_components_are_the_hermitian_components_of_the_jet(n):
    from nnflow.geometry.hermitian import hermitian_to_real
    from nnflow.models.jets import Jet, dd_components, pack_jet, unpack_jet

    g = torch.Generator().manual_seed(n)
    d = torch.randn(4, n, 6, dtype=torch.complex128, generator=g)
    dd = torch.randn(4, n, n, 6, dtype=torch.complex128, generator=g)
    dd = dd + dd.transpose(1, 2).conj()  # Hermitian in a, b
    T = pack_jet(Jet(torch.randn(4, 6, dtype=torch.float64, generator=g), d, dd))
    expected = hermitian_to_real(unpack_jet(T, n).dd.movedim(-1, 1)).movedim(1, -1)
    assert torch.allclose(dd_components(T, n), expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "network, kwargs",
    [("mlp", dict(depth=2)), ("mlp", dict(parameterization="standard", input_scale=2.0)), ("cosnet", {}),
     ("gaussnet", dict(parameterization="standard"))],
)
def test_one_seed_gives_one_theta0_in_every_dtype(network, kwargs):
    # parameters are drawn in one dtype and cast: a float32 model built from the same seed holds
    # exactly the float64 model's θ0 rounded to float32, whatever the default dtype at build
    def build(dtype):
        old = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            return build_potential(network, n_coords=4, width=8, seed=5, **kwargs)
        finally:
            torch.set_default_dtype(old)

    m64, m32 = build(torch.float64), build(torch.float32)
    p64, p32 = dict(m64.network.named_parameters()), dict(m32.network.named_parameters())
    assert p64.keys() == p32.keys() and len(p64) >= 3
    for name, p in p32.items():
        assert p.dtype == torch.float32 and p64[name].dtype == torch.float64
        assert torch.equal(p, p64[name].to(torch.float32)), name
    if kwargs.get("parameterization", "ntk") == "ntk":  # stored as drawn: a float32 randn, nnflow-train's
        torch.manual_seed(5)                               # draws (built under float32, then cast) bit for bit
        first = m64.network.weights[0] if network == "mlp" else m64.network.a
        assert torch.equal(first.detach(), torch.randn(first.shape, dtype=torch.float32).double())
