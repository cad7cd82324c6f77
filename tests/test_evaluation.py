"""evaluate_run end to end on real trained runs (tests/fixtures/runs.py), the thesis trap, bad input."""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from olr import workspace
from olr.analysis import evaluation, metrics
from olr.errors import OLRError
from olr.runs import store


def copy_runs(training_workspace, *run_ids):
    """Copy the fixture dataset and runs into this test's workspace (fixtures stay untouched)."""
    home = workspace.home()
    shutil.copytree(training_workspace / "data" / "tiny", home / "data" / "tiny", dirs_exist_ok=True)
    for run_id in run_ids:
        shutil.copytree(training_workspace / "models" / run_id, home / "models" / run_id)
    return home


def cli(*args, timeout=300):
    command = [sys.executable, "-m", "olr", *args]
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=timeout)


def _keras_predict(run_path, images):
    import keras

    import olr.training.models  # noqa: F401  (custom layers)

    model = keras.models.load_model(run_path / "best.keras", compile=False)
    return np.asarray(model.predict(images.astype(np.float32), verbose=0))


def test_evaluate_classifier_run_writes_consistent_outputs(trained_classifier_run, training_workspace):
    home = copy_runs(training_workspace, "cls")
    shutil.rmtree(home / "models" / "cls" / "evaluation", ignore_errors=True)
    summary = evaluation.evaluate_run("cls")
    out = home / "models" / "cls" / "evaluation"
    files = sorted(p.name for p in out.iterdir())
    assert files == ["per_label.csv", "summary.json", "test_predictions.npz", "thresholds.json"]
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))

    run = store.load_run("cls")
    from olr.data.dataset import load_dataset

    ds = load_dataset("tiny")
    test_idx = ds.split_indices("test")
    names = run.label_names
    # targets: the dataset's area fractions against its min_fraction, independently of olr code
    mf = ds.meta["min_fraction"]
    own = [ds.label_names.index(n) for n in names]
    expected_y = (np.asarray(ds.fractions)[test_idx][:, own] >= mf).astype(np.uint8)
    pred = evaluation.load_predictions("cls")
    assert np.array_equal(pred["indices"], test_idx) and np.array_equal(pred["y_true"], expected_y)
    assert np.allclose(pred["probabilities"], _keras_predict(run.path, ds.images[test_idx]), atol=1e-5)

    assert summary["baseline_accuracy"] == pytest.approx(1 - expected_y.mean())
    thr = json.loads((out / "thresholds.json").read_text())
    lo, hi = metrics.THRESHOLD_RANGE
    assert thr["configured"] == run.config["threshold"] and lo <= thr["uniform"] <= hi
    assert list(thr["per_label"]) == names and all(lo <= t <= hi for t in thr["per_label"].values())

    table = pd.read_csv(out / "per_label.csv")
    assert list(table["label"]) == names and table["support"].tolist() == expected_y.sum(0).tolist()
    for mode in evaluation.MODES:
        for col in ("threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "f2"):
            assert f"{col}_{mode}" in table.columns
    # the Evaluate page's slider path reproduces the stored table without the model
    per_label = np.array([thr["per_label"][n] for n in names])
    for mode, t in (("uniform", thr["uniform"]), ("per_label", per_label), ("configured", thr["configured"])):
        m = evaluation.metrics_at("cls", t)
        assert m.tp.tolist() == table[f"tp_{mode}"].tolist() and m.fp.tolist() == table[f"fp_{mode}"].tolist()
        assert m.micro["f2"] == pytest.approx(summary["modes"][mode]["micro"]["f2"], nan_ok=True)
        assert (m.tp + m.fp + m.fn + m.tn == len(test_idx)).all()
    assert isinstance(summary["diagnostics"], list) and 0 <= summary["probability_saturation"] <= 1

    # thresholds come from the validation predictions (stored beside the test ones), never from test
    val_idx = ds.split_indices("val")
    val = evaluation.split_predictions(pred, "val")
    assert np.array_equal(val["indices"], val_idx)
    assert np.allclose(val["probabilities"], _keras_predict(run.path, ds.images[val_idx]), atol=1e-5)
    assert thr["tuned_on"] == summary["tuned_on"] == "val"
    assert thr["uniform"] == metrics.tune_uniform_threshold(val["y_true"], val["probabilities"], fallback=0.5)[0]
    # each split's report names its split, its modes and its intervals over the split's blocks
    blocks = ds.tiles["block_id"].to_numpy()
    for split, idx in (("test", test_idx), ("val", val_idx)):
        report = evaluation.split_figures(summary, split)
        assert report["split"] == split and report["tuned_here"] == (split == "val")
        assert report["n_tiles"] == len(idx) and report["n_blocks"] == len(np.unique(blocks[idx]))
        assert any("spatial block" in w for w in report["interval_warnings"])  # 3 blocks: too few
        for key, name in evaluation.MODE_NAMES.items():
            mode = report["modes"][key]
            assert mode["mode"] == name and set(mode["intervals"]) == set(evaluation.INTERVAL_FIGURES)
            at = evaluation.metrics_at("cls", np.array(summary["thresholds"][key]), split=split)
            assert mode["micro"]["f2"] == pytest.approx(at.micro["f2"], nan_ok=True)
            assert mode["intervals"]["micro_f2"]["estimate"] == pytest.approx(at.micro["f2"], nan_ok=True)
            assert mode["samples"]["f2"] == pytest.approx(at.samples["f2"], nan_ok=True)
        assert report["macro_ap_interval"]["estimate"] == pytest.approx(report["modes"]["configured"]["macro"]["ap"])

    # example tiles per outcome, for the Evaluate page
    t = thr["uniform"]
    p0, y0 = pred["probabilities"][:, 0], pred["y_true"][:, 0].astype(bool)
    for kind, expected in (("fp", ~y0 & (p0 >= t)), ("fn", y0 & (p0 < t))):
        rows, probs = evaluation.error_tiles("cls", names[0], t, kind, n=3)
        assert len(rows) == min(3, expected.sum()) and set(rows) <= set(test_idx[expected])
        assert list(probs) == sorted(probs, reverse=(kind == "fp"))
    with pytest.raises(OLRError, match="no label"):
        evaluation.error_tiles("cls", "Nope", 0.5, "fp")


def test_evaluate_command_prints_figures_with_intervals_mode_and_split(trained_classifier_run, training_workspace):
    home = copy_runs(training_workspace, "cls")
    shutil.rmtree(home / "models" / "cls" / "evaluation", ignore_errors=True)
    proc = cli("evaluate", "cls", "--resamples", "40")
    assert proc.returncode == 0, proc.stderr
    summary = evaluation.read_summary("cls")
    val = evaluation.split_figures(summary, "val")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"Run cls on tiny, validation split (val): {val['n_tiles']} tiles in 3 spatial blocks")
    assert "fitted to these validation tiles" in proc.stdout and "95% interval" in proc.stdout
    for key, name in evaluation.MODE_NAMES.items():
        row = next(line for line in lines if line.startswith(name + " "))
        band = val["modes"][key]["intervals"]["micro_f2"]
        assert f"{val['modes'][key]['micro']['f2']:.3f} [{band['low']:.3f}, {band['high']:.3f}]" in row
    assert "warning: The validation split has only 3 spatial blocks" in proc.stdout
    assert "evaluate cls --split test" in proc.stdout
    assert all(band["n_resamples"] == 40 for band in val["modes"]["uniform"]["intervals"].values())

    proc = cli("evaluate", "cls", "--split", "test", "--resamples", "40")
    assert proc.returncode == 0, proc.stderr
    test = evaluation.split_figures(evaluation.read_summary("cls"), "test")
    assert proc.stdout.startswith(f"Run cls on tiny, test split (test): {test['n_tiles']} tiles")
    assert "fitted to these" not in proc.stdout and "thresholds tuned on validation" in proc.stdout
    assert f"macro AP {test['modes']['configured']['macro']['ap']:.3f} [" in proc.stdout
    proc = cli("evaluate", "cls", "--resamples", "-1")
    assert proc.returncode == 2 and "--resamples must be 0 or more" in proc.stderr


