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
score) has an undefined row; it is left out and listed in "excluded". An untrained network
of the same architecture (`untrained_agreement`) gives the chance level to compare with,
because image statistics alone already correlate with land cover.

`compute_for_run` writes `<run>/correlations/matrices.npz` (label_names, tile_indices,
gt_phi, gt_cooc, gt_fraction_corr, gt_npmi, gt_cond, classifier_prob,
classifier_probabilities (n, L); Siamese runs also siamese_self, siamese_rsa,
self_scores (n, L), rsa_tile_indices) and `agreement.json` ({view: {"spearman", "pearson",
"n_pairs", "n_labels", "excluded"}, ..., "info": {...}}), atomically as one folder.
"""

from __future__ import annotations

import io

import numpy as np

from olr import atomic
from olr.analysis import inference, run_data
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
    e = np.asarray(embeddings, dtype=np.float64)
    m = e.shape[0]
    if m < 3:
        return np.full((e.shape[1], e.shape[1]), np.nan)
    a, b = np.triu_indices(m, 1)
    sims = np.einsum("alk,blk->lab", e, e)[:, a, b]  # (L, m(m-1)/2)
    return label_stats.pearson_matrix(sims.T)


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
    off = ~np.eye(n_labels, dtype=bool)

    def undefined(m):
        return np.all(np.isnan(np.where(off, m, np.nan)), axis=1) if n_labels > 1 else np.ones(n_labels, bool)

    excluded = undefined(a) | undefined(b)
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
    emb = _embed(model, dataset, idx, batch_size)
    m = min(int(sample_for_rsa), len(idx))
    rsa_pos = np.sort(np.random.default_rng(seed + 1).permutation(len(idx))[:m])
    scores = self_scores(emb)
    return scores, label_stats.pearson_matrix(scores), rsa_correlation(emb[rsa_pos]), idx[rsa_pos]


def _selection(run, split: str, max_tiles: int | None, seed: int):
    """(classifier run, dataset, labels, tile indices, presence (n, L)) of the tiles a run's
    correlations are computed on; presence uses the classifier run's min_fraction."""
    classifier_run = run_data.classifier_run_of(run) if run.config.get("kind") == "siamese" else run
    dataset = run_data.run_dataset(run)
    labels = run_data.run_labels(run)
    idx = _tiles(run, dataset, split, max_tiles, seed)
    presence = run_data.run_presence(run, dataset, classifier_run.config.get("min_fraction"))[idx]
    return classifier_run, dataset, labels, idx, presence


def compute_for_run(
    run,
    split: str = "test",
    max_tiles: int | None = None,
    sample_for_rsa: int = 200,
    batch_size: int = 256,
    seed: int = 0,
    include_untrained: bool = False,
    check_finished: bool = True,
) -> dict:
    """Correlation matrices and agreement of a Siamese run (all views) or a classifier run.

    Uses the tiles of `split` (at most `max_tiles`, a fixed-seed sample); the representational
    view uses `sample_for_rsa` of them. Writes `<run>/correlations/` and returns the content of
    `agreement.json`: {view: {"spearman", "pearson", "n_pairs", "n_labels", "excluded"}} for each
    view computed ("siamese_self", "siamese_rsa", "classifier_prob"; Siamese runs also
    "siamese_self_vs_classifier" and, with `include_untrained`, "untrained": {view: {...}}),
    plus "info": {"run", "kind", "classifier_run", "split", "n_tiles", "n_rsa_tiles", "labels", "reference"}.
    """
    run = as_run(run)
    if check_finished:
        run_data.require_finished(run)
    siamese = run.config.get("kind") == "siamese"
    classifier_run, dataset, labels, idx, presence = _selection(run, split, max_tiles, seed)
    names = [lab.name for lab in labels]
    fractions = dataset.fractions_for(labels)[idx]
    gt = ground_truth(presence, fractions, names, [lab.color for lab in labels])

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
        "classifier_prob": label_stats.pearson_matrix(probs),
        "classifier_probabilities": probs,
    }
    if siamese:
        model = run_data.best_model(run)
        scores, self_corr, rsa_corr, rsa_idx = _siamese_views(model, dataset, idx, sample_for_rsa, seed, batch_size)
        arrays.update(
            siamese_self=self_corr,
            siamese_rsa=rsa_corr,
            self_scores=scores.astype(np.float32),
            rsa_tile_indices=rsa_idx.astype(np.int64),
        )
    result = {v: agreement(arrays[v], gt.phi, names) for v in LEARNED_VIEWS if v in arrays}
    result["info"] = {
        "run": run.id,
        "kind": run.config.get("kind"),
        "classifier_run": classifier_run.id,
        "split": split,
        "n_tiles": len(idx),
        "n_rsa_tiles": len(arrays["rsa_tile_indices"]) if siamese else 0,
        "labels": names,
        "reference": "gt_phi",
    }
    if siamese:
        # How closely the Siamese network imitates its teacher, independent of the ground truth.
        result["siamese_self_vs_classifier"] = agreement(arrays["siamese_self"], arrays["classifier_prob"], names)
    if siamese and include_untrained:
        result["untrained"] = _untrained_views(run, dataset, idx, gt.phi, names, sample_for_rsa, seed, batch_size)

    with atomic.staged_folder(RunLayout(run.path).correlations, overwrite=True) as tmp:
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


