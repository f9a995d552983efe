"""Numerical precision options: float64 (default), float32, and TF32 on NVIDIA GPUs.

    float64  real float64 / complex128 tensors; matmuls in full precision.
    float32  float32 / complex64 tensors; matmuls in full float32 precision.
    tf32     float32 / complex64 tensors; float32 matmuls on CUDA may use TensorFloat-32
             (10-bit mantissa products, float32 accumulation) through
             ``torch.set_float32_matmul_precision("high")``. No effect on CPU tensors.

Every option is checked against float64 in tests (tests/test_precision.py; the TF32 and CUDA
cases run where a GPU exists).
"""

from __future__ import annotations

import torch

PRECISIONS = {
    "float64": (torch.float64, "highest"),
    "float32": (torch.float32, "highest"),
    "tf32": (torch.float32, "high"),
}


def set_precision(name: str) -> torch.dtype:
    """Apply a precision option (process-wide matmul precision); return its real dtype."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose from {sorted(PRECISIONS)}")
    dtype, matmul = PRECISIONS[name]
    torch.set_float32_matmul_precision(matmul)
    return dtype


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """complex128 for float64, complex64 for float32."""
    return {torch.float64: torch.complex128, torch.float32: torch.complex64}[dtype]
