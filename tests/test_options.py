"""One source for every option: the training schema and PrepareOptions lay out the Train page,
the Datasets page's form and the CLI flags; presets are data validated by the schema; old runs'
configs are read through one upgrade; no code keeps a fallback default of its own."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from olr import cli, workspace
from olr.data import prepare, prepare_options
from olr.data.dataset import load_dataset
from olr.data.prepare_options import PrepareOptions
from olr.errors import OLRError
from olr.training import options
from olr.workflows import presets

ROOT = Path(__file__).parents[1]


# ------------------------------------------------------------------ the training schema


def test_every_option_has_a_section_and_a_label_and_no_option_falls_into_other():
    for key, opt in options.OPTIONS.items():
        assert opt.label.strip(), key
        assert opt.section in (*options.SECTIONS, options.KIND_SECTION), (key, opt.section)
        for choice in opt.titles:
            assert choice in opt.choices, (key, choice)
    for kind in options.KINDS:
        placed = [k for _, shown, advanced in options.page_layout(kind) for k in shown + advanced]
        # each option once, none left over for an "Other" section
        assert sorted(placed) == sorted(k for k in options.options_for(kind) if k != "kind")
        labels = [options.OPTIONS[k].label for k in placed]
        assert len(labels) == len(set(labels)), labels  # a label names one widget
        assert [s for s, _, _ in options.page_layout(kind)] == [
            s for s in options.SECTIONS if s in {options.OPTIONS[k].section for k in placed}
        ]


def test_choice_titles_are_words_for_people():
    assert options.OPTIONS["loss"].title("bce") == "Binary cross-entropy"
    assert options.OPTIONS["kind"].title("siamese") == "Siamese network (OLR)"
    assert options.OPTIONS["seed"].title(3) == "3"


def test_the_train_page_keeps_no_option_table_of_its_own():
    source = (ROOT / "pages" / "train.py").read_text(encoding="utf-8")
    assert not re.search(r"^(SECTIONS|LABELS)\s*=", source, re.M)
    assert '"Other"' not in source
    assert "options.page_layout(kind)" in source


@pytest.mark.parametrize("kind", options.KINDS)
def test_the_train_page_shows_a_widget_for_every_option(_isolated_workspace, monkeypatch, kind):
    from tests.fixtures.pages import open_app
    from tests.fixtures.runs import make_tiny_dataset

    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    make_tiny_dataset(_isolated_workspace / "data" / "tiny", n_tiles=48)
    at = open_app("pages/train.py")
    if kind != "classifier":
        at.segmented_control(key="train.kind").set_value(kind).run()
    assert not at.exception, [e.value for e in at.exception]
    widgets = [w for kind_ in ("selectbox", "number_input", "toggle", "text_input") for w in getattr(at, kind_)]
    keys = {w.key for w in widgets}
    for key in options.options_for(kind):
        if key != "kind":
            assert f"train.{kind}.{key}" in keys, key
    by_key = {w.key: w for w in widgets}
    for key, opt in options.options_for(kind).items():
        if key not in ("kind", "scheme"):
            assert by_key[f"train.{kind}.{key}"].label == opt.label


def test_train_help_lists_every_option_flag():
    r = subprocess.run([sys.executable, "-m", "olr", "train", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    for key in options.OPTIONS:
        assert f"--{key.replace('_', '-')}" in r.stdout, key


def test_option_flags_round_trip_to_a_resolved_config():
    parser = argparse.ArgumentParser()
    options.add_option_flags(parser)
    args = parser.parse_args(["--loss", "focal", "--focal-gamma", "3", "--shuffle", "false", "--dataset", "d"])
    assert options.resolve(options.flag_values(args)) == {
        **options.defaults("classifier"),
        "loss": "focal",
        "focal_gamma": 3.0,
        "shuffle": False,
        "dataset": "d",
    }


# ------------------------------------------------------------------ presets


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_resolves_and_restates_no_default(name):
    entries = presets.load(name)
    assert entries
    for entry, settings in entries.items():
        kind = settings.get("kind", "classifier")
        cfg = options.resolve(settings, complete=False)
        assert cfg["kind"] == kind
        restated = [k for k, v in settings.items() if k != "kind" and options.defaults(kind).get(k) == v]
        assert not restated, f"{name}:{entry} restates defaults {restated}"


def test_the_workflows_presets_are_there():
    assert {"study", "thesis_sweep", "siamese_study", "bench"} <= set(presets.names())


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"epohcs": 3}, r"^In the preset p\.json:x, the config key 'epohcs' does not exist; did you mean 'epochs'\?$"),
        ({"epochs": 0}, r"^In the preset p\.json:x, the config value epochs=0 is out of range"),
        (
            {"kind": "siamese", "loss": "focal"},
            r"^In the preset p\.json:x, the config key 'loss' is for classifier runs",
        ),
        ([1, 2], r"^The preset p\.json:x must be a JSON object"),
    ],
)
def test_a_bad_preset_fails_with_one_sentence(settings, message):
    with pytest.raises(OLRError, match=message) as e:
        options.check_preset(settings, "p.json:x")
    assert "\n" not in str(e.value)


def test_a_preset_needs_no_dataset_but_a_run_does():
    assert options.resolve({"epochs": 3}, complete=False)["epochs"] == 3
    with pytest.raises(OLRError, match="No dataset given"):
        options.resolve({"epochs": 3})


# ------------------------------------------------------------------ stored configs and fallbacks


def test_upgrade_reads_an_old_run_as_resume_always_has():
    old = {"kind": "siamese", "classifier_run": "c", "epochs": 3, "labels": [{"name": "x"}]}  # before the later options
    up = options.upgrade(old)
    for kind, config in (("siamese", up), ("classifier", options.upgrade({"dataset": "d", "epochs": 3}))):
        later = {k: v for k, v in options.ADDED_LATER.items() if kind in options.OPTIONS[k].kinds}
        assert later and {k: config[k] for k in later} == later, kind
    assert up["labels"] == old["labels"] and up["epochs"] == 3
    # what a resumed old run was always given, but for options that read as what old runs trained with
    # rather than as today's default (old runs computed in float32: a resumed one goes on in float32)
    kept = {k for k, v in options.ADDED_LATER.items() if v != options.OPTIONS[k].default}
    assert "precision" in kept and up["precision"] == "float32"
    resolved, resumed = options.resolve(up), options.resolve(old)
    assert {k: v for k, v in resolved.items() if k not in kept} == {k: v for k, v in resumed.items() if k not in kept}
    assert options.upgrade({"classifier_run": "c"})["kind"] == "siamese"
    assert options.upgrade({"dataset": "d"})["threshold"] == options.OPTIONS["threshold"].default


def _fallback_reads() -> list[str]:
    keys = "|".join(options.OPTIONS)
    pattern = re.compile(rf"""\.get\(\s*["']({keys})["']\s*,""")
    found = []
    for folder in ("olr", "ui", "pages"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line) and "meta.get(" not in line:  # a dataset's meta.json is not a run config
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    return found


def test_no_code_keeps_a_fallback_default_of_an_option():
    # olr.runs imports only the core, so the run store and launcher cannot read configs through
    # options.upgrade (their fallbacks describe a run folder without a config, not an option).
    allowed = ("olr/runs/",)
    assert [f for f in _fallback_reads() if not f.startswith(allowed)] == []


# ------------------------------------------------------------------ preparation options


def test_prepare_help_lists_every_prepare_option():
    r = subprocess.run([sys.executable, "-m", "olr", "prepare", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    for f in prepare_options.fields():
        assert f"--{f.name.replace('_', '-')}" in r.stdout, f.name


def test_prepare_options_declare_help_and_label_once():
    for f in prepare_options.fields():
        spec = f.metadata["spec"]
        assert spec.help and spec.label, f.name
    params = set(prepare.prepare_dataset.__code__.co_varnames[: prepare.prepare_dataset.__code__.co_argcount])
    assert params == {"image", "labels", "out", "options"}  # the options are one object, not 12 parameters


def test_prepare_flags_round_trip_to_the_options_object():
    parser = argparse.ArgumentParser()
    prepare_options.add_flags(parser)
    assert PrepareOptions.from_args(parser.parse_args([])) == PrepareOptions()
    args = parser.parse_args(
        [
            "--tile",
            "16",
            "--stride",
            "8",
            "--scheme",
            "level2",
            "--min-fraction",
            "0.1",
            "--min-labels",
            "0",
            "--max-nodata",
            "0.5",
            "--prune-below",
            "2",
            "--split-block",
            "3",
            "--split-fractions",
            "0.6",
            "0.2",
            "0.2",
            "--seed",
            "4",
            "--label-encoding",
            "grid",
            "--overwrite",
        ]
    )
    assert PrepareOptions.from_args(args) == PrepareOptions(
        tile=16,
        stride=8,
        scheme="level2",
        min_fraction=0.1,
        min_labels=0,
        max_nodata=0.5,
        prune_below=2,
        split_block=3,
        split_fractions=(0.6, 0.2, 0.2),
        seed=4,
        label_encoding="grid",
        overwrite=True,
    )


def test_prepare_cli_flags_reach_the_library_call(_isolated_workspace, tiny_rasters, capsys):
    flags = {
        "tile": 16,
        "stride": 16,
        "scheme": "level2",
        "min_fraction": 0.1,
        "min_labels": 0,
        "max_nodata": 0.5,
        "prune_below": 0,
        "split_block": 3,
        "seed": 4,
        "label_encoding": "grid",
    }
    argv = ["prepare", "--image", str(tiny_rasters.image), "--labels", str(tiny_rasters.labels), "--out", "data/rt"]
    for key, value in flags.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    argv += ["--split-fractions", "0.6", "0.2", "0.2"]
    assert cli.main(argv) == 0
    meta = load_dataset(workspace.dataset_path("rt")).meta
    expected = PrepareOptions(**flags, split_fractions=(0.6, 0.2, 0.2)).parameters()
    assert {k: meta["parameters"][k] for k in expected} == expected
    assert meta["tile"] == 16 and meta["split"]["block"] == 3 and meta["scheme"]["name"] == "level2"
    # The keyword call of existing callers gives the same options.
    out = prepare.prepare_dataset(
        tiny_rasters.image, tiny_rasters.labels, workspace.dataset_path("kw"), **flags, split_fractions=(0.6, 0.2, 0.2)
    )
    assert {k: load_dataset(out).meta["parameters"][k] for k in expected} == expected


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"tile": 4}, "The tile size 4 is not valid; use a whole number of pixels, at least 8."),
        ({"stride": 0}, "The stride 0 is not valid; use a whole number of pixels, at least 1."),
        ({"min_fraction": 0}, "The min fraction 0 is not valid; use a number above 0 and at most 1 (e.g. 0.05)."),
        ({"min_labels": -1}, "The min labels -1 is not valid; use 0 or more."),
        ({"max_nodata": 1.5}, "The max nodata share 1.5 is not valid; use a number from 0 to 1 (e.g. 0.1)."),
        ({"prune_below": -1}, "The prune threshold -1 is not valid; use 0 (no pruning) or more tiles."),
        ({"split_block": 2.0}, "The split block size 2.0 is not valid; use a whole number of tiles, at least 1."),
    ],
)
def test_prepare_options_check_says_what_is_wrong_in_one_sentence(kwargs, message):
    with pytest.raises(OLRError) as e:
        PrepareOptions(**kwargs).check()
    assert str(e.value) == message


def test_the_datasets_page_form_is_laid_out_from_the_prepare_options():
    page = (ROOT / "pages" / "datasets.py").read_text(encoding="utf-8")
    source = page[page.index("SCHEME_CHOICES =") : page.index("def import_form(")]  # the "Add a dataset" form
    assert "prepare_options.number_fields()" in source and "PrepareOptions(" in source
    for f in prepare_options.fields():
        assert f'"{f.metadata["spec"].label}"' not in source, f"the page restates the label of {f.name}"


def test_uploads_live_in_the_library_without_streamlit():
    from olr.data import uploads

    assert not (ROOT / "ui" / "uploads.py").exists()
    assert "streamlit" not in Path(uploads.__file__).read_text(encoding="utf-8")
