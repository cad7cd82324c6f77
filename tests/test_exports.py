"""GIS exports (olr.analysis.exports) on real files: GeoPackages re-read with fiona, GeoTIFFs with rasterio."""

import hashlib
import io
import json
import zipfile
from types import SimpleNamespace

import fiona
import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from olr import workspace
from olr.analysis import correlations, evaluation, exports, run_data
from olr.data.dataset import load_dataset
from olr.data.label_schemes import Label
from olr.errors import OLRError
from olr.runs import store
from olr.training.plan import meta_checksum_of
from tests.fixtures.runs import olr_cli
from tests.test_evaluation import copy_runs

#: where the test georeferences the fixture dataset "tiny" (12 tiles of 16 px per row): UTM 36N, 10 m pixels
ORIGIN, RES, EPSG = (500_000.0, 3_880_000.0), 10.0, 32636


def georeferenced_copy(training_workspace, *run_ids):
    """The fixture dataset and runs copied into this test's workspace, the dataset placed on a map the way
    `olr prepare` records it (meta crs/transform/stride/tile_grid, tile bounds in tiles.parquet), and the
    copied runs told its new checksum. Returns (dataset folder, tile bounds (N, 4) computed here)."""
    home = copy_runs(training_workspace, *run_ids)
    folder = home / "data" / "tiny"
    tiles = pd.read_parquet(folder / "tiles.parquet")
    meta = json.loads((folder / "meta.json").read_text())
    tile = meta["stride"]
    x_min = ORIGIN[0] + tiles["col_off"].to_numpy() * RES
    y_max = ORIGIN[1] - tiles["row_off"].to_numpy() * RES
    bounds = np.stack([x_min, y_max - tile * RES, x_min + tile * RES, y_max], axis=1)
    tiles[["x_min", "y_min", "x_max", "y_max"]] = bounds
    tiles.to_parquet(folder / "tiles.parquet", index=False)
    meta["crs"] = {"wkt": CRS.from_epsg(EPSG).to_wkt(), "epsg": EPSG}
    meta["transform"] = list(from_origin(*ORIGIN, RES, RES))[:6]
    meta["tile_grid"] = {"rows": int(tiles["row_off"].max()) // tile + 2, "cols": 12}  # one empty row of tiles
    (folder / "meta.json").write_text(json.dumps(meta))
    for run_id in run_ids:
        config_path = home / "models" / run_id / "config.json"
        config = json.loads(config_path.read_text())
        config["dataset_checksum"] = meta_checksum_of(folder)
        config_path.write_text(json.dumps(config))
    return folder, bounds


def read_layer(path, layer):
    with fiona.open(path, layer=layer) as src:
        return src.crs, src.schema, [(f.geometry, dict(f.properties)) for f in src]


def ring_bounds(geometry) -> tuple:
    xs, ys = zip(*geometry["coordinates"][0])
    return min(xs), min(ys), max(xs), max(ys)


def values_at(path, bounds) -> tuple[np.ndarray, SimpleNamespace]:
    """(n, bands) pixel values at the centres of the tiles `bounds` (n, 4), and the file's crs, count,
    descriptions and nodata."""
    with rasterio.open(path) as src:
        data = src.read()
        centres = zip((bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2)
        pixels = [src.index(x, y) for x, y in centres]
        about = SimpleNamespace(crs=src.crs, count=src.count, descriptions=list(src.descriptions), nodata=src.nodata)
    return np.stack([data[:, r, c] for r, c in pixels]), about


def tree_hashes(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def test_label_keys_are_readable_unique_column_names():
    labels = [
        Label("Discontinuous urban fabric", (112,), "#ff0000"),
        Label("Land principally occupied by agriculture, with significant areas of natural vegetation", (243,), "#e"),
        Label("Land principally occupied by agriculture, with significant areas of natural vegetation", (243,), "#e"),
        Label("Forêts / bois", (311, 312), "#00ff00"),
    ]
    keys = exports.label_keys(labels)
    assert keys[0] == "112_discontinuous_urban_fabric"
    assert keys[3] == "forets_bois"  # several codes: the name alone, accents dropped
    assert len(set(keys)) == 4 and keys[2].endswith("_2")
    assert all(len(p + k) <= exports.MAX_FIELD for p in exports.PREFIXES for k in keys)
    assert all(k.replace("_", "").isalnum() and k.isascii() for k in keys)


def test_dataset_export_is_the_tile_grid_in_the_source_crs(tiny_dataset, tmp_path):
    ds = load_dataset(tiny_dataset)
    out = tmp_path / "tiny-export"
    done = exports.export_dataset(ds, out=out)
    assert done.folder == out
    assert sorted(p.name for p in out.iterdir()) == ["fractions.tif", "main_label.tif", "tiles.gpkg"]
    keys = exports.label_keys(ds.labels)

    crs, schema, features = read_layer(out / "tiles.gpkg", "tiles")
    assert CRS.from_user_input(crs) == CRS.from_wkt(ds.meta["crs"]["wkt"])
    assert len(features) == ds.n_tiles
    assert all(len(name) <= exports.MAX_FIELD for name in schema["properties"])
    bounds = ds.tiles[["x_min", "y_min", "x_max", "y_max"]].to_numpy()
    for i, (geometry, props) in enumerate(features):
        assert props["tile_id"] == ds.tiles["tile_id"].iloc[i] and props["split"] == ds.tiles["split"].iloc[i]
        assert props["block_id"] == ds.tiles["block_id"].iloc[i]
        assert ring_bounds(geometry) == pytest.approx(tuple(bounds[i]))
        assert [props[f"pres_{k}"] for k in keys] == ds.presence[i].tolist()
        assert [props[f"frac_{k}"] for k in keys] == pytest.approx(ds.fractions[i].tolist(), abs=1e-7)
        main = int(np.argmax(ds.fractions[i]))
        assert (props["main_label"], props["main_color"]) == (ds.label_names[main], ds.label_colors[main])
    _, _, table = read_layer(out / "tiles.gpkg", "labels")
    assert [(p["label"], p["color"], p["key"]) for _, p in table] == list(zip(ds.label_names, ds.label_colors, keys))

    fractions, src = values_at(out / "fractions.tif", bounds)
    assert src.crs == CRS.from_wkt(ds.meta["crs"]["wkt"]) and src.count == len(ds.labels)
    assert src.descriptions == ds.label_names and src.nodata == exports.NODATA
    assert np.array_equal(fractions, np.asarray(ds.fractions, dtype=np.float32))
    with rasterio.open(out / "fractions.tif") as src:
        data = src.read(1)
        for i in (0, ds.n_tiles // 2, ds.n_tiles - 1):  # stride = tile size: a tile's pixel is its footprint
            r, c = src.index((bounds[i, 0] + bounds[i, 2]) / 2, (bounds[i, 1] + bounds[i, 3]) / 2)
            pixel = rasterio.windows.bounds(rasterio.windows.Window(c, r, 1, 1), src.transform)
            assert pixel == pytest.approx(tuple(bounds[i]))
        assert src.xy(0, 0, offset="ul") == pytest.approx((ds.meta["transform"][2], ds.meta["transform"][5]))
    assert int((data != exports.NODATA).sum()) == ds.n_tiles  # every other pixel is nodata

    # the label of the largest share per tile, in CORINE colours as the GeoTIFF's colour table
    classes, src = values_at(out / "main_label.tif", bounds)
    largest = [int(np.argmax(f)) + 1 if f.max() > 0 else exports.NO_LABEL for f in np.asarray(ds.fractions)]
    assert classes[:, 0].tolist() == largest and src.nodata == exports.NO_TILE
    with rasterio.open(out / "main_label.tif") as src:
        colours = src.colormap(1)
        assert src.dtypes == ("uint8",) and int((src.read(1) != exports.NO_TILE).sum()) == ds.n_tiles
        assert json.loads(src.tags(1)["classes"]) == {"0": "no label"} | {
            str(j + 1): name for j, name in enumerate(ds.label_names)
        }
    for j, colour in enumerate(ds.label_colors):
        assert "#{:02x}{:02x}{:02x}".format(*colours[j + 1][:3]) == colour.lower() and colours[j + 1][3] == 255


def test_classifier_run_export_round_trips_the_stored_evaluation(trained_classifier_run, training_workspace):
    folder, bounds = georeferenced_copy(training_workspace, "cls")
    done, _ = exports.export_run("cls")
    out = store.load_run("cls").path / "exports"
    assert done.folder == out and done.files == ["predictions.gpkg", "probabilities.tif", "predicted_label.tif"]

    stored = np.load(out.parent / "evaluation" / "test_predictions.npz")
    per_label = json.loads((out.parent / "evaluation" / "thresholds.json").read_text())["per_label"]
    thresholds = np.array([per_label[str(n)] for n in stored["label_names"]])
    rows, truth, probabilities = stored["indices"], stored["y_true"].astype(bool), stored["probabilities"]
    keys = exports.label_keys(load_dataset(folder).labels)  # the run's labels are the dataset's own

    crs, _, features = read_layer(out / "predictions.gpkg", "predictions")
    assert crs.to_epsg() == EPSG and len(features) == len(rows)
    kinds = {(True, True): "TP", (False, True): "FP", (True, False): "FN", (False, False): "TN"}
    for i, (geometry, props) in enumerate(features):
        assert props["tile_id"] == rows[i] and props["split"] == "test"
        assert ring_bounds(geometry) == pytest.approx(tuple(bounds[rows[i]]))
        said = probabilities[i] >= thresholds
        assert [props[f"prob_{k}"] for k in keys] == probabilities[i].tolist()
        assert [props[f"true_{k}"] for k in keys] == truth[i].astype(int).tolist()
        assert [props[f"pred_{k}"] for k in keys] == said.astype(int).tolist()
        assert [props[f"err_{k}"] for k in keys] == [kinds[t, s] for t, s in zip(truth[i], said)]
    _, _, table = read_layer(out / "predictions.gpkg", "labels")
    assert [p["threshold"] for _, p in table] == thresholds.tolist()
    assert {p["threshold_mode"] for _, p in table} == {"per_label"}

    values, src = values_at(out / "probabilities.tif", bounds[rows])
    assert src.crs.to_epsg() == EPSG and src.count == len(keys)
    assert np.array_equal(values, probabilities)
    with rasterio.open(out / "probabilities.tif") as src:
        assert src.height == int(load_dataset(folder).tiles["row_off"].max()) // 16 + 2
        assert int((src.read() != exports.NODATA).sum()) == probabilities.size  # training and val tiles: nodata
    classes, src = values_at(out / "predicted_label.tif", bounds[rows])
    for value, p, said in zip(classes[:, 0], probabilities, probabilities >= thresholds, strict=True):
        best = max(np.flatnonzero(said), key=lambda j: p[j], default=-1)  # the most probable of those said
        assert value == best + 1
    assert src.descriptions == ["most probable label predicted present"]


def test_siamese_run_export_holds_the_stored_self_scores(trained_siamese_run, training_workspace):
    _, bounds = georeferenced_copy(training_workspace, "cls", "siam")
    done, scores = exports.export_run("siam", mode="uniform")
    assert done.files == ["predictions.gpkg", "probabilities.tif", "predicted_label.tif", "self_scores.tif"]
    matrices = correlations.load_matrices("siam")
    rows, names = matrices["tile_indices"], [str(n) for n in matrices["label_names"]]
    labels = run_data.run_labels(store.load_run("siam"))
    keys = dict(zip([lab.name for lab in labels], exports.label_keys(labels)))

    _, _, features = read_layer(done.folder / "predictions.gpkg", "predictions")
    assert [props["tile_id"] for _, props in features] == rows.tolist()
    self_scores = np.array([[props[f"self_{keys[n]}"] for n in names] for _, props in features])
    assert np.array_equal(self_scores, matrices["self_scores"])
    teacher = np.array([[props[f"prob_{keys[n]}"] for n in names] for _, props in features])
    assert np.array_equal(teacher, matrices["classifier_probabilities"])
    uniform = evaluation.read_summary("cls")["thresholds"]["uniform"]
    predicted = np.array([[props[f"pred_{keys[n]}"] for n in names] for _, props in features])
    assert np.array_equal(predicted, (matrices["classifier_probabilities"] >= uniform).astype(int))
    assert scores.threshold_source == "cls"

    values, src = values_at(done.folder / "self_scores.tif", bounds[rows])
    assert src.descriptions == names and np.array_equal(values, matrices["self_scores"])


def test_bad_input_is_refused_in_one_sentence_and_changes_nothing(trained_siamese_run, training_workspace, monkeypatch):
    with pytest.raises(OLRError, match="no map coordinates"):  # the fixture dataset as trained: no georeference
        exports.export_dataset(training_workspace / "data" / "tiny", out=workspace.home() / "x")
    georeferenced_copy(training_workspace, "cls", "siam")
    with pytest.raises(OLRError, match="There is no run"):
        exports.export_run("nope")
    with pytest.raises(OLRError, match="There is no dataset"):
        exports.export_dataset("nope")

    exports.export_run("cls")
    out = store.load_run("cls").path / "exports"
    before = tree_hashes(out)
    with pytest.raises(OLRError, match=r"already exists.*--overwrite"):
        exports.export_run("cls", mode="configured")
    assert tree_hashes(out) == before
    # the command line: exit 2 and the sentence, nothing replaced
    proc = olr_cli(workspace.home(), "export", "run", "cls")
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert tree_hashes(out) == before
    exports.export_run("cls", mode="configured", overwrite=True)
    _, _, table = read_layer(out / "predictions.gpkg", "labels")
    assert {p["threshold_mode"] for _, p in table} == {"configured"}

    status_path = store.load_run("siam").path / "status.json"
    status_path.write_text(json.dumps(json.loads(status_path.read_text()) | {"state": "failed"}))
    with pytest.raises(OLRError, match="not finished"):
        exports.export_run("siam")

    monkeypatch.setenv("OLR_READONLY", "1")
    with pytest.raises(OLRError, match="read-only demo, so it cannot write an export"):
        exports.export_dataset("tiny", out=workspace.home().parent / "outside")
    assert not (workspace.home().parent / "outside").exists()
    assert not list(workspace.home().rglob(".*partial"))
    # downloads stay possible on a read-only demo: the archive is built outside the workspace, which it leaves as it was
    before_workspace = tree_hashes(workspace.home())
    with zipfile.ZipFile(io.BytesIO(exports.run_archive("cls", mode="configured"))) as archive:
        assert sorted(archive.namelist()) == ["predicted_label.tif", "predictions.gpkg", "probabilities.tif"]
        unpacked = workspace.home().parent / "unpacked"
        archive.extractall(unpacked)
    _, _, table = read_layer(unpacked / "predictions.gpkg", "labels")
    assert {p["threshold_mode"] for _, p in table} == {"configured"}
    _, _, features = read_layer(unpacked / "predictions.gpkg", "predictions")
    _, _, written = read_layer(out / "predictions.gpkg", "predictions")
    assert [props for _, props in features] == [props for _, props in written]  # as `export run` wrote them
    with rasterio.open(unpacked / "probabilities.tif") as got, rasterio.open(out / "probabilities.tif") as want:
        assert got.crs == want.crs and got.transform == want.transform and np.array_equal(got.read(), want.read())
    assert tree_hashes(workspace.home()) == before_workspace
