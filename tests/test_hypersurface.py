import math

import pytest
import torch

from nnflow.geometry import (
    Hypersurface,
    expected_euler_characteristic,
    fermat_quintic,
    make_hypersurface,
    random_quintic,
)
from nnflow.geometry.polynomial import PolynomialMap


def _naive_p(surface, z):
    out = torch.zeros(z.shape[0], dtype=z.dtype)
    for e, c in zip(surface.exponents.tolist(), surface.coefficients.tolist()):
        term = torch.full_like(out, c)
        for i, k in enumerate(e):
            for _ in range(k):
                term = term * z[:, i]
        out = out + term
    return out


@pytest.mark.parametrize("name", ["fermat_quintic", "dwork_quintic", "random_quintic", "fermat_cubic"])
def test_polynomial_matches_naive_product(name):
    s = make_hypersurface(name)
    z = torch.randn(7, s.n_coords, dtype=torch.complex128)
    torch.testing.assert_close(s(z), _naive_p(s, z), rtol=1e-13, atol=1e-13)


def test_tree_and_sparse_strategies_agree():
    s = random_quintic(seed=4)
    z = torch.randn(11, 5, dtype=torch.complex128)
    sparse = PolynomialMap(s.exponents[:3], s.coefficients[None, :3])
    assert not sparse.tree
    tree = PolynomialMap(s.exponents, s.coefficients[None])
    assert tree.tree
    # The same 3 monomials through the tree: zero coefficients elsewhere.
    c = torch.zeros_like(s.coefficients)
    c[:3] = s.coefficients[:3]
    tree3 = PolynomialMap(s.exponents, c[None])
    torch.testing.assert_close(sparse(z), tree3(z), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", ["dwork_quintic", "random_quintic", "fermat_quartic"])
def test_gradient_and_hessian_match_finite_differences(name):
    s = make_hypersurface(name)
    z = torch.randn(5, s.n_coords, dtype=torch.complex128)
    eps = 1e-5
    for k in range(s.n_coords):
        dz = eps * torch.eye(s.n_coords, dtype=torch.complex128)[k]
        fd = (s(z + dz) - s(z - dz)) / (2 * eps)
        torch.testing.assert_close(s.gradient(z)[:, k], fd, rtol=1e-8, atol=1e-8)
        fd2 = (s.gradient(z + dz) - s.gradient(z - dz)) / (2 * eps)
        torch.testing.assert_close(s.hessian(z)[:, k, :], fd2, rtol=1e-7, atol=1e-7)


def test_euler_characteristic_formula():
    assert [expected_euler_characteristic(n) for n in (3, 4, 5)] == [0, 24, -200]


def test_not_calabi_yau_raises():
    with pytest.raises(ValueError, match="not Calabi–Yau"):
        Hypersurface([[4, 0, 0, 0, 0], [0, 4, 0, 0, 0]], [1, 1])


def test_inhomogeneous_raises():
    with pytest.raises(ValueError, match="not homogeneous"):
        Hypersurface([[5, 0, 0, 0, 0], [0, 4, 0, 0, 0]], [1, 1])


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="one coefficient per monomial"):
        Hypersurface([[3, 0, 0], [0, 3, 0]], [1.0])


def test_unknown_manifold_raises():
    with pytest.raises(ValueError, match="unknown manifold 'banana'"):
        make_hypersurface("banana")


def test_coefficient_formats_and_roundtrip():
    s = Hypersurface([[3, 0, 0], [0, 3, 0], [0, 0, 3], [1, 1, 1]], [1, "1", [1, 0], "0.3+0.1j"])
    assert s.coefficients[-1] == complex(0.3, 0.1)
    t = Hypersurface.from_dict(s.to_dict())
    torch.testing.assert_close(t.coefficients, s.coefficients)
    assert s.dim == 1 and s.degree == 3


def test_dwork_reduces_to_fermat_at_psi_zero():
    z = torch.randn(4, 5, dtype=torch.complex128)
    torch.testing.assert_close(make_hypersurface("dwork_quintic", psi=0)(z), fermat_quintic()(z))
    assert math.isclose(abs(complex(make_hypersurface("dwork_quintic", psi=0.5).coefficients[-1])), 2.5)
