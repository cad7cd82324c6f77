"""Hostile command-line values, config files and label mappings: one sentence (exit 2 from the CLI),
never a traceback, and nothing accepted silently; label names from files are shown as plain text."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from markdown_it import MarkdownIt

from olr.data.label_schemes import get_scheme
from olr.errors import OLRError
from olr.training import options
from tests.fixtures.pages import open_app
from tests.fixtures.runs import make_tiny_dataset, olr_cli
from ui.text import plain

DEEP = 200_000

#: (case, mapping file text, what the sentence says)
MAPPINGS = [
    ("Infinity as a code", '{"Urban": [111, Infinity]}', "Infinity is not a JSON number"),
    ("a 5000-digit code", '{"Urban": [111, ' + "1" * 5000 + "]}", "digits"),
    ("a 4000-digit code", '{"Urban": [111, ' + "1" * 4000 + "]}", "a 4000-digit number"),
    ("a duplicate label", '{"Urban": [111], "Urban": [112]}', "the key 'Urban' appears twice"),
    ("a blank label name", '{"  ": [111]}', "blank name"),
    ("an empty label name", '{"": [111], "Sea": [523]}', "blank name"),
    ("a two-line label name", '{"Urban\\nfabric": [111]}', "control characters"),
    ("names equal once stripped", '{"Urban": [111], " Urban ": [112]}', "appears twice"),
    ("nested 200000 deep", '{"Urban": ' + "[" * DEEP + "]" * DEEP + "}", "nested too deeply"),
    ("a code given as true", '{"Urban": [true]}', "unknown CLC code True"),
]


def _cli(home, *args) -> subprocess.CompletedProcess:
    return olr_cli(home, *args)


def _one_sentence(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and len(lines[0]) < 400, lines[:3]
    return lines[0]


@pytest.mark.parametrize(("case", "text", "says"), MAPPINGS, ids=[m[0] for m in MAPPINGS])
def test_a_hostile_mapping_file_is_refused_with_one_sentence(tmp_path, case, text, says):
    path = tmp_path / "mapping.json"
    path.write_text(text)
    with pytest.raises(OLRError, match="") as raised:
        get_scheme(str(path))
    message = str(raised.value)
    assert says in message and len(message) < 400, message


@pytest.mark.parametrize(
    "code",
    [float("inf"), float("nan"), 10**5000, 111.5, "111.0", None],
    ids=["inf", "nan", "5000 digits", "111.5", "text 111.0", "null"],
)
def test_a_mapping_dict_with_a_code_that_is_no_clc_code_is_refused(code):
    with pytest.raises(OLRError, match="unknown CLC code") as raised:
        get_scheme({"Urban": [111, code]})
    assert len(str(raised.value)) < 300


def test_duplicate_mapping_keys_through_the_train_command(_isolated_workspace, tmp_path):
    make_tiny_dataset(_isolated_workspace / "data" / "tiny", n_tiles=96)
    mapping = tmp_path / "dup.json"
    mapping.write_text('{"Urban": [112], "Urban": [211]}')
    for scheme in (str(mapping), mapping.read_text()):  # a file, and the mapping typed as the flag's value
        sentence = _one_sentence(_cli(_isolated_workspace, "train", "--dataset", "tiny", "--scheme", scheme))
        assert "appears twice" in sentence
    assert not (_isolated_workspace / "models").exists() or not any((_isolated_workspace / "models").iterdir())


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--seed", "-1"], "seed=-1 is out of range; use a number at least 0 and at most 2147483647"),
        (["--seed", "9" * 5000], "seed="),
        (["--epochs", "1e999"], "epochs="),
        (["--learning-rate", "NaN"], "learning_rate="),
    ],
    ids=["negative seed", "5000-digit seed", "infinite epochs", "NaN learning rate"],
)
def test_hostile_option_values_on_the_command_line(_isolated_workspace, flags, says):
    sentence = _one_sentence(_cli(_isolated_workspace, "train", "--dataset", "tiny", *flags))
    assert says in sentence


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"epochs": ' + "[" * DEEP + "]" * DEEP + "}", "nested too deeply"),
        ('{"epochs": 2, "epochs": 3}', "the key 'epochs' appears twice"),
        ('{"seed": ' + "9" * 5000 + "}", "digits"),
        ('{"learning_rate": Infinity}', "Infinity is not a JSON number"),
    ],
    ids=["nested 200000 deep", "duplicate key", "5000-digit number", "Infinity"],
)
def test_hostile_config_files(_isolated_workspace, tmp_path, text, says):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(OLRError, match=""):
        options.load_file(path)
    sentence = _one_sentence(_cli(_isolated_workspace, "train", "--config", str(path)))
    assert says in sentence


def _rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").render(markdown)


@pytest.mark.parametrize("name", ["[x](http://evil)", "**bold**", ":red[alarm] :material/warning:", "a_b_c `x`"])
def test_plain_text_renders_literally(name):
    html = _rendered(f"Label {plain(name)} here")
    assert "<a " not in html and "<strong>" not in html and "<em>" not in html and "<code>" not in html
    assert plain(name).replace("\\", "") == name


EVIL = ["[x](http://evil)", "**bold**", "Sea", "Forest"]


@pytest.fixture
def evil_home(_isolated_workspace, training_workspace, trained_classifier_run, monkeypatch):
    """The tiny classifier run with its four label names replaced by Markdown in every file that holds them."""
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    home = _isolated_workspace
    shutil.copytree(training_workspace / "data", home / "data", ignore=shutil.ignore_patterns("stats*.npz"))
    run = home / "models" / "cls"
    shutil.copytree(trained_classifier_run, run)
    config = json.loads((run / "config.json").read_text())
    for label, name in zip(config["labels"], EVIL, strict=True):
        label["name"] = name
    (run / "config.json").write_text(json.dumps(config))
    summary = json.loads((run / "evaluation" / "summary.json").read_text())
    summary["labels"] = EVIL
    summary["diagnostics"] = [{"code": "labels_never_predicted", "message": f"never predicted: {', '.join(EVIL)}."}]
    (run / "evaluation" / "summary.json").write_text(json.dumps(summary))
    with np.load(run / "evaluation" / "test_predictions.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["label_names"] = np.array(EVIL)
    np.savez(run / "evaluation" / "test_predictions.npz", **arrays)
    return home


def test_markdown_in_label_names_shows_literally_on_the_evaluate_page(evil_home):
    at = open_app("pages/evaluate.py", **{"olr.run": "cls"})
    at.slider(key="eval.threshold").set_value(0.99).run()  # so some outcome groups are empty and say so
    assert not at.exception and not at.error, [e.value for e in at.exception or at.error]
    at.selectbox(key="eval.example_label").set_value(EVIL[0]).run()
    bodies = [e.value for kind in ("markdown", "caption") for e in getattr(at, kind)]
    naming = [b for b in bodies if "evil" in b or "bold" in b]
    assert naming, bodies  # the diagnostics and the empty-group captions name the labels
    for body in naming:
        html = _rendered(body)
        assert "<a " not in html and "<strong>bold" not in html, body
        assert "[x](http://evil)" in body.replace("\\", "")
