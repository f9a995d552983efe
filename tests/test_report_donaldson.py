"""The Donaldson rows of nnflow-report: the chosen degree, identity with nnflow.algebraic, notes, CLI."""

import json
import math

import pytest
import yaml

from nnflow.algebraic import balanced_metric, section_basis
from nnflow.cli.report import main as report_main
from nnflow.geometry import sample_points
from nnflow.geometry.hypersurface import hypersurface_from_config
from nnflow.report import degree_for_parameters, donaldson_rows, write_report
from nnflow.report.donaldson import (
    DONALDSON_MAX_ITERATIONS,
    DONALDSON_POINTS_PER_PARAMETER,
    DONALDSON_TOLERANCE,
)
from nnflow.training.data import SPLIT_SEED_OFFSET

CUBIC = {"name": "fermat_cubic"}


def _config(manifold=CUBIC, seed=3, n_train=300, n_test=500):
    cfg = {"data": {"seed": seed, "n_train": n_train, "n_test": n_test}, "kahler_t": 1.0,
           "optim": {"optimizer": {"lr": 0.5}}}
    if manifold is not None:
        cfg["manifold"] = dict(manifold)
    return cfg


def _fake_sweep(root, n_params_by_width, cfg):
    """Run directories as nnflow-train writes them (config.yaml, summary.json), no training."""
    for width, n_params in n_params_by_width.items():
        run = root / f"finite_w{width}_s0"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        summary = {"status": "completed", "arm": "finite", "width": width, "seed": 0,
                   "sigma_test": 0.1 / width, "sigma_test_err": 0.001}
        if n_params is not None:
            summary["n_params"] = n_params
        (run / "summary.json").write_text(json.dumps(summary))
    frozen = root / "frozen_w4_s0"
    frozen.mkdir()
    (frozen / "config.yaml").write_text(yaml.safe_dump(cfg))
    (frozen / "summary.json").write_text(json.dumps({"status": "completed", "arm": "frozen", "width": 4, "seed": 0,
                                                     "sigma_test": 0.05, "sigma_test_err": 0.001, "n_params": 0}))
    return root


@pytest.mark.parametrize("manifold", [CUBIC, {"name": "fermat_quartic"}])
def test_degree_is_the_closest_parameter_count_by_brute_force(manifold):
    surface = hypersurface_from_config(manifold)
    max_k = 6
    counts = {k: section_basis(surface, k, "phases").n_parameters for k in range(1, max_k + 3)}
    for target in sorted({1, 2, 7, 50} | {c + d for c in counts.values() for d in (-1, 0, 1)} - {0}):
        got = degree_for_parameters(surface, target, max_k=max_k, max_params=10**9)
        allowed = [k for k in counts if k <= max_k]
        best = min(allowed, key=lambda k: (abs(counts[k] - target), k))
        unconstrained = min(counts, key=lambda k: (abs(counts[k] - target), k))
        assert got["k"] == best, target
        assert got["basis"].n_parameters == counts[best]
        assert got["capped"] == (unconstrained > max_k), target
    # the parameter cap: the largest k with at most max_params parameters
    cap = counts[3]
    got = degree_for_parameters(surface, 10**6, max_k=max_k, max_params=cap)
    assert got["k"] == 3 and got["capped"]


