"""Results stay tied to the dataset they were computed on: a dataset prepared again under the same
name (other tiles) makes every result reader, page and command refuse with one sentence, instead
of showing other tiles beside the stored predictions (or an IndexError)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from olr.analysis import correlations, evaluation, pair_maps, run_data
from olr.runs import store
from olr.workspace import REPO_ROOT
from tests.fixtures.pages import open_app
from tests.fixtures.runs import make_tiny_dataset, olr_env

CHANGED = "The dataset tiny changed after run"


@pytest.fixture
def replaced_home(_isolated_workspace, training_workspace, trained_classifier_run, trained_siamese_run, monkeypatch):
    """The tiny runs beside their dataset "tiny", prepared again with half the tiles after they were trained."""
    home = _isolated_workspace
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    for run in (trained_classifier_run, trained_siamese_run):
        shutil.copytree(run, home / "models" / run.name)
    make_tiny_dataset(home / "data" / "tiny", n_tiles=96, seed=3)
    return home


def test_an_untouched_dataset_passes_the_check(_isolated_workspace, training_workspace, trained_classifier_run):
    run = store.load_run(trained_classifier_run)
    run_data.check_results(run)
    assert run_data.run_dataset(run).n_tiles == 192


@pytest.mark.parametrize("run_id", ["cls", "siam"])
def test_every_result_reader_refuses_a_replaced_dataset(replaced_home, run_id):
    run = store.load_run(run_id)
    readers = [
        run_data.check_results,
        run_data.run_dataset,
        evaluation.read_summary,
        correlations.read_agreement,
        correlations.load_matrices,
        lambda r: pair_maps.pair_map(r, 0, 1, source="classifier"),
    ]
    if run_id == "cls":
        readers += [evaluation.load_predictions, lambda r: evaluation.metrics_at(r, 0.5)]
    for reader in readers:
        with pytest.raises(run_data.DatasetChanged, match=f"^{CHANGED} {run_id} was trained on it"):
            reader(run)


def test_re_evaluating_on_a_replaced_dataset_is_refused_and_keeps_the_results(replaced_home):
    before = (replaced_home / "models" / "cls" / "evaluation" / "summary.json").read_bytes()
    for command in (["evaluate", "cls"], ["correlations", "cls"]):
        proc = subprocess.run(
            [sys.executable, "-m", "olr", *command],
            cwd=REPO_ROOT,
            env=olr_env(replaced_home),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert CHANGED in proc.stderr and "Traceback" not in proc.stderr
    assert (replaced_home / "models" / "cls" / "evaluation" / "summary.json").read_bytes() == before


@pytest.mark.parametrize(("page", "run_id"), [("pages/evaluate.py", "cls"), ("pages/correlations.py", "siam")])
def test_result_pages_say_the_dataset_changed(replaced_home, page, run_id):
    at = open_app(page, **{"olr.run": run_id})
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith(f"{CHANGED} {run_id}"), errors
    assert not at.metric and not at.dataframe  # no stored numbers beside the wrong tiles
