"""Per-tile scores of one label pair, ground truth beside the network's, for a map of the pair.

The correlation matrices (`olr.analysis.correlations`) say *whether* two labels go together;
these scores say *where*. For labels i and j on the tiles a run's matrices were computed on
(`matrices["tile_indices"]`, the test split by default), each tile gets two values in 0..1:

- ground truth: the product of the two area fractions F_i·F_j ("product"), or 1 where both
  labels are present at the dataset's min_fraction and 0 elsewhere ("both");
- learned: the classifier's p_i·p_j ("classifier"), or the Siamese pair score ŝ_i·ŝ_j
  ("siamese"), where ŝ is each label's self-score divided by its 99th percentile over these
  tiles and clipped to 0..1, so a few outliers do not wash the map out.

Which pair a map opens on (`informative_pair`, also the study report's pair) and how a pane is
coloured (`colour_range`) are decided here too; which tile a click on the map hit is
`olr.analysis.tile_images.tile_at`, for every map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from olr.analysis import correlations, evaluation
from olr.errors import OLRError

TRUTHS = ("product", "both")
SOURCES = ("siamese", "classifier")
#: Percentile of each label's self-scores that maps to 1 in the Siamese pair score.
SELF_SCORE_SCALE_PERCENTILE = 99
#: A pair worth a first map occurs together on at least this many tiles and this share of them
#: (with fewer, its map is a few lit tiles in a dark scene whatever its phi).
MIN_PAIR_TILES = 5
MIN_PAIR_SHARE = 0.02
INFORMATIVE_PAIR_RULE = (
    "the label pair with the highest ground-truth phi among those together on at least "
    f"{MIN_PAIR_TILES} tiles and {MIN_PAIR_SHARE:.0%} of them, else among those together on any"
)


@dataclass
class PairMap:
    """Scores of labels (i, j) on n tiles; arrays are aligned row by row."""

    rows: np.ndarray  # (n,) int64, rows of the dataset (its tile table, images, fractions)
    fractions: np.ndarray  # (n, L) float32, area fractions of the run's labels on these tiles
    presence: np.ndarray  # (n, L) bool, the run's labels present on these tiles (the dataset's min_fraction)
    ground_truth: np.ndarray  # (n,) float64 in 0..1
    learned: np.ndarray  # (n,) float64 in 0..1


def sources_of(matrices: dict) -> list[str]:
    """The learned sources a run's matrices hold: "siamese" (self_scores) and/or "classifier"."""
    keys = {"siamese": "self_scores", "classifier": "classifier_probabilities"}
    return [s for s in SOURCES if keys[s] in matrices]


def scaled_self_scores(self_scores) -> np.ndarray:
    """(n, L) float64 self-scores divided by each label's 99th percentile, clipped to 0..1.

    A label whose percentile is not positive (never scored) is only clipped.
    """
    s = np.asarray(self_scores, dtype=float)
    scale = np.nanpercentile(s, SELF_SCORE_SCALE_PERCENTILE, axis=0)
    return np.clip(s / np.where(scale > 0, scale, 1.0), 0.0, 1.0)


def ground_truth_pair(fractions, presence, i: int, j: int, truth: str = "product") -> np.ndarray:
    """(n,) float64 ground truth of the pair: F_i·F_j ("product") or both present as 0/1 ("both").

    fractions: (n, L) area fractions; presence: (n, L) 0/1 presence.
    """
    if truth not in TRUTHS:
        raise OLRError(f"Unknown ground truth {truth!r}; use one of {', '.join(TRUTHS)}.")
    if truth == "product":
        f = np.asarray(fractions)
        return (f[:, i] * f[:, j]).astype(np.float64)
    y = np.asarray(presence).astype(bool)
    return (y[:, i] & y[:, j]).astype(float)


def learned_pair(matrices: dict, i: int, j: int, source: str = "siamese") -> np.ndarray:
    """(n,) float64 learned score of the pair from a run's matrices (see the module docstring)."""
    available = sources_of(matrices)
    if source not in available:
        choices = ", ".join(available) or "none (compute the matrices again)"
        raise OLRError(f"The run's matrices hold no {source} scores; use one of {choices}.")
    if source == "siamese":
        s = scaled_self_scores(matrices["self_scores"])
    else:
        s = np.asarray(matrices["classifier_probabilities"], dtype=float)
    return s[:, i] * s[:, j]


