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


# ------------------------------------------------------------------ scikit-learn as the oracle


def _oracle_cases():
    """(name, y (n, L), p (n, L)): random multi-label cases and constructed ones with a label
    without positives, a label present on every tile, a label never predicted, a tile without
    labels and tied scores."""
    rng = np.random.default_rng(11)
    cases = []
    for seed, n, rates in ((0, 120, [0.05, 0.3, 0.6, 0.15]), (1, 60, [0.5, 0.1, 0.2, 0.02, 0.4])):
        r = np.random.default_rng(seed)
        y = (r.random((n, len(rates))) < rates).astype(np.uint8)
        p = np.clip(0.45 * y + r.random(y.shape) * 0.7, 0, 1)
        cases.append((f"random{seed}", y, p))
    y = (rng.random((40, 5)) < 0.35).astype(np.uint8)
    y[:, 1] = 0  # no positives
    y[0] = 0  # a tile without labels
    y[5:, 4] = 0
    y[1:5, 4] = 1
    p = np.round(np.clip(0.4 * y + rng.random(y.shape) * 0.6, 0, 1), 1)  # ties
    p[:, 2] = 0.1  # never predicted at 0.5
    p[2, 1] = 0.9  # a false alarm on the label without positives
    cases.append(("constructed", y, p))
    y = (rng.random((30, 3)) < 0.4).astype(np.uint8)
    y[:, 0] = 1  # present on every tile: AUROC undefined
    cases.append(("always_present", y, np.round(rng.random(y.shape), 1)))
    return cases


@pytest.mark.parametrize("name,y,p", _oracle_cases(), ids=lambda c: c if isinstance(c, str) else "")
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_every_metric_matches_scikit_learn_under_the_stated_convention(name, y, p, threshold):
    skm = pytest.importorskip("sklearn.metrics")
    m = metrics.multilabel_metrics(y, p, threshold)
    q = (p >= threshold).astype(int)
    with_pos = np.flatnonzero(y.sum(0) > 0)
    rows = y.sum(1) > 0
    for beta, key in ((1.0, "f1"), (2.0, "f2")):
        kw = {"beta": beta, "zero_division": 0}
        assert m.micro[key] == pytest.approx(skm.fbeta_score(y, q, average="micro", **kw))
        assert m.macro[key] == pytest.approx(skm.fbeta_score(y, q, average="macro", labels=with_pos, **kw))
        assert m.samples[key] == pytest.approx(skm.fbeta_score(y[rows], q[rows], average="samples", **kw))
        per = skm.fbeta_score(y, q, average=None, **kw)
        assert (
            np.allclose(getattr(m, key)[with_pos], per[with_pos])
            and np.isnan(np.delete(getattr(m, key), with_pos)).all()
        )
    assert np.allclose(m.precision, skm.precision_score(y, q, average=None, zero_division=0))
    assert m.micro["precision"] == pytest.approx(skm.precision_score(y, q, average="micro", zero_division=0))
    assert m.macro["recall"] == pytest.approx(skm.recall_score(y, q, average="macro", labels=with_pos, zero_division=0))
    assert m.samples["recall"] == pytest.approx(skm.recall_score(y[rows], q[rows], average="samples", zero_division=0))
    for j in with_pos:
        assert m.ap[j] == pytest.approx(skm.average_precision_score(y[:, j], p[:, j]))
    assert m.macro["ap"] == pytest.approx(np.mean([skm.average_precision_score(y[:, j], p[:, j]) for j in with_pos]))
    both = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    assert np.allclose(m.auroc[both], [skm.roc_auc_score(y[:, j], p[:, j]) for j in both])
    assert m.macro["auroc"] == pytest.approx(skm.roc_auc_score(y[:, both], p[:, both], average="macro"))
    assert np.isnan(np.delete(m.auroc, both)).all()
    assert m.hamming_loss == pytest.approx(skm.hamming_loss(y, q))
    assert m.accuracy == pytest.approx(1 - skm.hamming_loss(y, q))
    assert m.subset_accuracy == pytest.approx(skm.accuracy_score(y, q))
    # the same convention in the cheap figures the bootstrap recomputes
    fast = metrics.threshold_figures(y, q, 2.0)
    assert (fast["micro_fbeta"], fast["accuracy"]) == pytest.approx((m.micro["f2"], m.accuracy))
    assert (fast["macro_fbeta"], fast["samples_fbeta"]) == pytest.approx((m.macro["f2"], m.samples["f2"]))