def _collapse(run_path):
    """Make run_path's best.keras a real model that says "absent" to everything (the thesis's model)."""
    import keras

    import olr.training.models  # noqa: F401

    model = keras.models.load_model(run_path / "best.keras", compile=False)
    last = model.get_layer("probabilities")
    kernel, bias = last.get_weights()
    last.set_weights([np.zeros_like(kernel), np.full_like(bias, -6.0)])
    model.save(run_path / "best.keras")
    epochs = [
        {"step": 10 * e, "epoch": e, "split": "train", "scope": "epoch", "time": time.time(), "loss": 0.2431}
        for e in (1, 2, 3)
    ]
    (run_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in epochs))


def test_collapsed_classifier_reproduces_the_thesis_trap_with_diagnostics(trained_classifier_run, training_workspace):
    home = copy_runs(training_workspace, "cls")
    shutil.move(home / "models" / "cls", home / "models" / "collapsed")
    _collapse(home / "models" / "collapsed")
    summary = evaluation.evaluate_run("collapsed")
    conf = summary["modes"]["configured"]
    assert conf["binary_accuracy"] == pytest.approx(conf["baseline_accuracy"]) and conf["beats_baseline"] is False
    assert conf["micro"]["tp"] == 0 and conf["micro"]["fp"] == 0
    codes = {d["code"] for d in summary["diagnostics"]}
    expected = {"labels_never_predicted", "accuracy_not_above_baseline", "probabilities_saturated"}
    assert expected | {"training_loss_flat"} <= codes
    assert summary["probability_saturation"] == 1.0
    assert any("all-absent baseline" in w for w in summary["warnings"])

    proc = cli("evaluate", "collapsed")
    assert proc.returncode == 0, proc.stderr
    assert "all-absent baseline accuracy" in proc.stdout and "diagnostic:" in proc.stdout and "warning:" in proc.stdout


