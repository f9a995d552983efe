import json
import math
from pathlib import Path

import pytest
import torch

from nnflow.tracking import read_offline_run
from nnflow.training.callbacks import read_metrics
from nnflow.training.run import train

from .helpers import FAST_TRAIN, compose_train

PRESETS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_fast_dev_runs(preset, tmp_path):
    # GPU presets run on the CPU trainer where there is no GPU (same config otherwise)
    device = ["trainer=cpu"] if preset.endswith("_gpu") and not torch.cuda.is_available() else []
    cfg = compose_train(f"experiment={preset}", *FAST_TRAIN, "+trainer.fast_dev_run=true", "logger=csv", *device,
                        tmp_path=tmp_path)
    summary, _ = train(cfg, tmp_path / "run")
    assert summary["status"] == "completed"
    assert summary["steps"] == 1
    if preset.endswith("_gpu") and torch.cuda.is_available():  # tested on the card it trained on
        assert summary["device"] == torch.cuda.get_device_name()
    if summary["arm"] == "frozen":  # no network: the state is the flow's coefficient field
        assert summary["n_params"] == 0 and summary["flow_time"] > 0
        assert summary["route"] == "flow"
    else:
        assert summary["n_params"] > 0
        assert summary["route"] in ("packed", "reference", "direct")
    assert math.isfinite(summary["sigma_test"])


def test_short_cubic_run_lowers_sigma_and_writes_run_dir(tmp_path):
    # default logger (Weights & Biases, offline): must work without network
    cfg = compose_train(
        "experiment=cubic_mlp", "data.n_train=4000", "data.n_val=1000", "data.n_test=4000",
        "data.batch_size=500", "trainer.max_epochs=6", "trainer.enable_progress_bar=false", "wandb.group=g17",
        tmp_path=tmp_path,
    )
    run = tmp_path / "run"
    summary, objects = train(cfg, run)
    from nnflow.geometry.measures import fs_det, sigma_measure

    test = objects["datamodule"].split("test")
    sigma_fs = sigma_measure(test, fs_det(test))[0]
    assert summary["sigma_test"] < 0.5 * sigma_fs
    for name in ("config.yaml", "metrics.csv", "summary.json", "sigma.png", "sigma.pdf", "checkpoints/last.ckpt"):
        assert (run / name).exists(), name
    assert json.loads((run / "summary.json").read_text())["sigma_test"] == summary["sigma_test"]
    rows = read_metrics(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(-1, 6))  # -1: the starting metric
    assert float(rows[0]["val_sigma"]) > float(rows[-1]["val_sigma"])
    assert all(float(r["val_positive_fraction"]) == 1.0 for r in rows)
    assert abs(summary["volume"] - 3.0) < 5 * summary["volume_err"] + 1e-3
    logged = read_offline_run(run)  # the offline W&B run: resolved config, group, name, σ curve, summary
    assert logged["config"]["model"]["width"] == cfg.model.width and logged["config"]["data"]["n_train"] == 4000
    assert logged["group"] == "g17" and logged["name"] == f"finite_w{cfg.model.width}_s{cfg.seed}"
    assert [r["val_sigma"] for r in logged["history"] if "val_sigma" in r][-1] == pytest.approx(summary["sigma_val"])
    assert logged["summary"]["sigma_test"] == summary["sigma_test"]


def test_resume_continues_with_nothing_lost(tmp_path):
    run = tmp_path / "run"
    base = ["experiment=cubic_mlp", *FAST_TRAIN, "logger=csv"]
    first, _ = train(compose_train(*base, "trainer.max_epochs=2", tmp_path=tmp_path), run)
    assert first["steps"] == 8
    second, _ = train(compose_train(*base, "trainer.max_epochs=4", tmp_path=tmp_path), run)
    assert second["steps"] == 16  # continued from step 8, not restarted
    rows = read_metrics(run / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [0, 4, 8, 12, 16]
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds)


@pytest.mark.parametrize("every", [1, 3, 50])
def test_nan_stops_with_message_and_keeps_last_good_checkpoint(every, tmp_path):
    # the health of a step is read every `every` steps and before any validation or checkpoint:
    # the report names the step that went bad (the 7th call, step 6) and no NaN state is saved
    run = tmp_path / "run"
    cfg = compose_train(
        "experiment=cubic_mlp", *FAST_TRAIN, "logger=csv", "trainer.max_epochs=5", f"check_every_n_steps={every}",
        "+model._target_=tests.helpers.PoisonedPotential", "+model.healthy_calls=6", tmp_path=tmp_path,
    )
    summary, _ = train(cfg, run)
    assert summary["status"] == "diverged"
    assert "loss is nan at step 6;" in summary["message"] and "last good checkpoint" in summary["message"]
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == 4  # the end of the one healthy epoch
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    assert math.isfinite(summary["sigma_test"])  # evaluated at the last good state
    assert summary["checkpoint"] == "checkpoints/last.ckpt" and summary["checkpoint_step"] == 4  # which is saved


