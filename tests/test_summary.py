"""Dataset summaries and tile composites (the Datasets explorer's numbers) match a from-scratch computation."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from olr.data import composites, label_stats, summary
from olr.data.dataset import SPLITS, load_dataset
from tests.fixtures.runs import make_tiny_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_dataset(make_tiny_dataset(tmp_path_factory.mktemp("summary") / "tiny"))


def test_split_counts_and_shares_add_up_to_the_dataset(tiny):
    split = tiny.tiles["split"].to_numpy()
    counts = summary.split_counts(tiny)
    assert list(counts) == list(SPLITS) and counts == {s: int((split == s).sum()) for s in SPLITS}
    assert sum(counts.values()) == tiny.n_tiles
    percent = summary.split_percent(tiny)
    assert percent == pytest.approx({s: 100 * counts[s] / tiny.n_tiles for s in SPLITS})
    assert sum(percent.values()) == pytest.approx(100.0)


def test_mean_labels_per_tile_and_present_labels_from_the_statistics(tiny):
    y = np.asarray(tiny.presence).astype(bool)
    stats = label_stats.label_stats(y.astype(np.uint8), np.asarray(tiny.fractions), tiny.label_names, tiny.label_colors)
    assert summary.mean_labels_per_tile(stats) == pytest.approx(y.sum(axis=1).mean())
    assert summary.present_labels(stats).tolist() == np.flatnonzero(y.any(axis=0)).tolist()

    # a label present nowhere drops out of the display order; with no label present at all, every label stays
    y[:, 1] = False
    some = label_stats.label_stats(y.astype(np.uint8), np.asarray(tiny.fractions), tiny.label_names, tiny.label_colors)
    assert 1 not in summary.present_labels(some).tolist()
    empty = np.zeros_like(y, dtype=np.uint8)
    none = label_stats.label_stats(empty, np.asarray(tiny.fractions), tiny.label_names, tiny.label_colors)
    assert summary.present_labels(none).tolist() == list(range(len(tiny.label_names)))
    assert summary.mean_labels_per_tile(none) == 0.0


def test_tile_filters_select_exactly_the_matching_tiles(tiny):
    y = np.asarray(tiny.presence).astype(bool)
    split = tiny.tiles["split"].to_numpy()
    assert summary.tiles_with(tiny).tolist() == list(range(tiny.n_tiles))
    for s in SPLITS:
        for j, name in enumerate(tiny.label_names):
            got = summary.tiles_with(tiny, s, name)
            assert got.tolist() == np.flatnonzero((split == s) & y[:, j]).tolist()
    assert summary.most_frequent_label(tiny) == tiny.label_names[int(np.argmax(y.sum(axis=0)))]


def test_samples_are_reproducible_subsets_as_the_explorer_drew_them(tiny):
    rows = summary.tiles_with(tiny, "train")
    for seed in (0, 1, 5):
        got = summary.sample_rows(rows, 24, seed)
        # the explorer's former inline draw, kept here as the reference
        before = np.sort(np.random.default_rng(seed).choice(rows, size=min(24, len(rows)), replace=False))
        assert got.tolist() == before.tolist() and np.all(np.diff(got) > 0) and set(got) <= set(rows)
    assert summary.sample_rows(rows, 24, 1).tolist() != summary.sample_rows(rows, 24, 2).tolist()
    assert summary.sample_rows(rows[::-1], 10_000).tolist() == rows.tolist()  # fewer rows than asked: all, ascending


def test_tile_labels_list_present_labels_largest_share_first():
    fractions = np.array([[0.1, 0.6, 0.3, 0.0], [0.0, 0.0, 0.02, 0.98]])
    presence = fractions >= 0.05
    names, colors = ["A", "B", "C", "D"], ["#000001", "#000002", "#000003", "#000004"]
    chips = summary.tile_labels(fractions, presence, names, colors)
    assert chips == [[("B", "#000002", 0.6), ("C", "#000003", 0.3), ("A", "#000001", 0.1)], [("D", "#000004", 0.98)]]
    assert summary.tile_labels(fractions, presence, names, colors, limit=1)[0] == [("B", "#000002", 0.6)]
    text = summary.tile_label_text(fractions, names, 0.05)
    assert text == ["B 60%, C 30%, A 10%", "D 98%"]
    assert summary.tile_label_text(np.zeros((1, 4)), names, 0.05) == ["no label"]


def test_coordinates_are_required_in_every_corner_column():
    full = pd.DataFrame({c: [0.0, 1.0] for c in summary.COORDINATE_COLUMNS})
    assert summary.has_coordinates(SimpleNamespace(tiles=full))
    assert not summary.has_coordinates(SimpleNamespace(tiles=full.drop(columns=["lat_max"])))
    assert not summary.has_coordinates(SimpleNamespace(tiles=full.assign(lon_min=np.nan)))
    assert summary.has_coordinates(SimpleNamespace(tiles=full.assign(lon_min=[np.nan, 2.0])))


def test_composites_stretch_between_percentiles_and_ignore_nodata(tiny):
    assert composites.default_rgb_bands(["nir", "Blue", "green", "red"]) == [3, 2, 1]
    assert composites.default_rgb_bands(["b1", "b2", "b3"]) == [0, 1, 2]
    assert composites.default_rgb_bands(["pan"]) == [0, 0, 0]

    images = np.arange(1, 101, dtype=np.uint16).reshape(1, 10, 10, 1).repeat(3, axis=3)
    images[0, 0, 0, :] = 0  # nodata
    limits = composites.stretch_limits(images, [0, 1, 2])
    v = np.arange(2, 101, dtype=float)
    assert np.allclose(limits, [np.percentile(v, [2, 98])] * 3)
    rgb = composites.rgb_composite(images, [0, 1, 2], limits, upscale=2)
    assert rgb.shape == (1, 20, 20, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0, 0] == 0 and rgb[0, -1, -1, 0] == 255
    assert composites.thumbnail_upscale(16) == 8 and composites.thumbnail_upscale(256) == 1

    rows = np.array([40, 3, 17])
    assert np.array_equal(composites.images_at(tiny, rows), np.asarray(tiny.images)[rows])
    sample = np.sort(np.random.default_rng(0).choice(tiny.n_tiles, size=64, replace=False))
    expected = composites.stretch_limits(np.asarray(tiny.images)[sample], [0, 1, 2])
    assert np.array_equal(composites.dataset_stretch_limits(tiny, [0, 1, 2]), expected)
