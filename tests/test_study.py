"""The quintic finite-versus-infinite study (experiment=quintic_width_sweep, nnflow.report.study):
every arm of a tiny version runs and writes its files, the report's verdict follows its numbers,
and the pieces it rests on (kernel–target alignment, the loss's descent direction, sweep cells,
arm names) against independent facts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from nnflow.flows.losses import descent_direction, monge_ampere_loss
from nnflow.geometry.hermitian import real_hermitian_det
from nnflow.kernels import target_alignment
from nnflow.report.study import STUDY_FIGURES, summarize_study, verdict
from nnflow.tracking import arm_name, train_run_name
from nnflow.training.run import outside_sweep_cells
from tests.helpers import compose_train

BIN = os.path.dirname(sys.executable)
ENV = os.environ | {"WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
ARMS = ("lazy", "adam", "mup", "linearized", "frozen_ntk", "frozen_nngp", "gaussian", "lazy_lr_up", "frozen_lr_up")
TINY = ["model.width=8,16", "seed=0,1", "data.n_train=32,48", "sweep_reference.width=8", "study.axis_n_train=[32]",
        "study.linearized_n_train=[32]", "study.linearized_widths=[8,16]",
        "data.n_val=16", "data.n_test=64", "study.steps=6", "study.val_every=3", "study.steps_up=2",
        "study.val_every_up=1", "study.adam_steps=6", "study.adam_val_every=1", "study.batch_size=16",
        "study.warmup_steps=1", "study.lr=0.3", "study.lr_up=0.6", "study.mup_lr=1e-4", "study.mup_base_width=8",
        "kernel_tracking.probe_size=4", "kernel_tracking.every_n_steps=3", "study.gaussian_steps=4",
        "study.gaussian_val_every=2", "study.curvature_points=8"]


def test_tiny_quintic_study_runs_every_arm_and_reports(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [os.path.join(BIN, "nnflow-train"), "-m", "experiment=quintic_width_sweep", *TINY,
           f"data.cache_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = {p.name: json.loads((p / "summary.json").read_text()) for p in sweep.iterdir() if p.is_dir()}
    assert len(summaries) == len(ARMS) * 2 * 2 * 2  # arms × widths × seeds × data sizes
    for arm in ARMS:
        ran = [s for name, s in summaries.items() if name.startswith(f"{arm}_w") and s["status"] != "skipped"]
        assert ran and all(s["status"] == "completed" for s in ran), (arm, [s.get("message") for s in ran])
        assert all(math.isfinite(s["sigma_test"]) for s in ran)
    # the limits run once per data size, the learning-rate axis on one seed and one size
    assert sum(n.startswith("frozen_ntk_") and s["status"] == "completed" for n, s in summaries.items()) == 2
    assert sum(n.startswith("lazy_lr_up_") and s["status"] == "completed" for n, s in summaries.items()) == 2
    for name in ("lazy_w16_s1_n48", "adam_w8_s0_n32", "mup_w16_s0_n48"):
        run = sweep / name
        header = (run / "kernel.csv").read_text().splitlines()[0].split(",")
        assert {"rel_change", "align_target"} <= set(header)
        # the NTK-parameterized arms are compared with their analytic limit; μP has none
        assert ("dist_analytic" in header) == (not name.startswith("mup"))
        spectrum = json.loads((run / "kernel_spectrum.json").read_text())
        assert spectrum["initial"]["step"] == 0 and spectrum["final"]["step"] == 6
        assert len(spectrum["final"]["eigenvalues"]) == 4 * 9  # probe points × real metric components
        assert (run / "metrics.csv").exists() and (run / "checkpoints" / "last.ckpt").exists()
    rep = subprocess.run([os.path.join(BIN, "nnflow-report"), str(sweep)], capture_output=True, text=True,
                         timeout=600, env=ENV)
    assert rep.returncode == 0, rep.stderr[-3000:]
    brief = json.loads(rep.stdout.strip().splitlines()[-1])
    assert set(brief["limits"]) == {"frozen_ntk", "frozen_nngp", "gaussian"}
    assert all(set(v) == {"32", "48"} for v in brief["limits"].values())
    stats = json.loads((sweep / "report.json").read_text())
    assert set(stats["finite_arms"]) == {"lazy", "adam", "mup", "linearized"}
    assert {r["arm"] for r in stats["ensemble"]} == {"lazy", "adam", "mup"}
    assert [e["lr"] for e in stats["lr_axis"]] == [0.3, 0.6]
    # a frozen flow's step is its flow.dt: the limit row is frozen_ntk's own run (not averaged
    # with frozen_lr_up's), and the learning-rate axis finds the frozen flow at each step
    assert all(math.isfinite(e["frozen_sigma"]) for e in stats["lr_axis"])
    frozen = summaries["frozen_ntk_w8_s0_n32"]
    assert stats["limits"]["frozen_ntk"]["32"] == [frozen["sigma_test"], frozen["sigma_test_err"]]
    # the second axis: the Ricci measure of the finite MLP arms and the linearized networks (exact
    # route), FS's beside it
    assert set(stats["ricci"]) == {"lazy", "adam", "mup", "linearized"}
    lazy = json.loads((sweep / "lazy_w16_s1_n48" / "summary.json").read_text())
    assert lazy["curvature_points"] == 8 and lazy["curvature_route"] == "exact"
    assert 0 < lazy["ricci"] and lazy["ricci_fs"] == pytest.approx(stats["ricci_fs"], rel=1e-12)
    assert (sweep / "lazy_w16_s1_n48" / "eta_hist.png").exists()
    text = (sweep / "report.md").read_text()
    assert "## Ricci measure of the learned metrics" in text
    assert "## Verdict" in text and "## Seed ensembles" in text and "## Learning-rate axis" in text
    for sentence in brief["verdict"]:
        assert sentence in text
    for name in STUDY_FIGURES:
        assert (sweep / f"{name}.png").exists() and (sweep / f"{name}.pdf").exists(), name


def _record(arm, kind, width, seed, sigma, n_train=100, lr=1.0, change=math.nan):
    return {"run": f"/nonexistent/{arm}_{width}_{seed}", "arm": arm, "kind": kind, "width": width, "seed": seed,
            "n_train": n_train, "lr": lr, "status": "completed", "steps": 10, "sigma_test": sigma,
            "sigma_test_err": 0.001, "kernel_change": change, "ricci": math.nan, "ricci_fs": math.nan,
            "config": {"arm_label": arm}}


def _study(adam_sigma: float, frozen_sigma: float) -> list[dict]:
    records = []
    for seed in (0, 1, 2):
        for width, lazy in ((64, 0.30), (256, 0.22), (1024, 0.205)):
            records.append(_record("lazy", "finite", width, seed, lazy + 0.001 * (seed - 1), change=2.0 / width))
            records.append(_record("adam", "finite", width, seed, adam_sigma * 64 / width + 0.001 * (seed - 1),
                                   lr=0.01, change=0.3))
    records.append(_record("frozen_ntk", "frozen", 64, 0, frozen_sigma))
    return records


def test_verdict_follows_the_numbers():
    stats = summarize_study(_study(adam_sigma=0.8, frozen_sigma=0.2))  # adam: 0.8, 0.2, 0.05 by width
    assert stats["best"]["arm"] == "adam" and stats["best"]["width"] == 1024
    text = verdict(stats)
    assert text[0].startswith("Lowest σ_test at n = 100 training points (each arm at its widest width): "
                              "adam (N = 1024)")
    assert any("below the frozen NTK flow" in t and "4.00× below" in t for t in text)
    assert "adam (n = 100) is below the frozen NTK flow from N = 1024 on (two standard errors)." in text
    assert any(t.startswith("lazy (n = 100) is not below its frozen NTK limit") for t in text)
    lazy = next(t for t in text if "of lazy (lr 1)" in t)
    assert "N^-1.00" in lazy and "vanishes with width" in lazy  # change = 2/N exactly
    adam = next(t for t in text if "of adam (lr 0.01)" in t)
    assert "does not vanish" in adam or "N^0.00" in adam
    assert any("moved by 0.3" in t and "154× the lazy arm's" in t for t in text)  # 0.3 / (2/1024)

    # swap the two arms' standing: a frozen flow far below every network
    swapped = verdict(summarize_study(_study(adam_sigma=0.8, frozen_sigma=0.01)))
    assert swapped[0].startswith("Lowest σ_test at n = 100 training points (each arm at its widest width): "
                                 "frozen_ntk (N = ∞)")
    assert any("5.00× above the frozen NTK flow" in t for t in swapped)
    assert not any(t.startswith("adam (n = 100) is below") for t in swapped)


def test_target_alignment_closed_forms():
    torch.manual_seed(0)
    y = torch.randn(5, 9, dtype=torch.float64)
    v = y.reshape(-1)
    rank_one = torch.outer(v, v).reshape(5, 9, 5, 9).permute(0, 2, 1, 3)  # (B, B, m, m) of y yᵀ
    assert abs(target_alignment(rank_one, y) - 1.0) < 1e-12
    identity = torch.eye(45, dtype=torch.float64).reshape(5, 9, 5, 9).permute(0, 2, 1, 3)
    assert abs(target_alignment(identity, y) - 1 / math.sqrt(45)) < 1e-12
    w = torch.randn(45, dtype=torch.float64)
    w -= (w @ v) / (v @ v) * v  # orthogonal to y
    orthogonal = torch.outer(w, w).reshape(5, 9, 5, 9).permute(0, 2, 1, 3)
    assert abs(target_alignment(orthogonal, y)) < 1e-12
    with pytest.raises(ValueError, match="does not fit"):
        target_alignment(identity, y[:4])


def test_descent_direction_is_minus_the_loss_gradient_by_finite_differences():
    torch.manual_seed(1)
    B, n = 6, 3
    a = torch.randn(B, n, n, dtype=torch.complex128)
    g = a @ a.conj().transpose(-1, -2) + n * torch.eye(n, dtype=torch.complex128)
    from nnflow.geometry.hermitian import hermitian_to_real

    r = hermitian_to_real(g)
    omega2, weights = torch.rand(B, dtype=torch.float64) + 0.5, torch.rand(B, dtype=torch.float64) + 0.5
    y = descent_direction(r, omega2, weights, kappa=0.3, power=2.0)
    d = torch.randn_like(r)
    eps = 1e-6

    def loss(x):
        return monge_ampere_loss(real_hermitian_det(x), omega2, weights, 0.3, 2.0)

    fd = (loss(r + eps * d) - loss(r - eps * d)) / (2 * eps)
    assert abs(float(fd) + float((y * d).sum())) < 1e-7 * max(1.0, abs(float(fd)))


def _cfg(*overrides):
    return compose_train(*overrides)


def test_sweep_cells_arm_names_and_run_names():
    cfg = _cfg("experiment=quintic_width_sweep", "arm=lazy_lr_up", "seed=1")
    assert arm_name(cfg) == "lazy" and cfg.optim.optimizer.lr == cfg.study.lr_up
    assert "runs only seed in [0]" in outside_sweep_cells(cfg)
    cfg = _cfg("experiment=quintic_width_sweep", "arm=lazy_lr_up", "seed=0", "data.n_train=2000")
    assert "runs only data.n_train in [500]" in outside_sweep_cells(cfg)
    cfg = _cfg("experiment=quintic_width_sweep", "arm=lazy_lr_up", "seed=0", "data.n_train=500")
    assert outside_sweep_cells(cfg) is None
    assert train_run_name(cfg) == "lazy_w64_s0"
    OmegaConf.set_struct(cfg, False)
    cfg.sweep_cells = {"model.nonexistent": [1]}
    with pytest.raises(ValueError, match="sweep_cells.model.nonexistent"):
        outside_sweep_cells(cfg)
    mup = _cfg("model=mlp_mup")
    assert arm_name(mup) == "finite_mup" and arm_name(_cfg()) == "finite"


def test_the_arms_share_architecture_points_and_test_set():
    """Like for like: every MLP arm and the analytic limits have one architecture, and every arm
    one training and test set (the data seed is fixed, not the run's seed)."""
    keys = ("depth", "activation", "sigma_w", "sigma_b", "feature_degree", "feature_symmetry", "input_scale")
    archs, data = {}, set()
    for arm in ARMS:
        cfg = _cfg("experiment=quintic_width_sweep", f"arm={arm}", "seed=2")
        model = OmegaConf.to_container(cfg.model, resolve=True)
        data.add((cfg.data.seed, cfg.data.n_test, cfg.manifold.name))
        if arm != "gaussian":
            archs[arm] = tuple(model[k] for k in keys)
    assert len(set(archs.values())) == 1 and len(data) == 1
