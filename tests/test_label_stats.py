"""Label statistics: phi / NPMI / P(j|i) against definitions, the on-disk cache, the CLI."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from olr import atomic, workspace
from olr.data import label_stats
from olr.data.dataset import load_dataset, write_dataset
from olr.data.label_schemes import get_scheme


def make_dataset(name, fractions, splits=None, min_fraction=0.5, tile=8, bands=3, seed=0, images=None):
    """Write a small real dataset folder `data/<name>/` into the current workspace and open it.

    `fractions` (N, L) float; labels are the first L CORINE level-3 classes; `splits` (N,) of
    "train"/"val"/"test" (default: 60/20/20 in order); `images` (N, tile, tile, bands) optional.
    """
    fractions = np.asarray(fractions, dtype=np.float32)
    n, n_labels = fractions.shape
    if splits is None:
        splits = np.array(["train"] * n, dtype=object)
        splits[int(0.6 * n) : int(0.8 * n)] = "val"
        splits[int(0.8 * n) :] = "test"
    if images is None:
        images = np.random.default_rng(seed).integers(0, 255, size=(n, tile, tile, bands), dtype=np.uint8)
    labels = list(get_scheme("level3").labels[:n_labels])
    tiles = pd.DataFrame(
        {"tile_id": np.arange(n), "row_off": np.arange(n) * tile, "col_off": np.zeros(n, int), "split": list(splits)}
    )
    meta = {
        "labels": [lab.to_json() for lab in labels],
        "label_scheme": "level3",
        "tile_size": tile,
        "code_fractions": {"codes": [lab.codes[0] for lab in labels]},
    }
    with atomic.staged_folder(workspace.dataset_path(name)) as tmp:
        write_dataset(
            tmp,
            images=images,
            fractions=fractions,
            tiles=tiles,
            meta=meta,
            min_fraction=min_fraction,
            code_fractions=fractions,
        )
    return load_dataset(name)


def test_phi_and_fraction_corr_equal_numpy_corrcoef_and_constant_labels_are_nan():
    rng = np.random.default_rng(1)
    y = (rng.random((300, 6)) < [0.1, 0.3, 0.5, 0.05, 0.0, 0.2]).astype(np.uint8)
    y[:, 5] |= y[:, 1]  # a correlated pair
    f = rng.random((300, 6)).astype(np.float32) * y
    f[:, 3] = 0.25  # constant fraction column
    s = label_stats.label_stats(y, f)
    ok = [0, 1, 2, 3, 5]  # label 4 is never present: no variance
    assert np.allclose(s.phi[np.ix_(ok, ok)], np.corrcoef(y[:, ok].T.astype(float)), atol=1e-12)
    assert np.isnan(s.phi[4]).all() and np.isnan(s.phi[:, 4]).all()
    fok = [0, 1, 2, 5]
    assert np.allclose(s.fraction_corr[np.ix_(fok, fok)], np.corrcoef(f[:, fok].T.astype(float)), atol=1e-9)
    assert np.isnan(s.fraction_corr[3]).all() and np.isnan(s.fraction_corr[4]).all()
    assert np.array_equal(s.cooc, y.T.astype(int) @ y.astype(int))
    assert np.array_equal(s.counts, y.sum(0))
    assert s.labels_per_tile.sum() == 300 and np.array_equal(s.labels_per_tile, np.bincount(y.sum(1), minlength=7))


def test_npmi_conditional_and_histogram_on_a_hand_case():
    # tiles:   A  B  C
    y = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1]])
    s = label_stats.label_stats(y, names=["A", "B", "C"])
    assert s.cooc.tolist() == [[2, 1, 0], [1, 1, 0], [0, 0, 2]]
    assert s.percent.tolist() == [50.0, 25.0, 50.0]
    assert s.labels_per_tile.tolist() == [0, 3, 1, 0]
    # P(B|A) = 1/2, P(A|B) = 1, P(C|A) = 0
    assert s.cond[0, 1] == 0.5 and s.cond[1, 0] == 1.0 and s.cond[0, 2] == 0.0
    assert np.allclose(np.diag(s.cond), 1.0)
    # NPMI(A,B) = log((1/4) / (1/2 * 1/4)) / -log(1/4) = log 2 / log 4 = 0.5; never together -> -1
    assert s.npmi[0, 1] == pytest.approx(0.5) and s.npmi[1, 0] == pytest.approx(0.5)
    assert s.npmi[0, 2] == -1.0 and s.npmi[1, 2] == -1.0
    assert np.allclose(np.diag(s.npmi), 1.0)
    assert s.phi[0, 2] == pytest.approx(-1.0)
    top = s.top_pairs(3)
    assert (top.loc[0, "label_i"], top.loc[0, "label_j"], top.loc[0, "cooc"]) == ("A", "B", 1)


def test_dataset_stats_cached_per_split_and_recomputed_when_presence_changes():
    rng = np.random.default_rng(2)
    fr = (rng.random((50, 4)) < 0.4) * rng.uniform(0.5, 1.0, (50, 4))
    ds = make_dataset("cachetest", fr)
    first = label_stats.dataset_stats(ds)
    cache = label_stats.cache_path(ds)
    assert cache.exists()
    mtime = cache.stat().st_mtime_ns
    again = label_stats.dataset_stats(load_dataset("cachetest"))
    assert cache.stat().st_mtime_ns == mtime  # served from the cache, not rewritten
    for key, a in first.to_arrays().items():
        b = again.to_arrays()[key]
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), key
    assert again.names == ds.label_names and again.colors == ds.label_colors

    train = label_stats.dataset_stats(ds, "train")
    rows = ds.split_indices("train")
    assert train.n_tiles == len(rows) and np.array_equal(train.counts, ds.presence[rows].sum(0))
    assert label_stats.cache_path(ds, "train").exists()

    # Another scheme: regrouped from the per-code fractions, cached in its own file.
    level1 = list(get_scheme("level1").labels)
    grouped = label_stats.dataset_stats(ds, labels=level1)
    assert grouped.names == [lab.name for lab in level1]
    assert np.array_equal(grouped.counts, ds.presence_for(level1).sum(0))
    assert grouped.counts[0] == (ds.fractions[:, :4].sum(1) >= 0.5).sum()  # the 4 labels are all artificial (1xx)
    assert label_stats.cache_path(ds, labels=level1).exists() and label_stats.cache_path(
        ds, labels=level1
    ) != label_stats.cache_path(ds)
    assert np.array_equal(label_stats.dataset_stats(ds).counts, first.counts)

    # Re-prepare with different presence: the stale cache must not be served.
    changed = np.array(ds.presence)
    changed[:, 0] = 1 - changed[:, 0]
    np.save(ds.path / "presence.npy", changed)
    fresh = label_stats.dataset_stats(load_dataset("cachetest"))
    assert np.array_equal(fresh.counts, changed.sum(0))
    assert fresh.counts[0] != first.counts[0]


def _cli(*args):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "olr", *args], capture_output=True, text=True, env=env, timeout=120)


def test_datasets_cli_lists_and_describes_and_rejects_unknown_name():
    fr = np.zeros((10, 3), np.float32)
    fr[:6, 0] = 1.0
    fr[3:8, 1] = 0.7
    make_dataset("clitest", fr)
    listing = _cli("datasets")
    assert listing.returncode == 0, listing.stderr
    line = next(row for row in listing.stdout.splitlines() if row.startswith("clitest"))
    assert line.split()[1:3] == ["10", "3"]
    described = _cli("datasets", "clitest")
    assert described.returncode == 0, described.stderr
    first_label = load_dataset("clitest").label_names[0]
    assert first_label[:45] in described.stdout and "60.00" in described.stdout
    missing = _cli("datasets", "nope")
    assert missing.returncode == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr
