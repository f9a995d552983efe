"""curvature() of a network potential: the right values, and memory bounded by the chunk size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import torch

from nnflow.geometry.curvature import curvature
from nnflow.geometry.linalg import hermitian_det
from nnflow.models import build_potential

# One process: curvature on one chunk, then on `n` points in chunks of that size; the high-water
# mark of the resident set (ru_maxrss) after each. A kept autograd graph grows with n.
_SCRIPT = textwrap.dedent("""
    import json, resource, sys, torch
    from nnflow.geometry import make_hypersurface, sample_points
    from nnflow.geometry.curvature import curvature
    from nnflow.models import build_potential
    torch.set_num_threads(1)
    n, chunk = int(sys.argv[1]), int(sys.argv[2])
    surface = make_hypersurface("fermat_cubic")
    points = sample_points(surface, n, seed=0)
    model = build_potential(n_coords=surface.n_coords, width=32, depth=2, seed=0).double()
    assert all(p.requires_grad for p in model.parameters())
    def rss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    curvature(points.subset(slice(0, chunk)), model.potential, chunk_size=chunk)
    one_chunk = rss_mb()
    out = curvature(points, model.potential, chunk_size=chunk)
    print(json.dumps({"one_chunk": one_chunk, "all": rss_mb(), "requires_grad": out["det_g"].requires_grad}))
""")


def test_curvature_of_a_network_equals_its_jet_metric(point_cache):
    # independent route: the model's exact feature-jet metric g = J g_FS J^† + ∂∂̄φ
    ps = point_cache("fermat_quartic", 30, seed=4)
    model = build_potential(n_coords=ps.surface.n_coords, width=16, depth=2, seed=3, init="random").double()
    curv = curvature(ps, model.potential, chunk_size=7)
    with torch.no_grad():
        expected = hermitian_det(model.metric(ps.z, ps.jac))
    torch.testing.assert_close(curv["det_g"], expected, rtol=1e-10, atol=0)
    assert not any(v.requires_grad for v in curv.values())


def test_curvature_memory_is_bounded_by_the_chunk(tmp_path):
    # 200 points in chunks of 20 kept ~66 MB of graph when the parameters required grad (before
    # the fix; ~0.33 MB a point, so 10 000 quintic points would not fit); now ~1 MB
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, "200", "20"], capture_output=True, text=True,
                          env=env, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not result["requires_grad"]
    assert result["all"] - result["one_chunk"] < 20, result
