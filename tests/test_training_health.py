"""Training that says when it went wrong: a loss that becomes NaN fails the run with one sentence,
datasets with non-finite pixels are refused before a run exists, validation macro averages leave
out labels without validation positives, and a best checkpoint that does not beat predicting
every label absent is flagged (status.json, console, `olr runs`, the Live and Evaluate pages)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from olr import atomic, cli
from olr.data.dataset import band_statistics, load_dataset, write_dataset
from olr.data.label_schemes import by_code
from olr.errors import OLRError
from olr.runs import annotations, store
from olr.training import models, options
from olr.training import plan as training_plan
from olr.training.run_callback import below_baseline_flag
from tests.fixtures.pages import open_app
from tests.fixtures.runs import TINY_CODES, train_cli
from tests.test_app_pages import shown

N_TRAIN, N_VAL, N_TEST = 48, 16, 16
SEA = TINY_CODES.index(523)  # the label left out of the validation split below
#: a tiny classifier: in-order batches of 16 (so the step that meets a given tile is known), one epoch
TRAIN_ARGS = ["--width", "0.25", "--depth", "1", "--batch-size", "16", "--epochs", "1", "--log-every-steps", "1"]
TRAIN_ARGS += ["--shuffle", "false", "--augment", "false", "--no-evaluate"]


def write_tiles(folder: Path, images: np.ndarray, presence: np.ndarray, **meta_extra) -> Path:
    """A dataset of `images` (N, h, w, b) and labels TINY_CODES present where `presence` (N, 4) is true,
    split train / val / test in tile order (N_TRAIN, N_VAL, rest)."""
    n, tile = images.shape[0], images.shape[1]
    split = np.array(["train"] * N_TRAIN + ["val"] * N_VAL + ["test"] * (n - N_TRAIN - N_VAL))
    tiles = pd.DataFrame(
        {"tile_id": np.arange(n), "row_off": np.arange(n) * tile, "col_off": np.zeros(n, int), "split": split}
    )
    classes = by_code()
    meta = {
        "name": folder.name,
        "labels": [{"name": classes[c].level3, "codes": [c], "color": classes[c].color} for c in TINY_CODES],
        "tile_size": tile,
        "stride": tile,
        "bands": [{"name": name} for name in ("red", "green", "blue")],  # statistics added by write_dataset
        **meta_extra,
    }
    with atomic.staged_folder(folder, overwrite=True) as tmp:
        write_dataset(
            tmp, images=images, fractions=presence.astype(np.float32) * 0.5, tiles=tiles, meta=meta, min_fraction=0.05
        )
    return folder


def rare_labels(seed: int = 0) -> np.ndarray:
    """(80, 4) bool presence: each label in about 1 tile in 10 at random, at least twice in training and once
    in validation, except Sea and ocean, never in validation."""
    rng = np.random.default_rng(seed)
    presence = rng.random((N_TRAIN + N_VAL + N_TEST, len(TINY_CODES))) < 0.1
    presence[[0, 1], :] = True
    presence[N_TRAIN, :] = True
    presence[N_TRAIN : N_TRAIN + N_VAL, SEA] = False
    return presence


def noise_images(n: int = N_TRAIN + N_VAL + N_TEST, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(n, 8, 8, 3)).astype(dtype)


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


# --- a loss that becomes NaN ------------------------------------------------------------------


def test_a_loss_that_becomes_nan_fails_the_run_naming_epoch_and_step(_isolated_workspace):
    """The dataset slips past the plan's checks (finite statistics, marked finite) but one training
    pixel is infinite: the in-order batch of step 3 (tiles 32-47) holds it."""
    home = _isolated_workspace
    images = noise_images(dtype=np.float32)
    bands = band_statistics(images, [{"name": n} for n in ("red", "green", "blue")])
    images[40, 3, 3, 0] = np.inf
    write_tiles(home / "data" / "inf", images, rare_labels(), bands=bands, finite=True)

    proc = train_cli(home, "--dataset", "inf", *TRAIN_ARGS, "--run-id", "nan")

    pattern = r"The training loss became (NaN|infinite) at epoch 1, step 3, so the run stopped; lower the learning"
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(pattern, proc.stderr), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    run_dir = home / "models" / "nan"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and status["step"] == 3
    assert re.match(pattern, status["error"]) and status["error"].count(". ") == 0  # one sentence
    assert re.search(pattern, (run_dir / "console.log").read_text())
    assert [r["step"] for r in _metrics(run_dir) if r["scope"] == "step"] == [1, 2]  # nothing logged after it


# --- datasets with pixels that are not finite ------------------------------------------------


def test_a_dataset_with_non_finite_band_statistics_is_refused_at_plan_time(_isolated_workspace):
    home = _isolated_workspace
    images = noise_images(dtype=np.float32)
    images[5, 0, 0, 1] = np.nan  # band statistics computed over it are NaN
    write_tiles(home / "data" / "nanpix", images, rare_labels(), finite=True)
    assert np.isnan(load_dataset(home / "data" / "nanpix").meta["bands"][1]["mean"])
    with pytest.raises(OLRError) as refused:
        training_plan.prepare({"dataset": "nanpix"})
    message = str(refused.value)
    assert "dataset nanpix" in message and "mean of band green is nan" in message
    assert message.endswith("prepare it again, which makes such pixels nodata.")
    assert not (home / "models").exists() or not list((home / "models").iterdir())  # no run folder


def test_a_float_dataset_not_marked_finite_is_refused_and_a_marked_one_plans(_isolated_workspace):
    home = _isolated_workspace
    write_tiles(home / "data" / "unchecked", noise_images(dtype=np.float32), rare_labels())
    with pytest.raises(OLRError, match=r"dataset unchecked holds float32 pixels that were never checked .* again"):
        training_plan.prepare({"dataset": "unchecked"})
    write_tiles(home / "data" / "checked", noise_images(dtype=np.float32), rare_labels(), finite=True)
    assert training_plan.prepare({"dataset": "checked"}).cfg["dataset"] == "checked"
    write_tiles(home / "data" / "integers", noise_images(), rare_labels())  # integers cannot be NaN
    assert training_plan.prepare({"dataset": "integers"}).cfg["dataset"] == "integers"


# --- validation metrics and the all-absent baseline ------------------------------------------


def test_rare_labels_run_is_flagged_below_baseline_and_scores_only_labels_with_val_positives(
    _isolated_workspace, capsys, monkeypatch
):
    """Noise images, rare random labels, one epoch at a tiny learning rate: nothing can beat predicting every
    label absent. Sea and ocean has no validation positive, so the validation macro averages leave it out."""
    home = _isolated_workspace
    presence = rare_labels()
    write_tiles(home / "data" / "rare", noise_images(), presence)
    proc = train_cli(home, "--dataset", "rare", *TRAIN_ARGS, "--learning-rate", "1e-5", "--run-id", "rare")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = home / "models" / "rare"
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["val_labels_without_positives"] == ["Sea and ocean"] and cfg["checkpoint_metric"] == "val_macro_pr_auc"
    assert "leave out the labels without validation positives: Sea and ocean" in (run_dir / "console.log").read_text()

    # the logged validation metrics, recomputed from the saved model with Keras's metrics on the label columns
    ds = load_dataset(home / "data" / "rare")
    val_idx = ds.split_indices("val")
    y = presence[val_idx].astype(np.float32)
    p = models.load_model(run_dir / "last.keras").predict(np.asarray(ds.images[val_idx], "float32"), verbose=0)
    val = [r for r in _metrics(run_dir) if r["split"] == "val"][-1]
    scored = [i for i in range(len(TINY_CODES)) if i != SEA]

    def keras_value(metric, columns):
        metric.update_state(y[:, columns], p[:, columns])
        return float(metric.result())

    macro_pr_auc = keras_value(keras.metrics.AUC(curve="PR", multi_label=True, num_labels=3), scored)
    over_all_labels = keras_value(keras.metrics.AUC(curve="PR", multi_label=True, num_labels=4), list(range(4)))
    assert val["macro_pr_auc"] == pytest.approx(macro_pr_auc, abs=1e-5)
    # over all four labels, the one without positives would count as 0 and pull the mean to 3/4 of it
    assert over_all_labels == pytest.approx(val["macro_pr_auc"] * 3 / 4, abs=1e-5) and over_all_labels > 0
    f2 = keras_value(keras.metrics.FBetaScore(average="macro", beta=2.0, threshold=0.5), scored)
    assert val["macro_f2"] == pytest.approx(f2, abs=1e-5)
    assert val["micro_pr_auc"] == pytest.approx(keras_value(keras.metrics.AUC(curve="PR"), list(range(4))), abs=1e-5)
    accuracy = float(((p > 0.5) == y.astype(bool)).mean())
    assert val["binary_accuracy"] == pytest.approx(accuracy, abs=1e-6)  # every label's decisions count

    # the best (only) checkpoint does not beat the all-absent baseline: flagged, and the run still finished
    baseline = 1.0 - y.mean()
    assert cfg["val_all_absent_accuracy"] == pytest.approx(baseline) and accuracy <= baseline
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished"
    [flag] = status["flags"]
    assert flag["kind"] == store.BELOW_BASELINE
    assert f"{accuracy:.4f}" in flag["message"] and f"{baseline:.4f}" in flag["message"]
    assert flag["message"] in (run_dir / "console.log").read_text()
    assert store.load_run(run_dir).flags == [flag]
    assert cli.main(["runs"]) == 0
    assert f"warning: {flag['message']}" in capsys.readouterr().out
    assert cli.main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["flags"] == [flag]
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    for page, state in (("pages/live.py", {"olr.runs": ["rare"]}), ("pages/evaluate.py", {"olr.run": "rare"})):
        at = open_app(page, **state)
        title = annotations.run_title(store.load_run("rare"))
        assert f"Run {title}: {flag['message']}" in [shown(str(w.value)) for w in at.warning], page


def test_a_healthy_run_is_not_flagged(trained_classifier_run):
    cfg = json.loads((trained_classifier_run / "config.json").read_text())
    state = json.loads((trained_classifier_run / "train_state.json").read_text())
    assert state["best_val_binary_accuracy"] > cfg["val_all_absent_accuracy"]
    assert "flags" not in json.loads((trained_classifier_run / "status.json").read_text())
    assert store.load_run(trained_classifier_run).flags == []


def test_the_baseline_comparison_counts_whole_decisions():
    """Accuracies are counts over tiles x labels: a float32 rounding of the baseline itself does not beat it."""
    baseline = 71 / 100
    tied = {"epoch": 2, "binary_accuracy": float(np.float32(baseline)) + 1e-7}
    flag = below_baseline_flag(tied, baseline, 100, "val_macro_pr_auc", 0.5)
    assert flag["kind"] == store.BELOW_BASELINE and "epoch 2, chosen by val_macro_pr_auc" in flag["message"]
    assert below_baseline_flag({"epoch": 2, "binary_accuracy": 72 / 100}, baseline, 100, "val_loss", 0.5) is None


# --- old runs ---------------------------------------------------------------------------------


def test_an_old_run_that_logged_pr_auc_as_macro_ap_still_reads(_isolated_workspace):
    run_dir = _isolated_workspace / "models" / "old"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"kind": "classifier", "checkpoint_metric": "val_macro_ap"}))
    (run_dir / "train_state.json").write_text(json.dumps({"epoch": 1, "step": 4, "monitor": "val_macro_ap"}))
    line = {"step": 4, "epoch": 1, "split": "val", "scope": "epoch", "time": 1.0, "loss": 0.5, "macro_ap": 0.6}
    (run_dir / "metrics.jsonl").write_text(json.dumps({**line, "micro_ap": 0.7}) + "\n")
    run = store.load_run(run_dir)
    df = store.epoch_metrics(run, "val")
    assert df["macro_pr_auc"].tolist() == [0.6] and df["micro_pr_auc"].tolist() == [0.7] and "macro_ap" not in df
    assert run.train_state["monitor"] == "val_macro_pr_auc"
    assert options.upgrade(run.config)["checkpoint_metric"] == "val_macro_pr_auc"
    assert options.resolve({"dataset": "d", "checkpoint_metric": "val_macro_ap"})["checkpoint_metric"] == (
        "val_macro_pr_auc"
    )
