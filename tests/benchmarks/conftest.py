"""Shared fixtures of the harness tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def salbench_cache_dir(tmp_path_factory) -> Path:
    """A fresh trained-model cache for the session (``SALBENCH_CACHE_DIR``), so that tests
    never read or write the user's cache; subprocesses started by a test inherit it."""
    path = tmp_path_factory.mktemp("model_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SALBENCH_CACHE_DIR", str(path))
        yield path


@pytest.fixture
def isolated_datasets(monkeypatch):
    """No test sees another's cached data bundles or the developer's data directory setting."""
    from salbench import datasets
    from salbench.datasets.data_dir import ENV_VAR

    monkeypatch.delenv(ENV_VAR, raising=False)
    datasets._cache.clear()
    yield
    datasets._cache.clear()
