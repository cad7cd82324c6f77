"""The embedding explorer: its 2-D projection against a direct PCA, its neighbours against a brute-force
cosine search, where its vectors come from (the export or computed now, the same numbers either way),
and the Correlations page's explorer tab in AppTest and in a real browser."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

from olr.analysis import embedding_map, embeddings
from olr.data import summary
from olr.data.dataset import load_dataset
from olr.errors import OLRError
from tests.fixtures.runs import make_tiny_dataset
from tests.test_evaluation import copy_runs


def _pca_by_eigendecomposition(x):
    """Coordinates on the covariance's two top eigenvectors, signed like `projection`, and their variance shares."""
    x = np.asarray(x, np.float64)
    x = x - x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(x.T))
    axes = vectors[:, ::-1][:, :2]
    axes *= np.sign(axes[np.abs(axes).argmax(axis=0), [0, 1]])
    return x @ axes, values[::-1][:2] / values.sum()


def _gapped(n, d, seed):
    """(n, d) vectors with two dominant, well separated principal directions and small noise."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.normal(size=(d, 2)))[0].T
    return rng.normal(size=(n, 2)) * [6.0, 3.0] @ directions + rng.normal(size=(n, d)) * 0.3 + 5.0


@pytest.mark.parametrize("exact_dims", [embedding_map.EXACT_DIMS, 0], ids=["exact", "sketched"])
def test_projection_is_pca_with_the_largest_loading_positive(exact_dims):
    x = _gapped(400, 40, seed=1)
    coords, shares = embedding_map.projection(x, exact_dims=exact_dims)
    expected, expected_shares = _pca_by_eigendecomposition(x)
    assert coords.shape == (400, 2) and coords.dtype == np.float64
    assert np.allclose(coords, expected, atol=1e-3 * np.abs(expected).max())  # same signs, not only up to sign
    assert np.allclose(shares, expected_shares, atol=1e-4) and shares[0] > shares[1] > 0.1


def test_projection_separates_planted_clusters_and_ignores_tile_order():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(300, 3, 8)).astype(np.float16)
    cluster = np.arange(300) % 2 == 0
    emb[cluster, 1, :] += np.float16(4.0)  # label 1 sees two kinds of tile; labels 0 and 2 see noise
    x, _ = embedding_map.projection(embedding_map.label_vectors(emb, 1))
    assert x[cluster, 0].min() > x[~cluster, 0].max() or x[cluster, 0].max() < x[~cluster, 0].min()
    order = rng.permutation(300)
    again, _ = embedding_map.projection(embedding_map.label_vectors(emb[order], 1))
    assert np.allclose(again, x[order], atol=1e-6)  # the sign convention does not follow the tile order
    concatenated = embedding_map.label_vectors(emb, None)
    assert concatenated.shape == (300, 24) and concatenated.dtype == np.float32
    assert np.array_equal(concatenated[:, 8:16], emb[:, 1, :].astype(np.float32))
    with pytest.raises(OLRError, match="outside"):
        embedding_map.label_vectors(emb, 3)


def test_projection_of_degenerate_inputs_is_zero_where_there_is_nothing_to_show():
    coords, shares = embedding_map.projection(np.ones((1, 5)))
    assert np.array_equal(coords, np.zeros((1, 2))) and np.array_equal(shares, np.zeros(2))
    coords, shares = embedding_map.projection(np.arange(6.0)[:, None])  # one dimension: no second axis
    assert np.allclose(coords[:, 1], 0.0) and shares[0] == pytest.approx(1.0)


@pytest.fixture
def planted(tmp_path):
    """(SplitEmbeddings of the validation tiles of a tiny dataset with random float16 embeddings, the dataset)."""
    ds = load_dataset(make_tiny_dataset(tmp_path / "tiny"))
    rows = ds.split_indices("val")
    emb = np.random.default_rng(3).normal(size=(len(rows), len(ds.labels), 6)).astype(np.float16)
    return embedding_map.SplitEmbeddings(emb, rows, ds.labels, "val", None), ds


@pytest.mark.parametrize("label", [2, None], ids=["one label", "all labels"])
def test_nearest_tiles_table_is_the_brute_force_cosine_ranking(planted, label):
    data, ds = planted
    table = embedding_map.nearest(data, ds, position=5, label=label, k=7)
    v = np.asarray(data.embeddings, np.float64)
    v = v[:, label] if label is not None else v.reshape(len(v), -1)
    cosine = v @ v[5] / (np.linalg.norm(v, axis=1) * np.linalg.norm(v[5]))
    cosine[5] = -np.inf
    best = np.argsort(-cosine)[:7]
    assert table["rank"].tolist() == list(range(1, 8)) and table["position"].tolist() == best.tolist()
    assert np.allclose(table["similarity"], cosine[best], atol=1e-5)
    assert table["row"].tolist() == data.rows[best].tolist()
    assert table["tile"].tolist() == summary.dataset_tile_names(ds, data.rows[best])
    fractions = np.asarray(ds.fractions)[data.rows[best]]
    assert table["labels"].tolist() == summary.tile_label_text(fractions, ds.label_names, 0.05)
    if label is None:
        assert "fraction" not in table.columns
    else:
        assert np.allclose(table["fraction"], fractions[:, label])
        assert table["present"].tolist() == (fractions[:, label] >= 0.05).tolist()


def test_map_rows_carry_the_colour_labels_fraction_and_the_projection(planted):
    data, ds = planted
    frame = embedding_map.embedding_map(data, ds, label="Broad-leaved forest")
    j = ds.label_names.index("Broad-leaved forest")
    coords, shares = embedding_map.projection(embedding_map.label_vectors(data.embeddings, j))
    assert frame["row"].tolist() == data.rows.tolist() and frame["position"].tolist() == list(range(len(data.rows)))
    assert np.allclose(frame[["x", "y"]].to_numpy(), coords)
    assert np.allclose(frame["fraction"], np.asarray(ds.fractions)[data.rows, j])
    assert frame.attrs == {"shares": list(shares), "label": "Broad-leaved forest", "colour": "Broad-leaved forest"}

    everything = embedding_map.embedding_map(data, ds)  # all labels: coloured by the most frequent label
    presence = np.asarray(ds.fractions)[data.rows] >= 0.05
    assert everything.attrs["label"] is None
    assert everything.attrs["colour"] == ds.label_names[int(presence.sum(axis=0).argmax())]
    other = embedding_map.embedding_map(data, ds, colour=0)
    assert np.allclose(other[["x", "y"]], everything[["x", "y"]]) and other.attrs["colour"] == ds.label_names[0]
    with pytest.raises(OLRError, match="no label"):
        embedding_map.embedding_map(data, ds, label="Glaciers")


def _export(run_folder, name, rows, emb, label_names, dataset="tiny"):
    """An export in `olr.analysis.embeddings`' format (the .npy and its index sidecar) with planted vectors."""
    path = run_folder / "embeddings" / f"{name}.npy"
    path.parent.mkdir(exist_ok=True)
    np.save(path, emb.astype(np.float16))
    np.savez(
        embeddings.index_path(path),
        rows=np.asarray(rows, np.int64),
        tile_ids=np.asarray(rows, np.int64),
        label_names=np.array(label_names, dtype=str),
        dataset=np.array(dataset),
    )
    return path


