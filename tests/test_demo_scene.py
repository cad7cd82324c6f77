"""The synthetic demo scene: determinism, raster formats, planted structure, learnability,
the demo dataset built from it (single and concurrent first launches), and scenes with other
parameters (classes, tile size, image CRS) for a generalisation check."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

from olr.data import demo_scene, label_schemes
from olr.data.demo_scene.scene_files import grid_code_raster
from olr.errors import OLRError

REPO = Path(__file__).resolve().parent.parent
SMALL = 512  # 5.12 km: 64 tiles of 64 px, rendered in about a second
HAS_PREPARE = importlib.util.find_spec("olr.data.prepare") is not None
needs_prepare = pytest.mark.skipif(not HAS_PREPARE, reason="olr.data.prepare is not written yet")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small_scene(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scene") / "s3"
    demo_scene.generate_scene(folder, seed=3, size_px=SMALL)
    return folder


@pytest.fixture(scope="module")
def default_land_cover() -> dict:
    """Land cover of the default scene (no image rendering: about 3 s)."""
    return demo_scene.build_land_cover()


@pytest.fixture(scope="module")
def small_variant_scene(tmp_path_factory) -> Path:
    """The small scene's seed, size and grids with the second scene's classes drawn in place of the demo's."""
    folder = tmp_path_factory.mktemp("scene") / "v3"
    demo_scene.generate_scene(folder, seed=3, size_px=SMALL, classes=demo_scene.SECOND_SCENE.classes)
    return folder


def _codes_on_image_grid(lc: dict) -> np.ndarray:
    """The land cover aligned onto the image grid the way preparation does it (nearest)."""
    g = lc["grids"]
    grid = grid_code_raster(lc["codes"])
    out = np.zeros((g.size, g.size), np.uint8)
    reproject(
        grid,
        out,
        src_transform=g.label_transform,
        src_crs=demo_scene.LABEL_CRS,
        dst_transform=g.image_transform,
        dst_crs=g.image_crs,
        resampling=Resampling.nearest,
        src_nodata=48,
        dst_nodata=48,
    )
    return label_schemes.grid_to_code_lut()[out]


