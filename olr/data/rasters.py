"""Opening image and label sources with clear errors, and aligning labels onto the image grid.

The image raster defines the grid (its CRS, transform and shape). Label maps are read
through that grid, whatever their own CRS and resolution:

- CORINE rasters of grid codes (1..44; 48 = NODATA, 49/50/255 = unclassified) or of CLC
  codes (111..523) are sampled with nearest neighbour (categorical data) at the image's
  pixel centres projected into the label raster (exact PROJ transforms at tile corners,
  affine in between), reading only the label block under each window. This equals a
  nearest-neighbour warp onto the image grid (GDAL's WarpedVRT) without its per-pixel
  cost, and is more exact than GDAL's default approximation;
- CORINE vectors (GeoPackage/Shapefile with a `Code_18` field) are reprojected to the
  image CRS once and rasterised per window (a pixel takes the polygon under its centre).

Every label reader returns *code indices*: (h, w) uint8, 0 = no label, i = the i-th CLC
code of `olr.data.dataset.label_schemes.ALL_CODES` (1..44).
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio._err import CPLE_BaseError  # GDAL's own errors; rasterio has no public alias
from rasterio.errors import NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from olr.data import label_schemes
from olr.errors import OLRError

#: What GDAL raises when a file that opened turns out damaged while its pixels are read.
READ_ERRORS = (RasterioError, CPLE_BaseError)


@contextlib.contextmanager
def read_errors_named(*paths: str | os.PathLike):
    """Inside the block, GDAL errors of files that opened but are damaged become `read_failure`'s sentence."""
    try:
        yield
    except READ_ERRORS as error:
        raise read_failure(error, *paths) from None


def read_failure(error: BaseException, *paths: str | os.PathLike) -> OLRError:
    """The one-sentence error for a raster or vector that failed while being read.

    GDAL's most specific message is often on the exception's cause ("Read failed. See previous
    exception"); it usually names the file, which tells which of `paths` is damaged.
    """
    messages = []
    e: BaseException | None = error
    while e is not None and len(messages) < 5:
        text = " ".join(str(e).split())
        if text:
            messages.append(text)
        e = e.__cause__ or e.__context__
    detail = next((m for m in reversed(messages) if "See previous exception" not in m), messages[0] if messages else "")
    named = [Path(p) for p in paths if Path(p).name in " ".join(messages)]
    which = f"The file {named[0]}" if len(named) == 1 else "One of the files " + ", ".join(map(str, paths))
    return OLRError(f"{which} could not be read to the end ({detail[:200]}): it is truncated or corrupted; "
                    "copy or export it again.")


#: Number of code-index values: 0 (no label) + the 44 CLC codes.
N_CODE_INDEX = len(label_schemes.ALL_CODES) + 1
ENCODINGS = ("auto", "grid", "clc")
VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".sqlite")
DEFAULT_BAND_NAMES = {1: ["gray"], 3: ["red", "green", "blue"], 4: ["red", "green", "blue", "nir"]}
# Decimated reads used for checks and encoding detection stay below this many pixels a side.
CHECK_READ_SIDE = 1024


def _check_exists(path: Path, what: str) -> None:
    if not path.exists():
        raise OLRError(f"The {what} file {path} does not exist; check the path and try again.")
    if path.is_dir():
        raise OLRError(f"The {what} path {path} is a folder, not a file; give the raster file itself.")


