"""Correlation views and agreement on planted data where the answer is known."""

import json
import math
import shutil

import numpy as np
import pytest

from olr.analysis import correlations, embeddings
from olr.data import label_stats
from olr.data.dataset import load_dataset
from olr.errors import OLRError
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
    result = correlations.compute_for_run(run, max_tiles=25, sample_for_rsa=10, n_resamples=20, n_permutations=20)
    for view, entry in result["untrained"].items():  # the same figures, with interval and p added
        assert {k: entry[k] for k in first[view]} == first[view]
        assert {"interval", "permutation"} <= set(entry)
    skipped = correlations.compute_for_run(run, max_tiles=25, sample_for_rsa=10, include_untrained=False, n_resamples=5)
    assert "untrained" not in skipped and "label_prior" in skipped


def test_compute_for_classifier_run_has_only_the_classifier_view(trained_classifier_run, training_workspace):
    copy_runs(training_workspace, "cls")
    result = correlations.compute_for_run("cls", n_resamples=20, n_permutations=20)
    assert set(result) == {"classifier_prob", "label_prior", "verdict", "info"}
    assert result["verdict"]["view"] == "classifier_prob" and result["verdict"]["share_above_classifier"] is None
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


# ------------------------------------------------------------------ references, intervals, verdict


def test_rsa_of_a_resample_is_the_rsa_of_its_repeated_tiles_without_self_pairs():
    rng = np.random.default_rng(12)
    emb = rng.normal(size=(9, 3, 2))
    counts = np.array([2, 0, 1, 3, 1, 0, 1, 1, 2])
    tiles = np.repeat(np.arange(9), counts)
    # brute force: every pair of resampled rows a < b that are not two copies of one tile
    upper = [
        [
            emb[tiles[a], i] @ emb[tiles[b], i]
            for a in range(len(tiles))
            for b in range(a + 1, len(tiles))
            if tiles[a] != tiles[b]
        ]
        for i in range(3)
    ]
    expected = np.corrcoef(np.array(upper))
    assert np.allclose(correlations.RsaPairs(emb).correlation(counts), expected, atol=1e-12)
    assert np.allclose(correlations.RsaPairs(emb).correlation(np.ones(9)), correlations.rsa_correlation(emb))


def test_verdict_judges_the_paired_difference_so_a_shared_drop_on_resamples_cancels():
    # Constructed: on a resample both ρ drop by the share of repeated blocks (as an agreement ρ does,
    # its phi being noisier), the learned one always 0.05 above the prior. The learned view's own
    # percentile interval then reaches below the prior's ρ, the paired difference never does.
    blocks = np.repeat(np.arange(12), 5)

    def both(rows):
        repeated = 1 - len(np.unique(blocks[rows])) / 12
        return np.array([0.85 - 0.5 * repeated, 0.80 - 0.5 * repeated])

    boot = correlations.intervals.block_bootstrap(both, blocks, n_resamples=200, seed=3)
    learned, prior = boot.item(0).to_json(), boot.item(1).to_json()
    assert learned["low"] < prior["estimate"] == pytest.approx(0.80)  # the old rule said "tie"
    paired = boot.difference(0, 1).to_json()
    assert paired["low"] == pytest.approx(0.05) and paired["high"] == pytest.approx(0.05)
    assert correlations.verdict(paired) == "beats"
    assert correlations.verdict({"low": -0.2, "high": -0.01}) == "below"
    assert correlations.verdict({"low": -0.01, "high": 0.2}) == "tie"
    assert correlations.verdict({"low": float("nan"), "high": 0.2}) == "undefined"
    assert correlations.verdict(None) == "undefined"  # no blocks, no interval, no verdict


def _upper_spearman(a, b):
    """scipy's Spearman ρ over the label pairs i < j, labels without variance in either left out."""
    from scipy import stats

    keep = ~(
        np.all(np.isnan(a + np.diag(np.full(len(a), np.nan))), axis=1)
        | np.all(np.isnan(b + np.diag(np.full(len(b), np.nan))), axis=1)
    )
    i, j = np.triu_indices(int(keep.sum()), 1)
    a, b = a[np.ix_(keep, keep)], b[np.ix_(keep, keep)]
    return stats.spearmanr(a[i, j], b[i, j]).statistic


