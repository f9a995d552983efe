"""Kähler potential networks: projective features, jets, MLP / cos-net / gauss-net (pure torch)."""

from nnflow.models.features import ProjectiveFeatures
from nnflow.models.jets import Jet
from nnflow.models.networks import ACTIVATIONS, MLP, NETWORKS, CosNet, GaussNet, build_network
from nnflow.models.potential import INITS, KahlerPotential, build_potential

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "MLP",
    "NETWORKS",
    "CosNet",
    "GaussNet",
    "Jet",
    "KahlerPotential",
    "ProjectiveFeatures",
    "build_network",
    "build_potential",
]
