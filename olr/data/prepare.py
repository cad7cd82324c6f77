"""`prepare_dataset(...)`: image raster + land-cover labels -> a tile dataset folder (CLI `prepare`, `prepare_command`).

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
from olr.data import label_schemes, legends, prepare_estimate, rasters, splits
from olr.data.dataset import presence_from_fractions, write_dataset
from olr.data.prepare_options import PrepareOptions
from olr.data.thin_data import Advice, thin_data_warnings
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
class Kept:
    """What the streaming pass keeps per tile (small: a few numbers per tile), a list of arrays each."""

    tile_row: list
    tile_col: list
    nodata_share: list
    unlabelled_share: list
    code_fractions: list  # of (n, C) float32

    def arrays(self) -> dict[str, np.ndarray]:
        """The lists concatenated: {"tile_row": (n,), ..., "code_fractions": (n, C) float32}."""
        return {f.name: np.concatenate(getattr(self, f.name)) for f in dataclasses.fields(self)}


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

    if opts.scene_split == "scenes":
        raise OLRError(
            "Whole-scene splits (--scene-split scenes) need several scenes, and one image was given; "
            "give a scene list with --scenes, or split by --scene-split blocks."
        )
    out = Path(out)
    progress = progress or (lambda done, total, message: None)

    with contextlib.ExitStack() as stack:
        src = open_image(stack, image_paths, labels, opts)
        prepare_estimate.require_room(prepare_estimate.estimate_for(src, opts), out)  # before any tile is written
        label_source = open_label_source(stack, labels, src, opts, legend)
        if out.exists() and not opts.overwrite:
            raise OLRError(f"{out} already exists; choose another name or pass --overwrite to replace it.")
        digests = hash_sources(stack, image_paths, labels, opts.legend if legend else None)
        extra = lambda: {  # noqa: E731 - resolved at the end, once the hashes are done
            "name": out.name,
            "sources": source_meta(digests, label_source),
            "label_encoding": label_source.encoding,
            **({"legend": legend.to_json()} if legend else {}),
            "parameters": parameters,
        }
        with atomic.staged_folder(out, opts.overwrite) as folder:
            _build(src, label_source, folder, scheme_obj, opts, progress=progress, extra_meta=extra)
    return out


def open_image(stack: contextlib.ExitStack, image_paths: list, labels, opts: PrepareOptions):
    """Open the image (one raster or band files) on `stack`, GDAL's read errors named by file; OLRError when
    `opts.tile` does not fit it."""
    stack.enter_context(rasters.read_errors_named(*image_paths, labels))  # outermost: sees every read
    stack.enter_context(rasterio.Env(**READ_ENV))
    src = stack.enter_context(rasters.open_image_files(image_paths, opts.grid))
    if opts.tile > min(src.height, src.width):
        raise OLRError(
            f"The tile size {opts.tile} is larger than the image {src.name} ({src.width} x {src.height} pixels); "
            "use a smaller --tile."
        )
    return src


def open_label_source(stack: contextlib.ExitStack, labels, src, opts: PrepareOptions, legend):
    """The labels aligned onto the grid of the open image `src` (`rasters.open_labels`), closed with `stack`."""
    return stack.enter_context(
        rasters.open_labels(labels, src, opts.label_encoding, legend, opts.label_field, opts.label_nodata)
    )


def hash_sources(stack: contextlib.ExitStack, image_paths: list, labels, legend_path) -> dict:
    """{meta["sources"] key: future of `file_digest`} of the image files, labels and legend (if any), hashed on
    a side thread (hashlib releases the GIL) while tiling; on failure `stack` stops it rather than waits."""
    hasher = stack.enter_context(concurrent.futures.ThreadPoolExecutor(1))
    stop = threading.Event()
    stack.callback(stop.set)
    legend = [("legend", legend_path)] if legend_path else []
    sources = (*_image_source_keys(image_paths), ("labels", labels), *legend)
    return {key: hasher.submit(file_digest, path, stop) for key, path in sources}


def source_meta(digests: dict, label_source) -> dict:
    """meta["sources"]: the digests of `hash_sources` (waiting for them), the labels' with how they were read."""
    return {k: dict(f.result(), **(label_source.describe() if k == "labels" else {})) for k, f in digests.items()}


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
    tiling = tile_pass(src, label_source, folder, scheme, opts, progress)
    try:
        selection = Selection.of(tiling.kept.arrays(), tiling.code_matrix, opts, tiling.dropped)
        if not selection.tiles.all():  # before close: compaction drops the tiles the split leaves out
            tiling.writer.keep_only(selection.tiles)
        n = tiling.writer.close()
    except BaseException:
        tiling.writer.abort()
        raise
    tiling.require_tiles(n, src)
    table = tile_table(tile_columns(tiling.kept.arrays(), src.transform, src.crs, opts), selection)
    progress(tiling.grid.n_tiles, tiling.grid.n_tiles, f"writing labels, tile table and preview ({n} tiles)")
    codes, code_fractions = selection.present_codes(scheme.classes)
    band_json, statistics_split = band_statistics_json(tiling.stats, tiling.names, selection)
    meta = labels_and_split_meta(scheme, opts, selection, codes, tiling.dropped)
    meta |= {
        **grid_meta(src, tiling.grid, opts),
        "bands": band_json,
        "band_statistics_split": statistics_split,
        "dtype": tiling.dtype.name,
        "nodata": src.nodata,
        "preview": tiling.preview.write(folder / "preview.png"),
    }
    meta |= _image_meta(src, tiling.mask, tiling.scaling, meta["bands"], tiling.preview) | extra_meta()
    write_dataset(
        folder,
        images=None,
        fractions=selection.fractions(),
        tiles=table,
        meta=meta,
        min_fraction=opts.min_fraction,
        code_fractions=code_fractions,
    )


