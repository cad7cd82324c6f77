"""Runs mirrored to MLflow (olr.workflows.tracking), against a real MLflow tracking store in a folder:
what arrives there is read back with MLflow's own client and compared with the run folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow import tracking as mlflow_tracking

from olr import workspace
from olr.analysis import compare
from olr.runs import store
from olr.workflows import tracking
from tests.fixtures.runs import olr_cli, session_tracker
from tests.test_evaluation import copy_runs


@pytest.fixture
def tracker(tmp_path, monkeypatch) -> dict:
    """A real MLflow store in a folder (MLflow's file backend, kept for such uses behind its opt-in)."""
    env = {"MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri(), "MLFLOW_ALLOW_FILE_STORE": "true"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return env


def mirrored(run_id: str):
    """The active MLflow runs tagged with `run_id`, and the client that found them."""
    client = mlflow_tracking.MlflowClient()
    experiment = client.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT)
    found = client.search_runs([experiment.experiment_id], filter_string=f"tags.`olr.run_id` = '{run_id}'")
    return client, found


def test_a_run_arrives_with_its_settings_epochs_figures_and_files_and_a_second_mirror_replaces_it(
    trained_siamese_run, training_workspace, tracker
):
    copy_runs(training_workspace, "cls", "siam")
    cls = store.load_run("cls")
    first = tracking.mirror_run("cls")
    second = tracking.mirror_run("cls")  # mirrored again: a new copy, the earlier one deleted
    client, found = mirrored("cls")
    assert second != first and [r.info.run_id for r in found] == [second]
    copy = found[0]
    assert copy.info.status == "FINISHED" and copy.info.run_name.startswith("resnet · bce · tiny")
    assert copy.data.tags["olr.kind"] == "classifier" and copy.data.tags["olr.state"] == "finished"
    config = json.loads(cls.files.config.read_text())
    as_text = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in config.items()}
    assert copy.data.params == as_text

    epochs = store.read_metrics(cls)
    epochs = epochs[epochs["scope"] == "epoch"]
    val = epochs[epochs["split"] == "val"]
    history = client.get_metric_history(copy.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == list(zip(val["epoch"], val["loss"], strict=True))
    row = compare.results_table(["cls"]).iloc[0]
    for key in ("micro_f2", "micro_f2_low", "micro_f2_high", "macro_ap", "accuracy", "baseline"):
        assert copy.data.metrics[key] == pytest.approx(row[key]), key
    artifacts = {a.path for a in client.list_artifacts(copy.info.run_id)}
    assert {"config.json", "status.json", "metrics.jsonl", "evaluation"} <= artifacts
    assert "best.keras" not in artifacts
    summary = client.download_artifacts(copy.info.run_id, "evaluation/summary.json")
    assert json.loads(Path(summary).read_text()) == json.loads(cls.files.summary.read_text())

    tracking.mirror_run("siam")
    _, (siamese,) = mirrored("siam")
    assert siamese.data.tags["olr.classifier_run"] == "cls"
    assert siamese.data.metrics["rho"] == pytest.approx(compare.results_table(["siam"]).iloc[0]["rho"])
    assert {"label_prior_rho", "classifier_rho"} <= siamese.data.metrics.keys()


def test_a_tracker_that_fails_costs_the_run_nothing_and_the_command_says_what_is_missing(
    trained_classifier_run, training_workspace, monkeypatch, capsys, tmp_path
):
    home = copy_runs(training_workspace, "cls")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder would go")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (blocker / "mlruns").as_uri())
    before = {p: p.stat().st_mtime_ns for p in store.load_run("cls").path.rglob("*")}
    tracking.mirror_quietly(store.load_run("cls").path)
    said = capsys.readouterr().err.strip()
    assert said.startswith("The run could not be mirrored to MLflow (") and said.endswith(
        "the run itself is unaffected; mirror it again with python -m olr track cls."
    )
    assert {p: p.stat().st_mtime_ns for p in store.load_run("cls").path.rglob("*")} == before

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    done = olr_cli(home, "track", "cls")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: MLFLOW_TRACKING_URI is not set; set it to your tracking server (e.g. http://localhost:5000)."
    )


def test_a_training_process_mirrors_its_run_when_it_ends(trained_classifier_run, training_workspace, monkeypatch):
    """The session's classifier run was trained with a tracker set (tests/fixtures/runs.session_tracker)."""
    tracker = session_tracker(training_workspace)
    for key, value in tracker.items():
        monkeypatch.setenv(key, value)
    _, (copy,) = mirrored("cls")
    assert copy.info.status == "FINISHED" and copy.data.tags["olr.state"] == "finished"
    assert {"train_loss", "val_loss", "micro_f2"} <= copy.data.metrics.keys()
    assert copy.data.params["epochs"] == str(store.load_run(trained_classifier_run).config["epochs"])

    copy_runs(training_workspace)  # the dataset only: `track --all` mirrors this test's workspace, empty of runs
    listed = olr_cli(workspace.home(), "track", "--all", **tracker)
    assert listed.returncode == 0 and listed.stdout == "", listed.stderr
    shutil.copytree(trained_classifier_run, workspace.home() / "models" / "cls")
    listed = olr_cli(workspace.home(), "track", "--all", **tracker)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("cls -> MLflow run ")
    _, again = mirrored("cls")
    assert len(again) == 1 and again[0].info.run_id != copy.info.run_id  # the earlier copy replaced