def test_nonpositive_metric_stops_at_its_step(tmp_path):
    run = tmp_path / "run"
    cfg = compose_train(
        "experiment=cubic_mlp", *FAST_TRAIN, "logger=csv", "trainer.max_epochs=5", "check_every_n_steps=3",
        "+model._target_=tests.helpers.PoisonedPotential", "+model.healthy_calls=5", "+model.poison=negate",
        tmp_path=tmp_path,
    )
    summary, _ = train(cfg, run)
    assert summary["status"] == "diverged"
    assert "metric not positive definite at 128 of 128 training points at step 5" in summary["message"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.width=-8", "width"),
        ("model.activation=swish", "unknown activation"),
        ("optim.optimizer.lr=-0.1", "lr"),
        ("dtype=float16", "dtype"),
        ("loss.kind=mse", "unknown loss"),
        ("data.n_train=0", "n_train"),
        ("compile=fast", "compile"),
        ("check_every_n_steps=0", "check_every_n_steps"),
        ("model.feature_symmetry=mirror", "unknown feature_symmetry"),
    ],
)
def test_bad_config_fails_before_training(override, message, tmp_path):
    cfg = compose_train("experiment=cubic_mlp", *FAST_TRAIN, "logger=csv", override, tmp_path=tmp_path)
    with pytest.raises(ValueError, match=message):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("model,changes", [("mlp", True), ("linearized", False)])
def test_kernel_tracking_change_is_zero_only_when_linearized(model, changes, tmp_path):
    run = tmp_path / "run"
    cfg = compose_train(
        "experiment=cubic_mlp", f"model={model}", *FAST_TRAIN, "logger=csv", "trainer.max_epochs=2",
        "model.width=16", "model.depth=2", "kernel_tracking.enabled=true", "kernel_tracking.every_n_steps=4",
        "kernel_tracking.probe_size=8", tmp_path=tmp_path,
    )
    summary, _ = train(cfg, run)
    assert summary["status"] == "completed"
    rows = read_metrics(run / "kernel.csv")
    assert [int(r["step"]) for r in rows] == [0, 4, 8]
    change = float(rows[-1]["rel_change"])
    if changes:
        assert change > 1e-4
    else:
        assert change < 1e-12
    assert float(rows[0]["rel_change"]) == 0.0
    assert 0 < float(rows[0]["align_analytic"]) <= 1
    assert float(rows[0]["eig_1"]) >= float(rows[0]["eig_2"]) > 0


def test_cluster_and_search_configs_compose(tmp_path):
    from hydra import compose, initialize_config_dir

    from nnflow.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm", "experiment=width_sweep"], return_hydra_config=True)
        assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
        assert cfg.hydra.launcher.gpus_per_node == 1
        assert cfg.hydra.sweeper.params["model.kind"] == "finite,linearized,frozen"
        cfg = compose("train", overrides=["hparams_search=lr_optuna", "experiment=cubic_mlp"], return_hydra_config=True)
        assert "optuna" in cfg.hydra.sweeper._target_.lower()
        assert "optim.optimizer.lr" in cfg.hydra.sweeper.params


def test_cosine_schedule_decays_over_the_wall_clock_budget():
    from nnflow.training.modules import cosine_schedule

    clock = {"t": 0.0}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = cosine_schedule(opt, total_steps=10**9, warmup_steps=2, min_ratio=0.01, budget_s=100.0,
                            elapsed_s=lambda: clock["t"])
    lrs = []
    for t in (0.0, 0.0, 25.0, 50.0, 100.0, 400.0):  # steps 1..6 at these elapsed times
        clock["t"] = t
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    # after warm-up the step count is negligible against 10^9: progress is the time fraction
    times = (0.0, 25.0, 50.0, 100.0, 400.0)
    expected = [0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t / 100.0))) for t in times]
    assert lrs[1:] == pytest.approx(expected, rel=1e-6)
    # without a budget, the same steps keep the rate near 1
    plain = cosine_schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), total_steps=10**9)
    assert plain.get_last_lr()[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="budget_s"):
        cosine_schedule(opt, total_steps=10, budget_s=10.0)
    with pytest.raises(ValueError, match="positive"):
        cosine_schedule(opt, total_steps=10, budget_s=0.0, elapsed_s=lambda: 0.0)