def open_image(path: str | os.PathLike) -> rasterio.DatasetReader:
    """Open the image raster; it must be a georeferenced raster (CRS and geotransform)."""
    path = Path(path)
    _check_exists(path, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except RasterioIOError:
        raise OLRError(
            f"The image {path} is not a raster GDAL can read; give a GeoTIFF (or another GDAL raster)."
        ) from None
    if src.crs is None:
        src.close()
        raise OLRError(
            f"The image {path} has no coordinate reference system; assign one "
            "(e.g. gdal_edit.py -a_srs EPSG:32636) and try again."
        )
    if src.transform == Affine.identity():
        src.close()
        raise OLRError(
            f"The image {path} has no geotransform (pixel size and origin); georeference it "
            "(e.g. gdal_edit.py -a_ullr) and try again."
        )
    return src


def image_bands(src: rasterio.DatasetReader) -> list[int]:
    """1-based indexes of the image bands: all of them.

    A band flagged "alpha" stays a band: GDAL flags the 4th band of any 4-band uint8
    GeoTIFF as alpha by default, which would silently drop the NIR of RGBN imagery.
    """
    return list(src.indexes)


def band_names(src: rasterio.DatasetReader, bands: list[int]) -> list[str]:
    """Band names from the raster's descriptions, else its colour interpretation, else defaults."""
    desc = [src.descriptions[i - 1] for i in bands]
    if all(desc) and len(set(desc)) == len(desc):
        return list(desc)
    interp = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue", ColorInterp.alpha: "alpha"}
    names = [interp.get(src.colorinterp[i - 1]) for i in bands]
    if all(names) and len(set(names)) == len(names):
        return names
    return DEFAULT_BAND_NAMES.get(len(bands), [f"band {i + 1}" for i in range(len(bands))])


@dataclass
class ImageMask:
    """How to tell image nodata pixels: a nodata value (all bands equal it), a GDAL mask, or none."""

    kind: str  # "none" | "value" | "mask"
    value: float | None = None

    @staticmethod
    def of(src: rasterio.DatasetReader, bands: list[int]) -> "ImageMask":
        if src.nodata is not None:
            return ImageMask("value", float(src.nodata))
        flags = src.mask_flag_enums[bands[0] - 1]
        if MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
            return ImageMask("mask")  # an internal or .msk mask (an alpha band stays data)
        return ImageMask("none")

    def pixels(self, src: rasterio.DatasetReader, window: Window, pixels: np.ndarray) -> np.ndarray | None:
        """(h, w) bool, True where the image has no data; None when every pixel is valid.

        `pixels` is the window already read, (h, w, b).
        """
        if self.kind == "none":
            return None
        if self.kind == "mask":
            return src.dataset_mask(window=window) == 0
        h, w, b = pixels.shape
        value = self.value
        if math.isnan(value):
            out = np.isnan(pixels[..., 0])
            for k in range(1, b):
                out &= np.isnan(pixels[..., k])
            return out
        if pixels.dtype.kind in "iu":
            info = np.iinfo(pixels.dtype)
            if not (info.min <= value <= info.max and value.is_integer()):
                return None  # the nodata value cannot occur in this dtype
        width = b * pixels.dtype.itemsize
        if width in (1, 2, 4, 8) and pixels.flags.c_contiguous:
            # A pixel is nodata when all its bands equal the value: compare each pixel's
            # bytes at once (one pass over the window instead of one per band).
            pattern = np.full(b, value, dtype=pixels.dtype).view(f"u{width}")[0]
            return pixels.view(f"u{width}").reshape(h, w) == pattern
        out = pixels[..., 0] == value
        for k in range(1, b):
            out &= pixels[..., k] == value
        return out


def _code_index_lut(encoding: str, size: int, nodata: float | None) -> np.ndarray:
    """(size,) uint8: raw label value -> code index (0 = no label)."""
    lut = np.zeros(size, dtype=np.uint8)
    index = {code: i + 1 for i, code in enumerate(label_schemes.ALL_CODES)}
    for c in label_schemes.legend():
        raw = c.grid_code if encoding == "grid" else c.code
        if raw < size:
            lut[raw] = index[c.code]
    if nodata is not None and not math.isnan(nodata) and 0 <= nodata < size and float(nodata).is_integer():
        lut[int(nodata)] = 0
    return lut


def to_code_index(raw: np.ndarray, encoding: str, nodata: float | None = None) -> np.ndarray:
    """(h, w) raw label values (grid or CLC codes) -> (h, w) uint8 code indices."""
    if raw.dtype == np.uint8:
        return _code_index_lut(encoding, 256, nodata)[raw]
    if raw.dtype == np.uint16:
        return _code_index_lut(encoding, 65536, nodata)[raw]
    # Other dtypes: anything outside 0..max code maps to the last entry, which is 0.
    size = (max(label_schemes.ALL_CODES) if encoding == "clc" else 255) + 2
    lut = _code_index_lut(encoding, size, nodata)
    values = np.nan_to_num(raw.astype(np.float64, copy=False), nan=-1.0) if raw.dtype.kind == "f" else raw
    return lut[np.clip(values, -1, size - 1).astype(np.intp) % size]


def detect_encoding(values: np.ndarray, nodata: float | None = None) -> str | None:
    """'grid' or 'clc' from a sample of raw label values (whichever has more valid pixels), or None."""
    v = values[~np.isnan(values)] if values.dtype.kind == "f" else values.ravel()
    if nodata is not None:
        v = v[v != nodata]
    n_grid = int(np.isin(v, [c.grid_code for c in label_schemes.legend()]).sum())
    n_clc = int(np.isin(v, label_schemes.ALL_CODES).sum())
    if n_grid == 0 and n_clc == 0:
        return None
    return "clc" if n_clc > n_grid else "grid"


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
    the (n, N_CODE_INDEX) pixel count of each code index at the image's pixel centres,
    leaving out the pixels where `exclude` (n, tile, tile) is true. `read_tiles(...)` gives
    the (n, tile, tile) uint8 code indices themselves.
    """

    path: Path
    kind: str  # "raster" | "vector"
    encoding: str  # "grid" | "clc"

    def read_tiles(self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int) -> np.ndarray:
        raise NotImplementedError

    def read_counts(self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int,
                    exclude: np.ndarray | None = None) -> np.ndarray:
        codes = self.read_tiles(window, n_rows, n_cols, tile, stride)
        if exclude is not None:
            codes[exclude] = N_CODE_INDEX  # an extra bin, dropped below
        return code_counts(codes.reshape(len(codes), -1), N_CODE_INDEX + 1)[:, :N_CODE_INDEX]

    def describe(self) -> dict:
        return {"kind": self.kind, "encoding": self.encoding}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
    """A CORINE raster sampled at the image's pixel centres (nearest neighbour).

    Per tile, the exact positions of three corner pixel centres in the label raster
    (PROJ via `rasterio.warp.transform`) define an affine map for the tile's pixels; over
    a tile the projection is affine to far below a label pixel (< 1e-3 px at 640 m), i.e.
    finer than GDAL's warper default (0.125 px). Only the small block of label pixels under
    the window is read and converted to code indices. Tiles whose footprint lies inside
    one class need no per-pixel work; the others are counted per cell of their footprint
    box with small integer arrays.
    """

    kind = "raster"

    def __init__(self, path: Path, src: rasterio.DatasetReader, image: rasterio.DatasetReader, encoding: str):
        self.path = path
        self.src = src
        self.encoding = encoding
        self.nodata = src.nodata
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
            out[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = to_code_index(raw, self.encoding, self.nodata)
        return out

    def _footprints(self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int) -> _Footprints:
        from rasterio.warp import transform as transform_points

        rows, cols = tile_origins(window, n_rows, n_cols, stride)
        near, far = 0.5, tile - 0.5
        pc = np.concatenate([cols + near, cols + far, cols + near, cols + far])
        pr = np.concatenate([rows + near, rows + near, rows + far, rows + far])
        x, y = self.image_transform * (pc, pr)
        if not self.same_crs:
            x, y = (np.asarray(v) for v in transform_points(self.image_crs, self.src.crs, x, y))
        fc, fr = ~self.src.transform * (x, y)
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

    def read_counts(self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int,
                    exclude: np.ndarray | None = None) -> np.ndarray:
        fp = self._footprints(window, n_rows, n_cols, tile, stride)
        n = fp.fc.shape[1]
        cells = fp.k_rows * fp.k_cols
        if fp.k_rows > 255 or fp.k_cols > 255 or cells >= 65535:
            # Labels much finer than the image: boxes too big for the compact path.
            return super().read_counts(window, n_rows, n_cols, tile, stride, exclude)
        counts = np.zeros((n, N_CODE_INDEX), dtype=np.int64)
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
            keys = fp.box_codes(tiles) + (np.arange(len(tiles)) * N_CODE_INDEX)[:, None]
            summed = np.bincount(keys.ravel(), weights=per_cell.ravel(), minlength=len(tiles) * N_CODE_INDEX)
            counts[tiles] = summed.reshape(len(tiles), -1).round().astype(np.int64)
        return counts

    def describe(self) -> dict:
        return {"kind": self.kind, "encoding": self.encoding, "crs": self.src.crs.to_wkt(),
                "resolution": list(self.src.res), "nodata": self.nodata}

    def close(self) -> None:
        self.src.close()


@dataclass
class _Shape:
    geometry: dict
    code_index: int
    bounds: tuple[float, float, float, float]


def _geometry_bounds(geometry: dict) -> tuple[float, float, float, float]:
    xs, ys = [], []

    def walk(c):
        if isinstance(c[0], (int, float)):
            xs.append(c[0])
            ys.append(c[1])
        else:
            for part in c:
                walk(part)

    if geometry["type"] == "GeometryCollection":
        for g in geometry["geometries"]:
            b = _geometry_bounds(g)
            xs += [b[0], b[2]]
            ys += [b[1], b[3]]
    else:
        walk(geometry["coordinates"])
    return min(xs), min(ys), max(xs), max(ys)


@dataclass
class VectorLabels(LabelSource):
    """CORINE polygons (field `Code_18`) reprojected to the image CRS, rasterised per window."""

    path: Path
    image_transform: Affine
    shapes: list[_Shape] = field(default_factory=list)
    crs_wkt: str = ""
    field_name: str = "Code_18"
    kind: str = "vector"
    encoding: str = "clc"

    def read_tiles(self, window: Window, n_rows: int, n_cols: int, tile: int, stride: int) -> np.ndarray:
        codes = self.read(window)
        return np.ascontiguousarray(tiles_view(codes, n_rows, n_cols, tile, stride)).reshape(-1, tile, tile)

    def read(self, window: Window) -> np.ndarray:
        """(h, w) uint8 code indices of a window of the image grid."""
        from rasterio.features import rasterize
        from rasterio.windows import bounds as window_bounds
        from rasterio.windows import transform as window_transform

        h, w = int(window.height), int(window.width)
        left, bottom, right, top = window_bounds(window, self.image_transform)
        x0, x1 = min(left, right), max(left, right)
        y0, y1 = min(bottom, top), max(bottom, top)
        inside = [
            (s.geometry, s.code_index)
            for s in self.shapes
            if s.bounds[0] <= x1 and s.bounds[2] >= x0 and s.bounds[1] <= y1 and s.bounds[3] >= y0
        ]
        if not inside:
            return np.zeros((h, w), dtype=np.uint8)
        return rasterize(inside, out_shape=(h, w), transform=window_transform(window, self.image_transform),
                         fill=0, dtype=np.uint8)

    def describe(self) -> dict:
        return {"kind": self.kind, "encoding": self.encoding, "crs": self.crs_wkt, "field": self.field_name,
                "features": len(self.shapes)}


def _overlap_in(src_crs, src_bounds, image_crs, image_bounds):
    """The image bounds in `src_crs` intersected with `src_bounds`, or None when disjoint."""
    left, bottom, right, top = transform_bounds(image_crs, src_crs, *image_bounds, densify_pts=21)
    west, south = max(left, src_bounds[0]), max(bottom, src_bounds[1])
    east, north = min(right, src_bounds[2]), min(top, src_bounds[3])
    if west >= east or south >= north:
        return None
    return west, south, east, north


def _no_overlap(path: Path, image) -> OLRError:
    return OLRError(
        f"The labels {path} do not overlap the image {image.name}; "
        "give a label map that covers the image area."
    )


def _open_raster_labels(path: Path, src, image, encoding: str) -> RasterLabels:
    overlap = _overlap_in(src.crs, src.bounds, image.crs, image.bounds)
    if overlap is None:
        src.close()
        raise _no_overlap(path, image)
    # A decimated read of the overlapping part: enough to tell the encoding and to see
    # whether any valid class is there at all.
    win = from_bounds(*overlap, transform=src.transform)
    col0 = min(max(0, math.floor(win.col_off)), src.width - 1)
    row0 = min(max(0, math.floor(win.row_off)), src.height - 1)
    col1 = min(src.width, max(col0 + 1, math.ceil(win.col_off + win.width)))
    row1 = min(src.height, max(row0 + 1, math.ceil(win.row_off + win.height)))
    win = Window(col0, row0, col1 - col0, row1 - row0)
    shape = (max(1, min(int(win.height), CHECK_READ_SIDE)), max(1, min(int(win.width), CHECK_READ_SIDE)))
    sample = src.read(1, window=win, out_shape=shape, resampling=Resampling.nearest)
    found = detect_encoding(sample, src.nodata)
    if encoding == "auto":
        encoding = found
    elif found is not None and not (to_code_index(sample, encoding, src.nodata) > 0).any():
        found = None
    if found is None or encoding is None:
        src.close()
        what = "CORINE grid codes 1..44 or CLC codes 111..523" if encoding in (None, "auto") else (
            "CORINE grid codes 1..44" if encoding == "grid" else "CLC codes 111..523")
        raise OLRError(
            f"The labels {path} hold no valid land-cover class ({what}) where they overlap the image; "
            "check that this is the CORINE map for this area (and the --label-encoding)."
        )
    return RasterLabels(path, src, image, encoding)


def _features_in(layer, bbox) -> list:
    """The layer's features whose bounds meet `bbox` (in the layer's CRS).

    GDAL answers a bbox filter on a GeoPackage through its R-tree index, which needs SQLite's
    rtree module; once TensorFlow is imported its own SQLite, without that module, is the one
    in use (the app or a notebook that trained first). Then the features are filtered here.
    """
    try:
        return list(layer.filter(bbox=bbox))
    except Exception as e:  # fiona raises driver-specific error types
        if "rtree" not in str(e):
            raise
    x0, y0, x1, y1 = bbox
    out = []
    for feat in layer:
        if feat.geometry is None:
            continue
        fx0, fy0, fx1, fy1 = _geometry_bounds(dict(feat.geometry))
        if fx0 <= x1 and fx1 >= x0 and fy0 <= y1 and fy1 >= y0:
            out.append(feat)
    return out


def read_vector_layer(path: str | os.PathLike, image_crs: str, image_bounds) -> dict:
    """The CORINE polygons of a vector file that meet the image, as plain data.

    Returns {"crs": layer WKT, "field": the Code_18 field's name, "n_features": features in
    the overlap, "features": [[code, GeoJSON geometry in the layer CRS], ...]}; raises
    OLRError for a file that is not a readable vector, lacks Code_18 or a CRS, or misses
    the image. Runs in a child process (`_read_vector_isolated`).
    """
    import fiona

    try:
        layer = fiona.open(path)
    except Exception:  # fiona raises several driver-specific types
        raise OLRError(
            f"The labels {path} are neither a raster nor a vector file GDAL can read; "
            "give a CORINE GeoTIFF or GeoPackage."
        ) from None
    with layer:
        fields = list(layer.schema["properties"])
        match = [f for f in fields if f.lower() == "code_18"]
        if not match:
            raise OLRError(
                f"The vector labels {path} have no Code_18 field (fields: {', '.join(fields) or 'none'}); "
                "give the CORINE vector with its Code_18 attribute."
            )
        field_name = match[0]
        if layer.crs is None or not layer.crs:
            raise OLRError(f"The vector labels {path} have no coordinate reference system; assign one and try again.")
        layer_crs = layer.crs.to_wkt()
        overlap = _overlap_in(layer_crs, layer.bounds, image_crs, image_bounds)
        if overlap is None:
            return {"crs": layer_crs, "field": field_name, "n_features": 0, "features": []}
        features = []
        n_features = 0
        for feat in _features_in(layer, overlap):
            n_features += 1
            try:
                code = int(str(feat.properties[field_name]).strip())
            except (TypeError, ValueError):
                continue
            if feat.geometry is not None:
                features.append([code, dict(feat.geometry)])
    return {"crs": layer_crs, "field": field_name, "n_features": n_features, "features": features}


#: Seconds a child process may take to read a vector label file.
VECTOR_READ_TIMEOUT_S = 900


def _read_vector_isolated(path: Path, image) -> dict:
    """`read_vector_layer` in a child process.

    GDAL's GeoPackage (SQLite) reader can crash the whole process with a segmentation fault
    on a damaged file (found by tests/test_fuzz_inputs.py); in a child, that crash becomes an
    error sentence and the app or the caller lives on.
    """
    import json
    import subprocess
    import sys

    request = json.dumps({"path": str(path), "crs": image.crs.to_wkt(), "bounds": list(image.bounds)})
    code = "import olr.data.rasters as r; r._vector_child()"
    try:
        proc = subprocess.run([sys.executable, "-c", code], input=request, capture_output=True, text=True,
                              timeout=VECTOR_READ_TIMEOUT_S, cwd=Path(__file__).resolve().parents[2])
    except subprocess.TimeoutExpired:
        raise OLRError(f"Reading the vector labels {path} took over {VECTOR_READ_TIMEOUT_S} s; "
                       "clip the CORINE file to the image area and try again.") from None
    if proc.returncode < 0:
        raise OLRError(f"Reading the vector labels {path} crashed GDAL (signal {-proc.returncode}): the file is damaged; "
                       "export or download it again.")
    try:
        reply = json.loads(proc.stdout)
    except ValueError:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise OLRError(f"Reading the vector labels {path} failed ({last[:200]}); check that it is a CORINE GeoPackage or Shapefile.") from None
    if "error" in reply:
        raise OLRError(reply["error"])
    return reply["layer"]


def _vector_child() -> None:
    """Entry of the child process of `_read_vector_isolated`: request on stdin, JSON reply on stdout."""
    import json
    import sys

    request = json.loads(sys.stdin.read())
    try:
        reply = {"layer": read_vector_layer(request["path"], request["crs"], request["bounds"])}
    except OLRError as e:
        reply = {"error": str(e)}
    except Exception as e:  # noqa: BLE001 - a damaged file: any fiona/GDAL error becomes a sentence
        reply = {"error": f"The vector labels {request['path']} could not be read ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]}); the file is damaged: export or download it again."}
    sys.stdout.write(json.dumps(reply))


def _open_vector_labels(path: Path, image, encoding: str) -> VectorLabels:
    from rasterio.warp import transform_geom

    if encoding == "grid":
        raise OLRError(
            f"The vector labels {path} carry CLC codes in Code_18, not grid codes; use --label-encoding auto or clc."
        )
    layer = _read_vector_isolated(path, image)
    if layer["n_features"] == 0:
        raise _no_overlap(path, image)
    index = {code: i + 1 for i, code in enumerate(label_schemes.ALL_CODES)}
    shapes = []
    for code, geometry in layer["features"]:
        if code in index:
            geom = transform_geom(layer["crs"], image.crs, geometry)
            shapes.append(_Shape(geom, index[code], _geometry_bounds(geom)))
    ib = image.bounds
    if not any(s.bounds[0] <= ib.right and s.bounds[2] >= ib.left and s.bounds[1] <= ib.top and s.bounds[3] >= ib.bottom
               for s in shapes):
        raise OLRError(
            f"The labels {path} hold no valid land-cover class (Code_18 in 111..523) where they overlap the image; "
            "check that this is the CORINE map for this area."
        )
    return VectorLabels(path, image.transform, shapes, layer["crs"], layer["field"])


def open_labels(path: str | os.PathLike, image: rasterio.DatasetReader, encoding: str = "auto") -> LabelSource:
    """Open a CORINE raster or vector as a label source aligned onto `image`'s grid.

    `encoding` is "grid" (values 1..44), "clc" (values 111..523) or "auto" (detected from a
    decimated read of the overlap). Raises OLRError when the file is unreadable, does not
    overlap the image, or holds no valid class there.
    """
    if encoding not in ENCODINGS:
        raise OLRError(f"Unknown label encoding {encoding!r}; use one of {', '.join(ENCODINGS)}.")
    path = Path(path)
    _check_exists(path, "labels")
    if path.suffix.lower() not in VECTOR_SUFFIXES or path.suffix.lower() == ".gpkg":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                src = rasterio.open(path)
        except (RasterioIOError, CPLE_BaseError, UnicodeDecodeError):  # not a raster (or a damaged one): try vector
            src = None
        if src is not None:
            if src.crs is None or src.transform == Affine.identity():
                src.close()
                raise OLRError(
                    f"The labels {path} have no coordinate reference system or geotransform; "
                    "georeference the label map and try again."
                )
            return _open_raster_labels(path, src, image, encoding)
    return _open_vector_labels(path, image, encoding)
