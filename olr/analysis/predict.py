"""Prediction on an image without labels (CLI `python -m olr predict RUN --image IMG [--out NAME]`).

A finished run's classifier is applied to every whole tile of an image in any CRS, and the result
is written into `<run>/predictions/<NAME>/` (`RunLayout.prediction_for`; NAME defaults to the image
file's stem), staged and moved into place when complete (`olr.atomic.staged_folder`):

- `probabilities.tif`: one float32 band per label (band description = label name; `codes`, `color`
  and `key` as band tags, as `olr.analysis.exports` writes them), one pixel per tile on the image's
  own grid and CRS (no reprojection): pixel (r, c) is centred on the tile at pixel offset
  (r * step, c * step) and spans one step (`exports.tile_grid_transform`); nodata (-1) where a tile
  has too much image nodata to be predicted;
- `self_scores.tif` (a Siamese run given as RUN): the self-scores s_i(x) = ||e_i(x)||² of its
  embedder (`olr.analysis.correlations.self_scores`), beside the probabilities of its classifier run
  (what the Siamese network was taught to imitate), as `export run` pairs them;
- `predicted_label.tif` (a run whose classifier has an evaluation): per tile its most probable label
  predicted present, in CORINE colours (`exports.write_class_raster`);
- `tiles.gpkg`, layer `tiles`: one polygon per predicted tile (its footprint in the image CRS), fields
  `tile_row`, `tile_col` (its pixel of the GeoTIFFs), `row_off`, `col_off` (its pixel offset in the
  image), per label `prob_<key>` and `pred_<key>` (0/1 at the stored thresholds of the classifier's
  evaluation, one threshold mode, default the per-label-tuned ones) and, for a Siamese run,
  `self_<key>`; and the `labels` table with each label's threshold. A run without an evaluation has
  no thresholds: its tiles carry probabilities only and the command says so;
- `prediction.json`: the run, classifier run, image, grid, bands and thresholds used, and the counts.

The image is tiled exactly as the run's dataset was prepared (`olr.data.prepare`): tiles of the
dataset's size every `stride` pixels (meta["stride"], else the tile size), whole tiles only; image
nodata told by the same rule (`rasters.ImageMask` with the preparation's --image-nodata); a tile whose
nodata share is above the dataset's max_nodata (default that of `PrepareOptions`) is not predicted,
and a predicted tile's nodata pixels are filled as preparation filled them
(`olr.data.tile_writer.fill_nodata`). Tiles go to the model raw, in the image's dtype cast to float32,
as training fed them (the model normalises them).

Before anything is read, the image is checked against what the run was trained on, each mismatch
refused with one sentence: its bands are the dataset's bands, found by name (band descriptions, else
colour interpretation; Sentinel-2's "B04" = "B4"), so an image with more bands gives the named ones;
an image without band names (or a dataset without them) must have exactly as many bands, taken in
order; its data type is the dataset's; and, where the dataset records band scales and offsets, the
image's (with the preparation's --scale/--offset, as preparation read them) are the same.

Memory is bounded: the image is read window by window (`olr.data.tile_reader.read_windows`: a strip
of a few tile rows by a bounded number of tile columns, read ahead), each window's tiles are predicted
in batches and written into the GeoTIFFs at their place, and the GeoPackage is then written from the
GeoTIFFs strip by strip. Progress is reported per strip ("strip 3/12, 1,536 tiles").

Refused: a run that is not finished, an existing target without `--overwrite` (nothing is changed),
a read-only workspace, an image whose tiles all have too much nodata.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import Window

from olr import atomic, workspace
from olr.analysis import correlations, evaluation, exports, inference, run_data
from olr.analysis.compare import HEADLINE_MODE
from olr.analysis.metrics import binarize
from olr.data import rasters
from olr.data.prepare import tile_bounds
from olr.data.prepare_options import PrepareOptions
from olr.data.rasters.images import canonical_band_name
from olr.data.summary import grid_step
from olr.data.tile_reader import READ_ENV, TileGrid, read_windows, tiles_view, window_ranges
from olr.data.tile_writer import fill_nodata
from olr.errors import OLRError
from olr.runs.store import RunLayout

TILES_GPKG, TILES_LAYER, RECORD = "tiles.gpkg", "tiles", "prediction.json"
PROBABILITIES_TIF, SELF_SCORES_TIF = exports.PROBABILITIES_TIF, exports.SELF_SCORES_TIF
NODATA = exports.NODATA
#: what a prediction is called in the read-only refusal
ACTION = "write predictions"
#: (strip, strips, tiles of the strip, of them left as nodata) after each strip
Progress = Callable[[int, int, int, int], None]


# ------------------------------------------------------------------ what the run was trained on


@dataclass(frozen=True)
class TrainedInput:
    """How the tiles of a run's dataset were cut from their image: what an image must match."""

    dataset: str
    band_names: list[str]
    dtype: np.dtype
    scaling: list[tuple[float, float]] | None  # (scale, offset) per band; None when not recorded
    tile: int
    stride: int
    max_nodata: float
    image_nodata: str | float | None  # the preparation's --image-nodata (None: as the image declares)
    scale: list[float] | None  # the preparation's --scale / --offset (None: the image's own)
    offset: list[float] | None
    grid: str | None  # the preparation's --grid (several band files)