def test_bad_input_is_one_sentence(trained_classifier_run, trained_siamese_run, training_workspace):
    home = copy_runs(training_workspace, "cls", "siam")
    with pytest.raises(OLRError, match="no run 'nope'"):
        evaluation.evaluate_run("nope")
    # a run still running (live pid, fresh heartbeat)
    status_path = home / "models" / "cls" / "status.json"
    status = json.loads(status_path.read_text())
    status.update(state="running", pid=os.getpid(), heartbeat=time.time(), host=None)
    status_path.write_text(json.dumps(status))
    with pytest.raises(OLRError, match="not finished"):
        evaluation.evaluate_run("cls")
    # a run without stored predictions
    shutil.rmtree(home / "models" / "cls" / "evaluation", ignore_errors=True)
    with pytest.raises(OLRError, match="no test predictions"):
        evaluation.metrics_at("cls", 0.5)
    # a Siamese run whose classifier run is gone
    shutil.rmtree(home / "models" / "cls")
    from olr.analysis import correlations

    with pytest.raises(OLRError, match="classifier run cls of Siamese run siam is gone"):
        correlations.compute_for_run("siam")
    for args, needle in ((("evaluate", "nope"), "nope"), (("correlations", "siam"), "is gone")):
        proc = cli(*args)
        assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ threshold modes, intervals, diagnostics


def _split(split, y, p, blocks):
    return evaluation.SplitPredictions(split, np.arange(len(y)), y.astype(np.uint8), p.astype(np.float32), blocks)


def _shifted_splits():
    """Validation and test predictions whose best thresholds differ: on test every score is lower."""
    rng = np.random.default_rng(5)
    y_val = (rng.random((240, 3)) < 0.3).astype(np.uint8)
    y_test = (rng.random((240, 3)) < 0.3).astype(np.uint8)
    p_val = np.clip(0.35 + 0.4 * y_val + rng.normal(0, 0.08, y_val.shape), 0, 1)
    p_test = np.clip(0.05 + 0.4 * y_test + rng.normal(0, 0.08, y_test.shape), 0, 1)
    blocks = np.arange(240) // 12  # 20 blocks of 12 tiles
    return _split("val", y_val, p_val, blocks), _split("test", y_test, p_test, blocks)


