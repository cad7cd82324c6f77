"""Every page of the app through streamlit.testing.v1.AppTest: empty workspace, real datasets and
runs, launching and stopping a run from the Train page, bad input. No page may show a traceback."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from olr import workspace
from olr.analysis import correlations, evaluation, tile_images
from olr.data import summary
from olr.runs import annotations, store
from olr.training import options
from olr.workspace import REPO_ROOT
from tests.fixtures.browser import launched_with_upload_limit
from tests.fixtures.pages import open_app
from tests.fixtures.runs import make_tiny_dataset

PAGES = [
    "pages/datasets.py",
    "pages/train.py",
    "pages/live.py",
    "pages/evaluate.py",
    "pages/correlations.py",
    "pages/compare.py",
    "pages/study.py",
]


def shown(markdown: str) -> str:
    """Markdown text as a person reads it: the backslash escapes of `ui.text.plain` removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(shown(str(e.value)) for e in getattr(at, kind))


def image_captions(at: AppTest) -> list[str]:
    """The captions of the page's images (st.image), in page order."""
    found = []

    def walk(node):
        if getattr(node, "type", None) == "image":
            found.extend(image.caption for image in node.proto.imgs)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


def labelled(widgets, label: str):
    return next(w for w in widgets if w.label == label)


def element_count(at: AppTest, element_type: str) -> int:
    count = 0

    def walk(node):
        nonlocal count
        count += getattr(node, "type", None) == element_type
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return count


@pytest.fixture
def no_auto_demo(monkeypatch):
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")


@pytest.fixture
def results_home(monkeypatch, training_workspace, trained_classifier_run, trained_siamese_run, no_auto_demo) -> Path:
    """The shared workspace with the tiny dataset and finished classifier ("cls") and Siamese ("siam") runs."""
    monkeypatch.setenv("OLR_HOME", str(training_workspace))
    return training_workspace


@pytest.fixture
def geo_home(_isolated_workspace, tiny_dataset, no_auto_demo) -> Path:
    """A workspace holding a copy of the dataset prepared from real rasters (with coordinates)."""
    shutil.copytree(tiny_dataset, _isolated_workspace / "data" / "geo")
    return _isolated_workspace


# ------------------------------------------------------------------ empty workspace


@pytest.mark.parametrize("page", PAGES)
def test_every_page_in_an_empty_workspace_says_what_to_do(no_auto_demo, page):
    at = open_app(page)
    if page == "pages/datasets.py":
        assert "No datasets in this workspace yet" in texts(at, "info")
        assert any(b.label == "Prepare dataset" for b in at.button)
    elif page == "pages/train.py":
        assert "no dataset to train on" in texts(at, "info")
        assert "No run is active" in texts(at, "caption")
    elif page == "pages/study.py":
        assert "No study has been run" in texts(at, "caption")
        assert any(b.label == "Run the study" for b in at.button)
    else:
        assert "There are no finished runs" in texts(at, "info")
        assert any(b.label == "Run the study on the demo dataset" for b in at.button)
    assert not at.error


def test_first_launch_prepares_the_demo_dataset_and_says_it_is_synthetic(monkeypatch):
    monkeypatch.setenv("OLR_DEMO_SIZE_PX", "256")
    at = open_app(PAGES[0])
    assert (workspace.data_dir() / "demo" / "meta.json").exists()
    assert at.session_state["olr.dataset"] == "demo"
    assert "ready and selected" in texts(at, "success")
    assert "synthetic" in texts(at, "warning")  # sidebar note
    assert at.header[0].value == "Explorer · demo"


# ------------------------------------------------------------------ datasets


