"""Classifier runs not trained here: a researcher's own model registered as a run, and ensembles of runs.

Real Keras models, saved and loaded as .keras files, real datasets (the tiny fixture dataset and a
small demo scene); the figures of a registered run are checked against scikit-learn on the model's
own predictions, not against our evaluation code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from olr.analysis import compare, evaluation
from olr.data import demo_scene
from olr.data.dataset import load_dataset
from olr.errors import OLRError
from olr.runs import store
from olr.training import models, options
from olr.workflows import teachers, train
from tests.fixtures.pages import open_app
from tests.fixtures.runs import TINY_SIAMESE, make_tiny_dataset, olr_env, train_cli
from ui.text import plain


def _fitted_classifier(ds, label_order: list[int], seed: int, epochs: int = 3):
    """A small classifier of Keras built-ins, trained on `ds`'s standardised training tiles to predict its labels
    in `label_order`: a foreign model that expects standardised input."""
    keras.utils.set_random_seed(seed)
    rows = ds.split_indices("train")
    # whole batches only, as training's pipeline gives them: TensorFlow 2.21's oneDNN kernels crash the process
    # (double free) on a batch-norm model's smaller last batch
    rows = rows[: len(rows) - len(rows) % 32]
    mean = np.array([b["mean"] for b in ds.meta["bands"]], dtype=np.float32)
    std = np.array([b["std"] for b in ds.meta["bands"]], dtype=np.float32)
    x = (np.asarray(ds.images[rows], dtype=np.float32) - mean) / std
    y = ds.presence[rows][:, label_order].astype(np.float32)
    model = keras.Sequential(
        [
            keras.Input(ds.tile_shape),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(label_order), activation="sigmoid"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0)
    return model


def _untrained_classifier(ds):
    """A small model of Keras built-ins that normalises its input itself (quality does not matter here)."""
    mean = [b["mean"] for b in ds.meta["bands"]]
    variance = [b["std"] ** 2 for b in ds.meta["bands"]]
    return keras.Sequential(
        [
            keras.Input(ds.tile_shape),
            keras.layers.Normalization(mean=mean, variance=variance),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(len(ds.label_names), activation="sigmoid"),
        ]
    )


@pytest.fixture
def tiny(_isolated_workspace):
    return load_dataset(make_tiny_dataset(_isolated_workspace / "data" / "tiny"))


def test_a_user_model_with_its_own_label_order_is_evaluated_as_the_model_itself(tiny, tmp_path):
    names = tiny.label_names  # 4 labels; the model predicts them in reverse order
    order = [3, 2, 1, 0]
    user = _fitted_classifier(tiny, order, seed=1)
    path = tmp_path / "my model.keras"
    user.save(path)
    # the model's own names for its outputs: a CLC code, a name in other case, and one named differently
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps([tiny.labels[3].codes[0], names[2].upper(), "Trees", names[0]]))
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"Trees": names[1]}))

    run_dir = teachers.register_model(
        path, "tiny", outputs=outputs, mapping=mapping, input_scaling="standardize", log=lambda _: None
    )
    summary = evaluation.evaluate_run(run_dir.name, n_resamples=50)

    run = store.load_run(run_dir.name)
    assert run.state == store.RunState.FINISHED and run.config["model"] == teachers.REGISTERED
    assert [d["name"] for d in run.config["labels"]] == names  # the dataset's order
    assert run.config["teacher"]["input_scaling"] == "standardize"
    # the oracle: the saved file's own predictions on the standardised test tiles, scored by scikit-learn
    test = tiny.split_indices("test")
    mean = np.array([b["mean"] for b in tiny.meta["bands"]], dtype=np.float32)
    std = np.array([b["std"] for b in tiny.meta["bands"]], dtype=np.float32)
    direct = keras.models.load_model(path).predict((np.asarray(tiny.images[test], np.float32) - mean) / std, verbose=0)
    y = tiny.presence[test]
    per_label = pd.read_csv(run.files.evaluation / "per_label.csv").set_index("label")
    for k, name in enumerate(names):
        want = average_precision_score(y[:, k], direct[:, order.index(k)])
        assert per_label.loc[name, "ap"] == pytest.approx(want, abs=1e-6), name
    assert summary["modes"]["configured"]["macro"]["ap"] == pytest.approx(per_label["ap"].mean(), abs=1e-9)
    stored = evaluation.load_predictions(run)
    assert np.array_equal(stored["indices"], test)
    np.testing.assert_allclose(stored["probabilities"], direct[:, [order.index(k) for k in range(4)]], atol=1e-6)


def test_a_model_that_normalises_itself_needs_no_input_scaling_and_is_checked_against_the_dataset(tiny, tmp_path):
    model = _untrained_classifier(tiny)
    path = tmp_path / "own.keras"
    model.save(path)
    (tmp_path / "outputs.txt").write_text("\n".join(tiny.label_names) + "\n")
    run_dir = teachers.register_model(path, "tiny", outputs=tmp_path / "outputs.txt", log=lambda _: None)
    assert store.load_run(run_dir.name).config["teacher"]["input_scaling"] == "raw"
    # the same model told its input comes as reflectance (x 0.0001): its normalisation says otherwise
    with pytest.raises(OLRError, match=r"normalises its band 1 by mean .* another scale; give --input-scaling"):
        teachers.register_model(
            path, "tiny", outputs=tmp_path / "outputs.txt", input_scaling="0.0001", log=lambda _: None
        )


@pytest.mark.parametrize(
    "case, says",
    [
        ("bands", r"takes tiles of None x None pixels with 4 bands, but the dataset tiny gives 16 x 16 pixels with 3"),
        ("no_scaling", r"does not normalise its input itself, so say what it expects: --input-scaling raw"),
        ("logits", r"not probabilities between 0 and 1; if they are logits .* pass --logits"),
        ("unknown_output", r"output 2 \('Clouds'\) is no label of the dataset tiny .* mapping file"),
        ("twice", r"outputs 1 and 2 both give the label"),
        ("count", r"names 3 outputs, but the model bad.keras gives 4"),
        ("unnamed", r"Nothing names the 4 outputs of the model bad.keras; give --outputs FILE"),
    ],
)
def test_a_model_that_does_not_fit_is_refused_in_one_sentence_and_writes_no_run(tiny, tmp_path, case, says):
    bands = 4 if case == "bands" else 3
    activation = None if case == "logits" else "sigmoid"
    model = keras.Sequential(
        [
            keras.Input((None, None, bands)),
            keras.layers.Conv2D(4, 3, kernel_initializer=keras.initializers.Constant(5.0)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, activation=activation, kernel_initializer=keras.initializers.Constant(3.0)),
        ]
    )
    path = tmp_path / "bad.keras"
    model.save(path)
    names = list(tiny.label_names)
    if case == "unknown_output":
        names[1] = "Clouds"
    if case == "twice":
        names[1] = names[0]
    if case == "count":
        names = names[:3]
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(names))
    with pytest.raises(OLRError, match=says):
        teachers.register_model(
            path,
            "tiny",
            outputs=None if case == "unnamed" else outputs,
            input_scaling=None if case == "no_scaling" else "raw",
            log=lambda _: None,
        )
    assert not any(store.list_runs())


def test_register_command_registers_evaluates_and_says_what_it_assumed(tiny, tmp_path, _isolated_workspace):
    _untrained_classifier(tiny).save(tmp_path / "m.keras")
    (tmp_path / "outputs.txt").write_text("\n".join(str(lab.codes[0]) for lab in tiny.labels))
    cli = [sys.executable, "-m", "olr", "register", str(tmp_path / "m.keras"), "--dataset", "tiny"]
    cli += ["--outputs", str(tmp_path / "outputs.txt"), "--run-id", "mine"]
    done = subprocess.run(cli, env=olr_env(_isolated_workspace), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "takes bands red, green, blue (the dataset's order; --bands to change)" in done.stdout
    run = store.load_run("mine")
    assert evaluation.read_summary(run)["modes"]["configured"]["macro"]["ap"] is not None
    assert run.files.agreement_for("test").is_file()  # its correlations, as after training
    again = subprocess.run(cli, env=olr_env(_isolated_workspace), capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "The run mine already exists" in again.stderr


def test_an_ensemble_of_demo_classifiers_is_at_least_as_good_as_its_best_member_on_validation(_isolated_workspace):
    ds = load_dataset(demo_scene.ensure_demo_dataset(seed=3, size_px=1024))
    n = len(ds.label_names)
    members = []
    for seed in range(3):
        model = _fitted_classifier(ds, list(range(n)), seed=seed, epochs=6)
        path = _isolated_workspace / f"member{seed}.keras"
        model.save(path)
        (_isolated_workspace / "names.txt").write_text("\n".join(ds.label_names))
        run = teachers.register_model(
            path,
            ds.name,
            outputs=_isolated_workspace / "names.txt",
            input_scaling="standardize",
            run_id=f"m{seed}",
            log=lambda _: None,
        )
        members.append(run.name)
    ensemble_dir = teachers.ensemble_runs(members, run_id="ens", log=lambda _: None)
    equal_dir = teachers.ensemble_runs(members, run_id="ens-equal", weights="equal", log=lambda _: None)

    val = ds.split_indices("val")
    x = np.asarray(ds.images[val], dtype=np.float32)
    y = ds.presence[val]
    scored = [k for k in range(n) if y[:, k].sum() > 0]  # labels with validation positives

    def predicted(run_id):
        return models.load_model(store.load_run(run_id).files.best).predict(x, verbose=0)

    def macro_ap(p):
        return np.mean([average_precision_score(y[:, k], p[:, k]) for k in scored])

    member_p = [predicted(m) for m in members]
    member_ap = [macro_ap(p) for p in member_p]
    chosen = store.load_run("ens").config["teacher"]["weights"]
    assert macro_ap(predicted("ens")) >= max(member_ap), (chosen, member_ap)
    assert chosen[int(np.argmax(member_ap))] >= 1  # selection starts from the best member
    # each member enters the mean as often as its weight says; the equal ensemble is the plain mean
    want = np.average(member_p, axis=0, weights=chosen)
    np.testing.assert_allclose(predicted("ens"), want, atol=1e-6)
    np.testing.assert_allclose(predicted("ens-equal"), np.mean(member_p, axis=0), atol=1e-6)
    assert store.load_run("ens-equal").config["teacher"]["members"] == members
    assert compare.teacher_text(store.load_run("ens").config) == "Ensemble of runs (3 runs)"
    assert ensemble_dir.name == "ens" and equal_dir.name == "ens-equal"


def test_an_ensemble_refuses_runs_of_different_datasets_and_a_single_run(tiny, tmp_path, _isolated_workspace):
    other = load_dataset(make_tiny_dataset(_isolated_workspace / "data" / "other", seed=5))
    for ds, run_id in ((tiny, "a"), (other, "b")):
        _untrained_classifier(ds).save(tmp_path / f"{run_id}.keras")
        (tmp_path / "n.txt").write_text("\n".join(ds.label_names))
        teachers.register_model(tmp_path / f"{run_id}.keras", ds.name, outputs=tmp_path / "n.txt", run_id=run_id)
    with pytest.raises(OLRError, match="trained on different datasets"):
        teachers.ensemble_runs(["a", "b"])
    with pytest.raises(OLRError, match="at least two classifier runs"):
        teachers.ensemble_runs(["a"])
    assert sorted(r.id for r in store.list_runs()) == ["a", "b"]


def test_a_siamese_network_trains_against_a_registered_teacher_with_the_default_trunk(
    tiny, tmp_path, _isolated_workspace
):
    _untrained_classifier(tiny).save(tmp_path / "t.keras")
    (tmp_path / "n.txt").write_text("\n".join(tiny.label_names))
    teachers.register_model(tmp_path / "t.keras", "tiny", outputs=tmp_path / "n.txt", run_id="teacher")
    done = train_cli(
        _isolated_workspace, *TINY_SIAMESE, "--classifier-run", "teacher", "--run-id", "s", "--no-evaluate"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    siamese = store.load_run("s")
    assert siamese.state == store.RunState.FINISHED
    assert siamese.config["trunk"] == options.OPTIONS["model"].default  # the teacher's architecture is not ours
    console = (siamese.path / "console.log").read_text()
    assert "trained from scratch" in console
    # a trunk that did not start as the teacher's has no statistics of the teacher's to keep
    assert siamese.config["trunk_statistics"] == "classifier" and "statistics: each batch's" in console
    assert [d["name"] for d in siamese.config["labels"]] == tiny.label_names


def test_registered_and_ensemble_runs_copy_into_another_workspace_and_still_evaluate(tiny, tmp_path):
    _untrained_classifier(tiny).save(tmp_path / "t.keras")
    (tmp_path / "n.txt").write_text("\n".join(tiny.label_names))
    run_dir = teachers.register_model(tmp_path / "t.keras", "tiny", outputs=tmp_path / "n.txt", run_id="t")
    (tmp_path / "t.keras").unlink()  # the run holds its own copy of the model
    shutil.copytree(run_dir, run_dir.parent / "t-copy")
    store.write_status(run_dir.parent / "t-copy", {"state": "finished"})
    assert evaluation.evaluate_run("t-copy", n_resamples=20)["n_tiles"] == len(tiny.split_indices("test"))
    # the comparison of teachers names what the run is and shows its validation and test figures
    row = compare.teacher_table(["t-copy"]).iloc[0]
    assert row["model"] == "Registered model (t.keras)"
    assert 0 <= row["val_macro_ap_low"] <= row["val_macro_ap"] <= row["val_macro_ap_high"] <= 1


def test_the_pages_show_a_registered_run_like_a_trained_one(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    _untrained_classifier(tiny).save(tmp_path / "t.keras")
    (tmp_path / "n.txt").write_text("\n".join(tiny.label_names))
    run_dir = teachers.register_model(tmp_path / "t.keras", "tiny", outputs=tmp_path / "n.txt", run_id="mine")
    assert not train.evaluate_and_correlate(run_dir)
    for page, state in (
        ("pages/evaluate.py", {"olr.run": "mine"}),
        ("pages/live.py", {"olr.runs": ["mine"]}),
        ("pages/correlations.py", {"olr.run": "mine"}),
        ("pages/compare.py", {"olr.runs": ["mine"]}),
    ):
        at = open_app(page, **state)
        assert not at.error, (page, [e.value for e in at.error])
        if page == "pages/evaluate.py":  # a model not trained here has no settings to train again
            labels = [b.label for b in at.sidebar.button]
            assert "Delete this run…" in labels and "New run from these settings" not in labels
    shown = at.table[1].value  # Compare: the teachers table after the results
    assert list(shown["model"]) == [plain("Registered model (t.keras)")] and list(shown["id"]) == ["mine"]