def test_thresholds_are_tuned_on_validation_only_and_reported_as_such():
    val, test = _shifted_splits()
    thresholds = evaluation.tune_thresholds(val, 0.5, 2.0)
    on_val = metrics.tune_uniform_threshold(val.y_true, val.probabilities)[0]
    on_test = metrics.tune_uniform_threshold(test.y_true, test.probabilities)[0]
    assert abs(on_val - on_test) > 0.1  # tuning on test would give another threshold ...
    assert thresholds["uniform"] == on_val  # ... the evaluation uses validation's
    per_val = metrics.tune_per_label_thresholds(val.y_true, val.probabilities, fallback=on_val)[0]
    assert np.array_equal(thresholds["per_label"], per_val)
    names = ["A", "B", "C"]
    test_report, found = evaluation.split_report(test, thresholds, "val", 2.0, names, n_resamples=50)
    val_report, _ = evaluation.split_report(val, thresholds, "val", 2.0, names, n_resamples=50)
    assert test_report["tuned_here"] is False and val_report["tuned_here"] is True
    for key, name in evaluation.MODE_NAMES.items():
        mode = test_report["modes"][key]
        assert mode["mode"] == name and mode["thresholds_from"] == ("run config" if key == "configured" else "val")
    assert found["uniform"].thresholds.tolist() == [on_val] * 3
    # the test figures at validation's thresholds are worse than test-tuned ones would be (honest, not optimistic)
    at_test_tuned = metrics.multilabel_metrics(test.y_true, test.probabilities, on_test)
    assert found["uniform"].micro["f2"] < at_test_tuned.micro["f2"]


def test_split_report_has_intervals_per_mode_around_the_estimates():
    val, test = _shifted_splits()
    thresholds = evaluation.tune_thresholds(val, 0.5, 2.0)
    report, found = evaluation.split_report(test, thresholds, "val", 2.0, ["A", "B", "C"], n_resamples=200)
    assert report["n_blocks"] == 20 and report["n_tiles"] == 240 and report["interval_warnings"] == []
    for key in evaluation.MODES:
        bands = report["modes"][key]["intervals"]
        assert set(bands) == set(evaluation.INTERVAL_FIGURES)
        m = found[key]
        for fig, value in (
            ("micro_f2", m.micro["f2"]),
            ("macro_f2", m.macro["f2"]),
            ("samples_f2", m.samples["f2"]),
            ("accuracy", m.accuracy),
        ):
            b = bands[fig]
            assert b["estimate"] == pytest.approx(value) and b["low"] <= value <= b["high"] and b["low"] < b["high"]
            assert b["n_blocks"] == 20 and b["n_resamples"] == 200 and b["level"] == 0.95
    ap = report["macro_ap_interval"]
    assert ap["estimate"] == pytest.approx(found["configured"].macro["ap"]) and ap["low"] < ap["estimate"] < ap["high"]
    # fewer blocks and tiles: a sentence each
    few = _split("test", test.y_true[:48], test.probabilities[:48], test.blocks[:48])
    report, _ = evaluation.split_report(few, thresholds, "val", 2.0, ["A", "B", "C"], n_resamples=20)
    text = " ".join(report["interval_warnings"])
    assert "only 4 spatial blocks" in text and "only 48 tiles" in text and "test split" in text


def test_diagnostics_run_for_every_threshold_mode():
    # label A is rare and scores low: at 0.5 it is never found, a low tuned threshold finds it but
    # calls so many tiles present that accuracy falls below the all-absent baseline
    rng = np.random.default_rng(2)
    n = 200
    y = np.zeros((n, 2), dtype=np.uint8)
    y[:25, 0] = 1
    y[100:120, 1] = 1
    p = np.zeros((n, 2))
    p[:, 0] = np.where(y[:, 0], 0.3, rng.uniform(0.05, 0.35, n))
    p[:, 1] = np.where(y[:, 1], 0.9, 0.1)
    data = _split("test", y, p, np.arange(n) // 10)
    thresholds = {"configured": 0.5, "uniform": 0.5, "per_label": np.array([0.2, 0.5])}
    report, found = evaluation.split_report(data, thresholds, "val", 2.0, ["A", "B"], n_resamples=20)
    by_mode = {}
    for d in report["diagnostics"]:
        by_mode.setdefault(d["mode"], set()).add(d["code"])
    assert {"starved_labels", "labels_without_true_positive", "labels_never_predicted"} <= by_mode["configured"]
    assert "accuracy_not_above_baseline" not in by_mode["configured"] and found["configured"].beats_baseline
    assert not found["per_label"].beats_baseline and "accuracy_not_above_baseline" in by_mode["per_label"]
    assert "starved_labels" not in by_mode["per_label"]
    message = next(d["message"] for d in report["diagnostics"] if d["mode"] == "per_label")
    assert "per-label-tuned" in message and "test tiles" in message
    assert report["modes"]["per_label"]["beats_baseline"] is False
