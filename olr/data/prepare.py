"""`prepare_dataset(...)`: image raster + CORINE labels -> a tile dataset folder (CLI `prepare`).

The scene is read window by window (a few tile rows by a bounded number of tile columns,
aligned with the raster's blocks), so memory does not grow with the scene. Per window:
one thread decodes the pixels (h, w, b) and finds image nodata, another counts, per tile,
the pixels of each CLC code under valid pixels (`olr.rasters` aligns the labels), and the
caller drops tiles that fail the nodata and label filters, gathers the kept tiles into
`images.npy` (`TileWriter`) and updates the band statistics and the preview; a third
thread hashes the sources meanwhile. Labels, tile table, split and meta are written at the end
(`olr.data.dataset.write_dataset`), inside a staged folder that appears only when complete.

Fractions are over a tile's *labelled* pixels (a valid CLC class under valid image
pixels); scheme fractions = code fractions @ scheme.code_matrix(codes). Tile images are
(N, tile, tile, b) in the image's dtype; the tile grid covers whole tiles only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import errno
import hashlib
import math
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import rasterio
from numpy.lib import format as npy_format
from rasterio.windows import Window

from olr import atomic, workspace
from olr.data import label_schemes
from olr.data import rasters
from olr.data import splits
from olr.data.dataset import write_dataset
from olr.errors import OLRError

Progress = Callable[[int, int, str], None]

MIN_TILE = 8
#: Raw pixel bytes of one window; bounds the working memory together with GDAL_CACHEMAX.
WINDOW_BYTES = 32 * 2**20
#: GDAL settings for reading: a bounded block cache (GDAL's default is 5 % of the RAM).
READ_ENV = {"GDAL_CACHEMAX": 128 * 2**20}
PREVIEW_SIDE = 1024


# --------------------------------------------------------------------------- tiles on disk


class TileWriter:
    """Appends (n, h, w, b) tiles to an `.npy` file whose final length is known only at the end.

    The header is reserved (4096 bytes) and rewritten on `close()` with the real count, so
    the file is a plain `.npy` that `np.load(mmap_mode="r")` opens. The caller gathers tiles
    into `region(n)`, a page-aligned staging buffer, and `commit(k)` writes its first k
    tiles. Writes go around the page cache (O_DIRECT) in 4096-byte multiples where the file
    system allows it: filling the page cache with a large dataset costs as much CPU as
    decoding the image on some machines, and these bytes are not read back soon. A tail of
    less than 4096 bytes waits for the next commit; `close()` writes it normally.
    """

    ALIGN = 4096

    def __init__(self, path: Path, tile_shape: tuple[int, int, int], dtype):
        self.path = Path(path)
        self.tile_shape = tuple(int(x) for x in tile_shape)
        self.dtype = np.dtype(dtype)
        self.tile_bytes = int(np.prod(self.tile_shape)) * self.dtype.itemsize
        self.count = 0
        self.header_len = self.ALIGN
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._direct: int | None = None
        if hasattr(os, "O_DIRECT"):
            with contextlib.suppress(OSError):
                self._direct = os.open(self.path, os.O_WRONLY | os.O_DIRECT)
        self._buffer = np.empty(0, dtype=np.uint8)
        self._carry = 0  # bytes at the start of the buffer not yet on disk
        self._offset = self.header_len  # where those bytes go in the file
        self._pwrite(self._fd, self._header(0), 0)

    def _header(self, n: int) -> bytes:
        d = {"descr": npy_format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (n, *self.tile_shape)}
        text = repr(d).encode("latin1")
        pad = self.header_len - 10 - len(text) - 1
        size = (self.header_len - 10).to_bytes(2, "little")
        return npy_format.MAGIC_PREFIX + b"\x01\x00" + size + text + b" " * pad + b"\n"

    @staticmethod
    def _pwrite(fd: int, data, offset: int) -> None:
        view = memoryview(data).cast("B")
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n

    def _write_at(self, data: np.ndarray, offset: int) -> None:
        """Write `data` (uint8) at `offset`: the one place tile bytes reach the disk."""
        if self._direct is not None and offset % self.ALIGN == 0 and len(data) % self.ALIGN == 0:
            try:
                self._pwrite(self._direct, data, offset)
                return
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                os.close(self._direct)  # no direct I/O here after all: use the page cache
                self._direct = None
        self._pwrite(self._fd, data, offset)

    def region(self, n: int) -> np.ndarray:
        """A writable (n, h, w, b) staging array for the next n tiles."""
        need = self._carry + n * self.tile_bytes
        if len(self._buffer) < need:
            raw = np.empty(need + self.ALIGN, dtype=np.uint8)
            start = (-raw.ctypes.data) % self.ALIGN  # page-aligned, as direct I/O needs
            buffer = raw[start : start + need]
            buffer[: self._carry] = self._buffer[: self._carry]
            self._buffer = buffer
        return self._buffer[self._carry : need].view(self.dtype).reshape(n, *self.tile_shape)

    def commit(self, k: int) -> None:
        """Write the first k tiles of the last region."""
        total = self._carry + int(k) * self.tile_bytes
        ready = total - total % self.ALIGN if self._direct is not None else total
        if ready:
            self._write_at(self._buffer[:ready], self._offset)
            self._offset += ready
        self._carry = total - ready
        self._buffer[: self._carry] = self._buffer[ready:total]  # the short tail moves to the front
        self.count += int(k)

    def append(self, tiles: np.ndarray, chunk: int = 256) -> None:
        """Append (n, h, w, b) tiles of the writer's dtype."""
        for i in range(0, len(tiles), chunk):
            part = tiles[i : i + chunk]
            self.region(len(part))[...] = part
            self.commit(len(part))

    def _flush(self) -> None:
        if self._carry:
            self._pwrite(self._fd, self._buffer[: self._carry], self._offset)
            self._offset += self._carry
            self._carry = 0
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None

    def keep_only(self, keep: np.ndarray, run: int = 256) -> None:
        """Drop tiles in place, keeping those where `keep` (N,) is true, order preserved.

        Kept tiles move forward in runs of consecutive tiles, read and written in chunks
        (a source is never before its destination, so nothing unread is overwritten).
        """
        self._flush()
        idx = np.flatnonzero(np.asarray(keep, dtype=bool))
        starts = np.flatnonzero(np.diff(idx, prepend=-2) != 1)  # first element of each run of consecutive tiles
        ends = np.append(starts[1:], len(idx))
        for a, b in zip(starts, ends):
            for s in range(a, b, run):
                e = min(s + run, b)
                src, dst = int(idx[s]), s
                if src != dst:
                    data = os.pread(self._fd, (e - s) * self.tile_bytes, self.header_len + src * self.tile_bytes)
                    self._pwrite(self._fd, data, self.header_len + dst * self.tile_bytes)
        self.count = len(idx)

    def close(self) -> int:
        """Write what is pending, cut the file to the tiles and write the header with their count."""
        self._flush()
        os.ftruncate(self._fd, self.header_len + self.count * self.tile_bytes)
        self._pwrite(self._fd, self._header(self.count), 0)
        os.close(self._fd)
        self._fd = -1
        return self.count

    def abort(self) -> None:
        for fd in (self._direct, self._fd):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._direct, self._fd = None, -1


