"""Per-tile scores of a label pair (the Correlations page's map) match a from-scratch computation."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from olr.analysis import pair_maps
from olr.data.dataset import load_dataset
from olr.errors import OLRError
from tests.fixtures.runs import make_tiny_dataset


def _matrices(ds, rows, seed=0):
    rng = np.random.default_rng(seed)
    n, k = len(rows), len(ds.label_names)
    return {
        "label_names": np.array(ds.label_names, dtype=str),
        "tile_indices": rows.astype(np.int64),
        "self_scores": rng.gamma(2.0, 3.0, size=(n, k)),
        "classifier_probabilities": rng.random((n, k)).astype(np.float32),
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_dataset(make_tiny_dataset(tmp_path_factory.mktemp("pair_maps") / "tiny"))


def test_pair_scores_match_the_definitions_tile_by_tile(tiny):
    rows = tiny.split_indices("test")
    mats = _matrices(tiny, rows)
    run = SimpleNamespace(id="r", path=tiny.path, config={"labels": tiny.meta["labels"]})
    i, j = 0, 2
    f = np.asarray(tiny.fractions, dtype=np.float64)[rows]
    y = np.asarray(tiny.fractions)[rows] >= tiny.meta["min_fraction"]

    product = pair_maps.pair_map(run, tiny.label_names[i], tiny.label_names[j], "product", "classifier", mats, tiny)
    assert np.array_equal(product.rows, rows) and product.fractions.shape == (len(rows), len(tiny.label_names))
    assert np.array_equal(product.presence, y)  # what the clicked tile's label chips show
    assert np.allclose(product.ground_truth, f[:, i] * f[:, j])
    p = mats["classifier_probabilities"].astype(np.float64)
    assert np.allclose(product.learned, p[:, i] * p[:, j])

    both = pair_maps.pair_map(run, i, j, "both", "siamese", mats, tiny)
    assert set(np.unique(both.ground_truth)) <= {0.0, 1.0}
    assert np.array_equal(both.ground_truth, (y[:, i] & y[:, j]).astype(float))
    # ŝ: each label's self-score over its own 99th percentile, capped at 1
    s = mats["self_scores"]
    s_hat = np.minimum(s / np.percentile(s, 99, axis=0), 1.0)
    assert np.allclose(both.learned, s_hat[:, i] * s_hat[:, j])
    assert both.learned.min() >= 0.0 and both.learned.max() <= 1.0


def test_scaled_self_scores_leave_a_never_scored_label_at_zero():
    s = np.array([[0.0, 2.0], [0.0, 4.0], [0.0, 400.0]])
    out = pair_maps.scaled_self_scores(s)
    assert (out[:, 0] == 0).all() and out[:, 1].max() == 1.0 and np.isfinite(out).all()


def test_unknown_choices_are_refused_with_a_sentence(tiny):
    mats = _matrices(tiny, tiny.split_indices("test"))
    del mats["self_scores"]
    assert pair_maps.sources_of(mats) == ["classifier"]
    with pytest.raises(OLRError, match="no siamese scores"):
        pair_maps.learned_pair(mats, 0, 1, "siamese")
    with pytest.raises(OLRError, match="Unknown ground truth"):
        pair_maps.ground_truth_pair(np.zeros((2, 2)), np.zeros((2, 2)), 0, 1, "sum")
    run = SimpleNamespace(id="r", path=tiny.path, config={"labels": tiny.meta["labels"]})
    with pytest.raises(OLRError, match="no label 'Nope'"):
        pair_maps.pair_map(run, "Nope", 0, source="classifier", matrices=mats, dataset=tiny)


def test_pane_correlation_is_pearson_over_finite_tiles_and_none_when_undefined():
    rng = np.random.default_rng(1)
    a, b = rng.random(50), rng.random(50)
    a[3], b[7] = np.nan, np.inf
    r, n = pair_maps.pane_correlation(a, b)
    keep = np.isfinite(a) & np.isfinite(b)
    x, y = a[keep] - a[keep].mean(), b[keep] - b[keep].mean()
    assert n == 48 and r == pytest.approx((x @ y) / np.sqrt((x @ x) * (y @ y)))
    assert pair_maps.pane_correlation(np.ones(10), b[10:20]) == (None, 10)  # a constant pane
    assert pair_maps.pane_correlation(a[:2], b[:2])[0] is None


def test_label_pairs_are_the_upper_triangle_without_undefined_entries():
    names = ["A", "B", "C"]
    gt = np.array([[1, 0.5, np.nan], [0.5, 1, -0.2], [np.nan, -0.2, 1]])
    learned = np.array([[1, 0.1, 0.3], [0.1, 1, 0.4], [0.3, 0.4, 1]])
    pairs = pair_maps.label_pairs(gt, learned, names)
    expected = pd.DataFrame({"pair": ["A × B", "B × C"], "gt": [0.5, -0.2], "learned": [0.1, 0.4]}, index=[0, 2])
    pd.testing.assert_frame_equal(pairs, expected)


def _pair_matrices(phi_upper: dict, cooc_upper: dict, n_labels: int = 4, n_tiles: int | None = None) -> dict:
    """gt_phi / gt_cooc with the given entries above the diagonal (symmetric), 1 / 50 on the diagonal."""
    phi, cooc = np.eye(n_labels), np.diag(np.full(n_labels, 50.0))
    for (i, j), v in phi_upper.items():
        phi[i, j] = phi[j, i] = v
    for (i, j), v in cooc_upper.items():
        cooc[i, j] = cooc[j, i] = v
    mats = {"gt_phi": phi, "gt_cooc": cooc}
    if n_tiles is not None:
        mats["tile_indices"] = np.arange(n_tiles)
    return mats


def test_the_informative_pair_needs_enough_tiles_together_before_its_phi_counts():
    # (0, 1): the highest phi, but together on 2 tiles only: its map would be two lit tiles in a dark scene
    mats = _pair_matrices({(0, 1): 0.9, (1, 2): 0.6, (2, 3): 0.4}, {(0, 1): 2, (1, 2): 12, (2, 3): 30}, n_tiles=100)
    assert pair_maps.informative_pair(mats) == (1, 2)
    # the bar is a share of the tiles: on 1000 tiles 2% is 20, which only (2, 3) reaches
    mats["tile_indices"] = np.arange(1000)
    assert pair_maps.informative_pair(mats) == (2, 3)
    # no pair reaches it: the highest phi among pairs together at all; NaN phi never wins
    few = _pair_matrices({(0, 1): np.nan, (0, 2): 0.3, (1, 3): 0.5}, {(0, 1): 4, (0, 2): 1, (1, 3): 2}, n_tiles=100)
    assert pair_maps.informative_pair(few) == (1, 3)


def test_the_informative_pair_breaks_phi_ties_by_tiles_together_and_is_none_without_co_occurrence():
    tie = _pair_matrices({(0, 1): 0.5, (2, 3): 0.5}, {(0, 1): 8, (2, 3): 9}, n_tiles=100)
    assert pair_maps.informative_pair(tie) == (2, 3)
    apart = _pair_matrices({(0, 1): -0.2, (2, 3): -0.1}, {}, n_tiles=100)
    assert pair_maps.informative_pair(apart) is None


def test_each_pane_is_coloured_from_zero_to_its_largest_score():
    assert pair_maps.colour_range(np.array([0.0, 0.02, np.nan, 0.18, 0.05])) == (0.0, 0.18)
    assert pair_maps.colour_range(np.zeros(5)) == (0.0, 1.0)  # nothing to show: the plain 0..1 scale
    assert pair_maps.colour_range(np.array([np.nan, np.inf])) == (0.0, 1.0)


def test_the_informative_pair_is_the_highest_phi_among_pairs_that_occur_together():
    phi = np.array([[1.0, 0.9, 0.5, 0.2], [0.9, 1.0, 0.1, np.nan], [0.5, 0.1, 1.0, 0.7], [0.2, np.nan, 0.7, 1.0]])
    cooc = np.array([[9, 0, 3, 2], [0, 5, 1, 4], [3, 1, 8, 6], [2, 4, 6, 7]])
    assert pair_maps.informative_pair({"gt_phi": phi, "gt_cooc": cooc}) == (2, 3)  # (0, 1) never co-occur
    assert pair_maps.informative_pair({"gt_phi": phi, "gt_cooc": np.diag(np.diag(cooc))}) is None
