"""Label correlation matrices (ground truth, Siamese, classifier) and their agreement.

The original OLR paper does not publish how its label-correlation heatmap was computed, and
the thesis compared heatmaps by eye. This is our recipe, computed on the tiles of one split
(default: test), every matrix (L, L) in the run's label order:

Ground truth (from the dataset, via `olr.data.label_stats`): co-occurrence counts C = YᵀY of the
presence matrix Y (N, L); **phi** = Pearson correlation of the binary label columns (the
reference for agreement); Pearson correlation of the area-fraction columns; NPMI; P(j|i).

Siamese, default view ("siamese_self"): the network maps a tile x to one k-dim embedding
e_i(x) per label and is trained so that e_i(a)·e_i(b) imitates p_i(a')·p_i(b'). Its self-score
s_i(x) = e_i(x)·e_i(x) = ||e_i(x)||² on the un-occluded tile therefore plays the role of
p_i(x)², a monotone stand-in for "label i is here". The matrix is the Pearson correlation of
the self-scores s_i and s_j across the tiles.

Siamese, representational view ("siamese_rsa"): for a sample of m tiles, the label-i
similarity matrix S_i[a, b] = e_i(a)·e_i(b) says which tiles label i considers alike; the
entry (i, j) is the Pearson correlation of the upper triangles (a < b) of S_i and S_j.

Classifier ("classifier_prob"): the Pearson correlation of the classifier's probabilities,
i.e. what the Siamese network was taught to imitate.

**Agreement** of a learned matrix with the ground-truth phi matrix: the Spearman ρ (rank
correlation; average ranks for ties) and the Pearson r of their upper-triangle entries
(i < j). A label with no variance in either matrix (never / always present, or a constant
score) has an undefined row; it is left out and listed in "excluded".

**References** every learned figure stands beside, on the same tiles: the **label prior**
(the phi of the *training* split's own labels against the evaluation split's phi: how far
"which labels usually co-occur" goes without any image), the classifier's probability view
(what the Siamese network was taught to imitate) and an **untrained network** of the same
architecture (image statistics alone already correlate with land cover).
**Intervals**: each Spearman ρ gets a 95 % spatial block bootstrap interval over the
evaluation split's blocks, all figures recomputed on the same resamples (so paired shares
such as "Siamese above the prior in 97 % of resamples" mean something), and a one-sided
label-relabelling permutation p-value (`olr.analysis.intervals`). The **verdict** compares the
learned view with the label prior by `VERDICT_RULE`. Figures on the validation split are the
ones to tune on; test figures are reported once per run.

Each evaluation split has its own folder (`RunLayout.correlations_for`): `<run>/correlations/` holds
the test record, `<run>/correlations-val/` the validation figures (`correlations-train/` the
training split's), so computing one split never replaces another. `compute_for_run` writes
the split's `matrices.npz` (label_names, tile_indices,
gt_phi, gt_cooc, gt_fraction_corr, gt_npmi, gt_cond, label_prior, classifier_prob,
classifier_probabilities (n, L); Siamese runs also siamese_self, siamese_rsa,
self_scores (n, L), rsa_tile_indices) and `agreement.json` ({view: {"spearman", "pearson",
"n_pairs", "n_labels", "excluded", "interval", "permutation"}, ..., "label_prior": {...},
"verdict": {...}, "info": {...}}; see `compute_for_run`), atomically as one folder. Files
written before references and intervals existed lack those keys and still read; a
`correlations/` folder written before each split had its own folder holds whichever split was
computed last, and its `info.split` says which (`figures_folder`).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import pandas as pd

from olr import atomic
from olr.analysis import inference, intervals, run_data
from olr.analysis.metrics import json_ready
from olr.analysis.run_data import as_run
from olr.data import label_stats
from olr.errors import OLRError
from olr.runs import store
from olr.runs.store import RunLayout

LEARNED_VIEWS = ("siamese_self", "siamese_rsa", "classifier_prob")


# ------------------------------------------------------------------ rank statistics


def rankdata(x) -> np.ndarray:
    """(n,) float64 ranks 1..n of `x`, tied values sharing their average rank."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.r_[True, xs[1:] != xs[:-1]]
    group = np.cumsum(starts) - 1  # tie-group id of each sorted element
    first = np.flatnonzero(starts)
    sizes = np.diff(np.r_[first, len(x)])
    average = first + (sizes + 1) / 2.0  # mean of the 1-based positions first+1 .. first+size
    ranks = np.empty(len(x))
    ranks[order] = average[group]
    return ranks


