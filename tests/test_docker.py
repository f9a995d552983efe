"""The Dockerfile against the repository (no Docker engine needed)."""

import fnmatch
import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _instructions():
    lines, buf = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        buf += line.rstrip("\\") + " "
        if not line.endswith("\\"):
            lines.append(buf.strip())
            buf = ""
    return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]


def _ignored(path: str) -> bool:
    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)


def test_copied_files_exist_and_are_not_ignored():
    copies = [args for op, args in _instructions() if op == "COPY"]
    assert copies
    for args in copies:
        sources = shlex.split(args)[:-1]
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
            assert not _ignored(src), f"{src} is excluded by .dockerignore"


def test_entrypoint_is_a_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entry = [args for op, args in _instructions() if op == "ENTRYPOINT"]
    assert len(entry) == 1
    command = re.findall(r'"([^"]+)"', entry[0])[0]
    assert command == "nnflow-train"
    module, func = scripts[command].split(":")
    path = ROOT / (module.replace(".", "/") + ".py")
    assert path.exists() and f"def {func}(" in path.read_text()


def test_base_image_torch_satisfies_the_requirement():
    base = next(args for op, args in _instructions() if op == "FROM")
    version = re.search(r"pytorch:(\d+)\.(\d+)", base)
    assert version, base
    major, minor = int(version.group(1)), int(version.group(2))
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = next(d for d in deps if d.startswith("torch>") or d.startswith("torch>="))
    low = tuple(int(x) for x in re.search(r">=(\d+)\.(\d+)", torch_req).groups())
    high = tuple(int(x) for x in re.search(r"<(\d+)\.(\d+)", torch_req).groups())
    assert low <= (major, minor) < high


def test_runs_as_non_root_and_offline_by_default():
    ops = _instructions()
    users = [args for op, args in ops if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    env = " ".join(args for op, args in ops if op == "ENV")
    assert "WANDB_MODE=offline" in env


def test_constraints_cover_the_dependencies():
    pinned = {
        line.split("==")[0].lower()
        for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in deps} - {"torch"}
    assert names <= pinned, names - pinned
