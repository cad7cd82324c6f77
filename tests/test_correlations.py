"""Correlation views and agreement on planted data where the answer is known."""

import shutil

import numpy as np
import pytest

from olr.analysis import correlations, embeddings
from olr.data import label_stats
from olr.data.dataset import load_dataset
from olr.runs import store
from olr.training import models
from tests.test_evaluation import _keras_predict, cli, copy_runs


def test_rankdata_and_spearman_on_a_hand_case_with_ties():
    assert correlations.rankdata([10, 20, 20, 30, 20, 5]).tolist() == [2, 4, 4, 6, 4, 1]
    # ranks x = [1, 2.5, 2.5, 4], y = [1, 3, 2, 4]: r = 4.5 / sqrt(4.5 * 5)
    assert correlations.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    # monotone but non-linear: Spearman 1, Pearson below 1
    x = np.arange(1, 20, dtype=float)
    assert correlations.spearman(x, x**3) == pytest.approx(1.0) and correlations.pearson(x, x**3) < 0.95
    assert np.isnan(correlations.spearman([1, 1, 1, 1], [1, 2, 3, 4]))


def _planted_presence(n, n_labels, seed):
    """Presence with real correlation structure: labels driven by two latent 'landscape' factors."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, 2))
    loadings = rng.normal(size=(2, n_labels)) * 1.5
    logits = factors @ loadings + rng.normal(size=(n, n_labels)) * 0.7 - 0.5
    return (logits > 0).astype(np.uint8)


def _embeddings_with_self_scores(scores, k, rng):
    """(n, L, k) embeddings whose squared norms equal `scores` (n, L), directions random."""
    directions = rng.normal(size=(*scores.shape, k))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    return directions * np.sqrt(scores)[..., None]


def test_self_scores_planted_from_presence_agree_and_random_embeddings_do_not():
    rng = np.random.default_rng(5)
    y = _planted_presence(600, 14, seed=5)
    phi = label_stats.label_stats(y).phi
    emb = _embeddings_with_self_scores(y + 0.2 + 0.05 * rng.random(y.shape), k=8, rng=rng)
    assert np.allclose(correlations.self_scores(emb), y + 0.2 + 0.0, atol=0.06)
    learned = correlations.self_score_correlation(emb)
    a = correlations.agreement(learned, phi)
    assert a["spearman"] > 0.95 and a["pearson"] > 0.95 and a["n_pairs"] == 14 * 13 // 2 and a["excluded"] == []

    random = correlations.self_score_correlation(rng.normal(size=(600, 14, 8)))
    r = correlations.agreement(random, phi)
    assert abs(r["spearman"]) < 0.35 and abs(r["pearson"]) < 0.35


def test_self_score_correlation_matches_its_definition():
    rng = np.random.default_rng(6)
    emb = rng.normal(size=(40, 4, 3))
    brute = np.array([[sum(v * v for v in emb[n, i]) for i in range(4)] for n in range(40)])
    assert np.allclose(correlations.self_score_correlation(emb), np.corrcoef(brute.T), atol=1e-12)


def test_rsa_matches_its_definition_and_recovers_planted_structure():
    rng = np.random.default_rng(7)
    emb = rng.normal(size=(7, 3, 2))
    m = emb.shape[0]
    upper = []
    for i in range(3):
        s = np.array([[emb[a, i] @ emb[b, i] for b in range(m)] for a in range(m)])
        upper.append([s[a, b] for a in range(m) for b in range(a + 1, m)])
    assert np.allclose(correlations.rsa_correlation(emb), np.corrcoef(np.array(upper)), atol=1e-12)

    # planted: e_i(x) = presence_i(x) * v_i + noise, so S_i[a, b] ~ y_i(a) y_i(b)
    y = _planted_presence(150, 10, seed=8)
    v = rng.normal(size=(10, 6))
    planted = y[:, :, None] * v[None] + 0.05 * rng.normal(size=(150, 10, 6))
    a = correlations.agreement(correlations.rsa_correlation(planted), label_stats.label_stats(y).phi)
    assert a["spearman"] > 0.8


def test_zero_variance_labels_are_excluded_and_listed():
    rng = np.random.default_rng(9)
    y = _planted_presence(300, 6, seed=9)
    y[:, 2] = 0  # never present: no phi row
    names = [f"L{i}" for i in range(6)]
    emb = _embeddings_with_self_scores(y + 0.3, k=4, rng=rng)
    emb[:, 4] = 1.0  # constant embedding: no learned row
    a = correlations.agreement(correlations.self_score_correlation(emb), label_stats.label_stats(y).phi, names)
    assert a["excluded"] == ["L2", "L4"] and a["n_labels"] == 4 and a["n_pairs"] == 6
    assert a["spearman"] == pytest.approx(1.0)
    # too few pairs left: undefined, not a fake number
    few = correlations.agreement(np.eye(3), np.full((3, 3), np.nan))
    assert few["n_pairs"] == 0 and np.isnan(few["spearman"]) and few["excluded"] == ["0", "1", "2"]


# ------------------------------------------------------------------ end to end on real trained runs


def _keras_embed(run_path, images):
    import keras

    import olr.training.models  # noqa: F401

    model = keras.models.load_model(run_path / "best.keras", compile=False)
    return np.asarray(model.get_layer("embedder").predict(images.astype(np.float32), verbose=0), dtype=np.float64)


def _corrcoef_or_nan(x):
    """np.corrcoef of the columns with NaN rows/columns for constant ones (like olr.data.label_stats)."""
    x = np.asarray(x, dtype=np.float64)
    const = x.std(axis=0) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(x.T)
    c[const, :] = np.nan
    c[:, const] = np.nan
    return c


def _same(a, b):
    return a.keys() == b.keys() and all(
        (np.isnan(a[k]) and np.isnan(b[k]))
        if isinstance(a[k], float) and isinstance(b[k], float) and np.isnan(a[k])
        else (a[k] == pytest.approx(b[k]) if isinstance(a[k], float) else a[k] == b[k])
        for k in a
    )


def test_compute_for_siamese_run_matches_independent_recomputation(trained_siamese_run, training_workspace):
    home = copy_runs(training_workspace, "cls", "siam")
    shutil.rmtree(home / "models" / "siam" / "correlations")
    result = correlations.compute_for_run("siam", max_tiles=30, sample_for_rsa=12)
    mats = correlations.load_matrices("siam")
    assert {
        "gt_phi",
        "gt_cooc",
        "gt_fraction_corr",
        "gt_npmi",
        "gt_cond",
        "siamese_self",
        "siamese_rsa",
        "classifier_prob",
        "self_scores",
        "tile_indices",
        "rsa_tile_indices",
        "label_names",
    } <= set(mats)
    assert correlations.read_agreement("siam") == result

    ds = load_dataset("tiny")
    idx = mats["tile_indices"]
    assert len(idx) == 30 == result["info"]["n_tiles"] and set(idx) <= set(ds.split_indices("test"))
    names = list(mats["label_names"])
    own = [ds.label_names.index(n) for n in names]
    presence = np.asarray(ds.fractions)[idx][:, own] >= ds.meta["min_fraction"]
    assert np.allclose(mats["gt_phi"], _corrcoef_or_nan(presence), atol=1e-12, equal_nan=True)
    assert np.array_equal(mats["gt_cooc"], presence.T.astype(int) @ presence.astype(int))

    e = _keras_embed(home / "models" / "siam", ds.images[idx])
    s = (e**2).sum(-1)
    assert np.allclose(mats["self_scores"], s, rtol=1e-4, atol=1e-6)
    assert np.allclose(mats["siamese_self"], _corrcoef_or_nan(s), atol=1e-4, equal_nan=True)
    rsa_pos = np.searchsorted(idx, mats["rsa_tile_indices"])
    assert len(rsa_pos) == 12 and np.array_equal(idx[rsa_pos], mats["rsa_tile_indices"])
    assert np.allclose(mats["siamese_rsa"], correlations.rsa_correlation(e[rsa_pos]), atol=1e-4, equal_nan=True)
    p = _keras_predict(home / "models" / "cls", ds.images[idx])
    assert np.allclose(mats["classifier_prob"], _corrcoef_or_nan(p), atol=1e-4, equal_nan=True)
    for view in ("siamese_self", "siamese_rsa", "classifier_prob"):
        expected = correlations.agreement(mats[view], mats["gt_phi"], names)
        got = result[view]
        assert got["n_pairs"] == expected["n_pairs"] and got["excluded"] == expected["excluded"]
        for key in ("spearman", "pearson"):
            assert (got[key] is None and np.isnan(expected[key])) or got[key] == pytest.approx(expected[key])


def test_untrained_network_is_a_fresh_model_on_the_same_tiles(trained_siamese_run, training_workspace):
    copy_runs(training_workspace, "cls", "siam")
    run = store.load_run("siam")
    trained = models.load_model(run.files.best)
    fresh = correlations.untrained_model(run, seed=0)
    tw, fw = trained.get_weights(), fresh.get_weights()
    assert [w.shape for w in tw] == [w.shape for w in fw]
    assert not all(np.allclose(a, b) for a, b in zip(tw, fw))  # new weights ...
    again = correlations.untrained_model(run, seed=0).get_weights()
    assert all(np.allclose(a, b) for a, b in zip(fw, again))  # ... reproducible by seed
    first = correlations.untrained_agreement(run, max_tiles=25, sample_for_rsa=10)
    assert set(first) == {"siamese_self", "siamese_rsa"}
    for view in first.values():
        kept = 4 - len(view["excluded"])
        assert view["n_labels"] == kept and view["n_pairs"] == kept * (kept - 1) // 2
    assert first == correlations.untrained_agreement(run, max_tiles=25, sample_for_rsa=10)
    result = correlations.compute_for_run(run, max_tiles=25, sample_for_rsa=10, include_untrained=True)
    assert result["untrained"] == first


def test_compute_for_classifier_run_has_only_the_classifier_view(trained_classifier_run, training_workspace):
    copy_runs(training_workspace, "cls")
    result = correlations.compute_for_run("cls")
    assert set(result) == {"classifier_prob", "info"}
    mats = correlations.load_matrices("cls")
    assert "siamese_self" not in mats and mats["classifier_probabilities"].shape == (result["info"]["n_tiles"], 4)


def test_export_embeddings_streams_float16_and_nearest_tiles_match_brute_force(trained_siamese_run, training_workspace):
    home = copy_runs(training_workspace, "cls", "siam")
    path = embeddings.export_embeddings("siam", chunk=50)  # several chunks
    emb, index = embeddings.load_embeddings(path)
    ds = load_dataset("tiny")
    assert isinstance(emb, np.memmap) and emb.dtype == np.float16 and emb.shape == (ds.n_tiles, 4, 4)
    e = _keras_embed(home / "models" / "siam", ds.images[:])
    assert np.allclose(emb, e, rtol=2e-3, atol=2e-3)
    assert np.array_equal(index["rows"], np.arange(ds.n_tiles)) and str(index["dataset"]) == "tiny"
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.index.npz", "tiny.npy"]  # no leftovers

    test = embeddings.export_embeddings("siam", split="test")
    assert test.name == "tiny.test.npy"
    assert np.array_equal(embeddings.load_embeddings(test)[1]["rows"], ds.split_indices("test"))

    for label in (None, 2):
        rows, sims = embeddings.nearest_tiles(emb, 5, label=label, k=4)
        v = np.asarray(emb, np.float64)
        v = v.reshape(len(v), -1) if label is None else v[:, label]
        cos = v @ v[5] / (np.linalg.norm(v, axis=1) * np.linalg.norm(v[5]) + 1e-30)
        cos[5] = -np.inf
        assert 5 not in rows and np.allclose(sims, np.sort(cos)[::-1][:4], atol=1e-5)

    proc = cli("embed", "siam", "--split", "val")
    assert proc.returncode == 0, proc.stderr
    assert (home / "models" / "siam" / "embeddings" / "tiny.val.npy").exists()
    bad = cli("embed", "cls")
    assert bad.returncode == 2 and "Siamese run" in bad.stderr and "Traceback" not in bad.stderr


def test_nearest_tiles_on_planted_embeddings():
    rng = np.random.default_rng(11)
    emb = rng.normal(size=(50, 3, 4)).astype(np.float16)
    emb[17, 1] = emb[3, 1] * 2  # same direction for label 1 only
    rows, sims = embeddings.nearest_tiles(emb, 3, label=1, k=1)
    assert rows.tolist() == [17] and sims[0] == pytest.approx(1.0, abs=1e-3)
    rows_all, _ = embeddings.nearest_tiles(emb, 3, label=None, k=49)
    assert sorted(rows_all.tolist()) == [i for i in range(50) if i != 3]
