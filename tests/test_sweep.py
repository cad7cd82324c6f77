"""The thesis study as a sweep: its configurations, and its thesis-style table from real runs."""

import csv
import itertools
import json
import shutil

import pytest

from olr.training import options
from olr.workflows import sweep


def _resolved(job: sweep.Job) -> dict:
    """The training config a job launches (its settings hold only what differs from the defaults)."""
    return options.resolve({"kind": "classifier", "dataset": "demo", **job.settings})


def test_thesis_preset_has_tables_3_and_5_plus_our_default():
    jobs = sweep.thesis_jobs(n_train_tiles=2184)
    assert len(jobs) == 12
    table3 = [_resolved(j) for j in jobs[:8]]
    combos = {(c["prune_below"] > 0, c["loss"] == "weighted_bce_batch", c["shuffle"]) for c in table3}
    assert combos == set(itertools.product((True, False), repeat=3))  # all 8 combinations, once each
    # The thesis pruned labels seen in < 100 of 14100 tiles: the same share of this dataset's training tiles.
    assert {c["prune_below"] for c in table3} == {0, round(2184 * 100 / 14100)}
    by_name = {j.name: _resolved(j) for j in jobs}
    assert by_name["T5 combined labels"]["scheme"] == "thesis_c3"
    assert by_name["T5 lowered threshold"]["threshold"] == 0.2
    assert by_name["T5 focal loss"]["loss"] == "focal"
    assert all(by_name[n]["shuffle"] for n in by_name if n.startswith("T5"))  # table 5 used randomized batches
    assert by_name["OLR Studio default"]["model"] == "resnet"
    # Every configuration is a valid training config (names and ranges checked by olr.training.options).
    for job in jobs + sweep.thesis_jobs(2184, quick=True):
        options.resolve({"kind": "classifier", "dataset": "demo", **job.settings})
    options.resolve({"kind": "siamese", "classifier_run": "x", **sweep.SIAMESE_SETTINGS})


def test_sweep_table_reads_the_runs(
    _isolated_workspace, training_workspace, trained_classifier_run, trained_siamese_run
):
    home = _isolated_workspace
    shutil.copytree(training_workspace / "models", home / "models")
    shutil.copytree(training_workspace / "data", home / "data")
    job = sweep.Job(
        "T3 run 1",
        "pruned=yes",
        {},
        classifier_run=trained_classifier_run.name,
        siamese_run=trained_siamese_run.name,
        state="finished",
    )
    missing = sweep.Job("T3 run 2", "never launched", {})
    sweep._save_manifest(
        "s1", {"id": "s1", "preset": "thesis", "dataset": "tiny", "jobs": [job.__dict__, missing.__dict__]}
    )
    assert sweep.list_sweeps() == ["s1"]

    table = sweep.sweep_table("s1")
    row = table.iloc[0]
    with open(trained_classifier_run / "evaluation" / "per_label.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for key in ("tp", "tn", "fp", "fn"):
        assert row[key.upper()] == sum(int(float(r[f"{key}_configured"])) for r in rows)
    agreement = json.loads((trained_siamese_run / "correlations" / "agreement.json").read_text())
    assert row["agreement ρ"] == pytest.approx(agreement["siamese_self"]["spearman"])
    assert 0.0 <= row["start accuracy"] <= row["final accuracy"] <= 1.0
    assert table.iloc[1]["configuration"] == "T3 run 2" and table.iloc[1]["state"] == "pending"
