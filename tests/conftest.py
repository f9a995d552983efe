"""Shared fixtures: seeded point sets, cached per session (read-only: tests must not mutate)."""

from __future__ import annotations

import pytest
import torch

from nnflow.geometry import make_hypersurface, sample_points

torch.set_default_dtype(torch.float64)

MANIFOLDS = ["fermat_quintic", "dwork_quintic", "random_quintic", "fermat_quartic", "fermat_cubic"]


@pytest.fixture(scope="session")
def point_cache():
    cache = {}

    def get(name: str, n: int, seed: int = 0):
        key = (name, n, seed)
        if key not in cache:
            cache[key] = sample_points(make_hypersurface(name), n, seed=seed)
        return cache[key]

    return get
