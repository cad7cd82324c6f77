"""Several band files (Sentinel-2's at 10, 20 and 60 m) read as one image: `open_image_files`.

Each file opens through the GeoTIFF allow-list (`images.open_image`, never a user's VRT) and
is warped onto one common grid by rasterio's in-memory `WarpedVRT` with
`REFLECTANCE_RESAMPLING`. The grid is the intersection of the files' extents, on the pixel
grid of the finest file (or of the file `--grid` names). `BandStack` presents the dataset
attributes the preparation reads from an opened image (size, grid, bands, names, nodata,
scales, `read`), so the rest of the pipeline does not know it reads several files.

Bands are named by the file's band description, else by a Sentinel-2 band token in the file
name (B01..B12, B8A), else by the file stem. A pixel of the stack is nodata when any of its
band files has no data there (each file has its own footprint). Files of different dtypes
are read in their common numpy dtype (uint16 with float32 gives float32: every value is
kept exactly); meta.json says so (`describe`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.coords import BoundingBox
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from olr.data.rasters.images import canonical_band_name, open_image
from olr.errors import OLRError

#: Resampling of reflectance bands onto the common grid. Bilinear: reflectance is a continuous
#: quantity, so a finer grid gets interpolated values (nearest would repeat 20/60 m pixels in
#: blocks) and a coarser one a local average, without the overshoot of cubic kernels that can
#: make reflectance negative near edges; it is also what most Sentinel-2 toolboxes use.
REFLECTANCE_RESAMPLING = Resampling.bilinear

#: A Sentinel-2 band token in a file name ("..._B8A_20m.jp2", "B04.tif").
SENTINEL2_BAND = re.compile(r"(?<![A-Za-z0-9])B(0[1-9]|1[0-2]|8A)(?![A-Za-z0-9])", re.IGNORECASE)
#: Pixel-edge tolerance (in pixels) when the intersection is snapped onto the grid file's pixels.
SNAP_TOLERANCE = 1e-6


def sentinel2_band(path: str | os.PathLike) -> str | None:
    """The Sentinel-2 band named in a file name ("B04", "B8A"), or None."""
    found = SENTINEL2_BAND.findall(Path(path).name)
    return f"B{found[-1].upper()}" if found else None


def open_image_files(image: str | os.PathLike | Sequence[str | os.PathLike], grid: str | None = None):
    """One image raster (a rasterio dataset) or several band files as one `BandStack`.

    `grid` (`--grid`) names the band file (path, file name or band name) whose pixel grid the
    stack takes; by default the finest file's."""
    paths = [image] if isinstance(image, (str, os.PathLike)) else list(image)
    if not paths:
        raise OLRError("No image was given; give an image raster or several band files with --image.")
    if len(paths) == 1:
        if grid:
            raise OLRError(
                f"--grid {grid} chooses among several band files, but one image was given ({paths[0]}); "
                "drop --grid or give the band files."
            )
        return open_image(paths[0])
    return BandStack.open(paths, grid)


