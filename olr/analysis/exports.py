"""Exports a GIS opens (CLI `python -m olr export dataset NAME` / `python -m olr export run RUN`).

**Dataset** (default folder `<dataset>/exports/`, `olr.data.dataset.EXPORTS_FOLDER`):

- `tiles.gpkg`, layer `tiles`: one polygon per tile (its bounds in the dataset's source CRS), fields
  `tile_id`, `tile` (the name the app shows), `split`, `block_id` (when recorded), `main_label` and
  `main_color` (the label with the largest area share and its colour) and per label `pres_<key>`
  (0/1 presence) and `frac_<key>` (area fraction);
- `fractions.tif`: one float32 band per label, one pixel per tile, the area fractions;
- `main_label.tif`: one uint8 band, per tile its label of the largest area share (`MAIN_LABEL_TIF`).

**Run** (default folder `<run>/exports/` for the test split, `<run>/exports-val/` for validation,
`RunLayout.exports_for`), from the run's stored results, nothing recomputed:

- `predictions.gpkg`, layer `predictions`: one polygon per tile of the evaluated split, fields
  `tile_id`, `tile`, `split`, `block_id` and per label `true_<key>` (0/1 target), `prob_<key>`,
  `pred_<key>` (0/1 at the stored thresholds of one threshold mode, `--thresholds`, default the
  per-label-tuned ones), `err_<key>` ("TP", "FP", "FN" or "TN") and, for a Siamese run, `self_<key>`
  (the self-score s_i(x) = ||e_i(x)||² of `olr.analysis.correlations`);
- `probabilities.tif` (and `self_scores.tif` for a Siamese run): one float32 band per label;
- `predicted_label.tif`: one uint8 band, per tile its most probable label among those predicted
  present (`PREDICTED_LABEL_TIF`).

A classifier run's tiles, targets and probabilities are its evaluation's `test_predictions.npz`
and its thresholds those of `summary.json` (`olr.analysis.evaluation`). A Siamese run has no
probabilities or thresholds of its own: its export holds the tiles of its stored correlation
matrices with the self-scores, and beside them the probabilities of its classifier run on the
same tiles (stored with the matrices: what the Siamese network was taught to imitate) at that
classifier's stored thresholds.

`<key>` is a label's CLC code and name as a column name ("112_discontinuous_urban_fabric"; a label of
several codes: its name alone), cut so every field name has at most 64 characters, and unique.
Both GeoPackages hold a table `labels` (no geometry): per label its name, codes, `key`, colour
(CORINE's "#rrggbb") and, for a run, its threshold. GeoTIFF bands are described by the label name
and carry `codes`, `color` and `key` as band tags; pixels without a tile are nodata (-1).

A GeoTIFF pixel sits on the tile's centre and spans the grid step (meta["stride"]): with a step equal
to the tile size it is the tile's footprint; overlapping tiles (a smaller step) get smaller pixels.
Tiles placed on no common grid (BigEarthNet patches, each in its own UTM zone) are exported as
polygons only, in lon/lat (EPSG:4326, the CRS they share), and the command says the GeoTIFFs were
left out. A dataset without coordinates (imported batches) cannot be exported.

Styles: the class GeoTIFFs (`main_label.tif`, `predicted_label.tif`) carry the CORINE colours as their
colour table, so QGIS opens them as a land-cover map in the official colours: value j + 1 is label j
(the band tag `classes` names each value), 0 a tile without a label (transparent), 255 no tile. In the
GeoPackages the colours are data: QGIS reads a "#rrggbb" field as a colour, so the dataset's tiles layer
can be filled by `main_color` (a data-defined fill), and the `labels` table lists each label's colour;
no QGIS `layer_styles` table or QML/SLD file is written (nothing here could check that QGIS reads one).
A band of fractions or probabilities is continuous, so a colour table would not apply to it.

Every export is written into a hidden staging folder and moved into place when complete
(`olr.atomic.staged_folder`): an existing target is refused unless `--overwrite` is given, and a
failed export leaves nothing behind. Exports are refused on a read-only workspace, wherever they go.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from olr import atomic, workspace
from olr.analysis import correlations, evaluation, run_data
from olr.analysis.compare import HEADLINE_MODE
from olr.analysis.metrics import binarize
from olr.data.dataset import EXPORTS_FOLDER, SOURCE_BOUNDS, load_dataset
from olr.data.label_schemes import Label, hex_rgba
from olr.data.rasters import user_files
from olr.data.summary import COORDINATE_COLUMNS, dataset_tile_names, grid_step
from olr.errors import OLRError
from olr.runs.store import RunLayout

DATASET_GPKG, DATASET_LAYER, FRACTIONS_TIF = "tiles.gpkg", "tiles", "fractions.tif"
RUN_GPKG, RUN_LAYER = "predictions.gpkg", "predictions"
PROBABILITIES_TIF, SELF_SCORES_TIF = "probabilities.tif", "self_scores.tif"
#: one class per tile in CORINE colours: the dataset's label of the largest share, a run's label predicted
MAIN_LABEL_TIF, PREDICTED_LABEL_TIF = "main_label.tif", "predicted_label.tif"
#: the class raster's values: 0 for a tile without a label, j + 1 for label j, 255 where there is no tile
NO_LABEL, NO_TILE = 0, 255
LABELS_TABLE = "labels"
#: GeoTIFF value of a pixel without a tile (every exported value is >= 0)
NODATA = -1.0
#: longest field name written (what GeoPackage readers and most GIS tools accept)
MAX_FIELD = 64
#: field prefixes per label; keys are cut to leave room for the longest
PREFIXES = ("pres_", "frac_", "true_", "prob_", "pred_", "err_", "self_")
ERROR_TYPES = ("TP", "FP", "FN", "TN")
#: what an export is called in the read-only refusal
ACTION = "write an export"


# ------------------------------------------------------------------ where tiles lie


@dataclass(frozen=True)
class TileRaster:
    """A one-pixel-per-tile grid: its transform and size, and each tile's pixel (row, col)."""

    transform: object  # affine.Affine
    height: int
    width: int
    rows: np.ndarray  # (N,)
    cols: np.ndarray  # (N,)


