"""What the tiling pass writes: the tile array (`TileWriter`), band statistics (`BandStats`)
and the preview (`PreviewSampler`).

Tiles are (n, h, w, b) in the image's dtype; the preview is an RGBA PNG in EPSG:4326.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
from numpy.lib import format as npy_format
from rasterio.windows import Window

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


def concatenate_tiles(parts: list[tuple[Path, np.ndarray]], out: Path) -> int:
    """Write `out` (.npy) holding, in order, the tiles of each part (`.npy` of (n, h, w, b), all of one
    shape and dtype) where its keep mask (n,) bool is true; returns the count.

    Runs of consecutive kept tiles are copied file to file by the kernel (`os.copy_file_range`, no
    pass through this process's memory), falling back to chunked reads and writes."""
    arrays = [np.load(path, mmap_mode="r") for path, _ in parts]
    n = sum(int(np.count_nonzero(keep)) for _, keep in parts)
    shape, dtype = arrays[0].shape[1:], arrays[0].dtype
    target = npy_format.open_memmap(out, mode="w+", dtype=dtype, shape=(n, *shape))
    header, tile_bytes = target.offset, int(np.prod(shape)) * dtype.itemsize
    del target  # only its header and length are wanted: the tiles are copied in below
    position = 0
    with open(out, "r+b") as dst:
        for array, (_, keep) in zip(arrays, parts, strict=True):
            idx = np.flatnonzero(np.asarray(keep, dtype=bool))
            starts = np.flatnonzero(np.diff(idx, prepend=-2) != 1)
            ends = np.append(starts[1:], len(idx))
            with open(array.filename, "rb") as src:
                for a, b in zip(starts, ends):
                    _copy_range(
                        src.fileno(),
                        array.offset + int(idx[a]) * tile_bytes,
                        dst.fileno(),
                        header + (position + int(a)) * tile_bytes,
                        int(b - a) * tile_bytes,
                    )
            position += len(idx)
    return n


def _copy_range(src: int, src_offset: int, dst: int, dst_offset: int, size: int, chunk: int = 2**26) -> None:
    """Copy `size` bytes between file descriptors at the given offsets."""
    while size > 0:
        try:
            done = os.copy_file_range(src, dst, min(size, chunk), src_offset, dst_offset)
        except (AttributeError, OSError):  # not on this platform or file system: through memory
            done = os.pwrite(dst, os.pread(src, min(size, chunk), src_offset), dst_offset)
        if done <= 0:
            raise OSError(f"copying tiles stopped short ({size} bytes left)")
        src_offset, dst_offset, size = src_offset + done, dst_offset + done, size - done


class BandStats:
    """Per-band mean, std, min, max over any subset of the tiles added, accumulated window by window.

    The sums are kept per tile (4 b + 1 numbers), so the statistics of a subset known only after
    the pass (the training split; tiles dropped later) come without reading the tiles again:
    `to_json(names, rows)`. min/max use every pixel. mean/std use every `row_step`-th pixel row
    of each tile (all rows for tiles up to 16 px; every 4th for 64 px tiles): the same estimate
    to well under 1 % of a std at a quarter of the cost. Sums are taken in float32 over at most
    `chunk` tiles at a time around a per-band shift (the first tile's mean, avoiding
    cancellation in the variance) and kept in float64. Nodata pixels are left out.
    """

    def __init__(self, n_bands: int, row_step: int = 1, chunk: int = 32):
        self.b = n_bands
        self.row_step = max(1, int(row_step))
        self.chunk = chunk
        self.shift: np.ndarray | None = None
        self._parts: list[np.ndarray] = []  # per update, (n, 1 + 4 b) float64: count, sums, squares, min, max

    @classmethod
    def merged(cls, parts: list[tuple[np.ndarray, np.ndarray | None]], row_step: int = 1) -> BandStats:
        """One BandStats over the tiles of several passes, in order: `parts` holds each pass's (`table()`,
        `shift`). Their sums are moved to the first shift: sum(x - s) = sum(x - s_k) + n d and
        sum((x - s)^2) = sum((x - s_k)^2) + 2 d sum(x - s_k) + n d^2, with d = s_k - s."""
        b = (parts[0][0].shape[1] - 1) // 4
        stats = cls(b, row_step)
        stats.shift = next((np.asarray(shift, dtype=np.float64) for _, shift in parts if shift is not None), None)
        tables = []
        for table, shift in parts:
            table = np.array(table, dtype=np.float64).reshape(-1, 1 + 4 * b)
            if shift is not None and stats.shift is not None:
                d, n = np.asarray(shift, dtype=np.float64) - stats.shift, table[:, :1]
                sums = table[:, 1 : 1 + b].copy()
                table[:, 1 : 1 + b] = sums + n * d
                table[:, 1 + b : 1 + 2 * b] += 2 * d * sums + n * d * d
            tables.append(table)
        stats._parts = tables
        return stats

    @property
    def n_tiles(self) -> int:
        """Tiles added so far (the rows `to_json` selects from)."""
        return len(self.table())

    def table(self) -> np.ndarray:
        """(n_tiles, 1 + 4 b) float64 per tile: valid pixels counted, sums and squares around the shift, min, max."""
        if len(self._parts) != 1:
            self._parts = [np.concatenate(self._parts) if self._parts else np.zeros((0, 1 + 4 * self.b))]
        return self._parts[0]

    def update(self, tiles: np.ndarray, nodata: np.ndarray | None = None) -> None:
        """Add (n, h, w, b) tiles, a row each in the order given; `nodata` (n, h, w) bool marks pixels to leave out."""
        n = len(tiles)
        if n == 0:
            return
        dirty = np.zeros(n, dtype=bool) if nodata is None else nodata.reshape(n, -1).any(1)
        if self.shift is None:
            self.shift = self._first_mean(tiles, nodata)
        rows = np.empty((n, 1 + 4 * self.b))
        if dirty.any():
            where = np.flatnonzero(dirty)
            for i in range(0, len(where), self.chunk):  # float64 copies of a few tiles at a time
                part = where[i : i + self.chunk]
                rows[part] = self._masked_rows(tiles[part], ~nodata[part])
            if not dirty.all():
                rows[~dirty] = self._clean_rows(tiles[~dirty])
        else:
            rows[:] = self._clean_rows(tiles)
        self._parts.append(rows)

    def _first_mean(self, tiles: np.ndarray, nodata: np.ndarray | None) -> np.ndarray | None:
        """The per-band mean of the first tile with a valid pixel (the shift), or None if none has one.

        Rounded to a whole number for integer pixels, which then stay exact in the float32 sums (a
        fractional shift would round every difference the same way and bias the mean); to float32
        otherwise, so that the sums subtract exactly the shift `to_json` adds back."""
        for i in range(len(tiles)):
            valid = tiles[i].reshape(-1, self.b) if nodata is None else tiles[i][~nodata[i]]
            if len(valid):
                mean = valid.astype(np.float64).mean(0)
                return np.round(mean) if tiles.dtype.kind in "iub" else mean.astype(np.float32).astype(np.float64)
        return None

    def _clean_rows(self, tiles: np.ndarray) -> np.ndarray:
        """Rows of tiles without nodata."""
        n, h, w, b = tiles.shape
        rows = np.empty((n, 1 + 4 * b))
        rows[:, 1 + 2 * b : 1 + 3 * b] = _per_tile(np.minimum, tiles)
        rows[:, 1 + 3 * b :] = _per_tile(np.maximum, tiles)
        sample = tiles.reshape(n, h, w * b)[:, :: self.row_step]
        rows[:, 0] = sample.shape[1] * w
        shift = np.tile(self.shift.astype(np.float32), w)
        for i in range(0, n, self.chunk):
            f = sample[i : i + self.chunk].astype(np.float32)
            f -= shift
            # einsum sums over a tile's rows with contiguous inner loops (ndarray.sum(1) does not)
            sums, squares = np.einsum("thk->tk", f), np.einsum("thk,thk->tk", f, f)
            rows[i : i + self.chunk, 1 : 1 + b] = sums.reshape(-1, w, b).sum(1, dtype=np.float64)
            rows[i : i + self.chunk, 1 + b : 1 + 2 * b] = squares.reshape(-1, w, b).sum(1, dtype=np.float64)
        return rows

    def _masked_rows(self, tiles: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Rows of a few tiles with nodata pixels (`valid` (n, h, w) bool), in float64."""
        n, b = len(tiles), self.b
        rows = np.empty((n, 1 + 4 * b))
        x = tiles.astype(np.float64)
        keep = valid[..., None]
        rows[:, 1 + 2 * b : 1 + 3 * b] = np.where(keep, x, np.inf).min((1, 2))
        rows[:, 1 + 3 * b :] = np.where(keep, x, -np.inf).max((1, 2))
        sampled = valid[:, :: self.row_step]
        d = np.where(sampled[..., None], x[:, :: self.row_step] - (0.0 if self.shift is None else self.shift), 0.0)
        rows[:, 0] = sampled.sum((1, 2))
        rows[:, 1 : 1 + b] = d.sum((1, 2))
        rows[:, 1 + b : 1 + 2 * b] = (d * d).sum((1, 2))
        return rows

    def to_json(self, names: list[str], rows=None) -> list[dict]:
        """meta.json's "bands": {name, mean, std, min, max} per band over the tiles `rows` (a bool mask or
        indices over the tiles in the order added; None: all). min/max are None without a valid pixel."""
        b = self.b
        table = self.table() if rows is None else self.table()[rows]
        n = max(float(table[:, 0].sum()), 1.0)
        shift = self.shift if self.shift is not None else np.zeros(b)
        mean_d = table[:, 1 : 1 + b].sum(0) / n
        std = np.sqrt(np.maximum(table[:, 1 + b : 1 + 2 * b].sum(0) / n - mean_d**2, 0.0))
        mean = shift + mean_d
        lo = table[:, 1 + 2 * b : 1 + 3 * b].min(0, initial=np.inf)
        hi = table[:, 1 + 3 * b :].max(0, initial=-np.inf)
        finite = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
        return [
            {"name": names[i], "mean": float(mean[i]), "std": float(std[i]), "min": finite(lo[i]), "max": finite(hi[i])}
            for i in range(b)
        ]


def _per_tile(extreme: np.ufunc, tiles: np.ndarray) -> np.ndarray:
    """(n, b) per-tile, per-band `extreme` (np.minimum or np.maximum) of (n, h, w, b) tiles.

    `extreme.reduce` over a tile's pixels runs along them innermost, a few bands apart: slow.
    Folding a tile's k row groups, then halves of the rest, onto one another elementwise keeps
    the inner loops long and contiguous; only an odd number of pixels is reduced per band.
    """
    n, h, b = tiles.shape[0], tiles.shape[1], tiles.shape[3]
    k = max(d for d in range(1, min(h, 16) + 1) if h % d == 0)
    groups = tiles.reshape(n, k, -1)
    out = groups[:, 0].copy()
    for g in range(1, k):
        extreme(out, groups[:, g], out=out)
    while out.shape[1] % (2 * b) == 0:  # halves, while they hold whole pixels
        half = out.shape[1] // 2
        out = extreme(out[:, :half], out[:, half:])
    return extreme.reduce(out.reshape(n, -1, b), axis=1)


# --------------------------------------------------------------------------- nodata pixels of kept tiles

#: How `fill_nodata` fills, as meta.json records it ("nodata_fill").
NODATA_FILL = (
    "nodata pixels of kept tiles (the nodata value, NaN, +-inf) hold the tile's per-band mean over its valid "
    "pixels (rounded for integer images; 0 in a tile without valid pixels)"
)


def fill_nodata(tiles: np.ndarray, nodata: np.ndarray) -> None:
    """Fill, in place, the nodata pixels of (n, h, w, b) `tiles` ((n, h, w) bool `nodata`) by `NODATA_FILL`.

    Afterwards the tiles hold no NaN or inf, so a model never sees one; the fill is the tile's own
    mean so it adds no edge a convolution would learn from. Only tiles with a nodata pixel are touched."""
    dirty = np.flatnonzero(nodata.any(axis=(1, 2)))
    for i in dirty:
        tile, bad = tiles[i], nodata[i]
        valid = tile[~bad].astype(np.float64)  # (m, b)
        mean = valid.mean(0) if len(valid) else np.zeros(tile.shape[-1])
        if tiles.dtype.kind in "iu":
            info = np.iinfo(tiles.dtype)
            mean = np.clip(np.rint(mean), info.min, info.max)
        tile[bad] = mean.astype(tiles.dtype)


# --------------------------------------------------------------------------- preview


class PreviewSampler:
    """Every k-th pixel of the RGB bands of the windows read, then reprojected to lon/lat.

    `rgb` is `rasters.rgb_positions`' choice ({"positions", "bands", "by"}) or the three band positions."""

    def __init__(self, src, rgb: dict | list[int], side: int = PREVIEW_SIDE):
        self.k = max(1, math.ceil(max(src.height, src.width) / side))
        self.choice = dict(rgb) if isinstance(rgb, dict) else {"positions": list(rgb), "by": "given"}
        self.rgb = list(self.choice["positions"])
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

    def rgb_json(self) -> dict:
        """meta.json's "rgb": the preview's bands ("positions" into meta["bands"], "bands" their names, "by" how)."""
        return {k: self.choice[k] for k in ("positions", "bands", "by") if k in self.choice}

    def write(self, path: Path) -> dict:
        """Write an RGBA PNG in EPSG:4326 (percentile-stretched); returns meta["preview"]."""
        from rasterio.warp import Resampling, calculate_default_transform, reproject

        src_transform = self.src.transform * self.src.transform.scale(self.k, self.k)
        h, w = self.valid.shape
        data = np.where(self.valid, self.data, np.nan).astype(np.float32)
        left, top = src_transform @ (0, 0)
        right, bottom = src_transform @ (w, h)
        dst_transform, dw, dh = calculate_default_transform(
            self.src.crs,
            "EPSG:4326",
            w,
            h,
            left=min(left, right),
            bottom=min(top, bottom),
            right=max(left, right),
            top=max(top, bottom),
        )
        scale = max(dw, dh) / PREVIEW_SIDE
        if scale > 1:
            dw, dh = math.ceil(dw / scale), math.ceil(dh / scale)
            dst_transform = dst_transform * dst_transform.scale(scale, scale)
        out = np.full((3, dh, dw), np.nan, dtype=np.float32)
        reproject(
            data,
            out,
            src_transform=src_transform,
            src_crs=self.src.crs,
            src_nodata=np.nan,
            dst_transform=dst_transform,
            dst_crs="EPSG:4326",
            dst_nodata=np.nan,
            resampling=Resampling.nearest,
        )
        ok = np.isfinite(out).all(0)
        rgba = np.zeros((4, dh, dw), dtype=np.uint8)
        for i in range(3):
            v = out[i][ok]
            lo, hi = np.percentile(v, [2, 98]) if v.size else (0.0, 1.0)
            scaled = (np.nan_to_num(out[i]) - lo) / max(hi - lo, 1e-12) * 255
            rgba[i] = np.clip(scaled, 0, 255).astype(np.uint8)
        rgba[3] = ok * 255
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path, "w", driver="PNG", width=dw, height=dh, count=4, dtype="uint8", zlevel=1) as dst:
                dst.write(rgba)
        west, north = dst_transform @ (0, 0)
        east, south = dst_transform @ (dw, dh)
        return {"file": path.name, "bounds_lonlat": [[float(south), float(west)], [float(north), float(east)]]}


