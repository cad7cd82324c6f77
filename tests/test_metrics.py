"""Multi-label metrics against hand-computed cases and brute-force definitions."""

import math

import numpy as np
import pytest

from olr.analysis import metrics


def _hand_case():
    #            L0 L1 L2
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
    p = np.array([[0.9, 0.1, 0.2], [0.4, 0.6, 0.1], [0.8, 0.2, 0.3], [0.1, 0.1, 0.1]])
    return y, p


def test_hand_case_counts_conventions_averages_and_warnings():
    y, p = _hand_case()
    m = metrics.multilabel_metrics(y, p, 0.5, names=["L0", "L1", "L2"])
    assert m.tp.tolist() == [1, 0, 0] and m.fp.tolist() == [1, 1, 0]
    assert m.fn.tolist() == [1, 0, 1] and m.tn.tolist() == [1, 3, 3]
    assert m.support.tolist() == [2, 0, 1] and m.frequency.tolist() == [0.5, 0.0, 0.25]
    # L0: P = R = F1 = F2 = 1/2
    assert (m.precision[0], m.recall[0], m.f1[0], m.f2[0]) == (0.5, 0.5, 0.5, 0.5)
    # L1 has no positives: precision defined (0: one false alarm), recall/F/AP undefined
    assert m.precision[1] == 0.0 and all(math.isnan(v) for v in (m.recall[1], m.f1[1], m.f2[1], m.ap[1]))
    # L2 never predicted: precision 0 by convention, recall 0, F 0
    assert (m.precision[2], m.recall[2], m.f1[2], m.f2[2]) == (0.0, 0.0, 0.0, 0.0)
    # AP L0: scores .9(+) .8(-) .4(+) .1(-): 1/2 * 1 + 1/2 * 2/3; L2: its positive scores highest
    assert m.ap[0] == pytest.approx(0.5 + 1 / 3) and m.ap[2] == 1.0
    assert m.no_positive_labels == ["L1"] and m.never_predicted == ["L2"]
    assert m.zero_tp_labels == [{"label": "L2", "support": 1}]
    # macro over the labels with positives (L0, L2) only
    assert m.macro["precision"] == 0.25 and m.macro["recall"] == 0.25 and m.macro["f1"] == 0.25
    assert m.macro["ap"] == pytest.approx((5 / 6 + 1) / 2)
    # micro: TP 1, FP 2, FN 2, TN 7
    assert (m.micro["tp"], m.micro["fp"], m.micro["fn"], m.micro["tn"]) == (1, 2, 2, 7)
    assert m.micro["precision"] == pytest.approx(1 / 3) and m.micro["recall"] == pytest.approx(1 / 3)
    assert m.micro["f2"] == pytest.approx(5 / 15)
    assert m.accuracy == pytest.approx(8 / 12) and m.baseline_accuracy == 0.75 and not m.beats_baseline
    text = " ".join(m.warnings)
    assert "L2 (1 positives)" in text and "all-absent baseline" in text and "L1" in text
    s = m.summary()
    assert s["macro"]["ap"] == pytest.approx((5 / 6 + 1) / 2) and s["beats_baseline"] is False
    table = m.table()
    assert list(table["label"]) == ["L0", "L1", "L2"] and table["recall"].isna().tolist() == [False, True, False]


def test_all_absent_predictions_reproduce_the_thesis_trap():
    rng = np.random.default_rng(3)
    y = (rng.random((500, 8)) < 0.06).astype(np.uint8)
    p = np.full(y.shape, 0.01)
    m = metrics.multilabel_metrics(y, p, 0.5)
    assert m.accuracy == m.baseline_accuracy == pytest.approx(1 - y.mean())
    assert m.accuracy > 0.9  # looks good ...
    assert not m.beats_baseline  # ... and is nothing
    assert len(m.zero_tp_labels) == int((y.sum(0) > 0).sum())
    assert len(m.never_predicted) == 8
    assert m.micro["precision"] == 0.0 and m.micro["recall"] == 0.0 and m.micro["f2"] == 0.0
    assert any("does not beat the all-absent baseline" in w for w in m.warnings)
    assert any("no true positive" in w for w in m.warnings)


def test_all_correct_predictions_score_one_and_raise_no_warning():
    rng = np.random.default_rng(4)
    y = (rng.random((200, 5)) < 0.3).astype(int)
    m = metrics.multilabel_metrics(y, y.astype(float), 0.5)
    for key in ("precision", "recall", "f1", "f2", "ap"):
        assert np.all(getattr(m, key) == 1.0) and m.macro[key] == 1.0 and m.micro[key] == 1.0
    assert m.accuracy == 1.0 and m.beats_baseline and m.warnings == [] and m.fp.sum() == 0


