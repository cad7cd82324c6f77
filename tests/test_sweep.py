"""Sweeps: the thesis study and the Siamese study (jobs, validation-only picking, tables from real runs),
and the second demo-like scene the Siamese recipe is checked on."""

import csv
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from olr.errors import OLRError
from olr.training import options
from olr.workflows import study, sweep

REPO = Path(__file__).resolve().parent.parent
SMALL = 256  # 16 tiles of 64 px: a scene in about a second


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
    for key in ("tp", "tn", "fp", "fn"):  # the thesis's test counts, named after their split
        assert row[f"test {key.upper()}"] == sum(int(float(r[f"{key}_configured"])) for r in rows)
    # A sweep from before validation figures: the run's own agreement, named after the split it was computed on.
    agreement = json.loads((trained_siamese_run / "correlations" / "agreement.json").read_text())
    assert agreement["info"]["split"] == "test"
    assert row["test Siamese ρ"] == pytest.approx(agreement["siamese_self"]["spearman"])
    assert "val Siamese ρ" not in table and sweep.best_variant(table) is None  # nothing to pick on validation
    assert 0.0 <= row["val start accuracy"] <= row["val final accuracy"] <= 1.0
    assert table.iloc[1]["configuration"] == "T3 run 2" and table.iloc[1]["state"] == "pending"


def test_validation_figures_go_to_their_own_folder_and_leave_the_test_record(
    _isolated_workspace, training_workspace, trained_classifier_run, trained_siamese_run
):
    from tests.test_correlations import folder_state

    home = _isolated_workspace
    shutil.copytree(training_workspace / "models", home / "models")
    shutil.copytree(training_workspace / "data", home / "data")
    run_dir = home / "models" / trained_siamese_run.name
    test_record = folder_state(run_dir / "correlations")
    result = sweep.siamese_validation(trained_siamese_run.name)
    val = result["val_agreement"]
    assert val["info"]["split"] == "val"
    assert val == json.loads((run_dir / "correlations-val" / "agreement.json").read_text())
    assert folder_state(run_dir / "correlations") == test_record  # not replaced, not rewritten
    # A sweep whose manifest holds no validation figures reads the run's validation folder, named "val".
    job = sweep.Job("variant", "self pairs", {}, classifier_run="cls", siamese_run=run_dir.name, state="finished")
    sweep._save_manifest("s2", {"id": "s2", "preset": "siamese", "dataset": "tiny", "jobs": [job.__dict__]})
    row = sweep.sweep_table("s2").iloc[0]
    assert row["val Siamese ρ"] == pytest.approx(val["siamese_self"]["spearman"])
    assert not [c for c in row.index if c.startswith("test")]


# ---------------------------------------------------------------------------- the Siamese study


def test_siamese_preset_is_one_classifier_and_variants_that_reuse_it():
    for quick in (False, True):
        jobs = sweep.siamese_jobs(n_train_tiles=2184, quick=quick)
        recipe = study.study_settings(quick)
        classifiers = [j for j in jobs if j.classifier_of is None]
        assert [j.name for j in classifiers] == [sweep.STUDY_CLASSIFIER]
        assert classifiers[0].siamese_settings is None  # the classifier row trains no Siamese network
        # The classifier is the study's: one place says what it is.
        assert classifiers[0].settings == recipe["classifier"]
        variants = jobs[1:]
        assert len(variants) == len(sweep.SIAMESE_STUDY) >= 6
        assert all(j.classifier_of == sweep.STUDY_CLASSIFIER and not j.settings for j in variants)
        resolved = {j.name: options.resolve({**j.siamese_settings, "classifier_run": "x"}) for j in variants}
        study_siamese = options.resolve({**recipe["siamese"], "kind": "siamese", "classifier_run": "x"})
        for config in resolved.values():  # the study's Siamese settings under every variant
            assert config["train_steps"] == study_siamese["train_steps"]
            assert config["width"] == study_siamese["width"]
        pairs = {n: c["self_pair_share"] for n, c in resolved.items() if n.startswith("pairs")}
        assert {0.0, 1.0} <= set(pairs.values()) and len(set(pairs.values())) >= 4  # thesis, self only, mixes
        occlusion = {n: (c["occlusion_min"], c["occlusion_max"]) for n, c in resolved.items() if n.startswith("occl")}
        assert len(set(occlusion.values())) == 3
        # The occlusion sizes run at the pair mix that did best on validation: they wait for every pair variant.
        for job in variants:
            if job.name.startswith("occlusion"):
                assert job.inherit_from == list(pairs) and job.inherit == ["self_pair_share"]
            else:
                assert job.inherit_from == []