def test_datasets_page_lists_and_explores_a_real_dataset(geo_home):
    at = open_app(PAGES[0])
    table = at.dataframe[0].value
    assert list(table["name"]) == ["geo"]
    from olr.data.dataset import load_dataset

    ds = load_dataset(geo_home / "data" / "geo")
    assert int(table["tiles"][0]) == ds.n_tiles
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tiles"] == f"{ds.n_tiles:,}" and metrics["Labels"] == str(len(ds.label_names))
    assert element_count(at, "vega_lite_chart") == 3  # frequencies, labels per tile, co-occurrence
    for view in ("counts", "npmi", "cond"):
        at.segmented_control(key="ds.matrix_view").set_value(view).run()
        assert not at.exception
    at.selectbox(key="ds.scheme").set_value("level1").run()
    assert not at.exception and element_count(at, "vega_lite_chart") == 3

    at.segmented_control(key="ds.view").set_value("Tiles").run()
    assert not at.exception
    assert element_count(at, "image") == min(24, ds.n_tiles)
    at.segmented_control(key="ds.view").set_value("Map").run()
    assert not at.exception
    assert element_count(at, "component_instance") == 1  # the streamlit-folium map
    assert "click a tile for its values" in texts(at, "caption").lower()
    assert "Click a tile on the map to see it here with its labels." in texts(at, "caption")
    # a click on the map (what the browser tests do) opens that tile below it, with its values and labels
    label = at.selectbox(key="ds.map_label").value
    j = ds.label_names.index(label)
    row = int(np.argmax(np.asarray(ds.fractions[:, j])))
    at.session_state["ds.map_tile.geo"] = row
    at.run()
    assert not at.exception
    assert "The tile last clicked on the map" in texts(at, "caption")
    name = summary.dataset_tile_names(ds, [row])[0]
    assert image_captions(at) == [
        f"{name} · {ds.tiles['split'].iloc[row]} · {label} {float(ds.fractions[row, j]) * 100:.1f}%"
    ]
    at.selectbox(key="ds.map_split").set_value("val" if ds.tiles["split"].iloc[row] != "val" else "test").run()
    assert "Click a tile on the map to see it here" in texts(at, "caption")  # not on the map of another split


def test_prepare_from_server_paths_with_progress(geo_home, tiny_rasters):
    uploads = workspace.data_dir() / "uploads"
    uploads.mkdir(parents=True)
    shutil.copy(tiny_rasters.image, uploads / "scene.tif")
    shutil.copy(tiny_rasters.labels, uploads / "clc.tif")
    at = open_app(PAGES[0])
    at.text_input(key="prep.image").input("uploads/scene.tif")
    at.text_input(key="prep.labels").input("uploads/clc.tif")
    at.text_input(key="prep.name").input("fresh")
    at.number_input(key="prep.tile").set_value(16)
    at.selectbox(key="prep.scheme").set_value("level2")
    labelled(at.button, "Prepare dataset").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert "Prepared dataset **fresh**" in texts(at, "success")
    meta = json.loads((workspace.data_dir() / "fresh" / "meta.json").read_text())
    assert meta["tile"] == 16 and meta["scheme"]["name"] == "level2"
    assert at.session_state["olr.dataset"] == "fresh"


@pytest.mark.parametrize(
    "image, expected",
    [
        ("/etc/passwd", "outside the allowed folders"),
        ("../outside.tif", "outside the allowed folders"),
        ("uploads/missing.tif", "does not exist"),
        ("", "No image raster path given"),
    ],
)
def test_prepare_rejects_bad_paths_with_a_sentence(geo_home, image, expected):
    at = open_app(PAGES[0])
    if image:
        at.text_input(key="prep.image").input(image)
    at.text_input(key="prep.labels").input("geo/meta.json")
    at.text_input(key="prep.name").input("x")
    labelled(at.button, "Prepare dataset").click().run()
    assert not at.exception
    assert expected in texts(at, "error")
    assert not (workspace.data_dir() / "x").exists()


def test_uploads_that_are_not_rasters_or_too_large_are_refused(geo_home, monkeypatch, tiny_rasters):
    monkeypatch.setenv("OLR_MAX_UPLOAD_MB", "1")
    launched_with_upload_limit(monkeypatch, 1)
    at = open_app(PAGES[0])
    at.radio(key="prep.source").set_value("Upload").run()
    at.file_uploader(key="prep.image_upload").upload("scene.tif", b"this is not a GeoTIFF", "image/tiff")
    at.file_uploader(key="prep.labels_upload").upload("clc.tif", Path(tiny_rasters.labels).read_bytes(), "image/tiff")
    at.text_input(key="prep.name").input("junk")
    labelled(at.button, "Prepare dataset").click().run()
    assert not at.exception
    error = texts(at, "error")
    assert "scene.tif" in error and not (workspace.data_dir() / "junk").exists()

    at.file_uploader(key="prep.image_upload").set_value(("big.tif", b"\0" * (2 * 2**20), "image/tiff"))
    labelled(at.button, "Prepare dataset").click().run()
    assert not at.exception
    assert "above the 1 MB limit" in texts(at, "error")


