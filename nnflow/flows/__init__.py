"""Losses and their functional derivatives, frozen-NTK flows, linearized models, Ricci flows (pure torch)."""
