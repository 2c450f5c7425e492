"""The installed package: one top-level name, and the import layers of ``pyproject.toml``.

A wheel is built from the repository and installed into a temporary folder (``pip install
--target``, no dependencies): that folder holds exactly what ``pip install salbench`` installs,
laid out as one physical ``salbench`` tree. import-linter's contracts (layers core ← explainers
← metrics ← attacks ← harness; no cycles between sibling modules) are checked on that tree,
because the analyser walks folders and the repository maps four folders into one namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = ("benchmarks", "explainers", "metrics", "attacks")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy, so that setuptools' build/ and egg-info never land in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in PACKAGE_FOLDERS:
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    build = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(source))
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "dist").glob("salbench-*.whl")
    target = tmp / "site"
    install = _run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", str(target), str(wheel))
    assert install.returncode == 0, install.stderr
    return target


def test_wheel_installs_only_salbench_at_top_level(installed):
    top = {p.name for p in installed.iterdir() if not p.name.endswith(".dist-info")}
    assert top == {"salbench"} | ({"bin"} if (installed / "bin").exists() else set()), sorted(top)
    for package in ("explainers", "metrics", "attacks", "core", "datasets", "models", "recipes", "metrics/selective", "attacks/candidates"):
        assert (installed / "salbench" / package / "__init__.py").is_file(), package
    assert sorted(p.name for p in (installed / "salbench" / "suites").glob("*.toml")), "built-in suites missing"


def test_every_source_folder_is_packaged(installed):
    """A new sub-package in the repository that pyproject.toml's package list forgets fails here."""
    for folder in PACKAGE_FOLDERS:
        inside = "" if folder == "benchmarks" else folder
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            assert (installed / "salbench" / inside / relative / "__init__.py").is_file(), f"{folder}/{relative} is not in the wheel"


def test_import_layers_hold(installed):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    lint = Path(sys.executable).with_name("lint-imports")
    result = _run(str(lint), str(REPO / "pyproject.toml"), "--no-cache", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout
