"""Block bootstrap and permutation test on constructed cases whose answers are known."""

from collections import Counter

import numpy as np
import pytest

from olr.analysis import correlations, intervals
from olr.data import thin_data
from olr.errors import OLRError


def test_a_constant_statistic_has_a_zero_width_interval():
    blocks = np.repeat(np.arange(12), 3)
    result = intervals.block_bootstrap(lambda rows: 0.25, blocks, n_resamples=50)
    assert result.estimate == result.low == result.high == 0.25
    assert result.n_blocks == 12 and result.n_resamples == 50 and result.n_undefined == 0
    assert result.to_json()["low"] == 0.25 and result.to_json()["n_blocks"] == 12


def _block_data(rng, n_blocks=20, rows_per_block=5, block_sd=1.0, row_sd=0.2, mean=3.0):
    """Rows whose blocks differ (a shared block effect), as neighbouring tiles do."""
    effect = rng.normal(mean, block_sd, n_blocks)
    blocks = np.repeat(np.arange(n_blocks), rows_per_block)
    return blocks, effect[blocks] + rng.normal(0, row_sd, len(blocks))


def _coverage(rng, per_tile: bool, simulations=200) -> float:
    hits = 0
    for s in range(simulations):
        blocks, values = _block_data(rng)
        groups = np.arange(len(values)) if per_tile else blocks
        r = intervals.block_bootstrap(lambda rows, v=values: v[rows].mean(), groups, n_resamples=200, seed=s)
        hits += r.low <= 3.0 <= r.high
    return hits / simulations


def test_block_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    # The mean of 20 i.i.d. block means: a 95 % percentile interval from 20 blocks covers about
    # 93 % (it is a normal interval scaled by sqrt(19/20) where a t(19) one is exact), and 200
    # simulations add a binomial standard error of about 1.6 %: 0.88-0.99 is that ± 3 SE.
    assert 0.88 <= _coverage(rng, per_tile=False) <= 0.99
    # Resampling single tiles ignores that a block's tiles move together: far too narrow.
    assert _coverage(np.random.default_rng(0), per_tile=True, simulations=100) < 0.8


def test_the_rows_of_one_block_are_always_resampled_together():
    rng = np.random.default_rng(1)
    sizes = [1, 4, 2, 7, 3]
    blocks = rng.permutation(np.repeat(np.array([30, 10, 50, 20, 40]), sizes))  # ids unordered, rows mixed
    seen = []

    def record(rows):
        seen.append(np.array(rows))
        return float(len(rows))

    result = intervals.block_bootstrap(record, blocks, n_resamples=40, seed=3, method="BCa")
    assert np.array_equal(seen[0], np.arange(len(blocks)))  # the estimate sees every row once
    # then 40 resamples, then BCa's jackknife: each block left out once, the other rows once each
    assert len(seen) == 1 + 40 + 5 and result.n_blocks == 5
    left_out = [set(blocks.tolist()) - set(blocks[rows].tolist()) for rows in seen[41:]]
    assert sorted(b.pop() for b in left_out) == [10, 20, 30, 40, 50]
    assert all(len(rows) == len(set(rows.tolist())) for rows in seen[41:])
    for rows in seen[1:41]:
        per_row = Counter(rows.tolist())
        copies = {}
        for block in np.unique(blocks):
            members = np.flatnonzero(blocks == block)
            counts = {per_row.get(int(m), 0) for m in members}
            assert len(counts) == 1, "a block was split"
            copies[block] = counts.pop()
        assert sum(copies.values()) == 5  # as many blocks drawn as the split has
    # different seeds draw differently, the same seed the same
    again = intervals.block_bootstrap(lambda rows: float(rows.sum()), blocks, n_resamples=40, seed=3)
    other = intervals.block_bootstrap(lambda rows: float(rows.sum()), blocks, n_resamples=40, seed=4)
    assert np.array_equal(again.resamples, [float(r.sum()) for r in seen[1:41]])
    assert not np.array_equal(again.resamples, other.resamples)


