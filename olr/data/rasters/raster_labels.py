"""Label rasters (CORINE or any map with a legend) aligned onto the image grid: nearest-neighbour
sampling at the image's pixel centres."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window, from_bounds

from olr.data.rasters.codes import LabelCoding, auto_encoding, corine_coding, legend_coding
from olr.data.rasters.label_source import LabelSource, no_overlap, overlap_in, tile_origins
from olr.errors import OLRError

# Decimated reads used for checks and encoding detection stay below this many pixels a side.
CHECK_READ_SIDE = 1024


def _box_is_uniform(block: np.ndarray, r0: np.ndarray, c0: np.ndarray, r1: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """(n,) bool: whether block[r0:r1, c0:c1] (per n, ends exclusive) holds one value.

    Integral images of the horizontal and vertical value changes answer each box in O(1).
    """

    def integral(changes: np.ndarray) -> np.ndarray:
        out = np.zeros((changes.shape[0] + 1, changes.shape[1] + 1), dtype=np.int32)
        np.cumsum(np.cumsum(changes, 0, dtype=np.int32), 1, out=out[1:, 1:])
        return out

    def box_sum(s: np.ndarray, ra, ca, rb, cb) -> np.ndarray:
        return s[rb, cb] - s[ra, cb] - s[rb, ca] + s[ra, ca]

    across = integral(block[:, 1:] != block[:, :-1])  # change between column c and c+1
    down = integral(block[1:, :] != block[:-1, :])  # change between row r and r+1
    return (box_sum(across, r0, c0, r1, c1 - 1) == 0) & (box_sum(down, r0, c0, r1 - 1, c1) == 0)


@dataclass
class _Footprints:
    """Where a window's tiles fall in the label raster.

    fc, fr (4, n): block coordinates (column, row) of each tile's corner pixel centres
    (top-left, top-right, bottom-left, bottom-right); block: the label code indices under
    the window; ref_c, ref_r (n,): each tile's reference cell, one below its lowest corner,
    so that its pixels' coordinates relative to it are >= 0 (truncation == floor) and all
    its cells lie in the (k_rows, k_cols) box from it.
    """

    fc: np.ndarray
    fr: np.ndarray
    block: np.ndarray
    ref_c: np.ndarray
    ref_r: np.ndarray
    k_rows: int
    k_cols: int

    def box_codes(self, tiles: np.ndarray) -> np.ndarray:
        """(m, k_rows * k_cols) code indices of the boxes of `tiles`."""
        r = self.ref_r[tiles, None, None] + np.arange(self.k_rows)[None, :, None]
        c = self.ref_c[tiles, None, None] + np.arange(self.k_cols)[None, None, :]
        return self.block[r, c].reshape(len(tiles), -1)


class RasterLabels(LabelSource):
    """A label raster sampled at the image's pixel centres (nearest neighbour).

    Per tile, the exact positions of three corner pixel centres in the label raster
    (PROJ via `rasterio.warp.transform`) define an affine map for the tile's pixels; over
    a tile the projection is affine to far below a label pixel (< 1e-3 px at 640 m), i.e.
    finer than GDAL's warper default (0.125 px). Only the small block of label pixels under
    the window is read and converted to code indices. Tiles whose footprint lies inside
    one class need no per-pixel work; the others are counted per cell of their footprint
    box with small integer arrays.
    """

    kind = "raster"

    def __init__(
        self, path: Path, src: rasterio.DatasetReader, image: rasterio.DatasetReader, coding: LabelCoding, nodata
    ):
        super().__init__(coding)
        self.path = path
        self.src = src
        self.nodata = nodata
        self.image_crs = image.crs
        self.image_transform = image.transform
        self.same_crs = src.crs == image.crs
        self._buffers: dict = {}

    def _block(self, col0: int, row0: int, width: int, height: int) -> np.ndarray:
        """(height, width) code indices of a block of the label raster; 0 outside it."""
        out = np.zeros((height, width), dtype=np.uint8)
        c0, r0 = max(col0, 0), max(row0, 0)
        c1, r1 = min(col0 + width, self.src.width), min(row0 + height, self.src.height)
        if c1 > c0 and r1 > r0:
            raw = self.src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
            index = self.coding.code_index(raw)
            self.note_unknown(raw, index)
            out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = index
        return out

    def _footprints(self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int) -> _Footprints:
        from rasterio.warp import transform as transform_points

        rows, cols = tile_origins(window, n_rows, n_cols, stride)
        near, far = 0.5, tile - 0.5
        pc = np.concatenate([cols + near, cols + far, cols + near, cols + far])
        pr = np.concatenate([rows + near, rows + near, rows + far, rows + far])
        x, y = self.image_transform @ (pc, pr)
        if not self.same_crs:
            x, y = (np.asarray(v) for v in transform_points(self.image_crs, self.src.crs, x, y))
        fc, fr = ~self.src.transform @ (x, y)
        fc = np.asarray(fc, dtype=np.float64).reshape(4, -1)
        fr = np.asarray(fr, dtype=np.float64).reshape(4, -1)
        col0, row0 = int(np.floor(fc.min())) - 1, int(np.floor(fr.min())) - 1
        fc, fr = fc - col0, fr - row0
        ref_c = np.floor(fc.min(0)).astype(np.intp) - 1
        ref_r = np.floor(fr.min(0)).astype(np.intp) - 1
        k_cols = int((np.floor(fc.max(0)).astype(np.intp) - ref_c).max()) + 2
        k_rows = int((np.floor(fr.max(0)).astype(np.intp) - ref_r).max()) + 2
        block = self._block(col0, row0, int(ref_c.max()) + k_cols, int(ref_r.max()) + k_rows)
        return _Footprints(fc, fr, block, ref_c, ref_r, k_rows, k_cols)

    def _scratch(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """A reusable work array (fresh pages are slow to fault in; windows repeat sizes)."""
        key = (name, np.dtype(dtype).str, shape[1:])
        buf = self._buffers.get(key)
        if buf is None or len(buf) < shape[0]:
            buf = self._buffers[key] = np.empty(shape, dtype=dtype)
        return buf[: shape[0]]

    def _cells(self, fp: _Footprints, tiles: np.ndarray, tile: int, dtype) -> tuple[np.ndarray, np.ndarray]:
        """(m, tile, tile) row and column of each pixel's cell in its tile's box, as `dtype`."""
        m = len(tiles)
        step = np.arange(tile, dtype=np.float64) / (tile - 1)
        coord = self._scratch("coord", (m, tile, tile), np.float32)
        out = []
        for f, ref in ((fp.fr[:, tiles], fp.ref_r[tiles]), (fp.fc[:, tiles], fp.ref_c[tiles])):
            rel = f - ref  # small numbers: float32 keeps ~1e-5 cell
            down = (rel[0][:, None] + (rel[2] - rel[0])[:, None] * step).astype(np.float32)
            across = ((rel[1] - rel[0])[:, None] * step).astype(np.float32)
            np.add(down[:, :, None], across[:, None, :], out=coord)
            target = self._scratch(f"cell{len(out)}", (m, tile, tile), dtype)
            np.copyto(target, coord, casting="unsafe")  # >= 0, so truncation is floor
            out.append(target)
        return out[0], out[1]

    def read_tiles(self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int) -> np.ndarray:
        fp = self._footprints(window, n_rows, n_cols, tile, stride)
        n = fp.fc.shape[1]
        out = np.empty((n, tile, tile), dtype=np.uint8)
        rows = np.arange(n)
        for start in range(0, n, 256):  # bounded work arrays
            tiles = rows[start : start + 256]
            r, c = self._cells(fp, tiles, tile, np.intp)
            r += fp.ref_r[tiles, None, None]
            c += fp.ref_c[tiles, None, None]
            r *= fp.block.shape[1]
            r += c
            out[tiles] = fp.block.ravel().take(r)
        return out

    def read_counts(
        self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int, exclude: np.ndarray | None = None
    ) -> np.ndarray:
        fp = self._footprints(window, n_rows, n_cols, tile, stride)
        n = fp.fc.shape[1]
        cells = fp.k_rows * fp.k_cols
        if fp.k_rows > 255 or fp.k_cols > 255 or cells >= 65535:
            # Labels much finer than the image: boxes too big for the compact path.
            return super().read_counts(window, n_rows, n_cols, tile, stride, exclude)
        n_bins = self.coding.n_code_index + 1  # the last: values the coding does not cover
        counts = np.zeros((n, n_bins), dtype=np.int64)
        valid = np.full(n, tile * tile, dtype=np.int64)
        if exclude is not None:
            valid -= exclude.reshape(n, -1).sum(1)
        # Tiles whose footprint's bounding box of cells holds one class: every valid pixel
        # has that code.
        r0, c0 = np.floor(fp.fr.min(0)).astype(np.intp), np.floor(fp.fc.min(0)).astype(np.intp)
        r1, c1 = np.floor(fp.fr.max(0)).astype(np.intp) + 1, np.floor(fp.fc.max(0)).astype(np.intp) + 1
        uniform = _box_is_uniform(fp.block, r0, c0, r1, c1)
        first = fp.block[r0, c0]
        counts[np.flatnonzero(uniform), first[uniform]] = valid[uniform]
        mixed = np.flatnonzero(~uniform)
        for start in range(0, len(mixed), 256):  # bounded work arrays
            tiles = mixed[start : start + 256]
            r, c = self._cells(fp, tiles, tile, np.uint8)
            local = self._scratch("local", (len(tiles), tile * tile), np.uint16)
            np.multiply(r.reshape(len(tiles), -1), np.uint16(fp.k_cols), out=local)
            local += c.reshape(len(tiles), -1)
            if exclude is not None:
                np.putmask(local, exclude[tiles].reshape(len(tiles), -1), cells)
            per_cell = np.stack([np.bincount(row, minlength=cells + 1)[:cells] for row in local])
            keys = fp.box_codes(tiles) + (np.arange(len(tiles)) * n_bins)[:, None]
            summed = np.bincount(keys.ravel(), weights=per_cell.ravel(), minlength=len(tiles) * n_bins)
            counts[tiles] = summed.reshape(len(tiles), -1).round().astype(np.int64)
        self.unknown_pixels += int(counts[:, -1].sum())
        return counts[:, :-1]

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "encoding": self.encoding,
            "crs": self.src.crs.to_wkt(),
            "resolution": list(self.src.res),
            "nodata": None if self.nodata is None or math.isnan(self.nodata) else self.nodata,
        }

    def close(self) -> None:
        self.src.close()


def open_raster_labels(path: Path, src, image, encoding: str, legend=None, nodata=None) -> RasterLabels:
    """The opened label raster `src` as a source on `image`'s grid, its values read through `legend`
    (an `olr.data.legends.Legend`) or as CORINE codes in `encoding` ("auto" decides from a decimated
    read of the overlap, `codes.auto_encoding`); `nodata` is the raw value meaning no label (NaN:
    none). Closes `src` and raises OLRError when it misses the image, holds no class over it, or
    holds values the coding does not cover there."""
    try:
        overlap = overlap_in(src.crs, src.bounds, image.crs, image.bounds)
        if overlap is None:
            raise no_overlap(path, image)
        sample = _overview_sample(src, overlap)
        if legend is not None:
            coding = legend_coding(legend, nodata)
        else:
            if encoding == "auto":
                encoding = auto_encoding(path, sample, nodata, _colormap(src))
            coding = None if encoding is None else corine_coding(encoding, nodata)
        index = None if coding is None else coding.code_index(sample)
        if index is None or not ((index > 0) & (index < coding.unknown_index)).any():
            raise OLRError(
                f"The labels {path} hold no valid land-cover class ({_classes_text(coding)}) where they overlap "
                "the image; check that this is the label map for this area (and the --label-encoding or --legend)."
            )
        unknown = sample[index == coding.unknown_index]
        if unknown.size:
            raise coding.uncovered(path, np.unique(unknown).tolist())
    except BaseException:
        src.close()
        raise
    return RasterLabels(path, src, image, coding, nodata)


def _classes_text(coding: LabelCoding | None) -> str:
    if coding is None:
        return "CORINE grid codes 1..44 or CLC codes 111..523"
    if coding.encoding == "legend":
        return f"a value of the legend {coding.legend_source}"
    return "CORINE grid codes 1..44" if coding.encoding == "grid" else "CLC codes 111..523"


def _colormap(src: rasterio.DatasetReader) -> dict | None:
    """The colour table of band 1 ({value: (r, g, b, a)}), or None: rasterio raises when there is none."""
    try:
        return src.colormap(1)
    except (ValueError, RasterioError):
        return None


def _overview_sample(src: rasterio.DatasetReader, overlap: tuple[float, float, float, float]) -> np.ndarray:
    """A decimated read (at most CHECK_READ_SIDE a side) of the part of `src` in `overlap`
    (bounds in its CRS): enough to tell the encoding and to see whether any valid class is there."""
    win = from_bounds(*overlap, transform=src.transform)
    col0 = min(max(0, math.floor(win.col_off)), src.width - 1)
    row0 = min(max(0, math.floor(win.row_off)), src.height - 1)
    col1 = min(src.width, max(col0 + 1, math.ceil(win.col_off + win.width)))
    row1 = min(src.height, max(row0 + 1, math.ceil(win.row_off + win.height)))
    win = Window(col0, row0, col1 - col0, row1 - row0)
    shape = (max(1, min(int(win.height), CHECK_READ_SIDE)), max(1, min(int(win.width), CHECK_READ_SIDE)))
    return src.read(1, window=win, out_shape=shape, resampling=Resampling.nearest)
