"""The Evaluate page's example tiles come from `evaluation.error_tiles` and match its former inline selection."""

import numpy as np
import pytest

from olr.analysis import evaluation, metrics
from olr.errors import OLRError


@pytest.fixture
def predictions():
    rng = np.random.default_rng(3)
    n, k = 200, 4
    return {
        "indices": np.sort(rng.choice(5000, size=n, replace=False)).astype(np.int64),
        "y_true": (rng.random((n, k)) < 0.3).astype(np.uint8),
        "probabilities": rng.random((n, k)).astype(np.float32),
        "label_names": np.array(["A", "B", "C", "D"]),
    }


def _page_before(pred, j, t):
    """The Evaluate page's own selection before it used the library (kept as the reference)."""
    y = pred["y_true"][:, j].astype(bool)
    p = pred["probabilities"][:, j]
    decided = metrics.binarize(p, t)
    return {
        "tp": np.flatnonzero(y & decided)[np.argsort(-p[y & decided])],
        "fp": np.flatnonzero(~y & decided)[np.argsort(-p[~y & decided])],
        "fn": np.flatnonzero(y & ~decided)[np.argsort(p[y & ~decided])],
    }


@pytest.mark.parametrize("t", [0.05, 0.3, 0.5, 0.97])
def test_error_tiles_from_held_predictions_match_the_pages_former_selection(predictions, t):
    for j in range(4):
        for kind, positions in _page_before(predictions, j, t).items():
            rows, probs = evaluation.error_tiles(None, j, t, kind, n=None, predictions=predictions)
            assert rows.tolist() == predictions["indices"][positions].tolist()
            assert np.array_equal(probs, predictions["probabilities"][positions, j].astype(np.float64))
            name = str(predictions["label_names"][j])
            first, _ = evaluation.error_tiles(None, name, t, kind, n=5, predictions=predictions)
            assert first.tolist() == rows[:5].tolist()


def test_the_four_outcomes_partition_the_tiles(predictions):
    kinds = evaluation.ERROR_KINDS
    rows = [evaluation.error_tiles(None, "B", 0.4, kind, n=None, predictions=predictions)[0] for kind in kinds]
    together = np.concatenate(rows)
    assert len(together) == len(predictions["indices"]) and set(together) == set(predictions["indices"])
    with pytest.raises(OLRError, match="Unknown outcome"):
        evaluation.error_tiles(None, "B", 0.4, "miss", predictions=predictions)