def pair_map(
    run, i: int | str, j: int | str, truth: str = "product", source: str = "siamese", matrices=None, dataset=None
) -> PairMap:
    """Ground-truth and learned scores of labels i and j (index or name) on the run's matrix tiles.

    `matrices` (`correlations.load_matrices`) and `dataset` (`evaluation.run_dataset`) may be
    passed when the caller already holds them; they are loaded otherwise.
    """

    run = evaluation.as_run(run)
    mats = correlations.load_matrices(run) if matrices is None else matrices
    ds = evaluation.run_dataset(run) if dataset is None else dataset
    names = [str(s) for s in mats["label_names"]]
    i, j = (_label_index(names, x) for x in (i, j))
    rows = np.asarray(mats["tile_indices"])
    labels = evaluation.run_labels(run)
    fractions = ds.fractions_for(labels)[rows]
    presence = np.asarray(ds.presence_for(labels))[rows].astype(bool)
    return PairMap(
        rows=rows,
        fractions=fractions,
        presence=presence,
        ground_truth=ground_truth_pair(fractions, presence, i, j, truth),
        learned=learned_pair(mats, i, j, source),
    )


def pane_correlation(ground_truth, learned) -> tuple[float | None, int]:
    """(Pearson r, n) of the two scores over tiles where both are finite; r is None for n < 3 or a constant side."""
    left = np.asarray(ground_truth, dtype=float)
    right = np.asarray(learned, dtype=float)
    both = np.isfinite(left) & np.isfinite(right)
    n = int(both.sum())
    if n >= 3 and np.std(left[both]) > 0 and np.std(right[both]) > 0:
        return float(np.corrcoef(left[both], right[both])[0, 1]), n
    return None, n


def label_pairs(reference, learned, names: list[str]):
    """pandas DataFrame, one row per label pair i < j: pair ("A × B"), gt, learned; pairs with a NaN dropped.

    reference, learned: (L, L) matrices in the order of `names`.
    """
    import pandas as pd

    gt = np.asarray(reference, dtype=float)
    lm = np.asarray(learned, dtype=float)
    iu = np.triu_indices(len(names), 1)
    labels = [f"{names[i]} × {names[j]}" for i, j in zip(*iu, strict=True)]
    pairs = pd.DataFrame({"pair": labels, "gt": gt[iu], "learned": lm[iu]})
    return pairs.dropna()


def informative_pair(matrices: dict) -> tuple[int, int] | None:
    """The label pair (i < j) worth a map (`INFORMATIVE_PAIR_RULE`): the highest ground-truth phi among
    pairs together on enough of the matrices' tiles (`MIN_PAIR_TILES`, `MIN_PAIR_SHARE` of
    `tile_indices`), else among pairs together on any tile; ties: more tiles together first.
    None when no two labels ever co-occur.
    """
    cooc = np.asarray(matrices["gt_cooc"], dtype=float)
    phi = np.asarray(matrices["gt_phi"], dtype=float)
    i, j = np.triu_indices(len(cooc), 1)
    together = (cooc[i, j] > 0) & np.isfinite(phi[i, j])
    if not together.any():
        return None
    n_tiles = len(matrices.get("tile_indices", ()))
    supported = together & (cooc[i, j] >= max(MIN_PAIR_TILES, MIN_PAIR_SHARE * n_tiles))
    candidates = np.flatnonzero(supported if supported.any() else together)
    best = max(candidates, key=lambda k: (phi[i[k], j[k]], cooc[i[k], j[k]]))
    return int(i[best]), int(j[best])


def colour_range(scores) -> tuple[float, float]:
    """(0, the largest finite score) to colour a pair map by, or (0, 1) when no score is above 0.

    Each map spans its own scores because the question is where the pair lies, not how high its
    scores run: F_i·F_j never exceeds 0.25, and on a 0…1 scale a real pair would look uniformly dark.
    """
    values = np.asarray(scores, dtype=float)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    return (0.0, top if top > 0 else 1.0)


def _label_index(names: list[str], label: int | str) -> int:
    if isinstance(label, str):
        if label not in names:
            raise OLRError(f"The run has no label {label!r}; pick one of {', '.join(names)}.")
        return names.index(label)
    return int(label)
