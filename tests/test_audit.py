"""Audit of meaningless input (issue 20): for every app, a table of bad values — wrong types,
out-of-range sizes, singular or non-Calabi–Yau manifolds, missing or corrupt files, sizes beyond
memory, an empty or foreign sweep directory — each stopping with its error type and a message that
names the offending key or file. Each app's long work (training, kernels, the balanced iteration,
the flows, the report's statistics) is replaced by a failure, so a row that got past its checks
fails the test instead of running.
"""

import json

import lightning
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nnflow.cli import CONFIG_DIR
from nnflow.feasibility import ENV_LIMIT, InfeasibleError
from nnflow.geometry.singularity import SingularManifoldError

from .helpers import compose_train, one_thread_only  # noqa: F401 (autouse fixture)

NON_CY = ["manifold=custom", "manifold.exponents=[[4,0,0],[0,4,0],[0,0,4]]", "manifold.coefficients=[1,1,1]"]
# the Fermat quintic with z_4^5 dropped: singular at the coordinate point [0:0:0:0:1]
FOUR_MONOMIALS = [
    "manifold=custom",
    "manifold.exponents=[[5,0,0,0,0],[0,5,0,0,0],[0,0,5,0,0],[0,0,0,5,0]]",
    "manifold.coefficients=[1,1,1,1]",
]
CONIFOLD = ["manifold=dwork_quintic", "manifold.psi=1.0"]
SINGULAR = (SingularManifoldError, r"dwork_quintic.* is singular .*∇p = 0 at \[")


def _never(what):
    def fail(*args, **kwargs):
        pytest.fail(f"a bad input reached {what}")

    return fail


def _compose(name, overrides, config_dir=CONFIG_DIR):
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


@pytest.fixture(autouse=True)
def no_memory_limit(monkeypatch):
    monkeypatch.delenv(ENV_LIMIT, raising=False)


def _common_rows(sizes_key: str):
    """Rows every app that samples a manifold shares."""
    return [
        pytest.param([*CONIFOLD], *SINGULAR, id="conifold"),
        pytest.param([*NON_CY], ValueError, r"manifold\.exponents.*not Calabi–Yau", id="wrong-degree"),
        pytest.param(
            ["manifold=custom", "manifold.exponents=[[3,0,0],[0,3,0],[0,0,3]]"],
            ValueError,
            r"manifold\.coefficients is missing",
            id="custom-missing-coefficients",
        ),
        pytest.param(["manifold=dwork_quintic", "manifold.psi=abc"], ValueError, r"manifold\.psi='abc'", id="psi-type"),
        pytest.param(["+manifold.bogus=1"], TypeError, r"manifold\.bogus", id="unknown-manifold-key"),
        pytest.param([f"{sizes_key}=1000000000000"], InfeasibleError, rf"GiB.*{sizes_key}", id="beyond-memory"),
        pytest.param(["max_memory_gb=abc"], ValueError, r"max_memory_gb='abc'", id="memory-limit-type"),
    ]


# ---------------------------------------------------------------------- nnflow-measure
MEASURE_ROWS = [
    pytest.param(["n_points=0"], ValueError, r"n_points=0", id="zero-points"),
    pytest.param(["n_points=-5"], ValueError, r"n_points=-5", id="negative-points"),
    pytest.param(["n_points=1.5"], ValueError, r"n_points=1\.5", id="fractional-points"),
    pytest.param(["n_points=abc"], ValueError, r"n_points='abc'", id="points-type"),
    pytest.param(["seed=abc"], ValueError, r"seed='abc'", id="seed-type"),
    pytest.param(["kahler_t=-1"], ValueError, r"kahler_t=-1", id="negative-class"),
    pytest.param(["curvature_points=-3"], ValueError, r"curvature_points=-3", id="negative-curvature-points"),
    pytest.param(["device=gpu"], ValueError, r"device='gpu'", id="device-name"),
    pytest.param(["save_points=maybe"], ValueError, r"save_points='maybe'", id="flag-type"),
    pytest.param(
        [*FOUR_MONOMIALS],
        SingularManifoldError,
        r"'custom' is singular.*∇p = 0 at \[0 : 0 : 0 : 0 : 1\]",
        id="four-monomial-quintic",
    ),
    *_common_rows("n_points"),
]


