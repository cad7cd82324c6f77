"""Uploads: a failed or cancelled preparation leaves no uploaded files behind, a re-uploaded
label file replaces the earlier one instead of sitting beside it unused, several band files and a
legend are saved as one submission under one size cap, and a read-only workspace saves nothing
(library and the real Datasets page through AppTest, real GeoTIFFs)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from olr import workspace
from olr.data import uploads
from olr.data.prepare import prepare_dataset
from olr.errors import OLRError
from tests.fixtures.data import make_scene
from tests.fixtures.pages import open_app


@dataclass
class Upload:
    """What Streamlit's UploadedFile offers the library: a name, a size and the bytes."""

    name: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def getvalue(self) -> bytes:
        return self.data


def upload_of(path: Path, name: str | None = None) -> Upload:
    return Upload(name or Path(path).name, Path(path).read_bytes())


def left_in_uploads() -> list[str]:
    root = uploads.uploads_dir()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """A good scene, and labels that lie elsewhere (a preparation with them fails)."""
    folder = tmp_path_factory.mktemp("upload_scenes")
    good = make_scene(folder / "good", size=64, seed=1)
    elsewhere = folder / "elsewhere.tif"
    shutil.copy(good.labels, elsewhere)
    import rasterio

    with rasterio.open(elsewhere, "r+") as dst:  # shift the labels 1000 km east: no overlap
        t = dst.transform
        dst.transform = rasterio.Affine(t.a, t.b, t.c + 1_000_000, t.d, t.e, t.f)
    return good, elsewhere


def test_the_last_uploaded_label_file_is_used_and_replaces_earlier_ones():
    files = [Upload("old.tif", b"1"), Upload("clc.shp", b"2"), Upload("clc.dbf", b"3"), Upload("other.dbf", b"4")]
    choice = uploads.LabelUpload.of(files)
    assert choice.used.name == "clc.shp" and choice.replaced == ["old.tif"]
    assert [f.name for f in choice.files] == ["clc.shp", "clc.dbf"]


def test_the_main_label_file_of_saved_uploads_is_the_last_one():
    assert uploads.main_label_file([Path("a/old.tif"), Path("a/new.tif")]) == Path("a/new.tif")


def test_a_failed_preparation_removes_its_uploads(scenes, tmp_path):
    good, elsewhere = scenes
    with (
        pytest.raises(OLRError, match="do not overlap"),
        uploads.saved_uploads([upload_of(good.image)], [upload_of(elsewhere)], "ds") as saved,
    ):
        assert saved.image.exists() and saved.labels.name == "elsewhere.tif" and saved.legend is None
        prepare_dataset(saved.image, saved.labels, tmp_path / "ds", tile=16)
    assert left_in_uploads() == []


def test_a_cancelled_preparation_removes_its_uploads(scenes):
    good, _ = scenes
    with (
        pytest.raises(KeyboardInterrupt),
        uploads.saved_uploads([upload_of(good.image)], [upload_of(good.labels)], "ds"),
    ):
        raise KeyboardInterrupt  # what stopping the script does to the running preparation
    assert left_in_uploads() == []


def test_a_successful_preparation_keeps_only_the_files_used(scenes, tmp_path):
    good, elsewhere = scenes
    labels_files = [upload_of(elsewhere, "clc.tif"), upload_of(good.labels, "clc.tif")]  # re-uploaded, same name
    with uploads.saved_uploads([upload_of(good.image)], labels_files, "ds") as (image, labels, _):
        prepare_dataset(image, labels, tmp_path / "ds", tile=16)
    assert [Path(p).name for p in left_in_uploads() if "/" in p] == ["clc.tif", "image.tif"]
    assert labels.read_bytes() == Path(good.labels).read_bytes()


def test_an_image_and_labels_of_one_name_are_refused(scenes):
    good, _ = scenes
    image, labels = [upload_of(good.image, "scene.tif")], [upload_of(good.labels, "scene.tif")]
    refused = pytest.raises(OLRError, match=r"The image and the label uploads are both named 'scene\.tif'; rename one")
    with refused, uploads.saved_uploads(image, labels, "ds"):
        pass
    assert left_in_uploads() == []