def test_per_label_thresholds_apply_per_column():
    y = np.array([[1, 1], [0, 0], [1, 1]])
    p = np.array([[0.3, 0.3], [0.2, 0.2], [0.7, 0.7]])
    m = metrics.multilabel_metrics(y, p, np.array([0.25, 0.5]))
    assert m.tp.tolist() == [2, 1] and m.thresholds.tolist() == [0.25, 0.5]
    # F-beta for a general beta matches the formula on P and R
    m3 = metrics.multilabel_metrics(y, p, 0.5, beta=3.0)
    P, R = m3.precision[0], m3.recall[0]
    assert m3.fbeta[0] == pytest.approx(10 * P * R / (9 * P + R)) and "f3" in m3.table().columns


def _brute_ap(y, s):
    """AP by definition: walk the distinct thresholds from high to low, sum (R_k - R_k-1) P_k."""
    if y.sum() == 0:
        return math.nan
    ap, prev_r = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        pred = s >= t
        tp = (pred & (y == 1)).sum()
        r = tp / y.sum()
        ap += (r - prev_r) * tp / pred.sum()
        prev_r = r
    return ap


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_average_precision_equals_brute_force_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((60, 5)) < [0.1, 0.3, 0.5, 0.0, 0.9]).astype(int)
    s = np.round(rng.random((60, 5)) * 0.6 + 0.4 * y, 1)  # rounding makes many ties
    ap = metrics.average_precision(y, s)
    for j in range(5):
        expected = _brute_ap(y[:, j], s[:, j])
        if math.isnan(expected):
            assert math.isnan(ap[j])
        else:
            assert ap[j] == pytest.approx(expected, abs=1e-12)


def _fbeta_at(y, s, t, beta):
    pred = s >= t
    tp = (pred & y).sum()
    fp = (pred & ~y).sum()
    fn = (~pred & y).sum()
    b2 = beta**2
    return (1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp)


def _brute_best(y, s, beta, lo, hi):
    grid = set(np.linspace(lo, hi, 99).tolist()) | set(s.tolist()) | {lo, hi}
    grid |= {v + 1e-9 for v in s.tolist()}
    return max(_fbeta_at(y, s, t, beta) for t in grid if lo <= t <= hi)


@pytest.mark.parametrize("seed,beta", [(0, 2.0), (1, 2.0), (2, 1.0), (3, 0.5), (4, 2.0)])
def test_threshold_search_matches_brute_force_over_every_candidate(seed, beta):
    rng = np.random.default_rng(seed)
    n, n_labels = 80, 4
    y = rng.random((n, n_labels)) < [0.05, 0.2, 0.5, 0.3]
    y[0, 0] = True
    s = np.clip(0.35 * y + rng.random((n, n_labels)) * 0.75, 0, 1)
    s[:, 3] = np.round(s[:, 3], 1)  # ties
    lo, hi = metrics.THRESHOLD_RANGE
    thresholds, scores = metrics.tune_per_label_thresholds(y, s, beta)
    for j in range(n_labels):
        best = _brute_best(y[:, j], s[:, j], beta, lo, hi)
        assert lo <= thresholds[j] <= hi
        assert _fbeta_at(y[:, j], s[:, j], thresholds[j], beta) == pytest.approx(best, abs=1e-12)
        assert scores[j] == pytest.approx(best, abs=1e-12)
    t, score = metrics.tune_uniform_threshold(y, s, beta)
    best = _brute_best(y.reshape(-1), s.reshape(-1), beta, lo, hi)
    assert _fbeta_at(y.reshape(-1), s.reshape(-1), t, beta) == pytest.approx(best, abs=1e-12)
    assert score == pytest.approx(best, abs=1e-12) and lo <= t <= hi
    # The tuned thresholds are never worse than 0.5 on the tuning data.
    at_half = metrics.multilabel_metrics(y, s, 0.5, beta=beta)
    tuned = metrics.multilabel_metrics(y, s, thresholds, beta=beta)
    assert np.all(tuned.fbeta >= at_half.fbeta - 1e-12)


def test_threshold_search_respects_range_and_falls_back_without_positives():
    y = np.array([[0, 1], [0, 1], [0, 0], [0, 0]], dtype=bool)
    s = np.array([[0.9, 0.001], [0.5, 0.002], [0.3, 0.0005], [0.1, 0.0001]])
    thresholds, scores = metrics.tune_per_label_thresholds(y, s, 2.0, fallback=0.42)
    # label 0 has no positives; label 1's positives score below the range's lower end
    assert thresholds.tolist() == [0.42, 0.42] and math.isnan(scores[0]) and scores[1] == 0.0
    # a perfectly separable label gets a threshold strictly between the classes
    y1 = np.array([1, 1, 0, 0], bool)
    s1 = np.array([0.8, 0.6, 0.4, 0.2])
    t, f = metrics.tune_uniform_threshold(y1, s1)
    assert 0.4 < t <= 0.6 and f == 1.0
