"""How sure a figure is: spatial block bootstrap intervals and permutation p-values.

Tiles next to each other share land cover, so the tiles of an evaluation split are not
independent draws: what is independent (roughly) is the spatial **block** a tile belongs to
(`tiles.parquet` `block_id`; splits are assigned block by block, see `olr.data.splits`).
`block_bootstrap` therefore resamples blocks, never single tiles: each resample draws as many
blocks as the split has, with replacement, and hands the statistic every row of each drawn
block (a block drawn twice gives its rows twice). The interval is by default the percentile
interval of the resampled statistic; `method="BCa"` gives the bias-corrected and accelerated
one (Efron 1987) over blocks, as `scipy.stats.bootstrap(method="BCa")` computes it with blocks
as the units: the percentiles are moved by the share of resamples below the estimate (bias) and
by a leave-one-block-out jackknife (skew). Why both: an agreement ρ between two matrices
estimated from the same tiles is pulled down by every extra noise, and a resample (blocks drawn
with repeats, so fewer distinct tiles) is noisier than the split itself, so the resampled ρ sit
below the estimate and the percentile interval lies low (it need not even contain its own
estimate). BCa corrects that when the shift is moderate; when nearly every resample lies on one
side its endpoints come from the extreme tail of the resamples and mean little, so it is an
option to check how much a verdict depends on the method, not the default.
With few blocks the interval itself is unreliable (a bootstrap
cannot show variation the blocks do not contain); `few_blocks_warning` says so below
`MIN_SPLIT_BLOCKS` blocks (the bound preparation warns at too, `olr.data.thin_data`).

`permutation_pvalue` tests an agreement ρ between two label-pair matrices (a Mantel test):
see its docstring for what is permuted and why.

Numpy and the standard library; imports nothing of `olr` but the error type and that bound.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from olr.data.thin_data import MIN_SPLIT_BLOCKS
from olr.errors import OLRError

#: resamples and permutations by default
N_RESAMPLES = 1000
N_PERMUTATIONS = 1000
LEVEL = 0.95
#: how each interval method is named in files and reports
METHOD_TEXT = {
    "BCa": "spatial block bootstrap, BCa interval (bias-corrected and accelerated, jackknife over blocks)",
    "percentile": "spatial block bootstrap, percentile interval",
}


def few_blocks_warning(n_blocks: int, what: str = "the evaluation split") -> str | None:
    """A sentence when `n_blocks` spatial blocks are too few for an interval to mean much, else None."""
    if n_blocks >= MIN_SPLIT_BLOCKS:
        return None
    return (
        f"{what[:1].upper()}{what[1:]} has only {n_blocks} spatial block{'s' if n_blocks != 1 else ''} "
        f"(fewer than {MIN_SPLIT_BLOCKS}): "
        "its intervals understate the uncertainty; use a larger scene or larger splits for figures to rely on."
    )


@dataclass(frozen=True, eq=False)
class Interval:
    """A statistic with its block-bootstrap interval (`method`: "BCa" or "percentile").

    `estimate`, `low`, `high`: floats for a scalar statistic, (k,) float64 arrays for a 1-D one.
    `low`/`high` are NaN where fewer than 2 resamples gave a number. `n_undefined`: resamples
    whose statistic was NaN (left out of the interval), an int or (k,) int array.
    `resamples`: (n_resamples,) or (n_resamples, k) float64, the statistic of each resample in
    draw order, NaN kept, so that two statistics computed together can be compared resample by
    resample (`share_greater`).
    """

    estimate: float | np.ndarray
    low: float | np.ndarray
    high: float | np.ndarray
    level: float
    n_blocks: int
    n_resamples: int
    n_undefined: int | np.ndarray
    resamples: np.ndarray
    method: str = "percentile"
    #: (n_blocks, ...) the statistic with each block left out (BCa's jackknife; empty otherwise)
    jackknife: np.ndarray = field(default_factory=lambda: np.empty((0,)))

    def share_greater(self, a: int, b: int) -> float:
        """For a 1-D statistic: the share of resamples where element `a` > element `b`
        (resamples where either is NaN are left out; NaN if none is left)."""
        return share_greater(self.resamples[:, a], self.resamples[:, b])

    def difference(self, a: int, b: int) -> Interval:
        """For a 1-D statistic: element `a` minus element `b` as a scalar Interval of its own, from the
        same resamples (and jackknife): the paired comparison of two figures computed together, whose
        shared noise (the same tiles) cancels in the difference."""
        diff = self.resamples[:, a] - self.resamples[:, b]
        estimate = float(self.estimate[a] - self.estimate[b])
        jack = self.jackknife[:, a] - self.jackknife[:, b] if len(self.jackknife) else self.jackknife
        low, high = _bounds(diff, estimate, jack, self.level, self.method)
        return Interval(
            estimate=estimate,
            low=float(low),
            high=float(high),
            level=self.level,
            n_blocks=self.n_blocks,
            n_resamples=self.n_resamples,
            n_undefined=int(np.isnan(diff).sum()),
            resamples=diff,
            method=self.method,
            jackknife=jack,
        )

    def item(self, k: int) -> Interval:
        """Element `k` of a 1-D statistic's interval as a scalar Interval (same resamples)."""
        return Interval(
            estimate=float(self.estimate[k]),
            low=float(self.low[k]),
            high=float(self.high[k]),
            level=self.level,
            n_blocks=self.n_blocks,
            n_resamples=self.n_resamples,
            n_undefined=int(self.n_undefined[k]),
            resamples=self.resamples[:, k],
            method=self.method,
            jackknife=self.jackknife[:, k] if len(self.jackknife) else self.jackknife,
        )

    def to_json(self) -> dict:
        """{"estimate", "low", "high", "level", "n_blocks", "n_resamples", "n_undefined", "method"}:
        numbers or lists of numbers, NaN as None (JSON null); the resamples are not included."""
        return {
            "estimate": _plain(self.estimate),
            "low": _plain(self.low),
            "high": _plain(self.high),
            "level": float(self.level),
            "n_blocks": int(self.n_blocks),
            "n_resamples": int(self.n_resamples),
            "n_undefined": _plain(self.n_undefined),
            "method": METHOD_TEXT[self.method],
        }


