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

#: The README's test command runs the tests twice: every test but those marked `jax_leg` (Keras on its default
#: backend), then, with KERAS_BACKEND=jax, those marked `both_backends` (the training tests) or `jax_leg` (tests of
#: JAX itself: several processes, training without TensorFlow, launches on JAX), which the first pass leaves out so
#: the default run stays short.
ON_JAX = os.environ.get("KERAS_BACKEND") == "jax"


def pytest_collection_modifyitems(config, items):
    if ON_JAX:
        return
    kept = [item for item in items if item.get_closest_marker("jax_leg") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("jax_leg")])
        items[:] = kept


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path_factory, monkeypatch):
    """Point OLR_HOME at a fresh folder so no test touches the repository's data/models."""
    home = tmp_path_factory.mktemp("olr_home")
    monkeypatch.setenv("OLR_HOME", str(home))
    return home