def test_report_rows_equal_the_library_on_the_same_points(tmp_path):
    cfg = _config()
    sweep = _fake_sweep(tmp_path / "sweep", {4: 5, 16: 20, 64: 100}, cfg)
    path = write_report(sweep, donaldson_max_k=8)
    rows = json.loads((sweep / "report.json").read_text())["donaldson"]
    assert [r["width"] for r in rows] == [4, 16, 64]
    surface = hypersurface_from_config(CUBIC)
    test = sample_points(surface, 500, seed=3 + SPLIT_SEED_OFFSET["test"])
    text = path.read_text()
    for row, k, capped in zip(rows, (2, 4, 8), (False, False, True)):  # 6, 18, 66 parameters; 100 wants k = 10
        basis = section_basis(surface, k, "phases")
        n_points = max(300, DONALDSON_POINTS_PER_PARAMETER * basis.n_parameters)
        train = sample_points(surface, n_points, seed=3 + SPLIT_SEED_OFFSET["train"])
        metric = balanced_metric(basis, train, tolerance=DONALDSON_TOLERANCE, max_iterations=DONALDSON_MAX_ITERATIONS)
        direct = metric.measure(test)
        assert (row["k"], row["params"], row["capped"], row["n_points"]) == (k, basis.n_parameters, capped, n_points)
        assert abs(row["sigma_test"] - direct["sigma"]) < 1e-12 * direct["sigma"]
        assert abs(row["sigma_err"] - direct["sigma_err"]) < 1e-12 * direct["sigma_err"]
        k_cell = f"{k} (k ≤ {k} reached)" if capped else str(k)
        points = f"{n_points}*" if n_points > 300 else str(n_points)
        line = (f"| {row['width']} | {row['n_params']} | {0.1 / row['width']:.4g} | {k_cell} | {len(basis)} "
                f"| {basis.n_parameters} | {direct['sigma']:.4g} | {direct['sigma_err']:.2g} | {points} |")
        assert line in text, line
    assert "\"k ≤ K reached\"" in text
    for ext in ("png", "pdf"):
        assert (sweep / f"sigma_vs_params.{ext}").exists() and (sweep / f"sigma_vs_width.{ext}").exists()


def test_cubic_sigma_decreases_from_k1_to_k2():
    # k = 1 is the Fubini–Study class restricted (σ ≈ 0.1); k = 2 is much closer to the flat metric.
    # (At k ≥ 3 the σ of the cubic's balanced metrics on 10⁴–10⁵ points is set by the sampling error
    # of T(H), not by k, so only this step is a robust decrease.)
    records = [{"arm": "finite", "width": w, "n_params": p, "config": {}} for w, p in ((1, 3), (2, 6))]
    rows = donaldson_rows(records, _config(n_train=20000, n_test=4000), max_k=8)
    assert [r["k"] for r in rows] == [1, 2]
    s1, s2 = rows
    assert s2["sigma_test"] + 5 * (s1["sigma_err"] + s2["sigma_err"]) < s1["sigma_test"]


@pytest.mark.parametrize("missing, note", [("manifold", "no manifold block"), ("n_params", "n_params")])
def test_sweep_without_what_the_rows_need_gets_a_note(tmp_path, missing, note):
    cfg = _config(manifold=None if missing == "manifold" else CUBIC)
    widths = {4: None} if missing == "n_params" else {4: 5}
    sweep = _fake_sweep(tmp_path / "sweep", widths, cfg)
    text = write_report(sweep).read_text()
    lines = [line for line in text.splitlines() if line.startswith("Donaldson rows omitted:")]
    assert len(lines) == 1 and note in lines[0]
    assert json.loads((sweep / "report.json").read_text())["donaldson"] == []


def test_rows_refuse_runs_that_disagree_on_the_points(tmp_path):
    a, b = _config(seed=3), _config(seed=4)
    records = [{"arm": "finite", "width": 4, "n_params": 5, "config": a},
               {"arm": "finite", "width": 8, "n_params": 9, "config": b}]
    with pytest.raises(ValueError, match="data.seed"):
        donaldson_rows(records)


def test_cli_no_donaldson_skips_the_rows(tmp_path, capsys):
    sweep = _fake_sweep(tmp_path / "sweep", {4: 5}, _config())
    assert report_main([str(sweep), "--no-donaldson"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["donaldson"] == []
    text = (sweep / "report.md").read_text()
    assert "Donaldson" not in text and "| 4 |" in text
    assert report_main([str(sweep), "--donaldson-max-k", "1"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(r["k"], r["capped"]) for r in printed["donaldson"]] == [(1, True)]  # 5 parameters want k = 2
    assert math.isfinite(printed["donaldson"][0]["sigma_test"])
