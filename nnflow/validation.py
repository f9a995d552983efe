"""Config checks shared by every app: each raises ValueError naming the offending key.

They read nested mappings by dotted key, so they work on an OmegaConf DictConfig and on a plain
dict alike (the library validates plain dicts; the Hydra shells pass their DictConfig).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MISSING = object()


def select(cfg: Mapping, key: str, default: Any = None) -> Any:
    """The value at dotted ``key`` ("a.b.c") in nested mappings, or ``default`` if absent."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(cfg: Mapping, *keys: str, minimum: int = 1, allow_none: tuple[str, ...] = ()) -> None:
    """Each key must hold an integer ≥ ``minimum`` (None allowed for keys in ``allow_none``)."""
    for key in keys:
        value = select(cfg, key, _MISSING)
        if value is None and key in allow_none:
            continue
        if value is _MISSING or not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            shown = "missing" if value is _MISSING else repr(value)
            bound = "" if minimum <= -(2**63) else f" ≥ {minimum}"  # a seed: any integer torch takes
            raise ValueError(f"config value {key}={shown} must be an integer{bound}")


def check_positive(cfg: Mapping, *keys: str, allow_none: tuple[str, ...] = ()) -> None:
    """Each key must hold a positive number (None allowed for keys in ``allow_none``)."""
    for key in keys:
        value = select(cfg, key, _MISSING)
        if value is None and key in allow_none:
            continue
        if value is _MISSING or not _is_number(value) or not value > 0:
            shown = "missing" if value is _MISSING else repr(value)
            raise ValueError(f"config value {key}={shown} must be a positive number")


def check_choice(cfg: Mapping, key: str, choices) -> None:
    """The key must hold one of ``choices``."""
    value = select(cfg, key, _MISSING)
    if value is _MISSING or value not in tuple(choices):
        shown = "missing" if value is _MISSING else repr(value)
        raise ValueError(f"config value {key}={shown} must be one of {tuple(choices)}")


def check_list(cfg: Mapping, key: str, positive_int: bool = False, allow_empty: bool = True) -> None:
    """The key must hold a list of positive numbers (positive integers if ``positive_int``)."""
    values = select(cfg, key)
    values = list(values) if values is not None and not isinstance(values, (str, bytes)) else None
    if values is None or (not values and not allow_empty):
        raise ValueError(f"config value {key}={values!r} must be a non-empty list")
    for v in values:
        ok = (isinstance(v, int) if positive_int else _is_number(v)) and not isinstance(v, bool)
        if not ok or v <= 0:
            kind = "positive integers" if positive_int else "positive numbers"
            raise ValueError(f"config value {key}={values!r} must be a list of {kind}")


def check_bool(cfg: Mapping, *keys: str) -> None:
    """Each key must hold true or false (Hydra parses `key=maybe` as the string 'maybe')."""
    for key in keys:
        value = select(cfg, key, _MISSING)
        if not isinstance(value, bool):
            shown = "missing" if value is _MISSING else repr(value)
            raise ValueError(f"config value {key}={shown} must be true or false")

