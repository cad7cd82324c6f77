"""The embedding explorer's numbers: a 2-D map of a Siamese run's tile embeddings and a tile's nearest tiles.

A Siamese run gives a tile x one k-dim embedding e_i(x) per label i (`olr.analysis.embeddings`).
`projection` places the tiles in 2-D by principal component analysis of one label's vectors
e_i (N, k) or of all labels' vectors concatenated (N, L·k): the coordinates on the first two
principal axes of the centred vectors, each axis signed so that its largest loading is positive
(the same vectors give the same picture, whatever the order of the tiles). Up to `EXACT_DIMS`
dimensions the axes are the exact eigenvectors of the covariance (numpy `eigh`); above, a
randomised subspace iteration with a fixed seed finds them (Halko, Martinsson & Tropp 2011: an SVD
of an (N, 10) sketch after `POWER_ITERATIONS` power iterations). On one busy CPU core, 10,000 tiles
take about 0.1 s for one label or 19 labels × 16 dimensions, and about 1 s for 43 labels × 64.
`nearest` ranks tiles by the cosine similarity of one label's embedding (or all labels'
concatenated) to a picked tile's, through `olr.analysis.embeddings.nearest_tiles`.

Where the vectors come from (`split_embeddings`): the run's export (`python -m olr embed RUN
[--split S]`, `<run>/embeddings/<dataset>[.<split>].npy`) when one holds every tile of the split
and is not older than the run's best checkpoint; otherwise they are computed now for the split's
tiles with the best checkpoint and kept in memory only. Nothing is written either way, so the
explorer works alike in a read-only workspace; an export saves the computing on later starts.
Labels' area fractions and presence are the dataset's (`Dataset.fractions_for` /
`presence_for` of the run's labels, the dataset's min_fraction), as on the pair map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from olr.analysis import embeddings as exports
from olr.analysis import inference, run_data
from olr.data import summary
from olr.data.dataset import presence_from_fractions
from olr.data.label_schemes import Label
from olr.errors import OLRError
from olr.runs.store import RunLayout

#: up to this many dimensions the principal axes are exact (covariance eigenvectors); above, sketched
EXACT_DIMS = 512
#: power iterations of the sketched principal axes (each sharpens the separation of the top axes)
POWER_ITERATIONS = 3
#: the sketch's extra columns beyond the two axes wanted
OVERSAMPLING = 8
#: neighbours listed for a picked tile
NEIGHBOURS = 10


@dataclass(frozen=True)
class SplitEmbeddings:
    """A run's label embeddings of one split's tiles, row by row."""

    embeddings: np.ndarray  # (n, L, k) float16, row p is the tile rows[p]
    rows: np.ndarray  # (n,) int64 dataset rows (positions in images.npy), ascending like split_indices
    labels: list[Label]  # (L,) the run's labels, in its config["labels"] order
    split: str
    source: Path | None  # the export read, or None when computed now (kept in memory only)

    @property
    def label_names(self) -> list[str]:
        return [lab.name for lab in self.labels]


def export_for(run, dataset, split: str) -> tuple[Path, np.ndarray] | None:
    """(export path, positions (n,) of the split's tiles in it) of the run's export that holds them, or None.

    The split's own export is preferred to a whole-dataset one; an export of another dataset,
    other labels or older than the run's best checkpoint is not used.
    """
    run = run_data.as_run(run)
    rows = dataset.split_indices(split)
    names = [str(d["name"]) for d in run.config["labels"]]
    folder = RunLayout(run.path).embeddings
    best = RunLayout(run.path).best
    for name in (f"{dataset.name}.{split}.npy", f"{dataset.name}.npy"):
        path = folder / name
        if not path.exists() or not exports.index_path(path).exists():
            continue
        if best.exists() and path.stat().st_mtime < best.stat().st_mtime:
            continue
        array, index = exports.load_embeddings(path)
        if str(index["dataset"]) != dataset.name or [str(s) for s in index["label_names"]] != names:
            continue
        exported = np.asarray(index["rows"], dtype=np.int64)
        if array.shape[0] != len(exported):
            continue
        positions = np.searchsorted(exported, rows) if np.all(np.diff(exported) > 0) else None
        if positions is None or np.any(positions >= len(exported)) or np.any(exported[positions] != rows):
            continue
        return path, positions
    return None


def split_embeddings(run, split: str = "val", dataset=None, batch_size: int = 256) -> SplitEmbeddings:
    """The run's label embeddings of the `split` tiles: read from its export, else computed now (module docstring).

    `dataset`: the run's dataset when the caller holds it (`run_data.run_dataset` otherwise).
    """
    run = run_data.as_run(run)
    if run.config.get("kind") != "siamese":
        raise OLRError(f"The run {run.id} is a {run.config.get('kind')} run; embeddings come from a Siamese run.")
    run_data.require_finished(run)
    dataset = run_data.run_dataset(run) if dataset is None else dataset
    rows = dataset.split_indices(split)
    if len(rows) == 0:
        raise OLRError(f"The dataset {dataset.name} has no {split} tiles; choose another split.")
    labels = run_data.run_labels(run)
    found = export_for(run, dataset, split)
    if found is not None:
        path, positions = found
        array, _ = exports.load_embeddings(path)
        whole = len(positions) == array.shape[0]  # positions are then 0..n-1: the memory map as it is
        return SplitEmbeddings(array if whole else np.asarray(array[positions]), rows, labels, split, path)
    model = run_data.best_model(run)
    computed = inference.label_embeddings(model, dataset, rows, batch_size=batch_size)
    return SplitEmbeddings(np.asarray(computed, dtype=np.float16), rows, labels, split, None)


def label_vectors(embeddings, label: int | None = None) -> np.ndarray:
    """(N, k) float32 vectors e_label of every tile, or (N, L·k) all labels' concatenated when `label` is None."""
    a = np.asarray(embeddings)
    if label is not None and not 0 <= int(label) < a.shape[1]:
        raise OLRError(f"Label index {label} is outside 0..{a.shape[1] - 1}; pick another label.")
    v = a[:, int(label), :] if label is not None else a.reshape(len(a), -1)
    return np.asarray(v, dtype=np.float32)


def _exact_axes(x: np.ndarray) -> np.ndarray:
    """(d, m ≤ 2) the covariance's top eigenvectors, largest eigenvalue first."""
    x = x.astype(np.float64)
    _, vectors = np.linalg.eigh(x.T @ x)
    return vectors[:, ::-1][:, :2]


def _sketched_axes(x: np.ndarray, seed: int) -> np.ndarray:
    """(d, m ≤ 2) the top principal axes by randomised subspace iteration (see the module docstring)."""
    n, d = x.shape
    q = min(2 + OVERSAMPLING, n, d)
    sketch = np.random.default_rng(seed).standard_normal((d, q)).astype(x.dtype)
    basis, _ = np.linalg.qr(x @ sketch)
    for _ in range(POWER_ITERATIONS):
        across, _ = np.linalg.qr(x.T @ basis)
        basis, _ = np.linalg.qr(x @ across)
    _, _, vt = np.linalg.svd((basis.T @ x).astype(np.float64), full_matrices=False)
    return vt[:2].T


def _signed(axes: np.ndarray) -> np.ndarray:
    """`axes` with each column's largest-magnitude entry positive (the first such entry on ties)."""
    biggest = np.abs(axes).argmax(axis=0)
    signs = np.sign(axes[biggest, np.arange(axes.shape[1])])
    return axes * np.where(signs == 0, 1.0, signs)


def projection(vectors, exact_dims: int = EXACT_DIMS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """((N, 2) float64 coordinates on the first two principal axes, (2,) their shares of the total variance).

    vectors: (N, d) array (`label_vectors`). Axes are exact up to `exact_dims` dimensions and sketched
    above (module docstring); each is signed so that its largest loading is positive. With fewer than
    two tiles, or fewer than two dimensions, the missing coordinates are 0.
    """
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise OLRError(f"Expected (tiles, dimensions) vectors, got shape {x.shape}; pass label_vectors(...).")
    coords = np.zeros((len(x), 2))
    shares = np.zeros(2)
    if len(x) < 2 or x.shape[1] == 0:
        return coords, shares
    x = x - x.mean(axis=0)
    axes = _exact_axes(x) if x.shape[1] <= exact_dims else _sketched_axes(x, seed)
    axes = _signed(axes)
    found = x.astype(np.float64) @ axes
    coords[:, : found.shape[1]] = found
    total = float(np.square(x, dtype=np.float64).sum())
    if total > 0:
        shares = np.square(coords).sum(axis=0) / total
    return coords, shares


def _label_index(names: list[str], label) -> int | None:
    """The column of `label` (an index or a name; None stays None)."""
    if label is None or isinstance(label, (int, np.integer)):
        return None if label is None else int(label)
    if label not in names:
        raise OLRError(f"The run has no label {label!r}; pick one of {', '.join(names)}.")
    return names.index(label)


def _tile_facts(data: SplitEmbeddings, dataset, positions) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(fractions (n, L) float32, presence (n, L) bool, tile names, label texts) of the tiles at `positions`."""
    rows = data.rows[np.asarray(positions, dtype=np.int64)]
    min_fraction = float(dataset.meta.get("min_fraction", 0.0))
    fractions = np.asarray(dataset.fractions_for(data.labels))[rows]
    presence = presence_from_fractions(fractions, min_fraction).astype(bool)
    texts = summary.tile_label_text(fractions, data.label_names, min_fraction)
    return fractions, presence, summary.dataset_tile_names(dataset, rows), texts


def embedding_map(data: SplitEmbeddings, dataset, label=None, colour=None) -> pd.DataFrame:
    """One row per tile of `data`: where the projection puts it and the colour label's area fraction.

    label: the embedding to project (index or name), None for all labels concatenated; colour: the label
    whose fraction and presence the rows carry (default: `label`, else the label present in most of
    these tiles). Columns: position (row of `data.embeddings`), row (dataset row), tile_id, tile (its
    name), x, y (float64), fraction (float64, 0..1), present (bool), labels (the tile's labels with
    shares, as text). attrs: {"shares": [x, y] variance shares, "label": name or None, "colour": name}.
    """
    names = data.label_names
    label = _label_index(names, label)
    colour = _label_index(names, colour)
    positions = np.arange(len(data.rows))
    fractions, presence, tile_names, texts = _tile_facts(data, dataset, positions)
    if colour is None:
        colour = label if label is not None else int(presence.sum(axis=0).argmax())
    coords, shares = projection(label_vectors(data.embeddings, label))
    frame = pd.DataFrame(
        {
            "position": positions,
            "row": data.rows,
            "tile_id": dataset.tiles["tile_id"].to_numpy()[data.rows],
            "tile": tile_names,
            "x": coords[:, 0],
            "y": coords[:, 1],
            "fraction": fractions[:, colour].astype(np.float64),
            "present": presence[:, colour],
            "labels": texts,
        }
    )
    frame.attrs = {
        "shares": [float(s) for s in shares],
        "label": None if label is None else names[label],
        "colour": names[colour],
    }
    return frame


def nearest(data: SplitEmbeddings, dataset, position: int, label=None, k: int = NEIGHBOURS) -> pd.DataFrame:
    """The `k` tiles most cosine-similar to the tile at `position` by `label`'s embedding (None: all labels).

    Returns a DataFrame, most similar first: rank (1..k), position, row, tile, similarity (cosine, −1..1;
    `olr.analysis.embeddings.nearest_tiles`), fraction and present (of `label`; left out for all labels),
    labels (that tile's labels with shares, as text).
    """
    index = _label_index(data.label_names, label)
    found, similarity = exports.nearest_tiles(data.embeddings, int(position), label=index, k=k)
    fractions, presence, tile_names, texts = _tile_facts(data, dataset, found)
    frame = pd.DataFrame(
        {
            "rank": np.arange(1, len(found) + 1),
            "position": found.astype(np.int64),
            "row": data.rows[found],
            "tile": tile_names,
            "similarity": similarity.astype(np.float64),
        }
    )
    if index is not None:
        frame["fraction"] = fractions[:, index].astype(np.float64)
        frame["present"] = presence[:, index]
    frame["labels"] = texts
    return frame


def tile_chips(data: SplitEmbeddings, dataset, positions) -> list[list[tuple[str, str, float]]]:
    """Per tile at `positions`, its present labels as (name, colour, area share), largest first (a gallery's chips)."""
    fractions, presence, _, _ = _tile_facts(data, dataset, positions)
    return summary.tile_labels(fractions, presence, data.label_names, [lab.color for lab in data.labels])
