"""Shared test set-up: every test runs in its own temporary workspace (OLR_HOME)."""

import os

import pytest

# Fixture modules, one per area, so parallel work on areas does not collide here.
pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.runs",
    "tests.fixtures.browser",
    "tests.fixtures.pages",
]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path_factory, monkeypatch):
    """Point OLR_HOME at a fresh folder so no test touches the repository's data/models."""
    home = tmp_path_factory.mktemp("olr_home")
    monkeypatch.setenv("OLR_HOME", str(home))
    return home
