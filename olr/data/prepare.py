"""`prepare_dataset(...)`: image raster + land-cover labels -> a tile dataset folder (CLI `prepare`).

The scene is read window by window (`olr.data.tile_reader`: a few tile rows by a bounded
number of tile columns, aligned with the raster's blocks), so memory does not grow with the
scene. Per window: one thread decodes the pixels (h, w, b) and finds image nodata, another
counts, per tile, the pixels of each class code under valid pixels (`olr.data.rasters` aligns
the labels: CORINE codes, or any map's values through a legend, `olr.data.legends`), and the
caller drops tiles that fail the nodata and label filters, gathers the kept tiles into
`images.npy` and updates the band statistics and the preview (`olr.data.tile_writer`); a
third thread hashes the sources meanwhile. Labels, tile table, split and meta are written at
the end (`olr.data.dataset.write_dataset`), inside a staged folder that appears only when
complete. The options are one `PrepareOptions` (`olr.data.prepare_options`), which also
makes the CLI flags.

The split is decided before `images.npy` is closed, so its compaction drops the tiles the
split leaves out: whole blocks go to one split, then validation and test tiles that share
pixels with (stride < tile) or lie within `split_buffer` tile widths of another split are
dropped (`splits.separate_splits`). Band statistics are those of the training tiles, from the
pass's per-tile sums (no second read); thin data is said in meta["warnings"]
(`olr.data.thin_data`).

Fractions are over a tile's *labelled* pixels (a class under valid image pixels; a value
that the encoding or legend does not cover fails the preparation); scheme fractions = code
fractions @ scheme.code_matrix(codes). Tile images are (N, tile, tile, b) in the image's
dtype; the tile grid covers whole tiles only."""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

from olr import atomic, workspace
from olr.data import label_schemes, legends, prepare_estimate, prepare_options, rasters, splits
from olr.data.dataset import load_dataset, presence_from_fractions, write_dataset
from olr.data.prepare_options import PrepareOptions
from olr.data.thin_data import Advice, print_warnings, thin_data_warnings
from olr.data.tile_reader import READ_ENV, TileGrid, read_windows, tiles_view
from olr.data.tile_writer import NODATA_FILL, BandStats, PreviewSampler, TileWriter, fill_nodata
from olr.errors import OLRError

Progress = Callable[[int, int, str], None]
#: How the thin-data warnings of a preparation end (`olr.data.thin_data`): the flags that help.
THIN_DATA_ADVICE = Advice(
    tiles="a smaller --tile, a larger share in --split-fractions or a larger scene gives more",
    blocks="a smaller --split-block gives more",
    labels="another --seed, a coarser --scheme or --prune-below avoids it",
    separated="a larger --split-block or --stride, or a smaller --split-buffer, drops fewer",
)

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


def tile_bounds(transform, rows: np.ndarray, cols: np.ndarray, tile: int, crs) -> dict[str, np.ndarray]:
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


def _label_fractions(code_fractions: np.ndarray, code_matrix: np.ndarray) -> np.ndarray:
    """(n, L) = (n, C) @ (C, L), without BLAS: these products are small, and OpenBLAS's worker
    threads spin between calls, burning a core the tiling threads need."""
    return np.einsum("ij,jk->ik", code_fractions, code_matrix)


def _image_paths(image) -> list:
    """The image as a list of paths: one image raster, or several band files stacked (`rasters.band_stack`)."""
    return [image] if isinstance(image, (str, os.PathLike)) else list(image)


def _image_source_keys(image_paths: list) -> list[tuple[str, object]]:
    """(meta["sources"] key, path) of the image files: "image", or "image_1".."image_n" for band files."""
    if len(image_paths) == 1:
        return [("image", image_paths[0])]
    return [(f"image_{k + 1}", p) for k, p in enumerate(image_paths)]


def _image_meta(src, mask: rasters.ImageMask, scaling: list, band_json: list[dict], preview: PreviewSampler) -> dict:
    """What meta.json says about the image: nodata rule and fill, finiteness, scales, RGB bands, band files."""
    meta = {
        "nodata": mask.describe(),
        "nodata_fill": NODATA_FILL,
        "finite": True,  # NaN and +-inf are nodata, and kept tiles have their nodata pixels filled
        "bands": [dict(b, scale=s, offset=o) for b, (s, o) in zip(band_json, scaling, strict=True)],
        "rgb": preview.rgb_json(),
    }
    if isinstance(src, rasters.BandStack):
        meta["band_stack"] = src.describe()
    return meta


