"""Prediction on an image without labels (olr.analysis.predict) on real files: a scene mosaicked from the
fixture dataset's own tiles, written in another CRS than any the run saw, predicted, and read back."""

import hashlib
import io
import json
import secrets
import shutil
import subprocess
import time
import zipfile

import fiona
import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine
from rasterio.crs import CRS

from olr import workspace
from olr.analysis import correlations, exports, inference, predict, run_data, tile_images
from olr.data.dataset import load_dataset
from olr.data.tile_writer import fill_nodata
from olr.errors import OLRError
from olr.runs import store
from olr.training.plan import meta_checksum_of
from tests.fixtures.data import write_raster
from tests.fixtures.runs import olr_cli
from tests.test_evaluation import copy_runs
from ui import predict_panel

#: the scene: ETRS89-LAEA (EPSG:3035), 10 m pixels; the fixture run was trained on tiles without any CRS
EPSG, ORIGIN, RES, TILE = 3035, (4_321_000.0, 3_210_000.0), 10.0, 16
NAMES = ("red", "green", "blue")


def north_up(res: float) -> Affine:
    """The transform of a grid of `res` pixels whose upper-left corner is ORIGIN."""
    return Affine.translation(*ORIGIN) @ Affine.scale(res, -res)


def mosaic(ds, order, rows: int, cols: int, extra: tuple[int, int] = (5, 7)) -> np.ndarray:
    """(3, h, w) image holding the dataset tile order[k] at tile (k // cols, k % cols), plus `extra` pixel
    rows and columns (filled with 99) that make no whole tile."""
    image = np.full((rows * TILE + extra[0], cols * TILE + extra[1], 3), 99, dtype=ds.images.dtype)
    for k, i in enumerate(order):
        r, c = divmod(k, cols)
        image[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = ds.images[i]
    return image.transpose(2, 0, 1)


def write_scene(path, image, names=NAMES, **profile):
    write_raster(path, image, CRS.from_epsg(EPSG), north_up(RES), **profile)
    with rasterio.open(path, "r+") as dst:
        dst.descriptions = tuple(names)
    return path


def tree_hashes(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_prediction_in_another_crs_matches_the_model_on_the_same_pixels(trained_classifier_run, training_workspace):
    home = copy_runs(training_workspace, "cls")
    ds = load_dataset(home / "data" / "tiny")
    run = store.load_run("cls")
    rows, cols = 24, 8  # two strips of 16 tile rows; windows of 3 tile columns
    order = np.random.default_rng(1).permutation(ds.n_tiles)
    image = mosaic(ds, order, rows, cols)
    blank, dotted = (2, 3), (5, 1)  # a tile of nodata only; a tile with 4 nodata pixels (1.6 % <= 10 %)
    image[:, blank[0] * TILE : (blank[0] + 1) * TILE, blank[1] * TILE : (blank[1] + 1) * TILE] = 0
    dots = np.zeros((TILE, TILE), dtype=bool)
    dots[3:5, 7:9] = True
    image[:, dotted[0] * TILE : (dotted[0] + 1) * TILE, dotted[1] * TILE : (dotted[1] + 1) * TILE][:, dots] = 0
    path = write_scene(home / "scene 3035.tif", image, nodata=0)  # 0 never occurs in the fixture's tiles
    strips = []
    done = predict.predict_image(
        "cls", path, window_bytes=3 * 16 * TILE * TILE * 3, progress=lambda *a: strips.append(a), batch_size=32
    )

    out = run.path / "predictions" / "scene_3035"  # the image's stem as a folder name
    assert done.folder == out
    assert done.files == ["probabilities.tif", "predicted_label.tif", "tiles.gpkg", "prediction.json"]
    assert (done.n_tiles, done.n_nodata, done.thresholds) == (rows * cols - 1, 1, True)
    assert strips == [(1, 2, 16 * cols, 1), (2, 2, 8 * cols, 0)]
    expected = run_data.predict_run(run, ds, order, batch_size=64)  # (192, L) on the dataset's own tiles
    model = run_data.best_model(run)
    tile = np.array(ds.images[order[dotted[0] * cols + dotted[1]]])
    tile[dots] = 0
    fill_nodata(tile[None], dots[None])  # by hand, as preparation fills a kept tile's nodata
    expected[dotted[0] * cols + dotted[1]] = model.predict(tile[None].astype(np.float32), verbose=0)[0]

    with rasterio.open(out / "probabilities.tif") as src:
        assert src.crs.to_epsg() == EPSG and (src.height, src.width) == (rows, cols)
        assert src.transform == north_up(TILE * RES)  # one pixel per 16 x 16 tile
        assert list(src.descriptions) == ds.label_names and src.nodata == exports.NODATA
        probabilities = src.read()
    got = probabilities.transpose(1, 2, 0).reshape(rows * cols, -1)
    assert (got[blank[0] * cols + blank[1]] == exports.NODATA).all()
    predicted = np.ones(rows * cols, dtype=bool)
    predicted[blank[0] * cols + blank[1]] = False
    np.testing.assert_allclose(got[predicted], expected[predicted], atol=2e-5)

    thresholds = np.asarray(json.loads(run.files.summary.read_text())["thresholds"]["per_label"])
    keys = exports.label_keys(ds.labels)
    with fiona.open(out / "tiles.gpkg", layer="tiles") as layer:
        assert CRS.from_user_input(layer.crs).to_epsg() == EPSG
        features = [(f.geometry, dict(f.properties)) for f in layer]
    assert len(features) == rows * cols - 1
    for geometry, props in features[:: len(features) // 7]:
        r, c = props["tile_row"], props["tile_col"]
        xs, ys = zip(*geometry["coordinates"][0])
        x0, y1 = ORIGIN[0] + c * TILE * RES, ORIGIN[1] - r * TILE * RES
        assert (min(xs), min(ys), max(xs), max(ys)) == pytest.approx((x0, y1 - TILE * RES, x0 + TILE * RES, y1))
        assert (props["row_off"], props["col_off"]) == (r * TILE, c * TILE)
        prob = np.array([props[f"prob_{k}"] for k in keys])
        assert prob.tolist() == probabilities[:, r, c].tolist()
        assert [props[f"pred_{k}"] for k in keys] == (prob >= thresholds).astype(int).tolist()
    with fiona.open(out / "tiles.gpkg", layer="labels") as table:
        assert [p["threshold"] for p in (f.properties for f in table)] == thresholds.tolist()
    record = json.loads((out / "prediction.json").read_text())
    assert record["tile_grid"] == {"rows": rows, "cols": cols, "tiles": rows * cols} and record["run"] == "cls"

    # read back for the map: the GeoPackage's tiles, footprints (and lon/lat) and fields, row for row
    assert predict.list_predictions("cls") == ["scene_3035"]
    scene = predict.read_prediction("cls", "scene_3035")
    assert len(scene.tiles) == len(features) and scene.label_names == ds.label_names
    assert scene.label_colours == [lab.color for lab in ds.labels]
    by_place = {(p["tile_row"], p["tile_col"]): (g, p) for g, p in features}
    top = scene.top_labels()
    for k in range(0, len(scene.tiles), 11):
        tile = scene.tiles.iloc[k]
        geometry, props = by_place[(tile.tile_row, tile.tile_col)]
        xs, ys = zip(*geometry["coordinates"][0])
        footprint = (min(xs), min(ys), max(xs), max(ys))
        assert (tile.x_min, tile.y_min, tile.x_max, tile.y_max) == pytest.approx(footprint)
        lon, lat = rasterio.warp.transform(CRS.from_epsg(EPSG), "EPSG:4326", xs[:4], ys[:4])  # the corners
        assert (tile.lon_min, tile.lat_min, tile.lon_max, tile.lat_max) == pytest.approx(
            (min(lon), min(lat), max(lon), max(lat)), abs=1e-9
        )
        assert scene.probabilities[k].tolist() == pytest.approx([props[f"prob_{key}"] for key in keys])
        present = [j for j, key in enumerate(keys) if props[f"pred_{key}"]]
        assert scene.predicted[k].nonzero()[0].tolist() == present
        best = max(present, key=lambda j: props[f"prob_{keys[j]}"]) if present else -1
        assert top[k] == best
        assert scene.label_text()[k].split(" · ")[0] == (
            f"{ds.label_names[best]} {props[f'prob_{keys[best]}']:.2f}" if present else "none"
        )
    # on the map: each tile on its pixel of the GeoTIFFs' grid, and a click on its centre finds it (none on the blank)
    places = tile_images.prediction_places(scene)
    grid = places.raster
    assert grid.transform == north_up(TILE * RES) and (grid.height, grid.width) == (rows, cols)
    centres_x = ((scene.tiles.x_min + scene.tiles.x_max) / 2).tolist()
    centres_y = ((scene.tiles.y_min + scene.tiles.y_max) / 2).tolist()
    lon, lat = rasterio.warp.transform(CRS.from_epsg(EPSG), "EPSG:4326", centres_x, centres_y)
    assert [tile_images.tile_at(places, p) for p in zip(lon, lat, strict=True)] == list(range(len(scene.tiles)))
    blank_x, blank_y = ORIGIN[0] + (blank[1] + 0.5) * TILE * RES, ORIGIN[1] - (blank[0] + 0.5) * TILE * RES
    (blank_lon,), (blank_lat,) = rasterio.warp.transform(CRS.from_epsg(EPSG), "EPSG:4326", [blank_x], [blank_y])
    assert tile_images.tile_at(places, (blank_lon, blank_lat)) is None
    with rasterio.open(out / "predicted_label.tif") as src:  # the map's classes, in CORINE colours
        classes = src.read(1)
        assert src.transform == north_up(TILE * RES) and src.colormap(1)[1][:3] == tuple(
            int(ds.labels[0].color[k : k + 2], 16) for k in (1, 3, 5)
        )
    assert classes[blank] == exports.NO_TILE
    assert [classes[r, c] for r, c in zip(scene.tiles.tile_row, scene.tiles.tile_col, strict=True)] == (
        scene.top_labels() + 1
    ).tolist()
    with zipfile.ZipFile(io.BytesIO(predict.prediction_archive("cls", "scene_3035"))) as archive:
        assert sorted(archive.namelist()) == sorted(done.files)
        assert archive.read("prediction.json") == (out / "prediction.json").read_bytes()
    with pytest.raises(OLRError, match="no prediction named 'other'"):
        predict.read_prediction("cls", "other")


def test_siamese_run_writes_its_self_scores_beside_its_classifiers_probabilities(
    trained_siamese_run, training_workspace
):
    home = copy_runs(training_workspace, "cls", "siam")
    ds = load_dataset(home / "data" / "tiny")
    order = np.arange(12, 28)
    path = write_scene(home / "small.tif", mosaic(ds, order, 4, 4))
    done = predict.predict_image("siam", path, name="small-scene")
    written = ["probabilities.tif", "self_scores.tif", "predicted_label.tif", "tiles.gpkg", "prediction.json"]
    assert done.files == written
    with rasterio.open(done.folder / "self_scores.tif") as src:
        self_scores = src.read().transpose(1, 2, 0).reshape(16, -1)
        assert list(src.descriptions) == ds.label_names
    with rasterio.open(done.folder / "probabilities.tif") as src:
        probabilities = src.read().transpose(1, 2, 0).reshape(16, -1)
    embeddings = inference.label_embeddings(run_data.best_model("siam"), ds, order)
    np.testing.assert_allclose(self_scores, correlations.self_scores(embeddings), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probabilities, run_data.predict_run("cls", ds, order, 64), atol=2e-5)
    with fiona.open(done.folder / "tiles.gpkg", layer="tiles") as layer:
        props = dict(next(iter(layer)).properties)
    key = exports.label_keys(ds.labels)[0]
    assert props[f"self_{key}"] == pytest.approx(float(self_scores[0, 0]))
    assert props[f"pred_{key}"] in (0, 1)  # at the classifier run's thresholds


def test_images_unlike_the_training_data_are_refused_in_one_sentence(trained_classifier_run, training_workspace):
    home = copy_runs(training_workspace, "cls")
    ds = load_dataset(home / "data" / "tiny")
    image = mosaic(ds, np.arange(16), 4, 4)
    predictions = store.load_run("cls").path / "predictions"

    # another band count: the command line, exit 2 and one sentence
    write_scene(home / "two.tif", image[:2], names=("red", "green"))
    proc = olr_cli(home, "predict", "cls", "--image", str(home / "two.tif"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    message = proc.stderr.strip()
    assert message.count("\n") == 0 and "has 2 bands (red, green)" in message
    assert "trained on 3 bands (red, green, blue) of dataset tiny" in message

    write_scene(home / "wide.tif", image.astype(np.uint16))
    with pytest.raises(OLRError, match=r"holds uint16 pixels, but run cls was trained .* in uint8") as info:
        predict.predict_image("cls", home / "wide.tif")
    assert "\n" not in str(info.value)
    write_scene(home / "renamed.tif", image, names=("nir", "swir", "red"))
    with pytest.raises(OLRError, match=r"has 3 bands \(nir, swir, red\), but run cls was trained on 3 bands"):
        predict.predict_image("cls", home / "renamed.tif")
    assert not predictions.exists()

    # a dataset that records its bands' scaling: an image scaled otherwise is refused
    meta_path = home / "data" / "tiny" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["bands"] = [b | {"scale": 1.0, "offset": 0.0} for b in meta["bands"]]
    meta_path.write_text(json.dumps(meta))
    config_path = home / "models" / "cls" / "config.json"
    config_path.write_text(
        json.dumps(json.loads(config_path.read_text()) | {"dataset_checksum": meta_checksum_of(meta_path.parent)})
    )
    write_scene(home / "scaled.tif", image)
    with rasterio.open(home / "scaled.tif", "r+") as dst:
        dst.scales = (0.0001,) * 3
    with pytest.raises(OLRError, match=r"declares scale 0.0001 and offset 0 for band red, but run cls"):
        predict.predict_image("cls", home / "scaled.tif")
    assert not predictions.exists()


def test_an_existing_target_an_unfinished_run_and_read_only_mode_are_refused(
    trained_classifier_run, training_workspace, monkeypatch
):
    home = copy_runs(training_workspace, "cls")
    ds = load_dataset(home / "data" / "tiny")
    path = write_scene(home / "scene.tif", mosaic(ds, np.arange(9), 3, 3))
    target = store.load_run("cls").path / "predictions" / "scene"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    before = tree_hashes(target.parent)
    with pytest.raises(OLRError, match=r"already exists; choose another --out NAME or pass --overwrite"):
        predict.predict_image("cls", path)
    assert tree_hashes(target.parent) == before
    shutil.rmtree(store.load_run("cls").path / "evaluation")  # no evaluation: probabilities only, and said so
    done = predict.predict_image("cls", path, overwrite=True)
    assert done.folder == target and not (target / "notes.txt").exists() and done.n_tiles == 9
    assert not done.thresholds and any("has no evaluation" in note for note in done.notes)
    with fiona.open(target / "tiles.gpkg", layer="tiles") as layer:
        fields = list(layer.schema["properties"])
    assert any(f.startswith("prob_") for f in fields) and not any(f.startswith("pred_") for f in fields)

    with pytest.raises(OLRError, match="prediction name"):
        predict.predict_image("cls", path, name="../escape")
    monkeypatch.setenv("OLR_READONLY", "1")
    with pytest.raises(OLRError, match="read-only demo, so it cannot write predictions"):
        predict.predict_image("cls", path, name="other")
    monkeypatch.delenv("OLR_READONLY")
    status_path = store.load_run("cls").path / "status.json"
    status_path.write_text(json.dumps(json.loads(status_path.read_text()) | {"state": "failed"}))
    with pytest.raises(OLRError, match="not finished"):
        predict.predict_image("cls", path, name="other")
    assert sorted(p.name for p in target.parent.iterdir()) == ["scene"]
    assert not list(workspace.home().rglob(".*partial"))


def test_the_evaluate_page_predicts_an_image_of_the_data_folder_and_never_replaces_one_unasked(
    trained_classifier_run, training_workspace, monkeypatch
):
    from streamlit import config as streamlit_config

    from tests.fixtures.pages import open_app
    from tests.test_app_pages import texts

    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    home = copy_runs(training_workspace, "cls")
    ds = load_dataset(home / "data" / "tiny")
    (home / "data" / "uploads").mkdir(parents=True)
    write_scene(home / "data" / "uploads" / "scene.tif", mosaic(ds, np.arange(16), 4, 4))
    at = open_app("pages/evaluate.py", timeout=300, **{"olr.run": "cls"})
    assert "This run has no predictions yet." in texts(at, "caption")
    picker = at.selectbox(key="predict.image")
    assert "uploads/scene.tif" in picker.options
    picker.set_value("uploads/scene.tif")
    at.button(key="predict.submit").click().run()  # `python -m olr predict` in a child process, for real
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert predict.list_predictions("cls") == ["scene"]
    assert at.selectbox(key="predict.shown.cls").value == "scene"
    assert any("Predicted **scene.tif**" in s.value for s in at.success)
    assert "16 tiles of `" in texts(at, "caption")
    view = at.selectbox(key="predict.view.cls.scene")
    assert view.options == [predict_panel.TOP_LABEL, *ds.label_names]
    view.set_value(ds.label_names[1]).run()
    assert not at.exception
    assert "Click a tile on the map to see its predicted labels here." in texts(at, "caption")
    at.session_state["predict.tile.cls.scene"] = 5  # as a click on the map's sixth tile (row 1, column 1)
    at.run()
    scene = predict.read_prediction("cls", "scene")
    opened = texts(at, "markdown")
    assert "Tile at row 1, column 1" in opened and f"P({ds.label_names[1]}) = {scene.probabilities[5, 1]:.3f}" in opened
    assert scene.label_text([5])[0] in opened

    folder = store.load_run("cls").path / "predictions"
    before = tree_hashes(folder)
    at.selectbox(key="predict.image").set_value("uploads/scene.tif")
    at.button(key="predict.submit").click().run()
    assert "already has a prediction named 'scene'" in " ".join(e.value for e in at.error)
    assert tree_hashes(folder) == before

    monkeypatch.setenv("OLR_READONLY", "1")
    limit = streamlit_config.get_option("server.maxUploadSize")
    streamlit_config.set_option("server.maxUploadSize", 0)  # as a read-only demo must be started
    try:
        at = open_app("pages/evaluate.py", **{"olr.run": "cls"})
    finally:
        streamlit_config.set_option("server.maxUploadSize", limit)
    assert not [w for w in at.selectbox if w.key == "predict.image"]
    assert "read-only demo: new predictions cannot be made here" in texts(at, "caption")
    assert at.selectbox(key="predict.shown.cls").value == "scene"  # stored ones stay on the map


def test_a_prediction_is_drawn_on_the_map_and_downloads_in_a_browser(
    app_server, browser_workspace, page, tmp_path, monkeypatch
):
    """A throwaway copy of the browser workspace's "cls" with a prediction, found by its id in the sidebar."""
    from tests.test_browser import screenshot, settle
    from tests.test_browser_manage import picked_run, search

    models = browser_workspace / "models"
    run_id = f"zz-predict-{secrets.token_hex(3)}"
    shutil.copytree(models / "cls", models / run_id)
    try:
        ds = load_dataset(browser_workspace / "data" / "tiny")
        path = write_scene(tmp_path / "new scene.tif", mosaic(ds, np.arange(20), 4, 5))
        monkeypatch.setenv("OLR_HOME", str(browser_workspace))
        done = predict.predict_image(run_id, path, name="new-scene")
        scene = predict.read_prediction(run_id, "new-scene")
        page.goto(f"{app_server}/evaluate")
        page.wait_for_selector('[data-testid="stSidebar"]')
        settle(page)
        sidebar = page.locator('[data-testid="stSidebar"]')
        search(sidebar, run_id)
        deadline = time.monotonic() + 60
        while "1 of " not in sidebar.inner_text() and time.monotonic() < deadline:
            time.sleep(0.3)
        settle(page)
        assert run_id in page.locator('[data-testid="stMain"]').inner_text(), picked_run(sidebar)
        main = page.locator('[data-testid="stMain"]')
        main.get_by_text("Predict a new scene", exact=True).scroll_into_view_if_needed()
        frame = None
        while frame is None and time.monotonic() < deadline + 60:
            for element in page.query_selector_all('iframe[title*="st_folium"]'):
                candidate = element.content_frame()
                if candidate is not None and candidate.evaluate(
                    "() => document.querySelectorAll('img.olr-tiles').length === 1"
                    " && (document.querySelector('.olr-legend') || {}).innerText !== undefined"
                ):
                    frame = candidate
            time.sleep(0.3)
        assert frame is not None, "the prediction's map did not draw"
        legend = frame.evaluate("() => document.querySelector('.olr-legend').innerText")
        top = scene.top_labels()
        assert legend.startswith("Predicted label")
        assert all(scene.label_names[j] in legend for j in set(top[top >= 0].tolist()))
        assert f"{done.n_tiles} tiles of" in main.inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0
        screenshot(page, "evaluate-prediction-map")

        with page.expect_download(timeout=60000) as download:
            main.locator('[data-testid="stDownloadButton"] button:visible').last.click()
        assert download.value.suggested_filename == f"{run_id}-new-scene.zip"
        download.value.save_as(tmp_path / "prediction.zip")
        with zipfile.ZipFile(tmp_path / "prediction.zip") as archive:
            assert sorted(archive.namelist()) == sorted(done.files)
            assert archive.read("probabilities.tif") == (done.folder / "probabilities.tif").read_bytes()
    finally:
        shutil.rmtree(models / run_id, ignore_errors=True)


def test_a_full_disk_while_writing_is_said_as_such_and_leaves_nothing(trained_classifier_run, training_workspace):
    """A real full disk (a small tmpfs as the run's predictions folder): GDAL and SQLite rarely say so
    themselves ("no such table: gpkg_contents"), yet the sentence is the disk-full one, and nothing is kept."""
    from tests.test_disk_full import _mount

    home = copy_runs(training_workspace, "cls")
    ds = load_dataset(home / "data" / "tiny")
    path = write_scene(home / "scene.tif", mosaic(ds, np.arange(48), 6, 8))
    target = store.load_run("cls").path / "predictions"
    target.mkdir()
    for size in ("8k", "60k"):  # full while writing the GeoTIFF; full while writing the GeoPackage
        _mount(target, size)
        try:
            with pytest.raises(OLRError) as refused:
                predict.predict_image("cls", path)
            assert str(refused.value) == (
                f"The disk is full while writing {target / 'scene'}; nothing was kept. Free some space and try again."
            )
            assert list(target.iterdir()) == []
        finally:
            subprocess.run(["umount", str(target)], check=False)
