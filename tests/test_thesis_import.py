"""Import of the thesis batch format (0.npy, labels0.npy, ...) into a dataset."""

import json

import numpy as np
import pytest

from olr.data import label_schemes, thesis_import
from olr.data.dataset import band_statistics, load_dataset
from olr.data.thesis_import import import_batches
from olr.errors import OLRError
from tests.fixtures.data import run_cli_concurrently, write_batches


def batches(folder):
    """All images and labels of a batch folder, concatenated (test side only)."""
    k, xs, ys = 0, [], []
    while (folder / f"{k}.npy").exists():
        xs.append(np.load(folder / f"{k}.npy"))
        ys.append(np.load(folder / f"labels{k}.npy"))
        k += 1
    return np.concatenate(xs), np.concatenate(ys)


def test_import_streams_batches_into_the_dataset_format(tmp_path):
    folder = write_batches(tmp_path / "batches", sizes=(6, 6, 4), shape=(8, 8, 3), n_labels=5)
    names = tmp_path / "names.txt"
    names.write_text("Urban\nNon-irrigated arable land\n\nSclerophyllous vegetation\nOlive groves\nclouds\n")
    calls = []
    ds = load_dataset(
        import_batches(
            folder, tmp_path / "ds", label_names=names, seed=0, progress=lambda d, t, m: calls.append((d, t))
        )
    )
    images, labels = batches(folder)
    assert np.array_equal(ds.images, images) and ds.images.dtype == np.uint8
    assert ds.fractions.dtype == np.float32 and np.array_equal(ds.fractions, labels.astype(np.float32))
    assert np.array_equal(ds.presence, labels)
    assert ds.code_fractions is None and ds.codes == []
    assert ds.meta["kind"] == "thesis_batches"
    assert ds.label_names == [
        "Urban",
        "Non-irrigated arable land",
        "Sclerophyllous vegetation",
        "Olive groves",
        "clouds",
    ]
    legend = label_schemes.by_code()
    assert ds.meta["labels"][1] == {"name": "Non-irrigated arable land", "codes": [211], "color": legend[211].color}
    assert ds.meta["labels"][3]["codes"] == [223] and ds.meta["labels"][2]["codes"] == [323]
    assert ds.meta["labels"][0]["codes"] == [] and ds.meta["labels"][4]["codes"] == []  # no CORINE class of that name
    assert ds.meta["labels"][0]["color"] != ds.meta["labels"][4]["color"]
    t = ds.tiles
    assert (t.row_off == -1).all() and (t.col_off == -1).all()
    assert t.batch.tolist() == [0] * 6 + [1] * 6 + [2] * 4 and t.index_in_batch.tolist()[:7] == [0, 1, 2, 3, 4, 5, 0]
    assert (t.groupby("batch").split.nunique() == 1).all()  # one block per batch by default
    assert ds.meta["split"]["method"].startswith("contiguous_blocks")
    assert calls[-1] == (16, 16) and [d for d, _ in calls[:3]] == [6, 12, 16]
    exact = band_statistics(ds.images, rows=ds.split_indices("train"))  # statistics of the training tiles only
    for got, want in zip(ds.meta["bands"], exact):
        assert got["mean"] == pytest.approx(want["mean"], rel=1e-6) and got["max"] == want["max"]
    assert [f["size"] for f in ds.meta["sources"]["files"]] == [
        (folder / n).stat().st_size for n in ("0.npy", "1.npy", "2.npy", "labels0.npy", "labels1.npy", "labels2.npy")
    ]