@pytest.mark.parametrize("overrides,error,message", MEASURE_ROWS)
def test_measure_rejects(overrides, error, message, monkeypatch):
    import nnflow.geometry.measures
    from nnflow.cli.measure import measure

    monkeypatch.setattr(nnflow.geometry.measures, "measure_fubini_study", _never("the measures"))
    with pytest.raises(error, match=message):
        measure(_compose("measure", ["n_points=200", "curvature_points=50", *overrides]))


# ---------------------------------------------------------------------- nnflow-train
TRAIN_BASE = [
    "manifold=fermat_cubic",
    "data.n_train=64",
    "data.n_val=32",
    "data.n_test=32",
    "data.batch_size=32",
    "logger=csv",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
]
FROZEN = ["model=frozen_ntk"]
TRAIN_ROWS = [
    pytest.param(["data.n_train=0"], ValueError, r"data\.n_train=0", id="zero-train-points"),
    pytest.param(["data.n_val=-3"], ValueError, r"data\.n_val=-3", id="negative-val-points"),
    pytest.param(["data.n_test=abc"], ValueError, r"data\.n_test='abc'", id="test-points-type"),
    pytest.param(["data.batch_size=0"], ValueError, r"data\.batch_size=0", id="zero-batch"),
    pytest.param(["data.seed=1.5"], ValueError, r"data\.seed=1\.5", id="data-seed-type"),
    pytest.param(["seed=abc"], ValueError, r"seed='abc'", id="seed-type"),
    pytest.param(["model.width=0"], ValueError, r"model\.width=0", id="zero-width"),
    pytest.param(["model.width=abc"], ValueError, r"model\.width='abc'", id="width-type"),
    pytest.param(["model.depth=0"], ValueError, r"model\.depth=0", id="zero-depth"),
    pytest.param(["model.activation=foo"], ValueError, r"model config: unknown activation 'foo'", id="activation"),
    pytest.param(["model.kind=banana"], ValueError, r"model\.kind='banana'", id="model-kind"),
    pytest.param(["optim.optimizer.lr=-1"], ValueError, r"optim\.optimizer\.lr=-1", id="negative-lr"),
    pytest.param(["kahler_t=0"], ValueError, r"kahler_t=0", id="zero-class"),
    pytest.param(["dtype=float16"], ValueError, r"dtype='float16'", id="dtype"),
    pytest.param(["loss.kind=foo"], ValueError, r"unknown loss 'foo'", id="loss"),
    pytest.param(["route=foo"], ValueError, r"route='foo'", id="route"),
    pytest.param(["trainer.max_epochs=0"], ValueError, r"trainer\.max_epochs=0", id="zero-epochs"),
    pytest.param(["test_batch_size=0"], ValueError, r"test_batch_size=0", id="zero-test-batch"),
    pytest.param(["resume=maybe"], ValueError, r"resume='maybe'", id="resume"),
    pytest.param(["stop_on_nonpositive=maybe"], ValueError, r"stop_on_nonpositive='maybe'", id="flag-type"),
    pytest.param(["curvature.points=0"], ValueError, r"curvature\.points=0", id="zero-curvature-points"),
    pytest.param(["curvature.route=fast"], ValueError, r"curvature\.route='fast'", id="curvature-route"),
    pytest.param([*FROZEN, "curvature.points=10"], ValueError, r"curvature\.points: a frozen flow",
                 id="frozen-curvature"),
    pytest.param(
        ["manifold=random_quintic", "model.feature_degree=5", "model.feature_symmetry=phases"],
        ValueError,
        r"15876 features .* above model\.max_features=4096.*feature_degree",
        id="generic-quintic-feature-count",
    ),
    pytest.param([*FROZEN, "model.block_size=0"], ValueError, r"model\.block_size=0", id="frozen-zero-block"),
    pytest.param([*FROZEN, "model.dense=maybe"], ValueError, r"model\.dense='maybe'", id="frozen-dense"),
    pytest.param([*FROZEN, "model.kernel=foo"], ValueError, r"model\.kernel='foo'", id="frozen-kernel"),
    pytest.param([*FROZEN, "+model.cache_mb=-1"], ValueError, r"model\.cache_mb=-1", id="frozen-cache"),
    pytest.param([*FROZEN, "flow.dt=-1"], ValueError, r"flow\.dt=-1", id="frozen-negative-dt"),
    pytest.param([*FROZEN, "flow.integrator=foo"], ValueError, r"flow\.integrator='foo'", id="frozen-integrator"),
    pytest.param(
        [*FROZEN, "model.dense=true", "data.n_train=3000000"],
        InfeasibleError,
        r"dense Θ\(train, train\), 3000000·1 rows of 3000000·1.*model\.dense=false",
        id="frozen-dense-beyond-memory",
    ),
    pytest.param(
        ["model=bergman", "model.h_file={tmp}/missing.pt"], FileNotFoundError, r"missing\.pt", id="missing-h-file"
    ),
    pytest.param(
        ["model=bergman", "model.h_file={tmp}/garbage.pt"],
        ValueError,
        r"garbage\.pt is not a readable balanced metric",
        id="corrupt-h-file",
    ),
    pytest.param(
        ["RUN=damaged"],
        ValueError,
        r"damaged/checkpoints/last\.ckpt cannot be read .*resume=never",
        id="corrupt-checkpoint",
    ),
    *_common_rows("data.n_train"),
]


