"""olr.runs.store (listing, liveness, metrics, logs), olr.analysis.compare, model loading and olr.analysis.inference."""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from olr import atomic, cli
from olr.analysis import compare, inference
from olr.data.dataset import load_dataset
from olr.errors import OLRError
from olr.runs import store
from olr.training import models


def _run_folder(root, name, config=None, status=None, metrics=None):
    d = root / name
    d.mkdir(parents=True)
    if config is not None:
        atomic.write_json(d / "config.json", config)
    if status is not None:
        atomic.write_json(d / "status.json", status)
    if metrics is not None:
        (d / "metrics.jsonl").write_text(metrics)
    return d


def test_list_runs_tolerates_garbage_and_sorts_newest_first(tmp_path):
    root = tmp_path / "models"
    _run_folder(root, "old", {"kind": "classifier", "dataset": "a"}, {"state": "finished", "started": 100.0})
    _run_folder(root, "new", {"kind": "siamese", "dataset": "a"}, {"state": "failed", "started": 300.0})
    _run_folder(root, "queued", None, {"state": "queued", "started": 200.0, "pid": 2**22 + 12345, "host": "elsewhere"})
    broken = _run_folder(root, "broken")
    (broken / "config.json").write_text('{"kind": "classif')  # torn
    (broken / "status.json").write_text("[1, 2]")  # not an object
    (root / ".launches").mkdir()
    (root / "stray.txt").write_text("x")
    listed = store.list_runs(root)
    # "broken" has no start time: its folder time (now) counts, so it is the newest
    assert [r.id for r in listed] == ["broken", "new", "queued", "old"]
    by_id = {r.id: r for r in listed}
    assert by_id["broken"].state == "incomplete" and by_id["broken"].config == {}
    assert by_id["queued"].state == "queued" and by_id["queued"].kind == "unknown"
    assert by_id["new"].kind == "siamese" and by_id["old"].dataset == "a"
    assert store.list_runs(tmp_path / "nothing-here") == []


def test_liveness_from_heartbeat_and_pid():
    now = time.time()
    mine = {"state": "running", "pid": os.getpid(), "host": os.uname().nodename, "heartbeat": now}
    assert store.liveness(mine, stale_after_s=30) == "running"
    assert store.liveness({**mine, "heartbeat": now - 31}, stale_after_s=30) == "dead"
    assert store.liveness({**mine, "heartbeat": now - 31}, stale_after_s=60) == "running"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert store.liveness({**mine, "pid": gone.pid}, stale_after_s=30) == "dead"
    assert store.liveness({**mine, "pid": gone.pid}, stale_after_s=30, check_pid=False) == "running"
    assert store.liveness({**mine, "state": "finished", "heartbeat": 0}) == "finished"
    assert store.liveness({**mine, "state": "queued", "pid": gone.pid}) == "dead"


def test_stale_threshold_comes_from_the_environment(monkeypatch):
    status = {"state": "running", "host": "elsewhere", "heartbeat": time.time() - 5}
    monkeypatch.setenv("OLR_STALE_AFTER_S", "2")
    assert store.liveness(status) == "dead"
    monkeypatch.setenv("OLR_STALE_AFTER_S", "10")
    assert store.liveness(status) == "running"


def test_read_metrics_skips_torn_and_corrupt_lines(tmp_path):
    lines = [
        json.dumps({"step": 1, "epoch": 1, "split": "train", "time": 1.0, "loss": 0.9}),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"step": 2, "epoch": 1, "split": "val", "time": 2.0, "loss": 0.8, "macro_pr_auc": 0.4}),
        '{"step": 3, "epoch": 2, "spl',  # torn last line of a run being written
    ]
    d = _run_folder(tmp_path, "r", {"kind": "classifier"}, {"state": "running"}, "\n".join(lines))
    df = store.read_metrics(d)
    assert list(df["step"]) == [1, 2] and list(df["split"]) == ["train", "val"]
    assert df.attrs["skipped_lines"] == 3
    assert df["macro_pr_auc"].isna().tolist() == [True, False]
    empty = store.read_metrics(_run_folder(tmp_path, "e", {}, {}))
    assert empty.empty and empty.attrs["skipped_lines"] == 0


