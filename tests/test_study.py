"""`olr study`: the whole study on a dataset that is not the demo (a real quick run), its report, its
repetition from the report, and bad input answered with one sentence and a study folder marked failed."""

import json
import re
import shutil

import pandas as pd
import pytest

from olr import cli
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout
from olr.training import options
from olr.workflows import study, study_report
from tests.fixtures.runs import make_tiny_dataset, olr_cli

#: the figures the report must name, each with its interval: (name in the report, key of record["figures"])
FIGURES = (
    ("micro F2", "micro_f2"),
    ("macro F2", "macro_f2"),
    ("macro AP", "macro_ap"),
    ("accuracy", "accuracy_tuned"),
    ("Siamese self-score", "siamese"),
    ("label prior", "label_prior"),
    ("classifier view", "classifier_view"),
    ("untrained network", "untrained"),
)


def _olr(home, *args, timeout=600):
    return olr_cli(home, *args, timeout=timeout)


def _text(html: str) -> str:
    """The report's visible text, tags removed and whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_quick_study_on_a_scene_that_is_not_the_demo_reports_and_repeats_from_its_report(tmp_path, monkeypatch):
    home = tmp_path / "home"
    make_tiny_dataset(home / "data" / "scene", codes=(112, 211, 311, 512))
    out = tmp_path / "study.json"
    proc = _olr(home, "study", "--dataset", "scene", "--quick", "--study-id", "s", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    folder = home / "models" / "s"
    record = json.loads(RunLayout(folder).study.read_text())
    assert json.loads(out.read_text()) == record

    # The record: finished, every stage done with its run, the references checked, no demo targets here.
    assert record["state"] == "finished" and record["error"] is None, record
    assert [(s["name"], s["state"]) for s in record["stages"]] == [(name, "done") for name in study.STAGES]
    assert record["runs"] == {"classifier": "s-classifier", "siamese": "s-siamese"}
    assert {s["name"]: s["run"] for s in record["stages"]}["siamese"] == "s-siamese"
    assert record["targets"] is None and set(record["checks"]) == set(study.CHECKS)
    assert record["dataset_checksum"].startswith("sha256:") and record["versions"]["numpy"]
    assert store.read_status(folder)["state"] == "finished"
    listed = {run.id: run for run in store.list_runs(home / "models")}
    assert listed["s"].kind == store.STUDY_KIND and listed["s"].config["dataset"] == "scene"

    # The runs' configs hold what the training recipe decided for this dataset, as concrete numbers.
    configs = {stage: store.load_run(home / "models" / run_id).config for stage, run_id in record["runs"].items()}
    for stage, cfg in configs.items():
        decided = cfg["recipe"]["decided"]
        assert isinstance(cfg["epochs"], int) and isinstance(cfg["batch_size"], int), cfg
        assert decided["epochs"] == cfg["epochs"] and decided["batch_size"] == cfg["batch_size"]
        assert cfg["train_steps"] == record["settings"][stage]["train_steps"]  # the quick preset's budget
    # The classifier trained exactly the epochs the recipe decided: 115 tiles make a pass of 14 steps of 8,
    # stretched to 20-step epochs (the tiles repeat), so every epoch it trained took that many steps.
    classifier = configs["classifier"]
    assert classifier["epoch_steps"] > classifier["n_train"] // classifier["batch_size"]
    state = json.loads(RunLayout(home / "models" / record["runs"]["classifier"]).train_state.read_text())
    assert state["epoch"] >= 1 and state["step"] == state["epoch"] * classifier["epoch_steps"], state

    # The printed report names the split, the intervals and the references.
    for text in ("TEST split, reported once", "95 % spatial block-bootstrap interval", "label prior", "untrained"):
        assert text in proc.stdout, proc.stdout[-3000:]

    # report.html names every figure with its interval, and the references.
    report = RunLayout(folder).report
    text = _text(report.read_text(encoding="utf-8"))
    figures = record["figures"]
    for name, key in FIGURES:
        figure = figures[key]
        assert name in text, name
        assert f"{figure['value']:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]" in text, (name, figure)
    assert f"All-absent baseline accuracy (every label predicted absent): {figures['all_absent_baseline']:.3f}" in text

    # --from report.html repeats it: the same dataset and quick flag, and each run's options as it ran them,
    # those the recipe decided left blank for it to decide again.
    assert study_report.read_embedded(report)["configs"] == configs
    dry = _olr(home, "study", "--from", str(report), "--dry-run", timeout=120)
    assert dry.returncode == 0, dry.stderr[-3000:]
    plan = json.loads(dry.stdout)
    assert plan["dataset"] == "scene" and plan["quick"] is True
    for stage, cfg in configs.items():
        settings = plan["settings"][stage]
        decided = cfg["recipe"]["decided"]
        for key in options.options_for(stage):
            if key in study.IDENTITY_KEYS:
                assert key not in settings
            elif key in decided and options.OPTIONS[key].nullable:
                assert settings[key] is None, key
            else:
                assert settings[key] == cfg[key], key
    # the same from the study's folder
    monkeypatch.setenv("OLR_HOME", str(home))
    assert study.repeat_of(str(folder)).settings == plan["settings"]
    # a dataset changed since is said; a dataset gone is one sentence
    meta = home / "data" / "scene" / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "note": "edited"}))
    (warning,) = study.repeat_of(str(report)).warnings
    assert warning.startswith("the dataset scene has changed since the study (meta.json checksum sha256:")
    shutil.rmtree(home / "data" / "scene")
    with pytest.raises(OLRError, match=r"^The dataset scene that .*report\.html studied is not in this workspace"):
        study.repeat_of(str(report))


def test_an_unknown_dataset_is_one_sentence_and_leaves_no_folder(_isolated_workspace, capsys):
    make_tiny_dataset(_isolated_workspace / "data" / "scene")
    assert cli.main(["study", "--dataset", "nope", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: There is no dataset 'nope' in this workspace; pick one of scene (python -m olr datasets)."
    assert not (_isolated_workspace / "models").exists() or not list((_isolated_workspace / "models").iterdir())


def _launched(home, study_id):
    """The folder the launcher makes before the study's process starts: console.log and a queued status."""
    folder = home / "models" / study_id
    folder.mkdir(parents=True)
    RunLayout(folder).console.write_text("$ olr study\n")
    store.write_status(folder, {"state": "queued", "pid": 1, "heartbeat": 0.0})
    return folder


