"""Summaries of one dataset beyond its label statistics: splits, tile selections, per-tile label lists.

What the Datasets explorer shows, computed here so a notebook gets the same numbers: the
split sizes and shares, the labels in display order, which tiles a filter selects and a
reproducible sample of them, and each tile's present labels largest share first. Label
frequencies and co-occurrence live in `olr.data.label_stats`.
"""

from __future__ import annotations

import numpy as np

from olr.data.dataset import SPLITS

#: Columns of the tile table that place a tile on the map (EPSG:4326 degrees).
COORDINATE_COLUMNS = ("lon_min", "lat_min", "lon_max", "lat_max")
#: `split` value meaning every tile of the dataset.
ALL = "all"


def has_coordinates(dataset) -> bool:
    """True if the tile table places the tiles on the map (imported batches carry no coordinates)."""
    table = dataset.tiles
    if not set(COORDINATE_COLUMNS).issubset(table.columns):
        return False
    return not table[list(COORDINATE_COLUMNS)].isna().all().any()


def split_counts(dataset) -> dict[str, int]:
    """Tiles per split, in the order of `SPLITS` (train, val, test)."""
    return {s: len(dataset.split_indices(s)) for s in SPLITS}


def split_percent(dataset) -> dict[str, float]:
    """Share of the dataset's tiles in each split, in percent (0 for an empty dataset)."""
    counts = split_counts(dataset)
    return {s: 100 * counts[s] / max(dataset.n_tiles, 1) for s in SPLITS}


def split_note(dataset) -> str:
    """How the dataset's split was made, in words: blocks, tiles dropped to keep splits apart, band statistics.

    Reads meta["split"] and meta["band_statistics_split"]; what an older dataset does not record is not said."""
    meta = dataset.meta
    split = meta.get("split") or {}
    parts = []
    if split.get("method") == "spatial_blocks":
        block = split.get("block")
        parts.append(f"whole blocks of {block}×{block} tiles go to one split")
    elif str(split.get("method", "")).startswith("contiguous_blocks"):
        parts.append("whole blocks of consecutive tiles go to one split")
    dropped = {s: sum((split.get(k) or {}).get(s, 0) for k in ("dropped_overlap", "dropped_buffer")) for s in SPLITS}
    if "dropped_overlap" in split:
        buffer = int(split.get("buffer") or 0)
        near = f"closer than {buffer} tile width{'s' if buffer > 1 else ''} to" if buffer else "sharing pixels with"
        parts.append(
            f"validation and test tiles {near} a tile of another split are dropped "
            f"({dropped['val']:,} validation, {dropped['test']:,} test)"
        )
    if meta.get("band_statistics_split"):
        which = "training tiles" if meta["band_statistics_split"] == "train" else "tiles of all splits"
        parts.append(f"band statistics are over the {which}")
    text = "; ".join(parts)
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def mean_labels_per_tile(stats) -> float:
    """Mean number of present labels per tile, from `LabelStats.labels_per_tile` (0 for no tiles)."""
    histogram = np.asarray(stats.labels_per_tile)
    return float((np.arange(len(histogram)) * histogram).sum() / max(stats.n_tiles, 1))


def present_labels(stats) -> np.ndarray:
    """(k,) int64 indices of the labels present in at least one tile; all labels when none is."""
    present = np.asarray(stats.counts) > 0
    return np.flatnonzero(present) if present.any() else np.arange(len(stats.names))


def most_frequent_label(dataset) -> str | None:
    """Name of the label present in the most tiles (the first on ties); None without labels."""
    names = dataset.label_names
    if not names:
        return None
    return names[int(np.argmax(np.asarray(dataset.presence).sum(axis=0)))]


def tiles_with(dataset, split: str = ALL, label: str | None = None) -> np.ndarray:
    """(m,) int64 ascending rows of the tiles in `split` ("all" or a split) that carry `label` (None: any)."""
    rows = np.arange(dataset.n_tiles) if split == ALL else dataset.split_indices(split)
    if label is not None:
        j = dataset.label_names.index(label)
        rows = rows[np.asarray(dataset.presence[rows, j]).astype(bool)]
    return rows


def sample_rows(rows, k: int, seed: int = 0) -> np.ndarray:
    """At most `k` of `rows`, drawn without replacement by `seed` (same seed, same tiles), ascending."""
    rows = np.asarray(rows)
    if len(rows) <= k:
        return np.sort(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=k, replace=False))


def tile_labels(
    fractions, presence, names: list[str], colors: list[str], limit: int = 5
) -> list[list[tuple[str, str, float]]]:
    """Per tile, its present labels as (name, colour, area fraction), largest fraction first, at most `limit`.

    fractions: (n, L) area fractions; presence: (n, L) 0/1, both in the order of `names`/`colors`.
    """
    out = []
    for f, p in zip(np.asarray(fractions), np.asarray(presence).astype(bool), strict=True):
        order = np.argsort(-f)
        out.append([(names[j], colors[j], float(f[j])) for j in order if p[j]][:limit])
    return out


def tile_names(table, step: int | None = None) -> list[str]:
    """How people are told which tile this is: "tile 123 · row 4, col 7", one per row of the tile table.

    The number is the tile's id (its position in images.npy); the grid row and column follow from
    its pixel offset and the grid `step` (meta["stride"]), and are left out for tiles without a place
    on a grid (imported batches: offset -1; a missing step).
    """
    ids = np.asarray(table["tile_id"], dtype=np.int64)
    if not step or step <= 0:
        return [f"tile {i}" for i in ids]
    rows = np.asarray(table["row_off"], dtype=np.int64)
    cols = np.asarray(table["col_off"], dtype=np.int64)
    return [
        f"tile {i} · row {r // step}, col {c // step}" if r >= 0 and c >= 0 else f"tile {i}"
        for i, r, c in zip(ids, rows, cols, strict=True)
    ]


def grid_step(dataset) -> int | None:
    """Pixels between neighbouring tiles of a dataset cut from one scene (meta["stride"]); None for imports."""
    step = dataset.meta.get("stride")
    return int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0 else None


def dataset_tile_names(dataset, rows) -> list[str]:
    """`tile_names` of the dataset's tiles at `rows` (positions in images.npy), in the order given."""
    return tile_names(dataset.tiles.iloc[np.asarray(rows, dtype=np.int64)], grid_step(dataset))


def tile_label_text(fractions, names: list[str], min_fraction: float, limit: int = 6) -> list[str]:
    """Per tile, its labels at or above `min_fraction` with area shares, largest first ("Olive groves 45%, ...").

    fractions: (n, L) area fractions in the order of `names`; a tile without any reads "no label".
    """
    fractions = np.asarray(fractions, dtype=float)
    order = np.argsort(-fractions, axis=1)[:, :limit]
    out = []
    for row, idx in zip(fractions, order, strict=True):
        parts = [f"{names[j]} {row[j] * 100:.0f}%" for j in idx if row[j] >= min_fraction and row[j] > 0]
        out.append(", ".join(parts) if parts else "no label")
    return out