def pearson(x, y) -> float:
    """Pearson r of two (n,) vectors; NaN when either is constant or n < 3."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(x) < 3:
        return float("nan")
    return float(label_stats.pearson_matrix(np.stack([x, y], axis=1))[0, 1])


def spearman(x, y) -> float:
    """Spearman ρ of two (n,) vectors: Pearson r of their average ranks."""
    return pearson(rankdata(x), rankdata(y))


# ------------------------------------------------------------------ matrices


def self_scores(embeddings) -> np.ndarray:
    """(n, L) float64 s_i(x) = ||e_i(x)||² from (n, L, k) label embeddings."""
    e = np.asarray(embeddings, dtype=np.float64)
    return np.einsum("nlk,nlk->nl", e, e)


def self_score_correlation(embeddings) -> np.ndarray:
    """(L, L) Pearson correlation of the per-label self-scores across tiles."""
    return label_stats.pearson_matrix(self_scores(embeddings))


def rsa_correlation(embeddings) -> np.ndarray:
    """(L, L) correlation of the label similarity matrices S_i = E_i E_iᵀ over m tiles (m, L, k)."""
    return RsaPairs(embeddings).correlation()


class RsaPairs:
    """The upper-triangle similarities S_i[a, b] = e_i(a)·e_i(b) (a < b) of m tiles (m, L, k),
    computed once, so the representational view of any multiset of these tiles is a weighted
    correlation: a resample holding tile a c_a times and tile b c_b times holds their pair
    c_a·c_b times, and pairs of two copies of one tile are left out like the diagonal."""

    def __init__(self, embeddings):
        e = np.asarray(embeddings, dtype=np.float64)
        self.m, self.n_labels = e.shape[0], e.shape[1]
        self.a, self.b = np.triu_indices(self.m, 1)
        self.values = np.einsum("alk,blk->abl", e, e)[self.a, self.b]  # (pairs, L)

    def correlation(self, counts=None) -> np.ndarray:
        """(L, L); `counts` (m,): how often each tile is in the resample (default: once each)."""
        if counts is None:
            x, w = self.values, None
        else:
            w = (np.asarray(counts)[self.a] * np.asarray(counts)[self.b]).astype(np.float64)
            x, w = self.values[w > 0], w[w > 0]
        if len(x) < 3:
            return np.full((self.n_labels, self.n_labels), np.nan)
        return label_stats.pearson_matrix(x) if w is None else _weighted_pearson(x, w)


def _weighted_pearson(x, w) -> np.ndarray:
    """(L, L) Pearson correlation of the columns of `x` (n, L), row r counted `w[r]` times;
    equal to `label_stats.pearson_matrix` of the repeated rows, with its test for constant columns."""
    w = w / w.sum()
    centred = x - w @ x
    var = np.einsum("n,nl,nl->l", w, centred, centred)
    scale = np.maximum(np.abs(x).max(axis=0), 1.0)
    constant = var <= (1e-12 * scale) ** 2
    norm = np.sqrt(np.where(constant, 1.0, var))
    corr = np.clip(((centred * w[:, None]).T @ centred) / np.outer(norm, norm), -1.0, 1.0)
    corr[constant, :] = np.nan
    corr[:, constant] = np.nan
    return corr


def ground_truth(presence, fractions, names=None, colors=None) -> label_stats.LabelStats:
    """Ground-truth statistics of (n, L) presence and fractions (see `olr.data.label_stats`)."""
    return label_stats.label_stats(presence, fractions, names, colors)


def agreement(learned, reference, names=None) -> dict:
    """Spearman ρ and Pearson r between the upper triangles of two (L, L) matrices.

    Labels whose row is undefined (all NaN) in either matrix are excluded and listed; pairs
    with any other non-finite value are dropped. Returns {"spearman", "pearson", "n_pairs",
    "n_labels", "excluded"}; the correlations are NaN with fewer than 3 pairs.
    """
    a = np.asarray(learned, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    n_labels = a.shape[0]
    names = list(names) if names is not None else [str(i) for i in range(n_labels)]
    excluded = _undefined_rows(a) | _undefined_rows(b)
    keep = np.flatnonzero(~excluded)
    i, j = np.triu_indices(len(keep), 1)
    x = a[keep[i], keep[j]]
    y = b[keep[i], keep[j]]
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    return {
        "spearman": spearman(x, y),
        "pearson": pearson(x, y),
        "n_pairs": len(x),
        "n_labels": len(keep),
        "excluded": [names[k] for k in np.flatnonzero(excluded)],
    }


# ------------------------------------------------------------------ references, intervals, verdict

#: how a learned view is judged against the label prior (the one place this rule is stated)
VERDICT_RULE = (
    "A learned view beats the label prior when the 95 % block-bootstrap interval of its ρ minus the label "
    "prior's ρ (both computed on the same resampled blocks) lies above zero, falls short of it when that "
    "interval lies below zero, and cannot be told apart from it otherwise."
)
# Why the paired difference and not "the view's lower end above the prior's ρ": a resample repeats
# blocks, so its phi is noisier than the split's and every agreement ρ drops on it — the percentile
# interval of a ρ lies low (the prior's own interval can miss the prior's ρ), and the old rule compared
# that biased lower end with an unbiased point. Both ρ of one resample drop alike; their difference
# does not, so its interval judges like with like.
VERDICT_TEXT = {
    "beats": "beats the label prior",
    "below": "falls short of the label prior",
    "tie": "cannot be told apart from the label prior",
    "undefined": "no verdict (a ρ is undefined)",
}


def verdict(minus_prior: dict | None) -> str:
    """ "beats", "below", "tie" or "undefined" by `VERDICT_RULE`, from the paired difference's
    interval ({"low", "high"}: the learned ρ minus the label prior's on the same resamples)."""
    low, high = ((minus_prior or {}).get(k) for k in ("low", "high"))
    if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in (low, high)):
        return "undefined"
    return "beats" if low > 0 else "below" if high < 0 else "tie"


