"""Import of the thesis's batch format (CLI `import-batches`).

The thesis kept a prepared set as numbered batches in one folder: `0.npy, 1.npy, ...`
holding (n, h, w, b) images and `labels0.npy, labels1.npy, ...` holding (n, L) binary
label rows, optionally with a file naming the L labels (one per line, or a JSON list).
The import streams batch by batch into the dataset format of `olr.data`: fractions are
the binary labels as float32 (presence), there are no per-code fractions and no
coordinates (row_off = col_off = -1), and the split is by blocks of consecutive tiles
(by default one block per batch, as batches held neighbouring tiles).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from olr import atomic, workspace
from olr.data import label_schemes, prepare_options, splits
from olr.data.dataset import write_dataset
from olr.data.prepare import Progress, cli_progress, file_digest, output_folder
from olr.data.rasters import DEFAULT_BAND_NAMES
from olr.data.thin_data import Advice, print_warnings, thin_data_warnings
from olr.data.tile_writer import BandStats, TileWriter
from olr.errors import OLRError

#: Colours for labels that are not CORINE classes (Tableau 10).
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
MIN_FRACTION = 0.5  # fractions are 0 or 1
#: How the thin-data warnings of an import end (`olr.data.thin_data`): the flags that help.
THIN_DATA_ADVICE = Advice(
    tiles="a larger share in --split-fractions or more batches give more",
    blocks="a smaller --split-block gives more",
    labels="another --seed or a smaller --split-block avoids it",
)
CHUNK = 256  # tiles copied at a time


def read_label_names(path: str | os.PathLike) -> list[str]:
    """Label names from a JSON list or a text file with one name per line."""
    path = Path(path)
    if not path.is_file():
        raise OLRError(
            f"The label-name file {path} does not exist; give a text file with one name per line or a JSON list."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OLRError(f"The label-name file {path} could not be read ({e}); save it as UTF-8 text.") from None
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as e:
            raise OLRError(
                f"The label-name file {path} is not a valid JSON list ({e}); fix it or use one name per line."
            ) from None
        if not all(isinstance(n, str) for n in names):
            raise OLRError(f'The label-name file {path} must list names as strings, like ["Urban", "Forest"].')
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    names = [n.strip() for n in names]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise OLRError(
            f"The label-name file {path} names {', '.join(map(repr, dup))} more than once; "
            "give each label a distinct name."
        )
    return names


def label_entries(names: list[str]) -> list[dict]:
    """{name, codes, color} per label: CORINE level-3 names get their code and official colour."""
    by_name = {c.level3.lower(): c for c in label_schemes.legend()}
    out, other = [], 0
    for name in names:
        c = by_name.get(name.strip().lower())
        if c is not None:
            out.append({"name": name, "codes": [c.code], "color": c.color})
        else:
            out.append({"name": name, "codes": [], "color": PALETTE[other % len(PALETTE)]})
            other += 1
    return out


def _open_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:
        raise OLRError(
            f"The batch file {path} is not a readable .npy array ({e}); re-export it with numpy.save."
        ) from None


def scan_batches(folder: str | os.PathLike) -> tuple[list[Path], list[Path], tuple[int, int, int], np.dtype, int]:
    """Check a batch folder; returns (image files, label files, (h, w, b), dtype, L).

    Every batch k needs `k.npy` (n_k, h, w, b) and `labels{k}.npy` (n_k, L) with binary
    values, k = 0..B-1, with the same h, w, b, dtype and L throughout.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise OLRError(f"The batch folder {folder} does not exist; give the folder holding 0.npy, labels0.npy, ...")
    images, labels = {}, {}
    for p in folder.iterdir():
        if m := re.fullmatch(r"(\d+)\.npy", p.name):
            images[int(m.group(1))] = p
        elif m := re.fullmatch(r"labels(\d+)\.npy", p.name):
            labels[int(m.group(1))] = p
    if not images:
        raise OLRError(
            f"The folder {folder} holds no image batches (0.npy, 1.npy, ...); "
            "give the folder of the thesis batch format."
        )
    count = max(images) + 1
    for k in range(max(count, max(labels, default=-1) + 1)):
        if k not in images:
            raise OLRError(
                f"The batch folder {folder} has labels{k}.npy but no {k}.npy; add the image batch or remove its labels."
            )
        if k not in labels:
            raise OLRError(
                f"The batch folder {folder} has {k}.npy but no labels{k}.npy; add the label batch or remove the images."
            )
    shape = dtype = n_labels = None
    for k in range(count):
        x, y = _open_npy(images[k]), _open_npy(labels[k])
        if x.ndim != 4:
            raise OLRError(f"The image batch {images[k]} has shape {x.shape}; it must be (n, h, w, bands).")
        if y.ndim != 2:
            raise OLRError(f"The label batch {labels[k]} has shape {y.shape}; it must be (n, labels).")
        if shape is None:
            shape, dtype, n_labels = tuple(x.shape[1:]), x.dtype, y.shape[1]
        if tuple(x.shape[1:]) != shape or x.dtype != dtype:
            raise OLRError(
                f"The image batch {images[k]} holds {x.shape[1:]} {x.dtype} tiles but {images[0].name} holds "
                f"{shape} {dtype}; all batches need the same tile size, bands and dtype."
            )
        if y.shape[0] != x.shape[0]:
            raise OLRError(
                f"The label batch {labels[k]} has {y.shape[0]} rows but {images[k].name} has {x.shape[0]} images; "
                "each label row must belong to one image."
            )
        if y.shape[1] != n_labels:
            raise OLRError(
                f"The label batch {labels[k]} has {y.shape[1]} labels but {labels[0].name} has {n_labels}; "
                "all batches need the same labels."
            )
        values = np.unique(np.asarray(y))
        bad = values[~np.isin(values, (0, 1))]
        if len(bad):
            raise OLRError(
                f"The label batch {labels[k]} holds the value {bad[0].item()!r}; labels must be binary (0 or 1)."
            )
    return [images[k] for k in range(count)], [labels[k] for k in range(count)], shape, np.dtype(dtype), int(n_labels)


