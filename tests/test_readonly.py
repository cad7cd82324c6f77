"""Read-only demo mode (OLR_READONLY=1): every mutating library entry point refuses, and
reading datasets and runs still works without writing anything."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from olr import cli, workspace
from olr.data.dataset import load_dataset
from olr.data.demo_scene import ensure_demo_dataset
from olr.data.label_stats import dataset_stats
from olr.data.prepare import prepare_dataset
from olr.data.thesis_import import import_batches
from olr.errors import OLRError
from olr.runs import launcher
from olr.workflows import demo, sweep
from tests.fixtures.data import write_batches


def _tree(folder):
    return sorted((p.relative_to(folder), p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.fixture
def readonly_home(_isolated_workspace, tiny_dataset, monkeypatch):
    """A workspace holding one dataset, switched to read-only."""
    shutil.copytree(tiny_dataset, _isolated_workspace / "data" / "tiny")
    (_isolated_workspace / "models").mkdir()
    monkeypatch.setenv("OLR_READONLY", "1")
    return _isolated_workspace


def test_every_mutating_entry_point_refuses(readonly_home, tiny_rasters, tmp_path):
    before = _tree(readonly_home)
    attempts = {
        "prepare": lambda: prepare_dataset(
            tiny_rasters.image, tiny_rasters.labels, readonly_home / "data" / "new", tile=16
        ),
        "import": lambda: import_batches(write_batches(tmp_path / "batches"), readonly_home / "data" / "imported"),
        "demo dataset": lambda: ensure_demo_dataset(),
        "launch": lambda: launcher.launch_training({"kind": "classifier", "dataset": "tiny", "epochs": 1}, "cpu"),
        "stop": lambda: launcher.stop_run("some-run"),
        "resume": lambda: launcher.resume_run("some-run"),
        "demo pipeline": lambda: demo.run_demo(quick=True),
        "sweep": lambda: sweep.run_sweep("thesis", "tiny", ["cpu"], quick=True),
    }
    for _name, attempt in attempts.items():
        with pytest.raises(OLRError, match="read-only demo"):
            attempt()
    assert _tree(readonly_home) == before, "a refused action wrote into the workspace"


def test_training_cli_refuses_with_exit_code_2(readonly_home):
    env = {**os.environ, "OLR_HOME": str(readonly_home), "OLR_READONLY": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "olr", "train", "--set", "dataset=tiny", "--set", "epochs=1"],
        cwd=workspace.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "read-only demo" in proc.stderr and "Traceback" not in proc.stderr
    assert list((readonly_home / "models").iterdir()) == []


def test_reading_still_works_and_writes_nothing(readonly_home):
    before = _tree(readonly_home)
    ds = load_dataset(readonly_home / "data" / "tiny")
    stats = dataset_stats(ds)
    assert stats.cooc.shape == (len(ds.labels), len(ds.labels))
    assert _tree(readonly_home) == before, "statistics were cached to disk in read-only mode"


def _hashes(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


#: every command that writes into the workspace, with arguments that would make it write
WRITING_COMMANDS = {
    "prepare": ["--image", "IMAGE.tif", "--labels", "LABELS.tif", "--out", "data/new"],
    "import-batches": ["--folder", "batches", "--out", "data/imported"],
    "import-bigearthnet": ["--folder", "patches", "--out", "data/bigearthnet"],
    "demo-data": [],
    "train": ["--dataset", "tiny", "--epochs", "1"],
    "evaluate": ["cls"],
    "correlations": ["siam"],
    "embed": ["siam"],
    "export": ["run", "siam"],
    "predict": ["cls", "--image", "IMAGE.tif"],
    "register": ["MODEL.keras", "--dataset", "tiny", "--input-scaling", "raw"],
    "ensemble": ["cls", "cls"],
    "demo": ["--quick"],
    "study": ["--dataset", "tiny", "--quick"],
    "sweep": ["--preset", "thesis", "--dataset", "tiny", "--quick"],
}


def test_every_writing_cli_command_refuses_and_changes_nothing(trained_siamese_run, tmp_path):
    """Read-only mode covers the command line: no command rewrites a run folder or a dataset."""
    home = tmp_path / "home"
    shutil.copytree(trained_siamese_run.parent.parent, home)
    assert {name for name, command in cli.COMMANDS.items() if command.writes} <= set(WRITING_COMMANDS)
    before = _hashes(home)
    env = {**os.environ, "OLR_HOME": str(home), "OLR_READONLY": "1"}
    for name, args in WRITING_COMMANDS.items():
        proc = subprocess.run(
            [sys.executable, "-m", "olr", name, *args],
            cwd=workspace.REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 2, f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}"
        assert "read-only demo" in proc.stderr and "Traceback" not in proc.stderr, f"{name}: {proc.stderr[-2000:]}"
        assert _hashes(home) == before, f"`olr {name}` changed the workspace in read-only mode"
