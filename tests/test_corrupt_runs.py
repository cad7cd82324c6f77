"""Hand-corrupted run folders: every reader of a run file validates what it reads, so a page shows
one sentence naming the damaged file, never a traceback; in a read-only demo no server path either.

Each case copies the real tiny classifier ("cls") and Siamese ("siam") runs of the fixtures into a
fresh workspace, damages one file of one run and opens the result pages on it through AppTest.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from olr.analysis import correlations, evaluation
from olr.errors import OLRError
from olr.runs import store
from tests.fixtures.browser import launched_with_upload_limit
from tests.fixtures.pages import open_app

RESULT_PAGES = ("pages/evaluate.py", "pages/correlations.py", "pages/compare.py", "pages/live.py")


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _edit_json(relative: str, change):
    def corrupt(run: Path) -> None:
        data = _json(run / relative)
        change(data)
        (run / relative).write_text(json.dumps(data))

    return corrupt


def _write(relative: str, content: bytes):
    def corrupt(run: Path) -> None:
        (run / relative).write_bytes(content)

    return corrupt


def _edit_npz(relative: str, change):
    def corrupt(run: Path) -> None:
        with np.load(run / relative) as z:
            arrays = {k: z[k] for k in z.files}
        change(arrays)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        (run / relative).write_bytes(buf.getvalue())

    return corrupt


def _append_metrics(line: dict):
    def corrupt(run: Path) -> None:
        with open(run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    return corrupt


RANDOM_BYTES = bytes(np.random.default_rng(7).integers(0, 256, 600, dtype=np.uint8))
SUMMARY = "evaluation/summary.json"
PREDICTIONS = "evaluation/test_predictions.npz"
MATRICES = "correlations/matrices.npz"
AGREEMENT = "correlations/agreement.json"

ALL = RESULT_PAGES
#: (case, run, corruption, file the sentence must name, pages that must name it)
CASES = [
    ("config random bytes", "cls", _write("config.json", RANDOM_BYTES), "config.json", ALL),
    ("config a list", "cls", _write("config.json", b"[1, 2]"), "config.json", ALL),
    ("config nested 100000 deep", "cls", _write("config.json", b"[" * 100_000), "config.json", ALL),
    (
        "labels not a list",
        "cls",
        _edit_json("config.json", lambda d: d.update(labels="abc")),
        "config.json",
        ALL,
    ),
    (
        "label without a name",
        "cls",
        _edit_json("config.json", lambda d: d["labels"].__setitem__(0, {"codes": [112]})),
        "config.json",
        ALL,
    ),
    (
        "label codes not numbers",
        "cls",
        _edit_json("config.json", lambda d: d["labels"][0].update(codes=["x"])),
        "config.json",
        ALL,
    ),
    ("dataset a number", "cls", _edit_json("config.json", lambda d: d.update(dataset=5)), "config.json", ALL),
    ("epochs text", "cls", _edit_json("config.json", lambda d: d.update(epochs="many")), "config.json", ALL),
    (
        "state a list",
        "cls",
        _edit_json("status.json", lambda d: d.update(state=["finished"])),
        "status.json",
        ALL,
    ),
    (
        "unknown state",
        "cls",
        _edit_json("status.json", lambda d: d.update(state="exploded")),
        "status.json",
        ALL,
    ),
    (
        "started text",
        "cls",
        _edit_json("status.json", lambda d: d.update(started="yesterday")),
        "status.json",
        ALL,
    ),
    ("status epoch text", "cls", _edit_json("status.json", lambda d: d.update(epoch="2")), "status.json", ALL),
    ("summary empty", "cls", _write(SUMMARY, b""), "summary.json", ("pages/evaluate.py",)),
    ("summary a list", "cls", _write(SUMMARY, b"[]"), "summary.json", ("pages/evaluate.py",)),
    ("summary without thresholds", "cls", _edit_json(SUMMARY, lambda d: d.pop("thresholds")), "summary.json", ()),
    (
        "summary per-label thresholds short",
        "cls",
        _edit_json(SUMMARY, lambda d: d["thresholds"].update(per_label=[0.5])),
        "summary.json",
        ("pages/evaluate.py",),
    ),
    ("summary beta text", "cls", _edit_json(SUMMARY, lambda d: d.update(beta="two")), "summary.json", ()),
    ("diagnostics text", "cls", _edit_json(SUMMARY, lambda d: d.update(diagnostics="x")), "summary.json", ()),
    ("predictions random bytes", "cls", _write(PREDICTIONS, RANDOM_BYTES), "test_predictions.npz", ()),
    (
        "predictions without probabilities",
        "cls",
        _edit_npz(PREDICTIONS, lambda a: a.pop("probabilities")),
        "test_predictions.npz",
        ("pages/evaluate.py",),
    ),
    (
        "predictions one label too many",
        "cls",
        _edit_npz(PREDICTIONS, lambda a: a.update(probabilities=np.hstack([a["probabilities"]] * 2))),
        "test_predictions.npz",
        (),
    ),
    (
        "predictions past probability 1",
        "cls",
        _edit_npz(PREDICTIONS, lambda a: a.update(probabilities=a["probabilities"] * 5)),
        "test_predictions.npz",
        ("pages/evaluate.py",),
    ),
    ("matrices random bytes", "siam", _write(MATRICES, RANDOM_BYTES), "matrices.npz", ("pages/correlations.py",)),
    (
        "phi matrix 2 x 2",
        "siam",
        _edit_npz(MATRICES, lambda a: a.update(gt_phi=np.zeros((2, 2)))),
        "matrices.npz",
        ("pages/correlations.py",),
    ),
    (
        "tile rows negative",
        "siam",
        _edit_npz(MATRICES, lambda a: a.update(tile_indices=-a["tile_indices"] - 1)),
        "matrices.npz",
        ("pages/correlations.py",),
    ),
    ("agreement a list", "siam", _write(AGREEMENT, b"[]"), "agreement.json", ("pages/correlations.py",)),
    (
        "agreement view text",
        "siam",
        _edit_json(AGREEMENT, lambda d: d.update(siamese_self="high")),
        "agreement.json",
        ("pages/correlations.py",),
    ),
    (
        "agreement spearman text",
        "siam",
        _edit_json(AGREEMENT, lambda d: d["siamese_self"].update(spearman="x")),
        "agreement.json",
        (),
    ),
    (
        "metrics loss text",
        "cls",
        _append_metrics({"step": 99, "epoch": 3, "split": "val", "scope": "epoch", "loss": "abc"}),
        "1 unreadable line(s) in metrics.jsonl",
        ("pages/live.py",),
    ),
    (
        "metrics epoch text",
        "cls",
        _append_metrics({"step": 99, "epoch": "three", "split": "train", "scope": "epoch", "loss": 0.1}),
        "1 unreadable line(s) in metrics.jsonl",
        ("pages/live.py",),
    ),
    ("train state epoch text", "cls", _edit_json("train_state.json", lambda d: d.update(epoch="x")), None, ()),
]


@pytest.fixture
def corrupt_home(_isolated_workspace, training_workspace, trained_classifier_run, trained_siamese_run, monkeypatch):
    """A workspace holding copies of the tiny dataset and the finished "cls" and "siam" runs."""
    home = _isolated_workspace
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    shutil.copytree(training_workspace / "data", home / "data", ignore=shutil.ignore_patterns("stats*.npz"))
    for run in (trained_classifier_run, trained_siamese_run):
        shutil.copytree(run, home / "models" / run.name)
    return home


def open_page(page: str, run: str) -> AppTest:
    return open_app(page, **{"olr.run": run, "olr.runs": [run]})


def all_text(at: AppTest) -> str:
    """Every string the page sent to the browser (element protos, widgets and their options included)."""
    parts = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def shown(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("error", "warning", "caption", "info") for e in getattr(at, kind))


def _assert_no_traceback(at: AppTest, page: str, case: str) -> None:
    assert not at.exception, (page, case, [e.value for e in at.exception])
    text = all_text(at)
    assert "Traceback" not in text and "unexpected problem" not in text, (page, case, shown(at))


@pytest.mark.parametrize(("case", "run", "corrupt", "filename", "naming_pages"), CASES, ids=[c[0] for c in CASES])
def test_a_damaged_run_file_gives_a_sentence_naming_it_on_every_page(
    corrupt_home, case, run, corrupt, filename, naming_pages
):
    corrupt(corrupt_home / "models" / run)
    for page in RESULT_PAGES:
        at = open_page(page, run)
        _assert_no_traceback(at, page, case)
        if page in naming_pages:
            assert filename in shown(at), (page, case, shown(at))


@pytest.mark.parametrize(
    ("case", "run", "corrupt", "filename"),
    [c[:4] for c in CASES if c[3] and "metrics.jsonl" not in c[3]],
    ids=[c[0] for c in CASES if c[3] and "metrics.jsonl" not in c[3]],
)
def test_the_library_readers_raise_one_sentence_naming_the_file(corrupt_home, case, run, corrupt, filename):
    corrupt(corrupt_home / "models" / run)
    loaded = store.load_run(run)
    if loaded.problem:
        assert filename in loaded.problem
        return
    readers = {
        "summary.json": evaluation.read_summary,
        "test_predictions.npz": evaluation.load_predictions,
        "matrices.npz": correlations.load_matrices,
        "agreement.json": correlations.read_agreement,
    }
    with pytest.raises(OLRError) as raised:
        readers[filename](loaded)
    message = str(raised.value)
    assert filename in message and str(corrupt_home) not in message and message.count(". ") == 0


def test_damaged_metrics_values_are_skipped_and_counted(corrupt_home):
    _append_metrics({"step": 99, "epoch": 3, "split": "val", "scope": "epoch", "loss": "abc"})(
        corrupt_home / "models/cls"
    )
    df = store.read_metrics("cls")
    assert df.attrs["skipped_lines"] == 1 and "abc" not in set(df["loss"].astype(str))


@pytest.mark.parametrize("case", ["config random bytes", "summary a list", "matrices random bytes", "agreement a list"])
def test_read_only_pages_show_no_server_path(corrupt_home, monkeypatch, case):
    _, run, corrupt, _, _ = next(c for c in CASES if c[0] == case)
    corrupt(corrupt_home / "models" / run)
    monkeypatch.setenv("OLR_READONLY", "1")
    launched_with_upload_limit(monkeypatch, 0)  # the documented read-only launch
    for page in RESULT_PAGES:
        at = open_page(page, run)
        _assert_no_traceback(at, page, case)
        text = all_text(at)
        assert str(corrupt_home) not in text and os.path.realpath(corrupt_home) not in text, (page, case)


def test_read_only_unexpected_errors_show_one_generic_sentence(monkeypatch, _isolated_workspace):
    def app():
        from olr import workspace
        from olr.errors import OLRError
        from ui.guard import show_exception

        try:
            raise KeyError(str(workspace.home() / "models" / "secret"))
        except KeyError as error:
            show_exception(error, "The page")
        try:
            raise OLRError(f"There is no run 'x' in {workspace.home() / 'models'}; pick one.")
        except OLRError as error:
            show_exception(error, "The page")

    monkeypatch.setenv("OLR_READONLY", "1")
    at = AppTest.from_function(app).run()
    text = all_text(at)
    assert str(_isolated_workspace) not in text and "Traceback" not in text and "KeyError" not in text
    assert not at.expander
    assert "The page hit an unexpected problem" in at.error[0].value
    assert at.error[1].value == "There is no run 'x' in the workspace/models; pick one."
