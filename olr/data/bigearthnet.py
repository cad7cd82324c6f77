"""Import of BigEarthNet-S2 patch folders into one dataset (CLI `import-bigearthnet`).

BigEarthNet-S2 (v1.0) keeps each Sentinel-2 L2A patch of 1.2 x 1.2 km in a folder `<name>/`
named like `S2A_MSIL2A_20170613T101031_87_48` (satellite, acquisition time, the patch's row and
column in its Sentinel-2 tile), holding 12 single-band GeoTIFFs `<name>_B01.tif` ..
`<name>_B12.tif` (B02, B03, B04, B08 at 10 m: 120 x 120 px; B05, B06, B07, B8A, B11, B12 at
20 m: 60 x 60 px; B01, B09 at 60 m: 20 x 20 px; each in its patch's UTM zone) and
`<name>_labels_metadata.json` with "labels", the CORINE 2018 level-3 names present in it.

Every patch becomes one tile:

- pixels: (120, 120, 12) in the band files' dtype (uint16 in BigEarthNet), bands in the order
  of `BAND_NAMES`, on the 10 m grid of the patch's B02 file; the 20 m and 60 m bands are
  resampled onto it with `rasters.band_stack.REFLECTANCE_RESAMPLING`, 10 m bands copied as they are;
- labels: the names become CLC codes through the CORINE legend (compared ignoring case, spaces
  and punctuation, plus `NAME_SPELLINGS` for BigEarthNet's two singular spellings). BigEarthNet
  gives presence only, no areas: `code_fractions.npy` and `fractions.npy` hold 1.0 for a present
  code or label and 0 otherwise, and meta["fractions_kind"] = "presence" says so. The per-code
  columns let any scheme apply at training time (level3/2/1, ben19, a user mapping); `scheme`
  chooses the dataset's own label columns (those present in at least one patch);
- georeference: each tile keeps its patch's own CRS: tile table columns `epsg` and `x_min,
  y_min, x_max, y_max` in it, `lon_min, lat_min, lon_max, lat_max` in EPSG:4326. Patches come
  from several UTM zones, so meta["crs"] is EPSG:4326, the one CRS all tiles share (their
  lon/lat bounds), with a note; row_off = col_off = 0 (each tile is its whole patch).

Splits. With three split files (train, val, test: one patch name per line, as BigEarthNet
publishes them; plain text or .bz2) the official split is used:
- a line that is not a BigEarthNet-S2 patch name, or a patch listed in two files, is refused;
- names without a folder are normal (importing a subset of the archive) and counted in meta;
- folder patches named by no file are left out and counted (with a few names) in meta: the
  official split leaves out on purpose the patches covered by seasonal snow, clouds or shadow,
  so a folder holding the whole archive imports exactly the official split.
Without split files the split is spatial: patches are binned by their centre on one metric
grid across all UTM zones (EPSG:3035, the ETRS89 equal-area grid of CORINE itself), `split_block`
patches per block side, and whole blocks go to one split (`splits.assign_blocks`), so patches of
the same place on other dates share a split; a validation or test patch still overlapping a
patch of an earlier split (neighbouring Sentinel-2 tiles overlap) is dropped and counted in
meta["split"]["dropped_overlap"] (`separate_overlaps`). Band statistics are taken over the
training tiles only.

Bad input is refused with one sentence before the dataset folder appears (it is built staged):
a folder without patch folders, a patch folder without band files, with missing band files or
without its labels metadata, an unknown label name, band files whose grid does not match their
patch, a bad split file.
"""

from __future__ import annotations

import argparse
import bz2
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.warp import reproject
from rasterio.warp import transform as transform_points

from olr import atomic, workspace
from olr.data import label_schemes, prepare_options, splits
from olr.data.dataset import SPLITS, write_dataset
from olr.data.prepare import Progress, cli_progress, file_digest, output_folder
from olr.data.prepare_options import PrepareOptions
from olr.data.rasters.band_stack import REFLECTANCE_RESAMPLING
from olr.data.rasters.read_errors import read_errors_named
from olr.data.rasters.user_files import open_raster
from olr.data.thin_data import Advice, print_warnings, thin_data_warnings
from olr.data.tile_writer import BandStats, TileWriter
from olr.errors import OLRError