@pytest.mark.parametrize("overrides,error,message", TRAIN_ROWS)
def test_train_rejects(overrides, error, message, tmp_path, monkeypatch):
    from nnflow.training.run import train

    monkeypatch.setattr(lightning.Trainer, "fit", _never("training"))
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    damaged = tmp_path / "damaged" / "checkpoints" / "last.ckpt"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"PK\x03\x04 truncated")
    run = "run"
    if overrides and overrides[0].startswith("RUN="):
        run, overrides = overrides[0][4:], overrides[1:]
    overrides = [o.replace("{tmp}", str(tmp_path)) for o in overrides]
    with pytest.raises(error, match=message):
        train(compose_train(*TRAIN_BASE, *overrides, tmp_path=tmp_path), tmp_path / run)


# ---------------------------------------------------------------------- nnflow-kernel
KERNEL_ROWS = [
    pytest.param(["n_points=0"], ValueError, r"n_points=0", id="zero-points"),
    pytest.param(["seeds=abc"], ValueError, r"seeds='abc'", id="seeds-type"),
    pytest.param(["seed=1.5"], ValueError, r"seed=1\.5", id="seed-type"),
    pytest.param(["model.width=0"], ValueError, r"model\.width=0", id="zero-width"),
    pytest.param(["model.depth=0"], ValueError, r"model\.depth=0", id="zero-depth"),
    pytest.param(["model.activation=foo"], ValueError, r"activation 'foo'", id="activation"),
    pytest.param(["model.sigma_w=-1"], ValueError, r"sigma_w", id="negative-sigma-w"),
    pytest.param(["model.kind=frozen"], ValueError, r"model\.kind='frozen'", id="frozen-has-no-network"),
    pytest.param(["kernel=foo"], ValueError, r"kernel='foo'", id="kernel-kind"),
    pytest.param(["implementation=foo"], ValueError, r"implementation='foo'", id="implementation"),
    pytest.param(["chunk_size=0"], ValueError, r"chunk_size=0", id="zero-chunk"),
    pytest.param(["top_eigenvalues=0"], ValueError, r"top_eigenvalues=0", id="zero-eigenvalues"),
    pytest.param(["device=gpu"], ValueError, r"device='gpu'", id="device-name"),
    *_common_rows("n_points"),
]