def agreement_pvalue(learned, reference, n_permutations: int = intervals.N_PERMUTATIONS, seed: int = 0):
    """`intervals.PermutationTest` of the Spearman agreement of `learned` with `reference` (both (L, L)).

    The labels undefined in either matrix are left out first (as `agreement` does); then the
    remaining labels of `learned` are relabelled, rows and columns together (see
    `intervals.permutation_pvalue` for why), while `reference` stays put.
    """
    a = np.asarray(learned, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    keep = np.flatnonzero(~(_undefined_rows(a) | _undefined_rows(b)))
    if len(keep) < 2:
        return intervals.PermutationTest(float("nan"), float("nan"), 0, False, 0)
    a, b = a[np.ix_(keep, keep)], b[np.ix_(keep, keep)]
    i, j = np.triu_indices(len(keep), 1)
    y = b[i, j]

    def relabelled_rho(order):
        x = a[order[i], order[j]]
        ok = np.isfinite(x) & np.isfinite(y)
        return spearman(x[ok], y[ok])

    return intervals.permutation_pvalue(relabelled_rho, len(keep), n_permutations, seed)


def _phi(presence) -> np.ndarray:
    """(L, L) phi of (n, L) 0/1 presence, as `olr.data.label_stats` computes it."""
    y = np.asarray(presence, dtype=np.float64)
    return label_stats.phi_from_cooc(y.T @ y, len(y))


class _Figures:
    """Every agreement ρ of one evaluation split as a function of the tiles used.

    `rho(rows)` (rows: positions 0..n-1 into the split's tiles, repeats allowed) recomputes each
    matrix from the per-tile scores of those rows and returns the Spearman ρ of each figure in
    `names` order. The ground truth is the rows' phi; the label prior (the training split's
    phi) is fixed: its uncertainty here is that of the evaluation split.
    """

    def __init__(self, presence, prior_phi, probs, scores=None, rsa=None, untrained=None):
        self.presence, self.prior_phi, self.probs, self.scores = presence, prior_phi, probs, scores
        # rsa: (positions of the RSA tiles in the split (m,), their embeddings (m, L, k));
        # untrained: (self-scores (n, L), RSA embeddings (m, L, k)) of an untrained network
        self.rsa = None if rsa is None else (rsa[0], RsaPairs(rsa[1]))
        self.untrained = None if untrained is None else (untrained[0], RsaPairs(untrained[1]))
        names = ["classifier_prob", "label_prior"]
        if scores is not None:
            names += ["siamese_self", "siamese_rsa", "siamese_self_vs_classifier"]
        if untrained is not None:
            names += ["untrained siamese_self", "untrained siamese_rsa"]
        self.names = names
        n = len(presence)
        self.rsa_slot = np.full(n, -1)
        if rsa is not None:
            self.rsa_slot[rsa[0]] = np.arange(len(rsa[0]))

    def rho(self, rows) -> np.ndarray:
        phi = _phi(self.presence[rows])
        prob_corr = label_stats.pearson_matrix(self.probs[rows])
        values = {
            "classifier_prob": _rho(prob_corr, phi),
            "label_prior": _rho(self.prior_phi, phi),
        }
        if self.scores is not None:
            self_corr = label_stats.pearson_matrix(self.scores[rows])
            values["siamese_self"] = _rho(self_corr, phi)
            values["siamese_self_vs_classifier"] = _rho(self_corr, prob_corr)
            values["siamese_rsa"] = self._rsa_rho(self.rsa[1], rows, phi)
        if self.untrained is not None:
            values["untrained siamese_self"] = _rho(label_stats.pearson_matrix(self.untrained[0][rows]), phi)
            values["untrained siamese_rsa"] = self._rsa_rho(self.untrained[1], rows, phi)
        return np.array([values[k] for k in self.names])

    def _rsa_rho(self, pairs: RsaPairs, rows, phi) -> float:
        slots = self.rsa_slot[rows]
        return _rho(pairs.correlation(np.bincount(slots[slots >= 0], minlength=pairs.m)), phi)


def _rho(learned, reference) -> float:
    return agreement(learned, reference)["spearman"]


def _undefined_rows(m) -> np.ndarray:
    """(L,) bool: labels whose off-diagonal row of `m` is all NaN (no variance)."""
    n = m.shape[0]
    if n < 2:
        return np.ones(n, bool)
    return np.all(np.isnan(np.where(~np.eye(n, dtype=bool), m, np.nan)), axis=1)


def _add_uncertainty(
    result, figures: _Figures, matrices: dict, blocks, n_resamples, n_permutations, seed, method="percentile"
) -> None:
    """Adds a "permutation" test and, when the tiles have spatial `blocks`, an "interval" (block
    bootstrap of the Spearman ρ; all figures on the same resamples) to every figure of `result`,
    and the "verdict"."""
    boot = (
        intervals.block_bootstrap(figures.rho, blocks, n_resamples=n_resamples, seed=seed, method=method)
        if blocks is not None
        else None
    )
    entries = {name: _entry(result, name) for name in figures.names}
    for k, name in enumerate(figures.names):
        learned, reference = matrices[name]
        if boot is not None:
            entries[name]["interval"] = boot.item(k).to_json()
        entries[name]["permutation"] = agreement_pvalue(learned, reference, n_permutations, seed).to_json()
    view = "siamese_self" if "siamese_self" in figures.names else "classifier_prob"
    at = figures.names.index
    # the paired comparison: both ρ lose alike when a resample's phi is noisier, which cancels here
    minus_prior = boot.difference(at(view), at("label_prior")).to_json() if boot is not None else None
    outcome = verdict(minus_prior)

    def share(other):
        return boot.share_greater(at(view), at(other)) if boot is not None and other != view else None

    result["verdict"] = {
        "view": view,
        "outcome": outcome,
        "text": VERDICT_TEXT[outcome],
        "rule": VERDICT_RULE,
        "share_above_prior": share("label_prior"),
        "share_above_classifier": share("classifier_prob"),
        "minus_prior": minus_prior,
    }


def _entry(result: dict, name: str) -> dict:
    if name.startswith("untrained "):
        return result["untrained"][name.removeprefix("untrained ")]
    return result[name]


# ------------------------------------------------------------------ runs


def _tiles(run, dataset, split: str, max_tiles: int | None, seed: int) -> np.ndarray:
    idx = dataset.split_indices(split)
    if len(idx) == 0:
        raise OLRError(f"The dataset {dataset.name} has no {split} tiles; choose another split (--split).")
    if max_tiles and len(idx) > max_tiles:
        idx = np.sort(np.random.default_rng(seed).choice(idx, int(max_tiles), replace=False))
    return idx


def _embed(model, dataset, idx, batch_size) -> np.ndarray:
    return np.asarray(inference.label_embeddings(model, dataset, idx, batch_size=batch_size), dtype=np.float32)


def _siamese_views(model, dataset, idx, sample_for_rsa: int, seed: int, batch_size: int):
    """(self-scores (n, L), their correlation, RSA matrix, RSA positions in `idx` (m,), RSA embeddings (m, L, k))."""
    emb = _embed(model, dataset, idx, batch_size)
    m = min(int(sample_for_rsa), len(idx))
    rsa_pos = np.sort(np.random.default_rng(seed + 1).permutation(len(idx))[:m])
    scores = self_scores(emb)
    return scores, label_stats.pearson_matrix(scores), rsa_correlation(emb[rsa_pos]), rsa_pos, emb[rsa_pos]


def _selection(run, split: str, max_tiles: int | None, seed: int):
    """(classifier run, dataset, labels, tile indices, presence (N, L) of every tile) of the tiles
    a run's correlations are computed on; presence uses the classifier run's min_fraction."""
    classifier_run = run_data.classifier_run_of(run) if run.config.get("kind") == "siamese" else run
    dataset = run_data.run_dataset(run)
    labels = run_data.run_labels(run)
    idx = _tiles(run, dataset, split, max_tiles, seed)
    presence = run_data.run_presence(run, dataset, classifier_run.config.get("min_fraction"))
    return classifier_run, dataset, labels, idx, presence


def split_word(split) -> str:
    """The split's name in a sentence: "validation", "test", "training"."""
    return {"val": "validation", "test": "test", "train": "training"}.get(split, str(split))


def split_role(split: str) -> str:
    """How figures on `split` may be used: validation for tuning, test reported once per run."""
    return {
        "val": "validation: the split to tune and choose settings on",
        "test": "test: report once per run; never tune on it",
        "train": "train: the tiles the networks learned from (the label prior is these tiles' own phi)",
    }.get(split, split)


def compute_for_run(
    run,
    split: str = "test",
    max_tiles: int | None = None,
    sample_for_rsa: int = 200,
    batch_size: int = 256,
    seed: int = 0,
    include_untrained: bool = True,
    check_finished: bool = True,
    n_resamples: int = intervals.N_RESAMPLES,
    n_permutations: int = intervals.N_PERMUTATIONS,
    interval_method: str = "percentile",
) -> dict:
    """Correlation matrices and agreement of a Siamese run (all views) or a classifier run, with
    references, intervals and a verdict.

    Uses the tiles of `split` (at most `max_tiles`, a fixed-seed sample); the representational
    view uses `sample_for_rsa` of them. Writes the split's folder (`RunLayout.correlations_for`:
    `correlations/` for test, `correlations-val/` for validation), never another split's, and returns the content of
    `agreement.json`: {view: {"spearman", "pearson", "n_pairs", "n_labels", "excluded",
    "interval", "permutation"}} for each view computed ("siamese_self", "siamese_rsa",
    "classifier_prob"; Siamese runs also "siamese_self_vs_classifier" and, with
    `include_untrained`, "untrained": {view: {...}}); "label_prior": the same for the phi of the
    training split's labels (a reference that sees no image); "verdict" (see `VERDICT_RULE`):
    {"view", "outcome", "text", "rule", "share_above_prior", "share_above_classifier", "minus_prior" (the
    view's ρ minus the prior's with its own interval from the same resamples, or null)}; plus
    "info": {"run", "kind", "classifier_run", "split", "split_role", "n_tiles", "n_rsa_tiles",
    "labels", "reference", "n_blocks", "few_blocks" (a warning or null), "n_prior_tiles"}.
    "interval" is `intervals.Interval.to_json` of the Spearman ρ under a block bootstrap over
    the split's spatial blocks (`n_resamples`, one set of resamples for all figures; absent when
    the dataset records no blocks; `interval_method`: see `intervals.block_bootstrap`);
    "permutation" is `agreement_pvalue`'s test (`n_permutations` relabellings).
    """
    run = as_run(run)
    folder = RunLayout(run.path).correlations_for(split)  # an unknown split is refused before any work
    if check_finished:
        run_data.require_finished(run)
    siamese = run.config.get("kind") == "siamese"
    classifier_run, dataset, labels, idx, all_presence = _selection(run, split, max_tiles, seed)
    presence = all_presence[idx]
    names = [lab.name for lab in labels]
    fractions = dataset.fractions_for(labels)[idx]
    gt = ground_truth(presence, fractions, names, [lab.color for lab in labels])
    prior_rows = dataset.split_indices("train")
    prior_phi = _phi(all_presence[prior_rows])

    probs = run_data.predict_run(classifier_run, dataset, idx, batch_size)
    if probs.shape[1] != len(names):
        raise OLRError(
            f"The classifier run {classifier_run.id} predicts {probs.shape[1]} labels but run {run.id} has "
            f"{len(names)}; train the Siamese run against this classifier again."
        )
    arrays = {
        "label_names": np.array(names, dtype=str),
        "tile_indices": idx.astype(np.int64),
        "gt_phi": gt.phi,
        "gt_cooc": gt.cooc,
        "gt_fraction_corr": gt.fraction_corr,
        "gt_npmi": gt.npmi,
        "gt_cond": gt.cond,
        "label_prior": prior_phi,
        "classifier_prob": label_stats.pearson_matrix(probs),
        "classifier_probabilities": probs,
    }
    scores = rsa = untrained = None
    if siamese:
        model = run_data.best_model(run)
        scores, self_corr, rsa_corr, rsa_pos, rsa_emb = _siamese_views(
            model, dataset, idx, sample_for_rsa, seed, batch_size
        )
        rsa = (rsa_pos, rsa_emb)
        arrays.update(
            siamese_self=self_corr,
            siamese_rsa=rsa_corr,
            self_scores=scores.astype(np.float32),
            rsa_tile_indices=idx[rsa_pos].astype(np.int64),
        )
    result = {v: agreement(arrays[v], gt.phi, names) for v in (*LEARNED_VIEWS, "label_prior") if v in arrays}
    matrices = {v: (arrays[v], gt.phi) for v in result}
    blocks = run_data.tile_blocks(dataset, idx)
    n_blocks = len(np.unique(blocks)) if blocks is not None else None
    result["info"] = {
        "run": run.id,
        "kind": run.config.get("kind"),
        "classifier_run": classifier_run.id,
        "split": split,
        "split_role": split_role(split),
        "n_tiles": len(idx),
        "n_rsa_tiles": len(rsa[0]) if siamese else 0,
        "labels": names,
        "reference": "gt_phi",
        "n_prior_tiles": len(prior_rows),
        "n_blocks": n_blocks,
        "few_blocks": (
            intervals.few_blocks_warning(n_blocks, f"the {split_word(split)} split")
            if blocks is not None
            else f"The dataset {dataset.name} records no spatial blocks (block_id), so the figures have no "
            "intervals; prepare it again to get them."
        ),
    }
    if siamese:
        # How closely the Siamese network imitates its teacher, independent of the ground truth.
        result["siamese_self_vs_classifier"] = agreement(arrays["siamese_self"], arrays["classifier_prob"], names)
        matrices["siamese_self_vs_classifier"] = (arrays["siamese_self"], arrays["classifier_prob"])
    if siamese and include_untrained:
        u_scores, u_self, u_rsa, _, u_rsa_emb = _siamese_views(
            untrained_model(run, seed), dataset, idx, sample_for_rsa, seed, batch_size
        )
        untrained = (u_scores, u_rsa_emb)
        result["untrained"] = {
            "siamese_self": agreement(u_self, gt.phi, names),
            "siamese_rsa": agreement(u_rsa, gt.phi, names),
        }
        matrices["untrained siamese_self"] = (u_self, gt.phi)
        matrices["untrained siamese_rsa"] = (u_rsa, gt.phi)
    figures = _Figures(presence, prior_phi, probs, scores, rsa, untrained)
    _add_uncertainty(result, figures, matrices, blocks, n_resamples, n_permutations, seed, interval_method)

    with atomic.staged_folder(folder, overwrite=True) as tmp:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic.write_bytes(tmp / RunLayout.MATRICES, buf.getvalue())
        atomic.write_json(tmp / RunLayout.AGREEMENT, json_ready(result))
    return json_ready(result)


def untrained_model(run, seed: int = 0):
    """A freshly initialised Keras model with the architecture of `run`'s best checkpoint."""
    import keras  # only here: the rest of the module works without Keras

    trained = run_data.best_model(run)
    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(trained)  # clone_model re-creates every weight from its initializer


def untrained_agreement(
    run,
    split: str = "test",
    max_tiles: int | None = None,
    sample_for_rsa: int = 200,
    batch_size: int = 256,
    seed: int = 0,
) -> dict:
    """Agreement of an untrained network of the Siamese run's architecture, on the same tiles.

    Same tile selection as `compute_for_run` with the same arguments; returns
    {"siamese_self": {...}, "siamese_rsa": {...}} like the entries of `compute_for_run`'s
    result, without interval and permutation test.
    """
    run = as_run(run)
    if run.config.get("kind") != "siamese":
        raise OLRError(f"The run {run.id} is a {run.config.get('kind')} run; untrained agreement needs a Siamese run.")
    _, dataset, labels, idx, presence = _selection(run, split, max_tiles, seed)
    names = [lab.name for lab in labels]
    reference = label_stats.label_stats(presence[idx]).phi
    _, self_corr, rsa_corr, _, _ = _siamese_views(
        untrained_model(run, seed), dataset, idx, sample_for_rsa, seed, batch_size
    )
    return json_ready(
        {"siamese_self": agreement(self_corr, reference, names), "siamese_rsa": agreement(rsa_corr, reference, names)}
    )


def figures_folder(run_dir, split: str = "test") -> Path | None:
    """The folder holding a run's correlations on `split` (`RunLayout.correlations_for`), or None when
    they were never computed.

    A `correlations/` folder written before each split had its own folder holds the split computed
    last; when its agreement.json names another split (info.split), those figures are read as that
    split's (when its own folder does not exist) and never as the test record.
    """
    layout = RunLayout(run_dir)
    own = layout.correlations_for(split)
    if split == "test":
        return own if own.is_dir() and _stored_split(own) in (None, "test") else None
    if own.is_dir():
        return own
    return layout.correlations if _stored_split(layout.correlations) == split else None


def computed_splits(run_dir) -> list[str]:
    """The evaluation splits (of `RunLayout.CORRELATION_SPLITS`) a run has correlations on."""
    return [s for s in RunLayout.CORRELATION_SPLITS if figures_folder(run_dir, s) is not None]


def _stored_split(folder: Path) -> str | None:
    """The split an agreement.json in `folder` says it was computed on (None when it does not say, or
    names no known split; a damaged file is left to `read_agreement` to report)."""
    info = store.read_json(folder / RunLayout.AGREEMENT).get("info")
    split = info.get("split") if isinstance(info, dict) else None
    return split if split in RunLayout.CORRELATION_SPLITS else None


def compute_command(run_id: str, split: str = "test") -> str:
    """The command that computes a run's correlations on `split`."""
    return f"python -m olr correlations {run_id}" + ("" if split == "test" else f" --split {split}")


def load_matrices(run, split: str = "test") -> dict[str, np.ndarray]:
    """The arrays of the split's `matrices.npz` (`figures_folder`; OLRError if not computed yet, or naming
    the file when its arrays lack the shapes the module docstring gives)."""
    run = as_run(run)
    run_data.check_results(run)
    folder = figures_folder(run.path, split)
    path = folder / RunLayout.MATRICES if folder is not None else None
    if path is None or not path.exists():
        raise OLRError(
            f"The run {run.id} has no correlation matrices on the {split_word(split)} split yet; "
            f"run {compute_command(run.id, split)}."
        )
    arrays = store.read_npz(path, run.id, _remedy(run, split))
    problem = _matrices_problem(arrays)
    if problem:
        raise store.damaged_result(path, run.id, problem, _remedy(run, split))
    return arrays


#: arrays of matrices.npz by shape: (L,) names, (n,) tile rows, (L, L) matrices, (n, L) per-tile scores
SQUARE = ("gt_phi", "gt_cooc", "gt_fraction_corr", "gt_npmi", "gt_cond", "label_prior", *LEARNED_VIEWS)
PER_TILE = ("classifier_probabilities", "self_scores")


def paired_difference(
    run, other, split: str = "val", n_resamples: int = intervals.N_RESAMPLES, seed: int = 0, method="percentile"
) -> dict:
    """Run `run`'s Siamese self-score ρ minus run `other`'s, both from their stored correlations on `split`
    (`compute_for_run`), on the same block resamples of the same tiles: the paired comparison of two variants
    (e.g. two settings against one classifier), whose shared noise (the tiles) cancels in the difference.

    Returns {"run", "other", "split", "rho", "other_rho", "difference" (`intervals.Interval.to_json`),
    "share_above" (the share of resamples where `run`'s ρ is the higher)}; OLRError when either run has no
    stored figures on the split, is not a Siamese run, or the two were computed on other tiles or labels.
    """
    run, other = as_run(run), as_run(other)
    mine, theirs = load_matrices(run, split), load_matrices(other, split)
    for r, arrays in ((run, mine), (other, theirs)):
        if "self_scores" not in arrays:
            raise OLRError(f"The run {r.id} is not a Siamese run (it has no self-scores); compare two Siamese runs.")
    same = np.array_equal(mine["tile_indices"], theirs["tile_indices"]) and np.array_equal(
        mine["label_names"], theirs["label_names"]
    )
    if not same or not np.allclose(mine["gt_phi"], theirs["gt_phi"], equal_nan=True):
        raise OLRError(
            f"The runs {run.id} and {other.id} have their {split_word(split)} correlations on other tiles, labels or "
            "ground truth, so they cannot be compared pair by pair; compare runs trained on one dataset with the "
            "same labels, their correlations computed with the same --max-tiles."
        )
    _, dataset, _, _, all_presence = _selection(run, split, None, 0)  # presence as compute_for_run reads it
    rows = mine["tile_indices"]
    presence = all_presence[rows]
    blocks = run_data.tile_blocks(dataset, rows)
    if blocks is None:
        raise OLRError(f"The dataset {dataset.name} records no spatial blocks, so the runs cannot be resampled.")
    scores = (mine["self_scores"], theirs["self_scores"])

    def rhos(sample):
        phi = _phi(presence[sample])
        return np.array([_rho(label_stats.pearson_matrix(s[sample]), phi) for s in scores])

    boot = intervals.block_bootstrap(rhos, blocks, n_resamples=n_resamples, seed=seed, method=method)
    return json_ready(
        {
            "run": run.id,
            "other": other.id,
            "split": split,
            "rho": float(boot.estimate[0]),
            "other_rho": float(boot.estimate[1]),
            "difference": boot.difference(0, 1).to_json(),
            "share_above": boot.share_greater(0, 1),
        }
    )


def paired_text(paired: dict) -> str:
    """ "run A minus run B (validation, paired): +0.002 [-0.018, +0.025]; A above B in 46.5% of resamples" """
    d = paired["difference"]
    bounds = f" [{d['low']:+.3f}, {d['high']:+.3f}]" if d.get("low") is not None else ""
    share = paired.get("share_above")
    return (
        f"Siamese self-score ρ of {paired['run']} ({paired['rho']:+.3f}) minus {paired['other']}'s "
        f"({paired['other_rho']:+.3f}) on the {split_word(paired['split'])} split, same block resamples: "
        f"{d['estimate']:+.3f}{bounds}"
        + (f"; {paired['run']} above in {share:.1%} of paired resamples" if share is not None else "")
    )


def _matrices_problem(arrays: dict) -> str | None:
    """Why the arrays of matrices.npz cannot be shown, or None."""
    names, rows = arrays.get("label_names"), arrays.get("tile_indices")
    if names is None or names.ndim != 1 or names.dtype.kind != "U" or not len(names):
        return "holds no label names"
    if rows is None or rows.ndim != 1 or rows.dtype.kind not in "iu" or (len(rows) and rows.min() < 0):
        return "holds no tile rows"
    if "gt_phi" not in arrays or not any(v in arrays for v in LEARNED_VIEWS):
        return "holds no ground-truth or learned matrix"
    n_labels = len(names)
    for key in SQUARE:
        if key in arrays and (arrays[key].shape != (n_labels, n_labels) or arrays[key].dtype.kind not in "fiu"):
            return f"holds a {key} matrix that is not {n_labels} x {n_labels} numbers"
    for key in PER_TILE:
        if key in arrays and (arrays[key].shape != (len(rows), n_labels) or arrays[key].dtype.kind != "f"):
            return f"holds {key} that are not {len(rows)} x {n_labels} numbers"
    return None


def _remedy(run, split: str = "test") -> str:
    return f"compute the correlations again ({compute_command(run.id, split)})"


def read_agreement(run, split: str = "test") -> dict | None:
    """The split's `agreement.json` (`figures_folder`), or None if not computed yet (OLRError naming
    the file when an entry is not what `compute_for_run` writes). Files written before the
    references, intervals and verdict existed read as they are: those keys are simply absent."""
    run = as_run(run)
    run_data.check_results(run)
    folder = figures_folder(run.path, split)
    if folder is None:
        return None
    path = folder / RunLayout.AGREEMENT
    data = store.read_result_json(path, run.id, _remedy(run, split))
    if data is None:
        return None
    entries = {k: v for k, v in data.items() if k in (*FIGURES, "label_prior")}
    entries.update({f"untrained {k}": v for k, v in _as_dict(data.get("untrained")).items()})
    bad = [k for k, v in entries.items() if not _agreement_ok(v)]
    if not _verdict_ok(data.get("verdict")):
        bad.append("verdict")
    if bad or not isinstance(data.get("info", {}), dict) or not isinstance(data.get("untrained", {}), dict):
        raise store.damaged_result(
            path, run.id, f"has malformed entries ({', '.join(bad) or 'info'})", _remedy(run, split)
        )
    return data


#: the agreement entries of agreement.json besides "label_prior" and "untrained"
FIGURES = (*LEARNED_VIEWS, "siamese_self_vs_classifier")


def _as_dict(x) -> dict:
    return x if isinstance(x, dict) else {}


def _number_or_null(x) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _agreement_ok(entry) -> bool:
    """An agreement entry: {"spearman", "pearson": number or null, "n_pairs": int, "excluded": [str]},
    and when present "interval" {"estimate", "low", "high": number or null} and "permutation" {"p"}."""
    if not isinstance(entry, dict):
        return False
    numbers = all(_number_or_null(entry.get(k)) for k in ("spearman", "pearson", "n_pairs"))
    excluded = entry.get("excluded", [])
    interval = entry.get("interval", {})
    permutation = entry.get("permutation", {})
    return (
        numbers
        and isinstance(excluded, list)
        and all(isinstance(x, str) for x in excluded)
        and isinstance(interval, dict)
        and all(_number_or_null(interval.get(k)) for k in ("estimate", "low", "high", "n_blocks"))
        and isinstance(permutation, dict)
        and _number_or_null(permutation.get("p"))
    )


def _verdict_ok(entry) -> bool:
    """Absent (older files), or {"outcome": one of VERDICT_TEXT, shares: number or null}."""
    if entry is None:
        return True
    return (
        isinstance(entry, dict)
        and entry.get("outcome") in VERDICT_TEXT
        and all(_number_or_null(entry.get(k)) for k in ("share_above_prior", "share_above_classifier"))
    )


# ------------------------------------------------------------------ CLI: python -m olr correlations


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run id (folder name under models/) or run folder")
    parser.add_argument(
        "--split",
        default="test",
        choices=("train", "val", "test"),
        help="tiles to use: val to tune and compare settings on (kept in correlations-val/), test to report once "
        "per run (kept in correlations/; the default); computing one split never replaces another",
    )
    parser.add_argument("--max-tiles", type=int, default=None, help="use at most this many tiles (fixed-seed sample)")
    parser.add_argument("--rsa-tiles", type=int, default=200, help="tiles in the representational view (default 200)")
    parser.add_argument(
        "--untrained",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="report an untrained network's agreement as a reference (default on; --no-untrained skips it)",
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=intervals.N_RESAMPLES,
        help=f"block-bootstrap resamples for the intervals (default {intervals.N_RESAMPLES})",
    )
    parser.add_argument(
        "--permutations",
        type=int,
        default=intervals.N_PERMUTATIONS,
        help=f"label relabellings for the p-values (default {intervals.N_PERMUTATIONS})",
    )
    parser.add_argument(
        "--interval",
        default="percentile",
        choices=tuple(intervals.METHOD_TEXT),
        help="interval method: percentile (the default) or BCa (bias-corrected; see how far a verdict depends on "
        "the method: the percentile interval of an agreement ρ lies low)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="tiles per batch (default 256)")
    parser.add_argument(
        "--against",
        metavar="RUN",
        default=None,
        help="another Siamese run with correlations on the same split: also print this run's ρ minus that run's, "
        "paired on the same block resamples (are two variants told apart?)",
    )


def correlations_command(args) -> int:
    if args.max_tiles is not None and args.max_tiles < 3:
        raise OLRError(f"--max-tiles must be at least 3, got {args.max_tiles}.")
    for flag, value in (("--resamples", args.resamples), ("--permutations", args.permutations)):
        if value < 1:
            raise OLRError(f"{flag} must be at least 1, got {value}.")
    result = compute_for_run(
        args.run,
        split=args.split,
        max_tiles=args.max_tiles,
        sample_for_rsa=args.rsa_tiles,
        batch_size=args.batch_size,
        include_untrained=args.untrained,
        n_resamples=args.resamples,
        n_permutations=args.permutations,
        interval_method=args.interval,
    )
    print("\n".join(agreement_lines(result, header=True)))
    if args.against:
        paired = paired_difference(args.run, args.against, args.split, n_resamples=args.resamples, method=args.interval)
        print(paired_text(paired))
    return 0


def headline(result: dict) -> str:
    """One line naming the run, the tiles and what the split is for."""
    info = result.get("info") or {}
    blocks = f", {info['n_blocks']} spatial blocks" if info.get("n_blocks") is not None else ""
    split = split_word(info.get("split", "?"))
    split = split.upper() if split == "test" else split  # test figures stand out: reported, never tuned on
    return (
        f"Run {info.get('run', '?')}: agreement with the ground-truth phi on {info.get('n_tiles', '?')} {split} "
        f"tiles{blocks} ({info.get('split_role') or split_role(str(info.get('split')))})"
    )


def rho_text(entry: dict) -> str:
    """ "ρ +0.812 [+0.701, +0.880] p=0.001" (interval and p when computed)."""
    rho = entry.get("spearman")
    text = "ρ n/a" if rho is None else f"ρ {rho:+.3f}"
    interval = entry.get("interval") or {}
    if interval.get("low") is not None and interval.get("high") is not None:
        text += f" [{interval['low']:+.3f}, {interval['high']:+.3f}]"
    p = (entry.get("permutation") or {}).get("p")
    if p is not None:
        text += f" p={p:.3g}"
    return text


def minus_prior_text(verdict: dict) -> str | None:
    """ "its ρ minus the label prior's: +0.068 [+0.031, +0.105]" (the paired comparison), or None
    for files written before it existed or without blocks."""
    diff = (verdict or {}).get("minus_prior") or {}
    if diff.get("estimate") is None:
        return None
    bounds = (
        f" [{diff['low']:+.3f}, {diff['high']:+.3f}]"
        if diff.get("low") is not None and diff.get("high") is not None
        else ""
    )
    return f"its ρ minus the label prior's: {diff['estimate']:+.3f}{bounds}"


REFERENCE_TITLES = {
    "label_prior": "label prior (train phi)",
    "untrained siamese_self": "untrained siamese_self",
    "untrained siamese_rsa": "untrained siamese_rsa",
}


def agreement_lines(result: dict, header: bool = False) -> list[str]:
    """Printable lines for the agreement numbers of `compute_for_run`'s result: each figure with
    its interval and p-value, the references, the verdict and the few-blocks warning."""
    rows = {v: result[v] for v in FIGURES if v in result}
    if isinstance(result.get("label_prior"), dict):
        rows["label_prior"] = result["label_prior"]
    for view, a in (result.get("untrained") or {}).items():
        rows[f"untrained {view}"] = a
    info = result.get("info") or {}
    lines = [headline(result)] if header else []
    level = next((a["interval"].get("level") for a in rows.values() if a.get("interval")), None)
    if level is not None:
        lines.append(
            f"  ρ = Spearman over label pairs [{level:.0%} block-bootstrap interval over spatial blocks], "
            "p = one-sided label-relabelling test"
        )
    for view, a in rows.items():
        pe = "n/a" if a.get("pearson") is None else f"{a['pearson']:+.3f}"
        title = REFERENCE_TITLES.get(view, view)
        lines.append(f"  {title:<26} {rho_text(a)}  Pearson {pe}  ({a.get('n_pairs', 0)} pairs)")
        if a.get("excluded"):
            lines.append(f"  {'':<26} excluded (no variance): {', '.join(a['excluded'])}")
    v = result.get("verdict")
    if v:
        shares = (
            f"{v['view']} > label prior in {v['share_above_prior']:.1%} of paired resamples"
            if (v.get("share_above_prior") is not None)
            else ""
        )
        if v.get("share_above_classifier") is not None:
            shares += f", > classifier_prob in {v['share_above_classifier']:.1%}"
        lines.append(f"  verdict: {v['view']} {v['text']}" + (f" ({shares})" if shares else ""))
        paired = minus_prior_text(v)
        if paired:
            lines.append(f"  {'':<9}{paired}")
    if info.get("few_blocks"):
        lines.append(f"  warning: {info['few_blocks']}")
    return lines


#: what each figure of agreement.json is, for tables
FIGURE_ROLES = {
    "siamese_self": "learned (Siamese self-score)",
    "siamese_rsa": "learned (Siamese RSA)",
    "classifier_prob": "reference: the classifier's probabilities (the Siamese network's teacher)",
    "label_prior": "reference: the training split's own label phi (sees no image)",
    "untrained siamese_self": "reference: untrained network, self-score",
    "untrained siamese_rsa": "reference: untrained network, RSA",
    "siamese_self_vs_classifier": "Siamese self-score against the classifier view (not the ground truth)",
}


def agreement_table(result: dict) -> pd.DataFrame:
    """One row per figure of an agreement result (`compute_for_run` / `read_agreement`):
    figure, what it is, Spearman ρ, its interval (low, high; None before intervals existed),
    permutation p, Pearson r, label pairs."""
    rows = {v: result[v] for v in (*LEARNED_VIEWS, "label_prior") if isinstance(result.get(v), dict)}
    rows.update({f"untrained {v}": a for v, a in _as_dict(result.get("untrained")).items() if isinstance(a, dict)})
    if isinstance(result.get("siamese_self_vs_classifier"), dict):
        rows["siamese_self_vs_classifier"] = result["siamese_self_vs_classifier"]
    return pd.DataFrame(
        [
            {
                "figure": name,
                "what": FIGURE_ROLES.get(name, name),
                "spearman": a.get("spearman"),
                "low": (a.get("interval") or {}).get("low"),
                "high": (a.get("interval") or {}).get("high"),
                "p": (a.get("permutation") or {}).get("p"),
                "pearson": a.get("pearson"),
                "n_pairs": a.get("n_pairs"),
            }
            for name, a in rows.items()
        ],
        columns=["figure", "what", "spearman", "low", "high", "p", "pearson", "n_pairs"],
    )