def test_a_shapefile_sidecar_uploaded_twice_is_saved_once_the_last_one():
    files = [Upload("clc.shp", b"1"), Upload("clc.dbf", b"old"), Upload("clc.dbf", b"new")]
    assert [(f.name, f.data) for f in uploads.LabelUpload.of(files).files] == [("clc.shp", b"1"), ("clc.dbf", b"new")]


def band_uploads(image: Path) -> list[Upload]:
    """The bands of `image` as single-band GeoTIFF uploads named B1.tif, B2.tif, ... (real files' bytes)."""
    import rasterio
    from rasterio.io import MemoryFile

    with rasterio.open(image) as src:
        profile = src.profile | {"count": 1}
        files = []
        for b in range(1, src.count + 1):
            with MemoryFile() as mem:
                with mem.open(**profile) as dst:
                    dst.write(src.read(b), 1)
                files.append(Upload(f"B{b}.tif", mem.read()))
    return files


def test_several_band_files_and_a_legend_are_saved_as_one_submission(scenes, tmp_path):
    good, _ = scenes
    bands = band_uploads(good.image)
    legend = Upload("legend.csv", b"value,name,clc_code\n")
    with uploads.saved_uploads(bands, [upload_of(good.labels, "clc.tif")], "ds", legend) as saved:
        assert [p.name for p in saved.image] == ["B1.tif", "B2.tif", "B3.tif", "B4.tif"]  # in upload order
        assert [p.read_bytes() for p in saved.image] == [b.data for b in bands]
        assert saved.legend.read_bytes() == legend.data and saved.legend.parent == saved.labels.parent
        path = prepare_dataset(saved.image, saved.labels, tmp_path / "ds", tile=16, label_encoding="grid")
    from olr.data.dataset import load_dataset

    stacked, whole = load_dataset(path), load_dataset(prepare_dataset(good.image, good.labels, tmp_path / "w", tile=16))
    assert [b["name"] for b in stacked.meta["bands"]] == ["B1", "B2", "B3", "B4"]
    assert (stacked.images[:] == whole.images[:]).all() and (stacked.fractions[:] == whole.fractions[:]).all()


def test_the_upload_cap_holds_for_all_files_together_and_nothing_is_written(scenes, monkeypatch):
    good, _ = scenes
    monkeypatch.setenv("OLR_MAX_UPLOAD_MB", "1")
    bands = [Upload(f"B{b}.tif", bytes(600_000)) for b in (1, 2)]  # each under the cap, together above
    with (
        pytest.raises(OLRError, match=r"The 3 uploads are 1\.1 MB, above the 1 MB limit; copy them into "),
        uploads.saved_uploads(bands, [Upload("clc.tif", bytes(10))], "ds"),
    ):
        pass
    with (
        pytest.raises(OLRError, match=r"The 3 uploads are 1\.1 MB, above the 1 MB limit"),  # the legend counts too
        uploads.saved_uploads(bands[:1], [Upload("clc.tif", bytes(10))], "ds", Upload("l.csv", bytes(600_000))),
    ):
        pass
    assert left_in_uploads() == []
    with uploads.saved_uploads(bands[:1], [upload_of(good.labels, "clc.tif")], "ds") as saved:
        assert saved.image.stat().st_size == 600_000  # one band file under the cap is saved
    assert [Path(p).name for p in left_in_uploads() if "/" in p] == ["B1.tif", "clc.tif"]


