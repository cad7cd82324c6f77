"""The tiling pass's reads: the tile grid over the image (`TileGrid`) and its windows read ahead (`read_windows`).

A window is a few tile rows by a bounded number of tile columns, aligned with the raster's
blocks, so memory does not grow with the scene.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from olr.data import rasters

#: Raw pixel bytes of one window; bounds the working memory together with GDAL_CACHEMAX.
WINDOW_BYTES = 32 * 2**20
#: GDAL settings for reading: a bounded block cache (GDAL's default is 5 % of the RAM).
READ_ENV = {"GDAL_CACHEMAX": 128 * 2**20}


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

    def windows(
        self, block_shape: tuple[int, int], bytes_per_pixel: int, budget: int | None = None
    ) -> Iterator[tuple[int, int, int, int]]:
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
    # (n_rows * n_cols, N_CODE_INDEX) pixels per code index, valid pixels only; None without a label source
    counts: np.ndarray | None


def window_ranges(src, bands: list[int], grid: TileGrid, budget: int | None = None) -> list[tuple[int, int, int, int]]:
    """The tile ranges (r0, r1, c0, c1) `read_windows` reads, in its order (`TileGrid.windows` over the
    image's blocks and pixel size); those with one r0 form a strip of whole tile rows."""
    itemsize = np.dtype(src.dtypes[bands[0] - 1]).itemsize
    return list(grid.windows(src.block_shapes[bands[0] - 1], len(bands) * itemsize, budget))


def read_windows(
    src,
    bands: list[int],
    mask: rasters.ImageMask,
    label_source: rasters.LabelSource | None,
    grid: TileGrid,
    lookahead: int = 2,
    budget: int | None = None,
) -> Iterator[WindowData]:
    """The windows of `grid` in order (`window_ranges`; `budget`: raw bytes of a window, default
    `WINDOW_BYTES`), read ahead on two threads (GDAL and numpy release the GIL).

    One thread reads pixels (decoding blocks), another counts labels of the window read
    before, while the caller works on the one before that. Without a label source (an image
    without labels, `olr.analysis.predict`) no labels are counted and `counts` is None.
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
        if label_source is None:
            return None
        exclude = None
        if nodata is not None:
            exclude = np.ascontiguousarray(tiles_view(nodata, n_rows, n_cols, grid.tile, grid.stride))
            exclude = exclude.reshape(-1, grid.tile, grid.tile)
        return label_source.read_counts(window, n_rows, n_cols, grid.tile, grid.stride, exclude)

    specs = iter(window_ranges(src, bands, grid, budget))
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
