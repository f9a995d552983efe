"""The configs: every preset and model config composes and builds what its ``model.kind`` says,
derived model configs inherit the base architecture, and every app's summary has provenance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nnflow.algebraic.bergman import BergmanPotential
from nnflow.cli import CONFIG_DIR
from nnflow.flows.frozen import FrozenKernelFlow
from nnflow.flows.linearized import LinearizedPotential
from nnflow.flows.losses import class_kappa
from nnflow.geometry import sample_points
from nnflow.geometry.cicy import CompleteIntersection, manifold_from_config
from nnflow.geometry.cicy_points import cicy_fs_metric
from nnflow.geometry.cicy_sampling import sample_cicy
from nnflow.geometry.fubini_study import fs_metric, pullback
from nnflow.models import KahlerPotential
from nnflow.training.run import (
    FACTORIES,
    build_flow,
    build_model,
    model_factory,
    train,
    validate_config,
)

from .helpers import FAST_TRAIN, compose_train, one_thread_only  # noqa: F401  (autouse: one torch thread on the shared CPU)

PRESETS = sorted(p.stem for p in Path(CONFIG_DIR, "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in Path(CONFIG_DIR, "model").glob("*.yaml"))
BUILT = {"finite": KahlerPotential, "linearized": LinearizedPotential, "frozen": FrozenKernelFlow}
# model configs with their own factory (_target_) and what it builds
OWN_FACTORY = {"model=bergman": BergmanPotential}
# the keys only a frozen flow reads (frozen_ntk.yaml adds them to the mlp.yaml architecture)
FLOW_KEYS = {"kind", "kernel", "dense", "dense_limit", "block_size", "kernel_kind", "low_rank"}


def surface_of(cfg):
    return manifold_from_config(OmegaConf.to_container(cfg.manifold, resolve=True))


def sample_any(surface, n: int):
    """Points on a hypersurface or a complete intersection."""
    if isinstance(surface, CompleteIntersection):
        return sample_cicy(surface, n, seed=0)
    return sample_points(surface, n, seed=0)


def ambient_fs(surface, z, t: float):
    return cicy_fs_metric(surface, z, t) if isinstance(surface, CompleteIntersection) else fs_metric(z, t)


@pytest.mark.parametrize(
    "overrides",
    [[f"experiment={p}"] for p in PRESETS]
    + [[f"model={m}"] for m in MODELS]
    + [["experiment=width_sweep", f"model.kind={kind}"] for kind in ("linearized", "frozen")],
    ids=lambda o: " ".join(o),
)
def test_every_preset_and_model_config_builds_its_kind(overrides):
    cfg = compose_train(*overrides)
    validate_config(cfg)
    surface = surface_of(cfg)
    points = sample_any(surface, 6)
    if cfg.model.get("low_rank") is not None:  # landmarks are training points: at most the 6 here
        cfg.model.low_rank = 4
    if cfg.model.kind == "frozen":
        model = build_flow(cfg, surface, points, class_kappa(points, float(cfg.kahler_t)))
    else:
        model = build_model(cfg, surface, torch.float64)
    assert type(model) is OWN_FACTORY.get(" ".join(overrides), BUILT[cfg.model.kind])
    g = model.metric(points.z, points.jac)
    assert g.shape == (6, surface.dim, surface.dim)
    if isinstance(model, BergmanPotential):  # starts at the balanced metric (tests/test_donaldson.py)
        return
    if cfg.model.get("init", "centered") == "centered":  # every kind starts at the Fubini–Study metric
        g_fs = pullback(points.jac, ambient_fs(surface, points.z, float(cfg.kahler_t)))
        torch.testing.assert_close(g.detach(), g_fs, rtol=1e-10, atol=1e-10)


def test_every_model_config_names_a_known_kind():
    kinds = {m: compose_train(f"model={m}").model.kind for m in MODELS}
    assert kinds["mlp"] == "finite" and kinds["linearized"] == "linearized" and kinds["frozen_ntk"] == "frozen"
    assert set(kinds.values()) <= set(FACTORIES)


def test_bad_kind_is_a_value_error_naming_the_key():
    with pytest.raises(ValueError, match="model.kind='infinite'"):
        validate_config(compose_train("model.kind=infinite"))


def test_custom_target_replaces_the_kinds_factory():
    cfg = compose_train("+model._target_=tests.helpers.PoisonedPotential", "+model.healthy_calls=3")
    kind, factory, options = model_factory(cfg.model)
    assert kind == "finite" and factory.__name__ == "PoisonedPotential"
    assert "kind" not in options and "_target_" not in options and options["healthy_calls"] == 3


@pytest.mark.parametrize("derived", ["linearized", "frozen_ntk"])
def test_derived_model_configs_carry_the_base_architecture(derived):
    base = OmegaConf.to_container(compose_train("model=mlp").model)
    model = OmegaConf.to_container(compose_train(f"model={derived}").model)
    assert {k: v for k, v in model.items() if k not in FLOW_KEYS} == {k: v for k, v in base.items() if k != "kind"}
    assert model["feature_symmetry"] == "none"  # frozen_ntk now takes it like the finite model


@pytest.mark.parametrize("derived", ["linearized", "frozen_ntk"])
def test_derived_model_configs_inherit_rather_than_copy(derived, tmp_path):
    """Change mlp.yaml's width and activation in a copy of conf/: the derived configs follow."""
    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf)
    mlp = conf / "model" / "mlp.yaml"
    text = mlp.read_text()
    assert "\nwidth: 256\n" in text and "\nactivation: gelu " in text
    mlp.write_text(
        text.replace("\nwidth: 256\n", "\nwidth: 77\n").replace("\nactivation: gelu ", "\nactivation: tanh ")
    )
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        model = compose("train", overrides=[f"model={derived}"]).model
    assert model.width == 77 and model.activation == "tanh" and model.kind != "finite"


def test_experiment_values_win_over_the_primary_config():
    """_self_ sits before the overlays: a preset's top-level keys override conf/train.yaml's."""
    cfg = compose_train("experiment=cubic_mlp")
    assert cfg.seed == 1 and cfg.tags == ["cubic", "mlp"] and cfg.data.n_train == 20000
    assert compose_train().seed == 0
    sweep = compose_train("experiment=width_sweep")
    assert sweep.data.seed == 0 and sweep.data.batch_size == sweep.data.n_train == 256


def _check_provenance(block: dict, device: str) -> None:
    assert block["versions"]["torch"] == torch.__version__
    assert block["device"] == device and block["threads"] >= 1
    assert isinstance(block["commit"], str) and block["commit"]


def test_train_summary_has_provenance(tmp_path):
    cfg = compose_train("experiment=cubic_mlp", *FAST_TRAIN, "logger=csv", "trainer.max_epochs=1", tmp_path=tmp_path)
    summary, _ = train(cfg, tmp_path / "run")
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["device"] == "cpu" and written["arm"] == "finite"  # today's keys stay
    _check_provenance(written["provenance"], "cpu")
    assert written == json.loads(json.dumps(summary))


def test_skipped_sweep_run_summary_has_provenance(tmp_path):
    cfg = compose_train("experiment=width_sweep", "model.kind=frozen", "model.width=256", tmp_path=tmp_path)
    summary, _ = train(cfg, tmp_path / "run")
    assert summary["status"] == "skipped" and summary["arm"] == "frozen"
    _check_provenance(json.loads((tmp_path / "run" / "summary.json").read_text())["provenance"], "cpu")