def test_a_large_legend_and_two_files_of_one_name_are_refused(scenes):
    good, _ = scenes
    image, labels = [upload_of(good.image)], [upload_of(good.labels)]
    big = Upload("legend.csv", b"1,a\n" * 300_000)  # 1.1 MB: no legend is that long
    with (
        pytest.raises(OLRError, match=r"The legend upload 'legend\.csv' is 1\.1 MB, above the 1 MB a legend may be"),
        uploads.saved_uploads(image, labels, "ds", big),
    ):
        pass
    with (
        pytest.raises(OLRError, match=r"Two image uploads are named 'B1\.tif'; remove the duplicate"),
        uploads.saved_uploads([Upload("B1.tif", b"1"), Upload("B1.tif", b"2")], labels, "ds"),
    ):
        pass
    with (
        pytest.raises(OLRError, match=r"The label and the legend uploads are both named 'x\.tif'"),
        uploads.saved_uploads(image, [upload_of(good.labels, "x.tif")], "ds", Upload("x.tif", b"")),
    ):
        pass
    assert left_in_uploads() == []


def test_a_read_only_workspace_saves_no_upload(scenes, monkeypatch):
    good, _ = scenes
    monkeypatch.setenv("OLR_READONLY", "1")
    with (
        pytest.raises(OLRError, match="read-only demo, so it cannot save uploaded files"),
        uploads.saved_uploads([upload_of(good.image)], [upload_of(good.labels)], "ds"),
    ):
        pass
    assert not uploads.uploads_dir().exists()


def open_upload_form(monkeypatch) -> AppTest:
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    at = open_app()
    at.radio(key="prep.source").set_value("Upload").run()
    return at


def click(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label == label).click().run()


def test_the_page_uses_the_re_uploaded_labels_and_says_so(scenes, monkeypatch):
    good, elsewhere = scenes
    at = open_upload_form(monkeypatch)
    at.file_uploader(key="prep.image_upload").upload("scene.tif", Path(good.image).read_bytes(), "image/tiff")
    at.file_uploader(key="prep.labels_upload").upload("clc.tif", Path(elsewhere).read_bytes(), "image/tiff")
    at.file_uploader(key="prep.labels_upload").upload("clc_fixed.tif", Path(good.labels).read_bytes(), "image/tiff")
    at.run()
    captions = "\n".join(c.value for c in at.caption)
    assert "Labels used: **clc_fixed.tif** (replaces clc.tif, which will not be used)" in captions
    at.text_input(key="prep.name").input("fresh")
    at.number_input(key="prep.tile").set_value(16)
    click(at, "Prepare dataset")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert (workspace.data_dir() / "fresh" / "meta.json").exists()
    assert sorted(Path(p).name for p in left_in_uploads() if "/" in p) == ["clc_fixed.tif", "scene.tif"]


def test_the_page_removes_the_uploads_of_a_failed_preparation(scenes, monkeypatch):
    good, elsewhere = scenes
    at = open_upload_form(monkeypatch)
    at.file_uploader(key="prep.image_upload").upload("scene.tif", Path(good.image).read_bytes(), "image/tiff")
    at.file_uploader(key="prep.labels_upload").upload("clc.tif", Path(elsewhere).read_bytes(), "image/tiff")
    at.text_input(key="prep.name").input("failed")
    at.number_input(key="prep.tile").set_value(16)
    click(at, "Prepare dataset")
    assert not at.exception
    assert "do not overlap" in "\n".join(e.value for e in at.error)
    assert left_in_uploads() == [] and not (workspace.data_dir() / "failed").exists()


def test_the_page_estimates_the_size_before_preparing(scenes, monkeypatch):
    good, _ = scenes
    folder = workspace.data_dir() / "uploads"
    folder.mkdir(parents=True)
    shutil.copy(good.image, folder / "scene.tif")
    monkeypatch.setenv("OLR_NO_AUTO_DEMO", "1")
    at = open_app()
    at.text_input(key="prep.image").input("uploads/scene.tif")
    at.number_input(key="prep.tile").set_value(16)
    click(at, "Estimate the size")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "This preparation would write about 16 tiles, " in "\n".join(i.value for i in at.info)
    monkeypatch.setenv("OLR_MAX_DATASET_GB", "0.00001")
    click(at, "Estimate the size")
    assert "above the limit of 1e-05 GB" in "\n".join(e.value for e in at.error)
    assert not any(p.name != "uploads" for p in workspace.data_dir().iterdir())