# --------------------------------------------------------------------------- the preparer


@dataclass
class _Kept:
    """What the streaming pass keeps per tile (small: a few numbers per tile)."""

    tile_row: list
    tile_col: list
    nodata_share: list
    unlabelled_share: list
    code_fractions: list  # of (n, C) float32


def prepare_dataset(
    image: str | os.PathLike,
    labels: str | os.PathLike,
    out: str | os.PathLike,
    options: PrepareOptions | None = None,
    *,
    progress: Progress | None = None,
    **settings,
) -> Path:
    """Tile `image` with CORINE `labels` into the dataset folder `out`; returns `out`.

    image: GeoTIFF (any CRS, b bands, any dtype) defining the grid, or a list of band files
    stacked onto one grid (`rasters.band_stack`). labels: CORINE raster
    (grid or CLC codes, any CRS/resolution) or vector with `Code_18`. Produces tiles
    (N, tile, tile, b) of the image dtype, fractions (N, L) float32 per scheme label over
    each tile's labelled pixels, and the rest of the format of `olr.data`. Tiles with a
    nodata share above `max_nodata` or fewer than `min_labels` labels with fraction >=
    `min_fraction` are dropped; labels present in fewer than `prune_below` tiles too.
    Raises OLRError for bad input, and before any tile is written when the output could exceed
    the free disk or `OLR_MAX_DATASET_GB` (`prepare_estimate`); nothing is left behind on failure.

    The options are `options` (default: `PrepareOptions()`) with `settings` (its field names,
    e.g. `tile=16`) replacing some.
    """
    opts = dataclasses.replace(options or PrepareOptions(), **settings)
    image_paths = _image_paths(image)
    shown = str(image_paths[0]) if len(image_paths) == 1 else [str(p) for p in image_paths]
    parameters = {"image": shown, "labels": str(labels), "out": str(out), **opts.parameters()}
    workspace.require_writable("prepare a dataset")
    legend = None if opts.legend is None else legends.read_legend(opts.legend)
    scheme_obj = legends.scheme_for(opts.scheme, legend)  # its classes are the label source's
    opts = opts.check()
    out = Path(out)
    progress = progress or (lambda done, total, message: None)

    with contextlib.ExitStack() as stack:
        stack.enter_context(rasters.read_errors_named(*image_paths, labels))  # outermost: sees every read
        stack.enter_context(rasterio.Env(**READ_ENV))
        src = stack.enter_context(rasters.open_image_files(image_paths, opts.grid))
        if opts.tile > min(src.height, src.width):
            raise OLRError(
                f"The tile size {opts.tile} is larger than the image {src.name} ({src.width} x {src.height} pixels); "
                "use a smaller --tile."
            )
        prepare_estimate.require_room(prepare_estimate.estimate_for(src, opts), out)  # before any tile is written
        label_source = stack.enter_context(
            rasters.open_labels(labels, src, opts.label_encoding, legend, opts.label_field, opts.label_nodata)
        )
        if out.exists() and not opts.overwrite:
            raise OLRError(f"{out} already exists; choose another name or pass --overwrite to replace it.")
        # Hash the sources on a side thread (hashlib releases the GIL) while tiling; on
        # failure, stop it rather than wait for it.
        hasher = stack.enter_context(concurrent.futures.ThreadPoolExecutor(1))
        stop = threading.Event()
        stack.callback(stop.set)
        sources = (*_image_source_keys(image_paths), ("labels", labels), *([("legend", opts.legend)] if legend else []))
        digests = {key: hasher.submit(file_digest, path, stop) for key, path in sources}
        extra = lambda: {  # noqa: E731 - resolved at the end, once the hashes are done
            "name": out.name,
            "sources": {
                k: dict(f.result(), **(label_source.describe() if k == "labels" else {})) for k, f in digests.items()
            },
            "label_encoding": label_source.encoding,
            **({"legend": legend.to_json()} if legend else {}),
            "parameters": parameters,
        }
        with atomic.staged_folder(out, opts.overwrite) as folder:
            _build(src, label_source, folder, scheme_obj, opts, progress=progress, extra_meta=extra)
    return out


