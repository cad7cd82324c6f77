"""Opening a CORINE raster or vector as a label source aligned onto the image grid."""

from __future__ import annotations

import os

import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError  # GDAL's own errors; rasterio has no public alias
from rasterio.errors import RasterioIOError

from olr.data.rasters.codes import ENCODINGS
from olr.data.rasters.label_source import LabelSource
from olr.data.rasters.raster_labels import open_raster_labels
from olr.data.rasters.read_errors import check_exists
from olr.data.rasters.user_files import check_local_path, open_raster
from olr.data.rasters.vector_labels import open_vector_labels
from olr.errors import OLRError

#: Suffixes read as vectors straight away (GeoPackage, Shapefile: the formats `user_files` allows).
VECTOR_SUFFIXES = (".gpkg", ".shp")


def open_labels(path: str | os.PathLike, image: rasterio.DatasetReader, encoding: str = "auto") -> LabelSource:
    """Open a CORINE raster or vector as a label source aligned onto `image`'s grid.

    `encoding` is "grid" (values 1..44), "clc" (values 111..523) or "auto" (detected from a
    decimated read of the overlap). Raises OLRError when the file is unreadable, does not
    overlap the image, or holds no valid class there.
    """
    if encoding not in ENCODINGS:
        raise OLRError(f"Unknown label encoding {encoding!r}; use one of {', '.join(ENCODINGS)}.")
    path = check_local_path(path, "labels")
    check_exists(path, "labels")
    if path.suffix.lower() not in VECTOR_SUFFIXES:
        try:
            src = open_raster(path)
        except (RasterioIOError, CPLE_BaseError, UnicodeDecodeError):  # not a GeoTIFF (or a damaged one): try vector
            src = None
        if src is not None:
            if src.crs is None or src.transform == Affine.identity():
                src.close()
                raise OLRError(
                    f"The labels {path} have no coordinate reference system or geotransform; "
                    "georeference the label map and try again."
                )
            return open_raster_labels(path, src, image, encoding)
    return open_vector_labels(path, image, encoding)