def mosaic_previews(previews: list[tuple[Path, list]], path: Path, side: int = PREVIEW_SIDE) -> dict | None:
    """One RGBA PNG in EPSG:4326 of several previews (`PreviewSampler.write`'s files with their
    [[south, west], [north, east]] bounds), at most `side` pixels a side, a later one drawn over an earlier
    where both have pixels; returns its meta["preview"] (None without a preview). Each scene keeps the
    stretch of its own preview."""
    from rasterio.transform import from_bounds
    from rasterio.warp import Resampling, reproject

    previews = [(Path(p), b) for p, b in previews if Path(p).is_file()]
    if not previews:
        return None
    south = min(b[0][0] for _, b in previews)
    west = min(b[0][1] for _, b in previews)
    north = max(b[1][0] for _, b in previews)
    east = max(b[1][1] for _, b in previews)
    scale = max(east - west, north - south) / side
    width, height = max(1, math.ceil((east - west) / scale)), max(1, math.ceil((north - south) / scale))
    transform = from_bounds(west, south, east, north, width, height)
    rgba = np.zeros((4, height, width), dtype=np.uint8)
    for png, ((s, w), (n, e)) in previews:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a PNG has no georeference; its bounds are given
            with rasterio.open(png) as src:
                data = src.read()
        drawn = np.zeros_like(rgba)
        for band in range(4):
            reproject(
                data[band],
                drawn[band],
                src_transform=from_bounds(w, s, e, n, data.shape[2], data.shape[1]),
                src_crs="EPSG:4326",
                dst_transform=transform,
                dst_crs="EPSG:4326",
                resampling=Resampling.nearest,
            )
        seen = drawn[3] > 0
        rgba[:, seen] = drawn[:, seen]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver="PNG", width=width, height=height, count=4, dtype="uint8") as dst:
            dst.write(rgba)
    return {"file": path.name, "bounds_lonlat": [[south, west], [north, east]]}
