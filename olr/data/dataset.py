"""The prepared-dataset format, and opening one.

A dataset is a folder `data/<name>/` holding:

- `images.npy`    (N, h, w, b) tiles, dtype as the source, opened memory-mapped;
- `fractions.npy` (N, L) float32 area fraction of each label over the tile's labelled
                  pixels; column order = `meta.json["labels"]`;
- `presence.npy`  (N, L) uint8, fraction >= meta["min_fraction"];
- `code_fractions.npy` (N, C) float32 fractions per class code (a CLC level-3 code, or
                  the value of a legend without CLC codes), columns =
                  meta["code_fractions"]["codes"] (lets training switch scheme without
                  re-preparation; absent for imports that carry no CLC codes);
- `tiles.parquet` tile table: tile_id, row_off, col_off, split ("train"/"val"/"test"),
                  block_id, nodata_share, bounds in the source CRS (x_min, y_min, x_max,
                  y_max) and in lon/lat (lon_min, lat_min, lon_max, lat_max);
- `meta.json`     sources + checksums, CRS, resolution, tile size/stride, label scheme,
                  labels (name, codes, color), label_encoding ("grid", "clc" or
                  "legend") and the legend's entries (`legend`: value, name, color,
                  clc_code), bands (name, mean, std, min, max over the training
                  tiles: `band_statistics_split`), split (method, block, buffer,
                  counts, validation/test tiles dropped to keep splits apart:
                  `dropped_overlap`, `dropped_buffer`), thin-data `warnings` (one
                  sentence each), `rgb` (the preview bands and how they were found),
                  `finite` (no NaN/inf pixel; nodata pixels of kept tiles filled as
                  `nodata_fill` says), band `scale`/`offset`, `fractions_kind`
                  ("presence" for presence-only imports such as BigEarthNet), creation
                  time, the exact parameters;
- `preview.png`   small RGB preview of the scene in lon/lat, bounds in meta["preview"];
- several scenes (`olr.data.scenes`): the tile table's `scene` column names each tile's scene, a
                  scene's tiles are consecutive rows, meta["scenes"] lists them (name, rows [start,
                  stop), n_tiles, split_counts, epsg), `scenes/NAME/` holds each one's meta.json
                  (its grid: crs, transform, width, height, tile_grid; sources, preview) and
                  preview.png; the dataset's preview is their mosaic and meta has no transform;
- `exports/`      (optional) the tile grid exported for a GIS (`olr.analysis.exports`), replaced as a whole.

`fractions.npy`, `tiles.parquet` and `meta.json["labels"]` are the stable contract.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from olr import atomic, workspace
from olr.data.label_schemes import Label, Scheme
from olr.data.legends import Legend, scheme_for
from olr.data.thin_data import thin_data_warnings
from olr.errors import OLRError

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
REQUIRED_FILES = ("images.npy", "fractions.npy", "presence.npy", "tiles.parquet", "meta.json")
TILE_COLUMNS = ("tile_id", "row_off", "col_off", "split")
#: tile bounds in the source CRS (tiles.parquet), as the preparer writes them
SOURCE_BOUNDS = ("x_min", "y_min", "x_max", "y_max")
#: the folder inside a dataset folder that its GIS export goes to by default
EXPORTS_FOLDER = "exports"
#: the folder inside a dataset of several scenes holding one folder per scene (meta.json, preview.png)
SCENES_FOLDER = "scenes"


def presence_from_fractions(fractions: np.ndarray, min_fraction: float) -> np.ndarray:
    """(N, L) uint8 presence: fraction >= min_fraction, and always > 0 (a label must be seen)."""
    f = np.asarray(fractions, dtype=np.float32)
    return ((f >= float(min_fraction)) & (f > 0)).astype(np.uint8)


@dataclass
class Dataset:
    """An opened dataset. `images` is a read-only memory map: slicing reads from disk."""

    path: Path
    meta: dict
    images: np.ndarray  # (N, h, w, b), memory-mapped
    fractions: np.ndarray  # (N, L) float32
    presence: np.ndarray  # (N, L) uint8
    tiles: pd.DataFrame

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def labels(self) -> list[Label]:
        return [Label.from_json(d) for d in self.meta["labels"]]

    @property
    def label_names(self) -> list[str]:
        return [d["name"] for d in self.meta["labels"]]

    @property
    def label_colors(self) -> list[str]:
        return [d.get("color", "#888888") for d in self.meta["labels"]]

    @property
    def n_tiles(self) -> int:
        return int(self.images.shape[0])

    @property
    def tile_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # (h, w, b)

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices (into images/fractions) of the tiles of one split (a copy: the caller may change it)."""
        if split not in SPLITS:
            raise OLRError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        return self._rows_of_split[split].copy()

    @cached_property
    def _rows_of_split(self) -> dict[str, np.ndarray]:
        # found once per opened dataset: comparing half a million split names takes ~40 ms a split,
        # and a page asks on every rerun
        split = self.tiles["split"].to_numpy()
        return {s: np.flatnonzero(split == s) for s in SPLITS}

    @cached_property
    def code_fractions(self) -> np.ndarray | None:
        """(N, C) float32 fractions per CLC code, or None for a dataset without codes."""
        p = self.path / "code_fractions.npy"
        return np.load(p, mmap_mode="r") if p.exists() else None

    @property
    def codes(self) -> list[int]:
        return list(self.meta.get("code_fractions", {}).get("codes", []))

    @cached_property
    def legend(self) -> Legend | None:
        """The legend the labels were read through (meta["legend"]), or None (CORINE codes)."""
        entries = self.meta.get("legend")
        if not entries:
            return None
        return Legend.from_json(entries, (self.meta.get("parameters") or {}).get("legend") or f"of {self.name}")

    def scheme(self, spec) -> Scheme:
        """The scheme `spec` over this dataset's classes (`olr.data.legends.scheme_for`): CORINE schemes for
        CORINE-coded labels, the legend's classes or a mapping grouping them for a legend without CLC codes."""
        return scheme_for(spec, self.legend)

    def fractions_for(self, labels: list[Label]) -> np.ndarray:
        """(N, L') float32 area fractions for another label set (e.g. a run's scheme).

        Uses the dataset's own columns when `labels` is a subset of them; otherwise
        aggregates the per-code fractions, so a scheme can change without re-preparation.
        """
        own = {lab.name: i for i, lab in enumerate(self.labels)}
        if all(lab.name in own for lab in labels):
            return np.asarray(self.fractions[:, [own[lab.name] for lab in labels]], dtype=np.float32)
        if self.code_fractions is None:
            raise OLRError(
                f"The dataset {self.name} has no per-code fractions (it was imported), so its labels "
                "cannot be regrouped; train with its own labels instead."
            )

        matrix = Scheme("run", tuple(labels)).code_matrix(self.codes)
        grouped = np.asarray(self.code_fractions, dtype=np.float32) @ matrix
        if self.meta.get("fractions_kind") == "presence":
            # Presence-only labels (BigEarthNet): a group of present codes is present (1), not 2 or 3.
            np.minimum(grouped, 1.0, out=grouped)
        return grouped

    def presence_for(self, labels: list[Label]) -> np.ndarray:
        """(N, L') uint8 presence for `labels`, with the dataset's min_fraction."""
        return presence_from_fractions(self.fractions_for(labels), self.meta.get("min_fraction", 0.0))

    @property
    def band_names(self) -> list[str]:
        return [b["name"] for b in self.meta.get("bands", [])]

    @property
    def scene_names(self) -> list[str]:
        """The names of the dataset's scenes, in the order of their tiles ([] for a dataset of one scene)."""
        return [entry["name"] for entry in self.meta.get("scenes") or []]

    def scene(self, name: str) -> Dataset:
        """One scene of a dataset of several, as a dataset of its own: its tiles (slices of this dataset's
        arrays, no copy; tile_id stays the position in this dataset), and meta with the scene's grid, CRS,
        preview and sources (`scenes/NAME/meta.json`) in place of the dataset's. Its path is the scene's folder."""
        entry = next((e for e in self.meta.get("scenes") or [] if e["name"] == name), None)
        if entry is None:
            have = ", ".join(self.scene_names) or "none: it was prepared from one scene"
            raise OLRError(f"The dataset {self.name} has no scene {name!r} (its scenes: {have}); choose one of them.")
        folder = self.path / SCENES_FOLDER / name
        try:
            own = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise OLRError(
                f"The scene {name!r} of the dataset {self.path} could not be read ({e}); prepare it again."
            ) from None
        start, stop = entry["rows"]
        meta = {k: v for k, v in self.meta.items() if k != "scenes"} | own
        tiles = self.tiles.iloc[start:stop].reset_index(drop=True)
        view = Dataset(
            folder, meta, self.images[start:stop], self.fractions[start:stop], self.presence[start:stop], tiles
        )
        if self.code_fractions is not None:
            view.__dict__["code_fractions"] = self.code_fractions[start:stop]  # the cached_property's slot
        return view


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Open a prepared dataset folder (or a dataset name inside the workspace's data/)."""
    p = Path(path)
    if not p.is_absolute() and not p.exists() and os.sep not in str(path):
        p = workspace.dataset_path(str(path))
    if not p.is_dir():
        raise OLRError(f"There is no dataset at {p}; prepare or import one first (python -m olr prepare --help).")
    missing = [f for f in REQUIRED_FILES if not (p / f).exists()]
    if missing:
        raise OLRError(f"The dataset {p} is incomplete (missing {', '.join(missing)}); prepare it again.")
    try:
        meta = json.loads((p / "meta.json").read_text(encoding="utf-8"))
        images = np.load(p / "images.npy", mmap_mode="r")
        fractions = np.load(p / "fractions.npy", mmap_mode="r")
        presence = np.load(p / "presence.npy", mmap_mode="r")
        tiles = pd.read_parquet(p / "tiles.parquet")
    except (OSError, ValueError, json.JSONDecodeError) as e:
        raise OLRError(f"The dataset {p} could not be read ({e}); prepare it again.") from None
    n = images.shape[0]
    if not (fractions.shape[0] == presence.shape[0] == len(tiles) == n) or fractions.shape[1] != len(
        meta.get("labels", [])
    ):
        raise OLRError(
            f"The dataset {p} is inconsistent (tile or label counts differ between files); prepare it again."
        )
    return Dataset(p, meta, images, fractions, presence, tiles)


def list_datasets(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the complete datasets in the workspace (hidden/partial folders skipped)."""
    root = Path(root) if root else workspace.data_dir()
    if not root.is_dir():
        return []
    if not workspace.is_readonly():
        # A preparation killed while swapping versions left the previous one aside: put it back.
        atomic.finish_interrupted(root)
    return sorted(
        d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and (d / "meta.json").exists()
    )


def write_dataset(
    folder: Path,
    *,
    images: np.ndarray,
    fractions: np.ndarray,
    tiles: pd.DataFrame,
    meta: dict,
    min_fraction: float,
    code_fractions: np.ndarray | None = None,
) -> None:
    """Write the label files, tile table and meta of a dataset into `folder` (a staging folder).

    `images` is written as `images.npy` unless it already exists there (the preparer
    streams tiles straight to disk). When meta lacks them, band statistics over the training
    tiles (all tiles if there are none; meta["band_statistics_split"] says which) and the
    thin-data warnings (`olr.data.thin_data`, meta["warnings"]) are added.
    """
    folder = Path(folder)
    fractions = np.asarray(fractions, dtype=np.float32)
    presence = presence_from_fractions(fractions, min_fraction)
    if not (folder / "images.npy").exists():
        np.save(folder / "images.npy", np.ascontiguousarray(images))
    np.save(folder / "fractions.npy", fractions)
    np.save(folder / "presence.npy", presence)
    if code_fractions is not None:
        np.save(folder / "code_fractions.npy", np.asarray(code_fractions, dtype=np.float32))
    missing = [c for c in TILE_COLUMNS if c not in tiles.columns]
    if missing:
        raise ValueError(f"tile table lacks columns {missing}")
    tiles.to_parquet(folder / "tiles.parquet", index=False)
    meta = dict(meta)
    meta.setdefault("format_version", FORMAT_VERSION)
    meta["n_tiles"] = len(tiles)
    meta["min_fraction"] = float(min_fraction)
    meta["split_counts"] = {s: int((tiles["split"] == s).sum()) for s in SPLITS}
    if "bands" not in meta or any("mean" not in b for b in meta["bands"]):
        train = tiles["split"].to_numpy() == "train"
        images = np.load(folder / "images.npy", mmap_mode="r")
        meta["bands"] = band_statistics(images, meta.get("bands"), rows=train if train.any() else None)
        meta["band_statistics_split"] = "train" if train.any() else "all"
    if "warnings" not in meta:
        block_id = tiles["block_id"] if "block_id" in tiles.columns else None
        meta["warnings"] = thin_data_warnings(tiles["split"], presence, [d["name"] for d in meta["labels"]], block_id)
    atomic.write_json(folder / "meta.json", meta)


def band_statistics(images: np.ndarray, bands: list[dict] | None = None, chunk: int = 256, *, rows=None) -> list[dict]:
    """Per-band mean, std, min, max over the tiles `rows` (indices or an (N,) bool mask; None: all),
    read in chunks (memory bounded); min/max are None without a tile.

    Give the training split's rows: statistics that normalise a model's inputs must not come
    from the tiles it is validated and tested on."""
    n, _, _, b = images.shape
    rows = np.arange(n) if rows is None else np.asarray(rows)
    index = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64)
    s = np.zeros(b)
    ss = np.zeros(b)
    lo = np.full(b, np.inf)
    hi = np.full(b, -np.inf)
    count = 0
    for i in range(0, len(index), chunk):
        x = np.asarray(images[index[i : i + chunk]], dtype=np.float64).reshape(-1, b)
        s += x.sum(0)
        ss += (x * x).sum(0)
        lo = np.minimum(lo, x.min(0)) if len(x) else lo
        hi = np.maximum(hi, x.max(0)) if len(x) else hi
        count += x.shape[0]
    mean = s / max(count, 1)
    std = np.sqrt(np.maximum(ss / max(count, 1) - mean**2, 0.0))
    names = [d.get("name") for d in bands] if bands else [f"band {i + 1}" for i in range(b)]
    finite = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
    return [
        {"name": names[i], "mean": float(mean[i]), "std": float(std[i]), "min": finite(lo[i]), "max": finite(hi[i])}
        for i in range(b)
    ]
