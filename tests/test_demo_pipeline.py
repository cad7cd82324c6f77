"""`olr demo` is the study (`olr.workflows.study`) on the demo scene, checked against the demo's targets.

The study's real end-to-end run is tests/test_study.py's, on a dataset that is not the demo; here
only what the demo adds: its flags, the demo dataset and its targets."""

import json

import pytest

from olr import cli
from olr.runs import store
from olr.runs.store import RunLayout
from olr.workflows import study


def test_demo_help_keeps_its_flags(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--quick", "--run-prefix", "--json"):
        assert flag in out


def test_a_launched_demo_is_the_study_of_the_demo_dataset_with_its_targets(_isolated_workspace, capsys):
    # The launcher's folder for the demo, and a run already named like one of its runs: the study
    # refuses in its dataset stage, before preparing the demo dataset or training anything.
    folder = _isolated_workspace / "models" / "t"
    folder.mkdir(parents=True)
    store.write_status(folder, {"state": "queued", "pid": 1, "heartbeat": 0.0})
    (_isolated_workspace / "models" / "t-siamese").mkdir()
    assert cli.main(["demo", "--quick", "--run-prefix", "t"]) == 2
    assert capsys.readouterr().err == "error: The run t-siamese already exists; choose another study id.\n"
    record = json.loads(RunLayout(folder).study.read_text())
    assert record["dataset"] == "demo" and record["quick"] is True
    assert record["targets"] == study.TARGETS
    assert record["settings"] == study.study_settings(quick=True)
    assert record["state"] == "failed" and store.read_status(folder)["state"] == "failed"
    assert not (_isolated_workspace / "data" / "demo").exists()
