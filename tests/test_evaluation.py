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

    # example tiles per outcome, for the Evaluate page
    t = thr["uniform"]
    p0, y0 = pred["probabilities"][:, 0], pred["y_true"][:, 0].astype(bool)
    for kind, expected in (("fp", ~y0 & (p0 >= t)), ("fn", y0 & (p0 < t))):
        rows, probs = evaluation.error_tiles("cls", names[0], t, kind, n=3)
        assert len(rows) == min(3, expected.sum()) and set(rows) <= set(test_idx[expected])
        assert list(probs) == sorted(probs, reverse=(kind == "fp"))
    with pytest.raises(OLRError, match="no label"):
        evaluation.error_tiles("cls", "Nope", 0.5, "fp")


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
