"""RGB composites of image tiles: which bands to show, percentile stretch limits, 8-bit images.

Tiles are (n, h, w, b) arrays of any dtype, as `Dataset.images` holds them. A composite maps
three chosen bands (or one band three times, as grey) linearly from per-channel stretch
limits to 0..255; exact zeros count as nodata and are left out of the limits.
"""

from __future__ import annotations

import numpy as np

from olr.data.rasters.images import rgb_positions

#: Tiles sampled for a dataset's stretch limits (enough for stable percentiles, cheap to read).
STRETCH_SAMPLE = 64


def default_rgb_bands(band_names: list[str]) -> list[int]:
    """Indices of the red, green, blue bands by name (Sentinel-2's B04/B03/B02 too), else the first three
    (or one band as grey): `rasters.images.rgb_positions`, the one place this is decided."""
    return rgb_positions(list(band_names))["positions"]


def dataset_rgb_bands(dataset) -> list[int]:
    """The dataset's RGB band indices: those its preparation chose (meta["rgb"], `--rgb` included), else by name."""
    chosen = (dataset.meta.get("rgb") or {}).get("positions")
    b = dataset.tile_shape[2]
    if chosen and len(chosen) == 3 and all(isinstance(i, int) and 0 <= i < b for i in chosen):
        return [int(i) for i in chosen]
    return default_rgb_bands(dataset.band_names or [f"band {i + 1}" for i in range(b)])


def stretch_limits(images: np.ndarray, bands: list[int], low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """(3, 2) per-channel percentile limits over `images` (n, h, w, b), ignoring exact zeros (nodata)."""
    limits = np.zeros((3, 2))
    for c, b in enumerate(bands):
        v = np.asarray(images[..., b], dtype=np.float64).ravel()
        v = v[np.isfinite(v) & (v != 0)]
        if v.size == 0:
            limits[c] = (0.0, 1.0)
            continue
        lo, hi = np.percentile(v, [low, high])
        limits[c] = (lo, hi if hi > lo else lo + 1.0)
    return limits


def dataset_stretch_limits(dataset, bands: list[int], sample: int = STRETCH_SAMPLE, seed: int = 0) -> np.ndarray:
    """(3, 2) `stretch_limits` of a dataset from a fixed random sample of its tiles (same seed, same limits)."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(dataset.n_tiles, size=min(sample, dataset.n_tiles), replace=False))
    return stretch_limits(np.asarray(dataset.images[rows]), list(bands))


def rgb_composite(images: np.ndarray, bands: list[int], limits: np.ndarray, upscale: int = 1) -> np.ndarray:
    """(n, h*upscale, w*upscale, 3) uint8 composites of `images` (n, h, w, b), linearly stretched to `limits`."""
    x = np.asarray(images[..., bands], dtype=np.float32)
    lo = limits[:, 0].astype(np.float32)
    hi = limits[:, 1].astype(np.float32)
    out = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    out = np.rint(out * 255).astype(np.uint8)
    if upscale > 1:  # nearest-neighbour: pixels stay crisp
        out = out.repeat(upscale, axis=1).repeat(upscale, axis=2)
    return out


def thumbnail_upscale(tile_size: int, target_px: int = 128) -> int:
    """Whole-number factor that brings a tile of `tile_size` px close to `target_px` (at least 1)."""
    return max(1, target_px // max(int(tile_size), 1))


def images_at(dataset, rows) -> np.ndarray:
    """(m, h, w, b) images of `rows` in the given order, read from the dataset in ascending row order."""
    rows = np.asarray(rows)
    # Memory-mapped reads are fastest in file order; the second argsort puts them back in `rows` order.
    return np.asarray(dataset.images[np.sort(rows)])[np.argsort(np.argsort(rows))]


def tile_thumbnails(dataset, rows, bands: list[int] | None = None, limits: np.ndarray | None = None) -> np.ndarray:
    """The one rendering of tiles for people: (m, H, W, 3) uint8 thumbnails of `rows`, in their order.

    Bands default to the dataset's RGB bands and the stretch to the dataset-wide limits
    (`dataset_stretch_limits`), never limits of the tiles on show: so a tile looks the same in the
    Datasets gallery, among Evaluate's examples and anywhere else. `limits` lets a caller pass the
    cached `dataset_stretch_limits(dataset, bands)` instead of recomputing them.
    """
    bands = list(bands) if bands is not None else dataset_rgb_bands(dataset)
    if limits is None:
        limits = dataset_stretch_limits(dataset, bands)
    images = images_at(dataset, rows)
    return rgb_composite(images, bands, limits, upscale=thumbnail_upscale(dataset.tile_shape[0]))
