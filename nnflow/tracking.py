"""Weights & Biases for every app: the one module that talks to wandb.

Every W&B run carries the app's resolved config (``wandb.init(config=run_config(cfg))``), a group
and a name:

- group: ``wandb.group`` when set; else, in a Hydra multirun, the sweep's name,
  "<experiment>_<sweep dir name>" (the sweep dir name alone without an ``experiment``), so that a
  sweep's runs share one group and two sweeps of one preset do not; else the ``experiment`` name
  of a single run; else none. ``nnflow-report`` files its run under the group of the sweep it reads.
- name: ``wandb.name`` when set; else the app's own: a training run is named by its arm, width
  and seed, "<arm>_w<width>_s<seed>" (``train_run_name``; the arm is ``arm_label`` or
  "<kind>[_<parameterization>]"; "_lr<lr>" and "_n<n_train>" added when the learning rate or the
  data size is a command-line override, as on a learning-rate or data axis).

nnflow-train logs through Lightning's WandbLogger (``logger=wandb``, the default; ``logger_options``
gives it the config, group, name and tags): σ curves and the kernel-tracking series arrive as
metrics, the summary's numbers at the end. The other apps open a run with ``start`` when
``wandb.enabled`` (nnflow-report: ``--wandb``) and close it with ``finish`` (summary numbers,
tables of rows, figures as ``wandb.Image``). Offline unless WANDB_MODE says otherwise (no network
at run time); ``wandb sync`` uploads later. wandb is imported only when a run is opened.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

TRACKING_DEFAULTS = {"enabled": False, "project": "nnflow", "group": None, "name": None}


def run_config(cfg) -> dict:
    """The resolved config as plain containers (a DictConfig, or a mapping as it is)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def _hydra():
    """The running Hydra config, or None outside a Hydra app (tests calling the library)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def sweep_group(experiment: str | None, sweep_dir: str | Path | None) -> str | None:
    """A sweep's W&B group: "<experiment>_<sweep dir name>", the dir name alone, or the experiment."""
    name = Path(sweep_dir).name if sweep_dir is not None else None
    if name and experiment:
        return f"{experiment}_{name}"
    return name or experiment or None


def hydra_group() -> str | None:
    """The group of the running Hydra job (module doc), None outside Hydra."""
    hydra = _hydra()
    if hydra is None:
        return None
    experiment = hydra.runtime.choices.get("experiment")
    if not str(hydra.mode).endswith("MULTIRUN"):
        return sweep_group(experiment, None)
    # the directory the job writes in is <sweep dir>/<subdir>: its parent is the sweep dir as it was
    # resolved at launch (hydra.sweep.dir may hold ${now:…}, which a job process resolves anew)
    return sweep_group(experiment, Path(hydra.runtime.output_dir).parent)


def _settings(cfg) -> dict:
    block = cfg.get("wandb") if hasattr(cfg, "get") else None
    block = run_config(block) if block is not None else {}
    unknown = set(block) - set(TRACKING_DEFAULTS)
    if unknown:
        expected = sorted(TRACKING_DEFAULTS)
        raise ValueError(f"config key wandb has unknown entries {sorted(unknown)}; expected {expected}")
    return TRACKING_DEFAULTS | block


def arm_name(cfg) -> str:
    """A training run's arm: ``arm_label`` when the config sets one (a study's arms, e.g. "lazy",
    "adam"), else "<kind>[_<parameterization>]" ("finite", "finite_mup", "frozen")."""
    if cfg.get("arm_label"):
        return str(cfg.arm_label)
    arm = str(cfg.model.kind)
    param = cfg.model.get("parameterization")
    if param not in (None, "ntk"):
        arm += f"_{param}"
    return arm


# swept keys that name a run beside arm, width and seed: (config key, name prefix)
NAMED_AXES = (("optim.optimizer.lr", "lr"), ("data.n_train", "n"))


def train_run_name(cfg) -> str:
    """ "<arm>_w<width>_s<seed>[_lr<lr>][_n<n_train>]" of a training config (module doc; the
    learning rate and data size where the multirun sweeps them)."""
    model = cfg.model
    arm = arm_name(cfg)
    name = f"{arm}_w{model.get('width')}_s{cfg.seed}" if model.get("width") is not None else f"{arm}_s{cfg.seed}"
    hydra = _hydra()
    for key, prefix in NAMED_AXES:
        value = OmegaConf.select(cfg, key)
        if hydra is not None and value is not None and any(o.startswith(f"{key}=") for o in hydra.overrides.task):
            name += f"_{prefix}{float(value):g}"
    return name


def logger_options(cfg) -> dict:
    """wandb.init options for nnflow-train's WandbLogger: config, group, name, tags."""
    settings = _settings(cfg)
    options = {
        "config": run_config(cfg),
        "group": settings["group"] or hydra_group(),
        "name": settings["name"] or train_run_name(cfg),
        "tags": list(cfg.get("tags") or []),
    }
    return {key: value for key, value in options.items() if value is not None}