def test_split_embeddings_read_an_export_that_holds_the_split_else_are_computed(
    trained_siamese_run, training_workspace
):
    home = copy_runs(training_workspace, "cls", "siam")
    folder = home / "models" / "siam"
    ds = load_dataset("tiny")
    val = ds.split_indices("val")
    computed = embedding_map.split_embeddings("siam", "val")
    assert computed.source is None and computed.embeddings.dtype == np.float16
    assert computed.rows.tolist() == val.tolist() and computed.embeddings.shape == (len(val), 4, 4)
    assert computed.label_names == ds.label_names
    assert not (folder / "embeddings").exists()  # computing writes nothing into the run

    planted = np.random.default_rng(4).normal(size=(ds.n_tiles, 4, 4)).astype(np.float16)
    whole = _export(folder, "tiny", np.arange(ds.n_tiles), planted, ds.label_names)
    from_whole = embedding_map.split_embeddings("siam", "val")  # the split's rows picked out of every tile's
    assert from_whole.source == whole and np.array_equal(from_whole.embeddings, planted[val])
    own = _export(folder, "tiny.val", val, planted[val] * 2, ds.label_names)  # the split's own export comes first
    path, positions = embedding_map.export_for("siam", ds, "val")
    assert path == own and positions.tolist() == list(range(len(val)))
    assert np.array_equal(embedding_map.split_embeddings("siam", "val").embeddings, planted[val] * 2)

    _export(folder, "tiny.val", val[:-1], planted[val[:-1]], ds.label_names)  # a tile short: not this split's
    _export(folder, "tiny", np.arange(ds.n_tiles), planted, ds.label_names[::-1])  # other label order
    assert embedding_map.export_for("siam", ds, "val") is None
    _export(folder, "tiny", np.arange(ds.n_tiles), planted, ds.label_names, dataset="other")
    assert embedding_map.export_for("siam", ds, "val") is None
    whole = _export(folder, "tiny", np.arange(ds.n_tiles), planted, ds.label_names)
    assert embedding_map.export_for("siam", ds, "test")[0] == whole
    os.utime(whole, (1.0, 1.0))  # older than the run's best checkpoint: not used
    assert embedding_map.export_for("siam", ds, "test") is None
    with pytest.raises(OLRError, match="Siamese run"):
        embedding_map.split_embeddings("cls", "val")


# ------------------------------------------------------------------ the page


