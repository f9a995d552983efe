"""Kernel diagnostics (nnflow.kernels.diagnostics)."""

import numpy as np
import pytest
import torch

from nnflow.kernels.diagnostics import (
    alignment,
    as_matrix,
    leading_eigenvalues,
    relative_change,
    relative_frobenius,
)


def psd_kernel(B=6, m=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(B, m, 30, generator=g, dtype=torch.float64)
    return torch.einsum("xsp,ytp->xyst", J, J)


def test_as_matrix_orders_point_then_component():
    K = psd_kernel()
    M = as_matrix(K)
    assert M.shape == (24, 24)
    assert M[1 * 4 + 2, 3 * 4 + 1] == K[1, 3, 2, 1]
    assert as_matrix(K[..., 0]).shape == (6, 24)
    with pytest.raises(ValueError, match="dimensions"):
        as_matrix(torch.zeros(2))


def test_distances_and_alignment():
    K = psd_kernel()
    L = psd_kernel(seed=1)
    assert relative_frobenius(K, K) == 0
    assert relative_frobenius(1.1 * K, K) == pytest.approx(0.1)
    assert relative_change(1.1 * K, K) == pytest.approx(0.1)
    assert alignment(K, 3.0 * K) == pytest.approx(1.0)
    assert alignment(K, -K) == pytest.approx(-1.0)
    a = alignment(K, L)
    assert a == pytest.approx(alignment(L, K)) and -1 <= a <= 1
    expected = float((K * L).sum() / (K.norm() * L.norm()))
    assert a == pytest.approx(expected)
    with pytest.raises(ValueError, match="shape"):
        relative_frobenius(K, K[:2])
    with pytest.raises(ValueError, match="zero"):
        alignment(K, torch.zeros_like(K))


def test_leading_eigenvalues_match_numpy():
    K = psd_kernel()
    ev = leading_eigenvalues(K, 3)
    ref = np.sort(np.linalg.eigvalsh(as_matrix(K).numpy()))[::-1][:3]
    np.testing.assert_allclose(ev.numpy(), ref, rtol=1e-10)
    assert (ev[:-1] >= ev[1:]).all()
    with pytest.raises(ValueError, match="square"):
        leading_eigenvalues(K[:3])
    with pytest.raises(ValueError, match="symmetric"):
        leading_eigenvalues(K + torch.randn_like(K))
