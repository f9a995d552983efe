"""The real parameterization of Hermitian metrics (nnflow.geometry.hermitian)."""

import math

import pytest
import torch

from nnflow.geometry.hermitian import (
    component_labels,
    component_matrix,
    hermitian_basis,
    hermitian_to_real,
    linear_components,
    real_to_hermitian,
    strict_upper_pairs,
)
from nnflow.kernels.testing import assert_close_matrices


def random_hermitian(n, batch=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, n, n, 2, generator=g, dtype=torch.float64)
    a = torch.view_as_complex(a)
    return a + a.conj().transpose(-1, -2)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_round_trip_and_norm(n):
    g = random_hermitian(n)
    r = hermitian_to_real(g)
    assert r.shape == (5, n * n) and r.dtype == torch.float64
    assert_close_matrices(real_to_hermitian(r), g)
    # orthonormal: Σ r² = ‖g‖_F²
    assert_close_matrices(r.square().sum(-1), g.abs().square().sum((-1, -2)))


@pytest.mark.parametrize("n", [2, 3])
def test_linear_map_and_basis_agree_with_the_definition(n):
    g = random_hermitian(n, seed=1)
    P = component_matrix(n)
    linear = g.reshape(5, n * n) @ P.T
    assert_close_matrices(linear.real, hermitian_to_real(g))
    assert linear.imag.abs().max() < 1e-12
    E = hermitian_basis(n)
    # the basis is orthonormal under Re tr(A^† B) and reconstructs g
    gram = torch.einsum("sab,tab->st", E.conj(), E).real
    assert_close_matrices(gram, torch.eye(n * n, dtype=torch.float64))
    assert_close_matrices(torch.einsum("xs,sab->xab", hermitian_to_real(g).to(E.dtype), E), g)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_linear_components_are_the_component_map_on_any_matrix(n):
    # on Hermitian g the entry-wise map gives hermitian_to_real; on a general complex matrix
    # (a derivative of a Hermitian one) it is the linear map P of component_matrix
    gen = torch.Generator().manual_seed(n)
    a = torch.view_as_complex(torch.randn(5, n, n, 2, generator=gen, dtype=torch.float64))
    iu = strict_upper_pairs(n)

    def entries(m):
        return m.diagonal(dim1=-2, dim2=-1), m[..., iu[0], iu[1]], m[..., iu[1], iu[0]]

    herm = a + a.conj().transpose(-1, -2)
    assert_close_matrices(linear_components(*entries(herm)).real, hermitian_to_real(herm))
    assert_close_matrices(linear_components(*entries(a)), a.reshape(5, n * n) @ component_matrix(n).T)


def test_component_order_and_labels():
    g = torch.tensor([[1.0, 2 + 3j], [2 - 3j, 5.0]], dtype=torch.complex128)
    r = hermitian_to_real(g)
    assert r.tolist() == pytest.approx([1.0, 5.0, 2 * math.sqrt(2), 3 * math.sqrt(2)])
    assert component_labels(2) == ["g00", "g11", "Re g01", "Im g01"]
    assert len(component_labels(3)) == 9


def test_bad_shapes_are_value_errors():
    with pytest.raises(ValueError, match="square"):
        hermitian_to_real(torch.zeros(2, 3, dtype=torch.complex128))
    with pytest.raises(ValueError, match="n²"):
        real_to_hermitian(torch.zeros(5, dtype=torch.float64))
