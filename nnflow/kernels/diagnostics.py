"""Kernel diagnostics: distances, alignment, change and spectra (pure torch).

Kernels of any of the shapes (B1, B2), (B1, B2, m) and (B1, B2, m1, m2) are compared as
matrices (``as_matrix``: rows (point, component), columns (point, component)):

    relative Frobenius distance   ‖K − K_ref‖_F / ‖K_ref‖_F
    alignment                     ⟨K1, K2⟩_F / (‖K1‖_F ‖K2‖_F)   (1 for proportional kernels)
    relative change               ‖K_t − K_0‖_F / ‖K_0‖_F         (how far a kernel moved)
    target alignment              yᵀKy / (‖K‖_F ‖y‖²)              (⟨K, yyᵀ⟩ alignment with a target y)
    leading eigenvalues           of the symmetric (B·m) × (B·m) matrix, largest first
"""

from __future__ import annotations

import torch


def as_matrix(K: torch.Tensor) -> torch.Tensor:
    """(B1, B2) | (B1, B2, m) | (B1, B2, m1, m2) → (B1·m1, B2·m2) with (point, component) order."""
    if K.ndim == 2:
        return K
    if K.ndim == 3:
        return K.reshape(K.shape[0], -1)
    if K.ndim == 4:
        B1, B2, m1, m2 = K.shape
        return K.permute(0, 2, 1, 3).reshape(B1 * m1, B2 * m2)
    raise ValueError(f"expected a kernel of 2, 3 or 4 dimensions; got shape {tuple(K.shape)}")


def _same_shape(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"kernels differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


def relative_frobenius(K: torch.Tensor, K_ref: torch.Tensor) -> float:
    """‖K − K_ref‖_F / ‖K_ref‖_F."""
    _same_shape(K, K_ref)
    ref = torch.linalg.vector_norm(K_ref)
    if ref == 0:
        raise ValueError("the reference kernel is zero")
    return float(torch.linalg.vector_norm(K - K_ref) / ref)


def alignment(K1: torch.Tensor, K2: torch.Tensor) -> float:
    """Kernel alignment ⟨K1, K2⟩_F / (‖K1‖_F ‖K2‖_F) ∈ [−1, 1]."""
    _same_shape(K1, K2)
    n1, n2 = torch.linalg.vector_norm(K1), torch.linalg.vector_norm(K2)
    if n1 == 0 or n2 == 0:
        raise ValueError("alignment is undefined for a zero kernel")
    return float((K1 * K2).sum() / (n1 * n2))


def target_alignment(K: torch.Tensor, y: torch.Tensor) -> float:
    """Kernel–target alignment ⟨K, y yᵀ⟩_F / (‖K‖_F ‖y yᵀ‖_F) = yᵀKy / (‖K‖_F ‖y‖²) ∈ [−1, 1].

    K: a kernel of any ``as_matrix`` shape on B points with m components; y: (B, m) or (B·m,)
    in the same (point, component) order. For y the loss's descent direction −∂L/∂g, yᵀKy is the
    rate at which the kernel flow lowers L; the alignment is that rate over its largest value
    for a kernel of the same Frobenius norm (Cristianini et al. 2001).
    """
    M = as_matrix(K)
    v = y.reshape(-1).to(M.dtype)
    if M.shape != (v.numel(), v.numel()):
        raise ValueError(f"target of {v.numel()} entries does not fit a kernel of shape {tuple(M.shape)}")
    norm_k, norm_y = torch.linalg.matrix_norm(M), torch.linalg.vector_norm(v)
    if norm_k == 0 or norm_y == 0:
        raise ValueError("target alignment is undefined for a zero kernel or a zero target")
    return float(v @ M @ v / (norm_k * norm_y**2))


def relative_change(K_t: torch.Tensor, K_0: torch.Tensor) -> float:
    """‖K_t − K_0‖_F / ‖K_0‖_F: how far a kernel moved from K_0 (e.g. during training)."""
    return relative_frobenius(K_t, K_0)


def leading_eigenvalues(K: torch.Tensor, k: int = 5) -> torch.Tensor:
    """The k largest eigenvalues of a symmetric kernel (as_matrix of K), descending."""
    M = as_matrix(K)
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"eigenvalues need a square kernel (points2 = points1); got {tuple(M.shape)}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    scale = torch.linalg.matrix_norm(M).clamp_min(torch.finfo(M.dtype).tiny)
    if torch.linalg.matrix_norm(M - M.T) > 1e-8 * scale:
        raise ValueError("the kernel is not symmetric")
    evals = torch.linalg.eigvalsh(0.5 * (M + M.T))
    return evals.flip(0)[: min(k, len(evals))]