def test_max_time_run_stops_on_time_with_the_rate_decayed(tmp_path):
    # trainer.max_time with (practically) unlimited epochs: the cosine decay follows the clock
    cfg = compose_train(
        "experiment=cubic_mlp",
        *FAST_TRAIN,
        "logger=csv",
        "trainer.max_epochs=100000",
        "trainer.max_time=00:00:00:03",
        "optim.scheduler.warmup_steps=0",
        "trainer.check_val_every_n_epoch=100000",
        tmp_path=tmp_path,
    )
    summary, objects = train(cfg, tmp_path / "run")
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    # stopped between validations: the final state is validated, so the record ends where training did
    assert [int(r["step"]) for r in rows] == [0, summary["steps"]]
    assert math.isfinite(summary["sigma_val"]) and summary["sigma_val"] == pytest.approx(float(rows[-1]["val_sigma"]))
    assert summary["status"] == "completed"
    assert 0 < summary["epochs"] < 100000 and summary["steps"] > 4  # stopped by the clock, after some steps
    lr0 = cfg.optim.optimizer.lr
    lr_end = objects["trainer"].optimizers[0].param_groups[0]["lr"]
    assert lr_end < 0.05 * lr0  # min_ratio 0.01 at the budget; step-based progress would still be ≈ 0
    assert math.isfinite(summary["sigma_test"])


@pytest.mark.parametrize("init", ["centered", "random"])
def test_reference_metric_route_equals_the_metric(init):
    from nnflow.geometry import fermat_quintic, sample_points
    from nnflow.models import build_potential

    pts = sample_points(fermat_quintic(), 64, seed=2)
    model = build_potential("mlp", n_coords=5, width=32, depth=2, init=init, seed=0)
    with torch.no_grad():  # move off θ0, so that the centering term is not the network itself
        for p in model.network.parameters():
            p.add_(0.3 * torch.randn_like(p))
    direct = model.metric(pts.z, pts.jac)
    via = model.metric_from_reference(model.reference_metric(pts.z, pts.jac), pts.z, pts.jac)
    assert torch.allclose(via, direct, rtol=0, atol=1e-13)
    grads = [torch.autograd.grad(hermitian_loss(g), list(model.parameters())) for g in (direct, via)]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def hermitian_loss(g):
    return (torch.linalg.det(g).real - 1).pow(2).mean()


def test_training_routes_end_where_the_direct_metric_ends(tmp_path):
    # three routes of one run: packed (the MLP's default: cached feature jets and reference, real
    # arithmetic), the cached complex reference, and the direct metric at every step (asked for,
    # and the route a wrapper that offers no cached route falls back to)
    base = ["experiment=cubic_mlp", *FAST_TRAIN, "logger=csv", "trainer.max_epochs=2"]
    packed, objects = train(compose_train(*base, tmp_path=tmp_path), tmp_path / "packed")
    module = objects["module"]
    assert module.route == packed["route"] == "packed"
    assert module._reference is None and module._packed[0].shape == (512, 1)
    assert module._packed[1].shape == (512, 1 + 2 + 1, module.model.features.dim)
    cached, objects = train(compose_train(*base, "route=reference", tmp_path=tmp_path), tmp_path / "cached")
    assert objects["module"].route == cached["route"] == "reference"
    assert objects["module"]._packed is None and objects["module"]._reference.shape == (512, 1, 1)
    direct, objects = train(compose_train(*base, "route=direct", tmp_path=tmp_path), tmp_path / "direct")
    assert objects["module"].route == "direct"
    assert objects["module"]._packed is None and objects["module"]._reference is None
    plain, objects = train(
        compose_train(
            *base, "+model._target_=tests.helpers.PoisonedPotential", "+model.healthy_calls=1000000", tmp_path=tmp_path
        ),
        tmp_path / "plain",
    )
    assert objects["module"].route == plain["route"] == "direct"  # auto: the wrapper offers only metric()
    assert packed["steps"] == cached["steps"] == direct["steps"] == plain["steps"] == 8
    for run in (packed, cached, direct):
        assert run["sigma_test"] == pytest.approx(plain["sigma_test"], rel=1e-9)
        assert run["sigma_val"] == pytest.approx(plain["sigma_val"], rel=1e-9)


