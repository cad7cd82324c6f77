"""The same tile, state and run everywhere: one tile rendering and one tile name on every page, the
sidebar following what a page just prepared, and a run that ended without an evaluation evaluated
from the Evaluate page (AppTest on the real app, real runs, real `python -m olr evaluate`)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from olr import workspace
from olr.analysis import evaluation
from olr.data import composites, summary
from olr.data.dataset import load_dataset
from olr.runs import store
from tests.fixtures.pages import DEFAULT_PAGE, open_app

TIMEOUT = 120


def open_page(page: str | None, **state) -> AppTest:
    return open_app(page or DEFAULT_PAGE, timeout=TIMEOUT, **state)


def shown_tiles(at: AppTest) -> dict[str, str]:
    """{tile name (the caption up to its last " · "): the image's media URL} of the images on the page.
    A media URL is a hash of the image's bytes, so two equal URLs are two identical images."""
    found = {}

    def walk(node):
        if getattr(node, "type", None) == "image":
            for image in node.proto.imgs:
                found[image.caption.rpartition(" · ")[0]] = image.url
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


@pytest.fixture
def tiny_home(_isolated_workspace, monkeypatch, training_workspace, trained_classifier_run):
    """A workspace of its own with the tiny dataset and a copy of the fixture classifier run ("cls")."""
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    shutil.copytree(training_workspace / "data" / "tiny", _isolated_workspace / "data" / "tiny")
    shutil.copytree(trained_classifier_run, _isolated_workspace / "models" / "cls")
    return _isolated_workspace


def test_a_tile_looks_the_same_whatever_else_is_on_show(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    alone = composites.tile_thumbnails(ds, [5])
    among = composites.tile_thumbnails(ds, [40, 5, 90])
    # the stretch is the dataset's, not the shown tiles': tile 5 keeps its pixels among others
    assert np.array_equal(alone[0], among[1])
    assert alone.dtype == np.uint8 and alone.shape[-1] == 3 and alone.shape[1] >= 64


def test_tile_names_say_id_and_grid_place_or_only_the_id_without_a_grid(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    step = ds.meta["stride"]
    row = int(np.flatnonzero(ds.tiles["row_off"].to_numpy() > 0)[0])
    tile = ds.tiles.iloc[row]
    assert summary.dataset_tile_names(ds, [row]) == [
        f"tile {tile.tile_id} · row {tile.row_off // step}, col {tile.col_off // step}"
    ]
    imported = pd.DataFrame({"tile_id": [7], "row_off": [-1], "col_off": [-1]})  # thesis batches: no grid
    assert summary.tile_names(imported, step) == ["tile 7"]
    assert summary.tile_names(imported, None) == ["tile 7"]


def test_gallery_and_evaluate_examples_show_a_tile_with_the_same_pixels_and_name(tiny_home):
    at = open_page("pages/evaluate.py", **{"olr.run": "cls"})
    examples = shown_tiles(at)
    assert examples, "the Evaluate page shows no example tile"

    at = open_page(None, **{"olr.dataset": "tiny"})
    at.segmented_control(key="ds.view").set_value("Tiles").run()
    at.selectbox(key="ds.gallery_split").set_value("test").run()
    at.select_slider(key="ds.gallery_count").set_value(48).run()  # every test tile (39)
    assert not at.exception
    gallery = shown_tiles(at)
    assert set(examples) <= set(gallery), (sorted(examples), sorted(gallery))  # one way to name a tile
    different = [name for name in examples if examples[name] != gallery[name]]
    assert not different, f"drawn differently on the two pages: {different}"


def test_the_sidebar_follows_a_dataset_just_prepared(_isolated_workspace, monkeypatch, tiny_dataset, tiny_rasters):
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    shutil.copytree(tiny_dataset, _isolated_workspace / "data" / "geo")
    uploads = workspace.data_dir() / "uploads"
    uploads.mkdir(parents=True)
    shutil.copy(tiny_rasters.image, uploads / "scene.tif")
    shutil.copy(tiny_rasters.labels, uploads / "clc.tif")
    at = open_page(None)
    assert at.sidebar.selectbox[0].value == "geo"
    at.text_input(key="prep.image").input("uploads/scene.tif")
    at.text_input(key="prep.labels").input("uploads/clc.tif")
    at.text_input(key="prep.name").input("fresh")
    at.number_input(key="prep.tile").set_value(16)
    next(b for b in at.button if b.label == "Prepare dataset").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "selected in the sidebar" in " ".join(str(s.value) for s in at.success)
    picker = at.sidebar.selectbox[0]
    assert picker.label == "Dataset" and picker.value == "fresh"
    # ...and the browser is told to show it: without set_value it keeps showing (and sending back) "geo"
    assert picker.proto.set_value
    assert at.header[0].value == "Explorer · fresh"


def test_a_stopped_run_is_evaluated_from_the_evaluate_page(tiny_home, monkeypatch):
    folder = tiny_home / "models" / "cls"
    shutil.rmtree(folder / "evaluation")
    status = json.loads((folder / "status.json").read_text())
    (folder / "status.json").write_text(json.dumps({**status, "state": "stopped"}))

    monkeypatch.setenv("OLR_READONLY", "1")
    at = open_page("pages/evaluate.py", **{"olr.run": "cls"})
    assert not any(b.label == "Evaluate this run" for b in at.button)  # read-only: refused
    monkeypatch.delenv("OLR_READONLY")

    at = open_page("pages/evaluate.py", **{"olr.run": "cls"})
    assert "was stopped before its last epoch" in " ".join(str(i.value) for i in at.info)
    next(b for b in at.button if b.label == "Evaluate this run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    summary_ = evaluation.read_summary(store.load_run("cls"))
    assert summary_ is not None and summary_["run"] == "cls"
    assert any("Evaluated" in str(s.value) for s in at.success)
    figures = [t.value for t in at.table if t.value.index.name == "threshold mode"]
    assert figures and "configured" in figures[0].index, "the figures of the evaluated run are not shown"
    assert "Evaluate this run" not in [b.label for b in at.button]
