"""Losses and their functional derivatives, frozen-NTK flows, linearized models (pure torch; torus Ricci flows: nnflow.torus)."""