#: The 12 bands of a tile, in this order (B10, a cirrus band without surface information, is not in L2A).
BAND_NAMES = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
#: The band whose 10 m grid every band is put on.
GRID_BAND = "B02"
#: Pixels per side of a patch on that grid.
PATCH_SIDE = 120
#: A BigEarthNet-S2 v1 patch name (the archive dropped leading zeros of the time: T93020).
PATCH_NAME = re.compile(r"S2[AB]_MSIL2A_\d{8}T\d{1,6}_\d{1,3}_\d{1,3}")
METADATA_SUFFIX = "_labels_metadata.json"
#: BigEarthNet's spellings of level-3 names that differ from the legend's by more than case,
#: spaces and punctuation ("Peatbogs" and "Transitional woodland/shrub" match without help).
NAME_SPELLINGS = {"Bare rock": 332, "Natural grassland": 321}
#: The metric grid of the spatial split's blocks, shared by patches of all UTM zones.
BLOCK_CRS = "EPSG:3035"
MIN_FRACTION = 0.5  # fractions are presence (0 or 1): any threshold in (0, 1] reads them alike
CHUNK = 256  # patches read at a time
LEFT_OUT_EXAMPLES = 10  # names of left-out patches meta.json lists


# --------------------------------------------------------------------------- labels


def _name_key(name: str) -> str:
    """A label name compared ignoring case, spaces and punctuation."""
    return re.sub(r"[^0-9a-z]", "", name.casefold())


@lru_cache(maxsize=1)
def _codes_by_name() -> dict[str, int]:
    table = {_name_key(c.level3): c.code for c in label_schemes.legend()}
    table.update({_name_key(name): code for name, code in NAME_SPELLINGS.items()})
    return table


def label_codes(names: list[str], where: Path) -> tuple[int, ...]:
    """The CLC codes of BigEarthNet level-3 label names, sorted; OLRError naming an unknown one and `where`."""
    codes = set()
    for name in names:
        code = _codes_by_name().get(_name_key(name))
        if code is None:
            raise OLRError(
                f"The labels metadata {where} names the label {label_schemes.short_repr(name, 100)}, which is no "
                "CORINE level-3 class; correct the name to one of the CORINE legend or remove the patch."
            )
        codes.add(code)
    return tuple(sorted(codes))


# --------------------------------------------------------------------------- patch folders


@dataclass(frozen=True)
class Patch:
    """One patch folder, checked: its label codes and the 10 m grid of its B02 file."""

    folder: Path
    codes: tuple[int, ...]
    crs: CRS
    transform: rasterio.Affine
    bounds: tuple[float, float, float, float]  # left, bottom, right, top in `crs`

    @property
    def name(self) -> str:
        return self.folder.name

    def band_file(self, band: str) -> Path:
        return self.folder / f"{self.name}_{band}.tif"


def _open_band(path: Path) -> rasterio.DatasetReader:
    try:
        return open_raster(path)
    except RasterioIOError:
        raise OLRError(
            f"The band file {path} is not a readable GeoTIFF; download the patch {path.parent.name} again."
        ) from None


def _check_files(folder: Path) -> Path:
    """The patch folder's labels metadata file, once every band file is there (OLRError naming what lacks)."""
    name = folder.name
    missing = [f"{name}_{band}.tif" for band in BAND_NAMES if not (folder / f"{name}_{band}.tif").is_file()]
    if len(missing) == len(BAND_NAMES):
        raise OLRError(
            f"The patch folder {folder} holds no band files ({name}_B01.tif ... {name}_B12.tif); "
            "download the patch again or remove its folder."
        )
    if missing:
        raise OLRError(
            f"The patch folder {folder} lacks the band files {', '.join(missing)}; "
            "download the patch again or remove its folder."
        )
    metadata = folder / f"{name}{METADATA_SUFFIX}"
    if not metadata.is_file():
        raise OLRError(
            f"The patch folder {folder} has no labels metadata {metadata.name}; "
            "download the patch again or remove its folder."
        )
    return metadata