@dataclass(frozen=True)
class TilePlaces:
    """Where a dataset's tiles lie: bounds (N, 4) x_min, y_min, x_max, y_max in the CRS `crs_wkt`,
    and their pixels on a tile-resolution grid (None when the tiles share no grid)."""

    crs_wkt: str
    bounds: np.ndarray
    raster: TileRaster | None
    note: str = ""  # why there is no raster: "the dataset records no image grid (...)"


def tile_places(dataset) -> TilePlaces:
    """The tiles' bounds and grid (OLRError when the dataset records no coordinates)."""
    from rasterio.crs import CRS

    table = dataset.tiles
    no_place = OLRError(
        f"The dataset {dataset.name} records no map coordinates for its tiles (it was imported without "
        "georeference), so it cannot be exported for a GIS; prepare it from a georeferenced image instead."
    )
    columns, note = SOURCE_BOUNDS, ""
    if "epsg" in table.columns:  # each tile records its own CRS (BigEarthNet patches)
        codes = table["epsg"].unique()
        if len(codes) == 1:
            crs_wkt = CRS.from_epsg(int(codes[0])).to_wkt()
        else:  # lon/lat is the one CRS they share
            columns, crs_wkt = COORDINATE_COLUMNS, CRS.from_epsg(4326).to_wkt()
            note = "the tiles lie in several coordinate reference systems on no common grid"
    else:
        crs_wkt = (dataset.meta.get("crs") or {}).get("wkt")
    if not crs_wkt:
        raise no_place
    if not set(columns).issubset(table.columns):
        raise no_place
    bounds = table[list(columns)].to_numpy(dtype=np.float64)
    if not np.isfinite(bounds).all():
        raise no_place
    raster = None if note else _tile_raster(dataset)
    if raster is None and not note:
        note = "the dataset records no image grid (transform and stride)"
    return TilePlaces(crs_wkt, bounds, raster, note)


