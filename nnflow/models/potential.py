"""Kähler potentials K = K_FS + φ_θ(x(z)) and their metrics pulled back to X.

    K(z) = (t/π) log|z|² + α·[f_θ(x(z)) − f_θ0(x(z))]    (init "centered")
    K(z) = (t/π) log|z|² + α·f_θ(x(z))                    (init "random" or "zero_last")

x(z) are projective-invariant features (features.py), so K is a global potential on P^N.
"centered" subtracts the network at its initial parameters θ0 (kept as buffers): the metric
starts exactly at g_FS while the tangent kernel is that of the random network. "zero_last"
zeroes the last layer (also starts at g_FS, but the initial kernel only sees that layer).

g_{ab̄} = J_a (∂∂̄K) J_b^†: the FS part in closed form, the network part from the feature
jet propagated through the network (networks.py): no input Hessian is formed. The metric has one
entry point per training route (direct, reference, packed: "metric entry points" below).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.func import functional_call

from nnflow.geometry.fubini_study import fs_metric, fs_potential, pullback
from nnflow.geometry.hermitian import hermitian_to_real
from nnflow.models.features import ProjectiveFeatures
from nnflow.models.jets import Jet, dd_components, functional_jet, pack_jet
from nnflow.models.product_features import ProductProjectiveFeatures

INITS = ("centered", "random", "zero_last")
# The widest feature map a potential accepts by default (``build_potential``'s max_features): a
# generic quintic has no phase symmetry, and its degree-5 features are all 126² = 15,876 entries
# of m m^†/|m|², a network input that costs ~100× the Fermat quintic's 146 phase-invariant ones.
MAX_FEATURES = 4096
FEATURE_SYMMETRIES = ("none", "phases")


def potential_features(n_coords: int, degree, phases=None, phase_order=None, factors=None) -> ProjectiveFeatures:
    """The feature map of a KahlerPotential: all degree-k entries, or the phase-invariant ones,
    standardized (their scales differ by orders of magnitude; ProjectiveFeatures); on a product of
    projective spaces (``factors``) the product features, standardized."""
    if factors is not None:
        if sum(n + 1 for n in factors) != n_coords:
            raise ValueError(f"factors {list(factors)} have {sum(n + 1 for n in factors)} coordinates, not {n_coords}")
        return ProductProjectiveFeatures(factors, degree, standardize=True, phases=phases, phase_order=phase_order)
    return ProjectiveFeatures(n_coords, degree, phases, phase_order, standardize=phases is not None)


class KahlerPotential(nn.Module):
    """K = K_FS + α φ_θ on P^N restricted to X.

    Args:
        network: scalar network on R^d with ``forward(x)`` and ``jet(Jet)``.
        n_coords: N + 1.
        feature_degree: k of the features (d = C(N+k, k)² must equal network.in_dim).
        kahler_t: Kähler class t of K_FS.
        init: "centered", "random" or "zero_last".
        output_scale: α.
        phases, phase_order: keep only the features invariant under these diagonal phase
            symmetries (``Hypersurface.phase_symmetries()``, order deg p), so φ is invariant;
            those features are standardized under the FS measure (ProjectiveFeatures).
        factors: (n_1, …, n_m) for a CICY in P^{n_1} × … × P^{n_m}: K_FS = Σ_i (t/π) log|z^(i)|² and
            the product features of per-factor degree ``feature_degree`` (ProductProjectiveFeatures,
            standardized); n_coords must be Σ(n_i + 1). None: one P^N.
    """

    def __init__(
        self,
        network: nn.Module,
        n_coords: int,
        feature_degree: int = 1,
        kahler_t: float = 1.0,
        init: str = "centered",
        output_scale: float = 1.0,
        phases: torch.Tensor | None = None,
        phase_order: int | None = None,
        factors: list[int] | None = None,
    ):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose from {INITS}")
        if not kahler_t > 0:
            raise ValueError(f"kahler_t must be positive; got {kahler_t!r}")
        self.factors = None if factors is None else [int(n) for n in factors]
        self.features = potential_features(n_coords, feature_degree, phases, phase_order, self.factors)
        if phases is not None and self.features.dim == self.features.n_monomials:
            warnings.warn(
                f"phase-invariant features of degree {feature_degree} are only the diagonal |z^α|²/|z|^{{2k}}: "
                "φ then depends on the |z_i| alone and cannot be the Ricci-flat potential; "
                "use feature_degree = the degree of the polynomial",
                stacklevel=2,
            )
        if getattr(network, "in_dim", self.features.dim) != self.features.dim:
            kind = "phase-invariant " if phases is not None else ""
            raise ValueError(
                f"network expects {network.in_dim} inputs but {kind}degree-{feature_degree} features "
                f"on P^{n_coords - 1} have {self.features.dim}"
            )
        self.network = network
        self.kahler_t = float(kahler_t)
        self.init = init
        self.output_scale = float(output_scale)
        if init == "zero_last":
            network.zero_output_()
        self._theta0_names: list[tuple[str, str]] = []  # (parameter, buffer)
        if init == "centered":
            for name, p in network.named_parameters():
                buf = "theta0_" + name.replace(".", "_")
                self.register_buffer(buf, p.detach().clone())
                self._theta0_names.append((name, buf))

    def theta0(self) -> dict[str, torch.Tensor]:
        """The network's initial parameters θ0 by its parameter names (init "centered"; else {})."""
        return {name: getattr(self, buf) for name, buf in self._theta0_names}

    def phi(self, z: torch.Tensor) -> torch.Tensor:
        """Network correction α[f_θ − f_θ0](x(z)): (..., N+1) complex → (...) real."""
        x = self.features(z)
        out = self.network(x)
        if self.init == "centered":
            out = out - functional_call(self.network, self.theta0(), (x,))
        return self.output_scale * out

    def fs_potential(self, z: torch.Tensor) -> torch.Tensor:
        """K_FS: (t/π) log|z|², or Σ_i (t/π) log|z^(i)|² on a product (``factors``)."""
        if self.factors is None:
            return fs_potential(z, self.kahler_t)
        return sum(fs_potential(z[..., a:b], self.kahler_t) for a, b in self._blocks())

    def fs_metric(self, z: torch.Tensor) -> torch.Tensor:
        """Ambient ∂∂̄K_FS: (..., N+1) → (..., N+1, N+1) (block diagonal on a product)."""
        if self.factors is None:
            return fs_metric(z, self.kahler_t)
        g = torch.zeros(*z.shape, z.shape[-1], dtype=z.dtype, device=z.device)
        for a, b in self._blocks():
            g[..., a:b, a:b] = fs_metric(z[..., a:b], self.kahler_t)
        return g

    def _blocks(self) -> list[tuple[int, int]]:
        ends = [0]
        for n in self.factors:
            ends.append(ends[-1] + n + 1)
        return list(zip(ends[:-1], ends[1:]))

    def potential(self, z: torch.Tensor) -> torch.Tensor:
        """K(z) = K_FS + φ: (..., N+1) complex → (...) real (vmap- and torch.func-friendly)."""
        return self.fs_potential(z) + self.phi(z)

    def _network_dd(self, jet: Jet) -> torch.Tensor:
        """α∂∂̄f_θ from a feature jet: (B, n, n) complex."""
        return self.output_scale * self.network.jet(jet).dd[..., 0]

    def _theta0_dd(self, jet: Jet) -> torch.Tensor | float:
        """α∂∂̄f_θ0 ("centered", no gradient) or 0: the part subtracted at initialization."""
        if self.init != "centered":
            return 0.0
        return self.output_scale * _jet_with_params(self.network, self.theta0(), jet).dd[..., 0]

    def phi_metric(self, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
        """∂_a∂̄_b φ pulled back: (B, N+1), (B, n, N+1) → (B, n, n) complex."""
        jet = self.features.jet(z, jac)
        return self._network_dd(jet) - self._theta0_dd(jet)

    def _reference(self, z: torch.Tensor, jac: torch.Tensor, jet: Jet) -> torch.Tensor:
        return pullback(jac, self.fs_metric(z)) - self._theta0_dd(jet)

    # ------------------------------------------------------------ metric entry points
    # One per training route (training/modules.py, MetricModule's ``route``), all the same g:
    #   "direct"     metric(z, jac): everything at every call (validation and tests use it too);
    #   "reference"  reference_metric(z, jac) once per training point (θ-independent, no
    #                gradient), then metric_from_reference(reference, z, jac) at each step;
    #   "packed"     packed_inputs(z, jac) once per training point (reference components and the
    #                packed feature jet), then packed_metric(reference, feature_jet) at each step:
    #                real tensors only, for torch.compile; needs a network with ``jet_packed``.
    @property
    def training_routes(self) -> tuple[str, ...]:
        """The training routes this potential offers: "packed" only if the network propagates
        packed real jets (``jet_packed``: the MLP), then "reference" and "direct"."""
        cached = ("packed",) if hasattr(self.network, "jet_packed") else ()
        return cached + ("reference", "direct")

    def forward(self, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
        """Metric on X: g = J g_FS J^† + ∂∂̄φ, (B, N+1), (B, n, N+1) → (B, n, n) complex."""
        g_fs = pullback(jac, self.fs_metric(z))
        return g_fs + self.phi_metric(z, jac)

    metric = forward

    @torch.no_grad()
    def reference_metric(self, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
        """The θ-independent part of the metric: g_FS − α∂∂̄f_θ0 ("centered") or g_FS.

        (B, N+1), (B, n, N+1) → (B, n, n) complex. Training computes it once per training
        point, which saves the θ0 jet at every step (a third of a step's work when centered).
        """
        return self._reference(z, jac, self.features.jet(z, jac))

    def metric_from_reference(self, reference: torch.Tensor, z: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
        """g = reference + α∂∂̄f_θ from a precomputed ``reference_metric`` (B, n, n): (B, n, n) complex."""
        return reference + self._network_dd(self.features.jet(z, jac))

    @torch.no_grad()
    def packed_inputs(self, z: torch.Tensor, jac: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The θ-independent inputs of ``packed_metric``, computed once per training point.

        (B, N+1), (B, n, N+1) → (reference, feature_jet): ``reference_metric`` in real
        components (geometry.hermitian.hermitian_to_real), (B, n²) real, and the feature jet
        packed into one real tensor (models/jets.py), (B, 1 + 2n + n², d).
        """
        jet = self.features.jet(z, jac)
        return hermitian_to_real(self._reference(z, jac, jet)), pack_jet(jet)

    def packed_metric(self, reference: torch.Tensor, feature_jet: torch.Tensor) -> torch.Tensor:
        """g = reference + α∂∂̄f_θ in real components, from ``packed_inputs``.

        Args:
            reference: (B, n²) real; feature_jet: (B, 1 + 2n + n², d) real.
        Returns:
            (B, n²) real: the components of g (geometry.hermitian: ``real_to_hermitian``
            gives g, ``real_hermitian_det`` its determinant). Real tensors only, for torch.compile.
        """
        n = math.isqrt(reference.shape[-1])
        out = self.network.jet_packed(feature_jet, n)  # (B, 1 + 2n + n², 1)
        return reference + self.output_scale * dd_components(out, n)[..., 0]


    @property
    def has_exact_curvature(self) -> bool:
        """Whether ``metric_derivatives`` can carry curvature through the network (an MLP)."""
        from nnflow.models.networks import MLP

        return isinstance(self.network, MLP) and self.factors is None  # bi-jets: one P^N only

    @torch.no_grad()
    def metric_derivatives(self, z: torch.Tensor, jac: torch.Tensor, hess: torch.Tensor, block: int = 64,
                           params: dict | None = None, tangent: dict | None = None):
        """(g, ∂_c g, ∂̄_d g, ∂_c∂̄_d g) of this metric at points of X, exact, through bi-jets.

        K = (t/π) log|z|² + α[f_θ − f_θ0](x(z)) carried as bidegree-(2, 2) jets (geometry/bijets.py, models/bijets.py)
        through the features and the MLP, ``block`` points at a time (the memory of a block:
        ~A⁴·width·16 bytes per point); values only. The fast route of
        nnflow.geometry.curvature (``derivatives=``), ≥ 20× nested autodiff (bench/bench_curvature.py).

        Args:
            z: (B, N+1); jac: (B, n, N+1); hess: (B, n, n, N+1) (charts.embedding_hessian).
            params: the network's parameters to use (its names, "weights.0", …; None: its own).
            tangent: also add the network's first-order change along this direction (the same
                names): the jets of the linearized potential (flows.linearized).
        Returns:
            (B, n, n), (B, n, n, n) [a, b, c], (B, n, n, n) [a, b, d], (B, n, n, n, n) [a, b, c, d].
        Raises:
            ValueError: the network is not an MLP (no bi-jet propagation; use the autodiff route).
        """
        from nnflow.geometry import bijets as jets
        from nnflow.models import bijets

        if not self.has_exact_curvature:
            raise ValueError(f"exact curvature jets need an MLP potential; got {type(self.network).__name__}")
        n = jac.shape[1]
        parts = [[] for _ in range(4)]
        for i in range(0, z.shape[0], block):
            zb, jb, hb = z[i : i + block], jac[i : i + block], hess[i : i + block]
            zj = jets.embedding_jets(zb, jb, hb)
            k = jets.log_bijet(jets.outer(zj, zj).sum(-1, keepdim=True), n) * (self.kahler_t / math.pi)
            x = bijets.feature_bijet(self.features, zb, jb, hb)
            if tangent is None:
                f = bijets.mlp_bijet(self.network, x, params)
            else:
                f, df = bijets.mlp_bijet(self.network, x, params, tangent)
                f = f + df
            if self.init == "centered":
                f = f - bijets.mlp_bijet(self.network, x, self.theta0())
            for part, value in zip(parts, jets.metric_derivatives(k + self.output_scale * f, n)):
                part.append(value)
        return tuple(torch.cat(p) for p in parts)


def _jet_with_params(network: nn.Module, params: dict, jet: Jet) -> Jet:
    """network.jet evaluated at other parameters (no gradient to them)."""
    with torch.no_grad():
        return functional_jet(network, params, jet)


def phase_options(surface, feature_symmetry: str = "none") -> dict:
    """{"phases", "phase_order"} of a manifold for feature_symmetry "phases", else {} (what the
    feature maps of build_potential and the analytic kernels need besides the model config)."""
    if feature_symmetry == "phases":  # a CICY's phases have the order lcm(configuration), a hypersurface's deg p
        return {"phases": surface.phase_symmetries(), "phase_order": getattr(surface, "phase_order", surface.degree)}
    return {}


def build_potential(
    network: str = "mlp",
    n_coords: int = 5,
    feature_degree: int = 1,
    kahler_t: float = 1.0,
    init: str = "centered",
    output_scale: float = 1.0,
    seed: int | None = None,
    feature_symmetry: str = "none",
    phases: torch.Tensor | None = None,
    phase_order: int | None = None,
    max_features: int | None = MAX_FEATURES,
    factors: list[int] | None = None,
    **network_kwargs,
) -> KahlerPotential:
    """A KahlerPotential from flat options (what conf/model/*.yaml holds).

    Args:
        network: "mlp", "cosnet" or "gaussnet"; network_kwargs go to its constructor
            (width, depth, activation, parameterization, sigma_w, sigma_b, sigma_a, sigma_c).
        seed: if given, the parameters are drawn from torch.manual_seed(seed), in
            networks.PARAMETER_DRAW_DTYPE and cast to the default dtype: one seed gives one θ0
            in every precision.
        feature_symmetry: "none", or "phases": only the features invariant under the
            manifold's diagonal phase symmetries (``phases``, ``phase_order``: from
            ``Hypersurface.phase_symmetries()`` and deg p; nnflow-train passes them).
        max_features: ValueError, before the network is built, if the feature map has more
            entries (the network's input width); None: no limit.
        factors: (n_1, …, n_m) for a CICY (KahlerPotential); feature_degree is then per factor.
    """
    from nnflow.models.networks import build_network

    if feature_symmetry not in FEATURE_SYMMETRIES:
        raise ValueError(f"unknown feature_symmetry {feature_symmetry!r}; choose from {FEATURE_SYMMETRIES}")
    if feature_symmetry == "phases" and phases is None:
        raise ValueError("feature_symmetry=phases needs the manifold's phase symmetries (phases=, phase_order=)")
    if feature_symmetry == "none":
        phases = phase_order = None
    if factors is not None and phases is None:  # count before building the (possibly huge) index tables
        from nnflow.models.product_features import product_feature_count

        degrees = [feature_degree] * len(factors) if isinstance(feature_degree, int) else list(feature_degree)
        count = product_feature_count(factors, degrees)
        if max_features is not None and count > max_features:
            raise ValueError(
                f"product features of degrees {degrees} on {' × '.join(f'P^{n}' for n in factors)} are {count} "
                f"features (the network's input width), above model.max_features={max_features}: lower "
                f"model.feature_degree (degree 1 has {product_feature_count(factors, [1] * len(factors))}) or raise "
                "model.max_features"
            )
    features = potential_features(n_coords, feature_degree, phases, phase_order, factors)
    if max_features is not None and features.dim > max_features:
        kept = "the phase-invariant" if phases is not None else "all"
        space = " × ".join(f"P^{n}" for n in factors) if factors is not None else f"P^{n_coords - 1}"
        raise ValueError(
            f"{kept} degree-{feature_degree} features on {space} are {features.dim} features (the network's "
            f"input width), above model.max_features={max_features}: lower model.feature_degree (degree 1 has "
            f"{n_coords**2}), use model.feature_symmetry=phases on a manifold with phase symmetries (a generic "
            "manifold has none), or raise model.max_features"
        )
    if seed is not None:
        torch.manual_seed(int(seed))
    net = build_network(network, features.dim, **network_kwargs)
    return KahlerPotential(net, n_coords, feature_degree, kahler_t, init, output_scale, phases, phase_order, factors)