# ------------------------------------------------------------------ results


def test_result_pages_with_finished_runs(results_home):
    cls = store.load_run("cls")
    siam = store.load_run("siam")

    at = open_app("pages/evaluate.py", **{"olr.run": "cls"})
    assert at.subheader[0].value == annotations.run_title(cls)  # its readable name, the id beside it
    summary = evaluation.read_summary(cls)
    configured = evaluation.metrics_at(cls, summary["thresholds"]["configured"])
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Binary accuracy"] == f"{configured.accuracy:.1%}"
    assert metrics["All-absent baseline"] == f"{configured.baseline_accuracy:.1%}"
    assert list(at.dataframe[0].value["label"]) == cls.label_names
    at.toggle(key="eval.per_label").set_value(True).run()
    tuned = evaluation.metrics_at(cls, np.asarray(summary["thresholds"]["per_label"]))
    assert {m.label: m.value for m in at.metric}["Micro F2"] == f"{tuned.micro['f2']:.3f}"
    at.toggle(key="eval.per_label").set_value(False).run()
    at.slider(key="eval.threshold").set_value(0.2).run()
    low = evaluation.metrics_at(cls, 0.2)
    assert {m.label: m.value for m in at.metric}["Micro F1"] == f"{low.micro['f1']:.3f}"
    assert list(at.dataframe[0].value["tp"]) == list(low.tp)
    assert element_count(at, "image") > 0  # example tiles
    assert not at.exception

    at = open_app("pages/correlations.py", **{"olr.run": "siam"})
    agreement = correlations.read_agreement(siam)
    cards = {m.label: m.value for m in at.metric}
    assert cards.get("Siamese self-score · ρ") == f"{agreement['siamese_self']['spearman']:.3f}", (
        cards,
        texts(at, "info"),
        texts(at, "error"),
    )
    assert element_count(at, "vega_lite_chart") == 4  # truth, learned, difference, scatter
    assert "no tile coordinates" in texts(at, "info")  # the tiny training set has no map
    at.selectbox(key="corr.view").set_value("siamese_rsa").run()
    assert not at.exception

    at = open_app("pages/live.py", **{"olr.runs": ["cls", "siam"]})
    assert element_count(at, "vega_lite_chart") == 1
    metrics = store.read_metrics(cls)
    last_val = metrics[metrics["split"] == "val"]["loss"].dropna().iloc[-1]
    assert {m.label: m.value for m in at.metric}[annotations.run_title(cls)] == f"{last_val:.4g}"

    at = open_app("pages/compare.py", **{"olr.runs": ["cls", "siam"]})
    table = at.table[0].value  # the results, one row per run
    assert sorted(table["id"]) == ["cls", "siam"]
    assert list(at.table[1].value["id"]) == ["cls"]  # the teachers: the classifier beside its Siamese run
    assert "What to train" in at.table[2].value.columns  # the settings that differ, in words
    assert at.get("download_button")
    assert element_count(at, "vega_lite_chart") == 2  # settings against a figure, the curves


def test_failed_half_written_and_corrupt_runs_are_explained(results_home, _isolated_workspace, monkeypatch):
    home = _isolated_workspace
    monkeypatch.setenv("OLR_HOME", str(home))
    shutil.copytree(results_home / "data", home / "data")
    shutil.copytree(results_home / "models" / "cls", home / "models" / "cls")
    with open(home / "models" / "cls" / "metrics.jsonl", "a") as f:
        f.write('{"step": 9999, "split": "train", "loss": 0.1\n')  # torn last line
    failed = home / "models" / "broken"
    failed.mkdir()
    (failed / "status.json").write_text(
        json.dumps({"state": "failed", "error": "Traceback ...\nValueError: the loss became NaN"})
    )
    (failed / "console.log").write_text("epoch 1\nValueError: the loss became NaN\n")
    (home / "models" / "half").mkdir()
    (home / "models" / "half" / "console.log").write_text("starting\n")

    at = open_app("pages/live.py", **{"olr.runs": ["cls", "broken", "half"]})
    assert "1 unreadable line(s)" in texts(at, "caption")
    assert element_count(at, "vega_lite_chart") == 1  # the rest is still drawn
    assert "Run broken failed: ValueError: the loss became NaN" in texts(at, "error")

    at = open_app("pages/train.py")
    assert {"broken", "half"} <= set(at.dataframe[0].value["run"])
    assert "the loss became NaN" in texts(at, "error")

    at = open_app("pages/evaluate.py", **{"olr.run": "broken"})
    assert "Run broken failed" in texts(at, "error")
    at = open_app("pages/compare.py")
    assert {"cls", "broken", "half"} == set(at.table[0].value["id"])
    assert "(broken) failed: ValueError" in texts(at, "error") and "the loss became NaN" in texts(at, "error")