def _failed(folder) -> str:
    record = json.loads(RunLayout(folder).study.read_text())
    status = store.read_status(folder)
    assert record["state"] == "failed" and status["state"] == "failed"
    assert record["error"] == status["error"]
    assert not RunLayout(folder).report.exists()
    return record["error"]


def test_a_launched_study_of_a_dataset_without_validation_tiles_fails_with_its_sentence(_isolated_workspace):
    scene = make_tiny_dataset(_isolated_workspace / "data" / "scene")
    tiles = pd.read_parquet(scene / "tiles.parquet")
    tiles.loc[tiles["split"] == "val", "split"] = "train"
    tiles.to_parquet(scene / "tiles.parquet")
    folder = _launched(_isolated_workspace, "s")
    with pytest.raises(OLRError) as e:
        study.run_study("scene", quick=True, study_id="s", progress=lambda _: None)
    assert "has no val tiles" in str(e.value) and "\n" not in str(e.value)
    assert _failed(folder) == str(e.value)
    stages = {s["name"]: s["state"] for s in json.loads(RunLayout(folder).study.read_text())["stages"]}
    assert stages == {"dataset": "failed", "classifier": "skipped", "siamese": "skipped", "report": "skipped"}
    assert RunLayout(folder).console.read_text().startswith("$ olr study")  # the launcher's log kept


def test_a_training_run_that_refuses_fails_the_study_with_the_runs_sentence(_isolated_workspace):
    make_tiny_dataset(_isolated_workspace / "data" / "scene")
    settings = {"classifier": {"prune_below": 100000}, "siamese": {}}  # prunes every label: the run refuses
    with pytest.raises(OLRError) as e:
        study.run_study("scene", study_id="s", settings=settings, progress=lambda _: None)
    assert str(e.value).startswith("The run s-classifier refused to start: No label of dataset scene is left")
    folder = _isolated_workspace / "models" / "s"
    assert _failed(folder) == str(e.value)
    record = json.loads(RunLayout(folder).study.read_text())
    assert record["runs"]["classifier"] == "s-classifier" and record["runs"]["siamese"] is None
    assert [s["state"] for s in record["stages"]] == ["done", "failed", "skipped", "skipped"]


def test_a_repeat_of_what_is_not_a_study_is_one_sentence(_isolated_workspace, tmp_path, capsys):
    page = tmp_path / "page.html"
    page.write_text("<html><body>not a report</body></html>")
    for source, sentence in (
        ("nothing", "There is no report, study or run 'nothing'"),
        (str(page), "The file page.html is not an OLR study report"),
    ):
        assert cli.main(["study", "--from", source, "--dry-run"]) == 2
        assert capsys.readouterr().err.startswith(f"error: {sentence}")