def _tile_raster(dataset) -> TileRaster | None:
    """The grid of one pixel per tile over the source image, or None without transform and stride."""
    from affine import Affine

    step, transform = grid_step(dataset), dataset.meta.get("transform")
    row_off, col_off = (dataset.tiles[c].to_numpy(dtype=np.int64) for c in ("row_off", "col_off"))
    if not step or not transform or len(transform) < 6 or (row_off < 0).any() or (col_off < 0).any():
        return None
    tile_h, tile_w = dataset.tile_shape[:2]
    rows, cols = row_off // step, col_off // step
    grid = dataset.meta.get("tile_grid") or {}
    height = max(int(grid.get("rows") or 0), int(rows.max(initial=-1)) + 1)
    width = max(int(grid.get("cols") or 0), int(cols.max(initial=-1)) + 1)
    return TileRaster(tile_grid_transform(Affine(*transform[:6]), tile_h, tile_w, step), height, width, rows, cols)


def tile_grid_transform(image_transform, tile_h: int, tile_w: int, step: int):
    """The transform of the one-pixel-per-tile grid over an image (`image_transform`, an Affine):
    pixel (r, c) is centred on the tile at pixel offset (r * step, c * step) and spans one step."""
    from affine import Affine

    shift = Affine.translation((tile_w - step) / 2, (tile_h - step) / 2)
    return image_transform @ shift @ Affine.scale(step)


# ------------------------------------------------------------------ field names


def label_keys(labels: list[Label], width: int = MAX_FIELD - max(map(len, PREFIXES))) -> list[str]:
    """Per label a column-name stem a GIS reads: "112_discontinuous_urban_fabric" (code and name; the
    name alone for a label of several codes), ASCII letters, digits and "_", at most `width` characters,
    unique (a repeat gets "_2", "_3", ...)."""
    keys: list[str] = []
    for label in labels:
        ascii_name = unicodedata.normalize("NFKD", label.name).encode("ascii", "ignore").decode()
        words = re.sub(r"[^0-9a-z]+", "_", ascii_name.casefold()).strip("_") or "label"
        stem = (f"{label.codes[0]}_{words}" if len(label.codes) == 1 else words)[:width].rstrip("_")
        key, n = stem, 1
        while key in keys:
            n += 1
            key = f"{stem[: width - len(str(n)) - 1].rstrip('_')}_{n}"
        keys.append(key)
    return keys


def error_types(y_true, y_pred) -> np.ndarray:
    """(n, L) "TP", "FP", "FN" or "TN" of binary truth and predictions."""
    y, q = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    return np.select([y & q, ~y & q, y & ~q], ERROR_TYPES[:3], default=ERROR_TYPES[3])


# ------------------------------------------------------------------ writers


@dataclass
class Export:
    """A finished export: its folder, the files in it, and notes on what was left out (sentences)."""

    folder: Path
    files: list[str]
    n_tiles: int
    notes: list[str]


def _target(out, default: Path) -> Path:
    workspace.require_writable(ACTION)
    return Path(out) if out else default


def _write_layer(path: Path, layer: str, places: TilePlaces, rows, fields: dict) -> None:
    """A polygon layer, one feature per dataset row in `rows`; `fields`: {name: (fiona type, (n,) values)}."""
    schema = {"geometry": "Polygon", "properties": {name: kind for name, (kind, _) in fields.items()}}
    columns = [np.asarray(values).tolist() for _, values in fields.values()]
    names = list(fields)

    def features():
        for i, row in enumerate(rows):
            x0, y0, x1, y1 = places.bounds[row].tolist()
            ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
            properties = {name: column[i] for name, column in zip(names, columns)}
            yield {"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": properties}

    write_gpkg_layer(path, layer, schema, features, places.crs_wkt)


def write_labels_table(path: Path, labels: list[Label], keys: list[str], extra: dict | None = None) -> None:
    """The `labels` table (no geometry): label, codes, key, color, and `extra` {name: (fiona type, (L,) values)}."""
    extra = extra or {}
    fields = {
        "label": ("str", [lab.name for lab in labels]),
        "codes": ("str", [" ".join(str(c) for c in lab.codes) for lab in labels]),
        "key": ("str", keys),
        "color": ("str", [lab.color for lab in labels]),
        **{name: (kind, np.asarray(values).tolist()) for name, (kind, values) in extra.items()},
    }
    schema = {"geometry": None, "properties": {name: kind for name, (kind, _) in fields.items()}}

    def features():
        for j in range(len(labels)):
            yield {"geometry": None, "properties": {name: values[j] for name, (_, values) in fields.items()}}

    write_gpkg_layer(path, LABELS_TABLE, schema, features, None)