def test_split_blocks_of_consecutive_tiles_are_reproducible(tmp_path):
    folder = write_batches(tmp_path / "b", sizes=(20, 20, 20))
    a = load_dataset(import_batches(folder, tmp_path / "a", split_block=3, seed=4))
    b = load_dataset(import_batches(folder, tmp_path / "b2", split_block=3, seed=4))
    assert a.tiles.split.equals(b.tiles.split)
    assert (a.tiles.block_id == np.arange(60) // 3).all()
    assert (a.tiles.groupby("block_id").split.nunique() == 1).all()
    assert a.meta["split"]["block"] == 3 and a.meta["split"]["seed"] == 4


def test_default_names_and_json_names(tmp_path):
    folder = write_batches(tmp_path / "b", sizes=(3,), n_labels=3)
    ds = load_dataset(import_batches(folder, tmp_path / "a"))
    assert ds.label_names == ["label 1", "label 2", "label 3"]
    names = tmp_path / "names.json"
    names.write_text(json.dumps(["Water bodies", "b", "c"]))
    ds = load_dataset(import_batches(folder, tmp_path / "b2", label_names=names))
    assert ds.label_names == ["Water bodies", "b", "c"] and ds.meta["labels"][0]["codes"] == [512]


def corrupt(folder, case):
    if case == "labels_missing":
        (folder / "labels2.npy").unlink()
    elif case == "images_missing":
        (folder / "1.npy").unlink()
    elif case == "n_differs":
        np.save(folder / "labels1.npy", np.zeros((5, 5), np.uint8))
    elif case == "shape_differs":
        np.save(folder / "2.npy", np.zeros((4, 8, 9, 3), np.uint8))
    elif case == "bands_differ":
        np.save(folder / "2.npy", np.zeros((4, 8, 8, 4), np.uint8))
    elif case == "labels_differ":
        np.save(folder / "labels2.npy", np.zeros((4, 6), np.uint8))
    elif case == "non_binary":
        y = np.load(folder / "labels1.npy")
        y[2, 3] = 2
        np.save(folder / "labels1.npy", y)
    elif case == "not_npy":
        (folder / "1.npy").write_text("hello")
    elif case == "three_dims":
        np.save(folder / "0.npy", np.zeros((6, 8, 8), np.uint8))
    return folder


BAD_BATCHES = {
    "labels_missing": "has 2.npy but no labels2.npy",
    "images_missing": "has labels1.npy but no 1.npy",
    "n_differs": "labels1.npy has 5 rows but 1.npy has 6 images",
    "shape_differs": "2.npy holds .* tiles but 0.npy holds",
    "bands_differ": "2.npy holds .* tiles but 0.npy holds",
    "labels_differ": "labels2.npy has 6 labels but labels0.npy has 5",
    "non_binary": "labels1.npy holds the value 2",
    "not_npy": "1.npy is not a readable .npy",
    "three_dims": "0.npy has shape .*; it must be",
}


@pytest.mark.parametrize("case", BAD_BATCHES)
def test_bad_batch_folders(tmp_path, case):
    folder = corrupt(write_batches(tmp_path / "b", sizes=(6, 6, 4), n_labels=5), case)
    with pytest.raises(OLRError, match=BAD_BATCHES[case]):
        import_batches(folder, tmp_path / "data" / "ds")
    assert not (tmp_path / "data").exists()


def test_bad_names_and_folders(tmp_path):
    folder = write_batches(tmp_path / "b", sizes=(3,), n_labels=3)
    (tmp_path / "two.txt").write_text("a\nb\n")
    (tmp_path / "dup.txt").write_text("a\nb\na\n")
    (tmp_path / "broken.json").write_text("[1, 2")
    (tmp_path / "empty").mkdir()
    cases = [
        (
            lambda: import_batches(folder, tmp_path / "x", label_names=tmp_path / "two.txt"),
            "names 2 labels but the batches hold 3",
        ),
        (lambda: import_batches(folder, tmp_path / "x", label_names=tmp_path / "dup.txt"), "names 'a' more than once"),
        (lambda: import_batches(folder, tmp_path / "x", label_names=tmp_path / "broken.json"), "not a valid JSON list"),
        (lambda: import_batches(folder, tmp_path / "x", label_names=tmp_path / "none.txt"), "does not exist"),
        (lambda: import_batches(tmp_path / "nowhere", tmp_path / "x"), "does not exist"),
        (lambda: import_batches(tmp_path / "empty", tmp_path / "x"), "holds no image batches"),
        (lambda: import_batches(folder, tmp_path / "x", split_block=0), "split block size"),
    ]
    for call, message in cases:
        with pytest.raises(OLRError, match=message):
            call()
    assert not (tmp_path / "x").exists()


def test_existing_import_is_kept_unless_overwrite(tmp_path):
    folder = write_batches(tmp_path / "b", sizes=(3, 3))
    out = import_batches(folder, tmp_path / "ds")
    with pytest.raises(OLRError, match="already exists"):
        import_batches(folder, out, split_block=1)
    assert load_dataset(out).meta["split"]["block"] is None
    import_batches(folder, out, split_block=1, overwrite=True)
    assert load_dataset(out).meta["split"]["block"] == 1


def test_label_entries_match_corine_names_case_insensitively():
    entries = thesis_import.label_entries(["sea and ocean", "Forest"])
    assert entries[0]["codes"] == [523] and entries[0]["color"] == label_schemes.by_code()[523].color
    assert entries[1]["codes"] == []


def test_cli_import_and_bad_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_batches")
    good = write_batches(root / "good", sizes=(4, 4))
    (root / "names.txt").write_text("\n".join(f"n{i}" for i in range(5)))
    cases = {
        "ok": (["import-batches", "--folder", good, "--out", "data/imp", "--label-names", root / "names.txt"], None)
    }
    for case in ("labels_missing", "n_differs", "shape_differs", "non_binary"):
        folder = corrupt(write_batches(root / case, sizes=(6, 6, 4), n_labels=5), case)
        cases[case] = (["import-batches", "--folder", folder, "--out", "data/imp"], None)
    cases["bad_name"] = (["import-batches", "--folder", good, "--out", "data/../imp"], None)
    results = run_cli_concurrently(cases, root / "homes")
    ok = results.pop("ok")
    assert ok.returncode == 0, ok.stderr
    assert load_dataset(ok.home / "data" / "imp").label_names == [f"n{i}" for i in range(5)]
    assert "8/8 tiles" in ok.stderr
    for case, r in results.items():
        assert r.returncode == 2, (case, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, (case, r.stderr)
        assert not (r.home / "data").exists() or list((r.home / "data").iterdir()) == [], case