def _read_label_names(metadata: Path) -> list[str]:
    try:
        data = label_schemes.parse_json_strictly(
            metadata.read_text(encoding="utf-8"), f"The labels metadata {metadata}"
        )
    except (OSError, UnicodeDecodeError) as e:
        raise OLRError(f"The labels metadata {metadata} could not be read ({e}); download the patch again.") from None
    names = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise OLRError(
            f'The labels metadata {metadata} has no "labels" list of CORINE level-3 names; download the patch again.'
        )
    return names


def scan_patch(folder: Path) -> Patch:
    """Check one patch folder (files, labels, the B02 grid) without reading its pixels."""
    codes = label_codes(_read_label_names(_check_files(folder)), folder / f"{folder.name}{METADATA_SUFFIX}")
    path = folder / f"{folder.name}_{GRID_BAND}.tif"
    with _open_band(path) as src:
        if src.crs is None or src.crs.to_epsg() is None:
            raise OLRError(
                f"The band file {path} has no CRS with an EPSG code; BigEarthNet patches are in UTM "
                "(EPSG:326xx), so download the patch again."
            )
        if (src.height, src.width) != (PATCH_SIDE, PATCH_SIDE) or src.count != 1:
            raise OLRError(
                f"The band file {path} holds {src.count} band(s) of {src.height} x {src.width} pixels; "
                f"a BigEarthNet-S2 10 m band file holds one band of {PATCH_SIDE} x {PATCH_SIDE}; "
                "download the patch again."
            )
        return Patch(folder, codes, src.crs, src.transform, tuple(src.bounds))


def patch_folders(folder: Path) -> list[Path]:
    """The patch folders in `folder`, sorted by name; OLRError for a sub-folder that is not a patch."""
    if not folder.is_dir():
        raise OLRError(f"The folder {folder} does not exist; give the folder holding the BigEarthNet-S2 patch folders.")
    found = sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    for p in found:
        if not PATCH_NAME.fullmatch(p.name):
            raise OLRError(
                f"The folder {folder} holds the sub-folder {p.name}, which is no BigEarthNet-S2 patch (named like "
                "S2A_MSIL2A_20170613T101031_87_48); move it out or give the folder of the patch folders themselves."
            )
    if not found:
        raise OLRError(
            f"The folder {folder} holds no BigEarthNet-S2 patch folders; give the folder whose sub-folders are "
            "the patches (like S2A_MSIL2A_20170613T101031_87_48/)."
        )
    return found


def _read_patch(patch: Patch, dtype: np.dtype) -> np.ndarray:
    """(120, 120, 12) pixels of a patch in `dtype`, every band on its B02 grid."""
    out = np.empty((PATCH_SIDE, PATCH_SIDE, len(BAND_NAMES)), dtype=dtype)
    for i, band in enumerate(BAND_NAMES):
        path = patch.band_file(band)
        with _open_band(path) as src, read_errors_named(path):
            _check_band(src, path, patch, dtype)
            data = src.read(1)
            if src.transform == patch.transform and data.shape == out.shape[:2]:
                out[..., i] = data  # already on the grid: copied, not resampled
            else:
                grid = np.empty(out.shape[:2], dtype=dtype)
                reproject(
                    data,
                    grid,
                    src_transform=src.transform,
                    src_crs=src.crs,
                    dst_transform=patch.transform,
                    dst_crs=patch.crs,
                    resampling=REFLECTANCE_RESAMPLING,
                )
                out[..., i] = grid
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        raise OLRError(
            f"The patch {patch.folder} holds NaN or infinite pixels; BigEarthNet band files hold none, so "
            "download the patch again."
        )
    return out