def import_batches(
    folder: str | os.PathLike,
    out: str | os.PathLike,
    *,
    label_names: str | os.PathLike | list[str] | None = None,
    split_block: int | None = None,
    split_fractions=(0.7, 0.15, 0.15),
    seed: int = 0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Import a thesis batch folder into the dataset folder `out`; returns `out`.

    label_names: a file (one per line or a JSON list) or a list; default "label 1".."label L".
    split_block: tiles per split block, consecutive in batch order; default one block per batch.
    Raises OLRError (nothing written) for missing or mismatched batches and non-binary labels.
    """
    parameters = _parameters(folder, out, label_names, split_block, split_fractions, seed, overwrite)
    workspace.require_writable("import a dataset")
    split_fractions = splits.check_fractions(split_fractions)
    if split_block is not None and (not isinstance(split_block, (int, np.integer)) or split_block < 1):
        raise OLRError(f"The split block size {split_block!r} is not valid; use a whole number of tiles, at least 1.")
    image_files, label_files, shape, dtype, n_labels = scan_batches(folder)
    names = _label_names(label_names, n_labels)
    out = Path(out)
    if out.exists() and not overwrite:
        raise OLRError(f"{out} already exists; choose another name or pass --overwrite to replace it.")
    progress = progress or (lambda done, total, message: None)
    sizes = [int(_open_npy(p).shape[0]) for p in image_files]
    total = sum(sizes)
    if total == 0:
        raise OLRError(f"The batches in {folder} hold no images; check the export.")

    with concurrent.futures.ThreadPoolExecutor(1) as hasher:
        digests = [hasher.submit(file_digest, p) for p in image_files + label_files]
        with atomic.staged_folder(out, overwrite) as staging:
            imported = _stream_batches(image_files, label_files, staging / "images.npy", shape, dtype, total, progress)
            block_id, split, split_meta = _split(imported.batch, split_block, split_fractions, seed)
            tiles = _tile_table(imported, block_id, split)
            train = split == "train"
            meta = _meta(
                out, folder, digests, parameters, shape, dtype, names, imported.stats, split_meta, sizes, train
            )
            presence = imported.fractions >= MIN_FRACTION
            meta["warnings"] = thin_data_warnings(split, presence, names, block_id, advice=THIN_DATA_ADVICE)
            write_dataset(
                staging, images=None, fractions=imported.fractions, tiles=tiles, meta=meta, min_fraction=MIN_FRACTION
            )
    progress(total, total, f"dataset written to {out}")
    return out


def _parameters(folder, out, label_names, split_block, split_fractions, seed, overwrite) -> dict:
    """The call, as meta.json records it."""
    names_given = (
        None if label_names is None else (list(label_names) if isinstance(label_names, list) else str(label_names))
    )
    return {
        "folder": str(folder),
        "out": str(out),
        "label_names": names_given,
        "split_block": split_block,
        "split_fractions": list(split_fractions),
        "seed": seed,
        "overwrite": overwrite,
    }


def _label_names(label_names: str | os.PathLike | list[str] | None, n_labels: int) -> list[str]:
    """The L label names: given as a list or a file, else "label 1".."label L"."""
    if label_names is None:
        return [f"label {i + 1}" for i in range(n_labels)]
    names = list(label_names) if isinstance(label_names, list) else read_label_names(label_names)
    if len(names) != n_labels:
        where = "the list" if isinstance(label_names, list) else str(label_names)
        raise OLRError(
            f"{where} names {len(names)} labels but the batches hold {n_labels}; give one name per label column."
        )
    return names


@dataclass
class _Imported:
    """What streaming the batches gives besides images.npy, per tile in batch order."""

    fractions: np.ndarray  # (N, L) float32, the binary labels
    batch: np.ndarray  # (N,) int64, the batch number
    index_in_batch: np.ndarray  # (N,) int
    stats: BandStats


def _stream_batches(image_files, label_files, path: Path, shape, dtype, total: int, progress: Progress) -> _Imported:
    """Copy the image batches into `path` (images.npy) a CHUNK at a time; read the label batches."""
    writer = TileWriter(path, shape, dtype)
    stats = BandStats(shape[2])
    fractions, batch_of, index_in_batch = [], [], []
    try:
        done = 0
        for k, (image_file, label_file) in enumerate(zip(image_files, label_files)):
            images = _open_npy(image_file)
            for i in range(0, len(images), CHUNK):
                chunk = np.asarray(images[i : i + CHUNK])
                writer.append(chunk)
                stats.update(chunk)
            fractions.append(np.asarray(_open_npy(label_file), dtype=np.float32))
            batch_of.append(np.full(len(images), k))
            index_in_batch.append(np.arange(len(images)))
            done += len(images)
            progress(done, total, f"importing batch {k + 1}/{len(image_files)}")
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return _Imported(np.concatenate(fractions), np.concatenate(batch_of), np.concatenate(index_in_batch), stats)


def _split(batch: np.ndarray, split_block: int | None, split_fractions, seed: int):
    """(block id (N,), split (N,), meta["split"]): blocks of consecutive tiles, by default one per batch."""
    if split_block is None:
        block_id, method = batch.astype(np.int64), "contiguous_blocks (one per batch)"
    else:
        block_id, method = splits.contiguous_blocks(len(batch), split_block), "contiguous_blocks"
    split = splits.assign_blocks(block_id, split_fractions, seed)
    split_meta = {
        "method": method,
        "block": split_block,
        "fractions": list(split_fractions),
        "seed": int(seed),
        "counts": splits.split_counts(split),
    }
    return block_id, split, split_meta


def _tile_table(imported: _Imported, block_id: np.ndarray, split: np.ndarray) -> pd.DataFrame:
    """The tile table: no coordinates (row_off = col_off = -1, bounds NaN), but each tile's batch and index."""
    total = len(imported.batch)
    nan = np.full(total, np.nan)
    return pd.DataFrame(
        {
            "tile_id": np.arange(total, dtype=np.int64),
            "row_off": np.full(total, -1, dtype=np.int64),
            "col_off": np.full(total, -1, dtype=np.int64),
            "split": split.astype(str),
            "block_id": block_id,
            "nodata_share": np.zeros(total, dtype=np.float32),
            "batch": imported.batch.astype(np.int64),
            "index_in_batch": imported.index_in_batch.astype(np.int64),
            **{c: nan for c in ("x_min", "y_min", "x_max", "y_max", "lon_min", "lat_min", "lon_max", "lat_max")},
        }
    )


def _meta(
    out: Path, folder, digests, parameters: dict, shape, dtype, names, bands: BandStats, split, sizes, train
) -> dict:
    """meta.json of an imported dataset (write_dataset adds the counts); waits for the source hashes.

    Band statistics are over the training tiles `train` (N,) bool, or all tiles when none is for training."""
    h, w, b = shape
    labels = label_entries(names)
    band_names = DEFAULT_BAND_NAMES.get(b, [f"band {i + 1}" for i in range(b)])
    return {
        "kind": "thesis_batches",
        "name": out.name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sources": {
            "folder": str(Path(folder).resolve()),
            "files": [f.result() for f in digests],
            "label_names": parameters["label_names"],
        },
        "tile": int(h) if h == w else [int(h), int(w)],
        "tile_shape": [int(h), int(w), int(b)],
        "scheme": {"name": "imported", "labels": labels, "n_labels": len(labels), "dropped_codes": [], "absent": []},
        "labels": labels,
        "bands": bands.to_json(band_names, train if train.any() else None),
        "band_statistics_split": "train" if train.any() else "all",
        "dtype": dtype.name,
        "nodata": None,
        "crs": None,
        "split": split,
        "batches": {"count": len(sizes), "sizes": sizes},
        "dropped": {},
        "preview": None,
        "parameters": parameters,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--folder", required=True, help="folder with 0.npy, labels0.npy, 1.npy, labels1.npy, ...")
    parser.add_argument("--out", required=True, metavar="data/NAME", help="dataset folder in the workspace")
    parser.add_argument("--label-names", default=None, help="file with the label names (one per line, or a JSON list)")
    parser.add_argument(
        "--split-block", type=int, default=None, help="tiles per split block (default: one block per batch)"
    )
    prepare_options.add_flags(parser, ("split_fractions", "seed", "overwrite"))


def import_batches_command(args: argparse.Namespace) -> int:

    path = import_batches(
        args.folder,
        output_folder(args.out),
        label_names=args.label_names,
        split_block=args.split_block,
        split_fractions=tuple(args.split_fractions),
        seed=args.seed,
        overwrite=args.overwrite,
        progress=cli_progress(),
    )
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    print(f"imported {path}: {meta['n_tiles']} tiles, {len(meta['labels'])} labels, split {meta['split_counts']}")
    print_warnings(meta)
    return 0
