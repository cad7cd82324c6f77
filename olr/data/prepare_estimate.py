"""How big a preparation's output will be, and whether it fits, known before any tile is written.

The estimate is an upper bound: every tile of the grid kept (the nodata and label filters only
drop tiles). A preparation is refused when it exceeds the free space of the target disk or the
cap `OLR_MAX_DATASET_GB`, so a sparse GeoTIFF declaring 10^6 x 10^6 pixels, or stride 1 over a
scene, cannot start writing towards a terabyte.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from olr.data import rasters
from olr.data.prepare_options import PrepareOptions
from olr.data.tile_reader import READ_ENV, TileGrid
from olr.errors import OLRError

#: The largest dataset a preparation may write unless `OLR_MAX_DATASET_GB` says otherwise.
DEFAULT_MAX_DATASET_GB = 20.0
#: Source plus output bytes per second assumed for the time estimate: a conservative figure for
#: a laptop disk (`olr bench prepare` measures this machine's).
PREPARE_MB_PER_S = 100.0
#: Bytes per tile besides its pixels: fractions, code fractions and its row of the tile table.
PER_TILE_EXTRA_BYTES = 512


@dataclass(frozen=True)
class DatasetEstimate:
    """The upper bound of a preparation: tiles on the grid, bytes written, seconds taken."""

    tiles: int
    tile_bytes: int  # pixel bytes of one tile
    bytes: int
    seconds: float

    def describe(self) -> str:
        """E.g. "about 1,024 tiles, 130 MB, ~3 s"."""
        return f"about {self.tiles:,} tiles, {format_bytes(self.bytes)}, ~{format_seconds(self.seconds)}"


def estimate_dataset(
    image: str | os.PathLike | list, options: PrepareOptions | None = None, **settings
) -> DatasetEstimate:
    """The estimate of preparing `image` (one raster, or a list of band files) with `options` (and `settings`
    replacing some of its fields).

    Opens only the image's header; raises OLRError for an image that cannot be opened or options
    out of range.
    """
    opts = dataclasses.replace(options or PrepareOptions(), **settings).check()
    with rasterio.Env(**READ_ENV), rasters.open_image_files(image, opts.grid) as src:
        return estimate_for(src, opts)


def estimate_for(src: rasterio.DatasetReader, opts: PrepareOptions) -> DatasetEstimate:
    """The estimate for an open image raster."""
    bands = rasters.image_bands(src, opts.bands)
    pixel_bytes = len(bands) * np.dtype(src.dtypes[bands[0] - 1]).itemsize
    tile_bytes = opts.tile * opts.tile * pixel_bytes
    fits = opts.tile <= min(src.height, src.width)
    tiles = TileGrid(src.height, src.width, opts.tile, opts.stride_px).n_tiles if fits else 0
    written = tiles * (tile_bytes + PER_TILE_EXTRA_BYTES)
    read = src.height * src.width * pixel_bytes
    return DatasetEstimate(tiles, tile_bytes, written, (read + written) / (PREPARE_MB_PER_S * 2**20))


def max_dataset_gb() -> float:
    """The cap on a dataset's size in GB (`OLR_MAX_DATASET_GB`, default 20)."""
    text = os.environ.get("OLR_MAX_DATASET_GB", "").strip()
    if not text:
        return DEFAULT_MAX_DATASET_GB
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise OLRError(f"OLR_MAX_DATASET_GB={text!r} is not a positive number; set it to a size in GB such as 20.")
    return value


def require_room(estimate: DatasetEstimate, out: Path) -> None:
    """OLRError when the estimate exceeds `OLR_MAX_DATASET_GB` or the free space of `out`'s disk."""
    cap = max_dataset_gb()
    what = f"The dataset {out.name} would take up to {format_bytes(estimate.bytes)} ({estimate.tiles:,} tiles)"
    if estimate.bytes > cap * 2**30:
        raise OLRError(
            f"{what}, above the limit of {cap:g} GB (OLR_MAX_DATASET_GB); use a larger stride or tile size "
            "or a smaller image, or raise OLR_MAX_DATASET_GB."
        )
    folder = _existing_folder(out.parent)
    free = shutil.disk_usage(folder).free
    if estimate.bytes > free:
        raise OLRError(
            f"{what}, more than the {format_bytes(free)} free on the disk of {folder}; free some space "
            "or use a larger stride or tile size."
        )


def _existing_folder(path: Path) -> Path:
    """`path` or its nearest existing parent (the dataset's data folder may not exist yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            break
        n /= 1024
    return f"{n:,.0f} {unit}" if unit == "B" or n >= 10 else f"{n:.1f} {unit}"


def format_seconds(s: float) -> str:
    if s < 90:
        return f"{max(1, round(s))} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    return f"{s / 3600:.1f} h"
