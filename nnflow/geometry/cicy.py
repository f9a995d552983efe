"""Complete intersection Calabi–Yau manifolds (CICYs) in products of projective spaces.

    X = {p_1(z) = … = p_K(z) = 0} ⊂ A = P^{n_1} × … × P^{n_m},    z = (z^(1), …, z^(m)),

each p_k multihomogeneous: of degree q_{ik} in the n_i + 1 coordinates z^(i) of factor i. The
m × K configuration matrix q fixes the topology; X is Calabi–Yau iff every row sums to n_i + 1
(c_1(X) = Σ_i (n_i + 1 − Σ_k q_ik) J_i = 0), and has complex dimension n = Σ_i n_i − K.

Topology from the configuration alone (J_i: the hyperplane class of factor i, ∫_A Π J_i^{n_i} = 1):

    ∫_X α = ∫_A α · Π_k (Σ_i q_ik J_i),         c(X) = Π_i (1 + J_i)^{n_i+1} / Π_k (1 + Σ_i q_ik J_i),

so the intersection numbers d_c = ∫_X Π J_i^{c_i} (|c| = n), the FS volume ∫_X (Σ t_i J_i)^n and
χ = ∫_X c_n(X) are exact integers/polynomials (bicubic in P²×P²: −162, tetraquadric in (P¹)^4:
−128, two cubics in P^5: −144, quintic: −200). The Monte Carlo measures are tested against them.

Polynomials are given by monomial exponents over all Σ(n_i + 1) coordinates (factor blocks
concatenated in order) and complex coefficients; evaluation is exact (PolynomialMap).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations_with_replacement, product

import torch

from nnflow.geometry.hypersurface import _as_complex_list, _short_repr, hypersurface_from_config
from nnflow.geometry.polynomial import PolynomialMap, derivative_map, second_derivative_map


class CompleteIntersection:
    """X ⊂ P^{n_1} × … × P^{n_m} cut out by K multihomogeneous polynomials (module doc).

    Args:
        factors: (n_1, …, n_m), each ≥ 1.
        polynomials: K pairs (exponents (M_k, Σ(n_i+1)) non-negative integers, coefficients (M_k,)
            complex, numbers, '1+2j' strings or [re, im] pairs).
        name: label used in configs and logs.
        params: the preset's parameters (metadata), e.g. ``{"seed": 0}``.

    Raises:
        ValueError: a polynomial that is not multihomogeneous, a configuration that is not
            Calabi–Yau (the message shows the matrix and the row sums needed), dim X < 1,
            mismatched shapes (one coefficient per monomial), negative exponents, or a
            polynomial with all coefficients zero.
    """

    def __init__(self, factors: Sequence[int], polynomials: Sequence, name: str = "custom_cicy",
                 params: dict | None = None):
        factors = [int(n) for n in factors]
        if not factors or min(factors) < 1:
            raise ValueError(f"factors must be projective dimensions n_i >= 1; got {factors}")
        if not polynomials:
            raise ValueError("need at least one polynomial")
        self.factors = factors
        self.n_factors = len(factors)
        self.n_coords = sum(n + 1 for n in factors)
        self.offsets = [sum(n + 1 for n in factors[:i]) for i in range(len(factors) + 1)]
        self.n_equations = len(polynomials)
        self.dim = sum(factors) - self.n_equations
        self.name = name
        self.params = dict(params or {})
        exps, coefs, degrees = [], [], []
        for k, poly in enumerate(polynomials):
            e, c = _polynomial(poly, k, self.n_coords)
            blocks = [e[:, self.offsets[i]:self.offsets[i + 1]].sum(1) for i in range(self.n_factors)]
            deg = []
            for i, b in enumerate(blocks):
                if b.unique().numel() != 1:
                    raise ValueError(f"polynomial {k} is not homogeneous in factor {i} (P^{factors[i]}): "
                                     f"monomial degrees {b.unique().tolist()} there")
                deg.append(int(b[0]))
            exps.append(e)
            coefs.append(c)
            degrees.append(deg)
        q = torch.tensor(degrees, dtype=torch.long).T  # (m, K)
        self.configuration = q
        rows, need = q.sum(1).tolist(), [n + 1 for n in factors]
        if rows != need:
            raise ValueError(
                f"not Calabi–Yau: configuration matrix {q.tolist()} (rows: factors P^{factors}, columns: "
                f"polynomials) has row sums {rows}; each factor P^n_i needs n_i + 1 = {need}"
            )
        if self.dim < 1:
            raise ValueError(f"{self.n_equations} equations in a {sum(factors)}-dimensional space leave dim X = "
                             f"{self.dim}: need dim >= 1")
        self.exponents, self.coefficients = exps, coefs
        self._p = [PolynomialMap(e, c[None]) for e, c in zip(exps, coefs)]
        self._scale = [PolynomialMap(e, c.abs()[None]) for e, c in zip(exps, coefs)]
        self._dp = [derivative_map(e, c, self.n_coords) for e, c in zip(exps, coefs)]
        self._ddp = [second_derivative_map(e, c, self.n_coords) for e, c in zip(exps, coefs)]

    # ------------------------------------------------------------------ evaluation
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """(p_1(z), …, p_K(z)): (..., n_coords) complex → (..., K)."""
        return torch.cat([p(z) for p in self._p], -1)

    def jacobian(self, z: torch.Tensor) -> torch.Tensor:
        """∂p_k/∂z_j: (..., n_coords) → (..., K, n_coords)."""
        return torch.stack([dp(z) for dp in self._dp], -2)

    def hessian(self, z: torch.Tensor) -> torch.Tensor:
        """∂²p_k/∂z_j∂z_l: (..., n_coords) → (..., K, n_coords, n_coords)."""
        return torch.stack([ddp(z).unflatten(-1, (self.n_coords, self.n_coords)) for ddp in self._ddp], -3)

    def scale(self, z: torch.Tensor) -> torch.Tensor:
        """Σ_m |c_m z^{e_m}| per polynomial, the size against which p_k(z) is small: (..., K) real."""
        return torch.cat([s(z.abs()) for s in self._scale], -1)

    def blocks(self, z: torch.Tensor) -> list[torch.Tensor]:
        """The factor blocks z^(i): (..., n_coords) → m tensors (..., n_i + 1)."""
        return [z[..., self.offsets[i]:self.offsets[i + 1]] for i in range(self.n_factors)]

    # ------------------------------------------------------------------ topology
    def intersection_number(self, c: Sequence[int]) -> int:
        """d_c = ∫_X Π_i J_i^{c_i} for Σ c_i = dim X (exact integer)."""
        c = [int(v) for v in c]
        if len(c) != self.n_factors or sum(c) != self.dim or min(c) < 0:
            raise ValueError(f"need {self.n_factors} non-negative powers summing to dim X = {self.dim}; got {c}")
        alpha = {tuple(c): 1}
        return _integrate(self, alpha)

    def volume(self, t: float | Sequence[float] = 1.0) -> float:
        """∫_X ω_FS(t)^n = ∫_X (Σ_i t_i J_i)^n = Σ_c n!/Π c_i! Π t_i^{c_i} d_c."""
        t = self.kahler_moduli(t)
        total = 0.0
        for c, d in self.intersection_numbers().items():
            total += math.factorial(self.dim) / math.prod(math.factorial(v) for v in c) * d * math.prod(
                ti**ci for ti, ci in zip(t, c))
        return total

    def intersection_numbers(self) -> dict[tuple[int, ...], int]:
        """Every non-zero d_c, keyed by c (powers ≤ n_i: J_i^{n_i+1} = 0)."""
        out = {}
        for c in product(*[range(n + 1) for n in self.factors]):
            if sum(c) == self.dim:
                d = self.intersection_number(c)
                if d:
                    out[c] = d
        return out

    def euler_characteristic(self) -> int:
        """χ(X) = ∫_X c_n(X) from c(X) = Π_i (1 + J_i)^{n_i+1} / Π_k (1 + Σ_i q_ik J_i)."""
        n = self.dim
        total = {(0,) * self.n_factors: 1}
        for i, ni in enumerate(self.factors):
            for _ in range(ni + 1):
                total = _multiply(total, {(0,) * self.n_factors: 1, _unit(i, self.n_factors): 1}, self.factors)
        for k in range(self.n_equations):
            divisor = {_unit(i, self.n_factors): int(self.configuration[i, k]) for i in range(self.n_factors)}
            inverse, power = {(0,) * self.n_factors: 1}, {(0,) * self.n_factors: 1}
            for _ in range(n):  # 1/(1 + D) = Σ_j (−D)^j, j ≤ n (higher degrees vanish)
                power = _multiply(power, {e: -v for e, v in divisor.items()}, self.factors)
                inverse = _add(inverse, power)
            total = _multiply(total, inverse, self.factors)
        top = {e: v for e, v in total.items() if sum(e) == n}
        return _integrate(self, top)

    def kahler_moduli(self, t: float | Sequence[float]) -> list[float]:
        """One positive t_i per factor (a scalar is used for every factor)."""
        if isinstance(t, (int, float)):
            t = [float(t)] * self.n_factors
        t = [float(v) for v in t]
        if len(t) != self.n_factors:
            raise ValueError(f"need one Kähler parameter per factor ({self.n_factors}); got {t}")
        if not all(v > 0 for v in t):
            raise ValueError(f"Kähler parameters must be positive (inside the Kähler cone); got {t}")
        return t

    # ------------------------------------------------------------------ symmetries
    @property
    def phase_order(self) -> int:
        """d = lcm of the configuration's degrees: the order of the phases ``phase_symmetries`` tries."""
        return math.lcm(*[int(v) for v in self.configuration.flatten().tolist() if v > 0])

    def phase_symmetries(self) -> torch.Tensor:
        """Diagonal phase symmetries of X of order d = ``phase_order``.

        z_j → ω^{r_j} z_j (ω = e^{2πi/d}, every coordinate of every factor) maps X to itself when each
        p_k(ω^r z) = c_k·p_k(z), i.e. e_m·r ≡ e_0·r (mod d) for every monomial m of every p_k. It is a
        unitary map of each factor, an isometry of every ⊕ t_i g_FS,i, so the Ricci-flat metric in
        the class (unique) is invariant too. A generic CICY has only the maps that rescale one whole
        factor, which every projective-invariant feature already ignores.

        Returns:
            (G, n_coords) long: every r ∈ {0, …, d−1}^{n_coords} with that property.
        """
        d, n = self.phase_order, self.n_coords
        if d**n > 10**7:
            raise ValueError(f"too many phase vectors to enumerate ({d}^{n}) for {self.name}")
        r = torch.cartesian_prod(*[torch.arange(d)] * n)  # (d^n, n)
        keep = torch.ones(len(r), dtype=torch.bool)
        for e in self.exponents:
            charge = e @ r.T  # (M_k, d^n)
            keep &= ((charge - charge[:1]) % d == 0).all(0)
        return r[keep]

    # ------------------------------------------------------------------ metadata
    @property
    def degree(self) -> int:
        """The largest total degree of a polynomial (for messages and sizes)."""
        return int(self.configuration.sum(0).max())

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "params": self.params,
            "factors": self.factors,
            "polynomials": [
                {"exponents": e.tolist(), "coefficients": [[v.real, v.imag] for v in c.tolist()]}
                for e, c in zip(self.exponents, self.coefficients)
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> CompleteIntersection:
        return cls(d["factors"], [(p["exponents"], p["coefficients"]) for p in d["polynomials"]],
                   name=d["name"], params=d.get("params"))

    def __repr__(self) -> str:
        space = " × ".join(f"P^{n}" for n in self.factors)
        return (f"CompleteIntersection({self.name!r}, {space}, configuration {self.configuration.tolist()}, "
                f"dim {self.dim})")


# ---------------------------------------------------------------------- construction helpers
def _polynomial(poly, k: int, n_coords: int):
    if isinstance(poly, Mapping):
        e, c = poly["exponents"], poly["coefficients"]
    else:
        e, c = poly
    e = torch.as_tensor(e, dtype=torch.long)
    c = torch.as_tensor(_as_complex_list(c), dtype=torch.complex128)
    if e.ndim != 2 or e.shape[1] != n_coords:
        raise ValueError(f"polynomial {k}: exponents must have shape (M, {n_coords}); got {tuple(e.shape)}")
    if c.ndim != 1 or c.shape[0] != e.shape[0]:
        raise ValueError(f"polynomial {k}: need one coefficient per monomial: {e.shape[0]} monomials, "
                         f"{c.shape[0] if c.ndim == 1 else tuple(c.shape)} coefficients")
    if (e < 0).any():
        raise ValueError(f"polynomial {k}: exponents must be non-negative")
    keep = c != 0
    if not keep.any():
        raise ValueError(f"polynomial {k}: all coefficients are zero")
    return e[keep], c[keep]


# ---------------------------------------------------------------------- cohomology ring of A
def _unit(i: int, m: int) -> tuple[int, ...]:
    return tuple(1 if j == i else 0 for j in range(m))


def _add(a: dict, b: dict) -> dict:
    out = dict(a)
    for e, v in b.items():
        out[e] = out.get(e, 0) + v
    return out


def _multiply(a: dict, b: dict, factors: list[int]) -> dict:
    """Product in H*(A) = Z[J_1..J_m]/(J_i^{n_i+1}): dicts exponent tuple → integer coefficient."""
    out: dict = {}
    for ea, va in a.items():
        for eb, vb in b.items():
            e = tuple(x + y for x, y in zip(ea, eb))
            if all(x <= n for x, n in zip(e, factors)):
                out[e] = out.get(e, 0) + va * vb
    return out


def _integrate(x: CompleteIntersection, alpha: dict) -> int:
    """∫_X α = coefficient of Π J_i^{n_i} in α · Π_k (Σ_i q_ik J_i)."""
    total = alpha
    for k in range(x.n_equations):
        total = _multiply(total, {_unit(i, x.n_factors): int(x.configuration[i, k])
                                  for i in range(x.n_factors)}, x.factors)
    return int(total.get(tuple(x.factors), 0))


# ---------------------------------------------------------------------- presets
def multihomogeneous_monomials(factors: Sequence[int], degrees: Sequence[int]) -> torch.Tensor:
    """Every monomial of multidegree (q_1, …, q_m) over the factor blocks: (M, Σ(n_i+1)) long."""
    per_factor = []
    for n, q in zip(factors, degrees):
        rows = []
        for combo in combinations_with_replacement(range(n + 1), int(q)):
            row = [0] * (n + 1)
            for i in combo:
                row[i] += 1
            rows.append(row)
        per_factor.append(rows)
    return torch.tensor([sum(parts, []) for parts in product(*per_factor)], dtype=torch.long)


def random_cicy(factors: Sequence[int], configuration: Sequence[Sequence[int]], seed: int = 0,
                name: str = "random_cicy") -> CompleteIntersection:
    """A CICY from its configuration matrix (m rows = factors, K columns = polynomials) with every
    monomial's coefficient an independent standard complex Gaussian (seeded): smooth with
    probability one (Bertini)."""
    q = torch.as_tensor(configuration, dtype=torch.long)
    if q.ndim != 2 or q.shape[0] != len(factors):
        raise ValueError(f"configuration must be a matrix with one row per factor ({len(factors)}); got {q.tolist()}")
    if (q < 0).any():
        raise ValueError(f"configuration degrees must be non-negative; got {q.tolist()}")
    g = torch.Generator().manual_seed(int(seed))
    polys = []
    for k in range(q.shape[1]):
        e = multihomogeneous_monomials(factors, q[:, k].tolist())
        c = torch.complex(torch.randn(len(e), generator=g, dtype=torch.float64),
                          torch.randn(len(e), generator=g, dtype=torch.float64)) / math.sqrt(2)
        polys.append((e, c))
    return CompleteIntersection(factors, polys, name=name,
                                params={"seed": int(seed), "configuration": q.tolist(), "factors": list(factors)})


def bicubic(seed: int = 0) -> CompleteIntersection:
    """A random bicubic in P² × P² (configuration [[3], [3]]): h^{1,1} = 2, χ = −162."""
    return random_cicy([2, 2], [[3], [3]], seed, name="bicubic")


def tetraquadric(seed: int = 0) -> CompleteIntersection:
    """A random tetraquadric in (P¹)^4 (configuration [[2], [2], [2], [2]]): h^{1,1} = 4, χ = −128."""
    return random_cicy([1, 1, 1, 1], [[2], [2], [2], [2]], seed, name="tetraquadric")


def cubic_cubic(seed: int = 0) -> CompleteIntersection:
    """Two random cubics in P^5, X_{3,3} (configuration [[3, 3]]): χ = −144."""
    return random_cicy([5], [[3, 3]], seed, name="cubic_cubic")


CICY_PRESETS = {"bicubic": bicubic, "tetraquadric": tetraquadric, "cubic_cubic": cubic_cubic}


def cicy_from_config(config: Mapping) -> CompleteIntersection:
    """A CICY from a config mapping: ``{"name": "bicubic", "seed": 3}``, ``{"name": "random_cicy",
    "factors": [1, 2], "configuration": [[2], [3]], "seed": 0}`` or ``{"name": "custom_cicy",
    "factors": [...], "polynomials": [{"exponents": ..., "coefficients": ...}, ...]}``.

    Raises:
        ValueError: for a missing or unknown name (listing the known ones) or bad parameters
            (the message names the keys given).
    """
    params = dict(config)
    known = sorted(CICY_PRESETS) + ["random_cicy", "custom_cicy"]
    name = params.pop("name", None)
    if name is None:
        raise ValueError(f"CICY config {params!r} has no 'name'; known: {known}")
    try:
        if name in CICY_PRESETS:
            return CICY_PRESETS[name](**params)
        if name == "random_cicy":
            return random_cicy(**params)
        if name == "custom_cicy":
            return CompleteIntersection(params.pop("factors"), params.pop("polynomials"), **params)
    except (ValueError, TypeError, KeyError) as err:
        given = ", ".join(f"{key}={_short_repr(value)}" for key, value in params.items())
        raise ValueError(f"manifold={name} ({given or 'no parameters'}): {err}") from err
    raise ValueError(f"unknown CICY {name!r}; known: {known}")


def is_cicy_config(config: Mapping) -> bool:
    """Whether a manifold config names a CICY (a preset, random_cicy or custom_cicy)."""
    return config.get("name") in set(CICY_PRESETS) | {"random_cicy", "custom_cicy"}


def manifold_from_config(config: Mapping):
    """The manifold of a config (conf/manifold/*.yaml): a CompleteIntersection for the CICY names
    (``cicy_from_config``), else a Hypersurface (``hypersurface_from_config``)."""
    return cicy_from_config(config) if is_cicy_config(config) else hypersurface_from_config(config)