def _build(
    src,
    label_source,
    folder: Path,
    scheme: label_schemes.Scheme,
    opts: PrepareOptions,
    *,
    progress: Progress,
    extra_meta: Callable[[], dict],
) -> None:
    """Tile the image into `folder` (a staging folder), prune labels, then write the labels, tile table and meta."""
    bands = rasters.image_bands(src, opts.bands)
    names = rasters.band_names(src, bands)
    scaling = rasters.band_scaling(src, bands, opts.scale, opts.offset)
    grid = TileGrid(src.height, src.width, opts.tile, opts.stride_px)
    mask = rasters.ImageMask.of(src, bands, opts.image_nodata)
    tiling = _Tiling.start(src, bands, names, folder, scheme, opts)
    progress(0, grid.n_tiles, "tiling")
    try:
        with contextlib.closing(read_windows(src, bands, mask, label_source, grid)) as windows:
            for win in windows:
                tiling.add(win)
                progress(tiling.done, grid.n_tiles, f"tiling ({tiling.writer.count} kept)")
        label_source.require_known()  # exact: every pixel of the tiles, not the early sample
        tiling.require_labels(label_source)
        selection = _Selection.of(tiling)  # decides the split and compacts images.npy: before close
        n = tiling.writer.close()
    except BaseException:
        tiling.writer.abort()
        raise
    tiling.require_tiles(n, src)
    table = _tile_table(src, tiling.kept, selection, opts, n)
    progress(grid.n_tiles, grid.n_tiles, f"writing labels, tile table and preview ({n} tiles)")
    codes, code_fractions = selection.present_codes(scheme.classes)
    meta = _meta(src, grid, scheme, tiling, selection, codes)
    meta |= _image_meta(src, mask, scaling, meta["bands"], tiling.preview) | extra_meta()
    write_dataset(
        folder,
        images=None,
        fractions=selection.fractions(),
        tiles=table,
        meta=meta,
        min_fraction=opts.min_fraction,
        code_fractions=code_fractions,
    )


