"""Training runs through the real CLI: run folders, live metrics, SIGTERM, resume, kill -9,
mirrored training on two logical CPUs, config validation and every bad-input case."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from olr import cli
from olr.data.dataset import load_dataset
from olr.errors import OLRError
from olr.runs import store
from olr.training import fit, lifecycle, losses, models, options
from olr.training import plan as training_plan
from olr.workflows import train
from olr.workspace import REPO_ROOT
from tests.fixtures.runs import (
    TINY_CLASSIFIER,
    TINY_SIAMESE,
    make_tiny_dataset,
    olr_env,
    start_train_cli,
    train_cli,
    wait_for,
)

pytestmark = pytest.mark.both_backends


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


# --- end to end ------------------------------------------------------------------------------


def test_classifier_run_folder_is_complete(trained_classifier_run):
    run_dir = trained_classifier_run
    for name in (
        "config.json",
        "status.json",
        "metrics.jsonl",
        "console.log",
        "best.keras",
        "last.keras",
        "train_state.json",
    ):
        assert (run_dir / name).is_file(), name
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary files left
    cfg = json.loads((run_dir / "config.json").read_text())
    ds = load_dataset(run_dir.parent.parent / "data" / "tiny")
    assert cfg["kind"] == "classifier" and cfg["dataset"] == "tiny" and cfg["tile_shape"] == [16, 16, 3]
    assert cfg["labels"] == ds.meta["labels"] and cfg["n_train"] == len(ds.split_indices("train"))
    assert cfg["dataset_checksum"].startswith("sha256:") and cfg["learning_rate"] == 0.01
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["device"] == "CPU" and status["ended"] >= status["started"]
    per_epoch = cfg["n_train"] // 16
    assert status["epoch"] == 2 and status["step"] == 2 * per_epoch
    lines = _metrics(run_dir)
    steps = [r for r in lines if r["scope"] == "step"]
    assert [r["step"] for r in steps] == list(range(2, 2 * per_epoch + 1, 2))
    val = [r for r in lines if r["split"] == "val"]
    assert [r["epoch"] for r in val] == [1, 2]
    for key in ("loss", "binary_accuracy", "micro_f1", "macro_f1", "micro_f2", "macro_f2", "macro_pr_auc"):
        assert all(0 <= r[key] < 10 for r in val), key
    state = json.loads((run_dir / "train_state.json").read_text())
    assert state["epoch"] == 2 and state["monitor"] == "val_macro_pr_auc"
    assert state["best"] == max(r["macro_pr_auc"] for r in val)
    model = models.load_model(store.RunLayout(run_dir).best)
    assert model.output_shape == (None, len(cfg["labels"]))


def test_classifier_learns_the_tiny_dataset(trained_classifier_run):
    lines = [r for r in _metrics(trained_classifier_run) if r["scope"] == "epoch" and r["split"] == "train"]
    assert lines[-1]["loss"] < lines[0]["loss"]


def test_siamese_run_folder_is_complete(trained_siamese_run, trained_classifier_run):
    cfg = json.loads((trained_siamese_run / "config.json").read_text())
    ccfg = json.loads((trained_classifier_run / "config.json").read_text())
    assert cfg["kind"] == "siamese" and cfg["classifier_run"] == "cls" and cfg["labels"] == ccfg["labels"]
    assert cfg["trunk"] == "resnet" and cfg["embedding_dim"] == 4
    # the trunk started as the classifier's, so it keeps the classifier's batch-norm statistics (the default)
    assert cfg["trunk_statistics"] == "classifier"
    console = (trained_siamese_run / "console.log").read_text()
    assert "Siamese trunk initialised from the classifier" in console
    assert "trunk batch-norm statistics: the classifier's, kept" in console
    assert json.loads((trained_siamese_run / "status.json").read_text())["state"] == "finished"
    lines = _metrics(trained_siamese_run)
    assert [r["epoch"] for r in lines if r["split"] == "val"] == [1, 2]
    assert all(r["loss"] >= 0 for r in lines)
    pair = models.load_model(store.RunLayout(trained_siamese_run).last)
    assert pair.get_layer("embedder").output_shape == (None, len(cfg["labels"]), 4)
    assert json.loads((trained_siamese_run / "train_state.json").read_text())["monitor"] == "val_loss"


def test_a_run_just_trained_is_evaluated_in_batches_of_its_training_batch():
    from olr.workflows.train import EVALUATION_BATCH, evaluation_batch

    # so evaluating in the training process needs no more memory than a training step did
    assert evaluation_batch({"kind": "classifier", "batch_size": 48}) == 48
    assert evaluation_batch({"kind": "siamese", "batch_size": 32}) == 64  # a pair is two tiles
    assert evaluation_batch({"kind": "classifier", "model": "registered"}) == EVALUATION_BATCH  # no batch of its own


def test_metrics_appear_live_then_sigterm_stops_cleanly_and_resume_continues(workspace_with_runs):
    training_workspace = workspace_with_runs  # a private copy: the shared workspace keeps only cls and siam
    proc = start_train_cli(
        training_workspace,
        *TINY_CLASSIFIER,
        "--epochs",
        "50",
        "--log-every-steps",
        "1",
        "--run-id",
        "live",
        "--no-evaluate",
        OLR_HEARTBEAT_S="0.5",
    )
    run_dir = training_workspace / "models" / "live"
    try:
        # metrics lines are readable by another process while training runs
        def enough_lines():
            return (run_dir / "metrics.jsonl").exists() and len(_metrics(run_dir)) >= 9 and proc.poll() is None

        wait_for(enough_lines, 120, "nine metrics lines", 0.1)
        live = store.read_metrics(run_dir)
        assert proc.poll() is None
        assert store.load_run(run_dir).state == "running"
        assert len(live) >= 9 and set(live["split"]) >= {"train", "val"}
        status = json.loads((run_dir / "status.json").read_text())
        assert status["pid"] == proc.pid and time.time() - status["heartbeat"] < 30
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == lifecycle.EXIT_STOPPED, out[-3000:]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "stopped" and status["ended"]
    state = json.loads((run_dir / "train_state.json").read_text())
    done = state["epoch"]
    assert done < 50
    assert keras.models.load_model(run_dir / "last.keras").optimizer.iterations.numpy() == state["step"]
    steps_before = state["step"]

    proc = train_cli(training_workspace, "--resume", "live", "--set", f"epochs={done + 1}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = json.loads((run_dir / "train_state.json").read_text())
    per_epoch = json.loads((run_dir / "config.json").read_text())["n_train"] // 16
    assert state["epoch"] == done + 1 and state["step"] == steps_before + per_epoch
    lines = _metrics(run_dir)
    assert [r["step"] for r in lines] == sorted(r["step"] for r in lines)  # steps continue, never restart
    assert max(r["epoch"] for r in lines if r["split"] == "val") == done + 1
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    assert keras.models.load_model(run_dir / "last.keras").optimizer.iterations.numpy() == state["step"]
    assert "resuming classifier run live" in (run_dir / "console.log").read_text()


def test_run_killed_with_sigkill_is_reported_dead(workspace_with_runs):
    training_workspace = workspace_with_runs
    proc = start_train_cli(
        training_workspace,
        *TINY_CLASSIFIER,
        "--epochs",
        "50",
        "--run-id",
        "killed",
        "--no-evaluate",
        OLR_HEARTBEAT_S="0.2",
    )
    run_dir = training_workspace / "models" / "killed"
    try:
        wait_for(lambda: store.read_json(run_dir / "status.json").get("state") == "running", 120, "state running", 0.1)
        assert store.load_run(run_dir).state == "running"
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = store.read_json(run_dir / "status.json")
    assert status["state"] == "running"  # the process could not say anything
    assert store.load_run(run_dir).state == "dead"  # its pid is gone
    # on another host only the heartbeat tells: stale after the configured threshold
    remote = {**status, "host": "elsewhere"}
    assert store.liveness(remote, stale_after_s=3600) == "running"
    time.sleep(0.6)
    assert store.liveness(remote, stale_after_s=0.5) == "dead"
    assert store.liveness({**status, "host": "elsewhere", "heartbeat": time.time()}, stale_after_s=0.5) == "running"


#: what splits the batches between two logical CPUs on the backend these tests run on (the README's test
#: command runs this file on both): tf.distribute on TensorFlow, keras.distribution on JAX
DATA_PARALLEL_ENGINE = "DataParallel" if os.environ.get("KERAS_BACKEND") == "jax" else "MirroredStrategy"


def test_two_logical_cpus_train_data_parallel(workspace_with_runs):
    training_workspace = workspace_with_runs
    # odd batch size and an odd number of validation tiles: both must split between the replicas
    proc = train_cli(
        training_workspace,
        *TINY_CLASSIFIER,
        "--epochs",
        "1",
        "--batch-size",
        "15",
        "--max-train-tiles",
        "32",
        "--max-val-tiles",
        "37",
        "--run-id",
        "mirrored",
        "--no-evaluate",
        "--logical-cpus",
        "2",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = training_workspace / "models" / "mirrored"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and DATA_PARALLEL_ENGINE in status["device"] and "x2" in status["device"]
    assert [r["split"] for r in _metrics(run_dir) if r["scope"] == "epoch"] == ["train", "val"]
    assert (run_dir / "best.keras").is_file()

    proc = train_cli(
        training_workspace,
        *TINY_SIAMESE,
        "--epochs",
        "1",
        "--batch-size",
        "15",
        "--pairs-per-epoch",
        "30",
        "--val-pairs",
        "33",
        "--classifier-run",
        "cls",
        "--run-id",
        "mirrored-siamese",
        "--no-evaluate",
        OLR_LOGICAL_CPUS="2",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    status = json.loads((training_workspace / "models" / "mirrored-siamese" / "status.json").read_text())
    assert status["state"] == "finished" and DATA_PARALLEL_ENGINE in status["device"]


# --- config ------------------------------------------------------------------------------------


def test_config_defaults_and_sources(tmp_path):
    cfg = options.resolve({"dataset": "d"})
    assert cfg["kind"] == "classifier" and cfg["model"] == "resnet" and cfg["checkpoint_metric"] == "val_macro_pr_auc"
    siamese = options.resolve({"classifier_run": "r"})
    assert siamese["kind"] == "siamese" and siamese["checkpoint_metric"] == "val_loss" and "loss" not in siamese
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"dataset": "d", "epochs": 3, "labels": [{"name": "x"}], "dataset_checksum": "old"}))
    args = type(
        "A",
        (),
        {"config": str(path), "set": ["epochs=4", "shuffle=false"], **{f"opt_{k}": None for k in options.OPTIONS}},
    )()
    args.opt_loss = "focal"
    raw = train.raw_config(args)
    assert raw == {"dataset": "d", "epochs": 4, "shuffle": False, "loss": "focal"}  # derived keys of an old run dropped
    assert options.resolve(raw)["epochs"] == 4


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"dataset": "d", "learnin_rate": 0.1}, ["'learnin_rate'", "did you mean 'learning_rate'"]),
        ({"dataset": "d", "embedding_dim": 4}, ["'embedding_dim'", "siamese runs"]),
        ({"dataset": "d", "learning_rate": -1}, ["learning_rate=-1", "out of range", "greater than 0"]),
        ({"dataset": "d", "epochs": 0}, ["epochs=0", "at least 1"]),
        ({"dataset": "d", "epochs": 2.5}, ["epochs=2.5", "whole number"]),
        ({"dataset": "d", "threshold": 1.5}, ["threshold=1.5", "at most 1"]),
        ({"dataset": "d", "loss": "focall"}, ["loss='focall'", "did you mean 'focal'"]),
        ({"dataset": "d", "shuffle": "maybe"}, ["shuffle='maybe'", "true or false"]),
        ({"dataset": "d", "checkpoint_metric": "val_macro_f3"}, ["checkpoint_metric", "val_macro_f2"]),
        ({}, ["No dataset given"]),
        ({"kind": "siamese"}, ["classifier run"]),
        (
            {"classifier_run": "r", "occlusion_min": 0.8, "occlusion_max": 0.5},
            ["occlusion_min=0.8", "occlusion_max=0.5"],
        ),
        ({"classifier_run": "r", "occlusion_max": 0}, ["occlusion_max=0", "greater than 0"]),
    ],
)
def test_config_errors_are_one_sentence_naming_the_key(raw, words):
    with pytest.raises(OLRError) as err:
        options.resolve(raw)
    message = str(err.value)
    for word in words:
        assert word in message
    assert not re.search(r"[.;!?]\s+[A-Z]", message) and "\n" not in message and message.endswith((".", "?"))


# --- bad input through the CLI: exit 2, one sentence, nothing left behind -------------------


@pytest.fixture
def workspace_with_runs(_isolated_workspace, trained_classifier_run):
    """The per-test workspace holding a copy of the tiny dataset and the finished classifier run."""
    home = _isolated_workspace
    shutil.copytree(trained_classifier_run.parent.parent / "data" / "tiny", home / "data" / "tiny")
    shutil.copytree(trained_classifier_run, home / "models" / "cls")
    return home


def _fails(argv, capsys, *words):
    before = sorted(p.name for p in (Path(os.environ["OLR_HOME"]) / "models").glob("*"))
    code = cli.main(["train", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    for word in words:
        assert word in err, err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    after = sorted(p.name for p in (Path(os.environ["OLR_HOME"]) / "models").glob("*"))
    assert after == before  # no run folder was created
    return err


def test_unknown_dataset_and_unknown_runs(workspace_with_runs, capsys):
    _fails(["--dataset", "nope"], capsys, "nope")
    _fails(["--kind", "siamese", "--classifier-run", "nope"], capsys, "nope")
    _fails(["--resume", "nope"], capsys, "nope")
    _fails(["--dataset", "tiny", "--run-id", "../escape"], capsys, "../escape")
    _fails(["--dataset", "tiny", "--run-id", "cls"], capsys, "already exists", "--resume cls")
    _fails(["--dataset", "tiny", "--set", "lerning_rate=1"], capsys, "did you mean 'learning_rate'")
    _fails(["--dataset", "tiny", "--batch-size", "0"], capsys, "batch_size=0")


def test_bad_input_from_the_real_command_line(workspace_with_runs):
    proc = subprocess.run(
        [sys.executable, "-m", "olr", "train", "--dataset", "tiny", "--epochs", "-3"],
        cwd=REPO_ROOT,
        env=olr_env(workspace_with_runs),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: The config value epochs=-3 is out of range; use a number at least 1 and at most 100000."
    )
    assert sorted(p.name for p in (workspace_with_runs / "models").iterdir()) == ["cls"]


def test_siamese_needs_a_finished_matching_classifier(workspace_with_runs, capsys):
    home = workspace_with_runs
    # a classifier run that is not finished
    shutil.copytree(home / "models" / "cls", home / "models" / "unfinished")
    status = json.loads((home / "models" / "unfinished" / "status.json").read_text())
    (home / "models" / "unfinished" / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    _fails(["--kind", "siamese", "--classifier-run", "unfinished"], capsys, "unfinished", "stopped, not finished")
    # a dataset with another tile size or band count
    make_tiny_dataset(home / "data" / "tiny32", n_tiles=48, tile=32)
    _fails(
        ["--kind", "siamese", "--classifier-run", "cls", "--dataset", "tiny32"], capsys, "(32, 32, 3)", "(16, 16, 3)"
    )
    make_tiny_dataset(home / "data" / "nir", n_tiles=48, bands=4)
    _fails(["--kind", "siamese", "--classifier-run", "cls", "--dataset", "nir"], capsys, "(16, 16, 4)", "(16, 16, 3)")
    # a dataset with other labels (and no per-code fractions to regroup)
    make_tiny_dataset(home / "data" / "other", codes=(112, 211, 311, 512), with_code_fractions=False)
    _fails(
        ["--kind", "siamese", "--classifier-run", "cls", "--dataset", "other"], capsys, "'Sea and ocean'", "same labels"
    )
    # a run that is not a classifier run
    shutil.copytree(home / "models" / "cls", home / "models" / "not-a-classifier")
    cfg = json.loads((home / "models" / "not-a-classifier" / "config.json").read_text())
    (home / "models" / "not-a-classifier" / "config.json").write_text(json.dumps({**cfg, "kind": "siamese"}))
    _fails(
        ["--kind", "siamese", "--classifier-run", "not-a-classifier"], capsys, "is a siamese run, not a classifier run"
    )


def test_resume_refuses_changes_and_finished_runs(workspace_with_runs, capsys):
    _fails(["--resume", "cls"], capsys, "already trained 2 of 2 epochs", "epochs=N")
    _fails(["--resume", "cls", "--set", "learning_rate=0.5"], capsys, "learning_rate cannot change")


def test_label_missing_from_training_split(_isolated_workspace, capsys):
    home = _isolated_workspace
    make_tiny_dataset(home / "data" / "gap", absent_in_train=523)
    _fails(
        ["--dataset", "gap", "--on-missing-label", "error"], capsys, "'Sea and ocean'", "never occurs", "training split"
    )
    pruned = training_plan.prepare({"dataset": "gap"})  # default: prune
    assert [d["name"] for d in pruned.cfg["labels"]] == [
        "Discontinuous urban fabric",
        "Non-irrigated arable land",
        "Broad-leaved forest",
    ]
    assert pruned.cfg["pruned_labels"] == ["Sea and ocean"] and pruned.y_train.shape[1] == 3
    assert any("Sea and ocean" in note for note in pruned.notes)
    warned = training_plan.prepare({"dataset": "gap", "on_missing_label": "warn"})
    assert len(warned.cfg["labels"]) == 4 and warned.y_train[:, 3].sum() == 0
    assert any(note.startswith("WARNING") and "Sea and ocean" in note for note in warned.notes)


def test_pruning_and_schemes(_isolated_workspace):
    home = _isolated_workspace
    make_tiny_dataset(home / "data" / "tiny")
    with pytest.raises(OLRError, match="No label of dataset tiny is left"):
        training_plan.prepare({"dataset": "tiny", "prune_below": 10_000})
    plan = training_plan.prepare({"dataset": "tiny", "scheme": "level1"})  # regrouped from per-code fractions
    names = [d["name"] for d in plan.cfg["labels"]]
    assert names == ["Artificial surfaces", "Agricultural areas", "Forest and semi natural areas", "Water bodies"]
    ds_presence = plan.dataset.presence[plan.train_idx]
    np.testing.assert_array_equal(plan.y_train, ds_presence)  # one code per level-1 class here
    assert plan.cfg["val_all_absent_accuracy"] == pytest.approx(1 - plan.y_val.mean())
    small = training_plan.prepare({"dataset": "tiny", "max_train_tiles": 20, "max_val_tiles": 5})
    assert len(small.train_idx) == 20 and len(small.val_idx) == 5
    assert list(small.train_idx) == sorted(small.train_idx)


def test_early_stopping_keeps_the_best_checkpoint(_isolated_workspace, capsys):
    """In-process run: with a learning rate of ~0 the validation score cannot improve after
    epoch 1, so patience 1 stops after epoch 2 of 5; best.keras stays the epoch-1 model.
    The run also trains with the asymmetric loss, random shifts and brightness/contrast jitter,
    and its checkpoints load with that loss."""
    home = _isolated_workspace
    make_tiny_dataset(home / "data" / "tiny")
    code = cli.main(
        [
            "train",
            "--dataset",
            "tiny",
            "--model",
            "thesis",
            "--width",
            "0.0625",
            "--epochs",
            "5",
            "--learning-rate",
            "1e-12",
            "--early-stopping-patience",
            "1",
            "--augment",
            "false",
            "--augment-shift",
            "true",
            "--augment-jitter",
            "true",
            "--loss",
            "asl",
            "--run-id",
            "early",
            "--no-evaluate",
        ]
    )
    assert code == 0, capsys.readouterr().err
    run_dir = home / "models" / "early"
    state = json.loads((run_dir / "train_state.json").read_text())
    assert state["epoch"] == 2 and state["early_stopped"] is True and state["best_epoch"] == 1
    assert [r["epoch"] for r in _metrics(run_dir) if r["split"] == "val"] == [1, 2]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
    log = (run_dir / "console.log").read_text()  # stdout was copied into the run's console log
    assert "early stopping: val_macro_pr_auc did not improve for 1 epochs" in log
    best, last = models.load_model(store.RunLayout(run_dir).best), models.load_model(store.RunLayout(run_dir).last)
    assert all(np.allclose(b, w, atol=1e-6) for b, w in zip(best.get_weights(), last.get_weights()))
    cfg = json.loads((run_dir / "config.json").read_text())
    assert (cfg["loss"], cfg["augment_shift"], cfg["augment_jitter"]) == ("asl", True, True)
    resumable = keras.models.load_model(store.RunLayout(run_dir).last)  # compiled, as a resumed run loads it
    assert isinstance(resumable.loss, losses.AsymmetricLoss) and resumable.loss.margin == 0.05
    # it computed at the compute precision "auto" decided here, and left this process's policy as it found it
    precision = fit.compute_policy("auto", on_gpu=False)
    assert json.loads((run_dir / "status.json").read_text())["precision"] == precision
    assert json.loads((run_dir / "status.json").read_text())["backend"] == keras.backend.backend() in log
    assert f"compute precision {precision} (auto)" in log
    assert {layer.dtype_policy.name for layer in best.layers if isinstance(layer, keras.layers.Conv2D)} == {precision}
    assert keras.config.dtype_policy().name == "float32"


def test_siamese_accepts_a_classifier_trained_on_another_scheme(_isolated_workspace, tiny_dataset):
    """A classifier trained with combined labels (thesis C3) on a level-3 dataset: the Siamese
    run regroups the dataset's per-code fractions into the same labels, even when the scene
    lacks some codes of a combined label."""
    import json
    import shutil

    from olr.data import label_schemes
    from olr.data.dataset import load_dataset
    from olr.training import options
    from olr.training.plan import prepare_siamese

    home = _isolated_workspace
    shutil.copytree(tiny_dataset, home / "data" / "tiny")
    ds = load_dataset(home / "data" / "tiny")
    present = set(ds.codes)
    labels = [lab for lab in label_schemes.get_scheme("thesis_c3").labels if present.intersection(lab.codes)]
    assert any(set(lab.codes) - present for lab in labels)  # some codes of a kept label are absent
    crun = home / "models" / "c3"
    crun.mkdir(parents=True)
    (crun / "best.keras").write_bytes(b"not read by the plan")
    (crun / "config.json").write_text(
        json.dumps(
            {
                "kind": "classifier",
                "dataset": "tiny",
                "labels": [lab.to_json() for lab in labels],
                "tile_shape": list(ds.tile_shape),
                "model": "resnet",
            }
        )
    )
    (crun / "status.json").write_text(json.dumps({"state": "finished"}))

    plan = prepare_siamese(options.resolve({"kind": "siamese", "classifier_run": "c3"}))
    assert [d["name"] for d in plan.cfg["labels"]] == [lab.name for lab in labels]
    expected = ds.fractions_for(labels)
    assert expected.shape == (ds.n_tiles, len(labels)) and expected.sum() > 0

    # A label none of whose codes occur in the dataset cannot be rebuilt: one sentence, no run.
    absent = next(lab for lab in label_schemes.get_scheme("level3").labels if lab.codes[0] not in present)
    cfg = json.loads((crun / "config.json").read_text())
    cfg["labels"].append(absent.to_json())
    (crun / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(OLRError, match="does not have the labels"):
        prepare_siamese(options.resolve({"kind": "siamese", "classifier_run": "c3"}))
