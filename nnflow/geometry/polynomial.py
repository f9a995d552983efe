"""Exact, batched evaluation of homogeneous polynomial maps z ↦ (Σ_m C_km z^{e_m})_k.

Two strategies, chosen by operation count:
- *tree*: every monomial of the degree, built by multiplying one variable at a time (each
  monomial has a parent and the variable that extends it), then one matrix product with C.
  Best for dense polynomials (a random quintic: 126 monomials from 251 products).
- *sparse*: a table of integer powers z_i^k and one product over the variables per monomial.
  Best for few monomials (Fermat, Dwork).
Both use only multiplications: no complex ``pow``, which is inexact and undefined at 0.
Work in the layout (monomial, batch...) so that gathers are over a leading, contiguous dim.
"""

from __future__ import annotations

import torch


def monomial_tree(n_vars: int, degree: int):
    """Monomials of degree 0..d in a tree: level k extends level k−1 by one variable.

    Returns (levels, parents, variables): levels[k] lists the exponent tuples of degree k;
    monomial i of level k is levels[k−1][parents[k][i]] · z[variables[k][i]]. Variables are
    appended in non-decreasing order, so each monomial appears once.
    """
    levels, last = [[(0,) * n_vars]], [0]
    parents, variables = [None], [None]
    for _ in range(degree):
        exps, par, var, new_last = [], [], [], []
        for p, (e, lo) in enumerate(zip(levels[-1], last)):
            for i in range(lo, n_vars):
                ee = list(e)
                ee[i] += 1
                exps.append(tuple(ee))
                par.append(p)
                var.append(i)
                new_last.append(i)
        levels.append(exps)
        last = new_last
        parents.append(torch.tensor(par, dtype=torch.long))
        variables.append(torch.tensor(var, dtype=torch.long))
    return levels, parents, variables


class PolynomialMap:
    """z ↦ Σ_m C[k, m] z^{e_m} for homogeneous monomials e_m of one degree.

    Args:
        exponents: (M, V) non-negative integers, all rows of the same degree (repeats merge).
        coefficients: (K, M) complex or real.
    Call: (..., V) → (..., K), in the dtype of z (real z needs real coefficients).
    """

    def __init__(self, exponents: torch.Tensor, coefficients: torch.Tensor):
        exponents = torch.as_tensor(exponents, dtype=torch.long)
        coefficients = torch.as_tensor(coefficients)
        self.n_vars = exponents.shape[1]
        self.degree = int(exponents.sum(1).max()) if len(exponents) else 0
        levels, parents, variables = monomial_tree(self.n_vars, self.degree)
        tree_cost = sum(len(level) for level in levels[1:])
        unique = sorted({tuple(r) for r in exponents.tolist()})
        self.tree = len(unique) * self.n_vars > tree_cost
        basis = levels[self.degree] if self.tree else unique
        column = {m: i for i, m in enumerate(basis)}
        C = torch.zeros(coefficients.shape[0], len(basis), dtype=coefficients.dtype)
        for m, row in enumerate(exponents.tolist()):
            C[:, column[tuple(row)]] += coefficients[:, m]
        self._C = C
        if self.tree:
            self._index = (parents, variables)
        else:
            e = torch.tensor(basis, dtype=torch.long).view(-1, self.n_vars)
            self._index = torch.arange(self.n_vars) * (self.degree + 1) + e  # (M, V) flat
        self._cache: dict = {}

    def _on(self, z: torch.Tensor):
        key = (z.device, z.dtype)
        if key not in self._cache:
            if self.tree:
                parents, variables = self._index
                index = (
                    [None] + [p.to(z.device) for p in parents[1:]],
                    [None] + [v.to(z.device) for v in variables[1:]],
                )
            else:
                index = self._index.to(z.device)
            self._cache[key] = (index, self._C.to(device=z.device, dtype=z.dtype))
        return self._cache[key]

    def monomials(self, z: torch.Tensor) -> torch.Tensor:
        """The basis monomials: (..., V) → (n_basis, ...)."""
        index, _ = self._on(z)
        zt = z.movedim(-1, 0).contiguous()
        if self.tree:
            parents, variables = index
            out = torch.ones_like(zt[:1])
            for k in range(1, self.degree + 1):
                out = out[parents[k]] * zt[variables[k]]
            return out
        powers = [torch.ones_like(zt)]
        for _ in range(self.degree):
            powers.append(powers[-1] * zt)
        table = torch.stack(powers, 1).flatten(0, 1)  # (V·(d+1), ...)
        out = table[index[:, 0]]
        for v in range(1, self.n_vars):  # explicit products: prod's backward is slow
            out = out * table[index[:, v]]
        return out

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        _, C = self._on(z)
        return torch.tensordot(C, self.monomials(z), dims=1).movedim(0, -1)


def derivative_map(exponents: torch.Tensor, coefficients: torch.Tensor, n_vars: int) -> PolynomialMap:
    """∂p/∂z_j = Σ_m c_m e_mj z^{e_m − δ_j} of p = Σ_m c_m z^{e_m}: one map with n_vars outputs."""
    rows, cols = [], []
    for j in range(n_vars):
        has = exponents[:, j] > 0
        shifted = exponents[has].clone()
        shifted[:, j] -= 1
        rows.append(shifted)
        col = torch.zeros(n_vars, int(has.sum()), dtype=torch.complex128)
        col[j] = coefficients[has] * exponents[has, j]
        cols.append(col)
    return PolynomialMap(torch.cat(rows), torch.cat(cols, 1))


def second_derivative_map(exponents: torch.Tensor, coefficients: torch.Tensor, n_vars: int) -> PolynomialMap:
    """∂²p/∂z_j∂z_l: one map with n_vars² outputs (row-major in (j, l))."""
    rows, cols = [], []
    for j in range(n_vars):
        for l in range(n_vars):
            factor = exponents[:, j] * (exponents[:, l] - (1 if j == l else 0))
            has = factor > 0
            shifted = exponents[has].clone()
            shifted[:, j] -= 1
            shifted[:, l] -= 1
            rows.append(shifted)
            col = torch.zeros(n_vars * n_vars, int(has.sum()), dtype=torch.complex128)
            col[j * n_vars + l] = coefficients[has] * factor[has]
            cols.append(col)
    return PolynomialMap(torch.cat(rows), torch.cat(cols, 1))