def test_undefined_figures_are_listed_not_counted_as_zero():
    y, p = next((y, p) for name, y, p in _oracle_cases() if name == "constructed")
    names = [f"L{j}" for j in range(y.shape[1])]
    m = metrics.multilabel_metrics(y, p, 0.5, names=names)
    assert m.no_positive_labels == ["L1"] and m.no_negative_labels == []
    assert "L2" in m.never_predicted and m.tiles_without_labels == int((y.sum(1) == 0).sum()) >= 1
    assert m.precision[1] == 0.0  # a false alarm and no positive: precision 0, F undefined
    assert math.isnan(m.f2[1]) and math.isnan(m.ap[1]) and math.isnan(m.auroc[1])
    # a label without positives leaves the macro means alone instead of pulling them to 0
    without = metrics.multilabel_metrics(np.delete(y, 1, axis=1), np.delete(p, 1, axis=1), 0.5)
    for key in ("f1", "f2", "ap", "recall", "precision"):
        assert m.macro[key] == pytest.approx(without.macro[key])
    s = m.summary()
    assert s["no_positive_labels"] == ["L1"] and s["samples"]["f2"] == pytest.approx(m.samples["f2"])
    always = next((y, p) for name, y, p in _oracle_cases() if name == "always_present")
    a = metrics.multilabel_metrics(*always, 0.5, names=["A", "B", "C"])
    assert a.no_negative_labels == ["A"] and math.isnan(a.auroc[0]) and not math.isnan(a.ap[0])
    assert a.macro["auroc"] == pytest.approx(np.nanmean(a.auroc[1:]))
    assert "auroc" in m.table().columns


def test_starved_labels_are_zero_tp_labels_with_enough_positives():
    y = np.zeros((60, 3), dtype=np.uint8)
    y[:30, 0] = 1  # 30 positives, never found -> starved
    y[:5, 1] = 1  # 5 positives, never found -> zero TP, too few to call starved
    y[:30, 2] = 1  # found
    p = np.zeros(y.shape)
    p[:, 2] = y[:, 2]
    m = metrics.multilabel_metrics(y, p, 0.5, names=["A", "B", "C"])
    assert [d["label"] for d in m.zero_tp_labels] == ["A", "B"] and m.starved_labels == ["A"]
    assert metrics.multilabel_metrics(y, p, 0.5, names=["A", "B", "C"], starved_min_support=5).starved_labels == [
        "A",
        "B",
    ]


@pytest.mark.parametrize("name,y,p", _oracle_cases(), ids=lambda c: c if isinstance(c, str) else "")
def test_reweighted_figures_equal_the_figures_of_repeated_rows(name, y, p):
    """What the block bootstrap relies on: row weights w give the figures of row i repeated w_i times."""
    rng = np.random.default_rng(len(y))
    ranked = metrics.RankedScores(y, p)
    decisions = metrics.WeightedDecisions(y, p >= 0.4)
    for _ in range(5):
        rows = rng.integers(0, len(y), len(y))
        w = np.bincount(rows, minlength=len(y))
        assert np.allclose(ranked.average_precision(w), metrics.average_precision(y[rows], p[rows]), equal_nan=True)
        expected = metrics.threshold_figures(y[rows], p[rows] >= 0.4)
        got = decisions.figures(w)
        assert got.keys() == expected.keys()
        assert all(got[k] == pytest.approx(expected[k], nan_ok=True) for k in got)
