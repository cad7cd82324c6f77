"""How long the map of a large dataset takes to build (CLI `bench maps`): the tile image of
`olr.analysis.tile_images` next to the GeoJSON polygons the maps drew before, on a synthetic grid.

The grid is dataset-like: `n_tiles` tiles of 16 px at 10 m (160 m apart) on a nearly square grid in
UTM 36N (EPSG:32636, over Cyprus), each with the area fractions of six labels in smooth patches; the map
colours one label's fraction as the Datasets page does (`tile_images.fraction_rgba`, transparent at 0).

Timed, `repeats` times and interleaved (image, polygons, image, ...) so that load from elsewhere hits both
alike: the image in its steps (colours, palette, paint, warp to Web Mercator, PNG) and as a whole
(`tile_image`), a click's lookup (`tile_at`), and the polygons as the maps built them before (per tile its
name, split, value and labels text, then the GeoJSON and its JSON text, which is what the page sent). The
polygons are timed on the first `geojson_tiles` tiles only (a browser could not draw many more, and the
build alone takes tens of seconds at 500,000) and extrapolated linearly to all tiles, said as such.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from olr.analysis import tile_images
from olr.analysis.exports import TilePlaces, TileRaster, tile_grid_transform
from olr.data import summary

EPSG, ORIGIN, TILE, RES = 32636, (500_000.0, 3_900_000.0), 16, 10.0
N_LABELS = 6
LABEL_NAMES = ["Urban fabric", "Arable land", "Olive groves", "Coniferous forest", "Sclerophyllous", "Sea"]
SPLITS = np.array(["train", "val", "test"])


def synthetic_grid(n_tiles: int, seed: int = 0):
    """(TilePlaces, table, fractions) of `n_tiles` tiles on a nearly square grid (see the module docstring):
    `table` a tile table with tile_id, row_off, col_off, split and lon/lat bounds; fractions (n, 6) float32."""
    import pandas as pd
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    from olr.data.prepare import tile_bounds

    cols = math.ceil(math.sqrt(n_tiles))
    rows = math.ceil(n_tiles / cols)
    r, c = np.divmod(np.arange(n_tiles, dtype=np.int64), cols)
    image_transform = from_origin(*ORIGIN, RES, RES)
    bounds = tile_bounds(list(image_transform)[:6], r * TILE, c * TILE, TILE, CRS.from_epsg(EPSG))
    crs = CRS.from_epsg(EPSG).to_wkt()
    raster = TileRaster(tile_grid_transform(image_transform, TILE, TILE, TILE), rows, cols, r, c)
    source = np.stack([bounds[k] for k in ("x_min", "y_min", "x_max", "y_max")], axis=1)
    places = TilePlaces(crs, source, raster)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, (N_LABELS, 2))
    scale = rng.uniform(20, 60, N_LABELS)
    field = np.stack([np.sin(c / scale[j] + phase[j, 0]) * np.cos(r / scale[j] + phase[j, 1]) for j in range(N_LABELS)])
    weights = np.clip(field.T + rng.normal(0, 0.15, (n_tiles, N_LABELS)), 0, None) ** 2
    fractions = (weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)).astype(np.float32)
    table = pd.DataFrame(
        {
            "tile_id": np.arange(n_tiles),
            "row_off": r * TILE,
            "col_off": c * TILE,
            "split": SPLITS[(r // 8 + c // 8) % 3],
            **{k: bounds[k] for k in summary.COORDINATE_COLUMNS},
        }
    )
    return places, table, fractions


def _timed(function, *args):
    start = time.perf_counter()
    out = function(*args)
    return out, time.perf_counter() - start


def _image_steps(places: TilePlaces, rows, values) -> tuple[dict, tile_images.TileImage]:
    """Seconds of each step of `tile_images.tile_image` (as it runs them), and the image."""
    seconds = {}
    rgba, seconds["colours"] = _timed(tile_images.fraction_rgba, values)
    (index, palette), seconds["palette"] = _timed(tile_images.to_palette, rgba)
    grid, seconds["paint"] = _timed(tile_images.paint, places.raster, rows, index[:, None])
    k = tile_images.oversample(places.raster)
    (warped, _), seconds["warp"] = _timed(
        tile_images.warp_to_web_mercator, grid, places.raster.transform, places.crs_wkt, k
    )
    png, seconds["png"] = _timed(tile_images.encode_png, warped, palette)
    seconds["image, steps together"] = sum(seconds.values())
    whole, seconds["image (tile_image, colours included)"] = _timed(
        lambda: tile_images.tile_image(places, rows, tile_images.fraction_rgba(values))
    )
    assert whole.png == png  # the steps are the whole
    return seconds, whole


def _polygons(table, fractions, values) -> tuple[float, int]:
    """Seconds to build the GeoJSON text of the tiles as the maps did before, and its length in characters."""
    start = time.perf_counter()
    properties = {
        "tile": summary.tile_names(table, TILE),
        "split": [str(s) for s in table["split"]],
        "value": [f"{v * 100:.1f}%" for v in values],
        "labels": summary.tile_label_text(fractions, LABEL_NAMES, 0.05),
    }
    lonlat = table[list(summary.COORDINATE_COLUMNS)].to_numpy()
    text = json.dumps(tile_images.tiles_geojson(lonlat, tile_images.fraction_rgba(values), properties))
    return time.perf_counter() - start, len(text)


def map_image_timing(n_tiles: int = 500_000, repeats: int = 5, geojson_tiles: int = 20_000) -> dict:
    """Timings (seconds, one list per step, `repeats` each) and sizes of the map of `n_tiles` tiles
    (see the module docstring); the polygons' figures on `geojson_tiles` tiles and extrapolated."""
    places, table, fractions = synthetic_grid(n_tiles)
    rows = np.arange(n_tiles)
    values = fractions[:, 1]
    few = min(geojson_tiles, n_tiles)
    lon = (table["lon_min"].to_numpy() + table["lon_max"].to_numpy()) / 2
    lat = (table["lat_min"].to_numpy() + table["lat_max"].to_numpy()) / 2
    clicks = np.random.default_rng(1).choice(n_tiles, size=repeats)
    seconds: dict[str, list[float]] = {}
    image = None
    for k in range(repeats):
        steps, image = _image_steps(places, rows, values)
        found, steps["click lookup (tile_at)"] = _timed(tile_images.tile_at, places, (lon[clicks[k]], lat[clicks[k]]))
        assert found == clicks[k]
        polygon_seconds, polygon_chars = _polygons(table.iloc[:few], fractions[:few], values[:few])
        steps[f"polygons, {few:,} tiles"] = polygon_seconds
        steps[f"polygons, {n_tiles:,} tiles (extrapolated)"] = polygon_seconds * n_tiles / few
        for name, value in steps.items():
            seconds.setdefault(name, []).append(value)
    return {
        "n_tiles": n_tiles,
        "grid": [places.raster.height, places.raster.width],
        "repeats": repeats,
        "geojson_tiles": few,
        "seconds": seconds,
        "image": {
            "width": image.width,
            "height": image.height,
            "oversample": tile_images.oversample(places.raster),
            "png_bytes": len(image.png),
            "data_url_chars": len(image.data_url),
        },
        "polygons": {"json_chars": polygon_chars, "json_chars_extrapolated": round(polygon_chars * n_tiles / few)},
    }