def test_agreement_json_holds_references_intervals_p_and_verdict(trained_siamese_run, training_workspace):
    copy_runs(training_workspace, "cls", "siam")
    result = correlations.compute_for_run("siam", n_resamples=60, n_permutations=50)
    assert correlations.read_agreement("siam") == result
    mats = correlations.load_matrices("siam")
    ds = load_dataset("tiny")
    names = list(mats["label_names"])
    own = [ds.label_names.index(n) for n in names]
    presence = np.asarray(ds.fractions)[:, own] >= ds.meta["min_fraction"]
    idx = mats["tile_indices"]
    assert np.array_equal(idx, ds.split_indices("test"))

    # the label prior: phi of the training split's own labels against the test split's phi
    train_phi = _corrcoef_or_nan(presence[ds.split_indices("train")])
    test_phi = _corrcoef_or_nan(presence[idx])
    assert np.allclose(mats["label_prior"], train_phi, atol=1e-12, equal_nan=True)
    assert result["label_prior"]["spearman"] == pytest.approx(_upper_spearman(train_phi, test_phi))
    assert result["info"]["n_prior_tiles"] == len(ds.split_indices("train"))

    # the interval of the Siamese ρ, recomputed on the same block draws with numpy and scipy
    blocks = ds.tiles["block_id"].to_numpy()[idx]
    sampler = correlations.intervals.BlockResampler(blocks)
    scores = mats["self_scores"].astype(np.float64)
    rhos = []
    for draw in sampler.draws(60, 0):
        rows = sampler.rows(draw)
        rhos.append(_upper_spearman(_corrcoef_or_nan(scores[rows]), _corrcoef_or_nan(presence[idx][rows])))
    rhos = np.array(rhos)
    rhos = rhos[~np.isnan(rhos)]
    interval = result["siamese_self"]["interval"]
    assert interval["estimate"] == pytest.approx(result["siamese_self"]["spearman"])
    assert interval["low"] == pytest.approx(np.percentile(rhos, 2.5), abs=1e-9)
    assert interval["high"] == pytest.approx(np.percentile(rhos, 97.5), abs=1e-9)
    assert interval["n_undefined"] == 60 - len(rhos) and interval["n_resamples"] == 60
    # the paired comparison: the Siamese ρ minus the prior's on each of the same draws
    diffs = []
    for draw in sampler.draws(60, 0):
        phi = _corrcoef_or_nan(presence[idx][sampler.rows(draw)])
        rho = _upper_spearman(_corrcoef_or_nan(scores[sampler.rows(draw)]), phi)
        diffs.append(rho - _upper_spearman(train_phi, phi))
    diffs = np.array(diffs)[~np.isnan(diffs)]
    paired = result["verdict"]["minus_prior"]
    assert paired["estimate"] == pytest.approx(result["siamese_self"]["spearman"] - result["label_prior"]["spearman"])
    assert paired["low"] == pytest.approx(np.percentile(diffs, 2.5), abs=1e-9)
    assert paired["high"] == pytest.approx(np.percentile(diffs, 97.5), abs=1e-9)
    assert "minus the label prior's" in "\n".join(correlations.agreement_lines(result))
    assert result["info"]["n_blocks"] == interval["n_blocks"] == len(np.unique(blocks)) == 3
    assert "only 3 spatial blocks" in result["info"]["few_blocks"]  # the tiny test split: a warning

    figures = ["siamese_self", "siamese_rsa", "classifier_prob", "label_prior", "siamese_self_vs_classifier"]
    for entry in [result[f] for f in figures] + list(result["untrained"].values()):
        assert {"interval", "permutation"} <= set(entry)
        test, kept = entry["permutation"], entry["n_labels"]
        if test["p"] is not None:  # at most 4 labels: every relabelling enumerated, p a multiple of 1/kept!
            assert test["exact"] and test["n_permutations"] == math.factorial(kept)
            assert 1 / test["n_permutations"] <= test["p"] <= 1
            assert test["p"] * test["n_permutations"] == pytest.approx(round(test["p"] * test["n_permutations"]))

    v = result["verdict"]
    expected = "beats" if paired["low"] > 0 else "below" if paired["high"] < 0 else "tie"
    assert v["view"] == "siamese_self" and v["outcome"] == expected and v["text"] == correlations.VERDICT_TEXT[expected]
    assert 0 <= v["share_above_prior"] <= 1 and 0 <= v["share_above_classifier"] <= 1

    # every figure is printed with its interval, the references and the verdict
    lines = "\n".join(correlations.agreement_lines(result, header=True))
    assert "TEST tiles" in lines and "label prior (train phi)" in lines and "verdict: siamese_self" in lines
    assert f"[{interval['low']:+.3f}, {interval['high']:+.3f}]" in lines
    assert "warning: The test split has only 3" in lines

    from olr.analysis import compare

    row = compare.compare_runs(["siam"]).iloc[0]
    assert row["learned ρ"] == pytest.approx(result["siamese_self"]["spearman"]) and row["verdict"] == v["text"]
    assert row["label prior ρ"] == pytest.approx(result["label_prior"]["spearman"]) and row["agreement split"] == "test"
    assert list(compare.compare_runs(["siam"]).columns[5:8]) == ["agreement split", "learned ρ", "learned ρ 95% low"]


def test_an_agreement_json_from_before_references_still_reads(trained_siamese_run, training_workspace):
    home = copy_runs(training_workspace, "cls", "siam")
    old = {
        "siamese_self": {"spearman": 0.5, "pearson": 0.4, "n_pairs": 6, "n_labels": 4, "excluded": []},
        "classifier_prob": {"spearman": 0.7, "pearson": 0.6, "n_pairs": 6, "n_labels": 4, "excluded": []},
        "untrained": {"siamese_self": {"spearman": 0.1, "pearson": 0.0, "n_pairs": 6, "n_labels": 4, "excluded": []}},
        "info": {"run": "siam", "split": "test", "n_tiles": 39},
    }
    path = home / "models" / "siam" / "correlations" / "agreement.json"
    path.write_text(json.dumps(old))
    assert correlations.read_agreement("siam") == old
    lines = correlations.agreement_lines(old, header=True)
    assert any("siamese_self" in line and "ρ +0.500" in line for line in lines) and not any(
        "verdict" in x for x in lines
    )
    table = correlations.agreement_table(old)
    assert table["low"].isna().all() and list(table["figure"]) == [
        "siamese_self",
        "classifier_prob",
        "untrained siamese_self",
    ]
    from olr.analysis import compare

    row = compare.compare_runs(["siam"]).iloc[0]
    assert row["learned ρ"] == 0.5 and row["classifier ρ"] == 0.7 and row["untrained ρ"] == 0.1
    assert "verdict" not in row.index or row.isna()["verdict"]

    # a new file with a malformed interval or verdict is refused, naming the file
    for damaged in (
        {**old, "siamese_self": {**old["siamese_self"], "interval": {"low": "low"}}},
        {**old, "verdict": {"outcome": "wins"}},
        {**old, "label_prior": "high"},
    ):
        path.write_text(json.dumps(damaged))
        with pytest.raises(OLRError, match=r"agreement\.json"):
            correlations.read_agreement("siam")


def folder_state(folder) -> dict:
    """Each file of `folder` with its bytes, inode and modification time, and the folder's own inode:
    equal before and after only when nothing replaced or rewrote the folder or a file in it."""
    files = {p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}
    return {"inode": folder.stat().st_ino, "files": files}