@pytest.mark.parametrize("overrides,error,message", KERNEL_ROWS)
def test_kernel_rejects(overrides, error, message, monkeypatch):
    import nnflow.kernels.convergence
    from nnflow.cli.kernel import compare

    monkeypatch.setattr(nnflow.kernels.convergence, "empirical_kernel", _never("the empirical kernels"))
    with pytest.raises(error, match=message):
        compare(_compose("kernel", ["n_points=4", "seeds=1", "model.width=8", *overrides]))


# ---------------------------------------------------------------------- nnflow-donaldson
DONALDSON_ROWS = [
    pytest.param(["k=0"], ValueError, r"k=0", id="zero-degree"),
    pytest.param(["k=abc"], ValueError, r"k='abc'", id="degree-type"),
    pytest.param(["n_points=-1"], ValueError, r"n_points=-1", id="negative-points"),
    pytest.param(["n_test=0"], ValueError, r"n_test=0", id="zero-test-points"),
    pytest.param(["n_points=5"], ValueError, r"n_points=5 is too small for k=2", id="too-few-points-for-k"),
    pytest.param(["tolerance=0"], ValueError, r"tolerance=0", id="zero-tolerance"),
    pytest.param(["max_iterations=0"], ValueError, r"max_iterations=0", id="zero-iterations"),
    pytest.param(["symmetry=foo"], ValueError, r"symmetry='foo'", id="symmetry"),
    pytest.param(["seed=-1"], ValueError, r"seed=-1", id="negative-seed"),
    pytest.param(["save_h=maybe"], ValueError, r"save_h='maybe'", id="flag-type"),
    pytest.param(["device=gpu"], ValueError, r"device='gpu'", id="device-name"),
    *_common_rows("n_test"),
]


@pytest.mark.parametrize("overrides,error,message", DONALDSON_ROWS)
def test_donaldson_rejects(overrides, error, message, monkeypatch):
    import nnflow.algebraic
    from nnflow.cli.donaldson import donaldson

    monkeypatch.setattr(nnflow.algebraic, "balanced_metric", _never("the balanced iteration"))
    base = ["manifold=fermat_cubic", "k=2", "n_points=300", "n_test=100"]
    with pytest.raises(error, match=message):
        donaldson(_compose("donaldson", [*base, *overrides]))


# ---------------------------------------------------------------------- nnflow-ricci
RICCI_ROWS = [
    pytest.param(["n=1"], r"n=1", id="dimension-one"),
    pytest.param(["grid=4"], r"grid=4", id="grid-too-small"),
    pytest.param(["grid=abc"], r"grid='abc'", id="grid-type"),
    pytest.param(["t_end=0"], r"t_end=0", id="zero-time"),
    pytest.param(["n_frames=1"], r"n_frames=1", id="one-frame"),
    pytest.param(["field=foo"], r"field='foo'", id="field"),
    pytest.param(["kernel.kinds=[foo]"], r"kernel\.kinds=\['foo'\]", id="kernel-kind"),
    pytest.param(["kernel.sigmas=[-1]"], r"kernel\.sigmas=\[-1\]", id="negative-sigma"),
    pytest.param(["network.widths=[0]"], r"network\.widths=\[0\]", id="zero-width"),
    pytest.param(["network.widths=[1.5]"], r"network\.widths=\[1\.5\]", id="width-type"),
    pytest.param(["network.kind=foo"], r"network\.kind='foo'", id="network-kind"),
    pytest.param(["initial.amplitude=2"], r"initial\.amplitude=2", id="metric-not-positive"),
    pytest.param(["modes.ks=[[0,0]]"], r"modes\.ks contains \[0, 0\]", id="zero-mode"),
    pytest.param(["solver.rtol=0"], r"solver\.rtol=0", id="zero-tolerance"),
    pytest.param(["threads=0"], r"threads=0", id="zero-threads"),
    pytest.param(["seed=abc"], r"seed='abc'", id="seed-type"),
    pytest.param(["plots=maybe"], r"plots='maybe'", id="flag-type"),
]