def start(cfg, app: str, name: str, run_dir: str | Path, group: str | None = None):
    """Open the W&B run of an app if ``cfg.wandb.enabled`` (else None), offline by default.

    Args:
        cfg: the app's config (DictConfig or mapping; its ``wandb`` block, TRACKING_DEFAULTS).
        app: the job type ("measure", "kernel", "report", …).
        name: the run's default name (``wandb.name`` wins).
        run_dir: where wandb writes (``<run_dir>/wandb/offline-run-*``).
        group: the default group (``wandb.group`` wins; else the Hydra sweep's, ``hydra_group``).
    """
    settings = _settings(cfg)
    if not settings["enabled"]:
        return None
    os.environ.setdefault("WANDB_MODE", "offline")  # no network at run time unless asked
    import wandb

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=settings["project"],
        dir=str(run_dir),
        config=run_config(cfg),
        job_type=app,
        group=settings["group"] or group or hydra_group(),
        name=settings["name"] or name,
        tags=list(cfg.get("tags") or []) if hasattr(cfg, "get") else [],
    )


def scalars(summary: Mapping, prefix: str = "") -> dict:
    """The finite numbers of a (nested) summary, flattened with "/" ("provenance" left out)."""
    out = {}
    for key, value in summary.items():
        if key == "provenance":
            continue
        if isinstance(value, Mapping):
            out |= scalars(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[f"{prefix}{key}"] = value
    return out


def finish(
    run,
    summary: Mapping | None = None,
    tables: Mapping[str, list[Mapping]] | None = None,
    images: Mapping[str, str | Path] | None = None,
) -> None:
    """Log and close an app's run (nothing when ``run`` is None).

    Args:
        summary: its finite numbers go to the run summary (``scalars``).
        tables: name → rows (dicts, e.g. a metrics.csv of several routes), each a ``wandb.Table``
            with the union of the rows' keys as columns (missing entries None).
        images: name → PNG path, logged as ``wandb.Image``.
    """
    if run is None:
        return
    import wandb

    for name, rows in (tables or {}).items():
        columns = list(dict.fromkeys(key for row in rows for key in row))
        run.log({name: wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in rows])})
    if images:
        run.log({name: wandb.Image(str(path)) for name, path in images.items()})
    if summary:
        run.summary.update(scalars(summary))
    run.finish()


def log_report(sweep_dir: str | Path, out_dir: str | Path, options: Mapping, stats: Mapping, project: str = "nnflow"):
    """nnflow-report --wandb: one run (job type "report") in the sweep's group (its multirun.yaml
    names the experiment), with the report's options as config, its numbers (the fitted slopes,
    the frozen flow's σ, …) as summary and every figure (out_dir/*.png) as a wandb.Image."""
    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    experiment = None
    if (sweep_dir / "multirun.yaml").exists():
        experiment = OmegaConf.select(OmegaConf.load(sweep_dir / "multirun.yaml"), "hydra.runtime.choices.experiment")
    cfg = dict(options) | {"wandb": {"enabled": True, "project": project}}
    run = start(cfg, "report", f"report_{sweep_dir.name}", out_dir, group=sweep_group(experiment, sweep_dir))
    finish(run, stats, images={path.stem: path for path in sorted(out_dir.glob("*.png"))})
    return run


# The offline run file (<run>/run-<id>.wandb) is a LevelDB-style log of protobuf Records: a 7-byte
# file header (":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of chunks, each with a 7-byte
# header (crc32 4, length 2, type 1: full, first, middle, last); a block's tail shorter than a
# header is padding.
_BLOCK, _HEADER = 32768, 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _records(path: Path) -> Iterable[bytes]:
    import struct

    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:_HEADER])
    if ident != b":W&B" or magic != 0xBEE1 or version != 0:
        raise ValueError(f"{path} is not a W&B run file (header {data[:_HEADER]!r})")
    pos, parts = _HEADER, []
    while pos + _HEADER <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < _HEADER:  # padding at the end of a block
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 0 and length == 0:  # zero fill
            continue
        parts.append(chunk)
        if kind in (_FULL, _LAST):
            yield b"".join(parts)
            parts = []


def read_offline_run(run_dir: str | Path) -> dict:
    """What an offline W&B run recorded, read back from its run-<id>.wandb file (no network).

    Args: run_dir: ``.../wandb/offline-run-<time>-<id>`` (or a directory holding exactly one).
    Returns {"config": dict, "group", "name", "job_type": str, "history": [dict per logged step],
    "summary": dict}, values decoded from their JSON; image entries are their W&B JSON dicts.
    """
    import json

    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("run-*.wandb")) or sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    if len(files) != 1:
        raise ValueError(f"expected one W&B run file under {run_dir}; found {[str(f) for f in files]}")

    def key(item) -> str:
        return item.key or "/".join(item.nested_key)

    out = {"config": {}, "group": None, "name": None, "job_type": None, "history": [], "summary": {}}
    for raw in _records(files[0]):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.update(group=run.run_group or None, name=run.display_name or None, job_type=run.job_type or None)
            out["config"] |= {key(u): json.loads(u.value_json) for u in run.config.update}
        elif kind == "config":
            out["config"] |= {key(u): json.loads(u.value_json) for u in record.config.update}
        elif kind == "history":
            out["history"].append({key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            out["summary"] |= {key(u): json.loads(u.value_json) for u in record.summary.update}
    out["config"] = {
        k: v.get("value", v) if isinstance(v, dict) and set(v) <= {"value", "desc"} else v
        for k, v in out["config"].items()
    }
    return out