def test_sweep_jobs_restricted_and_overridden_per_kind():
    jobs = sweep.build_jobs(
        "siamese", 100, quick=True, only=["occlusion-wide"], overrides={"epochs": 1, "val_pairs": 8}
    )
    assert [j.name for j in jobs] == [sweep.STUDY_CLASSIFIER, "occlusion-wide"]  # the classifier it needs comes along
    assert jobs[1].inherit_from == []  # no pair variant in this sweep to inherit from
    assert jobs[0].settings["epochs"] == 1 and "val_pairs" not in jobs[0].settings  # val_pairs is a Siamese option
    assert jobs[1].siamese_settings["epochs"] == 1 and jobs[1].siamese_settings["val_pairs"] == 8
    for bad in ({"no_such_option": 1}, {"epochs": -3}):
        with pytest.raises(OLRError):
            sweep.build_jobs("siamese", 100, overrides=bad)
    with pytest.raises(OLRError, match="no job"):
        sweep.build_jobs("siamese", 100, only=["pairs-typo"])


def _agreement(rho, low, high, prior, classifier, split="val"):
    return {
        "siamese_self": {
            "spearman": rho,
            "pearson": rho,
            "n_pairs": 10,
            "excluded": [],
            "interval": {"low": low, "high": high},
        },
        "classifier_prob": {"spearman": classifier, "pearson": classifier, "n_pairs": 10, "excluded": []},
        "label_prior": {"spearman": prior, "pearson": prior, "n_pairs": 10, "excluded": []},
        "info": {"split": split},
    }


def test_best_variant_is_picked_on_validation_only():
    jobs = [sweep.Job(n, n, {}, siamese_settings={"kind": "siamese"}) for n in ("a", "b", "c")]
    jobs[0].validation = {"val_agreement": _agreement(0.80, 0.70, 0.88, 0.75, 0.9)}
    jobs[1].validation = {"val_agreement": _agreement(0.80, 0.74, 0.85, 0.75, 0.9)}  # same ρ, higher lower bound
    jobs[2].validation = {"val_error": "failed"}
    assert sweep._best_job(jobs).name == "b"
    table = pd.DataFrame(
        [
            {
                "configuration": j.name,
                "settings": "",
                **sweep.agreement_figures(j.validation.get("val_agreement"), "val"),
            }
            for j in jobs
        ]
    )
    table.loc[0, "test Siamese ρ"] = 0.99  # a test figure never picks a row
    assert sweep.best_variant(table)["configuration"] == "b"
    line = sweep.pick_line(table)
    assert line.startswith("picked on validation: b") and "0.740" in line and "label-prior ρ 0.750" in line


# ---------------------------------------------------------------------------- a second scene


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_scene_is_its_own_dataset_and_the_demo_stays_as_it_was(tmp_path):
    from olr.data import demo_scene
    from olr.data.dataset import list_datasets, load_dataset
    from olr.data.demo_scene.demo_dataset import scene_dir_for

    # The demo's parameters are what they were, and its scene is exactly what the generator makes of them.
    assert (demo_scene.DEFAULT_SEED, demo_scene.DEFAULT_SIZE_PX, demo_scene.DEMO_DATASET) == (7, 3584, "demo")
    assert scene_dir_for("demo") == demo_scene.demo_scene_dir()
    demo = load_dataset(demo_scene.ensure_demo_dataset(seed=3, size_px=SMALL))
    demo_scene.generate_scene(tmp_path / "direct", seed=3, size_px=SMALL)
    for name in ("image.tif", "clc.tif", "scene.json"):
        assert _sha(demo_scene.demo_scene_dir() / name) == _sha(tmp_path / "direct" / name), name
    demo_files = {f: _sha(demo.path / f) for f in ("fractions.npy", "images.npy", "tiles.parquet")}

    other = load_dataset(demo_scene.ensure_demo_dataset(seed=5, size_px=SMALL, name="second"))
    assert other.path.name == "second" and scene_dir_for("second").name == "second-scene"
    assert json.loads((scene_dir_for("second") / "scene.json").read_text())["seed"] == 5
    assert list_datasets() == ["demo", "second"]  # scene folders are not datasets
    assert {f: _sha(demo.path / f) for f in demo_files} == demo_files  # the demo untouched
    # Another landscape: other labels or other label shares.
    shares = {n: float(v) for n, v in zip(demo.label_names, np.asarray(demo.presence).mean(0))}
    other_shares = {n: float(v) for n, v in zip(other.label_names, np.asarray(other.presence).mean(0))}
    assert set(shares) != set(other_shares) or max(abs(shares[n] - other_shares[n]) for n in shares) > 0.05

    with pytest.raises(OLRError, match="seed"):  # a new scene needs a seed of its own
        demo_scene.ensure_demo_dataset(size_px=SMALL, name="third")
    with pytest.raises(OLRError, match="-scene"):
        demo_scene.ensure_demo_dataset(seed=5, size_px=SMALL, name="demo-scene")
    shutil.copytree(demo.path, demo.path.with_name("mine"))  # a dataset demo-data did not make is never replaced
    with pytest.raises(OLRError, match="not made by demo-data"):
        demo_scene.ensure_demo_dataset(seed=5, size_px=SMALL, name="mine")
    assert _sha(demo.path.with_name("mine") / "fractions.npy") == demo_files["fractions.npy"]