def test_undefined_resamples_are_left_out_and_counted():
    blocks = np.repeat(np.arange(10), 2)
    values = np.arange(20, dtype=float)

    def mean_unless_block_zero(rows):
        return np.nan if (blocks[rows] == 0).any() else values[rows].mean()

    r = intervals.block_bootstrap(mean_unless_block_zero, blocks, n_resamples=300, seed=0)
    with_zero = sum((blocks[intervals.BlockResampler(blocks).rows(d)] == 0).any() for d in _draws(blocks, 300, 0))
    assert r.n_undefined == with_zero and 0 < with_zero < 300
    kept = r.resamples[~np.isnan(r.resamples)]
    assert r.low == pytest.approx(np.percentile(kept, 2.5)) and r.high == pytest.approx(np.percentile(kept, 97.5))
    assert np.isnan(r.estimate)
    # BCa needs the estimate to place it among the resamples: none, so no interval (not a guess)
    bca = intervals.block_bootstrap(mean_unless_block_zero, blocks, n_resamples=300, seed=0, method="BCa")
    assert np.isnan(bca.low) and np.isnan(bca.high) and bca.n_undefined == with_zero

    # an array statistic: NaN counted per element; an element never defined has no interval
    both = intervals.block_bootstrap(
        lambda rows: np.array([mean_unless_block_zero(rows), np.nan, values[rows].min()]), blocks, 100
    )
    assert both.n_undefined.tolist()[1] == 100 and both.n_undefined[2] == 0
    assert np.isnan(both.low[1]) and np.isnan(both.high[1]) and both.low[2] <= both.high[2]
    assert both.to_json()["low"][1] is None and both.item(2).high == both.high[2]


def test_bca_interval_matches_scipy_on_single_rows_and_on_blocks():
    from scipy import stats

    rng = np.random.default_rng(5)
    x = rng.exponential(size=60)  # a skewed sample: the variance's BCa interval is far from the percentile one
    ours = intervals.block_bootstrap(lambda rows: x[rows].var(), np.arange(60), n_resamples=4000, seed=1, method="BCa")
    ref = stats.bootstrap((x,), np.var, n_resamples=4000, method="BCa", rng=np.random.default_rng(1))
    # two bootstraps of 4000 resamples: their bounds agree to Monte Carlo error (they are equal when scipy
    # draws as we do, which it does today)
    assert ours.low == pytest.approx(ref.confidence_interval.low, rel=0.03)
    assert ours.high == pytest.approx(ref.confidence_interval.high, rel=0.03)
    plain = intervals.block_bootstrap(lambda rows: x[rows].var(), np.arange(60), n_resamples=4000, seed=1)
    # a right-skewed statistic: the skew correction moves both ends up, as it should
    assert plain.low < ours.low and plain.high < ours.high
    assert ours.to_json()["method"].startswith("spatial block bootstrap, BCa")

    # blocks as scipy's units: the statistic of the blocks drawn is the statistic of their rows
    blocks, values = _block_data(rng, n_blocks=15, rows_per_block=4)
    sampler = intervals.BlockResampler(blocks)
    ours = intervals.block_bootstrap(
        lambda rows: np.log(values[rows].var()), blocks, n_resamples=3000, seed=2, method="BCa"
    )
    ref = stats.bootstrap(
        (np.arange(15),),
        lambda drawn: np.log(values[sampler.rows(drawn.astype(int))].var()),
        vectorized=False,
        n_resamples=3000,
        method="BCa",
        rng=np.random.default_rng(2),
    )
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.03)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.03)


def test_bca_recentres_an_agreement_that_resampling_pulls_down():
    # A learned (L, L) correlation matrix agreeing with the presence phi, both estimated from the same
    # blocks of tiles: a resample repeats blocks, has fewer distinct tiles, noisier matrices and so a
    # lower agreement than the split itself. The percentile interval then lies below its own estimate;
    # BCa moves it back around it.
    rng = np.random.default_rng(1)
    n_blocks, per_block, n_labels = 15, 30, 8
    mixing = rng.normal(size=(n_labels, n_labels))
    latent = np.repeat(rng.normal(size=(n_blocks, n_labels)), per_block, axis=0) + rng.normal(
        size=(n_blocks * per_block, n_labels)
    )
    latent = latent @ mixing
    presence = (latent > 0.5).astype(float)
    scores = latent + rng.normal(scale=6.0, size=latent.shape)
    blocks = np.repeat(np.arange(n_blocks), per_block)

    def agreement(rows):
        return correlations._rho(np.corrcoef(scores[rows].T), np.corrcoef(presence[rows].T))

    plain = intervals.block_bootstrap(agreement, blocks, n_resamples=300)
    bca = intervals.block_bootstrap(agreement, blocks, n_resamples=300, method="BCa")
    below = np.mean(plain.resamples < plain.estimate)
    assert below > 0.85  # the resamples sit below the estimate...
    assert plain.high < plain.estimate + 0.25 * (plain.high - plain.low)  # ...so the percentile interval does too
    assert bca.low < bca.estimate < bca.high and bca.low > plain.low and bca.high > plain.high