def test_the_explorer_tab_maps_the_validation_tiles_and_lists_a_picked_tiles_neighbours(
    trained_siamese_run, training_workspace, monkeypatch
):
    from tests.fixtures.pages import open_app
    from tests.test_app_pages import texts

    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    copy_runs(training_workspace, "cls", "siam")
    ds = load_dataset("tiny")
    val = ds.split_indices("val")
    at = open_app("pages/correlations.py", **{"olr.run": "siam", "corr.tab": "Embedding explorer"})
    assert not at.metric  # the agreement tab is closed, so it did not run
    assert at.radio(key="corr.emb_split").value == "val"
    assert f"{len(val)} validation tiles" in texts(at, "caption") and "computed now" in texts(at, "caption")
    picker = at.selectbox(key="corr.emb_tile.siam.val")
    assert picker.value == 0 and len(picker.options) == len(val)

    picker.set_value(7).run()
    assert not at.exception
    data = embedding_map.split_embeddings("siam", "val")
    expected = embedding_map.nearest(data, ds, 7, label=None)
    shown = at.dataframe[0].value
    assert shown["tile"].tolist() == expected["tile"].tolist() and len(shown) == embedding_map.NEIGHBOURS
    assert f"Nearest tiles to {summary.dataset_tile_names(ds, val[[7]])[0]}" in texts(at, "markdown")
    assert at.session_state["corr.map_tile.siam"] == int(val[7])  # the pair map opens the same tile

    at.selectbox(key="corr.emb_label.siam").set_value(1).run()  # one label's embedding
    expected = embedding_map.nearest(data, ds, 7, label=1)
    assert at.dataframe[0].value["tile"].tolist() == expected["tile"].tolist()


#: the index of the first point (SVG path, in tile order) drawn on top at its own centre, other than `skip`
UNCOVERED_JS = """
(paths, skip) => paths.findIndex((p, k) => {
  const b = p.getBoundingClientRect();
  return k !== skip && document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2) === p;
})
"""


@pytest.fixture
def exported_siam(browser_workspace):
    """The browser workspace's "siam" run with an export of its validation tiles, removed afterwards.

    The vectors are planted, each label's embedding a fixed mix of the tile's area fractions, so the page
    reads them at once: computing them in the server would import TensorFlow there first (about 10 s,
    and the AppTest above already covers vectors computed on demand)."""
    ds = load_dataset(browser_workspace / "data" / "tiny")
    val = ds.split_indices("val")
    rng = np.random.default_rng(6)
    mix = rng.normal(size=(len(ds.labels), len(ds.labels), 4))
    fractions = np.asarray(ds.fractions)[val]
    planted = np.einsum("nj,ijk->nik", fractions, mix) + rng.normal(size=(len(val), len(ds.labels), 4)) * 0.05
    folder = browser_workspace / "models" / "siam"
    try:
        yield _export(folder, "tiny.val", val, planted, ds.label_names)
    finally:
        shutil.rmtree(folder / "embeddings", ignore_errors=True)


def test_the_explorer_in_a_browser_picks_a_tile_and_shows_its_neighbours(
    app_server, page, browser_workspace, exported_siam
):
    from tests.test_browser import screenshot, settle
    from tests.test_browser_maps import choose

    page.goto(f"{app_server}/correlations")
    page.wait_for_selector('[data-testid="stAppViewContainer"]')
    settle(page)
    picker = page.get_by_label("Run", exact=True)
    picker.wait_for(timeout=90000)
    if "siam" not in picker.input_value():
        choose(page, "Run", re.compile(r"siam"))
        settle(page)
    page.get_by_role("tab", name="Embedding explorer").click()
    settle(page)
    main = page.locator('[data-testid="stMain"]')
    main.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(timeout=60000)
    assert "read from the run's export embeddings/tiny.val.npy" in main.inner_text().replace("\n", " ")
    tile = main.get_by_label("Tile", exact=True)
    tile.click()
    tile.fill("tile 120 ")  # the list filters as one types; Enter takes the one left
    tile.press("Enter")
    settle(page)
    main.get_by_text(re.compile(r"Nearest tiles to tile 120\b")).wait_for(timeout=30000)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert main.locator('[data-testid="stDataFrame"]').count() == 1
    captions = main.locator('[data-testid="stImageCaption"]').all_inner_texts()
    assert captions[0].startswith("picked: tile 120") and len(captions) == 1 + embedding_map.NEIGHBOURS
    assert all(re.match(r"\d+\. tile \d+", c) for c in captions[1:])

    # a click on a point picks its tile: the first point, in tile order, that no other point covers
    points = main.locator(".vega-embed svg .mark-symbol").first.locator("path")
    k = points.evaluate_all(UNCOVERED_JS, 5)  # 5: tile 120, the one picked
    assert k >= 0
    ds = load_dataset(browser_workspace / "data" / "tiny")
    name = summary.dataset_tile_names(ds, ds.split_indices("val")[[k]])[0]
    points.nth(k).click()
    settle(page)
    main.get_by_text(f"Nearest tiles to {name}").wait_for(timeout=30000)
    assert tile.input_value() == name
    screenshot(page, "embedding-explorer")