class BandStack:
    """Band files warped onto one grid, read as one multi-band image (the attributes `prepare` uses)."""

    #: A pixel is nodata when any band has no data (`images.ImageMask`).
    nodata_any_band = True
    nodata = None

    def __init__(self, paths: list[Path], sources: list, grid_index: int, transform: Affine, width: int, height: int):
        self.paths = paths
        self.sources = sources
        self.grid_index = grid_index
        self.transform = transform
        self.width, self.height = int(width), int(height)
        self.crs = sources[0].crs
        self.vrts = [
            WarpedVRT(
                s,
                crs=self.crs,
                transform=transform,
                width=self.width,
                height=self.height,
                resampling=REFLECTANCE_RESAMPLING,
            )
            for s in sources
        ]
        # Band i of the stack is band `band` of file `file`.
        self._bands = [(f, band) for f, s in enumerate(sources) for band in s.indexes]
        self.count = len(self._bands)
        self.indexes = tuple(range(1, self.count + 1))
        file_dtypes = [np.dtype(sources[f].dtypes[band - 1]) for f, band in self._bands]
        self.dtype = np.result_type(*file_dtypes)
        self.promoted_from = sorted({d.name for d in file_dtypes}) if len(set(file_dtypes)) > 1 else None
        self.dtypes = (self.dtype.name,) * self.count
        self.descriptions = tuple(_band_names(paths, sources))
        self.colorinterp = (ColorInterp.gray,) * self.count
        self.nodatavals = tuple(sources[f].nodatavals[band - 1] for f, band in self._bands)
        self.mask_flag_enums = tuple(
            [MaskFlags.nodata] if v is not None else [MaskFlags.all_valid] for v in self.nodatavals
        )
        self.scales = tuple(sources[f].scales[band - 1] for f, band in self._bands)
        self.offsets = tuple(sources[f].offsets[band - 1] for f, band in self._bands)
        block = self.vrts[grid_index].block_shapes[0]
        self.block_shapes = (tuple(block),) * self.count
        self.name = f"{paths[0]} (+{len(paths) - 1} band files)"

    @classmethod
    def open(cls, paths: Sequence[str | os.PathLike], grid: str | None = None) -> BandStack:
        paths = [Path(p) for p in paths]
        with contextlib.ExitStack() as opened:
            sources = [opened.enter_context(open_image(p)) for p in paths]
            _require_one_crs(paths, sources)
            for path, s in zip(paths, sources, strict=True):
                t = s.transform
                if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
                    raise OLRError(
                        f"The band file {path} is rotated or not north-up; warp it north-up first (gdalwarp)."
                    )
            names = _band_names(paths, sources)
            grid_index = _grid_index(grid, paths, sources, names)
            transform, width, height = _common_grid(paths, sources, grid_index)
            stack = cls(paths, sources, grid_index, transform, width, height)
            opened.pop_all()  # the stack closes them now
        return stack

    @property
    def res(self) -> tuple[float, float]:
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def bounds(self) -> BoundingBox:
        left, top = self.transform @ (0, 0)
        right, bottom = self.transform @ (self.width, self.height)
        return BoundingBox(left, bottom, right, top)

    def read(self, indexes=None, window: Window | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Bands `indexes` (an int: (h, w); a list: (b, h, w)) of `window` on the common grid, like rasterio's read."""
        single = isinstance(indexes, (int, np.integer))
        wanted = [int(indexes)] if single else list(self.indexes if indexes is None else indexes)
        window = window or Window(0, 0, self.width, self.height)
        h, w = int(window.height), int(window.width)
        if out is None:
            out = np.empty((h, w) if single else (len(wanted), h, w), dtype=self.dtype)
        planes = out[None] if single else out
        for k, i in enumerate(wanted):
            f, band = self._bands[i - 1]
            vrt = self.vrts[f]
            if np.dtype(vrt.dtypes[band - 1]) == out.dtype:
                vrt.read([band], window=window, out=planes[k : k + 1])  # GDAL writes into the (strided) view
            else:
                planes[k] = vrt.read(band, window=window)
        return out

    def dataset_mask(self, window: Window | None = None) -> np.ndarray:
        """(h, w) uint8: 255 where every band file has data, 0 elsewhere (GDAL's convention)."""
        valid = None
        for vrt in self.vrts:
            m = vrt.dataset_mask(window=window) > 0
            valid = m if valid is None else valid & m
        return valid.astype(np.uint8) * 255

    def describe(self) -> dict:
        """meta.json's account of the stack: files, band per file, grid, resampling, dtype promotion."""
        names = list(self.descriptions)
        return {
            "band_files": [
                {"band": names[i], "file": str(self.paths[f]), "resolution": [float(x) for x in self.sources[f].res]}
                for i, (f, _) in enumerate(self._bands)
            ],
            "grid_file": str(self.paths[self.grid_index]),
            "resampling": REFLECTANCE_RESAMPLING.name,
            "dtype_promoted_from": self.promoted_from,
        }

    def close(self) -> None:
        for dataset in (*self.vrts, *self.sources):
            with contextlib.suppress(Exception):
                dataset.close()

    def __enter__(self) -> BandStack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _band_names(paths: list[Path], sources: list) -> list[str]:
    """Each file's band names: its band description, else a Sentinel-2 token of its name, else its stem.

    OLRError when two bands would share a name (the same band file given twice)."""
    names, owner = [], {}
    for path, s in zip(paths, sources, strict=True):
        for i, desc in enumerate(s.descriptions):
            if desc:
                name = desc
            elif s.count == 1:
                name = sentinel2_band(path) or path.stem
            else:
                name = f"{path.stem} band {i + 1}"
            key = canonical_band_name(name)
            if key in owner:
                raise OLRError(
                    f"The band files {owner[key]} and {path} both hold a band named {name}; give each band once."
                )
            owner[key] = path
            names.append(name)
    return names


def _require_one_crs(paths: list[Path], sources: list) -> None:
    for path, s in zip(paths[1:], sources[1:], strict=True):
        if s.crs != sources[0].crs:
            raise OLRError(
                f"The band files {paths[0]} ({sources[0].crs.to_string()}) and {path} ({s.crs.to_string()}) are in "
                "different coordinate systems; reproject them to one first (e.g. gdalwarp -t_srs "
                f"{sources[0].crs.to_string()})."
            )


def _grid_index(grid: str | None, paths: list[Path], sources: list, names: list[str]) -> int:
    """The file whose pixel grid the stack takes: the one `grid` names, else the finest (first of equals)."""
    if not grid:
        areas = [abs(s.transform.a * s.transform.e) for s in sources]
        return int(np.argmin(areas))
    text = str(grid).strip()
    for k, path in enumerate(paths):
        if text in (str(path), path.name, path.stem):
            return k
    band_file = [k for k, s in enumerate(sources) for _ in s.indexes]
    key = canonical_band_name(text)
    for k, name in enumerate(names):
        if canonical_band_name(name) == key:
            return band_file[k]
    raise OLRError(
        f"--grid {text} names none of the band files ({', '.join(p.name for p in paths)}) or their bands "
        f"({', '.join(names)}); give one of these."
    )


def _common_grid(paths: list[Path], sources: list, grid_index: int) -> tuple[Affine, int, int]:
    """(transform, width, height): the files' common extent on the pixel grid of file `grid_index`."""
    left = max(s.bounds.left for s in sources)
    right = min(s.bounds.right for s in sources)
    bottom = max(s.bounds.bottom for s in sources)
    top = min(s.bounds.top for s in sources)
    t = sources[grid_index].transform
    col0 = math.ceil((left - t.c) / t.a - SNAP_TOLERANCE)
    col1 = math.floor((right - t.c) / t.a + SNAP_TOLERANCE)
    row0 = math.ceil((top - t.f) / t.e - SNAP_TOLERANCE)
    row1 = math.floor((bottom - t.f) / t.e + SNAP_TOLERANCE)
    if col1 - col0 < 1 or row1 - row0 < 1:
        a, b = _disjoint_pair(paths, sources)
        raise OLRError(
            f"The band files {a} and {b} do not overlap (by at least one pixel); give band files of the same scene."
        )
    return t * Affine.translation(col0, row0), col1 - col0, row1 - row0


def _disjoint_pair(paths: list[Path], sources: list) -> tuple[Path, Path]:
    """Two files whose extents do not overlap (boxes that overlap pairwise overlap all together)."""
    for i, a in enumerate(sources):
        for j in range(i + 1, len(sources)):
            b = sources[j].bounds
            if (
                a.bounds.left >= b.right
                or b.left >= a.bounds.right
                or a.bounds.bottom >= b.top
                or b.bottom >= a.bounds.top
            ):
                return paths[i], paths[j]
    return paths[0], paths[-1]  # overlapping by less than a pixel of the grid