def test_cli_demo_data_makes_a_named_scene(tmp_path):
    env = dict(os.environ, OLR_HOME=str(tmp_path), PYTHONPATH=str(REPO))
    run = subprocess.run(
        [sys.executable, "-m", "olr", "demo-data", "--name", "scene4", "--seed", "4", "--size", "256"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "demo-like dataset" in run.stdout and "scene: seed 4, 256 x 256" in run.stdout
    assert (tmp_path / "data" / "scene4" / "meta.json").exists() and not (tmp_path / "data" / "demo").exists()


def test_siamese_study_runs_and_is_judged_on_validation(_isolated_workspace, training_workspace):
    """A real tiny study: the classifier, the thesis's random pairs, and an occlusion size at the best pair mix."""
    home = _isolated_workspace
    shutil.copytree(training_workspace / "data", home / "data")
    tiny = {"epochs": 1, "batch_size": 16, "width": 0.25, "log_every_steps": 2, "prune_below": 0}
    tiny |= {"embedding_dim": 4, "pairs_per_epoch": 64, "val_pairs": 32}
    messages = []
    sweep_id = sweep.run_sweep(
        "siamese",
        "tiny",
        ["cpu"],
        quick=True,
        only=["pairs-random", "occlusion-wide"],
        overrides=tiny,
        sweep_id="study",
        poll_s=0.5,
        echo=messages.append,
    )
    jobs = {j["name"]: j for j in sweep.load_manifest(sweep_id)["jobs"]}
    assert [j["state"] for j in jobs.values()] == ["finished"] * 3, messages
    classifier = jobs[sweep.STUDY_CLASSIFIER]["classifier_run"]
    assert {j["classifier_run"] for j in jobs.values()} == {classifier}  # one classifier, reused
    assert len(list((home / "models").glob("*-classifier"))) == 1
    siamese_configs = {
        n: json.loads((home / "models" / j["siamese_run"] / "config.json").read_text())
        for n, j in jobs.items()
        if j["siamese_run"]
    }
    assert {c["classifier_run"] for c in siamese_configs.values()} == {classifier}
    # The occlusion size ran at the pair mix of the best (here the only) pair variant.
    assert siamese_configs["occlusion-wide"]["self_pair_share"] == 0.0
    assert (
        siamese_configs["occlusion-wide"]["occlusion_min"],
        siamese_configs["occlusion-wide"]["occlusion_max"],
    ) == (0.05, 0.5)
    for name in siamese_configs:
        val = jobs[name]["validation"]["val_agreement"]
        assert val["info"]["split"] == "val"
        # The run keeps its own record on the test split; the sweep's figure is a separate validation one.
        run_dir = home / "models" / jobs[name]["siamese_run"]
        own = json.loads((run_dir / "correlations" / "agreement.json").read_text())
        assert own["info"]["split"] == "test" and own["info"]["n_tiles"] != val["info"]["n_tiles"]
        assert val == json.loads((run_dir / "correlations-val" / "agreement.json").read_text())

    table = sweep.sweep_table(sweep_id)
    assert not [c for c in table.columns if c.startswith("test")]  # nothing of the test split in this study's table
    rows = table.set_index("configuration")
    cls = rows.loc[sweep.STUDY_CLASSIFIER]
    summary = json.loads((home / "models" / classifier / "evaluation" / "summary.json").read_text())
    if "validation" in summary:  # the evaluation's validation report: true AP and accuracy, with intervals
        report = summary["validation"]
        assert report["split"] == "val"
        assert cls["val macro AP"] == pytest.approx(report["macro_ap_interval"]["estimate"])
        assert cls["val accuracy (configured threshold)"] == pytest.approx(report["binary_accuracy"])
        assert cls["val all-absent accuracy"] == pytest.approx(report["baseline_accuracy"])
    else:  # an evaluation without one: the metrics log at the best epoch, the baseline the run recorded
        assert 0.0 <= cls["val accuracy (best epoch)"] <= 1.0
        config = json.loads((home / "models" / classifier / "config.json").read_text())
        assert cls["val all-absent accuracy"] == pytest.approx(config["val_all_absent_accuracy"])
    for name in siamese_configs:
        val = jobs[name]["validation"]["val_agreement"]
        assert rows.loc[name, "val Siamese ρ"] == pytest.approx(val["siamese_self"]["spearman"])
        assert rows.loc[name, "val classifier ρ"] == pytest.approx(val["classifier_prob"]["spearman"])
        if "label_prior" in val:  # correlations with references, intervals and a verdict
            assert rows.loc[name, "val label-prior ρ"] == pytest.approx(val["label_prior"]["spearman"])
            assert rows.loc[name, "val verdict"] == val["verdict"]["text"]
            low = val["siamese_self"].get("interval", {}).get("low")
            assert low is None or rows.loc[name, "val Siamese ρ low"] == pytest.approx(low)
    # the highest validation ρ; a tie (tiny runs tie easily) goes to the higher lower end of its interval
    best = max(siamese_configs, key=lambda n: (rows.loc[n, "val Siamese ρ"], rows.loc[n, "val Siamese ρ low"]))
    assert sweep.pick_line(table).startswith(f"picked on validation: {best} ")