def test_auto_route_takes_the_reference_when_the_packed_cache_is_too_large(tmp_path):
    # the "auto" rule's size threshold (the module's packed_cache_limit option): the cubic MLP's
    # feature-jet cache is a few hundred kB, so a limit below it must skip "packed"
    from nnflow.training import modules

    cfg = compose_train(
        "experiment=cubic_mlp", *FAST_TRAIN, "logger=csv", "+trainer.fast_dev_run=true", tmp_path=tmp_path
    )
    _, objects = train(cfg, tmp_path / "run")
    module = objects["module"]
    size = module.packed_cache_bytes()
    assert 0 < size <= modules.PACKED_CACHE_BYTES
    assert module.resolve_route()[0] == "packed"
    module.packed_cache_limit = size - 1
    route, why = module.resolve_route()
    assert route == "reference" and "exceeds" in why


@pytest.mark.parametrize(
    "network, options, match",
    [
        ("cosnet", dict(route="packed"), "route='packed' is not offered by KahlerPotential with CosNet"),
        ("mlp", dict(route="bogus"), "route='bogus'"),
        ("mlp", dict(route="reference", compile="default"), "route='packed' only; got route='reference'"),
        ("mlp", dict(route="direct", compile="default"), "route='packed' only; got route='direct'"),
    ],
)
def test_routes_a_model_cannot_take_are_refused_at_construction(network, options, match):
    from functools import partial

    from nnflow.models import build_potential
    from nnflow.training.modules import MetricModule

    model = build_potential(network, n_coords=3, width=4, seed=0)
    with pytest.raises(ValueError, match=match):
        MetricModule(model, optimizer=partial(torch.optim.Adam, lr=1e-3), **options)


def test_route_config_is_validated(tmp_path):
    cfg = compose_train("experiment=cubic_mlp", *FAST_TRAIN, "logger=csv", "route=packd", tmp_path=tmp_path)
    with pytest.raises(ValueError, match="route='packd'"):
        train(cfg, tmp_path / "run")


@pytest.mark.parametrize("init", ["centered", "random"])
def test_packed_metric_equals_the_metric(init):
    from nnflow.geometry import fermat_quintic, sample_points
    from nnflow.geometry.hermitian import real_hermitian_det, real_to_hermitian
    from nnflow.geometry.linalg import hermitian_det
    from nnflow.models import build_potential

    pts = sample_points(fermat_quintic(), 64, seed=2)
    model = build_potential("mlp", n_coords=5, width=32, depth=2, init=init, seed=0)
    with torch.no_grad():
        for p in model.network.parameters():
            p.add_(0.3 * torch.randn_like(p))
    direct = model.metric(pts.z, pts.jac)
    packed = model.packed_metric(*model.packed_inputs(pts.z, pts.jac))
    assert torch.allclose(real_to_hermitian(packed), direct, rtol=0, atol=1e-13)
    dets = (hermitian_det(direct), real_hermitian_det(packed))
    grads = [torch.autograd.grad((d - 1).pow(2).mean(), list(model.parameters())) for d in dets]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_compiled_training_matches_eager(tmp_path):
    # torch.compile of the packed route (CUDA graphs too where a GPU is present) must train the
    # same network: same steps, σ to round-off of the fused kernels
    device = ["trainer=gpu", "compile=reduce-overhead"] if torch.cuda.is_available() else ["compile=default"]
    base = ["experiment=cubic_mlp", *FAST_TRAIN, "logger=csv", "trainer.max_epochs=2", "data.drop_last=true"]
    eager, _ = train(compose_train(*base, *device[:1], tmp_path=tmp_path), tmp_path / "eager")
    compiled, objects = train(compose_train(*base, *device, tmp_path=tmp_path), tmp_path / "compiled")
    assert objects["module"].compile_mode == device[-1].split("=")[1]
    assert set(next(iter(objects["datamodule"].train_dataloader()))) == {"index"}  # all else cached on the device
    assert compiled["steps"] == eager["steps"] == 8
    assert compiled["sigma_test"] == pytest.approx(eager["sigma_test"], rel=1e-7)
    assert compiled["sigma_val"] == pytest.approx(eager["sigma_val"], rel=1e-7)


def test_compile_needs_a_packed_network(tmp_path):
    cfg = compose_train("experiment=quintic_cosnet", *FAST_TRAIN, "logger=csv", "compile=default", tmp_path=tmp_path)
    with pytest.raises(ValueError, match="packed jets"):
        train(cfg, tmp_path / "run")
