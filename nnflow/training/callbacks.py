"""Callbacks: the run's own metrics.csv (resumable) and its σ-vs-step plot."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import lightning as L

from nnflow.geometry.measures import evaluate_metric

COLUMNS = (
    "step", "epoch", "seconds", "lr", "train_loss_epoch", "val_sigma", "val_sigma_err",
    "val_volume", "val_positive_fraction", "train_sigma", "flow_time",
)


class MetricsCSV(L.Callback):
    """Appends one row per validation epoch to ``path``.

    On resume, rows after the resumed step are dropped first (they were written after the
    checkpoint that is being resumed), so the file is the run's history with nothing lost and
    nothing doubled. ``seconds`` is training wall time, carried across resumes.
    """

    def __init__(self, path: str | Path, extra_columns: tuple[str, ...] = ()):
        self.path = Path(path)
        self.columns = COLUMNS + tuple(extra_columns)
        self._start = time.perf_counter()
        self._offset = 0.0

    def on_train_start(self, trainer, pl_module) -> None:  # after a checkpoint is restored
        if not trainer.is_global_zero:
            return
        step = trainer.global_step
        rows = read_metrics(self.path) if self.path.exists() else []
        rows = [r for r in rows if int(r["step"]) <= step] if step > 0 else []
        self._offset = float(rows[-1]["seconds"]) if rows else 0.0
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in self.columns} for r in rows)
        self._start = time.perf_counter()
        if step == 0:  # the starting metric (e.g. g_FS), so that curves begin at t = 0
            val = trainer.datamodule.split("val")
            was_training = pl_module.model.training
            pl_module.model.eval()
            m = evaluate_metric(val.to(pl_module.device), pl_module.model.metric)
            pl_module.model.train(was_training)
            row = {"step": 0, "epoch": -1, "seconds": 0.0, "lr": math.nan, "val_sigma": m["sigma"],
                   "val_sigma_err": m["sigma_err"], "val_volume": m["volume"],
                   "val_positive_fraction": m["positive_fraction"]}
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.columns).writerow({k: row.get(k, "") for k in self.columns})

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        # The module's own float64 values (Lightning's logged copies are float32).
        logged = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        logged.update(getattr(pl_module, "last_val_metrics", {}))
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else math.nan
        row = {
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "seconds": self._offset + time.perf_counter() - self._start,
            "lr": lr,
            **{k: logged.get(k, "") for k in self.columns[4:]},
        }
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(row)


def read_metrics(path: str | Path) -> list[dict]:
    with Path(path).open() as f:
        return list(csv.DictReader(f))


def plot_sigma(metrics_csv: str | Path, out: str | Path, title: str = "") -> Path | None:
    """σ_val (with its standard error) and the training loss against step; PNG and PDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics_csv) if r.get("val_sigma") not in ("", "nan", None)]
    if not rows:
        return None
    step = [int(r["step"]) for r in rows]
    sigma = [float(r["val_sigma"]) for r in rows]
    err = [float(r["val_sigma_err"] or 0) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(step, sigma, yerr=err, marker="o", ms=3, label="σ (validation)")
    losses = [(int(r["step"]), float(r["train_loss_epoch"])) for r in rows if r.get("train_loss_epoch")]
    if losses:
        ax.plot(*zip(*losses), ls="--", label="train loss (epoch mean)")
    train_sigma = [(int(r["step"]), float(r["train_sigma"])) for r in rows if r.get("train_sigma")]
    if train_sigma:  # frozen flows: σ on the training points
        ax.plot(*zip(*train_sigma), marker="s", ms=3, label="σ (training points)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("σ / loss")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out.with_suffix(".png"), dpi=120)
    fig.savefig(out.with_suffix(".pdf"))
    plt.close(fig)
    return out.with_suffix(".png")