def test_correlations_command_on_validation(trained_siamese_run, training_workspace):
    home = copy_runs(training_workspace, "cls", "siam")
    test_record = folder_state(home / "models" / "siam" / "correlations")
    proc = cli(
        "correlations",
        "siam",
        "--split",
        "val",
        "--resamples",
        "40",
        "--permutations",
        "30",
        "--rsa-tiles",
        "10",
        "--interval",
        "BCa",
    )
    assert proc.returncode == 0, proc.stderr
    assert "validation tiles" in proc.stdout and "the split to tune" in proc.stdout
    assert "label prior (train phi)" in proc.stdout and "untrained siamese_self" in proc.stdout
    assert "verdict: siamese_self" in proc.stdout and "95% block-bootstrap interval" in proc.stdout
    written = correlations.read_agreement("siam", "val")
    assert written["info"]["split"] == "val" and written["verdict"]["outcome"] in correlations.VERDICT_TEXT
    assert written["siamese_self"]["interval"]["method"] == correlations.intervals.METHOD_TEXT["BCa"]
    assert written["verdict"]["minus_prior"]["method"] == correlations.intervals.METHOD_TEXT["BCa"]
    # the validation figures have their own folder; the test record is untouched
    assert (home / "models" / "siam" / "correlations-val" / "agreement.json").exists()
    assert folder_state(home / "models" / "siam" / "correlations") == test_record
    assert correlations.read_agreement("siam")["info"]["split"] == "test"
    bad = cli("correlations", "siam", "--resamples", "0")
    assert bad.returncode == 2 and "--resamples must be at least 1" in bad.stderr and "Traceback" not in bad.stderr


# ------------------------------------------------------------------ one folder per evaluation split

SMALL = {"sample_for_rsa": 10, "include_untrained": False, "n_resamples": 20, "n_permutations": 20}


def test_each_split_keeps_its_own_correlations_and_compare_prefers_validation(trained_siamese_run, training_workspace):
    from olr.analysis import compare

    home = copy_runs(training_workspace, "cls", "siam")
    run_dir = home / "models" / "siam"
    ds = load_dataset("tiny")
    test = correlations.read_agreement("siam")
    assert test["info"]["split"] == "test" and correlations.computed_splits(run_dir) == ["test"]
    assert correlations.read_agreement("siam", "val") is None
    with pytest.raises(
        OLRError, match=r"on the validation split yet; run python -m olr correlations siam --split val\.$"
    ):
        correlations.load_matrices("siam", "val")
    assert compare.compare_runs(["siam"]).iloc[0]["agreement split"] == "test"
    test_record = folder_state(run_dir / "correlations")

    val = correlations.compute_for_run("siam", split="val", **SMALL)
    assert folder_state(run_dir / "correlations") == test_record  # the test record: not rewritten, byte for byte
    assert correlations.computed_splits(run_dir) == ["test", "val"]
    assert correlations.read_agreement("siam", "val") == val and val["info"]["split"] == "val"
    assert correlations.read_agreement("siam") == test
    assert np.array_equal(correlations.load_matrices("siam", "val")["tile_indices"], ds.split_indices("val"))
    assert np.array_equal(correlations.load_matrices("siam")["tile_indices"], ds.split_indices("test"))

    # runs are compared on validation, and the row says so
    row = compare.compare_runs(["siam"]).iloc[0]
    assert row["agreement split"] == "val" and row["agreement_info_n_tiles"] == len(ds.split_indices("val"))
    assert row["learned ρ"] == pytest.approx(val["siamese_self"]["spearman"])
    assert row["label prior ρ"] == pytest.approx(val["label_prior"]["spearman"])
    with pytest.raises(OLRError, match="Unknown split 'holdout' for correlations"):
        correlations.compute_for_run("siam", split="holdout")

    # A run folder from before per-split folders: `--split val` had replaced `correlations/` itself.
    shutil.rmtree(run_dir / "correlations")
    (run_dir / "correlations-val").rename(run_dir / "correlations")
    assert correlations.computed_splits(run_dir) == ["val"]
    assert correlations.read_agreement("siam") is None  # validation figures never read as the test record
    assert correlations.read_agreement("siam", "val") == val
    assert np.array_equal(correlations.load_matrices("siam", "val")["tile_indices"], ds.split_indices("val"))
    with pytest.raises(OLRError, match=r"on the test split yet; run python -m olr correlations siam\.$"):
        correlations.load_matrices("siam")
    assert compare.compare_runs(["siam"]).iloc[0]["agreement split"] == "val"


