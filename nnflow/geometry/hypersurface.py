"""Calabi–Yau hypersurfaces X = {p(z) = 0} ⊂ P^N given by monomials and coefficients.

    p(z) = Σ_m c_m Π_i z_i^{e_{mi}},     e ∈ Z_{≥0}^{M × (N+1)},  c ∈ C^M

The Calabi–Yau condition for a hypersurface in P^N is deg p = N + 1; X has complex
dimension n = N − 1. Polynomials are evaluated exactly through tables of integer powers
(no complex ``pow``, which is inexact and undefined at 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations_with_replacement

import torch

from nnflow.geometry.polynomial import PolynomialMap, derivative_map, second_derivative_map


class Hypersurface:
    """A degree-(N+1) hypersurface in P^N.

    Args:
        exponents: integer array, shape (M, N+1), every row summing to the degree N+1.
        coefficients: complex array, shape (M,), not all zero.
        name: label used in configs, file names and logs.
        params: the preset's parameters (for metadata), e.g. ``{"psi": 0.5}``.

    Raises:
        ValueError: for a non-homogeneous polynomial, a degree other than N+1 (not Calabi–Yau),
            N < 2, negative exponents, mismatched shapes, or all-zero coefficients.
    """

    def __init__(self, exponents, coefficients, name: str = "custom", params: dict | None = None):
        e = torch.as_tensor(exponents, dtype=torch.long)
        c = torch.as_tensor(_as_complex_list(coefficients), dtype=torch.complex128)
        if e.ndim != 2:
            raise ValueError(f"exponents must have shape (M, N+1); got shape {tuple(e.shape)}")
        if c.ndim != 1 or c.shape[0] != e.shape[0]:
            raise ValueError(
                f"need one coefficient per monomial: {e.shape[0]} monomials, "
                f"coefficients of shape {tuple(c.shape)}"
            )
        if (e < 0).any():
            raise ValueError(f"exponents must be non-negative; got {e.tolist()}")
        keep = c != 0
        if not keep.any():
            raise ValueError("all coefficients are zero: p ≡ 0 defines no hypersurface")
        e, c = e[keep], c[keep]
        n_coords = e.shape[1]
        if n_coords < 3:
            raise ValueError(f"need P^N with N >= 2 (n_coords >= 3); got {n_coords} coordinates")
        degrees = e.sum(1).unique()
        if degrees.numel() != 1:
            raise ValueError(f"p is not homogeneous: monomial degrees {degrees.tolist()}")
        degree = int(degrees.item())
        if degree != n_coords:
            raise ValueError(
                f"not Calabi–Yau: a hypersurface in P^{n_coords - 1} needs degree {n_coords}, "
                f"got degree {degree}"
            )
        self.name = name
        self.params = dict(params or {})
        self.exponents = e
        self.coefficients = c
        self.degree = degree
        self.n_coords = n_coords
        self.dim = n_coords - 2
        self._p = PolynomialMap(e, c[None])
        self._scale = PolynomialMap(e, c.abs()[None])
        self._dp = derivative_map(e, c, n_coords)  # ∂p/∂z_k: N+1 outputs
        self._ddp = second_derivative_map(e, c, n_coords)  # ∂²p/∂z_k∂z_l (the curvature's chart expansion)

    # ------------------------------------------------------------------ evaluation
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """p(z): (..., N+1) complex → (...) complex."""
        return self._p(z).squeeze(-1)

    def gradient(self, z: torch.Tensor) -> torch.Tensor:
        """Holomorphic gradient ∂p/∂z_k: (..., N+1) → (..., N+1)."""
        return self._dp(z)

    def hessian(self, z: torch.Tensor) -> torch.Tensor:
        """Holomorphic Hessian ∂²p/∂z_k∂z_l: (..., N+1) → (..., N+1, N+1)."""
        return self._ddp(z).unflatten(-1, (self.n_coords, self.n_coords))

    def scale(self, z: torch.Tensor) -> torch.Tensor:
        """Σ_m |c_m z^{e_m}|, the size against which p(z) is small: (..., N+1) → (...) real."""
        return self._scale(z.abs()).squeeze(-1)

    def phase_symmetries(self) -> torch.Tensor:
        """Diagonal phase symmetries of X of order d = deg p.

        z_i → ω^{r_i} z_i with ω = e^{2πi/d} maps X to itself when p(ω^r z) = c·p(z), i.e. when
        e_m·r ≡ e_0·r (mod d) for every monomial m; such a map is an isometry of the FS metric,
        so the Ricci-flat metric in its class (unique) is invariant too.

        Returns:
            (G, N+1) long: every r ∈ {0, …, d−1}^{N+1} with that property (G = d^N for a Fermat
            polynomial, which has every such r; the overall r = (1, …, 1) is always there).
        """
        d, N1 = self.degree, self.n_coords
        if d**N1 > 10**7:
            raise ValueError(f"too many phase vectors to enumerate ({d}^{N1}) for this hypersurface")
        r = torch.cartesian_prod(*[torch.arange(d)] * N1)  # (d^{N+1}, N+1)
        charge = self.exponents @ r.T  # (M, d^{N+1})
        keep = ((charge - charge[:1]) % d == 0).all(0)
        return r[keep]

    def check_smooth(self, seed: int = 0):
        """Raise SingularManifoldError if X has a singular point anywhere on P^N; warn if nearly.

        Memoized on this object; see :func:`nnflow.geometry.singularity.check_smooth` (formula for
        the Fermat/Dwork form, total-degree homotopy otherwise). Returns a SmoothnessReport.
        """
        from nnflow.geometry.singularity import check_smooth  # it imports this module

        return check_smooth(self, seed)

    def singular_points(self, seed: int = 0) -> torch.Tensor:
        """Singular points found numerically on P^N: (S, N+1) complex128, largest coordinate 1."""
        from nnflow.geometry.singularity import singular_points

        return singular_points(self, seed)

    def to_dict(self) -> dict:
        """Metadata that rebuilds this hypersurface (JSON-serializable)."""
        return {
            "name": self.name,
            "params": self.params,
            "exponents": self.exponents.tolist(),
            "coefficients": [[v.real, v.imag] for v in self.coefficients.tolist()],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Hypersurface:
        return cls(d["exponents"], d["coefficients"], name=d["name"], params=d.get("params"))

    def __repr__(self) -> str:
        return (
            f"Hypersurface({self.name!r}, P^{self.n_coords - 1}, degree {self.degree}, "
            f"{self.exponents.shape[0]} monomials, dim {self.dim})"
        )


def _as_complex_list(values) -> list[complex]:
    """Accept numbers, '1+2j' strings, or [re, im] pairs (configs cannot hold complex)."""
    if isinstance(values, torch.Tensor):
        return values.to(torch.complex128).tolist()
    out = []
    for v in values:
        if isinstance(v, str):
            out.append(complex(v.replace(" ", "")))
        elif isinstance(v, Sequence):
            if len(v) != 2:
                raise ValueError(f"a coefficient pair must be [re, im]; got {v!r}")
            out.append(complex(float(v[0]), float(v[1])))
        else:
            out.append(complex(v))
    return out


# ---------------------------------------------------------------------- presets
def fermat(n_coords: int) -> Hypersurface:
    """Σ_i z_i^{N+1} = 0 in P^N (n_coords = N+1)."""
    e = (torch.eye(n_coords, dtype=torch.long) * n_coords).tolist()
    return Hypersurface(e, [1.0] * n_coords, name=f"fermat_{n_coords}")


def fermat_quintic() -> Hypersurface:
    """Σ z_i^5 = 0 in P^4: a Calabi–Yau threefold, χ = −200."""
    s = fermat(5)
    s.name = "fermat_quintic"
    return s


def dwork_quintic(psi: complex = 0.5) -> Hypersurface:
    """Σ z_i^5 − 5ψ Π z_i = 0 in P^4.

    Singular exactly where ψ^5 = 1 (the conifold: 125 nodes, e.g. (1/ψ, 1, 1, 1, 1)); sampling
    such a member raises SingularManifoldError, and members with |ψ^5 − 1| < 0.02 warn
    (nnflow.geometry.singularity).
    """
    e = (torch.eye(5, dtype=torch.long) * 5).tolist() + [[1, 1, 1, 1, 1]]
    c = [1.0] * 5 + [-5.0 * complex(psi)]
    return Hypersurface(e, c, name="dwork_quintic", params={"psi": str(complex(psi))})


def random_quintic(seed: int = 0) -> Hypersurface:
    """All 126 quintic monomials in P^4 with complex Gaussian coefficients (seeded)."""
    e = []
    for combo in combinations_with_replacement(range(5), 5):
        row = [0] * 5
        for i in combo:
            row[i] += 1
        e.append(row)
    g = torch.Generator().manual_seed(int(seed))
    c = torch.complex(
        torch.randn(len(e), generator=g, dtype=torch.float64),
        torch.randn(len(e), generator=g, dtype=torch.float64),
    ) / math.sqrt(2)
    return Hypersurface(e, c, name="random_quintic", params={"seed": int(seed)})


def fermat_quartic() -> Hypersurface:
    """Σ z_i^4 = 0 in P^3: a K3 surface, χ = 24."""
    s = fermat(4)
    s.name = "fermat_quartic"
    return s


def fermat_cubic() -> Hypersurface:
    """Σ z_i^3 = 0 in P^2: an elliptic curve, χ = 0."""
    s = fermat(3)
    s.name = "fermat_cubic"
    return s


PRESETS = {
    "fermat_quintic": fermat_quintic,
    "dwork_quintic": dwork_quintic,
    "random_quintic": random_quintic,
    "fermat_quartic": fermat_quartic,
    "fermat_cubic": fermat_cubic,
}

def expected_euler_characteristic(n_coords: int) -> int:
    """χ of a smooth degree-(N+1) hypersurface in P^N, from c(X) = (1+H)^{N+1}/(1+(N+1)H).

    χ = d · [H^{N−1}] (1+H)^{N+1} Σ_k (−dH)^k, d = N+1: quintic −200, quartic K3 24, cubic 0.
    """
    d, n = n_coords, n_coords - 2
    coeff = sum(math.comb(n_coords, n - k) * (-d) ** k for k in range(n + 1))
    return d * coeff


def make_hypersurface(name: str, **params) -> Hypersurface:
    """Build a preset by name (``custom`` takes ``exponents`` and ``coefficients``).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name == "custom":
        return Hypersurface(params.pop("exponents"), params.pop("coefficients"), **params)
    if name not in PRESETS:
        raise ValueError(f"unknown manifold {name!r}; known: {sorted(PRESETS) + ['custom']}")
    return PRESETS[name](**params)