def trained_input(dataset) -> TrainedInput:
    """What `dataset`'s meta.json and tiles say about its image (OLRError for tiles predict cannot cut)."""
    meta, params = dataset.meta, dataset.meta.get("parameters") or {}
    tile_h, tile_w, n_bands = dataset.tile_shape
    if tile_h != tile_w:
        raise OLRError(
            f"The dataset {dataset.name} holds tiles of {tile_h} x {tile_w} pixels, and predict cuts square "
            "tiles only; train on a dataset of square tiles to predict on images."
        )
    bands = meta.get("bands") or []
    names = [str(b.get("name")) for b in bands] if len(bands) == n_bands else [f"band {i + 1}" for i in range(n_bands)]
    recorded = len(bands) == n_bands and all("scale" in b and "offset" in b for b in bands)
    scaling = [(float(b["scale"]), float(b["offset"])) for b in bands] if recorded else None
    max_nodata = meta.get("max_nodata", params.get("max_nodata", PrepareOptions.max_nodata))
    return TrainedInput(
        dataset=dataset.name,
        band_names=names,
        dtype=np.dtype(dataset.images.dtype),
        scaling=scaling,
        tile=int(tile_h),
        stride=grid_step(dataset) or int(tile_h),
        max_nodata=float(max_nodata),
        image_nodata=params.get("image_nodata"),
        scale=params.get("scale"),
        offset=params.get("offset"),
        grid=params.get("grid"),
    )


def _unnamed(names: list[str]) -> bool:
    return names == [f"band {i + 1}" for i in range(len(names))]


def image_bands(src, trained: TrainedInput, image: str, run_id: str) -> tuple[list[int], str]:
    """(1-based bands of `src` in the order of the run's bands, a note or ""); one-sentence OLRError when
    the image's bands, their data type or scaling do not match what the run was trained on."""
    names = rasters.band_names(src)
    want = trained.band_names
    trained_on = f"run {run_id} was trained on {len(want)} bands ({', '.join(want)}) of dataset {trained.dataset}"
    note = ""
    canonical = [canonical_band_name(n) for n in names]
    if all(canonical.count(canonical_band_name(w)) == 1 for w in want):
        bands = [src.indexes[canonical.index(canonical_band_name(w))] for w in want]
    elif len(names) == len(want) and (_unnamed(names) or _unnamed(want)):
        bands = list(src.indexes)
        note = f"The bands of {image} are taken in order as {', '.join(want)} (the image or the dataset names none)."
    else:
        raise OLRError(
            f"The image {image} has {len(names)} bands ({', '.join(names)}), but {trained_on}; give an image "
            "with these bands (named by their band descriptions, or unnamed and in this order)."
        )
    dtypes = {np.dtype(src.dtypes[i - 1]) for i in bands}
    if dtypes != {trained.dtype}:
        shown = ", ".join(sorted(d.name for d in dtypes))
        raise OLRError(
            f"The image {image} holds {shown} pixels, but {trained_on} in {trained.dtype.name}; give an image "
            f"of {trained.dtype.name} pixels with the same scaling as the training image."
        )
    if trained.scaling is not None:
        scaling = rasters.band_scaling(src, bands, trained.scale, trained.offset)  # as preparation read them
        for name, (scale, offset), (want_scale, want_offset) in zip(want, scaling, trained.scaling, strict=True):
            if not (math.isclose(scale, want_scale, rel_tol=1e-9) and math.isclose(offset, want_offset, abs_tol=1e-12)):
                raise OLRError(
                    f"The image {image} declares scale {scale:g} and offset {offset:g} for band {name}, but "
                    f"{trained_on} with scale {want_scale:g} and offset {want_offset:g}; give an image with the "
                    "training image's scaling."
                )
    return bands, note


