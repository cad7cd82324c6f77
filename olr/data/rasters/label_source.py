"""The label-source interface: a label map read through the image grid, tile by tile.

Also what every source shares: the tiles of a window, per-tile code counts, the values
met that its coding does not cover, and whether a label map overlaps the image at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from olr.data.rasters.codes import LabelCoding
from olr.errors import OLRError

#: How many distinct uncovered values a source remembers for its error message.
_KEEP_UNKNOWN = 64


def tile_origins(window: Window, n_rows: int, n_cols: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(n,) pixel row and column offsets of the n = n_rows * n_cols tiles of a window, row-major."""
    rows = int(window.row_off) + np.arange(n_rows) * stride
    cols = int(window.col_off) + np.arange(n_cols) * stride
    return np.repeat(rows, n_cols), np.tile(cols, n_rows)


def tiles_view(a: np.ndarray, n_rows: int, n_cols: int, tile: int, stride: int) -> np.ndarray:
    """View (n_rows, n_cols, tile, tile, ...) of the tiles of a window `a` (h, w, ...); no copy."""
    rs, cs = a.strides[:2]
    shape = (n_rows, n_cols, tile, tile, *a.shape[2:])
    strides = (stride * rs, stride * cs, rs, cs, *a.strides[2:])
    return np.lib.stride_tricks.as_strided(a, shape=shape, strides=strides, writeable=False)


def code_counts(codes: np.ndarray, n_bins: int) -> np.ndarray:
    """(n, n_bins) int64 count of each value per row of `codes` (n, k) uint8.

    Rows holding one value (common: a tile inside one land-cover patch) are counted
    without a histogram; the others get one small bincount each.
    """
    n = len(codes)
    counts = np.zeros((n, n_bins), dtype=np.int64)
    if n == 0:
        return counts
    lo, hi = codes.min(1), codes.max(1)
    uniform = lo == hi
    counts[np.flatnonzero(uniform), lo[uniform]] = codes.shape[1]
    for i in np.flatnonzero(~uniform):
        counts[i] = np.bincount(codes[i], minlength=n_bins)
    return counts


class LabelSource:
    """Label map aligned onto the image grid.

    `read_counts(window, n_rows, n_cols, tile, stride, exclude)` gives, for the n =
    n_rows * n_cols tiles of a window (row-major, the first tile at the window's top-left),
    the (n, n_code_index) pixel count of each code index at the image's pixel centres,
    leaving out the pixels where `exclude` (n, tile, tile) is true; pixels of a value the
    coding does not cover are not counted there but in `unknown_pixels` (`require_known`
    refuses them). `read_tiles(...)` gives the (n, tile, tile) uint8 code indices themselves.
    """

    path: Path
    kind: str  # "raster" | "vector"
    encoding: str  # "grid" | "clc" | "legend"
    coding: LabelCoding

    def __init__(self, coding: LabelCoding):
        self.coding = coding
        self.encoding = coding.encoding
        self.unknown_values: set = set()
        self.unknown_pixels = 0

    @property
    def classes(self) -> tuple[int, ...]:
        """The class codes: code index i + 1 is classes[i] (CLC codes, or a legend's values)."""
        return self.coding.classes

    @property
    def n_code_index(self) -> int:
        return self.coding.n_code_index

    def note_unknown(self, raw: np.ndarray, index: np.ndarray) -> None:
        """Remember (a few of) the raw values where `index` says the coding does not cover them."""
        if len(self.unknown_values) < _KEEP_UNKNOWN:
            unknown = index == self.coding.unknown_index
            if unknown.any():
                self.unknown_values.update(np.unique(raw[unknown]).tolist()[:_KEEP_UNKNOWN])

    def require_known(self) -> None:
        """OLRError naming the values read so far that the coding does not cover, if any pixel had one."""
        if self.unknown_pixels:
            raise self.coding.uncovered(self.path, self.unknown_values)

    def read_tiles(self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int) -> np.ndarray:
        raise NotImplementedError

    def read_counts(
        self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int, exclude: np.ndarray | None = None
    ) -> np.ndarray:
        codes = self.read_tiles(window, n_rows, n_cols, tile, stride)
        unknown = self.coding.unknown_index  # == n_code_index
        if exclude is not None:
            codes[exclude] = unknown + 1  # an extra bin, dropped below
        counts = code_counts(codes.reshape(len(codes), -1), unknown + 2)
        self.unknown_pixels += int(counts[:, unknown].sum())
        return counts[:, :unknown]

    def describe(self) -> dict:
        return {"kind": self.kind, "encoding": self.encoding}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def overlap_in(src_crs, src_bounds, image_crs, image_bounds):
    """The image bounds in `src_crs` intersected with `src_bounds`, or None when disjoint."""
    left, bottom, right, top = transform_bounds(image_crs, src_crs, *image_bounds, densify_pts=21)
    west, south = max(left, src_bounds[0]), max(bottom, src_bounds[1])
    east, north = min(right, src_bounds[2]), min(top, src_bounds[3])
    if west >= east or south >= north:
        return None
    return west, south, east, north


def no_overlap(path: Path, image) -> OLRError:
    return OLRError(
        f"The labels {path} do not overlap the image {image.name}; give a label map that covers the image area."
    )