def hypersurface_from_config(config: Mapping) -> Hypersurface:
    """The hypersurface of a manifold config (conf/manifold/*.yaml): ``name`` plus the preset's
    parameters, e.g. ``{"name": "dwork_quintic", "psi": 0.5}``, or ``{"name": "custom",
    "exponents": ..., "coefficients": ...}``.

    Args:
        config: a plain mapping (``OmegaConf.to_container(cfg.manifold, resolve=True)``); not modified.
    Raises:
        ValueError: if ``name`` is missing or unknown (listing the known ones), a parameter is
            missing (Hydra's ``???``) or bad (e.g. not Calabi–Yau); the message names the keys.
        TypeError: for a parameter the preset does not take.
    """
    params = dict(config)
    if "name" not in params:
        raise ValueError(f"manifold config {params!r} has no 'name'; known: {sorted(PRESETS) + ['custom']}")
    name = params.pop("name")
    missing = [f"manifold.{key}" for key, value in params.items() if value == "???"]
    if missing:
        raise ValueError(f"manifold={name}: config value {', '.join(missing)} is missing (???)")
    try:
        return make_hypersurface(name, **params)
    except (ValueError, TypeError) as err:
        if type(err) not in (ValueError, TypeError):  # a subclass carries its own message
            raise
        given = ", ".join(f"manifold.{key}={_short_repr(value)}" for key, value in params.items())
        raise type(err)(f"manifold={name} ({given or 'no parameters'}): {err}") from err


def _short_repr(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
