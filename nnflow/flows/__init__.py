"""Losses and their functional derivatives, frozen-NTK flows, linearized models (pure torch).

Ricci flows on tori live in nnflow.torus.
"""