@pytest.mark.parametrize("overrides,message", RICCI_ROWS)
def test_ricci_rejects(overrides, message, monkeypatch):
    import nnflow.torus.study as study

    monkeypatch.setattr(study, "reference_flow", _never("the reference flow"))
    cfg = _compose("config", overrides, config_dir=f"{CONFIG_DIR}/ricci")
    with pytest.raises(ValueError, match=message):
        study.run_study(OmegaConf.to_container(cfg, resolve=True))


# ---------------------------------------------------------------------- nnflow-report
def _sweep(tmp_path, kind):
    """A directory that is not a readable width sweep, of the given kind."""
    root = tmp_path / kind
    if kind == "file":
        root.write_text("not a directory")
    elif kind == "empty":
        root.mkdir()
    elif kind == "measure-runs":  # nnflow-measure's outputs: no summary.json at all
        (root / "0").mkdir(parents=True)
        (root / "0" / "measure.json").write_text(json.dumps({"sigma": 0.37}))
    elif kind == "ricci-run":  # nnflow-ricci writes a summary.json too, of another app
        (root / "0").mkdir(parents=True)
        (root / "0" / "summary.json").write_text(json.dumps({"primary_error": "rel_error", "runs": []}))
    elif kind == "corrupt-summary":
        (root / "3").mkdir(parents=True)
        (root / "3" / "summary.json").write_text('{"sigma_test": 0.1, "wid')
    return root


REPORT_ROWS = [
    pytest.param("missing", FileNotFoundError, r"sweep directory .*missing does not exist", id="missing-directory"),
    pytest.param("file", FileNotFoundError, r"sweep directory .*file is not a directory", id="a-file"),
    pytest.param("empty", ValueError, r"no run summaries of nnflow-train under .*empty", id="empty-directory"),
    pytest.param("measure-runs", ValueError, r"no run summaries .*measure-runs", id="foreign-measure-runs"),
    pytest.param(
        "ricci-run", ValueError, r"ricci-run .*not nnflow-train runs: 0/summary\.json", id="foreign-ricci-run"
    ),
    pytest.param("corrupt-summary", ValueError, r"3/summary\.json is not readable JSON", id="corrupt-summary"),
]


@pytest.mark.parametrize("kind,error,message", REPORT_ROWS)
def test_report_rejects(kind, error, message, tmp_path, monkeypatch, capsys):
    import nnflow.report.sweep as sweep
    from nnflow.cli.report import main

    monkeypatch.setattr(sweep, "summarize", _never("the report's statistics"))
    directory = _sweep(tmp_path, kind)
    with pytest.raises(error, match=message):
        sweep.write_report(directory, donaldson=False)
    assert main([str(directory), "--no-donaldson"]) == 2  # the console script: exit 2, the message on stderr
    err = capsys.readouterr().err
    assert err.startswith("nnflow-report: ") and str(directory) in err
    assert not (tmp_path / kind / "report.md").exists()


# ---------------------------------------------------------------------- what cannot be rejected
@pytest.mark.parametrize("psi,near", [(0.999, True), (0.5, False)])
def test_measure_json_says_what_a_near_singular_member_means(psi, near):
    import warnings

    from nnflow.cli.measure import measure
    from nnflow.geometry.singularity import NEAR_SINGULAR_PSI, NearSingularWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, _ = measure(
            _compose(
                "measure", ["manifold=dwork_quintic", f"manifold.psi={psi}", "n_points=100", "curvature_points=20"]
            )
        )
    note = result["smoothness"]
    assert note["method"] == "diagonal formula" and note["distance"] == pytest.approx(abs(psi**5 - 1))
    assert note["near_singular"] is near and (note["distance"] < NEAR_SINGULAR_PSI) is near
    assert ("meaning" in note) is near and any(isinstance(w.message, NearSingularWarning) for w in caught) is near
