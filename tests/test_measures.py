import math

import pytest
import torch

from nnflow.geometry import expected_euler_characteristic, fs_potential
from nnflow.geometry.curvature import curvature
from nnflow.geometry.measures import (
    euler_characteristic,
    fs_det,
    measure_fubini_study,
    ricci_measure,
    sigma_measure,
    volume,
)


def perturbed_potential(eps: float = 0.05):
    """K_FS + (ε/π) Σ|z_i|⁴/|z|⁴: a projectively invariant, non-FS Kähler potential."""

    def K(z):
        a = z.real.square() + z.imag.square()
        s = a.sum(-1)
        return fs_potential(z) + eps / math.pi * (a.square().sum(-1) / s.square())

    return K


def test_sigma_fs_fermat_quintic(point_cache):
    # Literature: σ_FS ≈ 0.375 on the Fermat quintic (10^6-point runs here give 0.3726 ± 0.0003).
    ps = point_cache("fermat_quintic", 20000, seed=1)
    sigma, err = sigma_measure(ps, fs_det(ps))
    assert err < 0.003
    assert abs(sigma - 0.375) < 0.01


@pytest.mark.parametrize("name", ["fermat_quintic", "fermat_quartic", "fermat_cubic"])
@pytest.mark.parametrize("t", [1.0, 2.5])
def test_fs_volume_is_degree_times_t_to_the_n(name, t, point_cache):
    ps = point_cache(name, 2000)
    vol, _ = volume(ps, fs_det(ps, t))
    assert vol == pytest.approx(ps.surface.degree * t**ps.dim, rel=1e-12)


@pytest.mark.parametrize("name", ["fermat_quintic", "fermat_quartic", "fermat_cubic"])
def test_volume_is_kahler_class_invariant(name, point_cache):
    # ∫(ω + i∂∂̄φ)^n = ∫ω^n: a non-FS metric in the same class has volume = degree (MC).
    ps = point_cache(name, 4000, seed=2)
    curv = curvature(ps, perturbed_potential())
    # autodiff metric agrees with analytic FS when ε = 0
    torch.testing.assert_close(curvature(ps.subset(slice(0, 200)), fs_potential)["det_g"], fs_det(ps)[:200])
    vol, err = volume(ps, curv["det_g"])
    assert not math.isclose(vol, ps.surface.degree, rel_tol=1e-6)  # really not FS
    assert abs(vol - ps.surface.degree) < 4 * err


@pytest.mark.parametrize(
    "name,n,potential",
    [
        ("fermat_cubic", 4000, "fs"),
        ("fermat_quartic", 6000, "fs"),
        ("fermat_quartic", 6000, "perturbed"),
        ("fermat_quintic", 8000, "fs"),
    ],
)
def test_euler_characteristic(name, n, potential, point_cache):
    ps = point_cache(name, n, seed=3)
    K = fs_potential if potential == "fs" else perturbed_potential()
    chi, err = euler_characteristic(ps, curvature(ps, K)["chern_density"])
    expected = expected_euler_characteristic(ps.surface.n_coords)
    assert abs(chi - expected) < 4 * err + 1e-9, (chi, err, expected)
    # and the estimate is informative: its error is well below the invariant's scale
    assert err < 0.1 * max(abs(expected), 10)


@pytest.mark.slow
def test_euler_characteristic_quintic_precise(point_cache):
    ps = point_cache("fermat_quintic", 100000, seed=4)
    chi, err = euler_characteristic(ps, curvature(ps, fs_potential)["chern_density"])
    assert err < 5
    assert abs(chi + 200) < 4 * err


def test_cubic_ricci_flat_metric_has_zero_sigma(point_cache):
    # On an elliptic curve the Ricci-flat metric is g = c|Ω|² (flat), so η = det g/|Ω|² is
    # constant: σ = 0 to round-off, and c = Vol/∫|Ω|² gives the class volume 3.
    ps = point_cache("fermat_cubic", 5000)
    c = ps.fs_volume() / (ps.integral_factor() * ps.weights.mean().item())
    det_g = c * ps.omega2
    sigma, _ = sigma_measure(ps, det_g)
    assert sigma < 1e-14
    assert volume(ps, det_g)[0] == pytest.approx(3.0, rel=1e-12)
    fs_sigma, fs_err = sigma_measure(ps, fs_det(ps))
    assert fs_sigma > 50 * fs_err  # FS is far from flat, so σ can tell them apart


def test_ricci_scalar_and_chern_form_agree_on_a_curve(point_cache):
    # FS on the cubic curve is not Ricci-flat: the scale-free Ricci measure is clearly > 0.
    ps = point_cache("fermat_cubic", 3000)
    curv = curvature(ps, fs_potential)
    value, err = ricci_measure(ps, curv["det_g"], curv["ricci_scalar"])
    assert value > 10 * err > 0
    # R = g^{-1} Ric and c_1 = Ric/π on a curve: the two must agree pointwise.
    ric = curv["ricci_scalar"] * curv["det_g"]
    torch.testing.assert_close(ric, curv["chern_density"], rtol=1e-9, atol=1e-12)


def test_measure_fubini_study_keys(point_cache):
    ps = point_cache("fermat_quartic", 1500)
    out = measure_fubini_study(ps, curvature_points=300)
    for key in ("sigma", "sigma_err", "volume", "euler", "euler_err", "ricci", "n_points"):
        assert key in out and math.isfinite(out[key])
    assert out["curvature_points"] == 300


def test_non_positive_metric_raises(point_cache):
    from nnflow.geometry.measures import check_metric

    det = torch.ones(10)
    det[3] = -1.0
    with pytest.raises(ValueError, match="not positive definite"):
        check_metric(det)
    det[3] = float("nan")
    with pytest.raises(ValueError, match="not positive definite"):
        check_metric(det)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_hermitian_det_matches_linalg_det_with_gradients(n):
    from nnflow.geometry.linalg import hermitian_det

    gen = torch.Generator().manual_seed(n)
    a = torch.randn(5, n, n, dtype=torch.complex128, generator=gen)
    g = (a @ a.mH + 0.5 * torch.eye(n, dtype=torch.complex128)).requires_grad_(True)
    ours = hermitian_det(g)
    ref = torch.linalg.det(g).real
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-14)
    (grad_ours,) = torch.autograd.grad(ours.sum(), g)
    (grad_ref,) = torch.autograd.grad(ref.sum(), g)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-10, atol=1e-12)
    # complex64 with float64 as the default dtype (the case torch.linalg.det's backward fails)
    g32 = g.detach().to(torch.complex64).requires_grad_(True)
    hermitian_det(g32).sum().backward()
    assert g32.grad.dtype == torch.complex64