def write_gpkg_layer(path: Path, layer: str, schema: dict, features, crs_wkt: str | None) -> None:
    """Write one layer of a GeoPackage (`features()`: a fresh iterator of fiona records, called again
    when the layer is written a second time), with a spatial index where this process's SQLite can build one.

    GDAL builds the R-tree index through SQLite's rtree module; once TensorFlow is imported (the app,
    a notebook that trained first) its SQLite, without that module, is the one in use. The layer is
    then written again without an index, which a GIS only needs for speed.
    """
    fiona = user_files.fiona_module("writing a GeoPackage")
    from fiona.crs import CRS

    options = {"crs": CRS.from_wkt(crs_wkt)} if crs_wkt else {}
    for index in ("YES", "NO"):
        try:
            with fiona.open(
                path, "w", driver="GPKG", layer=layer, schema=schema, SPATIAL_INDEX=index, **options
            ) as dst:
                dst.writerecords(features())
            return
        except Exception as e:  # fiona raises driver-specific error types
            if index == "NO" or "rtree" not in str(e).casefold():
                raise
            if fiona.listlayers(path) == [layer]:
                path.unlink()  # the layer alone in the file: start the file again
            else:
                fiona.remove(path, layer=layer)


def label_bands_profile(crs, transform, height: int, width: int, n_labels: int) -> dict:
    """The rasterio profile of a float32 GeoTIFF of one band per label, nodata `NODATA`, on a tile grid."""
    from rasterio.crs import CRS

    return {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": n_labels,
        "dtype": "float32",
        "crs": CRS.from_user_input(crs),
        "transform": transform,
        "nodata": NODATA,
        "compress": "deflate",
    }


def describe_label_bands(dst, labels: list[Label], keys: list[str]) -> None:
    """Name each band of an open GeoTIFF by its label, with `codes`, `color` and `key` as band tags."""
    for j, (label, key) in enumerate(zip(labels, keys), start=1):
        dst.set_band_description(j, label.name)
        dst.update_tags(j, codes=" ".join(str(c) for c in label.codes), color=label.color, key=key)