def _plain(x):
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    return None if math.isnan(x) else x


class BlockResampler:
    """Draws block-bootstrap resamples of the rows 0..n-1 grouped by `block_ids` (n,).

    `rows(draw)` gives the row indices of the blocks in `draw` (block positions 0..n_blocks-1,
    repeats allowed), concatenated, each block's rows in their original order.
    """

    def __init__(self, block_ids):
        block_ids = np.asarray(block_ids).reshape(-1)
        if len(block_ids) == 0:
            raise OLRError("A block bootstrap needs at least one tile; choose a split that has tiles.")
        if block_ids.dtype.kind == "f" and np.isnan(block_ids).any():
            raise OLRError("Some tiles have no block_id (NaN); prepare the dataset again so every tile has a block.")
        _, inverse = np.unique(block_ids, return_inverse=True)
        self.order = np.argsort(inverse, kind="stable")  # rows sorted by block
        self.sizes = np.bincount(inverse)
        self.starts = np.r_[0, np.cumsum(self.sizes)[:-1]]
        self.n_blocks = len(self.sizes)

    def rows(self, draw: np.ndarray) -> np.ndarray:
        sizes = self.sizes[draw]
        ends = np.cumsum(sizes)
        # position k of the output lies in drawn block d(k); its offset inside the block is
        # k - (ends[d] - sizes[d]); its place in `order` is starts[draw[d]] + that offset
        shift = np.repeat(self.starts[draw] - (ends - sizes), sizes)
        return self.order[shift + np.arange(ends[-1] if len(ends) else 0)]

    def draws(self, n_resamples: int, seed: int) -> np.ndarray:
        """(n_resamples, n_blocks) block positions, drawn with replacement."""
        return np.random.default_rng(seed).integers(0, self.n_blocks, size=(int(n_resamples), self.n_blocks))