def tile_pass(
    src, label_source, folder: Path, scheme: label_schemes.Scheme, opts: PrepareOptions, progress: Progress
) -> Tiling:
    """The streaming pass over the open image `src`: kept tiles into `folder`/images.npy, their numbers in
    `Tiling.kept`; OLRError when a label value is unknown or no tile has a label. The tile writer is left open
    (the caller compacts and closes it); it is aborted when the pass fails."""
    tiling = Tiling.start(src, folder, scheme, opts)
    grid = tiling.grid
    progress(0, grid.n_tiles, "tiling")
    try:
        with contextlib.closing(read_windows(src, tiling.bands, tiling.mask, label_source, grid)) as windows:
            for win in windows:
                tiling.add(win)
                progress(tiling.done, grid.n_tiles, f"tiling ({tiling.writer.count} kept)")
        label_source.require_known()  # exact: every pixel of the tiles, not the early sample
        tiling.require_labels(label_source)
    except BaseException:
        tiling.writer.abort()
        raise
    return tiling


@dataclass
class Tiling:
    """The streaming pass: where kept tiles go (images.npy, band statistics, preview) and its accumulators."""

    folder: Path
    opts: PrepareOptions
    bands: list[int]  # 1-based band indexes of the image that are tiled
    names: list[str]
    scaling: list  # (scale, offset) per band
    grid: TileGrid
    mask: rasters.ImageMask
    dtype: np.dtype
    code_matrix: np.ndarray  # (C, L_all), C = the label source's classes
    writer: TileWriter
    stats: BandStats
    preview: PreviewSampler
    kept: Kept = field(default_factory=lambda: Kept([], [], [], [], []))
    dropped: dict = field(default_factory=lambda: {"nodata": 0, "too_few_labels": 0, "too_few_labels_after_pruning": 0})
    labelled_pixels: int = 0
    done: int = 0  # tiles seen

    @classmethod
    def start(cls, src, folder: Path, scheme: label_schemes.Scheme, opts: PrepareOptions) -> Tiling:
        bands = rasters.image_bands(src, opts.bands)
        names = rasters.band_names(src, bands)
        scaling = rasters.band_scaling(src, bands, opts.scale, opts.offset)
        grid = TileGrid(src.height, src.width, opts.tile, opts.stride_px)
        mask = rasters.ImageMask.of(src, bands, opts.image_nodata)
        dtype = np.dtype(src.dtypes[bands[0] - 1])
        tile, b = opts.tile, len(bands)
        code_matrix = scheme.code_matrix(scheme.classes)
        writer = TileWriter(folder / "images.npy", (tile, tile, b), dtype)
        stats = BandStats(b, row_step=tile // 16)
        preview = PreviewSampler(src, rasters.rgb_positions(names, opts.rgb, src.name))
        return cls(folder, opts, bands, names, scaling, grid, mask, dtype, code_matrix, writer, stats, preview)

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


def band_statistics_json(stats: BandStats, names: list[str], selection: Selection) -> tuple[list[dict], str]:
    """(band statistics, split they are from): over the training tiles of `selection`, from the pass's
    per-tile sums in `stats` (no second read); over all its tiles when no tile is for training."""
    kept = np.flatnonzero(selection.tiles)
    train = selection.split == "train"
    rows, split = (kept[train], "train") if train.any() else (kept, "all")
    return stats.to_json(names, rows), split


@dataclass
class Selection:
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
    def of(
        cls, kept: dict[str, np.ndarray], code_matrix: np.ndarray, opts: PrepareOptions, dropped: dict, scene=None
    ) -> Selection:
        """Prune rare labels, drop the tiles left with too few labels, split the rest (blocks within each scene,
        or whole scenes), drop the validation and test tiles too close to another split (pruning again).

        kept: `Kept.arrays()` of the n tiles kept by the pass (of all scenes, scene by scene); scene: (n,) int64
        scene index of each (None: one scene). Counts the tiles dropped into `dropped`."""
        code_fractions = kept["code_fractions"]
        label_fractions = _label_fractions(code_fractions, code_matrix)
        present = label_fractions >= opts.min_fraction
        pruned, _, _ = _prune(present, opts.prune_below, opts.min_labels)
        split, block_id, too_close, separated = _split(kept["tile_row"], kept["tile_col"], pruned, opts, scene)
        # dropping tiles can leave a label rarer than --prune-below: prune again (never re-adding a tile)
        tiles, labels, occurring = _prune(present, opts.prune_below, opts.min_labels, pruned & ~too_close)
        dropped["too_few_labels_after_pruning"] = int((~tiles & ~too_close).sum())
        dropped["overlapping_another_split"] = sum(separated["overlap"].values())
        dropped["near_another_split"] = sum(separated["buffer"].values())
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


def _split(tile_row: np.ndarray, tile_col: np.ndarray, tiles: np.ndarray, opts: PrepareOptions, scene=None):
    """(split (n,), block id (n,), too close (n,) bool, counts) of the n kept tiles, only `tiles` (n,) bool assigned.

    By blocks (`opts.scene_split` "blocks"): blocks of `split_block` tiles, each within one scene (`scene` (n,)
    int64, None: one scene), go to splits whole; then validation and test tiles that share pixels with
    (stride < tile) or lie within `split_buffer` tile widths of another split's tile of their scene are too
    close. By scenes ("scenes"): whole scenes go to splits; tiles of different scenes lie on different grids,
    so none is dropped."""
    scene = np.zeros(len(tiles), dtype=np.int64) if scene is None else np.asarray(scene, dtype=np.int64)
    split = np.full(len(tiles), "", dtype=object)
    block_id = np.full(len(tiles), -1, dtype=np.int64)
    too_close = np.zeros(len(tiles), dtype=bool)
    counts = {"overlap": {"val": 0, "test": 0}, "buffer": {"val": 0, "test": 0}}
    assigned = np.flatnonzero(tiles)
    if opts.scene_split == "scenes":
        block_id[assigned] = scene[assigned]
        split[assigned] = splits.assign_scenes(scene[assigned], opts.split_fractions, opts.seed)
        return split, block_id, too_close, counts
    block_id[assigned] = splits.scene_blocks(scene[assigned], tile_row[assigned], tile_col[assigned], opts.split_block)
    split[assigned] = splits.assign_blocks(block_id[assigned], opts.split_fractions, opts.seed)
    for s in np.unique(scene[assigned]):
        rows = assigned[scene[assigned] == s]
        clear, dropped = splits.separate_splits(
            tile_row[rows], tile_col[rows], split[rows], opts.tile, opts.stride_px, opts.split_buffer
        )
        too_close[rows[~clear]] = True
        for kind, by_split in dropped.items():
            for name, n in by_split.items():
                counts[kind][name] += n
    return split, block_id, too_close, counts


def tile_columns(kept: dict[str, np.ndarray], transform, crs, opts: PrepareOptions) -> dict[str, np.ndarray]:
    """The tile table's columns that one scene's pass knows, for its n kept tiles (`Kept.arrays()`): pixel
    offsets, grid positions, nodata and unlabelled shares, bounds in the image CRS and lon/lat."""
    tile_row, tile_col = kept["tile_row"].astype(np.int64), kept["tile_col"].astype(np.int64)
    row_off, col_off = tile_row * opts.stride_px, tile_col * opts.stride_px
    return {
        "row_off": row_off,
        "col_off": col_off,
        "tile_row": tile_row,
        "tile_col": tile_col,
        "nodata_share": kept["nodata_share"].astype(np.float32),
        "unlabelled_share": kept["unlabelled_share"].astype(np.float32),
        **tile_bounds(transform, row_off, col_off, opts.tile, crs),
    }


def tile_table(columns: dict[str, np.ndarray], selection: Selection, extra: dict | None = None) -> pd.DataFrame:
    """The tile table of the N tiles that survive `selection` (`columns` over the kept tiles, `tile_columns`);
    tile_id is the position in images.npy; `extra` columns (N,) follow the split and block."""
    keep = selection.tiles
    first = {k: columns[k][keep] for k in ("row_off", "col_off", "tile_row", "tile_col")}
    rest = {k: v[keep] for k, v in columns.items() if k not in first}
    n = int(keep.sum())
    return pd.DataFrame(
        {
            "tile_id": np.arange(n, dtype=np.int64),
            **first,
            "split": selection.split,
            "block_id": selection.block_id,
            **(extra or {}),
            **rest,
        }
    )


def labels_and_split_meta(
    scheme: label_schemes.Scheme, opts: PrepareOptions, selection: Selection, codes: list[int], dropped: dict
) -> dict:
    """What meta.json says about the labels, the filters, the split and thin data, for one scene or several
    (write_dataset adds the counts); the caller adds the grid, bands, preview and sources."""
    kept_labels, occurring = selection.labels, selection.occurring
    labels = [lab for lab, k in zip(scheme.labels, kept_labels) if k]
    presence = presence_from_fractions(selection.fractions(), opts.min_fraction)
    by_scenes = opts.scene_split == "scenes"
    return {
        "kind": "raster",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scheme": {
            **scheme.to_json(),
            "n_labels": len(scheme.labels),
            "dropped_codes": list(scheme.dropped_codes),
            "absent": [lab.name for lab, k in zip(scheme.labels, occurring) if not k],
        },
        "labels": [lab.to_json() for lab in labels],
        "code_fractions": {"codes": codes},
        "min_labels": int(opts.min_labels),
        "max_nodata": float(opts.max_nodata),
        "prune_below": int(opts.prune_below),
        "pruned": [lab.name for lab, o, k in zip(scheme.labels, occurring, kept_labels) if o and not k],
        "split": {
            "method": "whole_scenes" if by_scenes else "spatial_blocks",
            "block": int(opts.split_block),
            "buffer": int(opts.split_buffer),
            "fractions": list(opts.split_fractions),
            "seed": int(opts.seed),
            "counts": splits.split_counts(selection.split),
            "dropped_overlap": selection.separated["overlap"],
            "dropped_buffer": selection.separated["buffer"],
        },
        "dropped": dropped,
        "warnings": thin_data_warnings(
            selection.split,
            presence,
            [lab.name for lab in labels],
            selection.block_id,
            separated={s: sum(counts[s] for counts in selection.separated.values()) for s in ("val", "test")},
            advice=THIN_DATA_ADVICE,
        ),
    }


def grid_meta(src, grid: TileGrid, opts: PrepareOptions) -> dict:
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
