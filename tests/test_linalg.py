import pytest
import torch

from nnflow.geometry.hermitian import hermitian_to_real, real_hermitian_det
from nnflow.geometry.linalg import hermitian_det, hermitian_positive


def random_hermitian(n, batch=4000, seed=0):
    """Hermitian matrices of both signatures: A A^† shifted by a random multiple of 1."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(batch, n, n, dtype=torch.complex128, generator=g)
    shift = 2 * n * torch.randn(batch, 1, 1, dtype=torch.float64, generator=g)
    return A @ A.mH + shift * torch.eye(n, dtype=torch.complex128)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_positivity_agrees_with_the_eigenvalues(n):
    H = random_hermitian(n)
    expected = torch.linalg.eigvalsh(H)[..., 0] > 0
    assert 0.2 < expected.double().mean() < 0.9  # both kinds are present
    assert torch.equal(hermitian_positive(H), expected)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_determinants_agree_with_lu(n):
    H = random_hermitian(n, batch=200)
    det = torch.linalg.det(H).real
    torch.testing.assert_close(hermitian_det(H), det, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(real_hermitian_det(hermitian_to_real(H)), det, rtol=1e-10, atol=1e-10)


def test_real_det_rejects_a_non_square_length():
    with pytest.raises(ValueError, match="square"):
        real_hermitian_det(torch.zeros(5, 8))