class BandStats:
    """Per-band mean, std, min, max over tiles, accumulated window by window.

    min/max use every pixel. mean/std use every `row_step`-th pixel row of each tile (all
    rows for tiles up to 16 px; every 4th for 64 px tiles): the same estimate to well
    under 1 % of a std at a quarter of the cost. Sums are taken in float32 over at most
    `chunk` tiles at a time around a per-band shift (the first tile's mean, avoiding
    cancellation in the variance) and accumulated in float64. Nodata pixels are left out.
    """

    def __init__(self, n_bands: int, row_step: int = 1, chunk: int = 32):
        self.b = n_bands
        self.row_step = max(1, int(row_step))
        self.chunk = chunk
        self.n = 0
        self.shift: np.ndarray | None = None
        self.s = np.zeros(n_bands)
        self.ss = np.zeros(n_bands)
        self.lo = np.full(n_bands, np.inf)
        self.hi = np.full(n_bands, -np.inf)

    def update(self, tiles: np.ndarray, nodata: np.ndarray | None = None) -> None:
        """Add (n, h, w, b) tiles; `nodata` (n, h, w) bool marks pixels to leave out."""
        n = len(tiles)
        if n == 0:
            return
        step = self.row_step
        if nodata is not None:
            dirty = nodata.reshape(n, -1).any(1)
            if dirty.any():
                t, m = tiles[dirty], ~nodata[dirty]
                valid = t[m]  # (M, b)
                if len(valid):
                    self.lo = np.minimum(self.lo, valid.min(0))
                    self.hi = np.maximum(self.hi, valid.max(0))
                    self._add_pixels(t[:, ::step][m[:, ::step]].astype(np.float64))
                tiles = tiles[~dirty]
                n = len(tiles)
                if n == 0:
                    return
        if self.shift is None:
            self.shift = tiles[0].reshape(-1, self.b).astype(np.float64).mean(0)
        x = tiles.reshape(n, -1)
        self.lo = np.minimum(self.lo, x.min(0).reshape(-1, self.b).min(0))
        self.hi = np.maximum(self.hi, x.max(0).reshape(-1, self.b).max(0))
        sample = tiles[:, ::step].reshape(n, -1) if step > 1 else x
        shift = np.tile(self.shift.astype(np.float32), sample.shape[1] // self.b)
        for i in range(0, n, self.chunk):
            f = sample[i : i + self.chunk].astype(np.float32)
            f -= shift
            self.s += f.sum(0).reshape(-1, self.b).sum(0, dtype=np.float64)
            self.ss += np.einsum("ij,ij->j", f, f).reshape(-1, self.b).sum(0, dtype=np.float64)
        self.n += n * (sample.shape[1] // self.b)

    def _add_pixels(self, v: np.ndarray) -> None:
        """Add (M, b) float64 pixels to the sums (not to min/max)."""
        if len(v) == 0:
            return
        if self.shift is None:
            self.shift = v.mean(0)
        d = v - self.shift
        self.s += d.sum(0)
        self.ss += (d * d).sum(0)
        self.n += len(v)

    def to_json(self, names: list[str]) -> list[dict]:
        n = max(self.n, 1)
        shift = self.shift if self.shift is not None else np.zeros(self.b)
        mean_d = self.s / n
        std = np.sqrt(np.maximum(self.ss / n - mean_d**2, 0.0))
        mean = shift + mean_d
        finite = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
        return [
            {"name": names[i], "mean": float(mean[i]), "std": float(std[i]),
             "min": finite(self.lo[i]), "max": finite(self.hi[i])}
            for i in range(self.b)
        ]


# --------------------------------------------------------------------------- the tile grid


@dataclass(frozen=True)
class TileGrid:
    """Tiles of `tile` x `tile` pixels every `stride` pixels over a (height, width) image.

    Only whole tiles: the last (height - tile) % stride rows (and columns) are not covered.
    """

    height: int
    width: int
    tile: int
    stride: int

    @property
    def rows(self) -> int:
        return (self.height - self.tile) // self.stride + 1

    @property
    def cols(self) -> int:
        return (self.width - self.tile) // self.stride + 1

    @property
    def n_tiles(self) -> int:
        return self.rows * self.cols

    def pixel_window(self, r0: int, r1: int, c0: int, c1: int) -> Window:
        """The pixel window covering tile rows r0..r1-1 and tile columns c0..c1-1."""
        s, t = self.stride, self.tile
        return Window(c0 * s, r0 * s, (c1 - c0 - 1) * s + t, (r1 - r0 - 1) * s + t)

    def windows(self, block_shape: tuple[int, int], bytes_per_pixel: int,
                budget: int | None = None) -> Iterator[tuple[int, int, int, int]]:
        """Tile ranges (r0, r1, c0, c1) of the reading windows, row by row.

        A window is a few tile rows high (about one raster block, at least 256 pixels)
        and as many tile columns wide as fit in `budget` bytes; where the stride divides
        the raster's block size, windows start on block edges so no block is decoded twice.
        """
        s = self.stride
        budget = WINDOW_BYTES if budget is None else budget
        block_h, block_w = (max(1, int(x)) for x in block_shape)
        target_h = block_h if block_h >= 256 else math.ceil(256 / block_h) * block_h
        kr = max(1, round(target_h / s))
        kc = max(1, budget // max(1, kr * s * s * bytes_per_pixel))
        if block_w % s == 0 and block_w < self.width and kc * s >= block_w:
            per_block = block_w // s
            kc = (kc // per_block) * per_block
        kr, kc = min(kr, self.rows), min(kc, self.cols)
        for r0 in range(0, self.rows, kr):
            for c0 in range(0, self.cols, kc):
                yield r0, min(r0 + kr, self.rows), c0, min(c0 + kc, self.cols)


tiles_view = rasters.tiles_view


@dataclass
class WindowData:
    """One reading window: its tiles' pixels, image-nodata mask and label counts."""

    r0: int  # first tile row
    c0: int  # first tile column
    n_rows: int
    n_cols: int
    window: Window  # pixel window
    pixels: np.ndarray  # (h, w, b), image dtype; reused after the consumer moves on
    nodata: np.ndarray | None  # (h, w) bool, None when every pixel is valid
    counts: np.ndarray  # (n_rows * n_cols, N_CODE_INDEX) pixels per code index, valid pixels only


def read_windows(src, bands: list[int], mask: rasters.ImageMask, label_source: rasters.LabelSource,
                 grid: TileGrid, lookahead: int = 2) -> Iterator[WindowData]:
    """The windows of `grid` in order, read ahead on two threads (GDAL and numpy release the GIL).

    One thread reads pixels (decoding blocks), another counts labels of the window read
    before, while the caller works on the one before that.
    """
    dtype = np.dtype(src.dtypes[bands[0] - 1])
    b = len(bands)
    buffers: dict[tuple, list] = {}
    uses: dict[tuple, int] = {}

    def buffer_for(shape):  # lookahead + 1 windows are alive at once
        pool = buffers.setdefault(shape, [])
        i = uses[shape] = uses.get(shape, -1) + 1
        if len(pool) < lookahead + 1:
            pool.append(np.empty(shape, dtype=dtype))
        return pool[i % (lookahead + 1)]

    def read_pixels(window: Window, pixels: np.ndarray):
        # GDAL fills the pixel-interleaved buffer directly (a (b, h, w) view of (h, w, b)).
        src.read(bands, window=window, out=pixels.transpose(2, 0, 1))
        nodata = mask.pixels(src, window, pixels)
        return nodata if nodata is not None and nodata.any() else None

    def count_labels(window: Window, n_rows: int, n_cols: int, pixels_read: concurrent.futures.Future):
        nodata = pixels_read.result()
        exclude = None
        if nodata is not None:
            exclude = np.ascontiguousarray(tiles_view(nodata, n_rows, n_cols, grid.tile, grid.stride))
            exclude = exclude.reshape(-1, grid.tile, grid.tile)
        return label_source.read_counts(window, n_rows, n_cols, grid.tile, grid.stride, exclude)

    specs = iter(grid.windows(src.block_shapes[bands[0] - 1], b * dtype.itemsize))
    reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="olr-pixels")
    counter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="olr-labels")
    queue: list = []

    def submit() -> None:
        spec = next(specs, None)
        if spec is None:
            return
        r0, r1, c0, c1 = spec
        window = grid.pixel_window(r0, r1, c0, c1)
        pixels = buffer_for((int(window.height), int(window.width), b))
        pixels_read = reader.submit(read_pixels, window, pixels)
        labels_counted = counter.submit(count_labels, window, r1 - r0, c1 - c0, pixels_read)
        queue.append((r0, c0, r1 - r0, c1 - c0, window, pixels, pixels_read, labels_counted))

    try:
        for _ in range(lookahead + 1):
            submit()
        while queue:
            r0, c0, n_rows, n_cols, window, pixels, pixels_read, labels_counted = queue.pop(0)
            nodata = pixels_read.result()
            counts = labels_counted.result()
            yield WindowData(r0, c0, n_rows, n_cols, window, pixels, nodata, counts)
            submit()  # the caller is done with this window: its buffer may be reused
    finally:
        for pool in (reader, counter):
            pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- preview


class PreviewSampler:
    """Every k-th pixel of the RGB bands of the windows read, then reprojected to lon/lat."""

    def __init__(self, src, band_positions: list[int], side: int = PREVIEW_SIDE):
        self.k = max(1, math.ceil(max(src.height, src.width) / side))
        self.rgb = band_positions
        self.src = src
        h, w = math.ceil(src.height / self.k), math.ceil(src.width / self.k)
        self.data = np.zeros((3, h, w), dtype=np.float32)
        self.valid = np.zeros((h, w), dtype=bool)

    def update(self, window: Window, pixels: np.ndarray, nodata: np.ndarray | None) -> None:
        k = self.k
        r0, c0 = int(window.row_off), int(window.col_off)
        fr, fc = -(-r0 // k) * k - r0, -(-c0 // k) * k - c0  # first sampled row/col inside
        sample = pixels[fr::k, fc::k]
        if sample.size == 0:
            return
        pr, pc = (r0 + fr) // k, (c0 + fc) // k
        h, w = sample.shape[:2]
        for i, band in enumerate(self.rgb):
            self.data[i, pr : pr + h, pc : pc + w] = sample[..., band]
        ok = np.ones((h, w), dtype=bool) if nodata is None else ~nodata[fr::k, fc::k]
        if pixels.dtype.kind == "f":
            ok &= np.isfinite(sample[..., self.rgb]).all(-1)
        self.valid[pr : pr + h, pc : pc + w] = ok

    def write(self, path: Path) -> dict:
        """Write an RGBA PNG in EPSG:4326 (percentile-stretched); returns meta["preview"]."""
        from rasterio.warp import Resampling, calculate_default_transform, reproject

        src_transform = self.src.transform * self.src.transform.scale(self.k, self.k)
        h, w = self.valid.shape
        data = np.where(self.valid, self.data, np.nan).astype(np.float32)
        left, top = src_transform * (0, 0)
        right, bottom = src_transform * (w, h)
        dst_transform, dw, dh = calculate_default_transform(
            self.src.crs, "EPSG:4326", w, h, left=min(left, right), bottom=min(top, bottom),
            right=max(left, right), top=max(top, bottom))
        scale = max(dw, dh) / PREVIEW_SIDE
        if scale > 1:
            dw, dh = math.ceil(dw / scale), math.ceil(dh / scale)
            dst_transform = dst_transform * dst_transform.scale(scale, scale)
        out = np.full((3, dh, dw), np.nan, dtype=np.float32)
        reproject(data, out, src_transform=src_transform, src_crs=self.src.crs, src_nodata=np.nan,
                  dst_transform=dst_transform, dst_crs="EPSG:4326", dst_nodata=np.nan, resampling=Resampling.nearest)
        ok = np.isfinite(out).all(0)
        rgba = np.zeros((4, dh, dw), dtype=np.uint8)
        for i in range(3):
            v = out[i][ok]
            lo, hi = (np.percentile(v, [2, 98]) if v.size else (0.0, 1.0))
            scaled = (np.nan_to_num(out[i]) - lo) / max(hi - lo, 1e-12) * 255
            rgba[i] = np.clip(scaled, 0, 255).astype(np.uint8)
        rgba[3] = ok * 255
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path, "w", driver="PNG", width=dw, height=dh, count=4, dtype="uint8", zlevel=1) as dst:
                dst.write(rgba)
        west, north = dst_transform * (0, 0)
        east, south = dst_transform * (dw, dh)
        return {"file": path.name, "bounds_lonlat": [[float(south), float(west)], [float(north), float(east)]]}


# --------------------------------------------------------------------------- helpers


def file_digest(path: str | os.PathLike, stop: threading.Event | None = None) -> dict | None:
    """{path, size, sha256} of a file, streamed through one reused buffer; None once `stop` is set."""
    path = Path(path)
    h = hashlib.sha256()
    buf = bytearray(2**20)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            if stop is not None and stop.is_set():
                return None
            h.update(view[:n])
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": h.hexdigest()}


def _crs_json(crs) -> dict:
    return {"wkt": crs.to_wkt(), "epsg": crs.to_epsg()}


def _tile_bounds(transform, rows: np.ndarray, cols: np.ndarray, tile: int, crs) -> dict[str, np.ndarray]:
    """Bounds of tiles (pixel offsets rows, cols) in the image CRS and in lon/lat."""
    from rasterio.warp import transform as transform_points

    corners_c = np.stack([cols, cols + tile, cols, cols + tile], 1).astype(np.float64)
    corners_r = np.stack([rows, rows, rows + tile, rows + tile], 1).astype(np.float64)
    a, b, c, d, e, f = transform[:6]
    x = a * corners_c + b * corners_r + c
    y = d * corners_c + e * corners_r + f
    out = {"x_min": x.min(1), "y_min": y.min(1), "x_max": x.max(1), "y_max": y.max(1)}
    if len(x):
        lon, lat = transform_points(crs, "EPSG:4326", x.ravel().tolist(), y.ravel().tolist())
        lon, lat = np.asarray(lon).reshape(x.shape), np.asarray(lat).reshape(x.shape)
    else:
        lon = lat = np.zeros((0, 4))
    out.update(lon_min=lon.min(1), lat_min=lat.min(1), lon_max=lon.max(1), lat_max=lat.max(1))
    return out


def _check_parameters(tile, stride, min_fraction, min_labels, max_nodata, prune_below, split_block) -> None:
    def bad(what, value, fix):
        raise OLRError(f"The {what} {value!r} is not valid; {fix}.")

    if not isinstance(tile, (int, np.integer)) or tile < MIN_TILE:
        bad("tile size", tile, f"use a whole number of pixels, at least {MIN_TILE}")
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        bad("stride", stride, "use a whole number of pixels, at least 1")
    if not 0 < float(min_fraction) <= 1:
        bad("min fraction", min_fraction, "use a number above 0 and at most 1 (e.g. 0.05)")
    if int(min_labels) < 0:
        bad("min labels", min_labels, "use 0 or more")
    if not 0 <= float(max_nodata) <= 1:
        bad("max nodata share", max_nodata, "use a number from 0 to 1 (e.g. 0.1)")
    if int(prune_below) < 0:
        bad("prune threshold", prune_below, "use 0 (no pruning) or more tiles")
    if not isinstance(split_block, (int, np.integer)) or split_block < 1:
        bad("split block size", split_block, "use a whole number of tiles, at least 1")


def _label_fractions(code_fractions: np.ndarray, code_matrix: np.ndarray) -> np.ndarray:
    """(n, L) = (n, C) @ (C, L), without BLAS: these products are small, and OpenBLAS's worker
    threads spin between calls, burning a core the tiling threads need."""
    return np.einsum("ij,jk->ik", code_fractions, code_matrix)


def _rgb_positions(names: list[str]) -> list[int]:
    if all(c in names for c in ("red", "green", "blue")):
        return [names.index(c) for c in ("red", "green", "blue")]
    return [0, 1, 2] if len(names) >= 3 else [0, 0, 0]


# --------------------------------------------------------------------------- the preparer


@dataclass
class _Kept:
    """What the streaming pass keeps per tile (small: a few numbers per tile)."""

    tile_row: list
    tile_col: list
    nodata_share: list
    unlabelled_share: list
    code_fractions: list  # of (n, 44) float32


def prepare_dataset(
    image: str | os.PathLike,
    labels: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tile: int = 64,
    stride: int | None = None,
    scheme: "str | dict | os.PathLike" = "level3",
    min_fraction: float = 0.05,
    min_labels: int = 1,
    max_nodata: float = 0.1,
    prune_below: int = 0,
    split_block: int = 8,
    split_fractions=(0.7, 0.15, 0.15),
    seed: int = 0,
    label_encoding: str = "auto",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Tile `image` with CORINE `labels` into the dataset folder `out`; returns `out`.

    image: GeoTIFF (any CRS, b bands, any dtype) defining the grid. labels: CORINE raster
    (grid or CLC codes, any CRS/resolution) or vector with `Code_18`. Produces tiles
    (N, tile, tile, b) of the image dtype, fractions (N, L) float32 per scheme label over
    each tile's labelled pixels, and the rest of the format of `olr.data`. Tiles with a
    nodata share above `max_nodata` or fewer than `min_labels` labels with fraction >=
    `min_fraction` are dropped; labels present in fewer than `prune_below` tiles too.
    Raises OLRError for bad input; nothing is left behind on failure.
    """
    stride = tile if stride is None else stride
    parameters = {
        "image": str(image), "labels": str(labels), "out": str(out), "tile": tile, "stride": stride,
        "scheme": scheme if isinstance(scheme, dict) else str(scheme), "min_fraction": min_fraction,
        "min_labels": min_labels, "max_nodata": max_nodata, "prune_below": prune_below,
        "split_block": split_block, "split_fractions": list(split_fractions), "seed": seed,
        "label_encoding": label_encoding, "overwrite": overwrite,
    }
    workspace.require_writable("prepare a dataset")
    scheme_obj = label_schemes.get_scheme(scheme)
    _check_parameters(tile, stride, min_fraction, min_labels, max_nodata, prune_below, split_block)
    split_fractions = splits.check_fractions(split_fractions)
    out = Path(out)
    progress = progress or (lambda done, total, message: None)

    with contextlib.ExitStack() as stack:
        stack.enter_context(rasters.read_errors_named(image, labels))  # outermost: sees every read
        stack.enter_context(rasterio.Env(**READ_ENV))
        src = stack.enter_context(rasters.open_image(image))
        if tile > min(src.height, src.width):
            raise OLRError(
                f"The tile size {tile} is larger than the image {image} ({src.width} x {src.height} pixels); "
                "use a smaller --tile."
            )
        label_source = stack.enter_context(rasters.open_labels(labels, src, label_encoding))
        if out.exists() and not overwrite:
            raise OLRError(f"{out} already exists; choose another name or pass --overwrite to replace it.")
        # Hash the sources on a side thread (hashlib releases the GIL) while tiling; on
        # failure, stop it rather than wait for it.
        hasher = stack.enter_context(concurrent.futures.ThreadPoolExecutor(1))
        stop = threading.Event()
        stack.callback(stop.set)
        digests = {key: hasher.submit(file_digest, path, stop) for key, path in (("image", image), ("labels", labels))}
        extra = lambda: {  # noqa: E731 - resolved at the end, once the hashes are done
            "name": out.name,
            "sources": {k: dict(f.result(), **(label_source.describe() if k == "labels" else {}))
                        for k, f in digests.items()},
            "label_encoding": label_source.encoding,
            "parameters": parameters,
        }
        with atomic.staged_folder(out, overwrite) as folder:
            _build(src, label_source, folder, scheme_obj, tile=tile, stride=stride, min_fraction=min_fraction,
                   min_labels=min_labels, max_nodata=max_nodata, prune_below=prune_below, split_block=split_block,
                   split_fractions=split_fractions, seed=seed, progress=progress, extra_meta=extra)
    return out


def _build(src, label_source, folder: Path, scheme: label_schemes.Scheme, *, tile, stride, min_fraction, min_labels, max_nodata,
           prune_below, split_block, split_fractions, seed, progress: Progress, extra_meta: Callable[[], dict]) -> None:
    bands = rasters.image_bands(src)
    names = rasters.band_names(src, bands)
    dtype = np.dtype(src.dtypes[bands[0] - 1])
    b = len(bands)
    grid = TileGrid(src.height, src.width, tile, stride)
    mask = rasters.ImageMask.of(src, bands)
    code_matrix = scheme.code_matrix(label_schemes.ALL_CODES)  # (44, L_all)
    writer = TileWriter(folder / "images.npy", (tile, tile, b), dtype)
    stats = BandStats(b, row_step=tile // 16)
    preview = PreviewSampler(src, _rgb_positions(names))
    kept = _Kept([], [], [], [], [])
    dropped = {"nodata": 0, "too_few_labels": 0, "too_few_labels_after_pruning": 0}
    labelled_pixels = 0
    done = 0
    area = float(tile * tile)
    progress(0, grid.n_tiles, "tiling")
    try:
        with contextlib.closing(read_windows(src, bands, mask, label_source, grid)) as windows:
            for win in windows:
                nr, nc = win.n_rows, win.n_cols
                counts = win.counts
                labelled = counts[:, 1:].sum(1)
                labelled_pixels += int(labelled.sum())
                code_fractions = (counts[:, 1:] / np.maximum(labelled, 1)[:, None]).astype(np.float32)
                n_present = (_label_fractions(code_fractions, code_matrix) >= min_fraction).sum(1)
                tile_nodata = None
                nodata_share = np.zeros(nr * nc)
                if win.nodata is not None:
                    tile_nodata = tiles_view(win.nodata, nr, nc, tile, stride).reshape(nr * nc, tile, tile)
                    nodata_share = tile_nodata.reshape(nr * nc, -1).sum(1) / area
                ok_nodata = nodata_share <= max_nodata
                keep = ok_nodata & (n_present >= min_labels)
                dropped["nodata"] += int((~ok_nodata).sum())
                dropped["too_few_labels"] += int((ok_nodata & ~keep).sum())

                # Gather the window's tiles into the writer's buffer, close the gaps of dropped tiles.
                out = writer.region(nr * nc)
                np.copyto(out.reshape(nr, nc, tile, tile, b), tiles_view(win.pixels, nr, nc, tile, stride))
                k = int(keep.sum())
                if k < nr * nc:
                    out[:k] = out[keep]
                stats.update(out[:k], None if tile_nodata is None else tile_nodata[keep])
                writer.commit(k)
                preview.update(win.window, win.pixels, win.nodata)

                rr, cc = np.divmod(np.flatnonzero(keep), nc)
                kept.tile_row.append(rr + win.r0)
                kept.tile_col.append(cc + win.c0)
                kept.nodata_share.append(nodata_share[keep])
                kept.unlabelled_share.append(counts[keep, 0] / area)
                kept.code_fractions.append(code_fractions[keep])
                done += nr * nc
                progress(done, grid.n_tiles, f"tiling ({writer.count} kept)")
        if labelled_pixels == 0:
            raise OLRError(
                f"The labels {label_source.path} hold no valid land-cover class on the image's tiles; "
                "check that the label map covers the image and uses CORINE codes."
            )
        code_fractions = np.concatenate(kept.code_fractions)
        label_fractions = _label_fractions(code_fractions, code_matrix)
        present = label_fractions >= min_fraction
        # Labels that occur at all and survive pruning; pruning may leave tiles with too few
        # labels, which go too (repeat until stable: dropping tiles can prune more labels).
        tile_keep = np.ones(len(code_fractions), dtype=bool)
        while True:
            counts_per_label = present[tile_keep].sum(0)
            label_keep = (counts_per_label > 0) & (counts_per_label >= prune_below)
            new_keep = tile_keep & (present[:, label_keep].sum(1) >= min_labels)
            if (new_keep == tile_keep).all():
                break
            tile_keep = new_keep
        dropped["too_few_labels_after_pruning"] = int((~tile_keep).sum())
        if not tile_keep.all():
            writer.keep_only(tile_keep)
        n = writer.close()
    except BaseException:
        writer.abort()
        raise
    if n == 0:
        raise OLRError(
            f"No tile of {src.name} was kept ({dropped['nodata']} had too much nodata, "
            f"{dropped['too_few_labels'] + dropped['too_few_labels_after_pruning']} too few labels); "
            "lower --min-labels, --min-fraction or --prune-below, or raise --max-nodata."
        )

    occurring = counts_per_label > 0
    labels = [lab for lab, k in zip(scheme.labels, label_keep) if k]
    code_fractions = code_fractions[tile_keep]
    present_codes = code_fractions.max(0) > 0
    codes = [c for c, k in zip(label_schemes.ALL_CODES, present_codes) if k]
    fractions = label_fractions[tile_keep][:, label_keep]

    tile_row = np.concatenate(kept.tile_row)[tile_keep]
    tile_col = np.concatenate(kept.tile_col)[tile_keep]
    row_off, col_off = tile_row * stride, tile_col * stride
    block_id = splits.spatial_blocks(tile_row, tile_col, split_block)
    split = splits.assign_blocks(block_id, split_fractions, seed)
    table = pd.DataFrame({
        "tile_id": np.arange(n, dtype=np.int64),
        "row_off": row_off.astype(np.int64),
        "col_off": col_off.astype(np.int64),
        "tile_row": tile_row.astype(np.int64),
        "tile_col": tile_col.astype(np.int64),
        "split": split.astype(str),
        "block_id": block_id,
        "nodata_share": np.concatenate(kept.nodata_share)[tile_keep].astype(np.float32),
        "unlabelled_share": np.concatenate(kept.unlabelled_share)[tile_keep].astype(np.float32),
        **_tile_bounds(src.transform, row_off, col_off, tile, src.crs),
    })
    progress(grid.n_tiles, grid.n_tiles, f"writing labels, tile table and preview ({n} tiles)")
    band_json = stats.to_json(names) if tile_keep.all() else [{"name": nm} for nm in names]
    meta = {
        "kind": "raster",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "crs": _crs_json(src.crs),
        "resolution": [float(src.res[0]), float(src.res[1])],
        "width": src.width,
        "height": src.height,
        "transform": list(src.transform)[:6],
        "tile": tile,
        "stride": stride,
        "tile_grid": {"rows": grid.rows, "cols": grid.cols, "tiles": grid.n_tiles},
        "scheme": {
            **scheme.to_json(),
            "n_labels": len(scheme.labels),
            "dropped_codes": list(scheme.dropped_codes),
            "absent": [lab.name for lab, k in zip(scheme.labels, occurring) if not k],
        },
        "labels": [lab.to_json() for lab in labels],
        "code_fractions": {"codes": codes},
        "bands": band_json,
        "dtype": dtype.name,
        "nodata": src.nodata,
        "min_labels": int(min_labels),
        "max_nodata": float(max_nodata),
        "prune_below": int(prune_below),
        "pruned": [lab.name for lab, o, k in zip(scheme.labels, occurring, label_keep) if o and not k],
        "split": {
            "method": "spatial_blocks",
            "block": int(split_block),
            "fractions": list(split_fractions),
            "seed": int(seed),
            "counts": splits.split_counts(split),
        },
        "dropped": dropped,
        "preview": preview.write(folder / "preview.png"),
        **extra_meta(),
    }
    write_dataset(folder, images=None, fractions=fractions, tiles=table, meta=meta, min_fraction=min_fraction,
                  code_fractions=code_fractions[:, present_codes])


# --------------------------------------------------------------------------- CLI


def output_folder(value: str) -> Path:
    """`data/NAME` (or `NAME`) -> the dataset folder in the workspace; NAME is validated."""
    text = str(value)
    name = text[len("data/"):] if text.startswith("data/") else text
    return workspace.dataset_path(name)


def cli_progress(stream=sys.stderr) -> Progress:
    """A progress callback printing tile counts: in place on a terminal, every ~10 % otherwise."""
    tty = stream.isatty()
    last = [-1]

    def report(done: int, total: int, message: str) -> None:
        pct = int(100 * done / total) if total else 100
        if tty:
            end = "\n" if done >= total else ""
            print(f"\r{message}: {done}/{total} tiles ({pct}%)", end=end, file=stream, flush=True)
        elif pct // 10 != last[0] or done >= total:
            last[0] = pct // 10
            print(f"{message}: {done}/{total} tiles ({pct}%)", file=stream, flush=True)

    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="image raster (GeoTIFF, any CRS, 1..N bands)")
    parser.add_argument("--labels", required=True, help="CORINE raster (grid or CLC codes) or vector with Code_18")
    parser.add_argument("--out", required=True, metavar="data/NAME", help="dataset folder in the workspace")
    parser.add_argument("--tile", type=int, default=64, help="tile size in pixels (default 64)")
    parser.add_argument("--stride", type=int, default=None,
                        help="step between tiles in pixels (default: the tile size)")
    parser.add_argument("--scheme", default="level3",
                        help=f"label scheme: {', '.join(label_schemes.SCHEME_NAMES)} or a JSON mapping file (default level3)")
    parser.add_argument("--min-fraction", type=float, default=0.05,
                        help="area fraction for a label to count as present")
    parser.add_argument("--min-labels", type=int, default=1, help="drop tiles with fewer present labels")
    parser.add_argument("--max-nodata", type=float, default=0.1, help="drop tiles with a larger image-nodata share")
    parser.add_argument("--prune-below", type=int, default=0, help="drop labels present in fewer tiles")
    parser.add_argument("--split-block", type=int, default=8, help="side of the square split blocks, in tiles")
    parser.add_argument("--split-fractions", type=float, nargs=3, default=(0.7, 0.15, 0.15),
                        metavar=("TRAIN", "VAL", "TEST"), help="target share of tiles per split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the block split")
    parser.add_argument("--label-encoding", choices=rasters.ENCODINGS, default="auto",
                        help="label raster values: grid codes 1..44, CLC codes 111..523, or auto-detect")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset of that name")


def run(args: argparse.Namespace) -> int:
    out = output_folder(args.out)
    path = prepare_dataset(
        args.image, args.labels, out, tile=args.tile, stride=args.stride, scheme=args.scheme,
        min_fraction=args.min_fraction, min_labels=args.min_labels, max_nodata=args.max_nodata,
        prune_below=args.prune_below, split_block=args.split_block, split_fractions=tuple(args.split_fractions),
        seed=args.seed, label_encoding=args.label_encoding, overwrite=args.overwrite, progress=cli_progress(),
    )
    from olr.data.dataset import load_dataset

    ds = load_dataset(path)
    print(f"prepared {path}: {ds.n_tiles} tiles of {ds.tile_shape}, {len(ds.meta['labels'])} labels, "
          f"split {ds.meta['split_counts']}, dropped {ds.meta['dropped']}")
    return 0
