"""CPU and CUDA give the same kernels (skipped without a GPU)."""

import pytest
import torch

from nnflow.kernels import analytic_kernel, metric_ntk
from nnflow.kernels.testing import assert_close_matrices
from nnflow.models import build_potential

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


@pytest.mark.parametrize("network,implementations", [
    ("mlp", ("jacobian", "ntk_vp", "structured")),
    ("cosnet", ("jacobian", "ntk_vp")),
    ("gaussnet", ("jacobian",)),
])
def test_empirical_kernels_agree_on_cpu_and_cuda(network, implementations, point_cache):
    pts = point_cache("fermat_quintic", 8)
    model = build_potential(network, n_coords=5, width=32, seed=0)
    ref = metric_ntk(model, pts, implementation="jacobian")
    gpu_model, gpu_pts = model.to("cuda"), pts.to("cuda")
    for impl in implementations:
        for chunk in (None, 3):
            out = metric_ntk(gpu_model, gpu_pts, implementation=impl, chunk_size=chunk)
            assert out.device.type == "cuda"
            assert_close_matrices(out.cpu(), ref)


@pytest.mark.parametrize("cfg", [
    {"network": "mlp", "depth": 2, "activation": "gelu"},
    {"network": "mlp", "depth": 2, "activation": "erf"},
    {"network": "cosnet", "sigma_b": 3.0},
    {"network": "gaussnet"},
])
def test_analytic_kernels_agree_on_cpu_and_cuda(cfg, point_cache):
    pts = point_cache("fermat_quintic", 12)
    kernel = analytic_kernel(cfg)
    ref = kernel.metric(pts)
    out = kernel.metric(pts.to("cuda"))
    assert out.device.type == "cuda"
    assert_close_matrices(out.cpu(), ref)