def _draws(blocks, n, seed):
    return intervals.BlockResampler(blocks).draws(n, seed)


def test_paired_share_uses_the_same_resamples():
    rng = np.random.default_rng(2)
    blocks, values = _block_data(rng)
    # B = A + 0.01 on every resample: A never beats B, although their intervals overlap almost entirely
    share = intervals.bootstrap_share_greater(lambda rows: [values[rows].mean(), values[rows].mean() + 0.01], blocks)
    assert share == 0.0
    r = intervals.block_bootstrap(lambda rows: np.array([values[rows].mean(), values[rows].mean() - 0.01]), blocks)
    assert r.share_greater(0, 1) == 1.0 and r.low[0] < r.high[1]
    # their difference has an interval of its own, from the same resamples: exactly 0.01 every time
    paired = r.difference(0, 1)
    assert paired.estimate == pytest.approx(0.01) and np.allclose(paired.resamples, 0.01)
    assert paired.low == pytest.approx(0.01) and paired.high == pytest.approx(0.01)
    assert r.difference(1, 0).high == pytest.approx(-0.01)
    assert np.isnan(intervals.share_greater([np.nan, 1.0], [0.0, np.nan]))


def test_bad_arguments_are_one_sentence_errors():
    with pytest.raises(OLRError, match="at least one tile"):
        intervals.block_bootstrap(lambda rows: 0.0, [])
    with pytest.raises(OLRError, match="between 0 and 1"):
        intervals.block_bootstrap(lambda rows: 0.0, [1, 2], level=95)
    with pytest.raises(OLRError, match="1-D"):
        intervals.block_bootstrap(lambda rows: np.zeros((2, 2)), [1, 2])
    with pytest.raises(OLRError, match="Unknown interval method 'basic'"):
        intervals.block_bootstrap(lambda rows: 0.0, [1, 2], method="basic")
    assert intervals.few_blocks_warning(thin_data.MIN_SPLIT_BLOCKS) is None
    assert "only 3 spatial blocks" in intervals.few_blocks_warning(3, "the test split")


def _random_correlation(rng, n_labels):
    return np.corrcoef(rng.normal(size=(40, n_labels)).T)


def test_permutation_p_of_a_matrix_with_itself_is_at_its_smallest():
    rng = np.random.default_rng(3)
    m = _random_correlation(rng, 10)  # 10! relabellings: 999 random ones
    test = correlations.agreement_pvalue(m, m, n_permutations=999, seed=0)
    assert test.observed == pytest.approx(1.0) and not test.exact
    assert test.p == pytest.approx(1 / 1000)  # nothing beats ρ = 1 but the observed order itself
    # 4 labels have only 24 relabellings: enumerated, and only the identity reaches ρ = 1
    small = _random_correlation(rng, 4)
    exact = correlations.agreement_pvalue(small, small, n_permutations=999)
    assert exact.exact and exact.n_permutations == 24 and exact.p == pytest.approx(1 / 24)


def test_permutation_p_of_independent_matrices_is_roughly_uniform():
    rng = np.random.default_rng(4)
    ps = np.array(
        [
            correlations.agreement_pvalue(_random_correlation(rng, 7), _random_correlation(rng, 7), 19, seed=s).p
            for s in range(300)
        ]
    )
    # Under the null (labels exchangeable) p is uniform on {1/20, ..., 20/20}: P(p <= 0.05) = 1/20
    # and P(p <= 0.5) = 1/2 exactly. With 300 draws the binomial SEs are 1.3 % and 2.9 %; the
    # bounds are about ± 3 SE.
    assert 0.012 <= np.mean(ps <= 0.05) <= 0.09
    assert 0.41 <= np.mean(ps <= 0.5) <= 0.59
    assert ps.min() >= 1 / 20


def test_permutation_relabels_rows_and_columns_together():
    calls = []

    def statistic(order):
        calls.append(order.copy())
        return float(order[0] == 0)  # 1 for the identity's first label, else 0

    test = intervals.permutation_pvalue(statistic, 5, n_permutations=200, seed=0)
    assert np.array_equal(calls[0], np.arange(5))  # the observed order first
    assert all(sorted(c.tolist()) == list(range(5)) for c in calls)  # each a permutation of the labels
    assert test.exact and test.n_permutations == 120  # 5! = 120 ≤ 200: enumerated
    assert test.p == pytest.approx(24 / 120)  # the 4! orders keeping label 0 first
    assert test.to_json()["p"] == pytest.approx(0.2)
    with pytest.raises(OLRError, match="at least 2 labels"):
        intervals.permutation_pvalue(statistic, 1)
