"""nnflow: neural-network metric flows on Calabi–Yau hypersurfaces."""

__version__ = "0.1.0"

__all__ = ["load_run"]


def __getattr__(name: str):
    """``nnflow.load_run`` (nnflow.training.load) on first use: importing nnflow stays torch-only
    (the training layer pulls in Lightning and Hydra)."""
    if name == "load_run":
        from nnflow.training.load import load_run

        return load_run
    raise AttributeError(f"module 'nnflow' has no attribute {name!r}")
