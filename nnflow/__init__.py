"""nnflow: neural-network metric flows on Calabi–Yau hypersurfaces."""

__version__ = "0.1.0"