def block_bootstrap(
    statistic: Callable[[np.ndarray], float | np.ndarray],
    block_ids,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
    method: str = "percentile",
) -> Interval:
    """The interval at `level` of `statistic` under a spatial block bootstrap (`method`:
    "percentile", the default, or "BCa"; see the module's docstring).

    `block_ids` (n,): the block of each evaluation row (any hashable numbers or strings).
    `statistic(rows)` receives (m,) int64 row indices into 0..n-1 (rows repeat when a block is
    drawn more than once; the estimate gets `arange(n)`) and returns a float or a 1-D array of
    fixed length. A NaN result leaves that resample (or element) out, counted in `n_undefined`.
    Same `seed`, same draws: two calls with the same blocks and seed resample identically, whatever
    the method (BCa then evaluates the statistic once more per block, each block left out in turn).
    """
    if method not in METHOD_TEXT:
        raise OLRError(f"Unknown interval method {method!r}; choose one of {', '.join(METHOD_TEXT)}.")
    if not 0 < level < 1:
        raise OLRError(f"The interval level must lie between 0 and 1, got {level}.")
    if int(n_resamples) < 1:
        raise OLRError(f"A bootstrap needs at least one resample, got {n_resamples}.")
    sampler = BlockResampler(block_ids)
    n = len(sampler.order)
    estimate = np.asarray(statistic(np.arange(n, dtype=np.int64)), dtype=np.float64)
    if estimate.ndim > 1:
        raise OLRError(f"A bootstrap statistic must return a number or a 1-D array, got shape {estimate.shape}.")
    values = np.empty((int(n_resamples), *estimate.shape), dtype=np.float64)
    for r, draw in enumerate(sampler.draws(n_resamples, seed)):
        values[r] = statistic(sampler.rows(draw))
    jackknife = _jackknife(statistic, sampler) if method == "BCa" else np.empty((0,))
    low, high = _bounds(values, estimate, jackknife, level, method)
    n_undefined = np.isnan(values).sum(axis=0)
    scalar = estimate.ndim == 0
    return Interval(
        estimate=float(estimate) if scalar else estimate,
        low=float(low) if scalar else low,
        high=float(high) if scalar else high,
        level=float(level),
        n_blocks=sampler.n_blocks,
        n_resamples=int(n_resamples),
        n_undefined=int(n_undefined) if scalar else n_undefined.astype(np.int64),
        resamples=values,
        method=method,
        jackknife=jackknife,
    )


def _bounds(values, estimate, jackknife, level: float, method: str):
    if method == "BCa":
        return _percentiles(values, *_bca_levels(values, estimate, jackknife, level))
    tail = (1.0 - level) / 2.0
    return _percentiles(values, tail, 1.0 - tail)


def _jackknife(statistic, sampler: BlockResampler) -> np.ndarray:
    """(n_blocks, ...) the statistic with each block left out in turn (empty with fewer than 3 blocks:
    two blocks give no skew to estimate, one gives no rows)."""
    if sampler.n_blocks < 3:
        return np.empty((0,))
    every = np.arange(sampler.n_blocks)
    return np.array(
        [np.asarray(statistic(sampler.rows(np.delete(every, b))), dtype=np.float64) for b in every],
        dtype=np.float64,
    )