# ------------------------------------------------------------------ train: launch and stop


#: the Train page's number inputs for a tiny classifier that trains until stopped
TINY_FORM = tuple(
    (options.OPTIONS[key].label, value)
    for key, value in (
        ("width", 0.25),
        ("depth", 1),
        ("batch_size", 16),
        ("epochs", 500),
        ("log_every_steps", 2),
        ("early_stopping_patience", 0),
    )
)


def test_launch_from_the_train_page_then_stop_it(_isolated_workspace, no_auto_demo):
    make_tiny_dataset(_isolated_workspace / "data" / "tiny", n_tiles=96)
    at = open_app("pages/train.py")
    for label, value in TINY_FORM:
        labelled(at.number_input, label).set_value(value)
    labelled(at.button, "Launch training").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    [run] = store.list_runs()
    assert f"Launched **{run.id}**" in texts(at, "success")
    assert (
        run.config.get("epochs", 500) == 500
        or json.loads((run.path / "launch_config.json").read_text())["epochs"] == 500
    )
    assert at.session_state["olr.runs"][0] == run.id
    # A rerun of the same submission (as a double click would cause) starts nothing new.
    at.run()
    assert len(store.list_runs()) == 1

    deadline = time.monotonic() + 180
    while store.load_run(run.id).state != "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    at.run()
    assert {m.label: m.value for m in at.metric}.get("State") in ("queued", "running")
    assert any(run.id in str(m.value) for m in at.markdown)
    # A second browser session submitting the same settings is shown the live run, not a duplicate.
    other = open_app("pages/train.py")
    for label, value in TINY_FORM:
        labelled(other.number_input, label).set_value(value)
    labelled(other.button, "Launch training").click().run()
    assert not other.exception and f"already running on cpu as **{run.id}**" in texts(other, "info")
    assert len(store.list_runs()) == 1
    # Other settings with "one run per device": a new run that waits for the first.
    labelled(other.number_input, options.OPTIONS["epochs"].label).set_value(3)
    other.toggle(key="train.classifier.queue").set_value(True)
    labelled(other.button, "Launch training").click().run()
    [queued] = [r for r in store.list_runs() if r.id != run.id]
    assert "queued for the device" in texts(other, "success")
    assert "--wait-for-device" in json.loads((queued.path / "launch.json").read_text())["command"]
    while "queued:" not in "".join(store.tail_log(queued.id, 5)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert store.load_run(queued.id).state == "queued"
    from olr.runs import launcher

    assert launcher.stop_run(queued.id, grace_s=30, wait=True)
    labelled(at.button, "Stop").click().run()
    assert not at.exception
    assert f"Stopping {run.id}" in texts(at, "info")
    while store.load_run(run.id).state not in store.FINAL_STATES and time.monotonic() < deadline:
        time.sleep(0.5)
    assert store.load_run(run.id).state == "stopped"
    at.run()
    assert "No run is active" in texts(at, "caption")
    recent = next(d.value for d in at.dataframe if "state" in d.value)  # the Recent runs table
    assert "stopped" in list(recent["state"])


@pytest.mark.jax_leg
def test_the_train_page_launches_on_the_picked_keras_backend(_isolated_workspace, no_auto_demo, monkeypatch):
    make_tiny_dataset(_isolated_workspace / "data" / "tiny", n_tiles=96)
    at = open_app("pages/train.py")
    picker = labelled(at.selectbox, "Keras backend")
    assert picker.options == ["tensorflow", "jax"] and picker.value == "tensorflow"  # the default first
    assert "keras.distribution" in picker.help and "MirroredStrategy" in picker.help
    for label, value in TINY_FORM:
        labelled(at.number_input, label).set_value(value)
    picker.set_value("jax")
    labelled(at.button, "Launch training").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    [run] = store.list_runs()
    assert f"Launched **{run.id}** (classifier, cpu, jax)" in texts(at, "success")
    assert json.loads((run.path / "launch.json").read_text())["backend"] == "jax"
    from olr.runs import launcher

    try:  # the process's Keras trains on it, and the run panel says so beside the run
        deadline = time.monotonic() + 180
        while "Keras backend" not in "".join(store.tail_log(run.id, 40)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "Keras backend jax;" in "\n".join(store.tail_log(run.id, 40)), store.tail_log(run.id, 30)
        at.run()
        assert any(f"`{run.id}` · jax" in m.value for m in at.markdown), [m.value for m in at.markdown]
    finally:
        launcher.stop_run(run.id, grace_s=20, wait=True)
    at.run()
    recent = next(d.value for d in at.dataframe if "state" in d.value)  # the Recent runs table
    assert list(recent["backend"]) == ["jax"]

    # With one backend installed there is nothing to choose, so there is no picker.
    monkeypatch.setitem(sys.modules, "jax", None)  # how Python marks a package as not importable
    at = open_app("pages/train.py")
    assert "Keras backend" not in [w.label for w in at.selectbox]


def test_read_only_workspace_hides_every_action(geo_home, monkeypatch, trained_classifier_run):
    # a stopped run that could be resumed, were the workspace writable
    stopped = geo_home / "models" / "stopped-run"
    shutil.copytree(trained_classifier_run, stopped)
    status = json.loads((stopped / "status.json").read_text())
    (stopped / "status.json").write_text(json.dumps({**status, "state": "stopped"}))
    train_state = json.loads((stopped / "train_state.json").read_text())
    (stopped / "train_state.json").write_text(json.dumps({**train_state, "epoch": 1}))
    monkeypatch.setenv("OLR_READONLY", "1")
    launched_with_upload_limit(monkeypatch, 0)  # the documented read-only launch
    at = open_app(PAGES[0])
    assert "Read-only demo" in texts(at, "info")
    assert not any(b.label == "Prepare dataset" for b in at.button)
    assert element_count(at, "vega_lite_chart") == 3  # browsing still works
    at.segmented_control(key="ds.view").set_value("Map").run()  # and the map, a click included
    at.session_state["ds.map_tile.geo"] = 0
    at.run()
    assert not at.exception and element_count(at, "component_instance") == 1 and len(image_captions(at)) == 1
    at = open_app("pages/train.py")
    assert "read-only demo" in texts(at, "info")
    assert not any(b.label == "Launch training" for b in at.button)
    assert at.button(key="resume.stopped-run").disabled
    at = open_app("pages/evaluate.py")
    assert not any(b.label.startswith("Run the study") for b in at.button)


def test_import_thesis_batches_from_the_datasets_page(no_auto_demo):
    folder = workspace.data_dir() / "uploads" / "batches"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for b in range(3):
        np.save(folder / f"{b}.npy", rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8))
        np.save(folder / f"labels{b}.npy", rng.integers(0, 2, (8, 2)).astype(np.uint8))
    at = open_app(PAGES[0])
    at.text_input(key="imp.folder").input("uploads/batches")
    at.text_input(key="imp.name").input("thesis")
    at.text_area(key="imp.names").input("Urban\nForest")
    labelled(at.button, "Import").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert "Imported **thesis**: 24 tiles, 2 labels" in texts(at, "success")
    at.segmented_control(key="ds.view").set_value("Map").run()
    assert "no tile coordinates" in texts(at, "info")


def test_demo_button_launches_the_study_on_the_demo_dataset(no_auto_demo):
    at = open_app("pages/compare.py")
    labelled(at.button, "Run the study on the demo dataset").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    [launch] = [r for r in store.list_runs() if r.files.launch.exists()]
    try:
        assert launch.is_study
        command = json.loads((launch.path / "launch.json").read_text())["command"]
        assert command[:5] == ["-m", "olr", "study", "--dataset", "demo"] and "--quick" in command
        assert f"models/{launch.id}/console.log" in texts(at, "success")
    finally:
        from olr.runs import launcher

        launcher.stop_run(launch.id, grace_s=5, wait=True)
    assert store.load_run(launch.id).state == "stopped"


def test_maps_load_nothing_from_the_internet(tiny_dataset, tmp_path):
    """The folium maps reference only the app's own static files: they work offline. Tiles on a grid are one
    embedded PNG per pane drawn with crisp pixels; tiles on no grid are polygons."""
    import branca
    import folium
    import folium.plugins

    from olr.data.dataset import load_dataset
    from ui import maps

    ds = load_dataset(tiny_dataset)
    gridless = tmp_path / "gridless"
    shutil.copytree(tiny_dataset, gridless)
    meta = json.loads((gridless / "meta.json").read_text())
    del meta["transform"]
    (gridless / "meta.json").write_text(json.dumps(meta))
    fractions = np.asarray(ds.fractions)
    rows = np.arange(ds.n_tiles)
    preview = ds.meta["preview"]
    where = maps.dataset_tiles(ds)
    assert where.on_grid and not maps.dataset_tiles(load_dataset(gridless)).on_grid

    def layer(tiles, j):
        return maps.tile_layer(tiles, rows, tile_images.fraction_rgba(fractions[:, j]))

    single = maps.fraction_map(
        layer(where, 0),
        title="share",
        bounds=where.bounds(rows),
        preview_png=ds.path / preview["file"],
        preview_bounds=preview["bounds_lonlat"],
    )
    polygons = maps.fraction_map(
        layer(maps.dataset_tiles(load_dataset(gridless)), 0),
        title="share",
        bounds=where.bounds(rows),
        preview_png=ds.path / preview["file"],
        preview_bounds=preview["bounds_lonlat"],
    )
    dual = maps.dual_map(
        layer(where, 0),
        layer(where, 1),
        left_title="truth",
        right_title="score",
        left_range=(0.0, 1.0),
        right_range=(0.0, 1.0),
        bounds=where.bounds(rows),
        preview_png=ds.path / preview["file"],
        preview_bounds=preview["bounds_lonlat"],
    )

    def elements(node):  # the walk streamlit-folium does to collect script and style links
        yield node
        if isinstance(node, folium.plugins.DualMap):
            yield from elements(node.m1)
            yield from elements(node.m2)
        for child in getattr(node, "_children", {}).values():
            yield from elements(child)

    for m, panes, images in ((single, 1, 1), (dual, 2, 2), (polygons, 1, 0)):
        found = list(elements(m))
        assert not any(isinstance(e, branca.colormap.ColorMap) for e in found)  # would pull d3 from a CDN
        links = [url for e in found for _, url in getattr(e, "default_js", []) + getattr(e, "default_css", [])]
        assert links and all(url.startswith("/app/static/vendor/") for url in links), links
        for url in set(links):
            assert (REPO_ROOT / "static" / url.removeprefix("/app/static/")).is_file()
        html = m.get_root().render()
        assert html.count('"olr-legend"') == panes and html.count("data:image/webp;base64,") == panes
        assert html.count("data:image/png;base64,") == images  # the tiles, one image per pane
        assert html.count(f'className: "{maps.TILE_IMAGE_CLASS}"') == images
        assert (f".{maps.TILE_IMAGE_CLASS} {{ image-rendering" in html) == bool(images)  # crisp pixels
        assert html.count("L.geoJson(") == panes - images  # else the tiles' polygons
        assert "://" not in html.replace("http://www.w3.org", ""), "an absolute URL would need internet access"


def test_unexpected_errors_become_a_sentence_with_details_not_a_traceback():
    def app():
        import streamlit as st

        from olr.errors import OLRError
        from ui.guard import guarded

        @guarded("The widget")
        def user_error():
            raise OLRError("The file x.tif is not a raster; upload a GeoTIFF.")

        @guarded("The chart")
        def bug():
            return {}["missing"]

        user_error()
        bug()
        st.write("the rest of the page still renders")

    at = AppTest.from_function(app).run()
    assert not at.exception
    assert at.error[0].value == "The file x.tif is not a raster; upload a GeoTIFF."
    assert at.error[1].value.startswith("The chart hit an unexpected problem (KeyError)")
    assert "KeyError: 'missing'" in at.expander[0].code[0].value
    assert at.markdown[-1].value == "the rest of the page still renders"
