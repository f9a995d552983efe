"""float32 and TF32 options against float64 (CPU always; CUDA and TF32 where a GPU exists)."""

import pytest
import torch

from nnflow.flows.frozen import build_frozen_flow
from nnflow.flows.losses import class_kappa
from nnflow.geometry.linalg import hermitian_det
from nnflow.kernels import GaussianKernel, analytic_kernel, metric_ntk
from nnflow.models import build_potential
from nnflow.precision import PRECISIONS, set_precision

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
# Tolerances are relative to the largest entry. float32 round-off is ~1e-7 per operation;
# TF32 products keep a 10-bit mantissa (relative 2^-11 ≈ 5e-4 per product).
TOLERANCE = {"float32": 1e-4, "tf32": 2e-2}


@pytest.fixture(autouse=True)
def restore_matmul_precision():
    yield
    set_precision("float64")


def rel_error(a, b):
    # (a parameter with no effect on the metric, e.g. the output bias, has zero gradient in both)
    return ((a.to(b.dtype) - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def test_precision_options():
    assert set_precision("float64") == torch.float64
    assert set_precision("float32") == torch.float32 and torch.get_float32_matmul_precision() == "highest"
    assert set_precision("tf32") == torch.float32 and torch.get_float32_matmul_precision() == "high"
    with pytest.raises(ValueError, match="precision 'float16'"):
        set_precision("float16")


def devices_and_precisions():
    out = [("cpu", "float32")]
    if torch.cuda.is_available():
        out += [("cuda", "float32"), ("cuda", "tf32")]
    return out


@pytest.mark.parametrize("device,precision", devices_and_precisions())
def test_network_metric_and_training_gradient_match_float64(device, precision, point_cache):
    pts = point_cache("fermat_quintic", 256)
    model = build_potential("mlp", n_coords=5, width=64, depth=2, init="random", seed=3, output_scale=0.3)

    def loss_and_grads(m, p):
        m.zero_grad()
        det = hermitian_det(m.metric(p.z, p.jac))  # what training uses
        loss = (det / p.omega2 - 1).square().mean()
        loss.backward()
        return det.detach(), [q.grad.detach() for q in m.parameters()]

    det64, grads64 = loss_and_grads(model, pts)
    dtype = set_precision(precision)
    lo = build_potential("mlp", n_coords=5, width=64, depth=2, init="random", seed=3, output_scale=0.3)
    lo = lo.to(device=device, dtype=dtype)
    det_lo, grads_lo = loss_and_grads(lo, pts.to(device, dtype=torch.complex64))
    assert det_lo.dtype == torch.float32 and det_lo.device.type == device
    assert rel_error(det_lo.cpu(), det64) < TOLERANCE[precision]
    for g_lo, g64 in zip(grads_lo, grads64):
        assert rel_error(g_lo.cpu(), g64) < 10 * TOLERANCE[precision]


@pytest.mark.parametrize("device,precision", devices_and_precisions())
def test_kernels_match_float64(device, precision, point_cache):
    pts = point_cache("fermat_quintic", 24)
    lo_pts = pts.to(device, dtype=torch.complex64)
    for kernel in (GaussianKernel(1.0), analytic_kernel({"network": "mlp", "depth": 2, "activation": "erf"})):
        ref = kernel.metric(pts)
        set_precision(precision)
        out = kernel.metric(lo_pts)
        set_precision("float64")
        assert out.dtype == torch.float32 and out.device.type == device
        assert rel_error(out.cpu(), ref) < TOLERANCE[precision], kernel
    model = build_potential("mlp", n_coords=5, width=32, depth=2, seed=1)
    ref = metric_ntk(model, pts, implementation="structured")
    set_precision(precision)
    out = metric_ntk(model.to(device=device, dtype=torch.float32), lo_pts, implementation="structured")
    assert rel_error(out.cpu(), ref) < TOLERANCE[precision]


@pytest.mark.parametrize("device,precision", devices_and_precisions())
def test_frozen_flow_matches_float64(device, precision, point_cache):
    train, held_out = point_cache("fermat_quintic", 64, seed=2), point_cache("fermat_quintic", 16, seed=3)
    kappa = class_kappa(train)

    def run(points, held):
        flow = build_frozen_flow(points, kappa, network="gaussian", lengthscale=1.0, block_size=32)
        for _ in range(10):
            flow.step(0.05)
        return flow.real_metric_train(), flow.metric(held.z, held.jac)

    r64, g64 = run(train, held_out)
    set_precision(precision)
    r_lo, g_lo = run(train.to(device, dtype=torch.complex64), held_out.to(device, dtype=torch.complex64))
    assert r_lo.dtype == torch.float32
    assert rel_error(r_lo.cpu(), r64) < TOLERANCE[precision]
    assert rel_error(g_lo.cpu(), g64) < TOLERANCE[precision]


@cuda
def test_tf32_is_a_real_option_on_cuda():
    """TF32 changes float32 CUDA matmuls (else the tf32 tolerance above would test nothing)."""
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(512, 512, generator=gen, dtype=torch.float32) for _ in range(2))  # not the float64 default
    exact = a.double() @ b.double()
    set_precision("float32")
    full = (a.cuda() @ b.cuda()).cpu()
    set_precision("tf32")
    tf32 = (a.cuda() @ b.cuda()).cpu()
    assert rel_error(full, exact) < 1e-5
    if torch.cuda.get_device_capability()[0] >= 8:  # Ampere and later have TF32
        assert rel_error(tf32, exact) > 10 * rel_error(full, exact)


def test_training_runs_in_float32(tmp_path):
    from nnflow.training.run import train

    from .helpers import FAST_TRAIN, compose_train

    cfg = compose_train("experiment=cubic_mlp", *FAST_TRAIN, "dtype=float32", "trainer.max_epochs=2", "logger=csv",
                        tmp_path=tmp_path)
    summary, _ = train(cfg, tmp_path / "run")
    assert summary["status"] == "completed" and summary["dtype"] == "float32"
    assert PRECISIONS[summary["dtype"]][0] == torch.float32