def _untrained_views(run, dataset, idx, reference, names, sample_for_rsa, seed, batch_size) -> dict:
    model = untrained_model(run, seed)
    _, self_corr, rsa_corr, _ = _siamese_views(model, dataset, idx, sample_for_rsa, seed, batch_size)
    return {
        "siamese_self": agreement(self_corr, reference, names),
        "siamese_rsa": agreement(rsa_corr, reference, names),
    }


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
    {"siamese_self": {...}, "siamese_rsa": {...}} like the entries of `compute_for_run`'s result.
    """
    run = as_run(run)
    if run.config.get("kind") != "siamese":
        raise OLRError(f"The run {run.id} is a {run.config.get('kind')} run; untrained agreement needs a Siamese run.")
    _, dataset, labels, idx, presence = _selection(run, split, max_tiles, seed)
    names = [lab.name for lab in labels]
    reference = label_stats.label_stats(presence).phi
    return json_ready(_untrained_views(run, dataset, idx, reference, names, sample_for_rsa, seed, batch_size))


def load_matrices(run) -> dict[str, np.ndarray]:
    """The arrays of `<run>/correlations/matrices.npz` (OLRError if not computed yet, or naming the
    file when its arrays lack the shapes the module docstring gives)."""
    run = as_run(run)
    run_data.check_results(run)
    path = RunLayout(run.path).matrices
    if not path.exists():
        raise OLRError(f"The run {run.id} has no correlation matrices yet; run python -m olr correlations {run.id}.")
    arrays = store.read_npz(path, run.id, _remedy(run))
    problem = _matrices_problem(arrays)
    if problem:
        raise store.damaged_result(path, run.id, problem, _remedy(run))
    return arrays


#: arrays of matrices.npz by shape: (L,) names, (n,) tile rows, (L, L) matrices, (n, L) per-tile scores
SQUARE = ("gt_phi", "gt_cooc", "gt_fraction_corr", "gt_npmi", "gt_cond", *LEARNED_VIEWS)
PER_TILE = ("classifier_probabilities", "self_scores")


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


def _remedy(run) -> str:
    return f"compute the correlations again (python -m olr correlations {run.id})"


def read_agreement(run) -> dict | None:
    """`<run>/correlations/agreement.json`, or None if not computed yet (OLRError naming the file
    when an entry is not what `compute_for_run` writes)."""
    run = as_run(run)
    run_data.check_results(run)
    path = RunLayout(run.path).agreement
    data = store.read_result_json(path, run.id, _remedy(run))
    if data is None:
        return None
    entries = {k: v for k, v in data.items() if k in (*LEARNED_VIEWS, "siamese_self_vs_classifier")}
    entries.update({f"untrained {k}": v for k, v in _as_dict(data.get("untrained")).items()})
    bad = [k for k, v in entries.items() if not _agreement_ok(v)]
    if bad or not isinstance(data.get("info", {}), dict) or not isinstance(data.get("untrained", {}), dict):
        raise store.damaged_result(path, run.id, f"has malformed entries ({', '.join(bad) or 'info'})", _remedy(run))
    return data


def _as_dict(x) -> dict:
    return x if isinstance(x, dict) else {}


def _agreement_ok(entry) -> bool:
    """An agreement entry: {"spearman", "pearson": number or null, "n_pairs": int, "excluded": [str]}."""
    if not isinstance(entry, dict):
        return False
    numbers = all(
        entry.get(k) is None or (isinstance(entry.get(k), (int, float)) and not isinstance(entry.get(k), bool))
        for k in ("spearman", "pearson", "n_pairs")
    )
    excluded = entry.get("excluded", [])
    return numbers and isinstance(excluded, list) and all(isinstance(x, str) for x in excluded)


# ------------------------------------------------------------------ CLI: python -m olr correlations


def add_arguments(parser) -> None:
    parser.add_argument("run", help="run id (folder name under models/) or run folder")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="tiles to use (default test)")
    parser.add_argument("--max-tiles", type=int, default=None, help="use at most this many tiles (fixed-seed sample)")
    parser.add_argument("--rsa-tiles", type=int, default=200, help="tiles in the representational view (default 200)")
    parser.add_argument(
        "--untrained", action="store_true", help="also report an untrained network's agreement (chance level)"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="tiles per batch (default 256)")


def correlations_command(args) -> int:
    if args.max_tiles is not None and args.max_tiles < 3:
        raise OLRError(f"--max-tiles must be at least 3, got {args.max_tiles}.")
    result = compute_for_run(
        args.run,
        split=args.split,
        max_tiles=args.max_tiles,
        sample_for_rsa=args.rsa_tiles,
        batch_size=args.batch_size,
        include_untrained=args.untrained,
    )
    info = result["info"]
    print(f"Run {info['run']}: agreement with the ground-truth phi on {info['n_tiles']} {info['split']} tiles")
    print("\n".join(agreement_lines(result)))
    return 0


def agreement_lines(result: dict) -> list[str]:
    """Printable lines for the agreement numbers of `compute_for_run`'s result."""
    rows = {v: result[v] for v in (*LEARNED_VIEWS, "siamese_self_vs_classifier") if v in result}
    for view, a in result.get("untrained", {}).items():
        rows[f"untrained {view}"] = a
    lines = []
    for view, a in rows.items():
        sp = "n/a" if a["spearman"] is None else f"{a['spearman']:+.3f}"
        pe = "n/a" if a["pearson"] is None else f"{a['pearson']:+.3f}"
        lines.append(f"  {view:<26} Spearman {sp}  Pearson {pe}  ({a['n_pairs']} pairs)")
        if a["excluded"]:
            lines.append(f"  {'':<26} excluded (no variance): {', '.join(a['excluded'])}")
    return lines