# ------------------------------------------------------------------ the models


@dataclass
class Models:
    """The classifier (of the run, or of a Siamese run's classifier run), the Siamese embedder, thresholds."""

    run: object  # the run given
    classifier_run: object
    labels: list
    classifier: object  # keras.Model: (B, h, w, b) -> (B, L)
    embedder: object | None  # keras.Model: (B, h, w, b) -> (B, L, k), Siamese runs only
    thresholds: np.ndarray | None  # (L,), None when the classifier run has no evaluation
    mode: str

    def predict(self, tiles: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """((n, L) probabilities, (n, L) self-scores or None) of raw tiles (n, h, w, b)."""
        x = tiles.astype(np.float32)
        probabilities = np.asarray(self.classifier.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
        if self.embedder is None:
            return probabilities, None
        embeddings = self.embedder.predict(x, batch_size=batch_size, verbose=0)
        return probabilities, correlations.self_scores(embeddings).astype(np.float32)


def _thresholds(classifier_run, mode: str, names: list[str]) -> np.ndarray | None:
    if mode not in evaluation.MODES:
        raise OLRError(f"Unknown threshold mode {mode!r}; use one of {', '.join(evaluation.MODES)}.")
    if evaluation.read_summary(classifier_run) is None:
        return None
    return exports.stored_thresholds(classifier_run, mode, names)


def _load_models(run, classifier_run, mode: str, trained: TrainedInput) -> Models:
    names = [lab.name for lab in run_data.run_labels(run)]
    classifier = run_data.best_model(classifier_run)
    embedder = inference.embedder_of(run_data.best_model(run)) if run is not classifier_run else None
    expected = (trained.tile, trained.tile, len(trained.band_names))
    for model, which in ((classifier, classifier_run), (embedder, run)):
        if model is not None and tuple(model.input_shape[1:]) != expected:
            raise OLRError(
                f"The model of run {which.id} takes tiles of {tuple(model.input_shape[1:])}, not the {expected} of "
                f"its dataset {trained.dataset}; the dataset changed after training, so train the run again."
            )
    thresholds = _thresholds(classifier_run, mode, names)
    return Models(run, classifier_run, run_data.run_labels(run), classifier, embedder, thresholds, mode)


# ------------------------------------------------------------------ prediction


@dataclass
class Prediction:
    """A finished prediction: its folder, the files in it, tile counts and notes (sentences)."""

    folder: Path
    files: list[str]
    n_tiles: int  # tiles predicted
    n_nodata: int  # whole tiles of the image left as nodata (too much image nodata)
    grid: TileGrid
    thresholds: bool  # whether tiles.gpkg holds pred_ fields
    notes: list[str] = field(default_factory=list)


def default_name(image) -> str:
    """The prediction's folder name from the image's file name: its stem, as a valid folder name."""
    stem = Path(image).stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:100]
    return name or "image"


def predict_image(
    run,
    image,
    name: str | None = None,
    *,
    mode: str = HEADLINE_MODE,
    overwrite: bool = False,
    batch_size: int = 256,
    window_bytes: int | None = None,
    progress: Progress | None = None,
) -> Prediction:
    """Predict a finished run on `image` (one GeoTIFF, or a list of band files stacked as preparation
    stacks them) into `<run>/predictions/<name>/` (see the module docstring); `window_bytes`: the raw
    bytes of one reading window (default `olr.data.tile_reader.WINDOW_BYTES`)."""
    workspace.require_writable(ACTION)
    run = run_data.as_run(run)
    run_data.require_finished(run)
    classifier_run = run
    if run.kind == "siamese":
        classifier_run = run_data.classifier_run_of(run)
        run_data.require_finished(classifier_run)
    paths = [Path(p) for p in ([image] if isinstance(image, (str, Path)) else image)]
    if not paths:
        raise OLRError("No image was given; give an image raster with --image.")
    target = RunLayout(run.path).prediction_for(name or default_name(paths[0]))
    if target.exists() and not overwrite:
        raise OLRError(
            f"The prediction {target} already exists; choose another --out NAME or pass --overwrite to replace it."
        )
    trained = trained_input(run_data.run_dataset(run))
    if classifier_run is not run:
        theirs = trained_input(run_data.run_dataset(classifier_run))
        if (theirs.band_names, theirs.dtype, theirs.tile) != (trained.band_names, trained.dtype, trained.tile):
            raise OLRError(
                f"The Siamese run {run.id} and its classifier run {classifier_run.id} were trained on tiles of "
                "other bands or sizes; predict with each run alone."
            )
    progress = progress or (lambda strip, strips, tiles, nodata: None)
    shown = str(paths[0]) if len(paths) == 1 else ", ".join(map(str, paths))
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasters.read_errors_named(*paths))
        stack.enter_context(rasterio.Env(**READ_ENV))
        # several band files are stacked onto the grid the preparation chose (--grid); one image is its own grid
        stacked = len(paths) > 1
        src = stack.enter_context(
            rasters.open_image_files(paths if stacked else paths[0], trained.grid if stacked else None)
        )
        bands, band_note = image_bands(src, trained, shown, run.id)
        if trained.tile > min(src.height, src.width):
            raise OLRError(
                f"The image {shown} ({src.width} x {src.height} pixels) is smaller than one tile of run {run.id} "
                f"({trained.tile} pixels); give a larger image."
            )
        mask = rasters.ImageMask.of(src, bands, trained.image_nodata)
        grid = TileGrid(src.height, src.width, trained.tile, trained.stride)
        models = _load_models(run, classifier_run, mode, trained)
        keys = exports.label_keys(models.labels)
        transform = exports.tile_grid_transform(src.transform, trained.tile, trained.tile, trained.stride)
        with atomic.staged_folder(target, overwrite=overwrite) as tmp:
            counts = _predict_pass(
                src, bands, mask, grid, models, tmp, transform, keys, batch_size, window_bytes, progress, trained
            )
            if counts[0] == 0:
                raise OLRError(
                    f"No tile of {shown} has at most {trained.max_nodata:.0%} nodata pixels (the share the dataset "
                    f"{trained.dataset} kept), so nothing was predicted; give an image with data."
                )
            files = [PROBABILITIES_TIF] + ([SELF_SCORES_TIF] if models.embedder is not None else [])
            if models.thresholds is not None:
                _write_predicted_labels(tmp, models)
                files.append(exports.PREDICTED_LABEL_TIF)
            _write_tiles(tmp, models, keys, src, grid)
            files.append(TILES_GPKG)
            record = _record(models, paths, src, grid, trained, bands, counts)
            (tmp / RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
            files.append(RECORD)
    notes = [band_note] if band_note else []
    if trained.scaling is None:
        notes.append(f"The dataset {trained.dataset} records no band scaling, so the image's was not checked.")
    if models.thresholds is None:
        notes.append(
            f"The run {classifier_run.id} has no evaluation, so its thresholds are unknown and {TILES_GPKG} holds "
            f"probabilities only; evaluate it (python -m olr evaluate {classifier_run.id}) and predict again with "
            "--overwrite for 0/1 predictions."
        )
    return Prediction(target, files, counts[0], counts[1], grid, models.thresholds is not None, notes)


def _predict_pass(
    src,
    bands,
    mask,
    grid: TileGrid,
    models: Models,
    folder: Path,
    transform,
    keys,
    batch_size,
    window_bytes,
    progress,
    trained: TrainedInput,
) -> tuple[int, int]:
    """Read the image window by window, predict its tiles, write the GeoTIFFs; (predicted, left as nodata)."""
    n_labels = len(models.labels)
    profile = exports.label_bands_profile(src.crs, transform, grid.rows, grid.cols, n_labels)
    strips = sorted({r0 for r0, _, _, _ in window_ranges(src, bands, grid, window_bytes)})
    tile, stride = grid.tile, grid.stride
    area = float(tile * tile)
    predicted = left_out = 0
    strip_tiles = strip_nodata = 0
    with contextlib.ExitStack() as outputs:
        probabilities = outputs.enter_context(rasterio.open(folder / PROBABILITIES_TIF, "w", **profile))
        self_scores = None
        if models.embedder is not None:
            self_scores = outputs.enter_context(rasterio.open(folder / SELF_SCORES_TIF, "w", **profile))
        with contextlib.closing(read_windows(src, bands, mask, None, grid, budget=window_bytes)) as windows:
            for win in windows:
                nr, nc, n = win.n_rows, win.n_cols, win.n_rows * win.n_cols
                tiles = np.ascontiguousarray(tiles_view(win.pixels, nr, nc, tile, stride)).reshape(n, tile, tile, -1)
                keep = np.ones(n, dtype=bool)
                if win.nodata is not None:
                    nodata = tiles_view(win.nodata, nr, nc, tile, stride).reshape(n, tile, tile)
                    keep = nodata.reshape(n, -1).sum(1) / area <= trained.max_nodata
                    tiles = tiles[keep]
                    fill_nodata(tiles, nodata[keep])  # as preparation filled its kept tiles
                window = Window(win.c0, win.r0, nc, nr)
                values = _predicted(models, tiles, batch_size)
                for dst, scores in ((probabilities, values[0]), (self_scores, values[1])):
                    if dst is not None:
                        out = np.full((n_labels, n), NODATA, dtype=np.float32)
                        out[:, keep] = scores.T
                        dst.write(out.reshape(n_labels, nr, nc), window=window)
                predicted += int(keep.sum())
                left_out += int(n - keep.sum())
                strip_tiles += n
                strip_nodata += int(n - keep.sum())
                if win.c0 + nc == grid.cols:  # the strip's last window
                    progress(strips.index(win.r0) + 1, len(strips), strip_tiles, strip_nodata)
                    strip_tiles = strip_nodata = 0
        for dst in (probabilities, self_scores):
            if dst is not None:
                exports.describe_label_bands(dst, models.labels, keys)
    return predicted, left_out


def _predicted(models: Models, tiles: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    if len(tiles) == 0:
        empty = np.zeros((0, len(models.labels)), dtype=np.float32)
        return empty, (empty if models.embedder is not None else None)
    return models.predict(tiles, batch_size)


def _write_predicted_labels(folder: Path, models: Models) -> None:
    """predicted_label.tif on the grid of probabilities.tif (one pixel per tile, small enough to read whole):
    per tile its most probable label predicted present, in CORINE colours (`exports.write_class_raster`)."""
    with rasterio.open(folder / PROBABILITIES_TIF) as tif:
        probabilities, crs, transform = tif.read(), tif.crs, tif.transform
    bands, height, width = probabilities.shape
    flat = probabilities.reshape(bands, -1).T.astype(np.float64)
    top = exports.top_labels(flat, binarize(flat, models.thresholds))
    classes = np.where(flat[:, 0] == NODATA, exports.NO_TILE, top + 1).reshape(height, width)
    what = f"most probable label predicted present ({models.mode.replace('_', '-')} thresholds)"
    exports.write_class_raster(folder / exports.PREDICTED_LABEL_TIF, crs, transform, classes, models.labels, what)


def _write_tiles(folder: Path, models: Models, keys: list[str], src, grid: TileGrid) -> None:
    """tiles.gpkg from the GeoTIFFs just written, strip by strip: one polygon per predicted tile."""
    fields = {"tile_row": "int", "tile_col": "int", "row_off": "int", "col_off": "int"}
    for key in keys:
        fields[f"prob_{key}"] = "float"
        if models.thresholds is not None:
            fields[f"pred_{key}"] = "int"
        if models.embedder is not None:
            fields[f"self_{key}"] = "float"
    schema = {"geometry": "Polygon", "properties": fields}
    a, b, c, d, e, f = list(src.transform)[:6]
    rows_per_read = max(1, 2**20 // max(1, grid.cols * len(keys)))

    def read_rows(path: Path, r0: int, r1: int) -> np.ndarray:
        with rasterio.open(path) as tif:
            return tif.read(window=Window(0, r0, grid.cols, r1 - r0))

    def features() -> Iterator[dict]:
        for r0 in range(0, grid.rows, rows_per_read):
            r1 = min(grid.rows, r0 + rows_per_read)
            probabilities = read_rows(folder / PROBABILITIES_TIF, r0, r1)
            self_scores = read_rows(folder / SELF_SCORES_TIF, r0, r1) if models.embedder is not None else None
            for rr, cc in zip(*np.nonzero(probabilities[0] != NODATA)):
                p = probabilities[:, rr, cc].astype(np.float64)
                row, col = int(r0 + rr), int(cc)
                y0, x0 = row * grid.stride, col * grid.stride
                corners = [(x0, y0), (x0 + grid.tile, y0), (x0 + grid.tile, y0 + grid.tile), (x0, y0 + grid.tile)]
                ring = [(a * x + b * y + c, d * x + e * y + f) for x, y in [*corners, corners[0]]]
                properties = {"tile_row": row, "tile_col": col, "row_off": y0, "col_off": x0}
                predictions = binarize(p[None], models.thresholds)[0] if models.thresholds is not None else None
                for j, key in enumerate(keys):
                    properties[f"prob_{key}"] = float(p[j])
                    if predictions is not None:
                        properties[f"pred_{key}"] = int(predictions[j])
                    if self_scores is not None:
                        properties[f"self_{key}"] = float(self_scores[j, rr, cc])
                yield {"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": properties}

    exports.write_gpkg_layer(folder / TILES_GPKG, TILES_LAYER, schema, features, src.crs.to_wkt())
    extra = {}
    if models.thresholds is not None:
        extra = {
            "threshold": ("float", models.thresholds),
            "threshold_mode": ("str", [models.mode] * len(keys)),
            "threshold_run": ("str", [models.classifier_run.id] * len(keys)),
        }
    exports.write_labels_table(folder / TILES_GPKG, models.labels, keys, extra)


def _record(models: Models, paths, src, grid: TileGrid, trained: TrainedInput, bands, counts) -> dict:
    """prediction.json: what was predicted with what."""
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run": models.run.id,
        "classifier_run": models.classifier_run.id,
        "dataset": trained.dataset,
        "image": [str(p) for p in paths] if len(paths) > 1 else str(paths[0]),
        "crs": {"wkt": src.crs.to_wkt(), "epsg": src.crs.to_epsg()},
        "image_size": [src.width, src.height],
        "image_transform": list(src.transform)[:6],
        "image_bands": [int(i) for i in bands],
        "band_names": trained.band_names,
        "tile": grid.tile,
        "stride": grid.stride,
        "tile_grid": {"rows": grid.rows, "cols": grid.cols, "tiles": grid.n_tiles},
        "max_nodata": trained.max_nodata,
        "tiles_predicted": counts[0],
        "tiles_nodata": counts[1],
        "labels": [lab.name for lab in models.labels],
        "thresholds": None if models.thresholds is None else [float(t) for t in models.thresholds],
        "threshold_mode": None if models.thresholds is None else models.mode,
    }


# ------------------------------------------------------------------ reading a prediction back


@dataclass(frozen=True)
class PredictedScene:
    """A stored prediction read back from its GeoTIFFs, one row per predicted tile (what a map draws)."""

    name: str
    record: dict  # prediction.json
    tiles: pd.DataFrame  # tile_row, tile_col, row_off, col_off, x_min..y_max (image CRS), lon_min..lat_max
    label_names: list[str]
    label_colours: list[str]
    probabilities: np.ndarray  # (n, L)
    predicted: np.ndarray | None  # (n, L) 0/1 at the stored thresholds; None without an evaluation
    self_scores: np.ndarray | None  # (n, L), a Siamese run's

    @property
    def present(self) -> np.ndarray:
        """(n, L) bool: the labels predicted present, every label when there are no thresholds."""
        if self.predicted is None:
            return np.ones_like(self.probabilities, dtype=bool)
        return self.predicted.astype(bool)

    def top_labels(self) -> np.ndarray:
        """Per tile the index of its most probable label among those `present`, -1 where none is
        (`exports.top_labels`)."""
        return exports.top_labels(self.probabilities, self.present)

    def label_text(self, rows=None, limit: int = 4) -> list[str]:
        """For the tiles at `rows` (default all) their labels `present`, most probable first, with their
        probabilities: "Pastures 0.91 · Non-irrigated arable land 0.62"."""
        rows = np.arange(len(self.probabilities)) if rows is None else np.asarray(rows, dtype=np.int64)
        probabilities, present = self.probabilities[rows], self.present[rows]
        order = np.argsort(-probabilities, axis=1, kind="stable")
        texts = []
        for k in range(len(rows)):
            picked = [j for j in order[k] if present[k, j]][:limit]
            texts.append(" · ".join(f"{self.label_names[j]} {probabilities[k, j]:.2f}" for j in picked) or "none")
        return texts


def list_predictions(run) -> list[str]:
    """The names of a run's finished predictions (folders with their `prediction.json`), newest first."""
    folder = RunLayout(run_data.as_run(run).path).predictions
    found = [p for p in folder.iterdir() if (p / RECORD).is_file()] if folder.is_dir() else []
    return [p.name for p in sorted(found, key=lambda p: ((p / RECORD).stat().st_mtime, p.name), reverse=True)]


def prediction_archive(run, name: str) -> bytes:
    """The files of one stored prediction as the bytes of one .zip, for a download (nothing is written)."""
    folder = RunLayout(run_data.as_run(run).path).prediction_for(name)
    return exports.zip_files(folder, sorted(p.name for p in folder.iterdir() if p.is_file()))


def read_prediction(run, name: str) -> PredictedScene:
    """The prediction `name` of a run (`predict_image`'s folder), with its tiles' footprints in the image
    CRS and in lon/lat (as preparation records a dataset's tiles)."""
    run = run_data.as_run(run)
    folder = RunLayout(run.path).prediction_for(name)
    if not (folder / RECORD).is_file():
        raise OLRError(
            f"Run {run.id} has no prediction named {name!r}; make one with python -m olr predict {run.id} --image IMG."
        )
    record = json.loads((folder / RECORD).read_text(encoding="utf-8"))

    def bands(path: Path):
        with rasterio.open(path) as tif:
            return tif.read(), list(tif.descriptions), [tif.tags(j).get("color", "#888888") for j in tif.indexes]

    probabilities, names, colours = bands(folder / PROBABILITIES_TIF)
    rows, cols = np.nonzero(probabilities[0] != NODATA)
    self_scores = None
    if (folder / SELF_SCORES_TIF).is_file():
        self_scores = bands(folder / SELF_SCORES_TIF)[0][:, rows, cols].T.astype(np.float64)
    probabilities = probabilities[:, rows, cols].T.astype(np.float64)
    thresholds = record.get("thresholds")
    predicted = binarize(probabilities, np.asarray(thresholds)) if thresholds is not None else None
    stride, tile = int(record["stride"]), int(record["tile"])
    row_off, col_off = rows * stride, cols * stride
    crs = rasterio.crs.CRS.from_wkt(record["crs"]["wkt"])
    footprints = tile_bounds(record["image_transform"], row_off, col_off, tile, crs)
    tiles = pd.DataFrame({"tile_row": rows, "tile_col": cols, "row_off": row_off, "col_off": col_off, **footprints})
    names = [n or f"label {j + 1}" for j, n in enumerate(names)]
    return PredictedScene(name, record, tiles, names, colours, probabilities, predicted, self_scores)


# ------------------------------------------------------------------ CLI: python -m olr predict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a finished run id (folder name under models/) or run folder")
    parser.add_argument(
        "--image",
        required=True,
        nargs="+",
        help="image raster (GeoTIFF, any CRS) with the bands, data type and scaling of the run's training image, "
        "or several band files stacked as preparation stacks them",
    )
    parser.add_argument(
        "--out", metavar="NAME", help="name of the folder under <run>/predictions/ (default: the image file's stem)"
    )
    parser.add_argument(
        "--thresholds",
        choices=evaluation.MODES,
        default=HEADLINE_MODE,
        help=f"the stored threshold mode of the run's evaluation that pred_ fields use (default {HEADLINE_MODE})",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="tiles per model call (default 256)")
    parser.add_argument("--overwrite", action="store_true", help="replace the prediction folder if it exists")


def cli_progress(stream=sys.stderr) -> Progress:
    def report(strip: int, strips: int, tiles: int, nodata: int) -> None:
        left = f" ({nodata:,} left as nodata)" if nodata else ""
        print(f"strip {strip}/{strips}, {tiles:,} tiles{left}", file=stream, flush=True)

    return report


def predict_command(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise OLRError(f"The batch size {args.batch_size} is not valid; use 1 or more tiles.")
    done = predict_image(
        args.run,
        args.image,
        args.out,
        mode=args.thresholds,
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        progress=cli_progress(),
    )
    left = f", {done.n_nodata:,} left as nodata" if done.n_nodata else ""
    print(
        f"Predicted {done.n_tiles:,} tiles ({done.grid.rows} x {done.grid.cols} grid{left}) with run {args.run} "
        f"into {done.folder}/: {', '.join(done.files)}"
    )
    for note in done.notes:
        print(f"note: {note}")
    return 0