def _bca_levels(values: np.ndarray, estimate: np.ndarray, jackknife: np.ndarray, level: float):
    """The BCa lower and upper quantile levels (0..1, per element) for `values` (R, ...).

    As `scipy.stats.bootstrap(method="BCa")` computes them (Efron & Tibshirani 1993, ch. 14),
    NaN resamples and NaN jackknife values left out: the bias z0 = Φ⁻¹(share of resamples below
    the estimate, ties (to round-off) counted half), the acceleration a from the jackknife's skewness (0 without
    a jackknife or when it does not vary), and the levels Φ(z0 + (z0 + z)/(1 − a(z0 + z))) for
    z = Φ⁻¹((1 ∓ level)/2). NaN where every resample lies on one side of the estimate (z0 infinite:
    the resamples cannot say how far the interval reaches).
    """
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN is the answer
        finite = np.sum(~np.isnan(values), axis=0)
        # a resample holding the same tiles in another order gives the estimate up to round-off: a tie
        tie = 1e-12 * np.maximum(np.abs(estimate), 1.0)
        below = (np.sum(values < estimate - tie, axis=0) + np.sum(values <= estimate + tie, axis=0)) / (2.0 * finite)
        z0 = ndtri(below)
        if len(jackknife):
            centred = np.nanmean(jackknife, axis=0) - jackknife
            spread = np.nansum(centred**2, axis=0)
            a = np.where(spread > 0, np.nansum(centred**3, axis=0) / (6.0 * np.maximum(spread, 1e-300) ** 1.5), 0.0)
        else:
            a = np.zeros_like(z0)
        z = ndtri((1.0 - level) / 2.0)
        lows = ndtr(z0 + (z0 + z) / (1.0 - a * (z0 + z)))
        highs = ndtr(z0 + (z0 - z) / (1.0 - a * (z0 - z)))
    return np.where(np.isfinite(z0), lows, np.nan), np.where(np.isfinite(z0), highs, np.nan)


_NORMAL = NormalDist()


def ndtr(x) -> np.ndarray:
    """The standard normal CDF Φ, element-wise (NaN stays NaN)."""
    return np.vectorize(lambda v: v if math.isnan(v) else _NORMAL.cdf(v), otypes=[float])(x)


def ndtri(p) -> np.ndarray:
    """Φ⁻¹, element-wise: −inf at 0, +inf at 1, NaN outside [0, 1] or for NaN."""

    def one(v):
        if not 0.0 <= v <= 1.0:  # NaN too
            return math.nan
        return -math.inf if v == 0.0 else math.inf if v == 1.0 else _NORMAL.inv_cdf(v)

    return np.vectorize(one, otypes=[float])(p)


def _percentiles(values: np.ndarray, low_level, high_level):
    """NaN-aware quantiles at `low_level` and `high_level` (0..1, scalars or per element) along axis 0;
    NaN where fewer than 2 values are numbers or a level is NaN."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(len(values), -1)
    levels = [np.broadcast_to(np.asarray(q, dtype=np.float64), flat.shape[1:]) for q in (low_level, high_level)]
    bounds = np.full((2, flat.shape[1]), np.nan)
    for k in range(flat.shape[1]):
        column = flat[:, k][~np.isnan(flat[:, k])]
        for side, q in enumerate(levels):
            if len(column) >= 2 and np.isfinite(q.reshape(-1)[k]):
                bounds[side, k] = np.quantile(column, q.reshape(-1)[k])
    shape = values.shape[1:]
    return bounds[0].reshape(shape), bounds[1].reshape(shape)


def share_greater(a, b) -> float:
    """The share of paired resamples where `a` > `b` ((R,) each, same draws), NaN pairs left out."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    return float(np.mean(a[ok] > b[ok])) if ok.any() else float("nan")