@dataclass
class _Tiling:
    """The streaming pass: where kept tiles go (images.npy, band statistics, preview) and its accumulators."""

    folder: Path
    opts: PrepareOptions
    names: list[str]
    dtype: np.dtype
    code_matrix: np.ndarray  # (C, L_all), C = the label source's classes
    writer: TileWriter
    stats: BandStats
    preview: PreviewSampler
    kept: _Kept = field(default_factory=lambda: _Kept([], [], [], [], []))
    dropped: dict = field(default_factory=lambda: {"nodata": 0, "too_few_labels": 0, "too_few_labels_after_pruning": 0})
    labelled_pixels: int = 0
    done: int = 0  # tiles seen

    @classmethod
    def start(
        cls, src, bands: list[int], names: list[str], folder: Path, scheme: label_schemes.Scheme, opts: PrepareOptions
    ) -> _Tiling:
        dtype = np.dtype(src.dtypes[bands[0] - 1])
        tile, b = opts.tile, len(bands)
        code_matrix = scheme.code_matrix(scheme.classes)
        writer = TileWriter(folder / "images.npy", (tile, tile, b), dtype)
        stats = BandStats(b, row_step=tile // 16)
        preview = PreviewSampler(src, rasters.rgb_positions(names, opts.rgb, src.name))
        return cls(folder, opts, names, dtype, code_matrix, writer, stats, preview)

    @property
    def area(self) -> float:
        return float(self.opts.tile * self.opts.tile)

    def add(self, win) -> None:
        """Filter one window's tiles, write the kept ones and remember their numbers."""
        code_fractions, nodata_share, tile_nodata, keep = self._filter(win)
        self._write(win, keep, tile_nodata)
        self._remember(win, keep, code_fractions, nodata_share)
        self.done += win.n_rows * win.n_cols

    def _filter(self, win):
        """(code fractions (n, 44) float32, nodata share (n,), tile nodata (n, tile, tile) bool or None,
        keep (n,) bool) of the window's n tiles; counts the dropped ones."""
        nr, nc, tile, stride = win.n_rows, win.n_cols, self.opts.tile, self.opts.stride_px
        counts = win.counts
        labelled = counts[:, 1:].sum(1)
        self.labelled_pixels += int(labelled.sum())
        code_fractions = (counts[:, 1:] / np.maximum(labelled, 1)[:, None]).astype(np.float32)
        n_present = (_label_fractions(code_fractions, self.code_matrix) >= self.opts.min_fraction).sum(1)
        tile_nodata = None
        nodata_share = np.zeros(nr * nc)
        if win.nodata is not None:
            tile_nodata = tiles_view(win.nodata, nr, nc, tile, stride).reshape(nr * nc, tile, tile)
            nodata_share = tile_nodata.reshape(nr * nc, -1).sum(1) / self.area
        ok_nodata = nodata_share <= self.opts.max_nodata
        keep = ok_nodata & (n_present >= self.opts.min_labels)
        self.dropped["nodata"] += int((~ok_nodata).sum())
        self.dropped["too_few_labels"] += int((ok_nodata & ~keep).sum())
        return code_fractions, nodata_share, tile_nodata, keep

    def _write(self, win, keep: np.ndarray, tile_nodata: np.ndarray | None) -> None:
        """Gather the window's tiles into the writer's buffer, close the gaps of dropped tiles."""
        nr, nc, tile, stride = win.n_rows, win.n_cols, self.opts.tile, self.opts.stride_px
        out = self.writer.region(nr * nc)
        np.copyto(out.reshape(nr, nc, *self.writer.tile_shape), tiles_view(win.pixels, nr, nc, tile, stride))
        k = int(keep.sum())
        if k < nr * nc:
            out[:k] = out[keep]
        kept_nodata = None if tile_nodata is None else tile_nodata[keep]
        self.stats.update(out[:k], kept_nodata)
        if kept_nodata is not None:
            fill_nodata(out[:k], kept_nodata)  # after the statistics, which leave nodata out
        self.writer.commit(k)
        self.preview.update(win.window, win.pixels, win.nodata)

    def _remember(self, win, keep: np.ndarray, code_fractions: np.ndarray, nodata_share: np.ndarray) -> None:
        rr, cc = np.divmod(np.flatnonzero(keep), win.n_cols)
        self.kept.tile_row.append(rr + win.r0)
        self.kept.tile_col.append(cc + win.c0)
        self.kept.nodata_share.append(nodata_share[keep])
        self.kept.unlabelled_share.append(win.counts[keep, 0] / self.area)
        self.kept.code_fractions.append(code_fractions[keep])

    def require_labels(self, label_source) -> None:
        if self.labelled_pixels == 0:
            raise OLRError(
                f"The labels {label_source.path} hold no valid land-cover class on the image's tiles; "
                "check that the label map covers the image and uses CORINE codes."
            )

    def require_tiles(self, n: int, src) -> None:
        if n == 0:
            raise OLRError(
                f"No tile of {src.name} was kept ({self.dropped['nodata']} had too much nodata, "
                f"{self.dropped['too_few_labels'] + self.dropped['too_few_labels_after_pruning']} too few labels); "
                "lower --min-labels, --min-fraction or --prune-below, or raise --max-nodata."
            )

    def band_json(self, selection: _Selection) -> tuple[list[dict], str]:
        """(band statistics, split they are from): over the training tiles of `selection`, from the
        pass's per-tile sums (no second read); over all its tiles when no tile is for training."""
        kept = np.flatnonzero(selection.tiles)
        train = selection.split == "train"
        rows, split = (kept[train], "train") if train.any() else (kept, "all")
        return self.stats.to_json(self.names, rows), split


@dataclass
class _Selection:
    """The tiles and labels that survive pruning, over the tiles kept by the pass."""

    code_fractions: np.ndarray  # (n, C) float32
    label_fractions: np.ndarray  # (n, L_all)
    tiles: np.ndarray  # (n,) bool
    labels: np.ndarray  # (L_all,) bool
    occurring: np.ndarray  # (L_all,) bool: present in some surviving tile
    split: np.ndarray  # (N,) str, of the N surviving tiles
    block_id: np.ndarray  # (N,) int64
    separated: dict  # validation and test tiles dropped near another split (`splits.separate_splits`)

    @classmethod
    def of(cls, tiling: _Tiling) -> _Selection:
        """Prune rare labels, drop the tiles left with too few labels, split the rest by blocks, drop the
        validation and test tiles too close to another split (pruning again), compact images.npy to match."""
        opts, kept = tiling.opts, tiling.kept
        code_fractions = np.concatenate(kept.code_fractions)
        label_fractions = _label_fractions(code_fractions, tiling.code_matrix)
        present = label_fractions >= opts.min_fraction
        pruned, _, _ = _prune(present, opts.prune_below, opts.min_labels)
        tile_row, tile_col = np.concatenate(kept.tile_row), np.concatenate(kept.tile_col)
        split, block_id, too_close, separated = _split(tile_row, tile_col, pruned, opts)
        # dropping tiles can leave a label rarer than --prune-below: prune again (never re-adding a tile)
        tiles, labels, occurring = _prune(present, opts.prune_below, opts.min_labels, pruned & ~too_close)
        tiling.dropped["too_few_labels_after_pruning"] = int((~tiles & ~too_close).sum())
        tiling.dropped["overlapping_another_split"] = sum(separated["overlap"].values())
        tiling.dropped["near_another_split"] = sum(separated["buffer"].values())
        if not tiles.all():
            tiling.writer.keep_only(tiles)
        split, block_id = split[tiles].astype(str), block_id[tiles]
        return cls(code_fractions, label_fractions, tiles, labels, occurring, split, block_id, separated)

    def fractions(self) -> np.ndarray:
        """(N, L) fractions of the surviving tiles and labels."""
        return self.label_fractions[self.tiles][:, self.labels]

    def present_codes(self, classes: tuple[int, ...]) -> tuple[list[int], np.ndarray]:
        """(class codes occurring in a surviving tile, their (N, C') fractions)."""
        code_fractions = self.code_fractions[self.tiles]
        present = code_fractions.max(0) > 0
        return [c for c, k in zip(classes, present) if k], code_fractions[:, present]


def _prune(
    present: np.ndarray, prune_below: int, min_labels: int, tiles: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tile keep (n,), label keep (L,), label occurs (L,)) for presence (n, L) bool, among `tiles` (n,) (None: all).

    Labels that occur at all and survive pruning; pruning may leave tiles with too few labels,
    which go too (repeat until stable: dropping tiles can prune more labels)."""
    tile_keep = np.ones(len(present), dtype=bool) if tiles is None else tiles.copy()
    while True:
        counts_per_label = present[tile_keep].sum(0)
        label_keep = (counts_per_label > 0) & (counts_per_label >= prune_below)
        new_keep = tile_keep & (present[:, label_keep].sum(1) >= min_labels)
        if (new_keep == tile_keep).all():
            return tile_keep, label_keep, counts_per_label > 0
        tile_keep = new_keep


def _split(tile_row: np.ndarray, tile_col: np.ndarray, tiles: np.ndarray, opts: PrepareOptions):
    """(split (n,), block id (n,), too close (n,) bool, counts) of the n kept tiles, only `tiles` (n,) bool assigned.

    Blocks of `split_block` tiles go to splits whole; then validation and test tiles that share pixels
    with (stride < tile) or lie within `split_buffer` tile widths of another split are too close."""
    split = np.full(len(tiles), "", dtype=object)
    block_id = np.full(len(tiles), -1, dtype=np.int64)
    block_id[tiles] = splits.spatial_blocks(tile_row[tiles], tile_col[tiles], opts.split_block)
    split[tiles] = splits.assign_blocks(block_id[tiles], opts.split_fractions, opts.seed)
    clear, counts = splits.separate_splits(
        tile_row[tiles], tile_col[tiles], split[tiles], opts.tile, opts.stride_px, opts.split_buffer
    )
    too_close = np.zeros(len(tiles), dtype=bool)
    too_close[np.flatnonzero(tiles)[~clear]] = True
    return split, block_id, too_close, counts


def _tile_table(src, kept: _Kept, selection: _Selection, opts: PrepareOptions, n: int) -> pd.DataFrame:
    """The tile table of the N surviving tiles; tile_id is the position in images.npy."""
    tile_keep = selection.tiles
    tile_row = np.concatenate(kept.tile_row)[tile_keep]
    tile_col = np.concatenate(kept.tile_col)[tile_keep]
    row_off, col_off = tile_row * opts.stride_px, tile_col * opts.stride_px
    return pd.DataFrame(
        {
            "tile_id": np.arange(n, dtype=np.int64),
            "row_off": row_off.astype(np.int64),
            "col_off": col_off.astype(np.int64),
            "tile_row": tile_row.astype(np.int64),
            "tile_col": tile_col.astype(np.int64),
            "split": selection.split,
            "block_id": selection.block_id,
            "nodata_share": np.concatenate(kept.nodata_share)[tile_keep].astype(np.float32),
            "unlabelled_share": np.concatenate(kept.unlabelled_share)[tile_keep].astype(np.float32),
            **tile_bounds(src.transform, row_off, col_off, opts.tile, src.crs),
        }
    )


def _meta(
    src, grid: TileGrid, scheme: label_schemes.Scheme, tiling: _Tiling, selection: _Selection, codes: list[int]
) -> dict:
    """meta.json of a prepared raster dataset, less the sources (write_dataset adds the counts)."""
    opts, kept_labels, occurring = tiling.opts, selection.labels, selection.occurring
    band_json, statistics_split = tiling.band_json(selection)
    labels = [lab for lab, k in zip(scheme.labels, kept_labels) if k]
    presence = presence_from_fractions(selection.fractions(), opts.min_fraction)
    return {
        "kind": "raster",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **_grid_meta(src, grid, opts),
        "scheme": {
            **scheme.to_json(),
            "n_labels": len(scheme.labels),
            "dropped_codes": list(scheme.dropped_codes),
            "absent": [lab.name for lab, k in zip(scheme.labels, occurring) if not k],
        },
        "labels": [lab.to_json() for lab in labels],
        "code_fractions": {"codes": codes},
        "bands": band_json,
        "band_statistics_split": statistics_split,
        "dtype": tiling.dtype.name,
        "nodata": src.nodata,
        "min_labels": int(opts.min_labels),
        "max_nodata": float(opts.max_nodata),
        "prune_below": int(opts.prune_below),
        "pruned": [lab.name for lab, o, k in zip(scheme.labels, occurring, kept_labels) if o and not k],
        "split": {
            "method": "spatial_blocks",
            "block": int(opts.split_block),
            "buffer": int(opts.split_buffer),
            "fractions": list(opts.split_fractions),
            "seed": int(opts.seed),
            "counts": splits.split_counts(selection.split),
            "dropped_overlap": selection.separated["overlap"],
            "dropped_buffer": selection.separated["buffer"],
        },
        "dropped": tiling.dropped,
        "warnings": thin_data_warnings(
            selection.split,
            presence,
            [lab.name for lab in labels],
            selection.block_id,
            separated={s: sum(counts[s] for counts in selection.separated.values()) for s in ("val", "test")},
            advice=THIN_DATA_ADVICE,
        ),
        "preview": tiling.preview.write(tiling.folder / "preview.png"),
    }


def _grid_meta(src, grid: TileGrid, opts: PrepareOptions) -> dict:
    """The image grid and the tile grid over it."""
    return {
        "crs": _crs_json(src.crs),
        "resolution": [float(src.res[0]), float(src.res[1])],
        "width": src.width,
        "height": src.height,
        "transform": list(src.transform)[:6],
        "tile": opts.tile,
        "stride": opts.stride_px,
        "tile_grid": {"rows": grid.rows, "cols": grid.cols, "tiles": grid.n_tiles},
    }


# --------------------------------------------------------------------------- CLI


def output_folder(value: str) -> Path:
    """`data/NAME` (or `NAME`) -> the dataset folder in the workspace; NAME is validated."""
    text = str(value)
    name = text[len("data/") :] if text.startswith("data/") else text
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
    parser.add_argument(
        "--image",
        required=True,
        nargs="+",
        help="image raster (GeoTIFF, any CRS, 1..N bands), or several band files (e.g. Sentinel-2's at 10, 20 and "
        "60 m) stacked onto one grid (see --grid)",
    )
    parser.add_argument("--labels", required=True, help="CORINE raster (grid or CLC codes) or vector with Code_18")
    parser.add_argument("--out", required=True, metavar="data/NAME", help="dataset folder in the workspace")
    prepare_options.add_flags(parser)


def prepare_command(args: argparse.Namespace) -> int:
    out = output_folder(args.out)
    path = prepare_dataset(args.image, args.labels, out, PrepareOptions.from_args(args), progress=cli_progress())

    ds = load_dataset(path)
    print(
        f"prepared {path}: {ds.n_tiles} tiles of {ds.tile_shape}, {len(ds.meta['labels'])} labels, "
        f"split {ds.meta['split_counts']}, dropped {ds.meta['dropped']}"
    )
    print_warnings(ds.meta)
    return 0