def _image_and_pixel_codes(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The image (4, H, W) float32 and the CLC code of every pixel, aligned the way preparation does it."""
    with rasterio.open(folder / "image.tif") as im, rasterio.open(folder / "clc.tif") as lb:
        grid = np.zeros((im.height, im.width), np.uint8)
        reproject(rasterio.band(lb, 1), grid, dst_transform=im.transform, dst_crs=im.crs, resampling=Resampling.nearest)
        return im.read().astype(np.float32), label_schemes.grid_to_code_lut()[grid]


# ---------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_files_and_another_seed_a_different_scene(small_scene, tmp_path):
    again = demo_scene.generate_scene(tmp_path / "again", seed=3, size_px=SMALL)
    for name in ("image.tif", "clc.tif", "scene.json"):
        assert _sha(small_scene / name) == _sha(tmp_path / "again" / name), name
    assert again == json.loads((small_scene / "scene.json").read_text())

    demo_scene.generate_scene(tmp_path / "other", seed=4, size_px=SMALL)
    with rasterio.open(small_scene / "clc.tif") as a, rasterio.open(tmp_path / "other" / "clc.tif") as b:
        labels_a, labels_b = a.read(1), b.read(1)
    assert labels_a.shape == labels_b.shape  # same grid, different landscape
    assert (labels_a != labels_b).mean() > 0.2
    with rasterio.open(small_scene / "image.tif") as a, rasterio.open(tmp_path / "other" / "image.tif") as b:
        assert not np.array_equal(a.read(1), b.read(1))


def test_generation_is_atomic_and_refuses_to_overwrite_silently(small_scene, tmp_path):
    with pytest.raises(OLRError, match="already exists"):
        demo_scene.generate_scene(small_scene, seed=3, size_px=SMALL)
    for bad in ({"size_px": 10}, {"size_px": 100000}, {"seed": -1}, {"seed": "x"}):
        with pytest.raises(OLRError):
            demo_scene.generate_scene(tmp_path / "bad", **bad)
    assert not (tmp_path / "bad").exists()

    def interrupt(done, total, message):  # stop half-way through rendering
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        demo_scene.generate_scene(tmp_path / "half", seed=1, size_px=SMALL, progress=interrupt)
    assert [p.name for p in tmp_path.iterdir()] == []  # nothing half-written is left behind


# ---------------------------------------------------------------------------- raster formats


def test_image_raster_is_utm_10m_uint16_four_named_bands(small_scene):
    with rasterio.open(small_scene / "image.tif") as src:
        assert src.crs.to_epsg() == 32636
        assert src.res == (10.0, 10.0)
        assert (src.width, src.height, src.count) == (SMALL, SMALL, 4)
        assert src.dtypes == ("uint16",) * 4
        assert src.descriptions == ("red", "green", "blue", "nir")
        assert src.nodata is None
        assert src.profile["tiled"] and src.compression.name == "deflate"
        img = src.read()
        lon, lat = rasterio.warp.transform(src.crs, "EPSG:4326", [src.bounds.left], [src.bounds.top])
    assert 32.5 < lon[0] < 34.5 and 34.5 < lat[0] < 35.6  # near Cyprus
    assert img.min() >= 1 and img.max() <= 10000
    # Reflectance-like: water is dark in NIR, vegetation bright, so NIR spans a wide range.
    nir = img[3].astype(float)
    assert np.percentile(nir, 2) < 400 and np.percentile(nir, 98) > 2500


def test_label_raster_is_corine_grid_codes_in_laea_100m(small_scene):
    with rasterio.open(small_scene / "clc.tif") as src:
        assert src.crs.to_epsg() == 3035
        assert src.res == (100.0, 100.0)
        assert src.dtypes == ("uint8",) and src.nodata == 48
        assert src.transform.c % 100 == 0 and src.transform.f % 100 == 0  # on CORINE's lattice
        labels = src.read(1)
        assert src.colormap(1)[label_schemes.code_to_grid(523)][:3] == (230, 242, 255)
        left, bottom, right, top = src.bounds
    values = set(np.unique(labels).tolist())
    assert values <= set(range(1, 45)) | {48}
    assert 48 in values  # the extract is clipped around the image footprint, like a CLC cut-out
    x, y = 6434586.0, 1650192.0  # 33.3 E 35.0 N in EPSG:3035
    assert left < x < right and bottom < y < top


def test_scene_json_describes_the_scene(small_scene):
    scene = json.loads((small_scene / "scene.json").read_text())
    assert scene["synthetic"] is True and scene["seed"] == 3 and scene["size_px"] == SMALL
    assert scene["image"]["crs"] == "EPSG:32636" and scene["labels"]["crs"] == "EPSG:3035"
    assert scene["tiles_expected"] == (SMALL // 64) ** 2
    shares = [c["pixel_share"] for c in scene["classes"]]
    assert abs(sum(shares) - 1.0) < 1e-3 and shares == sorted(shares, reverse=True)
    assert scene["planted_structure"]["near"][0]["class"] == demo_scene.PLANTED_STRUCTURE["near"][0]["class"]
    # The image shows what the labels say: its pixel classes are the label classes.
    with rasterio.open(small_scene / "clc.tif") as src:
        label_codes = {int(label_schemes.grid_to_code_lut()[v]) for v in np.unique(src.read(1))} - {0}
    assert {c["code"] for c in scene["classes"]} <= label_codes


# ---------------------------------------------------------------------------- content


def test_default_scene_has_many_classes_with_a_long_but_learnable_tail(default_land_cover):
    codes = _codes_on_image_grid(default_land_cover)
    size = demo_scene.DEFAULT_SIZE_PX
    n = size // 64
    tiles = codes[: n * 64, : n * 64].reshape(n, 64, n, 64).transpose(0, 2, 1, 3).reshape(n * n, -1)
    present = sorted(set(np.unique(codes).tolist()) - {0})
    counts = {c: int(((tiles == c).mean(1) >= demo_scene.DEMO_MIN_FRACTION).sum()) for c in present}
    assert len(present) >= 25, present
    assert set(present) == set(demo_scene.DEMO_CLASSES)  # the declared classes are the ones drawn
    rare = {int(c) for c in demo_scene.PLANTED_STRUCTURE["rare"]}
    assert rare <= set(present)
    for c in set(present) - rare:
        assert counts[c] >= 35, (c, counts[c])
    for c in rare:
        assert 1 <= counts[c] < 35, (c, counts[c])
    freq = sorted(counts.values(), reverse=True)
    assert freq[0] > 10 * freq[len(freq) // 2 + 5]  # long-tailed: the head dwarfs the tail
    assert (codes == 0).mean() == 0.0  # labels cover the whole image


def _cell_xy(lc: dict) -> tuple[np.ndarray, np.ndarray]:
    g = lc["grids"]
    cols, rows = np.meshgrid(np.arange(g.label_w), np.arange(g.label_h))
    return cols * demo_scene.CELL_M, rows * demo_scene.CELL_M


def _min_distance(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Euclidean distance from each of points (n, 2) to the nearest of targets (m, 2)."""
    out = np.full(len(points), np.inf)
    for i in range(0, len(points), 2048):
        p = points[i : i + 2048]
        for j in range(0, len(targets), 4096):
            d = np.sqrt(((p[:, None, :] - targets[None, j : j + 4096, :]) ** 2).sum(-1)).min(1)
            out[i : i + 2048] = np.minimum(out[i : i + 2048], d)
    return out


def _edge(mask: np.ndarray) -> np.ndarray:
    """Cells of mask with a neighbour outside it: the nearest target cell is always one."""
    p = np.pad(mask, 1, constant_values=False)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def _patches(mask: np.ndarray) -> np.ndarray:
    """8-connected component labels (0 = background) by repeated neighbour-minimum propagation."""
    big = np.iinfo(np.int64).max
    lab = np.where(mask, np.arange(mask.size).reshape(mask.shape) + 1, big)
    while True:
        p = np.pad(lab, 1, constant_values=big)
        h, w = mask.shape
        nb = np.minimum.reduce([p[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)])
        new = np.where(mask, nb, big)
        if np.array_equal(new, lab):
            return np.where(mask, lab, 0)
        lab = new


def test_planted_structure_holds_on_the_default_scene(default_land_cover):
    lc = default_land_cover
    codes = lc["codes"]
    x, y = _cell_xy(lc)
    xy = np.stack([x, y], -1)
    structure = demo_scene.PLANTED_STRUCTURE
    for rule in structure["near"]:
        cls = codes == rule["class"]
        assert cls.any(), rule
        target = np.isin(codes, rule["of"])
        d = _min_distance(xy[cls], xy[_edge(target)])
        d[target[cls]] = 0.0
        if rule["scope"] == "cell":
            assert d.max() <= rule["within_m"], (rule, d.max())
        else:
            patch_ids = _patches(cls)[cls]
            for pid in np.unique(patch_ids):
                assert d[patch_ids == pid].min() <= rule["within_m"], (rule, pid)
    for rule in structure["far"]:
        cls = codes == rule["class"]
        assert cls.any(), rule
        d = _min_distance(xy[_edge(cls)], xy[_edge(np.isin(codes, rule["from"]))])
        assert d.min() >= rule["min_m"], (rule, d.min())
    elev = lc["cell_fields"]["elev"]
    for code, (lo, hi) in structure["elevation_m"].items():
        e = elev[codes == int(code)]
        assert e.size and lo <= e.min() and e.max() <= hi, (code, e.min(), e.max())
    # The structure shows up as label correlation: urban with roads, conifers never with sea.
    tiles = _codes_on_image_grid(lc)
    n = tiles.shape[0] // 64
    t = tiles[: n * 64, : n * 64].reshape(n, 64, n, 64).transpose(0, 2, 1, 3).reshape(n * n, -1)
    has = {c: (t == c).mean(1) >= demo_scene.DEMO_MIN_FRACTION for c in (312, 523, 331, 112, 122, 124, 242)}
    phi = lambda a, b: np.corrcoef(a.astype(float), b.astype(float))[0, 1]  # noqa: E731
    assert not (has[312] & has[523]).any()
    assert phi(has[523], has[331]) > 0.1 and phi(has[112], has[242]) > 0.1 and phi(has[112], has[122]) > 0.05
    assert phi(has[312], has[331]) < 0


@pytest.mark.parametrize("scene", ["small_scene", "small_variant_scene"])
def test_labels_are_learnable_from_pixels_but_not_trivially(scene, request):
    """A nearest-class-mean classifier on 8x8-pixel blocks (mean and std per band) beats the
    majority class clearly, yet is far from perfect; with other classes drawn in too."""
    img, codes = _image_and_pixel_codes(request.getfixturevalue(scene))
    b, n = 8, SMALL // 8
    block_codes = codes.reshape(n, b, n, b).transpose(0, 2, 1, 3).reshape(n * n, -1)
    pix = img.reshape(4, n, b, n, b).transpose(1, 3, 0, 2, 4).reshape(n * n, 4, -1)
    pure = (block_codes == block_codes[:, :1]).all(1)
    y = block_codes[pure, 0]
    feats = np.concatenate([pix[pure].mean(2), pix[pure].std(2)], 1)
    feats /= feats.std(0)
    # Alternate 64-px tiles between fitting and testing (a spatial checkerboard).
    row, col = np.divmod(np.flatnonzero(pure), n)
    fit = ((row // 8) + (col // 8)) % 2 == 0
    classes = np.unique(y[fit])
    test = ~fit & np.isin(y, classes)
    means = np.stack([feats[fit & (y == c)].mean(0) for c in classes])
    pred = classes[np.argmin(((feats[test][:, None] - means[None]) ** 2).sum(-1), 1)]
    accuracy = (pred == y[test]).mean()
    values, counts = np.unique(y[fit], return_counts=True)
    majority = (y[test] == values[np.argmax(counts)]).mean()
    assert len(classes) >= 12
    assert accuracy > majority + 0.15, (accuracy, majority)
    assert accuracy < 0.95, accuracy


def test_progress_is_reported_in_order(tmp_path):
    calls = []
    demo_scene.generate_scene(tmp_path / "p", seed=1, size_px=256, progress=lambda d, t, m: calls.append((d, t, m)))
    done = [d for d, _, _ in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1] and len(calls) >= 3
    assert all(isinstance(m, str) and m for _, _, m in calls)


def test_split_seed_gives_clumped_labels_positives_in_every_split(default_land_cover):
    from olr.data import splits

    tiles = _codes_on_image_grid(default_land_cover)
    n = tiles.shape[0] // 64
    t = tiles[: n * 64, : n * 64].reshape(n, 64, n, 64).transpose(0, 2, 1, 3).reshape(n * n, -1)
    codes = sorted(set(np.unique(t).tolist()) - {0})
    presence = np.stack([(t == c).mean(1) >= demo_scene.DEMO_MIN_FRACTION for c in codes], -1)
    block = demo_scene.DEMO_SPLIT_BLOCK
    chosen = demo_scene.split_seed(presence.reshape(n, n, -1), block=block)
    rows, cols = np.divmod(np.arange(n * n), n)
    blocks = splits.spatial_blocks(rows, cols, block)
    common = presence[:, presence.sum(0) >= 20]

    def worst(seed):
        assigned = splits.assign_blocks(blocks, demo_scene.DEMO_SPLIT, seed)
        return min(int(common[assigned == s].sum(0).min()) for s in ("val", "test"))

    assert worst(chosen) >= 3
    assert worst(chosen) >= max(worst(s) for s in range(5))


# ---------------------------------------------------------------------------- the demo dataset


@needs_prepare
def test_ensure_demo_dataset_builds_once_and_loads(tmp_path):
    from olr.data.dataset import list_datasets, load_dataset
    from olr.workspace import data_dir

    messages = []
    path = demo_scene.ensure_demo_dataset(lambda d, t, m: messages.append(m), seed=3, size_px=SMALL)
    assert path == data_dir() / demo_scene.DEMO_DATASET
    ds = load_dataset(path)
    assert ds.n_tiles == (SMALL // 64) ** 2 and ds.tile_shape == (64, 64, 4)
    assert ds.meta["min_fraction"] == demo_scene.DEMO_MIN_FRACTION
    assert ds.meta["parameters"]["split_block"] == demo_scene.DEMO_SPLIT_BLOCK
    # The presence the split seed was chosen on is the presence preparation wrote.
    scene = demo_scene.demo_scene_dir()
    presence, codes = demo_scene.tile_presence(scene / "image.tif", scene / "clc.tif")
    flat = presence.reshape(-1, len(codes))
    order = np.lexsort((ds.tiles["col_off"].to_numpy(), ds.tiles["row_off"].to_numpy()))
    own = {lab.codes[0]: j for j, lab in enumerate(ds.labels)}
    assert set(own) == {c for k, c in enumerate(codes) if flat[:, k].any()}  # absent labels are dropped
    for k, code in enumerate(codes):
        if code in own:
            assert np.array_equal(np.asarray(ds.presence)[order, own[code]].astype(bool), flat[:, k]), code
    present = np.asarray(ds.presence).sum(0)
    assert (present > 0).sum() >= 8
    assert set(ds.tiles["split"]) <= {"train", "val", "test"}
    assert list_datasets() == [demo_scene.DEMO_DATASET]  # the scene folder is not a dataset
    assert messages
    # A second call finds it and does no work.
    stamp = (path / "meta.json").stat().st_mtime_ns
    scene_stamp = (demo_scene.demo_scene_dir() / "image.tif").stat().st_mtime_ns
    assert demo_scene.ensure_demo_dataset() == path
    assert (path / "meta.json").stat().st_mtime_ns == stamp
    assert (demo_scene.demo_scene_dir() / "image.tif").stat().st_mtime_ns == scene_stamp


_CHILD = """
import json, os
from olr.data import demo_scene
path = demo_scene.ensure_demo_dataset(seed=3, size_px={size})
scene = demo_scene.demo_scene_dir() / "image.tif"
inodes = {{"inode": os.stat(path / "meta.json").st_ino, "scene_inode": os.stat(scene).st_ino}}
print(json.dumps(dict(path=str(path), **inodes)))
"""


@needs_prepare
def test_two_processes_at_first_launch_build_one_dataset(tmp_path):
    from olr.data.dataset import load_dataset

    env = dict(os.environ, OLR_HOME=str(tmp_path), PYTHONPATH=str(REPO))
    code = _CHILD.format(size=SMALL)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert results[0]["path"] == results[1]["path"]
    assert results[0]["inode"] == results[1]["inode"]  # the second found the first's dataset
    assert results[0]["scene_inode"] == results[1]["scene_inode"]
    assert load_dataset(results[0]["path"]).n_tiles == (SMALL // 64) ** 2
    leftovers = [p.name for p in (tmp_path / "data").iterdir() if p.name.endswith((".partial", ".old", ".tmp"))]
    assert leftovers == []


@needs_prepare
def test_cli_demo_data_prints_a_summary(tmp_path):
    env = dict(os.environ, OLR_HOME=str(tmp_path), PYTHONPATH=str(REPO))
    cli = [sys.executable, "-m", "olr", "demo-data"]
    run = subprocess.run(
        [*cli, "--size", "256", "--seed", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert "tiles: 16" in run.stdout and "synthetic" in run.stdout
    assert "Sea and ocean" in run.stdout
    bad = subprocess.run([*cli, "--size", "10"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "size" in bad.stderr and "Traceback" not in bad.stderr


# ---------------------------------------------------------------------------- scenes with other parameters


def _substituted_pixels(codes: np.ndarray, substituted: set[int], margin: int) -> np.ndarray:
    """Pixels of the substituted classes grown by `margin` pixels."""
    mask = np.isin(codes, list(substituted))
    for _ in range(margin):
        p = np.pad(mask, 1)
        mask = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return mask


def test_other_classes_are_the_demo_landscape_relabelled_and_drawn_with_their_own_look(
    small_scene, small_variant_scene
):
    subs = demo_scene.SECOND_SCENE.substitutions
    with rasterio.open(small_scene / "clc.tif") as a, rasterio.open(small_variant_scene / "clc.tif") as b:
        demo_codes = label_schemes.grid_to_code_lut()[a.read(1)]
        variant_codes = label_schemes.grid_to_code_lut()[b.read(1)]
    relabelled = demo_codes.copy()
    for old, new in subs.items():
        relabelled[demo_codes == old] = new
    assert np.array_equal(variant_codes, relabelled)  # same places, same planted structure, other names
    drawn = set(subs) & set(np.unique(demo_codes).tolist())
    assert len(drawn) >= 3, drawn  # the small scene holds enough of them for the check to mean something

    with rasterio.open(small_variant_scene / "image.tif") as b:
        variant_img = b.read().astype(np.float32)
    demo_img, pixel_codes = _image_and_pixel_codes(small_scene)
    # An image pixel takes the class of one of the four label cells around it (wobbled): up to ~100 m off.
    near = _substituted_pixels(pixel_codes, drawn, margin=12)
    assert (~near).mean() > 0.4 and np.array_equal(demo_img[:, ~near], variant_img[:, ~near])  # the rest: the demo
    for old in drawn:  # each substitute has a look of its own, not its predecessor's
        inside = pixel_codes == old
        change = np.abs(demo_img - variant_img)[:, inside].mean(1) / demo_img[:, inside].mean(1)
        assert change.max() > 0.15, (old, change)

    scene = json.loads((small_variant_scene / "scene.json").read_text())
    assert scene["substitutions"] == {str(k): v for k, v in sorted(subs.items())}
    assert {c["code"] for c in scene["classes"]} <= set(demo_scene.SECOND_SCENE.scene_classes())
    near_rules = scene["planted_structure"]["near"]
    demo_rules = demo_scene.PLANTED_STRUCTURE["near"]
    assert [r["class"] for r in near_rules] == [subs.get(r["class"], r["class"]) for r in demo_rules]
    assert not set(subs) & {c for r in near_rules for c in [r["class"], *r["of"]]}


@needs_prepare
def test_a_second_scene_dataset_has_its_tile_size_crs_and_classes(tmp_path):
    from olr.data.dataset import list_datasets, load_dataset

    second = dataclasses.replace(demo_scene.SECOND_SCENE, size_px=480)  # 10 x 10 tiles of 48 px
    fields = {f.name: getattr(second, f.name) for f in dataclasses.fields(second)}
    path = demo_scene.ensure_demo_dataset(name="second", **fields)
    scene_dir = path.with_name("second-scene")
    with rasterio.open(scene_dir / "image.tif") as im, rasterio.open(scene_dir / "clc.tif") as lb:
        assert im.crs.to_epsg() == 6312 and im.res == (10.0, 10.0) and (im.width, im.height) == (480, 480)
        assert lb.crs.to_epsg() == 3035  # labels stay CORINE's grid
    scene = json.loads((scene_dir / "scene.json").read_text())
    assert (scene["tile"], scene["image"]["crs"], scene["tiles_expected"]) == (48, "EPSG:6312", 100)
    assert demo_scene.SceneParams.from_scene(scene) == second.check()

    ds = load_dataset(path)
    assert ds.tile_shape == (48, 48, 4) and ds.n_tiles == 100
    assert "6312" in json.dumps(ds.meta["crs"]) and ds.meta["parameters"]["split_block"] == 8  # blocks stay 3.84 km
    codes = {c for lab in ds.labels for c in lab.codes}
    assert codes <= set(second.scene_classes()) and codes & {213, 244, 311, 322, 423}
    assert not codes & set(second.substitutions)
    assert list_datasets() == ["second"]  # the demo is not made along the way

    # Left out, a parameter stays as the scene has it; a changed one rebuilds with the rest kept.
    stamp = (path / "meta.json").stat().st_mtime_ns
    assert demo_scene.ensure_demo_dataset(name="second") == path
    assert (path / "meta.json").stat().st_mtime_ns == stamp
    demo_scene.ensure_demo_dataset(name="second", tile=32)
    assert load_dataset(path).tile_shape == (32, 32, 4)
    rebuilt = demo_scene.SceneParams.from_scene(json.loads((scene_dir / "scene.json").read_text()))
    assert rebuilt == dataclasses.replace(second.check(), tile=32)


_ONE_SENTENCE = re.compile(r"[.;!?]\s+[A-Z]")


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"classes": "323=999"}, "999 is not a CORINE Land Cover code"),
        ({"classes": "335=322"}, "no class 335"),
        ({"classes": "323=324"}, "already a class"),
        ({"classes": "323=335"}, "no look for 335"),
        ({"classes": "523=213"}, "group 5xx"),
        ({"classes": "323=322,324=322"}, "its own new code"),
        ({"classes": "323-322"}, "DEMO_CODE=NEW_CODE"),
        ({"image_crs": "EPSG:99999"}, "not a CRS PROJ knows"),
        ({"image_crs": "EPSG:4326"}, "not a projected CRS"),
        ({"image_crs": "EPSG:3857"}, "is 8.2 m on the ground"),
        ({"image_crs": "EPSG:32633"}, "is 9.7 m on the ground"),  # UTM 33N: 18 degrees off its meridian
        ({"tile": 8}, "tile size"),
        ({"tile": "x"}, "tile size"),
        ({"tile": 48, "size_px": 500}, "--size 480 or 528"),
        ({"tile": 128, "size_px": 256}, "at least --size 512"),
    ],
)
def test_bad_scene_parameters_are_refused_in_one_sentence(fields, says):
    with pytest.raises(OLRError) as raised:
        dataclasses.replace(demo_scene.SceneParams(), **fields).check()
    message = str(raised.value)
    assert says in message, message
    assert not _ONE_SENTENCE.search(message) and "\n" not in message and message.endswith("."), message


def test_projected_crs_made_for_the_area_are_accepted():
    for crs in ("EPSG:32636", "epsg:6312", "EPSG:32635", "EPSG:3035"):
        assert dataclasses.replace(demo_scene.SceneParams(), image_crs=crs).check().image_crs == crs.upper()
    assert demo_scene.SceneParams(tile=48).check().size_px == 3552  # the most whole tiles within 3584 px
    assert demo_scene.SceneParams().check().split_block == demo_scene.DEMO_SPLIT_BLOCK


@needs_prepare
def test_cli_makes_a_scene_with_other_parameters_and_refuses_bad_ones(tmp_path):
    env = dict(os.environ, OLR_HOME=str(tmp_path), PYTHONPATH=str(REPO))
    cli = [sys.executable, "-m", "olr", "demo-data", "--name", "v", "--seed", "11", "--size", "288", "--tile", "48"]
    flags = ["--image-crs", "EPSG:6312", "--classes", "212=213,223=244,313=311,323=322,421=423"]
    run = subprocess.run([*cli, *flags], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "image CRS EPSG:6312, tiles of 48 px" in run.stdout and "tiles: 36 (" in run.stdout
    assert "323 Sclerophyllous vegetation -> 322 Moors and heathland" in run.stdout
    bad = subprocess.run([*cli, "--classes", "523=213"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "group 5xx" in lines[0], bad.stderr
