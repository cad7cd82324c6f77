"""Opening the image raster, naming its bands and telling its nodata pixels."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from olr.data.rasters.read_errors import check_exists
from olr.data.rasters.user_files import check_local_path, open_raster
from olr.errors import OLRError

DEFAULT_BAND_NAMES = {1: ["gray"], 3: ["red", "green", "blue"], 4: ["red", "green", "blue", "nir"]}


def open_image(path: str | os.PathLike) -> rasterio.DatasetReader:
    """Open the image raster; it must be a georeferenced GeoTIFF (CRS and geotransform).

    Only the GeoTIFF driver may open it (`user_files`): a ".tif" of VRT XML could read any
    file of the server or fetch URLs."""
    path = check_local_path(path, "image")
    check_exists(path, "image")
    try:
        src = open_raster(path)
    except RasterioIOError:
        raise OLRError(
            f"The image {path} is not a raster this app reads (only GeoTIFF is accepted); "
            "convert it with gdal_translate -of GTiff and try again."
        ) from None
    if src.crs is None:
        src.close()
        raise OLRError(
            f"The image {path} has no coordinate reference system; assign one "
            "(e.g. gdal_edit.py -a_srs EPSG:32636) and try again."
        )
    if src.transform == Affine.identity():
        src.close()
        raise OLRError(
            f"The image {path} has no geotransform (pixel size and origin); georeference it "
            "(e.g. gdal_edit.py -a_ullr) and try again."
        )
    return src


def image_bands(src: rasterio.DatasetReader) -> list[int]:
    """1-based indexes of the image bands: all of them.

    A band flagged "alpha" stays a band: GDAL flags the 4th band of any 4-band uint8
    GeoTIFF as alpha by default, which would silently drop the NIR of RGBN imagery.
    """
    return list(src.indexes)


def band_names(src: rasterio.DatasetReader, bands: list[int]) -> list[str]:
    """Band names from the raster's descriptions, else its colour interpretation, else defaults."""
    desc = [src.descriptions[i - 1] for i in bands]
    if all(desc) and len(set(desc)) == len(desc):
        return list(desc)
    interp = {ColorInterp.red: "red", ColorInterp.green: "green", ColorInterp.blue: "blue", ColorInterp.alpha: "alpha"}
    names = [interp.get(src.colorinterp[i - 1]) for i in bands]
    if all(names) and len(set(names)) == len(names):
        return names
    return DEFAULT_BAND_NAMES.get(len(bands), [f"band {i + 1}" for i in range(len(bands))])


@dataclass
class ImageMask:
    """How to tell image nodata pixels: a nodata value (all bands equal it), a GDAL mask, or none."""

    kind: str  # "none" | "value" | "mask"
    value: float | None = None

    @staticmethod
    def of(src: rasterio.DatasetReader, bands: list[int]) -> ImageMask:
        if src.nodata is not None:
            return ImageMask("value", float(src.nodata))
        flags = src.mask_flag_enums[bands[0] - 1]
        if MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
            return ImageMask("mask")  # an internal or .msk mask (an alpha band stays data)
        return ImageMask("none")

    def pixels(self, src: rasterio.DatasetReader, window: Window, pixels: np.ndarray) -> np.ndarray | None:
        """(h, w) bool, True where the image has no data; None when every pixel is valid.

        `pixels` is the window already read, (h, w, b).
        """
        if self.kind == "none":
            return None
        if self.kind == "mask":
            return src.dataset_mask(window=window) == 0
        h, w, b = pixels.shape
        value = self.value
        if math.isnan(value):
            out = np.isnan(pixels[..., 0])
            for k in range(1, b):
                out &= np.isnan(pixels[..., k])
            return out
        if pixels.dtype.kind in "iu":
            info = np.iinfo(pixels.dtype)
            if not (info.min <= value <= info.max and value.is_integer()):
                return None  # the nodata value cannot occur in this dtype
        width = b * pixels.dtype.itemsize
        if width in (1, 2, 4, 8) and pixels.flags.c_contiguous:
            # A pixel is nodata when all its bands equal the value: compare each pixel's
            # bytes at once (one pass over the window instead of one per band).
            pattern = np.full(b, value, dtype=pixels.dtype).view(f"u{width}")[0]
            return pixels.view(f"u{width}").reshape(h, w) == pattern
        out = pixels[..., 0] == value
        for k in range(1, b):
            out &= pixels[..., k] == value
        return out
