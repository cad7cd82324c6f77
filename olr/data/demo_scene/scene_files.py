"""Writing the demo scene's files: the CORINE raster, the 4-band image and `scene.json`.

`generate_scene` writes, deterministically from its `SceneParams` (default: the demo's):

- `clc.tif`   CORINE grid-code raster (uint8, 1..44, 48 = NODATA, colour table), EPSG:3035,
              100 m cells, like the real CLC raster;
- `image.tif` (4, size_px, size_px) uint16 surface-reflectance-like image (red, green, blue,
              nir; 0..10000), 10 m pixels in the image CRS (the demo's EPSG:32636, UTM 36N),
              tiled + deflate;
- `scene.json` the parameters (seed, size, tile, image CRS, substitutions), grids, classes
              present with pixel shares, the planted structure.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from olr import atomic, workspace
from olr.data import label_schemes
from olr.data.demo_scene.land_cover import build_land_cover
from olr.data.demo_scene.params import SceneParams
from olr.data.demo_scene.render import render
from olr.data.demo_scene.spec import (
    BAND_NAMES,
    CELL_M,
    LABEL_CRS,
    NODATA_GRID,
    PIXEL_M,
    Progress,
    planted_structure,
)
from olr.data.demo_scene.terrain import Grids


def generate_scene(
    folder: str | os.PathLike,
    params: SceneParams | None = None,
    *,
    progress: Progress | None = None,
    overwrite: bool = False,
    **fields,
) -> dict:
    """Write `image.tif`, `clc.tif` and `scene.json` of the scene `params` into `folder`.

    `params` defaults to the demo scene's, `fields` (SceneParams field names, e.g. `seed=3,
    size_px=512`) replace some of them. image.tif: (4, size_px, size_px) uint16, 10 m in
    `params.image_crs`. clc.tif: (H, W) uint8 CORINE grid codes, EPSG:3035, 100 m, nodata 48.
    The folder is built in a hidden sibling and renamed when complete. Returns the scene
    description (also in scene.json).
    """
    params = dataclasses.replace(params or SceneParams(), **fields).check()
    size_px = params.size_px
    steps = size_px + size_px // 8  # rendering rows + land cover (an eighth)
    report = (lambda d, m: progress(min(d, steps), steps, m)) if progress else None
    if report:
        report(0, "drawing the land cover")
    lc = build_land_cover(params)
    grid_codes = grid_code_raster(lc["codes"])
    if report:
        report(size_px // 8, "rendering the image")

    def render_progress(done, total, message):
        if report:
            report(size_px // 8 + done, message)

    with atomic.staged_folder(Path(folder), overwrite=overwrite) as tmp:
        _write_labels(tmp / "clc.tif", grid_codes, lc["grids"])
        counts = _write_image(tmp / "image.tif", lc, params.seed, render_progress)
        scene = _describe(params, lc["grids"], grid_codes, counts)
        atomic.write_json(tmp / "scene.json", scene)
    if report:
        report(steps, "scene written")
    return scene


def grid_code_raster(codes: np.ndarray) -> np.ndarray:
    """CLC codes (0 = none) -> CORINE grid codes, 48 where there is no class."""
    lut = {c.code: c.grid_code for c in label_schemes.legend()}
    out = np.full(codes.shape, NODATA_GRID, np.uint8)
    for code in np.unique(codes):
        if int(code) in lut:
            out[codes == code] = lut[int(code)]
    return out


def _write_labels(path: Path, grid_codes: np.ndarray, g: Grids) -> None:
    """The CORINE grid-code GeoTIFF, with CORINE's colour table."""
    import rasterio

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=grid_codes.shape[1],
        height=grid_codes.shape[0],
        count=1,
        dtype="uint8",
        crs=LABEL_CRS,
        transform=g.label_transform,
        nodata=NODATA_GRID,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    ) as dst:
        dst.write(grid_codes, 1)
        legend = label_schemes.legend()
        colours = label_schemes.hex_rgba([c.color for c in legend]).tolist()
        cmap = {c.grid_code: tuple(rgba) for c, rgba in zip(legend, colours)}
        cmap[NODATA_GRID] = (255, 255, 255, 0)
        dst.write_colormap(1, cmap)
        dst.set_band_description(1, "CORINE Land Cover grid code")


def _write_image(path: Path, lc: dict, seed: int, progress) -> np.ndarray:
    """Render the image of the land cover `lc` into a tiled GeoTIFF, strip by strip;
    returns the pixel count of every class (600,) int64, indexed by CLC code."""
    import rasterio
    from rasterio.windows import Window

    g = lc["grids"]
    size_px = g.size
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size_px,
        height=size_px,
        count=4,
        dtype="uint16",
        crs=g.image_crs,
        transform=g.image_transform,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        predictor=2,
        zlevel=1,
        interleave="pixel",
    ) as dst:
        for b, name in enumerate(BAND_NAMES, start=1):
            dst.set_band_description(b, name)

        def write_strip(r0, r1, block):
            dst.write(np.moveaxis(block, -1, 0), window=Window(0, r0, size_px, r1 - r0))

        return render(g, lc["codes"], lc["features"], lc["fields"], seed, write_strip, progress)


def _describe(params: SceneParams, g: Grids, grid_codes: np.ndarray, counts: np.ndarray) -> dict:
    """The content of scene.json: its parameters (`SceneParams.from_scene` reads them back), its
    grids and the classes' pixel shares."""
    total = counts.sum()
    names = label_schemes.by_code()
    classes = [
        {
            "code": int(c),
            "grid_code": names[int(c)].grid_code,
            "name": names[int(c)].level3,
            "color": names[int(c)].color,
            "pixel_share": round(float(counts[c] / total), 6),
        }
        for c in np.flatnonzero(counts)
    ]
    classes.sort(key=lambda d: -d["pixel_share"])
    return {
        "synthetic": True,
        "description": "Synthetic Cyprus-like demo scene generated by OLR Studio (not real imagery).",
        "seed": params.seed,
        "size_px": params.size_px,
        "tile": params.tile,
        "substitutions": {str(old): new for old, new in params.classes},
        "image": {
            "file": "image.tif",
            "crs": params.image_crs,
            "resolution_m": PIXEL_M,
            "bands": list(BAND_NAMES),
            "dtype": "uint16",
            "transform": list(g.image_transform)[:6],
        },
        "labels": {
            "file": "clc.tif",
            "crs": LABEL_CRS,
            "resolution_m": CELL_M,
            "encoding": "grid_code",
            "nodata": NODATA_GRID,
            "shape": list(grid_codes.shape),
            "transform": list(g.label_transform)[:6],
        },
        "tiles_expected": (params.size_px // params.tile) ** 2,
        "classes": classes,
        "planted_structure": planted_structure(params.substitutions),
    }


def demo_scene_dir() -> Path:
    """Where the demo scene's rasters live: `<workspace>/data/demo-scene`."""
    return workspace.data_dir() / "demo-scene"


def scene_complete(folder: Path) -> dict | None:
    """The scene description of a completely written scene folder, else None."""
    try:
        scene = json.loads((folder / "scene.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not ((folder / "image.tif").is_file() and (folder / "clc.tif").is_file()):
        return None
    return scene