def _check_band(src, path: Path, patch: Patch, dtype: np.dtype) -> None:
    """A band file must hold one band of `dtype` covering its patch in the patch's CRS."""
    if src.count != 1 or np.dtype(src.dtypes[0]) != dtype:
        raise OLRError(
            f"The band file {path} holds {src.count} band(s) of {src.dtypes[0]}, but the patches hold one band of "
            f"{dtype.name} per file; download the patch again."
        )
    tolerance = abs(patch.transform.a) / 100  # metres: a hundredth of a 10 m pixel
    if src.crs != patch.crs or not np.allclose(tuple(src.bounds), patch.bounds, rtol=0, atol=tolerance):
        raise OLRError(
            f"The band file {path} covers {tuple(round(v, 2) for v in src.bounds)} in {src.crs} but its "
            f"{GRID_BAND} file covers {tuple(round(v, 2) for v in patch.bounds)} in {patch.crs}; "
            "download the patch again."
        )


# --------------------------------------------------------------------------- splits


def read_split_file(path: str | os.PathLike) -> list[str]:
    """The patch names of one split file (one per line, blank lines skipped; plain text or .bz2)."""
    path = Path(path)
    if not path.is_file():
        raise OLRError(f"The split file {path} does not exist; give a file with one patch name per line.")
    try:
        opener = bz2.open if path.suffix == ".bz2" else open
        with opener(path, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise OLRError(f"The split file {path} could not be read ({e}); save it as UTF-8 text.") from None
    names = []
    for number, line in enumerate(lines, 1):
        name = line.strip()
        if not name:
            continue
        if not PATCH_NAME.fullmatch(name):
            raise OLRError(
                f"Line {number} of the split file {path} holds {label_schemes.short_repr(name, 80)}, which is no "
                "BigEarthNet-S2 patch name (like S2A_MSIL2A_20170613T101031_87_48); give one patch name per line."
            )
        names.append(name)
    return names


def read_split_files(split_files) -> dict[str, str]:
    """{patch name: split} from the train, val and test files; OLRError for a patch listed in two."""
    files = [Path(p) for p in split_files]
    if len(files) != len(SPLITS):
        raise OLRError(f"Give three split files (train, val, test), not {len(files)}.")
    split_of: dict[str, str] = {}
    file_of: dict[str, Path] = {}
    for split, path in zip(SPLITS, files):
        for name in read_split_file(path):
            if split_of.get(name, split) != split:
                raise OLRError(
                    f"The patch {name} is listed in both {file_of[name]} and {path}; a patch belongs to one split, "
                    "so remove it from one file."
                )
            split_of[name], file_of[name] = split, path
    return split_of


def official_split(split_files, folders: list[Path]) -> tuple[list[Path], np.ndarray, dict]:
    """(the patch folders named in the split files, their split, meta["split"])."""
    split_of = read_split_files(split_files)
    in_folder = {f.name for f in folders}
    left_out = [f.name for f in folders if f.name not in split_of]
    listed = [f for f in folders if f.name in split_of]
    return (
        listed,
        np.array([split_of[f.name] for f in listed], dtype=object),
        {
            "method": "official",
            "files": [file_digest(p) for p in split_files],
            "listed": {s: sum(1 for v in split_of.values() if v == s) for s in SPLITS},
            "listed_not_in_folder": sum(1 for name in split_of if name not in in_folder),
            "left_out_unlisted": len(left_out),
            "left_out_examples": left_out[:LEFT_OUT_EXAMPLES],
        },
    )


def spatial_split(patches: list[Patch], block: int, fractions, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(block id, split per patch, meta["split"]): blocks of `block` x `block` patch sides on BLOCK_CRS."""
    centres = {}
    for epsg in {p.crs.to_epsg() for p in patches}:
        group = [i for i, p in enumerate(patches) if p.crs.to_epsg() == epsg]
        xs = [(patches[i].bounds[0] + patches[i].bounds[2]) / 2 for i in group]
        ys = [(patches[i].bounds[1] + patches[i].bounds[3]) / 2 for i in group]
        for i, x, y in zip(group, *transform_points(CRS.from_epsg(epsg), BLOCK_CRS, xs, ys)):
            centres[i] = (x, y)
    x, y = np.array([centres[i] for i in range(len(patches))]).T
    side = PATCH_SIDE * abs(patches[0].transform.a)  # metres
    rows = np.floor((y.max() - y) / side).astype(np.int64)
    cols = np.floor((x - x.min()) / side).astype(np.int64)
    block_id = splits.spatial_blocks(rows, cols, block)
    split = splits.assign_blocks(block_id, fractions, seed)
    return (
        block_id,
        split,
        {
            "method": "spatial_blocks",
            "block": int(block),
            "block_crs": BLOCK_CRS,
            "block_side_m": float(side * block),
            "fractions": list(fractions),
            "seed": int(seed),
        },
    )


def separate_overlaps(patches: list[Patch], split: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """(keep (N,) bool, dropped {"val": n, "test": m}): patches sharing ground across splits dropped.

    As `splits.separate_splits` does for a tile grid: a validation patch overlapping a training
    patch is dropped, a test patch likewise for training and the validation patches kept. Blocks
    already keep patches of one place together (same centre); this catches the patches of
    neighbouring Sentinel-2 tiles that overlap across a block edge. Ground is compared in the
    patches' own CRS, so only patches of one UTM zone are compared: the strips where two zones'
    tiles cover one place are not.
    """
    side = PATCH_SIDE * abs(patches[0].transform.a)  # metres; overlapping patches lie in adjacent cells
    cell = [(p.crs.to_epsg(), int(p.bounds[0] // side), int(p.bounds[1] // side)) for p in patches]
    tolerance = abs(patches[0].transform.a) / 100  # patches that only touch do not share ground
    keep = np.ones(len(patches), dtype=bool)
    dropped = {}
    for name, earlier in splits.KEEPS_CLEAR_OF.items():
        by_cell: dict[tuple, list[int]] = {}
        for j in np.flatnonzero(np.isin(split, earlier) & keep):
            by_cell.setdefault(cell[j], []).append(j)
        mine = np.flatnonzero(split == name)
        for i in mine:
            epsg, cx, cy = cell[i]
            near = (j for dx in (-1, 0, 1) for dy in (-1, 0, 1) for j in by_cell.get((epsg, cx + dx, cy + dy), ()))
            keep[i] = not any(_overlap(patches[i].bounds, patches[j].bounds, tolerance) for j in near)
        dropped[name] = int((~keep[mine]).sum())
    return keep, dropped


def _overlap(a: tuple, b: tuple, tolerance: float) -> bool:
    """Two (left, bottom, right, top) boxes share more than `tolerance` in both directions."""
    return min(a[2], b[2]) - max(a[0], b[0]) > tolerance and min(a[3], b[3]) - max(a[1], b[1]) > tolerance


# --------------------------------------------------------------------------- the import


def import_bigearthnet(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split_files: tuple | list | None = None,
    scheme: str | dict | os.PathLike = "level3",
    split_block: int = PrepareOptions.split_block,
    split_fractions=PrepareOptions.split_fractions,
    seed: int = PrepareOptions.seed,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Import the BigEarthNet-S2 patch folders in `folder` into the dataset folder `out`; returns `out`.

    split_files: (train, val, test) files of patch names for the official split; None: a
    spatial split of `split_block` patches per block side (`split_fractions`, `seed`).
    scheme: the dataset's own labels (level3, ben19, ... or a JSON mapping); other schemes
    apply at training time through the per-code columns.
    Raises OLRError (nothing written) for the bad input listed in the module docstring.
    """
    parameters = {
        "folder": str(folder),
        "out": str(out),
        "split_files": None if split_files is None else [str(p) for p in split_files],
        "scheme": scheme if isinstance(scheme, dict) else str(scheme),
        "split_block": split_block,
        "split_fractions": list(split_fractions),
        "seed": seed,
        "overwrite": overwrite,
    }
    workspace.require_writable("import a dataset")
    opts = PrepareOptions(
        scheme=scheme, split_block=split_block, split_fractions=split_fractions, seed=seed, overwrite=overwrite
    ).check()
    label_scheme = label_schemes.get_scheme(scheme)
    out = Path(out)
    if out.exists() and not overwrite:
        raise OLRError(f"{out} already exists; choose another name or pass --overwrite to replace it.")
    progress = progress or (lambda done, total, message: None)

    with _quiet_rasterio(), concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        patches, split, block_id, split_meta = _patches_and_split(pool, Path(folder), split_files, opts, progress)
        split_meta["counts"] = splits.split_counts(split)
        with atomic.staged_folder(out, overwrite) as staging:
            dtype, stats = _write_images(pool, patches, split, staging / "images.npy", progress)
            codes, code_fractions, labels, fractions, scheme_meta = _labels(patches, label_scheme, folder)
            tiles = _tile_table(patches, block_id, split)
            meta = _meta(out, folder, parameters, dtype, stats, tiles, split_meta, codes, labels, scheme_meta)
            meta["warnings"] = _warnings(tiles, fractions, labels, split_meta)
            write_dataset(
                staging,
                images=None,
                fractions=fractions,
                tiles=tiles,
                meta=meta,
                min_fraction=MIN_FRACTION,
                code_fractions=code_fractions,
            )
    progress(len(patches), len(patches), f"dataset written to {out}")
    return out


def _patches_and_split(pool, folder: Path, split_files, opts: PrepareOptions, progress: Progress):
    """(patches checked, split (N,), block id (N,), meta["split"]): the official split or a spatial one."""
    folders = patch_folders(folder)
    if split_files is not None:
        listed, split, split_meta = official_split(split_files, folders)
        if not listed:
            raise OLRError(
                f"None of the {len(folders)} patches in {folder} is named in the split files; "
                "give the split files of this archive, or none for a spatial split."
            )
        # Patches named in no split file are not imported, so they are not checked either.
        patches = _scan(pool, listed, progress)
        block_id = np.full(len(patches), -1, dtype=np.int64)  # the official split has no blocks
    else:
        patches = _scan(pool, folders, progress)
        block_id, split, split_meta = spatial_split(patches, opts.split_block, opts.split_fractions, opts.seed)
        keep, split_meta["dropped_overlap"] = separate_overlaps(patches, split)
        patches, split, block_id = [p for p, k in zip(patches, keep) if k], split[keep], block_id[keep]
    if not (split == "train").any():
        raise OLRError(
            f"None of the patches imported from {folder} is in the training split; band statistics and "
            "training need training patches, so import a folder holding some."
        )
    return patches, split, block_id, split_meta


@contextlib.contextmanager
def _quiet_rasterio():
    """Ignore NotGeoreferencedWarning while the reading threads run.

    rasterio silences it with `warnings.catch_warnings` around its in-memory datasets (those
    `reproject` makes of arrays), which is not thread-safe: threads restoring each other's
    filters let it through now and then, though every grid here is georeferenced (each band
    file's CRS and bounds are checked). A filter set before the threads start is in every
    list they save and restore, so it holds throughout.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def _scan(pool, folders: list[Path], progress: Progress) -> list[Patch]:
    patches = []
    for i in range(0, len(folders), CHUNK):
        patches.extend(pool.map(scan_patch, folders[i : i + CHUNK]))
        progress(len(patches), len(folders), "checking patches")
    return patches


def _write_images(pool, patches: list[Patch], split: np.ndarray, path: Path, progress: Progress):
    """images.npy of all patches in order; (dtype, band statistics of the training tiles)."""
    with _open_band(patches[0].band_file(GRID_BAND)) as src:
        dtype = np.dtype(src.dtypes[0])
    writer = TileWriter(path, (PATCH_SIDE, PATCH_SIDE, len(BAND_NAMES)), dtype)
    stats = BandStats(len(BAND_NAMES))
    try:
        for i in range(0, len(patches), CHUNK):
            chunk = np.stack(list(pool.map(lambda p: _read_patch(p, dtype), patches[i : i + CHUNK])))
            writer.append(chunk)
            stats.update(chunk[split[i : i + CHUNK] == "train"])
            progress(i + len(chunk), len(patches), "importing patches")
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return dtype, stats


def _labels(patches: list[Patch], scheme: label_schemes.Scheme, folder):
    """(codes present, (N, C) code presence, labels present, (N, L) label presence, meta["scheme"])."""
    codes = sorted({c for p in patches for c in p.codes})
    column = {c: j for j, c in enumerate(codes)}
    code_fractions = np.zeros((len(patches), len(codes)), dtype=np.float32)
    for i, p in enumerate(patches):
        code_fractions[i, [column[c] for c in p.codes]] = 1.0
    # Presence, not a sum: a label is present when any of its codes is (sums could exceed 1).
    label_fractions = (code_fractions @ scheme.code_matrix(codes) > 0).astype(np.float32)
    occurring = label_fractions.any(0)
    if not occurring.any():
        raise OLRError(
            f"No patch in {folder} has a label of the scheme {scheme.name!r}; choose another scheme (e.g. level3)."
        )
    labels = [lab for lab, k in zip(scheme.labels, occurring) if k]
    scheme_meta = {
        **scheme.to_json(),
        "n_labels": len(scheme.labels),
        "dropped_codes": list(scheme.dropped_codes),
        "absent": [lab.name for lab, k in zip(scheme.labels, occurring) if not k],
    }
    return codes, code_fractions, labels, label_fractions[:, occurring], scheme_meta


def _tile_table(patches: list[Patch], block_id: np.ndarray, split: np.ndarray) -> pd.DataFrame:
    """One row per patch: its name, EPSG code, bounds in its CRS and in lon/lat."""
    n = len(patches)
    left, bottom, right, top = np.array([p.bounds for p in patches], dtype=np.float64).reshape(n, 4).T
    epsg = np.array([p.crs.to_epsg() for p in patches], dtype=np.int64)
    lonlat = {c: np.zeros(n) for c in ("lon_min", "lat_min", "lon_max", "lat_max")}
    for code in np.unique(epsg):
        rows = np.flatnonzero(epsg == code)
        # The four corners of each patch, as the preparer takes tile bounds to lon/lat.
        xs = np.stack([left[rows], right[rows], left[rows], right[rows]], 1)
        ys = np.stack([top[rows], top[rows], bottom[rows], bottom[rows]], 1)
        lon, lat = transform_points(CRS.from_epsg(int(code)), "EPSG:4326", xs.ravel().tolist(), ys.ravel().tolist())
        lon, lat = np.reshape(lon, xs.shape), np.reshape(lat, xs.shape)
        lonlat["lon_min"][rows], lonlat["lon_max"][rows] = lon.min(1), lon.max(1)
        lonlat["lat_min"][rows], lonlat["lat_max"][rows] = lat.min(1), lat.max(1)
    return pd.DataFrame(
        {
            "tile_id": np.arange(n, dtype=np.int64),
            "row_off": np.zeros(n, dtype=np.int64),
            "col_off": np.zeros(n, dtype=np.int64),
            "split": np.asarray(split).astype(str),
            "block_id": np.asarray(block_id, dtype=np.int64),
            "nodata_share": np.zeros(n, dtype=np.float32),
            "patch": [p.name for p in patches],
            "epsg": epsg,
            "x_min": left,
            "y_min": bottom,
            "x_max": right,
            "y_max": top,
            **lonlat,
        }
    )


def _meta(
    out: Path, folder, parameters, dtype, stats: BandStats, tiles, split_meta, codes, labels, scheme_meta
) -> dict:
    """meta.json of an imported BigEarthNet dataset (write_dataset adds the counts)."""
    return {
        "kind": "bigearthnet",
        "name": out.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sources": {"folder": str(Path(folder).resolve()), "split_files": split_meta.get("files")},
        "tile": PATCH_SIDE,
        "tile_shape": [PATCH_SIDE, PATCH_SIDE, len(BAND_NAMES)],
        "resolution": [10.0, 10.0],
        "crs": {
            "epsg": 4326,
            "wkt": CRS.from_epsg(4326).to_wkt(),
            "note": "each tile keeps its patch's own CRS (tiles.parquet: epsg, x_min..y_max in it); "
            "EPSG:4326 is the CRS all tiles share (lon_min..lat_max)",
            "tile_epsgs": sorted(int(e) for e in tiles["epsg"].unique()),
        },
        "fractions_kind": "presence",
        "finite": True,  # patches holding NaN or infinite pixels are refused (`_read_patch`)
        "scheme": scheme_meta,
        "labels": [lab.to_json() for lab in labels],
        "code_fractions": {"codes": codes},
        "bands": stats.to_json(list(BAND_NAMES)),
        "band_statistics_split": "train",
        "band_grid": {
            "grid_band": GRID_BAND,
            "resampling": REFLECTANCE_RESAMPLING.name,
            "resampled_bands": ["B01", "B05", "B06", "B07", "B8A", "B09", "B11", "B12"],
        },
        "dtype": dtype.name,
        "nodata": None,
        "split": split_meta,
        "dropped": {
            "not_in_split_files": int(split_meta.get("left_out_unlisted", 0)),
            "overlapping_another_split": sum(split_meta.get("dropped_overlap", {}).values()),
        },
        "preview": None,
        "parameters": parameters,
    }


def _warnings(tiles: pd.DataFrame, fractions: np.ndarray, labels, split_meta: dict) -> list[str]:
    """The thin-data warnings, with advice in this command's flags."""
    official = split_meta["method"] == "official"
    advice = Advice(
        tiles="importing more patches gives more",
        blocks="a smaller --split-block gives more",
        labels=(
            "a coarser --scheme or more patches avoid it"
            if official
            else "another --seed, a coarser --scheme or more patches avoid it"
        ),
        separated="a larger --split-block drops fewer",
    )
    return thin_data_warnings(
        tiles["split"],
        fractions > 0,
        [lab.name for lab in labels],
        None if official else tiles["block_id"],  # the official split is not made of blocks
        separated=split_meta.get("dropped_overlap"),
        advice=advice,
    )


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PrepareOptions()
    parser.add_argument("--folder", required=True, help="folder whose sub-folders are BigEarthNet-S2 patches")
    parser.add_argument("--out", required=True, metavar="data/NAME", help="dataset folder in the workspace")
    parser.add_argument(
        "--splits",
        nargs=3,
        default=None,
        metavar=("TRAIN_CSV", "VAL_CSV", "TEST_CSV"),
        help="the official split: files of patch names, one per line (default: a spatial split)",
    )
    parser.add_argument(
        "--scheme",
        default="level3",
        help=f"the dataset's own labels: {', '.join(label_schemes.SCHEME_NAMES)} or a JSON mapping of CLC codes "
        "(default level3); any of them also applies at training time",
    )
    parser.add_argument(
        "--split-block",
        type=int,
        default=defaults.split_block,
        help=f"side of the square split blocks, in patches (default {defaults.split_block}; spatial split only)",
    )
    prepare_options.add_flags(parser, ("split_fractions",), note=" (spatial split only)")
    prepare_options.add_flags(parser, ("seed", "overwrite"))


def bigearthnet_command(args: argparse.Namespace) -> int:
    path = import_bigearthnet(
        args.folder,
        output_folder(args.out),
        split_files=args.splits,
        scheme=args.scheme,
        split_block=args.split_block,
        split_fractions=tuple(args.split_fractions),
        seed=args.seed,
        overwrite=args.overwrite,
        progress=cli_progress(),
    )
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    print_warnings(meta)
    left_out = meta["split"].get("left_out_unlisted", 0)
    note = f"; {left_out} patches named in no split file left out" if left_out else ""
    print(
        f"imported {path}: {meta['n_tiles']} tiles, {len(meta['labels'])} labels, "
        f"{meta['split']['method']} split {meta['split_counts']}{note}"
    )
    return 0