def test_tail_log_and_unknown_runs(tmp_path):
    d = _run_folder(tmp_path, "r", {}, {})
    assert store.tail_log(d) == []
    (d / "console.log").write_text("".join(f"line {i}\n" for i in range(100)))
    assert store.tail_log(d, 3) == ["line 97", "line 98", "line 99"]
    with pytest.raises(OLRError, match="no run 'missing'"):
        store.load_run("missing")
    with pytest.raises(OLRError, match=r"no best\.keras"):
        models.load_model(store.RunLayout(d).best)


def test_compare_runs_and_config_differences(trained_classifier_run, trained_siamese_run):
    table = compare.compare_runs([trained_classifier_run, trained_siamese_run])
    assert list(table["id"]) == ["cls", "siam"]
    assert list(table["kind"]) == ["classifier", "siamese"] and list(table["state"]) == ["finished", "finished"]
    assert list(table["epochs_done"]) == [2, 2]
    assert table.loc[0, "best_metric"] == "val_macro_pr_auc" and table.loc[1, "best_metric"] == "val_loss"
    val = [json.loads(x) for x in (trained_classifier_run / "metrics.jsonl").read_text().splitlines()]
    last_val = [r for r in val if r["split"] == "val"][-1]
    assert table.loc[0, "val_macro_pr_auc"] == pytest.approx(last_val["macro_pr_auc"])
    assert table.loc[0, "model"] == "resnet" and table.loc[1, "embedding_dim"] == 4
    diff = compare.config_differences([trained_classifier_run, trained_siamese_run])
    assert {"kind", "classifier_run", "embedding_dim", "learning_rate"} <= set(diff)
    assert "dataset" not in diff and "width" not in diff
    same = compare.config_differences([trained_classifier_run, trained_classifier_run])
    assert same == []


def test_runs_command_lists_the_runs(trained_siamese_run, monkeypatch, capsys):
    monkeypatch.setenv("OLR_HOME", str(trained_siamese_run.parent.parent))
    assert cli.main(["runs", "--json"]) == 0
    listed = {json.loads(line)["id"]: json.loads(line) for line in capsys.readouterr().out.splitlines()}
    assert listed["cls"]["kind"] == "classifier" and listed["siam"]["state"] == "finished"


def test_inference_streams_probabilities_and_embeddings(trained_classifier_run, trained_siamese_run):
    ds = load_dataset(trained_classifier_run.parent.parent / "data" / "tiny")
    idx = ds.split_indices("test")[::-1][:17]  # any order, not a multiple of the batch size
    classifier = models.load_model(store.RunLayout(trained_classifier_run).best)
    probs = inference.predict_probabilities(classifier, ds, idx, batch_size=8)
    n_labels = len(ds.labels)
    assert probs.shape == (17, n_labels) and probs.dtype == np.float32 and ((probs >= 0) & (probs <= 1)).all()
    direct = keras.ops.convert_to_numpy(classifier(np.asarray(ds.images[idx], dtype="float32"), training=False))
    np.testing.assert_allclose(probs, direct, rtol=1e-4, atol=1e-6)
    by_id = inference.predict_probabilities(store.load_run(trained_classifier_run), ds, idx[:3])
    np.testing.assert_allclose(by_id, probs[:3], rtol=1e-4, atol=1e-6)

    pair = models.load_model(store.RunLayout(trained_siamese_run).best)
    emb = inference.label_embeddings(pair, ds, idx, batch_size=8)
    assert emb.shape == (17, n_labels, 4) and emb.dtype == np.float32
    x = np.asarray(ds.images[idx[:5]], dtype="float32")
    self_scores = keras.ops.convert_to_numpy(pair([x, x], training=False))
    np.testing.assert_allclose((emb[:5] ** 2).sum(-1), self_scores, rtol=1e-4, atol=1e-5)
    assert inference.predict_probabilities(classifier, ds, []).shape == (0, n_labels)