def bootstrap_share_greater(
    statistic: Callable[[np.ndarray], np.ndarray],
    block_ids,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> float:
    """The share of block-bootstrap resamples where figure A beats figure B, on the same resamples.

    `statistic(rows)` returns [A, B] computed on the same rows (so both see the same blocks);
    see `block_bootstrap` for `rows`. Resamples where A or B is NaN are left out.
    """
    result = block_bootstrap(statistic, block_ids, n_resamples=n_resamples, seed=seed)
    if np.ndim(result.estimate) != 1 or len(result.estimate) != 2:
        raise OLRError("bootstrap_share_greater needs a statistic returning two numbers [A, B].")
    return result.share_greater(0, 1)


# ------------------------------------------------------------------ permutation test


@dataclass(frozen=True)
class PermutationTest:
    """A one-sided permutation p-value: `p` = (1 + #{permuted ≥ observed}) / (1 + n_permutations),
    or, when every relabelling was enumerated (`exact`), #{relabellings ≥ observed} / L! (the
    identity is one of them). `n_undefined`: permutations whose statistic was NaN; they are
    left out of both counts (neither evidence for nor against the observed value)."""

    observed: float
    p: float
    n_permutations: int
    exact: bool
    n_undefined: int

    def to_json(self) -> dict:
        return {
            "observed": _plain(self.observed),
            "p": _plain(self.p),
            "n_permutations": int(self.n_permutations),
            "exact": bool(self.exact),
            "n_undefined": int(self.n_undefined),
            "method": "label relabelling (Mantel) permutation test, one-sided (greater)",
        }


def relabellings(n_labels: int, n_permutations: int = N_PERMUTATIONS, seed: int = 0) -> tuple[np.ndarray, bool]:
    """((P, n_labels) int64 label orders, exact): all n_labels! orders when there are at most
    `n_permutations` of them (an exact test; the identity included), else `n_permutations`
    random ones, drawn independently (a draw may be the identity; the +1 correction of
    `permutation_pvalue` counts the observed order once more)."""
    if n_labels <= 8 and math.factorial(n_labels) <= n_permutations:
        return np.array(list(itertools.permutations(range(n_labels))), dtype=np.int64).reshape(-1, n_labels), True
    rng = np.random.default_rng(seed)
    return np.argsort(rng.random((int(n_permutations), n_labels)), axis=1), False


def permutation_pvalue(
    statistic: Callable[[np.ndarray], float],
    n_labels: int,
    n_permutations: int = N_PERMUTATIONS,
    seed: int = 0,
) -> PermutationTest:
    """A one-sided p-value for an agreement ρ > 0 between two (L, L) label-pair matrices.

    `statistic(order)` returns the agreement (e.g. Spearman ρ over the upper-triangle pairs)
    between the reference matrix and the learned matrix **relabelled** by `order`, a
    permutation of 0..L-1: `learned[np.ix_(order, order)]`, i.e. rows and columns permuted
    together. `order = arange(L)` gives the observed ρ.

    What is permuted and why: the null hypothesis is "the learned matrix is unrelated to which
    label is which". Relabelling keeps everything else about the learned matrix (its values,
    and that the pairs sharing a label are related, because they share a row) and only breaks
    the link between its labels and the reference's. Shuffling the L(L-1)/2 pair values
    independently would also destroy that row structure and give too small p-values (the
    Mantel test argument). Tiles are not permuted: the question is about labels, and the
    spatial uncertainty of the tiles is what `block_bootstrap` measures.

    With L! ≤ `n_permutations` every relabelling is enumerated (exact; the smallest possible p
    is then 1/L!, e.g. 1/24 with 4 labels: few labels cannot give a small p). Otherwise
    `n_permutations` random relabellings and p = (1 + #{ρ_perm ≥ ρ_obs}) / (1 + n_permutations),
    never below 1/(n_permutations + 1). NaN when the observed ρ is NaN.
    """
    if n_labels < 2:
        raise OLRError(f"A permutation test over label pairs needs at least 2 labels, got {n_labels}.")
    observed = float(statistic(np.arange(n_labels, dtype=np.int64)))
    orders, exact = relabellings(n_labels, n_permutations, seed)
    permuted = np.array([statistic(order) for order in orders], dtype=np.float64)
    undefined = np.isnan(permuted)
    # a relabelling that leaves the matrix as it is (the identity, or a swap of identical rows)
    # must count as "as large": allow for round-off in recomputing the same ρ
    at_least = permuted[~undefined] >= observed - 1e-12
    if math.isnan(observed):
        p = float("nan")
    elif exact:
        p = float(at_least.sum() / max(at_least.size, 1))
    else:
        p = float((1 + at_least.sum()) / (1 + at_least.size))
    return PermutationTest(
        observed=observed, p=p, n_permutations=len(orders), exact=exact, n_undefined=int(undefined.sum())
    )