def test_correlations_page_shows_the_split_chosen(trained_siamese_run, training_workspace, monkeypatch):
    from tests.fixtures.pages import open_app
    from tests.test_app_pages import texts

    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    copy_runs(training_workspace, "cls", "siam")
    ds = load_dataset("tiny")
    test = correlations.read_agreement("siam")
    at = open_app("pages/correlations.py", **{"olr.run": "siam"})
    assert at.radio(key="corr.split").value == "test"  # test stays the default
    assert {m.label: m.value for m in at.metric}["Siamese self-score · ρ"] == f"{test['siamese_self']['spearman']:.3f}"
    assert f"{len(ds.split_indices('test'))} test tiles" in texts(at, "caption")
    assert "python -m olr correlations siam --split val" in texts(at, "caption")  # how to compute the other

    at.radio(key="corr.split").set_value("val").run()
    assert not at.exception and not at.metric  # nothing of the test record under the validation choice
    assert "no correlations on the validation split yet" in texts(at, "info")
    assert "python -m olr correlations siam --split val" in texts(at, "info")

    val = correlations.compute_for_run("siam", split="val", **SMALL)
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Siamese self-score · ρ"] == f"{val['siamese_self']['spearman']:.3f}"
    assert f"{len(ds.split_indices('val'))} validation tiles" in texts(at, "caption")
    at.radio(key="corr.split").set_value("test").run()
    assert {m.label: m.value for m in at.metric}["Siamese self-score · ρ"] == f"{test['siamese_self']['spearman']:.3f}"
    assert f"{len(ds.split_indices('test'))} test tiles" in texts(at, "caption")
    assert "--split val" not in texts(at, "caption")  # validation figures exist now


def test_two_siamese_runs_compare_pair_by_pair_on_the_same_resamples(trained_siamese_run, training_workspace):
    home = copy_runs(training_workspace, "cls", "siam")
    with pytest.raises(OLRError, match=r"on the validation split yet; run python -m olr correlations siam --split val"):
        correlations.paired_difference("siam", "siam", "val")
    correlations.compute_for_run("siam", split="val", **SMALL)
    # a second variant: the same run with its stored validation self-scores disturbed
    shutil.copytree(home / "models" / "siam", home / "models" / "siam2")
    path = home / "models" / "siam2" / "correlations-val" / "matrices.npz"
    arrays = dict(np.load(path))
    rng = np.random.default_rng(5)
    arrays["self_scores"] = arrays["self_scores"] + rng.normal(
        0, arrays["self_scores"].std(), arrays["self_scores"].shape
    )
    np.savez(path, **arrays)

    same = correlations.paired_difference("siam", "siam", "val", n_resamples=50)
    assert same["difference"]["estimate"] == 0 and same["difference"]["low"] == same["difference"]["high"] == 0
    assert same["share_above"] == 0  # never strictly above itself

    paired = correlations.paired_difference("siam", "siam2", "val", n_resamples=50)
    # each ρ is the stored agreement's (the estimate uses every tile once)
    assert paired["rho"] == pytest.approx(correlations.read_agreement("siam", "val")["siamese_self"]["spearman"])
    noisy = correlations.agreement(label_stats.pearson_matrix(arrays["self_scores"]), arrays["gt_phi"])["spearman"]
    assert paired["other_rho"] == pytest.approx(noisy)
    d = paired["difference"]
    assert d["estimate"] == pytest.approx(paired["rho"] - noisy) and d["low"] <= d["high"]
    assert 0 <= paired["share_above"] <= 1
    assert correlations.paired_text(paired).startswith(f"Siamese self-score ρ of siam ({paired['rho']:+.3f}) minus")

    correlations.compute_for_run("cls", split="val", **SMALL)
    with pytest.raises(OLRError, match="The run cls is not a Siamese run"):
        correlations.paired_difference("siam", "cls")
    proc = cli(*("correlations", "siam", "--split", "val", "--resamples", "20", "--no-untrained"), "--against", "siam2")
    assert proc.returncode == 0, proc.stderr
    assert "Siamese self-score ρ of siam" in proc.stdout and "minus siam2's" in proc.stdout, proc.stdout