def _write_bands(path: Path, places: TilePlaces, rows, values, labels: list[Label], keys: list[str]) -> None:
    """A float32 GeoTIFF, one band per label: `values` (n, L) at the pixels of the dataset rows `rows`."""
    import rasterio

    grid = places.raster
    bands = np.full((len(labels), grid.height, grid.width), NODATA, dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    bands[:, grid.rows[rows], grid.cols[rows]] = np.asarray(values, dtype=np.float32).T
    profile = label_bands_profile(places.crs_wkt, grid.transform, grid.height, grid.width, len(labels))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(bands)
        describe_label_bands(dst, labels, keys)


def top_labels(scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per row the index of the label with the highest score among those `present` (n, L), -1 where none
    is: a tile's main label (scores: area fractions, present: fraction > 0) or its predicted label
    (scores: probabilities, present: predicted at the thresholds)."""
    scores = np.where(np.asarray(present, dtype=bool), np.asarray(scores, dtype=np.float64), -np.inf)
    if scores.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    return np.where(np.isfinite(scores.max(axis=1)), scores.argmax(axis=1), -1)


def write_class_raster(path: Path, crs, transform, classes: np.ndarray, labels: list[Label], what: str) -> None:
    """A uint8 GeoTIFF of one class per pixel (`NO_LABEL`, label j + 1, `NO_TILE` as nodata) with the labels'
    colours as its colour table, which QGIS and GDAL draw as they are; `what` describes the band, and the
    band tag `classes` maps each value to its label name (JSON)."""
    import rasterio

    profile = label_bands_profile(crs, transform, classes.shape[0], classes.shape[1], 1)
    profile.update(dtype="uint8", nodata=NO_TILE, photometric="palette")
    names = {str(NO_LABEL): "no label", **{str(j + 1): lab.name for j, lab in enumerate(labels)}}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(classes.astype(np.uint8), 1)
        colours = hex_rgba([lab.color for lab in labels]).tolist()
        dst.write_colormap(1, {NO_LABEL: (255, 255, 255, 0)} | {j + 1: tuple(c) for j, c in enumerate(colours)})
        dst.set_band_description(1, what)
        dst.update_tags(1, classes=json.dumps(names))


def _write_classes(path: Path, places: TilePlaces, rows, top: np.ndarray, labels: list[Label], what: str) -> None:
    """`write_class_raster` of the tiles at dataset rows `rows` with classes `top` (`top_labels`)."""
    grid = places.raster
    classes = np.full((grid.height, grid.width), NO_TILE, dtype=np.uint8)
    rows = np.asarray(rows, dtype=np.int64)
    classes[grid.rows[rows], grid.cols[rows]] = np.asarray(top) + 1  # -1 (no label) becomes NO_LABEL
    write_class_raster(path, places.crs_wkt, grid.transform, classes, labels, what)


def _tile_fields(dataset, rows) -> dict:
    """The fields every exported layer starts with: tile_id, tile (its name), split, block_id (when recorded)."""
    table = dataset.tiles.iloc[np.asarray(rows, dtype=np.int64)]
    fields = {
        "tile_id": ("int", table["tile_id"].to_numpy(dtype=np.int64)),
        "tile": ("str", dataset_tile_names(dataset, rows)),
        "split": ("str", table["split"].astype(str).to_numpy()),
    }
    if "block_id" in table.columns:
        fields["block_id"] = ("int", table["block_id"].to_numpy(dtype=np.int64))
    return fields


# ------------------------------------------------------------------ dataset


def export_dataset(dataset, out=None, overwrite: bool = False) -> Export:
    """Write a dataset's tile grid for a GIS (see the module docstring) into `out` (default `<dataset>/exports/`)."""
    if not hasattr(dataset, "tiles"):
        dataset = load_dataset(dataset)
    return _write_dataset(dataset, _target(out, dataset.path / EXPORTS_FOLDER), overwrite)


def _write_dataset(dataset, target: Path, overwrite: bool) -> Export:
    places = tile_places(dataset)
    labels = dataset.labels
    keys = label_keys(labels)
    rows = np.arange(dataset.n_tiles)
    fractions = np.asarray(dataset.fractions, dtype=np.float32)
    presence = np.asarray(dataset.presence, dtype=np.int64)
    # The label with the largest share and its colour (a QGIS data-defined fill); "" on a tile without any.
    top = top_labels(fractions, fractions > 0)
    main = np.where(top >= 0, top, len(labels))
    fields = _tile_fields(dataset, rows) | {
        "main_label": ("str", np.array([*(lab.name for lab in labels), ""])[main]),
        "main_color": ("str", np.array([*(lab.color for lab in labels), ""])[main]),
    }
    for j, key in enumerate(keys):
        fields[f"pres_{key}"] = ("int", presence[:, j])
        fields[f"frac_{key}"] = ("float", fractions[:, j])
    files = [DATASET_GPKG]
    with atomic.staged_folder(target, overwrite=overwrite) as tmp:
        _write_layer(tmp / DATASET_GPKG, DATASET_LAYER, places, rows, fields)
        write_labels_table(tmp / DATASET_GPKG, labels, keys)
        if places.raster is not None:
            _write_bands(tmp / FRACTIONS_TIF, places, rows, fractions, labels, keys)
            _write_classes(tmp / MAIN_LABEL_TIF, places, rows, top, labels, "label of the largest area share")
            files += [FRACTIONS_TIF, MAIN_LABEL_TIF]
    return Export(target, files, len(rows), _raster_notes(places))


def _raster_notes(places: TilePlaces) -> list[str]:
    if places.raster is not None:
        return []
    return [f"No GeoTIFF was written because {places.note}; the GeoPackage holds every tile."]


# ------------------------------------------------------------------ run


@dataclass
class RunScores:
    """What a run's export shows per tile of one split: dataset rows (n,), targets (n, L), probabilities
    (n, L), thresholds (L,) and where they come from, and a Siamese run's self-scores (n, L)."""

    indices: np.ndarray
    y_true: np.ndarray
    probabilities: np.ndarray
    thresholds: np.ndarray
    threshold_source: str  # the run whose evaluation the thresholds (and probabilities) are
    self_scores: np.ndarray | None = None


def stored_thresholds(run, mode: str, names: list[str]) -> np.ndarray:
    """(L,) thresholds of one mode (`evaluation.MODES`) from a classifier run's evaluation summary."""
    if mode not in evaluation.MODES:
        raise OLRError(f"Unknown threshold mode {mode!r}; use one of {', '.join(evaluation.MODES)}.")
    summary = evaluation.read_summary(run)
    if summary is None:
        raise OLRError(
            f"The run {run.id} has no evaluation, so its thresholds are unknown; evaluate it first "
            f"(python -m olr evaluate {run.id})."
        )
    if summary["labels"] != names:
        raise OLRError(
            f"The evaluation of run {run.id} lists other labels than the run; evaluate it again "
            f"(python -m olr evaluate {run.id})."
        )
    return np.broadcast_to(np.asarray(summary["thresholds"][mode], dtype=np.float64), (len(names),)).copy()


def run_scores(run, dataset, split: str = "test", mode: str = HEADLINE_MODE) -> RunScores:
    """A finished run's stored per-tile results on `split` ("test" or "val"); see the module docstring."""
    names = [lab.name for lab in run_data.run_labels(run)]
    if run.kind == "siamese":
        matrices = correlations.load_matrices(run, split)
        if "self_scores" not in matrices or "classifier_probabilities" not in matrices:
            raise OLRError(
                f"The correlation matrices of run {run.id} hold no self-scores; compute them again "
                f"({correlations.compute_command(run.id, split)})."
            )
        classifier = run_data.classifier_run_of(run)
        rows = matrices["tile_indices"]
        # Targets as the correlations built them: with the classifier run's min_fraction.
        presence = run_data.run_presence(run, dataset, classifier.config.get("min_fraction"))
        scores = RunScores(
            rows,
            presence[rows],
            matrices["classifier_probabilities"],
            stored_thresholds(classifier, mode, names),
            classifier.id,
            matrices["self_scores"],
        )
        stored_names = matrices["label_names"]
    else:
        predictions = evaluation.split_predictions(evaluation.load_predictions(run), split)
        scores = RunScores(
            predictions["indices"],
            predictions["y_true"],
            predictions["probabilities"],
            stored_thresholds(run, mode, names),
            run.id,
        )
        stored_names = predictions["label_names"]
    if [str(s) for s in stored_names] != names or scores.indices.max(initial=-1) >= dataset.n_tiles:
        raise OLRError(
            f"The stored results of run {run.id} do not match its labels and dataset; evaluate it again "
            f"(python -m olr evaluate {run.id})."
        )
    return scores


def export_run(
    run, split: str = "test", mode: str = HEADLINE_MODE, out=None, overwrite: bool = False
) -> tuple[Export, RunScores]:
    """Write a finished run's stored results on `split` for a GIS (see the module docstring) into `out`
    (default `RunLayout.exports_for(split)`); returns the export and the scores written."""
    run = run_data.as_run(run)
    return _write_run(run, _target(out, RunLayout(run.path).exports_for(split)), split, mode, overwrite)


def _write_run(run, target: Path, split: str, mode: str, overwrite: bool) -> tuple[Export, RunScores]:
    run_data.require_finished(run)
    dataset = run_data.run_dataset(run)
    places = tile_places(dataset)
    labels = run_data.run_labels(run)
    keys = label_keys(labels)
    scores = run_scores(run, dataset, split, mode)
    predicted = binarize(scores.probabilities, scores.thresholds)
    errors = error_types(scores.y_true, predicted)
    fields = _tile_fields(dataset, scores.indices)
    for j, key in enumerate(keys):
        fields[f"true_{key}"] = ("int", scores.y_true[:, j].astype(np.int64))
        fields[f"prob_{key}"] = ("float", scores.probabilities[:, j].astype(np.float64))
        fields[f"pred_{key}"] = ("int", predicted[:, j].astype(np.int64))
        fields[f"err_{key}"] = ("str", errors[:, j])
        if scores.self_scores is not None:
            fields[f"self_{key}"] = ("float", scores.self_scores[:, j].astype(np.float64))
    extra = {"threshold": ("float", scores.thresholds), "threshold_mode": ("str", [mode] * len(labels))}
    extra["threshold_run"] = ("str", [scores.threshold_source] * len(labels))
    files = [RUN_GPKG]
    with atomic.staged_folder(target, overwrite=overwrite) as tmp:
        _write_layer(tmp / RUN_GPKG, RUN_LAYER, places, scores.indices, fields)
        write_labels_table(tmp / RUN_GPKG, labels, keys, extra)
        if places.raster is not None:
            _write_bands(tmp / PROBABILITIES_TIF, places, scores.indices, scores.probabilities, labels, keys)
            top = top_labels(scores.probabilities, predicted)
            what = "most probable label predicted present"
            _write_classes(tmp / PREDICTED_LABEL_TIF, places, scores.indices, top, labels, what)
            files += [PROBABILITIES_TIF, PREDICTED_LABEL_TIF]
            if scores.self_scores is not None:
                _write_bands(tmp / SELF_SCORES_TIF, places, scores.indices, scores.self_scores, labels, keys)
                files.append(SELF_SCORES_TIF)
    return Export(target, files, len(scores.indices), _raster_notes(places)), scores


# ------------------------------------------------------------------ downloads


def dataset_archive(dataset) -> bytes:
    """A dataset's export (as `export_dataset` writes it) as the bytes of one .zip, for a download.

    Written in a temporary folder outside the workspace and removed after, so it is allowed on a
    read-only workspace: a download leaves nothing behind."""
    if not hasattr(dataset, "tiles"):
        dataset = load_dataset(dataset)
    return _zipped(lambda folder: _write_dataset(dataset, folder, overwrite=False))


def run_archive(run, split: str = "test", mode: str = HEADLINE_MODE) -> bytes:
    """A run's export (as `export_run` writes it) as the bytes of one .zip, for a download (see
    `dataset_archive`)."""
    run = run_data.as_run(run)
    return _zipped(lambda folder: _write_run(run, folder, split, mode, overwrite=False)[0])


def _zipped(write) -> bytes:
    with tempfile.TemporaryDirectory(prefix="olr-export-") as tmp:
        done = write(Path(tmp) / "export")
        return zip_files(done.folder, done.files)


def zip_files(folder: Path, names: list[str]) -> bytes:
    """The files `names` of `folder` as the bytes of one .zip (deflated, flat)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.write(Path(folder) / name, arcname=name)
    return buffer.getvalue()


# ------------------------------------------------------------------ CLI: python -m olr export


def add_arguments(parser) -> None:
    what = parser.add_subparsers(dest="what", required=True, metavar="{dataset,run}")
    for name, help_text in (
        ("dataset", "the tile grid with each tile's split and label presence and fractions"),
        ("run", "a finished run's stored probabilities, predictions and error types (and Siamese self-scores)"),
    ):
        sub = what.add_parser(name, help=help_text, description=f"Export {help_text} for a GIS.")
        if name == "dataset":
            sub.add_argument("name", help="dataset name (folder under data/) or dataset folder")
        else:
            sub.add_argument("name", metavar="run", help="run id (folder name under models/) or run folder")
            sub.add_argument(
                "--split",
                choices=evaluation.EVALUATION_SPLITS,
                default="test",
                help="the evaluated split to export (default test)",
            )
            sub.add_argument(
                "--thresholds",
                choices=evaluation.MODES,
                default=HEADLINE_MODE,
                help=f"the stored threshold mode predictions are made at (default {HEADLINE_MODE})",
            )
        sub.add_argument(
            "--out", metavar="FOLDER", help="folder to write (default: exports/ in the dataset or run folder)"
        )
        sub.add_argument("--overwrite", action="store_true", help="replace the folder if it exists")


def export_command(args) -> int:
    if args.what == "dataset":
        done = export_dataset(args.name, out=args.out, overwrite=args.overwrite)
        what = f"the {done.n_tiles} tiles of dataset {args.name}"
    else:
        done, scores = export_run(
            args.name, split=args.split, mode=args.thresholds, out=args.out, overwrite=args.overwrite
        )
        what = f"the {done.n_tiles} {evaluation.SPLIT_NAMES[args.split]} tiles of run {args.name}"
        if scores.self_scores is not None:
            what += f" (probabilities and thresholds of its classifier run {scores.threshold_source})"
    print(f"Exported {what} to {done.folder}{os.sep}: {', '.join(done.files)}")
    for note in done.notes:
        print(f"note: {note}")
    return 0
