"""Opening a label map (CORINE, or any map with a legend) as a label source aligned onto the image grid."""

from __future__ import annotations

import math
import os

import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError  # GDAL's own errors; rasterio has no public alias
from rasterio.errors import RasterioIOError

from olr.data.label_schemes import short_repr
from olr.data.rasters.codes import ENCODINGS
from olr.data.rasters.images import nodata_override
from olr.data.rasters.label_source import LabelSource
from olr.data.rasters.raster_labels import open_raster_labels
from olr.data.rasters.read_errors import check_exists
from olr.data.rasters.user_files import check_local_path, open_raster
from olr.data.rasters.vector_labels import open_vector_labels
from olr.errors import OLRError

#: Suffixes read as vectors straight away (GeoPackage, Shapefile: the formats `user_files` allows).
VECTOR_SUFFIXES = (".gpkg", ".shp")


def open_labels(
    path: str | os.PathLike,
    image: rasterio.DatasetReader,
    encoding: str = "auto",
    legend=None,
    label_field: str | None = None,
    nodata: str | float | None = None,
) -> LabelSource:
    """Open a label raster or vector as a label source aligned onto `image`'s grid.

    Values are read through `legend` (an `olr.data.legends.Legend`) when given, else as CORINE
    codes in `encoding`: "grid" (values 1..44), "clc" (values 111..523) or "auto" (CLC codes, or
    grid codes when the raster carries CORINE's colour table; never guessed otherwise).
    `label_field`: a vector's label attribute (default Code_18). `nodata`: the raw value meaning
    no label, replacing the raster's own ("none": there is none; None: the raster's).
    Raises OLRError when the file is unreadable, does not overlap the image, holds no valid
    class there, or holds values there that the encoding or legend does not cover.
    """
    if encoding not in ENCODINGS:
        raise OLRError(f"Unknown label encoding {encoding!r}; use one of {', '.join(ENCODINGS)}.")
    if legend is None and encoding == "legend":
        raise OLRError("The label encoding 'legend' needs a legend file; give --legend FILE (value,name per line).")
    if legend is not None and encoding not in ("auto", "legend"):
        raise OLRError(
            f"Both a legend ({legend.source}) and --label-encoding {encoding} were given; "
            "use --label-encoding auto or legend with a legend (its clc_code column maps values to CORINE codes)."
        )
    override = label_nodata(nodata)
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
            if label_field is not None:  # it would be ignored: say so rather than prepare without it
                src.close()
                raise OLRError(
                    f"The labels {path} are a raster, but --label-field {short_repr(label_field)} names the attribute "
                    "of a vector; leave --label-field out for a raster."
                )
            own = src.nodata if override is None else override
            return open_raster_labels(path, src, image, encoding, legend, own)
    return open_vector_labels(path, image, encoding, legend, label_field, override)


def label_nodata(value: str | float | None) -> float | None:
    """The `--label-nodata` option as the label readers take it: None (keep the file's), NaN ("none": no
    value means no data; NaN pixels still do), or the value; parsed as the image's (`nodata_override`)."""
    given, number = nodata_override(value, "--label-nodata")
    if not given:
        return None
    return math.nan if number is None else number
