"""The demo dataset `data/demo`: the scene prepared like any other, built once even under concurrency.

`ensure_demo_dataset` generates the scene (olr.data.demo_scene.scene_files) when needed and
prepares it with `olr.data.prepare`, choosing the split seed that serves every label best.
Another name holds another scene of the generator (`SceneParams`: seed, size, tile, image CRS,
classes), e.g. the second scene of a generalisation check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from pathlib import Path

import numpy as np

from olr import workspace
from olr.data import label_schemes, splits
from olr.data.dataset import REQUIRED_FILES
from olr.data.demo_scene.params import SceneParams, default_size
from olr.data.demo_scene.scene_files import demo_scene_dir, generate_scene, scene_complete
from olr.data.demo_scene.spec import (
    DEFAULT_SEED,
    DEMO_DATASET,
    DEMO_MIN_FRACTION,
    DEMO_SPLIT,
    DEMO_TILE,
    NODATA_GRID,
    Progress,
)
from olr.data.prepare import prepare_dataset
from olr.errors import OLRError


def _dataset_complete(folder: Path) -> bool:
    """Whether `folder` holds every file of a prepared dataset."""

    return folder.is_dir() and all((folder / f).exists() for f in REQUIRED_FILES)


@contextlib.contextmanager
def _exclusive_lock(path: Path):
    """An exclusive advisory lock (flock) held for the `with` block; others wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def tile_presence(
    image: str | os.PathLike, labels: str | os.PathLike, tile: int = DEMO_TILE
) -> tuple[np.ndarray, list[int]]:
    """Which CLC classes each tile holds, computed the way preparation does it.

    The CORINE raster is aligned onto the image grid (nearest neighbour); a class is present
    in a tile when it covers at least DEMO_MIN_FRACTION of the tile's labelled pixels.
    Returns presence (H // tile, W // tile, C) bool and the C class codes of its last axis.
    """
    import rasterio
    from rasterio.warp import Resampling, reproject

    with rasterio.open(image) as im, rasterio.open(labels) as lb:
        grid = np.full((im.height, im.width), NODATA_GRID, np.uint8)
        reproject(
            rasterio.band(lb, 1),
            grid,
            dst_transform=im.transform,
            dst_crs=im.crs,
            resampling=Resampling.nearest,
            dst_nodata=NODATA_GRID,
        )
    nr, nc = grid.shape[0] // tile, grid.shape[1] // tile
    codes = label_schemes.grid_to_code_lut()[grid[: nr * tile, : nc * tile]]
    tile_id = (np.arange(nr * tile)[:, None] // tile) * nc + np.arange(nc * tile)[None, :] // tile
    present = sorted(set(np.unique(codes).tolist()) - {0})
    index = np.zeros(600, np.int64)
    index[present] = np.arange(1, len(present) + 1)
    counts = np.bincount((tile_id * (len(present) + 1) + index[codes]).ravel(), minlength=nr * nc * (len(present) + 1))
    counts = counts.reshape(nr * nc, len(present) + 1)
    labelled = np.maximum(counts[:, 1:].sum(1, keepdims=True), 1)
    return (counts[:, 1:] / labelled >= DEMO_MIN_FRACTION).reshape(nr, nc, len(present)), present


def split_seed(presence: np.ndarray, *, block: int, fractions=DEMO_SPLIT, n_seeds: int = 200) -> int:
    """The seed of the spatial block split (olr.data.splits) that serves every label best.

    A spatial split moves whole towns or lagoons into one split, so a clumped label can miss
    the validation or test split entirely. Among seeds 0..n_seeds-1 this picks the one whose
    worst label (of those in at least 20 tiles) gets the largest share of its expected
    validation and test positives. presence: (tile rows, tile cols, C) bool.
    """

    nr, nc, n_labels = presence.shape
    rows, cols = np.divmod(np.arange(nr * nc), nc)
    blocks = splits.spatial_blocks(rows, cols, block)
    flat = presence.reshape(nr * nc, n_labels)
    common = flat[:, flat.sum(0) >= 20]
    if common.shape[1] == 0:  # a scene too small to matter
        return 0
    best_seed, best_score = 0, -1.0
    for seed in range(n_seeds):
        assigned = splits.assign_blocks(blocks, fractions, seed)
        score = min(
            float((common[assigned == name].sum(0) / (share * common.sum(0))).min())
            for name, share in zip(("val", "test"), fractions[1:])
        )
        if score > best_score:
            best_seed, best_score = seed, score
    return best_seed


def ensure_demo_dataset(
    progress: Progress | None = None,
    *,
    force: bool = False,
    name: str = DEMO_DATASET,
    **requested,
) -> Path:
    """Return the demo dataset folder `data/<name>` (`data/demo`), generating the scene and preparing it if needed.

    Safe when several processes call it at once: one builds under an exclusive lock on
    `data/.<name>.lock`, the others wait and then find it. `requested`: SceneParams fields
    (seed, size_px, tile, image_crs, classes); one left out or None is as the existing scene
    has it, else the default; one that differs from the existing scene rebuilds scene and
    dataset (`force` rebuilds them as they are). Another `name` makes another scene of the
    generator in its own dataset (its scene in `scene_dir_for(name)`), e.g. one the demo recipe
    was not tuned on; it needs its own seed.
    """
    import shutil

    requested = {k: v for k, v in requested.items() if v is not None}
    out = workspace.dataset_path(name)
    scene_dir = scene_dir_for(name)
    if name != DEMO_DATASET:
        _check_other_scene(name, out, scene_dir, requested.get("seed"))
    _wanted(scene_complete(scene_dir), requested)  # bad parameters are told before anything else
    if workspace.is_readonly() and not force and _dataset_complete(out):
        return out  # a read-only demo shows what is there and writes nothing, not even the lock
    workspace.require_writable("prepare the demo dataset")
    with _exclusive_lock(workspace.data_dir() / f".{name}.lock"):
        scene = scene_complete(scene_dir)
        want = _wanted(scene, requested)
        stale = scene is not None and want != SceneParams.from_scene(scene).check()
        if not force and not stale and scene is not None and _dataset_complete(out):
            return out
        if force or stale or scene is None:
            shutil.rmtree(out, ignore_errors=True)  # never leave a dataset of another scene
            generate_scene(scene_dir, want, progress=progress, overwrite=True)
        _prepare(scene_dir, out, want, progress)
    return out


def _wanted(scene: dict | None, requested: dict) -> SceneParams:
    """The checked scene parameters: the existing scene's (else the defaults) with `requested` replacing some.

    A size that merely followed the tile (the most whole tiles within the default size) follows
    a requested tile too.
    """
    base = SceneParams() if scene is None else SceneParams.from_scene(scene)
    if "tile" in requested and "size_px" not in requested and base.size_px == default_size(base.tile):
        base = dataclasses.replace(base, size_px=None)
    return dataclasses.replace(base, **requested).check()


def scene_dir_for(name: str) -> Path:
    """The scene folder of the demo-like dataset `name`: `data/demo-scene` for the demo, else `data/<name>-scene`."""
    demo = demo_scene_dir()
    return demo if name == DEMO_DATASET else demo.with_name(f"{workspace.check_name(name, 'dataset name')}-scene")


def _check_other_scene(name: str, out: Path, scene_dir: Path, seed: int | None) -> None:
    """OLRError when `name` cannot be a second demo-like scene: a scene folder's name, another
    dataset already there (never replaced), or a new scene without a seed of its own."""
    if name.endswith("-scene"):
        raise OLRError(f"The dataset name {name!r} ends in -scene, which names scene folders; choose another name.")
    if scene_complete(scene_dir) is None:
        if out.exists():
            raise OLRError(f"A dataset {name!r} exists and was not made by demo-data; choose another name.")
        if seed is None:
            raise OLRError(
                f"The scene {name!r} does not exist yet; give it a seed of its own (--seed N; the demo's is "
                f"{DEFAULT_SEED})."
            )


def _prepare(scene_dir: Path, out: Path, params: SceneParams, progress: Progress | None) -> None:
    """Prepare the scene in `scene_dir` into the dataset `out` with the demo's settings and the scene's tile."""

    image, labels = scene_dir / "image.tif", scene_dir / "clc.tif"
    chosen = split_seed(tile_presence(image, labels, params.tile)[0], block=params.split_block)
    prepare_dataset(
        image,
        labels,
        out,
        tile=params.tile,
        scheme="level3",
        min_fraction=DEMO_MIN_FRACTION,
        split_block=params.split_block,
        split_fractions=DEMO_SPLIT,
        seed=chosen,
        overwrite=True,
        progress=progress,
    )
